"""A scalar operation (+ - * /, neg, sin, cos, tanh, exp, log, ** a number,
whose result is a C double) is fused into the Variable it makes: no Function object
exists until something reads ``y.creator`` (docs/engine.md). What user code
sees must not change: the creator, its inputs and outputs, gradients bit for
bit, hooks, unchain, copies, and the cycle collector. Truth here is DeZero
0.0.13 on the same program, the same graph with every creator made before
backward, or arithmetic done by hand."""
import copy
import textwrap
import gc
import tracemalloc
import weakref

import numpy as np
import pytest
from hostile_runner import run

import cydezero
import cydezero.functions as F
from cydezero import Function, Variable
from cydezero import _core as C
from cydezero import core_simple

# name: (apply, number of inputs, the creator's class)
OPS = {
    'add': (lambda a, b: a + b, 2, 'Add'),
    'sub': (lambda a, b: a - b, 2, 'Sub'),
    'mul': (lambda a, b: a * b, 2, 'Mul'),
    'div': (lambda a, b: a / b, 2, 'Div'),
    'neg': (lambda a: -a, 1, 'Neg'),
    'sin': (lambda a: F.sin(a), 1, 'Sin'),
    'cos': (lambda a: F.cos(a), 1, 'Cos'),
    'tanh': (lambda a: F.tanh(a), 1, 'Tanh'),
    'exp': (lambda a: F.exp(a), 1, 'Exp'),
    'log': (lambda a: F.log(a), 1, 'Log'),
    'pow': (lambda a: a ** 3, 1, 'Pow'),
}
# The arguments a user's own Function object of each class takes.
MAKE_ARGS = {'Pow': (3,)}


def bits(a):
    return np.asarray(a, dtype=np.float64).tobytes()


def _program(V, Fn, x0, keep):
    """Every fused operation, on a 0-d float64 leaf; each intermediate is
    appended to keep. Returns (output, leaf)."""
    x = V(np.array(x0))
    steps = [
        lambda y: (Fn.sin(y) + y) * 0.5,
        lambda y: Fn.cos(y) - 0.25 / y,
        lambda y: Fn.tanh(y) * Fn.exp(-y),
        lambda y: Fn.log(y * y + 1.0) - y,
        lambda y: 2.0 / (1.5 + y) + y * x,
        # ** a number, and int constants (which the fused path takes too)
        lambda y: y ** 2 - 0.5 * y ** 3 + (y * y + 1) ** 0.5 + y ** -1,
        lambda y: 100 * (1 - y) ** 2 - 3 * (y * y + 1) ** 1.5 / 7 + 2 * y ** 4,
    ]
    y = x
    for step in steps:
        y = step(y)
        keep.append(y)
    return y, x


@pytest.mark.parametrize('name', OPS)
def test_a_scalar_result_is_fused_and_others_are_not(name):
    fn, n, cls = OPS[name]
    x = Variable(np.array(0.7))
    assert C._fused_op_name(fn(*[x] * n)) == cls
    # Arrays, no_grad, anomaly mode, core_simple and a Function object
    # made by the user get an ordinary creator (or none).
    a = Variable(np.array([0.7, 0.8]))
    y = fn(*[a] * n)
    assert C._fused_op_name(y) is None and type(y.creator).__name__ == cls
    with cydezero.no_grad():
        y = fn(*[x] * n)
    assert C._fused_op_name(y) is None and y.creator is None
    with cydezero.detect_anomaly():
        y = fn(*[x] * n)
    assert C._fused_op_name(y) is None and type(y.creator).__name__ == cls
    s = core_simple.Variable(np.array(0.7))
    y = fn(*[s] * n)
    assert C._fused_op_name(y) is None and type(y.creator).__name__ == cls
    f = getattr(C, cls)(*MAKE_ARGS.get(cls, ()))
    y = f(*[x] * n)
    assert C._fused_op_name(y) is None and y.creator is f


@pytest.mark.parametrize('name', OPS)
def test_the_creator_is_made_on_first_read_and_kept(name):
    fn, n, cls = OPS[name]
    x = Variable(np.array(0.7)) * 1.0        # generation 1
    if n == 2:
        y = fn(x, 0.3)
        z = fn(0.3, x)
    else:
        y = z = fn(x)
    # DeZero records 0.3 + x and 0.3 * x as x + 0.3 and x * 0.3.
    for v, const_first in ((y, False), (z, name in ('sub', 'div'))):
        f = v.creator
        assert type(f).__name__ == cls
        assert C._fused_op_name(v) is None
        assert v.creator is f and v.creator is f
        assert f.outputs[0]() is v
        assert f.generation == 1 and v.generation == 2
        ins = f.inputs
        assert len(ins) == n
        if n == 1:
            assert ins[0] is x
            if cls == 'Pow':
                assert f.c == 3 and type(f.c) is int     # the exponent, not an input
        else:
            var, const = (ins[1], ins[0]) if const_first else (ins[0], ins[1])
            assert var is x
            assert isinstance(const, Variable) and float(const.data) == 0.3
            assert f.inputs[0] is ins[0] and f.inputs[1] is ins[1]
    # The Function made is the one backward runs: hooks see its output.
    seen = []
    y.register_hook(lambda g: seen.append(float(g.data)))
    y.backward()
    assert seen == [1.0]


@pytest.mark.parametrize('expr', ['1 - x', '100 * x', 'x / 3', '2 + x', 'x ** 2', 'x ** 0.5'])
def test_int_constants_and_powers_of_a_leaf_are_fused_and_shown_as_dezero_shows_them(
        dezero, expr):
    # A leaf holds its 0-d array and 1, 100, 3 are ints: the fused path
    # takes both now; the creator made on demand must show DeZero's inputs.
    got = []
    for V in (Variable, dezero.Variable):
        x = V(np.array(0.7))
        y = eval(expr, {'x': x})
        if V is Variable:
            # x ** 0.5 is NumPy's (a sqrt), whose result is an array: a Pow
            # Function records it, as any array result of these operations
            assert (C._fused_op_name(y) is None) == (expr == 'x ** 0.5')
        f = y.creator
        ins = [(type(v.data).__name__, str(v.data.dtype), v.data.tolist(), v is x) for v in f.inputs]
        y.backward()
        got.append((type(f).__name__, ins, getattr(f, 'c', None), bits(y.data), bits(x.grad.data)))
    assert got[0] == got[1]


@pytest.mark.parametrize('x0', [0.3, 1.7])
@pytest.mark.parametrize('made', ['none', 'every other', 'all'])
def test_gradients_are_dezeros_whatever_creators_were_made(dezero, x0, made):
    keep = []
    y, x = _program(Variable, F, x0, keep)
    for i, v in enumerate(keep):
        if made == 'all' or (made == 'every other' and i % 2):
            v.creator.inputs       # noqa: B018  (makes the Function)
    y.backward(retain_grad=True)
    want_keep = []
    want_y, want_x = _program(dezero.Variable, dezero.functions, x0, want_keep)
    want_y.backward(retain_grad=True)
    assert bits(y.data) == bits(want_y.data)
    assert bits(x.grad.data) == bits(want_x.grad.data)
    for v, w in zip(keep, want_keep):
        assert bits(v.grad.data) == bits(w.grad.data)


def test_hooks_that_make_creators_in_the_middle_of_a_pass(dezero):
    # A node scheduled as a fused Variable, whose Function is then made by a
    # hook before it runs, runs once, as that Function.
    keep = []
    y, x = _program(Variable, F, 0.9, keep)
    calls = []

    def make_all(g):
        calls.append(1)
        for v in keep:
            v.creator       # noqa: B018
    for v in keep[2:]:
        v.register_hook(make_all)
    y.backward()
    assert len(calls) == len(keep) - 2
    want_y, want_x = _program(dezero.Variable, dezero.functions, 0.9, [])
    want_y.backward()
    assert bits(x.grad.data) == bits(want_x.grad.data)


def test_a_creator_made_while_its_variable_waits_in_the_pass_runs_once(dezero):
    # a is scheduled (as a fused Variable) by whichever of b and c runs
    # first; the other one's hook then makes a's Function before a runs.
    got = []
    for V, Fn in ((Variable, F), (dezero.Variable, dezero.functions)):
        x = V(np.array(0.9))
        a = x * 2.0
        b = Fn.sin(a)
        c = Fn.cos(a)
        y = b * c + a
        if V is Variable:
            for v in (b, c):
                v.register_hook(lambda g, a=a: [a.creator, None][1])
        y.backward()
        got.append(bits(x.grad.data))
    assert got[0] == got[1]
    assert a.creator.outputs[0]() is a


def test_unchain_and_set_creator_on_fused_variables(dezero):
    for V, M in ((Variable, cydezero), (dezero.Variable, dezero)):
        x = V(np.array(2.0))
        y = x * 3.0
        z = y * y
        y.unchain()
        assert y.creator is None
        z.backward()
        assert x.grad is None and float(y.grad.data) == 12.0
        y2 = (x * 3.0) * 5.0
        y2.unchain_backward()
        assert y2.creator is not None and y2.creator.inputs[0].creator is None
        y2.backward()
        assert x.grad is None
        w = x * 3.0
        w.creator = None
        assert w.creator is None
        f = M.Function()
        f.generation = 7
        u = x * 3.0
        u.set_creator(f)
        assert u.creator is f and u.generation == 8
    # grad() names the cut it met.
    x = Variable(np.array(2.0))
    y = x * 3.0
    z = F.sin(y)
    y.unchain()
    with pytest.raises(ValueError, match='unchain'):
        cydezero.grad(z, x)


def test_cycles_through_fused_variables_are_collected():
    run('''
        from cydezero import Parameter

        class Sub(Variable):
            pass

        def dies(make):
            refs = make()
            gc.collect()
            return all(r() is None for r in refs)

        def through_name(V):
            x = V(np.array(2.0))
            y = x * 2.0 + 1.0
            x.name = y              # x -> name -> y -> (fused) x
            return [weakref.ref(x), weakref.ref(y)]

        def through_grad():
            x = Variable(np.array(2.0))
            y = F.sin(x * x) * x
            y.backward(create_graph=True)    # x.grad's graph reaches x
            return [weakref.ref(x), weakref.ref(x.grad)]

        def self_named():
            x = Variable(np.array(1.0))
            x.name = x
            return [weakref.ref(x)]

        print(dies(lambda: through_name(Variable)), dies(lambda: through_name(Parameter)),
              dies(lambda: through_name(Sub)), dies(through_grad), dies(self_named))
    ''', 'True True True True True')


def test_a_fused_chain_alone_is_freed_by_reference_counting():
    gc.collect()
    gc.disable()
    try:
        x = Variable(np.array(1.0))
        y = x
        for _ in range(1000):
            y = F.sin(y) * 1.0001
        y.backward()
        r = weakref.ref(y)
        del y
        assert r() is None
        assert float(x.grad.data) != 0.0
    finally:
        gc.enable()


def test_a_backward_from_a_hook_in_the_middle_of_a_fused_step():
    # Passes nest; each lends Functions of its own.
    x = Variable(np.array(0.5))
    y = F.sin(x) * F.cos(x)
    a = Variable(np.array(0.25))
    b = F.exp(a) * a
    inner = []

    def hook(g):
        b.backward()
        inner.append(float(a.grad.data))
    y.register_hook(hook)
    y.backward()
    assert inner == [np.exp(0.25) * 1.25]
    assert float(x.grad.data) == pytest.approx(np.cos(2 * 0.5))


def test_anomaly_mode_in_backward_names_the_fused_operation():
    x = Variable(np.array(0.0))
    with np.errstate(all='ignore'):
        y = F.log(x) * 0.0       # built outside anomaly mode: fused
        with cydezero.detect_anomaly(), pytest.raises(FloatingPointError, match='Log'):
            y.backward()
    assert x.grad is None


def test_profile_counts_fused_operations_under_their_class():
    x = Variable(np.array(0.5))
    y0 = F.cos(x) - x                    # built outside the block
    with cydezero.profile() as r:
        y = F.sin(x) * 2.0 + x
        assert C._fused_op_name(y) == 'Add' and C._fused_op_name(y0) == 'Sub'
        y.backward()
        y0.backward()
    calls = {k: (v['forward_calls'], v['backward_calls']) for k, v in r.stats.items()}
    assert calls == {'Sin': (1, 1), 'Mul': (1, 1), 'Add': (1, 1), 'Cos': (0, 1), 'Sub': (0, 1)}
    assert float(x.grad.data) == pytest.approx(2 * np.cos(0.5) + 1 - np.sin(0.5) - 1)


def test_copies_of_a_fused_variable_share_its_creator():
    x = Variable(np.array(2.0))
    y = x * 3.0
    c = copy.copy(y)
    assert c.creator is y.creator and type(c.creator).__name__ == 'Mul'
    assert y.creator.outputs[0]() is y
    assert float(c.data) == 6.0


def test_a_live_scalar_chain_takes_one_object_a_node():
    # A Variable (112 bytes with its cycle-collector header) and its value
    # (a 24-byte double); with a Function a node it took 232.
    x = Variable(np.array(1.0))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        y = x
        for _ in range(20000):
            y = y * 1.0000001
        per_node = (tracemalloc.get_traced_memory()[0] - before) / 20000
    finally:
        tracemalloc.stop()
    assert per_node < 160, per_node
    y.backward()
    assert float(x.grad.data) == pytest.approx(1.0000001 ** 20000)


def test_a_python_function_and_a_fused_node_in_one_graph(dezero):
    for V, Fn, Base in ((Variable, F, Function), (dezero.Variable, dezero.functions,
                                                   dezero.Function)):
        class Square(Base):
            def forward(self, x):
                return x ** 2

            def backward(self, gy):
                return 2 * self.inputs[0] * gy
        x = V(np.array(1.5))
        y = Fn.sin(Square()(x * 2.0)) + x
        y.backward()
        if V is Variable:
            got = x.grad.data
        else:
            want = x.grad.data
    assert bits(got) == bits(want)


HOSTILE_HOOKS = {
    'walk everything': '''
        gc.collect()
        for o in gc.get_objects():
            if isinstance(o, Function):
                o.inputs; o.outputs; o.generation
            elif isinstance(o, Variable):
                o.creator; o.grad; o.generation; repr(o)
        for v in keep:
            gc.get_referrers(v); gc.get_referents(v)
    ''',
    'unchain a waiting node': 'keep[1].unchain()',
    'unchain_backward the root': 'keep[-1].unchain_backward()',
    'give a waiting node another creator': '''
        f = Function(); f.generation = 0
        keep[1].set_creator(f)
    ''',
    'relink a creator': 'keep[2].creator.outputs = [keep[1]]',
    'drop data and grads': '''
        for v in keep[:3]:
            v.data = None
            v.grad = None
    ''',
}


@pytest.mark.parametrize('hook', HOSTILE_HOOKS)
def test_hostile_hooks_on_a_fused_graph_do_what_they_do_on_creators(hook):
    # The same program twice: with every creator made before backward, and
    # fused. The hook runs when keep[3]'s gradient is complete, with keep[2]
    # and below still to run. Both must survive and print the same.
    body = textwrap.indent(textwrap.dedent(HOSTILE_HOOKS[hook]).strip(), ' ' * 16)
    out = run('''
        def once(make_creators):
            x = Variable(np.array(0.4))
            keep = []
            y = x
            for i in range(6):
                y = F.sin(y) * 1.5 + y if i % 2 else F.tanh(y) - 0.25 * y
                keep.append(y)
            if make_creators:
                for v in keep:
                    v.creator
            def hook(g):
BODY
            keep[3].register_hook(hook)
            try:
                keep[-1].backward()
                r = grads(x)
            except Exception as e:
                r = type(e).__name__
            del keep, y
            gc.collect()
            return r
        a, b = once(True), once(False)
        print(a == b, a)
    '''.replace('BODY', body))
    assert out[-1].startswith("True"), out


def test_a_resurrected_variable_after_the_collector_cleared_it():
    # tp_clear may run on a Variable that a __del__ then resurrects: it is
    # left a leaf without .grad or .name, which every use must survive.
    run('''
        saved = []

        class Phoenix(Variable):
            def __del__(self):
                saved.append(self)

        x = Phoenix(np.array(2.0))
        y = x * 3.0 + 1.0            # fused: y holds x
        x.name = y                   # x -> name -> y -> x
        x.grad = Variable(np.array(1.0))
        del x, y
        gc.collect()
        for v in saved:
            v.creator; v.grad; v.name; repr(v); v.unchain_backward()
            z = v * 2.0
            z.backward()
        print('ok', len(saved) >= 1)
    ''', 'ok True')


def test_a_deep_fused_chain_on_a_cycle_is_collected():
    # One edge closes a cycle through 200,000 fused Variables; the collector
    # clears one of them and reference counting frees the rest (no
    # recursion: Variable's deallocation uses the trashcan).
    run('''
        x = Variable(np.array(1.0))
        y = x
        for _ in range(200000):
            y = y * 1.0000001
        x.name = y
        r = weakref.ref(y)
        del x, y
        gc.collect()
        print('freed', r() is None)
    ''', 'freed True')


def test_a_creator_made_while_the_first_gradient_is_added_still_runs():
    # Adding a's first gradient of the pass runs Python code (an array
    # subclass's __array_ufunc__) that makes a's Function: a must still run
    # (the pass decides from what a was before the gradient was added).
    def run(read):
        x = Variable(np.array(0.7))
        a = x * 2.0
        y = F.sin(a) * 3.0
        y.backward(retain_grad=True)     # a keeps a .grad: the next pass adds to it
        x.cleargrad()
        y.cleargrad()
        adds = []

        class Spy(np.ndarray):
            def __array_ufunc__(self, ufunc, method, *inputs, **kw):
                if ufunc is np.add:
                    adds.append(1)
                    if read and len(adds) == 2:     # the add into a
                        assert C._fused_op_name(a) == 'Mul'
                        a.creator       # noqa: B018
                args = [np.asarray(i) if isinstance(i, Spy) else i for i in inputs]
                return np.asarray(getattr(ufunc, method)(*args, **kw)).view(Spy)
        y.grad = Variable(np.array(1.0, dtype=np.float32).view(Spy))
        y.backward()
        assert len(adds) >= 2
        return float(x.grad.data)
    # The retained .grad of sin(a) (3) and of a (3 cos 1.4) are added to:
    # dx = 2 * (3 cos 1.4 + cos 1.4 * (3 + 3)).
    assert run(True) == run(False) == pytest.approx(18.0 * np.cos(1.4))


class _PythonStep(Function):
    """The identity as a Python Function, which the pass cannot fuse; its
    backward raises while fail() says so."""
    fail = staticmethod(lambda: False)

    def forward(self, v):
        return v * 1.0

    def backward(self, gy):
        if self.fail():
            raise RuntimeError('boom')
        return gy


def _scalar_graph_with_a_python_step(fail):
    """x -> a chain of fused nodes, with a _PythonStep in the middle that
    fails while fail() says so. Returns (x, y, the nodes)."""
    step = _PythonStep()
    step.fail = fail
    x = Variable(np.array(0.7))
    a = F.sin(x) * 3.0          # fused, below the Python step
    b = a + x                   # fused, below it too
    c = step(b)
    d = F.tanh(c) * b           # fused, above it: b also gets a gradient from d
    y = d * d + a               # a gets one before the step runs, and waits
    return x, y, [a, b, c, d, y]


def test_a_failed_pass_leaves_no_gradient_on_the_nodes_it_did_not_reach():
    # The pass does not record every fused node it schedules (its step
    # releases the gradient); a pass that fails between must still leave
    # none behind, on the waiting nodes nor on the one that was running.
    failing = [True]
    x, y, nodes = _scalar_graph_with_a_python_step(lambda: failing[0])
    with pytest.raises(RuntimeError, match='boom'):
        y.backward()
    assert x.grad is None
    assert [C._holds_pass_grad(v) for v in nodes + [x]] == [False] * 6
    assert any(C._fused_op_name(v) is not None for v in nodes)     # the lean path ran
    # The graph is differentiated again as it would have been the first time.
    failing[0] = False
    y.backward()
    x2, y2, _ = _scalar_graph_with_a_python_step(lambda: False)
    y2.backward()
    assert bits(x.grad.data) == bits(x2.grad.data)
    assert [C._holds_pass_grad(v) for v in nodes + [x]] == [False] * 6


@pytest.mark.parametrize('retain', [False, True])
def test_a_gradient_that_comes_after_its_nodes_step_ran_is_not_left_behind(retain):
    # A user who lowers a creator's generation makes it run after a node
    # below it: that node (fused) gets a gradient once its own step has run.
    x = Variable(np.array(0.3))
    a = x * 2.0
    b = _PythonStep()(a)
    b.creator.generation = -1
    y = a * 3.0 + b
    y.backward(retain_grad=retain)
    assert not C._holds_pass_grad(a) and not C._holds_pass_grad(x)
    assert x.grad.data == 2.0 * 3.0     # the gradient through b came too late for x
    if retain:
        assert a.grad.data == 3.0 + 1.0     # but it is in a's
        return
    y.backward()    # a second pass is not taken for a conflict with the first
    assert not C._holds_pass_grad(a) and x.grad.data == 2 * (2.0 * 3.0)


def test_a_waiting_fused_node_unchained_by_a_hook_keeps_its_gradient_as_a_leaf():
    # a waits in the pass (c's step gave it its first gradient) when b's
    # hook cuts it: it no longer runs, and what it got is its .grad, as a
    # leaf's, in one pass as in the other.
    for lean in (True, False):
        x = Variable(np.array(0.4))
        a = x * 2.0
        b = F.sin(a)
        c = F.cos(a)
        y = b * c
        b.register_hook(lambda g, a=a: [a.unchain(), None][1])
        y.backward(retain_grad=not lean)
        assert x.grad is None and a.creator is None
        v = 0.8
        assert float(a.grad.data) == pytest.approx(np.cos(v) ** 2 - np.sin(v) ** 2, rel=1e-15)
        assert not any(C._holds_pass_grad(n) for n in (x, a, b, c, y))
