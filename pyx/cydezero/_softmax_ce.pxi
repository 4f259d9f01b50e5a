# Softmax cross entropy in one call, for functions.py.
# Part of the _core module (included by _core.pyx).
#
# SoftmaxCrossEntropy's forward and its backward on arrays are a dozen NumPy
# calls each (a maximum, a subtraction, exp, a sum, log, fancy indexing, a
# division...). On a classifier's usual batch (tens of rows of a few
# logits) each call costs more in dispatch than in arithmetic: the two were
# a third of the book's spiral training step. _sce_loss and _sce_grad do the
# same operations on the buffers, in the same order and type: exp and log
# through NumPy's own inner loops (the ones np.exp and np.log run on a
# contiguous float32 or float64 array), the sums in NumPy's order
# (_kernels.numpy_sum), the rest IEEE operations that round as NumPy's loops
# do (no contraction: setup.py builds with -ffp-contract=off). So the
# results are NumPy's to the bit.
#
# Each returns None, having changed nothing, where it does not apply (see
# _sce_fits), where a logit is not finite, or where the arithmetic raised a
# floating-point flag (an exp that underflows, a gradient that does): the
# caller then runs the NumPy spelling, which warns or raises as np.errstate
# says.

from libc.math cimport isfinite
from cpython.mem cimport PyMem_Malloc, PyMem_Free

cdef enum:
    # Logits (N x C) up to which the C path is taken: above it the NumPy
    # calls cost little beside their arithmetic, and the scratch memory
    # (2 N C + 2 N numbers) stays small.
    _SCE_MAX_SIZE = 65536

# NumPy's contiguous exp and log loops: [0] float32, [1] float64.
cdef _ufunc_call_info* _sce_exp[2]
cdef _ufunc_call_info* _sce_log[2]


cdef void _find_sce_loops():
    cdef int k
    for k, dt in enumerate((np.dtype(np.float32), np.dtype(np.float64))):
        _sce_exp[k] = _ufunc_loop(np.exp, dt, (dt.itemsize, dt.itemsize))
        _sce_log[k] = _ufunc_loop(np.log, dt, (dt.itemsize, dt.itemsize))


_find_sce_loops()


cdef inline bint _run_loop(_ufunc_call_info* info, void* x, void* y, cnp.npy_intp n,
                           cnp.npy_intp item) noexcept:
    """y[:n] = the loop on x[:n], both contiguous and apart; False if the
    loop failed."""
    cdef char* data[2]
    cdef cnp.npy_intp strides[2]
    data[0] = <char*>x
    data[1] = <char*>y
    strides[0] = strides[1] = item
    return _invoke_loop(info, data, n, strides)


cdef inline Py_ssize_t _label(const char* t, Py_ssize_t item, Py_ssize_t i) noexcept:
    if item == 8:
        return <Py_ssize_t>(<const long long*>t)[i]
    return <Py_ssize_t>(<const int*>t)[i]


cdef int _sce_fits(object x, object t, Py_ssize_t chunk):
    """x's fast type when the C path applies: x a plain float32 or float64
    N x C matrix, N, C >= 1, N C <= _SCE_MAX_SIZE, each row one piece of
    NumPy's sums (C <= chunk), NumPy's loops found; t a plain array of N
    int32 or int64 labels; else -1. The labels' values are checked where
    they are used (see _sce_grad_loop)."""
    cdef int ty = _fast_type(x)
    if ty < 0 or chunk <= 0 or _ndim(x) != 2:
        return -1
    cdef Py_ssize_t N = _dim(x, 0), C = _dim(x, 1)
    if N < 1 or C < 1 or N * C > _SCE_MAX_SIZE or C > chunk:
        return -1
    cdef int k = 1 if ty == cnp.NPY_DOUBLE else 0
    if _sce_exp[k] == NULL or _sce_log[k] == NULL:
        return -1
    if type(t) is not ndarray:
        return -1
    cdef cnp.ndarray ta = <cnp.ndarray>t
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(ta)
    if not (cnp.PyArray_ISINTEGER(ta) and cnp.PyArray_ISSIGNED(ta)
            and (item == 4 or item == 8) and cnp.PyArray_ISCARRAY_RO(ta)
            and cnp.PyArray_ISNOTSWAPPED(ta) and cnp.PyArray_SIZE(ta) == N):
        return -1
    return ty


cdef bint _sce_exp_rows(const _kernels.real* x, Py_ssize_t N, Py_ssize_t C,
                        _kernels.real* m, _kernels.real* d, _kernels.real* e,
                        _ufunc_call_info* exp_loop) noexcept:
    """m = x.max(axis=1) and e = np.exp(x - m[:, None]) for x (N x C), d
    the scratch for x - m; False where a logit is not finite (the maximum's
    NaN rules are NumPy's business) or the loop failed. With every logit
    finite the maximum is order-free: only the sign of a zero maximum may
    differ, which changes no exp(x - m) and no m + log(s), log(s) >= 0."""
    cdef Py_ssize_t i, j
    cdef const _kernels.real* row
    cdef _kernels.real mi
    for i in range(N):
        row = x + i * C
        mi = row[0]
        for j in range(C):
            if not isfinite(row[j]):
                return False
            if row[j] > mi:
                mi = row[j]
        m[i] = mi
        for j in range(C):
            d[i * C + j] = row[j] - mi
    return _run_loop(exp_loop, d, e, N * C, sizeof(_kernels.real))


cdef bint _sce_loss_loop(const _kernels.real* x, const char* t, Py_ssize_t item,
                         Py_ssize_t N, Py_ssize_t C, Py_ssize_t chunk,
                         _kernels.real* work, _kernels.real* loss) noexcept:
    """DeZero's forward: lse = m + log(sum(exp(x - m), axis=1)), then
    -sum(x[i, t[i]] - lse[i]) / N. work: 2 N C + 2 N numbers."""
    cdef int k = 0
    if _kernels.real is double:
        k = 1
    cdef _kernels.real* m = work
    cdef _kernels.real* s = m + N
    cdef _kernels.real* d = s + N
    cdef _kernels.real* e = d + N * C
    cdef Py_ssize_t i, lab
    if not _sce_exp_rows(x, N, C, m, d, e, _sce_exp[k]):
        return False
    for i in range(N):
        s[i] = _kernels.numpy_sum(e + i * C, C, chunk)
    if not _run_loop(_sce_log[k], s, d, N, sizeof(_kernels.real)):     # d[:N] = log(s)
        return False
    for i in range(N):
        lab = _label(t, item, i)
        if lab < 0 or lab >= C:     # left to NumPy: see _sce_grad_loop
            return False
        d[i] = x[i * C + lab] - (m[i] + d[i])
    loss[0] = -_kernels.numpy_sum(d, N, chunk) / <_kernels.real>N
    return True


cdef bint _sce_grad_loop(const _kernels.real* x, const char* t, Py_ssize_t item,
                         Py_ssize_t N, Py_ssize_t C, Py_ssize_t chunk, _kernels.real g,
                         _kernels.real* work, _kernels.real* p) noexcept:
    """The backward on arrays: p = exp(x - m) / its row sums, then
    p[i, t[i]] -= 1, then p *= g. work: N C + N numbers."""
    cdef int k = 0
    if _kernels.real is double:
        k = 1
    cdef _kernels.real* m = work
    cdef _kernels.real* d = m + N
    cdef _kernels.real s
    cdef Py_ssize_t i, j, lab
    if not _sce_exp_rows(x, N, C, m, d, p, _sce_exp[k]):
        return False
    for i in range(N):
        s = _kernels.numpy_sum(p + i * C, C, chunk)
        for j in range(C):
            p[i * C + j] = p[i * C + j] / s
    for i in range(N):
        # A label is checked where it is used, and read once: another
        # thread's NumPy call (which runs without the GIL) may write to the
        # labels at any time. One out of [0, C) is left to NumPy, which
        # takes a negative one from the end and rejects the others.
        lab = _label(t, item, i)
        if lab < 0 or lab >= C:
            return False
        p[i * C + lab] -= 1
    for i in range(N * C):
        p[i] = p[i] * g
    return True


def _sce_loss(x, t):
    """SoftmaxCrossEntropy's forward on the logits x and the labels t, as a
    0-d array of x's type, as its NumPy spelling computes it; None where the
    C path does not apply or NumPy must compute (a value that is not
    finite, a flag raised): see the top of this file."""
    # First: on NumPy 2.0-2.2 it may run Python code (np.getbufsize).
    cdef Py_ssize_t chunk = _sum_chunk()
    cdef int ty = _sce_fits(x, t, chunk)
    if ty < 0:
        return None
    cdef Py_ssize_t N = _dim(x, 0), C = _dim(x, 1)
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(<cnp.ndarray>t)
    cdef const char* tp = <const char*>cnp.PyArray_DATA(<cnp.ndarray>t)
    cdef void* work = PyMem_Malloc((2 * N * C + 2 * N) * cnp.PyArray_ITEMSIZE(<cnp.ndarray>x))
    if work == NULL:
        raise MemoryError()
    cdef double r64
    cdef float r32
    cdef bint ok
    _clear_fp_flags()
    if ty == cnp.NPY_DOUBLE:
        ok = _sce_loss_loop(<double*>_data(x), tp, item, N, C, chunk, <double*>work, &r64)
    else:
        ok = _sce_loss_loop(<float*>_data(x), tp, item, N, C, chunk, <float*>work, &r32)
        r64 = r32
    ok = ok and not fetestexcept(_FP_FLAGS)
    PyMem_Free(work)
    return _scalar_array(ty, r64) if ok else None


def _sce_grad(x, t, gy):
    """SoftmaxCrossEntropy's backward on arrays: the gradient of the logits
    x for the labels t, gy the gradient of the loss already divided by N (a
    0-d array of x's type), as its NumPy spelling computes it (softmax(x),
    1 subtracted at each label, times gy), in a new array; None as for
    _sce_loss."""
    cdef Py_ssize_t chunk = _sum_chunk()
    cdef int ty = _sce_fits(x, t, chunk)
    if ty < 0 or _fast_type(gy) != ty or _ndim(gy) != 0:
        return None
    cdef Py_ssize_t N = _dim(x, 0), C = _dim(x, 1)
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(<cnp.ndarray>t)
    cdef const char* tp = <const char*>cnp.PyArray_DATA(<cnp.ndarray>t)
    p = _empty_like(x)      # first: it may raise, and work would leak
    cdef void* work = PyMem_Malloc((N * C + N) * cnp.PyArray_ITEMSIZE(<cnp.ndarray>x))
    if work == NULL:
        raise MemoryError()
    cdef bint ok
    _clear_fp_flags()
    if ty == cnp.NPY_DOUBLE:
        ok = _sce_grad_loop(<double*>_data(x), tp, item, N, C, chunk,
                            (<double*>_data(gy))[0], <double*>work, <double*>_data(p))
    else:
        ok = _sce_grad_loop(<float*>_data(x), tp, item, N, C, chunk,
                            (<float*>_data(gy))[0], <float*>work, <float*>_data(p))
    ok = ok and not fetestexcept(_FP_FLAGS)
    PyMem_Free(work)
    return p if ok else None
