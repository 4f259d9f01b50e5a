# The node types of the graph engine. Their fields are declared here so that
# other compiled modules can cimport them and reach the fields without Python
# attribute lookups; the behaviour lives in _core.pyx.
from cpython.object cimport PyObject


cdef class Variable:
    # The value: an array, or _LAZY when it is one float64 number held in
    # _v, which Variable.data turns into a 0-d array on first read (see
    # _arrays.pxi). Read it through _vd() to get the array, through _val()
    # to compute with it.
    cdef object _data
    cdef public object name
    cdef public object grad
    cdef Function _creator
    # A scalar operation fused into its output (see _fused.pxi): its inputs,
    # held here instead of in a Function of its own. _op says which one.
    cdef object _fin0
    cdef object _fin1
    # The gradient being accumulated for this variable during one backward
    # pass (an array, or a Variable under create_graph); None otherwise.
    cdef object _acc
    # The pass that _acc belongs to (its epoch), so that a pass never adds
    # into, or reads, what another pass still in progress accumulates (a
    # hook that calls backward() again).
    cdef size_t _pass
    # The number, while _data is _LAZY. It takes the Variable from the
    # 112-byte allocation class (with the cycle collector's header) to the
    # 128-byte one, and saves a 32-byte object per number: the values are
    # half the objects of a scalar graph otherwise.
    cdef double _v
    # Memory per node matters (graphs of millions of nodes): the generation
    # and four one-byte flags share one word.
    cdef public int generation
    # _acc_owned: _acc is a buffer the engine allocated and nobody else
    # holds, so further gradients may be added into it in place.
    cdef unsigned char _acc_owned
    # _needs_no_grad: requires_grad is False: a constant the user
    # passed to a function, a variable marked so, or what only they made.
    cdef unsigned char _needs_no_grad
    # _hooked: has gradient hooks (kept in a side table, see register_hook).
    cdef unsigned char _hooked
    # _op: how this variable was made, when not by its _creator: 0 (a
    # leaf, or _creator's output), _OP_CUT (unchain()/unchain_backward()
    # removed its creator) or the fused operation (see _fused.pxi).
    cdef unsigned char _op
    cdef object __weakref__


cdef class Function:
    # Inputs as passed: Variables, or raw constants (arrays and scalars) for
    # the built-in operations, which turn them into Variables only on demand.
    # The first two sit in fields (no tuple per node); any more in _more.
    cdef object _in0
    cdef object _in1
    cdef tuple _more
    # What the inputs getter last showed for raw constants: (the inputs it
    # saw, the Variables it wrapped them in), so repeated reads give the same
    # objects while the engine keeps computing with the raw constants. Free
    # in memory: the object stays in the 112-byte allocation class.
    cdef tuple _shown
    # Borrowed pointers to the outputs. An output clears its slot when it dies,
    # which is what makes them weak without a weakref object per node.
    cdef PyObject** _outs
    cdef PyObject* _out1
    cdef public int generation
    cdef unsigned short _nout
    # The number of inputs, -1 while none are recorded.
    cdef short _nin
    # Which backward pass last scheduled this function (the "seen set").
    cdef size_t _mark
    cdef object __weakref__

    cdef object _fwd(self, tuple xs)
    cdef bint _f64_aware(self)
    cdef object _fwd2(self, object x0, object x1)
    # A built-in operation's backward: it has one output, and gy is that
    # output's gradient.
    cdef tuple _bw(self, object gy, bint graph)
    cdef object _py_fwd(self, tuple xs)
    cdef tuple _py_bw(self, tuple gys, bint graph)
    cdef int _arity(self)
    cdef object _inp(self, Py_ssize_t i)
    cdef void _set_inputs(self, tuple xs) except *
    cdef void _forget_inputs(self) noexcept
    cdef void _set_inputs12(self, Py_ssize_t n, object x0, object x1) noexcept
    cdef tuple _input_tuple(self)
    cdef object _x(self, Py_ssize_t i, bint graph)
    cdef object _xr(self, Py_ssize_t i, bint graph)
    cdef bint _needs(self, Py_ssize_t i)
    cdef object _y(self, bint graph)
    cdef object _yr(self, bint graph)
    cdef void _link(self, list outs) except *
    cdef void _link1(self, Variable out)
    cdef void _free_outs(self)
    cdef void _unlink(self, PyObject* v) noexcept
