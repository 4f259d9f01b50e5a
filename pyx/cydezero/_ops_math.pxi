# Arithmetic and elementwise maths: Add, Sub, Mul, Div, Neg, Pow, Sin, Cos,
# Tanh, Exp, Log.
# Part of the _core module (included by _core.pyx).


cdef class Add(_Builtin):
    """y = x0 + x1;  gx0 = gy, gx1 = gy (summed back over broadcast axes)."""
    cdef bint _f64_aware(self):
        return True

    cdef int _arity(self):
        return 2

    cdef object _fwd2(self, object x0, object x1):
        return _arith(OP_ADD, x0, x1)

    cdef tuple _bw(self, object gy, bint graph):
        a, b = self._in0, self._in1         # read once, as both gradients see them
        return (_add_gx(0, gy, a, b, graph), _add_gx(1, gy, a, b, graph))


cdef object _add_gx(int k, object gy, object in0, object in1, bint graph):
    # Each derivative is a function of its own, giving one input's gradient
    # (input k; None if it needs none), which the class's _bw and the fused
    # step (_fused_gx) both call. It takes the inputs as recorded, in0 and
    # in1, and, where it needs it, the output's value y.
    x = in0 if k == 0 else in1
    return _sum_to_like(gy, x, graph) if _needs_grad(x) else None


def add(x0, x1):
    """x0 + x1, broadcasting as NumPy does; each gradient is summed back to its input's shape."""
    return _op2(_OP_ADD, x0, x1)


cdef class Sub(_Builtin):
    """y = x0 - x1;  gx0 = gy, gx1 = -gy."""
    cdef bint _f64_aware(self):
        return True

    cdef int _arity(self):
        return 2

    cdef object _fwd2(self, object x0, object x1):
        return _arith(OP_SUB, x0, x1)

    cdef tuple _bw(self, object gy, bint graph):
        a, b = self._in0, self._in1         # read once, as both gradients see them
        return (_sub_gx(0, gy, a, b, graph), _sub_gx(1, gy, a, b, graph))


cdef object _sub_gx(int k, object gy, object in0, object in1, bint graph):
    if k == 0:
        return _sum_to_like(gy, in0, graph) if _needs_grad(in0) else None
    return _sum_to_like(_neg_g(gy, graph), in1, graph) if _needs_grad(in1) else None


def sub(x0, x1):
    """x0 - x1, broadcasting as NumPy does."""
    return _op2(_OP_SUB, x0, x1)


def rsub(x0, x1):
    """x1 - x0 (the reflected form: ``x0`` is the Variable on the right)."""
    return _op2(_OP_SUB, x1, x0)


cdef class Mul(_Builtin):
    """y = x0 * x1;  gx0 = gy * x1, gx1 = gy * x0."""
    cdef bint _f64_aware(self):
        return True

    cdef int _arity(self):
        return 2

    cdef object _fwd2(self, object x0, object x1):
        return _arith(OP_MUL, x0, x1)

    cdef tuple _bw(self, object gy, bint graph):
        a, b = self._in0, self._in1         # read once, as both gradients see them
        return (_mul_gx(0, gy, a, b, graph), _mul_gx(1, gy, a, b, graph))


cdef object _mul_gx(int k, object gy, object in0, object in1, bint graph):
    cdef double c, r
    x = in0 if k == 0 else in1
    if not _needs_grad(x):
        return None
    other = in1 if k == 0 else in0
    # A number times a number, x one too (so nothing to sum back): what
    # _arith gives below, read in place (no _F64 for other).
    if (not graph and type(gy) is _F64 and _holds_number(x) and _number_in(other, &c)
            and _arith_f64(OP_MUL, (<_F64>gy).v, c, &r)):
        return _f64(r)
    return _sum_to_like(_times(gy, _raw(other, graph), graph), x, graph)


def mul(x0, x1):
    """x0 * x1 elementwise, broadcasting as NumPy does."""
    return _op2(_OP_MUL, x0, x1)


cdef class Div(_Builtin):
    """y = x0 / x1;  gx0 = gy / x1, gx1 = gy * (-x0 / x1**2)."""
    cdef bint _f64_aware(self):
        return True

    cdef int _arity(self):
        return 2

    cdef object _fwd2(self, object x0, object x1):
        return _arith(OP_DIV, x0, x1)

    cdef tuple _bw(self, object gy, bint graph):
        a, b = self._in0, self._in1         # read once, as both gradients see them
        return (_div_gx(0, gy, a, b, graph), _div_gx(1, gy, a, b, graph))


cdef object _div_gx(int k, object gy, object in0, object in1, bint graph):
    cdef double g, a, b, s, q
    x0 = _raw(in0, graph)
    x1 = _raw(in1, graph)
    if k == 0:
        return _sum_to_g(_over(gy, x1, graph), _shape_of(x0), graph) if _needs_grad(in0) else None
    if not _needs_grad(in1):
        return None
    # One number each (0-d float64, or a Python number): DeZero's
    # -x0 / x1 ** 2 * gy in C, step by step as NumPy does it; if a step
    # is flagged, the whole expression is NumPy's to compute and report.
    if (not graph and _is_value(gy) and _scalar_f64(gy, &g)
            and _scalar_f64(x0, &a) and _scalar_f64(x1, &b)):
        s = b * b
        q = -a / s
        if (_plain(s, b == 0.0) and _plain(q, a == 0.0)
                and _plain(g * q, g == 0.0 or q == 0.0)):
            return _f64(g * q)
    if not graph:
        gy, x0, x1 = _arr(gy), _arr(x0), _arr(x1)
    return _sum_to_g(gy * (-x0 / x1 ** 2), _shape_of(x1), graph)


def div(x0, x1):
    """x0 / x1 elementwise, broadcasting as NumPy does."""
    return _op2(_OP_DIV, x0, x1)


def rdiv(x0, x1):
    """x1 / x0 (the reflected form: ``x0`` is the Variable on the right)."""
    return _op2(_OP_DIV, x1, x0)


cdef class Neg(_Builtin):
    """y = -x;  gx = -gy."""
    cdef bint _f64_aware(self):
        return True

    cdef object _fwd2(self, object x0, object x1):
        return _negate(x0)

    cdef tuple _bw(self, object gy, bint graph):
        return (_neg_g(gy, graph),)


def neg(x):
    """-x."""
    return _op1(_OP_NEG, x)


cdef class Pow(_Builtin):
    """y = x ** c for a constant c;  gx = c * x ** (c - 1) * gy."""
    _state_names = ('c',)     # see Function.__reduce__
    cdef public object c

    cdef bint _f64_aware(self):
        return True

    def __init__(self, c):
        if isinstance(c, Variable):
            raise TypeError('Pow: the exponent must be a constant (a number or an array), '
                            'got a Variable of shape {}'.format(_shape_of(c)
                                                                if (<Variable>c)._data is not None
                                                                else None))
        self.c = c

    cdef object _fwd2(self, object x0, object x1):
        # x1: the exponent when the call is fused (_apply_scalar gives it,
        # to the shared instance, which has none); else None, and c is ours
        return _power(x0, self.c if x1 is None else x1)

    cdef tuple _bw(self, object gy, bint graph):
        return (_pow_gx(gy, self._xr(0, graph), self.c, graph),)


cdef object _pow_gx(object gy, object x, object c, bint graph):
    # x: the input as _raw gives it; c: the exponent
    cdef double v, g, e, p, r
    if not graph:
        if (_numbers(gy, x, graph, &g, &v) and (type(c) is int or type(c) is float)
                and _scalar_f64(c, &e)):
            # DeZero's c * x ** (c - 1) * gy in C, step by step as NumPy
            # does it; anything flagged is NumPy's to compute and report
            if _pow_f64(v, c - 1, &p):
                r = e * p
                if _plain(r, e == 0.0 or p == 0.0) and _plain(r * g, r == 0.0 or g == 0.0):
                    return _f64(r * g)
        x, gy = _arr(x), _arr(gy)
    return c * x ** (c - 1) * gy


def pow(x, c):
    """x ** c for a constant c (c itself is not differentiated)."""
    # (Fused as _op1 would, but _apply_n is not given the shared Pow, which
    # takes c as its second argument: see _fused.pxi.)
    if (type(c) is int or type(c) is float) and _plain_input(x) and _plain_config():
        return _apply_scalar(_OP_POW, 1, x, c)
    return _apply1(Pow(c), x)


cdef class Sin(_Builtin):
    """y = sin(x);  gx = gy * cos(x)."""
    cdef bint _f64_aware(self):
        return True

    cdef object _fwd2(self, object x0, object x1):
        return _umath(U_SIN, x0)

    cdef tuple _bw(self, object gy, bint graph):
        return (_sin_gx(gy, self._in0, graph),)


cdef inline bint _holds_number(object x) noexcept:
    """x is a Variable (not a subclass) holding one float64 number (its
    _v), which _raw would give as an _F64."""
    return type(x) is Variable and (<Variable>x)._data is _LAZY


cdef inline bint _number_in(object x, double* v) except -1:
    """Whether input x, as recorded, is one float64 number as _arith reads
    it: a Variable holding one (read in place, where _raw would make an
    _F64), or a constant _scalar_f64 takes; read into v[0]."""
    if _holds_number(x):
        v[0] = (<Variable>x)._v
        return True
    return type(x) is not Variable and _scalar_f64(x, v)


cdef inline bint _numbers_in(object gy, object x, bint graph, double* g, double* v) except -1:
    """_numbers for x as recorded (a Variable or a value), as _raw gives
    it: a Variable holding a number is read in place, without the _F64
    that _raw makes for it."""
    if not graph and type(gy) is _F64 and _holds_number(x):
        g[0] = (<_F64>gy).v
        v[0] = (<Variable>x)._v
        return True
    return _numbers(gy, _raw(x, graph), graph, g, v)


cdef inline bint _numbers(object gy, object x, bint graph, double* g, double* v) except -1:
    """Whether a scalar derivative is done in C: no graph, and gy and x are
    one float64 value each (not constants), read into g[0] and v[0]. It
    then gives the bits NumPy's steps would, without an object for each
    step; a step that raised a flag sends the whole derivative back to
    them, so NumPy's warnings and np.errstate still apply."""
    return (not graph and _is_value(gy) and _is_value(x)
            and _scalar_f64(gy, g) and _scalar_f64(x, v))


cdef object _sin_gx(object gy, object in0, bint graph):
    cdef double g, v, c
    if (_numbers_in(gy, in0, graph, &g, &v) and _call_loop(U_COS, &v, &c)
            and _plain(g * c, g == 0.0 or c == 0.0)):
        return _f64(g * c)
    x = _raw(in0, graph)
    return _times(gy, cos(x) if graph else _umath(U_COS, x), graph)


def sin(x):
    """Elementwise sin(x)."""
    return _op1(_OP_SIN, x)


cdef class Cos(_Builtin):
    """y = cos(x);  gx = gy * -sin(x)."""
    cdef bint _f64_aware(self):
        return True

    cdef object _fwd2(self, object x0, object x1):
        return _umath(U_COS, x0)

    cdef tuple _bw(self, object gy, bint graph):
        return (_cos_gx(gy, self._in0, graph),)


cdef object _cos_gx(object gy, object in0, bint graph):
    cdef double g, v, c
    if (_numbers_in(gy, in0, graph, &g, &v) and _call_loop(U_SIN, &v, &c)
            and _plain(g * -c, g == 0.0 or c == 0.0)):
        return _f64(g * -c)
    x = _raw(in0, graph)
    return _times(gy, -sin(x) if graph else _negate(_umath(U_SIN, x)), graph)


def cos(x):
    """Elementwise cos(x)."""
    return _op1(_OP_COS, x)


cdef class Tanh(_Builtin):
    """y = tanh(x);  gx = gy * (1 - y * y)."""
    cdef bint _f64_aware(self):
        return True

    cdef object _fwd2(self, object x0, object x1):
        return _umath(U_TANH, x0)

    cdef tuple _bw(self, object gy, bint graph):
        return (_tanh_gx(gy, self._yr(graph), graph),)


cdef object _tanh_gx(object gy, object y, bint graph):
    # y: the output, as _yr gives its value or as the Variable itself
    cdef double g, v, u
    if _numbers_in(gy, y, graph, &g, &v):
        u = 1.0 - v * v
        if _plain(v * v, v == 0.0) and _plain(u, True) and _plain(g * u, g == 0.0 or u == 0.0):
            return _f64(g * u)
    y = _raw(y, graph)
    return _times(gy, _minus(1, _times(y, y, graph), graph), graph)


def tanh(x):
    """Elementwise tanh(x)."""
    return _op1(_OP_TANH, x)


cdef class Exp(_Builtin):
    """y = exp(x);  gx = gy * y."""
    cdef bint _f64_aware(self):
        return True

    cdef object _fwd2(self, object x0, object x1):
        return _umath(U_EXP, x0)

    cdef tuple _bw(self, object gy, bint graph):
        return (_exp_gx(gy, self._yr(graph), graph),)


cdef object _exp_gx(object gy, object y, bint graph):
    return _times(gy, y, graph)


def exp(x):
    """Elementwise exp(x)."""
    return _op1(_OP_EXP, x)


cdef class Log(_Builtin):
    """y = log(x);  gx = gy / x."""
    cdef bint _f64_aware(self):
        return True

    cdef object _fwd2(self, object x0, object x1):
        return _umath(U_LOG, x0)

    cdef tuple _bw(self, object gy, bint graph):
        return (_log_gx(gy, self._in0, graph),)


cdef object _log_gx(object gy, object in0, bint graph):
    return _over(gy, _raw(in0, graph), graph)


def log(x):
    """Elementwise natural logarithm of x."""
    return _op1(_OP_LOG, x)


_init_fused([Add, Sub, Mul, Div, Neg, Sin, Cos, Tanh, Exp, Log, Pow])
