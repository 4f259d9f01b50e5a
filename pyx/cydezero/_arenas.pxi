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
# The arenas are kept in a table of _blocks.pxi, whose lock matters here:
# the allocator is called wherever pymalloc runs, in every interpreter of
# the process, and interpreters with a GIL of their own (3.12+) call it at
# the same time.

cdef extern from *:
    """
    static cdz_table cdz_arenas;    /* cap and lock set by _init_arena_cache */
    static PyObjectArenaAllocator cdz_arena_next;   /* the allocator before */

    static void cdz_arena_release(void* p, size_t size) {
        cdz_arena_next.free(cdz_arena_next.ctx, p, size);
    }

    static void* cdz_arena_alloc(void* ctx, size_t size) {
        void* p = cdz_table_get(&cdz_arenas, size);
        (void)ctx;
        return p != NULL ? p : cdz_arena_next.alloc(cdz_arena_next.ctx, size);
    }

    static void cdz_arena_free(void* ctx, void* p, size_t size) {
        (void)ctx;
        if (p == NULL || !cdz_table_put(&cdz_arenas, p, size))
            cdz_arena_release(p, size);
    }

    static void cdz_arena_install(void) {
        PyObjectArenaAllocator mine = {NULL, cdz_arena_alloc, cdz_arena_free};
        PyObject_GetArenaAllocator(&cdz_arena_next);
        PyObject_SetArenaAllocator(&mine);
    }
    """
    cdz_table cdz_arenas
    void cdz_arena_release(void* p, size_t size) noexcept
    void cdz_arena_install()


cdef void _init_arena_cache() except *:
    cdz_arenas.cap = _env_mb('CYDEZERO_ARENA_CACHE_MB', <size_t>32 << 20)
    cdz_arenas.release = cdz_arena_release
    if cdz_arenas.cap == 0:
        return
    _table_on(&cdz_arenas)
    cdz_arena_install()


_init_arena_cache()


cdef inline void _arena_new_pass() noexcept:
    if cdz_arenas.lock != NULL:
        cdz_table_new_pass(&cdz_arenas)


def arena_cache_info():
    """The cache of freed object arenas: a dict of ``arenas`` (their sizes,
    oldest first) and ``bytes`` held now, ``hits`` and ``misses`` so far
    (arenas handed out from it, and from the system), and ``cap_bytes`` (0:
    the cache is off)."""
    info = _table_info(&cdz_arenas)
    info['arenas'] = info.pop('sizes')
    return info


def arena_cache_clear():
    """Give every arena the cache holds back to the allocator before it."""
    if cdz_arenas.lock != NULL:
        cdz_table_clear(&cdz_arenas)
