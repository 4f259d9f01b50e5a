# Optimizer steps in one call, for optimizers.py.
# Part of the _core module (included by _core.pyx).
#
# Adam's step is a dozen NumPy operations; on a small parameter (a bias, a
# 10x3 weight) each costs more in dispatch than in arithmetic. _adam_step
# does the same operations element by element, each in the arrays' type
# with its coefficient rounded to that type first (what NumPy does with a
# Python float, NEP 50), in the same order. IEEE arithmetic rounds each one
# the same way NumPy's loops do (no contraction: setup.py builds with
# -ffp-contract=off), so the results are NumPy's to the bit.
#
# optimizers.py calls it for small parameters only: on a large one NumPy's
# loops cost no more, and this would need scratch memory of three times its
# size. It computes into scratch memory and writes the parameter and its state
# only when no floating-point exception was raised and no NaN came out: on
# either, nothing has changed and the caller runs the NumPy operations,
# which warn or raise as np.errstate says and give NumPy's NaNs.

from libc.math cimport sqrt, sqrtf
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from libc.string cimport memcpy
from libc.stdint cimport uintptr_t


cdef bint _adam_loop(Py_ssize_t n, _kernels.real* data, const _kernels.real* grad,
                     _kernels.real* m, _kernels.real* v, double c1_, double c2_,
                     double eps_, double lr_, _kernels.real* out) noexcept nogil:
    """out[:n] = the new m, out[n:2n] = the new v, out[2n:] = the new data:
    m + (g - m) c1,  v + (g g - v) c2,  data - (m lr) / (sqrt(v) + eps).
    Returns whether a new data value is a NaN (as it is where any input
    is): which NaN an operation on two returns depends on the order of
    its operands, which NumPy's loops fix and a C compiler need not keep."""
    cdef _kernels.real c1 = <_kernels.real>c1_, c2 = <_kernels.real>c2_
    cdef _kernels.real eps = <_kernels.real>eps_, lr = <_kernels.real>lr_
    cdef _kernels.real g, mi, vi, root, r
    cdef Py_ssize_t i
    cdef bint nan = False
    for i in range(n):
        g = grad[i]
        mi = m[i] + (g - m[i]) * c1
        vi = v[i] + (g * g - v[i]) * c2
        if _kernels.real is float:
            root = sqrtf(vi)
        else:
            root = sqrt(vi)
        out[i] = mi
        out[n + i] = vi
        r = data[i] - (mi * lr) / (root + eps)
        out[2 * n + i] = r
        nan |= r != r
    return nan


cdef inline bint _writable_like(object a, int t, object like):
    """a is a writable plain buffer of type t with like's shape."""
    return (_fast_type(a) == t and cnp.PyArray_ISWRITEABLE(<cnp.ndarray>a)
            and cnp.PyArray_SAMESHAPE(<cnp.ndarray>a, <cnp.ndarray>like))


cdef inline bint _apart(object a, object b, size_t nbytes):
    """The nbytes from a's data and from b's do not overlap."""
    cdef uintptr_t p = <uintptr_t>_data(a)
    cdef uintptr_t q = <uintptr_t>_data(b)
    return p + nbytes <= q or q + nbytes <= p


def _adam_step(data, grad, m, v, c1, c2, eps, lr):
    """Adam's update of one parameter in place, as its NumPy expressions
    ``m += c1 * (grad - m)``, ``v += c2 * (grad * grad - v)``,
    ``data -= lr * m / (sqrt(v) + eps)`` compute it, with ``c1 = 1 - beta1``
    and ``c2 = 1 - beta2``. Returns False, having changed nothing, where it
    does not apply (not four non-empty, writable, non-overlapping float32 or
    float64 arrays of one shape and type; a coefficient that is not a
    Python float), where the arithmetic raised a floating-point exception
    or where a new value is a NaN: the caller then runs those expressions in
    NumPy."""
    cdef int t = _fast_type(data)
    if t < 0 or not (_writable_like(data, t, data) and _fast_type(grad) == t
                     and cnp.PyArray_SAMESHAPE(<cnp.ndarray>grad, <cnp.ndarray>data)
                     and _writable_like(m, t, data) and _writable_like(v, t, data)):
        return False
    # Python floats, which NumPy rounds to the arrays' type (one too large
    # for float32 overflows there, raising the flag checked below).
    if not (type(c1) is float and type(c2) is float and type(eps) is float
            and type(lr) is float):
        return False
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>data)
    cdef size_t item = cnp.PyArray_ITEMSIZE(<cnp.ndarray>data)
    cdef size_t nbytes = n * item
    if n == 0:
        return False
    if not (_apart(data, m, nbytes) and _apart(data, v, nbytes) and _apart(m, v, nbytes)
            and _apart(grad, data, nbytes) and _apart(grad, m, nbytes)
            and _apart(grad, v, nbytes)):
        return False
    cdef double k1 = c1, k2 = c2, k_eps = eps, k_lr = lr
    cdef char* out = <char*>PyMem_Malloc(3 * nbytes)
    if out == NULL:
        raise MemoryError()
    cdef bint nan
    _clear_fp_flags()
    if t == cnp.NPY_DOUBLE:
        nan = _adam_loop(n, <double*>_data(data), <double*>_data(grad),
                         <double*>_data(m), <double*>_data(v), k1, k2, k_eps, k_lr,
                         <double*>out)
    else:
        nan = _adam_loop(n, <float*>_data(data), <float*>_data(grad),
                         <float*>_data(m), <float*>_data(v), k1, k2, k_eps, k_lr,
                         <float*>out)
    cdef bint clean = not (nan or fetestexcept(_FP_FLAGS))
    if clean:
        memcpy(_data(m), out, nbytes)
        memcpy(_data(v), out + nbytes, nbytes)
        memcpy(_data(data), out + 2 * nbytes, nbytes)
    PyMem_Free(out)
    return clean
