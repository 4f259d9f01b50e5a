"""DeZero's ``dezero.datasets``: the Dataset base class, toy data made on the
spot (Spiral, SinCurve) and real data sets (MNIST, CIFAR-10/100, tiny
Shakespeare, ImageNet labels) downloaded once into the cache directory of
:func:`cydezero.utils.get_file` and read from there afterwards, offline too.
"""
import ast
import gzip
import os
import pickle
import tarfile
import tempfile

import numpy as np

from cydezero import utils
from cydezero.transforms import Compose, Flatten, Normalize, ToFloat
from cydezero.utils import cache_dir, get_file  # noqa: F401  (DeZero's module exposes them)


def _identity(x):
    return x


class Dataset:
    """A sized, indexable collection of ``(x, t)`` examples.

    Subclasses fill ``self.data`` (and ``self.label``, or leave it None) in
    :meth:`prepare`, which the constructor calls. ``transform`` is applied to
    each ``x`` and ``target_transform`` to each ``t`` when indexed.
    """

    def __init__(self, train=True, transform=None, target_transform=None):
        self.train = train
        self.transform = _identity if transform is None else transform
        self.target_transform = (_identity if target_transform is None
                                 else target_transform)
        self.data = None
        self.label = None
        self.prepare()

    def __getitem__(self, index):
        if not np.isscalar(index):
            raise TypeError(f'{type(self).__name__} takes one integer index, got {index!r}')
        x = self.transform(self.data[index])
        if self.label is None:
            return x, None
        return x, self.target_transform(self.label[index])

    def __len__(self):
        return len(self.data)

    def prepare(self):
        """Fill ``self.data`` and ``self.label``; called by the constructor.
        Subclasses override it (the base class leaves both None)."""


# =============================================================================
# Toy data sets
# =============================================================================
def _generated_with_seed(seed, make):
    """Run ``make(rng)`` on a RandomState seeded with ``seed``, then leave
    NumPy's global random state where ``np.random.seed(seed)`` followed by the
    same draws would have left it.

    DeZero seeds the global generator itself, and programs from the book
    (which never seed) print the numbers they do because of it: the weights
    drawn after ``get_spiral`` come from that state. Matching it keeps those
    numbers.
    """
    rng = np.random.RandomState(seed)
    result = make(rng)
    np.random.set_state(rng.get_state())
    return result


def _make_spiral(rng):
    num_data, num_class = 100, 3
    rate = np.arange(num_data) / num_data      # also the radius
    xs, ts = [], []
    for j in range(num_class):
        theta = j * 4.0 + 4.0 * rate + rng.randn(num_data) * 0.2
        xs.append(np.stack([rate * np.sin(theta), rate * np.cos(theta)], axis=1))
        ts.append(np.full(num_data, j, dtype=np.int_))
    x = np.concatenate(xs).astype(np.float32)
    t = np.concatenate(ts)
    order = rng.permutation(num_data * num_class)
    return x[order], t[order]


def get_spiral(train=True):
    """Three interleaved spiral arms of 100 points each: ``x`` (300, 2)
    float32 and class ``t`` (300,) int, shuffled.

    The points depend only on ``train`` (seed 1984 for the training set, 2020
    for the test set). Like DeZero, it leaves NumPy's global random state as
    if it had been seeded with that number and used for the draws.
    """
    return _generated_with_seed(1984 if train else 2020, _make_spiral)


class Spiral(Dataset):
    """:func:`get_spiral` as a Dataset."""

    def prepare(self):
        """Generate the points (see :func:`get_spiral`)."""
        self.data, self.label = get_spiral(self.train)


class SinCurve(Dataset):
    """One period of a sine sampled at 1000 points, for next-value
    prediction: ``data[i]`` is y[i] and ``label[i]`` is y[i + 1], each of
    shape (1,). The training curve is sin plus uniform noise in
    [-0.05, 0.05) drawn from NumPy's global generator (unseeded, as in
    DeZero); the test curve is cos, without noise (the noise is still drawn,
    so both consume the same random numbers, as in DeZero).
    """

    def prepare(self):
        """Sample the curve (see the class docstring)."""
        x = np.linspace(0, 2 * np.pi, 1000)
        noise = np.random.uniform(-0.05, 0.05, size=x.shape)
        y = np.sin(x) + noise if self.train else np.cos(x)
        y = y[:, np.newaxis]
        self.data = y[:-1]
        self.label = y[1:]


# =============================================================================
# Downloaded data sets
# =============================================================================
def _cache_path(filename, train, suffix=''):
    name = filename[filename.rfind('/') + 1:] + suffix
    return os.path.join(utils.get_cache_dir(),
                        name + ('.train.npz' if train else '.test.npz'))


def load_cache_npz(filename, train=False):
    """``(data, label)`` saved by :func:`save_cache_npz` for ``filename`` (a
    URL or name; its last path component names the cache file), or
    ``(None, None)`` when there is no such file."""
    path = _cache_path(filename, train)
    if not os.path.exists(path):
        return None, None
    with np.load(path) as loaded:
        return loaded['data'], loaded['label']


def save_cache_npz(data, label, filename, train=False):
    """Save ``data`` and ``label`` as ``<name>.train.npz`` (or ``.test.npz``)
    in the cache directory, unless that file exists. Returns the path, or
    None when the file was already there. The file appears complete or not
    at all."""
    path = _cache_path(filename, train)
    if os.path.exists(path):
        return None
    directory, name = os.path.split(path)
    os.makedirs(directory, exist_ok=True)
    print('Saving: ' + name)
    fd, tmp_path = tempfile.mkstemp(prefix='.' + name + '.', suffix='.part',
                                    dir=directory)
    try:
        with os.fdopen(fd, 'wb') as f:
            np.savez_compressed(f, data=data, label=label)
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise
    print(' Done')
    return path


def _get_file_from(urls, file_name=None):
    """:func:`utils.get_file` of the first of ``urls`` that can be fetched
    (all name the same file); the error names every URL tried."""
    errors = []
    for url in urls:
        try:
            return utils.get_file(url, file_name)
        except OSError as e:
            errors.append(str(e))
    if len(errors) == 1:
        raise OSError(errors[0])
    raise OSError('could not download from any of {} mirrors:\n  {}'.format(
        len(urls), '\n  '.join(errors)))


def _show_grid(images, row, col, **imshow_kwargs):
    """Tile ``row * col`` images of equal shape (H, W) or (H, W, 3) and show
    them with matplotlib."""
    import matplotlib.pyplot as plt
    H, W = images[0].shape[:2]
    grid = np.zeros((H * row, W * col) + images[0].shape[2:])
    for k, img in enumerate(images):
        r, c = divmod(k, col)
        grid[r * H:(r + 1) * H, c * W:(c + 1) * W] = img
    plt.imshow(grid, interpolation='nearest', **imshow_kwargs)
    plt.axis('off')
    plt.show()


def _read_idx(path, magic, header_size):
    """The payload bytes of a gzip'd IDX file, after checking its magic
    number (so a truncated or wrong file fails here, naming it)."""
    with gzip.open(path, 'rb') as f:
        raw = f.read()
    found = int.from_bytes(raw[:4], 'big') if len(raw) >= header_size else None
    if found != magic:
        raise ValueError(f'{path} is not an IDX file of the expected kind '
                         f'(magic number {found}, expected {magic}); delete '
                         'it to download it again')
    return np.frombuffer(raw, np.uint8, offset=header_size)


# The default transforms: one object each, shared, as in DeZero's signatures.
_MNIST_TRANSFORM = Compose([Flatten(), ToFloat(), Normalize(0., 255.)])
_CIFAR_TRANSFORM = Compose([ToFloat(), Normalize(mean=0.5, std=0.5)])


class MNIST(Dataset):
    """Handwritten digits: ``data`` (N, 1, 28, 28) uint8, ``label`` (N,)
    uint8; 60000 training and 10000 test images. By default each example
    comes out as a flat float32 vector in [0, 1]."""

    url = 'http://yann.lecun.com/exdb/mnist/'
    # Same files as DeZero's URL, which no longer serves them.
    mirrors = ('https://ossci-datasets.s3.amazonaws.com/mnist/',)

    def __init__(self, train=True,
                 transform=_MNIST_TRANSFORM,
                 target_transform=None):
        super().__init__(train, transform, target_transform)

    def prepare(self):
        """Read the IDX files, downloading them on first use."""
        prefix = 'train' if self.train else 't10k'
        bases = (self.url,) + tuple(self.mirrors)
        image_path = _get_file_from(
            [b + prefix + '-images-idx3-ubyte.gz' for b in bases])
        label_path = _get_file_from(
            [b + prefix + '-labels-idx1-ubyte.gz' for b in bases])
        self.data = _read_idx(image_path, 2051, 16).reshape(-1, 1, 28, 28)
        self.label = _read_idx(label_path, 2049, 8)

    def show(self, row=10, col=10):
        """Show ``row * col`` images picked at random (np.random)."""
        picks = np.random.randint(0, len(self.data), size=row * col)
        _show_grid([self.data[i].reshape(28, 28) for i in picks], row, col,
                   cmap='gray')

    @staticmethod
    def labels():
        """``{class index: name}``: the digits '0' to '9'."""
        return {i: str(i) for i in range(10)}


def _unpickle_members(tar_path, names):
    """``{name: dict}`` for the tar members whose base name is in ``names``
    (CIFAR's Python pickles), reading the archive once."""
    found = {}
    with tarfile.open(tar_path, 'r:gz') as archive:
        for member in archive:
            name = os.path.basename(member.name)
            if member.isfile() and name in names:
                found[name] = pickle.load(archive.extractfile(member),
                                          encoding='bytes')
    missing = [n for n in names if n not in found]
    if missing:
        raise ValueError('{} lacks {}; delete it to download it again'.format(
            tar_path, ', '.join(missing)))
    return found


class CIFAR10(Dataset):
    """32x32 colour images in 10 classes: ``data`` (N, 3, 32, 32) uint8,
    ``label`` (N,) int; 50000 training and 10000 test images. By default
    each example comes out as float32 scaled to [-1, 1]."""

    url = 'https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz'

    def __init__(self, train=True,
                 transform=_CIFAR_TRANSFORM,
                 target_transform=None):
        super().__init__(train, transform, target_transform)

    def prepare(self):
        """Read the cached arrays, or the downloaded archive on first use
        (and cache its arrays)."""
        self.data, self.label = load_cache_npz(self.url, self.train)
        if self.data is not None:
            return
        path = utils.get_file(self.url)
        if self.train:
            names = [f'data_batch_{i}' for i in range(1, 6)]
        else:
            names = ['test_batch']
        batches = _unpickle_members(path, names)
        self.data = np.concatenate(
            [batches[n][b'data'] for n in names]).reshape(-1, 3, 32, 32)
        self.label = np.concatenate(
            [np.asarray(batches[n][b'labels'], dtype=np.int_) for n in names])
        save_cache_npz(self.data, self.label, self.url, self.train)

    def show(self, row=10, col=10):
        """Show ``row * col`` images picked at random (np.random)."""
        picks = np.random.randint(0, len(self.data), size=row * col)
        _show_grid([self.data[i].reshape(3, 32, 32).transpose(1, 2, 0) / 255
                    for i in picks], row, col)

    @staticmethod
    def labels():
        """``{class index: name}`` for the 10 classes."""
        return dict(enumerate([
            'airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog',
            'horse', 'ship', 'truck']))


_CIFAR100_FINE = [
    'apple', 'aquarium_fish', 'baby', 'bear', 'beaver', 'bed', 'bee', 'beetle',
    'bicycle', 'bottle', 'bowl', 'boy', 'bridge', 'bus', 'butterfly', 'camel',
    'can', 'castle', 'caterpillar', 'cattle', 'chair', 'chimpanzee', 'clock',
    'cloud', 'cockroach', 'couch', 'crab', 'crocodile', 'cup', 'dinosaur',
    'dolphin', 'elephant', 'flatfish', 'forest', 'fox', 'girl', 'hamster',
    'house', 'kangaroo', 'keyboard', 'lamp', 'lawn_mower', 'leopard', 'lion',
    'lizard', 'lobster', 'man', 'maple_tree', 'motorcycle', 'mountain',
    'mouse', 'mushroom', 'oak_tree', 'orange', 'orchid', 'otter', 'palm_tree',
    'pear', 'pickup_truck', 'pine_tree', 'plain', 'plate', 'poppy',
    'porcupine', 'possum', 'rabbit', 'raccoon', 'ray', 'road', 'rocket',
    'rose', 'sea', 'seal', 'shark', 'shrew', 'skunk', 'skyscraper', 'snail',
    'snake', 'spider', 'squirrel', 'streetcar', 'sunflower', 'sweet_pepper',
    'table', 'tank', 'telephone', 'television', 'tiger', 'tractor', 'train',
    'trout', 'tulip', 'turtle', 'wardrobe', 'whale', 'willow_tree', 'wolf',
    'woman', 'worm']

_CIFAR100_COARSE = [
    'aquatic mammals', 'fish', 'flowers', 'food containers',
    'fruit and vegetables', 'household electrical device',
    'household furniture', 'insects', 'large carnivores',
    'large man-made outdoor things', 'large natural outdoor scenes',
    'large omnivores and herbivores', 'medium-sized mammals',
    'non-insect invertebrates', 'people', 'reptiles', 'small mammals',
    'trees', 'vehicles 1', 'vehicles 2']


class CIFAR100(CIFAR10):
    """32x32 colour images in 100 fine classes grouped in 20 coarse ones
    (``label_type`` 'fine' or 'coarse'); otherwise like :class:`CIFAR10`."""

    url = 'https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz'

    def __init__(self, train=True,
                 transform=_CIFAR_TRANSFORM,
                 target_transform=None,
                 label_type='fine'):
        if label_type not in ('fine', 'coarse'):
            raise ValueError(f"label_type must be 'fine' or 'coarse', got {label_type!r}"
                             )
        self.label_type = label_type
        super().__init__(train, transform, target_transform)

    def _cache_name(self):
        # The fine labels share DeZero's cache file; the coarse ones get
        # their own, so that one label type never reads the other's labels.
        return self.url if self.label_type == 'fine' else self.url + '.coarse'

    def prepare(self):
        """Read the cached arrays of ``label_type``, or the downloaded archive
        on first use (and cache its arrays)."""
        self.data, self.label = load_cache_npz(self._cache_name(), self.train)
        if self.data is not None:
            return
        path = utils.get_file(self.url)
        name = 'train' if self.train else 'test'
        batch = _unpickle_members(path, [name])[name]
        self.data = batch[b'data'].reshape(-1, 3, 32, 32)
        key = b'fine_labels' if self.label_type == 'fine' else b'coarse_labels'
        self.label = np.asarray(batch[key], dtype=np.int_)
        save_cache_npz(self.data, self.label, self._cache_name(), self.train)

    @staticmethod
    def labels(label_type='fine'):
        """``{class index: name}`` for the 100 fine classes, or the 20 coarse
        ones with ``label_type='coarse'``."""
        names = _CIFAR100_FINE if label_type == 'fine' else _CIFAR100_COARSE
        return dict(enumerate(names))


class ImageNet(Dataset):
    """Only the 1000 ImageNet class names (:meth:`labels`), as in DeZero;
    there are no images."""

    def __init__(self):
        pass

    @staticmethod
    def labels():
        """``{class index: names}`` for the 1000 ImageNet classes."""
        url = ('https://gist.githubusercontent.com/yrevar/942d3a0ac09ec9e5eb3a/'
               'raw/238f720ff059c1f82f368259d1ca4ffa5dd8f9f5/'
               'imagenet1000_clsidx_to_labels.txt')
        path = utils.get_file(url)
        with open(path, 'r', encoding='utf-8') as f:
            return ast.literal_eval(f.read())


class Shakespear(Dataset):
    """Karpathy's tiny Shakespeare as character ids, for next-character
    prediction: ``data[i]`` is the id of character i and ``label[i]`` that
    of character i + 1. Ids follow first appearance in the text;
    ``char_to_id`` and ``id_to_char`` map between them."""

    url = ('https://raw.githubusercontent.com/karpathy/char-rnn/master/data/'
           'tinyshakespeare/input.txt')

    def prepare(self):
        """Read the text, downloading it on first use, and number its characters."""
        path = utils.get_file(self.url, 'shakespear.txt')
        with open(path, 'r', encoding='utf-8') as f:
            text = f.read()
        chars = list(dict.fromkeys(text))     # in order of first appearance
        self.char_to_id = {c: i for i, c in enumerate(chars)}
        self.id_to_char = dict(enumerate(chars))
        codes = np.frombuffer(text.encode('utf-32-le'), dtype='<u4')
        lookup = np.zeros(int(codes.max(initial=0)) + 1, dtype=np.int_)
        lookup[[ord(c) for c in chars]] = np.arange(len(chars))
        indices = lookup[codes]
        self.data = indices[:-1]
        self.label = indices[1:]
