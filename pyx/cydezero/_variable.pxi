# Variable and Parameter: the data, the gradient, the creator, the
# generation; operators, copy and pickle, and the attribute table.
# Part of the _core module (included by _core.pyx).

cimport cython
from cpython.object cimport PyObject, PyTypeObject, traverseproc

cdef inline Variable _new_var(object data):
    # Skips __init__'s type check: the engine only wraps arrays it made.
    cdef Variable v = Variable.__new__(Variable)
    _hold(v, data)
    return v


cdef inline Variable _new_const(object data):
    cdef Variable v = _new_var(data)
    v._needs_no_grad = True
    return v


@cython.trashcan(True)
@cython.no_gc_clear
@cython.auto_pickle(False)      # see __reduce__
cdef class Variable:
    """Variable(data, name=None, *, requires_grad=None)
--

    A node holding an array, its gradient and the function that made it.

    ``creator`` is the Function whose output this is (None for a leaf), and
    ``generation`` is one more than the creator's, which is what orders the
    backward pass.
    """
    # Lets `ndarray + Variable` reach Variable.__radd__.
    __array_priority__ = 200

    def __init__(self, data, name=None, *, requires_grad=None):
        if data is not None and not _is_array(data):
            raise TypeError('{} is not supported'.format(type(data)))
        self._data = data
        self.name = name
        if requires_grad is not None:
            self.requires_grad = requires_grad

    @property
    def data(self):
        """The array this variable holds."""
        return _vd(self)

    # grad is a read-only member descriptor, for fast reads (see
    # _use_member_descriptors), and data a read-only property; writing
    # them comes here, and deleting one empties it, as a Cython property's
    # deleter does. The engine never meets an empty (NULL) field.
    def __setattr__(self, name, value):
        if name == 'data':
            self._data = value
        elif name == 'grad':
            self.grad = value
        else:
            _generic_setattr(self, name, <PyObject*>value)
        # What Python code stores may close a cycle: see _tracking.pxi.
        if type(value) is not ndarray and _is_gc(value):
            _track_graph(self)
            if isinstance(value, (Variable, Function)):
                _track_graph(value)

    def __delattr__(self, name):
        if name == 'data':
            self._data = None
        elif name == 'grad':
            self.grad = None
        else:
            _generic_setattr(self, name, NULL)

    def __dealloc__(self):
        if self._creator is not None:
            self._creator._unlink(<PyObject*>self)
        if self._hooked:
            _hooks.pop(<Py_ssize_t><void*>self, None)
        _keep_spare(<PyObject*>self._data)

    @property
    def requires_grad(self):
        """Whether backward computes a gradient for this variable (True
        unless set False). What is computed only from variables that need
        no gradient needs none either, and costs no backward work."""
        return not self._needs_no_grad

    @requires_grad.setter
    def requires_grad(self, value):
        d = _vd(self)
        if value and d is not None and d.dtype.kind not in 'fc':
            raise TypeError('requires_grad=True needs floating-point data, got dtype {} '
                            '(shape {})'.format(d.dtype, d.shape))
        self._needs_no_grad = not value

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
        cdef HookHandle handle = HookHandle(self, key)
        _hooks[key][handle._id] = hook
        self._hooked = True
        return handle

    # -- the array it holds ------------------------------------------------
    @property
    def shape(self):
        """The shape of ``data``."""
        return _vd(self).shape

    @property
    def ndim(self):
        """The number of dimensions of ``data``."""
        return _vd(self).ndim

    @property
    def size(self):
        """The number of elements of ``data``."""
        return _vd(self).size

    @property
    def dtype(self):
        """The dtype of ``data``."""
        return _vd(self).dtype

    def __len__(self):
        """The length of ``data``'s first axis."""
        return len(_vd(self))

    def __repr__(self):
        """variable(...) with the array printed as NumPy prints it."""
        d = _vd(self)
        if d is None:
            return 'variable(None)'
        p = str(d).replace('\n', '\n' + ' ' * 9)
        return 'variable(' + p + ')'

    # -- the graph ---------------------------------------------------------
    @property
    def creator(self):
        """The Function whose output this is; None for a leaf."""
        return _creator_of(self)

    @creator.setter
    def creator(self, Function func):
        if _is_fused(self):
            _unfuse(self)
            if func is None:
                self._op = _OP_CUT
                return
        if func is self._creator:
            return      # DeZero: setting the same creator again changes nothing
        if self._creator is not None:
            self._creator._unlink(<PyObject*>self)
            self._op = _OP_CUT if func is None else 0
        elif func is not None:
            self._op = 0
        self._creator = func
        if func is not None:        # func may reach back here
            _track_graph(self)

    def set_creator(self, Function func):
        """Record ``func`` as the creator; the generation becomes one more than func's."""
        self.creator = func
        self.generation = func.generation + 1

    def unchain(self):
        """Forget the creator: this variable becomes a leaf."""
        self.creator = None

    def cleargrad(self):
        """Forget the gradient (``grad`` becomes None) before a new backward pass."""
        self.grad = None

    # -- copy and pickle ---------------------------------------------------
    # What DeZero's Variable carries in its __dict__, and no more: a copy
    # must not share this variable's in-progress gradient buffer, its hooks
    # (keyed by address) or its place among its creator's outputs.
    def __reduce__(self):
        d = getattr(self, '__dict__', None)
        return (_new_of_type, (type(self),),
                (_vd(self), self.name, self.grad, _creator_of(self), self.generation,
                 bool(self._needs_no_grad), self._op == _OP_CUT, d or None))

    def __setstate__(self, state):
        if type(state) is not tuple or len(state) != 8:
            raise TypeError('Variable.__setstate__: expected the 8-tuple that '
                            '__reduce__ makes, got {!r}'.format(type(state)))
        data, name, grad, creator, generation, const, cut, d = state
        if creator is not None and not isinstance(creator, Function):
            raise TypeError('Variable.__setstate__: creator must be a Function or None, '
                            'got {!r}'.format(type(creator)))
        self._data = data
        self.name = name
        self.grad = grad
        if _is_fused(self):
            _unfuse(self)
        # A copy refers to the same creator but is not one of its outputs;
        # a live output given another state leaves its old creator's slot.
        if self._creator is not None and self._creator is not creator:
            self._creator._unlink(<PyObject*>self)
        self._creator = creator
        self.generation = generation
        self._needs_no_grad = bool(const)
        self._op = _OP_CUT if cut else 0
        if d:
            self.__dict__.update(d)

    def unchain_backward(self):
        """Cut every link behind this variable (iteratively: graphs are deep)."""
        cdef Variable v
        stack = [_inputs_of(self)]
        while stack:
            for x in stack.pop():
                if isinstance(x, Variable) and not _is_leaf(<Variable>x):
                    v = <Variable>x
                    stack.append(_inputs_of(v))     # before the cut drops them
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
        """This variable with a new shape: ``x.reshape(2, 3)`` or ``x.reshape((2, 3))``."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = shape[0]
        return reshape(self, shape)

    def transpose(self, *axes):
        """This variable with its axes permuted: ``x.transpose()``, ``x.transpose(1, 0)``."""
        if len(axes) == 0:
            axes = None
        elif len(axes) == 1 and (isinstance(axes[0], (tuple, list)) or axes[0] is None):
            axes = axes[0]
        return transpose(self, axes)

    @property
    def T(self):
        """The transpose, axes reversed."""
        return transpose(self)

    def sum(self, axis=None, keepdims=False):
        """The sum over ``axis`` (None: all axes), as ``functions.sum``."""
        return sum(self, axis, keepdims)

    def matmul(self, W):
        """The matrix product with ``W``, as ``functions.matmul``."""
        return matmul(self, W)

    def matmaul(self, W):
        """DeZero's own misspelling of ``matmul``, kept for code that uses it."""
        return matmul(self, W)

    def dot(self, W):
        """The matrix product with ``W`` (the same as ``matmul``)."""
        return matmul(self, W)

    def max(self, axis=None, keepdims=False):
        """The maximum over ``axis``, as ``functions.max``."""
        return max(self, axis, keepdims)

    def min(self, axis=None, keepdims=False):
        """The minimum over ``axis``, as ``functions.min``."""
        return min(self, axis, keepdims)

    def __getitem__(self, slices):
        """``x[slices]``, differentiable, as ``functions.get_item``."""
        return get_item(self, slices)

    def __add__(self, other):
        """self + other, recorded as an ``Add``."""
        return _op2(_OP_ADD, self, other)

    def __radd__(self, other):
        """other + self, recorded as an ``Add``."""
        return _op2(_OP_ADD, self, other)

    def __sub__(self, other):
        """self - other, recorded as a ``Sub``."""
        return _op2(_OP_SUB, self, other)

    def __rsub__(self, other):
        """other - self, recorded as a ``Sub``."""
        return _op2(_OP_SUB, other, self)

    def __mul__(self, other):
        """self * other, recorded as a ``Mul``."""
        return _op2(_OP_MUL, self, other)

    def __rmul__(self, other):
        """other * self, recorded as a ``Mul``."""
        return _op2(_OP_MUL, self, other)

    def __truediv__(self, other):
        """self / other, recorded as a ``Div``."""
        return _op2(_OP_DIV, self, other)

    def __rtruediv__(self, other):
        """other / self, recorded as a ``Div``."""
        return _op2(_OP_DIV, other, self)

    def __neg__(self):
        """-self, recorded as a ``Neg``."""
        return _op1(_OP_NEG, self)

    def __pow__(self, c, mod):
        """self ** c for a constant ``c``, recorded as a ``Pow``."""
        return pow(self, c)

    # -- devices -----------------------------------------------------------
    def to_cpu(self):
        """Move ``data`` to the CPU as a NumPy array (``grad`` stays, as in DeZero)."""
        if self._data is not None:
            from cydezero import cuda
            self._data = cuda.as_numpy(_vd(self))

    def to_gpu(self):
        """Move ``data`` to the GPU as a CuPy array (needs CuPy; ``grad`` stays)."""
        if self._data is not None:
            from cydezero import cuda
            self._data = cuda.as_cupy(_vd(self))


cdef class Parameter(Variable):
    """A Variable that a Layer registers as one of its parameters."""
    pass


def _new_of_type(cls):
    """An empty instance of a Variable or Function class, for unpickling
    and copy."""
    if not (isinstance(cls, type) and issubclass(cls, (Variable, Function))):
        raise TypeError('expected a Variable or Function class, got {!r}'.format(cls))
    return cls.__new__(cls)


# ``grad`` is read in every user loop (optimizers, training steps). Cython
# exposes public fields as properties, which the interpreter calls
# generically (about 45 ns a read); a member descriptor, what ``__slots__``
# makes, is a plain load the interpreter specializes (about 25 ns, as fast
# as an instance attribute). So the property is swapped for a read-only
# member descriptor on the same field: reads take the fast path, and writes
# go through Variable.__setattr__, so that no spelling (not even the
# descriptor's own __delete__) can empty the field. ``data`` stays a
# property: it makes a held number its array on first read.
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

cdef PyMemberDef _grad_member


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
    _grad_member.name = b'grad'
    _grad_member.doc = b'The gradient from the last backward pass (a Variable), or None.'
    _grad_member.offset = _field_offset(probe, 'grad')
    _grad_member.type = T_OBJECT_EX
    _grad_member.flags = READONLY
    (<dict><object>t.tp_dict)['grad'] = PyDescr_NewMember(t, &_grad_member)
    PyType_Modified(t)


_use_member_descriptors()


# A Variable has no tp_clear of Cython's (no_gc_clear): clearing _creator
# before __dealloc__ would leave a dangling output pointer in a creator that
# survives. But a cycle can now run through Variables alone (a fused
# Variable holds its inputs, and .grad, .name can close the loop), and the
# cycle collector frees a cycle only by clearing a member of it. This
# tp_clear drops what can close such a cycle and nothing the engine's
# invariants rest on: the fused inputs (the Variable becomes a leaf), .grad
# and .name, all states user code can make too.
cdef int _variable_clear(object o) except -1:
    cdef Variable v = <Variable>o
    # Held until v is consistent: releasing them may run Python code.
    held = (v._fin0, v._fin1, v.grad, v.name)
    if _is_fused(v):
        v._op = 0
    v._fin0 = v._fin1 = None
    v.grad = v.name = None
    return 0


# And a tp_traverse of its own, which visits what Cython's visits but calls
# the collector only for the fields that hold something other than None:
# most of a Variable's seven are None, and a graph that carries a .grad
# (create_graph) is tracked, so every collection traverses it; Cython's
# made seven calls a Variable (about 8% of higher_order's instructions).
# CPython's visitproc, whose result is a value to pass back, not an error code.
ctypedef int (*_visitproc)(PyObject*, void*) noexcept


cdef int _variable_traverse(object o, _visitproc visit, void* arg) noexcept:
    # Reads the fields as borrowed pointers: a traversal changes no count.
    # What a visit returns is passed back as it is: a value for whoever
    # traverses, not an error code.
    cdef int e
    e = _visit(<PyObject*>(<Variable>o)._data, visit, arg)
    if e == 0:
        e = _visit(<PyObject*>(<Variable>o).name, visit, arg)
    if e == 0:
        e = _visit(<PyObject*>(<Variable>o).grad, visit, arg)
    if e == 0:
        e = _visit(<PyObject*>(<Variable>o)._creator, visit, arg)
    if e == 0:
        e = _visit(<PyObject*>(<Variable>o)._fin0, visit, arg)
    if e == 0:
        e = _visit(<PyObject*>(<Variable>o)._fin1, visit, arg)
    if e == 0:
        e = _visit(<PyObject*>(<Variable>o)._acc, visit, arg)
    return e


cdef inline int _visit(PyObject* p, _visitproc visit, void* arg) noexcept:
    if p == NULL or p == <PyObject*>None or p == <PyObject*>_LAZY:
        return 0
    return visit(p, arg)


cdef void _use_variable_gc_slots() except *:
    for t in (Variable, Parameter):
        (<PyTypeObject*>t).tp_clear = _variable_clear
        (<PyTypeObject*>t).tp_traverse = <traverseproc>_variable_traverse
        PyType_Modified(<PyTypeObject*>t)


_use_variable_gc_slots()
