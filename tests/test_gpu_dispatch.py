"""Which CuPy call the GPU paths make, on every machine: a stand-in CuPy
module (its arrays a NumPy subclass, its calls recorded and done by NumPy)
takes the real one's place. What the calls compute on a GPU is checked by
test_cupy.py, where a device is present."""
import sys
import types

import numpy as np
import pytest

import cydezero.functions as F
from cydezero import Variable


class _GpuArray(np.ndarray):
    pass


def _fake_cupy(calls, with_add_at):
    cp = types.ModuleType('cupy')
    cp.ndarray = _GpuArray
    cp.zeros = lambda shape, dtype: np.zeros(shape, dtype).view(_GpuArray)

    def add_at(a, slices, b):
        calls.append('cupy.add.at')
        np.add.at(a, slices, b)

    cp.add = types.SimpleNamespace(at=add_at) if with_add_at else types.SimpleNamespace()
    cupyx = types.ModuleType('cupyx')

    def scatter_add(a, slices, b):
        calls.append('cupyx.scatter_add')
        np.add.at(a, slices, b)

    cupyx.scatter_add = scatter_add
    return cp, cupyx


@pytest.mark.parametrize('with_add_at,call', [(True, 'cupy.add.at'),
                                               (False, 'cupyx.scatter_add')])
def test_get_item_backward_on_gpu_uses_add_at_where_cupy_has_it(monkeypatch, with_add_at,
                                                                 call):
    # CuPy 14 deprecates cupyx.scatter_add for cupy.add.at; older CuPy
    # has only the former.
    calls = []
    cp, cupyx = _fake_cupy(calls, with_add_at)
    monkeypatch.setitem(sys.modules, 'cupy', cp)
    monkeypatch.setitem(sys.modules, 'cupyx', cupyx)
    data = np.arange(12.0).reshape(3, 4)
    x = Variable(data.view(_GpuArray))
    idx = np.array([0, 2, 0])
    y = F.get_item(x, idx)
    y.backward()
    assert calls == [call]
    assert isinstance(x.grad.data, _GpuArray)
    want = np.zeros_like(data)
    np.add.at(want, idx, 1.0)       # row 0 taken twice adds up
    np.testing.assert_array_equal(np.asarray(x.grad.data), want)
