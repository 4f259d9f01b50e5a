# Buffers for the fast paths: which arrays are plain buffers of float32 or
# float64, and the small pool their results come from.
# Part of the _core module (included by _core.pyx).

from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF, Py_DECREF

cimport numpy as cnp

# Linear's fast path (pooled result buffers, the bias and its gradient in
# C) applies to products of at most this many multiply-adds; above it the
# BLAS call dominates and the NumPy spelling is as fast.
cdef enum:
    _SMALL_MATMUL = 4096


cdef inline int _fast_type(object a):
    """NPY_FLOAT or NPY_DOUBLE when a is a NumPy array of that type in C
    order, aligned and in native byte order (a plain buffer); else -1."""
    cdef int t
    if type(a) is not ndarray:
        return -1
    t = cnp.PyArray_TYPE(<cnp.ndarray>a)
    if ((t == cnp.NPY_DOUBLE or t == cnp.NPY_FLOAT)
            and cnp.PyArray_ISCARRAY_RO(<cnp.ndarray>a)
            and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a)):
        return t
    return -1


cdef inline int _fast_type2(object a, object b):
    """The common _fast_type of a and b, or -1."""
    cdef int t = _fast_type(a)
    return t if t >= 0 and _fast_type(b) == t else -1


cdef inline void* _data(object a):
    return cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline cnp.npy_intp _dim(object a, int i):
    return cnp.PyArray_DIMS(<cnp.ndarray>a)[i]


cdef inline int _ndim(object a):
    return cnp.PyArray_NDIM(<cnp.ndarray>a)


# The fast paths' results come from a small pool of arrays: making and
# freeing an ndarray costs about 0.2 us, as much as the arithmetic of a
# 100x10 operation, and a training step makes the same shapes over and over.
# An array in the pool is handed out again only when the pool's reference
# is the last one (nobody can see it any more) and it is still a writeable
# C-ordered array of the type and shape asked for, with no weak reference to
# it. Only arrays of at most _POOL_BYTES are kept, so the pool holds at most
# _POOL * _POOL_BYTES (2 MiB) beyond what the program holds itself.
cdef enum:
    _POOL = 32
    _POOL_BYTES = 65536

cdef PyObject* _pool[_POOL]
cdef int _pool_next = 0
# Set when a slot holds an array that only the pool and weak references keep:
# dropping it runs their callbacks, Python code that could reshape or retype
# the arrays a fast path has checked, so _new_array never does; the engine
# drops it in _pool_sweep, where no check is pending.
cdef bint _pool_doomed = False

cdef extern from *:
    """
    static int cdz_has_weakrefs(PyObject* o) {
        Py_ssize_t off = Py_TYPE(o)->tp_weaklistoffset;
        return off > 0 && *(PyObject**)((char*)o + off) != NULL;
    }
    """
    bint _has_weakrefs "cdz_has_weakrefs" (PyObject* o)


cdef inline bint _reusable(PyObject* p, int t, int nd, cnp.npy_intp* dims):
    cdef cnp.ndarray a
    cdef cnp.npy_intp* d
    cdef int i
    if _refcnt(p) != 1:     # checked before `a` takes a reference of its own
        return False
    a = <cnp.ndarray>p
    if (cnp.PyArray_NDIM(a) != nd or cnp.PyArray_TYPE(a) != t
            or not cnp.PyArray_ISCARRAY(a) or not cnp.PyArray_ISNOTSWAPPED(a)
            or _has_weakrefs(p)):
        return False
    d = cnp.PyArray_DIMS(a)
    for i in range(nd):
        if d[i] != dims[i]:
            return False
    return True


cdef inline bint _doomed(PyObject* p):
    """Only the pool and weak references keep p: dropping it would run
    their callbacks."""
    return p != NULL and _refcnt(p) == 1 and _has_weakrefs(p)


# Spare 0-d float64 arrays: the gradients a backward pass has consumed, kept
# when the engine held their last reference, at most _SPARES of them, for
# _new_f64 to fill in again (a scalar graph makes one per operation; NumPy's
# constructor and free cost about 700 instructions). Beyond _reusable's rule,
# an array kept was made by NumPy and is nobody's view: exactly ndarray, its
# own data, NumPy's float64 dtype. Nothing reaches a spare (ndarrays are not
# seen by the cycle collector).
cdef enum:
    _SPARES = 64

cdef PyObject* _spares[_SPARES]
cdef int _n_spares = 0


cdef inline void _keep_spare(PyObject* p) noexcept:
    """Keep p, whose last reference the caller is about to drop, when it is
    such an array (the caller drops its reference all the same)."""
    global _n_spares
    if (_n_spares < _SPARES and p.ob_type == <PyTypeObject*>ndarray
            and _reusable(p, cnp.NPY_DOUBLE, 0, NULL)
            and <PyObject*>cnp.PyArray_DESCR(<cnp.ndarray>p) == <PyObject*>_f64_dtype
            and cnp.PyArray_BASE(<cnp.ndarray>p) == NULL
            and cnp.PyArray_CHKFLAGS(<cnp.ndarray>p, cnp.NPY_ARRAY_OWNDATA)):
        _incref(p)
        _spares[_n_spares] = p
        _n_spares += 1


cdef inline object _take_spare_f64():
    """A spare 0-d float64 array (holding a stale value), or None."""
    global _n_spares
    if _n_spares == 0:
        return None
    _n_spares -= 1
    a = <object>_spares[_n_spares]
    _decref(_spares[_n_spares])     # the spares' reference; `a` holds its own
    return a


def _spare_count():
    """How many spare 0-d float64 arrays are kept (for tests)."""
    return _n_spares


cdef object _new_array(int t, int nd, cnp.npy_intp* dims):
    """An uninitialised C-ordered array of type t (every caller writes all
    of it), from the pool when one fits. Runs no Python code."""
    global _pool_next, _pool_doomed
    cdef cnp.npy_intp nbytes = sizeof(double) if t == cnp.NPY_DOUBLE else sizeof(float)
    cdef int i
    cdef PyObject* p
    for i in range(nd):
        nbytes *= dims[i]
    if nbytes > _POOL_BYTES:
        return cnp.PyArray_EMPTY(nd, dims, t, 0)
    for i in range(_POOL):
        p = _pool[i]
        if p != NULL and _reusable(p, t, nd, dims):
            return <object>p
    a = cnp.PyArray_EMPTY(nd, dims, t, 0)
    p = _pool[_pool_next]
    if _doomed(p):
        _pool_doomed = True
        _pool_next = (_pool_next + 1) % _POOL
        return a        # not pooled; p stays until _pool_sweep
    Py_INCREF(a)
    _pool[_pool_next] = <PyObject*>a
    _pool_next = (_pool_next + 1) % _POOL
    if p != NULL:
        Py_DECREF(<object>p)    # not its last reference, or no callback to run
    return a


cdef void _pool_sweep() noexcept:
    """Drop the pooled arrays that only the pool and weak references keep
    (their callbacks run here). Called where no fast path's checks are
    pending: before a forward, after a backward pass."""
    global _pool_doomed
    cdef int i
    cdef PyObject* p
    _pool_doomed = False
    for i in range(_POOL):
        p = _pool[i]
        if _doomed(p):
            _pool[i] = NULL
            Py_DECREF(<object>p)


cdef object _scalar_array(int t, double v):
    """A 0-d array of type t holding v, from the pool (a loss, a seed)."""
    a = _new_array(t, 0, NULL)
    if t == cnp.NPY_DOUBLE:
        (<double*>_data(a))[0] = v
    else:
        (<float*>_data(a))[0] = <float>v
    return a


cdef inline object _empty_like(object a):
    return _new_array(cnp.PyArray_TYPE(<cnp.ndarray>a), _ndim(a),
                      cnp.PyArray_DIMS(<cnp.ndarray>a))


cdef inline object _empty2(int t, cnp.npy_intp m, cnp.npy_intp n):
    cdef cnp.npy_intp dims[2]
    dims[0] = m
    dims[1] = n
    return _new_array(t, 2, dims)


cdef inline int _small_matrices(object x, object W):
    """The common fast type of x (M x K) and W (K x N) when both are
    matrices small enough for Linear's fast path, none of M, K, N zero;
    else -1."""
    cdef int t = _fast_type2(x, W)
    if t < 0 or _ndim(x) != 2 or _ndim(W) != 2:
        return -1
    cdef cnp.npy_intp M = _dim(x, 0), K = _dim(x, 1), N = _dim(W, 1)
    if (K == _dim(W, 0) and M > 0 and K > 0 and N > 0
            and M * K <= _SMALL_MATMUL and M * K * N <= _SMALL_MATMUL):
        return t
    return -1
