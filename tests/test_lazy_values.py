"""Values and gradients of the scalar operations are kept as C doubles until
something reads them as arrays (docs/engine.md). What user code sees must
not change: ``.data`` is a 0-d float64 ndarray, the same object on every
read, and once read it is the value (an edit in place is seen by later
operations and by backward). Truth here is DeZero 0.0.13 run on the same
program, NumPy on the same numbers, or arithmetic done by hand."""
import copy
import pickle
import threading
import warnings

import numpy as np
import pytest
from hostile_runner import run

import cydezero.functions as F
from cydezero import Function, Variable
from cydezero import core_simple


def bits(a):
    return np.asarray(a, dtype=np.float64).tobytes()


def _scalar_program(V, Fn, x0):
    """Every operation with a scalar fast path, both ways round, on a 0-d
    float64 leaf; returns (output, leaf)."""
    x = V(np.array(x0))
    y = (Fn.sin(x) + x) * 0.5
    y = Fn.cos(y) - 0.25 / y
    y = Fn.tanh(y) * Fn.exp(-y) + Fn.log(y * y + 1.0)
    y = 2.0 - y ** 3 + y ** 2 / (1.5 + y)
    return y, x


@pytest.mark.parametrize('x0', [0.3, 1.7, -2.2])
def test_values_and_gradients_are_dezeros_bit_for_bit(dezero, x0):
    y, x = _scalar_program(Variable, F, x0)
    y.backward()
    want_y, want_x = _scalar_program(dezero.Variable, dezero.functions, x0)
    want_y.backward()
    for got, want in ((y.data, want_y.data), (x.grad.data, want_x.grad.data)):
        assert type(got) is np.ndarray and got.dtype == np.float64 and got.shape == ()
        assert bits(got) == bits(want)


def test_data_is_one_array_that_is_the_value():
    x = Variable(np.array(2.0))
    y = x * 3.0
    d = y.data
    assert type(d) is np.ndarray and d.shape == () and d.dtype == np.float64
    assert y.data is d and float(d) == 6.0
    assert d.flags.writeable and d.flags.owndata
    d[...] = 5.0            # the user's edit is the value from now on
    z = y * y
    assert float(z.data) == 25.0
    z.backward()
    # dz/dy = 2 * y with the edited y; dy/dx = 3
    assert float(y.data) == 5.0 and float(x.grad.data) == 30.0


def test_a_value_never_read_is_still_differentiated_with():
    # Mul's backward reads its inputs' values: a value nobody read as an
    # array is used as the very number forward computed.
    x = Variable(np.array(0.7))
    y = F.sin(x)
    z = y * y
    z.backward()
    s = np.sin(np.array(0.7))
    assert bits(x.grad.data) == bits(2.0 * s * np.cos(np.array(0.7)))


def test_shape_dtype_repr_len_and_array_protocols():
    y = Variable(np.array(1.5)) * 2.0
    assert y.shape == () and y.ndim == 0 and y.size == 1 and y.dtype == np.float64
    assert repr(y) == 'variable(3.0)'
    assert float(np.asarray(y.data)) == 3.0
    with pytest.raises(TypeError):
        len(y)


def test_gradients_are_arrays_when_read():
    x = Variable(np.array(1.25))
    y = x * x * x
    y.backward(retain_grad=True)
    for v in (x, y):
        g = v.grad.data
        assert type(g) is np.ndarray and g.dtype == np.float64 and g.shape == ()
        assert v.grad.data is g
    assert float(x.grad.data) == 3 * 1.25 ** 2


def test_a_hook_that_edits_the_gradient_in_place():
    x = Variable(np.array(2.0))
    y = x * 3.0
    seen = []

    def hook(g):
        seen.append(g)
        g.data *= 2.0       # in place: the pass goes on with the doubled gradient

    y.register_hook(hook)
    (y * 5.0).backward()
    assert float(x.grad.data) == 30.0
    assert float(seen[0].data) == 10.0


def test_data_set_by_user_code_is_kept_as_given():
    v = Variable(np.array(1.0))
    v.data = 3.0            # DeZero does not check what .data is set to
    assert type(v.data) is float and v.data == 3.0
    w = Variable(np.array(1.0)) * 2.0
    w.data = np.float32(4.0)
    assert type(w.data) is np.float32


def test_pickle_and_copy_see_arrays():
    x = Variable(np.array(1.5))
    y = x * 4.0
    y.unchain()             # a leaf whose value was never read
    for clone in (pickle.loads(pickle.dumps(y)), copy.deepcopy(y), copy.copy(y)):
        assert type(clone.data) is np.ndarray and float(clone.data) == 6.0


def test_python_functions_get_arrays():
    class Square(Function):
        def forward(self, a):
            seen.append(type(a))
            return a * a

        def backward(self, gy):
            seen.append(type(gy.data))
            (a,) = self.inputs
            return 2 * a * gy

    seen = []
    x = Variable(np.array(3.0))
    y = Square()(x * 1.0)
    (y * 2.0).backward()
    assert seen == [np.ndarray, np.ndarray]
    assert float(x.grad.data) == 2 * 2 * 3.0


def test_core_simple_backward_gets_arrays():
    class Cube(core_simple.Function):
        def forward(self, a):
            return a ** 3

        def backward(self, gy):
            seen.append(type(gy))
            return 3 * self.inputs[0].data ** 2 * gy

    seen = []
    x = core_simple.Variable(np.array(2.0))
    y = Cube()(x * 1.0) * 1.0
    y.backward()
    assert seen == [np.ndarray]
    assert float(x.grad) == 12.0


def test_builtin_forward_and_backward_called_by_hand_give_arrays():
    out = F.Mul().forward(np.array(2.0), np.array(3.0))
    assert type(out) is np.ndarray and float(out) == 6.0
    assert type(F.Sin().forward(np.array(0.5))) is np.ndarray


def test_overflow_is_numpys_to_report_with_a_never_read_value():
    x = Variable(np.array(1e200))
    y = x * 1e100           # fine: 1e300, kept as a double
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        z = y * 1e100
    assert any(issubclass(r.category, RuntimeWarning) for r in w)
    assert np.isinf(z.data)
    with np.errstate(over='raise'):
        with pytest.raises(FloatingPointError):
            y * 1e100


def test_broadcast_against_a_never_read_value():
    x = Variable(np.array(0.5))
    s = F.sin(x)                            # a double
    v = Variable(np.array([1.0, 2.0, 3.0]))
    y = F.sum(s * v)
    y.backward()
    assert bits(x.grad.data) == bits(np.cos(np.array(0.5)) * np.array(6.0))
    assert np.array_equal(v.grad.data, np.full(3, np.sin(0.5)))


def test_threads_reading_one_value_see_one_array():
    ys = [Variable(np.array(float(i))) * 2.0 for i in range(200)]
    got = [[] for _ in range(4)]

    def read(k):
        got[k].extend(id(y.data) for y in ys)

    threads = [threading.Thread(target=read, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got[0] == got[1] == got[2] == got[3] == [id(y.data) for y in ys]


def test_weakref_callbacks_and_gc_while_values_are_made_arrays():
    # Reading .data makes an array from the pool of spares: no Python code
    # (a weak reference's callback, a collection) may run in between.
    out = run('''
        import gc, weakref
        died = []
        ys = [Variable(np.array(float(i))) * 1.5 for i in range(300)]
        keep = []

        def callback(r):
            # a young collection each time, a full one now and then: a full
            # one walks the whole test process (forked), which made 300 of
            # them take minutes once torch was imported
            died.append(1)
            gc.collect(0 if len(died) % 50 else 2)

        for i, y in enumerate(ys):
            d = y.data
            keep.append(weakref.ref(d, callback))
            if i % 3 == 0:
                y.data = None
        del ys, d, y
        gc.collect()
        print(len(died), all(r() is None for r in keep))
    ''')
    assert out == ['300 True']


OPS_WITHOUT_SCALAR_PATHS = {
    'sum': lambda M, t: M.sum(t),
    'reshape': lambda M, t: M.reshape(t, (1, 1)),
    'broadcast_to': lambda M, t: M.broadcast_to(t, (2,)),
    'sigmoid': lambda M, t: M.sigmoid(t),
    'transpose': lambda M, t: M.transpose(t),
    'relu': lambda M, t: M.relu(t),
}


@pytest.mark.parametrize('name', sorted(OPS_WITHOUT_SCALAR_PATHS))
def test_operations_without_scalar_paths_get_arrays(dezero, name):
    # Their gradient comes from a scalar operation (a double) and their
    # input's value from one too: they are given arrays, and give DeZero's
    # bits.
    op = OPS_WITHOUT_SCALAR_PATHS[name]

    def program(V, M):
        x = V(np.array(0.8))
        s = M.sin(x) * 1.5
        z = M.sum(op(M, s)) * 3.0
        z.backward()
        return z, x

    z, x = program(Variable, F)
    want_z, want_x = program(dezero.Variable, dezero.functions)
    assert bits(z.data) == bits(want_z.data)
    assert bits(x.grad.data) == bits(want_x.grad.data)


# Each operation computed on numbers straight from the Variables that hold
# them (_fused_f64), at the values where NumPy raises a flag: the result,
# its bits, dtype and warnings must be NumPy's on 0-d float64 arrays, and
# np.errstate must turn them into errors as NumPy's do. Inputs come as a
# leaf's 0-d array and, where finite, as a number a fused operation left in
# its Variable.
FLAGGED = [
    ('add', lambda a, b: a + b, 1e308, 1e308),
    ('sub', lambda a, b: a - b, -1e308, 1e308),
    ('mul', lambda a, b: a * b, 1e200, 1e200),
    ('mul-under', lambda a, b: a * b, 1e-200, 1e-200),
    ('div-zero', lambda a, b: a / b, 1.0, 0.0),
    ('div-nan', lambda a, b: a / b, 0.0, 0.0),
    ('rsub', lambda a, b: b - a, 1e308, -1e308),
    ('rdiv', lambda a, b: b / a, 0.0, 2.0),
    ('neg', lambda a, b: -a, 1e308, None),
    ('sin', lambda a, b: F.sin(a) if isinstance(a, Variable) else np.sin(a), np.inf, None),
    ('cos', lambda a, b: F.cos(a) if isinstance(a, Variable) else np.cos(a), -np.inf, None),
    ('tanh', lambda a, b: F.tanh(a) if isinstance(a, Variable) else np.tanh(a), 1e-320, None),
    ('exp', lambda a, b: F.exp(a) if isinstance(a, Variable) else np.exp(a), 1000.0, None),
    ('exp-under', lambda a, b: F.exp(a) if isinstance(a, Variable) else np.exp(a), -1000.0, None),
    ('log-zero', lambda a, b: F.log(a) if isinstance(a, Variable) else np.log(a), 0.0, None),
    ('log-neg', lambda a, b: F.log(a) if isinstance(a, Variable) else np.log(a), -1.0, None),
    ('pow-sqrt', lambda a, b: a ** 0.5, -4.0, None),
    ('pow-square', lambda a, b: a ** 2, 1e200, None),
    ('pow-loop', lambda a, b: a ** 3, 1e200, None),
    ('pow-int', lambda a, b: a ** -2, 0.0, None),
]


def _outcome(fn, a, b, **errstate):
    with warnings.catch_warnings(record=True) as w, np.errstate(**errstate):
        warnings.simplefilter('always')
        try:
            y = fn(a, b)
        except FloatingPointError as e:
            return 'raised', str(e)
    y = y.data if isinstance(y, Variable) else np.asarray(y)
    return bits(y), y.dtype, y.shape, sorted({(r.category, str(r.message)) for r in w})


@pytest.mark.parametrize('name,fn,a,b', FLAGGED, ids=[c[0] for c in FLAGGED])
@pytest.mark.parametrize('errstate', [{}, {'all': 'raise'}, {'all': 'ignore'}])
def test_numbers_computed_in_place_flag_as_numpy(name, fn, a, b, errstate):
    want = _outcome(fn, np.array(a), b, **errstate)
    assert _outcome(fn, Variable(np.array(a)), b, **errstate) == want
    if np.isfinite(a) and a != 0.0:
        held = Variable(np.array(a)) * 1.0      # a number, never read as an array
        assert _outcome(fn, held, b, **errstate) == want


def test_a_leaf_whose_array_is_not_a_native_double():
    # Byte-swapped or float32 0-d data is NumPy's to compute, with its dtype.
    for data in (np.array(2.5, dtype='>f8'), np.array(2.5, dtype=np.float32)):
        y = F.sin(Variable(data) * 3.0)
        want = np.sin(data * 3.0)
        assert y.data.dtype == want.dtype and bits(y.data) == bits(want)


def test_the_numbers_own_marker_never_reaches_user_code():
    # A Variable holding a number keeps a marker object in its data slot;
    # nothing that hands out a Variable's references may hand it out.
    import gc
    from cydezero import _core
    x = Variable(np.array(0.5))
    y = F.tanh(x * 2.0) + 1.0
    g = y * y
    g.backward()
    for v in (y, g, x.grad):
        for r in gc.get_referents(v):
            assert not isinstance(r, _core._Lazy)
        state = v.__reduce__()[2]
        assert not any(isinstance(r, _core._Lazy) for r in state)
        c = copy.deepcopy(v)
        assert type(c.data) is np.ndarray and bits(c.data) == bits(v.data)
