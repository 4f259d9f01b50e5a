# Which nodes the cycle collector sees: the outputs of the built-in
# operations are hidden from it, and a graph is shown to it again wherever a
# reference cycle can form.
# Part of the _core module (included by _core.pyx).
#
# Why: a graph built by the built-in operations is acyclic (a Variable points
# at its creator, a Function at its inputs, and outputs are borrowed), so
# reference counting frees it, and the cycle collector's passes over it are
# wasted work that grows with the live graph: building a chain of 200,000
# multiplications spent about two thirds of its time in them. So _apply
# untracks a built-in operation it records and the Variables it makes
# (unless the operation was called before: see _apply).
#
# A cycle through an untracked object is never collected (its references do
# not count as internal ones), so every Variable that can lie on a cycle is
# tracked again, with everything it reaches (_track_graph), where the edge
# that can close a cycle appears:
# - a .grad that carries a graph (create_graph): the committed gradient and
#   the variable it belongs to;
# - anything Python code stores in a Variable (data, name, grad) or in a
#   Function's inputs, and a creator set from Python;
# - a gradient handed to Python code under create_graph (a Python backward, a
#   hook), which can keep it anywhere.
# Python Functions and their outputs, leaves, and Variables of Python
# subclasses are tracked as always.
#
# A walk stops at a Variable whose graph it already showed: a tracked one
# that is a leaf, has its operation fused in (walked with it) or whose
# creator was walked. A built-in operation's
# Function is tracked only by a walk (or before it is recorded, when it has
# no inputs), so tracked means walked; a Python Function is tracked from
# birth, so the ones walked are kept in _walked_py. Every edge that appears
# later is walked where it appears (above), so what a walked node reaches
# stays tracked, and repeated walks over one graph cost little.
#
# The limit: the engine cannot see into an object it holds for the user (a
# Function's constant such as Pow's c, a non-array .data, a .name, the
# __dict__ of a Python subclass of Variable or Function). A cycle closed by
# giving such an object a Variable made after it is not collected unless
# track_graph(v) shows v's graph to the collector.

from cpython.object cimport PyObject
from libc.stdlib cimport realloc, free

cdef set _walked_py = set()     # addresses of Python Functions walked


cdef inline void _untrack(object o) noexcept:
    """Hide a node _apply just recorded (a built-in operation, or a Variable
    it made) from the cycle collector."""
    _gc_untrack(<void*>o)


cdef inline void _track(object o) noexcept:
    if not _gc_is_tracked(o):
        _gc_track(<void*>o)


cdef inline bint _walked(Function f):
    if _is_native(f):
        return _gc_is_tracked(f)
    return <Py_ssize_t><void*>f in _walked_py


cdef inline void _forget_walk(Function f):
    """f dies: its address may be reused by a Function never walked. (A
    Function whose inputs change is walked again as a root; see below.)"""
    if _walked_py and not _is_native(f):
        _walked_py.discard(<Py_ssize_t><void*>f)


cdef void _track_graph(object root) except *:
    """Track root (a Variable or a Function) and every Variable, Function and
    tuple of inputs it reaches through creators, inputs and gradients.

    Depth first, with no set of its own: what a step tracks is what tells a
    later step to stop (see above), and a creator is walked before the rest
    of its output's edges. A Function root is walked even if it was before
    (it is called again, or its inputs were set)."""
    # The stack holds borrowed pointers: the walk runs no Python code and
    # drops no reference, so everything on it stays alive (the graph holds
    # it) until the walk ends. A list cost a reference count and a bounds
    # check per push and pop, a third of the walk.
    cdef _Stack st
    cdef Variable v
    cdef Function f
    cdef Py_ssize_t i
    cdef PyObject* p
    cdef bint forced = isinstance(root, Function)
    st.items = NULL
    st.n = st.cap = 0
    try:
        _push(&st, <PyObject*>root)
        while st.n:
            st.n -= 1
            p = st.items[st.n]
            if _is_variable(p):
                v = <Variable>p
                if _gc_is_tracked(v) and (v._creator is None or _walked(v._creator)):
                    continue
                _track(v)
                if _is_variable(<PyObject*>v.grad) or _is_function(<PyObject*>v.grad):
                    _push(&st, <PyObject*>v.grad)
                if v._creator is not None:
                    _push(&st, <PyObject*>v._creator)
                elif _is_fused(v):
                    # Its operation is walked with it (see _fused.pxi).
                    if _is_variable(<PyObject*>v._fin0):
                        _push(&st, <PyObject*>v._fin0)
                    if _is_variable(<PyObject*>v._fin1):
                        _push(&st, <PyObject*>v._fin1)
            elif _is_function(p):
                f = <Function>p
                if forced:
                    forced = False
                elif _walked(f):
                    continue
                _track(f)
                if not _is_native(f):
                    _walked_py.add(<Py_ssize_t><void*>f)
                # CPython untracks a tuple that holds only untracked objects.
                if f._more is not None:
                    _track(f._more)
                if f._shown is not None:
                    _track(f._shown)
                    for t in f._shown:
                        _track(t)
                for i in range(f._nin if f._nin > 0 else 0):
                    p = _input_ptr(f, i)
                    if p != NULL and _is_variable(p):
                        _push(&st, p)
    finally:
        free(st.items)


cdef struct _Stack:
    PyObject** items
    Py_ssize_t n, cap


cdef inline bint _is_variable(PyObject* p) noexcept:
    # (Most nodes of a walk are exact Variables: told without a walk of
    # their type's bases.)
    return p.ob_type == <PyTypeObject*>Variable or isinstance(<object>p, Variable)


cdef inline bint _is_function(PyObject* p) noexcept:
    return isinstance(<object>p, Function)


cdef inline int _push(_Stack* st, PyObject* o) except -1:
    """Put o on _track_graph's stack, growing it as needed."""
    if st.n == st.cap:
        _grow(st)
    st.items[st.n] = o
    st.n += 1
    return 0


cdef int _grow(_Stack* st) except -1:
    cdef Py_ssize_t cap = 64 if st.cap == 0 else 2 * st.cap
    cdef PyObject** grown = <PyObject**>realloc(st.items, cap * sizeof(PyObject*))
    if grown == NULL:
        raise MemoryError()
    st.items = grown
    st.cap = cap
    return 0


def track_graph(v):
    """Show ``v`` and the graph behind it to Python's cycle collector.

    The engine hides the outputs of its built-in operations from the
    collector (a graph they make has no cycles, and reference counting frees
    it) and shows them again wherever a cycle can form: see "How the engine
    works" in the documentation. Call this only for a cycle you close
    through an object the engine cannot see into (a Function's constant, a
    non-array ``.data`` or ``.name``, an attribute of a Python subclass of
    Variable or Function) that was given a Variable made later.
    """
    if not isinstance(v, (Variable, Function)):
        raise TypeError('track_graph: expected a Variable or a Function, got {!r}'
                        .format(type(v)))
    _track_graph(v)
