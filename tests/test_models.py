"""cydezero.models: Model.plot, Sequential, MLP, VGG16 (forward on a small
image, seeded parity with dezero 0.0.13, preprocess, pretrained loading
through the download cache), ResNet and its blocks, SqueezeNet."""
import importlib
import inspect
import urllib.error

import numpy as np
import pytest
from conftest import numerical_grad

import cydezero.functions as F
import cydezero.layers as L
import cydezero.models as M
from cydezero import Variable, utils
from cydezero import test_mode as inference_mode

RNG = np.random.default_rng(0)


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def n_params(model):
    return sum(p.data.size for p in model.params())


# -----------------------------------------------------------------------------
# Model / Sequential / MLP
# -----------------------------------------------------------------------------
@pytest.mark.parametrize('module', ['layers', 'models', 'optimizers'])
def test_public_names_and_signatures_match_dezero(dezero, module):
    """Every class and function defined in dezero's module exists here with
    the same parameters and defaults (function defaults compared by name),
    and so does every method DeZero's classes define."""
    ref_mod = importlib.import_module(f'dezero.{module}')
    ours_mod = importlib.import_module(f'cydezero.{module}')

    def sig(f):
        return [(p.name, p.kind, getattr(p.default, '__name__', p.default))
                for p in inspect.signature(f).parameters.values()]

    for name, ref in vars(ref_mod).items():
        if name.startswith('__') or getattr(ref, '__module__', None) != ref_mod.__name__:
            continue
        ours = getattr(ours_mod, name)
        if not inspect.isclass(ref):
            assert sig(ours) == sig(ref), name
            continue
        for attr, member in vars(ref).items():
            if attr.startswith('__') and attr not in ('__init__', '__call__',
                                                       '__setattr__'):
                continue
            mine = inspect.getattr_static(ours, attr)
            if isinstance(member, property):
                assert isinstance(mine, property), (name, attr)
            elif isinstance(member, staticmethod):
                assert sig(mine.__func__) == sig(member.__func__), (name, attr)
            elif callable(member):
                assert sig(getattr(ours, attr)) == sig(member), (name, attr)
            else:
                assert mine == member, (name, attr)


def test_model_is_a_layer_exported_where_dezero_has_it():
    assert issubclass(M.Model, L.Layer)
    assert M.Layer is L.Layer


def test_plot_runs_forward_and_renders_the_output_graph(monkeypatch):
    seen = {}

    def fake_plot(y, verbose=True, to_file='graph.png'):
        seen.update(y=y, verbose=verbose, to_file=to_file)
        return 'image'

    monkeypatch.setattr(utils, 'plot_dot_graph', fake_plot)
    model = M.MLP([3, 1])
    x = np.ones((2, 4))
    assert model.plot(x) == 'image'
    assert seen['to_file'] == 'model.png' and seen['verbose'] is True
    np.testing.assert_allclose(seen['y'].data, model(x).data)
    model.plot(x, to_file='out.svg')
    assert seen['to_file'] == 'out.svg'


def test_sequential_chains_layers_and_callables():
    a, b = L.Linear(4, in_size=3), L.Linear(2, in_size=4)
    seq = M.Sequential(a, F.relu, b)
    assert seq.layers == [a, F.relu, b]
    assert list(seq._params) == ['l0', 'l2']
    assert [p for p in seq.params()] == [a.W, a.b, b.W, b.b]
    x = RNG.standard_normal((5, 3))
    expected = np.maximum(x @ a.W.data + a.b.data, 0) @ b.W.data + b.b.data
    np.testing.assert_allclose(seq(x).data, expected, rtol=1e-6)


def test_mlp_forward_matches_the_formula():
    mlp = M.MLP([4, 3, 2])
    assert mlp.activation is F.sigmoid
    x = RNG.standard_normal((5, 6))
    y = mlp(x)
    h = x
    for layer in mlp.layers[:-1]:
        h = sigmoid(h @ layer.W.data + layer.b.data)
    last = mlp.layers[-1]
    np.testing.assert_allclose(y.data, h @ last.W.data + last.b.data, rtol=1e-6)
    assert [k for k, _ in mlp._named_params()] == [
        'l0/W', 'l0/b', 'l1/W', 'l1/b', 'l2/W', 'l2/b']


def test_mlp_custom_activation_and_gradients():
    mlp = M.MLP([3, 1], activation=F.relu)
    x = RNG.standard_normal((4, 2))
    mlp(x)
    for layer in mlp.layers:
        for p in layer.params():
            p.data = p.data.astype(np.float64)
    W0 = mlp.l0.W

    def f(w):
        saved = W0.data
        W0.data = w
        try:
            return mlp(x).data
        finally:
            W0.data = saved

    F.sum(mlp(x)).backward()
    np.testing.assert_allclose(W0.grad.data, numerical_grad(f, W0.data), rtol=1e-5,
                               atol=1e-8)


def test_mlp_without_layers_fails_when_built():
    with pytest.raises(ValueError, match='fc_output_sizes is empty'):
        M.MLP([])


def test_mlp_seeded_equals_dezero(dezero):
    x = RNG.standard_normal((3, 4))
    np.random.seed(4)
    ref = dezero.models.MLP([5, 2])
    ref_y = ref(x)
    np.random.seed(4)
    ours = M.MLP([5, 2])
    np.testing.assert_allclose(ours(x).data, ref_y.data, rtol=1e-6)


# -----------------------------------------------------------------------------
# VGG16
# -----------------------------------------------------------------------------
VGG_KEYS = ['conv1_1', 'conv1_2', 'conv2_1', 'conv2_2', 'conv3_1', 'conv3_2',
            'conv3_3', 'conv4_1', 'conv4_2', 'conv4_3', 'conv5_1', 'conv5_2',
            'conv5_3', 'fc6', 'fc7', 'fc8']


def test_vgg16_small_image_forward_and_seeded_parity(dezero):
    x = RNG.standard_normal((1, 3, 32, 32)).astype(np.float32)
    np.random.seed(0)
    ours = M.VGG16()
    assert all(p.data is None for p in ours.params() if p.name == 'W')
    with inference_mode():
        y = ours(x)
    assert y.shape == (1, 1000) and y.dtype == np.float32
    assert [k for k, _ in ours._named_params()] == [
        f'{k}/{p}' for k in VGG_KEYS for p in ('W', 'b')]
    convs = 14714688                    # the 13 convolutions of VGG-16
    fcs = (512 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 1000 + 1000)
    assert n_params(ours) == convs + fcs

    np.random.seed(0)
    with dezero.test_mode():
        ref = dezero.models.VGG16()(x)
    np.testing.assert_allclose(y.data, ref.data, rtol=1e-4, atol=1e-7)


def test_vgg16_preprocess(tmp_path, dezero):
    from PIL import Image
    arr = RNG.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    x = M.VGG16.preprocess(img, size=None)
    assert x.shape == (3, 30, 40) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], arr[:, :, 2] - 103.939, atol=1e-4)
    np.testing.assert_allclose(x[2], arr[:, :, 0] - 123.68, atol=1e-4)
    np.testing.assert_array_equal(x, dezero.models.VGG16.preprocess(img, size=None))

    resized = M.VGG16.preprocess(img, size=(16, 8))
    assert resized.shape == (3, 8, 16)
    np.testing.assert_array_equal(resized, dezero.models.VGG16.preprocess(img, (16, 8)))
    img.save(tmp_path / 'a.png')
    np.testing.assert_array_equal(M.VGG16.preprocess(tmp_path / 'a.png'),
                                  M.VGG16.preprocess(img))
    with pytest.raises(TypeError, match='PIL image or a path'):
        M.VGG16.preprocess(arr)


def test_pretrained_weights_come_from_the_cache(monkeypatch):
    calls = []
    monkeypatch.setattr(utils, 'get_file', lambda url: calls.append(url) or '/w.npz')
    monkeypatch.setattr(M.Model, 'load_weights', lambda self, path: calls.append(path))
    M.VGG16(pretrained=True)
    assert calls == [M.VGG16.WEIGHTS_PATH, '/w.npz']
    assert M.VGG16.WEIGHTS_PATH == ('https://github.com/koki0702/dezero-models/'
                                    'releases/download/v0.1/vgg16.npz')
    calls.clear()
    monkeypatch.setattr(M, 'BuildingBlock', lambda *args: L.Layer())  # quick build
    M.ResNet50(pretrained=True)
    url = ('https://github.com/koki0702/dezero-models/releases/download/v0.1/'
           'resnet50.npz')
    assert calls == [url, '/w.npz']


def test_pretrained_offline_error_names_url_and_cache(monkeypatch, tmp_path):
    monkeypatch.setattr(utils, 'cache_dir', str(tmp_path))

    def offline(url, path):
        raise urllib.error.URLError('no network')

    monkeypatch.setattr(utils, '_download', offline)
    with pytest.raises(OSError) as info:
        M.VGG16(pretrained=True)
    assert M.VGG16.WEIGHTS_PATH in str(info.value)
    assert str(tmp_path / 'vgg16.npz') in str(info.value)


# -----------------------------------------------------------------------------
# ResNet
# -----------------------------------------------------------------------------
def test_resnet50_small_image_forward():
    model = M.ResNet50()
    assert model.conv1.W.shape == (64, 3, 7, 7) and model.conv1.b is not None
    assert len(model.res4._forward) == 6
    x = RNG.standard_normal((1, 3, 32, 32)).astype(np.float32)
    with inference_mode():
        y = model(x)
    assert y.shape == (1, 1000) and np.isfinite(y.data).all()
    # 25,557,032 weights of ResNet-50, plus the conv1 bias and the running
    # statistics of the 53 batch norms, which are Parameters here as in DeZero.
    assert n_params(model) == 25557032 + 64 + 2 * 26560


def test_resnet_depths(monkeypatch):
    built = []

    class Stub(L.Layer):
        def __init__(self, n_layers, *args):
            super().__init__()
            built.append(n_layers)

    monkeypatch.setattr(M, 'BuildingBlock', Stub)
    for cls, blocks in ((M.ResNet50, [3, 4, 6, 3]), (M.ResNet101, [3, 4, 23, 3]),
                        (M.ResNet152, [3, 8, 36, 3]), (M.ResNet, [3, 8, 36, 3])):
        built.clear()
        cls()
        assert built == blocks, cls
    with pytest.raises(ValueError, match='50, 101, or 152, but 18 was given'):
        M.ResNet(18)


def test_bottleneck_a_downsamples_and_projects():
    x = RNG.standard_normal((2, 8, 6, 6)).astype(np.float32)
    msra = M.BottleneckA(8, 4, 16)
    assert (msra.conv1.stride, msra.conv2.stride, msra.conv4.stride) == (2, 1, 2)
    fb = M.BottleneckA(8, 4, 16, stride=2, downsample_fb=True)
    assert (fb.conv1.stride, fb.conv2.stride) == (1, 2)
    for block in (msra, fb):
        assert all(conv.b is None for conv in (block.conv1, block.conv2,
                                               block.conv3, block.conv4))
        y = block(x)
        assert y.shape == (2, 16, 3, 3) and (y.data >= 0).all()
        F.sum(y).backward()
        assert block.conv1.W.grad.shape == (4, 8, 1, 1)


def test_bottleneck_b_keeps_shape_and_adds_the_input():
    block = M.BottleneckB(8, 2)
    x = RNG.standard_normal((2, 8, 5, 5)).astype(np.float32)
    for conv in (block.conv1, block.conv2, block.conv3):
        conv.W.data[...] = 0
    y = block(x)                        # the residual branch is all zeros
    np.testing.assert_allclose(y.data, np.maximum(x, 0), atol=1e-6)


def test_building_block_layers():
    block = M.BuildingBlock(3, 8, 4, 16, 2)
    assert block._forward == ['a', 'b1', 'b2']
    assert isinstance(block.a, M.BottleneckA) and isinstance(block.b2, M.BottleneckB)
    y = block(RNG.standard_normal((1, 8, 6, 6)).astype(np.float32))
    assert y.shape == (1, 16, 3, 3)


# -----------------------------------------------------------------------------
# SqueezeNet
# -----------------------------------------------------------------------------
def test_squeezenet_forward_and_backward():
    model = M.SqueezeNet()
    assert n_params(model) == 1235496     # SqueezeNet 1.1
    x = RNG.standard_normal((2, 3, 32, 32)).astype(np.float32)
    y = model(x)
    assert y.shape == (2, 1000)
    F.sum(y).backward()
    assert all(p.grad is not None for p in model.params())
    with inference_mode():
        a, b = model(x), model(x)
    np.testing.assert_array_equal(a.data, b.data)   # no dropout at test time
    with pytest.raises(NotImplementedError, match='no pretrained weights'):
        M.SqueezeNet(pretrained=True)


def test_fire_concatenates_expand_branches_with_their_gradients():
    fire = M.Fire(3, 2, 4, 5)
    for p in fire.params():
        p.data = p.data.astype(np.float64)
    x = RNG.standard_normal((2, 3, 4, 4))
    y = fire(x)
    assert y.shape == (2, 9, 4, 4)
    h = F.relu(fire.squeeze(x))
    np.testing.assert_allclose(y.data[:, :4], F.relu(fire.expand1x1(h)).data)
    np.testing.assert_allclose(y.data[:, 4:], F.relu(fire.expand3x3(h)).data)

    w = RNG.standard_normal(y.shape)
    xv = Variable(x)
    F.sum(fire(xv) * w).backward()
    np.testing.assert_allclose(
        xv.grad.data, numerical_grad(lambda a: fire(a).data * w, x), rtol=1e-5,
        atol=1e-8)
