"""conv2d, deconv2d and the pooling functions give DeZero's bits, forward
and backward: the same programs run on DeZero 0.0.13 and on cydezero, and
every array is compared with exact equality (DeZero's own tests compare
conv2d outputs so, and Chainer agrees with it bit for bit)."""
import numpy as np
import pytest

import cydezero
import cydezero.functions as F

CONFIGS = [
    # x shape, W shape, stride, pad
    ((2, 3, 7, 7), (4, 3, 3, 3), 1, 1),
    ((2, 3, 9, 8), (5, 3, 3, 2), 2, 1),
    ((1, 4, 6, 6), (2, 4, 1, 1), 1, 0),
    ((3, 2, 11, 11), (6, 2, 5, 5), 3, 2),
    ((4, 16, 14, 14), (32, 16, 3, 3), 1, 1),
    ((2, 1, 5, 5), (3, 1, 2, 2), 2, 0),
]
DTYPES = [np.float64, np.float32]


def _run(lib, fn, arrays, gy_seed=7):
    """Forward fn on Variables of ``arrays``, backward with a seeded
    upstream gradient; returns the output and every input gradient."""
    vs = [lib.Variable(a.copy()) for a in arrays]
    y = fn(lib, *vs)
    gy = np.random.default_rng(gy_seed).standard_normal(y.shape).astype(y.dtype)
    (y * gy).sum().backward()
    return [np.ascontiguousarray(y.data)] + [np.ascontiguousarray(v.grad.data) for v in vs]


def _same_bits(dezero, fn, arrays):
    theirs = _run(dezero, fn, arrays)
    ours = _run(cydezero, fn, arrays)
    for i, (a, b) in enumerate(zip(theirs, ours)):
        assert a.dtype == b.dtype and a.shape == b.shape, i
        np.testing.assert_array_equal(b, a, err_msg=f'array {i} (0 = output, then grads)')


def _data(shapes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('xs, ws, stride, pad', CONFIGS)
def test_conv2d_bits(dezero, xs, ws, stride, pad, dtype):
    x, W, b = _data([xs, ws, (ws[0],)], dtype)
    _same_bits(dezero, lambda lib, x, W, b: lib.functions.conv2d(x, W, b, stride, pad),
               [x, W, b])


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('xs, ws, stride, pad', CONFIGS)
def test_deconv2d_bits(dezero, xs, ws, stride, pad, dtype):
    # deconv2d's W is (C, OC, KH, KW): the conv weight's roles swapped
    ws = (xs[1], ws[0]) + ws[2:]
    x, W, b = _data([xs, ws, (ws[1],)], dtype)
    _same_bits(dezero, lambda lib, x, W, b: lib.functions.deconv2d(x, W, b, stride, pad),
               [x, W, b])


POOLS = [((2, 3, 8, 8), 2, 2, 0), ((2, 3, 7, 7), 3, 2, 1), ((1, 2, 6, 5), 3, 1, 1),
         ((2, 4, 9, 9), (3, 2), (2, 1), (1, 0))]


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('xs, k, stride, pad', POOLS)
@pytest.mark.parametrize('name', ['pooling', 'average_pooling'])
def test_pooling_bits(dezero, name, xs, k, stride, pad, dtype):
    if name == 'average_pooling' and (dtype == np.float32 or isinstance(k, tuple)):
        # DeZero's average_pooling backward turns float32 into float64 on
        # NumPy 2 (it divides by a 0-d int64 array) and fails for a kernel
        # that is not square (it swaps KH and KW): forward only.
        (x,) = _data([xs], dtype)
        y1 = dezero.functions.average_pooling(x, k, stride, pad).data
        y2 = F.average_pooling(x, k, stride, pad).data
        assert y1.dtype == y2.dtype
        np.testing.assert_array_equal(y2, y1)
        return
    (x,) = _data([xs], dtype)
    _same_bits(dezero, lambda lib, x: getattr(lib.functions, name)(x, k, stride, pad), [x])


@pytest.mark.parametrize('dtype', DTYPES)
def test_a_small_cnn_trains_to_the_same_bits(dezero, dtype):
    """conv-relu-pool-conv-avgpool-linear, five SGD steps: every weight
    after training is DeZero's, bit for bit. In float32 the head is a
    weighted sum: DeZero's softmax_cross_entropy and average_pooling
    backward turn float32 gradients into float64 on NumPy 2 (they multiply
    by 0-d float64 arrays), which cydezero does not (README, differences)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 3, 12, 12)).astype(dtype)
    t = rng.integers(0, 5, 8)
    r = (0.01 * rng.standard_normal((8, 6 * 6 * 6))).astype(dtype)
    shapes = [(8, 3, 3, 3), (8,), (6, 8, 3, 3), (6,), (6 * 3 * 3, 5), (5,)]
    init = [(0.3 * rng.standard_normal(s)).astype(dtype) for s in shapes]
    finals = []
    for lib in (dezero, cydezero):
        Fl = lib.functions
        ps = [lib.Variable(p.copy()) for p in init]
        for _ in range(5):
            h = Fl.relu(Fl.conv2d(x, ps[0], ps[1], stride=1, pad=1))
            h = Fl.pooling(h, 2, 2)
            h = Fl.conv2d(h, ps[2], ps[3], stride=1, pad=1)
            if dtype == np.float64:
                h = Fl.average_pooling(h, 2, 2)
                h = Fl.reshape(h, (h.shape[0], -1))
                loss = Fl.softmax_cross_entropy(Fl.matmul(h, ps[4]) + ps[5], t)
            else:
                h = Fl.reshape(Fl.deconv2d(h, ps[2], None, stride=1, pad=1), (8, -1))
                loss = Fl.sum(h[:, :r.shape[1]] * r)
            for p in ps:
                p.cleargrad()
            loss.backward()
            for p in ps:
                if p.grad is not None:
                    p.data = p.data - 0.1 * p.grad.data
        finals.append([p.data for p in ps] + [loss.data])
    for a, b in zip(*finals):
        assert a.dtype == b.dtype and np.isfinite(a).all()
        np.testing.assert_array_equal(b, a)
    assert not np.array_equal(finals[1][0], init[0])     # it did train


def test_conv2d_output_layout_is_dezeros(dezero):
    # Later reductions and matrix products see the same memory layout, so
    # they too round as DeZero's do.
    x, W = _data([(2, 3, 5, 5), (4, 3, 3, 3)], np.float64)
    a = dezero.functions.conv2d(x, W).data
    b = F.conv2d(x, W).data
    assert (a.flags.c_contiguous, a.flags.f_contiguous) == \
        (b.flags.c_contiguous, b.flags.f_contiguous)
