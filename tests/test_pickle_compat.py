"""Pickles written by earlier releases load, and today's name the same
module paths: moving engine code between parts (or modules) must not
change what a pickle refers to. The files are made by
tests/data/make_pickles.py, once per release, and kept."""
import importlib.util
import pathlib
import pickle
import pickletools

import numpy as np
import pytest

import cydezero
from cydezero import Parameter, Variable

DATA = pathlib.Path(__file__).parent / 'data'
PICKLES = sorted(DATA.glob('pickle-*.pkl'))


def _globals(blob):
    """The (module, name) pairs a pickle imports to rebuild its objects."""
    found, strings = set(), []
    for op, arg, _ in pickletools.genops(blob):
        if op.name in ('SHORT_BINUNICODE', 'BINUNICODE', 'UNICODE'):
            strings.append(arg)
        elif op.name == 'GLOBAL':
            found.add(tuple(arg.split(' ', 1)))
        elif op.name == 'STACK_GLOBAL':
            found.add((strings[-2], strings[-1]))
    return found


def test_there_is_a_pickle_of_this_release():
    assert DATA / f'pickle-{cydezero.__version__}.pkl' in PICKLES


@pytest.mark.parametrize('path', PICKLES, ids=lambda p: p.name)
def test_old_pickle_loads_with_its_values(path):
    with open(path, 'rb') as f:
        objs = pickle.load(f)
    x, W, c = objs['x'], objs['W'], objs['c']
    assert type(x) is Variable and type(W) is Parameter
    assert x.name == 'x' and W.name == 'W'
    np.testing.assert_array_equal(x.data, np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(x.grad.data, np.full((2, 3), 0.5))
    assert W.data.dtype == np.float32 and W.requires_grad
    assert not c.requires_grad and c.creator is None
    # The loaded leaves work in a graph: y = sin(x) * c differentiates to
    # cos(x) * c, added to the 0.5 the loaded x already holds.
    y = cydezero.functions.sin(x) * c
    y.backward()
    np.testing.assert_allclose(x.grad.data, 0.5 + np.cos(x.data) * 2.0, rtol=1e-15)
    assert c.grad is None


@pytest.mark.parametrize('path', PICKLES, ids=lambda p: p.name)
def test_todays_pickle_names_the_same_module_paths(path):
    spec = importlib.util.spec_from_file_location('make_pickles', DATA / 'make_pickles.py')
    make_pickles = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_pickles)
    today = _globals(pickle.dumps(make_pickles.objects(), protocol=2))
    stored = _globals(path.read_bytes())
    assert ('cydezero._core', 'Variable') in stored
    assert today == stored, f'moved: {sorted(stored - today)}, new: {sorted(today - stored)}'
