# The cache of freed object arenas: CPython's small-object allocator
# (pymalloc) takes its memory from the system in arenas (1 MiB since 3.10),
# and gives an arena back as soon as every object in it is freed. This keeps
# such arenas for the next graph instead.
# Part of the _core module (included by _core.pyx).
#
# Why: a graph's nodes are small objects, and a big graph fills arenas of its
# own, which its release empties: the next graph of that size maps them again
# and touches every page for the first time. Measured on `deep` at 2e5 nodes
# (one process, 9 runs each): about 6,000 page faults a run, which took it
# from 91 ms to 116 ms a run on this VM; with the cache, none.
#
# How: the arena allocator is CPython's documented hook for this
# (PyObject_SetArenaAllocator). It is process-wide, so this is the one
# global change cydezero makes on import (documented in the README and
# docs/engine.md): the allocator installed before it still makes and
# releases every arena, this only holds some freed ones in between.
#
# Bounds: at most CYDEZERO_ARENA_CACHE_MB megabytes (32; 0 installs nothing),
# the oldest going first; an arena no graph reused while two backward passes
# began is released. arena_cache_clear() releases them all now.
#
# The allocator is called wherever pymalloc runs, in every interpreter of
# the process, so the table is behind a lock; nothing under it calls into
# Python.

cdef extern from *:
    """
    #define CDZ_ARENA_SLOTS 64
    typedef struct { void* p; size_t size; size_t epoch; } cdz_arena;
    static cdz_arena cdz_arenas[CDZ_ARENA_SLOTS];   /* oldest first */
    static int cdz_narenas = 0;
    static size_t cdz_arena_held = 0;
    static size_t cdz_arena_cap = (size_t)32 << 20;
    static size_t cdz_arena_epoch = 0;
    static size_t cdz_arena_hits = 0, cdz_arena_misses = 0;
    static PyThread_type_lock cdz_arena_lock = NULL;
    static PyObjectArenaAllocator cdz_arena_next;   /* the allocator before */

    static void* cdz_arena_take(int i) {   /* under the lock */
        void* p = cdz_arenas[i].p;
        cdz_arena_held -= cdz_arenas[i].size;
        memmove(cdz_arenas + i, cdz_arenas + i + 1,
                (size_t)(cdz_narenas - i - 1) * sizeof(cdz_arena));
        cdz_narenas--;
        return p;
    }

    static void cdz_arena_drop(int i) {    /* under the lock */
        size_t size = cdz_arenas[i].size;
        cdz_arena_next.free(cdz_arena_next.ctx, cdz_arena_take(i), size);
    }

    static void* cdz_arena_alloc(void* ctx, size_t size) {
        (void)ctx;
        PyThread_acquire_lock(cdz_arena_lock, WAIT_LOCK);
        for (int i = cdz_narenas - 1; i >= 0; i--) {
            if (cdz_arenas[i].size == size) {
                void* p = cdz_arena_take(i);
                cdz_arena_hits++;
                PyThread_release_lock(cdz_arena_lock);
                return p;
            }
        }
        cdz_arena_misses++;
        PyThread_release_lock(cdz_arena_lock);
        return cdz_arena_next.alloc(cdz_arena_next.ctx, size);
    }

    static void cdz_arena_free(void* ctx, void* p, size_t size) {
        (void)ctx;
        if (p != NULL && size <= cdz_arena_cap) {
            PyThread_acquire_lock(cdz_arena_lock, WAIT_LOCK);
            while (cdz_narenas > 0 && (cdz_narenas == CDZ_ARENA_SLOTS
                                       || cdz_arena_held + size > cdz_arena_cap))
                cdz_arena_drop(0);
            cdz_arenas[cdz_narenas].p = p;
            cdz_arenas[cdz_narenas].size = size;
            cdz_arenas[cdz_narenas].epoch = cdz_arena_epoch;
            cdz_narenas++;
            cdz_arena_held += size;
            PyThread_release_lock(cdz_arena_lock);
            return;
        }
        cdz_arena_next.free(cdz_arena_next.ctx, p, size);
    }

    /* A backward pass begins: arenas freed before the pass before last go. */
    static void cdz_arena_new_pass(void) {
        PyThread_acquire_lock(cdz_arena_lock, WAIT_LOCK);
        cdz_arena_epoch++;
        for (int i = cdz_narenas - 1; i >= 0; i--)
            if (cdz_arenas[i].epoch + 2 <= cdz_arena_epoch)
                cdz_arena_drop(i);
        PyThread_release_lock(cdz_arena_lock);
    }

    static void cdz_arena_clear(void) {
        PyThread_acquire_lock(cdz_arena_lock, WAIT_LOCK);
        while (cdz_narenas > 0)
            cdz_arena_drop(cdz_narenas - 1);
        PyThread_release_lock(cdz_arena_lock);
    }

    static void cdz_arena_install(void) {
        PyObjectArenaAllocator mine = {NULL, cdz_arena_alloc, cdz_arena_free};
        PyObject_GetArenaAllocator(&cdz_arena_next);
        PyObject_SetArenaAllocator(&mine);
    }
    """
    ctypedef struct cdz_arena:
        size_t size
    cdz_arena cdz_arenas[64]
    int cdz_narenas
    size_t cdz_arena_held, cdz_arena_cap, cdz_arena_hits, cdz_arena_misses
    PyThread_type_lock cdz_arena_lock
    void cdz_arena_new_pass()
    void cdz_arena_clear()
    void cdz_arena_install()


cdef void _init_arena_cache() except *:
    global cdz_arena_lock, cdz_arena_cap
    mb = os.environ.get('CYDEZERO_ARENA_CACHE_MB', '')
    try:
        if mb:
            cdz_arena_cap = <size_t>max(0, int(mb)) << 20
    except ValueError:
        raise ValueError('CYDEZERO_ARENA_CACHE_MB takes a whole number, got {!r}'
                         .format(mb)) from None
    if cdz_arena_cap == 0:
        return
    cdz_arena_lock = PyThread_allocate_lock()
    if cdz_arena_lock == NULL:
        raise MemoryError()
    cdz_arena_install()


_init_arena_cache()


cdef inline void _arena_new_pass() noexcept:
    if cdz_arena_lock != NULL:
        cdz_arena_new_pass()


def arena_cache_info():
    """The cache of freed object arenas: a dict of ``arenas`` (their sizes,
    oldest first) and ``bytes`` held now, ``hits`` and ``misses`` so far
    (arenas handed out from it, and from the system), and ``cap_bytes`` (0:
    the cache is off)."""
    # Copied out under the lock, made Python objects after it: making one
    # may need an arena, whose allocation takes the lock.
    cdef size_t sizes[64]
    cdef size_t held, hits, misses
    cdef int i, n
    if cdz_arena_lock == NULL:
        return dict(arenas=[], bytes=0, hits=0, misses=0, cap_bytes=0)
    PyThread_acquire_lock(cdz_arena_lock, WAIT_LOCK)
    n = cdz_narenas
    for i in range(n):
        sizes[i] = cdz_arenas[i].size
    held = cdz_arena_held
    hits = cdz_arena_hits
    misses = cdz_arena_misses
    PyThread_release_lock(cdz_arena_lock)
    return dict(arenas=[sizes[i] for i in range(n)], bytes=held, hits=hits,
                misses=misses, cap_bytes=cdz_arena_cap)


def arena_cache_clear():
    """Give every arena the cache holds back to the allocator before it."""
    if cdz_arena_lock != NULL:
        cdz_arena_clear()
