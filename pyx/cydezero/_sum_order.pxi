# NumPy's summation order, as the installed NumPy has it.
#
# mean_squared_error's forward and linear's bias gradient (one output) sum
# in C with _kernels.numpy_sum*, which give NumPy's result bit for bit once
# told into how long pieces NumPy cuts a reduction (_kernels.pxd says why
# that depends on NumPy's version). A probe at import finds which of the
# two known orders the installed NumPy follows; _sum_chunk() then gives the
# piece length in force at the moment of the call:
#
# - whole runs (NumPy 2.3 on): a constant;
# - pieces of the buffer size (NumPy 2.0-2.2): np.getbufsize(), which a
#   program may change per context with np.setbufsize. Reading it costs
#   1-2 us on those versions, more than summing a 100x10 array, so the
#   value is kept together with the object NumPy's context variable held
#   when it was read, and read again only when the variable holds another
#   (np.setbufsize and np.errstate put a new object there);
# - neither (a NumPy whose order this file does not know): 0, and both
#   fast paths take the NumPy spelling, so the results stay NumPy's.

import contextvars

cdef extern from *:
    const Py_ssize_t PY_SSIZE_T_MAX

cdef enum:
    _SUM_UNKNOWN = 0
    _SUM_WHOLE = 1
    _SUM_BUFFERED = 2


cdef Py_ssize_t _sum_chunk() except -1:
    """The piece length for _kernels.numpy_sum that makes it NumPy's sum
    now, or 0 where NumPy's order is not one numpy_sum reproduces."""
    global _extobj_seen, _bufsize
    if _sum_mode == _SUM_WHOLE:
        return PY_SSIZE_T_MAX
    if _sum_mode == _SUM_UNKNOWN:
        return 0
    if _extobj_var is None:
        return np.getbufsize()
    extobj = _extobj_var.get()
    if extobj is not _extobj_seen:
        _bufsize = np.getbufsize()
        _extobj_seen = extobj
    return _bufsize


cdef int _orders_matching(Py_ssize_t n, Py_ssize_t bufsize) except -1:
    """Which orders give NumPy's a.sum() and the column sum that sum_to
    computes, on n float64 and n float32 numbers of mixed signs and
    magnitudes: 1 for whole runs, 2 for pieces of bufsize, 3 for both."""
    cdef double scale[7]
    cdef Py_ssize_t i, chunk
    cdef int found = 0, bit
    cdef double s
    cdef float t
    scale[:] = [1e-3, 1e-2, 1e-1, 1., 1e1, 1e2, 1e3]
    a = np.empty(n)
    cdef double* p = <double*>cnp.PyArray_DATA(a)
    for i in range(n):
        p[i] = ((i * 7919) % 1000 - 499.5) * scale[i % 7]
    b = a.astype(np.float32)
    cdef float* q = <float*>cnp.PyArray_DATA(b)
    expected = (a.sum(), a.reshape(n, 1).sum(0)[0], b.sum(), b.reshape(n, 1).sum(0)[0])
    for bit, chunk in ((1, PY_SSIZE_T_MAX), (2, bufsize)):
        s, t = _kernels.numpy_sum(p, n, chunk), _kernels.numpy_sum(q, n, chunk)
        if expected == (s, s, t, t):
            found |= bit
    return found


def _probe_sum_order():
    """_SUM_WHOLE, _SUM_BUFFERED or _SUM_UNKNOWN for the installed NumPy.

    Under the smallest buffer NumPy allows (16 elements, set in a copy of
    the current context and put back) the two orders differ on sums of
    more than 16 numbers; under the program's buffer size they are checked
    once more, on a sum that spans two buffers and a bit. Under 0.5 ms."""
    cdef int found = 3
    old = np.setbufsize(16)
    try:
        for n in (7, 100, 1000):
            found &= _orders_matching(n, np.getbufsize())
    finally:
        np.setbufsize(old)
    if np.getbufsize() <= 8192:
        found &= _orders_matching(2 * np.getbufsize() + 40, np.getbufsize())
    return {1: _SUM_WHOLE, 2: _SUM_BUFFERED}.get(found, _SUM_UNKNOWN)


cdef int _sum_mode = contextvars.copy_context().run(_probe_sum_order)
# NumPy 2.0-2.2 keep the buffer size in this context variable (private,
# and those versions will not change); without it _sum_chunk asks
# np.getbufsize() every time.
cdef object _extobj_var = None
if _sum_mode == _SUM_BUFFERED:
    try:
        import numpy._core._ufunc_config
        _extobj_var = numpy._core._ufunc_config._extobj_contextvar
    except (ImportError, AttributeError):
        pass
cdef object _extobj_seen = None
cdef Py_ssize_t _bufsize = 0


def _summation_order():
    """How the installed NumPy sums, as the fast paths follow it: 'whole'
    (one pairwise sum over a contiguous run), 'buffered' (pairwise sums of
    np.getbufsize() elements, added in order) or 'unknown' (those fast
    paths are off). For tests."""
    return {_SUM_WHOLE: 'whole', _SUM_BUFFERED: 'buffered'}.get(_sum_mode, 'unknown')
