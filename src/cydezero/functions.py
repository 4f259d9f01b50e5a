"""DeZero's ``dezero.functions``: differentiable operations on Variables.

The elementary operations (arithmetic, sin/cos/tanh/exp/log, reshape,
transpose, sum, sum_to, broadcast_to, matmul, get_item, max, min) and the
workhorses of small networks (linear, sigmoid, relu, mean_squared_error)
live in the compiled engine and are re-exported here. The rest are Python Function
subclasses whose ``backward`` is written with Variable operations, so with
``backward(create_graph=True)`` they can be differentiated again.

Notation in the docstrings: ``gy`` is the gradient arriving at the output
``y``, ``gx`` the one sent to input ``x``.
"""
import warnings

import numpy as np

import cydezero  # noqa: F401  (DeZero code reaches dezero.Config via F)
from cydezero import _core, cuda, utils
from cydezero._core import (  # noqa: F401
    Add,
    BroadcastTo,
    Cos,
    Div,
    Exp,
    Function,
    GetItem,
    GetItemGrad,
    Linear,
    Log,
    MatMul,
    Max,
    MeanSquaredError,
    Min,
    Mul,
    Neg,
    Pow,
    ReLU,
    Reshape,
    Sigmoid,
    Sin,
    Sub,
    Sum,
    SumTo,
    Tanh,
    Transpose,
    Variable,
    add,
    as_array,
    as_variable,
    broadcast_to,
    cos,
    div,
    exp,
    get_item,
    linear,
    log,
    matmul,
    max,
    mean_squared_error,
    min,
    mul,
    neg,
    pow,
    rdiv,
    relu,
    reshape,
    rsub,
    sigmoid,
    sin,
    sub,
    sum,
    tanh,
    transpose,
)
from cydezero.core import Config


def _xp(x):
    return cuda.get_array_module(x)


# =============================================================================
# Tensor shape helpers
# =============================================================================
class _SumToAsDeZero(SumTo):
    """sum_to to a shape x cannot be summed to, computed as DeZero computes
    it (see ``utils.SumToShapeWarning``);  gx = broadcast_to(gy, x.shape)."""

    def forward(self, x):
        self.x_shape = x.shape
        return utils._dezero_sum_to(x, self.shape)

    def backward(self, gy):
        return broadcast_to(gy, self.x_shape)


def sum_to(x, shape):
    """Sum x down to ``shape`` (the inverse of broadcasting), differentiably.
    A shape that x cannot be summed to gets DeZero's result and a
    ``utils.SumToShapeWarning`` naming both shapes."""
    try:
        return _core.sum_to(x, shape)
    except ValueError:      # its one ValueError: the shape is unreachable
        pass
    y = _SumToAsDeZero(shape)(x)
    warnings.warn(utils.SumToShapeWarning(np.shape(as_variable(x).data), shape, y.shape),
                  stacklevel=2)
    return y


sum_to.__wrapped__ = _core.sum_to


def expand_dims(x, axis):
    """Insert an axis of length 1 at ``axis`` (a reshape, so gx = gy reshaped
    back)."""
    x = as_variable(x)
    shape = list(x.shape)
    shape.insert(axis, 1)
    return reshape(x, tuple(shape))


def flatten(x):
    """Reshape to (batch, -1), keeping the first axis."""
    return reshape(x, (x.shape[0], -1))


def average(x, axis=None, keepdims=False):
    """Mean over ``axis``: y = sum(x, axis) * (y.size / x.size), so
    gx = gy broadcast back to x.shape, divided by the number averaged."""
    x = as_variable(x)
    y = sum(x, axis, keepdims)
    return y * (y.data.size / x.data.size)


# The book repository's name for average (not in the PyPI release).
mean = average


# =============================================================================
# Linear
# =============================================================================
def linear_simple(x, W, b=None):
    """x @ W + b built from matmul and add (two graph nodes)."""
    x, W = as_variable(x), as_variable(W)
    t = matmul(x, W)
    if b is None:
        return t
    # DeZero frees t.data here; the engine's Add reads its inputs' shapes in
    # backward, so t keeps its data (only memory differs, never results).
    return t + b


# =============================================================================
# Activations
# =============================================================================
def sigmoid_simple(x):
    """y = 1 / (1 + exp(-x)), built from elementary operations."""
    x = as_variable(x)
    return 1 / (1 + exp(-x))


def softmax_simple(x, axis=1):
    """y = exp(x) / sum(exp(x), axis), built from elementary operations.

    The maximum along ``axis`` is subtracted first (as a constant: it cancels
    in the ratio, so values and derivatives are unchanged) so large inputs do
    not overflow.
    """
    x = as_variable(x)
    x_max = x.data.max(axis=axis, keepdims=True)
    y = exp(x - x_max)
    return y / sum(y, axis=axis, keepdims=True)


def _softmax_array(x, axis):
    """Softmax of an array along ``axis``: exp(x - max) / sum(exp(x - max))."""
    y = _xp(x).exp(x - x.max(axis=axis, keepdims=True))
    y /= y.sum(axis=axis, keepdims=True)
    return y


class Softmax(Function):
    """y = exp(x) / sum(exp(x), axis);  gx = y * gy - y * sum(y * gy, axis)."""

    def __init__(self, axis=1):
        self.axis = axis

    def forward(self, x):
        return _softmax_array(x, self.axis)

    def backward(self, gy):
        y = self.outputs[0]()
        gx = y * gy
        return gx - y * sum(gx, axis=self.axis, keepdims=True)


def softmax(x, axis=1):
    """exp(x) / sum(exp(x), axis), one Function (stable: x - max subtracted first)."""
    return Softmax(axis)(x)


class LogSoftmax(Function):
    """y = x - logsumexp(x, axis);  gx = gy - exp(y) * sum(gy, axis)."""

    def __init__(self, axis=1):
        self.axis = axis

    def forward(self, x):
        return x - utils.logsumexp(x, self.axis)

    def backward(self, gy):
        y = self.outputs[0]()
        return gy - exp(y) * sum(gy, axis=self.axis, keepdims=True)


def log_softmax(x, axis=1):
    """log(softmax(x, axis)), computed stably in one Function."""
    return LogSoftmax(axis)(x)


class LeakyReLU(Function):
    """y = x if x > 0 else slope * x;  gx = gy * (1 if x > 0 else slope)."""

    def __init__(self, slope):
        self.slope = slope

    def forward(self, x):
        y = x.copy()
        y[x <= 0] *= self.slope
        return y

    def backward(self, gy):
        x, = self.inputs
        xp = _xp(x.data)
        mask = xp.where(x.data > 0, 1.0, self.slope).astype(gy.dtype)
        return gy * mask


def leaky_relu(x, slope=0.2):
    """Elementwise x where x > 0, else slope * x."""
    return LeakyReLU(slope)(x)


# =============================================================================
# Losses
# =============================================================================
def mean_squared_error_simple(x0, x1):
    """sum((x0 - x1) ** 2) / len(x0 - x1), built from elementary operations."""
    x0, x1 = as_variable(x0), as_variable(x1)
    diff = x0 - x1
    return sum(diff ** 2) / len(diff)


def softmax_cross_entropy_simple(x, t):
    """-sum(log(softmax(x))[i, t_i]) / N, built from elementary operations
    (the probabilities are clipped to [1e-15, 1] to avoid log(0))."""
    x, t = as_variable(x), as_variable(t)
    N = x.shape[0]
    p = clip(softmax(x), 1e-15, 1.0)
    log_p = log(p)
    tlog_p = log_p[np.arange(N), t.data]
    return -1 * sum(tlog_p) / N


class SoftmaxCrossEntropy(Function):
    """y = -sum_i log_softmax(x)[i, t_i] / N for x of shape (N, C) and
    integer labels t;  gx = gy * (softmax(x) - onehot(t)) / N. The labels get
    no gradient."""

    def forward(self, x, t):
        loss = _core._sce_loss(x, t)    # the same numbers in one call, or None
        if loss is not None:
            return loss
        N = x.shape[0]
        log_p = x - utils.logsumexp(x, axis=1)
        log_p = log_p[np.arange(N), t.ravel()]
        return -log_p.sum() / np.float32(N)

    def backward(self, gy):
        x, t = self.inputs
        N, n_classes = x.shape
        gy = gy * (1 / N)
        if Config.enable_backprop:  # create_graph: differentiable again
            onehot = _xp(t.data).eye(n_classes, dtype=x.dtype)[t.data.ravel()]
            return (softmax(x) - onehot) * gy, None
        # The same numbers on arrays, with no graph: subtracting 1 at each
        # label is subtracting the one-hot row (in one call where it can).
        p = _core._sce_grad(x.data, t.data, gy.data)
        if p is not None:
            return Variable(p), None
        p = _softmax_array(x.data, 1)
        p[np.arange(N), t.data.ravel()] -= 1
        if gy.dtype == p.dtype:
            p *= gy.data
        else:  # the loss of a float16 x is float32 (its mean divides by one)
            p = p * gy.data
        return Variable(p), None


def softmax_cross_entropy(x, t):
    """The mean over the batch of -log(softmax(x))[i, t[i]] for integer labels t."""
    return SoftmaxCrossEntropy()(x, t)


class SigmoidCrossEntropy(Function):
    """y = -sum(t log(p) + (1 - t) log(1 - p)) / N with p = sigmoid(x) and
    N = len(x), computed stably as sum(max(x, 0) - x t + log(1 + exp(-abs(x)))) / N;
    gx = gy * (sigmoid(x) - t) / N, gt = -gy * x / N."""

    def forward(self, x, t):
        xp = _xp(x)
        t = t.astype(x.dtype, copy=False)
        loss = xp.maximum(x, 0) - x * t + xp.log1p(xp.exp(-xp.abs(x)))
        return loss.sum() / x.dtype.type(len(x))

    def backward(self, gy):
        x, t = self.inputs
        N = len(x)
        g = gy * (1 / N)
        tc = t.data.astype(x.dtype, copy=False)
        gx = (sigmoid(x) - tc) * g
        gt = -x * g if t.data.dtype.kind in 'fc' else None
        return gx, gt


def sigmoid_cross_entropy(x, t):
    """Binary cross entropy of logits ``x`` against targets ``t`` in {0, 1}
    (or probabilities), averaged over the first axis. ``t`` is reshaped to
    x's shape when the ranks differ."""
    if x.ndim != t.ndim:
        t = t.reshape(*x.shape)
    return SigmoidCrossEntropy()(x, t)


def binary_cross_entropy(p, t):
    """-sum(t log(p) + (1 - t) log(1 - p)) / N for probabilities ``p``
    (clipped to [1e-15, 0.999] as in DeZero) and targets ``t``."""
    if p.ndim != t.ndim:
        t = t.reshape(*p.shape)
    N = len(t)
    p = clip(p, 1e-15, 0.999)
    tlog_p = t * log(p) + (1 - t) * log(1 - p)
    return -1 * sum(tlog_p) / N


# =============================================================================
# Metrics
# =============================================================================
def accuracy(y, t):
    """Fraction of rows where argmax(y, axis=1) equals the label t, as a 0-d
    Variable. Not differentiable."""
    y, t = as_variable(y), as_variable(t)
    pred = y.data.argmax(axis=1).reshape(t.shape)
    acc = (pred == t.data).mean()
    return Variable(as_array(acc))


# =============================================================================
# embed_id / dropout / batch norm
# =============================================================================
def embed_id(x, W):
    """Rows of W picked by the integer ids x: y = W[x];  gW = scatter-add of gy."""
    if isinstance(x, Variable):
        x = x.data
    return get_item(W, x)


def dropout(x, dropout_ratio=0.5):
    """Inverted dropout. In training (``Config.train``) each element is kept
    with probability 1 - r and scaled by 1 / (1 - r): y = x * mask / (1 - r),
    gx = gy * mask / (1 - r). Outside training y = x."""
    x = as_variable(x)
    if not Config.train:
        return x
    xp = _xp(x)
    mask = xp.random.rand(*x.shape) > dropout_ratio
    if dropout_ratio >= 1.0:  # everything dropped: avoid 0 / 0
        return x * xp.zeros(x.shape, dtype=x.dtype)
    scale = xp.array(1.0 - dropout_ratio).astype(x.dtype)
    return x * mask.astype(x.dtype) / scale


class BatchNorm(Function):
    """Batch normalisation over the batch axis (and H, W for 4-d input, per
    channel): y = gamma * xc + beta with xc = (x - mean) / sqrt(var + eps).

    In training the batch statistics are used and the running ``mean`` and
    ``var`` arrays (given at construction) are updated in place:
    mean <- decay * mean + (1 - decay) * batch_mean, likewise for var with
    the unbiased batch variance. Gradients, with m the number averaged:
    gbeta = sum(gy), ggamma = sum(xc * gy),
    gx = gamma / sqrt(var + eps) * (gy - gbeta / m - xc * ggamma / m).
    In test mode the running statistics are constants, so
    gx = gy * gamma / sqrt(running_var + eps).
    """

    def __init__(self, mean, var, decay, eps):
        self.avg_mean = mean
        self.avg_var = var
        self.decay = decay
        self.eps = eps
        self.inv_std = None
        self._train = True
        self._mean = None

    def forward(self, x, gamma, beta):
        if x.ndim not in (2, 4):
            raise ValueError('batch norm takes 2-d (N, C) or 4-d (N, C, H, W) '
                             f'input, got shape {x.shape}')
        x_ndim = x.ndim
        if x_ndim == 4:
            N, C, H, W = x.shape
            x = x.transpose(0, 2, 3, 1).reshape(-1, C)
        xp = _xp(x)

        self._train = bool(Config.train)
        if self._train:
            mean = x.mean(axis=0)
            var = x.var(axis=0)
            inv_std = 1 / xp.sqrt(var + self.eps)
            m = x.size // gamma.size
            s = m - 1. if m - 1. > 1. else 1.  # noqa: FURB136  (max is F.max here)
            adjust = m / s  # unbiased variance for the running estimate
            self.avg_mean *= self.decay
            self.avg_mean += (1 - self.decay) * mean
            self.avg_var *= self.decay
            self.avg_var += (1 - self.decay) * adjust * var
        else:
            mean = self.avg_mean.copy()
            inv_std = 1 / xp.sqrt(self.avg_var + self.eps)
        self._mean = mean
        self.inv_std = inv_std
        y = gamma * ((x - mean) * inv_std) + beta

        if x_ndim == 4:
            y = y.reshape(N, H, W, C).transpose(0, 3, 1, 2)
        return y

    def backward(self, gy):
        x, gamma, _ = self.inputs
        four_d = gy.ndim == 4
        if four_d:
            N, C, H, W = gy.shape
            gy = gy.transpose(0, 2, 3, 1).reshape(-1, C)
            x = x.transpose(0, 2, 3, 1).reshape(-1, C)
        m = len(gy)

        if self._train:
            mean = sum(x, axis=0) / m
        else:
            mean = self._mean
        xc = (x - mean) * self.inv_std
        gbeta = sum(gy, axis=0)
        ggamma = sum(xc * gy, axis=0)
        if self._train:
            gx = (gy - gbeta / m - xc * ggamma / m) * (gamma * self.inv_std)
        else:
            gx = gy * (gamma * self.inv_std)

        if four_d:
            gx = gx.reshape(N, H, W, C).transpose(0, 3, 1, 2)
        return gx, ggamma, gbeta


def batch_nrom(x, gamma, beta, mean, var, decay=0.9, eps=2e-5):
    """DeZero's (misspelled) batch normalisation; see :class:`BatchNorm`."""
    return BatchNorm(mean, var, decay, eps)(x, gamma, beta)


batch_norm = batch_nrom


# =============================================================================
# clip
# =============================================================================
class Clip(Function):
    """y = min(max(x, x_min), x_max);  gx = gy * [x_min <= x <= x_max]."""

    def __init__(self, x_min, x_max):
        self.x_min = x_min
        self.x_max = x_max

    def forward(self, x):
        return _xp(x).clip(x, self.x_min, self.x_max)

    def backward(self, gy):
        x, = self.inputs
        mask = ((x.data >= self.x_min) * (x.data <= self.x_max)).astype(gy.dtype)
        return gy * mask


def clip(x, x_min, x_max):
    """x limited to [x_min, x_max]; the gradient flows where x is inside."""
    return Clip(x_min, x_max)(x)


# =============================================================================
# Beyond DeZero: batched matmul, layer normalisation, attention
# =============================================================================
def _swap_last(x):
    """x with its last two axes swapped (a transpose, differentiable)."""
    axes = tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2)
    return transpose(x, axes)


class BatchedMatMul(Function):
    """y = a @ b under NumPy's matmul rules: stacks of matrices in the last
    two axes, the leading axes broadcast. With ^T swapping the last two axes,
    ga = sum_to(gy @ b^T, a.shape) and gb = sum_to(a^T @ gy, b.shape)."""

    def forward(self, a, b):
        return _xp(a).matmul(a, b)

    def backward(self, gy):
        a, b = self.inputs
        ga = batched_matmul(gy, _swap_last(b))
        gb = batched_matmul(_swap_last(a), gy)
        if ga.shape != a.shape:
            ga = sum_to(ga, a.shape)
        if gb.shape != b.shape:
            gb = sum_to(gb, b.shape)
        return ga, gb


def batched_matmul(a, b):
    """a @ b for arrays of 2 or more axes with NumPy's ``matmul`` semantics
    (``matmul`` is DeZero's, which takes 2-d operands)."""
    a, b = as_variable(a), as_variable(b)
    if a.ndim < 2 or b.ndim < 2 or a.shape[-1] != b.shape[-2]:
        raise ValueError('batched_matmul: needs operands of 2 or more axes with '
                         f'a.shape[-1] == b.shape[-2], got {a.shape} and {b.shape}')
    return BatchedMatMul()(a, b)


class LayerNorm(Function):
    """Layer normalisation over the last axis (D entries): with
    xhat = (x - mean) / sqrt(var + eps) (biased variance),
    y = gamma * xhat + beta. Means below are over the last axis:
    gbeta = sum(gy), ggamma = sum(gy * xhat) over the leading axes, and
    gx = (g - mean(g) - xhat * mean(g * xhat)) / sqrt(var + eps) with
    g = gy * gamma. The backward is written with Variable operations, so it
    can be differentiated again."""

    def __init__(self, eps=1e-5):
        self.eps = eps

    def forward(self, x, gamma, beta):
        xp = _xp(x)
        xc = x - x.mean(axis=-1, keepdims=True)
        var = (xc * xc).mean(axis=-1, keepdims=True)
        return xc / xp.sqrt(var + self.eps) * gamma + beta

    def backward(self, gy):
        x, gamma, beta = self.inputs
        D = x.shape[-1]
        xc = x - sum(x, axis=-1, keepdims=True) / D
        inv_std = (sum(xc * xc, axis=-1, keepdims=True) / D + self.eps) ** -0.5
        xhat = xc * inv_std
        g = gy * gamma
        gx = (g - sum(g, axis=-1, keepdims=True) / D
              - xhat * (sum(g * xhat, axis=-1, keepdims=True) / D)) * inv_std
        return gx, sum_to(gy * xhat, gamma.shape), sum_to(gy, beta.shape)


def layer_norm(x, gamma, beta, eps=1e-5):
    """Normalise each vector along the last axis to zero mean and unit
    (biased) variance, then scale by ``gamma`` and shift by ``beta`` (both
    of shape (D,)); see :class:`LayerNorm`."""
    x = as_variable(x)
    D = x.shape[-1] if x.ndim else None
    for name, p in (('gamma', gamma), ('beta', beta)):
        if getattr(p, 'shape', None) != (D,):
            raise ValueError(f'layer_norm: {name} must have shape ({D},) to match '
                             f'x.shape={x.shape}, got {getattr(p, "shape", None)}')
    return LayerNorm(eps)(x, gamma, beta)


class _MaskedSoftmax(Softmax):
    """Softmax in which a row whose entries are all -inf (nothing takes
    part) gives zeros instead of NaN, as PyTorch's attention does; such a
    row's gradient is then zero too. The backward is Softmax's."""

    def forward(self, x):
        xp = _xp(x)
        m = x.max(axis=self.axis, keepdims=True)
        m = xp.where(xp.isneginf(m), xp.zeros((), x.dtype), m)
        y = xp.exp(x - m)
        s = y.sum(axis=self.axis, keepdims=True)
        y /= xp.where(s == 0, xp.ones((), x.dtype), s)
        return y


def scaled_dot_product_attention(q, k, v, mask=None, is_causal=False, scale=None,
                                 dropout_p=0.0):
    """softmax(q @ k^T * scale + bias, axis=-1) @ v for q (..., L, E),
    k (..., S, E), v (..., S, Ev), leading axes broadcast; ``scale``
    defaults to 1 / sqrt(E).

    ``mask`` (broadcast to (..., L, S)) is PyTorch's: a boolean array whose
    True entries take part (False ones get -inf before the softmax), or a
    float array added to the scores. ``is_causal`` lets position i attend
    to positions j <= i. A row where nothing takes part gives zeros (and
    zero gradients), as PyTorch 2.13 gives.
    ``dropout_p`` drops attention weights as ``dropout`` does, in training
    only (``Config.train``).
    """
    q, k, v = as_variable(q), as_variable(k), as_variable(v)
    L, S = q.shape[-2], k.shape[-2]
    if scale is None:
        scale = 1.0 / float(np.sqrt(q.shape[-1]))
    scores = batched_matmul(q, _swap_last(k)) * scale
    xp = _xp(scores.data)
    if is_causal:
        if mask is not None:
            raise ValueError('scaled_dot_product_attention: give mask or is_causal, '
                             'not both')
        mask = xp.tril(xp.ones((L, S), dtype=bool))
    if mask is not None:
        m = mask.data if isinstance(mask, Variable) else xp.asarray(mask)
        if m.dtype == bool:
            neg_inf = xp.array(-np.inf, dtype=scores.dtype)
            scores = scores + xp.where(m, xp.zeros((), scores.dtype), neg_inf)
        else:
            scores = scores + mask
    weights = _MaskedSoftmax(-1)(scores) if mask is not None else softmax(scores, axis=-1)
    if dropout_p > 0:
        weights = dropout(weights, dropout_p)
    return batched_matmul(weights, v)


# =============================================================================
# conv2d and friends (written in functions_conv, which may be absent)
# =============================================================================
try:
    from cydezero.functions_conv import (  # noqa: F401
        average_pooling,
        col2im,
        conv2d,
        conv2d_simple,
        deconv2d,
        im2col,
        pooling,
        pooling_simple,
    )
except ImportError:
    pass
