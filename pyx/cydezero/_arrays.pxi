# Arrays: what counts as one, the 0-d float64 arithmetic of scalar graphs,
# and the array-level helpers DeZero exports (as_array, sum_to_array, ...).
# Part of the _core module (included by _core.pyx).

cimport cython
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.long cimport PyLong_AsLongLongAndOverflow
from libc.math cimport fabs
from libc.float cimport DBL_MIN, DBL_MAX
from cpython.exc cimport PyErr_Clear, PyErr_Occurred
from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_IsValid
from cpython.ref cimport Py_INCREF

import sys

import numpy as np
cimport numpy as cnp

cdef type ndarray = np.ndarray


cdef inline bint _is_gpu_array(object x):
    # CuPy is optional and never imported here: if the user has a CuPy array,
    # CuPy is already in sys.modules.
    cp = sys.modules.get('cupy')
    return cp is not None and isinstance(x, cp.ndarray)


cdef inline bint _is_array(object x):
    return type(x) is ndarray or isinstance(x, ndarray) or _is_gpu_array(x)


cdef type float64 = np.float64
cdef cnp.dtype _f64_dtype = np.dtype(np.float64)     # NumPy's own, one object


# A float64 number that the scalar fast paths made and nobody has needed as
# an array yet: a gradient in a backward pass, or a Variable's number (which
# the Variable itself holds as a C double, see _hold) while an operation
# computes with it. It costs a fifth of what a 0-d array costs to make and
# free. It never reaches NumPy or user code: Variable.data makes the 0-d
# float64 array NumPy would have made (then the array is the value, so an
# edit in place is seen), and every path that hands a value to NumPy or to
# Python code goes through _arr. Only the operations whose _f64_aware is
# True take it as an input or gradient.
@cython.final
@cython.freelist(64)
cdef class _F64:
    cdef double v


cdef inline object _as_arr(object y):
    """NumPy turns 0-d results into scalars; DeZero's data is always an array."""
    if type(y) is ndarray or type(y) is _F64:
        return y
    if type(y) is float64:
        return _new_f64(PyFloat_AS_DOUBLE(y))
    if isinstance(y, np.generic):
        return np.asarray(y)
    return y


# The fast path for scalar graphs: +, -, *, / on 0-d float64 arrays (or a
# 0-d float64 array and a Python float, or the NumPy float64 scalar that a
# ufunc returns for a 0-d array) are done in C. IEEE arithmetic gives
# the bit-identical result NumPy would; only the ufunc call is skipped. A
# result that NumPy would flag (overflow, underflow, NaN, see _plain) is
# computed again by NumPy, so its warnings and np.errstate still apply.
cdef enum:
    OP_ADD, OP_SUB, OP_MUL, OP_DIV


cdef inline object _new_f64(double v):
    cdef cnp.ndarray a = _take_spare_f64()
    if a is None:
        a = cnp.PyArray_SimpleNew(0, NULL, cnp.NPY_DOUBLE)
    (<double*>cnp.PyArray_DATA(a))[0] = v
    return a


cdef inline object _f64(double v):
    cdef _F64 o = _F64.__new__(_F64)
    o.v = v
    return o


cdef inline object _arr(object d):
    """d as NumPy and user code may see it: an _F64 becomes its 0-d array."""
    if type(d) is _F64:
        return _new_f64((<_F64>d).v)
    return d


# A Variable whose value is one float64 number holds it as a C double (_v)
# and _LAZY in _data, which nothing else ever holds. Its value is read as
# _val(v) (an _F64) by the operations, or as _vd(v) (the array, made once)
# by NumPy and user code; and a Variable is given a number only through
# _hold_number (which _hold calls for an _F64), so no Variable's _data is
# ever an _F64.
cdef class _Lazy:
    pass

cdef object _LAZY = _Lazy()


cdef inline void _hold_number(Variable v, double x) noexcept:
    """Make the number x v's value."""
    v._v = x
    v._data = _LAZY


cdef inline void _hold(Variable v, object data) noexcept:
    """Make data v's value: an _F64 is kept as its number."""
    if type(data) is _F64:
        _hold_number(v, (<_F64>data).v)
    else:
        v._data = data


cdef inline object _val(Variable v):
    """v's value as the operations compute with it: its data, or an _F64
    for a number it holds."""
    d = v._data
    return _f64(v._v) if d is _LAZY else d


cdef inline object _vd(Variable v):
    """v's data as an array (what Variable.data gives): a number is made
    an array once, which from then on is the value."""
    d = v._data
    if d is _LAZY:
        d = _new_f64(v._v)
        v._data = d
    return d


cdef long long _EXACT_INT = 9007199254740992   # 2**53


cdef inline bint _scalar_f64(object x, double* v) except -1:
    """Whether x is one float64 number (or a Python number NumPy would
    turn into one exactly), read into v[0]. The usual two, an _F64 and a
    float, are answered here, small enough to be inlined where called."""
    if type(x) is _F64:
        v[0] = (<_F64>x).v
        return True
    if type(x) is float:
        v[0] = PyFloat_AS_DOUBLE(x)
        return True
    return _other_scalar_f64(x, v)


cdef bint _other_scalar_f64(object x, double* v) except -1:
    """_scalar_f64 for the rest: a 0-d array, a NumPy float64, an int."""
    cdef long long i
    cdef int overflow
    if type(x) is ndarray:
        # Read as a C double only when it is one: native byte order, aligned.
        if (cnp.PyArray_NDIM(<cnp.ndarray>x) == 0
                and cnp.PyArray_TYPE(<cnp.ndarray>x) == cnp.NPY_DOUBLE
                and cnp.PyArray_ISBEHAVED_RO(<cnp.ndarray>x)):
            v[0] = (<double*>cnp.PyArray_DATA(<cnp.ndarray>x))[0]
            return True
        return False
    if type(x) is float64:     # NumPy's is a float subclass
        v[0] = PyFloat_AS_DOUBLE(x)
        return True
    if type(x) is int:
        # NumPy turns a Python int into float64 exactly up to 2**53.
        i = PyLong_AsLongLongAndOverflow(x, &overflow)
        if overflow == 0 and -_EXACT_INT <= i <= _EXACT_INT:
            v[0] = <double>i
            return True
    return False


cdef inline bint _is_value(object x):
    """x is an array or an _F64 (not a Python or NumPy scalar constant)."""
    return type(x) is ndarray or type(x) is _F64


cdef inline object _negate(object a):
    cdef double x
    if _is_value(a) and _scalar_f64(a, &x):
        return _f64(-x)
    return -_arr(a)


cdef inline bint _same_shape(object a, object b):
    """Whether arrays (or Variables, or _F64 values) a and b have one shape,
    read in C when both are NumPy arrays or _F64s."""
    cdef Py_ssize_t i, nd, nb
    cdef cnp.npy_intp* da
    cdef cnp.npy_intp* db
    if type(a) is _F64 and (type(b) is _F64 or (type(b) is Variable
                                                and (<Variable>b)._data is _LAZY)):
        return True     # the usual case on scalar graphs: two numbers
    if isinstance(a, Variable):
        a = (<Variable>a)._data
    if isinstance(b, Variable):
        b = (<Variable>b)._data
    nd = _c_ndim(a)
    nb = _c_ndim(b)
    if nd < 0 or nb < 0:
        return _shape_of(a) == _shape_of(b)
    if nd != nb:
        return False
    if nd == 0:
        return True
    da = cnp.PyArray_DIMS(<cnp.ndarray>a)
    db = cnp.PyArray_DIMS(<cnp.ndarray>b)
    for i in range(nd):
        if da[i] != db[i]:
            return False
    return True


cdef inline Py_ssize_t _c_ndim(object x):
    """x's number of dimensions when it is a NumPy array, an _F64 or a
    Variable's _LAZY (0); -1 for anything else."""
    if type(x) is ndarray:
        return cnp.PyArray_NDIM(<cnp.ndarray>x)
    if type(x) is _F64 or x is _LAZY:
        return 0
    return -1


cdef inline bint _plain(double r, bint exact_zero):
    """Whether r, the result of one IEEE operation, raised none of the flags
    NumPy checks: a normal finite number, or a zero the operation gives
    exactly (exact_zero: an operand was zero, or the operation is + or -,
    whose zero results are exact). Subnormal results, infinities and NaNs
    go back to NumPy, which computes the same value and reports it."""
    cdef double m = fabs(r)
    if m >= DBL_MIN:
        return m <= DBL_MAX
    return r == 0.0 and exact_zero


cdef inline bint _arith_f64(int op, double x, double y, double* r) noexcept:
    """x op y into r; whether NumPy would have raised no flag."""
    if op == OP_ADD:
        r[0] = x + y
    elif op == OP_SUB:
        r[0] = x - y
    elif op == OP_MUL:
        r[0] = x * y
    else:
        r[0] = x / y
    return _plain(r[0], op <= OP_SUB or x == 0.0 or (op == OP_MUL and y == 0.0))


cdef inline object _arith(int op, object a, object b):
    cdef double x, y, r
    if (_scalar_f64(a, &x) and _scalar_f64(b, &y) and (_is_value(a) or _is_value(b))
            and _arith_f64(op, x, y, &r)):
        return _f64(r)
    a = _arr(a)
    b = _arr(b)
    if op == OP_ADD:
        return a + b
    if op == OP_SUB:
        return a - b
    if op == OP_MUL:
        return a * b
    return a / b


# sin, cos, tanh, exp, log and power of one float64 number, through NumPy's
# own inner loop: the function np.sin(a 0-d float64 array) runs, called as
# NumPy calls it there (0-d inputs stride 0, the new output stride 8, one
# element), without the ufunc's dispatch around it (about 4,000 instructions
# a call). The loops come from NumPy's documented, unstable Python API
# (ufunc._resolve_dtypes_and_context and ufunc._get_strided_loop); the
# capsule's name pins the layout of the struct read here, so a NumPy that
# changes it gives no loop, and the ufunc is called as before. As in _arith,
# a result that raised a flag NumPy checks is computed again by the ufunc, so
# its warnings and np.errstate still apply.
ctypedef int (*_strided_loop)(void* context, char** data, cnp.npy_intp* n,
                              cnp.npy_intp* strides, void* auxdata) noexcept nogil

ctypedef struct _ufunc_call_info:
    _strided_loop loop
    void* context
    void* auxdata
    unsigned char requires_pyapi
    unsigned char no_floatingpoint_errors

cdef enum:
    U_SIN, U_COS, U_TANH, U_EXP, U_LOG, U_POW, U_COUNT

cdef tuple _loop_ufuncs = (np.sin, np.cos, np.tanh, np.exp, np.log, np.power)
cdef _ufunc_call_info* _loops[U_COUNT]
cdef int _loop_nin[U_COUNT]         # each loop's number of inputs
cdef const char* _CALL_INFO = b"numpy_1.24_ufunc_call_info"


cdef _ufunc_call_info* _ufunc_loop(object uf, object dt, tuple strides):
    """NumPy's own inner loop of ufunc uf (one output) on inputs and output
    of type dt, for these strides (one per operand, outputs last), or NULL
    where NumPy offers none."""
    cdef _ufunc_call_info* info
    try:
        ins = (dt,) * uf.nin
        dtypes, cap = uf._resolve_dtypes_and_context(ins + (None,))
        if dtypes != ins + (dt,) or uf.nout != 1 or not PyCapsule_IsValid(cap, _CALL_INFO):
            return NULL
        uf._get_strided_loop(cap, fixed_strides=strides)
        info = <_ufunc_call_info*>PyCapsule_GetPointer(cap, _CALL_INFO)
    except Exception:
        return NULL
    if info.loop == NULL or info.requires_pyapi:
        return NULL
    # The capsule owns the loop's context and data: held for the life of
    # the process, as NumPy holds its ufuncs.
    Py_INCREF(cap)
    return info


cdef void _find_loops():
    cdef Py_ssize_t i
    for i in range(U_COUNT):
        uf = _loop_ufuncs[i]
        _loop_nin[i] = uf.nin
        # _call_loop places at most two inputs
        _loops[i] = (_ufunc_loop(uf, _f64_dtype, (0,) * uf.nin + (8,))
                     if 1 <= uf.nin <= 2 else NULL)


_find_loops()


def _ufunc_loops():
    """The names of the ufuncs whose float64 loop the engine calls itself."""
    return tuple([_loop_ufuncs[i].__name__ for i in range(U_COUNT) if _loops[i] != NULL])


cdef bint _invoke_loop(_ufunc_call_info* info, char** data, cnp.npy_intp n,
                       cnp.npy_intp* strides) noexcept:
    """Run loop info on n elements; False if it failed (an error it set is
    cleared: the caller then asks the ufunc, which runs it again and
    reports)."""
    if info.loop(info.context, data, &n, strides, info.auxdata) != 0:
        if PyErr_Occurred():
            PyErr_Clear()
        return False
    return True


cdef bint _call_loop(int which, double* args, double* r):
    """Loop `which` on one element: args (nin of them) in, r out; False when
    there is no loop, it failed or it raised a flag (the caller then asks
    the ufunc)."""
    cdef char* data[3]
    cdef cnp.npy_intp strides[3]
    cdef int i, nin = _loop_nin[which]
    cdef _ufunc_call_info* info = _loops[which]
    if info == NULL:
        return False
    for i in range(nin):
        data[i] = <char*>&args[i]
        strides[i] = 0
    data[nin] = <char*>r
    strides[nin] = 8
    _clear_fp_flags()
    return _invoke_loop(info, data, 1, strides) and not fetestexcept(_FP_FLAGS)


cdef object _umath(int which, object x):
    """_loop_ufuncs[which](x); for a 0-d float64 array through NumPy's loop."""
    cdef double v[2]
    cdef double r
    if _is_value(x) and _scalar_f64(x, &v[0]) and _call_loop(which, v, &r):
        return _f64(r)
    return _loop_ufuncs[which](_arr(x))


cdef bint _pow_f64(double v, object c, double* r) except -1:
    """v ** c as NumPy computes x ** c for a 0-d float64 x and a Python int
    or float c, into r; False when that is left to NumPy. NumPy computes
    x ** 2 as a square (here v * v), and x ** -1, x ** 0.5 (and, before 2.x
    settled, x ** 0 and x ** 1) by other ufuncs; every other exponent goes
    to np.power's own loop. x ** 1 is x and x ** 0 is 1 by either route
    (power, or positive and ones_like), exactly and with no flag, for a
    normal or zero x (the others are left to NumPy): the second derivative
    of x ** 2 and the third of x ** 3 ask for them. A flagged result is
    left to NumPy too."""
    cdef double a[2]
    if c == 2:
        r[0] = v * v
        return _plain(r[0], v == 0.0)
    if c == 1 or c == 0:
        r[0] = v if c == 1 else 1.0
        return _plain(v, True)
    if c == -1 or c == 0.5 or not _scalar_f64(c, &a[1]):
        return False
    a[0] = v
    return _call_loop(U_POW, a, r)


cdef object _power(object x, object c):
    """x ** c; in C for a 0-d float64 array x and a Python number c."""
    cdef double v, r
    if (_is_value(x) and (type(c) is int or type(c) is float)
            and _scalar_f64(x, &v) and _pow_f64(v, c, &r)):
        return _f64(r)
    return _arr(x) ** c


def as_array(x, array_module=np):
    """Turn a Python or NumPy scalar into a 0-d array; leave anything else."""
    if np.isscalar(x):
        return array_module.array(x)
    return x


def as_variable(obj):
    """Return ``obj`` if it is a Variable, else wrap it in one."""
    if isinstance(obj, Variable):
        return obj
    return Variable(obj)


cdef inline tuple _shape_of(object x):
    if isinstance(x, Variable):
        x = (<Variable>x)._data
    if type(x) is _F64 or x is _LAZY:
        return ()
    if _is_array(x):
        return x.shape
    return ()


cdef str _unreachable(tuple x_shape, tuple shape):
    """Why an array of x_shape cannot be summed to shape (it is not a shape
    that broadcasts to x_shape), or None when it can."""
    cdef Py_ssize_t lead = len(x_shape) - len(shape)
    if lead < 0 or any([s != 1 and s != xs for s, xs in zip(shape, x_shape[lead:])]):
        return 'cannot sum an array of shape {} to shape {}'.format(x_shape, shape)
    return None


def sum_to_array(x, shape):
    """Sum the array ``x`` down to ``shape`` (the inverse of broadcasting).

    Axes that broadcasting prepended are summed away; axes where ``shape``
    has 1 are summed with keepdims. Returns ``x`` itself when nothing to do.
    """
    return _sum_to_checked(x, x.shape, tuple(shape), 'sum_to')


cdef object _sum_to_checked(object x, tuple x_shape, tuple shape, str who):
    """x (of x_shape) summed to shape; a ValueError that names `who` when it
    cannot be."""
    if x_shape == shape:
        return x
    why = _unreachable(x_shape, shape)
    if why is not None:
        raise ValueError(who + ': ' + why)
    return _sum_to_reachable(x, shape)


cdef object _sum_to_reachable(object x, tuple shape):
    """sum_to_array's sum, for a shape that _unreachable() accepted."""
    cdef Py_ssize_t lead = x.ndim - len(shape)
    lead_axis = tuple(range(lead))
    axis = tuple([i + lead for i, sx in enumerate(shape) if sx == 1])
    if not axis:
        return _as_arr(x.sum(lead_axis))    # only prepended axes (a bias)
    y = x.sum(lead_axis + axis, keepdims=True)
    if lead > 0:
        y = y.squeeze(lead_axis)
    return _as_arr(y)


cdef tuple _normalize_axes(object axis, Py_ssize_t ndim):
    if axis is None:
        return tuple(range(ndim))
    if not isinstance(axis, tuple):
        axis = (axis,)
    return tuple([a % ndim if ndim else a for a in axis])


def reshape_sum_backward(gy, x_shape, axis, keepdims):
    """Reshape the gradient of a sum so it broadcasts back to ``x_shape``.

    Works on arrays and on Variables alike (both have ``reshape``).
    """
    cdef Py_ssize_t ndim = len(x_shape)
    if ndim == 0 or axis is None or keepdims:
        shape = _shape_of(gy)
    else:
        shape = list(_shape_of(gy))
        for a in sorted(_normalize_axes(axis, ndim)):
            shape.insert(a, 1)
        shape = tuple(shape)
    return gy.reshape(shape)


def max_backward_shape(x, axis):
    """The shape of ``max(x, axis)`` with the reduced axes kept as 1."""
    axes = _normalize_axes(axis, x.ndim)
    return [1 if ax in axes else s for ax, s in enumerate(x.shape)]
