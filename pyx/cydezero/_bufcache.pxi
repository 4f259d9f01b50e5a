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
# NumPy may free array data on any thread, so the table is behind a lock;
# nothing under it calls into Python.

import os

from cpython.pycapsule cimport PyCapsule_New
from cpython.pythread cimport (PyThread_type_lock, PyThread_allocate_lock,
                               PyThread_acquire_lock, PyThread_release_lock, WAIT_LOCK)

cdef extern from *:
    """
    #include <stdlib.h>
    #include <string.h>

    #define CDZ_SLOTS 64
    typedef struct { void* p; size_t size; size_t epoch; } cdz_block;
    static cdz_block cdz_blocks[CDZ_SLOTS];   /* oldest first */
    static int cdz_nblocks = 0;
    static size_t cdz_cached = 0;
    static size_t cdz_min_bytes = (size_t)1 << 18;
    static size_t cdz_cap_bytes = (size_t)256 << 20;
    static size_t cdz_epoch = 0;
    static size_t cdz_hits = 0, cdz_misses = 0;
    static PyThread_type_lock cdz_lock = NULL;

    static void* cdz_take(int i) {  /* under the lock; block i leaves the table */
        void* p = cdz_blocks[i].p;
        cdz_cached -= cdz_blocks[i].size;
        memmove(cdz_blocks + i, cdz_blocks + i + 1,
                (size_t)(cdz_nblocks - i - 1) * sizeof(cdz_block));
        cdz_nblocks--;
        return p;
    }

    static void cdz_drop(int i) {   /* under the lock; frees block i */
        free(cdz_take(i));
    }

    static void* cdz_malloc(void* ctx, size_t size) {
        (void)ctx;
        if (size >= cdz_min_bytes && cdz_lock != NULL) {
            PyThread_acquire_lock(cdz_lock, WAIT_LOCK);
            for (int i = cdz_nblocks - 1; i >= 0; i--) {
                if (cdz_blocks[i].size == size) {
                    void* p = cdz_take(i);
                    cdz_hits++;
                    PyThread_release_lock(cdz_lock);
                    return p;
                }
            }
            cdz_misses++;
            PyThread_release_lock(cdz_lock);
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
        if (p != NULL && size >= cdz_min_bytes && size <= cdz_cap_bytes
                && cdz_lock != NULL) {
            PyThread_acquire_lock(cdz_lock, WAIT_LOCK);
            while (cdz_nblocks > 0 && (cdz_nblocks == CDZ_SLOTS
                                       || cdz_cached + size > cdz_cap_bytes))
                cdz_drop(0);
            cdz_blocks[cdz_nblocks].p = p;
            cdz_blocks[cdz_nblocks].size = size;
            cdz_blocks[cdz_nblocks].epoch = cdz_epoch;
            cdz_nblocks++;
            cdz_cached += size;
            PyThread_release_lock(cdz_lock);
            return;
        }
        free(p);
    }

    /* A pass begins: blocks freed before the pass before last are let go. */
    static void cdz_new_pass(void) {
        PyThread_acquire_lock(cdz_lock, WAIT_LOCK);
        cdz_epoch++;
        for (int i = cdz_nblocks - 1; i >= 0; i--)
            if (cdz_blocks[i].epoch + 2 <= cdz_epoch)
                cdz_drop(i);
        PyThread_release_lock(cdz_lock);
    }

    static void cdz_clear(void) {
        PyThread_acquire_lock(cdz_lock, WAIT_LOCK);
        while (cdz_nblocks > 0)
            cdz_drop(cdz_nblocks - 1);
        PyThread_release_lock(cdz_lock);
    }

    static PyDataMem_Handler cdz_handler = {
        "cydezero_buffer_cache", 1,
        {NULL, cdz_malloc, cdz_calloc, cdz_realloc, cdz_free}
    };
    """
    ctypedef struct PyDataMem_Handler:
        pass
    ctypedef struct cdz_block:
        size_t size
    cdz_block cdz_blocks[64]
    PyDataMem_Handler cdz_handler
    int cdz_nblocks
    size_t cdz_cached, cdz_min_bytes, cdz_cap_bytes, cdz_hits, cdz_misses
    PyThread_type_lock cdz_lock
    void cdz_new_pass()
    void cdz_clear()

cdef extern from "numpy/arrayobject.h":
    object PyDataMem_SetHandler(object handler)


cdef object _cache_capsule = None


cdef void _init_buffer_cache() except *:
    global _cache_capsule, cdz_lock, cdz_cap_bytes, cdz_min_bytes
    mb = os.environ.get('CYDEZERO_BUFFER_CACHE_MB', '')
    low = os.environ.get('CYDEZERO_BUFFER_CACHE_MIN', '')
    try:
        if mb:
            cdz_cap_bytes = <size_t>max(0, int(mb)) << 20
        if low:
            cdz_min_bytes = <size_t>max(1, int(low))
    except ValueError:
        raise ValueError('CYDEZERO_BUFFER_CACHE_MB and CYDEZERO_BUFFER_CACHE_MIN take '
                         'whole numbers, got {!r} and {!r}'.format(mb, low)) from None
    if cdz_cap_bytes == 0:
        return
    cdz_lock = PyThread_allocate_lock()
    if cdz_lock == NULL:
        raise MemoryError()
    _cache_capsule = PyCapsule_New(<void*>&cdz_handler, b'mem_handler', NULL)


_init_buffer_cache()


cdef inline bint _is_big(object a):
    """Whether a is an array big enough for its like to be cached."""
    return (_cache_capsule is not None and type(a) is ndarray
            and <size_t>cnp.PyArray_NBYTES(<cnp.ndarray>a) >= cdz_min_bytes)


cdef object _cache_enter():
    """Allocate through the cache in this context; returns what to give
    _cache_exit (the handler before)."""
    cdz_new_pass()
    return PyDataMem_SetHandler(_cache_capsule)


cdef void _cache_exit(object before) except *:
    PyDataMem_SetHandler(before)


def buffer_cache_info():
    """The cache of big gradient buffers: a dict of ``blocks`` (their sizes,
    oldest first) and ``bytes`` held now, ``hits`` and ``misses`` so far,
    and the ``min_bytes`` and ``cap_bytes`` it works with (``cap_bytes`` 0:
    the cache is off)."""
    cdef int i
    cdef list sizes = []
    if _cache_capsule is None:
        return dict(blocks=[], bytes=0, hits=0, misses=0, min_bytes=cdz_min_bytes,
                    cap_bytes=0)
    PyThread_acquire_lock(cdz_lock, WAIT_LOCK)
    sizes = [cdz_blocks[i].size for i in range(cdz_nblocks)]
    held, hits, misses = cdz_cached, cdz_hits, cdz_misses
    PyThread_release_lock(cdz_lock)
    return dict(blocks=sizes, bytes=held, hits=hits, misses=misses,
                min_bytes=cdz_min_bytes, cap_bytes=cdz_cap_bytes)


def buffer_cache_clear():
    """Free every block the cache of big gradient buffers holds."""
    if _cache_capsule is not None:
        cdz_clear()
