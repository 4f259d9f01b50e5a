# The layers' workhorses: Linear, Sigmoid, ReLU, MeanSquaredError, with their
# fast paths on plain buffers.
# Part of the _core module (included by _core.pyx).

import numpy as np
cimport numpy as cnp

from cydezero cimport _kernels

# The layers' workhorses: written here rather than in Python so that a small
# network's step is not dominated by wrapping every intermediate gradient.
#
# Each also has a fast path for float32 and float64 arrays in C order (the
# usual case), all operands of one type: the arithmetic runs in _kernels'
# loops on the buffers, in that type, with one result array per result
# instead of a NumPy call per operator. The results are NumPy's bit for bit,
# except that a small matrix product may round differently from the BLAS.
# Anything else (mixed or other dtypes, views, broadcasting, CuPy, a recorded
# backward under create_graph) takes the NumPy spelling next to it.


# Each operation below comes in three layers: _<op>_<fwd|bw>_loop, the
# arithmetic on raw buffers, written once for float and double (the type of
# the first pointer picks the version, the other buffers are read as the
# same); _<op>_<fwd|bw>_fast, which checks types, order and shapes, takes its
# result arrays from the pool and returns None where it does not apply (or
# where the FP flags say NumPy must report something); and the op, which
# calls the fast path first and then reads as its definition.

# --- Linear -------------------------------------------------------------------
# A matrix product that sums more than one term goes to the BLAS, through
# np.dot as DeZero's x.dot(W) does: the BLAS orders (and fuses) its sums in
# its own way, so only its own result is DeZero's to the last bit. One-term
# products (a contraction of length 1) are exact anywhere and stay in
# _kernels.matmul; so do the bias and the bias gradient, whose sums are
# NumPy's own order.

cdef object _np_dot = np.dot


cdef void _linear_fwd_loop(_kernels.real* y, object x, object W, object b) noexcept:
    _kernels.matmul(_dim(x, 0), _dim(x, 1), _dim(W, 1),
                    <_kernels.real*>_data(x), _dim(x, 1), 1,
                    <_kernels.real*>_data(W), _dim(W, 1), 1,
                    NULL if b is None else <_kernels.real*>_data(b), y)


cdef void _add_bias_loop(_kernels.real* y, object b, cnp.npy_intp M,
                         cnp.npy_intp N) noexcept:
    """y[i, j] += b[j], as NumPy's y += b."""
    cdef const _kernels.real* q = <_kernels.real*>_data(b)
    cdef cnp.npy_intp i, j
    for i in range(M):
        for j in range(N):
            y[i * N + j] += q[j]


cdef void _linear_bw_loop(_kernels.real* g, object x, object W,
                          object gx, object gW, object gb, Py_ssize_t chunk) noexcept:
    """gb, and the one-term products of gx and gW (the rest: the BLAS)."""
    # g: the buffer of gy; chunk: _sum_chunk() (read when N == 1)
    cdef cnp.npy_intp M = _dim(x, 0), K = _dim(x, 1), N = _dim(W, 1)
    cdef _kernels.real* b
    if gb is not None:
        b = <_kernels.real*>_data(gb)
        if N == 1:   # NumPy reduces a single column pairwise
            b[0] = _kernels.numpy_sum(g, M, chunk)
        else:
            _kernels.column_sums(M, N, g, b)
    if gx is not None and N == 1:      # gy @ W.T
        _kernels.matmul(M, N, K, g, N, 1, <_kernels.real*>_data(W), 1, N, NULL,
                        <_kernels.real*>_data(gx))
    if gW is not None and M == 1:      # x.T @ gy
        _kernels.matmul(K, M, N, <_kernels.real*>_data(x), 1, K, g, N, 1, NULL,
                        <_kernels.real*>_data(gW))


cdef object _linear_fwd_fast(object x, object W, object b):
    """x @ W + b into a pooled buffer, for small matrices, or None."""
    cdef int t = _small_matrices(x, W)
    if t < 0 or not (b is None or (
            _fast_type(b) == t and _ndim(b) == 1 and _dim(b, 0) == _dim(W, 1))):
        return None
    y = _empty2(t, _dim(x, 0), _dim(W, 1))
    if _dim(x, 1) == 1:     # one-term products, exact in the loop, bias and all
        _clear_fp_flags()
        if t == cnp.NPY_DOUBLE:
            _linear_fwd_loop(<double*>_data(y), x, W, b)
        else:
            _linear_fwd_loop(<float*>_data(y), x, W, b)
    else:
        _np_dot(x, W, out=y)
        if b is None:
            return y
        _clear_fp_flags()
        if t == cnp.NPY_DOUBLE:
            _add_bias_loop(<double*>_data(y), b, _dim(y, 0), _dim(y, 1))
        else:
            _add_bias_loop(<float*>_data(y), b, _dim(y, 0), _dim(y, 1))
    if fetestexcept(_FP_FLAGS):
        return None
    return y


cdef tuple _linear_bw_fast(Linear f, object gy):
    """(gx, gW[, gb]) into pooled buffers, for small matrices, or None."""
    # First: on NumPy 2.0-2.2 it may run Python code (np.getbufsize).
    cdef Py_ssize_t chunk = _sum_chunk()
    x = f._x(0, False)
    W = f._x(1, False)
    b = f._x(2, False) if f._nin > 2 else None
    cdef int t = _small_matrices(x, W)
    if not (t >= 0 and _fast_type(gy) == t and _ndim(gy) == 2
            and _dim(gy, 0) == _dim(x, 0) and _dim(gy, 1) == _dim(W, 1)):
        return None
    cdef cnp.npy_intp N = _dim(W, 1)
    gx = gW = gb = None
    if f._needs(2):
        if not (_fast_type(b) == t and _ndim(b) == 1 and _dim(b, 0) == N):
            return None     # a bias that was broadcast: sum_to in the op
        if N == 1 and chunk == 0:
            return None     # NumPy sums in an order _kernels does not know
        gb = _new_array(t, 1, &N)
    if f._needs(0):
        gx = _empty2(t, _dim(x, 0), _dim(x, 1))
    if f._needs(1):
        gW = _empty2(t, _dim(x, 1), N)
    _clear_fp_flags()
    if t == cnp.NPY_DOUBLE:
        _linear_bw_loop(<double*>_data(gy), x, W, gx, gW, gb, chunk)
    else:
        _linear_bw_loop(<float*>_data(gy), x, W, gx, gW, gb, chunk)
    if fetestexcept(_FP_FLAGS):
        return None
    if gx is not None and N != 1:
        _np_dot(gy, W.T, out=gx)
    if gW is not None and _dim(x, 0) != 1:
        _np_dot(x.T, gy, out=gW)
    return (gx, gW) if f._nin == 2 else (gx, gW, gb)


cdef class Linear(_Builtin):
    """y = x @ W + b;  gx = gy @ W.T, gW = x.T @ gy, gb = sum_to(gy, b.shape).
    b may be None (no bias)."""
    cdef int _arity(self):
        return -1   # x, W and, optionally, b

    cdef object _fwd(self, tuple xs):
        if not 2 <= len(xs) <= 3:
            raise TypeError('Linear: takes 2 or 3 inputs (x, W, b), got {}'.format(len(xs)))
        x, W = xs[0], xs[1]
        b = xs[2] if len(xs) > 2 else None
        y = _linear_fwd_fast(x, W, b)
        if y is not None:
            return y
        y = _dot(x, W)
        if b is not None:
            y += b
        return y

    cdef tuple _bw(self, object gy, bint graph):
        if not graph:
            gxs = _linear_bw_fast(self, gy)
            if gxs is not None:
                return gxs
        gxW = _matmul_bw(self, gy, graph)
        if self._nin == 2:
            return gxW
        gb = _sum_to_like(gy, self._inp(2), graph) if self._needs(2) else None
        return gxW + (gb,)


def linear(x, W, b=None):
    """x.dot(W) + b (b may be None) in one Function: a fully connected layer."""
    # b=None stays an input, as in DeZero (f.inputs and DOT graphs show it).
    return _apply(Linear.__new__(Linear), (x, W, b))


# --- Sigmoid ------------------------------------------------------------------

cdef void _sigmoid_halve_loop(_kernels.real* y, object x) noexcept:
    """y = x * 0.5, elementwise over x's buffer."""
    cdef const _kernels.real* q = <_kernels.real*>_data(x)
    cdef cnp.npy_intp i
    for i in range(cnp.PyArray_SIZE(<cnp.ndarray>x)):
        y[i] = q[i] * <_kernels.real>0.5


cdef void _sigmoid_halve_add_half_loop(_kernels.real* y, cnp.npy_intp n) noexcept:
    """y = y * 0.5 + 0.5, in place."""
    cdef cnp.npy_intp i
    for i in range(n):
        y[i] = y[i] * <_kernels.real>0.5 + <_kernels.real>0.5


cdef void _sigmoid_bw_loop(_kernels.real* g, object gy, object y) noexcept:
    cdef const _kernels.real* a = <_kernels.real*>_data(gy)
    cdef const _kernels.real* b = <_kernels.real*>_data(y)
    cdef cnp.npy_intp i
    for i in range(cnp.PyArray_SIZE(<cnp.ndarray>y)):
        g[i] = a[i] * b[i] * (<_kernels.real>1 - b[i])


cdef object _sigmoid_fwd_fast(object x):
    """tanh(x * 0.5) * 0.5 + 0.5 in one buffer, or None. The tanh is
    np.tanh's own, called through the ufunc: its inner loops are not public
    API, and NumPy 2.5 no longer declares them to Cython."""
    cdef int t = _fast_type(x)
    if t < 0:
        return None
    y = _empty_like(x)
    _clear_fp_flags()
    if t == cnp.NPY_DOUBLE:
        _sigmoid_halve_loop(<double*>_data(y), x)
    else:
        _sigmoid_halve_loop(<float*>_data(y), x)
    if fetestexcept(_FP_FLAGS):
        return None
    np.tanh(y, out=y)
    _clear_fp_flags()
    if t == cnp.NPY_DOUBLE:
        _sigmoid_halve_add_half_loop(<double*>_data(y), cnp.PyArray_SIZE(<cnp.ndarray>y))
    else:
        _sigmoid_halve_add_half_loop(<float*>_data(y), cnp.PyArray_SIZE(<cnp.ndarray>y))
    if fetestexcept(_FP_FLAGS):
        return None
    return y


cdef object _sigmoid_bw_fast(object gy, object y):
    """gy * y * (1 - y) on plain buffers of one type and shape, or None."""
    cdef int t = _fast_type2(gy, y)
    if t < 0 or not _same_shape(gy, y):
        return None
    gx = _empty_like(y)
    _clear_fp_flags()
    if t == cnp.NPY_DOUBLE:
        _sigmoid_bw_loop(<double*>_data(gx), gy, y)
    else:
        _sigmoid_bw_loop(<float*>_data(gx), gy, y)
    if fetestexcept(_FP_FLAGS):
        return None
    return gx


cdef class Sigmoid(_Builtin):
    """y = 1 / (1 + exp(-x)), computed as tanh(x / 2) / 2 + 1 / 2 (no
    overflow);  gx = gy * y * (1 - y)."""
    cdef object _fwd2(self, object x0, object x1):
        y = _sigmoid_fwd_fast(x0)
        if y is not None:
            return y
        return np.tanh(x0 * 0.5) * 0.5 + 0.5

    cdef tuple _bw(self, object gy, bint graph):
        y = self._y(graph)
        if not graph:
            gx = _sigmoid_bw_fast(gy, y)
            if gx is not None:
                return (gx,)
        return (gy * y * (1 - y),)


def sigmoid(x):
    """Elementwise 1 / (1 + exp(-x))."""
    return _apply1(Sigmoid.__new__(Sigmoid), x)


# --- ReLU ---------------------------------------------------------------------

cdef void _relu_bw_loop(_kernels.real* g, object gy, object x) noexcept:
    """g = gy * (x > 0), the mask a 1 or 0 of gy's type, as NumPy casts it."""
    cdef const _kernels.real* a = <_kernels.real*>_data(gy)
    cdef const _kernels.real* b = <_kernels.real*>_data(x)
    cdef _kernels.real zero = 0, one = 1
    cdef cnp.npy_intp i
    for i in range(cnp.PyArray_SIZE(<cnp.ndarray>x)):
        g[i] = a[i] * (one if b[i] > zero else zero)


cdef object _relu_bw_fast(object gy, object x):
    """gy * (x > 0) in one pass over plain buffers of one type and shape
    (NumPy makes a mask, then multiplies through a cast), or None."""
    cdef int t = _fast_type2(gy, x)
    if t < 0 or not _same_shape(gy, x):
        return None
    gx = _empty_like(x)
    _clear_fp_flags()
    if t == cnp.NPY_DOUBLE:
        _relu_bw_loop(<double*>_data(gx), gy, x)
    else:
        _relu_bw_loop(<float*>_data(gx), gy, x)
    if fetestexcept(_FP_FLAGS):
        return None
    return gx


cdef class ReLU(_Builtin):
    """y = max(x, 0);  gx = gy * [x > 0]."""
    cdef object _fwd2(self, object x0, object x1):
        return np.maximum(x0, 0.0)

    cdef tuple _bw(self, object gy, bint graph):
        x = self._x(0, False)
        if not graph:
            gx = _relu_bw_fast(gy, x)
            if gx is not None:
                return (gx,)
        return (gy * (x > 0),)


def relu(x):
    """Elementwise max(x, 0)."""
    return _apply1(ReLU.__new__(ReLU), x)


# --- MeanSquaredError ---------------------------------------------------------

cdef double _mse_fwd_loop(_kernels.real* a, object x1, cnp.npy_intp n,
                          cnp.npy_intp length, Py_ssize_t chunk) noexcept:
    # sum / length, both in the arrays' type, as NumPy computes it
    return (_kernels.numpy_sum_sq_diff(a, <_kernels.real*>_data(x1), n, chunk)
            / <_kernels.real>length)


cdef void _mse_bw_loop(_kernels.real* a, object x1, object gy, object gx0, object gx1,
                       cnp.npy_intp n, cnp.npy_intp length) noexcept:
    # gy * (x0 - x1) * (2 / length): 2 / length is a Python float, which
    # NumPy rounds to the arrays' type first
    cdef const _kernels.real* b = <_kernels.real*>_data(x1)
    cdef _kernels.real g = (<_kernels.real*>_data(gy))[0]
    cdef _kernels.real k = <_kernels.real>(2. / length)
    cdef _kernels.real* p0 = NULL if gx0 is None else <_kernels.real*>_data(gx0)
    cdef _kernels.real* p1 = NULL if gx1 is None else <_kernels.real*>_data(gx1)
    cdef _kernels.real d
    cdef cnp.npy_intp i
    for i in range(n):
        d = g * (a[i] - b[i]) * k
        if p0 != NULL:
            p0[i] = d
        if p1 != NULL:
            p1[i] = -d


cdef inline int _same_fast_type(object a, object b):
    """The common fast type of two arrays of one shape, not 0-d nor empty;
    else -1."""
    cdef int t = _fast_type2(a, b)
    if t >= 0 and _ndim(a) > 0 and _same_shape(a, b) and cnp.PyArray_SIZE(<cnp.ndarray>a) > 0:
        return t
    return -1


cdef object _mse_fwd_fast(object x0, object x1):
    """The loss as a 0-d array, summed in NumPy's order on plain buffers of
    one type and shape, or None."""
    # First: on NumPy 2.0-2.2 it may run Python code (np.getbufsize).
    cdef Py_ssize_t chunk = _sum_chunk()
    cdef int t = _same_fast_type(x0, x1) if chunk > 0 else -1
    if t < 0:
        return None
    cdef cnp.npy_intp n = cnp.PyArray_SIZE(<cnp.ndarray>x0)
    _clear_fp_flags()
    if t == cnp.NPY_DOUBLE:
        y = _scalar_array(t, _mse_fwd_loop(<double*>_data(x0), x1, n, _dim(x0, 0), chunk))
    else:
        y = _scalar_array(t, _mse_fwd_loop(<float*>_data(x0), x1, n, _dim(x0, 0), chunk))
    if fetestexcept(_FP_FLAGS):
        return None
    return y


cdef tuple _mse_bw_fast(MeanSquaredError f, object gy):
    """(gx0, gx1) on plain buffers of one type and shape with a 0-d gy, or None."""
    x0 = f._x(0, False)
    x1 = f._x(1, False)
    cdef int t = _same_fast_type(x0, x1)
    if t < 0 or _fast_type(gy) != t or _ndim(gy) != 0:
        return None
    cdef cnp.npy_intp n = cnp.PyArray_SIZE(<cnp.ndarray>x0)
    gx0 = _empty_like(x0) if f._needs(0) else None
    gx1 = _empty_like(x0) if f._needs(1) else None
    _clear_fp_flags()
    if t == cnp.NPY_DOUBLE:
        _mse_bw_loop(<double*>_data(x0), x1, gy, gx0, gx1, n, _dim(x0, 0))
    else:
        _mse_bw_loop(<float*>_data(x0), x1, gy, gx0, gx1, n, _dim(x0, 0))
    if fetestexcept(_FP_FLAGS):
        return None
    return (gx0, gx1)


cdef class MeanSquaredError(_Builtin):
    """y = sum((x0 - x1) ** 2) / N with N = len(x0 - x1);
    gx0 = gy * 2 (x0 - x1) / N, gx1 = -gx0 (each summed back to its input's
    shape when the two were broadcast)."""
    cdef int _arity(self):
        return 2

    cdef object _fwd2(self, object x0, object x1):
        y = _mse_fwd_fast(x0, x1)
        if y is not None:
            return y
        diff = x0 - x1
        return (diff ** 2).sum() / len(diff)

    cdef tuple _bw(self, object gy, bint graph):
        if not graph:
            gxs = _mse_bw_fast(self, gy)
            if gxs is not None:
                return gxs
        diff = self._x(0, graph) - self._x(1, graph)
        # On arrays, NumPy broadcasts gy in the product itself (same values);
        # a recorded graph needs the explicit BroadcastTo.
        gy = _broadcast_g(gy, _shape_of(diff), graph) if graph else gy
        g = gy * diff * (2. / len(diff))
        gx0 = _sum_to_like(g, self._in0, graph) if self._needs(0) else None
        gx1 = _sum_to_like(_neg_g(g, graph), self._in1, graph) if self._needs(1) else None
        return (gx0, gx1)


def mean_squared_error(x0, x1):
    """sum((x0 - x1) ** 2) / len(x0 - x1): squared error over the batch."""
    return _apply2(MeanSquaredError.__new__(MeanSquaredError), x0, x1)
