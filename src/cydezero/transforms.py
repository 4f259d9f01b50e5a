"""DeZero's ``dezero.transforms``: callables that turn one example into
another (PIL images, NumPy arrays), chained by :class:`Compose`.

Pillow is optional. Importing this module never imports it; only the
transforms that really handle PIL images (Convert, Resize, CenterCrop,
ToPIL, and ToArray / RandomHorizontalFlip when given an image) load it, and
without Pillow they raise an ImportError saying how to install it.
"""
import sys

import numpy as np

from cydezero.utils import pair

# PIL.Image.BILINEAR (Image.Resampling.BILINEAR), spelt as its value so that
# the default of Resize does not need Pillow.
_BILINEAR = 2


def _pil_image():
    """The ``PIL.Image`` module, or an ImportError saying how to get it."""
    try:
        from PIL import Image
    except ImportError as e:
        raise ImportError(
            'this cydezero transform works on PIL images and needs Pillow, '
            'which is not installed: pip install pillow '
            '(or pip install "cydezero[vision]")') from e
    return Image


def _is_pil_image(img):
    # A PIL image can only exist once PIL.Image has been imported, so there
    # is no need to import Pillow to answer "no".
    Image = sys.modules.get('PIL.Image')
    return Image is not None and isinstance(img, Image.Image)


def __getattr__(name):
    # ``transforms.Image`` is DeZero's module attribute; load it on demand.
    if name == 'Image':
        return _pil_image()
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


class Compose:
    """Apply ``transforms`` (a list of callables, each taking and returning
    one example) one after the other."""

    def __init__(self, transforms=[]):  # noqa: B006 (DeZero's signature)
        # A fresh list for the (shared) default, so appending to one
        # Compose's list never changes another's.
        self.transforms = transforms if transforms else []

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img


# =============================================================================
# Transforms for PIL images
# =============================================================================
class Convert:
    """Convert a PIL image to ``mode`` ('RGB', 'L', ...; 'BGR' swaps the red
    and blue channels of the RGB image)."""

    def __init__(self, mode='RGB'):
        self.mode = mode

    def __call__(self, img):
        Image = _pil_image()
        if self.mode == 'BGR':
            r, g, b = img.convert('RGB').split()
            return Image.merge('RGB', (b, g, r))
        return img.convert(self.mode)


class Resize:
    """Resize a PIL image to ``size`` ((width, height), or an int for a
    square) with the resampling filter ``mode`` (PIL's constants; the
    default 2 is ``Image.BILINEAR``)."""

    def __init__(self, size, mode=_BILINEAR):
        self.size = pair(size)
        self.mode = mode

    def __call__(self, img):
        _pil_image()
        return img.resize(self.size, self.mode)


class CenterCrop:
    """Cut the central ``size`` ((width, height), or an int for a square)
    out of a PIL image; an odd margin leaves the extra pixel on the right
    (bottom)."""

    def __init__(self, size):
        self.size = pair(size)

    def __call__(self, img):
        _pil_image()
        W, H = img.size
        OW, OH = self.size
        left = (W - OW) // 2
        top = (H - OH) // 2
        return img.crop((left, top, left + OW, top + OH))


class ToArray:
    """Turn a PIL image into a (C, H, W) array of ``dtype`` (a grayscale
    image gives C = 1); an ndarray passes through unchanged."""

    def __init__(self, dtype=np.float32):
        self.dtype = dtype

    def __call__(self, img):
        if isinstance(img, np.ndarray):
            return img
        if _is_pil_image(img):
            array = np.asarray(img)
            if array.ndim == 2:
                array = array[np.newaxis]
            else:
                array = array.transpose(2, 0, 1)
            return array.astype(self.dtype)
        raise TypeError(f'ToArray expects a PIL image or an ndarray, got {type(img)}'
                        )


class ToPIL:
    """Turn a (C, H, W) array into a PIL image (C = 1 gives a grayscale
    image)."""

    def __call__(self, array):
        Image = _pil_image()
        data = array.transpose(1, 2, 0)
        if data.shape[2] == 1:
            data = data[:, :, 0]
        return Image.fromarray(data)


class RandomHorizontalFlip:
    """Mirror an example left to right with probability ``p``: a PIL image,
    or an array whose last axis is the width ((C, H, W) or (H, W)). The coin
    is ``np.random.rand()``, so ``np.random.seed`` makes it repeatable."""

    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, img):
        if np.random.rand() >= self.p:
            return img
        if isinstance(img, np.ndarray):
            return img[..., ::-1].copy()
        Image = _pil_image()
        flip = getattr(Image, 'Transpose', Image).FLIP_LEFT_RIGHT
        return img.transpose(flip)


# =============================================================================
# Transforms for NumPy arrays
# =============================================================================
def _per_channel(value, array):
    """``value`` (a sequence, one entry per channel or a single entry) as an
    array that broadcasts along the first axis of ``array``."""
    value = np.asarray(value)
    # Integer images are normalised in floating point, as with a scalar.
    dtype = array.dtype if np.issubdtype(array.dtype, np.floating) else np.float64
    shape = [1] * array.ndim
    shape[0] = value.size
    return value.astype(dtype).reshape(shape)


class Normalize:
    """``(array - mean) / std``; ``mean`` and ``std`` are scalars or
    sequences with one value per channel (the first axis)."""

    def __init__(self, mean=0, std=1):
        self.mean = mean
        self.std = std

    def __call__(self, array):
        mean, std = self.mean, self.std
        if not np.isscalar(mean):
            mean = _per_channel(mean, array)
        if not np.isscalar(std):
            std = _per_channel(std, array)
        return (array - mean) / std


class Flatten:
    """A 1-D copy of the array."""

    def __call__(self, array):
        return array.flatten()


class AsType:
    """The array converted to ``dtype``."""

    def __init__(self, dtype=np.float32):
        self.dtype = dtype

    def __call__(self, array):
        return array.astype(self.dtype)


ToFloat = AsType


class ToInt(AsType):
    """The array converted to an integer ``dtype`` (default ``int``)."""

    def __init__(self, dtype=int):
        self.dtype = dtype
