"""The C fast paths of ``linear``, ``sigmoid`` and ``mean_squared_error``.

On float32 or float64 arrays (all operands of one type) that are
C-contiguous, aligned and in native byte order, these three operations run
their forward and backward arithmetic in loops on the buffers
(``pyx/cydezero/_kernels.pxd``), in that type; anything else (mixed or other
dtypes, views, byte-swapped or Fortran-ordered arrays, broadcasting, 1-D
``x``, ``create_graph=True``) takes the NumPy spelling. Every test here computes
its expected result in the test itself with plain NumPy and checks:

- ``sigmoid`` forward and backward are NumPy's bit for bit (the fast path
  calls ``np.tanh``), special values included;
- ``mean_squared_error`` forward is NumPy's bit for bit for many sizes (the
  kernel replicates NumPy's pairwise summation, cut into pieces as the
  installed NumPy cuts it, whatever ``np.setbufsize`` says), and so are its
  gradients;
- ``linear`` agrees with ``x @ W + b`` to rounding (bit for bit when K == 1
  and on every fallback), and its bias gradient is ``gy.sum(axis=0)`` bit for
  bit, on both sides of the size threshold of the fast path;
- first-order gradients agree with the recorded (``create_graph``) path, and
  50 SGD steps of a small MLP land on the loss NumPy computes by hand;
- ``Variable.data`` and ``.grad`` behave as member descriptors should;
- the pool the result arrays come from never hands out an array anything
  can still reach (a held array, one behind a view or a weak reference) or
  one the program reshaped or made read-only.
"""
import contextlib
import threading
import warnings
import zlib

import numpy as np
import pytest
from conftest import num_grads

import cydezero as dz

F = dz.functions
Variable = dz.Variable

# Where the fast path of Linear stops: M*K and M*K*N at most this.
SMALL_MATMUL = 4096


# -- helpers -------------------------------------------------------------------

def rng_for(*key):
    """A generator seeded from the test's parameters (reproducible: crc32,
    unlike hash(), does not change between runs)."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def np_sigmoid(x):
    return np.tanh(x * 0.5) * 0.5 + 0.5


def np_mse(x0, x1):
    diff = x0 - x1
    return (diff ** 2).sum() / len(diff)


def assert_bits(got, expected):
    """Same dtype, shape and values (NaN where NaN), bit for bit."""
    got = np.asarray(got)
    expected = np.asarray(expected)
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    assert np.array_equal(got, expected, equal_nan=True), (got, expected)


def backward_with(y, gy):
    """y.backward() seeded with the array gy."""
    y.grad = Variable(gy)
    y.backward()


def spread(rng, shape):
    """Values spanning six orders of magnitude, both signs."""
    n = int(np.prod(shape))
    return (rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 3, n)).reshape(shape)


def assert_matmul_bits(got, x, W, b=None):
    """got is x.dot(W) (+ b) to the last bit: what DeZero's linear computes
    (np.dot, then the bias added), whatever BLAS NumPy uses."""
    expected = np.dot(x, W)
    if b is not None:
        expected = expected + b
    assert_bits(got, expected)


# -- Sigmoid -------------------------------------------------------------------

SIGMOID_SHAPES = [(), (1,), (7,), (100, 10), (3, 4, 5), (0, 3), (300, 300)]


@pytest.mark.parametrize('shape', SIGMOID_SHAPES, ids=str)
def test_sigmoid_forward_bit_identical(shape):
    x = np.asarray(rng_for('sig', shape).standard_normal(shape) * 4)
    assert_bits(F.sigmoid(Variable(x)).data, np_sigmoid(x))


def test_sigmoid_forward_special_values():
    x = np.array([np.inf, -np.inf, np.nan, 1e308, -1e308, 1e300, -1e300,
                  710.0, -710.0, 40.0, -40.0, 1e-320, -1e-320, 0.0, -0.0,
                  np.finfo(np.float64).max, -np.finfo(np.float64).max, 0.5])
    y = F.sigmoid(Variable(x)).data
    assert_bits(y, np_sigmoid(x))
    assert y[0] == 1.0 and y[1] == 0.0 and np.isnan(y[2])


@pytest.mark.parametrize('shape', SIGMOID_SHAPES, ids=str)
def test_sigmoid_backward_bit_identical(shape):
    rng = rng_for('sigbw', shape)
    x_np = np.asarray(rng.standard_normal(shape) * 4)     # 0-d: an array
    gy = np.asarray(rng.standard_normal(shape))
    x = Variable(x_np)
    backward_with(F.sigmoid(x), gy)
    y = np_sigmoid(x_np)
    assert_bits(x.grad.data, gy * y * (1 - y))


def test_sigmoid_backward_through_sum():
    x_np = rng_for('sigsum').standard_normal((20, 6))
    x = Variable(x_np)
    F.sigmoid(x).sum().backward()
    y = np_sigmoid(x_np)
    assert_bits(x.grad.data, np.ones_like(x_np) * y * (1 - y))


def test_sigmoid_float32_stays_float32():
    x_np = rng_for('sig32').standard_normal((5, 8)).astype(np.float32)
    gy = np.full((5, 8), 0.75, dtype=np.float32)
    x = Variable(x_np)
    y = F.sigmoid(x)
    assert_bits(y.data, np_sigmoid(x_np))
    assert y.data.dtype == np.float32
    backward_with(y, gy)
    y_np = np_sigmoid(x_np)
    assert_bits(x.grad.data, gy * y_np * (1 - y_np))
    assert x.grad.data.dtype == np.float32


def test_sigmoid_non_contiguous_view():
    base = rng_for('sigview').standard_normal((6, 10))
    view = base[:, ::2]
    assert not view.flags.c_contiguous
    x = Variable(view)
    y = F.sigmoid(x)
    assert_bits(y.data, np_sigmoid(view))
    gy = rng_for('sigview-gy').standard_normal(view.shape)
    backward_with(y, gy)
    y_np = np_sigmoid(view)
    assert_bits(x.grad.data, gy * y_np * (1 - y_np))


# -- MeanSquaredError ------------------------------------------------------------

# Beyond 8192 elements NumPy 2.0-2.2 sum in pieces of np.getbufsize()
# (8192 by default) and NumPy 2.3+ in one piece: the sizes around 8192 and
# 2 * 8192 tell the two orders apart.
MSE_SHAPES = ([(n,) for n in range(1, 300)] + [(1000,), (5000,), (20000,)]
              + [(8191,), (8192,), (8193,), (8200,), (16384,), (16424,), (100003,)]
              + [(100, 1), (100, 10), (37, 3), (200, 100)])


def test_mse_forward_bit_identical_many_sizes():
    # One test over ~300 shapes (a parametrized test each would cost more in
    # pytest's overhead than the check itself); the message names the shape.
    for shape in MSE_SHAPES:
        rng = rng_for('mse', shape)
        x0 = spread(rng, shape)
        x1 = spread(rng, shape)
        got = F.mean_squared_error(Variable(x0), Variable(x1)).data
        expected = np_mse(x0, x1)
        assert np.asarray(got).shape == ()
        assert got.dtype == np.float64
        assert got == expected, (shape, got, expected)


@contextlib.contextmanager
def bufsize(n):
    """NumPy's buffer size set to n inside the block."""
    old = np.setbufsize(n)
    try:
        yield
    finally:
        np.setbufsize(old)


def test_summation_order_is_one_the_kernels_know():
    # 'unknown' would turn the summing fast paths off (results stay
    # NumPy's, through NumPy); a NumPy that sums in a new order fails here.
    order = dz._core._summation_order()
    assert order == ('buffered' if np.lib.NumpyVersion(np.__version__) < '2.3.0'
                     else 'whole')


@pytest.mark.parametrize('size', [16, 64, 8192 * 3])
@pytest.mark.parametrize('dtype', [np.float64, np.float32])
def test_sums_follow_setbufsize(size, dtype):
    # On NumPy 2.0-2.2 the buffer size decides where a sum is cut into
    # pieces; the fast paths read it at each call, as NumPy does.
    rng = rng_for('bufsize', size, dtype)
    x0, x1 = (spread(rng, (20000,)).astype(dtype) for _ in range(2))
    gy = spread(rng, (4000, 1)).astype(dtype)
    x, W, b = (a.astype(dtype) for a in linear_case(4000, 1, 1))
    for _ in range(2):      # the second time from what the first one kept
        with bufsize(size):
            got = F.mean_squared_error(Variable(x0), Variable(x1)).data
            expected = np_mse(x0, x1)
            bv = Variable(b)
            backward_with(F.linear(Variable(x), Variable(W), bv), gy)
            assert_bits(got, expected)
            assert_bits(bv.grad.data, gy.sum(axis=0))
        assert_bits(F.mean_squared_error(Variable(x0), Variable(x1)).data, np_mse(x0, x1))


def test_sums_follow_setbufsize_per_thread():
    # np.setbufsize is per thread (per context): each thread's sum is the
    # one NumPy gives in that thread.
    x0, x1 = (spread(rng_for('bufsize-thread', i), (20000,)) for i in range(2))
    results = {}

    def run(size):
        with bufsize(size):
            for _ in range(20):
                got = F.mean_squared_error(Variable(x0), Variable(x1)).data
                results.setdefault(size, set()).add((got.item(), np_mse(x0, x1).item()))

    threads = [threading.Thread(target=run, args=(size,)) for size in (16, 8192, 4096)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for pairs in results.values():
        assert len(pairs) == 1 and len(set(next(iter(pairs)))) == 1, pairs


def test_mse_forward_special_inputs():
    x = spread(rng_for('mse-eq'), (50,))
    assert_bits(F.mean_squared_error(Variable(x), Variable(x.copy())).data, np_mse(x, x))
    y = x.copy()
    y[7] = np.nan
    assert_bits(F.mean_squared_error(Variable(x), Variable(y)).data, np_mse(x, y))
    y[7] = np.inf
    assert_bits(F.mean_squared_error(Variable(x), Variable(y)).data, np_mse(x, y))


@pytest.mark.parametrize('shape', [(1,), (9,), (130,), (1000,), (37, 3)], ids=str)
@pytest.mark.parametrize('gy', [None, 0.7, -3.25])
def test_mse_backward_bit_identical(shape, gy):
    rng = rng_for('msebw', shape)
    x0_np, x1_np = spread(rng, shape), spread(rng, shape)
    x0, x1 = Variable(x0_np), Variable(x1_np)
    y = F.mean_squared_error(x0, x1)
    if gy is None:
        y.backward()
        gy = 1.0
    else:
        backward_with(y, np.array(gy))
    diff = x0_np - x1_np
    expected = np.float64(gy) * diff * (2 / len(diff))
    assert_bits(x0.grad.data, expected)
    assert_bits(x1.grad.data, -expected)


@pytest.mark.parametrize('const_first', [False, True])
def test_mse_backward_with_a_constant(const_first):
    rng = rng_for('mseconst', const_first)
    a_np, c_np = spread(rng, (40,)), spread(rng, (40,))
    a = Variable(a_np)
    y = F.mean_squared_error(c_np, a) if const_first else F.mean_squared_error(a, c_np)
    y.backward()
    x0, x1 = (c_np, a_np) if const_first else (a_np, c_np)
    g = 1.0 * (x0 - x1) * (2 / 40)
    assert_bits(a.grad.data, -g if const_first else g)
    const_var = y.creator.inputs[0 if const_first else 1]
    assert const_var.grad is None


def test_mse_broadcasting_matches_numpy():
    rng = rng_for('msebc')
    x0_np, x1_np = rng.standard_normal((5, 1)), rng.standard_normal((5, 3))
    x0, x1 = Variable(x0_np), Variable(x1_np)
    y = F.mean_squared_error(x0, x1)
    assert_bits(y.data, np_mse(x0_np, x1_np))
    y.backward()
    diff = x0_np - x1_np
    g = np.float64(1.0) * diff * (2. / len(diff))
    assert_bits(x0.grad.data, g.sum(axis=1, keepdims=True))
    assert_bits(x1.grad.data, -g)


# -- Linear -------------------------------------------------------------------

LINEAR_SHAPES = [
    (1, 1, 1), (5, 1, 3), (100, 1, 10), (7, 3, 1), (300, 10, 1), (1, 64, 1),
    (10, 4, 2), (10, 4, 3), (10, 4, 4), (10, 4, 5), (40, 10, 10),
    (3, 7, 11), (1, 10, 100), (64, 8, 8),            # M*K*N == 4096: fast
    (64, 8, 9), (65, 8, 8),                          # just over: BLAS
    (64, 64, 1), (65, 64, 1),                        # M*K at / over 4096
    (1, 4096, 1), (1, 4097, 1), (4097, 1, 1), (2, 2048, 1),
    (300, 2, 3), (300, 60, 1), (100, 10, 10), (64, 16, 16),
]


def test_linear_shapes_straddle_the_threshold():
    fast = [M * K <= SMALL_MATMUL and M * K * N <= SMALL_MATMUL for M, K, N in LINEAR_SHAPES]
    assert any(M * K * N == SMALL_MATMUL for M, K, N in LINEAR_SHAPES)
    assert any(M * K > SMALL_MATMUL for M, K, N in LINEAR_SHAPES)
    assert 5 < sum(fast) < len(fast) - 5


def linear_case(M, K, N):
    rng = rng_for('lin', M, K, N)
    return (rng.standard_normal((M, K)), rng.standard_normal((K, N)),
            rng.standard_normal(N))


@pytest.mark.parametrize('with_b', [False, True])
@pytest.mark.parametrize('M,K,N', LINEAR_SHAPES)
def test_linear_forward(M, K, N, with_b):
    x, W, b = linear_case(M, K, N)
    if not with_b:
        b = None
    y = F.linear(Variable(x), Variable(W), None if b is None else Variable(b)).data
    assert_matmul_bits(y, x, W, b)


def test_linear_forward_large_magnitudes():
    x, W, b = linear_case(20, 30, 6)
    x, W, b = x * 1e150, W * 1e-100, b * 1e50
    assert_matmul_bits(F.linear(x, W, b).data, x, W, b)


def _fallbacks():
    """Inputs off the fast path, by name; 'b_*' cases only through b."""
    rng = rng_for('fallbacks')
    x, W, b = rng.standard_normal((6, 4)), rng.standard_normal((4, 5)), rng.standard_normal(5)
    big = rng.standard_normal((12, 12))
    return {
        'mixed_dtypes': (x.astype(np.float32), W, b),
        'float16': (x.astype(np.float16), W.astype(np.float16), b.astype(np.float16)),
        'fortran_x': (np.asfortranarray(x), W, b),
        'fortran_W': (x, np.asfortranarray(W), b),
        'view_x': (big[::2, :8:2], W, b),
        'view_W': (x, big[:4, ::2][:, :5], b),
        'byteswapped_x': (x.astype('>f8'), W, b),
        'byteswapped_W': (x, W.astype('>f8'), b),
        'x_1d': (x[0].copy(), W, b),
        'M_0': (np.empty((0, 4)), W, b),
        'b_1xN': (x, W, b.reshape(1, 5)),
        'b_byteswapped': (x, W, b.astype('>f8')),
        'b_view': (x, W, big[1, ::2][:5]),
        'b_int': (x, W, np.arange(5)),
    }


@pytest.mark.parametrize('case', sorted(_fallbacks()))
def test_linear_fallbacks_are_numpy(case):
    x, W, b = _fallbacks()[case]
    y = F.linear(Variable(x), Variable(W), Variable(b)).data
    assert_bits(y, np.dot(x, W) + b)
    if case == 'float16':
        assert y.dtype == np.float16
    y_nob = F.linear(Variable(x), Variable(W)).data
    if case.startswith('b_'):    # x and W alone take the fast path
        assert_matmul_bits(y_nob, x, W)
    else:
        assert_bits(y_nob, np.dot(x, W))


@pytest.mark.parametrize('M,K,N', [
    (1, 1, 1), (1, 3, 1), (5, 2, 1), (300, 4, 1), (300, 3, 2), (129, 5, 3),
    (100, 10, 10), (8, 2, 16), (7, 128, 1), (1, 10, 100), (64, 16, 16),
    (64, 16, 17), (129, 128, 1), (300, 60, 1), (300, 8, 7),
])
def test_linear_backward(M, K, N):
    x_np, W_np, b_np = linear_case(M, K, N)
    gy = rng_for('lingy', M, K, N).standard_normal((M, N))
    x, W, b = Variable(x_np), Variable(W_np), Variable(b_np)
    backward_with(F.linear(x, W, b), gy)
    assert_matmul_bits(W.grad.data, x_np.T, gy)
    assert_matmul_bits(x.grad.data, gy, W_np.T)
    assert_bits(b.grad.data, gy.sum(axis=0))


@pytest.mark.parametrize('M,K,N', [(10, 3, 4), (300, 2, 1)])
def test_linear_backward_without_bias(M, K, N):
    x_np, W_np, _ = linear_case(M, K, N)
    gy = rng_for('lingy-nob', M).standard_normal((M, N))
    x, W = Variable(x_np), Variable(W_np)
    backward_with(F.linear(x, W), gy)
    assert_matmul_bits(W.grad.data, x_np.T, gy)
    assert_matmul_bits(x.grad.data, gy, W_np.T)


@pytest.mark.parametrize('N', [1, 4])
def test_linear_backward_constant_x(N):
    x_np, W_np, b_np = linear_case(30, 3, N)
    gy = rng_for('lingy-const', N).standard_normal((30, N))
    W, b = Variable(W_np), Variable(b_np)
    y = F.linear(x_np, W, b)
    backward_with(y, gy)
    assert y.creator.inputs[0].grad is None
    assert_matmul_bits(W.grad.data, x_np.T, gy)
    assert_bits(b.grad.data, gy.sum(axis=0))
    # and with a Variable that needs no gradient
    x = Variable(x_np, requires_grad=False)
    backward_with(F.linear(x, Variable(W_np), Variable(b_np)), gy)
    assert x.grad is None


@pytest.mark.parametrize('b_shape', [(1,), (1, 4)])
def test_linear_backward_broadcast_bias(b_shape):
    # x and W are small float64 buffers, but the bias was broadcast: its
    # gradient is summed back to the bias's own shape.
    x_np, W_np, _ = linear_case(5, 3, 4)
    b_np = rng_for('bcast-b', b_shape).standard_normal(b_shape)
    gy = rng_for('lingy-bcast', b_shape).standard_normal((5, 4))
    x, W, b = Variable(x_np), Variable(W_np), Variable(b_np)
    backward_with(F.linear(x, W, b), gy)
    expected = np.array([gy.sum()]) if b_shape == (1,) else gy.sum(axis=0, keepdims=True)
    assert_bits(b.grad.data, expected)
    assert_matmul_bits(W.grad.data, x_np.T, gy)


def test_linear_backward_float16_fallback():
    x_np, W_np, b_np = (a.astype(np.float16) for a in linear_case(6, 3, 4))
    gy = rng_for('lingy16').standard_normal((6, 4)).astype(np.float16)
    x, W, b = Variable(x_np), Variable(W_np), Variable(b_np)
    backward_with(F.linear(x, W, b), gy)
    assert_bits(W.grad.data, x_np.T @ gy)
    assert_bits(x.grad.data, gy @ W_np.T)
    assert_bits(b.grad.data, gy.sum(axis=0))


@pytest.mark.parametrize('N', [1, 3])
def test_linear_matches_numerical_gradient(N):
    x_np, W_np, b_np = linear_case(4, 3, N)

    def f(x, W, b):
        return F.sigmoid(F.linear(x, W, b))
    x, W, b = Variable(x_np), Variable(W_np), Variable(b_np)
    f(x, W, b).backward()
    expected = num_grads(f, [x_np, W_np, b_np])
    for v, g in zip((x, W, b), expected):
        np.testing.assert_allclose(v.grad.data, g, rtol=1e-6, atol=1e-8)


# -- consistency: graph path and a training run ------------------------------

def mlp_params(seed, n_in=1, hidden=10, n_out=1):
    rng = rng_for('mlp', seed)
    return [0.5 * rng.standard_normal((n_in, hidden)), np.zeros(hidden),
            0.5 * rng.standard_normal((hidden, n_out)), np.zeros(n_out)]


def mlp_data(n=100):
    rng = rng_for('mlp-data')
    x = rng.random((n, 1))
    t = np.sin(2 * np.pi * x) + rng.random((n, 1))
    return x, t


def mlp_loss(x, t, W1, b1, W2, b2):
    return F.mean_squared_error(t, F.linear(F.sigmoid(F.linear(x, W1, b1)), W2, b2))


@pytest.mark.parametrize('hidden,n_out', [(10, 1), (10, 3), (5, 4)])
def test_first_order_grads_match_graph_path(hidden, n_out):
    x, _ = mlp_data()
    t = rng_for('t', n_out).standard_normal((len(x), n_out))
    results = []
    for create_graph in (False, True):
        params = [Variable(p) for p in mlp_params(hidden, 1, hidden, n_out)]
        loss = mlp_loss(x, t, *params)
        loss.backward(create_graph=create_graph)
        results.append((loss.data, [p.grad.data for p in params]))
    (l_fast, g_fast), (l_graph, g_graph) = results
    assert l_fast == l_graph
    for a, b in zip(g_fast, g_graph):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def numpy_mlp_step(x, t, W1, b1, W2, b2):
    """Loss and gradients of mse(t, sigmoid(x W1 + b1) W2 + b2), by hand."""
    h = np_sigmoid(x @ W1 + b1)
    y = h @ W2 + b2
    diff = t - y
    loss = (diff ** 2).sum() / len(diff)
    gy = -(diff * (2 / len(diff)))          # d loss / d y
    gW2, gb2 = h.T @ gy, gy.sum(axis=0)
    ga = (gy @ W2.T) * h * (1 - h)
    gW1, gb1 = x.T @ ga, ga.sum(axis=0)
    return loss, [gW1, gb1, gW2, gb2]


def test_training_run_matches_numpy():
    x, t = mlp_data()
    lr, steps = 0.2, 50
    params = [Variable(p) for p in mlp_params(0)]
    losses = []
    for _ in range(steps):
        for p in params:
            p.cleargrad()
        loss = mlp_loss(x, t, *params)
        loss.backward()
        for p in params:
            p.data -= lr * p.grad.data
        losses.append(float(loss.data))

    ref = mlp_params(0)
    ref_losses = []
    for _ in range(steps):
        loss, grads = numpy_mlp_step(x, t, *ref)
        for p, g in zip(ref, grads):
            p -= lr * g
        ref_losses.append(loss)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-10)
    assert losses[-1] < losses[0]
    for p, r in zip(params, ref):
        np.testing.assert_allclose(p.data, r, rtol=1e-9, atol=1e-12)


# -- Variable.grad as a member descriptor, .data a read-only property ---------

@pytest.mark.parametrize('name, kind', [('data', 'getset_descriptor'),
                                        ('grad', 'member_descriptor')])
def test_member_descriptors(name, kind):
    # .data is a property: a scalar operation's value is made an array on
    # its first read (see test_lazy_scalar_values).
    d = Variable.__dict__[name]
    assert type(d).__name__ == kind
    assert d.__doc__
    assert getattr(dz.Parameter, name) is d       # inherited
    assert name not in dz.Parameter.__dict__


@pytest.mark.parametrize('cls', [Variable, dz.Parameter])
def test_assign_and_delete_data_grad(cls):
    v = cls(np.arange(3.0))
    v.data = np.ones(2)
    assert_bits(v.data, np.ones(2))
    g = Variable(np.zeros(2))
    v.grad = g
    assert v.grad is g
    del v.grad
    assert v.grad is None
    del v.data
    assert v.data is None
    with pytest.raises(TypeError):
        F.sigmoid(v)
    v.data = np.array([0.0, 1.0])     # usable again
    y = F.sigmoid(v)
    y.backward()
    assert_bits(v.grad.data, np.ones(2) * np_sigmoid(v.data) * (1 - np_sigmoid(v.data)))


@pytest.mark.parametrize('name', ['data', 'grad'])
def test_descriptor_cannot_empty_the_field(name):
    # The descriptors are read-only; writes go through Variable.__setattr__.
    # Their own __set__/__delete__ must not reach the field (an empty field
    # would crash the engine).
    v = Variable(np.ones(3))
    v.grad = Variable(np.ones(3))
    d = Variable.__dict__[name]
    with pytest.raises(AttributeError):
        d.__delete__(v)
    with pytest.raises(AttributeError):
        d.__set__(v, None)
    assert repr(v) == 'variable([1. 1. 1.])'
    v.cleargrad()
    F.sigmoid(v).backward()
    assert v.grad.data.shape == (3,)


def test_delete_name_and_unknown_attribute():
    v = Variable(np.ones(2), name='v')
    del v.name
    assert v.name is None
    with pytest.raises(AttributeError):
        del v.no_such_attribute
    assert_bits(v.data, np.ones(2))


def test_grad_deleted_before_backward():
    x = Variable(np.linspace(-2, 2, 5))
    x.grad = Variable(np.ones(5))
    del x.grad
    y = F.sigmoid(x)
    y.backward()
    s = np_sigmoid(x.data)
    assert_bits(x.grad.data, np.ones(5) * s * (1 - s))


# -- the pool of result arrays --------------------------------------------------
# The fast paths take their result arrays from a small pool and reuse one only
# when the pool holds the last reference to it. Nothing the program can still
# reach may change.

def _churn(x, times=80):
    """Make and drop many results of x's shape, each with other values
    (enough to cycle the pool, and to show if a held array were rewritten)."""
    for i in range(times):
        F.sigmoid(x * float(i + 3))


def test_pool_never_reuses_an_array_still_held():
    x = Variable(rng_for('pool-held').standard_normal((20, 10)))
    kept = [F.sigmoid(x).data for _ in range(40)]
    copies = [k.copy() for k in kept]
    _churn(x)
    assert len({id(k) for k in kept}) == len(kept)
    for k, c in zip(kept, copies):
        assert_bits(k, c)


def test_pool_never_reuses_an_array_behind_a_view_or_a_weakref():
    import weakref
    x = Variable(rng_for('pool-view').standard_normal((20, 10)))
    y = F.sigmoid(x)
    view = y.data[3:5]
    expected = view.copy()
    y2 = F.sigmoid(x * 2.0)
    ref = weakref.ref(y2.data)
    expected2 = y2.data.copy()
    del y, y2
    _churn(x)
    _churn(x * 2.0)
    assert_bits(view, expected)
    if ref() is not None:           # kept alive by the pool: never rewritten
        assert_bits(ref(), expected2)


def test_pool_checks_shape_dtype_and_flags_again():
    x = Variable(rng_for('pool-shape').standard_normal((20, 10)))
    y = F.sigmoid(x)
    a = y.data
    del y
    with warnings.catch_warnings():
        # NumPy 2.5 deprecates setting .shape; while it works, programs do it.
        warnings.simplefilter('ignore', DeprecationWarning)
        a.shape = (10, 20)         # reshaped in place by the program, then dropped
    a.flags.writeable = False
    del a
    for _ in range(40):
        z = F.sigmoid(x)
        assert z.data.shape == (20, 10) and z.data.flags.writeable
        assert_bits(z.data, np_sigmoid(x.data))


# -- float32 (DeZero's layers and datasets make float32) ------------------------
# The same fast paths run in float32 arithmetic, as NumPy's float32 loops do:
# elementwise results and sums are NumPy's bit for bit.

def f32(a):
    return np.asarray(a, dtype=np.float32)


@pytest.mark.parametrize('shape', SIGMOID_SHAPES, ids=str)
def test_sigmoid_float32_bit_identical(shape):
    rng = rng_for('sig32', shape)
    x_np = f32(rng.standard_normal(shape) * 4)
    gy = f32(rng.standard_normal(shape))
    x = Variable(x_np)
    y = F.sigmoid(x)
    assert_bits(y.data, np_sigmoid(x_np))
    backward_with(y, gy)
    y_np = np_sigmoid(x_np)
    assert_bits(x.grad.data, gy * y_np * (1 - y_np))


def test_sigmoid_float32_special_values():
    x = f32([np.inf, -np.inf, np.nan, 3e38, -3e38, 100.0, -100.0, 1e-45, 0.0, -0.0, 0.5])
    assert_bits(F.sigmoid(Variable(x)).data, np_sigmoid(x))


@pytest.mark.parametrize('shape', [(1,), (7,), (100,), (129,), (1000,), (5000,),
                                   (100, 1), (37, 3)], ids=str)
def test_mse_float32_bit_identical(shape):
    rng = rng_for('mse32', shape)
    x0_np, x1_np = f32(spread(rng, shape)), f32(spread(rng, shape))
    x0, x1 = Variable(x0_np), Variable(x1_np)
    y = F.mean_squared_error(x0, x1)
    assert_bits(y.data, np_mse(x0_np, x1_np))
    gy = f32(0.7)
    backward_with(y, gy)
    g = gy * (x0_np - x1_np) * (2. / len(x0_np))
    assert_bits(x0.grad.data, g)
    assert_bits(x1.grad.data, -g)


@pytest.mark.parametrize('M,K,N', [(100, 1, 10), (100, 10, 1), (30, 2, 10), (30, 10, 3),
                                   (64, 8, 8), (1, 100, 10), (10, 100, 1), (65, 8, 8)])
def test_linear_float32(M, K, N):
    x_np, W_np, b_np = (f32(a) for a in linear_case(M, K, N))
    y = F.linear(Variable(x_np), Variable(W_np), Variable(b_np)).data
    assert y.dtype == np.float32
    if K == 1:
        assert_bits(y, x_np @ W_np + b_np)
    else:
        assert_matmul_bits(y, x_np, W_np, b_np)
    gy = f32(rng_for('lingy32', M, K, N).standard_normal((M, N)))
    x, W, b = Variable(x_np), Variable(W_np), Variable(b_np)
    backward_with(F.linear(x, W, b), gy)
    assert_matmul_bits(W.grad.data, x_np.T, gy)
    assert_matmul_bits(x.grad.data, gy, W_np.T)
    assert_bits(b.grad.data, gy.sum(axis=0))


def test_float32_mlp_matches_numpy():
    # a small float32 network, as DeZero's layers build it, for 20 SGD steps
    rng = rng_for('mlp32')
    x_np = f32(rng.standard_normal((30, 2)))
    t_np = f32(rng.standard_normal((30, 3)))
    ws = [f32(rng.standard_normal((2, 10)) * 0.5), f32(np.zeros(10)),
          f32(rng.standard_normal((10, 3)) * 0.3), f32(np.zeros(3))]
    params = [Variable(w.copy()) for w in ws]
    ref = [w.copy() for w in ws]
    for _ in range(20):
        W1, b1, W2, b2 = params
        loss = F.mean_squared_error(F.linear(F.sigmoid(F.linear(x_np, W1, b1)), W2, b2), t_np)
        for p in params:
            p.cleargrad()
        loss.backward()
        for p in params:
            p.data -= 0.1 * p.grad.data
        rW1, rb1, rW2, rb2 = ref
        a = x_np @ rW1 + rb1
        h = np_sigmoid(a)
        out = h @ rW2 + rb2
        diff = out - t_np
        ref_loss = (diff ** 2).sum() / len(diff)
        gout = diff * (2. / len(diff))
        gh = gout @ rW2.T
        ga = gh * h * (1 - h)
        grads = [x_np.T @ ga, ga.sum(axis=0), h.T @ gout, gout.sum(axis=0)]
        ref = [r - 0.1 * g for r, g in zip(ref, grads)]
        np.testing.assert_allclose(loss.data, ref_loss, rtol=1e-5)
    for p, r in zip(params, ref):
        assert p.data.dtype == np.float32
        np.testing.assert_allclose(p.data, r, rtol=1e-4, atol=1e-5)
