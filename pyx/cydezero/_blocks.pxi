# A table of freed memory blocks kept for reuse: what the two caches of
# memory share (the cache of big gradient buffers, _bufcache.pxi, and the
# cache of freed object arenas, _arenas.pxi).
# Part of the _core module (included by _core.pyx).
#
# A block is taken back by its exact size, the newest first. Putting one in
# lets the oldest go while the table is full or over its cap in bytes; a
# block that nothing took while two backward passes began goes too. Going
# means the table's release function, which gives the block back to where
# it came from.
#
# Every table is behind a lock of its own, as its cache may be called on any
# thread (and, for arenas, in any interpreter of the process); nothing under
# a lock calls into Python or allocates a Python object. fork() takes every
# lock first, so a child starts with the tables whole and unlocked.

import os

from cpython.pythread cimport (PyThread_type_lock, PyThread_allocate_lock,
                               PyThread_free_lock, PyThread_acquire_lock,
                               PyThread_release_lock, WAIT_LOCK)

cdef extern from *:
    """
    #include <stdlib.h>
    #include <string.h>

    #define CDZ_SLOTS 64
    typedef struct { void* p; size_t size; size_t epoch; } cdz_block;
    typedef struct {
        cdz_block blocks[CDZ_SLOTS];    /* oldest first */
        int n;
        size_t held, cap, epoch, hits, misses;
        PyThread_type_lock lock;        /* NULL: the cache is off */
        void (*release)(void* p, size_t size);
    } cdz_table;

    static void* cdz_table_take(cdz_table* t, int i) {   /* under t's lock */
        void* p = t->blocks[i].p;
        t->held -= t->blocks[i].size;
        memmove(t->blocks + i, t->blocks + i + 1,
                (size_t)(t->n - i - 1) * sizeof(cdz_block));
        t->n--;
        return p;
    }

    static void cdz_table_drop(cdz_table* t, int i) {    /* under t's lock */
        size_t size = t->blocks[i].size;
        t->release(cdz_table_take(t, i), size);
    }

    /* A kept block of exactly size bytes, or NULL (then the caller makes one). */
    static void* cdz_table_get(cdz_table* t, size_t size) {
        void* p = NULL;
        PyThread_acquire_lock(t->lock, WAIT_LOCK);
        for (int i = t->n - 1; i >= 0; i--) {
            if (t->blocks[i].size == size) {
                p = cdz_table_take(t, i);
                break;
            }
        }
        if (p != NULL) t->hits++; else t->misses++;
        PyThread_release_lock(t->lock);
        return p;
    }

    /* Keep block p of size bytes; whether it was kept (else the caller
       releases it: it is bigger than the cap). */
    static int cdz_table_put(cdz_table* t, void* p, size_t size) {
        if (size > t->cap) return 0;
        PyThread_acquire_lock(t->lock, WAIT_LOCK);
        while (t->n > 0 && (t->n == CDZ_SLOTS || t->held + size > t->cap))
            cdz_table_drop(t, 0);
        t->blocks[t->n].p = p;
        t->blocks[t->n].size = size;
        t->blocks[t->n].epoch = t->epoch;
        t->n++;
        t->held += size;
        PyThread_release_lock(t->lock);
        return 1;
    }

    /* A backward pass begins: blocks kept before the pass before last go. */
    static void cdz_table_new_pass(cdz_table* t) {
        PyThread_acquire_lock(t->lock, WAIT_LOCK);
        t->epoch++;
        for (int i = t->n - 1; i >= 0; i--)
            if (t->blocks[i].epoch + 2 <= t->epoch)
                cdz_table_drop(t, i);
        PyThread_release_lock(t->lock);
    }

    static void cdz_table_clear(cdz_table* t) {
        PyThread_acquire_lock(t->lock, WAIT_LOCK);
        while (t->n > 0)
            cdz_table_drop(t, t->n - 1);
        PyThread_release_lock(t->lock);
    }

    /* fork(): every table's lock is taken just before (inside fork(), where
       no Python code runs) and given back on both sides after, so that a
       child never inherits a lock another thread held, with its table half
       changed, and waits on it forever. No code under a table's lock takes
       another's (releasing a block is free() or munmap()), so taking them
       all in order cannot deadlock. */
    #ifndef _WIN32
    #include <pthread.h>
    #endif
    static cdz_table* cdz_tables[2];
    static int cdz_ntables = 0;

    static void cdz_tables_lock(void) {
        for (int i = 0; i < cdz_ntables; i++)
            PyThread_acquire_lock(cdz_tables[i]->lock, WAIT_LOCK);
    }

    static void cdz_tables_unlock(void) {
        for (int i = cdz_ntables - 1; i >= 0; i--)
            PyThread_release_lock(cdz_tables[i]->lock);
    }

    /* t (with its lock) joins the tables fork() takes care of; 0 on success. */
    static int cdz_table_register(cdz_table* t) {
        if (cdz_ntables == 2)
            return -1;
    #ifndef _WIN32
        if (cdz_ntables == 0
                && pthread_atfork(cdz_tables_lock, cdz_tables_unlock, cdz_tables_unlock))
            return -1;
    #endif
        cdz_tables[cdz_ntables++] = t;
        return 0;
    }

    /* Copies t's sizes (up to CDZ_SLOTS) and counters out, under its lock. */
    static int cdz_table_read(cdz_table* t, size_t* sizes, size_t* counts) {
        int n;
        PyThread_acquire_lock(t->lock, WAIT_LOCK);
        n = t->n;
        for (int i = 0; i < n; i++)
            sizes[i] = t->blocks[i].size;
        counts[0] = t->held;
        counts[1] = t->hits;
        counts[2] = t->misses;
        PyThread_release_lock(t->lock);
        return n;
    }
    """
    enum: CDZ_SLOTS
    ctypedef struct cdz_table:
        size_t cap
        PyThread_type_lock lock
        void (*release)(void* p, size_t size) noexcept
    void cdz_table_new_pass(cdz_table* t) nogil
    void cdz_table_clear(cdz_table* t) nogil
    int cdz_table_read(cdz_table* t, size_t* sizes, size_t* counts) nogil
    int cdz_table_register(cdz_table* t) nogil


cdef size_t _env_size(str name, size_t default, size_t unit, size_t least) except? 0:
    """The size in bytes that the environment variable name gives, a whole
    number of units (at least least; 0 turns a cache off), or default."""
    v = os.environ.get(name, '')
    if not v:
        return default
    try:
        return <size_t>max(least, int(v)) * unit
    except ValueError:
        raise ValueError('{} takes a whole number, got {!r}'.format(name, v)) from None


cdef inline size_t _env_mb(str name, size_t default) except? 0:
    """_env_size in megabytes, 0 allowed."""
    return _env_size(name, default, <size_t>1 << 20, 0)


cdef void _table_on(cdz_table* t) except *:
    """Give t its lock, which turns its cache on."""
    cdef PyThread_type_lock lock = PyThread_allocate_lock()
    if lock == NULL:
        raise MemoryError()
    t.lock = lock
    if cdz_table_register(t):
        t.lock = NULL
        PyThread_free_lock(lock)
        raise RuntimeError('cydezero: could not register the memory caches with fork()')


cdef dict _table_info(cdz_table* t):
    """What t holds: the sizes of its blocks (oldest first), the bytes held,
    the hits and misses so far, and its cap (0: the cache is off). Read
    under its lock, made Python objects after it."""
    cdef size_t sizes[CDZ_SLOTS]
    cdef size_t counts[3]
    cdef int i, n
    if t.lock == NULL:
        return dict(sizes=[], bytes=0, hits=0, misses=0, cap_bytes=0)
    n = cdz_table_read(t, sizes, counts)
    return dict(sizes=[sizes[i] for i in range(n)], bytes=counts[0], hits=counts[1],
                misses=counts[2], cap_bytes=t.cap)
