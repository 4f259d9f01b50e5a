# Arithmetic on small float64 buffers, for the built-in operations' fast
# paths in _core.pyx. On a 100x10 matrix a NumPy call costs more in dispatch
# (about 0.3 us) than in arithmetic, and a small network's step makes dozens
# of them; these loops do the same arithmetic with none of that.
#
# Pure C-level code: raw pointers in, nothing allocated, no Python objects.
# The summation orders are NumPy's where NumPy's is fixed (pairwise sums,
# row-by-row column sums), so those results are bit-identical to NumPy's.
# Matrix products sum over k in order, which a BLAS need not do: there the
# results agree with NumPy's to rounding.

cdef extern from *:
    """
    /* The output of a kernel never overlaps its inputs (the engine allocates
       it): saying so lets the compiler vectorize without runtime checks. */
    #if defined(_MSC_VER)
    #  define CDZ_RESTRICT __restrict
    #else
    #  define CDZ_RESTRICT __restrict__
    #endif
    typedef double* CDZ_RESTRICT cdz_out_ptr;
    """
    ctypedef double* out_ptr "cdz_out_ptr"

# From this many columns on, a product goes row by row (inner loop over a
# row of C); narrower ones go by dot products or column by column.
cdef enum:
    _NARROW = 4


cdef inline void _axpy(Py_ssize_t n, double a, const double* x, Py_ssize_t incx,
                       out_ptr y, Py_ssize_t incy, bint init) noexcept nogil:
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


cdef inline void _axpy_bias(Py_ssize_t n, double a, const double* x, Py_ssize_t incx,
                            const double* b, out_ptr y, bint init) noexcept nogil:
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


cdef inline void matmul(Py_ssize_t M, Py_ssize_t K, Py_ssize_t N,
                        const double* A, Py_ssize_t a_row, Py_ssize_t a_col,
                        const double* B, Py_ssize_t b_row, Py_ssize_t b_col,
                        const double* bias, out_ptr C) noexcept nogil:
    """C = A @ B (+ bias, added to each row after the product), for an
    M x K matrix A and a K x N matrix B given by element strides (so a
    transpose is free), into the C-contiguous M x N buffer C. K >= 1.

    Every C[i, j] is A[i, 0] B[0, j] + A[i, 1] B[1, j] + ... summed in order
    of k, then + bias[j], whichever way the loops run. They run along the
    longest contiguous stretch there is: rows of C when it is wide, else the
    rows of A (a dot product per element of C), else the columns of A."""
    cdef Py_ssize_t i, j, k
    cdef double s
    cdef const double* x
    cdef const double* y
    if N >= _NARROW:
        # C[i, :] = A[i, 0] B[0, :], then += A[i, k] B[k, :]
        for i in range(M):
            for k in range(K - 1 if bias != NULL else K):
                _axpy(N, A[i * a_row + k * a_col], B + k * b_row, b_col,
                      C + i * N, 1, k == 0)
            if bias != NULL:
                k = K - 1
                _axpy_bias(N, A[i * a_row + k * a_col], B + k * b_row, b_col,
                           bias, C + i * N, k == 0)
    elif a_col == 1:
        # C[i, j] = A[i, :] . B[:, j], one dot product at a time; the rows
        # are independent, so the processor overlaps their chains.
        for i in range(M):
            x = A + i * a_row
            for j in range(N):
                y = B + j * b_col
                s = x[0] * y[0]
                if b_row == 1:
                    for k in range(1, K):
                        s = s + x[k] * y[k]
                else:
                    for k in range(1, K):
                        s = s + x[k] * y[k * b_row]
                if bias != NULL:
                    s = s + bias[j]
                C[i * N + j] = s
    else:
        # C[:, j] = B[0, j] A[:, 0], then += B[k, j] A[:, k]
        for j in range(N):
            for k in range(K):
                _axpy(M, B[k * b_row + j * b_col], A + k * a_col, a_row,
                      C + j, N, k == 0)
            if bias != NULL:
                for i in range(M):
                    C[i * N + j] += bias[j]


cdef inline void column_sums(Py_ssize_t M, Py_ssize_t N, const double* A,
                             out_ptr out) noexcept nogil:
    """out[j] = sum over i of A[i, j] for a C-contiguous M x N matrix, with
    N > 1 and M >= 1: rows added one after another, as ``A.sum(axis=0)``
    does."""
    cdef Py_ssize_t i, j
    for j in range(N):
        out[j] = A[j]
    for i in range(1, M):
        for j in range(N):
            out[j] += A[i * N + j]


cdef inline double _block_sum(const double* a, Py_ssize_t n) noexcept nogil:
    # NumPy's leaf for n <= 128: eight running sums, combined pairwise.
    cdef double r[8]
    cdef double res
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


cdef inline double pairwise_sum(const double* a, Py_ssize_t n) noexcept nogil:
    """The sum of a[0..n) in NumPy's pairwise order for a contiguous
    float64 reduction. Add it to 0.0, NumPy's starting value."""
    cdef Py_ssize_t h
    if n <= 128:
        return _block_sum(a, n)
    h = _pairwise_split(n)
    return pairwise_sum(a, h) + pairwise_sum(a + h, n - h)


cdef inline double pairwise_sum_sq_diff(const double* a, const double* b,
                                        Py_ssize_t n) noexcept nogil:
    """``((a - b) ** 2).sum()`` over n elements, in the same order as
    pairwise_sum and without a temporary array."""
    cdef double d[128]
    cdef Py_ssize_t i, h
    if n <= 128:
        for i in range(n):
            d[i] = (a[i] - b[i]) * (a[i] - b[i])
        return _block_sum(d, n)
    h = _pairwise_split(n)
    return pairwise_sum_sq_diff(a, b, h) + pairwise_sum_sq_diff(a + h, b + h, n - h)
