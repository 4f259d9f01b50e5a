# cython: language_level=3
"""The graph engine of cydezero: Variable, Function, and backward.

Read this file top to bottom to see how a define-by-run graph is recorded and
differentiated: the per-thread configuration, the node types, the backward loop
(a generation-ordered heap, a seen mark, gradient accumulation), and the
built-in operations, each a small class whose backward states its derivative.

A built-in backward is written once and runs in two modes. Without
create_graph it receives and returns plain arrays (nothing is recorded, no
Variable is wrapped around an intermediate gradient); with create_graph it
receives Variables and the same expressions record a graph, so derivatives of
any order work. The ``graph`` flag picks the mode for the few helpers whose
array and Variable spellings differ.
"""
cimport cython
from cpython.object cimport PyObject, PyTypeObject, Py_TYPE
from cpython.ref cimport Py_INCREF, Py_DECREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.pythread cimport (PyThread_type_lock, PyThread_allocate_lock,
                               PyThread_acquire_lock, PyThread_release_lock,
                               PyLockStatus, PY_LOCK_INTR, NOWAIT_LOCK)
from cpython.exc cimport PyErr_CheckSignals
from libc.math cimport fabs
from libc.float cimport DBL_MIN, DBL_MAX
from libc.stdlib cimport malloc, realloc, free

import linecache
import os
import sys
import weakref
from functools import partial

import numpy as np
cimport numpy as cnp

from cydezero cimport _kernels

cnp.import_array()

cdef extern from "Python.h":
    unsigned long Py_TPFLAGS_HEAPTYPE
    int _generic_setattr "PyObject_GenericSetAttr" (object o, object name, PyObject* v) except -1
    Py_ssize_t _refcnt "Py_REFCNT" (PyObject* o)
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

# --------------------------------------------------------------------------
# Configuration, one copy per thread
# --------------------------------------------------------------------------
# A C thread-local is the cheapest per-thread flag there is: every function
# call reads it. The values are stored inverted so that a new thread starts
# from zero-initialised memory with DeZero's defaults (backprop on, train on).
cdef extern from *:
    """
    #if defined(_MSC_VER)
    #  define CDZ_TLS __declspec(thread)
    #else
    #  define CDZ_TLS __thread
    #endif
    static CDZ_TLS int cdz_backprop_off = 0;
    static CDZ_TLS int cdz_test_mode = 0;
    static CDZ_TLS int cdz_anomaly = 0;
    """
    int cdz_backprop_off
    int cdz_test_mode
    int cdz_anomaly

_CONFIG_FLAGS = ('enable_backprop', 'train', 'detect_anomaly')


def _config_get(str name):
    """Read a per-thread configuration flag (``Config`` is built on this)."""
    if name == 'enable_backprop':
        return not cdz_backprop_off
    if name == 'train':
        return not cdz_test_mode
    if name == 'detect_anomaly':
        return bool(cdz_anomaly)
    raise AttributeError(name)


def _config_set(str name, value):
    """Write a per-thread configuration flag for the calling thread only."""
    global cdz_backprop_off, cdz_test_mode, cdz_anomaly
    if name == 'enable_backprop':
        cdz_backprop_off = not value
    elif name == 'train':
        cdz_test_mode = not value
    elif name == 'detect_anomaly':
        cdz_anomaly = bool(value)
    else:
        raise AttributeError(name)


# --------------------------------------------------------------------------
# Arrays
# --------------------------------------------------------------------------
cdef type ndarray = np.ndarray


cdef inline bint _is_gpu_array(object x):
    # CuPy is optional and never imported here: if the user has a CuPy array,
    # CuPy is already in sys.modules.
    cp = sys.modules.get('cupy')
    return cp is not None and isinstance(x, cp.ndarray)


cdef inline bint _is_array(object x):
    return type(x) is ndarray or isinstance(x, ndarray) or _is_gpu_array(x)


cdef type float64 = np.float64


cdef inline object _as_arr(object y):
    """NumPy turns 0-d results into scalars; DeZero's data is always an array."""
    if type(y) is ndarray:
        return y
    if type(y) is float64:
        return _new_f64(PyFloat_AS_DOUBLE(y))
    if isinstance(y, np.generic):
        return np.asarray(y)
    return y


# The fast path for scalar graphs: +, -, *, / on 0-d float64 arrays (or a
# 0-d float64 array and a Python float) are done in C. IEEE arithmetic gives
# the bit-identical result NumPy would; only the ufunc call is skipped. A
# result that NumPy would flag (overflow, underflow, NaN, see _plain) is
# computed again by NumPy, so its warnings and np.errstate still apply.
cdef enum:
    OP_ADD, OP_SUB, OP_MUL, OP_DIV


cdef inline object _new_f64(double v):
    cdef cnp.ndarray a = cnp.PyArray_SimpleNew(0, NULL, cnp.NPY_DOUBLE)
    (<double*>cnp.PyArray_DATA(a))[0] = v
    return a


cdef long long _EXACT_INT = 9007199254740992   # 2**53


cdef inline bint _scalar_f64(object x, double* v) except -1:
    cdef long long i
    cdef int overflow
    if type(x) is ndarray:
        # Read as a C double only when it is one: native byte order, aligned.
        if (cnp.PyArray_NDIM(<cnp.ndarray>x) == 0
                and cnp.PyArray_TYPE(<cnp.ndarray>x) == cnp.NPY_DOUBLE
                and cnp.PyArray_ISBEHAVED_RO(<cnp.ndarray>x)):
            v[0] = (<double*>cnp.PyArray_DATA(<cnp.ndarray>x))[0]
            return True
        return False
    if type(x) is float:
        v[0] = PyFloat_AS_DOUBLE(x)
        return True
    if type(x) is int:
        # NumPy turns a Python int into float64 exactly up to 2**53.
        i = PyLong_AsLongLongAndOverflow(x, &overflow)
        if overflow == 0 and -_EXACT_INT <= i <= _EXACT_INT:
            v[0] = <double>i
            return True
    return False


cdef inline object _negate(object a):
    cdef double x
    if type(a) is ndarray and _scalar_f64(a, &x):
        return _new_f64(-x)
    return -a


cdef inline bint _same_shape(object a, object b):
    """Whether arrays (or Variables) a and b have one shape, read in C
    when both are NumPy arrays."""
    cdef Py_ssize_t i, nd
    cdef cnp.npy_intp* da
    cdef cnp.npy_intp* db
    if isinstance(a, Variable):
        a = (<Variable>a).data
    if isinstance(b, Variable):
        b = (<Variable>b).data
    if type(a) is ndarray and type(b) is ndarray:
        nd = cnp.PyArray_NDIM(<cnp.ndarray>a)
        if nd != cnp.PyArray_NDIM(<cnp.ndarray>b):
            return False
        da = cnp.PyArray_DIMS(<cnp.ndarray>a)
        db = cnp.PyArray_DIMS(<cnp.ndarray>b)
        for i in range(nd):
            if da[i] != db[i]:
                return False
        return True
    return _shape_of(a) == _shape_of(b)


cdef inline bint _plain(double r, bint exact_zero):
    """Whether r, the result of one IEEE operation, raised none of the flags
    NumPy checks: a normal finite number, or a zero the operation gives
    exactly (exact_zero: an operand was zero, or the operation is + or -,
    whose zero results are exact). Subnormal results, infinities and NaNs
    go back to NumPy, which computes the same value and reports it."""
    cdef double m = fabs(r)
    if m >= DBL_MIN:
        return m <= DBL_MAX
    return r == 0.0 and exact_zero


cdef inline object _arith(int op, object a, object b):
    cdef double x, y, r
    if _scalar_f64(a, &x) and _scalar_f64(b, &y) and (type(a) is ndarray or type(b) is ndarray):
        if op == OP_ADD:
            r = x + y
        elif op == OP_SUB:
            r = x - y
        elif op == OP_MUL:
            r = x * y
        else:
            r = x / y
        if _plain(r, op <= OP_SUB or x == 0.0 or (op == OP_MUL and y == 0.0)):
            return _new_f64(r)
    if op == OP_ADD:
        return a + b
    if op == OP_SUB:
        return a - b
    if op == OP_MUL:
        return a * b
    return a / b


def as_array(x, array_module=np):
    """Turn a Python or NumPy scalar into a 0-d array; leave anything else."""
    if np.isscalar(x):
        return array_module.array(x)
    return x


def as_variable(obj):
    """Return ``obj`` if it is a Variable, else wrap it in one."""
    if isinstance(obj, Variable):
        return obj
    return Variable(obj)


cdef inline tuple _shape_of(object x):
    if isinstance(x, Variable):
        return (<Variable>x).data.shape
    if _is_array(x):
        return x.shape
    return ()


def sum_to_array(x, shape):
    """Sum the array ``x`` down to ``shape`` (the inverse of broadcasting).

    Axes that broadcasting prepended are summed away; axes where ``shape``
    has 1 are summed with keepdims. Returns ``x`` itself when nothing to do.
    """
    shape = tuple(shape)
    cdef Py_ssize_t ndim = len(shape)
    cdef Py_ssize_t lead = x.ndim - ndim
    if lead == 0 and x.shape == shape:
        return x
    if lead < 0 or any([s != 1 and s != xs for s, xs in zip(shape, x.shape[lead:])]):
        raise ValueError('sum_to: cannot sum an array of shape {} to shape {}'
                         .format(x.shape, shape))
    lead_axis = tuple(range(lead))
    axis = tuple([i + lead for i, sx in enumerate(shape) if sx == 1])
    if not axis:
        return _as_arr(x.sum(lead_axis))    # only prepended axes (a bias)
    y = x.sum(lead_axis + axis, keepdims=True)
    if lead > 0:
        y = y.squeeze(lead_axis)
    return _as_arr(y)


cdef tuple _normalize_axes(object axis, Py_ssize_t ndim):
    if axis is None:
        return tuple(range(ndim))
    if not isinstance(axis, tuple):
        axis = (axis,)
    return tuple([a % ndim if ndim else a for a in axis])


def reshape_sum_backward(gy, x_shape, axis, keepdims):
    """Reshape the gradient of a sum so it broadcasts back to ``x_shape``.

    Works on arrays and on Variables alike (both have ``reshape``).
    """
    cdef Py_ssize_t ndim = len(x_shape)
    if ndim == 0 or axis is None or keepdims:
        shape = _shape_of(gy)
    else:
        shape = list(_shape_of(gy))
        for a in sorted(_normalize_axes(axis, ndim)):
            shape.insert(a, 1)
        shape = tuple(shape)
    return gy.reshape(shape)


def max_backward_shape(x, axis):
    """The shape of ``max(x, axis)`` with the reduced axes kept as 1."""
    axes = _normalize_axes(axis, x.ndim)
    return [1 if ax in axes else s for ax, s in enumerate(x.shape)]


# --------------------------------------------------------------------------
# Variable
# --------------------------------------------------------------------------
cdef inline Variable _new_var(object data):
    # Skips __init__'s type check: the engine only wraps arrays it made.
    cdef Variable v = Variable.__new__(Variable)
    v.data = data
    return v


cdef inline Variable _new_const(object data):
    cdef Variable v = _new_var(data)
    v._const = True
    return v


@cython.trashcan(True)
@cython.no_gc_clear
@cython.auto_pickle(False)      # see __reduce__
cdef class Variable:
    """A node holding an array, its gradient and the function that made it.

    ``creator`` is the Function whose output this is (None for a leaf), and
    ``generation`` is one more than the creator's, which is what orders the
    backward pass.
    """
    # Lets `ndarray + Variable` reach Variable.__radd__.
    __array_priority__ = 200

    def __init__(self, data, name=None, *, requires_grad=None):
        if data is not None and not _is_array(data):
            raise TypeError('{} is not supported'.format(type(data)))
        self.data = data
        self.name = name
        if requires_grad is not None:
            self.requires_grad = requires_grad

    # data and grad are read-only member descriptors, for fast reads (see
    # _use_member_descriptors); writing them comes here, and deleting one
    # empties it, as a Cython property's deleter does. The engine never
    # meets an empty (NULL) field.
    def __setattr__(self, name, value):
        if name == 'data':
            self.data = value
        elif name == 'grad':
            self.grad = value
        else:
            _generic_setattr(self, name, <PyObject*>value)

    def __delattr__(self, name):
        if name == 'data':
            self.data = None
        elif name == 'grad':
            self.grad = None
        else:
            _generic_setattr(self, name, NULL)

    def __dealloc__(self):
        if self._creator is not None:
            self._creator._unlink(<PyObject*>self)
        if self._hooked:
            _hooks.pop(<Py_ssize_t><void*>self, None)

    @property
    def requires_grad(self):
        """Whether backward computes a gradient for this variable (True
        unless set False). What is computed only from variables that need
        no gradient needs none either, and costs no backward work."""
        return not self._const

    @requires_grad.setter
    def requires_grad(self, value):
        if value and self.data is not None and self.data.dtype.kind not in 'fc':
            raise TypeError('requires_grad=True needs floating-point data, got dtype {} '
                            '(shape {})'.format(self.data.dtype, self.data.shape))
        self._const = not value

    def register_hook(self, hook):
        """Call ``hook(grad)`` with this variable's gradient (a Variable)
        once it is complete in each backward pass, before it flows further or
        is stored in ``.grad``. A hook may return a replacement gradient of
        the same shape, or None to keep it. Returns a handle whose
        ``remove()`` unregisters the hook."""
        if not callable(hook):
            raise TypeError('register_hook: expected a callable, got {!r}'.format(type(hook)))
        key = <Py_ssize_t><void*>self
        _hooks.setdefault(key, {})
        handle = HookHandle(self, key)
        _hooks[key][handle.id] = hook
        self._hooked = True
        return handle

    # -- the array it holds ------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return self.data.size

    @property
    def dtype(self):
        return self.data.dtype

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        if self.data is None:
            return 'variable(None)'
        p = str(self.data).replace('\n', '\n' + ' ' * 9)
        return 'variable(' + p + ')'

    # -- the graph ---------------------------------------------------------
    @property
    def creator(self):
        return self._creator

    @creator.setter
    def creator(self, Function func):
        if func is self._creator:
            return      # DeZero: setting the same creator again changes nothing
        if self._creator is not None:
            self._creator._unlink(<PyObject*>self)
            self._cut = func is None
        elif func is not None:
            self._cut = False
        self._creator = func

    def set_creator(self, Function func):
        self.creator = func
        self.generation = func.generation + 1

    def unchain(self):
        """Forget the creator: this variable becomes a leaf."""
        self.creator = None

    def cleargrad(self):
        self.grad = None

    # -- copy and pickle ---------------------------------------------------
    # What DeZero's Variable carries in its __dict__, and no more: a copy
    # must not share this variable's in-progress gradient buffer, its hooks
    # (keyed by address) or its place among its creator's outputs.
    def __reduce__(self):
        d = getattr(self, '__dict__', None)
        return (_new_of_type, (type(self),),
                (self.data, self.name, self.grad, self._creator, self.generation,
                 bool(self._const), bool(self._cut), d or None))

    def __setstate__(self, state):
        if type(state) is not tuple or len(state) != 8:
            raise TypeError('Variable.__setstate__: expected the 8-tuple that '
                            '__reduce__ makes, got {!r}'.format(type(state)))
        data, name, grad, creator, generation, const, cut, d = state
        if creator is not None and not isinstance(creator, Function):
            raise TypeError('Variable.__setstate__: creator must be a Function or None, '
                            'got {!r}'.format(type(creator)))
        self.data = data
        self.name = name
        self.grad = grad
        # A copy refers to the same creator but is not one of its outputs;
        # a live output given another state leaves its old creator's slot.
        if self._creator is not None and self._creator is not creator:
            self._creator._unlink(<PyObject*>self)
        self._creator = creator
        self.generation = generation
        self._const = bool(const)
        self._cut = bool(cut)
        if d:
            self.__dict__.update(d)

    def unchain_backward(self):
        """Cut every link behind this variable (iteratively: graphs are deep)."""
        cdef Function f
        cdef Variable v
        cdef Py_ssize_t i
        if self._creator is None:
            return
        stack = [self._creator]
        while stack:
            f = stack.pop()
            for i in range(f._nin):
                x = f._inp(i)
                if isinstance(x, Variable):
                    v = <Variable>x
                    if v._creator is not None:
                        stack.append(v._creator)
                        v.creator = None

    def backward(self, retain_grad=False, create_graph=False):
        """Differentiate every function behind this variable.

        Gradients are added into ``grad`` of each leaf (and, with
        ``retain_grad``, of every variable). With ``create_graph`` the
        backward computation is itself recorded.
        """
        _backward([self], [self.grad], retain_grad, create_graph, None)

    # -- shape methods and operators --------------------------------------
    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = shape[0]
        return reshape(self, shape)

    def transpose(self, *axes):
        if len(axes) == 0:
            axes = None
        elif len(axes) == 1 and (isinstance(axes[0], (tuple, list)) or axes[0] is None):
            axes = axes[0]
        return transpose(self, axes)

    @property
    def T(self):
        return transpose(self)

    def sum(self, axis=None, keepdims=False):
        return sum(self, axis, keepdims)

    def matmul(self, W):
        return matmul(self, W)

    def matmaul(self, W):
        """DeZero's own misspelling of ``matmul``, kept for code that uses it."""
        return matmul(self, W)

    def dot(self, W):
        return matmul(self, W)

    def max(self, axis=None, keepdims=False):
        return max(self, axis, keepdims)

    def min(self, axis=None, keepdims=False):
        return min(self, axis, keepdims)

    def __getitem__(self, slices):
        return get_item(self, slices)

    def __add__(self, other):
        return _apply2(Add.__new__(Add), self, other)

    def __radd__(self, other):
        return _apply2(Add.__new__(Add), self, other)

    def __sub__(self, other):
        return _apply2(Sub.__new__(Sub), self, other)

    def __rsub__(self, other):
        return _apply2(Sub.__new__(Sub), other, self)

    def __mul__(self, other):
        return _apply2(Mul.__new__(Mul), self, other)

    def __rmul__(self, other):
        return _apply2(Mul.__new__(Mul), self, other)

    def __truediv__(self, other):
        return _apply2(Div.__new__(Div), self, other)

    def __rtruediv__(self, other):
        return _apply2(Div.__new__(Div), other, self)

    def __neg__(self):
        return _apply1(Neg.__new__(Neg), self)

    def __pow__(self, c, mod):
        return pow(self, c)

    # -- devices -----------------------------------------------------------
    def to_cpu(self):
        if self.data is not None:
            from cydezero import cuda
            self.data = cuda.as_numpy(self.data)

    def to_gpu(self):
        if self.data is not None:
            from cydezero import cuda
            self.data = cuda.as_cupy(self.data)


cdef class Parameter(Variable):
    """A Variable that a Layer registers as one of its parameters."""
    pass


def _new_of_type(cls):
    """An empty instance of a Variable class, for unpickling and copy."""
    if not (isinstance(cls, type) and issubclass(cls, Variable)):
        raise TypeError('expected a Variable class, got {!r}'.format(cls))
    return cls.__new__(cls)


# ``data`` and ``grad`` are read in every user loop (optimizers, training
# steps). Cython exposes public fields as properties, which the interpreter
# calls generically (about 45 ns a read); a member descriptor, what
# ``__slots__`` makes, is a plain load the interpreter specializes (about
# 25 ns, as fast as an instance attribute). So the two properties are
# swapped for read-only member descriptors on the same fields: reads take
# the fast path, and writes go through Variable.__setattr__, so that no
# spelling (not even the descriptor's own __delete__) can empty a field.
cdef extern from "structmember.h":
    ctypedef struct PyMemberDef:
        const char* name
        int type
        Py_ssize_t offset
        int flags
        const char* doc
    int T_OBJECT_EX
    int READONLY

cdef extern from "Python.h":
    object PyDescr_NewMember(PyTypeObject* t, PyMemberDef* m)
    void PyType_Modified(PyTypeObject* t)

cdef PyMemberDef _variable_members[2]


cdef Py_ssize_t _field_offset(Variable probe, str name) except -1:
    """Where field `name` sits in a Variable's C struct, found by storing a
    unique object in it and looking for its address."""
    sentinel = object()
    setattr(probe, name, sentinel)
    cdef char* base = <char*><PyObject*>probe
    cdef Py_ssize_t off
    for off in range(0, (<PyTypeObject*>Variable).tp_basicsize, sizeof(PyObject*)):
        if (<PyObject**>(base + off))[0] == <PyObject*>sentinel:
            setattr(probe, name, None)
            return off
    raise RuntimeError('Variable.{} not found in its struct'.format(name))


cdef void _use_member_descriptors() except *:
    cdef PyTypeObject* t = <PyTypeObject*>Variable
    cdef Variable probe = Variable.__new__(Variable)
    cdef int i
    _variable_members[0].name = b'data'
    _variable_members[0].doc = b'The array this variable holds.'
    _variable_members[1].name = b'grad'
    _variable_members[1].doc = (b'The gradient from the last backward pass '
                                b'(a Variable), or None.')
    for i in range(2):
        name = _variable_members[i].name.decode()
        _variable_members[i].offset = _field_offset(probe, name)
        _variable_members[i].type = T_OBJECT_EX
        _variable_members[i].flags = READONLY
        (<dict><object>t.tp_dict)[name] = PyDescr_NewMember(t, &_variable_members[i])
    PyType_Modified(t)


_use_member_descriptors()


# --------------------------------------------------------------------------
# Gradient hooks
# --------------------------------------------------------------------------
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
    cdef readonly size_t id

    def __cinit__(self, Variable v, Py_ssize_t key):
        global _hook_ids
        _hook_ids += 1
        self.id = _hook_ids
        self._var = weakref.ref(v)
        self._key = key

    def remove(self):
        v = self._var()
        table = _hooks.get(self._key) if v is not None else None
        if table is None:
            return
        table.pop(self.id, None)
        if not table:
            del _hooks[self._key]
            (<Variable>v)._hooked = False


cdef object _grad_data(object g):
    """The array in a gradient that user code handed back (a Variable, an
    array or a NumPy scalar), or None when it is none of those."""
    if isinstance(g, Variable):
        return (<Variable>g).data
    g = _as_arr(g)
    return g if _is_array(g) else None


cdef object _run_hooks(Variable x, object acc, bint graph):
    """Pass x's complete gradient for this pass through its hooks, in the
    order they were registered; each may replace it."""
    table = _hooks.get(<Py_ssize_t><void*>x)
    if not table:
        return acc
    g = acc if graph else _new_var(acc)
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
        if rd.shape != x.data.shape:
            raise ValueError('gradient hook {!r} returned a gradient of shape {} for a '
                             'variable of shape {}'.format(hook, rd.shape, x.data.shape))
        g = r
    # A hook may have kept the gradient it saw: never add into it in place.
    x._acc_owned = False
    return g if graph else (<Variable>g).data


# --------------------------------------------------------------------------
# Anomaly detection
# --------------------------------------------------------------------------
# With detect_anomaly on, each recorded Function remembers where the forward
# pass created it, and backward checks every gradient it produces. Sites are
# kept by identity ({id: (weak reference, site)}), never by a Function's own
# __hash__ or __eq__, which a subclass may define (or make unhashable).
cdef dict _anomaly_sites = {}


def _forget_site(Py_ssize_t key, ref):
    entry = _anomaly_sites.get(key)
    if entry is not None and entry[0] is ref:
        del _anomaly_sites[key]


cdef void _record_site(Function f) except *:
    key = id(f)
    _anomaly_sites[key] = (weakref.ref(f, partial(_forget_site, key)), _creation_site())


cdef object _site_of(Function f):
    entry = _anomaly_sites.get(id(f))
    if entry is not None and entry[0]() is f:
        return entry[1]
    return None
cdef str _PKG_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


cdef str _creation_site():
    """The innermost caller outside cydezero: 'file:line in func: code'."""
    frame = sys._getframe(0)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PKG_DIR):
        frame = frame.f_back
    if frame is None:
        return 'an unknown place'
    code = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
    return '{}:{} in {}{}'.format(frame.f_code.co_filename, frame.f_lineno,
                                  frame.f_code.co_name, ': ' + code if code else '')


cdef inline bint _finite(object g):
    if isinstance(g, Variable):
        g = (<Variable>g).data
    return g.dtype.kind not in 'fc' or bool(np.isfinite(g).all())


cdef void _check_anomaly(Function f, tuple gys, tuple gxs) except *:
    cdef Py_ssize_t i
    for i in range(len(gxs)):
        gx = gxs[i]
        if gx is None or _finite(gx):
            continue
        g = (<Variable>gx).data if isinstance(gx, Variable) else gx
        what = 'NaN' if np.isnan(g).any() else 'inf'
        upstream = [gy for gy in gys if gy is not None and not _finite(gy)]
        site = _site_of(f)
        raise FloatingPointError(
            '{name}.backward produced {what} in the gradient of its input {i} (shape {shape}){up}. '
            'This {name} was created at {site}'.format(
                name=type(f).__name__, what=what, i=i, shape=g.shape,
                up=' from an already non-finite incoming gradient' if upstream else '',
                site=site or 'a place unknown (it was created before detect_anomaly was on)'))


# --------------------------------------------------------------------------
# Function
# --------------------------------------------------------------------------
cdef object _DEAD_REF
cdef class _Gone:
    cdef object __weakref__
_gone = _Gone()
_DEAD_REF = weakref.ref(_gone)
del _gone

# Outputs linked by assigning Function.outputs whose creator is another
# Function (or none): {address of the Function: [weak references]}. Their
# death clears the slot through the callback below. The entry goes when the
# Function drops its outputs (_free_outs), so a live entry means a live
# Function, and the weak references die with it, never calling back late.
cdef dict _foreign_outs = {}


def _foreign_output_died(Py_ssize_t key, Py_ssize_t i, Py_ssize_t out, ref):
    cdef PyObject* f
    watch = _foreign_outs.get(key)
    if watch is None or not any([r is ref for r in watch]):
        return
    # Borrowed: the Function may itself be in its last moments (at reference
    # count 0, its own weak references' callbacks running); no reference is
    # taken, only the slot is cleared.
    f = <PyObject*>key
    if i < (<Function>f)._nout and (<Function>f)._outs[i] == <PyObject*>out:
        (<Function>f)._outs[i] = NULL


@cython.trashcan(True)
cdef class Function:
    """An operation in the graph. Subclass it and define ``forward`` (on
    arrays, returning an array or a tuple of arrays) and ``backward`` (on
    output gradients as Variables, returning one gradient per input).
    """

    def __cinit__(self):
        self._outs = &self._out1
        self._nin = -1

    def __dealloc__(self):
        self._free_outs()

    def __call__(self, *inputs):
        return _apply(self, inputs)

    def forward(self, *xs):
        raise NotImplementedError(
            '{}.forward is not implemented'.format(type(self).__name__))

    def backward(self, *gys):
        raise NotImplementedError(
            '{}.backward is not implemented'.format(type(self).__name__))

    @property
    def inputs(self):
        """The input Variables. A constant input is shown wrapped in a
        Variable (the same one on every read); the computation keeps using
        the constant itself, so reading this never changes a result."""
        if self._nin < 0:
            return None
        cdef tuple raw = self._input_tuple()
        if all([isinstance(x, Variable) for x in raw]):
            return list(raw)
        if (self._shown is None or len(self._shown[0]) != len(raw)
                or not all([a is b for a, b in zip(self._shown[0], raw)])):
            self._shown = (raw, tuple([x if isinstance(x, Variable)
                                       else _new_const(as_array(x)) for x in raw]))
        return list(self._shown[1])

    @inputs.setter
    def inputs(self, xs):
        if xs is None:
            self._in0 = self._in1 = self._more = None
            self._nin = -1
        else:
            self._set_inputs(tuple([as_variable(x) for x in xs]))

    @property
    def outputs(self):
        """Weak references to the outputs: ``f.outputs[0]()`` is the first."""
        cdef Py_ssize_t i
        if self._nout == 0:
            return None
        # Live objects first: weakref.ref() runs no Python code, but the
        # list is made from strong references all the same.
        ys = [_live(self._outs[i]) for i in range(self._nout)]
        return [_DEAD_REF if y is None else weakref.ref(y) for y in ys]

    @outputs.setter
    def outputs(self, outs):
        cdef list vs = []
        cdef Py_ssize_t i, key = <Py_ssize_t><void*>self
        for o in outs:
            if isinstance(o, weakref.ref):
                o = o()
            if not isinstance(o, Variable):
                raise TypeError('Function.outputs takes Variables or weak '
                                'references to them, got {!r}'.format(type(o)))
            vs.append(o)
        # Only an output's creator is told when it dies (Variable.__dealloc__
        # clears its slot); any other output is watched by a weak reference.
        watch = [weakref.ref(o, partial(_foreign_output_died, key, i, id(o)))
                 for i, o in enumerate(vs) if (<Variable>o)._creator is not self]
        self._link(vs)
        if watch:
            _foreign_outs[key] = watch

    # -- what the engine calls --------------------------------------------
    cdef int _arity(self):
        """How many inputs a built-in's forward reads; -1: any number."""
        return -1

    cdef object _inp(self, Py_ssize_t i):
        """Input i as recorded (a Variable or a raw constant); None past the
        end (Python code may have replaced the inputs since i was counted)."""
        if i == 0:
            return self._in0
        if i == 1:
            return self._in1
        if self._more is not None and 2 <= i < 2 + len(self._more):
            return self._more[i - 2]
        return None

    cdef void _set_inputs(self, tuple xs) except *:
        cdef Py_ssize_t n = len(xs)
        if n > 32767:
            raise ValueError('{}: {} inputs; at most 32767 are supported'
                             .format(type(self).__name__, n))
        self._in0 = xs[0] if n > 0 else None
        self._in1 = xs[1] if n > 1 else None
        self._more = xs[2:] if n > 2 else None
        self._nin = <short>n
        if self._shown is not None:
            self._shown = None

    cdef tuple _input_tuple(self):
        cdef Py_ssize_t i
        if self._nin <= 0:
            return ()
        if self._nin == 1:
            return (self._in0,)
        if self._nin == 2:
            return (self._in0, self._in1)
        return tuple([self._inp(i) for i in range(self._nin)])

    cdef object _fwd(self, tuple xs):
        return self._py_fwd(xs)

    cdef tuple _bw(self, tuple gys, bint graph):
        return self._py_bw(gys, graph)

    cdef object _py_fwd(self, tuple xs):
        return self.forward(*xs)

    cdef tuple _py_bw(self, tuple gys, bint graph):
        # A Python backward sees Variables, whatever mode the engine is in,
        # and may return Variables, arrays or None; normalise and check.
        cdef Py_ssize_t i, n, m
        cdef str name = type(self).__name__
        if not graph:
            gys = tuple([None if g is None else _new_var(g) for g in gys])
        res = self.backward(*gys)
        if type(res) is not tuple:
            res = tuple(res) if isinstance(res, list) else (res,)
        # Counted after backward ran: it may have replaced self.inputs.
        n = self._nin if self._nin > 0 else 0
        m = len(res)
        if m > n:
            raise ValueError('{}.backward returned {} gradients for {} inputs'
                             .format(name, m, n))
        cdef list out = [None] * n
        for i in range(n):
            x = self._inp(i)
            gx = res[i] if i < m else None
            if gx is None:
                # DeZero lets a backward leave out trailing inputs (integer
                # labels, indices); a float input that needs a gradient may not.
                if i >= m and _needs_grad(x) and (<Variable>x).data.dtype.kind in 'fc':
                    raise ValueError(
                        '{}.backward returned {} gradient(s) for {} inputs; input {} '
                        '(shape {}, dtype {}) needs one'.format(
                            name, m, n, i, (<Variable>x).data.shape, (<Variable>x).data.dtype))
                continue
            if not _needs_grad(x):   # this x: Python code may replace the inputs
                continue
            g = _grad_data(gx)
            if g is None:
                raise TypeError('{}.backward returned {!r} for input {}; expected '
                                'a Variable or an array'.format(name, type(gx), i))
            if not isinstance(gx, Variable):
                gx = _new_var(g) if graph else g
            if g.shape != (<Variable>x).data.shape:
                raise ValueError(
                    '{}.backward returned a gradient of shape {} for input {} of '
                    'shape {}'.format(name, g.shape, i, (<Variable>x).data.shape))
            if not _kind_fits(g.dtype.kind, (<Variable>x).data.dtype.kind):
                raise TypeError(
                    '{}.backward returned a gradient of dtype {} for input {} of '
                    'dtype {}'.format(name, g.dtype, i, (<Variable>x).data.dtype))
            out[i] = gx if graph else g
        return tuple(out)

    # -- helpers for the built-in backward methods -------------------------
    cdef object _x(self, Py_ssize_t i, bint graph):
        """Input i as a Variable (graph mode) or its data (array mode)."""
        x = self._inp(i)
        if graph or not isinstance(x, Variable):
            return x
        return (<Variable>x).data

    cdef bint _needs(self, Py_ssize_t i):
        """Whether input i is a Variable that can receive a gradient."""
        return _needs_grad(self._inp(i))

    cdef object _y(self, bint graph):
        """The first output, as a Variable or its data."""
        y = _live(self._outs[0]) if self._nout > 0 else None
        if y is None:
            raise RuntimeError('{}: its output was freed before backward'
                               .format(type(self).__name__))
        return y if graph else (<Variable>y).data

    cdef void _link(self, list outs) except *:
        cdef Py_ssize_t i, n = len(outs)
        if n > 65535:
            raise ValueError('{}: {} outputs; at most 65535 are supported'
                             .format(type(self).__name__, n))
        self._free_outs()
        if n > 1:
            self._outs = <PyObject**>malloc(n * sizeof(PyObject*))
            if self._outs == NULL:
                self._outs = &self._out1
                self._nout = 0
                raise MemoryError()
        for i in range(n):
            self._outs[i] = <PyObject*>outs[i]
        self._nout = <unsigned short>n

    cdef void _link1(self, Variable out):
        """_link for the usual single output."""
        self._free_outs()
        self._out1 = <PyObject*>out
        self._nout = 1

    cdef void _free_outs(self):
        """Back to the inline slot for the outputs' pointers, and no
        outputs; their watchers (see the outputs setter) go too."""
        self._nout = 0
        if self._outs != &self._out1:
            free(self._outs)
            self._outs = &self._out1
        if _foreign_outs:
            _foreign_outs.pop(<Py_ssize_t><void*>self, None)

    cdef void _unlink(self, PyObject* v):
        cdef Py_ssize_t i
        for i in range(self._nout):
            if self._outs[i] == v:
                self._outs[i] = NULL


cdef inline bint _needs_grad(object x):
    """Whether x is a Variable that can receive a gradient."""
    return isinstance(x, Variable) and not (<Variable>x)._const


cdef inline bint _kind_fits(str g, str x):
    """A float input needs a float gradient, a complex one a float or
    complex one; DeZero lets integer inputs have any numeric gradient."""
    if x == 'f':
        return g == 'f'
    if x == 'c':
        return g in 'fc'
    return True


cdef inline bint _is_native(Function f):
    """False for Python subclasses, whose forward/backward must be honoured
    even when they subclass a built-in operation."""
    return not (Py_TYPE(f).tp_flags & Py_TPFLAGS_HEAPTYPE)


cdef object _check_const(object x, Function f):
    """A non-Variable input of a built-in: kept raw (scalars stay Python
    scalars, so float32 data is not promoted by a weakly typed constant)."""
    if (type(x) is float or type(x) is int or _is_array(x)
            or (np.isscalar(x) and not isinstance(x, (str, bytes)))):
        return x
    if x is None and type(f) is Linear:
        return x    # DeZero's linear passes b=None through as an input
    raise TypeError('{}: {} is not supported'.format(type(f).__name__, type(x)))


cdef Py_ssize_t _MAX_GENERATION = 2147483647    # INT_MAX


cdef object _apply(Function f, tuple inputs):
    """Run f's forward on the inputs' data and, when backprop is enabled,
    record f as the creator of its outputs."""
    cdef Py_ssize_t i, n = len(inputs), gen = 0
    cdef tuple xs = PyTuple_New(n)
    cdef list ins = None
    cdef Variable v
    cdef bint native = _is_native(f)
    # Outputs need no gradient when every Variable input needs none. Calls on
    # raw constants alone keep DeZero's behaviour (their outputs need one).
    cdef bint any_var = False, all_const = True
    if native:
        _check_arity(f, n)
    for i in range(n):
        x = inputs[i]
        if isinstance(x, Variable):
            v = <Variable>x
            d = v.data
            if v.generation > gen:
                gen = v.generation
            any_var = True
            if not v._const:
                all_const = False
        elif native:
            d = _check_const(x, f)
        else:
            # Python Functions see every input as a Variable, as in DeZero.
            v = Variable(as_array(x))
            v._const = True
            d = v.data
            if ins is None:
                ins = list(inputs)
            ins[i] = v
        Py_INCREF(d)
        PyTuple_SET_ITEM(xs, i, d)
    if ins is not None:
        inputs = tuple(ins)
    if gen >= _MAX_GENERATION and not cdz_backprop_off:
        raise OverflowError(
            '{}: an input has generation {}, the largest there is; its outputs\' '
            'would not fit (generations are C ints)'.format(type(f).__name__, gen))

    if native:
        try:
            ys = f._fwd(xs)
        except (ValueError, TypeError, IndexError) as e:
            raise _forward_error(f, inputs, e) from e
    else:
        ys = f._py_fwd(xs)

    cdef list outs
    cdef Variable out
    if type(ys) is tuple:
        outs = [_new_var(_check_output(y, f)) for y in ys]
    else:
        out = _new_var(_check_output(ys, f))
        outs = None
    cdef bint no_grad_needed = any_var and all_const
    if not cdz_backprop_off:
        f.generation = <int>gen
        f._set_inputs(inputs)
        if outs is None:
            f._link1(out)
        else:
            f._link(outs)
        for i in range(f._nout):
            v = <Variable>f._outs[i]
            v._creator = f
            v.generation = <int>(gen + 1)
            v._const = no_grad_needed
        if cdz_anomaly:
            _record_site(f)
    if outs is None:
        return out
    return outs[0] if len(outs) == 1 else outs


cdef object _forward_error(Function f, tuple inputs, BaseException e):
    """NumPy's error from a built-in's forward, restated to name the
    operation and what it was given."""
    name = type(f).__name__
    msg = str(e)
    if not msg.startswith(name + ':'):
        msg = '{}: {} (inputs: {})'.format(name, msg, ', '.join([_describe(x) for x in inputs]))
    kind = (ValueError if isinstance(e, ValueError) else
            TypeError if isinstance(e, TypeError) else IndexError)
    return kind(msg)


cdef str _describe(object x):
    if isinstance(x, Variable):
        d = (<Variable>x).data
        if _is_array(d):
            return 'a Variable of shape {} {}'.format(d.shape, d.dtype)
        return 'a Variable holding {!r}'.format(type(d))
    if _is_array(x):
        return 'an array of shape {} {}'.format(x.shape, x.dtype)
    return repr(x)


cdef inline object _check_output(object y, Function f):
    if type(y) is ndarray:
        return y
    if np.isscalar(y) and not isinstance(y, (str, bytes)):
        return _as_arr(y) if isinstance(y, np.generic) else np.asarray(y)
    if _is_array(y):
        return y
    raise TypeError('{}.forward returned {!r}; expected an array (or a tuple '
                    'of arrays)'.format(type(f).__name__, type(y)))


cdef inline object _apply1(Function f, object x):
    return _apply(f, (x,))


cdef inline object _apply2(Function f, object x0, object x1):
    return _apply(f, (x0, x1))


# --------------------------------------------------------------------------
# Backward
# --------------------------------------------------------------------------
cdef struct _HeapItem:
    Py_ssize_t gen
    size_t seq
    PyObject* f


@cython.final
cdef class _FuncHeap:
    """A binary max-heap of Functions keyed by (generation, insertion order).

    The latest generation runs first; among equal generations the one pushed
    last runs first, which is exactly the order DeZero's sorted list gives,
    so gradients are summed in the same order and come out bit-identical.
    """
    cdef _HeapItem* items
    cdef Py_ssize_t n, cap
    cdef size_t seq

    def __cinit__(self):
        self.cap = 64
        self.items = <_HeapItem*>malloc(self.cap * sizeof(_HeapItem))
        if self.items == NULL:
            raise MemoryError()

    def __dealloc__(self):
        cdef Py_ssize_t i
        for i in range(self.n):
            Py_DECREF(<object>self.items[i].f)
        free(self.items)

    cdef inline bint _before(self, Py_ssize_t a, Py_ssize_t b):
        cdef _HeapItem* x = &self.items[a]
        cdef _HeapItem* y = &self.items[b]
        return x.gen > y.gen or (x.gen == y.gen and x.seq > y.seq)

    cdef void push(self, Function f) except *:
        cdef Py_ssize_t i, parent
        cdef _HeapItem tmp
        cdef _HeapItem* grown
        if self.n == self.cap:
            grown = <_HeapItem*>realloc(self.items, 2 * self.cap * sizeof(_HeapItem))
            if grown == NULL:
                raise MemoryError()
            self.items = grown
            self.cap *= 2
        Py_INCREF(f)
        i = self.n
        self.items[i].gen = f.generation
        self.items[i].seq = self.seq
        self.items[i].f = <PyObject*>f
        self.seq += 1
        self.n += 1
        while i > 0:
            parent = (i - 1) >> 1
            if not self._before(i, parent):
                break
            tmp = self.items[i]
            self.items[i] = self.items[parent]
            self.items[parent] = tmp
            i = parent

    cdef Function pop(self):
        cdef Py_ssize_t i = 0, child, best
        cdef _HeapItem tmp
        cdef Function f = <Function>self.items[0].f
        Py_DECREF(f)   # the reference the heap held; `f` holds its own
        self.n -= 1
        self.items[0] = self.items[self.n]
        while True:
            child = 2 * i + 1
            if child >= self.n:
                break
            best = child
            if child + 1 < self.n and self._before(child + 1, child):
                best = child + 1
            if not self._before(best, i):
                break
            tmp = self.items[i]
            self.items[i] = self.items[best]
            self.items[best] = tmp
            i = best
        return f


# Each backward pass has an epoch, a number no other pass has: functions it
# scheduled carry it in _mark (the seen set), variables whose gradient it
# accumulates carry it in _pass.
cdef size_t _epoch = 0

# Passes run one at a time: two threads accumulating into one graph's
# variables would add into each other's buffers. A thread may nest passes
# (a hook calling backward() on another graph); a nested pass that reaches
# a node an outer pass is still working on raises instead of corrupting it.
cdef PyThread_type_lock _pass_lock = PyThread_allocate_lock()
cdef unsigned long _pass_owner = 0      # the thread holding _pass_lock
cdef list _active = []                  # epochs of the passes in progress, outermost first
cdef size_t _active_floor = 0           # _active[0], or 0


cdef void _enter_pass() except *:
    """Take the pass lock for this thread (again, when it holds it)."""
    global _pass_owner
    cdef unsigned long me = _thread_id()
    cdef PyLockStatus r
    if _active and _pass_owner == me:
        return
    if not PyThread_acquire_lock(_pass_lock, NOWAIT_LOCK):
        while True:
            with nogil:
                r = _acquire_timed(_pass_lock, -1, 1)
            if r != PY_LOCK_INTR:
                break
            PyErr_CheckSignals()    # raises KeyboardInterrupt (nothing held)
    _pass_owner = me


cdef size_t _begin_pass() except 0:
    global _epoch, _active_floor
    _enter_pass()
    try:
        _epoch += 1
        _active.append(_epoch)
    except BaseException:
        if not _active:
            _release_pass()
        raise
    _active_floor = _active[0]
    return _epoch


cdef void _end_pass(size_t epoch) noexcept:
    global _active_floor
    if _active and _active[len(_active) - 1] == epoch:
        _active.pop()
    _active_floor = _active[0] if _active else 0
    if not _active:
        _release_pass()


cdef void _release_pass() noexcept:
    global _pass_owner
    _pass_owner = 0
    PyThread_release_lock(_pass_lock)


def _after_fork_in_child():
    # A thread that held the lock does not exist in the child.
    global _pass_lock, _pass_owner, _active_floor
    if _active and _pass_owner == _thread_id():
        return      # forked from inside a pass of this very thread
    _pass_lock = PyThread_allocate_lock()
    _pass_owner = 0
    del _active[:]
    _active_floor = 0


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_after_fork_in_child)


cdef object _conflict(object what):
    return RuntimeError(
        'backward: {} is part of a backward pass still in progress (a gradient hook or '
        'a Python backward called backward() or grad() on a graph that the outer pass '
        'is differentiating); differentiate it after that pass, or from a copy'
        .format(what))


cdef inline void _schedule(_FuncHeap heap, Function c, size_t epoch) except *:
    """Push c unless this pass already did; a c that an outer pass still in
    progress scheduled is that pass's, and is not taken over."""
    if c._mark == epoch:
        return
    if c._mark >= _active_floor and c._mark != 0 and c._mark in _active:
        raise _conflict('a {} whose output gradients'.format(type(c).__name__))
    c._mark = epoch
    heap.push(c)


cdef inline object _own_acc(Variable x, size_t epoch):
    """x's gradient accumulated so far by this pass (None if none); an
    outer pass's is not this pass's to read."""
    if x._acc is None:
        return None
    if x._pass != epoch:
        raise _conflict('a variable of shape {}'.format(_shape_of(x)))
    return x._acc


cdef inline void _accumulate(Variable x, object gx, bint graph, list touched,
                             bint from_prior, size_t epoch) except *:
    """Add gx into x's gradient for this pass (starting from x.grad when
    from_prior). A gradient another variable may hold is never modified:
    in place only into buffers the engine allocated."""
    cdef double a, b
    acc = _own_acc(x, epoch)
    if acc is None:
        prior = _prior_grad(x, graph) if from_prior else None
        touched.append(x)
        x._pass = epoch
        if prior is None:
            x._acc = gx
            x._acc_owned = False
        elif graph:
            x._acc = prior + gx
        else:
            x._acc = _as_arr(_arith(OP_ADD, prior, gx))
            x._acc_owned = True
    elif graph:
        x._acc = acc + gx
    elif x._acc_owned and type(acc) is ndarray and type(gx) is ndarray:
        if _scalar_f64(acc, &a) and _scalar_f64(gx, &b) and _plain(a + b, True):
            (<double*>cnp.PyArray_DATA(<cnp.ndarray>acc))[0] = a + b
        elif _same_shape(acc, gx) and (<cnp.ndarray>acc).dtype == (<cnp.ndarray>gx).dtype:
            acc += gx
        else:
            x._acc = _as_arr(_arith(OP_ADD, acc, gx))
    else:
        x._acc = _as_arr(_arith(OP_ADD, acc, gx))
        x._acc_owned = True


cdef object _prior_grad(Variable x, bint graph):
    """x.grad as the start of this pass's sum: a Variable under create_graph,
    else its array. DeZero lets user code store an array there too."""
    g = x.grad
    if g is None or graph:
        return g
    d = _grad_data(g)
    if d is None:
        raise TypeError('backward: the .grad of a variable of shape {} is a {!r}; expected '
                        'a Variable, an array or None'.format(_shape_of(x), type(g)))
    return d


cdef object _commit_grad(object acc, bint graph):
    if graph:
        return acc
    # Broadcast views are read-only; a leaf's gradient is the user's to edit
    # (optimizer hooks scale it in place), so give it its own buffer.
    if type(acc) is ndarray and not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>acc):
        acc = acc.copy()
    return _new_var(acc)


cdef object _seed(Variable root, object given, bint graph):
    """The gradient a pass starts from at root: ones, or what was given."""
    cdef int t
    if root.data is None:
        raise ValueError('backward() called on a Variable whose data is None')
    if given is None:
        t = _fast_type(root.data)
        seed = (_scalar_array(t, 1.0) if t >= 0 and _ndim(root.data) == 0
                else np.ones_like(root.data))
        return _new_var(seed) if graph else seed
    if isinstance(given, Variable):
        return given if graph else (<Variable>given).data
    g = _as_arr(given)
    if not _is_array(g) or g.shape != root.data.shape:
        raise ValueError('grad_outputs: expected an array of shape {}, got {!r}'
                         .format(root.data.shape, getattr(g, 'shape', type(g))))
    return _new_var(g) if graph else g


cdef tuple _live_outputs(Function f):
    """Strong references to f's outputs (None for a dead one), taken before
    any Python code runs for f: a hook or a Python backward may drop the
    last other reference to an output, or relink f's outputs."""
    cdef Py_ssize_t i, n = f._nout
    cdef tuple ys = PyTuple_New(n)
    for i in range(n):
        y = _live(f._outs[i])
        Py_INCREF(y)
        PyTuple_SET_ITEM(ys, i, y)
    return ys


cdef list _backward(list roots, list seeds, bint retain, bint graph, list wanted):
    """The backward pass from roots. With wanted None it is
    ``Variable.backward``: gradients add into ``.grad``. Otherwise no
    ``.grad`` is read or written and the gradients of ``wanted`` are
    returned (the functional ``grad``)."""
    global cdz_backprop_off
    cdef Function f
    cdef Variable x, y
    cdef Py_ssize_t i, n
    cdef list touched = []
    cdef _FuncHeap heap = _FuncHeap.__new__(_FuncHeap)
    cdef tuple ys, gys, gxs
    cdef int saved = cdz_backprop_off
    cdef bint functional = wanted is not None
    cdef set keep = {id(v) for v in wanted} if functional else None
    cdef Variable cut = None
    cdef size_t epoch

    # Seeds are made before anything is touched, so bad ones change nothing.
    n = len(roots)
    seeds = [_seed(<Variable>roots[i], seeds[i], graph) for i in range(n)]
    epoch = _begin_pass()
    cdz_backprop_off = not graph
    try:
        for i in range(n):
            x = <Variable>roots[i]
            _accumulate(x, seeds[i], graph, touched, False, epoch)
            if x._creator is None:
                if x._cut:
                    cut = x
            else:
                _schedule(heap, x._creator, epoch)

        while heap.n:
            f = heap.pop()
            ys = _live_outputs(f)
            n = len(ys)
            # An output's gradient is complete once its creator is up.
            for i in range(n):
                if ys[i] is not None and (<Variable>ys[i])._hooked:
                    y = <Variable>ys[i]
                    acc = _own_acc(y, epoch)
                    if acc is not None:
                        y._acc = _run_hooks(y, acc, graph)
            gys = PyTuple_New(n)
            for i in range(n):
                gy = None
                if ys[i] is not None:
                    gy = _own_acc(<Variable>ys[i], epoch)
                    # Handed on: a backward may pass gy through as an
                    # input's gradient, so it is not added into in place.
                    (<Variable>ys[i])._acc_owned = False
                Py_INCREF(gy)
                PyTuple_SET_ITEM(gys, i, gy)
            gxs = f._bw(gys, graph) if _is_native(f) else f._py_bw(gys, graph)
            if gxs is None:
                raise TypeError('{}.backward returned no gradients'.format(type(f).__name__))
            if cdz_anomaly:
                _check_anomaly(f, gys, gxs)
            # f._nin is read on every step: accumulating runs Python code
            # (array subclasses, Variable arithmetic under create_graph).
            i = 0
            while i < f._nin and i < len(gxs):
                gx = gxs[i]
                x_obj = f._inp(i)
                i += 1
                if gx is None or not isinstance(x_obj, Variable):
                    continue
                x = <Variable>x_obj
                if x._const:
                    continue
                if not graph:
                    gx = _as_arr(gx)
                # A hooked leaf's hooks see this pass's gradient alone; the
                # earlier .grad is added after them, at commit.
                _accumulate(x, gx, graph, touched, not functional and not x._hooked, epoch)
                if x._creator is not None:
                    _schedule(heap, x._creator, epoch)
                elif x._cut:
                    cut = x
            if not retain:
                # Outputs' gradients are consumed: free them now, not at the end.
                for i in range(n):
                    if ys[i] is not None and (keep is None or id(ys[i]) not in keep):
                        y = <Variable>ys[i]
                        if y._pass == epoch:
                            y._acc = None

        # Leaves' hooks run last, and before anything is committed.
        for x_obj in (wanted if functional else touched):
            x = <Variable>x_obj
            if x._hooked and x._creator is None and x._acc is not None and x._pass == epoch:
                x._acc = _run_hooks(x, x._acc, graph)
        if functional:
            return [_wanted_grad(<Variable>v, i, cut, graph, epoch) for i, v in enumerate(wanted)]
        for x_obj in touched:
            x = <Variable>x_obj
            if (x._hooked and x._creator is None and x.grad is not None and x._acc is not None
                    and not any([x_obj is r for r in roots])):
                prior = _prior_grad(x, graph)
                x._acc = prior + x._acc if graph else _as_arr(_arith(OP_ADD, prior, x._acc))
        _commit(touched, retain, graph, epoch)
        return None
    finally:
        cdz_backprop_off = saved
        for x_obj in touched:
            x = <Variable>x_obj
            if x._pass == epoch:
                x._acc = None
        _end_pass(epoch)


cdef void _commit(list touched, bint retain, bint graph, size_t epoch) except *:
    """Store the pass's gradients in .grad, all or none: every new value is
    made first (which may fail), then all are stored (which cannot), and
    the old values are released last, after every .grad is in place (their
    release may run Python code)."""
    cdef Py_ssize_t i, n = len(touched)
    cdef Variable x
    cdef list new = [None] * n
    cdef list old = [None] * n
    for i in range(n):
        x = <Variable>touched[i]
        if x._creator is None or retain:
            new[i] = (_commit_grad(x._acc, graph) if x._acc is not None and x._pass == epoch
                      else x.grad)
    for i in range(n):
        x = <Variable>touched[i]
        old[i] = x.grad
        x.grad = new[i]
    del old


cdef object _wanted_grad(Variable v, Py_ssize_t i, Variable cut, bint graph, size_t epoch):
    if v._acc is not None and v._pass == epoch:
        return _commit_grad(v._acc, graph)
    if cut is not None:
        raise ValueError(
            'grad: input {} (shape {}) is not reachable from the outputs: the graph '
            'was cut by unchain()/unchain_backward() at a variable of shape {}{}'.format(
                i, v.data.shape, cut.data.shape,
                '' if cut.name is None else " named '{}'".format(cut.name)))
    return None


def grad(outputs, inputs, grad_outputs=None, create_graph=False, retain_grad=False):
    """The gradients of ``outputs`` with respect to ``inputs``, returned as a
    list (one Variable or None per input) without reading or writing any
    ``.grad``. ``grad_outputs`` seeds each output (ones by default). With
    ``create_graph`` the result is differentiable again, so ``grad`` composes
    for higher orders and gradient penalties.
    """
    single = isinstance(inputs, Variable)
    outs = [outputs] if isinstance(outputs, Variable) else list(outputs)
    ins = [inputs] if single else list(inputs)
    for v in outs + ins:
        if not isinstance(v, Variable):
            raise TypeError('grad: outputs and inputs must be Variables, got {!r}'
                            .format(type(v)))
    for i, v in enumerate(ins):
        if v.data is not None and v.data.dtype.kind not in 'fc':
            raise TypeError('grad: input {} has dtype {} (shape {}); only floating-point '
                            'variables have gradients'.format(i, v.data.dtype, v.data.shape))
    if grad_outputs is None:
        seeds = [None] * len(outs)
    else:
        seeds = [grad_outputs] if isinstance(outputs, Variable) else list(grad_outputs)
        if len(seeds) != len(outs):
            raise ValueError('grad: {} grad_outputs for {} outputs'
                             .format(len(seeds), len(outs)))
    return _backward(outs, seeds, retain_grad, create_graph, ins)


# --------------------------------------------------------------------------
# Helpers whose array and Variable spellings differ
# --------------------------------------------------------------------------
cdef inline object _sum_to_like(object g, object x, bint graph):
    """g summed down to the shape of input x (a Variable or a constant)."""
    if _same_shape(g, x):
        return g
    return _sum_to_g(g, _shape_of(x), graph)


cdef inline object _neg_g(object g, bint graph):
    return -g if graph else _negate(g)


cdef object _sum_to_g(object g, tuple shape, bint graph):
    if _shape_of(g) == shape:
        return g
    return sum_to(g, shape) if graph else sum_to_array(g, shape)


cdef object _broadcast_g(object g, tuple shape, bint graph):
    if _shape_of(g) == shape:
        return g
    return broadcast_to(g, shape) if graph else np.broadcast_to(g, shape)


cdef inline object _times(object a, object b, bint graph):
    return a * b if graph else _arith(OP_MUL, a, b)


cdef object _matmul_g(object a, object b, bint graph):
    return matmul(a, b) if graph else a.dot(b)


# --------------------------------------------------------------------------
# Built-in operations
# --------------------------------------------------------------------------
# Each is a Function with a C-level _fwd/_bw; the Python-visible forward and
# backward methods are the same code, so DeZero-style calls like
# ``Mul().backward(gy)`` and Python subclasses keep working.

cdef void _check_arity(Function f, Py_ssize_t n) except *:
    cdef int k = f._arity()
    if k >= 0 and n != k:
        raise TypeError('{} takes {} input{}, got {}'.format(
            type(f).__name__, k, '' if k == 1 else 's', n))


cdef class _Builtin(Function):
    cdef int _arity(self):
        return 1

    def forward(self, *xs):
        _check_arity(self, len(xs))
        return self._fwd(xs)

    def backward(self, *gys):
        if len(gys) != 1:       # every built-in has one output
            raise TypeError('{}.backward takes 1 output gradient, got {}'
                            .format(type(self).__name__, len(gys)))
        return _unpack(self._bw(gys, True))


cdef object _unpack(tuple gxs):
    return gxs[0] if len(gxs) == 1 else gxs


cdef class Add(_Builtin):
    """y = x0 + x1;  gx0 = gy, gx1 = gy (summed back over broadcast axes)."""
    cdef int _arity(self):
        return 2

    cdef object _fwd(self, tuple xs):
        return _arith(OP_ADD, xs[0], xs[1])

    cdef tuple _bw(self, tuple gys, bint graph):
        gy = gys[0]
        gx0 = _sum_to_like(gy, self._in0, graph) if self._needs(0) else None
        gx1 = _sum_to_like(gy, self._in1, graph) if self._needs(1) else None
        return (gx0, gx1)


cdef class Sub(_Builtin):
    """y = x0 - x1;  gx0 = gy, gx1 = -gy."""
    cdef int _arity(self):
        return 2

    cdef object _fwd(self, tuple xs):
        return _arith(OP_SUB, xs[0], xs[1])

    cdef tuple _bw(self, tuple gys, bint graph):
        gy = gys[0]
        gx0 = _sum_to_like(gy, self._in0, graph) if self._needs(0) else None
        gx1 = _sum_to_like(_neg_g(gy, graph), self._in1, graph) if self._needs(1) else None
        return (gx0, gx1)


cdef class Mul(_Builtin):
    """y = x0 * x1;  gx0 = gy * x1, gx1 = gy * x0."""
    cdef int _arity(self):
        return 2

    cdef object _fwd(self, tuple xs):
        return _arith(OP_MUL, xs[0], xs[1])

    cdef tuple _bw(self, tuple gys, bint graph):
        gy = gys[0]
        x0 = self._x(0, graph)
        x1 = self._x(1, graph)
        gx0 = _sum_to_like(_times(gy, x1, graph), x0, graph) if self._needs(0) else None
        gx1 = _sum_to_like(_times(gy, x0, graph), x1, graph) if self._needs(1) else None
        return (gx0, gx1)


cdef class Div(_Builtin):
    """y = x0 / x1;  gx0 = gy / x1, gx1 = gy * (-x0 / x1**2)."""
    cdef int _arity(self):
        return 2

    cdef object _fwd(self, tuple xs):
        return _arith(OP_DIV, xs[0], xs[1])

    cdef tuple _bw(self, tuple gys, bint graph):
        gy = gys[0]
        x0 = self._x(0, graph)
        x1 = self._x(1, graph)
        gx0 = _sum_to_g(gy / x1, _shape_of(x0), graph) if self._needs(0) else None
        gx1 = (_sum_to_g(gy * (-x0 / x1 ** 2), _shape_of(x1), graph)
               if self._needs(1) else None)
        return (gx0, gx1)


cdef class Neg(_Builtin):
    """y = -x;  gx = -gy."""
    cdef object _fwd(self, tuple xs):
        return _negate(xs[0])

    cdef tuple _bw(self, tuple gys, bint graph):
        return (_neg_g(gys[0], graph),)


cdef class Pow(_Builtin):
    """y = x ** c for a constant c;  gx = c * x ** (c - 1) * gy."""
    cdef public object c

    def __init__(self, c):
        if isinstance(c, Variable):
            raise TypeError('Pow: the exponent must be a constant (a number or an array), '
                            'got a Variable of shape {}'.format((<Variable>c).data.shape
                                                                if (<Variable>c).data is not None
                                                                else None))
        self.c = c

    cdef object _fwd(self, tuple xs):
        cdef double v
        x = xs[0]
        if (_is_two(self.c) and type(x) is ndarray and _scalar_f64(x, &v)
                and _plain(v * v, v == 0.0)):
            return _new_f64(v * v)     # what NumPy's x ** 2 computes
        return x ** self.c

    cdef tuple _bw(self, tuple gys, bint graph):
        cdef double v, g, r
        c = self.c
        x = self._x(0, graph)
        gy = gys[0]
        if (not graph and _is_two(c) and type(x) is ndarray and type(gy) is ndarray
                and _scalar_f64(x, &v) and _scalar_f64(gy, &g)):
            r = (2.0 * v) * g
            if _plain(r, v == 0.0 or g == 0.0):
                return (_new_f64(r),)
        return (c * x ** (c - 1) * gy,)


cdef inline bint _is_two(object c):
    return (type(c) is int or type(c) is float) and c == 2


cdef class Sin(_Builtin):
    """y = sin(x);  gx = gy * cos(x)."""
    cdef object _fwd(self, tuple xs):
        return np.sin(xs[0])

    cdef tuple _bw(self, tuple gys, bint graph):
        x = self._x(0, graph)
        return (gys[0] * (cos(x) if graph else np.cos(x)),)


cdef class Cos(_Builtin):
    """y = cos(x);  gx = gy * -sin(x)."""
    cdef object _fwd(self, tuple xs):
        return np.cos(xs[0])

    cdef tuple _bw(self, tuple gys, bint graph):
        x = self._x(0, graph)
        return (gys[0] * -(sin(x) if graph else np.sin(x)),)


cdef class Tanh(_Builtin):
    """y = tanh(x);  gx = gy * (1 - y * y)."""
    cdef object _fwd(self, tuple xs):
        return np.tanh(xs[0])

    cdef tuple _bw(self, tuple gys, bint graph):
        y = self._y(graph)
        return (gys[0] * (1 - y * y),)


cdef class Exp(_Builtin):
    """y = exp(x);  gx = gy * y."""
    cdef object _fwd(self, tuple xs):
        return np.exp(xs[0])

    cdef tuple _bw(self, tuple gys, bint graph):
        return (gys[0] * self._y(graph),)


cdef class Log(_Builtin):
    """y = log(x);  gx = gy / x."""
    cdef object _fwd(self, tuple xs):
        return np.log(xs[0])

    cdef tuple _bw(self, tuple gys, bint graph):
        return (gys[0] / self._x(0, graph),)


cdef class Reshape(_Builtin):
    """y = x.reshape(shape);  gx = gy.reshape(x.shape)."""
    cdef public object shape

    def __init__(self, shape):
        self.shape = shape

    cdef object _fwd(self, tuple xs):
        return xs[0].reshape(self.shape)

    cdef tuple _bw(self, tuple gys, bint graph):
        return (gys[0].reshape(_shape_of(self._in0)),)


cdef class Transpose(_Builtin):
    """y = x.transpose(axes);  gx = gy transposed by the inverse permutation."""
    cdef public object axes

    def __init__(self, axes=None):
        self.axes = axes

    cdef object _fwd(self, tuple xs):
        return xs[0].transpose(self.axes)

    cdef tuple _bw(self, tuple gys, bint graph):
        if self.axes is None:
            return (gys[0].transpose(None),)
        n = len(self.axes)
        inv = tuple(np.argsort([ax % n for ax in self.axes]).tolist())
        return (gys[0].transpose(inv),)


cdef class Sum(_Builtin):
    """y = x.sum(axis, keepdims);  gx = gy broadcast back to x.shape."""
    cdef public object axis
    cdef public object keepdims

    def __init__(self, axis, keepdims):
        self.axis = axis
        self.keepdims = keepdims

    cdef object _fwd(self, tuple xs):
        return xs[0].sum(axis=self.axis, keepdims=self.keepdims)

    cdef tuple _bw(self, tuple gys, bint graph):
        x_shape = _shape_of(self._in0)
        gy = reshape_sum_backward(gys[0], x_shape, self.axis, self.keepdims)
        return (_broadcast_g(gy, x_shape, graph),)


cdef class SumTo(_Builtin):
    """y = sum_to(x, shape);  gx = broadcast_to(gy, x.shape)."""
    cdef public object shape

    def __init__(self, shape):
        self.shape = tuple(shape)

    cdef object _fwd(self, tuple xs):
        return sum_to_array(xs[0], self.shape)

    cdef tuple _bw(self, tuple gys, bint graph):
        return (_broadcast_g(gys[0], _shape_of(self._in0), graph),)


cdef class BroadcastTo(_Builtin):
    """y = broadcast_to(x, shape);  gx = sum_to(gy, x.shape)."""
    cdef public object shape

    def __init__(self, shape):
        self.shape = tuple(shape)

    cdef object _fwd(self, tuple xs):
        return np.broadcast_to(xs[0], self.shape)

    cdef tuple _bw(self, tuple gys, bint graph):
        return (_sum_to_g(gys[0], _shape_of(self._in0), graph),)


cdef class MatMul(_Builtin):
    """y = x @ W;  gx = gy @ W.T, gW = x.T @ gy."""
    cdef int _arity(self):
        return 2

    cdef object _fwd(self, tuple xs):
        return xs[0].dot(xs[1])

    cdef tuple _bw(self, tuple gys, bint graph):
        return _matmul_bw(self, gys[0], graph)


cdef tuple _matmul_bw(Function f, object gy, bint graph):
    """(gx, gW) = (gy @ W.T, x.T @ gy) for f's inputs x, W: MatMul's
    backward, and Linear's apart from the bias."""
    x = f._x(0, graph)
    W = f._x(1, graph)
    gx = _matmul_g(gy, W.T, graph) if f._needs(0) else None
    gW = _matmul_g(x.T, gy, graph) if f._needs(1) else None
    return (gx, gW)


include "_sum_order.pxi"   # which order NumPy sums in, for the fast paths below


# The layers' workhorses: written here rather than in Python so that a small
# network's step is not dominated by wrapping every intermediate gradient.
#
# Each also has a fast path for float32 and float64 arrays in C order (the
# usual case), all operands of one type: the arithmetic runs in _kernels'
# loops on the buffers, in that type, with one result array per result
# instead of a NumPy call per operator. The results are NumPy's bit for bit,
# except that a small matrix product may round differently from the BLAS.
# Anything else (mixed or other dtypes, views, broadcasting, CuPy, a recorded
# backward under create_graph) takes the NumPy spelling next to it.

# Matrix products with at most this many multiply-adds run in _kernels.matmul;
# above it the BLAS is faster despite the call (measured in bench/kernels.py).
cdef enum:
    _SMALL_MATMUL = 4096


cdef inline int _fast_type(object a):
    """NPY_FLOAT or NPY_DOUBLE when a is a NumPy array of that type in C
    order, aligned and in native byte order (a plain buffer); else -1."""
    cdef int t
    if type(a) is not ndarray:
        return -1
    t = cnp.PyArray_TYPE(<cnp.ndarray>a)
    if ((t == cnp.NPY_DOUBLE or t == cnp.NPY_FLOAT)
            and cnp.PyArray_ISCARRAY_RO(<cnp.ndarray>a)
            and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a)):
        return t
    return -1


cdef inline int _fast_type2(object a, object b):
    """The common _fast_type of a and b, or -1."""
    cdef int t = _fast_type(a)
    return t if t >= 0 and _fast_type(b) == t else -1


cdef inline void* _data(object a):
    return cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline cnp.npy_intp _dim(object a, int i):
    return cnp.PyArray_DIMS(<cnp.ndarray>a)[i]


cdef inline int _ndim(object a):
    return cnp.PyArray_NDIM(<cnp.ndarray>a)


# The fast paths' results come from a small pool of arrays: making and
# freeing an ndarray costs about 0.2 us, as much as the arithmetic of a
# 100x10 operation, and a training step makes the same shapes over and over.
# An array in the pool is handed out again only when the pool's reference
# is the last one (nobody can see it any more) and it is still a writeable
# C-ordered array of the type and shape asked for, with no weak reference to
# it. Only arrays of at most _POOL_BYTES are kept, so the pool holds at most
# _POOL * _POOL_BYTES (2 MiB) beyond what the program holds itself.
cdef enum:
    _POOL = 32
    _POOL_BYTES = 65536

cdef PyObject* _pool[_POOL]
cdef int _pool_next = 0

cdef extern from *:
    """
    static int cdz_has_weakrefs(PyObject* o) {
        Py_ssize_t off = Py_TYPE(o)->tp_weaklistoffset;
        return off > 0 && *(PyObject**)((char*)o + off) != NULL;
    }
    """
    bint _has_weakrefs "cdz_has_weakrefs" (PyObject* o)


cdef inline bint _reusable(PyObject* p, int t, int nd, cnp.npy_intp* dims):
    cdef cnp.ndarray a
    cdef cnp.npy_intp* d
    cdef int i
    if _refcnt(p) != 1:     # checked before `a` takes a reference of its own
        return False
    a = <cnp.ndarray>p
    if (cnp.PyArray_NDIM(a) != nd or cnp.PyArray_TYPE(a) != t
            or not cnp.PyArray_ISCARRAY(a) or not cnp.PyArray_ISNOTSWAPPED(a)
            or _has_weakrefs(p)):
        return False
    d = cnp.PyArray_DIMS(a)
    for i in range(nd):
        if d[i] != dims[i]:
            return False
    return True


cdef object _new_array(int t, int nd, cnp.npy_intp* dims):
    """An uninitialised C-ordered array of type t (every caller writes all
    of it), from the pool when one fits."""
    global _pool_next
    cdef cnp.npy_intp nbytes = sizeof(double) if t == cnp.NPY_DOUBLE else sizeof(float)
    cdef int i
    cdef PyObject* p
    for i in range(nd):
        nbytes *= dims[i]
    if nbytes > _POOL_BYTES:
        return cnp.PyArray_EMPTY(nd, dims, t, 0)
    for i in range(_POOL):
        p = _pool[i]
        if p != NULL and _reusable(p, t, nd, dims):
            return <object>p
    a = cnp.PyArray_EMPTY(nd, dims, t, 0)
    p = _pool[_pool_next]
    Py_INCREF(a)
    _pool[_pool_next] = <PyObject*>a
    _pool_next = (_pool_next + 1) % _POOL
    if p != NULL:
        Py_DECREF(<object>p)
    return a


cdef object _scalar_array(int t, double v):
    """A 0-d array of type t holding v, from the pool (a loss, a seed)."""
    a = _new_array(t, 0, NULL)
    if t == cnp.NPY_DOUBLE:
        (<double*>_data(a))[0] = v
    else:
        (<float*>_data(a))[0] = <float>v
    return a


cdef inline object _empty_like(object a):
    return _new_array(cnp.PyArray_TYPE(<cnp.ndarray>a), _ndim(a),
                      cnp.PyArray_DIMS(<cnp.ndarray>a))


cdef inline object _empty2(int t, cnp.npy_intp m, cnp.npy_intp n):
    cdef cnp.npy_intp dims[2]
    dims[0] = m
    dims[1] = n
    return _new_array(t, 2, dims)


cdef inline int _small_matrices(object x, object W):
    """The common fast type of x (M x K) and W (K x N) when both are
    matrices small enough for _kernels.matmul, none of M, K, N zero; else -1."""
    cdef int t = _fast_type2(x, W)
    if t < 0 or _ndim(x) != 2 or _ndim(W) != 2:
        return -1
    cdef cnp.npy_intp M = _dim(x, 0), K = _dim(x, 1), N = _dim(W, 1)
    if (K == _dim(W, 0) and M > 0 and K > 0 and N > 0
            and M * K <= _SMALL_MATMUL and M * K * N <= _SMALL_MATMUL):
        return t
    return -1


# The fast paths' arithmetic, written once for float and double: the type of
# the first pointer picks the version, the other buffers are read as the same.

cdef void _linear_fwd(_kernels.real* y, object x, object W, object b) noexcept:
    _kernels.matmul(_dim(x, 0), _dim(x, 1), _dim(W, 1),
                    <_kernels.real*>_data(x), _dim(x, 1), 1,
                    <_kernels.real*>_data(W), _dim(W, 1), 1,
                    NULL if b is None else <_kernels.real*>_data(b), y)


cdef void _linear_bw(_kernels.real* g, object x, object W,
                     object gx, object gW, object gb, Py_ssize_t chunk) noexcept:
    # g: the buffer of gy; chunk: _sum_chunk() (read when N == 1)
    cdef cnp.npy_intp M = _dim(x, 0), K = _dim(x, 1), N = _dim(W, 1)
    cdef _kernels.real* b
    if gb is not None:
        b = <_kernels.real*>_data(gb)
        if N == 1:   # NumPy reduces a single column pairwise
            b[0] = _kernels.numpy_sum(g, M, chunk)
        else:
            _kernels.column_sums(M, N, g, b)
    if gx is not None:      # gy @ W.T
        _kernels.matmul(M, N, K, g, N, 1, <_kernels.real*>_data(W), 1, N, NULL,
                        <_kernels.real*>_data(gx))
    if gW is not None:      # x.T @ gy
        _kernels.matmul(K, M, N, <_kernels.real*>_data(x), 1, K, g, N, 1, NULL,
                        <_kernels.real*>_data(gW))


cdef void _halve(_kernels.real* y, object x) noexcept:
    """y = x * 0.5, elementwise over x's buffer."""
    cdef const _kernels.real* q = <_kernels.real*>_data(x)
    cdef cnp.npy_intp i
    for i in range(cnp.PyArray_SIZE(<cnp.ndarray>x)):
        y[i] = q[i] * <_kernels.real>0.5


cdef void _halve_add_half(_kernels.real* y, cnp.npy_intp n) noexcept:
    """y = y * 0.5 + 0.5, in place."""
    cdef cnp.npy_intp i
    for i in range(n):
        y[i] = y[i] * <_kernels.real>0.5 + <_kernels.real>0.5


cdef void _sigmoid_bw(_kernels.real* g, object gy, object y) noexcept:
    cdef const _kernels.real* a = <_kernels.real*>_data(gy)
    cdef const _kernels.real* b = <_kernels.real*>_data(y)
    cdef cnp.npy_intp i
    for i in range(cnp.PyArray_SIZE(<cnp.ndarray>y)):
        g[i] = a[i] * b[i] * (<_kernels.real>1 - b[i])


cdef double _mse_fwd(_kernels.real* a, object x1, cnp.npy_intp n,
                     cnp.npy_intp length, Py_ssize_t chunk) noexcept:
    # sum / length, both in the arrays' type, as NumPy computes it
    return (_kernels.numpy_sum_sq_diff(a, <_kernels.real*>_data(x1), n, chunk)
            / <_kernels.real>length)


cdef void _mse_bw(_kernels.real* a, object x1, object gy, object gx0, object gx1,
                  cnp.npy_intp n, cnp.npy_intp length) noexcept:
    # gy * (x0 - x1) * (2 / length): 2 / length is a Python float, which
    # NumPy rounds to the arrays' type first
    cdef const _kernels.real* b = <_kernels.real*>_data(x1)
    cdef _kernels.real g = (<_kernels.real*>_data(gy))[0]
    cdef _kernels.real k = <_kernels.real>(2. / length)
    cdef _kernels.real* p0 = NULL if gx0 is None else <_kernels.real*>_data(gx0)
    cdef _kernels.real* p1 = NULL if gx1 is None else <_kernels.real*>_data(gx1)
    cdef _kernels.real d
    cdef cnp.npy_intp i
    for i in range(n):
        d = g * (a[i] - b[i]) * k
        if p0 != NULL:
            p0[i] = d
        if p1 != NULL:
            p1[i] = -d


cdef class Linear(_Builtin):
    """y = x @ W + b;  gx = gy @ W.T, gW = x.T @ gy, gb = sum_to(gy, b.shape).
    b may be None (no bias)."""
    cdef int _arity(self):
        return -1   # x, W and, optionally, b

    cdef object _fwd(self, tuple xs):
        if not 2 <= len(xs) <= 3:
            raise TypeError('Linear: takes 2 or 3 inputs (x, W, b), got {}'.format(len(xs)))
        x, W = xs[0], xs[1]
        b = xs[2] if len(xs) > 2 else None
        cdef int t = _small_matrices(x, W)
        if t >= 0 and (b is None or (
                _fast_type(b) == t and _ndim(b) == 1 and _dim(b, 0) == _dim(W, 1))):
            y = _empty2(t, _dim(x, 0), _dim(W, 1))
            feclearexcept(_FP_FLAGS)
            if t == cnp.NPY_DOUBLE:
                _linear_fwd(<double*>_data(y), x, W, b)
            else:
                _linear_fwd(<float*>_data(y), x, W, b)
            if not fetestexcept(_FP_FLAGS):
                return y
        y = x.dot(W)
        if b is not None:
            y += b
        return y

    cdef tuple _bw(self, tuple gys, bint graph):
        gy = gys[0]
        if not graph:
            gxs = self._bw_small(gy)
            if gxs is not None:
                return gxs
        gxW = _matmul_bw(self, gy, graph)
        if self._nin == 2:
            return gxW
        gb = _sum_to_like(gy, self._inp(2), graph) if self._needs(2) else None
        return gxW + (gb,)

    cdef tuple _bw_small(self, object gy):
        """The backward on plain buffers, or None where it does not apply."""
        # First: on NumPy 2.0-2.2 it may run Python code (np.getbufsize).
        cdef Py_ssize_t chunk = _sum_chunk()
        x = self._x(0, False)
        W = self._x(1, False)
        b = self._x(2, False) if self._nin > 2 else None
        cdef int t = _small_matrices(x, W)
        if not (t >= 0 and _fast_type(gy) == t and _ndim(gy) == 2
                and _dim(gy, 0) == _dim(x, 0) and _dim(gy, 1) == _dim(W, 1)):
            return None
        cdef cnp.npy_intp N = _dim(W, 1)
        gx = gW = gb = None
        if self._needs(2):
            if not (_fast_type(b) == t and _ndim(b) == 1 and _dim(b, 0) == N):
                return None     # a bias that was broadcast: sum_to below
            if N == 1 and chunk == 0:
                return None     # NumPy sums in an order _kernels does not know
            gb = _new_array(t, 1, &N)
        if self._needs(0):
            gx = _empty2(t, _dim(x, 0), _dim(x, 1))
        if self._needs(1):
            gW = _empty2(t, _dim(x, 1), N)
        feclearexcept(_FP_FLAGS)
        if t == cnp.NPY_DOUBLE:
            _linear_bw(<double*>_data(gy), x, W, gx, gW, gb, chunk)
        else:
            _linear_bw(<float*>_data(gy), x, W, gx, gW, gb, chunk)
        if fetestexcept(_FP_FLAGS):
            return None
        return (gx, gW) if self._nin == 2 else (gx, gW, gb)


cdef class Sigmoid(_Builtin):
    """y = 1 / (1 + exp(-x)), computed as tanh(x / 2) / 2 + 1 / 2 (no
    overflow);  gx = gy * y * (1 - y)."""
    cdef object _fwd(self, tuple xs):
        x = xs[0]
        cdef int t = _fast_type(x)
        if t >= 0:
            # tanh(x * 0.5) * 0.5 + 0.5 in one buffer; the tanh is np.tanh's
            # own (called through the ufunc: its inner loops are not public
            # API, and NumPy 2.5 no longer declares them to Cython).
            y = _empty_like(x)
            feclearexcept(_FP_FLAGS)
            if t == cnp.NPY_DOUBLE:
                _halve(<double*>_data(y), x)
            else:
                _halve(<float*>_data(y), x)
            if not fetestexcept(_FP_FLAGS):
                np.tanh(y, out=y)
                feclearexcept(_FP_FLAGS)
                if t == cnp.NPY_DOUBLE:
                    _halve_add_half(<double*>_data(y), cnp.PyArray_SIZE(<cnp.ndarray>y))
                else:
                    _halve_add_half(<float*>_data(y), cnp.PyArray_SIZE(<cnp.ndarray>y))
                if not fetestexcept(_FP_FLAGS):
                    return y
        return np.tanh(x * 0.5) * 0.5 + 0.5

    cdef tuple _bw(self, tuple gys, bint graph):
        y = self._y(graph)
        gy = gys[0]
        cdef int t
        if not graph:
            t = _fast_type2(gy, y)
            if t >= 0 and _same_shape(gy, y):
                gx = _empty_like(y)
                feclearexcept(_FP_FLAGS)
                if t == cnp.NPY_DOUBLE:
                    _sigmoid_bw(<double*>_data(gx), gy, y)
                else:
                    _sigmoid_bw(<float*>_data(gx), gy, y)
                if not fetestexcept(_FP_FLAGS):
                    return (gx,)
        return (gy * y * (1 - y),)


cdef class ReLU(_Builtin):
    """y = max(x, 0);  gx = gy * [x > 0]."""
    cdef object _fwd(self, tuple xs):
        return np.maximum(xs[0], 0.0)

    cdef tuple _bw(self, tuple gys, bint graph):
        return (gys[0] * (self._x(0, False) > 0),)


cdef inline int _same_fast_type(object a, object b):
    """The common fast type of two arrays of one shape, not 0-d nor empty;
    else -1."""
    cdef int t = _fast_type2(a, b)
    if t >= 0 and _ndim(a) > 0 and _same_shape(a, b) and cnp.PyArray_SIZE(<cnp.ndarray>a) > 0:
        return t
    return -1


cdef class MeanSquaredError(_Builtin):
    """y = sum((x0 - x1) ** 2) / N with N = len(x0 - x1);
    gx0 = gy * 2 (x0 - x1) / N, gx1 = -gx0 (each summed back to its input's
    shape when the two were broadcast)."""
    cdef int _arity(self):
        return 2

    cdef object _fwd(self, tuple xs):
        x0, x1 = xs[0], xs[1]
        # First: on NumPy 2.0-2.2 it may run Python code (np.getbufsize).
        cdef Py_ssize_t chunk = _sum_chunk()
        cdef int t = _same_fast_type(x0, x1) if chunk > 0 else -1
        cdef cnp.npy_intp n
        if t >= 0:
            n = cnp.PyArray_SIZE(<cnp.ndarray>x0)
            feclearexcept(_FP_FLAGS)
            if t == cnp.NPY_DOUBLE:
                y = _scalar_array(t, _mse_fwd(<double*>_data(x0), x1, n, _dim(x0, 0), chunk))
            else:
                y = _scalar_array(t, _mse_fwd(<float*>_data(x0), x1, n, _dim(x0, 0), chunk))
            if not fetestexcept(_FP_FLAGS):
                return y
        diff = x0 - x1
        return (diff ** 2).sum() / len(diff)

    cdef tuple _bw(self, tuple gys, bint graph):
        cdef int t
        cdef cnp.npy_intp n
        gy = gys[0]
        if not graph:
            x0 = self._x(0, False)
            x1 = self._x(1, False)
            t = _same_fast_type(x0, x1)
            if t >= 0 and _fast_type(gy) == t and _ndim(gy) == 0:
                n = cnp.PyArray_SIZE(<cnp.ndarray>x0)
                gx0 = _empty_like(x0) if self._needs(0) else None
                gx1 = _empty_like(x0) if self._needs(1) else None
                feclearexcept(_FP_FLAGS)
                if t == cnp.NPY_DOUBLE:
                    _mse_bw(<double*>_data(x0), x1, gy, gx0, gx1, n, _dim(x0, 0))
                else:
                    _mse_bw(<float*>_data(x0), x1, gy, gx0, gx1, n, _dim(x0, 0))
                if not fetestexcept(_FP_FLAGS):
                    return (gx0, gx1)
        diff = self._x(0, graph) - self._x(1, graph)
        # On arrays, NumPy broadcasts gy in the product itself (same values);
        # a recorded graph needs the explicit BroadcastTo.
        gy = _broadcast_g(gy, _shape_of(diff), graph) if graph else gy
        g = gy * diff * (2. / len(diff))
        gx0 = _sum_to_like(g, self._in0, graph) if self._needs(0) else None
        gx1 = _sum_to_like(_neg_g(g, graph), self._in1, graph) if self._needs(1) else None
        return (gx0, gx1)


cdef inline bint _basic_index(object k):
    return (k is None or k is Ellipsis or type(k) is slice
            or (isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_))))


cdef bint _basic_indexing(object slices):
    """Whether x[slices] is basic indexing (ints, slices, ..., None): it
    then selects each element at most once."""
    if type(slices) is tuple:
        return all([_basic_index(k) for k in slices])
    return _basic_index(slices)


# np.add.at crashes the interpreter on arrays of more than this many
# dimensions (its iterator's limit before NumPy 2 raised it to 64).
cdef enum:
    _ADD_AT_MAX_NDIM = 32


cdef object _scatter_add(object gy, object slices, object in_shape):
    """Zeros of in_shape with gy added at slices (repeated indices add up)."""
    if _is_gpu_array(gy):
        import cupyx
        gx = sys.modules['cupy'].zeros(in_shape, dtype=gy.dtype)
        cupyx.scatter_add(gx, slices, gy)
        return gx
    gx = np.zeros(in_shape, dtype=gy.dtype)
    if _basic_indexing(slices):
        gx[slices] += gy    # no element twice: np.add.at's result, without it
    elif gx.ndim > _ADD_AT_MAX_NDIM:
        raise ValueError(
            'get_item: the gradient of indexing an array of {} dimensions with index '
            'arrays is not supported (more than {}: np.add.at would crash)'.format(
                gx.ndim, <int>_ADD_AT_MAX_NDIM))
    else:
        np.add.at(gx, slices, gy)
    return gx


cdef class GetItem(_Builtin):
    """y = x[slices];  gx = zeros like x with gy added at slices."""
    cdef public object slices

    def __init__(self, slices):
        self.slices = slices

    cdef object _fwd(self, tuple xs):
        return xs[0][self.slices]

    cdef tuple _bw(self, tuple gys, bint graph):
        in_shape = _shape_of(self._in0)
        if graph:
            return (_apply1(GetItemGrad(self.slices, in_shape), gys[0]),)
        return (_scatter_add(gys[0], self.slices, in_shape),)


cdef class GetItemGrad(_Builtin):
    """The backward of GetItem as a Function: y = scatter-add of gy;
    its own backward is get_item(ggx, slices)."""
    cdef public object slices
    cdef public object in_shape

    def __init__(self, slices, in_shape):
        self.slices = slices
        self.in_shape = in_shape

    cdef object _fwd(self, tuple xs):
        return _scatter_add(xs[0], self.slices, self.in_shape)

    cdef tuple _bw(self, tuple gys, bint graph):
        if graph:
            return (get_item(gys[0], self.slices),)
        return (gys[0][self.slices],)


cdef class Max(_Builtin):
    """y = x.max(axis, keepdims);  gx = gy where x equals the maximum, else 0."""
    cdef public object axis
    cdef public object keepdims

    def __init__(self, axis=None, keepdims=False):
        self.axis = axis
        self.keepdims = keepdims

    cdef object _fwd(self, tuple xs):
        return xs[0].max(axis=self.axis, keepdims=self.keepdims)

    cdef tuple _bw(self, tuple gys, bint graph):
        x_obj = self._in0
        xd = (<Variable>x_obj).data if isinstance(x_obj, Variable) else x_obj
        shape = tuple(max_backward_shape(xd, self.axis))
        gy = gys[0].reshape(shape)
        cond = xd == (<Variable>self._y(True)).data.reshape(shape)
        return (_broadcast_g(gy, cond.shape, graph) * cond,)


cdef class Min(Max):
    """y = x.min(axis, keepdims);  gx = gy where x equals the minimum, else 0."""
    cdef object _fwd(self, tuple xs):
        return xs[0].min(axis=self.axis, keepdims=self.keepdims)


# --------------------------------------------------------------------------
# The functions users call
# --------------------------------------------------------------------------
def add(x0, x1):
    return _apply2(Add.__new__(Add), x0, x1)


def sub(x0, x1):
    return _apply2(Sub.__new__(Sub), x0, x1)


def rsub(x0, x1):
    """x1 - x0 (the reflected form: ``x0`` is the Variable on the right)."""
    return _apply2(Sub.__new__(Sub), x1, x0)


def mul(x0, x1):
    return _apply2(Mul.__new__(Mul), x0, x1)


def div(x0, x1):
    return _apply2(Div.__new__(Div), x0, x1)


def rdiv(x0, x1):
    """x1 / x0 (the reflected form: ``x0`` is the Variable on the right)."""
    return _apply2(Div.__new__(Div), x1, x0)


def neg(x):
    return _apply1(Neg.__new__(Neg), x)


def pow(x, c):
    return _apply1(Pow(c), x)


def sin(x):
    return _apply1(Sin.__new__(Sin), x)


def cos(x):
    return _apply1(Cos.__new__(Cos), x)


def tanh(x):
    return _apply1(Tanh.__new__(Tanh), x)


def exp(x):
    return _apply1(Exp.__new__(Exp), x)


def log(x):
    return _apply1(Log.__new__(Log), x)


def reshape(x, shape):
    if _shape_of(x) == shape:
        return as_variable(x)
    return _apply1(Reshape(shape), x)


def transpose(x, axes=None):
    return _apply1(Transpose(axes), x)


def sum(x, axis=None, keepdims=False):
    return _apply1(Sum(axis, keepdims), x)


def sum_to(x, shape):
    """Sum x down to shape, differentiably (``utils.sum_to`` is
    ``sum_to_array``, the same on plain arrays)."""
    if _shape_of(x) == tuple(shape):
        return as_variable(x)
    return _apply1(SumTo(shape), x)


def broadcast_to(x, shape):
    if _shape_of(x) == tuple(shape):
        return as_variable(x)
    return _apply1(BroadcastTo(shape), x)


def matmul(x, W):
    return _apply2(MatMul.__new__(MatMul), x, W)


def linear(x, W, b=None):
    # b=None stays an input, as in DeZero (f.inputs and DOT graphs show it).
    return _apply(Linear.__new__(Linear), (x, W, b))


def sigmoid(x):
    return _apply1(Sigmoid.__new__(Sigmoid), x)


def relu(x):
    return _apply1(ReLU.__new__(ReLU), x)


def mean_squared_error(x0, x1):
    return _apply2(MeanSquaredError.__new__(MeanSquaredError), x0, x1)


def get_item(x, slices):
    return _apply1(GetItem(slices), x)


def max(x, axis=None, keepdims=False):
    return _apply1(Max(axis, keepdims), x)


def min(x, axis=None, keepdims=False):
    return _apply1(Min(axis, keepdims), x)
