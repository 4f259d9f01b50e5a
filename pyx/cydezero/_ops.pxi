# What the built-in operations share: the helpers whose array and Variable
# spellings differ, and _Builtin, the base of every built-in operation.
# Part of the _core module (included by _core.pyx).

import numpy as np

cdef inline object _sum_to_like(object g, object x, bint graph):
    """g summed down to the shape of input x (a Variable or a constant)."""
    if _same_shape(g, x):
        return g
    return _sum_to_g(g, _shape_of(x), graph)


cdef inline object _neg_g(object g, bint graph):
    return -g if graph else _negate(g)


cdef object _sum_to_g(object g, tuple shape, bint graph):
    if _shape_of(g) == shape:
        return g
    return sum_to(g, shape) if graph else sum_to_array(_arr(g), shape)


cdef object _broadcast_g(object g, tuple shape, bint graph):
    if _shape_of(g) == shape:
        return g
    return broadcast_to(g, shape) if graph else np.broadcast_to(_arr(g), shape)


cdef inline object _times(object a, object b, bint graph):
    return a * b if graph else _arith(OP_MUL, a, b)


cdef inline object _minus(object a, object b, bint graph):
    return a - b if graph else _arith(OP_SUB, a, b)


cdef inline object _over(object a, object b, bint graph):
    return a / b if graph else _arith(OP_DIV, a, b)


cdef object _matmul_g(object a, object b, bint graph):
    return matmul(a, b) if graph else _dot(a, b)


# a.dot(b), DeZero's matrix product, bit for bit. For two matrices of
# float32 or float64 (aligned, native, each in C or Fortran order, every
# dimension above 1), np.dot and np.matmul make the very same BLAS call:
# gemm, or syrk for a matrix times its own transpose, with the same
# transposes and leading dimensions (NumPy's cblasfuncs.c and matmul.c.src).
# np.dot also zeroes its result first, a pass over memory that the BLAS
# overwrites; for a big result (at least _MATMUL_BYTES) that pass costs more
# than np.matmul's dispatch, so those products go to np.matmul.
# tests/test_safety.py compares the two on every CI leg.
cdef enum:
    _MATMUL_BYTES = 65536
    _BLAS_MAXSIZE = 2147483646      # NumPy's limit for a BLAS dimension

cdef object _np_matmul = np.matmul


cdef inline bint _blas_matrix(object a, int t):
    """a is a matrix of type t (NPY_FLOAT or NPY_DOUBLE), both dimensions
    above 1 and within the BLAS's int, that the BLAS reads in place (no
    copy by either function)."""
    if type(a) is not ndarray:
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    if (cnp.PyArray_TYPE(arr) != t or cnp.PyArray_NDIM(arr) != 2
            or not cnp.PyArray_ISALIGNED(arr) or not cnp.PyArray_ISNOTSWAPPED(arr)
            or not (cnp.PyArray_IS_C_CONTIGUOUS(arr) or cnp.PyArray_IS_F_CONTIGUOUS(arr))):
        return False
    cdef cnp.npy_intp m = cnp.PyArray_DIMS(arr)[0], n = cnp.PyArray_DIMS(arr)[1]
    return 1 < m <= _BLAS_MAXSIZE and 1 < n <= _BLAS_MAXSIZE


cdef object _dot(object a, object b):
    """a.dot(b), through np.matmul where that is the same BLAS call and
    saves np.dot's zeroing of a big result."""
    cdef int t = -1
    cdef cnp.npy_intp* da
    cdef cnp.npy_intp* db
    if type(a) is ndarray:
        t = cnp.PyArray_TYPE(<cnp.ndarray>a)
    if (t == cnp.NPY_FLOAT or t == cnp.NPY_DOUBLE) and _blas_matrix(a, t) and _blas_matrix(b, t):
        da = cnp.PyArray_DIMS(<cnp.ndarray>a)
        db = cnp.PyArray_DIMS(<cnp.ndarray>b)
        if (da[1] == db[0] and <double>da[0] * <double>db[1]
                * cnp.PyArray_ITEMSIZE(<cnp.ndarray>a) >= _MATMUL_BYTES):
            return _np_matmul(a, b)
    return a.dot(b)


# Each is a Function with a C-level _fwd/_bw; the Python-visible forward and
# backward methods are the same code, so DeZero-style calls like
# ``Mul().backward(gy)`` and Python subclasses keep working.

cdef void _check_arity(Function f, Py_ssize_t n) except *:
    cdef int k = f._arity()
    if k >= 0 and n != k:
        raise TypeError('{} takes {} input{}, got {}'.format(
            type(f).__name__, k, '' if k == 1 else 's', n))


cdef class _Builtin(Function):
    cdef int _arity(self):
        return 1

    # A built-in operation of one or two inputs computes in _fwd2 (x1 is
    # None for one), which _apply calls without a tuple of the inputs.
    cdef object _fwd(self, tuple xs):
        return self._fwd2(xs[0], xs[1] if len(xs) > 1 else None)

    def forward(self, *xs):
        _check_arity(self, len(xs))
        return _arr(self._fwd(xs))

    def backward(self, *gys):
        if len(gys) != 1:       # every built-in has one output
            raise TypeError('{}.backward takes 1 output gradient, got {}'
                            .format(type(self).__name__, len(gys)))
        return _unpack(self._bw(gys[0], True))


cdef object _unpack(tuple gxs):
    return gxs[0] if len(gxs) == 1 else gxs
