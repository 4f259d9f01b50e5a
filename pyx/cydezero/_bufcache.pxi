# The cache of big gradient buffers: a NumPy memory handler that keeps the
# big blocks freed by arrays it allocated, for the next backward pass.
# Part of the _core module (included by _core.pyx).
#
# Why: a training step makes the same big gradients every time (a weight's,
# a hidden layer's). glibc returns such blocks to the system when they are
# freed (it trims the top of its heap, or unmaps them), so the next step's
# backward touches fresh pages again: measured on a 784-1000-10 float64 MLP,
# about 1,500 page faults and a sixth of each step. Kept here, a block is
# handed back already mapped.
#
# How: NumPy (>= 1.22) lets a context allocate array data through a handler
# of its own (PyDataMem_SetHandler, NEP 49), and an array frees its data
# through the handler that allocated it, wherever it dies. A backward pass
# sets this handler once it meets a big gradient, and puts the previous one
# back when it ends; nothing else allocates through it.
#
# Bounds: only blocks of at least CYDEZERO_BUFFER_CACHE_MIN bytes (256 KiB)
# are kept, at most 64 of them and CYDEZERO_BUFFER_CACHE_MB megabytes in all
# (256; 0 turns the cache off), the oldest going first; and a block that no
# pass reused while two passes began is freed. buffer_cache_clear() frees
# them all now.
#
# The blocks are kept in a table of _blocks.pxi (NumPy may free array data
# on any thread; the table has a lock).

from cpython.pycapsule cimport PyCapsule_New

cdef extern from *:
    """
    static cdz_table cdz_buffers;   /* cap and lock set by _init_buffer_cache */
    static size_t cdz_min_bytes = (size_t)1 << 18;

    static void cdz_buffer_release(void* p, size_t size) {
        (void)size;
        free(p);
    }

    static void* cdz_malloc(void* ctx, size_t size) {
        (void)ctx;
        if (size >= cdz_min_bytes && cdz_buffers.lock != NULL) {
            void* p = cdz_table_get(&cdz_buffers, size);
            if (p != NULL)
                return p;
        }
        return malloc(size ? size : 1);
    }

    static void* cdz_calloc(void* ctx, size_t n, size_t elsize) {
        (void)ctx;
        return calloc(n ? n : 1, elsize ? elsize : 1);
    }

    static void* cdz_realloc(void* ctx, void* p, size_t size) {
        (void)ctx;
        return realloc(p, size ? size : 1);
    }

    static void cdz_free(void* ctx, void* p, size_t size) {
        (void)ctx;
        if (p != NULL && size >= cdz_min_bytes && cdz_buffers.lock != NULL
                && cdz_table_put(&cdz_buffers, p, size))
            return;
        free(p);
    }

    static PyDataMem_Handler cdz_handler = {
        "cydezero_buffer_cache", 1,
        {NULL, cdz_malloc, cdz_calloc, cdz_realloc, cdz_free}
    };
    """
    ctypedef struct PyDataMem_Handler:
        pass
    PyDataMem_Handler cdz_handler
    cdz_table cdz_buffers
    size_t cdz_min_bytes
    void cdz_buffer_release(void* p, size_t size) noexcept


cdef extern from "numpy/arrayobject.h":
    object PyDataMem_SetHandler(object handler)


cdef object _cache_capsule = None


cdef void _init_buffer_cache() except *:
    global _cache_capsule, cdz_min_bytes
    cdz_min_bytes = _env_size('CYDEZERO_BUFFER_CACHE_MIN', cdz_min_bytes, 1, 1)
    cdz_buffers.cap = _env_mb('CYDEZERO_BUFFER_CACHE_MB', <size_t>256 << 20)
    cdz_buffers.release = cdz_buffer_release
    if cdz_buffers.cap == 0:
        return
    _table_on(&cdz_buffers)
    _cache_capsule = PyCapsule_New(<void*>&cdz_handler, b'mem_handler', NULL)


_init_buffer_cache()


cdef inline bint _is_big(object a):
    """Whether a is an array big enough for its like to be cached."""
    return (_cache_capsule is not None and type(a) is ndarray
            and <size_t>cnp.PyArray_NBYTES(<cnp.ndarray>a) >= cdz_min_bytes)


cdef object _cache_enter():
    """Allocate through the cache in this context; returns what to give
    _cache_exit (the handler before)."""
    cdz_table_new_pass(&cdz_buffers)
    return PyDataMem_SetHandler(_cache_capsule)


cdef void _cache_exit(object before) except *:
    PyDataMem_SetHandler(before)


def buffer_cache_info():
    """The cache of big gradient buffers: a dict of ``blocks`` (their sizes,
    oldest first) and ``bytes`` held now, ``hits`` and ``misses`` so far,
    and the ``min_bytes`` and ``cap_bytes`` it works with (``cap_bytes`` 0:
    the cache is off)."""
    info = _table_info(&cdz_buffers)
    info['blocks'] = info.pop('sizes')
    info['min_bytes'] = cdz_min_bytes
    return info


def buffer_cache_clear():
    """Free every block the cache of big gradient buffers holds."""
    if cdz_buffers.lock != NULL:
        cdz_table_clear(&cdz_buffers)
