# What the built-in operations share: the helpers whose array and Variable
# spellings differ, and _Builtin, the base of every built-in operation.
# Part of the _core module (included by _core.pyx).

import numpy as np

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


cdef inline object _minus(object a, object b, bint graph):
    return a - b if graph else _arith(OP_SUB, a, b)


cdef inline object _over(object a, object b, bint graph):
    return a / b if graph else _arith(OP_DIV, a, b)


cdef object _matmul_g(object a, object b, bint graph):
    return matmul(a, b) if graph else a.dot(b)


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
