# What the engine takes from CPython and C beyond Cython's own declarations:
# reference counts, cycle-collector tracking, thread identity, the FP
# exception flags, and _live().
# Part of the _core module (included by _core.pyx).

from cpython.object cimport PyObject
from cpython.pythread cimport PyThread_type_lock, PyLockStatus

cdef extern from "Python.h":
    unsigned long Py_TPFLAGS_HEAPTYPE
    int _generic_setattr "PyObject_GenericSetAttr" (object o, object name, PyObject* v) except -1
    Py_ssize_t _refcnt "Py_REFCNT" (PyObject* o)
    void _incref "Py_INCREF" (PyObject* o)
    void _decref "Py_DECREF" (PyObject* o)
    int _gc_is_tracked "PyObject_GC_IsTracked" (object o)
    void _gc_track "PyObject_GC_Track" (void* o)
    void _gc_untrack "PyObject_GC_UnTrack" (void* o)
    bint _is_gc "PyObject_IS_GC" (object o)
    unsigned long _thread_id "PyThread_get_thread_ident" ()
    PyLockStatus _acquire_timed "PyThread_acquire_lock_timed" (
        PyThread_type_lock lock, long long microseconds, int intr_flag) nogil

# NumPy reports overflow, underflow, division by zero and invalid results by
# the processor's sticky floating-point flags, read after each of its loops;
# the fast paths do the same, and hand anything flagged back to NumPy, so
# that np.errstate and NumPy's warnings apply to them unchanged.
cdef extern from "<fenv.h>":
    int feclearexcept(int excepts) nogil
    int fetestexcept(int excepts) nogil
    int FE_DIVBYZERO
    int FE_OVERFLOW
    int FE_UNDERFLOW
    int FE_INVALID

cdef int _FP_FLAGS = FE_DIVBYZERO | FE_OVERFLOW | FE_UNDERFLOW | FE_INVALID


cdef inline void _clear_fp_flags() noexcept nogil:
    """Clear the flags before a loop whose own flags are then read. They
    are rarely set, and reading them is much cheaper than clearing: on x86
    feclearexcept rewrites the whole x87 environment (66 ns a call on the
    bench host, fetestexcept 11 ns), so it runs only when one is set, as
    NumPy's own npy_clear_floatstatus_barrier does."""
    if fetestexcept(_FP_FLAGS):
        feclearexcept(_FP_FLAGS)


cdef inline object _live(PyObject* p):
    """The object behind a borrowed pointer, or None once it is dying.

    Function keeps borrowed pointers to its outputs; a dying output clears
    its slot in __dealloc__, but before that its weak references are
    cleared (their callbacks run arbitrary code) and the trashcan may defer
    it, both at reference count 0. Taking a new reference then would free
    it twice."""
    if p == NULL or _refcnt(p) <= 0:
        return None
    return <object>p
