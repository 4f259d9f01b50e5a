# Arithmetic on small float32 and float64 buffers (``real`` is either), for
# the built-in operations' fast paths in _core.pyx. On a 100x10 matrix a
# NumPy call costs more in dispatch (about 0.3 us) than in arithmetic, and a
# small network's step makes dozens of them; these loops do the same
# arithmetic with none of that.
#
# Pure C-level code: raw pointers in, nothing allocated, no Python objects.
# Arithmetic stays in the buffers' type, as NumPy's loops do (float32 sums
# in float32). The summation orders are NumPy's where NumPy's is fixed
# (pairwise sums, row-by-row column sums), so those results are
# bit-identical to NumPy's. Where NumPy's order depends on its version or
# settings (how a long sum is cut into pieces: numpy_sum), the caller says
# which order to follow.
# Matrix products sum over k in order, which a BLAS need not do: there the
# results agree with NumPy's to rounding.

ctypedef fused real:
    float
    double

cdef extern from *:
    """
    /* The output of a kernel never overlaps its inputs (the engine allocates
       it): saying so lets the compiler vectorize without runtime checks. */
    #if defined(_MSC_VER)
    #  define CDZ_RESTRICT __restrict
    #else
    #  define CDZ_RESTRICT __restrict__
    #endif
    typedef float* CDZ_RESTRICT cdz_out_f;
    typedef double* CDZ_RESTRICT cdz_out_d;
    """
    ctypedef float* out_f "cdz_out_f"
    ctypedef double* out_d "cdz_out_d"

# An output buffer: restrict-qualified, of the same type as the inputs (the
# public kernels below take real* and pass it on as one of these).
ctypedef fused out_t:
    out_f
    out_d


# From this many terms on, each element of a product is a dot product kept
# in a register; shorter sums update whole rows (from _NARROW columns on) or
# columns of C at a time.
cdef enum:
    _LONG_K = 8
    _NARROW = 4


cdef inline void _axpy(Py_ssize_t n, real a, const real* x, Py_ssize_t incx,
                       out_t y, Py_ssize_t incy, bint init) noexcept nogil:
    """y = a * x (init) or y += a * x, over n strided elements."""
    cdef Py_ssize_t i
    if incx == 1 and incy == 1:
        if init:
            for i in range(n):
                y[i] = a * x[i]
        else:
            for i in range(n):
                y[i] += a * x[i]
    elif init:
        for i in range(n):
            y[i * incy] = a * x[i * incx]
    else:
        for i in range(n):
            y[i * incy] += a * x[i * incx]


cdef inline void _axpy_bias(Py_ssize_t n, real a, const real* x, Py_ssize_t incx,
                            const real* b, out_t y, bint init) noexcept nogil:
    """_axpy's last step on a contiguous y, adding b to the result in the same
    pass: y = a * x + b (init) or y = (y + a * x) + b. Writing each element
    once matters: reading back a row just written with other alignments
    stalls the processor."""
    cdef Py_ssize_t i
    if init:
        for i in range(n):
            y[i] = a * x[i * incx] + b[i]
    else:
        for i in range(n):
            y[i] = (y[i] + a * x[i * incx]) + b[i]


cdef inline void _dots(Py_ssize_t K, Py_ssize_t n,
                       const real* p, Py_ssize_t p_k,
                       const real* q, Py_ssize_t q_k, Py_ssize_t q_r,
                       const real* bias, Py_ssize_t bias_r,
                       out_t out, Py_ssize_t out_r) noexcept nogil:
    """n dot products that share one operand: for r < n,
    out[r * out_r] = sum over k of p[k * p_k] * q[r * q_r + k * q_k]
    (+ bias[r * bias_r]), each summed in order of k. Four at a time, in
    registers: four independent chains instead of one chain through memory
    per step of k. A last group of fewer than four repeats its last output
    to stay four wide (a lone chain waits on every addition)."""
    cdef Py_ssize_t r = 0, k, i
    cdef Py_ssize_t o[4]
    cdef real a, s0, s1, s2, s3
    cdef const real* t
    while r < n:
        for i in range(4):
            o[i] = r + i if r + i < n else n - 1
        a = p[0]
        s0 = a * q[o[0] * q_r]
        s1 = a * q[o[1] * q_r]
        s2 = a * q[o[2] * q_r]
        s3 = a * q[o[3] * q_r]
        for k in range(1, K):
            a = p[k * p_k]
            t = q + k * q_k
            s0 = s0 + a * t[o[0] * q_r]
            s1 = s1 + a * t[o[1] * q_r]
            s2 = s2 + a * t[o[2] * q_r]
            s3 = s3 + a * t[o[3] * q_r]
        if bias != NULL:
            s0 = s0 + bias[o[0] * bias_r]
            s1 = s1 + bias[o[1] * bias_r]
            s2 = s2 + bias[o[2] * bias_r]
            s3 = s3 + bias[o[3] * bias_r]
        out[o[0] * out_r] = s0
        out[o[1] * out_r] = s1
        out[o[2] * out_r] = s2
        out[o[3] * out_r] = s3
        r += 4


cdef inline void _matmul(Py_ssize_t M, Py_ssize_t K, Py_ssize_t N,
                         const real* A, Py_ssize_t a_row, Py_ssize_t a_col,
                         const real* B, Py_ssize_t b_row, Py_ssize_t b_col,
                         const real* bias, out_t C) noexcept nogil:
    """C = A @ B (+ bias, added to each row after the product), for an
    M x K matrix A and a K x N matrix B given by element strides (so a
    transpose is free), into the C-contiguous M x N buffer C. K >= 1.

    Every C[i, j] is A[i, 0] B[0, j] + A[i, 1] B[1, j] + ... summed in order
    of k, then + bias[j], whichever way the loops run."""
    cdef Py_ssize_t i, j, k
    cdef const real* bias_j
    if K >= _LONG_K:
        # Long sums: dot products in registers, four outputs at a time along
        # the longer side of C.
        if N >= M:
            for i in range(M):
                _dots(K, N, A + i * a_row, a_col, B, b_row, b_col,
                      bias, 1, C + i * N, 1)
        else:
            for j in range(N):
                bias_j = NULL
                if bias != NULL:
                    bias_j = bias + j
                _dots(K, M, B + j * b_col, b_row, A, a_col, a_row, bias_j, 0, C + j, N)
    elif N >= _NARROW:
        # Short sums, wide C: C[i, :] = A[i, 0] B[0, :], then += A[i, k] B[k, :]
        for i in range(M):
            for k in range(K - 1 if bias != NULL else K):
                _axpy(N, A[i * a_row + k * a_col], B + k * b_row, b_col,
                      C + i * N, 1, k == 0)
            if bias != NULL:
                k = K - 1
                _axpy_bias(N, A[i * a_row + k * a_col], B + k * b_row, b_col,
                           bias, C + i * N, k == 0)
    else:
        # Short sums, narrow C: C[:, j] = B[0, j] A[:, 0], then += B[k, j] A[:, k]
        for j in range(N):
            for k in range(K):
                _axpy(M, B[k * b_row + j * b_col], A + k * a_col, a_row,
                      C + j, N, k == 0)
            if bias != NULL:
                for i in range(M):
                    C[i * N + j] += bias[j]


cdef inline void _column_sums(Py_ssize_t M, Py_ssize_t N, const real* A,
                              out_t out) noexcept nogil:
    """out[j] = sum over i of A[i, j] for a C-contiguous M x N matrix, with
    N > 1 and M >= 1: rows added one after another, as ``A.sum(axis=0)``
    does."""
    cdef Py_ssize_t i, j
    for j in range(N):
        out[j] = A[j]
    for i in range(1, M):
        for j in range(N):
            out[j] += A[i * N + j]


cdef inline void matmul(Py_ssize_t M, Py_ssize_t K, Py_ssize_t N,
                        const real* A, Py_ssize_t a_row, Py_ssize_t a_col,
                        const real* B, Py_ssize_t b_row, Py_ssize_t b_col,
                        const real* bias, real* C) noexcept nogil:
    """_matmul with C declared not to overlap A, B or bias."""
    if real is double:
        _matmul(M, K, N, A, a_row, a_col, B, b_row, b_col, bias, <out_d>C)
    else:
        _matmul(M, K, N, A, a_row, a_col, B, b_row, b_col, bias, <out_f>C)


cdef inline void column_sums(Py_ssize_t M, Py_ssize_t N, const real* A,
                             real* out) noexcept nogil:
    """_column_sums with out declared not to overlap A."""
    if real is double:
        _column_sums(M, N, A, <out_d>out)
    else:
        _column_sums(M, N, A, <out_f>out)


cdef inline real _block_sum(const real* a, Py_ssize_t n) noexcept nogil:
    # NumPy's leaf for n <= 128: eight running sums, combined pairwise.
    cdef real r[8]
    cdef real res
    cdef Py_ssize_t i, j
    if n < 8:
        res = -0.0
        for i in range(n):
            res += a[i]
        return res
    for j in range(8):
        r[j] = a[j]
    i = 8
    while i < n - n % 8:
        for j in range(8):
            r[j] += a[i + j]
        i += 8
    res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    while i < n:
        res += a[i]
        i += 1
    return res


cdef inline Py_ssize_t _pairwise_split(Py_ssize_t n) noexcept nogil:
    # Where NumPy splits a run longer than 128: near the middle, on a
    # multiple of eight.
    cdef Py_ssize_t half = n // 2
    return half - half % 8


cdef inline real pairwise_sum(const real* a, Py_ssize_t n) noexcept nogil:
    """The sum of a[0..n) in the order of NumPy's pairwise summation, the
    helper its add loop sums one piece of a reduction with (the same order
    in every NumPy this library supports)."""
    cdef Py_ssize_t h
    if n <= 128:
        return _block_sum(a, n)
    h = _pairwise_split(n)
    return pairwise_sum(a, h) + pairwise_sum(a + h, n - h)


cdef inline real _pairwise_sum_sq_diff(const real* a, const real* b,
                                       Py_ssize_t n) noexcept nogil:
    """``((a - b) ** 2)`` over n elements summed as pairwise_sum sums,
    without a temporary array."""
    cdef real d[128]
    cdef Py_ssize_t i, h
    if n <= 128:
        for i in range(n):
            d[i] = (a[i] - b[i]) * (a[i] - b[i])
        return _block_sum(d, n)
    h = _pairwise_split(n)
    return _pairwise_sum_sq_diff(a, b, h) + _pairwise_sum_sq_diff(a + h, b + h, n - h)


# NumPy's add.reduce of a contiguous run hands the run to its loop in
# pieces, sums each piece pairwise and adds the pieces, in order, to the
# reduction's starting value 0. How long a piece is depends on NumPy: up to
# 2.2 the iterator stops at its buffer size (np.getbufsize(), 8192 unless
# the program sets it) even when nothing is buffered; from 2.3 on it passes
# the whole run at once (numpy/numpy#27883). So a 20000-element float64 sum
# is 0 + pw(8192) + pw(8192) + pw(3616) on NumPy 2.2 and 0 + pw(20000) on
# 2.3, which differ in the last bit for most data. The engine finds out at
# import which order the installed NumPy uses and passes `chunk`.

cdef inline real numpy_sum(const real* a, Py_ssize_t n, Py_ssize_t chunk) noexcept nogil:
    """``a.sum()`` for a contiguous a of n elements, bit for bit, when NumPy
    cuts a reduction into pieces of `chunk` elements (chunk >= n: one
    piece). chunk >= 1."""
    cdef real s = 0
    cdef Py_ssize_t i = 0
    while n - i > chunk:
        s = s + pairwise_sum(a + i, chunk)
        i += chunk
    return s + pairwise_sum(a + i, n - i)


cdef inline real numpy_sum_sq_diff(const real* a, const real* b, Py_ssize_t n,
                                   Py_ssize_t chunk) noexcept nogil:
    """``((a - b) ** 2).sum()`` over n contiguous elements, bit for bit, in
    numpy_sum's order, without a temporary array. chunk >= 1."""
    cdef real s = 0
    cdef Py_ssize_t i = 0
    while n - i > chunk:
        s = s + _pairwise_sum_sq_diff(a + i, b + i, chunk)
        i += chunk
    return s + _pairwise_sum_sq_diff(a + i, b + i, n - i)
