# Shapes and selection: Reshape, Transpose, Sum, SumTo, BroadcastTo, MatMul,
# GetItem, GetItemGrad, Max, Min.
# Part of the _core module (included by _core.pyx).

import sys

import numpy as np

cdef class Reshape(_Builtin):
    """y = x.reshape(shape);  gx = gy.reshape(x.shape)."""
    _state_names = ('shape',)     # see Function.__reduce__
    cdef public object shape

    def __init__(self, shape):
        self.shape = shape

    cdef object _fwd2(self, object x0, object x1):
        return x0.reshape(self.shape)

    cdef tuple _bw(self, object gy, bint graph):
        return (gy.reshape(_shape_of(self._in0)),)


def reshape(x, shape):
    """x with a new shape (x itself, as a Variable, when it already has that shape)."""
    if _shape_of(x) == shape:
        return as_variable(x)
    return _apply1(Reshape(shape), x)


cdef class Transpose(_Builtin):
    """y = x.transpose(axes);  gx = gy transposed by the inverse permutation."""
    _state_names = ('axes',)     # see Function.__reduce__
    cdef public object axes

    def __init__(self, axes=None):
        self.axes = axes

    cdef object _fwd2(self, object x0, object x1):
        return x0.transpose(self.axes)

    cdef tuple _bw(self, object gy, bint graph):
        if self.axes is None:
            return (gy.transpose(None),)
        n = len(self.axes)
        inv = tuple(np.argsort([ax % n for ax in self.axes]).tolist())
        return (gy.transpose(inv),)


def transpose(x, axes=None):
    """x with its axes permuted, as ndarray.transpose (reversed when axes is None)."""
    return _apply1(Transpose(axes), x)


cdef class Sum(_Builtin):
    """y = x.sum(axis, keepdims);  gx = gy broadcast back to x.shape."""
    _state_names = ('axis', 'keepdims')     # see Function.__reduce__
    cdef public object axis
    cdef public object keepdims

    def __init__(self, axis, keepdims):
        self.axis = axis
        self.keepdims = keepdims

    cdef object _fwd2(self, object x0, object x1):
        return x0.sum(axis=self.axis, keepdims=self.keepdims)

    cdef tuple _bw(self, object gy, bint graph):
        x_shape = _shape_of(self._in0)
        gy = reshape_sum_backward(gy, x_shape, self.axis, self.keepdims)
        return (_broadcast_g(gy, x_shape, graph),)


def sum(x, axis=None, keepdims=False):
    """The sum of x over axis (None: all axes), keeping them as length 1 if keepdims."""
    return _apply1(Sum(axis, keepdims), x)


cdef class SumTo(_Builtin):
    """y = sum_to(x, shape);  gx = broadcast_to(gy, x.shape)."""
    _state_names = ('shape',)     # see Function.__reduce__
    cdef public object shape

    def __init__(self, shape):
        self.shape = tuple(shape)

    cdef object _fwd2(self, object x0, object x1):
        return _sum_to_checked(x0, _shape_of(x0), self.shape, 'SumTo')

    cdef tuple _bw(self, object gy, bint graph):
        return (_broadcast_g(gy, _shape_of(self._in0), graph),)


def sum_to(x, shape):
    """Sum x down to shape, differentiably (``utils.sum_to`` is
    ``sum_to_array``, the same on plain arrays)."""
    if _shape_of(x) == tuple(shape):
        return as_variable(x)
    return _apply1(SumTo(shape), x)


cdef class BroadcastTo(_Builtin):
    """y = broadcast_to(x, shape);  gx = sum_to(gy, x.shape)."""
    _state_names = ('shape',)     # see Function.__reduce__
    cdef public object shape

    def __init__(self, shape):
        self.shape = tuple(shape)

    cdef object _fwd2(self, object x0, object x1):
        return np.broadcast_to(x0, self.shape)

    cdef tuple _bw(self, object gy, bint graph):
        return (_sum_to_g(gy, _shape_of(self._in0), graph),)


def broadcast_to(x, shape):
    """x broadcast to shape; its gradient is summed back to x's shape."""
    if _shape_of(x) == tuple(shape):
        return as_variable(x)
    return _apply1(BroadcastTo(shape), x)


cdef class MatMul(_Builtin):
    """y = x @ W;  gx = gy @ W.T, gW = x.T @ gy."""
    cdef int _arity(self):
        return 2

    cdef object _fwd2(self, object x0, object x1):
        return _dot(x0, x1)

    cdef tuple _bw(self, object gy, bint graph):
        return _matmul_bw(self, gy, graph)


def matmul(x, W):
    """The matrix product x.dot(W)."""
    return _apply2(MatMul.__new__(MatMul), x, W)


cdef tuple _matmul_bw(Function f, object gy, bint graph):
    """(gx, gW) = (gy @ W.T, x.T @ gy) for f's inputs x, W: MatMul's
    backward, and Linear's apart from the bias."""
    x = f._x(0, graph)
    W = f._x(1, graph)
    gx = _matmul_g(gy, W.T, graph) if f._needs(0) else None
    gW = _matmul_g(x.T, gy, graph) if f._needs(1) else None
    return (gx, gW)


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
        cp = sys.modules['cupy']
        gx = cp.zeros(in_shape, dtype=gy.dtype)
        add_at = getattr(cp.add, 'at', None)
        if add_at is not None:
            add_at(gx, slices, gy)
        else:
            # Older CuPy has no ufunc.at; CuPy 14 deprecates this for it.
            import cupyx
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
    _state_names = ('slices',)     # see Function.__reduce__
    cdef public object slices

    def __init__(self, slices):
        self.slices = slices

    cdef object _fwd2(self, object x0, object x1):
        return x0[self.slices]

    cdef tuple _bw(self, object gy, bint graph):
        in_shape = _shape_of(self._in0)
        if graph:
            return (_apply1(GetItemGrad(self.slices, in_shape), gy),)
        return (_scatter_add(gy, self.slices, in_shape),)


def get_item(x, slices):
    """x[slices] with NumPy indexing; the gradient adds back at those places."""
    return _apply1(GetItem(slices), x)


cdef class GetItemGrad(_Builtin):
    """The backward of GetItem as a Function: y = scatter-add of gy;
    its own backward is get_item(ggx, slices)."""
    _state_names = ('slices', 'in_shape')     # see Function.__reduce__
    cdef public object slices
    cdef public object in_shape

    def __init__(self, slices, in_shape):
        self.slices = slices
        self.in_shape = in_shape

    cdef object _fwd2(self, object x0, object x1):
        return _scatter_add(x0, self.slices, self.in_shape)

    cdef tuple _bw(self, object gy, bint graph):
        if graph:
            return (get_item(gy, self.slices),)
        return (gy[self.slices],)


cdef class Max(_Builtin):
    """y = x.max(axis, keepdims);  gx = gy where x equals the maximum, else 0."""
    _state_names = ('axis', 'keepdims')     # see Function.__reduce__
    cdef public object axis
    cdef public object keepdims

    def __init__(self, axis=None, keepdims=False):
        self.axis = axis
        self.keepdims = keepdims

    cdef object _fwd2(self, object x0, object x1):
        return x0.max(axis=self.axis, keepdims=self.keepdims)

    cdef tuple _bw(self, object gy, bint graph):
        x_obj = self._in0
        xd = _vd(<Variable>x_obj) if isinstance(x_obj, Variable) else x_obj
        shape = tuple(max_backward_shape(xd, self.axis))
        gy = gy.reshape(shape)
        cond = xd == _vd(<Variable>self._y(True)).reshape(shape)
        return (_broadcast_g(gy, cond.shape, graph) * cond,)


def max(x, axis=None, keepdims=False):
    """The maximum of x over axis, as ndarray.max; its gradient goes where x equals it."""
    return _apply1(Max(axis, keepdims), x)


cdef class Min(Max):
    """y = x.min(axis, keepdims);  gx = gy where x equals the minimum, else 0."""
    cdef object _fwd2(self, object x0, object x1):
        return x0.min(axis=self.axis, keepdims=self.keepdims)


def min(x, axis=None, keepdims=False):
    """The minimum of x over axis, as ndarray.min; its gradient goes where x equals it."""
    return _apply1(Min(axis, keepdims), x)
