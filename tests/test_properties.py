"""Property tests of the engine: random graphs of the built-in operations
(broadcasting, reused variables, branches) differentiated by cydezero must
agree with central differences of a plain NumPy evaluation of the same
program, and with DeZero 0.0.13 running the same program.

A program is a list of nodes; each node applies one operation to earlier
nodes. It is generated together with its NumPy values so that every
operation is only used where it is smooth (no max ties, no log of small
numbers, no division near 0, nothing huge), and then interpreted three ways:
on arrays (the numerical truth), on cydezero Variables and on DeZero ones.
"""
import itertools

import numpy as np
import pytest
from conftest import numerical_grad
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cydezero
import cydezero.functions as CF

# Reproducible in CI (derandomize), quick enough for every run.
PROFILE = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.too_slow])

SHAPES = [(), (3,), (2, 3), (2, 1), (1, 3), (2, 2, 3), (4,)]
BIG = 30.0          # no value beyond this: keeps differences well conditioned
GAP = 1e-2          # distance kept from kinks (max ties, relu at 0)


# ---------------------------------------------------------------------------
# The NumPy meaning of each operation (the independent truth)
# ---------------------------------------------------------------------------
def np_sum_to(x, shape):
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape) if s == 1)
    y = x.sum(axis=axes, keepdims=True)
    return y.reshape(shape)


def np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_const(a, c, fn, left):
    x0, x1 = (c, a) if left else (a, c)
    return {'+': np.add, '-': np.subtract, '*': np.multiply, '/': np.divide}[fn](x0, x1)


NUMPY = {
    'add': lambda a, b: a + b,
    'sub': lambda a, b: a - b,
    'mul': lambda a, b: a * b,
    'div': lambda a, b: a / b,
    'neg': lambda a: -a,
    'const': np_const,
    'pow': lambda a, c: a ** c,
    'sin': np.sin, 'cos': np.cos, 'tanh': np.tanh, 'exp': np.exp, 'log': np.log,
    'reshape': lambda a, shape: a.reshape(shape),
    'transpose': lambda a, axes: np.transpose(a, axes),
    'sum': lambda a, axis, keepdims: np.asarray(a.sum(axis=axis, keepdims=keepdims)),
    'broadcast_to': lambda a, shape: np.broadcast_to(a, shape),
    'sum_to': np_sum_to,
    'matmul': lambda a, b: a @ b,
    'get_item': lambda a, slices: a[slices],
    'max': lambda a, axis, keepdims: np.asarray(a.max(axis=axis, keepdims=keepdims)),
    'min': lambda a, axis, keepdims: np.asarray(a.min(axis=axis, keepdims=keepdims)),
    'sigmoid': lambda a: 1 / (1 + np.exp(-a)),
    'relu': lambda a: np.maximum(a, 0.0),
    'softmax': np_softmax,
    'linear': lambda a, W, b=None: a @ W if b is None else a @ W + b,
}


def graph_ops(F):
    """The same operations spelled with a library's Variables and functions
    (operators, methods and F.* are mixed, as user code does)."""
    def const(a, c, fn, left):
        x0, x1 = (c, a) if left else (a, c)
        if fn == '+':
            return x0 + x1
        if fn == '-':
            return x0 - x1
        if fn == '*':
            return x0 * x1
        return x0 / x1

    return {
        'add': lambda a, b: a + b,
        'sub': lambda a, b: a - b,
        'mul': lambda a, b: a * b,
        'div': lambda a, b: a / b,
        'neg': lambda a: -a,
        'const': const,
        'pow': lambda a, c: a ** c,
        'sin': F.sin, 'cos': F.cos, 'tanh': F.tanh, 'exp': F.exp, 'log': F.log,
        'reshape': lambda a, shape: a.reshape(shape),
        'transpose': lambda a, axes: a.T if axes is None else F.transpose(a, axes),
        'sum': lambda a, axis, keepdims: F.sum(a, axis=axis, keepdims=keepdims),
        'broadcast_to': F.broadcast_to,
        'sum_to': F.sum_to,
        'matmul': F.matmul,
        'get_item': lambda a, slices: a[slices],
        'max': lambda a, axis, keepdims: F.max(a, axis=axis, keepdims=keepdims),
        'min': lambda a, axis, keepdims: F.min(a, axis=axis, keepdims=keepdims),
        'sigmoid': F.sigmoid,
        'relu': F.relu,
        'softmax': lambda a, axis: F.softmax(a, axis=axis),
        'linear': F.linear,
    }


# ---------------------------------------------------------------------------
# Programs
# ---------------------------------------------------------------------------
class Program:
    def __init__(self, leaves):
        self.leaves = leaves          # leaf arrays
        self.nodes = []               # (op, argument node indices, params)
        self.values = []              # NumPy value of each node
        self.coefs = {}               # sink node -> constant weight array

    def add_leaf(self, a):
        self.leaves.append(a)
        self.nodes.append(('leaf', (len(self.leaves) - 1,), {}))
        self.values.append(a)
        return len(self.nodes) - 1

    def sinks(self):
        used = {i for op, args, _ in self.nodes if op != 'leaf' for i in args}
        return [i for i in range(len(self.nodes)) if i not in used]

    def __repr__(self):
        lines = [f'leaf {i}: {a!r}' for i, a in enumerate(self.leaves)]
        lines += [f'n{i} = {op}{args} {params}'
                  for i, (op, args, params) in enumerate(self.nodes)]
        return '\n'.join(lines)


def run(prog, leaves, ops):
    """Evaluate prog on the given leaf values; returns the scalar loss
    sum(node * coef) over the sinks (outputs nobody consumed)."""
    vals = []
    for op, args, params in prog.nodes:
        if op == 'leaf':
            vals.append(leaves[args[0]])
        else:
            vals.append(ops[op](*[vals[i] for i in args], **params))
    loss = None
    for i in prog.sinks():
        term = (vals[i] * prog.coefs[i]).sum()
        loss = term if loss is None else loss + term
    return loss


def _gap_ok(a, axis, smallest):
    """No near-tie at the max (or min) along axis, so it is differentiable."""
    if a.size == 0:
        return False
    s = np.sort(a.reshape(-1) if axis is None else np.moveaxis(a, axis, -1), axis=-1)
    if s.shape[-1] < 2:
        return True
    gap = s[..., 1] - s[..., 0] if smallest else s[..., -1] - s[..., -2]
    return bool(np.all(gap > GAP))


def _broadcastable(s0, s1):
    try:
        np.broadcast_shapes(s0, s1)
        return True
    except ValueError:
        return False


def _away_from_zero(a, margin=0.3):
    return bool(np.all(np.abs(a) > margin))


def _propose(draw, prog, rng, op):
    """Pick arguments and parameters for op among the program's nodes, or
    return None where op would not be smooth there."""
    vals = prog.values
    idx = st.integers(0, len(vals) - 1)
    a_i = draw(idx)
    a = vals[a_i]
    if op in ('add', 'sub', 'mul', 'div'):
        fits = [j for j, v in enumerate(vals) if _broadcastable(a.shape, v.shape)]
        b_i = draw(st.sampled_from(fits))      # often a itself: a reused variable
        if op == 'div' and not _away_from_zero(vals[b_i]):
            return None
        return (a_i, b_i), {}
    if op == 'neg' or op in ('sin', 'cos', 'tanh', 'sigmoid'):
        return (a_i,), {}
    if op == 'const':
        fn = draw(st.sampled_from('+-*/'))
        left = draw(st.booleans())
        kind = draw(st.sampled_from(['float', 'int', 'array', 'row']))
        if kind == 'float':
            c = draw(st.sampled_from([0.5, 2.0, -1.5, 3.0]))
        elif kind == 'int':
            c = draw(st.sampled_from([2, -3]))
        else:
            shape = a.shape if kind == 'array' else a.shape[-1:]
            c = rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)
        if fn == '/' and left and not _away_from_zero(a):
            return None
        return (a_i,), {'c': c, 'fn': fn, 'left': left}
    if op == 'pow':
        c = draw(st.sampled_from([2, 3, 0.5, -1.0, 1.5]))
        if (not float(c).is_integer() or c < 0) and not np.all(a > 0.2):
            return None
        return (a_i,), {'c': c}
    if op == 'exp':
        return ((a_i,), {}) if np.all(a < 2.5) else None
    if op == 'log':
        return ((a_i,), {}) if np.all(a > 0.2) else None
    if op == 'relu':
        return ((a_i,), {}) if _away_from_zero(a, GAP) else None
    if op == 'reshape':
        n = a.size
        cands = [(n,), (n, 1), (1, n), a.shape[::-1]] + ([(2, n // 2)] if n % 2 == 0 else [])
        return (a_i,), {'shape': draw(st.sampled_from(cands))}
    if op == 'transpose':
        if a.ndim < 2:
            return None
        perms = [None] + list(itertools.permutations(range(a.ndim)))
        axes = draw(st.sampled_from(perms))
        if axes is not None and draw(st.booleans()):
            axes = tuple(ax - a.ndim for ax in axes)        # negative spelling
        return (a_i,), {'axes': axes}
    if op == 'sum':
        choices = [None] + list(range(-a.ndim, a.ndim))
        if a.ndim >= 2:
            choices.append((0, a.ndim - 1))
        return (a_i,), {'axis': draw(st.sampled_from(choices)), 'keepdims': draw(st.booleans())}
    if op == 'broadcast_to':
        cands = [(2,) + a.shape]
        if 1 in a.shape:
            cands.append(tuple(2 if s == 1 else s for s in a.shape))
        return (a_i,), {'shape': draw(st.sampled_from(cands))}
    if op == 'sum_to':
        if a.ndim == 0:
            return None
        cands = [a.shape[1:], tuple(1 if k == 0 else s for k, s in enumerate(a.shape))]
        if a.ndim >= 2:
            cands.append((1,) * (a.ndim - 1) + a.shape[-1:])
        return (a_i,), {'shape': draw(st.sampled_from(cands))}
    if op in ('matmul', 'linear'):
        if a.ndim != 2:
            return None
        k = a.shape[1]
        ws = [j for j, v in enumerate(vals) if v.ndim == 2 and v.shape[0] == k]
        if ws and draw(st.booleans()):
            w_i = draw(st.sampled_from(ws))
        else:
            w_i = prog.add_leaf(rng.uniform(-1, 1, (k, draw(st.integers(1, 3)))))
        if op == 'matmul':
            return (a_i, w_i), {}
        if draw(st.booleans()):
            return (a_i, w_i), {}
        b_i = prog.add_leaf(rng.uniform(-1, 1, (vals[w_i].shape[1],)))
        return (a_i, w_i, b_i), {}
    if op == 'get_item':
        if a.ndim == 0:
            return None
        d = a.shape[0]
        cands = [d - 1, -1, slice(0, d, 1), slice(None, None, -1),
                 np.array([0, d - 1, 0]), (Ellipsis, 0)]
        if a.ndim >= 2:
            cands.append((slice(None), a.shape[1] - 1))
        return (a_i,), {'slices': draw(st.sampled_from(cands))}
    if op in ('max', 'min'):
        # Non-negative axes: DeZero 0.0.13's max backward ignores negative ones.
        axis = draw(st.sampled_from([None] + list(range(a.ndim))))
        if not _gap_ok(a, axis, op == 'min'):
            return None
        return (a_i,), {'axis': axis, 'keepdims': draw(st.booleans())}
    if op == 'softmax':
        if a.ndim == 0:
            return None
        return (a_i,), {'axis': draw(st.sampled_from(range(a.ndim)))}
    raise AssertionError(op)


OPS = ['add', 'sub', 'mul', 'div', 'neg', 'const', 'pow', 'sin', 'cos', 'tanh', 'exp',
       'log', 'reshape', 'transpose', 'sum', 'broadcast_to', 'sum_to', 'matmul',
       'get_item', 'max', 'min', 'sigmoid', 'relu', 'softmax', 'linear']


@st.composite
def programs(draw, max_ops=14):
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    prog = Program([])
    for _ in range(draw(st.integers(1, 3))):
        shape = draw(st.sampled_from(SHAPES))
        lo, hi = draw(st.sampled_from([(-1.5, 1.5), (0.3, 2.0)]))
        prog.add_leaf(rng.uniform(lo, hi, shape))
    target = draw(st.integers(2, max_ops))
    for _ in range(3 * target):
        if len(prog.nodes) - len(prog.leaves) >= target:
            break
        op = draw(st.sampled_from(OPS))
        n_before = len(prog.nodes)
        spec = _propose(draw, prog, rng, op)
        if spec is None:
            continue
        args, params = spec
        value = np.asarray(NUMPY[op](*[prog.values[i] for i in args], **params))
        if not np.all(np.isfinite(value)) or np.any(np.abs(value) > BIG):
            # Drop the leaves the proposal added with it.
            del prog.nodes[n_before:], prog.values[n_before:]
            del prog.leaves[sum(n[0] == 'leaf' for n in prog.nodes):]
            continue
        prog.nodes.append((op, args, params))
        prog.values.append(value)
    for i in prog.sinks():
        prog.coefs[i] = rng.uniform(-1, 1, prog.values[i].shape)
    return prog


def grads_of(lib, F, prog):
    xs = [lib.Variable(a.copy()) for a in prog.leaves]
    loss = run(prog, xs, graph_ops(F))
    loss.backward()
    return float(loss.data), [x.grad for x in xs]


def numerical_grads(prog):
    def loss_with(k):
        def f(t):
            leaves = list(prog.leaves)
            leaves[k] = t
            return run(prog, leaves, NUMPY)
        return f
    return [numerical_grad(loss_with(k), a) for k, a in enumerate(prog.leaves)]


# ---------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------
@PROFILE
@given(programs())
def test_random_graph_gradients_match_numerical_differentiation(prog):
    loss, grads = grads_of(cydezero, CF, prog)
    assert loss == pytest.approx(run(prog, prog.leaves, NUMPY), rel=1e-12, abs=1e-12)
    for k, (g, num) in enumerate(zip(grads, numerical_grads(prog))):
        assert g is not None, f'leaf {k} got no gradient\n{prog}'
        assert g.shape == prog.leaves[k].shape and g.dtype == np.float64
        assert np.allclose(g.data, num, rtol=1e-5, atol=1e-6), \
            f'leaf {k}: {g.data} vs numerical {num}\n{prog}'


@PROFILE
@given(programs())
def test_random_graph_gradients_match_dezero(dezero, prog):
    import dezero.functions as DF
    loss, grads = grads_of(cydezero, CF, prog)
    d_loss, d_grads = grads_of(dezero, DF, prog)
    assert np.allclose(loss, d_loss, rtol=1e-12, atol=1e-12)
    for k, (g, d) in enumerate(zip(grads, d_grads)):
        assert np.allclose(g.data, d.data, rtol=1e-12, atol=1e-12), \
            f'leaf {k}: {g.data} vs DeZero {d.data}\n{prog}'


# ---------------------------------------------------------------------------
# Second derivatives through create_graph
# ---------------------------------------------------------------------------
CHAIN_OPS = ['sin', 'cos', 'tanh', 'exp', 'log', 'square', 'cube', 'sqrt', 'recip',
             'scale', 'shift', 'times_x', 'plus_x', 'self_mul', 'sigmoid']


@st.composite
def chains(draw):
    """An elementwise chain h = op(h) from x, some links reusing x or h."""
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    x = rng.uniform(0.3, 1.5, draw(st.sampled_from([(), (3,), (2, 2)])))
    h, links = x, []
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(CHAIN_OPS))
        if ((op == 'exp' and np.any(h > 2.0))
                or (op in ('log', 'sqrt') and np.any(h < 0.3))
                or (op == 'recip' and np.any(np.abs(h) < 0.3))):
            continue
        new = chain_step(np, op, h, x)
        if np.any(np.abs(new) > 20):
            continue
        links.append(op)
        h = new
    return x, links


def chain_step(F, op, h, x):
    """One link, spelled the same for NumPy and for a library's F (``F`` is
    ``np`` or a functions module); sigmoid is built from exp for NumPy."""
    if op == 'square':
        return h ** 2
    if op == 'cube':
        return h ** 3
    if op == 'sqrt':
        return h ** 0.5
    if op == 'recip':
        return 1 / h
    if op == 'scale':
        return h * 1.5
    if op == 'shift':
        return h - 0.5
    if op == 'times_x':
        return h * x
    if op == 'plus_x':
        return x + h
    if op == 'self_mul':
        return h * h
    if op == 'sigmoid':
        return 1 / (1 + np.exp(-h)) if F is np else F.sigmoid(h)
    return getattr(F, op)(h)


def run_chain(F, links, x):
    h = x
    for op in links:
        h = chain_step(F, op, h, x)
    return h


def second_derivative(lib, F, x0, links):
    """(first, second) derivatives of the elementwise chain at x0, the
    second by differentiating the recorded first derivative."""
    x = lib.Variable(x0.copy())
    y = run_chain(F, links, x)
    y.backward(create_graph=True)
    gx = x.grad
    x.cleargrad()
    gx.backward()
    return gx.data, x.grad


def first_derivative(x0, links):
    x = cydezero.Variable(x0)
    run_chain(CF, links, x).backward()
    return x.grad.data


@PROFILE
@given(chains())
def test_create_graph_second_derivative_matches_numerical(dezero, chain):
    import dezero.functions as DF
    x0, links = chain
    if not links:
        return
    g1, g2 = second_derivative(cydezero, CF, x0, links)
    d1, d2 = second_derivative(dezero, DF, x0, links)
    # No path from the first derivative back to x (a linear chain) gives no
    # gradient, as in DeZero; numerically it is zero.
    assert (g2 is None) == (d2 is None)
    g2 = np.zeros_like(x0) if g2 is None else g2.data
    d2 = np.zeros_like(x0) if d2 is None else d2.data
    # The first derivative against the NumPy forward, the second against
    # central differences of the first (both elementwise, so the derivative
    # of the sum is the diagonal).
    assert np.allclose(g1, numerical_grad(lambda t: run_chain(np, links, t), x0),
                       rtol=1e-5, atol=1e-6), links
    assert g2.shape == x0.shape
    assert np.allclose(g2, numerical_grad(lambda t: first_derivative(t, links), x0),
                       rtol=1e-5, atol=1e-6), (links, g2)
    assert np.allclose(g1, d1, rtol=1e-12, atol=1e-12)
    assert np.allclose(g2, d2, rtol=1e-12, atol=1e-12), links
