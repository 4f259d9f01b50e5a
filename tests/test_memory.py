"""Memory behaviour of the engine: graphs are freed by reference counting
alone (the cycle collector is switched off while they live and die),
intermediate gradients do not outlive backward, very deep graphs build,
differentiate and free without recursion, and a long training loop keeps a
flat resident size. The big runs happen in a subprocess so that a crash
fails the test instead of killing pytest."""
import contextlib
import gc
import json
import math
import subprocess
import sys
import textwrap
import weakref

import numpy as np
import pytest
from conftest import numerical_grad

import cydezero
import cydezero.functions as F
from cydezero import Function, Variable


@contextlib.contextmanager
def gc_disabled():
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def graph_nodes(*roots):
    """Weak references to every Variable and Function reachable from roots
    (through creators, inputs, outputs and gradients)."""
    seen, refs = set(), []
    stack = list(roots)
    while stack:
        obj = stack.pop()
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        refs.append(weakref.ref(obj))
        if isinstance(obj, Variable):
            stack += [obj.creator, obj.grad]
        elif isinstance(obj, Function):
            stack += list(obj.inputs or [])
            stack += [r() for r in obj.outputs or []]
    return refs


def assert_all_dead(refs, what):
    alive = [r() for r in refs if r() is not None]
    assert not alive, f'{what}: {len(alive)} of {len(refs)} nodes still alive: {[type(o).__name__ for o in alive][:10]}'
    del alive


def no_node_in_cyclic_garbage():
    """Run the cycle collector in DEBUG_SAVEALL mode and return the graph
    nodes it found unreachable (there must be none)."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = [type(o).__name__ for o in gc.garbage if isinstance(o, (Variable, Function))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    return found


# --- graphs to build ------------------------------------------------------------

class Square(Function):
    def forward(self, x):
        return x ** 2

    def backward(self, gy):
        x, = self.inputs
        return 2 * x * gy


class Split(Function):
    """Two outputs: the first half and the second half of a vector."""

    def forward(self, x):
        n = len(x) // 2
        return x[:n].copy(), x[n:].copy()

    def backward(self, g0, g1):
        # An unused output gets no gradient (None), as in DeZero.
        x, = self.inputs
        n = len(x) // 2
        g0 = Variable(np.zeros(n)) if g0 is None else g0
        g1 = Variable(np.zeros(len(x) - n)) if g1 is None else g1
        return _concat(g0, g1)


class _Concat(Function):
    def forward(self, a, b):
        return np.concatenate([a, b])

    def backward(self, gy):
        n = self.inputs[0].shape[0]
        return gy[:n], gy[n:]


def _concat(a, b):
    return _Concat()(a, b)


def chain(x):
    y = x
    for _ in range(50):
        y = F.sin(y) * 0.9 + 0.1
    return y


def branches(x):
    a = x * 2
    b, c = F.sin(a), F.cos(a)
    return (b * c + F.exp(-a)).sum()


def diamond(x):
    a = x * x
    b = F.tanh(a)
    c = a ** 2
    return F.sum(b + c + a)


def multi_output(x):
    lo, hi = Split()(x)
    return F.sum(lo * hi) + F.sum(Split()(lo * 2)[1])


def python_function(x):
    return F.sum(Square()(Square()(x) + x))


GRAPHS = [chain, branches, diamond, multi_output, python_function]


def expected_grad(build, x0):
    return numerical_grad(lambda t: build(Variable(t)).data, x0)


@pytest.mark.parametrize('build', GRAPHS, ids=[g.__name__ for g in GRAPHS])
def test_graph_is_freed_by_reference_counting_alone(build):
    x0 = np.linspace(0.2, 0.9, 4)
    with gc_disabled():
        x = Variable(x0.copy())
        y = build(x)
        y.backward()
        assert np.allclose(x.grad.data, expected_grad(build, x0), rtol=1e-6, atol=1e-8)
        refs = graph_nodes(y)
        assert len(refs) > 5
        assert all(r() is not None for r in refs)
        del y
        refs = [r for r in refs if r() is not x and r() is not x.grad]
        assert_all_dead(refs, build.__name__)
        grad_ref = weakref.ref(x.grad)
        del x
        assert grad_ref() is None
        assert no_node_in_cyclic_garbage() == []


@pytest.mark.parametrize('build', GRAPHS, ids=[g.__name__ for g in GRAPHS])
def test_forward_only_graph_is_freed_without_backward(build):
    with gc_disabled():
        x = Variable(np.linspace(0.2, 0.9, 4))
        y = build(x)
        refs = [r for r in graph_nodes(y) if r() is not x]
        del y
        assert_all_dead(refs, build.__name__)
        assert no_node_in_cyclic_garbage() == []


@pytest.mark.parametrize('build', GRAPHS, ids=[g.__name__ for g in GRAPHS])
def test_create_graph_second_order_graph_is_freed(build):
    x0 = np.linspace(0.2, 0.9, 4)
    with gc_disabled():
        x = Variable(x0.copy())
        y = build(x)
        y.backward(create_graph=True)
        gx = x.grad
        assert gx.creator is not None, 'create_graph must record the backward pass'
        x.cleargrad()
        F.sum(gx * gx).backward()
        # d/dx sum(g(x)^2) = 2 g(x) g'(x): compare with differences of g.
        num = numerical_grad(
            lambda t: _first_grad(build, t) ** 2, x0)
        assert np.allclose(x.grad.data, num, rtol=1e-5, atol=1e-7)
        refs = [r for r in graph_nodes(y, gx, x.grad) if r() is not x]
        assert len(refs) > 10
        del y, gx
        x.cleargrad()
        assert_all_dead(refs, build.__name__)
        assert no_node_in_cyclic_garbage() == []


def _first_grad(build, t):
    x = Variable(t)
    build(x).backward()
    return x.grad.data


def test_graph_kept_alive_by_a_gradient_dies_with_it():
    with gc_disabled():
        x = Variable(np.array(0.5))
        y = F.sin(x) ** 3
        y.backward(create_graph=True)
        del y
        # x.grad's creator graph still holds (weakly) what it needs: freeing
        # the gradient frees the whole recorded backward graph.
        refs = [r for r in graph_nodes(x.grad) if r() is not x]
        assert any(isinstance(r(), Function) for r in refs)
        x.cleargrad()
        assert_all_dead(refs, 'recorded backward graph')


def test_unchain_backward_frees_the_graph_behind():
    with gc_disabled():
        x = Variable(np.ones(3))
        h = chain(x)
        y = F.sum(h)
        # As in DeZero, h keeps its creator and that creator its inputs;
        # everything further back is cut loose.
        kept = [x, h, h.creator] + h.creator.inputs
        refs = [r for r in graph_nodes(h) if not any(r() is k for k in kept)]
        assert len(refs) > 100
        h.unchain_backward()
        del kept
        assert_all_dead(refs, 'graph behind unchain_backward')
        y.backward()
        assert x.grad is None and h.creator is not None


# --- intermediate gradients -----------------------------------------------------

def _intermediate_graph(lib, LF, x0):
    x = lib.Variable(x0.copy())
    a = x * 2
    b = LF.sin(a)
    c = a * b + x
    y = LF.sum(c)
    return x, [a, b, c, y]


@pytest.mark.parametrize('retain', [False, True])
def test_intermediate_gradients_only_with_retain_grad(dezero, retain):
    import dezero.functions as DF
    x0 = np.array([0.3, -0.7, 1.1])
    x, mids = _intermediate_graph(cydezero, F, x0)
    mids[-1].backward(retain_grad=retain)
    dx, dmids = _intermediate_graph(dezero, DF, x0)
    dmids[-1].backward(retain_grad=retain)
    assert np.array_equal(x.grad.data, dx.grad.data)
    for v, d in zip(mids, dmids):
        if retain:
            assert v.grad is not None and np.array_equal(v.grad.data, d.grad.data)
        else:
            assert v.grad is None and d.grad is None
    if retain:
        # a's gradient: d/da sum(a sin a + x) = sin a + a cos a.
        a = 2 * x0
        assert np.allclose(mids[0].grad.data, np.sin(a) + a * np.cos(a))


def test_intermediate_gradient_arrays_are_released_after_backward():
    seen = []

    with gc_disabled():
        x = Variable(np.linspace(0.1, 0.8, 5))
        a = F.sin(x)
        b = a * a
        a.register_hook(lambda g: seen.append((weakref.ref(g), weakref.ref(g.data))))
        F.sum(b * 3).backward()
        assert len(seen) == 1
        assert all(r() is None for r in seen[0]), "a's gradient outlived backward"
        assert a.grad is None and b.grad is None
        assert np.allclose(x.grad.data, 6 * np.sin(x.data) * np.cos(x.data))


# --- very deep graphs, in a subprocess -------------------------------------------

def run_script(code, timeout=120):
    """Run code in a fresh interpreter; return the JSON object it printed last."""
    proc = subprocess.run([sys.executable, '-c', code],
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f'subprocess died with {proc.returncode}:\n{proc.stderr[-3000:]}'
    return json.loads(proc.stdout.strip().splitlines()[-1])


DEEP = '''
import gc, json, math, sys, weakref
import numpy as np
import cydezero
from cydezero import Variable
import cydezero.functions as F
gc.collect()
gc.disable()
sys.setrecursionlimit(1000)   # any recursion over the graph would fail

def cyclic_nodes():
    # Graph nodes the cycle collector would have to free (there must be none).
    gc.set_debug(gc.DEBUG_SAVEALL)
    gc.collect()
    n = sum(isinstance(o, (Variable, cydezero.Function)) for o in gc.garbage)
    gc.set_debug(0)
    gc.garbage.clear()
    return n
'''


def sin_chain_derivatives(x0, n):
    """y_n = sin(y_{n-1}): value, first and second derivative by recurrence."""
    y, d, s = x0, 1.0, 0.0
    for _ in range(n):
        s = -math.sin(y) * d * d + math.cos(y) * s
        d = math.cos(y) * d
        y = math.sin(y)
    return y, d, s


def test_million_node_chain_builds_differentiates_and_frees_in_subprocess():
    out = run_script(DEEP + textwrap.dedent('''
        x = Variable(np.array(1.2))
        y = F.sin(x)
        first = weakref.ref(y.creator)
        for _ in range(1_000_000 - 1):
            y = F.sin(y)
        y.backward()
        grad = float(x.grad.data)
        value = float(y.data)
        probe = weakref.ref(y.creator)
        del y
        print(json.dumps({'grad': grad, 'value': value, 'freed': probe() is None
                          and first() is None, 'garbage': cyclic_nodes()}))
    '''))
    value, d, _ = sin_chain_derivatives(1.2, 1_000_000)
    assert out['value'] == pytest.approx(value, rel=1e-12)
    assert out['grad'] == pytest.approx(d, rel=1e-9)
    assert out['freed'] is True
    assert out['garbage'] == 0


def test_create_graph_on_a_deep_chain_then_backward_of_the_gradient():
    n = 100_000
    out = run_script(DEEP + textwrap.dedent(f'''
        n = {n}
        x = Variable(np.array(1.2))
        y = x
        for _ in range(n):
            y = F.sin(y)
        y.backward(create_graph=True)
        gx = x.grad
        x.cleargrad()
        gx.backward()
        first, second = float(gx.data), float(x.grad.data)
        probes = [weakref.ref(y.creator), weakref.ref(gx.creator)]
        del y, gx
        x.cleargrad()
        print(json.dumps({{'first': first, 'second': second,
                          'freed': all(p() is None for p in probes),
                          'garbage': cyclic_nodes()}}))
    '''))
    _, d, s = sin_chain_derivatives(1.2, n)
    assert out['first'] == pytest.approx(d, rel=1e-9)
    assert out['second'] == pytest.approx(s, rel=1e-7)
    assert out['freed'] is True
    assert out['garbage'] == 0


# --- a long training run keeps a flat memory -------------------------------------

SOAK = '''
import gc, json, sys
import numpy as np
import cydezero.functions as F
from cydezero import Variable

def rss():
    try:
        with open('/proc/self/statm') as f:
            import os
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    except OSError:
        import tracemalloc
        return tracemalloc.get_traced_memory()[0]

if not sys.platform.startswith('linux'):
    import tracemalloc
    tracemalloc.start()

rng = np.random.default_rng(0)
x = rng.uniform(-1, 1, (8, 1))
t = np.sin(3 * x)
W1, b1 = Variable(rng.normal(0, 1, (1, 4))), Variable(np.zeros(4))
W2, b2 = Variable(rng.normal(0, 1, (4, 1))), Variable(np.zeros(1))
params = [W1, b1, W2, b2]

def step():
    h = F.sigmoid(F.linear(x, W1, b1))
    y = F.linear(h, W2, b2)
    loss = F.mean_squared_error(y, t)
    for p in params:
        p.cleargrad()
    loss.backward()
    for p in params:
        p.data -= 0.2 * p.grad.data
    return float(loss.data)

steps, warm = {steps}, {warm}
gc.collect()
gc.disable()   # whatever is freed, reference counting frees it
first = None
for i in range(warm):
    loss = step()
    first = loss if first is None else first
gc.collect()
before = rss()
for i in range(steps - warm):
    loss = step()
gc.collect()
after = rss()
print(json.dumps({{'before': before, 'after': after, 'first': first, 'last': loss,
                  'gc_enabled': gc.isenabled()}}))
'''


def test_training_soak_keeps_resident_memory_flat():
    out = run_script(SOAK.format(steps=100_000, warm=5_000), timeout=300)
    assert out['gc_enabled'] is False
    assert out['last'] < out['first'] / 2, f'the MLP did not train: {out}'
    growth = (out['after'] - out['before']) / out['before']
    assert growth < 0.05, f'RSS grew by {growth:.1%} over 95,000 steps: {out}'
