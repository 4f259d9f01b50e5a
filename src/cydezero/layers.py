"""DeZero's ``dezero.layers``: Layer, the container of Parameters and
sub-Layers, and the layers built on it (Linear, Conv2d, Deconv2d, RNN, LSTM,
EmbedID, BatchNorm). Seeded initialisation draws the same random numbers in
the same order as DeZero 0.0.13, so ``np.random.seed(s)`` gives the same
weights.

Where this differs from DeZero 0.0.13, and why:

- ``params()`` walks attributes in registration order (DeZero iterates a
  ``set`` of names, so its order changes with string hashing from run to
  run), and yields a Parameter shared by several layers once (DeZero yields
  it once per path, so an optimizer updated it several times per step).
  Re-assigning a registered attribute to something that is neither a
  Parameter nor a Layer (``self.b = None``) unregisters it.
- Weights honour ``dtype``: under NumPy 2 DeZero's ``randn(...).astype(dtype)
  * np.sqrt(1 / I)`` promotes to float64 whatever ``dtype`` says. Here the
  float64 product is rounded once to ``dtype``, so float32 weights equal
  DeZero's (float64) weights cast to float32, and ``dtype=np.float64`` gives
  DeZero's weights exactly.
- ``RNN(hidden_size, in_size)`` gives ``h2h`` the shape (hidden_size,
  hidden_size) (DeZero gave it in_size rows, which broke the second step
  whenever in_size != hidden_size); with ``in_size=None`` the draws are
  DeZero's.
- ``save_weights`` writes to a temporary file in the target's directory and
  renames it into place, so a failure leaves neither a partial file nor a
  clobbered old one; a parameter without data is an error (DeZero pickled
  ``None`` into a file ``np.load`` then refused), and the model stays on its
  device (DeZero moved it to the CPU). ``load_weights`` accepts the path
  without ``.npz``, checks every key and shape before assigning anything,
  and names what is missing.
- A layer pickles (and deep-copies) after it has been called: the weak
  references to the last call's inputs and outputs are left out.
"""
import os
import weakref
import zipfile

import numpy as np

import cydezero.functions as F
from cydezero import cuda
from cydezero._core import Parameter
from cydezero.utils import pair


# =============================================================================
# Layer (base class)
# =============================================================================
class MissingWeightError(KeyError):
    """A key that ``load_weights`` needs is not in the file (a KeyError, as
    DeZero raised, whose message prints without quotes)."""

    def __str__(self):
        return str(self.args[0]) if self.args else ''


def _ref(x):
    """A weak reference to x, or (for ints, lists, ... which cannot have
    one) a callable returning x."""
    try:
        return weakref.ref(x)
    except TypeError:
        return lambda: x


def _npz_path(path):
    path = os.fspath(path)
    return path if path.endswith('.npz') else path + '.npz'


def _write_npz(f, arrays):
    """np.savez_compressed's format, written member by member (so no
    attribute name can clash with savez's own keyword arguments)."""
    with zipfile.ZipFile(f, mode='w', compression=zipfile.ZIP_DEFLATED,
                         allowZip64=True) as zf:
        for key, arr in arrays.items():
            with zf.open(key + '.npy', 'w', force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(arr),
                                          allow_pickle=False)


def _save_npz(path, arrays):
    """Write ``arrays`` to the ``.npz`` file ``path`` (or an open file) so
    that it appears complete or not at all: written to a temporary file in
    the same directory, then renamed over ``path``. ``save_weights`` and the
    optimizers' ``save_state`` both write through this."""
    if hasattr(path, 'write'):  # an open file: no rename possible
        _write_npz(path, arrays)
        return
    path = _npz_path(path)
    directory, base = os.path.split(os.path.abspath(path))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_BINARY', 0)
    while True:
        tmp = os.path.join(directory, f'.{base}.{os.urandom(6).hex()}.tmp')
        try:
            fd = os.open(tmp, flags, 0o666)  # mode as np.savez's, via umask
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, 'wb') as f:
            _write_npz(f, arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


class Layer:
    """A container of Parameters and sub-Layers.

    Assigning a Parameter or a Layer to an attribute registers it under the
    attribute's name; ``params()`` then yields every Parameter below this
    layer, in registration order. Subclasses implement ``forward``.
    """

    def __init__(self):
        object.__setattr__(self, '_params', {})  # an ordered set of names

    def __setattr__(self, name, value):
        registered = self.__dict__.get('_params')
        if registered is None:
            # Before super().__init__(): DeZero accepts a plain value (code in
            # the wild sets one first), but has nowhere to register a
            # Parameter or a Layer yet.
            if isinstance(value, (Parameter, Layer)):
                raise AttributeError(
                    f'{type(self).__name__}: call super().__init__() before '
                    f'assigning a {type(value).__name__} (tried to set {name!r})')
        elif isinstance(value, (Parameter, Layer)):
            registered[name] = None
        elif name in registered:
            del registered[name]
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        object.__delattr__(self, name)
        self.__dict__.get('_params', {}).pop(name, None)

    def __call__(self, *inputs):
        outputs = self.forward(*inputs)
        if not isinstance(outputs, tuple):
            outputs = (outputs,)
        d = self.__dict__
        d['inputs'] = [_ref(x) for x in inputs]
        d['outputs'] = [_ref(y) for y in outputs]
        return outputs if len(outputs) > 1 else outputs[0]

    def __getstate__(self):
        # The weak references to the last call's inputs and outputs do not
        # pickle (DeZero's layers could not be pickled once called).
        state = self.__dict__.copy()
        state.pop('inputs', None)
        state.pop('outputs', None)
        return state

    def forward(self, inputs):
        """The layer's computation; a subclass defines it (``__call__`` runs it)."""
        raise NotImplementedError(
            f'{type(self).__name__} does not implement forward()')

    def _walk(self):
        d = self.__dict__
        for name in self._params:
            obj = d[name]
            if isinstance(obj, Layer):
                yield from obj._walk()
            else:
                yield obj

    def params(self):
        """Iterate over every Parameter of this layer and its sub-layers,
        depth first in registration order, each Parameter once."""
        # Parameters hash by identity; a dict keeps the first occurrence.
        return iter(dict.fromkeys(self._walk()))

    def _named_params(self, parent_key=''):
        """(slash-joined attribute path, Parameter) for every path, as
        DeZero's ``_flatten_params`` (a shared Parameter under each path)."""
        for name in self._params:
            obj = self.__dict__[name]
            key = parent_key + '/' + name if parent_key else name
            if isinstance(obj, Layer):
                yield from obj._named_params(key)
            else:
                yield key, obj

    def _flatten_params(self, params_dict, parent_key=''):
        params_dict.update(self._named_params(parent_key))

    def cleargrads(self):
        """Clear the gradient of every parameter, in sublayers too."""
        for param in self.params():
            param.cleargrad()

    def to_cpu(self):
        """Move every parameter's data to NumPy."""
        for param in self.params():
            param.to_cpu()

    def to_gpu(self):
        """Move every parameter's data to CuPy (needs CuPy)."""
        for param in self.params():
            param.to_gpu()

    def save_weights(self, path):
        """Write every parameter's data to the ``.npz`` file ``path`` (the
        suffix is added when missing, as np.savez does), compressed, under
        slash-joined attribute paths (``'l1/W'``).

        The file appears complete or not at all: it is written to a
        temporary file in the same directory and renamed over ``path``.
        """
        arrays = {}
        for key, param in self._named_params():
            if param.data is None:
                raise ValueError(
                    f'{type(self).__name__}.save_weights: parameter {key!r} has '
                    'no data (a lazily initialised layer that has not been '
                    'called yet); nothing '
                    'was written')
            arrays[key] = cuda.as_numpy(param.data)

        _save_npz(path, arrays)

    def load_weights(self, path):
        """Set every parameter's data from the ``.npz`` file ``path``
        (written by ``save_weights``; ``path`` may omit ``.npz``).

        Every key is read and checked (present; same shape as a parameter
        that already has data) before any parameter changes. Keys in the
        file that the layer lacks are ignored, as in DeZero.
        """
        if not hasattr(path, 'read'):
            path = os.fspath(path)
            if not os.path.exists(path) and os.path.exists(path + '.npz'):
                path += '.npz'
        named = list(self._named_params())
        with np.load(path, allow_pickle=False) as npz:
            files = set(npz.files)
            missing = [key for key, _ in named if key not in files]
            if missing:
                raise MissingWeightError(
                    '{}.load_weights: {} has no array for {} (it has: {})'.format(
                        type(self).__name__, path, ', '.join(map(repr, missing)),
                        ', '.join(sorted(files)) or 'nothing'))
            arrays = {key: npz[key] for key, _ in named}
        for key, param in named:
            if param.data is not None and param.data.shape != arrays[key].shape:
                raise ValueError(
                    f'{type(self).__name__}.load_weights: {key!r} in {path} has '
                    f'shape {arrays[key].shape} but the parameter has shape '
                    f'{param.data.shape}')
        for key, param in named:
            arr = arrays[key]
            if param.data is not None and cuda.get_array_module(param.data) is not np:
                arr = cuda.as_cupy(arr)
            param.data = arr


# =============================================================================
# Linear / Conv2d / Deconv2d
# =============================================================================
def _scaled_randn(xp, shape, dtype, scale):
    """randn(*shape) cast to dtype, times scale: the product is taken in
    float64 (as DeZero's ``astype(dtype) * np.sqrt(...)`` is under NumPy 2)
    and rounded once to dtype."""
    W = xp.random.randn(*shape).astype(dtype)
    xp.multiply(W, np.float64(scale), out=W, casting='same_kind')
    return W


class Linear(Layer):
    """y = x @ W + b with W (in_size, out_size) drawn from N(0, 1/in_size)
    on the first call when ``in_size`` is None, and b zeros (absent with
    ``nobias``)."""

    def __init__(self, out_size, nobias=False, dtype=np.float32, in_size=None):
        super().__init__()
        self.in_size = in_size
        self.out_size = out_size
        self.dtype = dtype

        self.W = Parameter(None, name='W')
        if self.in_size is not None:
            self._init_W()

        if nobias:
            self.b = None
        else:
            self.b = Parameter(np.zeros(out_size, dtype=dtype), name='b')

    def _init_W(self, xp=np):
        I, O = self.in_size, self.out_size
        self.W.data = _scaled_randn(xp, (I, O), self.dtype, np.sqrt(1 / I))

    def forward(self, x):
        W = self.W
        shape = getattr(x, 'shape', None)
        if W.data is None:
            if not shape:
                raise ValueError('Linear: cannot infer in_size from x with shape '
                                 f'{shape}; give in_size or a 2-d x')
            self.in_size = shape[-1]
            self._init_W(cuda.get_array_module(x))
        elif shape is not None and (not shape or shape[-1] != W.shape[0]):
            raise ValueError(
                f'Linear: x.shape={shape} but W expects in_size={W.shape[0]}')
        return F.linear(x, W, self.b)


class _ConvLayer(Layer):
    _name = ''
    _C_axis = 1  # where the input channels sit in W's shape

    def __init__(self, out_channels, kernel_size, stride=1, pad=0,
                 nobias=False, dtype=np.float32, in_channels=None):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.pad = pad
        self.dtype = dtype

        self.W = Parameter(None, name='W')
        if in_channels is not None:
            self._init_W()

        if nobias:
            self.b = None
        else:
            self.b = Parameter(np.zeros(out_channels, dtype=dtype), name='b')

    def _W_shape(self, C, OC, KH, KW):
        raise NotImplementedError

    def _init_W(self, xp=np):
        C, OC = self.in_channels, self.out_channels
        KH, KW = pair(self.kernel_size)
        scale = np.sqrt(1 / (C * KH * KW))
        self.W.data = _scaled_randn(xp, self._W_shape(C, OC, KH, KW),
                                    self.dtype, scale)

    def _check_input(self, x):
        """Return x's channel count, or raise naming the layer and shapes."""
        shape = getattr(x, 'shape', None)
        if shape is None or len(shape) != 4:
            raise ValueError(
                f'{self._name}: x must be 4-d (N, C, H, W), got x.shape={shape}')
        W = self.W.data
        if W is not None and shape[1] != W.shape[self._C_axis]:
            raise ValueError(f'{self._name}: x.shape={shape} but W expects '
                             f'in_channels={W.shape[self._C_axis]}')
        return shape[1]

    def forward(self, x):
        C = self._check_input(x)
        if self.W.data is None:
            self.in_channels = C
            self._init_W(cuda.get_array_module(x))
        return self._apply(x)


class Conv2d(_ConvLayer):
    """2-d convolution layer: W (out_channels, C, KH, KW) drawn from
    N(0, 1/(C KH KW)) (on the first call when ``in_channels`` is None), b
    zeros (absent with ``nobias``); see ``functions.conv2d``."""
    _name = 'Conv2d'

    def _W_shape(self, C, OC, KH, KW):
        return (OC, C, KH, KW)

    def _apply(self, x):
        return F.conv2d(x, self.W, self.b, self.stride, self.pad)


class Deconv2d(_ConvLayer):
    """Transposed 2-d convolution layer: W (C, out_channels, KH, KW) drawn
    from N(0, 1/(C KH KW)) (on the first call when ``in_channels`` is None),
    b zeros (absent with ``nobias``); see ``functions.deconv2d``."""
    _name = 'Deconv2d'
    _C_axis = 0

    def _W_shape(self, C, OC, KH, KW):
        return (C, OC, KH, KW)

    def _apply(self, x):
        return F.deconv2d(x, self.W, self.b, self.stride, self.pad)


# =============================================================================
# RNN / LSTM
# =============================================================================
class RNN(Layer):
    """Elman RNN: h = tanh(x @ Wx + bx + h_prev @ Wh), the last term absent
    on the first step after ``reset_state()``."""

    def __init__(self, hidden_size, in_size=None):
        super().__init__()
        self.x2h = Linear(hidden_size, in_size=in_size)
        # Lazy with a lazy x2h, so the draws come in DeZero's order.
        self.h2h = Linear(hidden_size, nobias=True,
                          in_size=None if in_size is None else hidden_size)
        self.h = None

    def reset_state(self):
        """Forget the hidden state: the next call starts afresh."""
        self.h = None

    def forward(self, x):
        if self.h is None:
            h_new = F.tanh(self.x2h(x))
        else:
            h_new = F.tanh(self.x2h(x) + self.h2h(self.h))
        self.h = h_new
        return h_new


class LSTM(Layer):
    """LSTM: gates f, i, o = sigmoid(x @ Wx* + b* + h_prev @ Wh*), candidate
    u = tanh(...), c = f * c_prev + i * u, h = o * tanh(c); the h_prev and
    c_prev terms are absent on the first step after ``reset_state()``."""

    def __init__(self, hidden_size, in_size=None):
        super().__init__()
        H, I = hidden_size, in_size
        self.x2f = Linear(H, in_size=I)
        self.x2i = Linear(H, in_size=I)
        self.x2o = Linear(H, in_size=I)
        self.x2u = Linear(H, in_size=I)
        self.h2f = Linear(H, in_size=H, nobias=True)
        self.h2i = Linear(H, in_size=H, nobias=True)
        self.h2o = Linear(H, in_size=H, nobias=True)
        self.h2u = Linear(H, in_size=H, nobias=True)
        self.reset_state()

    def reset_state(self):
        """Forget the hidden state: the next call starts afresh."""
        self.h = None
        self.c = None

    def forward(self, x):
        h = self.h
        if h is None:
            f = F.sigmoid(self.x2f(x))
            i = F.sigmoid(self.x2i(x))
            o = F.sigmoid(self.x2o(x))
            u = F.tanh(self.x2u(x))
        else:
            f = F.sigmoid(self.x2f(x) + self.h2f(h))
            i = F.sigmoid(self.x2i(x) + self.h2i(h))
            o = F.sigmoid(self.x2o(x) + self.h2o(h))
            u = F.tanh(self.x2u(x) + self.h2u(h))

        if self.c is None:
            c_new = i * u
        else:
            c_new = f * self.c + i * u
        h_new = o * F.tanh(c_new)

        self.h, self.c = h_new, c_new
        return h_new


# =============================================================================
# Beyond DeZero: GRU, LayerNorm, Dropout, MultiHeadAttention
# =============================================================================
class GRU(Layer):
    """Gated recurrent unit in PyTorch's formulation, one time step per call:
    r = sigmoid(x @ Wxr + bxr + h @ Whr), z = sigmoid(x @ Wxz + bxz + h @ Whz),
    n = tanh(x @ Wxn + bxn + r * (h @ Whn + bhn)), h_new = (1 - z) * n + z * h.

    After ``reset_state()`` the previous h is zero, and the h terms are left
    out (as LSTM does), so the Wh* get no gradient from that step. Weights
    are drawn as Linear draws them. PyTorch's weights map as
    ``x2r.W = W_ir.T``, ``x2r.b = b_ir + b_hr`` (likewise z),
    ``x2n.b = b_in``, ``h2n.W = W_hn.T``, ``h2n.b = b_hn``.
    """

    def __init__(self, hidden_size, in_size=None):
        super().__init__()
        H, I = hidden_size, in_size
        self.hidden_size = H
        self.x2r = Linear(H, in_size=I)
        self.x2z = Linear(H, in_size=I)
        self.x2n = Linear(H, in_size=I)
        self.h2r = Linear(H, in_size=H, nobias=True)
        self.h2z = Linear(H, in_size=H, nobias=True)
        self.h2n = Linear(H, in_size=H)
        self.reset_state()

    def reset_state(self):
        """Forget the hidden state: the next call starts from h = 0."""
        self.h = None

    def forward(self, x):
        """One time step: x (N, in_size) -> the new hidden state (N,
        hidden_size), which is also kept for the next call."""
        h = self.h
        if h is None:
            r = F.sigmoid(self.x2r(x))
            z = F.sigmoid(self.x2z(x))
            n = F.tanh(self.x2n(x) + r * self.h2n.b)
            h_new = (1 - z) * n
        else:
            r = F.sigmoid(self.x2r(x) + self.h2r(h))
            z = F.sigmoid(self.x2z(x) + self.h2z(h))
            n = F.tanh(self.x2n(x) + r * self.h2n(h))
            h_new = (1 - z) * n + z * h
        self.h = h_new
        return h_new


class LayerNorm(Layer):
    """Layer normalisation over the last axis (``functions.layer_norm``):
    gamma (ones) and beta (zeros) of shape (D,) are created on the first
    call with x's dtype, or at construction when ``in_size`` is given."""

    def __init__(self, eps=1e-5, in_size=None, dtype=np.float32):
        super().__init__()
        self.eps = eps
        self.gamma = Parameter(None, name='gamma')
        self.beta = Parameter(None, name='beta')
        if in_size is not None:
            self._init_params(np, in_size, dtype)

    def _init_params(self, xp, D, dtype):
        self.gamma.data = xp.ones(D, dtype=dtype)
        self.beta.data = xp.zeros(D, dtype=dtype)

    def forward(self, x):
        """Normalise x over its last axis, then scale and shift."""
        if self.gamma.data is None:
            shape = getattr(x, 'shape', ())
            if not shape:
                raise ValueError(f'LayerNorm: x must have at least one axis, got shape '
                                 f'{shape}')
            data = x.data if hasattr(x, 'creator') else x
            self._init_params(cuda.get_array_module(data), shape[-1], data.dtype)
        return F.layer_norm(x, self.gamma, self.beta, self.eps)


class Dropout(Layer):
    """Dropout (``functions.dropout``) as a layer: in training each element
    is zeroed with probability ``dropout_ratio`` and the rest scaled by
    1 / (1 - dropout_ratio); in test mode it passes x through."""

    def __init__(self, dropout_ratio=0.5):
        super().__init__()
        if not 0 <= dropout_ratio <= 1:
            raise ValueError(f'Dropout: dropout_ratio must lie in [0, 1], got '
                             f'{dropout_ratio}')
        self.dropout_ratio = dropout_ratio

    def forward(self, x):
        """x with dropout applied (in training), x itself in test mode."""
        return F.dropout(x, self.dropout_ratio)


class MultiHeadAttention(Layer):
    """Multi-head attention over batch-first sequences: query (N, L, E),
    key (N, S, Ek) and value (N, S, Ev) (key and value default to query).
    Each is projected to E = ``embed_dim`` features (``wq``, ``wk``, ``wv``),
    split into ``num_heads`` heads of E / num_heads, attended with
    ``functions.scaled_dot_product_attention``, joined and projected by
    ``wo``. ``embed_dim`` defaults to the query's last axis, and the input
    sizes are taken on the first call, as Linear does.

    ``mask`` is (L, S) or (N, L, S), boolean with True taking part (as in
    ``scaled_dot_product_attention``; PyTorch's MultiheadAttention reads a
    boolean mask the other way round), or a float array added to the scores.
    ``dropout_ratio`` drops attention weights in training. Returns the
    output only (N, L, E). PyTorch's ``in_proj_weight`` split in three and
    transposed gives ``wq.W``, ``wk.W``, ``wv.W``; ``out_proj.weight.T`` is
    ``wo.W``.
    """

    def __init__(self, num_heads, embed_dim=None, dropout_ratio=0.0, nobias=False):
        super().__init__()
        self.num_heads = num_heads
        self.embed_dim = None
        self.dropout_ratio = dropout_ratio
        self.nobias = nobias
        if embed_dim is not None:
            self._build(embed_dim)

    def _build(self, E):
        if E % self.num_heads:
            raise ValueError(f'MultiHeadAttention: embed_dim {E} is not divisible by '
                             f'num_heads {self.num_heads}')
        self.embed_dim = E
        self.wq = Linear(E, nobias=self.nobias)
        self.wk = Linear(E, nobias=self.nobias)
        self.wv = Linear(E, nobias=self.nobias)
        self.wo = Linear(E, nobias=self.nobias, in_size=E)

    def _heads(self, proj, x):
        """(N, T, C) -> projected, then (N, heads, T, E / heads)."""
        N, T = x.shape[0], x.shape[1]
        y = proj(F.reshape(x, (N * T, x.shape[2])))
        y = F.reshape(y, (N, T, self.num_heads, self.embed_dim // self.num_heads))
        return F.transpose(y, (0, 2, 1, 3))

    def __call__(self, query, key=None, value=None, mask=None):
        # Layer.__call__ takes positional inputs only; mask is a keyword here.
        return super().__call__(query, key, value, mask)

    def forward(self, query, key=None, value=None, mask=None):
        """Attend from query to key/value (both default to query); returns
        (N, L, embed_dim)."""
        key = query if key is None else key
        value = key if value is None else value
        for name, t in (('query', query), ('key', key), ('value', value)):
            if len(getattr(t, 'shape', ())) != 3:
                raise ValueError(f'MultiHeadAttention: {name} must be 3-d (N, T, E), got '
                                 f'shape {getattr(t, "shape", None)}')
        if self.embed_dim is None:
            self._build(query.shape[2])
        N, L = query.shape[0], query.shape[1]
        q = self._heads(self.wq, query)
        k = self._heads(self.wk, key)
        v = self._heads(self.wv, value)
        if mask is not None:
            m = mask.data if hasattr(mask, 'creator') else mask
            if m.ndim == 3:  # (N, L, S): the same mask for every head
                mask = m[:, None]
        y = F.scaled_dot_product_attention(q, k, v, mask=mask,
                                           dropout_p=self.dropout_ratio)
        y = F.reshape(F.transpose(y, (0, 2, 1, 3)), (N * L, self.embed_dim))
        return F.reshape(self.wo(y), (N, L, self.embed_dim))


# =============================================================================
# EmbedID / BatchNorm
# =============================================================================
class EmbedID(Layer):
    """Embedding lookup: y = W[x] for integer ids x, W (in_size, out_size)
    drawn from N(0, 1) in float64 (as DeZero)."""

    def __init__(self, in_size, out_size):
        super().__init__()
        self.W = Parameter(np.random.randn(in_size, out_size), name='W')

    def forward(self, x):
        try:
            return F.embed_id(x, self.W)
        except IndexError as e:
            raise IndexError(
                f'EmbedID: ids must lie in [0, {self.W.shape[0]}): {e}') from None

    def __call__(self, x):
        # DeZero's EmbedID computes in __call__, never through forward, so a
        # subclass that overrides forward still gets the lookup when called.
        return EmbedID.forward(self, x)


class BatchNorm(Layer):
    """Batch normalisation (``functions.batch_nrom``) over axis 1's
    features/channels. gamma (ones), beta (zeros) and the running statistics
    avg_mean (zeros) and avg_var (ones) are created on the first call, with
    x's dtype. The running statistics are Parameters so that save_weights
    stores them, but they never get a gradient."""

    def __init__(self):
        super().__init__()
        self.avg_mean = Parameter(None, name='avg_mean')
        self.avg_var = Parameter(None, name='avg_var')
        self.gamma = Parameter(None, name='gamma')
        self.beta = Parameter(None, name='beta')

    def _init_params(self, x):
        xp = cuda.get_array_module(x)
        D = x.shape[1]
        if self.avg_mean.data is None:
            self.avg_mean.data = xp.zeros(D, dtype=x.dtype)
        if self.avg_var.data is None:
            self.avg_var.data = xp.ones(D, dtype=x.dtype)
        if self.gamma.data is None:
            self.gamma.data = xp.ones(D, dtype=x.dtype)
        if self.beta.data is None:
            self.beta.data = xp.zeros(D, dtype=x.dtype)

    def forward(self, x):
        if self.avg_mean.data is None:
            ndim = getattr(x, 'ndim', None)
            if ndim not in (2, 4):
                raise ValueError('BatchNorm: x must be 2-d (N, D) or 4-d (N, C, H, '
                                 'W), got x.shape={}'.format(getattr(x, 'shape', None)))
            self._init_params(x)
        return F.batch_nrom(x, self.gamma, self.beta, self.avg_mean.data,
                            self.avg_var.data)

    def __call__(self, x):
        # As DeZero's: a call normalises here whatever a subclass's forward
        # does (a GroupNorm written as a BatchNorm subclass relies on it).
        return BatchNorm.forward(self, x)
