"""cydezero.functions_conv: forward values against naive loop implementations
written here, gradients (first and second order) against central differences
in float64, im2col/col2im and conv2d/deconv2d adjointness, argument errors,
and parity with the dezero 0.0.13 package."""
import numpy as np
import pytest
from conftest import num_grads
from hypothesis import given, settings
from hypothesis import strategies as st

import cydezero.functions as F
import cydezero.functions_conv as C
from cydezero import Variable

RNG = np.random.default_rng(7)


def randn(*shape):
    return RNG.standard_normal(shape)


def distinct(*shape):
    """Values all at least 0.01 apart and from 0 (no ties, no kinks at the
    padding's zeros), so max pooling is differentiable around them."""
    n = int(np.prod(shape))
    v = (RNG.permutation(n) - n / 2 + 0.5) * 0.05
    return v.reshape(shape)


# -----------------------------------------------------------------------------
# naive references: explicit loops, nothing shared with the module
# -----------------------------------------------------------------------------
def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def padded(x, p):
    PH, PW = p
    N, Ch, H, W = x.shape
    out = np.zeros((N, Ch, H + 2 * PH, W + 2 * PW), dtype=x.dtype)
    out[:, :, PH:PH + H, PW:PW + W] = x
    return out


def out_size(size, k, s, p):
    return (size + 2 * p - k) // s + 1


def ref_windows(x, k, s, p):
    """dict (oy, ox) -> window array (N, C, KH, KW), by loops."""
    k, s, p = _pair(k), _pair(s), _pair(p)
    xp = padded(x, p)
    OH = out_size(x.shape[2], k[0], s[0], p[0])
    OW = out_size(x.shape[3], k[1], s[1], p[1])
    return OH, OW, {(oy, ox): xp[:, :, oy * s[0]:oy * s[0] + k[0], ox * s[1]:ox * s[1] + k[1]]
                    for oy in range(OH) for ox in range(OW)}


def ref_conv2d(x, W, b, stride, pad):
    N = x.shape[0]
    OC, _, KH, KW = W.shape
    OH, OW, win = ref_windows(x, (KH, KW), stride, pad)
    y = np.zeros((N, OC, OH, OW))
    for n in range(N):
        for o in range(OC):
            for oy in range(OH):
                for ox in range(OW):
                    y[n, o, oy, ox] = np.sum(win[oy, ox][n] * W[o])
                    if b is not None:
                        y[n, o, oy, ox] += b[o]
    return y


def ref_deconv2d(x, W, b, stride, pad, outsize=None):
    """Each input pixel scatters W[c] times its value onto the output."""
    (SH, SW), (PH, PW) = _pair(stride), _pair(pad)
    N, Ch, H, Wd = x.shape
    _, OC, KH, KW = W.shape
    if outsize is None:
        outsize = (SH * (H - 1) + KH - 2 * PH, SW * (Wd - 1) + KW - 2 * PW)
    OH, OW = outsize
    y = np.zeros((N, OC, OH + 2 * PH + KH, OW + 2 * PW + KW))
    for n in range(N):
        for c in range(Ch):
            for iy in range(H):
                for ix in range(Wd):
                    y[n, :, iy * SH:iy * SH + KH, ix * SW:ix * SW + KW] += x[n, c, iy, ix] * W[c]
    y = y[:, :, PH:PH + OH, PW:PW + OW]
    if b is not None:
        y = y + b.reshape(1, -1, 1, 1)
    return y


def ref_pool(x, k, s, p, reduce):
    OH, OW, win = ref_windows(x, k, s, p)
    N, Ch = x.shape[:2]
    y = np.zeros((N, Ch, OH, OW))
    for (oy, ox), w in win.items():
        y[:, :, oy, ox] = reduce(w.reshape(N, Ch, -1), axis=2)
    return y


def ref_im2col(x, k, s, p, to_matrix):
    OH, OW, win = ref_windows(x, k, s, p)
    N, Ch = x.shape[:2]
    KH, KW = _pair(k)
    col = np.zeros((N, Ch, KH, KW, OH, OW))
    for (oy, ox), w in win.items():
        col[:, :, :, :, oy, ox] = w
    if to_matrix:
        rows = [col[n, :, :, :, oy, ox].ravel()
                for n in range(N) for oy in range(OH) for ox in range(OW)]
        return np.array(rows)
    return col


# -----------------------------------------------------------------------------
# differentiation helpers
# -----------------------------------------------------------------------------
def bp_grads(f, arrays):
    xs = [Variable(np.array(a, dtype=np.float64)) for a in arrays]
    f(*xs).backward()
    return [x.grad.data for x in xs]


def assert_grads(f, *arrays, rtol=1e-5, atol=1e-7):
    for k, (bp, num) in enumerate(zip(bp_grads(f, arrays), num_grads(f, arrays))):
        assert bp.shape == num.shape, k
        np.testing.assert_allclose(bp, num, rtol=rtol, atol=atol,
                                   err_msg=f'input {k}')


def weighted(op, out_shape):
    """sum(op(...) * R) for a fixed random R, so every output entry matters
    with a different weight."""
    R = randn(*out_shape)
    return lambda *xs: F.sum(op(*xs) * R)


# -----------------------------------------------------------------------------
# conv2d
# -----------------------------------------------------------------------------
# (x shape, W shape, stride, pad)
CONV_CASES = [
    ((2, 3, 5, 5), (4, 3, 3, 3), 1, 0),
    ((2, 3, 5, 5), (4, 3, 3, 3), 1, 1),
    ((1, 2, 7, 6), (3, 2, 3, 2), 2, 1),
    ((2, 1, 6, 9), (2, 1, 2, 3), (2, 3), (1, 0)),
    ((1, 3, 4, 4), (5, 3, 1, 1), 1, 0),
    ((2, 2, 5, 4), (3, 2, 5, 4), 1, 0),    # kernel as large as the input
    ((1, 2, 8, 7), (2, 2, 3, 3), 3, 2),    # stride leaves rows unread
    ((2, 2, 3, 3), (2, 2, 2, 2), 1, 2),    # pad larger than the kernel
]
CONV_IDS = [f'x{c[0]}-W{c[1]}-s{c[2]}-p{c[3]}' for c in CONV_CASES]


@pytest.mark.parametrize('xs,ws,stride,pad', CONV_CASES, ids=CONV_IDS)
def test_conv2d_forward_matches_loops(xs, ws, stride, pad):
    x, W, b = randn(*xs), randn(*ws), randn(ws[0])
    y = C.conv2d(x, W, b, stride=stride, pad=pad)
    expected = ref_conv2d(x, W, b, stride, pad)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.data, expected, rtol=1e-10, atol=1e-12)
    y = C.conv2d(x, W, stride=stride, pad=pad)
    np.testing.assert_allclose(y.data, ref_conv2d(x, W, None, stride, pad),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('xs,ws,stride,pad', CONV_CASES, ids=CONV_IDS)
def test_conv2d_simple_forward_matches_loops(xs, ws, stride, pad):
    x, W, b = randn(*xs), randn(*ws), randn(ws[0])
    y = C.conv2d_simple(x, W, b, stride=stride, pad=pad)
    np.testing.assert_allclose(y.data, ref_conv2d(x, W, b, stride, pad),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('xs,ws,stride,pad', CONV_CASES, ids=CONV_IDS)
def test_conv2d_gradients_match_numerical(xs, ws, stride, pad):
    x, W, b = randn(*xs), randn(*ws), randn(ws[0])
    out = ref_conv2d(x, W, b, stride, pad).shape
    assert_grads(weighted(lambda x, W, b: C.conv2d(x, W, b, stride, pad), out), x, W, b)


@pytest.mark.parametrize('xs,ws,stride,pad', CONV_CASES[:4], ids=CONV_IDS[:4])
def test_conv2d_simple_gradients_match_numerical(xs, ws, stride, pad):
    x, W, b = randn(*xs), randn(*ws), randn(ws[0])
    out = ref_conv2d(x, W, b, stride, pad).shape
    assert_grads(weighted(lambda x, W, b: C.conv2d_simple(x, W, b, stride, pad), out),
                 x, W, b)


def test_conv2d_without_bias_gradients_match_numerical():
    x, W = randn(2, 2, 5, 4), randn(3, 2, 2, 3)
    out = ref_conv2d(x, W, None, 1, 1).shape
    assert_grads(weighted(lambda x, W: C.conv2d(x, W, pad=1), out), x, W)


def test_conv2d_bias_of_another_shape_gets_a_gradient_of_its_shape():
    x, W, b = randn(2, 2, 4, 4), randn(3, 2, 3, 3), randn(1, 3)
    y = C.conv2d(x, W, b)
    np.testing.assert_allclose(y.data, ref_conv2d(x, W, b.ravel(), 1, 0))
    out = y.shape
    assert_grads(weighted(lambda x, W, b: C.conv2d(x, W, b), out), x, W, b)


def test_conv2d_of_an_array_input_still_gives_weight_and_bias_gradients():
    x = randn(2, 3, 5, 5)
    W, b = Variable(randn(4, 3, 3, 3)), Variable(randn(4))
    y = C.conv2d(x, W, b, stride=2, pad=1)
    F.sum(y * y).backward()
    xv = Variable(x.copy())
    W2, b2 = Variable(W.data.copy()), Variable(b.data.copy())
    y2 = C.conv2d(xv, W2, b2, stride=2, pad=1)
    F.sum(y2 * y2).backward()
    np.testing.assert_allclose(W.grad.data, W2.grad.data)
    np.testing.assert_allclose(b.grad.data, b2.grad.data)
    assert xv.grad.shape == x.shape


def test_conv2d_keeps_float32():
    x = randn(2, 3, 6, 6).astype(np.float32)
    W = Variable(randn(4, 3, 3, 3).astype(np.float32))
    b = Variable(np.zeros(4, np.float32))
    xv = Variable(x)
    y = C.conv2d(xv, W, b, pad=1)
    assert y.dtype == np.float32
    y.backward()
    assert xv.grad.dtype == W.grad.dtype == b.grad.dtype == np.float32


def test_conv2d_gradient_reaches_a_variable_used_as_both_input_and_weight():
    # x doubles as W: (1, 1, 3, 3) image convolved with itself, pad 1.
    a = randn(1, 1, 3, 3)
    assert_grads(weighted(lambda a: C.conv2d(a, a, pad=1), (1, 1, 3, 3)), a)


# -----------------------------------------------------------------------------
# deconv2d
# -----------------------------------------------------------------------------
# (x shape, W shape, stride, pad, outsize)
DECONV_CASES = [
    ((2, 3, 4, 4), (3, 2, 3, 3), 1, 0, None),
    ((1, 2, 3, 5), (2, 4, 3, 3), 2, 1, None),
    ((2, 2, 4, 3), (2, 3, 2, 3), (2, 1), (0, 1), None),
    ((1, 2, 3, 5), (2, 4, 3, 3), 2, 1, (6, 10)),    # one more than the default
    ((1, 1, 3, 3), (1, 2, 4, 4), 3, 1, (8, 9)),
]
DECONV_IDS = [f'x{c[0]}-W{c[1]}-s{c[2]}-p{c[3]}-o{c[4]}' for c in DECONV_CASES]


@pytest.mark.parametrize('xs,ws,stride,pad,outsize', DECONV_CASES, ids=DECONV_IDS)
def test_deconv2d_forward_matches_loops(xs, ws, stride, pad, outsize):
    x, W, b = randn(*xs), randn(*ws), randn(ws[1])
    y = C.deconv2d(x, W, b, stride=stride, pad=pad, outsize=outsize)
    expected = ref_deconv2d(x, W, b, stride, pad, outsize)
    assert y.shape == expected.shape
    if outsize is not None:
        assert y.shape[2:] == outsize
    np.testing.assert_allclose(y.data, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('xs,ws,stride,pad,outsize', DECONV_CASES, ids=DECONV_IDS)
def test_deconv2d_gradients_match_numerical(xs, ws, stride, pad, outsize):
    x, W, b = randn(*xs), randn(*ws), randn(ws[1])
    out = ref_deconv2d(x, W, b, stride, pad, outsize).shape
    assert_grads(weighted(lambda x, W, b: C.deconv2d(x, W, b, stride, pad, outsize),
                          out), x, W, b)


@pytest.mark.parametrize('xs,ws,stride,pad', CONV_CASES, ids=CONV_IDS)
def test_deconv2d_is_the_adjoint_of_conv2d(xs, ws, stride, pad):
    # <conv2d(x, W), g> == <x, deconv2d(g, W)> with W read as (C_in of deconv
    # = OC of conv, ...): the same array serves both.
    x, W = randn(*xs), randn(*ws)
    y = C.conv2d(x, W, stride=stride, pad=pad)
    g = randn(*y.shape)
    gx = C.deconv2d(g, W, stride=stride, pad=pad, outsize=xs[2:])
    assert gx.shape == xs
    np.testing.assert_allclose(np.sum(y.data * g), np.sum(x * gx.data), rtol=1e-10)


def test_deconv2d_accepts_a_bias_of_any_shape_with_the_right_size():
    x, W, b = randn(1, 2, 3, 3), randn(2, 3, 2, 2), randn(3, 1, 1)
    y = C.deconv2d(x, W, b)
    np.testing.assert_allclose(y.data, ref_deconv2d(x, W, b.ravel(), 1, 0))
    assert_grads(weighted(lambda x, W, b: C.deconv2d(x, W, b), y.shape), x, W, b)


# -----------------------------------------------------------------------------
# second order
# -----------------------------------------------------------------------------
def first_grad(f, wrt, arrays):
    """Backprop gradient of f(*arrays) with respect to input number ``wrt``."""
    vs = [Variable(np.array(a, dtype=np.float64)) for a in arrays]
    f(*vs).backward()
    return vs[wrt].grad.data


def check_second_order(f, arrays, first_wrt, second_wrt, rtol=1e-5, atol=1e-6):
    """d/d(input second_wrt) of sum(g ** 2), g = d f / d(input first_wrt):
    backprop through create_graph against central differences of g."""
    vs = [Variable(np.array(a, dtype=np.float64)) for a in arrays]
    f(*vs).backward(create_graph=True)
    g = vs[first_wrt].grad
    for v in vs:
        v.cleargrad()
    F.sum(g ** 2).backward()
    bp = vs[second_wrt].grad.data

    def energy(*xs):
        return first_grad(f, first_wrt, xs) ** 2

    num = num_grads(energy, arrays, eps=1e-5)[second_wrt]
    np.testing.assert_allclose(bp, num, rtol=rtol, atol=atol)


@pytest.mark.parametrize('first_wrt,second_wrt', [(0, 1), (0, 0), (1, 0), (1, 1), (2, 1)],
                         ids=['gx-W', 'gx-x', 'gW-x', 'gW-W', 'gb-W'])
@pytest.mark.parametrize('stride,pad', [(1, 1), ((2, 1), (0, 1))])
def test_conv2d_second_order_matches_numerical(stride, pad, first_wrt, second_wrt):
    x, W, b = randn(2, 2, 5, 4), randn(3, 2, 3, 2), randn(3)
    out = ref_conv2d(x, W, b, stride, pad).shape
    R = randn(*out)

    # A nonlinearity after the conv so the first gradient depends on x and W.
    def f(x, W, b):
        return F.sum(F.tanh(C.conv2d(x, W, b, stride, pad)) * R)

    check_second_order(f, [x, W, b], first_wrt, second_wrt)


@pytest.mark.parametrize('first_wrt,second_wrt', [(0, 1), (1, 0), (1, 1)],
                         ids=['gx-W', 'gW-x', 'gW-W'])
def test_deconv2d_second_order_matches_numerical(first_wrt, second_wrt):
    x, W, b = randn(1, 2, 3, 4), randn(2, 3, 3, 3), randn(3)
    out = ref_deconv2d(x, W, b, 2, 1).shape
    R = randn(*out)

    def f(x, W, b):
        return F.sum(F.tanh(C.deconv2d(x, W, b, 2, 1)) * R)

    check_second_order(f, [x, W, b], first_wrt, second_wrt)


def test_conv2d_third_derivative_along_a_line():
    # h(t) = sum(conv2d(x, W0 + t D) ** 3) is a cubic in t, so h''' is constant:
    # 6 * sum(conv2d(x, D) ** 3).
    x, W0, D = randn(1, 2, 4, 4), randn(2, 2, 3, 3), randn(2, 2, 3, 3)
    t = Variable(np.array(0.3))
    y = F.sum(C.conv2d(x, W0 + t * D, pad=1) ** 3)
    for _ in range(3):
        t.cleargrad()
        y.backward(create_graph=True)
        y = t.grad
    expected = 6 * np.sum(ref_conv2d(x, D, None, 1, 1) ** 3)
    np.testing.assert_allclose(y.data, expected, rtol=1e-8)


def test_pooling_second_order_matches_numerical():
    x = distinct(2, 2, 5, 5)
    R = randn(2, 2, 3, 3)

    def f(x):
        y = C.pooling(x, 3, stride=2, pad=1)
        return F.sum(y * y * R)

    check_second_order(f, [x], 0, 0)


def test_pooling_third_order_through_pooling2d_with_indexes():
    # h(t) = sum(pooling(x + t d) ** 3) is a cubic in t away from ties.
    x, d = distinct(1, 2, 4, 4), randn(1, 2, 4, 4) * 1e-3
    t = Variable(np.array(0.0))
    y = F.sum(C.pooling(x + t * d, 2, stride=2) ** 3)
    for _ in range(3):
        t.cleargrad()
        y.backward(create_graph=True)
        y = t.grad
    idx = ref_pool(x, 2, 2, 0, np.argmax)  # where each window's maximum is
    d_at_max = np.zeros_like(idx)
    for n, c, oy, ox in np.ndindex(*idx.shape):
        i, j = divmod(int(idx[n, c, oy, ox]), 2)
        d_at_max[n, c, oy, ox] = d[n, c, 2 * oy + i, 2 * ox + j]
    np.testing.assert_allclose(y.data, 6 * np.sum(d_at_max ** 3), rtol=1e-8)


def test_average_pooling_second_order_matches_numerical():
    x = randn(1, 2, 5, 4)
    R = randn(1, 2, 3, 2)

    def f(x):
        return F.sum(F.tanh(C.average_pooling(x, 3, stride=(2, 2), pad=1)) * R)

    check_second_order(f, [x], 0, 0)


def test_im2col_second_order_matches_numerical():
    x = randn(1, 2, 4, 5)
    R = randn(1 * 3 * 3, 2 * 2 * 3)

    def f(x):
        return F.sum(F.tanh(C.im2col(x, (2, 3), 1, 0)) * R)

    check_second_order(f, [x], 0, 0)


# -----------------------------------------------------------------------------
# pooling
# -----------------------------------------------------------------------------
POOL_CASES = [
    ((2, 3, 4, 4), 2, 2, 0),
    ((1, 2, 5, 7), 3, 2, 1),
    ((2, 1, 6, 5), (2, 3), (1, 2), (1, 0)),
    ((1, 2, 5, 5), 3, 1, 0),
    ((1, 1, 7, 7), 2, 3, 0),   # stride beyond the kernel: pixels unread
]
POOL_IDS = [f'x{c[0]}-k{c[1]}-s{c[2]}-p{c[3]}' for c in POOL_CASES]


@pytest.mark.parametrize('xs,k,stride,pad', POOL_CASES, ids=POOL_IDS)
@pytest.mark.parametrize('fn', [C.pooling, C.pooling_simple], ids=['pooling', 'simple'])
def test_max_pooling_forward_matches_loops(fn, xs, k, stride, pad):
    x = randn(*xs)
    y = fn(x, k, stride, pad)
    expected = ref_pool(x, k, stride, pad, np.max)
    assert y.shape == expected.shape
    np.testing.assert_array_equal(y.data, expected)


@pytest.mark.parametrize('xs,k,stride,pad', POOL_CASES, ids=POOL_IDS)
@pytest.mark.parametrize('fn', [C.pooling, C.pooling_simple], ids=['pooling', 'simple'])
def test_max_pooling_gradient_matches_numerical(fn, xs, k, stride, pad):
    x = distinct(*xs)
    out = ref_pool(x, k, stride, pad, np.max).shape
    assert_grads(weighted(lambda x: fn(x, k, stride, pad), out), x)


def test_max_pooling_with_more_offsets_than_int8_holds():
    x = distinct(1, 2, 12, 13)
    y = C.pooling(x, 12, stride=1)
    np.testing.assert_array_equal(y.data, ref_pool(x, 12, 1, 0, np.max))
    np.testing.assert_array_equal(y.creator.indexes, ref_pool(x, 12, 1, 0, np.argmax))
    assert_grads(weighted(lambda x: C.pooling(x, 12, stride=1), y.shape), x)


def test_max_pooling_padding_counts_as_zero_like_dezero():
    x = -1 - np.abs(randn(1, 1, 2, 2))
    y = C.pooling(x, 2, stride=2, pad=1)
    np.testing.assert_array_equal(y.data, np.zeros((1, 1, 2, 2)))
    xv = Variable(x)
    C.pooling(xv, 2, stride=2, pad=1).backward()
    np.testing.assert_array_equal(xv.grad.data, np.zeros_like(x))


def test_max_pooling_tie_sends_the_gradient_to_the_first_maximum():
    x = Variable(np.array([[[[1.0, 3.0], [3.0, 3.0]]]]))
    y = C.pooling(x, 2, stride=2)
    y.backward()
    np.testing.assert_array_equal(x.grad.data, [[[[0.0, 1.0], [0.0, 0.0]]]])
    assert y.creator.indexes.tolist() == [[[[1]]]]


@pytest.mark.parametrize('k,stride', [(2, 2), (2, 1)], ids=['disjoint', 'overlapping'])
def test_max_pooling_nan_goes_to_its_first_nan_and_stays_there(k, stride):
    # Like argmax: a window holding NaN has maximum NaN at its first NaN,
    # which alone receives the gradient.
    nan = np.nan
    x = Variable(np.array([[[[1.0, nan, 0.0, 2.0],
                             [nan, 5.0, 3.0, 1.0]]]]))
    y = C.pooling(x, k, stride=stride)
    y.backward()
    if stride == 2:
        np.testing.assert_array_equal(y.data, [[[[nan, 3.0]]]])
        np.testing.assert_array_equal(x.grad.data, [[[[0, 1, 0, 0], [0, 0, 1, 0]]]])
    else:
        np.testing.assert_array_equal(y.data, [[[[nan, nan, 3.0]]]])
        np.testing.assert_array_equal(x.grad.data, [[[[0, 2, 0, 0], [0, 0, 1, 0]]]])


def test_max_pooling_infinite_gradient_stays_at_the_maximum():
    x = Variable(np.array([[[[1.0, 4.0], [2.0, 3.0]]]]))
    y = C.pooling(x, 2, stride=2)
    y.grad = Variable(np.array([[[[np.inf]]]]))
    y.backward()
    np.testing.assert_array_equal(x.grad.data, [[[[0, np.inf], [0, 0]]]])


def test_overlapping_max_pooling_windows_add_their_gradients():
    x = Variable(np.array([[[[0.0, 0.0, 0.0],
                             [0.0, 9.0, 0.0],
                             [0.0, 0.0, 0.0]]]]) + np.arange(9).reshape(1, 1, 3, 3) * 1e-3)
    C.pooling(x, 2, stride=1).backward()
    assert x.grad.data[0, 0, 1, 1] == 4.0
    assert x.grad.data.sum() == 4.0


@pytest.mark.parametrize('xs,k,stride,pad', POOL_CASES, ids=POOL_IDS)
def test_average_pooling_forward_matches_loops(xs, k, stride, pad):
    x = randn(*xs)
    y = C.average_pooling(x, k, stride, pad)
    expected = ref_pool(x, k, stride, pad, np.mean)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.data, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize('xs,k,stride,pad', POOL_CASES, ids=POOL_IDS)
def test_average_pooling_gradient_matches_numerical(xs, k, stride, pad):
    x = randn(*xs)
    out = ref_pool(x, k, stride, pad, np.mean).shape
    assert_grads(weighted(lambda x: C.average_pooling(x, k, stride, pad), out), x)


def test_pooling_functions_are_linear_adjoints():
    # Pooling2DGrad and Pooling2DWithIndexes, for a fixed argmax, satisfy
    # <Pooling2DWithIndexes(x), g> == <x, Pooling2DGrad(g)>.
    x0 = distinct(2, 2, 5, 6)
    pool = C.Pooling(3, stride=2, pad=1)
    y = pool(Variable(x0))
    x, g = randn(*x0.shape), randn(*y.shape)
    gx = C.Pooling2DGrad(pool)(g)
    gather = C.Pooling2DWithIndexes(pool)(x)
    np.testing.assert_allclose(np.sum(gather.data * g), np.sum(x * gx.data), rtol=1e-10)
    np.testing.assert_array_equal(C.Pooling2DWithIndexes(pool)(x0).data, y.data)


def test_pooling_grad_functions_gradients_match_numerical():
    # Both are linear for the argmax fixed by the Pooling they were made from.
    x0 = distinct(1, 2, 5, 4)
    pool = C.Pooling((2, 3), stride=(2, 1), pad=(1, 0))
    y = pool(Variable(x0))
    assert_grads(weighted(lambda x: C.Pooling2DWithIndexes(pool)(x), y.shape),
                 randn(*x0.shape))
    assert_grads(weighted(lambda g: C.Pooling2DGrad(pool)(g), x0.shape), randn(*y.shape))


# -----------------------------------------------------------------------------
# im2col / col2im
# -----------------------------------------------------------------------------
IM2COL_CASES = [
    ((2, 3, 5, 5), 3, 1, 0),
    ((1, 2, 6, 5), (2, 3), (2, 1), (1, 2)),
    ((2, 1, 7, 4), 3, 2, 1),
    ((1, 2, 5, 5), 2, 3, 0),
]
IM2COL_IDS = [f'x{c[0]}-k{c[1]}-s{c[2]}-p{c[3]}' for c in IM2COL_CASES]


@pytest.mark.parametrize('to_matrix', [True, False])
@pytest.mark.parametrize('xs,k,stride,pad', IM2COL_CASES, ids=IM2COL_IDS)
def test_im2col_matches_loops(xs, k, stride, pad, to_matrix):
    x = randn(*xs)
    expected = ref_im2col(x, k, stride, pad, to_matrix)
    col = C.im2col_array(x, k, stride, pad, to_matrix)
    np.testing.assert_array_equal(col, expected)
    np.testing.assert_array_equal(C.im2col(x, k, stride, pad, to_matrix).data, expected)
    col[...] = 0  # a fresh array, not a view of x
    assert np.any(x != 0)


@pytest.mark.parametrize('to_matrix', [True, False])
def test_im2col_of_a_1x1_kernel_is_a_writable_copy(to_matrix):
    x = randn(2, 1, 3, 3)
    col = C.im2col_array(x, 1, 1, 0, to_matrix)
    np.testing.assert_array_equal(col.ravel(), x.ravel())
    col[...] = 0
    assert np.all(x != 0)


@pytest.mark.parametrize('to_matrix', [True, False])
@pytest.mark.parametrize('xs,k,stride,pad', IM2COL_CASES, ids=IM2COL_IDS)
def test_im2col_and_col2im_are_adjoint(xs, k, stride, pad, to_matrix):
    x = randn(*xs)
    col = C.im2col_array(x, k, stride, pad, to_matrix)
    g = randn(*col.shape)
    img = C.col2im_array(g, xs, k, stride, pad, to_matrix)
    assert img.shape == xs
    np.testing.assert_allclose(np.sum(col * g), np.sum(x * img), rtol=1e-10)
    img2 = C.col2im(g, xs, k, stride, pad, to_matrix)
    np.testing.assert_allclose(img2.data, img)


@pytest.mark.parametrize('to_matrix', [True, False])
@pytest.mark.parametrize('xs,k,stride,pad', IM2COL_CASES, ids=IM2COL_IDS)
def test_im2col_and_col2im_gradients_match_numerical(xs, k, stride, pad, to_matrix):
    x = randn(*xs)
    col_shape = ref_im2col(x, k, stride, pad, to_matrix).shape
    assert_grads(weighted(lambda x: C.im2col(x, k, stride, pad, to_matrix), col_shape), x)
    g = randn(*col_shape)
    assert_grads(weighted(lambda g: C.col2im(g, xs, k, stride, pad, to_matrix), xs), g)


# -----------------------------------------------------------------------------
# random geometry (property test)
# -----------------------------------------------------------------------------
@st.composite
def geometries(draw):
    """(x shape, W shape, stride, pad) with at least one output pixel."""
    n, c, oc = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, kh - 2 * ph), 7))
    w = draw(st.integers(max(1, kw - 2 * pw), 7))
    return (n, c, h, w), (oc, c, kh, kw), (sh, sw), (ph, pw)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(geometries(), st.integers(0, 2 ** 32 - 1))
def test_random_geometry_forward_and_adjoints(geometry, seed):
    xs, ws, stride, pad = geometry
    rng = np.random.default_rng(seed)
    x, W, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    y = C.conv2d(x, W, b, stride, pad)
    np.testing.assert_allclose(y.data, ref_conv2d(x, W, b, stride, pad),
                               rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(y.shape)
    gx = C.deconv2d(g, W, stride=stride, pad=pad, outsize=xs[2:])
    np.testing.assert_allclose(np.sum((y.data - b.reshape(1, -1, 1, 1)) * g),
                               np.sum(x * gx.data), rtol=1e-9, atol=1e-9)
    k = ws[2:]
    col = C.im2col_array(x, k, stride, pad)
    np.testing.assert_array_equal(col, ref_im2col(x, k, stride, pad, True))
    gc = rng.standard_normal(col.shape)
    np.testing.assert_allclose(np.sum(col * gc),
                               np.sum(x * C.col2im_array(gc, xs, k, stride, pad)),
                               rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(C.pooling(x, k, stride, pad).data,
                                  ref_pool(x, k, stride, pad, np.max))


# -----------------------------------------------------------------------------
# errors: raised at the call, naming the function and the shapes
# -----------------------------------------------------------------------------
def test_conv2d_channel_mismatch_names_both_shapes():
    x = Variable(randn(2, 3, 5, 5))
    W = Variable(randn(4, 2, 3, 3))
    with pytest.raises(ValueError, match=r'conv2d: x has 3 channels but W expects 2 '
                                         r'\(x.shape=\(2, 3, 5, 5\), W.shape=\(4, 2, 3, 3\)\)'):
        C.conv2d(x, W)
    with pytest.raises(ValueError, match='conv2d_simple: x has 3 channels'):
        C.conv2d_simple(x, W)
    assert x.creator is None and W.creator is None


def test_conv2d_rejects_non_4d_arrays():
    with pytest.raises(ValueError, match=r'conv2d: x must be 4-d, got x.shape=\(3, 5, 5\)'):
        C.conv2d(randn(3, 5, 5), randn(4, 3, 3, 3))
    with pytest.raises(ValueError, match=r'conv2d: W must be 4-d, got W.shape=\(3, 3, 3\)'):
        C.conv2d(randn(1, 3, 5, 5), randn(3, 3, 3))
    with pytest.raises(ValueError, match='pooling: x must be 4-d'):
        C.pooling(randn(5, 5), 2)
    with pytest.raises(ValueError, match='average_pooling: x must be 4-d'):
        C.average_pooling(randn(1, 5, 5), 2)


def test_conv2d_rejects_a_kernel_larger_than_the_padded_input():
    with pytest.raises(ValueError, match='conv2d: a 5x5 kernel does not fit'):
        C.conv2d(randn(1, 1, 3, 3), randn(1, 1, 5, 5), pad=0)
    with pytest.raises(ValueError, match='pooling: a 4x4 kernel does not fit'):
        C.pooling(randn(1, 1, 3, 3), 4)


def test_conv2d_rejects_a_bias_of_the_wrong_size():
    with pytest.raises(ValueError, match=r'conv2d: b has 3 elements but W.shape=\(4, 2, 3, 3\)'):
        C.conv2d(randn(1, 2, 5, 5), randn(4, 2, 3, 3), randn(3))


def test_conv2d_rejects_zero_stride_and_negative_pad():
    with pytest.raises(ValueError, match='conv2d: kernel_size and stride must be positive'):
        C.conv2d(randn(1, 1, 4, 4), randn(1, 1, 2, 2), stride=0)
    with pytest.raises(ValueError, match='pooling: .* pad non-negative'):
        C.pooling(randn(1, 1, 4, 4), 2, pad=-1)


def test_deconv2d_channel_mismatch_and_impossible_outsize():
    with pytest.raises(ValueError, match=r'deconv2d: x has 3 channels but W expects 2'):
        C.deconv2d(randn(1, 3, 4, 4), randn(2, 5, 3, 3))
    with pytest.raises(ValueError, match='deconv2d: an output of 20x9'):
        C.deconv2d(randn(1, 2, 4, 4), randn(2, 5, 3, 3), stride=2, outsize=(20, 9))


def test_col2im_rejects_a_col_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r'col2im_array: col.shape=\(4, 5\)'):
        C.col2im(randn(4, 5), (1, 1, 3, 3), 2)


# -----------------------------------------------------------------------------
# structure of the graph
# -----------------------------------------------------------------------------
def test_backward_functions_are_the_documented_ones():
    x, W, b = Variable(randn(1, 2, 4, 4)), Variable(randn(3, 2, 3, 3)), Variable(randn(3))
    y = C.conv2d(x, W, b, pad=1)
    assert type(y.creator) is C.Conv2d
    y.backward(create_graph=True)
    assert type(x.grad.creator) is C.Deconv2d
    assert type(W.grad.creator) is C.Conv2DGradW
    p = C.pooling(x, 2)
    x.cleargrad()
    p.backward(create_graph=True)
    assert type(x.grad.creator) is C.Pooling2DGrad
    c = C.im2col(x, 2)
    x.cleargrad()
    c.backward(create_graph=True)
    assert type(x.grad.creator) is C.Col2im


def test_functions_reexports_the_conv_helpers():
    for name in ['conv2d', 'deconv2d', 'conv2d_simple', 'pooling', 'pooling_simple',
                 'average_pooling', 'im2col', 'col2im']:
        assert getattr(F, name) is getattr(C, name)


# -----------------------------------------------------------------------------
# parity with dezero 0.0.13
# -----------------------------------------------------------------------------
def _run(mod, Var, build, arrays):
    vs = [Var(np.array(a)) for a in arrays]
    y = build(mod, *vs)
    y.backward()
    return y.data, [v.grad.data for v in vs]


PARITY = [
    ('conv2d', lambda m, x, W, b: m.conv2d(x, W, b, stride=2, pad=1),
     [randn(2, 3, 7, 6), randn(4, 3, 3, 2), randn(4)]),
    ('conv2d_nobias', lambda m, x, W: m.conv2d(x, W, stride=(1, 2), pad=(2, 0)),
     [randn(1, 2, 5, 7), randn(3, 2, 2, 3)]),
    ('conv2d_float32', lambda m, x, W, b: m.conv2d(x, W, b, pad=1),
     [randn(2, 2, 5, 5).astype(np.float32), randn(3, 2, 3, 3).astype(np.float32),
      randn(3).astype(np.float32)]),
    ('conv2d_simple', lambda m, x, W, b: m.conv2d_simple(x, W, b, stride=1, pad=1),
     [randn(2, 2, 4, 5), randn(3, 2, 3, 3), randn(3)]),
    ('deconv2d', lambda m, x, W, b: m.deconv2d(x, W, b, stride=2, pad=1),
     [randn(2, 3, 4, 5), randn(3, 2, 3, 3), randn(2)]),
    ('deconv2d_outsize', lambda m, x, W, b: m.deconv2d(x, W, b, 2, 1, outsize=(8, 10)),
     [randn(2, 3, 4, 5), randn(3, 2, 3, 3), randn(2)]),
    ('pooling', lambda m, x: m.pooling(x, 3, stride=2, pad=1), [randn(2, 3, 7, 6)]),
    ('pooling_2x2', lambda m, x: m.pooling(x, 2, stride=2), [randn(2, 3, 6, 6)]),
    ('pooling_simple', lambda m, x: m.pooling_simple(x, 2, stride=2), [randn(2, 3, 6, 6)]),
    ('average_pooling', lambda m, x: m.average_pooling(x, 3, stride=2, pad=1),
     [randn(2, 3, 7, 6)]),
    ('im2col', lambda m, x: m.im2col(x, 3, 2, 1) * np.arange(27.0), [randn(2, 3, 7, 6)]),
    ('im2col_tensor', lambda m, x: m.im2col(x, 2, 1, 0, to_matrix=False) ** 2,
     [randn(1, 2, 4, 3)]),
    ('col2im', lambda m, x: m.col2im(x, (2, 3, 5, 4), 3, 2, 1) ** 2,
     [randn(2 * 3 * 2, 27)]),
]


@pytest.mark.parametrize('name,build,arrays', PARITY, ids=[p[0] for p in PARITY])
def test_parity_with_dezero(dezero, name, build, arrays):
    import dezero.functions_conv as DC
    y, grads = _run(C, Variable, build, arrays)
    y_dz, grads_dz = _run(DC, dezero.Variable, build, arrays)
    assert y.shape == y_dz.shape and y.dtype == y_dz.dtype
    tol = {'rtol': 1e-5, 'atol': 1e-5} if y.dtype == np.float32 else {}
    np.testing.assert_allclose(y, y_dz, **tol)
    for g, g_dz in zip(grads, grads_dz):
        assert g.shape == g_dz.shape and g.dtype == g_dz.dtype
        np.testing.assert_allclose(g, g_dz, **tol)


def test_parity_with_dezero_second_order_through_conv2d_input_gradient(dezero):
    import dezero.functions_conv as DC
    arrays = [randn(1, 2, 4, 4), randn(3, 2, 3, 3)]
    results = []
    for mod, Var in ((C, Variable), (DC, dezero.Variable)):
        x, W = (Var(a.copy()) for a in arrays)
        y = mod.conv2d(x, W, pad=1)
        (y * y).backward(create_graph=True)
        gx = x.grad
        x.cleargrad()
        W.cleargrad()
        (gx * gx).backward()
        results.append((gx.data, W.grad.data))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b)


@pytest.mark.parametrize('stride', [2, 1])
def test_parity_with_dezero_pooling_with_nan(dezero, stride):
    import dezero.functions_conv as DC
    x = randn(2, 2, 6, 6)
    x[0, 0, 1, 1] = x[0, 1, 4, 5] = x[1, 1, 0, 0] = x[1, 1, 0, 1] = np.nan
    y, (g,) = _run(C, Variable, lambda m, x: m.pooling(x, 2, stride), [x])
    y_dz, (g_dz,) = _run(DC, dezero.Variable, lambda m, x: m.pooling(x, 2, stride), [x])
    np.testing.assert_array_equal(y, y_dz)
    np.testing.assert_array_equal(g, g_dz)


def test_signatures_match_dezero(dezero):
    import inspect

    import dezero.functions_conv as DC
    for name, obj in vars(DC).items():
        if name.startswith('_') or getattr(obj, '__module__', None) != DC.__name__:
            continue  # DeZero's private CuPy kernels are not part of the API
        ours = getattr(C, name)
        if inspect.isclass(obj):
            for meth in ('__init__', 'forward', 'backward'):
                if meth in vars(obj):
                    assert (inspect.signature(getattr(ours, meth))
                            == inspect.signature(vars(obj)[meth])), (name, meth)
        else:
            assert inspect.signature(ours) == inspect.signature(obj), name


def test_parity_with_dezero_pooling_indexes(dezero):
    import dezero.functions_conv as DC
    x = randn(2, 3, 7, 6)
    ours, theirs = C.Pooling(3, 2, 1), DC.Pooling(3, 2, 1)
    ours(Variable(x))
    theirs(dezero.Variable(x))
    np.testing.assert_array_equal(ours.indexes, theirs.indexes)
