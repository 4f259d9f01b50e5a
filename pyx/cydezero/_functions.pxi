# The functions users call: one line each, applying an operation.
# Part of the _core module (included by _core.pyx).

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
