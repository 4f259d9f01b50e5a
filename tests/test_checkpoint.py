"""cydezero.checkpoint: the same values and gradients as the plain call,
with no intermediate of ``func`` alive between forward and backward (weak
references, and tracemalloc on a deep MLP)."""
import gc
import tracemalloc
import weakref

import numpy as np
import pytest
from conftest import num_grads

import cydezero
import cydezero.functions as F
import cydezero.layers as L
from cydezero import Variable


def make_mlp(depth, width, seed=0):
    np.random.seed(seed)
    return [L.Linear(width, in_size=width, dtype=np.float64) for _ in range(depth)]


def block(layers, refs=None):
    def run(h):
        for layer in layers:
            h = F.tanh(layer(h))
            if refs is not None:
                refs.append(weakref.ref(h))
        return h
    return run


def grads(layers, x):
    return [p.grad.data.copy() for layer in layers for p in layer.params()] + \
        [x.grad.data.copy()]


def clear(layers, x):
    for layer in layers:
        layer.cleargrads()
    x.cleargrad()


def test_values_and_gradients_equal_the_plain_call_bit_for_bit():
    layers = make_mlp(6, 8)
    x = Variable(np.random.default_rng(1).normal(size=(5, 8)))
    f1, f2 = block(layers[:3]), block(layers[3:])
    y = f2(cydezero.checkpoint(f1, x))
    F.sum(y * y).backward()
    got, y_ck = grads(layers, x), y.data.copy()
    clear(layers, x)
    y = f2(f1(x))
    F.sum(y * y).backward()
    np.testing.assert_array_equal(y.data, y_ck)
    for a, b in zip(got, grads(layers, x)):
        np.testing.assert_array_equal(a, b)


def test_gradient_matches_central_differences():
    rng = np.random.default_rng(2)
    W = Variable(rng.normal(size=(3, 3)))

    def func(x, w):
        return F.sin(F.matmul(x, w)) * x

    def checked(x, w):
        return cydezero.checkpoint(func, Variable(x) if not isinstance(x, Variable) else x, w)
    x = Variable(rng.normal(size=(2, 3)))
    w = Variable(W.data.copy())
    y = cydezero.checkpoint(func, x, w)
    F.sum(y).backward()
    nx, nw = num_grads(lambda a, b: func(Variable(a), Variable(b)), [x.data, w.data])
    np.testing.assert_allclose(x.grad.data, nx, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(w.grad.data, nw, rtol=1e-6, atol=1e-8)


def test_no_intermediate_is_alive_between_forward_and_backward():
    layers = make_mlp(5, 8)
    x = Variable(np.ones((2, 8)))
    refs = []
    y = cydezero.checkpoint(block(layers, refs), x)
    gc.collect()
    assert len(refs) == 5 and all(r() is None for r in refs)
    # ... and the plain call does keep them (the check can fail).
    refs_plain = []
    y_plain = block(layers, refs_plain)(x)
    assert all(r() is not None for r in refs_plain)
    F.sum(y).backward()
    assert x.grad is not None and y_plain is not None


def held_after_forward(use_checkpoint, depth=24, width=256, batch=256):
    """Bytes that tracemalloc sees allocated between the forward pass and
    backward (NumPy reports its array buffers to tracemalloc)."""
    layers = make_mlp(depth, width)
    x = Variable(np.random.default_rng(3).normal(size=(batch, width)))
    segments = [block(layers[i:i + 6]) for i in range(0, depth, 6)]
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        h = x
        for seg in segments:
            h = cydezero.checkpoint(seg, h) if use_checkpoint else seg(h)
        loss = F.sum(h)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    loss.backward()
    return held, grads(layers, x)


def test_deep_mlp_holds_a_fraction_of_the_memory_between_forward_and_backward():
    plain, g_plain = held_after_forward(False)
    ck, g_ck = held_after_forward(True)
    array = 256 * 256 * 8
    # Plain: each of 24 layers keeps its linear output and its tanh output
    # (2 x 24 arrays). Checkpointed: 4 segment outputs.
    assert plain > 40 * array, plain
    assert ck < 8 * array, ck
    for a, b in zip(g_plain, g_ck):
        np.testing.assert_array_equal(a, b)


def test_dropout_inside_is_replayed_and_leaves_the_rng_where_the_plain_call_does():
    layers = make_mlp(2, 6)

    def f(h):
        return F.dropout(F.tanh(layers[0](h)), 0.5) * layers[1](h)
    x = Variable(np.random.default_rng(4).normal(size=(3, 6)))
    np.random.seed(7)
    y = cydezero.checkpoint(f, x)
    F.sum(y).backward()
    after_ck = np.random.random()
    got = grads(layers, x)
    clear(layers, x)
    np.random.seed(7)
    y2 = f(x)
    F.sum(y2).backward()
    assert np.random.random() == after_ck
    np.testing.assert_array_equal(y.data, y2.data)
    for a, b in zip(got, grads(layers, x)):
        np.testing.assert_array_equal(a, b)


def test_a_parameter_used_inside_and_outside_gets_both_contributions():
    W = Variable(np.array([[0.5, -1.0], [2.0, 0.3]]))
    x = Variable(np.array([[1.0, 2.0]]))
    inner = cydezero.checkpoint(lambda h: F.tanh(F.matmul(h, W)), x)
    F.sum(F.matmul(inner, W)).backward()
    got = W.grad.data.copy()
    W.cleargrad()
    F.sum(F.matmul(F.tanh(F.matmul(x, W)), W)).backward()
    np.testing.assert_allclose(got, W.grad.data, rtol=1e-15)


def test_grad_through_a_checkpoint_returns_values_and_writes_no_grad():
    W = Variable(np.array([[0.5, -1.0], [2.0, 0.3]]))
    x = Variable(np.array([[1.0, 2.0]]))
    y = F.sum(cydezero.checkpoint(lambda h: F.sin(F.matmul(h, W)), x))
    gx, gW = cydezero.grad(y, [x, W])
    assert x.grad is None and W.grad is None
    want = F.sum(F.sin(F.matmul(x, W)))
    wx, wW = cydezero.grad(want, [x, W])
    np.testing.assert_allclose(gx.data, wx.data, rtol=1e-15)
    np.testing.assert_allclose(gW.data, wW.data, rtol=1e-15)


def test_second_derivative_through_a_checkpoint():
    x = Variable(np.array([0.3, -1.2]))
    y = F.sum(cydezero.checkpoint(lambda h: h ** 3 + F.sin(h), x))
    (g,) = cydezero.grad(y, [x], create_graph=True)
    (gg,) = cydezero.grad(F.sum(g), [x])
    np.testing.assert_allclose(gg.data, 6 * x.data - np.sin(x.data), rtol=1e-12)


def test_tuple_outputs_and_plain_arguments():
    x = Variable(np.array([1.0, 2.0]))
    a, b = cydezero.checkpoint(lambda h, k: (h * k, F.exp(h)), x, 3.0)
    F.sum(a + b).backward()
    np.testing.assert_allclose(x.grad.data, 3.0 + np.exp(x.data))


def test_under_no_grad_it_is_the_plain_call():
    x = Variable(np.array([1.0]))
    with cydezero.no_grad():
        y = cydezero.checkpoint(lambda h: h * 2, x)
    assert y.creator is None and y.data[0] == 2.0


def test_func_must_return_variables():
    with pytest.raises(TypeError, match='checkpoint: func must return Variables'):
        cydezero.checkpoint(lambda h: h.data, Variable(np.ones(2)))


def test_second_derivative_with_respect_to_a_captured_parameter():
    # d/dW of sum(dy/dx) for y = sum(tanh(x W)): a gradient penalty's shape.
    W0 = np.array([[0.5, -1.0], [2.0, 0.3]])
    x0 = np.array([[1.0, -2.0]])

    def run(use_checkpoint):
        W, x = Variable(W0.copy()), Variable(x0.copy())

        def f(h):
            return F.tanh(F.matmul(h, W))
        y = F.sum(cydezero.checkpoint(f, x) if use_checkpoint else f(x))
        (gx,) = cydezero.grad(y, [x], create_graph=True)
        return [g.data for g in cydezero.grad(F.sum(gx * gx), [W, x])]
    for a, b in zip(run(True), run(False)):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-15)
