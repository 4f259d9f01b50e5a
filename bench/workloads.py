"""Benchmark workloads for bench/run.py.

Every workload is one program per *kind* of peer:

* ``dz_*(dz, n)``  -- the DeZero-spelled program. The very same function runs
  for ``dezero`` and for ``cydezero``; ``dz`` is a namespace built by
  :func:`load_dz` (``Variable``, the functions flat, plus ``L``/``O``/... when
  the library has them).
* ``torch_*(torch, n)`` -- the same computation in PyTorch eager.
* ``np_*(n)`` -- a hand-written NumPy forward+backward: no graph, no tape, the
  "floor" an autograd library can approach. It is the same program shape as
  the DeZero one (same arrays, same dtypes, in-place updates where the DeZero
  program updates in place) and it never calls cydezero.

Workloads with input data (a batch, parameters, a dataset) take it as a third
argument, ``data``, made by ``<name>_data(n)`` (``dz_<name>_data(dz, n)`` for
the DeZero programs where the library makes it): run.py makes it fresh before
every run, outside the timed region, so no peer is timed generating data.
Each program runs forward+backward (and the update, for the training
workloads), drops its graph and returns a float (a gradient or a loss) that
run.py compares across peers.
"""
import importlib
import math
import types

import numpy as np


class Unavailable(Exception):
    """The peer cannot run this workload (message says why)."""


# ----------------------------------------------------------------------------
# Loading the DeZero-spelled libraries
# ----------------------------------------------------------------------------

_FUNC_NAMES = (
    "sin", "cos", "tanh", "exp", "log", "matmul", "sum", "reshape",
    "transpose", "sigmoid", "relu", "linear", "mean_squared_error",
    "softmax_cross_entropy", "conv2d", "pooling",
)


def _try_import(name):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def load_dz(libname):
    """Namespace for the DeZero-spelled programs, or raise ImportError.

    ``libname`` is ``"dezero"`` or ``"cydezero"``.  Functions are taken from
    ``<lib>.functions`` when it exists, else (cydezero today) from
    ``cydezero._core``.  ``missing`` lists ``module.name`` strings that the
    library does not (yet) provide.
    """
    if libname == "dezero" and not hasattr(np, "int"):
        np.int = int  # DeZero 0.0.13 uses np.int, removed in NumPy 1.24+
    lib = importlib.import_module(libname)  # ImportError -> peer missing
    ns = types.SimpleNamespace(name=libname, lib=lib, missing=set())
    ns.Variable = lib.Variable
    ns.version = getattr(lib, "__version__", "?")
    funcs = _try_import(libname + ".functions")
    core = _try_import(libname + "._core")
    for fname in _FUNC_NAMES:
        f = getattr(funcs, fname, None) if funcs is not None else None
        if f is None and core is not None:
            f = getattr(core, fname, None)
        if f is None:
            ns.missing.add(libname + ".functions." + fname)
        setattr(ns, fname, f)
    for attr, mod, names in (
        ("core_simple", "core_simple", ("Variable", "setup_variable")),
        ("L", "layers", ("Linear",)),
        ("O", "optimizers", ("SGD", "Adam")),
        ("models", "models", ("MLP",)),
        ("datasets", "datasets", ("Spiral",)),
        ("dataloaders", "dataloaders", ("DataLoader",)),
    ):
        m = _try_import(libname + "." + mod)
        setattr(ns, attr, m)
        for n in names:
            if m is None or not hasattr(m, n):
                ns.missing.add(libname + "." + mod + "." + n)
    return ns


def require(dz, *names):
    """Raise Unavailable unless every ``module.name`` in names exists."""
    miss = sorted(dz.name + "." + n for n in names
                  if dz.name + "." + n in dz.missing)
    if miss:
        raise Unavailable("not yet available (missing " + ", ".join(miss) + ")")


# ----------------------------------------------------------------------------
# chain: n links of y = (sin(y) + y) * 0.5 on a 0-d float64
# ----------------------------------------------------------------------------

def dz_chain(dz, n):
    x = dz.Variable(np.array(1.0))
    y = x
    for _ in range(n):
        y = (dz.sin(y) + y) * 0.5
    y.backward()
    return float(x.grad.data)


def torch_chain(torch, n):
    x = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    y = x
    for _ in range(n):
        y = (torch.sin(y) + y) * 0.5
    y.backward()
    return float(x.grad)


def np_chain(n):
    y = np.array(1.0)
    ys = []
    for _ in range(n):
        ys.append(y)
        y = (np.sin(y) + y) * 0.5
    g = np.array(1.0)
    for yi in reversed(ys):
        g = g * 0.5 * (np.cos(yi) + 1.0)
    return float(g)


# ----------------------------------------------------------------------------
# wide: one x feeding n branches sin(x * c_i), summed by a chain of adds
# ----------------------------------------------------------------------------

def wide_data(n):
    """The branch constants c_i."""
    return [1.0 + i / n for i in range(n)]


def dz_wide(dz, n, cs):
    x = dz.Variable(np.array(0.5))
    s = dz.sin(x * cs[0])
    for c in cs[1:]:
        s = s + dz.sin(x * c)
    s.backward()
    return float(x.grad.data)


def torch_wide(torch, n, cs):
    x = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    s = torch.sin(x * cs[0])
    for c in cs[1:]:
        s = s + torch.sin(x * c)
    s.backward()
    return float(x.grad)


def np_wide(n, cs):
    x = np.array(0.5)
    hs = []
    s = None
    for c in cs:
        h = x * c
        hs.append(h)
        t = np.sin(h)
        s = t if s is None else s + t
    gx = np.array(0.0)
    for c, h in zip(cs, hs):
        gx = gx + np.cos(h) * c
    return float(gx)


# ----------------------------------------------------------------------------
# deep: n multiplications y = y * 1.0000001
# ----------------------------------------------------------------------------

DEEP_C = 1.0000001


def dz_deep(dz, n):
    x, y = dz_deep_forward(dz, n)
    y.backward()
    return float(x.grad.data)


def dz_deep_forward(dz, n):
    """Forward only; returns (x, y) so the caller holds the graph alive."""
    x = dz.Variable(np.array(1.0))
    y = x
    for _ in range(n):
        y = y * DEEP_C
    return x, y


def torch_deep(torch, n):
    x, y = torch_deep_forward(torch, n)
    y.backward()
    return float(x.grad)


def torch_deep_forward(torch, n):
    """Forward only; returns (x, y) so the caller holds the graph alive."""
    x = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    y = x
    for _ in range(n):
        y = y * DEEP_C
    return x, y


def np_deep(n):
    y = np.array(1.0)
    for _ in range(n):
        y = y * DEEP_C
    g = np.array(1.0)
    for _ in range(n):
        g = g * DEEP_C
    return float(g)


# ----------------------------------------------------------------------------
# rosenbrock: n gradient-descent steps, scalar Variables, x0=0, x1=2, lr=1e-3
# ----------------------------------------------------------------------------

def dz_rosenbrock(dz, n):
    x0 = dz.Variable(np.array(0.0))
    x1 = dz.Variable(np.array(2.0))
    lr = 0.001
    for _ in range(n):
        y = 100 * (x1 - x0 ** 2) ** 2 + (1 - x0) ** 2
        x0.cleargrad()
        x1.cleargrad()
        y.backward()
        x0.data -= lr * x0.grad.data
        x1.data -= lr * x1.grad.data
    return float(x0.data)


def dz_rosenbrock_simple(dz, n):
    # the book's steps 23-32 engine: x.grad is an ndarray
    require(dz, "core_simple.Variable")
    cs = dz.core_simple
    cs.setup_variable()
    x0 = cs.Variable(np.array(0.0))
    x1 = cs.Variable(np.array(2.0))
    lr = 0.001
    for _ in range(n):
        y = 100 * (x1 - x0 ** 2) ** 2 + (1 - x0) ** 2
        x0.cleargrad()
        x1.cleargrad()
        y.backward()
        x0.data -= lr * x0.grad
        x1.data -= lr * x1.grad
    return float(x0.data)


def torch_rosenbrock(torch, n):
    x0 = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    x1 = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    lr = 0.001
    for _ in range(n):
        y = 100 * (x1 - x0 ** 2) ** 2 + (1 - x0) ** 2
        x0.grad = None
        x1.grad = None
        y.backward()
        with torch.no_grad():
            x0 -= lr * x0.grad
            x1 -= lr * x1.grad
    return float(x0.detach())


def np_rosenbrock(n):
    # the loss is computed, as the DeZero program computes it, and x0, x1 are
    # updated in place, as `x.data -= lr * x.grad.data` must (they stay 0-d
    # arrays; the intermediates are NumPy scalars)
    x0 = np.array(0.0)
    x1 = np.array(2.0)
    lr = 0.001
    for _ in range(n):
        d = x1 - x0 ** 2
        u = 1 - x0
        y = 100 * d ** 2 + u ** 2  # noqa: F841 (the forward value, unused as in the DeZero program)
        g0 = -400.0 * d * x0 - 2.0 * u
        g1 = 200.0 * d
        x0 -= lr * g0
        x1 -= lr * g1
    return float(x0)


# ----------------------------------------------------------------------------
# higher-order: the n-th derivative (n=5) of tanh at x=1 via create_graph
# ----------------------------------------------------------------------------

def dz_higher(dz, n):
    x = dz.Variable(np.array(1.0))
    y = dz.tanh(x)
    y.backward(create_graph=True)
    for _ in range(n - 1):
        gx = x.grad
        x.cleargrad()
        gx.backward(create_graph=True)
    return float(x.grad.data)


def torch_higher(torch, n):
    x = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    g = torch.tanh(x)
    for _ in range(n):
        (g,) = torch.autograd.grad(g, x, create_graph=True)
    return float(g)


def np_higher(n):
    # d^k tanh / dx^k is a polynomial P_k(t) in t = tanh(x);
    # P_{k+1}(t) = P_k'(t) * (1 - t^2).
    p = np.polynomial.Polynomial([0.0, 1.0])
    one_minus_t2 = np.polynomial.Polynomial([1.0, 0.0, -1.0])
    for _ in range(n):
        p = p.deriv() * one_minus_t2
    return float(p(np.tanh(1.0)))


# ----------------------------------------------------------------------------
# newton: the book's Newton's method with second derivatives (step 33):
# minimise x^4 - 2x^2 from x = 2, n steps
# ----------------------------------------------------------------------------

def dz_newton(dz, n):
    x = dz.Variable(np.array(2.0))
    for _ in range(n):
        y = x ** 4 - 2 * x ** 2
        x.cleargrad()
        y.backward(create_graph=True)
        gx = x.grad
        x.cleargrad()
        gx.backward()
        gx2 = x.grad
        x.data -= gx.data / gx2.data
    return float(x.data)


def torch_newton(torch, n):
    x = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    for _ in range(n):
        y = x ** 4 - 2 * x ** 2
        (gx,) = torch.autograd.grad(y, x, create_graph=True)
        (gx2,) = torch.autograd.grad(gx, x)
        with torch.no_grad():
            x -= gx / gx2
    return float(x)


def np_newton(n):
    # the function and both derivatives written out; x is updated in place,
    # as `x.data -= ...` must (the intermediates are NumPy scalars)
    x = np.array(2.0)
    for _ in range(n):
        y = x ** 4 - 2 * x ** 2  # noqa: F841 (the forward value, unused as in the DeZero program)
        gx = 4 * x ** 3 - 4 * x
        gx2 = 12 * x ** 2 - 4
        x -= gx / gx2
    return float(x)


# ----------------------------------------------------------------------------
# mlp_small: 1-10-1 sigmoid MLP, MSE, plain SGD, n steps on 100 points (step
# 43); mlp_large_f64 is the same program at 784-1000-10, batch 256, float64
# ----------------------------------------------------------------------------

def mlp_small_data(n):
    """x, y (100x1 float64), W1, b1, W2, b2 of a 1-10-1 MLP and the learning
    rate."""
    rng = np.random.RandomState(0)
    x = rng.rand(100, 1)
    y = np.sin(2 * np.pi * x) + rng.rand(100, 1)
    W1 = 0.01 * rng.randn(1, 10)
    W2 = 0.01 * rng.randn(10, 1)
    return x, y, W1, np.zeros(10), W2, np.zeros(1), 0.2


def mlp_large_f64_data(n):
    """A 256x784 float64 batch, its one-hot targets (256x10), the parameters
    of a 784-1000-10 MLP, float64, and a learning rate small enough for
    1000 hidden units (0.2 diverges)."""
    x, t, W1, b1, W2, b2 = mlp_large_data(n, dtype=np.float64)
    return x, np.eye(10)[t], W1, b1, W2, b2, 0.001


def dz_sigmoid_mlp(dz, n, data):
    require(dz, "functions.linear", "functions.sigmoid",
            "functions.mean_squared_error")
    x, y, *ps, lr = data
    params = [dz.Variable(a) for a in ps]
    W1, b1, W2, b2 = params
    loss = None
    for _ in range(n):
        h = dz.sigmoid(dz.linear(x, W1, b1))
        y_pred = dz.linear(h, W2, b2)
        loss = dz.mean_squared_error(y, y_pred)
        for p in params:
            p.cleargrad()
        loss.backward()
        for p in params:
            p.data -= lr * p.grad.data
    return float(loss.data)


def torch_sigmoid_mlp(torch, n, data):
    x, y, *ps, lr = data
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    params = [torch.tensor(a, requires_grad=True) for a in ps]
    W1, b1, W2, b2 = params
    loss = None
    for _ in range(n):
        h = torch.sigmoid(x @ W1 + b1)
        y_pred = h @ W2 + b2
        loss = ((y - y_pred) ** 2).sum() / len(y)
        for p in params:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= lr * p.grad
    return float(loss.detach())


def np_sigmoid_mlp(n, data):
    # Every buffer is allocated once, before the loop, and written with out=;
    # the sigmoid is DeZero's (tanh(a / 2) / 2 + 1/2) and the parameters are
    # updated in place, as `p.data -= lr * p.grad.data` does.
    x, y, W1, b1, W2, b2, lr = data
    N = len(x)
    a = np.empty((N, W1.shape[1]), W1.dtype)
    h, gh = np.empty_like(a), np.empty_like(a)
    y_pred = np.empty((N, W2.shape[1]), W2.dtype)
    diff, sq, gy = np.empty_like(y_pred), np.empty_like(y_pred), np.empty_like(y_pred)
    gW1, gb1, gW2, gb2 = (np.empty_like(p) for p in (W1, b1, W2, b2))
    loss = None
    for _ in range(n):
        np.matmul(x, W1, out=a)
        a += b1
        np.multiply(a, 0.5, out=h)
        np.tanh(h, out=h)
        h *= 0.5
        h += 0.5
        np.matmul(h, W2, out=y_pred)
        y_pred += b2
        np.subtract(y_pred, y, out=diff)
        np.square(diff, out=sq)
        loss = sq.sum() / N
        np.multiply(diff, 2.0 / N, out=gy)
        np.matmul(h.T, gy, out=gW2)
        np.sum(gy, axis=0, out=gb2)
        np.matmul(gy, W2.T, out=gh)
        gh *= h
        np.subtract(1.0, h, out=a)  # a is free again: it holds 1 - h
        gh *= a
        np.matmul(x.T, gh, out=gW1)
        np.sum(gh, axis=0, out=gb1)
        for p, g in ((W1, gW1), (b1, gb1), (W2, gW2), (b2, gb2)):
            g *= lr
            p -= g
    return float(loss)


# ----------------------------------------------------------------------------
# mlp_large: 784-H-10 ReLU MLP, softmax cross entropy, batch 256, n SGD steps
# (float32; compute bound, BLAS does the work)
# ----------------------------------------------------------------------------

MLP_LARGE_HIDDEN = 1000


def mlp_large_data(n, hidden=None, batch=256, dtype=np.float32):
    """A batch x (batch x 784), class labels t and W1, b1, W2, b2."""
    hidden = hidden or MLP_LARGE_HIDDEN
    rng = np.random.RandomState(0)
    x = rng.rand(batch, 784).astype(dtype)
    t = rng.randint(0, 10, size=batch)
    W1 = (rng.randn(784, hidden) * np.sqrt(1 / 784)).astype(dtype)
    W2 = (rng.randn(hidden, 10) * np.sqrt(1 / hidden)).astype(dtype)
    return x, t, W1, np.zeros(hidden, dtype), W2, np.zeros(10, dtype)


def dz_mlp_large(dz, n, data):
    require(dz, "functions.linear", "functions.relu",
            "functions.softmax_cross_entropy")
    x, t, *ps = data
    params = [dz.Variable(a) for a in ps]
    W1, b1, W2, b2 = params
    lr = 0.1
    loss = None
    for _ in range(n):
        h = dz.relu(dz.linear(x, W1, b1))
        y = dz.linear(h, W2, b2)
        loss = dz.softmax_cross_entropy(y, t)
        for p in params:
            p.cleargrad()
        loss.backward()
        for p in params:
            p.data -= lr * p.grad.data
    return float(loss.data)


def torch_mlp_large(torch, n, data):
    x, t, *ps = data
    x, t = torch.from_numpy(x), torch.from_numpy(t)
    params = [torch.tensor(a, requires_grad=True) for a in ps]
    W1, b1, W2, b2 = params
    lr = 0.1
    loss = None
    for _ in range(n):
        h = torch.relu(x @ W1 + b1)
        y = h @ W2 + b2
        loss = torch.nn.functional.cross_entropy(y, t)
        for p in params:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= lr * p.grad
    return float(loss.detach())


def _softmax_ce_into(y, onehot, m, e, s, gy):
    """Mean softmax cross entropy of the rows of y against one-hot targets.
    Writes the gradient w.r.t. y into gy and uses m, s (N x 1) and e (like
    y) as scratch; allocates no array."""
    N = len(y)
    np.max(y, axis=1, keepdims=True, out=m)
    np.subtract(y, m, out=e)
    np.exp(e, out=e)
    np.sum(e, axis=1, keepdims=True, out=s)
    np.divide(e, s, out=gy)  # softmax
    np.log(s, out=s)
    s += m  # logsumexp of each row
    loss = (s.sum() - np.vdot(y, onehot)) / N
    gy -= onehot
    gy /= N
    return loss


def np_mlp_large(n, data):
    # Every buffer is allocated once, before the loop, and written with out=;
    # the parameters are updated in place.
    x, t, W1, b1, W2, b2 = data
    lr = 0.1
    N, dt = len(x), x.dtype
    onehot = np.eye(W2.shape[1], dtype=dt)[t]
    a = np.empty((N, W1.shape[1]), dt)
    h, gh = np.empty_like(a), np.empty_like(a)
    mask = np.empty(a.shape, bool)
    y = np.empty((N, W2.shape[1]), dt)
    e, gy = np.empty_like(y), np.empty_like(y)
    m, s = np.empty((N, 1), dt), np.empty((N, 1), dt)
    gW1, gb1, gW2, gb2 = (np.empty_like(p) for p in (W1, b1, W2, b2))
    loss = None
    for _ in range(n):
        np.matmul(x, W1, out=a)
        a += b1
        np.maximum(a, 0, out=h)
        np.matmul(h, W2, out=y)
        y += b2
        loss = _softmax_ce_into(y, onehot, m, e, s, gy)
        np.matmul(h.T, gy, out=gW2)
        np.sum(gy, axis=0, out=gb2)
        np.matmul(gy, W2.T, out=gh)
        np.greater(a, 0, out=mask)
        gh *= mask
        np.matmul(x.T, gh, out=gW1)
        np.sum(gh, axis=0, out=gb1)
        for p, g in ((W1, gW1), (b1, gb1), (W2, gW2), (b2, gb2)):
            g *= lr
            p -= g
    return float(loss)


# ----------------------------------------------------------------------------
# conv: n SGD steps of conv3x3(16)-relu-maxpool2-linear(10) on a
# 32x1x28x28 float32 batch
# ----------------------------------------------------------------------------

def conv_data(n, batch=32):
    rng = np.random.RandomState(0)
    x = rng.rand(batch, 1, 28, 28).astype(np.float32)
    t = rng.randint(0, 10, size=batch)
    W = (rng.randn(16, 1, 3, 3) * np.sqrt(2 / 9)).astype(np.float32)
    b = np.zeros(16, np.float32)
    W2 = (rng.randn(16 * 14 * 14, 10) * np.sqrt(1 / 3136)).astype(np.float32)
    b2 = np.zeros(10, np.float32)
    return x, t, W, b, W2, b2


def dz_conv(dz, n, data):
    require(dz, "functions.conv2d", "functions.pooling", "functions.relu",
            "functions.linear", "functions.softmax_cross_entropy",
            "functions.reshape")
    x, t, *ps = data
    params = [dz.Variable(a) for a in ps]
    W, b, W2, b2 = params
    lr = 0.05
    loss = None
    for _ in range(n):
        h = dz.relu(dz.conv2d(x, W, b, stride=1, pad=1))
        h = dz.pooling(h, 2, stride=2)
        h = dz.reshape(h, (len(x), -1))
        y = dz.linear(h, W2, b2)
        loss = dz.softmax_cross_entropy(y, t)
        for p in params:
            p.cleargrad()
        loss.backward()
        for p in params:
            p.data -= lr * p.grad.data
    return float(loss.data)


def torch_conv(torch, n, data):
    tf = torch.nn.functional
    x, t, *ps = data
    x, t = torch.from_numpy(x), torch.from_numpy(t)
    params = [torch.tensor(a, requires_grad=True) for a in ps]
    W, b, W2, b2 = params
    lr = 0.05
    loss = None
    for _ in range(n):
        h = torch.relu(tf.conv2d(x, W, b, stride=1, padding=1))
        h = tf.max_pool2d(h, 2, stride=2)
        h = h.reshape(len(x), -1)
        y = h @ W2 + b2
        loss = tf.cross_entropy(y, t)
        for p in params:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= lr * p.grad
    return float(loss.detach())


# ----------------------------------------------------------------------------
# spiral: MLP((10, 3)) + Adam + DataLoader(batch 30) over Spiral, n epochs
# ----------------------------------------------------------------------------

def get_spiral(seed=1984):
    """DeZero's datasets.get_spiral(train=True), without np.int."""
    rs = np.random.RandomState(seed)
    num_data, num_class = 100, 3
    x = np.zeros((num_data * num_class, 2), dtype=np.float32)
    t = np.zeros(num_data * num_class, dtype=np.int64)
    for j in range(num_class):
        for i in range(num_data):
            rate = i / num_data
            theta = j * 4.0 + 4.0 * rate + rs.randn() * 0.2
            x[num_data * j + i] = [rate * np.sin(theta), rate * np.cos(theta)]
            t[num_data * j + i] = j
    idx = rs.permutation(num_data * num_class)
    return x[idx], t[idx]


def dz_spiral_data(dz, n):
    """The library's own Spiral dataset (it draws from the global RNG)."""
    require(dz, "datasets.Spiral")
    return dz.datasets.Spiral(train=True)


def spiral_data(n):
    return get_spiral()


def dz_spiral(dz, n, train_set):
    require(dz, "models.MLP", "optimizers.Adam", "datasets.Spiral",
            "dataloaders.DataLoader", "functions.softmax_cross_entropy")
    np.random.seed(0)  # model init and the loader's shuffles
    loader = dz.dataloaders.DataLoader(train_set, batch_size=30)
    model = dz.models.MLP((10, 3))
    optimizer = dz.O.Adam().setup(model)
    loss = None
    for _ in range(n):
        for x, t in loader:
            y = model(x)
            loss = dz.softmax_cross_entropy(y, t)
            model.cleargrads()
            loss.backward()
            optimizer.update()
    return float(loss.data)


def _spiral_init(rs):
    # DeZero's L.Linear init: randn * sqrt(1 / in_size), zero bias, float32
    W1 = (rs.randn(2, 10) * np.sqrt(1 / 2)).astype(np.float32)
    W2 = (rs.randn(10, 3) * np.sqrt(1 / 10)).astype(np.float32)
    return [W1, np.zeros(10, np.float32), W2, np.zeros(3, np.float32)]


def torch_spiral(torch, n, data):
    xs, ts = data
    rs = np.random.RandomState(0)
    params = [torch.tensor(a, requires_grad=True) for a in _spiral_init(rs)]
    W1, b1, W2, b2 = params
    opt = torch.optim.Adam(params, lr=0.001)
    N, B = len(xs), 30
    loss = None
    for _ in range(n):
        idx = rs.permutation(N)
        for i in range(math.ceil(N / B)):
            bi = idx[i * B:(i + 1) * B]
            # the loader builds each batch from per-example items, as DeZero's
            x = torch.from_numpy(np.array([xs[j] for j in bi]))
            t = torch.from_numpy(np.array([ts[j] for j in bi]))
            y = torch.sigmoid(x @ W1 + b1) @ W2 + b2
            loss = torch.nn.functional.cross_entropy(y, t)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return float(loss.detach())


def np_spiral(n, data):
    # The DeZero program's random stream, in its order (the loader's first
    # shuffle, then each Linear's W on its first call, then one shuffle at
    # the end of every epoch), so the floor computes the DeZero program's
    # numbers. Every buffer is allocated once, before the loop: a batch is
    # gathered with np.take(out=) where DeZero's loader stacks examples.
    xs, ts = data
    N, B = len(xs), 30
    assert N % B == 0, "every batch full: one set of buffers"
    rs = np.random.RandomState(0)
    idx = rs.permutation(N)
    W1, b1, W2, b2 = params = _spiral_init(rs)
    alpha, beta1, beta2, eps = 0.001, 0.9, 0.999, 1e-8
    ms = [np.zeros_like(p) for p in params]
    vs = [np.zeros_like(p) for p in params]
    grads = [np.empty_like(p) for p in params]
    gW1, gb1, gW2, gb2 = grads
    tmps = [np.empty_like(p) for p in params]
    eye = np.eye(3, dtype=np.float32)
    x, t = np.empty((B, 2), np.float32), np.empty(B, ts.dtype)
    onehot = np.empty((B, 3), np.float32)
    a = np.empty((B, 10), np.float32)
    h, gh = np.empty_like(a), np.empty_like(a)
    y = np.empty((B, 3), np.float32)
    e, gy = np.empty_like(y), np.empty_like(y)
    m, s = np.empty((B, 1), np.float32), np.empty((B, 1), np.float32)
    step = 0
    loss = None
    for _ in range(n):
        for i in range(N // B):
            bi = idx[i * B:(i + 1) * B]
            np.take(xs, bi, axis=0, out=x)
            np.take(ts, bi, out=t)
            np.take(eye, t, axis=0, out=onehot)
            np.matmul(x, W1, out=a)
            a += b1
            np.multiply(a, 0.5, out=h)
            np.tanh(h, out=h)
            h *= 0.5
            h += 0.5
            np.matmul(h, W2, out=y)
            y += b2
            loss = _softmax_ce_into(y, onehot, m, e, s, gy)
            np.matmul(h.T, gy, out=gW2)
            np.sum(gy, axis=0, out=gb2)
            np.matmul(gy, W2.T, out=gh)
            gh *= h
            np.subtract(1.0, h, out=a)
            gh *= a
            np.matmul(x.T, gh, out=gW1)
            np.sum(gh, axis=0, out=gb1)
            step += 1
            lr = (alpha * math.sqrt(1 - math.pow(beta2, step))
                  / (1 - math.pow(beta1, step)))
            for p, g, mp, vp, tmp in zip(params, grads, ms, vs, tmps):
                np.subtract(g, mp, out=tmp)  # m += (1 - beta1) * (g - m)
                tmp *= 1 - beta1
                mp += tmp
                np.multiply(g, g, out=tmp)  # v += (1 - beta2) * (g * g - v)
                tmp -= vp
                tmp *= 1 - beta2
                vp += tmp
                np.sqrt(vp, out=tmp)  # p -= lr * m / (sqrt(v) + eps)
                tmp += eps
                np.multiply(mp, lr, out=g)
                g /= tmp
                p -= g
        idx = rs.permutation(N)
    return float(loss)
