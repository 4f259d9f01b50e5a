"""cydezero.transforms: array transforms against NumPy, PIL transforms on
small images, DeZero parity, and Pillow staying optional."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

import cydezero.transforms as T


def rgb_image(w=5, h=4):
    a = np.arange(h * w * 3, dtype=np.uint8).reshape(h, w, 3)
    return Image.fromarray(a), a


# -----------------------------------------------------------------------------
# array transforms
# -----------------------------------------------------------------------------
def test_compose_applies_in_order_and_empty_is_identity():
    x = np.arange(6).reshape(2, 3)
    f = T.Compose([T.Flatten(), lambda a: a * 10, T.AsType(np.float32)])
    y = f(x)
    np.testing.assert_array_equal(y, np.arange(6) * 10)
    assert y.dtype == np.float32
    assert T.Compose()(x) is x
    assert T.Compose([])(x) is x


def test_compose_default_list_is_not_shared():
    a, b = T.Compose(), T.Compose()
    a.transforms.append(T.Flatten())
    assert b.transforms == []


def test_normalize_scalar_and_per_channel():
    x = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    np.testing.assert_allclose(T.Normalize(1.0, 2.0)(x), (x - 1) / 2)
    mean, std = [1.0, 2.0], [0.5, 4.0]
    y = T.Normalize(mean, std)(x)
    np.testing.assert_allclose(y[0], (x[0] - 1) / 0.5)
    np.testing.assert_allclose(y[1], (x[1] - 2) / 4)
    assert y.dtype == np.float32
    # a one-element sequence applies to every channel
    np.testing.assert_allclose(T.Normalize([1.0], [2.0])(x), (x - 1) / 2)
    # integer images are normalised in floating point, like with a scalar
    u = np.full((2, 1, 1), 3, dtype=np.uint8)
    np.testing.assert_allclose(T.Normalize([0.5, 0.5], [0.5, 0.5])(u), 5.0)
    np.testing.assert_allclose(T.Normalize(0.5, 0.5)(u), 5.0)


def test_flatten_astype_tofloat_toint():
    x = np.arange(6, dtype=np.float64).reshape(2, 3) + 0.7
    y = T.Flatten()(x)
    assert y.shape == (6,)
    y[0] = -1
    assert x[0, 0] == 0.7  # a copy
    assert T.ToFloat is T.AsType
    assert T.ToFloat()(x).dtype == np.float32
    assert T.AsType(np.float16)(x).dtype == np.float16
    i = T.ToInt()(x)
    assert i.dtype == np.dtype(int)
    np.testing.assert_array_equal(i, np.arange(6).reshape(2, 3))
    assert issubclass(T.ToInt, T.AsType)


def test_random_horizontal_flip_on_arrays():
    x = np.arange(12).reshape(1, 3, 4)
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=1.0)(x), x[:, :, ::-1])
    assert T.RandomHorizontalFlip(p=0.0)(x) is x
    np.random.seed(3)
    flips = [T.RandomHorizontalFlip()(x)[0, 0, 0] == 3 for _ in range(200)]
    assert 60 < sum(flips) < 140
    np.random.seed(3)
    assert [T.RandomHorizontalFlip()(x)[0, 0, 0] == 3 for _ in range(200)] == flips


def test_to_array_passes_arrays_and_rejects_others():
    x = np.zeros((3, 2, 2))
    assert T.ToArray()(x) is x
    with pytest.raises(TypeError, match='PIL image or an ndarray'):
        T.ToArray()([1, 2, 3])


# -----------------------------------------------------------------------------
# PIL transforms
# -----------------------------------------------------------------------------
def test_to_array_and_to_pil_round_trip():
    img, a = rgb_image()
    x = T.ToArray()(img)
    assert x.shape == (3, 4, 5) and x.dtype == np.float32
    np.testing.assert_array_equal(x, a.transpose(2, 0, 1))
    assert T.ToArray(np.uint8)(img).dtype == np.uint8
    back = T.ToPIL()(x.astype(np.uint8))
    assert back.size == (5, 4) and back.mode == 'RGB'
    np.testing.assert_array_equal(np.asarray(back), a)


def test_grayscale_images_have_one_channel():
    g = Image.fromarray(np.arange(20, dtype=np.uint8).reshape(4, 5))
    x = T.ToArray()(g)
    assert x.shape == (1, 4, 5)
    back = T.ToPIL()(x.astype(np.uint8))
    assert back.mode == 'L'
    np.testing.assert_array_equal(np.asarray(back), np.asarray(g))


def test_convert_modes():
    img, a = rgb_image()
    bgr = T.Convert('BGR')(img)
    np.testing.assert_array_equal(np.asarray(bgr), a[:, :, ::-1])
    assert T.Convert('L')(img).mode == 'L'
    assert T.Convert()(img.convert('L')).mode == 'RGB'


def test_resize_and_center_crop():
    img, a = rgb_image(6, 5)
    assert T.Resize(3)(img).size == (3, 3)
    assert T.Resize((4, 2))(img).size == (4, 2)
    assert T.Resize(8).mode == Image.BILINEAR == 2
    nearest = T.Resize((12, 10), Image.NEAREST)(img)
    np.testing.assert_array_equal(np.asarray(nearest)[::2, ::2], a)
    crop = T.CenterCrop((3, 2))(img)  # margins 3 and 3: one more on the right/bottom
    np.testing.assert_array_equal(np.asarray(crop), a[1:3, 1:4])
    np.testing.assert_array_equal(np.asarray(T.CenterCrop(4)(img)), a[0:4, 1:5])


def test_random_horizontal_flip_on_images():
    img, a = rgb_image()
    np.testing.assert_array_equal(np.asarray(T.RandomHorizontalFlip(1.0)(img)),
                                  a[:, ::-1])


def test_module_exposes_pil_image_lazily():
    assert T.Image is Image
    with pytest.raises(AttributeError):
        T.no_such_name  # noqa: B018


# -----------------------------------------------------------------------------
# parity with DeZero
# -----------------------------------------------------------------------------
def test_same_results_as_dezero(dezero):
    import dezero.transforms as DT
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(3, 4, 5)).astype(np.uint8)
    pairs = [
        (T.Compose([T.Flatten(), T.ToFloat(), T.Normalize(0., 255.)]),
         DT.Compose([DT.Flatten(), DT.ToFloat(), DT.Normalize(0., 255.)])),
        (T.Compose([T.ToFloat(), T.Normalize(mean=0.5, std=0.5)]),
         DT.Compose([DT.ToFloat(), DT.Normalize(mean=0.5, std=0.5)])),
        (T.Compose([T.ToFloat(), T.Normalize([1., 2., 3.], [2., 3., 4.])]),
         DT.Compose([DT.ToFloat(), DT.Normalize([1., 2., 3.], [2., 3., 4.])])),
        (T.ToInt(), DT.ToInt()),
    ]
    for ours, theirs in pairs:
        a, b = ours(x), theirs(x)
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    img = Image.fromarray(x.transpose(1, 2, 0))
    for ours, theirs in [(T.Resize((7, 3)), DT.Resize((7, 3))),
                         (T.CenterCrop((3, 2)), DT.CenterCrop((3, 2))),
                         (T.Convert('BGR'), DT.Convert('BGR'))]:
        np.testing.assert_array_equal(np.asarray(ours(img)), np.asarray(theirs(img)))
    np.testing.assert_array_equal(T.ToArray()(img), DT.ToArray()(img))
    np.testing.assert_array_equal(np.asarray(T.ToPIL()(x)), np.asarray(DT.ToPIL()(x)))


# -----------------------------------------------------------------------------
# Pillow is optional
# -----------------------------------------------------------------------------
def test_works_without_pillow_and_says_how_to_get_it():
    """In a fresh interpreter where importing PIL fails: the module, the
    array transforms and Resize's default work; PIL transforms raise an
    ImportError naming the pip command."""
    code = textwrap.dedent('''
        import sys
        sys.modules['PIL'] = None          # makes "import PIL" fail
        import numpy as np
        import cydezero.transforms as T
        import cydezero.datasets
        assert 'PIL.Image' not in sys.modules
        r = T.Resize(4)
        assert r.mode == 2
        x = np.ones((1, 2, 2))
        assert T.Compose([T.ToFloat(), T.Normalize(0.5, 0.5), T.Flatten()])(x).shape == (4,)
        assert T.ToArray()(x) is x
        try:
            T.ToArray()('not an image')
        except TypeError:
            pass
        else:
            raise SystemExit('ToArray accepted a string')
        for f, arg in [(r, None), (T.ToPIL(), x), (T.Convert(), None),
                       (T.CenterCrop(1), None)]:
            try:
                f(arg)
            except ImportError as e:
                assert 'pip install pillow' in str(e), str(e)
            else:
                raise SystemExit('no ImportError from ' + type(f).__name__)
        print('ok')
    ''')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == 'ok'
