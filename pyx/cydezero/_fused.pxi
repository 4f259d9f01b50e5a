# Scalar operations fused into their output: one object per node.
# Part of the _core module (included by _core.pyx).
#
# A node of a scalar graph was three objects: the Variable, the Function
# that made it, and the value (an _F64). For the operations that need
# nothing but their inputs (+ - * /, neg, sin, cos, tanh, exp, log) and
# x ** c for a number c, _apply records the operation in the Variable it
# makes instead, when the result is a number: _op says which operation,
# _fin0 and _fin1 hold its inputs (for ** the input and c), and no Function
# is made (_fuse). Everything else still sees a Function:
# - y.creator makes it on first read (_creator_of), links y as its output,
#   and keeps it: from then on y is an ordinary output.
# - The backward pass runs the operation's own backward on the inputs the
#   Variable holds (_fused_gx: the same functions its Function's _bw
#   calls), so each derivative is written once; profile() counts it, and
#   detect_anomaly checks it, under the operation's class.
# Not fused: what detect_anomaly records (it keeps where each Function was
# made), core_simple's outputs, and calls of a Function object made by
# the user (Mul()(x, y)), which becomes the creator as in DeZero.
#
# The pass schedules a fused Variable itself on the first gradient it gets
# (its _pass says it got one), where it would schedule a creator.

from cpython.object cimport PyObject, PyTypeObject

cdef enum:
    _OP_ADD = 1
    _OP_SUB = 2
    _OP_MUL = 3
    _OP_DIV = 4
    _OP_NEG = 5
    _OP_SIN = 6
    _OP_COS = 7
    _OP_TANH = 8
    _OP_EXP = 9
    _OP_LOG = 10
    _OP_POW = 11        # one input; _fin1 holds the exponent, an int or a float
    _OP_COUNT = 12      # the fused operations are 1 .. _OP_COUNT - 1
    _OP_CUT = 255       # not fused: see Variable._op

# Per operation, filled once the classes exist (_init_fused): its class,
# and an instance whose _fwd2 computes the forward (never recorded: _apply
# records a new one, or fuses). The module keeps them alive (_fused_keep).
# Pow's has no exponent of its own: it is given c as its second argument,
# and only pow() uses it, through _apply_scalar (never _op1 or _apply_n).
cdef PyObject* _fused_type[_OP_COUNT]
cdef PyObject* _fused_proto[_OP_COUNT]
# And, for the operations of one ufunc (sin ... log), its loop (U_*).
cdef int _fused_loop[_OP_COUNT]
cdef list _fused_keep = []
cdef tuple _NO_ARGS = ()


cdef void _init_fused(list types) except *:
    """types: the class of each fused operation, in the order of _OP_*."""
    cdef int op
    for op in range(1, _OP_COUNT):
        t = types[op - 1]
        _fused_type[op] = <PyObject*>t
        _fused_keep.append(t)
        _fused_proto[op] = NULL
        proto = _new_op(op)
        _untrack(proto)
        _fused_keep.append(proto)
        _fused_proto[op] = <PyObject*>proto
        _fused_loop[op] = -1
    _fused_loop[_OP_SIN] = U_SIN
    _fused_loop[_OP_COS] = U_COS
    _fused_loop[_OP_TANH] = U_TANH
    _fused_loop[_OP_EXP] = U_EXP
    _fused_loop[_OP_LOG] = U_LOG


cdef inline bint _is_fused(Variable v) noexcept:
    return 0 < v._op < _OP_COUNT


cdef inline bint _is_leaf(Variable v) noexcept:
    """Made by no operation: no creator, none fused in."""
    return v._creator is None and not _is_fused(v)


cdef inline Py_ssize_t _fused_arity(int op) noexcept:
    return 2 if op <= _OP_DIV else 1


cdef inline object _op1(int op, object x):
    """A fused operation of one input, applied."""
    if _plain_input(x) and _plain_config():
        return _apply_scalar(op, 1, x, None)
    return _apply_n(<Function>_fused_proto[op], None, 1, x, None, op)


cdef inline object _op2(int op, object x0, object x1):
    """A fused operation of two inputs, applied."""
    if _plain_input(x0) and _plain_input(x1) and _plain_config():
        return _apply_scalar(op, 2, x0, x1)
    return _apply_n(<Function>_fused_proto[op], None, 2, x0, x1, op)


cdef inline bint _plain_input(object x) noexcept:
    """x is what _apply_scalar takes: a Variable (not a subclass:
    core_simple's and users' go through _apply_n), whatever it holds, or
    a float or an int (`1 - x`, `100 * y`), constants that _apply_n keeps
    as they are too."""
    return type(x) is Variable or type(x) is float or type(x) is int


cdef inline bint _plain_config() noexcept:
    """Recording on, nothing to profile or to record for anomaly mode."""
    cdef cdz_flags* c = cdz_flags_here()
    return not (c.backprop_off or c.anomaly or c.profile)


cdef object _apply_scalar(int op, Py_ssize_t n, object x0, object x1):
    """_apply_n for the usual call of a fused operation, on what
    _plain_input takes with _plain_config: the same result and record,
    without the checks that cannot fail there. Scalars are the case it is
    for; an array result (or a forward error) comes out as from _apply_n,
    recorded by a Function of its own."""
    cdef Variable v, out
    cdef Py_ssize_t gen = 0
    cdef bint any_var = False, all_const = True, numbers = True
    cdef Function proto = <Function>_fused_proto[op]
    cdef double a = 0.0, b = 0.0, r
    if type(x0) is Variable:
        v = <Variable>x0
        numbers = _number_of(v, &a)
        gen = v.generation
        any_var = True
        all_const = v._needs_no_grad
    else:
        numbers = _scalar_f64(x0, &a)
    if n == 2:
        if type(x1) is Variable:
            v = <Variable>x1
            numbers = _number_of(v, &b) and numbers
            if v.generation > gen:
                gen = v.generation
            any_var = True
            all_const = all_const and v._needs_no_grad
        else:
            numbers = _scalar_f64(x1, &b) and numbers
    if gen >= _MAX_GENERATION:      # what _apply_n raises
        return _apply1(Pow(x1), x0) if op == _OP_POW else _apply_n(proto, None, n, x0, x1, op)
    if _pool_doomed:
        _pool_sweep()
    if any_var and numbers and _fused_f64(op, a, b, x1, &r):
        # Numbers in, a number out: what _fwd2 computes, without objects.
        out = Variable.__new__(Variable)
        _hold_number(out, r)
    else:
        try:
            y = proto._fwd2(_raw(x0, False), _raw(x1, False))
        except (ValueError, TypeError, IndexError) as e:
            raise _forward_error(proto, _pack(n, x0, x1), e) from e
        out = _new_var(_check_output(y, proto))
    _untrack(out)
    _record_op(out, op, n, x0, x1, <int>gen, any_var and all_const)
    return out


cdef inline bint _number_of(Variable v, double* x) except -1:
    """Whether v's value is one float64 number (a 0-d array too), read
    into x[0]."""
    d = v._data
    if d is _LAZY:
        x[0] = v._v
        return True
    return type(d) is ndarray and _scalar_f64(d, x)


cdef inline bint _fused_f64(int op, double a, double b, object c, double* r) except -1:
    """Operation op on the float64 numbers a (and b; c, the exponent of
    _OP_POW), into r, as the operation's _fwd2 computes it on them (the
    same helpers): whether it did, which it does not when NumPy would raise
    a flag (then _fwd2 lets NumPy compute and report)."""
    if op <= _OP_DIV:
        return _arith_f64(op - _OP_ADD + OP_ADD, a, b, r)
    if op == _OP_NEG:
        r[0] = -a
        return True
    if op == _OP_POW:
        return (type(c) is int or type(c) is float) and _pow_f64(a, c, r)
    return _call_loop(_fused_loop[op], &a, r)


cdef inline int _record_op(Variable out, int op, Py_ssize_t n, object x0, object x1,
                           int gen, bint no_grad_needed) except -1:
    """Record operation op as the maker of out, which it computed from x0
    (and x1): fused into out when out holds a number, else by a new Function
    (hidden from the cycle collector, as _apply_n does)."""
    if out._data is _LAZY:
        _fuse(out, op, x0, x1)
    else:
        _untrack(_make_creator(out, op, n, x0, x1, gen))
    out.generation = gen + 1
    out._needs_no_grad = no_grad_needed
    return 0


cdef Function _make_creator(Variable out, int op, Py_ssize_t n, object x0, object x1, int gen):
    """A new Function of operation op on inputs x0 (and x1), of generation
    gen, linked as the creator of out."""
    cdef Function f = _new_op(op)
    if op == _OP_POW:
        (<Pow>f).c = x1     # the exponent, not an input
        x1 = None
    f.generation = gen
    f._set_inputs12(n, x0, x1)
    f._link1(out)
    out._creator = f
    return f


cdef inline Function _new_op(int op):
    """A new Function of operation op (Add.__new__(Add) for _OP_ADD)."""
    cdef PyTypeObject* t = <PyTypeObject*>_fused_type[op]
    return <Function>t.tp_new(<type>t, <PyObject*>_NO_ARGS, NULL)


cdef inline void _fuse(Variable y, int op, object x0, object x1) noexcept:
    y._fin0 = x0
    y._fin1 = x1
    y._op = <unsigned char>op


cdef void _unfuse(Variable v) noexcept:
    """v keeps no fused operation (it becomes a leaf)."""
    a, b = v._fin0, v._fin1      # released once v is consistent
    v._op = 0
    v._fin0 = v._fin1 = None


cdef Function _creator_of(Variable v):
    """v's creator. A fused v gets it now, for good: a Function of its
    operation, with its inputs, whose output it is."""
    if not _is_fused(v):
        return v._creator
    cdef Function f = _make_creator(v, v._op, _fused_arity(v._op), v._fin0, v._fin1,
                                    v.generation - 1)
    # Scheduled by the pass that gave v a gradient (see _backward).
    f._mark = v._pass
    _unfuse(v)
    if not _gc_is_tracked(v):
        _untrack(f)     # tracked means walked: see _tracking.pxi
    return f


cdef object _fused_gx(int op, int k, object gy, Variable y, object in0, object in1,
                      bint graph):
    """The gradient of input k (0, or 1 for an operation of two inputs) of
    operation op fused into y, from y's gradient gy, as its Function's _bw
    computes it (None if that input needs none)."""
    if op == _OP_ADD:
        return _add_gx(k, gy, in0, in1, graph)
    if op == _OP_SUB:
        return _sub_gx(k, gy, in0, in1, graph)
    if op == _OP_MUL:
        return _mul_gx(k, gy, in0, in1, graph)
    if op == _OP_DIV:
        return _div_gx(k, gy, in0, in1, graph)
    if op == _OP_NEG:
        return _neg_g(gy, graph)
    if op == _OP_POW:
        return _pow_gx(gy, _raw(in0, graph), in1, graph)
    if op == _OP_SIN:
        return _sin_gx(gy, in0, graph)
    if op == _OP_COS:
        return _cos_gx(gy, in0, graph)
    if op == _OP_TANH:
        return _tanh_gx(gy, y, graph)
    if op == _OP_EXP:
        return _exp_gx(gy, _raw(y, graph), graph)
    return _log_gx(gy, in0, graph)


cdef tuple _inputs_of(Variable v):
    """The inputs of what made v (its fused operation or its creator); ()
    for a leaf."""
    if _is_fused(v):
        return (v._fin0,) if _fused_arity(v._op) == 1 else (v._fin0, v._fin1)
    if v._creator is not None:
        return v._creator._input_tuple()
    return ()


def _holds_pass_grad(Variable v):
    """Whether a backward pass left a gradient on v (for tests: none may
    once a pass has ended, whether it succeeded or failed)."""
    return v._acc is not None


def _fused_op_name(Variable v):
    """The class name of the operation fused into v, or None (for tests:
    reading v.creator would make the Function)."""
    return (<type>_fused_type[v._op]).__name__ if _is_fused(v) else None
