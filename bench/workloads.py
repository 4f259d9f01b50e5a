"""Benchmark workloads for bench/run.py.

Every workload is one program per *kind* of peer:

* ``dz_*(dz, n)``  -- the DeZero-spelled program. The very same function runs
  for ``dezero`` and for ``cydezero``; ``dz`` is a namespace built by
  :func:`load_dz` (``Variable``, the functions flat, plus ``L``/``O``/... when
  the library has them).
* ``torch_*(torch, n)`` -- the same computation in PyTorch eager.
* ``np_*(n)`` -- a hand-written NumPy forward+backward: no graph, no tape, the
  "floor" an autograd library can approach.

Each program builds its inputs, runs forward+backward (and the update, for the
training workloads), drops its graph and returns a float (a gradient or a
loss) that run.py compares across peers.
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

def _wide_consts(n):
    return [1.0 + i / n for i in range(n)]


def dz_wide(dz, n):
    x = dz.Variable(np.array(0.5))
    cs = _wide_consts(n)
    s = dz.sin(x * cs[0])
    for c in cs[1:]:
        s = s + dz.sin(x * c)
    s.backward()
    return float(x.grad.data)


def torch_wide(torch, n):
    x = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    cs = _wide_consts(n)
    s = torch.sin(x * cs[0])
    for c in cs[1:]:
        s = s + torch.sin(x * c)
    s.backward()
    return float(x.grad)


def np_wide(n):
    x = np.array(0.5)
    cs = _wide_consts(n)
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
    x = dz.Variable(np.array(1.0))
    y = x
    for _ in range(n):
        y = y * DEEP_C
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
    x = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    y = x
    for _ in range(n):
        y = y * DEEP_C
    y.backward()
    return float(x.grad)


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
    x0 = np.array(0.0)
    x1 = np.array(2.0)
    lr = 0.001
    for _ in range(n):
        d = x1 - x0 ** 2
        g0 = -400.0 * d * x0 - 2.0 * (1 - x0)
        g1 = 200.0 * d
        x0 = x0 - lr * g0
        x1 = x1 - lr * g1
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
# mlp_small: 1-10-1 sigmoid MLP, plain SGD, n steps on 100 points (step 43)
# ----------------------------------------------------------------------------

def _mlp_small_data():
    rng = np.random.RandomState(0)
    x = rng.rand(100, 1)
    y = np.sin(2 * np.pi * x) + rng.rand(100, 1)
    W1 = 0.01 * rng.randn(1, 10)
    W2 = 0.01 * rng.randn(10, 1)
    return x, y, W1, np.zeros(10), W2, np.zeros(1)


def dz_mlp_small(dz, n):
    require(dz, "functions.linear", "functions.sigmoid",
            "functions.mean_squared_error")
    x, y, W1, b1, W2, b2 = _mlp_small_data()
    params = [dz.Variable(a) for a in (W1, b1, W2, b2)]
    W1, b1, W2, b2 = params
    lr = 0.2
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


def torch_mlp_small(torch, n):
    x, y, *ps = _mlp_small_data()
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    params = [torch.tensor(a, requires_grad=True) for a in ps]
    W1, b1, W2, b2 = params
    lr = 0.2
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
    return float(loss)


def np_mlp_small(n):
    x, y, W1, b1, W2, b2 = _mlp_small_data()
    lr = 0.2
    N = len(x)
    loss = None
    for _ in range(n):
        a = x @ W1 + b1
        h = 1.0 / (1.0 + np.exp(-a))
        y_pred = h @ W2 + b2
        diff = y_pred - y
        loss = (diff ** 2).sum() / N
        gy = diff * (2.0 / N)
        gW2 = h.T @ gy
        gb2 = gy.sum(axis=0)
        gh = gy @ W2.T
        ga = gh * h * (1 - h)
        gW1 = x.T @ ga
        gb1 = ga.sum(axis=0)
        W1 = W1 - lr * gW1
        b1 = b1 - lr * gb1
        W2 = W2 - lr * gW2
        b2 = b2 - lr * gb2
    return float(loss)


# ----------------------------------------------------------------------------
# mlp_large: 784-H-10 ReLU MLP, softmax cross entropy, batch 256, n SGD steps
# (float32; compute bound, BLAS does the work)
# ----------------------------------------------------------------------------

MLP_LARGE_HIDDEN = 1000


def _mlp_large_data(hidden=None, batch=256):
    hidden = hidden or MLP_LARGE_HIDDEN
    rng = np.random.RandomState(0)
    x = rng.rand(batch, 784).astype(np.float32)
    t = rng.randint(0, 10, size=batch)
    W1 = (rng.randn(784, hidden) * np.sqrt(1 / 784)).astype(np.float32)
    W2 = (rng.randn(hidden, 10) * np.sqrt(1 / hidden)).astype(np.float32)
    return (x, t, W1, np.zeros(hidden, np.float32), W2,
            np.zeros(10, np.float32))


def dz_mlp_large(dz, n):
    require(dz, "functions.linear", "functions.relu",
            "functions.softmax_cross_entropy")
    x, t, *ps = _mlp_large_data()
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


def torch_mlp_large(torch, n):
    x, t, *ps = _mlp_large_data()
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
    return float(loss)


def _softmax_ce(y, t):
    """Mean softmax cross entropy and its gradient w.r.t. y."""
    N = len(t)
    m = y.max(axis=1, keepdims=True)
    e = np.exp(y - m)
    s = e.sum(axis=1, keepdims=True)
    logp = y - m - np.log(s)
    loss = -logp[np.arange(N), t].mean()
    gy = e / s
    gy[np.arange(N), t] -= 1
    gy /= N
    return loss, gy


def np_mlp_large(n):
    x, t, W1, b1, W2, b2 = _mlp_large_data()
    lr = 0.1
    loss = None
    for _ in range(n):
        a = x @ W1 + b1
        h = np.maximum(a, 0)
        y = h @ W2 + b2
        loss, gy = _softmax_ce(y, t)
        gW2 = h.T @ gy
        gb2 = gy.sum(axis=0)
        gh = gy @ W2.T
        ga = gh * (a > 0)
        gW1 = x.T @ ga
        gb1 = ga.sum(axis=0)
        W1 -= lr * gW1
        b1 -= lr * gb1
        W2 -= lr * gW2
        b2 -= lr * gb2
    return float(loss)


# ----------------------------------------------------------------------------
# conv: n SGD steps of conv3x3(16)-relu-maxpool2-linear(10) on a
# 32x1x28x28 float32 batch
# ----------------------------------------------------------------------------

def _conv_data(batch=32):
    rng = np.random.RandomState(0)
    x = rng.rand(batch, 1, 28, 28).astype(np.float32)
    t = rng.randint(0, 10, size=batch)
    W = (rng.randn(16, 1, 3, 3) * np.sqrt(2 / 9)).astype(np.float32)
    b = np.zeros(16, np.float32)
    W2 = (rng.randn(16 * 14 * 14, 10) * np.sqrt(1 / 3136)).astype(np.float32)
    b2 = np.zeros(10, np.float32)
    return x, t, W, b, W2, b2


def dz_conv(dz, n):
    require(dz, "functions.conv2d", "functions.pooling", "functions.relu",
            "functions.linear", "functions.softmax_cross_entropy",
            "functions.reshape")
    x, t, *ps = _conv_data()
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


def torch_conv(torch, n):
    tf = torch.nn.functional
    x, t, *ps = _conv_data()
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
    return float(loss)


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


def dz_spiral(dz, n):
    require(dz, "models.MLP", "optimizers.Adam", "datasets.Spiral",
            "dataloaders.DataLoader", "functions.softmax_cross_entropy")
    train_set = dz.datasets.Spiral(train=True)
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


def torch_spiral(torch, n):
    xs, ts = get_spiral()
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
    return float(loss)


def np_spiral(n):
    xs, ts = get_spiral()
    rs = np.random.RandomState(0)
    params = _spiral_init(rs)
    ms = [np.zeros_like(p) for p in params]
    vs = [np.zeros_like(p) for p in params]
    alpha, beta1, beta2, eps = 0.001, 0.9, 0.999, 1e-8
    N, B = len(xs), 30
    step = 0
    loss = None
    for _ in range(n):
        idx = rs.permutation(N)
        for i in range(math.ceil(N / B)):
            bi = idx[i * B:(i + 1) * B]
            x = np.array([xs[j] for j in bi])
            t = np.array([ts[j] for j in bi])
            W1, b1, W2, b2 = params
            a = x @ W1 + b1
            h = 1.0 / (1.0 + np.exp(-a))
            y = h @ W2 + b2
            loss, gy = _softmax_ce(y, t)
            gh = gy @ W2.T
            ga = gh * h * (1 - h)
            grads = [x.T @ ga, ga.sum(axis=0), h.T @ gy, gy.sum(axis=0)]
            step += 1
            lr = (alpha * math.sqrt(1 - beta2 ** step)
                  / (1 - beta1 ** step))
            for p, g, m, v in zip(params, grads, ms, vs):
                m += (1 - beta1) * (g - m)
                v += (1 - beta2) * (g * g - v)
                p -= lr * m / (np.sqrt(v) + eps)
    return float(loss)
