"""Memory safety: each case that once crashed the interpreter or silently
corrupted a result, run where a crash fails one test instead of the run
(a process of its own), and compared with independent truth: NumPy, closed
forms, or DeZero 0.0.13 itself."""
import copy
import pickle
import threading
import warnings

import numpy as np
import pytest
from hostile_runner import run

import cydezero
import cydezero.functions as F
from cydezero import _core
from cydezero import Function, Variable


def run_isolated(code, fresh=False):
    """What the snippet printed, run in a process of its own (see run)."""
    return '\n'.join(run(code, fresh=fresh)) + '\n'


# -- import -----------------------------------------------------------------

def test_import_and_sigmoid_fast_path_match_numpy_on_this_numpy():
    # The engine once read np.tanh's loop table through NumPy's Cython
    # declarations; NumPy 2.5 changed them and import crashed.
    out = run_isolated('''
        import numpy as np, cydezero.functions as F
        x = np.linspace(-30, 30, 1001)
        for t in (np.float64, np.float32):
            xt = x.astype(t)
            y = F.sigmoid(xt).data
            ref = np.tanh(xt * t(0.5)) * t(0.5) + t(0.5)
            assert y.dtype == ref.dtype and np.array_equal(y, ref), t
        print('ok')
    ''', fresh=True)        # the import itself is what once crashed
    assert out.strip() == 'ok'


# -- .grad holding an array ------------------------------------------------

def test_grad_set_to_an_array_is_added_to(dezero):
    code = '''
        import numpy as np
        {imp}
        x = Variable(np.array([1.0, 2.0]))
        x.grad = np.zeros(2)
        (x * 2).sum().backward()
        print(type(x.grad).__name__, x.grad.data.tolist())
    '''
    ours = run_isolated(code.format(imp='from cydezero import Variable'))
    theirs = run_isolated(code.format(
        imp='np.int = int\n        from dezero import Variable'))
    assert ours == theirs == 'Variable [2.0, 2.0]\n'


def test_hook_assigning_an_array_to_a_leaf_grad():
    out = run_isolated('''
        import numpy as np
        from cydezero import Variable
        x = Variable(np.array([1.0, 2.0]))
        y = x * 2.0
        def hook(g):
            x.grad = np.full(2, 10.0)
        y.register_hook(hook)
        (y * 3.0).sum().backward()
        print(x.grad.data.tolist())
    ''')
    assert out.strip() == '[16.0, 16.0]'


def test_grad_of_an_unusable_type_is_a_clear_error_and_changes_nothing():
    x = Variable(np.array([1.0, 2.0]))
    w = Variable(np.array([3.0, 4.0]))
    x.grad = 'not a gradient'
    with pytest.raises(TypeError, match=r"\.grad of a variable of shape \(2,\) is a <class 'str'>"):
        (x * w).sum().backward()
    assert x.grad == 'not a gradient' and w.grad is None


# -- Function.outputs ------------------------------------------------------

def test_outputs_assigned_by_hand_die_cleanly():
    out = run_isolated('''
        import gc, numpy as np
        from cydezero import Function, Variable
        f = Function()
        f.outputs = [Variable(np.array(1.0))]
        gc.collect()
        print(f.outputs[0]())
        v = Variable(np.array(2.0))
        f.outputs = [v]
        assert f.outputs[0]() is v
        del v
        gc.collect()
        print(f.outputs[0]())
        # outputs that have another creator: the slot follows their death too
        x = Variable(np.array(3.0))
        y = x * 2.0
        g = Function()
        g.outputs = [y]
        assert g.outputs[0]() is y and y.creator is not g
        del y
        print(g.outputs[0]())
        del g     # the watch on y's slot goes with g
        print('ok')
    ''')
    assert out.split() == ['None', 'None', 'None', 'ok']


def test_python_backward_that_shrinks_its_outputs():
    out = run_isolated('''
        import numpy as np
        from cydezero import Function, Variable
        class Three(Function):
            def forward(self, x):
                return x, x * 2, x * 3
            def backward(self, a, b, c):
                self.outputs = [self.outputs[0]]     # drops two outputs
                return a + b * 2 + c * 3
        x = Variable(np.array(1.0))
        y0, y1, y2 = Three()(x)
        (y0 + y1 + y2).backward()
        print(x.grad.data)
    ''')
    assert float(out) == 6.0


def test_builtin_whose_outputs_were_relinked():
    # A built-in operation differentiates its first output whatever its
    # outputs were set to; with none there is nothing to differentiate, which
    # is an error that names it. A hook that relinks them mid-pass changes
    # nothing the pass already took.
    out = run_isolated('''
        import numpy as np
        from cydezero import Variable
        def relinked(k):
            x = Variable(np.array(2.0))
            y = x * 3.0
            y.creator.outputs = [y] + [Variable(np.array(1.0)) for _ in range(k - 1)]
            y.backward()
            return float(x.grad.data)
        print(relinked(1), relinked(2), relinked(3))
        x = Variable(np.array(2.0))
        y = x * 3.0
        y.creator.outputs = []
        try:
            y.backward()
        except RuntimeError as e:
            print(str(e).split(' has no outputs')[0], x.grad)
        x = Variable(np.array(2.0))
        y = x * 3.0
        def hook(g):
            y.creator.outputs = []
        y.register_hook(hook)
        (y * 5.0).backward()
        print(float(x.grad.data))
    ''')
    assert out.splitlines() == ['3.0 3.0 3.0', 'backward: a Mul None', '15.0']


def test_hook_that_grows_its_creators_inputs():
    out = run_isolated('''
        import numpy as np
        from cydezero import Variable
        x = Variable(np.array(1.0)); w = Variable(np.array(2.0))
        y = x * w
        extra = [Variable(np.array(1.0)) for _ in range(100)]
        def hook(g):
            y.creator.inputs = [x, w] + extra
        y.register_hook(hook)
        (y * 1.0).backward()
        print(x.grad.data, w.grad.data, all(e.grad is None for e in extra))
    ''')
    assert out.split() == ['2.0', '1.0', 'True']


def test_reading_outputs_from_weakref_callbacks_while_a_deep_graph_is_freed():
    out = run_isolated('''
        import weakref, numpy as np
        from cydezero import Variable
        y = Variable(np.array(1.0))
        for _ in range(20000):
            y = y * 1.0
        seen = []
        def watcher(f):
            def callback(ref):
                for r in f.outputs:
                    v = r()
                    seen.append(v is None or isinstance(v, Variable))
            return callback
        refs = []
        node = y
        while node.creator is not None:
            f = node.creator
            refs.append(weakref.ref(node, watcher(f)))
            node = f.inputs[0]
        del f, node, y
        print(len(seen), all(seen))
    ''')
    assert out.split() == ['20000', 'True']


def test_function_called_with_the_wrong_number_of_inputs():
    x = Variable(np.array(1.0))
    with pytest.raises(TypeError, match='Add takes 2 inputs, got 1'):
        cydezero.core.Add()(x)
    with pytest.raises(TypeError, match='Sin takes 1 input, got 2'):
        cydezero.core.Sin().forward(np.array(1.0), np.array(2.0))
    with pytest.raises(TypeError, match='Linear: takes 2 or 3 inputs'):
        F.Linear()(x)


# -- the 0-d float64 fast path ---------------------------------------------

@pytest.mark.parametrize('make', [
    lambda: np.array(2.0, dtype='>f8'),
    lambda: np.frombuffer(b'\0' + np.array(2.0).tobytes(), dtype=np.float64, offset=1)
    .reshape(()),
], ids=['byte-swapped', 'unaligned'])
def test_scalar_fast_path_reads_only_native_aligned_doubles(make):
    a = make()
    assert float(a) == 2.0
    x = Variable(a)
    for got, want in [((x * 3.0).data, a * 3.0), ((x + 1.0).data, a + 1.0),
                      ((x - 0.5).data, a - 0.5), ((x / 4.0).data, a / 4.0),
                      ((x ** 2).data, a ** 2)]:
        assert float(got) == float(want)
    y = x * x
    y.backward()
    assert float(x.grad.data) == 4.0


@pytest.mark.parametrize('expr', [
    'x * 1e200', 'x + x', 'x / 0.0', 'x - (-x)', 'x ** 2', 'x * 1e-200 * 1e-200',
])
def test_scalar_fast_path_reports_what_numpy_reports(expr):
    a = np.array(1e200) if 'e-200' not in expr else np.array(1e-200)
    if expr == 'x + x' or expr == 'x - (-x)':
        a = np.array(1.7e308)

    def run(x):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter('always')
            r = eval(expr, {'x': x})
        return r, sorted(str(m.message) for m in w)
    want, want_w = run(a)
    got, got_w = run(Variable(a))
    # underflow is silent by default; it raises under np.errstate below
    assert want_w or 'e-200' in expr, 'the case must make NumPy warn'
    assert got_w == want_w
    np.testing.assert_array_equal(got.data, want)
    with np.errstate(all='raise'):
        with pytest.raises(FloatingPointError):
            eval(expr, {'x': a})
        with pytest.raises(FloatingPointError):
            eval(expr, {'x': Variable(a)})


@pytest.mark.parametrize('fn, forward, numpy_grad', [
    (F.sin, np.sin, lambda x, y, gy: gy * np.cos(x)),
    (F.cos, np.cos, lambda x, y, gy: gy * -np.sin(x)),
    (F.tanh, np.tanh, lambda x, y, gy: gy * (1 - y * y)),
    (F.exp, np.exp, lambda x, y, gy: gy * y),
    (F.log, np.log, lambda x, y, gy: gy / x),
], ids=['sin', 'cos', 'tanh', 'exp', 'log'])
@pytest.mark.parametrize('x0, g0', [(0.3, 1.7), (-2.5, 3.0), (1e-300, 1.5), (700.0, 1e10),
                                    (0.0, 2.0)])
@pytest.mark.parametrize('dtype', [np.float64, np.float32])
def test_unary_backward_fast_paths_are_numpy_bit_for_bit(fn, forward, numpy_grad, x0, g0,
                                                         dtype):
    # 0-d float64 gradients are multiplied in C; the value, the dtype and
    # what NumPy warns (log's 1/0, an overflowing product) must be NumPy's
    # for DeZero's expression of each derivative
    x, gy = np.array(x0, dtype=dtype), np.array(g0, dtype=dtype)
    with np.errstate(all='ignore'):
        y = forward(x)
    with warnings.catch_warnings(record=True) as w_np:
        warnings.simplefilter('always')
        want = np.asarray(numpy_grad(x, y, gy))
    v = Variable(x)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter('always')
        y = fn(v)                    # forward warnings are not this test's
    y.grad = Variable(gy)
    with warnings.catch_warnings(record=True) as w_us:
        warnings.simplefilter('always')
        y.backward()
    got = v.grad.data
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    assert sorted(str(m.message) for m in w_us) == sorted(str(m.message) for m in w_np)


_UFUNC_OPS = [(F.sin, np.sin), (F.cos, np.cos), (F.tanh, np.tanh), (F.exp, np.exp),
              (F.log, np.log)]


def _wide_float64s():
    """Numbers over the whole float64 range, signs, subnormals, the edges
    where exp and tanh saturate, and the values every function flags."""
    rng = np.random.default_rng(7)
    return np.concatenate([
        rng.standard_normal(3000) * 10.0 ** rng.integers(-320, 308, 3000),
        rng.uniform(-50.0, 50.0, 3000), rng.uniform(-1e6, 1e6, 500),
        [0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324, 2.2e-308, 1.7e308,
         709.78, 709.79, -745.13, -745.14, 19.06, -19.06, 1.0, -1.0, np.pi, 1e22]])


def test_unary_ops_call_numpys_own_loops():
    # on every supported NumPy the loops are found through its public API; if
    # one were not, the ufunc would be called, slower but right
    assert _core._ufunc_loops() == ('sin', 'cos', 'tanh', 'exp', 'log', 'power')


@pytest.mark.parametrize('fn, ufunc', _UFUNC_OPS, ids=[u.__name__ for _, u in _UFUNC_OPS])
def test_unary_forward_on_one_number_is_numpy_bit_for_bit(fn, ufunc):
    # a 0-d float64 goes through the ufunc's inner loop without the ufunc:
    # each value's bits, and each warning, must be what the ufunc gives
    mismatches = []
    for value in _wide_float64s():
        a = np.array(value)
        with warnings.catch_warnings(record=True) as w_np:
            warnings.simplefilter('always')
            want = ufunc(a)
        with warnings.catch_warnings(record=True) as w_us:
            warnings.simplefilter('always')
            got = fn(Variable(a)).data
        if (type(got) is not np.ndarray or got.shape != () or got.dtype != np.float64
                or got.tobytes() != np.asarray(want).tobytes()
                or [str(m.message) for m in w_us] != [str(m.message) for m in w_np]):
            mismatches.append((value, got, want, w_us, w_np))
    assert mismatches == []


_EXPONENTS = [3, 4, 10, -2, -3, 7, 1.5, 2.5, -0.5, 0.3, 3.0, 1e-3, 300, -300,
              2, 2.0, 1, 1.0, 0, 0.0, -1, -1.0, 0.5]


def _numpy_power_and_gradient(a, c, gy):
    return a ** c, c * a ** (c - 1) * gy


def _our_power_and_gradient(a, c, gy):
    x = Variable(a)
    y = F.pow(x, c)
    y.grad = Variable(gy)
    y.backward()
    return y.data, x.grad.data


def _with_warnings(fn, *args):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        out = fn(*args)
    return out, sorted(str(m.message) for m in w)


@pytest.mark.parametrize('c', _EXPONENTS, ids=[repr(c) for c in _EXPONENTS])
def test_power_on_one_number_is_numpy_bit_for_bit(c):
    # x ** c forward, and DeZero's c * x ** (c - 1) * gy backward: a 0-d
    # float64 goes through np.power's own loop (or x * x for c = 2; the
    # exponents NumPy computes by other ufuncs are left to NumPy); each
    # value's bits and each warning must be NumPy's
    gy = np.array(1.25)
    mismatches = []
    for value in np.concatenate([_wide_float64s()[::3], [2.0, -2.0, 0.5, -0.5]]):
        a = np.array(value)
        (want_y, want_g), w_np = _with_warnings(_numpy_power_and_gradient, a, c, gy)
        (got_y, got_g), w_us = _with_warnings(_our_power_and_gradient, a, c, gy)
        want_y, want_g = np.asarray(want_y), np.asarray(want_g)
        if (got_y.tobytes() != want_y.tobytes() or got_g.tobytes() != want_g.tobytes()
                or got_y.dtype != want_y.dtype or w_us != w_np):
            mismatches.append((value, got_y, want_y, got_g, want_g, w_us, w_np))
    assert mismatches == []


_DIV_VALUES = [1.5, -2.0, 0.0, -0.0, 1e-300, 1e300, 5e-324, np.inf, -np.inf, np.nan,
               3.0, 7e-155, 1.3e154] + list(np.random.default_rng(3).standard_normal(10))


def _numpy_div_gradients(a, b, gy):
    # what DeZero computes for each input that is a Variable
    return (gy / b if isinstance(a, np.ndarray) else None,
            gy * (-a / b ** 2) if isinstance(b, np.ndarray) else None)


def _our_div_gradients(x0, x1, y):
    y.backward()
    return (x0.grad.data if isinstance(x0, Variable) else None,
            x1.grad.data if isinstance(x1, Variable) else None)


@pytest.mark.parametrize('const', [None, 'x0', 'x1'])
def test_div_backward_on_one_number_is_numpy_bit_for_bit(const):
    # DeZero's gy / x1 and gy * (-x0 / x1 ** 2) in C for 0-d float64 (and a
    # Python number for a constant side): bits, dtype and warnings as NumPy's
    mismatches = []
    for u in _DIV_VALUES:
        for v in _DIV_VALUES:
            for g in (1.25, 1e300, 0.0):
                a = u if const == 'x0' else np.array(u)
                b = v if const == 'x1' else np.array(v)
                gy = np.array(g)
                (w0, w1), w_np = _with_warnings(_numpy_div_gradients, a, b, gy)
                x0 = Variable(a) if isinstance(a, np.ndarray) else a
                x1 = Variable(b) if isinstance(b, np.ndarray) else b
                with np.errstate(all='ignore'):
                    y = x0 / x1             # the forward's warnings are not this test's
                y.grad = Variable(gy)
                (g0, g1), w_us = _with_warnings(_our_div_gradients, x0, x1, y)
                for got, want, needed in ((g0, w0, const != 'x0'), (g1, w1, const != 'x1')):
                    if needed and (got.tobytes() != np.asarray(want).tobytes()
                                   or got.dtype != np.asarray(want).dtype):
                        mismatches.append((u, v, g, got, want))
                if w_us != w_np:
                    mismatches.append((u, v, g, w_us, w_np))
    assert mismatches == []


@pytest.mark.parametrize('fn, ufunc, value', [
    (F.log, np.log, 0.0), (F.log, np.log, -1.0), (F.exp, np.exp, 1000.0),
    (F.exp, np.exp, -1000.0), (F.sin, np.sin, np.inf), (F.cos, np.cos, -np.inf),
])
def test_unary_forward_on_one_number_honours_errstate(fn, ufunc, value):
    a = np.array(value)
    with np.errstate(all='raise'):
        with pytest.raises(FloatingPointError) as want:
            ufunc(a)
        with pytest.raises(FloatingPointError) as got:
            fn(Variable(a))
    assert str(got.value) == str(want.value)
    with np.errstate(all='ignore'):
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            fn(Variable(a))


def test_gradient_accumulation_overflow_warns_like_numpy():
    x = Variable(np.array(1.0))
    y = x + x       # seeded with 1e308: x's gradient is 1e308 + 1e308
    y.grad = Variable(np.array(1e308))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        y.backward()
    assert np.isinf(x.grad.data)
    assert any('overflow' in str(m.message) for m in w)
    x.cleargrad()
    y.grad = Variable(np.array(1e308))
    with np.errstate(over='raise'), pytest.raises(FloatingPointError):
        y.backward()
    assert x.grad is None


@pytest.mark.parametrize('dtype', [np.float64, np.float32])
def test_array_fast_paths_report_what_numpy_reports(dtype):
    big = np.finfo(dtype).max / 4
    x = np.full((3, 4), big, dtype=dtype)
    W = np.full((4, 2), 2.0, dtype=dtype)
    b = np.zeros(2, dtype=dtype)
    cases = [
        (lambda: F.linear(x, W, b).data, lambda: x.dot(W) + b),
        (lambda: F.mean_squared_error(x, -x).data,
         lambda: ((x + x) ** 2).sum() / len(x)),
    ]
    for ours, numpy_spelling in cases:
        with warnings.catch_warnings(record=True) as w_np:
            warnings.simplefilter('always')
            want = numpy_spelling()
        with warnings.catch_warnings(record=True) as w_us:
            warnings.simplefilter('always')
            got = ours()
        # What the installed NumPy reports: its dot reports overflow only
        # from 2.3 on (numpy/numpy#28442), so on 2.0-2.2 linear is silent too.
        assert bool(w_us) == bool(w_np)
        np.testing.assert_array_equal(got, want)
        if w_np:
            with np.errstate(all='raise'), pytest.raises(FloatingPointError):
                ours()
    tiny = np.full(5, np.finfo(dtype).smallest_subnormal, dtype=dtype)
    with np.errstate(under='raise'):
        with pytest.raises(FloatingPointError):
            np.tanh(tiny * dtype(0.5))
        with pytest.raises(FloatingPointError):
            F.sigmoid(tiny)
    np.testing.assert_array_equal(F.sigmoid(tiny).data,
                                  np.tanh(tiny * dtype(0.5)) * dtype(0.5) + dtype(0.5))


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint8).tobytes()


_PRODUCT_SHAPES = [(256, 784, 1000), (256, 1000, 10), (1000, 256, 10), (64, 64, 257),
                   (300, 2, 300), (2, 500, 4100), (513, 33, 100), (128, 3, 128)]


@pytest.mark.parametrize('m, n, p', _PRODUCT_SHAPES)
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_big_matrix_products_are_numpys_dot_bit_for_bit(m, n, p, dtype):
    # Big products go to np.matmul, which makes np.dot's BLAS call without
    # first zeroing the result; every layout the engine meets (C order, the
    # transposed views of its backward, a matrix times its own transpose)
    # must give np.dot's bits, forward and backward, on this NumPy's BLAS.
    rng = np.random.default_rng(m * n + p)
    a = rng.standard_normal((m, n)).astype(dtype)
    W = rng.standard_normal((n, p)).astype(dtype)
    b = rng.standard_normal(p).astype(dtype)
    gy = rng.standard_normal((m, p)).astype(dtype)
    pairs = [(a, W), (np.asfortranarray(a), W), (a, np.asfortranarray(W)),
             (a, a.T), (a.T, a), (a[:, ::-1], W), (W.T, a.T)]
    for x0, x1 in pairs:
        if x0.shape[1] != x1.shape[0]:
            continue
        assert _bits(F.matmul(x0, x1).data) == _bits(x0.dot(x1))
    want = a.dot(W)
    want += b
    assert _bits(F.linear(a, W, b).data) == _bits(want)
    for fn in (lambda x, w: F.matmul(x, w), lambda x, w: F.linear(x, w, b)):
        x, w = Variable(a), Variable(W)
        y = fn(x, w)
        y.grad = Variable(gy)
        y.backward()
        assert _bits(x.grad.data) == _bits(gy.dot(W.T))
        assert _bits(w.grad.data) == _bits(a.T.dot(gy))


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_relu_backward_is_numpys_bit_for_bit(dtype):
    # One pass in C instead of a mask and a multiply through a cast: the
    # same bits, and what NumPy reports (inf * 0) reported as NumPy does.
    rng = np.random.default_rng(3)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, 5e-324, -5e-324, 1e-45, -1e-45,
                         1e38, -1e38, 2.0, -3.0], dtype=dtype)
    x = rng.standard_normal((50, 40)).astype(dtype)
    gy = rng.standard_normal((50, 40)).astype(dtype)
    k = len(specials)
    x[0, :k] = specials
    gy[1, :k] = specials
    x[2, :k], gy[2, :k] = specials, specials[::-1]
    x[3, :k], gy[3, :k] = specials[::-1], specials
    finite = gy.copy()
    finite[~np.isfinite(finite)] = 7.0
    nan_x = x.copy()
    nan_x[4, :3] = np.nan
    for xs, g in ((x, finite), (x, gy), (nan_x, finite)):
        with warnings.catch_warnings(record=True) as w_np:
            warnings.simplefilter('always')
            want = g * (xs > 0)
        v = Variable(xs)
        y = F.relu(v)
        y.grad = Variable(g)
        with warnings.catch_warnings(record=True) as w_us:
            warnings.simplefilter('always')
            y.backward()
        assert v.grad.data.dtype == want.dtype
        assert _bits(v.grad.data) == _bits(want)
        assert [str(m.message) for m in w_us] == [str(m.message) for m in w_np]
        if w_np:
            v.cleargrad()
            y.grad = Variable(g)    # backward dropped it, as DeZero's does
            with np.errstate(all='raise'), pytest.raises(FloatingPointError):
                y.backward()
            assert v.grad is None


@pytest.mark.parametrize('fn', ['relu', 'sigmoid'])
def test_pool_eviction_runs_no_callback_inside_a_fast_path(fn):
    # A result of a fast path that only the pool still holds may carry a
    # weak reference; dropping it runs the callback, Python code, which
    # could retype the arrays a fast path has already checked (here: twice
    # the elements of the buffer) and make its loop run past them. The pool
    # drops such an array only where no check is pending, and the callback
    # still runs then.
    out = run_isolated('''
        import weakref, warnings
        import numpy as np
        import cydezero as dz, cydezero.functions as F
        warnings.simplefilter('ignore', DeprecationWarning)  # NumPy 2.5: setting dtype
        fn = getattr(F, %r)
        refs, fired = [], []
        for k in range(70):
            x = np.linspace(-1.0, 1.0, 32).reshape(4, 8)
            v = dz.Variable(x)
            y = fn(v)
            def retype(ref, arrays=(x, y.data)):
                fired.append(ref)
                for a in arrays:
                    a.dtype = np.float32    # (4, 16) in the same bytes
            s = F.sigmoid(np.ones((2, 3))).data     # a pooled result
            refs.append(weakref.ref(s, retype))
            del s                                   # now only the pool holds it
            keep = [F.sigmoid(np.ones((1, 1))) for _ in range(k)]
            y.grad = dz.Variable(np.ones((4, 8)))
            try:
                y.backward()
            except (ValueError, TypeError):
                pass        # NumPy's own error, on arrays retyped before it ran
            del keep
        F.sigmoid(np.ones(1))                       # a forward: the pool drops them
        print('fired', len(fired) > 0, all(r() is None for r in refs))
    ''' % fn)
    assert out.split() == ['fired', 'True', 'True']


# -- generations -------------------------------------------------------------

def test_large_generations_keep_the_backward_order():
    x = Variable(np.array(0.5))
    x.generation = 2 ** 31 - 10
    h = x * 1.0
    z = h + F.cos(F.sin(h))
    z.backward()
    assert float(x.grad.data) == pytest.approx(1 - np.sin(np.sin(0.5)) * np.cos(0.5))


def test_generation_past_the_largest_is_a_clear_error():
    x = Variable(np.array(0.5))
    x.generation = 2 ** 31 - 1
    with pytest.raises(OverflowError, match='Mul: an input has generation 2147483647'):
        x * 1.0
    with cydezero.no_grad():
        assert float((x * 2.0).data) == 1.0     # nothing recorded, nothing to number


# -- commit is all or nothing ------------------------------------------------

class _Spread(Function):
    """y = x[:1]; its gradient is a read-only broadcast view of x's shape,
    which committing must copy."""
    def forward(self, x):
        return x[:1].copy()

    def backward(self, gy):
        return np.broadcast_to(gy.data, self.inputs[0].shape)


@pytest.mark.parametrize('order', ['small first', 'huge first'])
def test_memory_error_while_committing_changes_no_gradient(order):
    a = Variable(np.ones(1))
    # 2**50 float64 numbers (8 PiB) as a broadcast view: the copy that the
    # commit makes of its gradient cannot be allocated.
    huge = Variable(np.broadcast_to(np.ones(1), (2 ** 50,)))
    a.grad = Variable(np.full(1, 7.0))
    terms = [_Spread()(a * 2.0), _Spread()(huge)]
    if order == 'huge first':
        terms.reverse()
    loss = F.sum(terms[0] + terms[1])
    with pytest.raises(MemoryError):
        loss.backward()
    assert a.grad.data.tolist() == [7.0] and huge.grad is None


# -- copies of a variable in the middle of a pass ------------------------------

@pytest.mark.parametrize('clone', [copy.copy, lambda v: pickle.loads(pickle.dumps(v))])
def test_copy_made_inside_a_hook_shares_no_gradient_buffer(clone):
    x = Variable(np.array([1.0, 2.0]))
    copies = []
    a, b, c = x * 2.0, x * 3.0, x * 4.0
    d = a * 1.0
    d.register_hook(lambda g: copies.append(clone(x)))
    (d + b + c).sum().backward()
    assert x.grad.data.tolist() == [9.0, 9.0]
    (copies[0] * 5.0).sum().backward()
    assert copies[0].grad.data.tolist() == [5.0, 5.0]
    assert x.grad.data.tolist() == [9.0, 9.0]


def test_copy_and_pickle_keep_what_dezero_keeps():
    x = Variable(np.array([1.0, 2.0]), name='x')
    x.grad = Variable(np.array([0.5, 0.5]))
    y = x * 2.0
    c = copy.copy(y)
    assert c.creator is y.creator and c.generation == y.generation and c.data is y.data
    p = pickle.loads(pickle.dumps(x))
    assert p.name == 'x' and p.data.tolist() == [1.0, 2.0] and p.grad.data.tolist() == [0.5, 0.5]
    assert type(pickle.loads(pickle.dumps(cydezero.Parameter(np.ones(2))))) is cydezero.Parameter
    # the copy of an output is not an output: its death leaves y's slot alone
    del c
    assert y.creator.outputs[0]() is y


# -- deep copies and pickles of a graph -----------------------------------------

def _graph_program(V):
    """Every kind of parameter a built-in keeps (Pow's c, Sum's axis,
    Reshape's shape, GetItem's slices, Max's axis), fused scalars, a
    constant input, a Python Function with an attribute, and x used twice.
    Returns (output, leaves)."""
    x = V(np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]]))
    s = V(np.array(0.7))
    h = F.softmax(F.reshape(x, (3, 2)) * 2.0, axis=0)
    y = (F.sum(h ** 3, axis=1)[np.array([0, 2, 0])] + F.max(x, axis=0)) * F.sin(s) ** 2
    return F.sum(y * np.array([1.0, 2.0, 3.0])) + s * 3.0 + 1.0, [x, s]


@pytest.mark.parametrize('clone', [copy.deepcopy, lambda v: pickle.loads(pickle.dumps(v))])
def test_a_copied_graph_differentiates_into_its_own_leaves(clone):
    # DeZero deep-copies a graph (its Functions are plain objects); its
    # copy's backward then fails on the weak references to the original
    # outputs. Here the copy is a graph of its own: truth is the original's
    # gradients, which the copy's backward must not touch.
    y, leaves = _graph_program(Variable)
    c = clone(y)
    assert c is not y and float(c.data) == float(y.data)
    assert c.creator is not y.creator and c.creator.outputs[0]() is c
    c.backward()
    assert all(v.grad is None for v in leaves)
    y.backward()
    copies = []
    todo = [c.creator]
    while todo:     # the copy's leaves, found through its graph
        for v in todo.pop().inputs:
            if v.creator is None:
                if not any(v is k for k in copies) and v.grad is not None:
                    copies.append(v)
            else:
                todo.append(v.creator)
    got = sorted(copies, key=lambda v: v.data.size, reverse=True)
    want = sorted(leaves, key=lambda v: v.data.size, reverse=True)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g is not w
        np.testing.assert_array_equal(g.grad.data, w.grad.data)


def test_deepcopy_of_a_model_whose_rnn_holds_its_state_matches_dezero(dezero):
    # best = copy.deepcopy(model) in the middle of a sequence: DeZero copies
    # the hidden state's graph; the copy must run on from it as DeZero's does.
    import cydezero.layers as L
    import cydezero.models as M

    def make(layers, models):
        class Net(models.Model):
            def __init__(self):
                super().__init__()
                self.rnn = layers.RNN(4)
                self.fc = layers.Linear(1)

            def forward(self, x):
                return self.fc(self.rnn(x))
        return Net()

    outs = {}
    for name, layers, models in (('dz', dezero.layers, dezero.models), ('cz', L, M)):
        np.random.seed(0)
        m = make(layers, models)
        xs = np.random.rand(3, 1, 1)
        m(xs[0])
        m(xs[1])
        twin = copy.deepcopy(m)
        outs[name] = (twin(xs[2]).data, m(xs[2]).data)
    np.testing.assert_array_equal(outs['cz'][0], outs['dz'][0])
    np.testing.assert_array_equal(outs['cz'][0], outs['cz'][1])
    # and ours (the last made) differentiates through the copied state
    twin.cleargrads()
    F.sum(twin(xs[0])).backward()
    assert all(p.grad is not None for p in twin.params())


def test_a_copied_graph_is_freed_by_reference_counting():
    import gc
    import weakref
    y, leaves = _graph_program(Variable)
    gc.disable()
    try:
        c = copy.deepcopy(y)
        f = weakref.ref(c.creator)
        del c
        assert f() is None
    finally:
        gc.enable()


# -- set_creator -------------------------------------------------------------

def test_set_creator_to_the_same_function_changes_nothing(dezero):
    for mod in (cydezero, dezero):
        x = mod.Variable(np.array(2.0))
        y = x * x
        y.set_creator(y.creator)
        y.backward()
        assert float(x.grad.data) == 4.0, mod.__name__


# -- detect_anomaly ------------------------------------------------------------

def test_anomaly_sites_are_kept_by_identity_not_equality():
    import dataclasses

    @dataclasses.dataclass(eq=True)
    class Sq(Function):
        def forward(self, x):
            return x * x

        def backward(self, gy):
            return 2 * self.inputs[0] * gy * np.nan

    with cydezero.detect_anomaly():
        x = Variable(np.array(2.0))
        y1 = Sq()(x)                  # line A
        y2 = Sq()(x) * 1.0            # line B: an equal (==) Function
        with pytest.raises(FloatingPointError) as e:
            y2.backward()
    assert 'y2 = Sq()(x) * 1.0' in str(e.value)
    assert 'y1 = Sq()(x)' not in str(e.value)
    del y1


# -- get_item on many dimensions ------------------------------------------------

def test_get_item_gradient_on_more_than_32_dimensions():
    out = run_isolated('''
        import numpy as np
        from cydezero import Variable
        x = Variable(np.arange(2.0 * 3).reshape((2,) + (1,) * 38 + (3,)))
        y = x[1]
        (y * 2.0).sum().backward()
        g = x.grad.data
        print(g.shape == x.shape, g[0].sum(), g[1].sum())
        try:
            x[np.array([1, 1])]
            x2 = Variable(x.data)
            x2[np.array([1, 1])].sum().backward()
        except ValueError as e:
            print('ValueError', 'index arrays' in str(e))
    ''')
    assert out.split() == ['True', '0.0', '6.0', 'ValueError', 'True']


def test_get_item_gradient_repeated_and_basic_indices():
    x = Variable(np.arange(6.0).reshape(2, 3))
    F.sum(x[np.array([0, 0, 1])] * 2.0).backward()
    assert x.grad.data.tolist() == [[4.0, 4.0, 4.0], [2.0, 2.0, 2.0]]
    x.cleargrad()
    F.sum(x[:, 1:] * -1.0).backward()
    g = x.grad.data
    assert g.tolist() == [[0.0, -1.0, -1.0], [0.0, -1.0, -1.0]]
    # np.add.at into zeros gives +0.0 where a -0.0 is added: so does ours
    x.cleargrad()
    F.sum(x[0] * -0.0).backward()
    assert not np.signbit(x.grad.data).any()


# -- threads and nested passes -------------------------------------------------

def test_threads_differentiating_one_graph_are_never_wrong():
    x = Variable(np.array([0.3, -1.2, 2.0]))
    w = Variable(np.array([1.5, 0.5, -0.25]))
    loss = F.sum(F.tanh(x * w) * x + F.sin(x))
    gx = (1 - np.tanh(x.data * w.data) ** 2) * w.data * x.data + np.tanh(x.data * w.data) \
        + np.cos(x.data)
    runs, threads, errors, grads = 200, 4, [], []

    def work():
        try:
            for _ in range(runs):
                loss.backward()
                grads.append(cydezero.grad(loss, x)[0].data.copy())
        except BaseException as e:     # pragma: no cover - reported below
            errors.append(e)
    ts = [threading.Thread(target=work) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    np.testing.assert_allclose(x.grad.data, gx * runs * threads, rtol=1e-12)
    assert len(grads) == runs * threads
    for g in grads:
        np.testing.assert_array_equal(g, grads[0])
    np.testing.assert_allclose(grads[0], gx, rtol=1e-14)


def test_softmax_cross_entropy_labels_rewritten_by_another_thread():
    # The one-call loss and gradient check the labels, then index with
    # them; another thread's NumPy call runs without the GIL and may write
    # them in between. Each label is checked again where it is used (a
    # build that used them unchecked crashed here within 0.2 s).
    out = run_isolated('''
        import threading, time
        import numpy as np
        from cydezero import _core
        from cydezero.functions import softmax_cross_entropy
        N, C = 16000, 4
        x = np.random.default_rng(0).standard_normal((N, C))
        good = np.random.default_rng(1).integers(0, C, N)
        bad = np.full(N, 1 << 40, dtype=np.int64)
        t = good.copy()
        stop = False
        def writer():
            while not stop:
                np.copyto(t, bad)
                np.copyto(t, good)
        th = threading.Thread(target=writer)
        th.start()
        want = float(softmax_cross_entropy(x, good).data)
        end, results = time.time() + 1.5, set()
        while time.time() < end:
            loss = _core._sce_loss(x, t)
            results.add('declined' if loss is None else loss.item() == want)
            _core._sce_grad(x, t, np.array(0.5))
        stop = True
        th.join()
        print(sorted(results, key=str))
    ''')
    # Taken or declined, never a crash; a taken loss may mix the two label
    # sets (that is the program's race), so only its completion is checked.
    assert out.strip().startswith('[')


def test_backward_inside_a_hook_on_another_graph_works():
    x = Variable(np.array(3.0))
    other = Variable(np.array(2.0))
    z = other * other       # recorded here: backward runs with recording off
    seen = []

    def hook(g):
        z.backward()
        seen.append(float(other.grad.data))
    y = x * x
    y.register_hook(hook)
    (y * 1.0).backward()
    assert seen == [4.0] and float(x.grad.data) == 6.0


def test_backward_inside_a_hook_on_the_same_graph_is_a_clear_error():
    x = Variable(np.array(3.0))
    y = x * x
    z = y * 2.0 + x
    x.grad = Variable(np.array(100.0))

    def hook(g):
        z.backward()
    y.register_hook(hook)
    with pytest.raises(RuntimeError, match='still in progress'):
        z.backward()
    assert float(x.grad.data) == 100.0 and y.grad is None


def test_interrupt_in_the_middle_of_a_pass_changes_nothing():
    x = Variable(np.array([1.0, 2.0]))
    w = Variable(np.array([3.0, 4.0]))
    x.grad = Variable(np.array([10.0, 10.0]))
    y = x * w
    calls = []

    def hook(g):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
    y.register_hook(hook)
    loss = F.sum(y * y)
    with pytest.raises(KeyboardInterrupt):
        loss.backward()
    assert x.grad.data.tolist() == [10.0, 10.0] and w.grad is None
    loss.backward()        # the next pass runs as if nothing had happened
    assert x.grad.data.tolist() == [10.0 + 18.0, 10.0 + 64.0]
    assert w.grad.data.tolist() == [6.0, 32.0]
