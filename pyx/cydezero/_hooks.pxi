# Gradient hooks: a side table keyed by the variable, removable handles, and
# running the hooks on a gradient before it is committed.
# Part of the _core module (included by _core.pyx).

cimport cython

import weakref

# Hooks live in a side table keyed by the variable's address, so a variable
# without hooks pays one flag byte for the feature. A variable's entry is
# dropped when it dies (Variable.__dealloc__), so no stale address survives.
cdef dict _hooks = {}
cdef size_t _hook_ids = 0


@cython.final
cdef class HookHandle:
    """What ``Variable.register_hook`` returns; ``remove()`` unregisters
    the hook (calling it again does nothing)."""
    cdef object _var
    cdef Py_ssize_t _key
    cdef size_t _id

    @property
    def id(self):
        """A number no other hook handle of this process has."""
        return self._id

    def __cinit__(self, Variable v, Py_ssize_t key):
        global _hook_ids
        _hook_ids += 1
        self._id = _hook_ids
        self._var = weakref.ref(v)
        self._key = key

    def remove(self):
        """Unregister the hook; calling it again does nothing."""
        v = self._var()
        table = _hooks.get(self._key) if v is not None else None
        if table is None:
            return
        table.pop(self._id, None)
        if not table:
            del _hooks[self._key]
            (<Variable>v)._hooked = False


cdef object _grad_data(object g):
    """The array in a gradient that user code handed back (a Variable, an
    array or a NumPy scalar), or None when it is none of those."""
    if isinstance(g, Variable):
        return _vd(<Variable>g)
    g = _as_arr(g)
    return g if _is_array(g) else None


cdef object _run_hooks(Variable x, object acc, bint graph):
    """Pass x's complete gradient for this pass through its hooks, in the
    order they were registered; each may replace it."""
    table = _hooks.get(<Py_ssize_t><void*>x)
    if not table:
        return acc
    g = acc if graph else _new_var(acc)
    if graph:
        _track_graph(g)         # a hook may keep it anywhere
    for hook in list(table.values()):
        r = hook(g)
        if r is None:
            continue
        rd = _grad_data(r)
        if rd is None:
            raise TypeError('gradient hook {!r} returned {!r}; expected a Variable, '
                            'an array or None'.format(hook, type(r)))
        if not isinstance(r, Variable):
            r = _new_var(rd)
        if rd.shape != _shape_of(x):
            raise ValueError('gradient hook {!r} returned a gradient of shape {} for a '
                             'variable of shape {}'.format(hook, rd.shape, _shape_of(x)))
        g = r
    # A hook may have kept the gradient it saw: never add into it in place.
    x._acc_owned = False
    return g if graph else _val(<Variable>g)
