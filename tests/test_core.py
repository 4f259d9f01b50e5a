"""The graph engine: Variable, Function, backward, and the core operations."""
import gc
import threading
import weakref

import numpy as np
import pytest
from conftest import numerical_grad

import cydezero
from cydezero import Config, Function, Variable, no_grad, using_config
from cydezero import _core as C


def square(x):
    return x ** 2


# --- the seeds' walk-through ------------------------------------------------

def test_seed_example_matches_closed_form():
    x = Variable(np.array(0.5))
    y = square(C.exp(square(x)))
    y.backward()
    assert x.grad.data == pytest.approx(3.297442541400256, rel=1e-15)
    assert x.grad.data == pytest.approx(4 * 0.5 * np.exp(2 * 0.25))


def test_same_variable_twice_accumulates_and_cleargrad_restarts():
    x = Variable(np.array(3.0))
    y = x + x
    y.backward()
    assert x.grad.data == 2.0
    x.cleargrad()
    y = x + x + x
    y.backward()
    assert x.grad.data == 3.0


def test_gradients_add_up_across_backward_calls():
    x = Variable(np.array(3.0))
    (x * x).backward()
    first = x.grad
    (x * x).backward()
    assert x.grad.data == 12.0
    assert first.data == 6.0, "accumulation must not modify a gradient someone holds"


def test_diamond_graph_needs_generations():
    x = Variable(np.array(2.0))
    a = square(x)
    y = square(a) + square(a)
    y.backward()
    assert y.data == 32.0
    assert x.grad.data == 64.0


def test_generations_are_recorded():
    x = Variable(np.array(1.0))
    a = C.sin(x)
    b = a * x
    assert x.generation == 0 and a.generation == 1 and b.generation == 2
    assert b.creator.generation == 1
    assert b.creator.inputs[0] is a and b.creator.inputs[1] is x
    assert b.creator.outputs[0]() is b


class TwoOut(Function):
    def forward(self, x):
        return x * 2, x * 3

    def backward(self, gy0, gy1):
        return gy0 * 2 + gy1 * 3


class Sum3(Function):
    def forward(self, a, b, c):
        return a + b + c

    def backward(self, gy):
        return gy, gy * 1, gy


def test_variable_length_inputs_and_outputs():
    x = Variable(np.array(1.5))
    y0, y1 = TwoOut()(x)
    assert y0.data == 3.0 and y1.data == 4.5
    z = Sum3()(y0, y1, x)
    z.backward()
    assert x.grad.data == 6.0


def test_outputs_are_weak_and_graph_is_freed_without_gc():
    gc.disable()
    try:
        x = Variable(np.array(1.0))
        y = C.exp(x)
        z = y * 2
        f = z.creator
        ref_f, ref_y, ref_z = weakref.ref(f), weakref.ref(y), weakref.ref(z)
        del f, y
        assert ref_y() is not None, "y is an input of z's creator"
        del z
        assert ref_z() is None and ref_f() is None and ref_y() is None
    finally:
        gc.enable()


def test_function_outputs_report_dead_outputs_as_none():
    x = Variable(np.array(1.0))
    f = C.Exp()
    y = f(x)
    assert f.outputs[0]() is y
    del y
    assert f.outputs[0]() is None


def test_retain_grad():
    x = Variable(np.array(2.0))
    a = square(x)
    y = a * 3
    y.backward()
    assert a.grad is None and y.grad is None
    assert x.grad.data == 12.0
    x.cleargrad()
    y = square(x) * 3
    a = y.creator.inputs[0]
    y.backward(retain_grad=True)
    assert a.grad.data == 3.0 and y.grad.data == 1.0


def test_intermediate_gradients_are_freed_during_backward():
    refs = {}

    class Probe(Function):
        def forward(self, x):
            return x.copy()

        def backward(self, gy):
            refs['gy'] = weakref.ref(gy.data)
            return gy * 1

    class First(Function):
        def forward(self, x):
            return x.copy()

        def backward(self, gy):
            refs['alive_during_next'] = refs['gy']() is not None
            return gy

    def run(retain):
        x = Variable(np.ones(4))
        b = Probe()(First()(x))
        (b * 3).backward(retain_grad=retain)
        return x, b

    x, b = run(retain=False)
    assert refs['alive_during_next'] is False, "b's gradient outlived its consumer"
    assert b.grad is None and np.array_equal(x.grad.data, [3.0] * 4)
    x, b = run(retain=True)
    assert refs['alive_during_next'] is True
    assert np.array_equal(b.grad.data, [3.0] * 4)


# --- configuration -------------------------------------------------------------

def test_no_grad_records_nothing_and_restores():
    x = Variable(np.array(2.0))
    with no_grad():
        y = x * 2
        assert Config.enable_backprop is False
    assert Config.enable_backprop is True
    assert y.creator is None and y.generation == 0


def test_using_config_restores_on_exception():
    with pytest.raises(RuntimeError), using_config('enable_backprop', False):
        raise RuntimeError('boom')
    assert Config.enable_backprop is True
    with pytest.raises(RuntimeError), cydezero.test_mode():
        assert Config.train is False
        raise RuntimeError('boom')
    assert Config.train is True


def test_config_assignment_like_dezero_code():
    Config.enable_backprop = False
    try:
        y = Variable(np.array(1.0)) * 2
        assert y.creator is None
    finally:
        Config.enable_backprop = True
    assert (Variable(np.array(1.0)) * 2).creator is not None


def test_config_is_per_thread():
    inside = threading.Event()
    release = threading.Event()
    seen = {}

    def worker():
        with no_grad():
            inside.set()
            release.wait(5)
            seen['worker'] = Config.enable_backprop

    t = threading.Thread(target=worker)
    t.start()
    inside.wait(5)
    y = Variable(np.array(1.0)) * 2
    seen['main'] = Config.enable_backprop
    release.set()
    t.join()
    assert seen == {'main': True, 'worker': False}
    assert y.creator is not None

    def fresh():
        seen['fresh'] = (Config.enable_backprop, Config.train)

    with no_grad(), cydezero.test_mode():
        t = threading.Thread(target=fresh)
        t.start()
        t.join()
    assert seen['fresh'] == (True, True)


def test_no_grad_as_decorator():
    @no_grad()
    def f(x):
        return x * 2

    assert f(Variable(np.array(1.0))).creator is None


# --- Variable -------------------------------------------------------------------

def test_names_and_repr():
    x = Variable(np.array([[1.0, 2.0], [3.0, 4.0]]), name='x')
    assert x.name == 'x'
    assert repr(x) == 'variable([[1. 2.]\n          [3. 4.]])'
    assert repr(Variable(None)) == 'variable(None)'
    assert repr(Variable(np.array(1.5))) == 'variable(1.5)'
    assert x.shape == (2, 2) and x.ndim == 2 and x.size == 4 and x.dtype == np.float64
    assert len(x) == 2


def test_variable_rejects_non_arrays():
    with pytest.raises(TypeError) as e:
        Variable(1.0)
    assert str(e.value) == "<class 'float'> is not supported"
    with pytest.raises(TypeError):
        Variable([1, 2])


def test_parameter_is_a_variable():
    p = cydezero.Parameter(np.ones(3), name='W')
    assert isinstance(p, Variable) and p.name == 'W'
    assert not isinstance(Variable(np.ones(1)), cydezero.Parameter)


def test_unchain_backward_cuts_the_graph():
    x = Variable(np.array(1.0))
    y = C.sin(x) * 2
    z = y + 1
    y.unchain_backward()
    assert y.creator is not None  # y itself keeps its creator, as in DeZero
    assert y.creator.inputs[0].creator is None
    z.unchain()
    assert z.creator is None


def test_outputs_are_always_arrays():
    x = Variable(np.array(2.0))
    for y in (x + 1, x * x, -x, x ** 2, C.sin(x), x.sum(), x / 3, 2 - x):
        assert type(y.data) is np.ndarray and y.data.ndim == 0


def test_set_creator_sets_generation():
    f = C.Exp()
    f.generation = 4
    v = Variable(np.array(1.0))
    v.set_creator(f)
    assert v.creator is f and v.generation == 5


# --- operators ------------------------------------------------------------------

OPS = [
    (lambda a, b: a + b, np.add),
    (lambda a, b: a - b, np.subtract),
    (lambda a, b: a * b, np.multiply),
    (lambda a, b: a / b, np.divide),
]


@pytest.mark.parametrize('op, ref', OPS)
@pytest.mark.parametrize('sa, sb', [((3,), (3,)), ((2, 3), (3,)), ((2, 1), (1, 3)), ((), (2, 2))])
def test_binary_operators_broadcast_and_differentiate(op, ref, sa, sb):
    rng = np.random.default_rng(0)
    a = np.asarray(rng.random(sa) + 0.5)
    b = np.asarray(rng.random(sb) + 0.5)
    va, vb = Variable(a), Variable(b)
    y = op(va, vb)
    assert np.allclose(y.data, ref(a, b))
    y.backward()
    assert va.grad.shape == a.shape and vb.grad.shape == b.shape
    assert np.allclose(va.grad.data, numerical_grad(lambda t: ref(t, b), a))
    assert np.allclose(vb.grad.data, numerical_grad(lambda t: ref(a, t), b))


@pytest.mark.parametrize('op, ref', OPS)
@pytest.mark.parametrize('other', [2.0, 3, np.array(2.5), np.array([1.0, 2.0, 4.0]), np.float64(1.5)])
def test_operators_with_constants_on_either_side(op, ref, other):
    a = np.array([0.5, 1.5, 2.5])
    x = Variable(a)
    left = op(x, other)
    right = op(other, x)
    assert isinstance(left, Variable) and isinstance(right, Variable)
    assert np.allclose(left.data, ref(a, other))
    assert np.allclose(right.data, ref(other, a))
    (left + right).backward()
    expected = numerical_grad(lambda t: ref(t, other) + ref(other, t), a)
    assert np.allclose(x.grad.data, expected)


def test_neg_and_pow():
    a = np.array([0.5, 1.5, -2.0])
    x = Variable(a)
    y = -x ** 3
    y.backward()
    assert np.allclose(y.data, -a ** 3)
    assert np.allclose(x.grad.data, -3 * a ** 2)


def test_float32_stays_float32_with_python_scalars():
    x = Variable(np.ones(3, dtype=np.float32))
    y = (x * 0.5 + 1) / 2 - 3
    assert y.dtype == np.float32
    y.backward()
    assert x.grad.dtype == np.float32


# --- shape operations and the rest of the core ops -----------------------------------

def check_grad(fn, *arrays, **kw):
    vs = [Variable(a.copy()) for a in arrays]
    y = fn(*vs)
    y.backward()
    for i, (a, v) in enumerate(zip(arrays, vs)):
        def f_i(t, i=i):
            args = [Variable(b) for b in arrays]
            args[i] = Variable(t)
            return fn(*args).data
        assert np.allclose(v.grad.data, numerical_grad(f_i, a), **kw), i


R = np.random.default_rng(1)
K342 = R.random((3, 4, 2))
K32 = R.random((3, 2))
K23 = R.random((2, 3))
K33 = R.random((3, 3))
K22 = R.random((2, 2))


@pytest.mark.parametrize('fn, shapes', [
    (lambda x: C.sin(x), [(3, 2)]),
    (lambda x: C.cos(x), [(4,)]),
    (lambda x: C.tanh(x), [(2, 3)]),
    (lambda x: C.exp(x), [(2, 2)]),
    (lambda x: C.log(x), [(3,)]),
    (lambda x: C.reshape(x, (3, 2)), [(2, 3)]),
    (lambda x: x.reshape(6) * np.arange(6), [(2, 3)]),
    (lambda x: C.transpose(x) * np.arange(6).reshape(3, 2), [(2, 3)]),
    (lambda x: x.transpose(1, 2, 0) * K342, [(2, 3, 4)]),
    (lambda x: x.T * K32, [(2, 3)]),
    (lambda x: C.sum(x, axis=0) * np.arange(3), [(2, 3)]),
    (lambda x: C.sum(x, axis=(0, 2), keepdims=True) * np.arange(3).reshape(1, 3, 1), [(2, 3, 4)]),
    (lambda x: x.sum(axis=-1) * np.arange(2), [(2, 3)]),
    (lambda x: C.sum_to(x, (1, 3)) * np.arange(3), [(2, 3)]),
    (lambda x: C.broadcast_to(x, (2, 3)) * K23, [(1, 3)]),
    (lambda x, W: C.matmul(x, W), [(2, 3), (3, 4)]),
    (lambda x, W: x.dot(W), [(2, 3), (3, 4)]),
    (lambda x: x[1] * np.arange(3), [(2, 3)]),
    (lambda x: x[np.array([0, 0, 1])] * K33, [(2, 3)]),
    (lambda x: x[:, 1:] * K22, [(2, 3)]),
    (lambda x: C.max(x, axis=1) * np.arange(1, 3), [(2, 3)]),
    (lambda x: x.min(axis=0, keepdims=True) * np.arange(1, 4), [(2, 3)]),
    (lambda x: C.max(x), [(3, 3)]),
])
def test_core_ops_match_numerical_gradient(fn, shapes):
    arrays = [R.random(s) + 0.1 for s in shapes]
    check_grad(lambda *vs: fn(*vs).sum() if fn(*vs).ndim else fn(*vs), *arrays)


def test_second_derivatives_newton():
    x = Variable(np.array(2.0))
    for _ in range(10):
        y = x ** 4 - 2 * x ** 2
        x.cleargrad()
        y.backward(create_graph=True)
        gx = x.grad
        x.cleargrad()
        gx.backward()
        gx2 = x.grad
        x.data -= gx.data / gx2.data
    assert x.data == pytest.approx(1.0, abs=1e-12)


def test_higher_order_derivatives_of_sin():
    x = Variable(np.array(1.0))
    y = C.sin(x)
    y.backward(create_graph=True)
    expected = [np.cos(1.0), -np.sin(1.0), -np.cos(1.0), np.sin(1.0)]
    for want in expected:
        gx = x.grad
        assert gx.data == pytest.approx(want)
        x.cleargrad()
        gx.backward(create_graph=True)


def test_create_graph_false_records_nothing():
    x = Variable(np.array(2.0))
    y = x ** 3
    y.backward()
    assert x.grad.creator is None
    x.cleargrad()
    y.backward(create_graph=True)
    assert x.grad.creator is not None


# --- deep graphs ------------------------------------------------------------------

def test_million_node_chain_builds_differentiates_and_frees():
    gc.disable()
    try:
        x = Variable(np.array(1.0))
        y = x
        for _ in range(1_000_000):
            y = y * 1.0000001
        probe = weakref.ref(y.creator)
        y.backward()
        assert x.grad.data == pytest.approx(1.0000001 ** 1_000_000)
        del y
        assert probe() is None
    finally:
        gc.enable()


# --- errors ---------------------------------------------------------------------

def test_function_without_forward_or_backward():
    class NoForward(Function):
        pass

    with pytest.raises(NotImplementedError, match='NoForward.forward'):
        NoForward()(Variable(np.array(1.0)))

    class NoBackward(Function):
        def forward(self, x):
            return x

    y = NoBackward()(Variable(np.array(1.0)))
    with pytest.raises(NotImplementedError, match='NoBackward.backward'):
        y.backward()


def test_wrong_number_of_gradients_names_the_function():
    class TooMany(Function):
        def forward(self, x):
            return x * 2

        def backward(self, gy):
            return gy, gy

    class TooFew(Function):
        def forward(self, a, b):
            return a * b

        def backward(self, gy):
            return gy

    with pytest.raises(ValueError, match=r'TooMany.backward returned 2 gradients for 1 inputs'):
        TooMany()(Variable(np.array(1.0))).backward()
    with pytest.raises(ValueError, match=r'TooFew.backward returned 1 gradient\(s\) for 2 inputs'):
        TooFew()(Variable(np.array(1.0)), Variable(np.array(2.0))).backward()


def test_trailing_integer_input_may_go_without_gradient():
    class Pick(Function):
        def forward(self, x, t):
            return x[t]

        def backward(self, gy):
            x, t = self.inputs
            gx = np.zeros_like(x.data)
            gx[t.data] = gy.data
            return Variable(gx)

    x = Variable(np.array([1.0, 2.0]))
    Pick()(x, np.array(1)).backward()
    assert np.array_equal(x.grad.data, [0.0, 1.0])


def test_wrong_gradient_shape_names_function_and_shapes():
    class BadShape(Function):
        def forward(self, x):
            return x.sum()

        def backward(self, gy):
            return gy

    x = Variable(np.ones(3))
    with pytest.raises(ValueError, match=r'BadShape.backward returned a gradient of shape \(\) '
                                         r'for input 0 of shape \(3,\)'):
        BadShape()(x).backward()


def test_failed_backward_leaves_gradients_as_they_were():
    class Boom(Function):
        def forward(self, x):
            return x * 1

        def backward(self, gy):
            raise RuntimeError('boom')

    x = Variable(np.array(2.0))
    w = Variable(np.array(3.0))
    (x * w).backward()
    before_x, before_w = x.grad, w.grad
    y = x * w + Boom()(x)
    with pytest.raises(RuntimeError, match='boom'):
        y.backward()
    assert x.grad is before_x and x.grad.data == 3.0
    assert w.grad is before_w and w.grad.data == 2.0
    # the graph still works afterwards and starts from the old gradients
    (x * w).backward()
    assert x.grad.data == 6.0


def test_failed_forward_changes_nothing():
    x = Variable(np.ones(3))
    y = x * 2
    with pytest.raises(ValueError):
        C.matmul(y, np.ones((4, 2)))
    assert y.creator.outputs[0]() is y
    y.backward()
    assert np.array_equal(x.grad.data, [2.0, 2.0, 2.0])


def test_unsupported_constant_type():
    with pytest.raises(TypeError, match="Mul: <class 'list'> is not supported"):
        Variable(np.ones(2)) * [1, 2]


def test_backward_on_none_data():
    with pytest.raises(ValueError, match='data is None'):
        Variable(None).backward()


# --- parity with DeZero 0.0.13 ------------------------------------------------------

def program(dz, F):
    x = dz.Variable(np.array([[0.3, -1.2, 2.0], [1.5, 0.1, -0.7]]))
    W = dz.Variable(np.linspace(-1, 1, 12).reshape(3, 4))
    h = F.tanh(F.matmul(x, W)) * 2 + 1
    y = F.sum(F.exp(-h ** 2) / (h + 3) - F.sin(h), axis=0)
    z = (y[1:] * y[:-1]).sum() + F.max(h) - (x.T ** 2).sum()
    z.backward(create_graph=True)
    gW = W.grad
    W.cleargrad()
    x.cleargrad()
    (gW ** 2).sum().backward()
    return z.data, gW.data, W.grad.data, x.grad.data


def test_same_numbers_as_dezero(dezero):
    import dezero.functions as DF

    ours = program(cydezero, C)
    theirs = program(dezero, DF)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)


def scalar_program(dz, F):
    x = dz.Variable(np.array(0.5))
    w = dz.Variable(np.array(-1.25))
    y = x
    for i in range(300):
        y = (F.sin(y) + y) * 0.5 - y / (w * w + 1.5) + 0.25 * w
        if i % 7 == 0:
            y = 1.0 - y / 3.0 + x
    y.backward()
    return y.data, x.grad.data, w.grad.data


def test_scalar_fast_path_same_bits_as_dezero(dezero):
    import dezero.functions as DF

    ours = scalar_program(cydezero, C)
    theirs = scalar_program(dezero, DF)
    for a, b in zip(ours, theirs):
        assert type(a) is np.ndarray and a.shape == ()
        np.testing.assert_array_equal(a, b)


def test_division_by_zero_behaves_like_numpy():
    with np.errstate(divide='ignore'):
        y = Variable(np.array(1.0)) / 0.0
    assert np.isinf(y.data)
    with np.errstate(divide='raise'), pytest.raises(FloatingPointError):
        Variable(np.array(1.0)) / 0.0


def test_drop_in_alias(tmp_path):
    import subprocess
    import sys
    script = tmp_path / 's.py'
    script.write_text('import dezero\nfrom dezero import Variable\nimport numpy as np\n'
                      'x = Variable(np.array(3.0))\n(x * x).backward()\n'
                      'print(dezero.__name__, type(x).__module__, float(x.grad.data))\n')
    out = subprocess.run([sys.executable, '-m', 'cydezero', 'run', str(script)],
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == ['cydezero', 'cydezero._core', '6.0']


def test_install_as_dezero_in_process():
    import sys
    saved = {k: v for k, v in sys.modules.items() if k == 'dezero' or k.startswith('dezero.')}
    try:
        cydezero.install_as_dezero()
        import dezero
        import dezero.core
        assert dezero is cydezero and dezero.core is cydezero.core
    finally:
        for k in [k for k in sys.modules if k == 'dezero' or k.startswith('dezero.')]:
            del sys.modules[k]
        sys.modules.update(saved)
        sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != '_DezeroAlias']


def test_python_backward_returning_an_integer_gradient_for_a_float_input_is_refused():
    class IntGrad(cydezero.Function):
        def forward(self, x):
            return x * 2

        def backward(self, gy):
            return np.ones(gy.shape, dtype=np.int64)

    x = Variable(np.array([1.0, 2.0]))
    (x * 1.0).sum().backward()
    before = x.grad.data.copy()
    with pytest.raises(TypeError, match=r'IntGrad.backward returned a gradient of dtype int64 '
                                        r'for input 0 of dtype float64'):
        IntGrad()(x).sum().backward()
    np.testing.assert_array_equal(x.grad.data, before)
