"""DeZero's ``dezero.functions_conv``: 2-d convolution, transposed
convolution, max and average pooling, and im2col/col2im, on NCHW arrays.

Every backward is built from the Functions in this module, so gradients can
be differentiated again (``backward(create_graph=True)``): conv2d and
deconv2d are each other's input gradient with Conv2DGradW as the weight
gradient, Pooling2DGrad and Pooling2DWithIndexes are each other's adjoint,
and so are Im2col and Col2im.

Shapes: x is (N, C, H, W); a conv2d weight is (OC, C, KH, KW); a deconv2d
weight is (C, OC, KH, KW). Kernel windows are read from a strided view of
the (zero-)padded input, so no Python loop runs over output pixels.

The same bits as DeZero (and Chainer, which DeZero's tests compare with
exact equality): the window contractions are the ``tensordot`` calls DeZero
makes, on operands of the same layout, so the BLAS sums every product in the
same order; window sums are added in DeZero's order (kernel row, then
column); and results have DeZero's memory layout (conv2d's is a transposed
view, col2im's a view into a padded buffer of DeZero's size), so that the
reductions and products that follow round as they do under DeZero.
"""
import numpy as np

from cydezero import cuda
from cydezero._core import (
    Function,
    Variable,
    as_variable,
    broadcast_to,
    linear,
    reshape,
    transpose,
)
from cydezero.utils import get_conv_outsize, get_deconv_outsize, pair


# =============================================================================
# Argument checks and array kernels (on arrays, not Variables)
# =============================================================================
def _geometry(name, kernel_size, stride, pad):
    """(KH, KW), (SH, SW), (PH, PW) from ints or pairs, checked."""
    try:
        k, s, p = pair(kernel_size), pair(stride), pair(pad)
    except ValueError as e:
        raise ValueError(f'{name}: {e}') from None
    if min(k) < 1 or min(s) < 1 or min(p) < 0:
        raise ValueError(f'{name}: kernel_size and stride must be positive and '
                         f'pad non-negative, got kernel_size={kernel_size}, '
                         f'stride={stride}, pad={pad}')
    return k, s, p


def _check_4d(name, what, a):
    if a.ndim != 4:
        raise ValueError(f'{name}: {what} must be 4-d, got {what}.shape={a.shape}')


def _outsize(name, shape, k, s, p):
    """(OH, OW) of a window sweep over an image of ``shape`` (N, C, H, W)."""
    OH = get_conv_outsize(shape[2], k[0], s[0], p[0])
    OW = get_conv_outsize(shape[3], k[1], s[1], p[1])
    if OH < 1 or OW < 1:
        raise ValueError(
            f'{name}: a {k[0]}x{k[1]} kernel does not fit in the padded input '
            f'(input shape {shape}, pad {p}): the output would be {OH}x{OW}')
    return OH, OW


def _pad(img, p, value=0):
    """img with p[0] rows and p[1] columns of ``value`` added on each side."""
    PH, PW = p
    if PH == 0 and PW == 0:
        return img
    xp = cuda.get_array_module(img)
    N, C, H, W = img.shape
    out = xp.full((N, C, H + 2 * PH, W + 2 * PW), value, dtype=img.dtype)
    out[:, :, PH:PH + H, PW:PW + W] = img
    return out


def _windows(img, k, s, p, OH, OW):
    """Read-only strided view (N, C, KH, KW, OH, OW) of the padded image:
    element [n, c, i, j, y, x] is padded[n, c, y * SH + i, x * SW + j]."""
    img = _pad(img, p)
    xp = cuda.get_array_module(img)
    N, C = img.shape[:2]
    sn, sc, sh, sw = img.strides
    shape = (N, C, k[0], k[1], OH, OW)
    strides = (sn, sc, sh, sw, sh * s[0], sw * s[1])
    if xp is np:
        return np.lib.stride_tricks.as_strided(img, shape, strides, writeable=False)
    return xp.lib.stride_tricks.as_strided(img, shape, strides)


def _slab(img, i, j, s, OH, OW):
    """The (N, C, OH, OW) strided view of ``img`` under kernel offset (i, j)."""
    return img[:, :, i:i + s[0] * (OH - 1) + 1:s[0], j:j + s[1] * (OW - 1) + 1:s[1]]


def _col_rows(img, k, s, p, OH, OW):
    """The windows as the C-order (N*OH*OW, C*KH*KW) matrix DeZero
    multiplies, one row per output pixel, columns ordered (c, i, j).

    Its operand layout matters: a BLAS may round a product of the same
    matrices differently when one is passed transposed (OpenBLAS's small-
    matrix kernels do), so this is built in DeZero's layout. Written one
    kernel offset at a time, each a copy whose inner loop runs along an
    image row: 2.3x faster than numpy's copy of the transposed window view
    on a one-channel image (whose inner loop is a kernel row), as fast with
    16 channels."""
    xp = cuda.get_array_module(img)
    N, C = img.shape[:2]
    KH, KW = k
    col = xp.empty((N, OH, OW, C, KH, KW), dtype=img.dtype)
    padded = _pad(img, p)
    for i in range(KH):
        for j in range(KW):
            col[:, :, :, :, i, j] = _slab(padded, i, j, s, OH, OW).transpose(0, 2, 3, 1)
    return col.reshape(N * OH * OW, C * KH * KW)


def _padded_buffer(alloc, img_shape, s, p, dtype):
    """An image buffer with the padding on each side, plus stride - 1 rows
    and columns (as DeZero's col2im allocates), and the (N, C, H, W) view
    of its interior, which is what the caller returns: the same strides as
    DeZero's result."""
    N, C, H, W = img_shape
    PH, PW = p
    buf = alloc((N, C, H + 2 * PH + s[0] - 1, W + 2 * PW + s[1] - 1), dtype=dtype)
    return buf, buf[:, :, PH:PH + H, PW:PW + W]


def _scatter_windows(col, img_shape, k, s, p):
    """Adjoint of :func:`_windows`: add col (N, C, KH, KW, OH, OW) back onto an
    image of ``img_shape`` (N, C, H, W); padding is cut off."""
    xp = cuda.get_array_module(col)
    OH, OW = col.shape[4:]
    img, inner = _padded_buffer(xp.zeros, img_shape, s, p, col.dtype)
    # One strided slice-add per kernel offset (KH*KW of them): the slabs of
    # different offsets overlap when stride < kernel, so they cannot be
    # written in one vectorised assignment. Row-major offsets: each pixel
    # sums its entries in DeZero's order.
    for i in range(k[0]):
        for j in range(k[1]):
            _slab(img, i, j, s, OH, OW)[...] += col[:, :, i, j]
    return inner


def im2col_array(img, kernel_size, stride, pad, to_matrix=True):
    """Kernel windows of ``img`` (N, C, H, W) as a new array.

    With ``to_matrix`` the result is (N*OH*OW, C*KH*KW), one row per output
    pixel (n, y, x) and columns ordered (c, i, j); otherwise it is
    (N, C, KH, KW, OH, OW). The input is padded with zeros.
    """
    k, s, p = _geometry('im2col_array', kernel_size, stride, pad)
    _check_4d('im2col_array', 'img', img)
    N = img.shape[0]
    OH, OW = _outsize('im2col_array', img.shape, k, s, p)
    col = _windows(img, k, s, p, OH, OW).copy()
    if not to_matrix:
        return col
    # Reshaped from the (N, C, KH, KW, OH, OW) copy as DeZero reshapes it: a
    # second copy for N > 1, a column-order view for N == 1, so that sums
    # and products over it round as DeZero's do.
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(N * OH * OW, -1)


def col2im_array(col, img_shape, kernel_size, stride, pad, to_matrix=True):
    """Adjoint of :func:`im2col_array`: sum every window entry of ``col`` back
    onto its pixel of an image of shape ``img_shape`` (N, C, H, W); entries
    that fell on the padding are dropped."""
    k, s, p = _geometry('col2im_array', kernel_size, stride, pad)
    N, C = img_shape[:2]
    OH, OW = _outsize('col2im_array', img_shape, k, s, p)
    KH, KW = k
    expected = ((N * OH * OW, C * KH * KW) if to_matrix
                else (N, C, KH, KW, OH, OW))
    if col.shape != expected:
        raise ValueError(f'col2im_array: col.shape={col.shape} but an image of shape '
                         f'{img_shape} with kernel {k} needs {expected}')
    if to_matrix:
        col = col.reshape(N, OH, OW, C, KH, KW).transpose(0, 3, 4, 5, 1, 2)
    return _scatter_windows(col, img_shape, k, s, p)


# =============================================================================
# conv2d / deconv2d
# =============================================================================
class _ConvBase(Function):
    """Remembers which inputs arrived as Variables, so backward skips the
    gradient of a plain-array input (the engine would discard it)."""

    def __call__(self, *inputs):
        self._is_var = [isinstance(x, Variable) for x in inputs]
        return super().__call__(*inputs)

    def _wants(self, i):
        is_var = getattr(self, '_is_var', None)
        return is_var is None or is_var[i]


def _bias_grad(gy, b):
    """gb = sum of gy over every axis but the channel axis, shaped like b."""
    gb = gy.sum(axis=(0, 2, 3))
    return gb if gb.shape == b.shape else reshape(gb, b.shape)


def _check_bias(name, b, channels, W):
    if b is not None and b.size != channels:
        raise ValueError(f'{name}: b has {b.size} elements but W.shape={W.shape} '
                         f'gives {channels} output channels (b.shape={b.shape})')


def _check_channels(name, x, W, C):
    if x.shape[1] != C:
        raise ValueError(f'{name}: x has {x.shape[1]} channels but W expects {C} '
                         f'(x.shape={x.shape}, W.shape={W.shape})')


class Conv2d(_ConvBase):
    """y[n, o] = sum_{c,i,j} W[o, c, i, j] * xpad[n, c, y*SH + i, x*SW + j] + b[o].

    gx = deconv2d(gy, W) (the transposed convolution, cut to x's size),
    gW = Conv2DGradW(x, gy) (gy correlated with the windows of x),
    gb = sum of gy over N, OH, OW.
    """

    def __init__(self, stride=1, pad=0):
        super().__init__()
        self.stride = pair(stride)
        self.pad = pair(pad)

    def forward(self, x, W, b):
        _check_4d('conv2d', 'x', x)
        _check_4d('conv2d', 'W', W)
        OC, C, KH, KW = W.shape
        _check_channels('conv2d', x, W, C)
        _check_bias('conv2d', b, OC, W)
        k, s, p = _geometry('conv2d', (KH, KW), self.stride, self.pad)
        N = x.shape[0]
        OH, OW = _outsize('conv2d', x.shape, k, s, p)
        xp = cuda.get_array_module(x)
        # DeZero's product (see the module docstring), operands laid out as
        # its tensordot lays them out: the (N*OH*OW, C*KH*KW) windows times W
        # as a (C*KH*KW, OC) view, giving (N, OH, OW, OC).
        Wm = W.transpose(1, 2, 3, 0).reshape(C * KH * KW, OC)
        y = xp.dot(_col_rows(x, k, s, p, OH, OW), Wm).reshape(N, OH, OW, OC)
        if b is not None:
            y += b.reshape(OC)
        return y.transpose(0, 3, 1, 2)

    def backward(self, gy):
        x, W, b = self.inputs
        gx = None
        if self._wants(0):
            gx = deconv2d(gy, W, b=None, stride=self.stride, pad=self.pad,
                          outsize=x.shape[2:])
        gW = Conv2DGradW(self)(x, gy) if self._wants(1) else None
        gb = None if b.data is None else _bias_grad(gy, b)
        return gx, gW, gb


def conv2d(x, W, b=None, stride=1, pad=0):
    """2-d convolution (cross-correlation) of x (N, C, H, W) with W
    (OC, C, KH, KW), plus b (OC,); zero padding ``pad``, step ``stride``
    (ints or pairs). Returns (N, OC, OH, OW)."""
    return Conv2d(stride, pad)(x, W, b)


class Deconv2d(_ConvBase):
    """Transposed convolution: the input gradient of conv2d with weight W
    (C, OC, KH, KW), mapping x (N, C, H, W) to y (N, OC, OH, OW) with
    OH = SH (H - 1) + KH - 2 PH unless ``outsize`` says otherwise; plus b.

    gx = conv2d(gy, W), gW = Conv2DGradW(gy, x), gb = sum of gy over N, OH, OW.
    """

    def __init__(self, stride=1, pad=0, outsize=None):
        super().__init__()
        self.stride = pair(stride)
        self.pad = pair(pad)
        self.outsize = outsize

    def forward(self, x, W, b):
        _check_4d('deconv2d', 'x', x)
        _check_4d('deconv2d', 'W', W)
        C, OC, KH, KW = W.shape
        _check_channels('deconv2d', x, W, C)
        N, _, H, Wd = x.shape
        _check_bias('deconv2d', b, OC, W)
        k, s, p = _geometry('deconv2d', (KH, KW), self.stride, self.pad)
        if self.outsize is None:
            out_h = get_deconv_outsize(H, KH, s[0], p[0])
            out_w = get_deconv_outsize(Wd, KW, s[1], p[1])
        else:
            out_h, out_w = self.outsize
        if (out_h < 1 or out_w < 1 or get_conv_outsize(out_h, KH, s[0], p[0]) != H
                or get_conv_outsize(out_w, KW, s[1], p[1]) != Wd):
            raise ValueError(
                f'deconv2d: an output of {out_h}x{out_w} is not one that a '
                f'{KH}x{KW} kernel with stride {s} and pad {p} maps back to the '
                f'input size {H}x{Wd} (x.shape={x.shape}, W.shape={W.shape}, '
                f'outsize={self.outsize})')
        # gcol[n, o, i, j, y, x] = sum_c W[c, o, i, j] x[n, c, y, x], as
        # DeZero contracts it (an (OC*KH*KW, C) by (C, N*H*W) product).
        xp = cuda.get_array_module(x)
        gcol = xp.moveaxis(xp.tensordot(W, x, (0, 1)), 3, 0)
        y = _scatter_windows(gcol, (N, OC, out_h, out_w), k, s, p)
        if b is not None:
            y += b.reshape(1, OC, 1, 1)
        return y

    def backward(self, gy):
        x, W, b = self.inputs
        gx = None
        if self._wants(0):
            gx = conv2d(gy, W, b=None, stride=self.stride, pad=self.pad)
        gW = Conv2DGradW(self)(gy, x) if self._wants(1) else None
        gb = None if b.data is None else _bias_grad(gy, b)
        return gx, gW, gb


def deconv2d(x, W, b=None, stride=1, pad=0, outsize=None):
    """Transposed 2-d convolution of x (N, C, H, W) with W (C, OC, KH, KW),
    plus b (OC,); ``outsize`` (OH, OW) picks the output size when several
    map back to H, W under the stride. Returns (N, OC, OH, OW)."""
    return Deconv2d(stride, pad, outsize)(x, W, b)


class Conv2DGradW(Function):
    """Weight gradient of a convolution:
    gW[o, c, i, j] = sum_{n,y,x} gy[n, o, y, x] * xpad[n, c, y*SH + i, x*SW + j]
    with the kernel size, stride and pad of the Conv2d (or Deconv2d) given.

    It is linear in each input, so with ggW the gradient arriving at gW:
    gx = deconv2d(gy, ggW) and ggy = conv2d(x, ggW).
    """

    def __init__(self, conv2d):
        super().__init__()
        W = conv2d.inputs[1]
        self.kernel_size = W.shape[2:]
        self.stride = conv2d.stride
        self.pad = conv2d.pad

    def forward(self, x, gy):
        _check_4d('Conv2DGradW', 'x', x)
        _check_4d('Conv2DGradW', 'gy', gy)
        k, s, p = _geometry('Conv2DGradW', self.kernel_size, self.stride, self.pad)
        N, C = x.shape[:2]
        OH, OW = _outsize('Conv2DGradW', x.shape, k, s, p)
        if gy.shape[0] != N or gy.shape[2:] != (OH, OW):
            raise ValueError(f'Conv2DGradW: gy.shape={gy.shape} does not match the '
                             f'{OH}x{OW} output of x.shape={x.shape}')
        # DeZero's product, laid out as its tensordot lays it out: gy as
        # (OC, N*OH*OW) times the windows as (N*OH*OW, C*KH*KW).
        xp = cuda.get_array_module(x)
        OC = gy.shape[1]
        gy_m = gy.transpose(1, 0, 2, 3).reshape(OC, N * OH * OW)
        gW = xp.dot(gy_m, _col_rows(x, k, s, p, OH, OW))
        return gW.reshape(OC, C, k[0], k[1])

    def backward(self, gys):
        ggW = gys  # DeZero's parameter name; it is the one gradient, at gW
        x, gy = self.inputs
        gx = deconv2d(gy, ggW, b=None, stride=self.stride, pad=self.pad,
                      outsize=x.shape[2:])
        ggy = conv2d(x, ggW, b=None, stride=self.stride, pad=self.pad)
        return gx, ggy


# =============================================================================
# Max pooling
# =============================================================================
def _max_windows(x, k, s, p, OH, OW):
    """Window maxima (N, C, OH, OW) and, per window, the flat kernel offset
    i * KW + j of its first maximum (as argmax would pick). Padding counts as
    zeros, as in DeZero."""
    xp = cuda.get_array_module(x)
    N, C = x.shape[:2]
    K = k[0] * k[1]
    # Offset-major contiguous copy: the comparisons below then run on
    # contiguous memory instead of re-reading strided windows each time.
    win = _windows(x, k, s, p, OH, OW).transpose(2, 3, 0, 1, 4, 5)
    cols = xp.ascontiguousarray(win).reshape(K, N, C, OH, OW)
    y = cols.max(axis=0)
    # The first offset holding the maximum, with arithmetic instead of masked
    # copies: on random data the masks defeat branch prediction and masked
    # copies ran three times slower. The offsets are int8 where they fit
    # (DeZero's argmax gives int64, same values): int64 made pooling's
    # forward plus backward 40% slower.
    idx = xp.full(y.shape, K - 1, dtype=np.int8 if K <= 127 else np.int64)
    for m in range(K - 2, -1, -1):
        hit = cols[m] == y
        idx -= hit * (idx - m)
    nan = xp.isnan(y)
    if nan.any():  # argmax's answer for a window holding NaN: its first NaN
        idx[nan] = xp.isnan(cols[:, nan]).argmax(axis=0)
    return y, idx


class Pooling(Function):
    """Max pooling: y[n, c, y, x] = max over the KH x KW window (zero padded).

    gx sends each gy to the argmax of its window (Pooling2DGrad), which
    remembers the argmax from this forward.
    """

    def __init__(self, kernel_size, stride=1, pad=0):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.pad = pad

    def forward(self, x):
        _check_4d('pooling', 'x', x)
        k, s, p = _geometry('pooling', self.kernel_size, self.stride, self.pad)
        OH, OW = _outsize('pooling', x.shape, k, s, p)
        y, self.indexes = _max_windows(x, k, s, p, OH, OW)
        return y

    def backward(self, gy):
        return Pooling2DGrad(self)(gy)


class _FromPooling(Function):
    """A Function that reuses a max Pooling's geometry and argmax indexes."""

    def __init__(self, mpool2d):
        super().__init__()
        self.mpool2d = mpool2d
        self.kernel_size = mpool2d.kernel_size
        self.stride = mpool2d.stride
        self.pad = mpool2d.pad
        self.input_shape = mpool2d.inputs[0].shape
        self.dtype = mpool2d.inputs[0].dtype
        self.indexes = mpool2d.indexes


class Pooling2DGrad(_FromPooling):
    """Gradient of max pooling: gx = sum over windows of gy placed at each
    window's argmax (from the Pooling given). Linear in gy, and its adjoint
    is Pooling2DWithIndexes: ggy = Pooling2DWithIndexes(ggx)."""

    def forward(self, gy):
        k, s, p = _geometry('Pooling2DGrad', self.kernel_size, self.stride, self.pad)
        if gy.shape != self.indexes.shape:
            raise ValueError(f'Pooling2DGrad: gy.shape={gy.shape} but the pooling '
                             f'output is {self.indexes.shape}')
        xp = cuda.get_array_module(gy)
        N, C, H, W = self.input_shape
        OH, OW = gy.shape[2:]
        PH, PW = p
        disjoint = s[0] >= k[0] and s[1] >= k[1]
        # Windows that tile the padded image exactly write every pixel.
        tiled = (s == k and OH * k[0] == H + 2 * PH and OW * k[1] == W + 2 * PW)
        alloc = xp.empty if tiled else xp.zeros
        gx, inner = _padded_buffer(alloc, self.input_shape, s, p, self.dtype)
        # gy * hit is the fast select, but inf * 0 would put NaN beside the
        # maximum; a non-finite gy takes the exact (slower) where().
        finite = bool(xp.isfinite(gy).all())
        zero = xp.zeros((), dtype=self.dtype)
        for i in range(k[0]):
            for j in range(k[1]):
                hit = self.indexes == i * k[1] + j
                g = gy * hit if finite else xp.where(hit, gy, zero)
                slab = _slab(gx, i, j, s, OH, OW)
                if disjoint:  # no pixel is in two windows: write, do not add
                    slab[...] = g
                else:
                    slab += g
        return inner

    def backward(self, ggx):
        return Pooling2DWithIndexes(self.mpool2d)(ggx)


class Pooling2DWithIndexes(_FromPooling):
    """y[n, c, y, x] = x at the window position that was the argmax in the
    Pooling given (not the argmax of this x). Linear in x; its adjoint is
    Pooling2DGrad: gx = Pooling2DGrad(gy)."""

    def forward(self, x):
        k, s, p = _geometry('Pooling2DWithIndexes', self.kernel_size, self.stride,
                            self.pad)
        if x.shape != tuple(self.input_shape):
            raise ValueError(f'Pooling2DWithIndexes: x.shape={x.shape} but the '
                             f'pooling input was {self.input_shape}')
        OH, OW = self.indexes.shape[2:]
        xpad = _pad(x, p)
        xp = cuda.get_array_module(x)
        y = _slab(xpad, 0, 0, s, OH, OW).copy()
        for i in range(k[0]):
            for j in range(k[1]):
                if i or j:
                    xp.copyto(y, _slab(xpad, i, j, s, OH, OW),
                              where=self.indexes == i * k[1] + j)
        return y

    def backward(self, gy):
        return Pooling2DGrad(self.mpool2d)(gy)


def pooling(x, kernel_size, stride=1, pad=0):
    """Max pooling of x (N, C, H, W) over KH x KW windows (zero padding)."""
    return Pooling(kernel_size, stride, pad)(x)


# =============================================================================
# Average pooling
# =============================================================================
class AveragePooling(Function):
    """y[n, c, y, x] = mean over the KH x KW window (zero padding counts);
    gx = col2im of gy / (KH KW) spread over every window position."""

    def __init__(self, kernel_size, stride=1, pad=0):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.pad = pad
        self.input_shape = None

    def forward(self, x):
        _check_4d('average_pooling', 'x', x)
        k, s, p = _geometry('average_pooling', self.kernel_size, self.stride, self.pad)
        OH, OW = _outsize('average_pooling', x.shape, k, s, p)
        self.input_shape = x.shape
        xpad = _pad(x, p)
        y = _slab(xpad, 0, 0, s, OH, OW).copy()
        for i in range(k[0]):
            for j in range(k[1]):
                if i or j:
                    y += _slab(xpad, i, j, s, OH, OW)
        y /= k[0] * k[1]
        return y

    def backward(self, gy):
        KH, KW = pair(self.kernel_size)
        N, C, OH, OW = gy.shape
        g = reshape(gy / (KH * KW), (N, C, 1, 1, OH, OW))
        gcol = broadcast_to(g, (N, C, KH, KW, OH, OW))
        return col2im(gcol, self.input_shape, self.kernel_size, self.stride, self.pad,
                      to_matrix=False)


def average_pooling(x, kernel_size, stride=1, pad=0):
    """Average pooling of x (N, C, H, W) over KH x KW windows (zero padding)."""
    return AveragePooling(kernel_size, stride, pad)(x)


# =============================================================================
# im2col / col2im as Functions
# =============================================================================
class Im2col(Function):
    """y = the kernel windows of x (see :func:`im2col_array`);
    gx = col2im(gy), the adjoint, which adds each entry back to its pixel."""

    def __init__(self, kernel_size, stride, pad, to_matrix):
        super().__init__()
        self.input_shape = None
        self.kernel_size = kernel_size
        self.stride = stride
        self.pad = pad
        self.to_matrix = to_matrix

    def forward(self, x):
        self.input_shape = x.shape
        return im2col_array(x, self.kernel_size, self.stride, self.pad,
                            self.to_matrix)

    def backward(self, gy):
        return col2im(gy, self.input_shape, self.kernel_size, self.stride, self.pad,
                      self.to_matrix)


def im2col(x, kernel_size, stride=1, pad=0, to_matrix=True):
    """Differentiable :func:`im2col_array`: x (N, C, H, W) to
    (N*OH*OW, C*KH*KW), or (N, C, KH, KW, OH, OW) without ``to_matrix``."""
    return Im2col(kernel_size, stride, pad, to_matrix)(x)


class Col2im(Function):
    """y = col2im_array(x) (window entries summed onto their pixels);
    gx = im2col(gy), the adjoint."""

    def __init__(self, input_shape, kernel_size, stride, pad, to_matrix):
        super().__init__()
        self.input_shape = input_shape
        self.kernel_size = kernel_size
        self.stride = stride
        self.pad = pad
        self.to_matrix = to_matrix

    def forward(self, x):
        return col2im_array(x, self.input_shape, self.kernel_size, self.stride,
                            self.pad, self.to_matrix)

    def backward(self, gy):
        return im2col(gy, self.kernel_size, self.stride, self.pad, self.to_matrix)


def col2im(x, input_shape, kernel_size, stride=1, pad=0, to_matrix=True):
    """Differentiable :func:`col2im_array`: windows back to an image of
    ``input_shape``, overlapping entries summed."""
    return Col2im(input_shape, kernel_size, stride, pad, to_matrix)(x)


# =============================================================================
# The book's versions built from im2col and elementary Functions
# =============================================================================
def conv2d_simple(x, W, b=None, stride=1, pad=0):
    """conv2d as im2col, then a matrix product with W reshaped to
    (C*KH*KW, OC), then back to (N, OC, OH, OW): several graph nodes, same
    values and gradients as :func:`conv2d`."""
    x, W = as_variable(x), as_variable(W)
    _check_4d('conv2d_simple', 'x', x)
    _check_4d('conv2d_simple', 'W', W)
    N = x.shape[0]
    OC, C, KH, KW = W.shape
    _check_channels('conv2d_simple', x, W, C)
    k, s, p = _geometry('conv2d_simple', (KH, KW), stride, pad)
    OH, OW = _outsize('conv2d_simple', x.shape, k, s, p)
    col = im2col(x, (KH, KW), stride, pad, to_matrix=True)
    Wm = transpose(reshape(W, (OC, -1)))
    t = linear(col, Wm, b)
    return transpose(reshape(t, (N, OH, OW, OC)), (0, 3, 1, 2))


def pooling_simple(x, kernel_size, stride=1, pad=0):
    """Max pooling as im2col, then max over each window row: same values and
    gradients as :func:`pooling` (up to which of tied maxima gets gy)."""
    x = as_variable(x)
    _check_4d('pooling_simple', 'x', x)
    N, C = x.shape[:2]
    k, s, p = _geometry('pooling_simple', kernel_size, stride, pad)
    OH, OW = _outsize('pooling_simple', x.shape, k, s, p)
    col = im2col(x, kernel_size, stride, pad, to_matrix=True)
    col = reshape(col, (-1, k[0] * k[1]))
    y = col.max(axis=1)
    return transpose(reshape(y, (N, OH, OW, C)), (0, 3, 1, 2))
