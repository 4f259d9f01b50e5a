"""The functional API: cydezero.grad returns gradients without touching .grad."""
import numpy as np
import pytest
from conftest import numerical_grad

import cydezero
from cydezero import Variable
from cydezero import _core as C


def f(x, w):
    return (C.tanh(C.matmul(x, w)) ** 2).sum()


def test_grad_matches_numerical_and_leaves_dot_grad_alone():
    rng = np.random.default_rng(3)
    a, b = rng.random((2, 3)), rng.random((3, 2))
    x, w = Variable(a), Variable(b)
    x.grad = Variable(np.full((2, 3), 7.0))
    gx, gw = cydezero.grad(f(x, w), [x, w])
    assert np.allclose(gx.data, numerical_grad(lambda t: f(Variable(t), Variable(b)).data, a))
    assert np.allclose(gw.data, numerical_grad(lambda t: f(Variable(a), Variable(t)).data, b))
    assert np.array_equal(x.grad.data, np.full((2, 3), 7.0)) and w.grad is None


def test_grad_of_an_intermediate_and_of_an_unreached_input():
    x = Variable(np.array(2.0))
    a = x * 3
    y = a ** 2
    other = Variable(np.array(1.0))
    ga, gx, go = cydezero.grad(y, [a, x, other])
    assert ga.data == 12.0 and gx.data == 36.0 and go is None
    assert a.grad is None and x.grad is None


def test_grad_outputs_seed_and_several_outputs():
    x = Variable(np.array([1.0, 2.0]))
    y1, y2 = x * 2, x ** 2
    (gx,) = cydezero.grad([y1, y2], [x], grad_outputs=[np.array([1.0, 0.0]), np.array([0.5, 1.0])])
    assert np.array_equal(gx.data, [2.0 + 0.5 * 2.0, 0.0 + 1.0 * 4.0])


def test_grad_composes_for_higher_orders():
    x = Variable(np.array(0.7))
    y = C.sin(x) * x
    (g1,) = cydezero.grad(y, [x], create_graph=True)
    (g2,) = cydezero.grad(g1, [x], create_graph=True)
    (g3,) = cydezero.grad(g2, [x])
    assert g1.data == pytest.approx(np.cos(0.7) * 0.7 + np.sin(0.7))
    assert g2.data == pytest.approx(-np.sin(0.7) * 0.7 + 2 * np.cos(0.7))
    assert g3.data == pytest.approx(-np.cos(0.7) * 0.7 - 3 * np.sin(0.7))
    assert x.grad is None


def test_gradient_penalty_trains_through_grad():
    w = Variable(np.array([0.5, -1.5]))
    x = Variable(np.array([1.0, 2.0]))
    y = (w * x).sum() ** 2
    (gx,) = cydezero.grad(y, [x], create_graph=True)
    penalty = (gx ** 2).sum()
    penalty.backward()
    # y = s^2 with s = w.x; dy/dx = 2 s w; penalty = 4 s^2 |w|^2
    s = -2.5
    expected = 8 * s * x.data * (w.data ** 2).sum() + 8 * s ** 2 * w.data
    assert np.allclose(w.grad.data, expected)


def test_grad_errors():
    x = Variable(np.array(1.0))
    with pytest.raises(TypeError, match='grad: outputs and inputs must be Variables'):
        cydezero.grad(x * 2, [np.array(1.0)])
    with pytest.raises(ValueError, match='grad: 2 grad_outputs for 1 outputs'):
        cydezero.grad([x * 2], [x], grad_outputs=[None, None])
    with pytest.raises(ValueError, match=r'grad_outputs: expected an array of shape \(\)'):
        cydezero.grad([x * 2], [x], grad_outputs=[np.ones(3)])


def test_grad_names_the_cut_when_an_input_sits_behind_unchain_backward():
    x = Variable(np.array(2.0))
    y = x * 3.0
    z = y * y
    z.unchain_backward()
    with pytest.raises(ValueError, match=r'input 0 \(shape \(\)\) is not reachable.*cut by unchain'):
        cydezero.grad(z, x)
    assert x.grad is None


def test_grad_of_an_unused_input_is_none():
    x = Variable(np.array(2.0))
    w = Variable(np.array(1.0))
    assert cydezero.grad(x * 2.0, [x, w])[1] is None


def test_grad_refuses_integer_inputs():
    x = Variable(np.array(2))
    with pytest.raises(TypeError, match=r'grad: input 0 has dtype int64'):
        cydezero.grad(x * x, x)
