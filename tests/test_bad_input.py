"""What the engine does with bad input, as tables: each bad call with the
error type and a pattern its message must match (the message names the
Function and the shapes it got), and each odd-but-valid input (NaN, empty
arrays, 0-d and 5-d arrays, mixed dtypes) with its result. A failed call
must change nothing: existing gradients, creators and data stay as they
were."""
import re
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import numerical_grad

import cydezero
import cydezero.functions as F
from cydezero import Function, Variable

# --- a graph whose state every failing call must leave alone ----------------------


def make_state():
    """x (2, 3) and w (3,) with gradients from a first backward, and
    y = sin(x) * w still recorded."""
    x = Variable(np.array([[0.5, 1.0, 1.5], [2.0, 2.5, 3.0]]), name='x')
    w = Variable(np.array([1.0, -1.0, 2.0]), name='w')
    y = F.sin(x) * w
    F.sum(y).backward()
    return SimpleNamespace(x=x, w=w, y=y)


def snapshot(s):
    state = {}
    for name in ('x', 'w', 'y'):
        v = getattr(s, name)
        state[name] = (v.grad, None if v.grad is None else v.grad.data.copy(),
                       v.creator, v.generation, v.data.copy())
    f = s.y.creator
    state['y.creator'] = None if f is None else (
        f.generation, [id(v) for v in f.inputs], f.outputs[0]())
    return state


def assert_unchanged(before, after):
    for key, old in before.items():
        new = after[key]
        if key == 'y.creator':
            assert new is not None and new[:2] == old[:2] and new[2] is old[2], key
            continue
        grad, grad_data, creator, generation, data = old
        assert new[0] is grad, f'{key}.grad was replaced'
        if grad is not None:
            assert np.array_equal(new[0].data, grad_data), f'{key}.grad changed'
        assert new[2] is creator and new[3] == generation, f'{key}: graph changed'
        assert np.array_equal(new[4], data), f'{key}.data changed'


# --- Python Functions that break the rules ----------------------------------------

def returning(value):
    """A Function whose forward returns ``value`` (or value(x) if callable)."""
    class Bad(Function):
        def forward(self, x):
            return value(x) if callable(value) else value

        def backward(self, gy):
            return gy
    Bad.__name__ = Bad.__qualname__ = 'Returns' + type(value).__name__.capitalize()
    return Bad


class TooManyGrads(Function):
    def forward(self, x):
        return x * 2

    def backward(self, gy):
        return gy * 2, gy * 2


class TooFewGrads(Function):
    def forward(self, x0, x1):
        return x0 * x1

    def backward(self, gy):
        return gy * self.inputs[1]


class WrongShapeGrad(Function):
    def forward(self, x):
        return x.sum(axis=0)

    def backward(self, gy):
        return gy          # (3,) for an input of shape (2, 3)


class StrGrad(Function):
    def forward(self, x):
        return x * 2

    def backward(self, gy):
        return 'two'


class Square(Function):
    def forward(self, x):
        return x ** 2

    def backward(self, gy):
        return 2 * self.inputs[0] * gy


def through_w(cls):
    """A loss where w's gradient is computed before cls's backward runs (and
    fails): the failure must still leave w.grad as it was."""
    return lambda s: F.sum(cls()(s.x) * s.w).backward()


# Each row: the bad call (given the state above), the error type, a pattern
# its message must match. Messages name the Function and the shapes.
ERRORS = [
    # Variable() takes an ndarray or None, as DeZero does.
    pytest.param(lambda s: Variable(1.0), TypeError,
                 r"^<class 'float'> is not supported$", id='Variable(float)'),
    pytest.param(lambda s: Variable(3), TypeError,
                 r"^<class 'int'> is not supported$", id='Variable(int)'),
    pytest.param(lambda s: Variable([1.0, 2.0]), TypeError,
                 r"^<class 'list'> is not supported$", id='Variable(list)'),
    pytest.param(lambda s: Variable('abc'), TypeError,
                 r"^<class 'str'> is not supported$", id='Variable(str)'),
    pytest.param(lambda s: Variable(np.float64(1.0)), TypeError,
                 r"^<class 'numpy.float64'> is not supported$", id='Variable(np.float64)'),
    # Data None.
    pytest.param(lambda s: Variable(None).backward(), ValueError,
                 r'backward\(\) called on a Variable whose data is None',
                 id='backward on data None'),
    pytest.param(lambda s: Variable(None) * 2, TypeError, r'Mul\b.*None',
                 id='None data through mul'),
    pytest.param(lambda s: F.sin(Variable(None)), TypeError, r'Sin\b.*None',
                 id='None data through sin'),
    # Shapes that do not fit.
    pytest.param(lambda s: s.x + Variable(np.ones(4)), ValueError,
                 r'Add\b.*\(2, 3\).*\(4,\)', id='add (2,3)+(4,)'),
    pytest.param(lambda s: s.x * np.ones((3, 2)), ValueError,
                 r'Mul\b.*\(2, 3\).*\(3, 2\)', id='mul (2,3)*(3,2) array'),
    pytest.param(lambda s: F.matmul(s.x, Variable(np.ones((4, 5)))), ValueError,
                 r'MatMul\b.*\(2, 3\).*\(4, 5\)', id='matmul (2,3)@(4,5)'),
    pytest.param(lambda s: F.linear(s.x, Variable(np.ones((4, 2)))), ValueError,
                 r'Linear\b.*\(2, 3\).*\(4, 2\)', id='linear (2,3)@(4,2)'),
    pytest.param(lambda s: s.x.reshape(4, 2), ValueError,
                 r'Reshape\b.*\(4, ?2\).*\(2, 3\)', id='reshape (2,3)->(4,2)'),
    pytest.param(lambda s: F.broadcast_to(s.w, (2, 4)), ValueError,
                 r'BroadcastTo\b.*\(3,\).*\(2, ?4\)', id='broadcast_to (3,)->(2,4)'),
    pytest.param(lambda s: s.x.sum(axis=2), ValueError,
                 r'Sum\b.*axis.*2.*\(2, 3\)', id='sum axis=2 of (2,3)'),
    pytest.param(lambda s: s.w[5], IndexError,
                 r'GetItem\b.*5.*\(3,\)', id='get_item 5 of (3,)'),
    # Wrong arity and wrong types to the built-in functions.
    pytest.param(lambda s: F.add(s.x), TypeError,
                 r'add\(\) takes exactly 2 positional arguments \(1 given\)', id='F.add(x)'),
    pytest.param(lambda s: F.sin(s.x, s.x), TypeError,
                 r'sin\(\) takes exactly 1 positional argument \(2 given\)', id='F.sin(x, x)'),
    pytest.param(lambda s: F.matmul(s.x), TypeError,
                 r'matmul\(\) takes exactly 2 positional arguments \(1 given\)',
                 id='F.matmul(x)'),
    pytest.param(lambda s: Square()(s.x, s.w), TypeError,
                 r'forward\(\) takes 2 positional arguments but 3 were given',
                 id='Python Function, two inputs for one'),
    pytest.param(lambda s: s.x * [1.0, 2.0, 3.0], TypeError,
                 r"^Mul: <class 'list'> is not supported$", id='mul by list'),
    pytest.param(lambda s: s.x * None, TypeError,
                 r"^Mul: <class 'NoneType'> is not supported$", id='mul by None'),
    pytest.param(lambda s: s.x * 'a', TypeError,
                 r"^Mul: <class 'str'> is not supported$", id='mul by str'),
    pytest.param(lambda s: s.x ** s.w, TypeError, r'Pow\b.*exponent',
                 id='pow with a Variable exponent'),
    # Python Functions whose forward returns something else than arrays.
    pytest.param(lambda s: returning([1.0])()(s.x), TypeError,
                 r"ReturnsList\.forward returned <class 'list'>; expected an array",
                 id='forward returns list'),
    pytest.param(lambda s: returning(None)()(s.x), TypeError,
                 r"ReturnsNonetype\.forward returned <class 'NoneType'>; expected an array",
                 id='forward returns None'),
    pytest.param(lambda s: returning('abc')()(s.x), TypeError,
                 r"ReturnsStr\.forward returned <class 'str'>; expected an array",
                 id='forward returns str'),
    # Python Functions whose backward breaks the rules.
    pytest.param(through_w(TooManyGrads), ValueError,
                 r'^TooManyGrads\.backward returned 2 gradients for 1 inputs$',
                 id='backward returns too many gradients'),
    pytest.param(lambda s: F.sum(TooFewGrads()(s.x, s.x) * s.w).backward(), ValueError,
                 r'TooFewGrads\.backward returned 1 gradient\(s\) for 2 inputs; '
                 r'input 1 \(shape \(2, 3\), dtype float64\) needs one',
                 id='backward returns too few gradients'),
    pytest.param(lambda s: F.sum(WrongShapeGrad()(s.x) * s.w).backward(), ValueError,
                 r'WrongShapeGrad\.backward returned a gradient of shape \(3,\) for '
                 r'input 0 of shape \(2, 3\)', id='backward returns wrong shape'),
    pytest.param(through_w(StrGrad), TypeError,
                 r"StrGrad\.backward returned <class 'str'> for input 0",
                 id='backward returns str'),
]


@pytest.mark.parametrize('call, error, pattern', ERRORS)
def test_bad_input_raises_a_clear_error_and_changes_nothing(call, error, pattern):
    s = make_state()
    before = snapshot(s)
    try:
        call(s)
    except Exception as e:  # noqa: BLE001  (checked below, after the state)
        raised = e
    else:
        raised = None
    # Whatever the message, the failed call must have changed nothing.
    assert_unchanged(before, snapshot(s))
    assert raised is not None, 'no error raised'
    assert isinstance(raised, error), f'{type(raised).__name__}: {raised}'
    assert re.search(pattern, str(raised)), \
        f'message {str(raised)!r} does not match {pattern!r}'
    # The graph still works after the failure, with the same numbers.
    s.x.cleargrad()
    s.w.cleargrad()
    F.sum(s.y).backward()
    assert np.allclose(s.x.grad.data, np.cos(s.x.data) * s.w.data)
    assert np.allclose(s.w.grad.data, np.sin(s.x.data).sum(axis=0))


@pytest.mark.parametrize('value', [[1.0], None, 'abc'], ids=['list', 'None', 'str'])
def test_failed_forward_records_nothing(value):
    x = Variable(np.ones(3))
    f = returning(value)()
    with pytest.raises(TypeError):
        f(x)
    assert f.inputs is None and f.outputs is None
    assert x.creator is None and x.grad is None


# --- odd but valid inputs: results ---------------------------------------------------

def rnd(*shape, lo=0.5, hi=1.5):
    return np.random.default_rng(sum(shape) + len(shape)).uniform(lo, hi, shape)


NAN = np.nan

# Each row: a program over the library's F and Variables, its inputs.
# cydezero must agree with DeZero 0.0.13 (NaN where DeZero has NaN), give
# each input a gradient of its shape, warn about nothing, and match
# central differences where the values are finite.
RESULTS = [
    pytest.param(lambda F, a, b: F.sin(a) + b, [np.array([NAN, 1.0]), np.array([1.0, NAN])],
                 id='NaN through sin and add'),
    pytest.param(lambda F, a: F.sum(a * a, axis=0), [np.array([[NAN, 1.0], [2.0, 3.0]])],
                 id='NaN through mul and sum'),
    pytest.param(lambda F, a: F.exp(a) * 2, [np.ones((0,))], id='empty (0,) exp'),
    pytest.param(lambda F, a, b: F.sum(a * b), [np.ones((0, 3)), rnd(3)],
                 id='empty (0,3) * (3,) broadcast, sum'),
    pytest.param(lambda F, a: F.sum(F.tanh(a), axis=0, keepdims=True), [np.ones((0, 3))],
                 id='empty (0,3) sum axis 0'),
    pytest.param(lambda F, a: F.matmul(a, a.T), [np.ones((0, 3))], id='empty (0,3) matmul'),
    pytest.param(lambda F, a, b: F.sin(a) * F.cos(b) / a, [np.array(0.7), np.array(-1.2)],
                 id='0-d elementwise'),
    pytest.param(lambda F, a: F.sum(a), [np.array(2.5)], id='0-d sum'),
    pytest.param(lambda F, a, b: F.exp(a) * b + a, [np.array(0.3), rnd(2, 1, 3, 1, 2)],
                 id='0-d with 5-d broadcast'),
    pytest.param(lambda F, a, b: F.tanh(a) - b, [rnd(2, 1, 3, 1, 2), rnd(2, 1, 2, 2)],
                 id='5-d with 4-d broadcast'),
    pytest.param(lambda F, a: F.sum(F.log(a), axis=(1, 3), keepdims=True),
                 [rnd(2, 2, 3, 2, 2)], id='5-d sum axis (1,3) keepdims'),
    pytest.param(lambda F, a: F.broadcast_to(a, (2, 2, 3, 1, 2)) ** 2,
                 [rnd(3, 1, 2)], id='5-d broadcast_to'),
    pytest.param(lambda F, a: F.sum_to(F.sin(a), (3, 1, 1)), [rnd(2, 1, 3, 2, 2)],
                 id='5-d sum_to'),
]


def _run(lib, LF, program, arrays):
    xs = [lib.Variable(a.copy()) for a in arrays]
    y = program(LF, *xs)
    LF.sum(y).backward()
    return y, xs


@pytest.mark.parametrize('program, arrays', RESULTS)
def test_odd_input_gives_dezeros_result(dezero, program, arrays):
    import dezero.functions as DF
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        y, xs = _run(cydezero, F, program, arrays)
    dy, dxs = _run(dezero, DF, program, arrays)
    assert y.shape == dy.shape and y.dtype == dy.dtype
    assert np.array_equal(y.data, dy.data, equal_nan=True)
    for x, dx, a in zip(xs, dxs, arrays):
        assert x.grad is not None and x.grad.shape == a.shape
        assert x.grad.dtype == dx.grad.dtype
        assert np.array_equal(x.grad.data, dx.grad.data, equal_nan=True)
    for k, (x, a) in enumerate(zip(xs, arrays)):
        if a.size and all(np.all(np.isfinite(b)) for b in arrays):
            def f(t, k=k):
                args = [Variable(b) for b in arrays]
                args[k] = Variable(t)
                return F.sum(program(F, *args)).data
            assert np.allclose(x.grad.data, numerical_grad(f, a), rtol=1e-5, atol=1e-7)


def test_nan_propagates_only_where_it_is():
    x = Variable(np.array([NAN, 1.0, 2.0]))
    y = F.sum(F.sin(x) * 3)
    y.backward()
    assert np.isnan(y.data)
    assert np.isnan(x.grad.data[0])
    assert np.array_equal(x.grad.data[1:], 3 * np.cos([1.0, 2.0]))


def test_empty_gradients_are_empty_and_broadcast_partner_gets_zeros():
    a, b = Variable(np.ones((0, 3))), Variable(np.array([1.0, 2.0, 3.0]))
    F.sum(a * b).backward()
    assert a.grad.shape == (0, 3) and a.grad.dtype == np.float64
    assert np.array_equal(b.grad.data, np.zeros(3))


# --- dtypes ---------------------------------------------------------------------------

f16, f32, f64, i32, i64 = np.float16, np.float32, np.float64, np.int32, np.int64

# Each row: x's data, the operation (given the library's Variable and
# functions), then the dtype of y and of x.grad in cydezero, and the dtype
# of y in DeZero 0.0.13. cydezero's y dtype is always what NumPy 2 gives
# for the same operation on plain arrays (Python scalars are weakly typed);
# DeZero wraps Python scalars in float64/int64 arrays first, so float32
# data is promoted by `x * 2.0` there (README, "Differences").
DTYPES = [
    pytest.param(np.ones(3, f32), lambda x, V, F: x * 2.0, f32, f32, f64, id='f32 * 2.0'),
    pytest.param(np.ones(3, f32), lambda x, V, F: x * 2, f32, f32, f64, id='f32 * 2'),
    pytest.param(np.ones(3, f32), lambda x, V, F: 1.0 - x, f32, f32, f64, id='1.0 - f32'),
    pytest.param(np.ones(3, f32), lambda x, V, F: x / 3, f32, f32, f64, id='f32 / 3'),
    pytest.param(np.ones(3, f32), lambda x, V, F: x ** 2, f32, f32, f32, id='f32 ** 2'),
    pytest.param(np.ones(3, f32), lambda x, V, F: F.sin(x), f32, f32, f32, id='sin(f32)'),
    pytest.param(np.ones(3, f16), lambda x, V, F: x * 2.0, f16, f16, f64, id='f16 * 2.0'),
    pytest.param(np.ones(3, f32), lambda x, V, F: x * np.float64(2.0), f64, f64, f64,
                 id='f32 * np.float64 scalar'),
    pytest.param(np.ones(3, f32), lambda x, V, F: x * np.ones(3), f64, f64, f64,
                 id='f32 * f64 array'),
    pytest.param(np.ones(3, f32), lambda x, V, F: x + V(np.ones(3)), f64, f64, f64,
                 id='f32 + f64 Variable'),
    pytest.param(np.arange(3, dtype=i64), lambda x, V, F: x * 2.5, f64, f64, f64,
                 id='int * 2.5'),
    pytest.param(np.arange(3, dtype=i64), lambda x, V, F: x / 2, f64, f64, f64, id='int / 2'),
    pytest.param(np.arange(3, dtype=i64), lambda x, V, F: x * 2, i64, i64, i64, id='int * 2'),
    pytest.param(np.arange(3, dtype=i32), lambda x, V, F: x + V(np.ones(3, f32)),
                 f64, f64, f64, id='int32 + f32 Variable'),
]


@pytest.mark.parametrize('data, op, y_dtype, gx_dtype, dezero_y_dtype', DTYPES)
def test_result_dtypes(dezero, data, op, y_dtype, gx_dtype, dezero_y_dtype):
    import dezero.functions as DF
    x = Variable(data.copy())
    y = op(x, Variable, F)
    y.backward()
    assert y.dtype == y_dtype and x.grad.dtype == gx_dtype
    # NumPy's own answer for the same operation on plain arrays.
    assert op(data.copy(), np.asarray, np).dtype == y_dtype
    # DeZero 0.0.13 on the same input.
    dx = dezero.Variable(data.copy())
    dy = op(dx, dezero.Variable, DF)
    dy.backward()
    assert dy.dtype == dezero_y_dtype
    assert np.allclose(y.data, dy.data)
    assert np.allclose(x.grad.data, dx.grad.data, rtol=1e-3)
