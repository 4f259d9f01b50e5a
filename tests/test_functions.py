"""cydezero.functions: forward values against independent NumPy formulas,
gradients against central differences (float64), second derivatives where
DeZero can differentiate twice, train/test behaviour of dropout and batch
norm, and parity with the dezero 0.0.13 package."""
import warnings

import numpy as np
import pytest
from conftest import differentiate_again, num_grads

import cydezero
import cydezero.functions as F
from cydezero import Variable, using_config
from cydezero import test_mode as inference_mode

RNG = np.random.default_rng(0)


# -----------------------------------------------------------------------------
# helpers
# -----------------------------------------------------------------------------
def bp_grads(f, arrays):
    xs = [Variable(np.array(a, dtype=np.float64)) for a in arrays]
    y = f(*xs)
    y.backward()
    return [x.grad.data if x.grad is not None else np.zeros_like(x.data) for x in xs]


def assert_grads(f, *arrays, rtol=1e-5, atol=1e-7):
    for k, (bp, num) in enumerate(zip(bp_grads(f, arrays), num_grads(f, arrays))):
        assert bp.shape == num.shape, k
        np.testing.assert_allclose(bp, num, rtol=rtol, atol=atol,
                                   err_msg=f'input {k}')


def second_grad(f, x):
    """Backprop and numerical second derivative: d/dx sum(d/dx sum f(x))."""
    xv = Variable(np.array(x, dtype=np.float64))
    y = f(xv)
    y.backward(create_graph=True)
    gx = xv.grad
    xv.cleargrad()
    gx.backward()
    bp = xv.grad.data

    def first(a):
        v = Variable(np.array(a, dtype=np.float64))
        f(v).backward()
        return v.grad.data

    num, = num_grads(first, [x], eps=1e-5)
    return bp, num


def randn(*shape):
    return RNG.standard_normal(shape)


def away_from(values, shape, margin=0.05):
    """Random values none of which is within ``margin`` of a kink in ``values``."""
    a = randn(*shape)
    for v in values:
        close = np.abs(a - v) < margin
        a[close] += np.sign(a[close] - v + 1e-12) * 2 * margin
    return a


def np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# -----------------------------------------------------------------------------
# gradients against numerical differentiation, forward against NumPy
# -----------------------------------------------------------------------------
LABELS = np.array([2, 0, 1, 1])

# (name, cydezero function of arrays, numpy reference or None, input arrays)
CASES = [
    ('sigmoid', F.sigmoid, np_sigmoid, [randn(3, 4)]),
    ('sigmoid_1d', F.sigmoid, np_sigmoid, [randn(5)]),
    ('sigmoid_simple', F.sigmoid_simple, np_sigmoid, [randn(2, 3)]),
    ('relu', F.relu, lambda x: np.where(x > 0, x, 0), [away_from([0], (3, 4))]),
    ('leaky_relu', F.leaky_relu, lambda x: np.where(x > 0, x, 0.2 * x),
     [away_from([0], (4, 3))]),
    ('leaky_relu_slope', lambda x: F.leaky_relu(x, 0.05),
     lambda x: np.where(x > 0, x, 0.05 * x), [away_from([0], (6,))]),
    ('softmax', F.softmax, lambda x: np_softmax(x, 1), [randn(3, 4)]),
    ('softmax_axis0', lambda x: F.softmax(x, axis=0), lambda x: np_softmax(x, 0),
     [randn(3, 4)]),
    ('softmax_3d', lambda x: F.softmax(x, axis=-1), lambda x: np_softmax(x, -1),
     [randn(2, 3, 4)]),
    ('softmax_weighted', lambda x: F.softmax(x) * np.arange(4.0),
     lambda x: np_softmax(x, 1) * np.arange(4.0), [randn(3, 4)]),
    ('softmax_simple', F.softmax_simple, lambda x: np_softmax(x, 1), [randn(3, 4)]),
    ('log_softmax', F.log_softmax, lambda x: np.log(np_softmax(x, 1)), [randn(3, 5)]),
    ('log_softmax_weighted', lambda x: F.log_softmax(x, axis=0) * np.arange(5.0),
     lambda x: np.log(np_softmax(x, 0)) * np.arange(5.0), [randn(3, 5)]),
    ('clip', lambda x: F.clip(x, -0.5, 0.7), lambda x: np.minimum(np.maximum(x, -0.5), 0.7),
     [away_from([-0.5, 0.7], (4, 4))]),
    ('linear', F.linear, lambda x, W, b: x @ W + b, [randn(4, 3), randn(3, 2), randn(2)]),
    ('linear_bias_row', F.linear, lambda x, W, b: x @ W + b,
     [randn(4, 3), randn(3, 2), randn(1, 2)]),
    ('linear_nobias', F.linear, lambda x, W: x @ W, [randn(4, 3), randn(3, 5)]),
    ('linear_simple', F.linear_simple, lambda x, W, b: x @ W + b,
     [randn(4, 3), randn(3, 2), randn(2)]),
    ('mse', F.mean_squared_error, lambda a, b: ((a - b) ** 2).sum() / len(a),
     [randn(5, 2), randn(5, 2)]),
    ('mse_broadcast', F.mean_squared_error, lambda a, b: ((a - b) ** 2).sum() / len(a),
     [randn(5, 2), randn(1, 2)]),
    ('mse_simple', F.mean_squared_error_simple,
     lambda a, b: ((a - b) ** 2).sum() / len(a), [randn(5, 1), randn(5, 1)]),
    ('softmax_ce', lambda x: F.softmax_cross_entropy(x, LABELS),
     lambda x: -np.log(np_softmax(x, 1))[np.arange(4), LABELS].mean(), [randn(4, 3)]),
    ('softmax_ce_simple', lambda x: F.softmax_cross_entropy_simple(x, LABELS),
     lambda x: -np.log(np_softmax(x, 1))[np.arange(4), LABELS].mean(), [randn(4, 3)]),
    ('sigmoid_ce', lambda x: F.sigmoid_cross_entropy(x, np.array([[1], [0], [1]])),
     lambda x: -(np.array([[1], [0], [1]]) * np.log(np_sigmoid(x))
                 + (1 - np.array([[1], [0], [1]])) * np.log(1 - np_sigmoid(x))).sum() / 3,
     [randn(3, 1)]),
    ('sigmoid_ce_soft_t', F.sigmoid_cross_entropy,
     lambda x, t: -(t * np.log(np_sigmoid(x)) + (1 - t) * np.log(1 - np_sigmoid(x))).sum() / 4,
     [randn(4, 2), RNG.uniform(0.1, 0.9, (4, 2))]),
    ('binary_ce', lambda p: F.binary_cross_entropy(p, np.array([1, 0, 1, 0])),
     lambda p: -(np.array([1, 0, 1, 0]) * np.log(p)
                 + (1 - np.array([1, 0, 1, 0])) * np.log(1 - p)).sum() / 4,
     [RNG.uniform(0.1, 0.9, 4)]),
    ('average', F.average, np.mean, [randn(3, 4)]),
    ('average_axis', lambda x: F.average(x, axis=1, keepdims=True),
     lambda x: x.mean(axis=1, keepdims=True), [randn(3, 4)]),
    ('average_axes', lambda x: F.average(x, axis=(0, 2)), lambda x: x.mean(axis=(0, 2)),
     [randn(2, 3, 4)]),
    ('expand_dims', lambda x: F.expand_dims(x, 1) * np.arange(1.0, 4.0).reshape(1, 1, 3),
     lambda x: np.expand_dims(x, 1) * np.arange(1.0, 4.0).reshape(1, 1, 3), [randn(2, 3)]),
    ('flatten', lambda x: F.flatten(x) * np.arange(12.0),
     lambda x: x.reshape(2, -1) * np.arange(12.0), [randn(2, 3, 4)]),
    ('embed_id', lambda W: F.embed_id(np.array([[0, 2], [2, 3]]), W) * 1.5,
     lambda W: W[np.array([[0, 2], [2, 3]])] * 1.5, [randn(4, 3)]),
    ('tanh', F.tanh, np.tanh, [randn(3, 2)]),
    ('exp_log', lambda x: F.log(F.exp(x) + 1), lambda x: np.log(np.exp(x) + 1), [randn(3)]),
    ('sin_cos', lambda x: F.sin(x) * F.cos(x), lambda x: np.sin(x) * np.cos(x), [randn(2, 2)]),
    ('add_broadcast', F.add, np.add, [randn(3, 4), randn(4)]),
    ('sub_broadcast', F.sub, np.subtract, [randn(3, 1), randn(1, 4)]),
    ('mul_broadcast', F.mul, np.multiply, [randn(2, 3, 4), randn(3, 1)]),
    ('div_broadcast', F.div, np.divide, [randn(3, 4), RNG.uniform(1, 2, (4,))]),
    ('pow', lambda x: F.pow(x, 3), lambda x: x ** 3, [randn(3, 2)]),
    ('matmul', F.matmul, np.matmul, [randn(3, 4), randn(4, 2)]),
    ('sum_axis', lambda x: F.sum(x, axis=0) * np.arange(4.0),
     lambda x: x.sum(axis=0) * np.arange(4.0), [randn(3, 4)]),
    ('sum_to', lambda x: F.sum_to(x, (1, 4)) * np.arange(4.0),
     lambda x: x.sum(axis=0, keepdims=True) * np.arange(4.0), [randn(3, 4)]),
    ('broadcast_to', lambda x: F.broadcast_to(x, (3, 4)) * np.arange(12.0).reshape(3, 4),
     lambda x: np.broadcast_to(x, (3, 4)) * np.arange(12.0).reshape(3, 4), [randn(1, 4)]),
    ('transpose', lambda x: F.transpose(x, (2, 0, 1)) * np.arange(24.0).reshape(4, 2, 3),
     lambda x: x.transpose(2, 0, 1) * np.arange(24.0).reshape(4, 2, 3), [randn(2, 3, 4)]),
    ('max', lambda x: F.max(x, axis=1), lambda x: x.max(axis=1), [randn(3, 4)]),
    ('min', lambda x: F.min(x, axis=0, keepdims=True), lambda x: x.min(axis=0, keepdims=True),
     [randn(3, 4)]),
    ('get_item', lambda x: F.get_item(x, (np.array([0, 0, 2]), slice(1, 3))),
     lambda x: x[np.array([0, 0, 2]), 1:3], [randn(3, 4)]),
]


@pytest.mark.parametrize('name,f,ref,arrays', CASES, ids=[c[0] for c in CASES])
def test_gradient_matches_numerical(name, f, ref, arrays):
    assert_grads(f, *arrays)


@pytest.mark.parametrize('name,f,ref,arrays', CASES, ids=[c[0] for c in CASES])
def test_forward_matches_numpy(name, f, ref, arrays):
    y = f(*[Variable(np.array(a)) for a in arrays])
    assert isinstance(y, Variable)
    assert isinstance(y.data, np.ndarray)
    expected = np.asarray(ref(*arrays))
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.data, expected, rtol=1e-10, atol=1e-12)


def test_forward_accepts_plain_arrays():
    x = randn(2, 3)
    for f in (F.sigmoid, F.relu, F.softmax, F.log_softmax, F.leaky_relu, F.flatten):
        assert isinstance(f(x), Variable)


@pytest.mark.parametrize('shape', [(2, 3), (3, 2, 2)])
def test_batch_norm_gradients_train(shape):
    C = shape[1] if len(shape) == 2 else 2
    x = randn(*((4,) + shape[1:])) if len(shape) == 2 else randn(2, 2, 3, 3)
    C = x.shape[1]
    gamma, beta = RNG.uniform(0.5, 1.5, C), randn(C)
    w = randn(*x.shape)  # weights so the loss is not invariant

    def f(x, gamma, beta):
        y = F.batch_norm(x, gamma, beta, np.zeros(C), np.ones(C))
        return y * w

    assert_grads(f, x, gamma, beta, rtol=1e-5, atol=1e-6)


def test_batch_norm_gradients_test_mode():
    x, gamma, beta = randn(5, 3), RNG.uniform(0.5, 1.5, 3), randn(3)
    mean, var = randn(3), RNG.uniform(0.5, 2, 3)
    w = randn(5, 3)

    def f(x, gamma, beta):
        with inference_mode():
            return F.batch_nrom(x, gamma, beta, mean.copy(), var.copy()) * w

    assert_grads(f, x, gamma, beta)
    y = f(Variable(x), Variable(gamma), Variable(beta))
    np.testing.assert_allclose(
        y.data, (gamma * (x - mean) / np.sqrt(var + 2e-5) + beta) * w, rtol=1e-12)


def test_dropout_gradient_with_fixed_mask():
    def f(x):
        np.random.seed(5)
        return F.dropout(x, 0.3) * np.arange(12.0).reshape(3, 4)

    assert_grads(f, randn(3, 4))


# -----------------------------------------------------------------------------
# second derivatives (create_graph)
# -----------------------------------------------------------------------------
SECOND = [
    ('tanh', F.tanh, lambda x: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2)),
    ('sigmoid', F.sigmoid, lambda x: np_sigmoid(x) * (1 - np_sigmoid(x)) * (1 - 2 * np_sigmoid(x))),
    ('exp', F.exp, np.exp),
    ('sin', F.sin, lambda x: -np.sin(x)),
    ('log', lambda x: F.log(x * x + 1), lambda x: (2 - 2 * x ** 2) / (x ** 2 + 1) ** 2),
    ('sigmoid_simple', F.sigmoid_simple,
     lambda x: np_sigmoid(x) * (1 - np_sigmoid(x)) * (1 - 2 * np_sigmoid(x))),
    ('pow', lambda x: x ** 4, lambda x: 12 * x ** 2),
]


@pytest.mark.parametrize('name,f,d2', SECOND, ids=[s[0] for s in SECOND])
def test_second_derivative_elementwise(name, f, d2):
    x = randn(2, 3)
    bp, num = second_grad(f, x)
    np.testing.assert_allclose(bp, d2(x), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(bp, num, rtol=1e-4, atol=1e-6)


SECOND_VECTOR = [
    ('softmax', lambda x: F.softmax(x) * np.arange(4.0)),
    ('log_softmax', lambda x: F.log_softmax(x) * np.arange(4.0)),
    ('softmax_ce', lambda x: F.softmax_cross_entropy(x, np.array([0, 3, 1]))),
    ('sigmoid_ce', lambda x: F.sigmoid_cross_entropy(x, np.array([[1, 0, 0, 1]] * 3))),
    ('mse', lambda x: F.mean_squared_error(x ** 2, np.ones((3, 4)))),
    ('linear', lambda x: F.sigmoid(F.linear(x, np.arange(8.0).reshape(4, 2) / 8, np.ones(2)))),
    ('average', lambda x: F.average(x ** 3, axis=0)),
]


@pytest.mark.parametrize('name,f', SECOND_VECTOR, ids=[s[0] for s in SECOND_VECTOR])
def test_second_derivative_numerical(name, f):
    bp, num = second_grad(f, randn(3, 4))
    np.testing.assert_allclose(bp, num, rtol=1e-4, atol=1e-6)


def test_tanh_higher_order_like_the_book():
    # DeZero's book: the 3rd derivative of tanh at 1.0 via repeated backward.
    x = Variable(np.array(1.0))
    y = F.tanh(x)
    x.cleargrad()
    y.backward(create_graph=True)
    differentiate_again(x, 2)
    t = np.tanh(1.0)
    expected = -2 * (1 - t ** 2) * (1 - 3 * t ** 2)
    np.testing.assert_allclose(x.grad.data, expected, rtol=1e-12)


# -----------------------------------------------------------------------------
# numerical robustness
# -----------------------------------------------------------------------------
def test_softmax_and_log_softmax_are_stable():
    x = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, -1000.0, -1000.0]])
    for f in (F.softmax, F.softmax_simple):
        y = f(x).data
        assert np.all(np.isfinite(y))
        np.testing.assert_allclose(y, np_softmax(x, 1))
    ls = F.log_softmax(x).data
    assert np.all(np.isfinite(ls))
    np.testing.assert_allclose(ls, np.log(np_softmax(x, 1)))
    loss = F.softmax_cross_entropy(x, np.array([0, 1]))
    assert np.isfinite(loss.data)


def test_sigmoid_cross_entropy_is_finite_for_saturated_logits():
    # float32 sigmoid(20) rounds to 1.0; DeZero gives nan here.
    x = Variable(np.array([[20.0], [-30.0], [0.5]], dtype=np.float32))
    t = np.array([[1], [0], [1]])
    y = F.sigmoid_cross_entropy(x, t)
    y.backward()
    assert np.isfinite(y.data) and np.all(np.isfinite(x.grad.data))
    xd = x.data.astype(np.float64)
    expected = np.sum(np.maximum(xd, 0) - xd * t + np.log1p(np.exp(-np.abs(xd)))) / 3
    np.testing.assert_allclose(y.data, expected, rtol=1e-6)
    assert y.dtype == np.float32


def test_float32_stays_float32():
    x = Variable(randn(3, 4).astype(np.float32))
    t = np.array([0, 1, 2])
    for y in (F.sigmoid(x), F.relu(x), F.softmax(x), F.log_softmax(x), F.leaky_relu(x),
              F.softmax_cross_entropy(x, t), F.clip(x, -1, 1), F.dropout(x),
              F.linear(x, np.ones((4, 2), np.float32), np.ones(2, np.float32))):
        assert y.dtype == np.float32
        y.backward()
        assert x.grad.dtype == np.float32
        x.cleargrad()


# -----------------------------------------------------------------------------
# dropout, batch norm, accuracy
# -----------------------------------------------------------------------------
def test_dropout_train_and_test_mode():
    x = Variable(np.ones((200, 50)))
    with inference_mode():
        assert F.dropout(x, 0.4) is x
    with using_config('train', True):
        y = F.dropout(x, 0.4).data
    kept = y != 0
    assert 0.55 < kept.mean() < 0.65
    np.testing.assert_allclose(y[kept], 1 / 0.6)
    np.testing.assert_allclose(F.dropout(x, 0.0).data, 1.0)
    assert np.all(F.dropout(x, 1.0).data == 0)


def test_dropout_gradient_is_mask_over_scale():
    x = Variable(randn(10, 10))
    y = F.dropout(x, 0.5)
    y.backward()
    np.testing.assert_allclose(x.grad.data, (y.data != 0) * 2.0)


def test_batch_norm_train_updates_running_stats_in_place():
    x = randn(6, 3) * 2 + 1
    gamma, beta = np.ones(3), np.zeros(3)
    mean, var = np.zeros(3), np.ones(3)
    mean_id = id(mean)
    y = F.batch_nrom(x, gamma, beta, mean, var, decay=0.9)
    np.testing.assert_allclose(y.data, (x - x.mean(0)) / np.sqrt(x.var(0) + 2e-5), rtol=1e-12)
    np.testing.assert_allclose(mean, 0.1 * x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(var, 0.9 + 0.1 * x.var(0, ddof=1), rtol=1e-12)
    assert id(mean) == mean_id


def test_batch_norm_test_mode_uses_running_stats_and_keeps_them():
    x = randn(6, 3)
    mean, var = randn(3), RNG.uniform(1, 2, 3)
    m0, v0 = mean.copy(), var.copy()
    with inference_mode():
        y = F.batch_norm(x, np.full(3, 2.0), np.full(3, 0.5), mean, var)
    np.testing.assert_allclose(y.data, 2 * (x - m0) / np.sqrt(v0 + 2e-5) + 0.5, rtol=1e-12)
    np.testing.assert_array_equal(mean, m0)
    np.testing.assert_array_equal(var, v0)


def test_batch_norm_4d_normalises_per_channel():
    x = randn(4, 3, 2, 2) * 3 + 2
    y = F.batch_norm(x, np.ones(3), np.zeros(3), np.zeros(3), np.ones(3)).data
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, rtol=1e-4)
    with pytest.raises(ValueError):
        F.batch_norm(randn(2, 3, 4), np.ones(3), np.zeros(3), np.zeros(3), np.ones(3))


def test_accuracy():
    y = np.array([[0.1, 0.8, 0.1], [0.9, 0.05, 0.05], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    t = np.array([1, 0, 0, 2])
    acc = F.accuracy(y, t)
    assert isinstance(acc, Variable)
    assert acc.shape == ()
    assert float(acc.data) == 0.5
    assert float(F.accuracy(Variable(y), Variable(t)).data) == 0.5


def test_softmax_cross_entropy_labels_get_no_gradient():
    x, t = Variable(randn(3, 4)), Variable(np.array([0, 1, 3]))
    F.softmax_cross_entropy(x, t).backward()
    assert t.grad is None
    assert x.grad.shape == (3, 4)


@pytest.mark.parametrize('dtype', [np.float16, np.float32, np.float64])
@pytest.mark.parametrize('scale', [None, 0.37])
@pytest.mark.parametrize('labels', ['flat', 'column'])
def test_softmax_cross_entropy_backward_on_arrays_is_the_graph_ones(dtype, scale, labels):
    """Without create_graph the gradient is computed on arrays (softmax, 1
    subtracted at each label, times gy / N); with it, as DeZero does, with
    differentiable operations. Both give the same bits and dtype (float32
    for a float16 x: its loss is float32), for rows that hold -inf and
    +inf too, with the same warnings."""
    r = np.random.default_rng(3)
    x = (r.standard_normal((6, 4)) * 5).astype(dtype)
    x[1] = -np.inf
    x[2, 1] = np.inf
    t = r.integers(0, 4, 6)
    t = t if labels == 'flat' else t.reshape(6, 1)
    out = []
    for graph in (False, True):
        v = Variable(x.copy())
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            loss = F.softmax_cross_entropy(v, t)
            if scale is not None:
                loss = loss * scale
            loss.backward(create_graph=graph)
        out.append((v.grad.data, [str(w.message) for w in caught]))
    (a, wa), (b, wb) = out
    assert a.dtype == b.dtype == (np.float32 if dtype == np.float16 else dtype)
    assert a.tobytes() == b.tobytes()
    assert wa == wb


def _sce_numpy(x, t):
    """DeZero's forward of softmax_cross_entropy, spelled in NumPy."""
    N = len(x)
    m = x.max(axis=1, keepdims=True)
    lse = m + np.log(np.exp(x - m).sum(axis=1, keepdims=True))
    return np.asarray(-(x - lse)[np.arange(N), t.ravel()].sum() / np.float32(N))


def _sce_grad_numpy(x, t, g):
    """Its gradient on arrays: softmax(x), 1 subtracted at each label, times g."""
    p = np.exp(x - x.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(x)), t.ravel()] -= 1
    p *= g
    return p


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('shape', [(1, 1), (30, 3), (7, 8), (200, 10), (3, 129), (300, 17),
                                   (10000, 3)])
@pytest.mark.parametrize('labels', ['int64', 'int32', 'column'])
def test_softmax_cross_entropy_one_call_is_numpys_to_the_bit(dtype, shape, labels):
    """The loss and its gradient on arrays computed in one call (exp and
    log by NumPy's own loops, the sums in NumPy's order: rows of 8 and
    more sum pairwise, of 129 split, and 200 or 300 labels' terms too)
    are the NumPy spelling's bits, straight and through the Function."""
    from cydezero import _core
    N, C = shape
    r = np.random.default_rng(N * 1000 + C)
    x = (r.standard_normal(shape) * 4).astype(dtype)
    t = r.integers(0, C, N)
    t = t.reshape(N, 1) if labels == 'column' else t.astype(labels)
    g = np.asarray(np.ones((), dtype) * (1 / N))    # what backward passes: gy * (1 / N)
    ref, ref_g = _sce_numpy(x, t), _sce_grad_numpy(x, t, g)
    assert ref.dtype == ref_g.dtype == dtype

    loss, gx = _core._sce_loss(x, t), _core._sce_grad(x, t, g)
    assert loss is not None and gx is not None      # a plain case: taken
    assert loss.shape == () and loss.dtype == dtype and loss.tobytes() == ref.tobytes()
    assert gx.shape == shape and gx.dtype == dtype and gx.tobytes() == ref_g.tobytes()

    v = Variable(x.copy())
    y = F.softmax_cross_entropy(v, t)
    y.backward()
    assert y.data.tobytes() == ref.tobytes()
    assert v.grad.data.tobytes() == ref_g.tobytes()


@pytest.mark.parametrize('shape', [(40, 10), (40, 16), (40, 17), (100, 3)])
def test_softmax_cross_entropy_one_call_follows_the_buffer_size(shape):
    """Under the smallest buffer NumPy allows, NumPy 2.0-2.2 sum in pieces
    of 16: a row of up to 16 logits is one piece (a longer one is left to
    NumPy), the labels' 100 terms are seven. Later NumPy ignore it."""
    from cydezero import _core
    r = np.random.default_rng(shape[1])
    x = (r.standard_normal(shape) * 4).astype(np.float32)
    t = r.integers(0, shape[1], shape[0])
    g = np.asarray(np.float32(0.37))
    old = np.setbufsize(16)
    try:
        want = (_sce_numpy(x, t).tobytes(), _sce_grad_numpy(x, t, g).tobytes())
        loss, gx = _core._sce_loss(x, t), _core._sce_grad(x, t, g)
        declined = _core._summation_order() == 'buffered' and shape[1] > 16
        assert (loss is None, gx is None) == (declined, declined)
        if not declined:
            assert (loss.tobytes(), gx.tobytes()) == want
    finally:
        np.setbufsize(old)


def test_softmax_cross_entropy_one_call_declines_and_numpy_reports(monkeypatch):
    """Where the one-call path does not apply it returns None, and the
    Function's NumPy spelling gives the answer, its error or its warning:
    other types, layouts and labels; logits that are not finite; an exp
    that underflows (NumPy's flag), which np.errstate may make an error."""
    from cydezero import _core
    r = np.random.default_rng(5)
    x = r.standard_normal((5, 4))
    t = np.array([0, 1, 3, 2, 0])
    g = np.array(0.2)
    assert _core._sce_loss(x, t) is not None and _core._sce_grad(x, t, g) is not None

    def with_(i, j, v):
        a = x.copy()
        a[i, j] = v
        return a

    cases = {
        'float16': (x.astype(np.float16), t),
        'inf': (with_(2, 1, np.inf), t),
        'nan': (with_(0, 3, np.nan), t),
        'a -inf row': (np.where(np.arange(5)[:, None] == 3, -np.inf, x), t),
        'Fortran order': (np.asfortranarray(x), t),
        'a view': (np.repeat(x, 2, axis=1)[:, ::2], t),
        'one row, 1-d': (x[0], t[:1]),
        'a label of -1': (x, np.array([0, 1, -1, 2, 0])),
        'a label of C': (x, np.array([0, 1, 4, 2, 0])),
        'uint8 labels': (x, t.astype(np.uint8)),
        'float labels': (x, t.astype(np.float64)),
        'labels of a list': (x, list(t)),
        'four labels': (x, t[:4]),
        'strided labels': (x, np.repeat(t, 2)[::2]),
        'too large': (np.zeros((1, 65537)), np.array([0])),
        'an exp that underflows': (with_(1, 2, -800.0), t),
    }
    for name, (a, b) in cases.items():
        assert _core._sce_loss(a, b) is None, name
        assert _core._sce_grad(a, b, g) is None, name
    for name, gy in {'float32 gy': g.astype(np.float32), '1-d gy': g.reshape(1),
                     'a float gy': 0.2}.items():
        assert _core._sce_grad(x, t, gy) is None, name

    # The Function gives what its NumPy spelling gives (the one-call path
    # switched off), loss, gradient, warnings and errors.
    def run(a, b, mode):
        with warnings.catch_warnings(record=True) as caught, np.errstate(all=mode):
            warnings.simplefilter('always')
            v = Variable(a.copy())
            try:
                loss = F.softmax_cross_entropy(v, b)
                loss.backward()
                got = (loss.data.tobytes(), v.grad.data.tobytes())
            except FloatingPointError as e:
                got = 'raised: {}'.format(e)
        return got, [str(w.message) for w in caught]

    for name in ('inf', 'nan', 'a -inf row', 'an exp that underflows', 'a label of -1',
                 'float16', 'Fortran order'):
        a, b = cases[name]
        for mode in ('warn', 'raise'):
            got = run(a, b, mode)
            with monkeypatch.context() as m:
                m.setattr(_core, '_sce_loss', lambda x, t: None)
                m.setattr(_core, '_sce_grad', lambda x, t, gy: None)
                assert got == run(a, b, mode), (name, mode)
    with pytest.raises(IndexError):
        F.softmax_cross_entropy(Variable(x), np.array([0, 1, 4, 2, 0]))


def test_no_graph_under_no_grad():
    x = Variable(randn(2, 3))
    with cydezero.no_grad():
        for y in (F.sigmoid(x), F.softmax(x), F.relu(x), F.linear(x, randn(3, 2))):
            assert y.creator is None


# -----------------------------------------------------------------------------
# the module's names
# -----------------------------------------------------------------------------
def test_reexports_core_and_aliases():
    from cydezero import _core
    for name in ['Variable', 'Function', 'as_array', 'as_variable', 'Add', 'Sub', 'Mul',
                 'Div', 'Neg', 'Pow', 'Sin', 'Cos', 'Tanh', 'Exp', 'Log', 'Reshape',
                 'Transpose', 'Sum', 'SumTo', 'BroadcastTo', 'MatMul', 'GetItem',
                 'GetItemGrad', 'Max', 'Min', 'add', 'sub', 'rsub', 'mul', 'div', 'rdiv',
                 'neg', 'pow', 'sin', 'cos', 'tanh', 'exp', 'log', 'reshape', 'transpose',
                 'sum', 'broadcast_to', 'matmul', 'get_item', 'max', 'min']:
        assert getattr(F, name) is getattr(_core, name), name
    # sum_to wraps the engine's: an unreachable shape warns (see test_utils)
    assert F.sum_to.__wrapped__ is _core.sum_to
    assert F.mean is F.average
    assert F.batch_norm is F.batch_nrom
    for name in ['Linear', 'Sigmoid', 'ReLU', 'Softmax', 'LogSoftmax', 'LeakyReLU',
                 'MeanSquaredError', 'SoftmaxCrossEntropy', 'BatchNorm', 'Clip']:
        assert issubclass(getattr(F, name), F.Function)


def test_conv_names_reexported_when_functions_conv_exists():
    conv = pytest.importorskip('cydezero.functions_conv')
    for name in ['conv2d', 'deconv2d', 'conv2d_simple', 'pooling', 'pooling_simple',
                 'average_pooling', 'im2col', 'col2im']:
        assert getattr(F, name) is getattr(conv, name)


# -----------------------------------------------------------------------------
# parity with dezero 0.0.13
# -----------------------------------------------------------------------------
@pytest.fixture(scope='module')
def dz():
    if not hasattr(np, 'int'):
        np.int = int  # dezero 0.0.13 uses np.int, gone in NumPy 2
    dezero = pytest.importorskip('dezero')
    import dezero.functions as DF
    return dezero, DF


PARITY = [
    ('sigmoid', lambda M, x: M.sigmoid(x), [randn(3, 4)]),
    ('sigmoid_simple', lambda M, x: M.sigmoid_simple(x), [randn(3, 4)]),
    ('relu', lambda M, x: M.relu(x), [randn(3, 4)]),
    ('leaky_relu', lambda M, x: M.leaky_relu(x, 0.1), [randn(3, 4)]),
    ('softmax', lambda M, x: M.softmax(x) * np.arange(4.0), [randn(3, 4)]),
    ('softmax_axis0', lambda M, x: M.softmax(x, axis=0) * np.arange(4.0), [randn(3, 4)]),
    ('softmax_simple', lambda M, x: M.softmax_simple(x) * np.arange(4.0), [randn(3, 4)]),
    ('log_softmax', lambda M, x: M.log_softmax(x) * np.arange(4.0), [randn(3, 4)]),
    ('clip', lambda M, x: M.clip(x, -0.3, 0.4), [randn(3, 4)]),
    ('linear', lambda M, x, W, b: M.linear(x, W, b), [randn(4, 3), randn(3, 2), randn(2)]),
    ('linear_nobias', lambda M, x, W: M.linear(x, W), [randn(4, 3), randn(3, 2)]),
    ('linear_simple', lambda M, x, W, b: M.linear_simple(x, W, b),
     [randn(4, 3), randn(3, 2), randn(2)]),
    ('mse', lambda M, a, b: M.mean_squared_error(a, b), [randn(5, 2), randn(5, 2)]),
    ('mse_simple', lambda M, a, b: M.mean_squared_error_simple(a, b), [randn(5, 2), randn(5, 2)]),
    ('softmax_ce', lambda M, x: M.softmax_cross_entropy(x, LABELS), [randn(4, 3)]),
    ('softmax_ce_simple', lambda M, x: M.softmax_cross_entropy_simple(x, LABELS), [randn(4, 3)]),
    ('sigmoid_ce', lambda M, x: M.sigmoid_cross_entropy(x, np.array([1, 0, 1])), [randn(3, 1)]),
    ('binary_ce', lambda M, p: M.binary_cross_entropy(M.sigmoid(p), np.array([1, 0, 1, 1])),
     [randn(4)]),
    ('expand_dims', lambda M, x: M.expand_dims(x, 0) * 2.0, [randn(3, 4)]),
    ('flatten', lambda M, x: M.flatten(x) * np.arange(12.0).reshape(2, 6), [randn(2, 3, 2)]),
    ('embed_id', lambda M, W: M.embed_id(np.array([1, 1, 3]), W) * 3.0, [randn(4, 2)]),
    ('max', lambda M, x: M.max(x, axis=1), [randn(3, 4)]),
    ('batch_nrom', lambda M, x, g, b: M.batch_nrom(x, g, b, np.zeros(3), np.ones(3))
     * np.arange(12.0).reshape(4, 3), [randn(4, 3), randn(3), randn(3)]),
    ('batch_nrom_4d', lambda M, x, g, b: M.batch_nrom(x, g, b, np.zeros(2), np.ones(2))
     * np.arange(24.0).reshape(3, 2, 2, 2), [randn(3, 2, 2, 2), randn(2), randn(2)]),
    ('add', lambda M, a, b: M.add(a, b), [randn(3, 4), randn(4)]),
    ('matmul', lambda M, a, b: M.matmul(a, b), [randn(3, 4), randn(4, 2)]),
]


@pytest.mark.parametrize('name,build,arrays', PARITY, ids=[p[0] for p in PARITY])
def test_parity_with_dezero(dz, name, build, arrays):
    dezero, DF = dz
    results = []
    for mod, Var in ((F, Variable), (DF, dezero.Variable)):
        xs = [Var(a.copy()) for a in arrays]
        y = build(mod, *xs)
        y = mod.sum(y) if y.ndim else y
        y.backward()
        results.append((y.data, [x.grad.data for x in xs]))
    (y0, g0), (y1, g1) = results
    np.testing.assert_allclose(y0, y1, rtol=1e-10, atol=1e-12)
    for a, b in zip(g0, g1):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('shape', [(30, 3), (100, 10), (5, 129)])
def test_softmax_cross_entropy_is_dezeros_to_the_bit(dz, dtype, shape):
    """The loss (float32 and float64 logits) and the float64 gradient are
    DeZero's to the bit. (For float32 logits DeZero's gradient is float64:
    its one-hot rows take the labels' integer type; ours stays float32.)"""
    dezero, DF = dz
    N, C = shape
    r = np.random.default_rng(C)
    x = (r.standard_normal(shape) * 3).astype(dtype)
    t = r.integers(0, C, N)
    ours, theirs = Variable(x.copy()), dezero.Variable(x.copy())
    a, b = F.softmax_cross_entropy(ours, t), DF.softmax_cross_entropy(theirs, t)
    assert a.data.dtype == b.data.dtype == dtype
    assert a.data.tobytes() == b.data.tobytes()
    if dtype == np.float64:
        a.backward()
        b.backward()
        assert ours.grad.data.tobytes() == theirs.grad.data.tobytes()


def test_parity_dropout_same_seed(dz):
    dezero, DF = dz
    x = randn(5, 6).astype(np.float32)
    np.random.seed(3)
    a = F.dropout(Variable(x), 0.3).data
    np.random.seed(3)
    b = DF.dropout(dezero.Variable(x), 0.3).data
    np.testing.assert_array_equal(a, b)
    assert a.dtype == b.dtype


def test_parity_batch_norm_running_stats(dz):
    dezero, DF = dz
    x = randn(8, 3)
    stats = [[np.zeros(3), np.ones(3)], [np.zeros(3), np.ones(3)]]
    for _ in range(3):
        F.batch_nrom(x, np.ones(3), np.zeros(3), *stats[0])
        DF.batch_nrom(x, np.ones(3), np.zeros(3), *stats[1])
    np.testing.assert_allclose(stats[0][0], stats[1][0], rtol=1e-12)
    np.testing.assert_allclose(stats[0][1], stats[1][1], rtol=1e-12)
    with inference_mode(), dezero.test_mode():
        a = F.batch_nrom(x, np.ones(3), np.zeros(3), *stats[0]).data
        b = DF.batch_nrom(x, np.ones(3), np.zeros(3), *stats[1]).data
    np.testing.assert_allclose(a, b, rtol=1e-12)


def test_parity_accuracy(dz):
    _, DF = dz
    y, t = randn(10, 4), RNG.integers(0, 4, 10)
    assert float(F.accuracy(y, t).data) == float(DF.accuracy(y, t).data)


def test_parity_second_derivative_tanh(dz):
    dezero, DF = dz
    out = []
    for mod, Var in ((F, Variable), (DF, dezero.Variable)):
        x = Var(np.array([0.3, -1.2]))
        y = mod.tanh(x)
        y.backward(create_graph=True)
        differentiate_again(x, 3)
        out.append(x.grad.data)
    np.testing.assert_allclose(out[0], out[1], rtol=1e-12)
