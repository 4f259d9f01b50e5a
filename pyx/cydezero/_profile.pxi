# Profiling: with cydezero.profile() active in a thread, each forward and
# backward of a Function run by that thread is counted and timed by type.
# Part of the _core module (included by _core.pyx).

import time

# Off, the cost is one test of a C thread-local per forward and per backward
# step. On, the clock is read around the Function's own computation (its
# forward or backward), not the engine's bookkeeping around it.
cdef object _perf_ns = time.perf_counter_ns

# {thread id: [table, ...]}: the tables of the profile() blocks a thread is
# inside, innermost last; each gets every call made inside it.
# A table is {Function type: [forward calls, forward ns, backward calls, backward ns]}.
cdef dict _profile_tables = {}


def _profile_begin():
    """Start a table for the calling thread; returns it (filled until
    ``_profile_end`` is given it)."""
    global cdz_profile
    table = {}
    _profile_tables.setdefault(_thread_id(), []).append(table)
    cdz_profile += 1
    return table


def _profile_end(table):
    """Stop filling ``table`` (one that ``_profile_begin`` of this thread
    returned)."""
    global cdz_profile
    cdef unsigned long me = _thread_id()
    stack = _profile_tables.get(me)
    if not stack or not any([t is table for t in stack]):
        raise RuntimeError('profile: ended in another thread than it began, or twice')
    for i in range(len(stack) - 1, -1, -1):
        if stack[i] is table:
            del stack[i]
            break
    if not stack:
        del _profile_tables[me]
    cdz_profile -= 1


cdef inline long long _profile_clock() except? -1:
    return _perf_ns()


cdef void _profile_add(type key, int backward, long long ns) except *:
    """Count one call of a Function of class key (forward or backward) and
    its time."""
    stack = _profile_tables.get(_thread_id())
    if not stack:
        return
    for table in list(stack):
        row = (<dict>table).get(key)
        if row is None:
            row = (<dict>table)[key] = [0, 0, 0, 0]
        row[2 * backward] += 1
        row[2 * backward + 1] += ns
