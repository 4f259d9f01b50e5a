"""requires_grad: variables that need no gradient get none, and what is
computed only from them costs no backward work. DeZero's behaviour is kept
for everything the user did not mark."""
import numpy as np
import pytest

import cydezero as dz
import cydezero.functions as F
from cydezero import Variable


class CountingSquare(dz.Function):
    calls = 0

    def forward(self, x):
        return x * x

    def backward(self, gy):
        CountingSquare.calls += 1
        x, = self.inputs
        return 2 * x * gy


def test_marked_leaf_gets_no_gradient_the_others_do():
    c = Variable(np.array([1.0, 2.0]), requires_grad=False)
    w = Variable(np.array([0.5, -1.0]))
    (F.sin(c) * w).sum().backward()
    assert c.grad is None
    np.testing.assert_array_equal(w.grad.data, np.sin(c.data))


def test_what_depends_only_on_constants_runs_no_backward():
    c = Variable(np.array(3.0), requires_grad=False)
    w = Variable(np.array(2.0))
    CountingSquare.calls = 0
    y = CountingSquare()(c)
    assert not y.requires_grad
    (y * w).backward()
    assert CountingSquare.calls == 0
    assert float(w.grad.data) == 9.0
    z = CountingSquare()(w)
    assert z.requires_grad
    z.backward()
    assert CountingSquare.calls == 1


def test_a_call_on_raw_constants_alone_keeps_dezero_behaviour(dezero):
    y = F.sin(np.array(1.0))
    assert y.requires_grad
    ref = dezero.functions.sin(np.array(1.0))
    y.backward()
    ref.backward()
    assert (y.grad is None) == (ref.grad is None)


def test_unmarking_an_intermediate_stops_the_gradient_there():
    x = Variable(np.array(2.0))
    a = x * x
    a.requires_grad = False
    (a * x).backward()
    assert float(x.grad.data) == 4.0     # only the direct use of x


def test_integer_variable_cannot_require_grad_and_is_left_unchanged():
    v = Variable(np.array([1, 2]))
    with pytest.raises(TypeError, match=r'requires_grad=True needs floating-point data, got dtype int64'):
        v.requires_grad = True
    assert v.requires_grad      # DeZero's default is untouched
    with pytest.raises(TypeError, match='int64'):
        Variable(np.array(3), requires_grad=True)


def test_integer_variables_still_differentiate_as_in_dezero(dezero):
    x = Variable(np.array(3))
    (x * x).backward()
    ref = dezero.Variable(np.array(3))
    (ref * ref).backward()
    assert x.grad.data == ref.grad.data and x.grad.data.dtype == ref.grad.data.dtype


def test_parameter_accepts_requires_grad():
    p = dz.Parameter(np.ones(2), requires_grad=False)
    (p * 2.0).sum().backward()
    assert p.grad is None and not p.requires_grad
