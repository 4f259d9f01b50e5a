"""DeZero's ``dezero.utils``: graph drawing, array helpers, gradient
checking, file download into a cache, and convolution size arithmetic."""
import numbers
import os
import shutil
import subprocess
import tempfile
import urllib.request
import warnings

import numpy as np

from cydezero import cuda
from cydezero._core import (  # noqa: F401
    Variable,
    as_variable,
    max_backward_shape,
    reshape_sum_backward,
    sum_to_array,
)


# =============================================================================
# sum_to on arrays
# =============================================================================
class SumToShapeWarning(UserWarning):
    """``sum_to`` was asked for a shape that the array cannot be summed to
    (the shape is not one it could have been broadcast from). DeZero returns
    its sum anyway, of another shape, and code written for it (its own tests
    among it) relies on that, so cydezero does the same and warns.
    ``x_shape`` and ``shape`` are the two shapes, ``result_shape`` the shape
    of what was returned."""

    def __init__(self, x_shape, shape, result_shape):
        self.x_shape, self.shape = tuple(x_shape), tuple(shape)
        self.result_shape = tuple(result_shape)
        super().__init__(
            f'sum_to: an array of shape {self.x_shape} cannot be summed to shape '
            f'{self.shape}; returning what DeZero returns, of shape {self.result_shape}')


def _dezero_sum_axes(ndim, shape):
    """The axes DeZero sums over for sum_to(x, shape), and the leading ones
    it squeezes afterwards (it never checks that shape can be reached)."""
    lead = ndim - len(shape)
    lead_axis = tuple(range(lead))
    return lead_axis + tuple(i + lead for i, s in enumerate(shape) if s == 1), lead_axis


def _dezero_sum_to(x, shape):
    axis, lead_axis = _dezero_sum_axes(x.ndim, shape)
    y = x.sum(axis, keepdims=True)
    return y.squeeze(lead_axis) if lead_axis else y


def sum_to(x, shape):
    """Sum the array ``x`` down to ``shape``, the inverse of broadcasting
    (the engine's ``sum_to_array``). For a shape that ``x`` cannot be summed
    to, warns ``SumToShapeWarning`` and returns DeZero's result (summed over
    the axes where ``shape`` has 1, then squeezed), whatever its shape."""
    try:
        return sum_to_array(x, shape)
    except ValueError:      # the one error it raises: shape is unreachable
        pass
    shape = tuple(shape)
    y = _dezero_sum_to(x, shape)
    warnings.warn(SumToShapeWarning(x.shape, shape, y.shape), stacklevel=2)
    return y


# =============================================================================
# Computational graph as Graphviz DOT text
# =============================================================================
def _var_label(v, verbose=False):
    """A Variable's label in a drawing: its name, plus shape and dtype if
    verbose."""
    label = '' if v.name is None else v.name
    if verbose and v.data is not None:
        if v.name is not None:
            label += ': '
        label += str(v.shape) + ' ' + str(v.dtype)
    return label


def _dot_var(v, verbose=False):
    """One DOT node for a Variable (see _var_label)."""
    return f'{id(v)} [label="{_var_label(v, verbose)}", color=orange, style=filled]\n'


def _dot_func(f):
    """One DOT node for a Function and the edges to and from its variables."""
    txt = f'{id(f)} [label="{type(f).__name__}", color=lightblue, style=filled, shape=box]\n'
    for x in f.inputs:
        txt += f'{id(x)} -> {id(f)}\n'
    for ref in f.outputs:
        y = ref()
        if y is not None:  # an output the user already dropped has no node
            txt += f'{id(f)} -> {id(y)}\n'
    return txt


def get_dot_graph(output, verbose=True):
    """Graphviz DOT text of every function and variable behind ``output``.

    The graph is walked with an explicit stack (no recursion), so graphs of
    any depth work; each function appears once.
    """
    parts = [_dot_var(output, verbose)]    # joined once: += is quadratic on deep graphs
    stack = []
    seen = set()

    def push(f):
        if f is not None and id(f) not in seen:
            seen.add(id(f))
            stack.append(f)

    push(output.creator)
    while stack:
        f = stack.pop()
        parts.append(_dot_func(f))
        for x in f.inputs:
            parts.append(_dot_var(x, verbose))
            push(x.creator)
    return 'digraph g {\n' + ''.join(parts) + '}'


class GraphvizNotFoundWarning(UserWarning):
    """``plot_dot_graph`` found no Graphviz ``dot`` program: it wrote the DOT
    text beside ``to_file`` and drew ``to_file`` with cydezero's own renderer
    (when matplotlib is installed). Given once per process."""


_told_no_dot = False

# Graphviz draws a graph of thousands of nodes at its natural size (the
# sixth derivative of tanh: 9589x9851 pixels, which Pillow refuses as a
# decompression bomb); -Gsize caps the drawing at 40x40 inches (3840 pixels
# a side at dot's 96 dpi) and leaves smaller graphs as they are.
_DOT_SIZE = '-Gsize=40,40'


def plot_dot_graph(output, verbose=True, to_file='graph.png'):
    """Render the graph behind ``output`` to ``to_file`` with Graphviz ``dot``
    (the format is the file's extension). Returns an IPython Image when
    IPython is available, else None.

    Without ``dot`` on PATH, the script goes on, as under DeZero: the DOT
    text is written to ``to_file`` with the extension ``.dot``, ``to_file``
    itself is drawn by a built-in renderer (layered by generation, with
    matplotlib when it is installed), and a ``GraphvizNotFoundWarning`` says
    so once per process. A ``dot`` that fails is a warning too.
    """
    dot_graph = get_dot_graph(output, verbose)
    extension = os.path.splitext(to_file)[1][1:] or 'png'
    dot = shutil.which('dot')
    if dot is None:
        if not _plot_without_dot(output, verbose, to_file, dot_graph):
            return None
    else:
        fd, graph_path = tempfile.mkstemp(suffix='.dot', prefix='cydezero_graph_')
        try:
            with os.fdopen(fd, 'w') as f:
                f.write(dot_graph)
            proc = subprocess.run([dot, graph_path, '-T', extension, _DOT_SIZE, '-o', to_file],
                                  check=False, capture_output=True, text=True)
        finally:
            os.remove(graph_path)
        if proc.returncode != 0:
            warnings.warn(f'Graphviz `dot` failed to write {to_file!r}: {proc.stderr.strip()}',
                          RuntimeWarning, stacklevel=2)
            return None
    try:
        from IPython import display
    except ImportError:
        return None
    return display.Image(filename=to_file)


def _plot_without_dot(output, verbose, to_file, dot_graph):
    """plot_dot_graph's path without Graphviz; True if to_file was drawn."""
    global _told_no_dot
    stem, extension = os.path.splitext(to_file)
    dot_file = stem + '.dot'
    with open(dot_file, 'w') as f:
        f.write(dot_graph)
    if extension == '.dot':
        drawn, how = False, ''      # the text is what was asked for; no image
    else:
        from cydezero import _graph_plot
        try:
            _graph_plot.draw(output, to_file, lambda v: _var_label(v, verbose))
            drawn, how = True, f' and drew {to_file} with cydezero\'s own renderer'
        except ImportError:
            drawn, how = False, f'; {to_file} needs Graphviz or matplotlib, neither is installed'
        except ValueError as e:     # a format matplotlib does not write
            drawn, how = False, f'; could not draw {to_file}: {e}'
    if not _told_no_dot:
        _told_no_dot = True
        warnings.warn(GraphvizNotFoundWarning(
            f"plot_dot_graph: Graphviz's `dot` program is not on PATH: wrote the "
            f'DOT text to {dot_file}{how}. Install Graphviz '
            '(https://graphviz.org/download/) for its layout.'), stacklevel=3)
    return drawn


# =============================================================================
# Array helpers
# =============================================================================
def logsumexp(x, axis=1):
    """log(sum(exp(x), axis)) with keepdims, computed stably on arrays:
    m + log(sum(exp(x - m))) with m the maximum along ``axis``."""
    xp = cuda.get_array_module(x)
    m = x.max(axis=axis, keepdims=True)
    ok = xp.isfinite(m)
    finite = bool(ok.all())
    if not finite:
        # A slice that is all -inf (or inf) would give nan in x - m: shift
        # such slices by 0 instead.
        m = xp.where(ok, m, xp.zeros_like(m))
    s = xp.exp(x - m).sum(axis=axis, keepdims=True)
    if finite:  # each slice's sum is at least exp(0) = 1: no log(0)
        return m + xp.log(s)
    with np.errstate(divide='ignore'):  # log(0) = -inf for an all -inf slice
        return m + xp.log(s)


# =============================================================================
# Gradient check
# =============================================================================
def gradient_check(f, x, *args, rtol=1e-4, atol=1e-5, **kwargs):
    """Compare the backprop gradient of ``sum(f(x, *args, **kwargs))`` with
    :func:`numerical_grad`; return True when they agree within tolerance.

    ``x`` is converted to float64 first (an array is copied, a Variable has
    its data replaced), so float32 inputs are checked accurately.
    """
    x = as_variable(x)
    x.data = x.data.astype(np.float64)

    num_grad = numerical_grad(f, x, *args, **kwargs)
    y = f(x, *args, **kwargs)
    y.backward()
    bp_grad = x.grad.data

    assert bp_grad.shape == num_grad.shape
    ok = array_allclose(num_grad, bp_grad, atol=atol, rtol=rtol)
    if not ok:
        print()
        print('========== FAILED (Gradient Check) ==========')
        print('Numerical Grad')
        print(f' shape: {num_grad.shape}')
        print(f' values: {str(cuda.as_numpy(num_grad).ravel()[:10])[1:-1]} ...')
        print('Backprop Grad')
        print(f' shape: {bp_grad.shape}')
        print(f' values: {str(cuda.as_numpy(bp_grad).ravel()[:10])[1:-1]} ...')
    return ok


def numerical_grad(f, x, *args, **kwargs):
    """Central differences, step 1e-4, of ``sum(f(x, *args, **kwargs))``
    with respect to each element of ``x`` (an array or a Variable, modified
    in place during the computation and restored after)."""
    eps = 1e-4
    x = x.data if isinstance(x, Variable) else x
    np_x = cuda.as_numpy(x)
    grad = cuda.get_array_module(x).zeros_like(x)

    for idx in np.ndindex(*np_x.shape):
        orig = x[idx].copy()

        x[idx] = orig + eps
        y1 = f(x, *args, **kwargs)
        y1 = (y1.data if isinstance(y1, Variable) else y1).copy()

        x[idx] = orig - eps
        y2 = f(x, *args, **kwargs)
        y2 = (y2.data if isinstance(y2, Variable) else y2).copy()

        grad[idx] = (y1 - y2).sum() / (2 * eps)
        x[idx] = orig
    return grad


def array_equal(a, b):
    """True when arrays or Variables ``a`` and ``b`` have the same shape and
    elements (CPU or GPU)."""
    a = a.data if isinstance(a, Variable) else a
    b = b.data if isinstance(b, Variable) else b
    return bool(np.array_equal(cuda.as_numpy(a), cuda.as_numpy(b)))


def array_allclose(a, b, rtol=1e-4, atol=1e-5):
    """True when arrays or Variables ``a`` and ``b`` are element-wise equal
    within ``atol + rtol * |b|``."""
    a = a.data if isinstance(a, Variable) else a
    b = b.data if isinstance(b, Variable) else b
    return bool(np.allclose(cuda.as_numpy(a), cuda.as_numpy(b), atol=atol, rtol=rtol))


# =============================================================================
# Download into the cache
# =============================================================================
def show_progress(block_num, block_size, total_size):
    """A ``urlretrieve`` report hook printing a 30-character progress bar
    (or the byte count when the server does not say how big the file is)."""
    downloaded = block_num * block_size
    if total_size is None or total_size <= 0:
        print('\r[{}] {} bytes'.format('?' * 30, downloaded), end='')
        return
    p = min(downloaded / total_size * 100, 100.0)
    i = min(int(downloaded / total_size * 30), 30)
    print('\r[{}] {:.2f}%'.format('#' * i + '.' * (30 - i), p), end='')


cache_dir = os.environ.get('CYDEZERO_CACHE') or os.path.join(
    os.path.expanduser('~'), '.dezero')
_default_cache_dir = cache_dir


def get_cache_dir():
    """The download cache directory: ``utils.cache_dir`` when code has set
    it, else the environment variable CYDEZERO_CACHE when set (read at call
    time), else ``~/.dezero``."""
    if cache_dir != _default_cache_dir:
        return cache_dir
    return os.environ.get('CYDEZERO_CACHE') or cache_dir


def _download(url, path):
    """Fetch ``url`` into ``path`` (the one place that touches the network)."""
    urllib.request.urlretrieve(url, path, show_progress)


def get_file(url, file_name=None):
    """Return the local path of ``url``'s file, downloading it into the cache
    directory (see :func:`get_cache_dir`) only when it is not there yet.

    The download goes to a temporary file that is renamed into place when
    complete, so an interrupted or failed download leaves no partial file.
    A failure raises OSError naming the URL and the cache path.
    """
    if file_name is None:
        file_name = url[url.rfind('/') + 1:]
    directory = get_cache_dir()
    file_path = os.path.join(directory, file_name)
    if os.path.exists(file_path):
        return file_path

    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        raise OSError(f'cannot create the cache directory {directory} to download {url}: {e}'
                      ) from e

    print('Downloading: ' + file_name)
    fd, tmp_path = tempfile.mkstemp(prefix='.' + file_name + '.', suffix='.part',
                                    dir=directory)
    os.close(fd)
    try:
        _download(url, tmp_path)
        os.replace(tmp_path, file_path)
    except BaseException as e:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        if isinstance(e, Exception):
            raise OSError(f'could not download {url} to {file_path} '
                          f'({type(e).__name__}: {e}); if you are offline, '
                          'put the file at that path by hand') from e
        raise
    print(' Done')
    return file_path


# =============================================================================
# Convolution sizes
# =============================================================================
def get_deconv_outsize(size, k, s, p):
    """Output length of a transposed convolution: s * (size - 1) + k - 2p."""
    return s * (size - 1) + k - 2 * p


def get_conv_outsize(input_size, kernel_size, stride, pad):
    """Output length of a convolution: (input + 2 pad - kernel) // stride + 1."""
    return (input_size + pad * 2 - kernel_size) // stride + 1


def pair(x):
    """``(x, x)`` for an integer, ``x`` itself for a 2-tuple; else ValueError."""
    if isinstance(x, numbers.Integral):
        return (x, x)
    if isinstance(x, tuple):
        if len(x) != 2:
            raise ValueError(f'pair expects an int or a 2-tuple, got {x!r}')
        return x
    raise ValueError(f'pair expects an int or a 2-tuple, got {x!r}')
