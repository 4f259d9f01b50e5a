# Function: inputs, borrowed outputs, arity, and _apply, which runs a
# forward and records it (or not, under no_grad).
# Part of the _core module (included by _core.pyx).

cimport cython
from cpython.object cimport PyObject, PyObject_TypeCheck, PyTypeObject, Py_TYPE
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_New, PyTuple_SET_ITEM
from libc.stdlib cimport malloc, free

import weakref
from functools import partial

import numpy as np

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


cdef void _link_watched(Function f, list vs) except *:
    """Link vs (Variables, or None for an empty slot) as f's outputs. Only
    an output's creator is told when it dies (Variable.__dealloc__ clears
    its slot); any other output is watched by a weak reference."""
    cdef Py_ssize_t i, key = <Py_ssize_t><void*>f
    watch = [weakref.ref(o, partial(_foreign_output_died, key, i, id(o)))
             for i, o in enumerate(vs) if o is not None and (<Variable>o)._creator is not f]
    f._link(vs)
    if watch:
        _foreign_outs[key] = watch


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
        _forget_walk(self)

    def __call__(self, *inputs):
        return _apply(self, inputs)

    def forward(self, *xs):
        """Compute the outputs from the input arrays; a subclass defines it
        (return one array, or a tuple of them)."""
        raise NotImplementedError(
            '{}.forward is not implemented'.format(type(self).__name__))

    def backward(self, *gys):
        """The gradients of the inputs from those of the outputs; a subclass
        defines it (one gradient per input, None for an input that needs
        none). It receives Variables, as in DeZero."""
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
            self._forget_inputs()
        else:
            self._set_inputs(tuple([as_variable(x) for x in xs]))
            _track_graph(self)      # an input may reach back here

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
        for o in outs:
            if isinstance(o, weakref.ref):
                o = o()
            if not isinstance(o, Variable):
                raise TypeError('Function.outputs takes Variables or weak '
                                'references to them, got {!r}'.format(type(o)))
            vs.append(o)
        _link_watched(self, vs)

    # -- copy and pickle ---------------------------------------------------
    # DeZero's Function is a plain object, so copy.deepcopy copies a graph
    # (a model whose RNN layer holds its hidden state, say) and so does
    # pickle here. The state: the inputs as recorded, the generation, the
    # outputs (None for a dead one; held, so that a copy takes them along
    # and links them to the new Function), the operation's own parameters
    # (_state_names: Pow's c, Sum's axis, ...) and a Python subclass's
    # __dict__.
    _state_names = ()

    def __reduce__(self):
        cdef Py_ssize_t i
        ins = self._input_tuple() if self._nin >= 0 else None
        outs = [_live(self._outs[i]) for i in range(self._nout)]
        params = tuple([getattr(self, name) for name in type(self)._state_names])
        return (_new_of_type, (type(self),),
                (ins, self.generation, outs, params, getattr(self, '__dict__', None) or None))

    def __setstate__(self, state):
        name = type(self).__name__
        if type(state) is not tuple or len(state) != 5:
            raise TypeError('{}.__setstate__: expected the 5-tuple that __reduce__ makes, '
                            'got {!r}'.format(name, type(state)))
        ins, generation, outs, params, d = state
        names = type(self)._state_names
        if type(params) is not tuple or len(params) != len(names):
            raise TypeError('{}.__setstate__: expected {} parameters ({}), got {!r}'
                            .format(name, len(names), ', '.join(names), params))
        if ins is not None and type(ins) is not tuple:
            raise TypeError('{}.__setstate__: inputs must be a tuple or None, got {!r}'
                            .format(name, type(ins)))
        if outs is not None and type(outs) is not list:
            raise TypeError('{}.__setstate__: outputs must be a list or None, got {!r}'
                            .format(name, type(outs)))
        # Our own copy, checked: a Python subclass's parameter setter, run
        # below, may change the list it was given.
        outs = list(outs) if outs is not None else []
        if not all([o is None or isinstance(o, Variable) for o in outs]):
            raise TypeError('{}.__setstate__: outputs must be Variables (None for a dead '
                            'one), got {!r}'.format(name, outs))
        if d is not None and type(d) is not dict:
            raise TypeError('{}.__setstate__: expected a dict of attributes or None, got {!r}'
                            .format(name, type(d)))
        cdef int gen = generation       # (an int, or raises here)
        # Constants are checked as a call checks them; a Python Function
        # sees every input as a Variable.
        if ins is not None:
            ins = tuple([x if isinstance(x, Variable)
                         else _check_const(x, self) if _is_native(self)
                         else as_variable(x) for x in ins])
        # Checked; now set (the inputs first: too many of them raises).
        if ins is None:
            self._forget_inputs()
        else:
            self._set_inputs(ins)
        self.generation = gen
        for key, value in zip(names, params):
            setattr(self, key, value)
        if d:
            self.__dict__.update(d)
        _link_watched(self, outs)
        _track_graph(self)      # an input may reach back here

    # -- what the engine calls --------------------------------------------
    cdef int _arity(self):
        """How many inputs a built-in's forward reads; -1: any number."""
        return -1

    @cython.final
    cdef object _inp(self, Py_ssize_t i):
        """Input i as recorded (a Variable or a raw constant); None past the
        end (Python code may have replaced the inputs since i was counted)."""
        cdef PyObject* p = _input_ptr(self, i)
        return None if p == NULL else <object>p

    @cython.final
    cdef void _set_inputs(self, tuple xs) except *:
        cdef Py_ssize_t n = len(xs)
        if n > 32767:
            raise ValueError('{}: {} inputs; at most 32767 are supported'
                             .format(type(self).__name__, n))
        self._set_inputs12(n, xs[0] if n > 0 else None, xs[1] if n > 1 else None)
        self._more = xs[2:] if n > 2 else None

    @cython.final
    cdef void _forget_inputs(self) noexcept:
        """No inputs recorded: ``inputs`` reads None, as on a new Function."""
        self._nin = -1      # first: dropping an input may run Python code
        self._in0 = self._in1 = self._more = None

    @cython.final
    cdef void _set_inputs12(self, Py_ssize_t n, object x0, object x1) noexcept:
        """The inputs are x0 and x1, the first n of them (n <= 2 here; the
        rest, for _set_inputs, in _more)."""
        self._in0 = x0
        self._in1 = x1
        self._more = None
        self._nin = <short>n
        if self._shown is not None:
            self._shown = None

    @cython.final
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

    cdef bint _f64_aware(self):
        """Whether this operation's _fwd2 and _bw take _F64 values and
        gradients (see _arrays.pxi); the engine gives the others arrays."""
        return False

    cdef object _fwd2(self, object x0, object x1):
        # Only built-in operations of a fixed arity (one or two inputs)
        # are called here; they define it.
        raise NotImplementedError('{}: no _fwd2'.format(type(self).__name__))

    cdef tuple _bw(self, object gy, bint graph):
        return self._py_bw((gy,), graph)

    cdef object _py_fwd(self, tuple xs):
        return self.forward(*xs)

    cdef tuple _py_bw(self, tuple gys, bint graph):
        # A Python backward sees Variables, whatever mode the engine is in
        # (core_simple's sees arrays), and may return Variables, arrays or
        # None; normalise and check.
        cdef Py_ssize_t i, n, m
        cdef str name = type(self).__name__
        if _is_simple(self):
            if graph:
                raise TypeError(
                    '{}: a core_simple Function has no create_graph backward (its '
                    'backward works on arrays); use cydezero.core for higher '
                    'derivatives'.format(name))
            gys = tuple([_arr(g) for g in gys])
        elif not graph:
            gys = tuple([None if g is None else _new_var(g) for g in gys])
        else:
            for g in gys:       # Python code may keep them anywhere
                if g is not None:
                    _track_graph(g)
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
                if i >= m and _needs_grad(x) and _vd(<Variable>x).dtype.kind in 'fc':
                    raise ValueError(
                        '{}.backward returned {} gradient(s) for {} inputs; input {} '
                        '(shape {}, dtype {}) needs one'.format(
                            name, m, n, i, _vd(<Variable>x).shape, _vd(<Variable>x).dtype))
                continue
            if not _needs_grad(x):   # this x: Python code may replace the inputs
                continue
            g = _grad_data(gx)
            if g is None:
                raise TypeError('{}.backward returned {!r} for input {}; expected '
                                'a Variable or an array'.format(name, type(gx), i))
            if not isinstance(gx, Variable):
                gx = _new_var(g) if graph else g
            xd = _vd(<Variable>x)
            if g.shape != xd.shape:
                raise ValueError(
                    '{}.backward returned a gradient of shape {} for input {} of '
                    'shape {}'.format(name, g.shape, i, xd.shape))
            if not _kind_fits(g.dtype.kind, xd.dtype.kind):
                raise TypeError(
                    '{}.backward returned a gradient of dtype {} for input {} of '
                    'dtype {}'.format(name, g.dtype, i, xd.dtype))
            out[i] = gx if graph else g
        return tuple(out)

    # -- helpers for the built-in backward methods -------------------------
    @cython.final
    cdef object _x(self, Py_ssize_t i, bint graph):
        """Input i as a Variable (graph mode) or its data (array mode)."""
        x = self._inp(i)
        if graph or not isinstance(x, Variable):
            return x
        return _vd(<Variable>x)

    @cython.final
    cdef object _xr(self, Py_ssize_t i, bint graph):
        """_x for an operation whose _f64_aware is True: a number an input
        holds is given as an _F64, not made an array."""
        return _raw(self._inp(i), graph)

    @cython.final
    cdef bint _needs(self, Py_ssize_t i):
        """Whether input i is a Variable that can receive a gradient."""
        return _needs_grad(self._inp(i))

    @cython.final
    cdef object _y(self, bint graph):
        """The first output, as a Variable or its data."""
        y = _live(self._outs[0]) if self._nout > 0 else None
        if y is None:
            raise RuntimeError('{}: its output was freed before backward'
                               .format(type(self).__name__))
        return y if graph else _vd(<Variable>y)

    @cython.final
    cdef object _yr(self, bint graph):
        """_y for an operation whose _f64_aware is True (see _xr)."""
        y = self._y(True)
        return y if graph else _val(<Variable>y)

    @cython.final
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
        for i in range(n):      # None: an empty slot
            self._outs[i] = NULL if outs[i] is None else <PyObject*>outs[i]
        self._nout = <unsigned short>n

    @cython.final
    cdef void _link1(self, Variable out):
        """_link for the usual single output."""
        self._free_outs()
        self._out1 = <PyObject*>out
        self._nout = 1

    @cython.final
    cdef void _free_outs(self):
        """Back to the inline slot for the outputs' pointers, and no
        outputs; their watchers (see the outputs setter) go too."""
        self._nout = 0
        if self._outs != &self._out1:
            free(self._outs)
            self._outs = &self._out1
        if _foreign_outs:
            _foreign_outs.pop(<Py_ssize_t><void*>self, None)

    @cython.final
    cdef void _unlink(self, PyObject* v) noexcept:
        cdef Py_ssize_t i
        for i in range(self._nout):
            if self._outs[i] == v:
                self._outs[i] = NULL


cdef inline PyObject* _input_ptr(Function f, Py_ssize_t i) noexcept:
    """Input i of f, borrowed from f (NULL past the end)."""
    if i == 0:
        return <PyObject*>f._in0
    if i == 1:
        return <PyObject*>f._in1
    if f._more is not None and 2 <= i < 2 + len(f._more):
        return PyTuple_GET_ITEM(f._more, i - 2)
    return NULL


cdef inline object _raw(object x, bint graph):
    """Input x (a Variable or a raw constant) as an operation whose
    _f64_aware is True reads it: a Variable under graph, else its data as
    it is (an _F64 for a number)."""
    if graph or not isinstance(x, Variable):
        return x
    return _val(<Variable>x)


cdef inline tuple _pack(Py_ssize_t n, object x0, object x1):
    """The tuple of _apply_n's first n (one or two) inputs."""
    return (x0,) if n == 1 else (x0, x1)


cdef inline bint _needs_grad(object x):
    """Whether x is a Variable that can receive a gradient."""
    if type(x) is not Variable:
        # A float, the usual constant, is answered without a walk of its
        # type's bases.
        if type(x) is float or not isinstance(x, Variable):
            return False
    return not (<Variable>x)._needs_no_grad


cdef inline bint _kind_fits(str g, str x):
    """A float input needs a float gradient, a complex one a float or
    complex one; DeZero lets integer inputs have any numeric gradient."""
    if x == 'f':
        return g == 'f'
    if x == 'c':
        return g in 'fc'
    return True


# DeZero's core_simple (src/cydezero/core_simple.py) registers its Function
# and Variable classes here. Outputs are of that Variable class when the
# Function is of that Function class or an input is of that Variable class
# (so the built-in operations serve both engines), and such a Function's
# Python backward receives and returns arrays.
cdef type _simple_function = None
cdef type _simple_variable = None


def _register_core_simple(type function, type variable):
    """Called once by cydezero.core_simple with its two classes."""
    global _simple_function, _simple_variable
    if not (issubclass(function, Function) and issubclass(variable, Variable)):
        raise TypeError('_register_core_simple: expected subclasses of Function '
                        'and Variable, got {!r} and {!r}'.format(function, variable))
    _simple_function = function
    _simple_variable = variable


cdef inline bint _is_simple(Function f):
    return _simple_function is not None and PyObject_TypeCheck(f, <PyTypeObject*>_simple_function)


cdef inline Variable _new_simple_var(object data):
    cdef Variable v = <Variable>Variable.__new__(_simple_variable)
    _hold(v, data)
    return v


cdef inline Variable _new_output(object data, bint simple):
    return _new_simple_var(data) if simple else _new_var(data)


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
    cdef Py_ssize_t n = len(inputs)
    return _apply_n(f, inputs, n, inputs[0] if n > 0 else None, inputs[1] if n > 1 else None, 0)


cdef inline object _apply1(Function f, object x):
    return _apply_n(f, None, 1, x, None, 0)


cdef inline object _apply2(Function f, object x0, object x1):
    return _apply_n(f, None, 2, x0, x1, 0)


cdef object _apply_n(Function f, tuple inputs, Py_ssize_t n, object x0, object x1, int op):
    """_apply on n inputs: inputs, or, with inputs None, x0 and x1 alone (a
    built-in's one or two inputs, which then need no tuple). With op, f is
    that fused operation's shared instance (see _fused.pxi): the result is
    fused into its output, or recorded by a new instance."""
    cdef Py_ssize_t i, gen = 0
    cdef tuple xs = None
    cdef list ins = None
    cdef Variable v
    cdef bint native = _is_native(f)
    cdef bint simple = not native and _is_simple(f)
    cdef cdz_flags* cfg = cdz_flags_here()     # read as it is at each use
    # A built-in of one or two inputs takes their data as arguments (_fwd2).
    # (A fused operation's arity is known, and its callers pass that many.)
    cdef int arity = (_fused_arity(op) if op else f._arity()) if native else -1
    cdef bint by_args = 0 <= arity <= 2 and n <= 2
    # Such a built-in may take an _F64 value as it is; everything else gets
    # arrays.
    cdef bint raw = by_args and (op != 0 or f._f64_aware())
    # Called before: recording again can close a cycle (its new inputs may
    # reach its earlier outputs), so nothing is hidden from the collector.
    cdef bint reused = f._nin >= 0
    cdef PyTypeObject* simple_var = <PyTypeObject*>_simple_variable
    # Outputs need no gradient when every Variable input needs none. Calls on
    # raw constants alone keep DeZero's behaviour (their outputs need one).
    cdef bint any_var = False, all_const = True
    cdef object d0 = None, d1 = None
    if _pool_doomed:
        _pool_sweep()
    if native and not op:
        _check_arity(f, n)
    if inputs is None and not by_args:
        inputs = _pack(n, x0, x1)
    if not by_args:
        xs = PyTuple_New(n)
    for i in range(n):
        x = (x0 if i == 0 else x1) if inputs is None else inputs[i]
        if isinstance(x, Variable):
            v = <Variable>x
            d = _val(v) if raw else _vd(v)
            if v.generation > gen:
                gen = v.generation
            any_var = True
            if not v._needs_no_grad:
                all_const = False
            if (Py_TYPE(v) != <PyTypeObject*>Variable and not simple
                    and _simple_variable is not None and PyObject_TypeCheck(v, simple_var)):
                simple = True
        elif native:
            d = _check_const(x, f)
        else:
            # Python Functions see every input as a Variable, as in DeZero.
            v = _new_simple_var(as_array(x)) if simple else Variable(as_array(x))
            v._needs_no_grad = True
            d = v._data
            if ins is None:
                ins = list(inputs)
            ins[i] = v
        if by_args:
            if i == 0:
                d0 = d
            else:
                d1 = d
        else:
            Py_INCREF(d)
            PyTuple_SET_ITEM(xs, i, d)
    if ins is not None:
        inputs = tuple(ins)
    if gen >= _MAX_GENERATION and not cfg.backprop_off:
        raise OverflowError(
            '{}: an input has generation {}, the largest there is; its outputs\' '
            'would not fit (generations are C ints)'.format(type(f).__name__, gen))

    cdef long long t0 = _profile_clock() if cfg.profile else 0
    if native:
        try:
            ys = f._fwd2(d0, d1) if by_args else f._fwd(xs)
        except (ValueError, TypeError, IndexError) as e:
            if inputs is None:
                inputs = _pack(n, x0, x1)
            raise _forward_error(f, inputs, e) from e
    else:
        ys = f._py_fwd(xs)
    if cfg.profile:
        _profile_add(type(f), 0, _profile_clock() - t0)

    cdef list outs
    cdef Variable out
    if type(ys) is tuple:
        outs = [_new_output(_check_output(y, f), simple) for y in ys]
    else:
        out = _new_output(_check_output(ys, f), simple)
        outs = None
    cdef bint hide = native and not (reused and not cfg.backprop_off)
    if hide and not simple:
        # No cycle through them yet: see _tracking.pxi.
        if outs is None:
            _untrack(out)
        else:
            for v in outs:
                _untrack(v)
    cdef bint no_grad_needed = any_var and all_const
    if not cfg.backprop_off:
        if op:
            if outs is None and not simple and not cfg.anomaly:
                _record_op(out, op, n, x0, x1, <int>gen, no_grad_needed)
                return out
            f = _new_op(op)
        f.generation = <int>gen
        if inputs is None:
            f._set_inputs12(n, x0, x1)
        else:
            f._set_inputs(inputs)
        if outs is None:
            f._link1(out)
        else:
            f._link(outs)
        for i in range(f._nout):
            v = <Variable>f._outs[i]
            v._creator = f
            v.generation = <int>(gen + 1)
            v._needs_no_grad = no_grad_needed
        if cfg.anomaly:
            _record_site(f)
        if hide:
            _untrack(f)
        elif reused:
            _track_graph(f)
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
        d = _vd(<Variable>x)
        if _is_array(d):
            return 'a Variable of shape {} {}'.format(d.shape, d.dtype)
        return 'a Variable holding {!r}'.format(type(d))
    if _is_array(x):
        return 'an array of shape {} {}'.format(x.shape, x.dtype)
    return repr(x)


cdef inline object _check_output(object y, Function f):
    if type(y) is ndarray or type(y) is _F64:
        return y
    if np.isscalar(y) and not isinstance(y, (str, bytes)):
        return _as_arr(y) if isinstance(y, np.generic) else np.asarray(y)
    if _is_array(y):
        return y
    raise TypeError('{}.forward returned {!r}; expected an array (or a tuple '
                    'of arrays)'.format(type(f).__name__, type(y)))
