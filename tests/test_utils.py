"""cydezero.utils and cydezero.cuda: array helpers, gradient checking, DOT
output, download cache (no real network), conv size arithmetic."""
import os
import re
import sys
import urllib.error
import urllib.request
import warnings

import numpy as np
import pytest
from conftest import differentiate_again

import cydezero
import cydezero.functions as F
import cydezero.utils as U
from cydezero import Function, Variable, cuda

RNG = np.random.default_rng(1)


# -----------------------------------------------------------------------------
# array helpers
# -----------------------------------------------------------------------------
def test_sum_to_is_the_core_array_helper_where_the_shape_is_reachable():
    x = RNG.standard_normal((2, 3, 4))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        np.testing.assert_allclose(U.sum_to(x, (3, 1)), x.sum(axis=(0, 2))[:, None])
        np.testing.assert_allclose(U.sum_to(x, (4,)), x.sum(axis=(0, 1)))
        assert U.sum_to(x, (2, 3, 4)) is x


UNREACHABLE = [((2, 3), (4,)), ((2, 3), (3, 2)), ((2, 3), (1, 2)), ((2, 3), (2, 1, 3)),
               ((2, 3, 4), (5, 1)), ((3,), (2, 1))]


@pytest.mark.parametrize('x_shape, shape', UNREACHABLE)
def test_sum_to_an_unreachable_shape_warns_and_returns_what_dezero_returns(
        dezero, x_shape, shape):
    x = RNG.standard_normal(x_shape)
    expected = dezero.utils.sum_to(x, shape)
    with pytest.warns(U.SumToShapeWarning) as record:
        y = U.sum_to(x, shape)
    np.testing.assert_array_equal(y, expected)
    w = record[0].message
    assert (w.x_shape, w.shape, w.result_shape) == (x_shape, shape, expected.shape)
    assert str(w).startswith(f'sum_to: an array of shape {x_shape} cannot be summed '
                             f'to shape {shape}')
    assert record[0].filename == __file__      # points at the caller

    # functions.sum_to, forward and backward, as DeZero's
    gy = RNG.standard_normal(expected.shape)
    v, dv = Variable(x.copy()), dezero.Variable(x.copy())
    with pytest.warns(U.SumToShapeWarning, match='sum_to: an array') as record:
        yv = F.sum_to(v, shape)
    assert record[0].filename == __file__
    assert 'SumTo: sum_to' not in str(record[0].message)
    dy = dezero.functions.sum_to(dv, shape)
    np.testing.assert_array_equal(yv.data, dy.data)
    (yv * gy).sum().backward()
    (dy * gy).sum().backward()
    np.testing.assert_array_equal(v.grad.data, dv.grad.data)


def test_reshape_sum_backward_and_max_backward_shape():
    gy = np.ones((2, 4))
    assert U.reshape_sum_backward(gy, (2, 3, 4), 1, False).shape == (2, 1, 4)
    assert U.reshape_sum_backward(gy, (2, 3, 4), -2, False).shape == (2, 1, 4)
    assert U.reshape_sum_backward(np.ones(3), (2, 3, 4), (0, 2), False).shape == (1, 3, 1)
    assert U.reshape_sum_backward(np.ones((2, 1, 4)), (2, 3, 4), 1, True).shape == (2, 1, 4)
    x = np.zeros((2, 3, 4))
    assert list(U.max_backward_shape(x, None)) == [1, 1, 1]
    assert list(U.max_backward_shape(x, 1)) == [2, 1, 4]
    assert list(U.max_backward_shape(x, (0, 2))) == [1, 3, 1]


def test_logsumexp_matches_naive_and_is_stable():
    x = RNG.standard_normal((3, 5))
    for axis in (0, 1):
        np.testing.assert_allclose(U.logsumexp(x, axis),
                                   np.log(np.exp(x).sum(axis=axis, keepdims=True)))
    big = np.array([[1000.0, 1000.0], [-1000.0, -1001.0]])
    np.testing.assert_allclose(U.logsumexp(big),
                               [[1000 + np.log(2)], [-1000 + np.log1p(np.exp(-1))]])
    ninf = np.array([[-np.inf, -np.inf], [0.0, -np.inf]])
    np.testing.assert_array_equal(U.logsumexp(ninf), [[-np.inf], [0.0]])
    # the input is not modified
    x0 = x.copy()
    U.logsumexp(x)
    np.testing.assert_array_equal(x, x0)


def test_array_equal_and_allclose_take_variables():
    a = np.arange(6.0).reshape(2, 3)
    assert U.array_equal(a, Variable(a.copy()))
    assert not U.array_equal(a, a + 1)
    assert not U.array_equal(a, a.ravel())
    assert U.array_allclose(Variable(a), a + 1e-7)
    assert not U.array_allclose(a, a + 1e-2)
    assert U.array_allclose(a, a + 1e-2, atol=0.1)
    assert type(U.array_equal(a, a)) is bool


# -----------------------------------------------------------------------------
# gradient check
# -----------------------------------------------------------------------------
def test_numerical_grad_matches_analytic_and_restores_input():
    x = RNG.standard_normal((3, 2))
    x0 = x.copy()
    g = U.numerical_grad(lambda a: F.sin(a) * a, x)
    np.testing.assert_allclose(g, np.cos(x0) * x0 + np.sin(x0), rtol=1e-6)
    np.testing.assert_array_equal(x, x0)
    g2 = U.numerical_grad(lambda a, k: a ** 2 * k, Variable(x), 3.0)
    np.testing.assert_allclose(g2, 6 * x0, rtol=1e-6)


def test_gradient_check_passes_for_correct_backward():
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    assert U.gradient_check(F.sigmoid, x)
    assert U.gradient_check(F.linear, RNG.standard_normal((2, 3)),
                            RNG.standard_normal((3, 4)), RNG.standard_normal(4))
    assert U.gradient_check(lambda a, axis=0: F.softmax(a, axis=axis) * np.arange(4.0),
                            x, axis=1)


class _WrongSquare(Function):
    def forward(self, x):
        return x ** 2

    def backward(self, gy):
        x, = self.inputs
        return gy * x  # should be 2 * x * gy


def test_gradient_check_fails_for_wrong_backward(capsys):
    assert not U.gradient_check(lambda a: _WrongSquare()(a), RNG.standard_normal(4) + 3)
    assert 'FAILED (Gradient Check)' in capsys.readouterr().out


# -----------------------------------------------------------------------------
# DOT output
# -----------------------------------------------------------------------------
def _canonical(dot):
    """Replace object ids by first-appearance numbers so texts compare."""
    ids = {}
    return re.sub(r'\b\d{6,}\b', lambda m: f'n{ids.setdefault(m.group(), len(ids))}',
                  dot)


def test_get_dot_graph_text():
    x0 = Variable(np.array(1.0), name='x0')
    x1 = Variable(np.array([1.0, 2.0]), name='x1')
    y = x0 + x1
    y.name = 'y'
    txt = U.get_dot_graph(y, verbose=False)
    assert txt.startswith('digraph g {\n') and txt.endswith('}')
    assert txt.count('shape=box') == 1
    assert f'{id(y)} [label="y", color=orange, style=filled]' in txt
    assert f'{id(x0)} [label="x0", color=orange, style=filled]' in txt
    assert f'{id(y.creator)} [label="Add", color=lightblue, style=filled, shape=box]' in txt
    assert f'{id(x0)} -> {id(y.creator)}' in txt
    assert f'{id(x1)} -> {id(y.creator)}' in txt
    assert f'{id(y.creator)} -> {id(y)}' in txt
    verbose = U.get_dot_graph(y)
    assert 'label="x1: (2,) float64"' in verbose
    assert 'label="y: (2,) float64"' in verbose


def test_get_dot_graph_lists_each_function_once_and_handles_leaves():
    x = Variable(np.array(2.0))
    a = F.exp(x)
    y = a * a + a
    txt = U.get_dot_graph(y)
    assert txt.count('label="Exp"') == 1
    assert txt.count('label="Mul"') == 1
    assert txt.count('label="Add"') == 1
    leaf = U.get_dot_graph(Variable(np.ones(3), name='w'))
    assert leaf.count('\n') == 2 and 'w: (3,) float64' in leaf


def test_get_dot_graph_deep_graph_needs_no_recursion():
    x = Variable(np.array(0.5))
    y = x
    for _ in range(20000):
        y = y + 1.0
    txt = U.get_dot_graph(y, verbose=False)
    assert txt.count('label="Add"') == 20000


def test_get_dot_graph_python_function_and_constants():
    y = F.linear(Variable(np.ones((2, 3))), np.ones((3, 4)))
    txt = U.get_dot_graph(y)
    assert 'label="Linear"' in txt
    assert txt.count(' -> ') == 4  # x, W, b(None) in, y out
    assert 'label=""' in txt  # b=None has no shape


def test_get_dot_graph_parity_with_dezero():
    if not hasattr(np, 'int'):
        np.int = int
    dezero = pytest.importorskip('dezero')
    import dezero.utils as DU
    texts = []
    for V, mod in ((Variable, F), (dezero.Variable, dezero.functions)):
        x = V(np.ones((2, 3)), name='x')
        W = V(np.ones((3, 2)), name='W')
        h = mod.tanh(mod.matmul(x, W))
        y = mod.sum(h * h)
        y.name = 'loss'
        texts.append(DU.get_dot_graph(y) if mod is not F else U.get_dot_graph(y))
    assert _canonical(texts[0]) == _canonical(texts[1])


def test_plot_dot_graph_without_dot_warns_once_writes_dot_and_draws(monkeypatch, tmp_path):
    # DeZero runs `dot` through the shell and carries on when it is missing;
    # here the script carries on too, with the DOT text and a picture.
    monkeypatch.setattr(U.shutil, 'which', lambda name: None)
    monkeypatch.setattr(U, '_told_no_dot', False)
    x = Variable(np.array(1.0), name='x')
    y = F.exp(x * 2 + x)
    y.name = 'y'
    with pytest.warns(U.GraphvizNotFoundWarning, match=r'g\.dot.*own renderer') as record:
        assert U.plot_dot_graph(y, to_file=str(tmp_path / 'g.png')) is None
    assert len(record) == 1 and record[0].filename == __file__
    assert (tmp_path / 'g.dot').read_text() == U.get_dot_graph(y, verbose=True)
    with open(tmp_path / 'g.png', 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    with warnings.catch_warnings():
        warnings.simplefilter('error')      # said once per process
        U.plot_dot_graph(y, verbose=False, to_file=str(tmp_path / 'h.svg'))
    assert (tmp_path / 'h.svg').read_text().lstrip().startswith('<?xml')
    assert (tmp_path / 'h.dot').read_text() == U.get_dot_graph(y, verbose=False)


def test_builtin_graph_drawing_layers_by_generation_and_stays_a_sensible_size():
    from cydezero import _graph_plot
    x = Variable(np.array(1.0))
    y = F.tanh(x)
    y.backward(create_graph=True)
    differentiate_again(x, 4)
    layers, edges, labels, kinds = _graph_plot._layers(x.grad, lambda v: '')
    row = {node: i for i, layer in enumerate(layers) for node in layer}
    assert all(row[src] < row[dst] for src, dst in edges)     # every edge goes down
    assert all(kinds[n] == 'func' for n in layers[-2]) and layers[-1] == [id(x.grad)]
    import matplotlib.figure
    sizes = []
    orig = matplotlib.figure.Figure.savefig
    try:
        matplotlib.figure.Figure.savefig = lambda fig, *a, **k: sizes.append(
            fig.get_size_inches() * k['dpi'])
        _graph_plot.draw(x.grad, 'unused.png', lambda v: '')
    finally:
        matplotlib.figure.Figure.savefig = orig
    assert max(sizes[0]) <= 3000


def test_plot_dot_graph_without_dot_or_matplotlib_still_writes_the_dot(monkeypatch, tmp_path):
    monkeypatch.setattr(U.shutil, 'which', lambda name: None)
    monkeypatch.setattr(U, '_told_no_dot', False)
    monkeypatch.setitem(sys.modules, 'matplotlib', None)    # import fails
    y = F.exp(Variable(np.array(1.0)))
    with pytest.warns(U.GraphvizNotFoundWarning, match='neither is installed'):
        U.plot_dot_graph(y, to_file=str(tmp_path / 'g.png'))
    assert (tmp_path / 'g.dot').exists() and not (tmp_path / 'g.png').exists()


def test_plot_dot_graph_runs_dot_on_the_graph_text(monkeypatch, tmp_path):
    # A stand-in for Graphviz's dot (which CI machines may lack): it checks
    # the command line plot_dot_graph gives it and renders the DOT text.
    script = ('import sys\n'
              'src, t, fmt, size, o, out = sys.argv[1:]\n'
              'assert (t, size, o) == ("-T", "-Gsize=40,40", "-o"), sys.argv\n'
              'text = open(src).read()\n'
              'open(out, "w").write("<" + fmt + ">" + text)\n')
    if os.name == 'nt':
        (tmp_path / 'dot.py').write_text(script)
        fake = tmp_path / 'dot.cmd'
        fake.write_text(f'@"{sys.executable}" "%~dp0dot.py" %*\n')
    else:
        fake = tmp_path / 'dot'
        fake.write_text('#!' + sys.executable + '\n' + script)
        fake.chmod(0o755)
    monkeypatch.setattr(U.shutil, 'which', lambda name: str(fake) if name == 'dot' else None)
    y = F.exp(Variable(np.array(1.0)))
    out = tmp_path / 'g.svg'
    U.plot_dot_graph(y, to_file=str(out))
    rendered = out.read_text()
    assert rendered.startswith('<svg>digraph g {')
    assert rendered[len('<svg>'):] == U.get_dot_graph(y, verbose=True)


# -----------------------------------------------------------------------------
# download cache (the network is never used)
# -----------------------------------------------------------------------------
@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError('the network must not be used')
    monkeypatch.setattr(urllib.request, 'urlretrieve', refuse)
    monkeypatch.setattr(urllib.request, 'urlopen', refuse)


def test_get_file_from_prefilled_cache(monkeypatch, tmp_path, no_network):
    monkeypatch.setenv('CYDEZERO_CACHE', str(tmp_path))
    (tmp_path / 'data.npz').write_bytes(b'cached')
    path = U.get_file('https://example.com/files/data.npz')
    assert path == str(tmp_path / 'data.npz')
    (tmp_path / 'other.bin').write_bytes(b'x')
    assert U.get_file('https://example.com/a.bin', 'other.bin') == str(tmp_path / 'other.bin')


def test_get_file_offline_error_names_url_and_cache(monkeypatch, tmp_path):
    cache = tmp_path / 'cache'
    monkeypatch.setenv('CYDEZERO_CACHE', str(cache))

    def offline(url, path, reporthook=None):
        with open(path, 'wb') as f:
            f.write(b'partial')
        raise urllib.error.URLError('no route to host')

    monkeypatch.setattr(urllib.request, 'urlretrieve', offline)
    url = 'https://example.com/files/mnist.gz'
    with pytest.raises(OSError) as info:
        U.get_file(url)
    msg = str(info.value)
    assert url in msg
    assert str(cache / 'mnist.gz') in msg
    assert os.listdir(cache) == []  # no partial file left


def test_get_file_interrupted_leaves_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv('CYDEZERO_CACHE', str(tmp_path))

    def interrupted(url, path):
        with open(path, 'wb') as f:
            f.write(b'half')
        raise KeyboardInterrupt

    monkeypatch.setattr(U, '_download', interrupted)
    with pytest.raises(KeyboardInterrupt):
        U.get_file('https://example.com/x.bin')
    assert os.listdir(tmp_path) == []


def test_get_file_downloads_into_cache(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv('CYDEZERO_CACHE', str(tmp_path / 'new'))
    calls = []

    def fake(url, path, reporthook=None):
        calls.append(url)
        with open(path, 'wb') as f:
            f.write(b'payload')
        if reporthook:
            reporthook(1, 7, 7)

    monkeypatch.setattr(urllib.request, 'urlretrieve', fake)
    path = U.get_file('https://example.com/d/w.npz')
    assert path == str(tmp_path / 'new' / 'w.npz')
    with open(path, 'rb') as f:
        assert f.read() == b'payload'
    assert os.listdir(tmp_path / 'new') == ['w.npz']
    U.get_file('https://example.com/d/w.npz')
    assert calls == ['https://example.com/d/w.npz']  # the second call hit the cache
    assert '100.00%' in capsys.readouterr().out


def test_get_file_respects_module_cache_dir(monkeypatch, tmp_path, no_network):
    monkeypatch.delenv('CYDEZERO_CACHE', raising=False)
    monkeypatch.setattr(U, 'cache_dir', str(tmp_path))
    (tmp_path / 'f.txt').write_text('hi')
    assert U.get_file('https://example.com/f.txt') == str(tmp_path / 'f.txt')


def test_show_progress(capsys):
    U.show_progress(1, 50, 100)
    out = capsys.readouterr().out
    assert '50.00%' in out and '#' * 15 + '.' * 15 in out
    U.show_progress(5, 50, 100)
    assert '100.00%' in capsys.readouterr().out
    U.show_progress(3, 10, -1)  # server gave no size
    assert '30 bytes' in capsys.readouterr().out


# -----------------------------------------------------------------------------
# convolution sizes
# -----------------------------------------------------------------------------
def test_conv_sizes_and_pair():
    assert U.get_conv_outsize(4, 3, 1, 1) == 4
    assert U.get_conv_outsize(7, 3, 2, 0) == 3
    assert U.get_deconv_outsize(4, 3, 1, 1) == 4
    assert U.get_deconv_outsize(3, 4, 2, 1) == 6
    assert U.pair(3) == (3, 3)
    assert U.pair(np.int64(2)) == (2, 2)
    assert U.pair((1, 2)) == (1, 2)
    with pytest.raises(ValueError):
        U.pair((1, 2, 3))
    with pytest.raises(ValueError):
        U.pair(1.5)


# -----------------------------------------------------------------------------
# cuda
# -----------------------------------------------------------------------------
def test_cuda_without_gpu(monkeypatch):
    monkeypatch.setattr(cuda, 'gpu_enable', False)
    x = np.ones(3)
    assert cuda.get_array_module(x) is np
    assert cuda.get_array_module(Variable(x)) is np
    assert cuda.as_numpy(Variable(x)) is x
    assert cuda.as_numpy(2.0).shape == ()
    with pytest.raises(RuntimeError, match='CuPy'):
        cuda.as_cupy(x)


def test_cuda_flag_matches_cupy_availability():
    try:
        import cupy  # noqa: F401
    except Exception:  # noqa: BLE001  (any failure to load CuPy means no GPU)
        assert cuda.gpu_enable is False
    else:
        assert cuda.gpu_enable is True
        assert cuda.as_numpy(cuda.as_cupy(np.arange(3))).tolist() == [0, 1, 2]


def test_package_does_not_need_cupy():
    assert cydezero.Variable is Variable
