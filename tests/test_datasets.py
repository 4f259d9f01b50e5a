"""cydezero.datasets: the Dataset protocol, Spiral and SinCurve against the
DeZero oracle (arrays and NumPy's global random state), and the downloaded
data sets parsed from tiny fake files in a pre-filled cache, with no network."""
import gzip
import io
import os
import pickle
import struct
import tarfile
import urllib.error
import urllib.request

import numpy as np
import pytest

import cydezero.datasets as D
import cydezero.transforms as T


def same_global_state(a, b):
    return (a[0] == b[0] and np.array_equal(a[1], b[1])
            and tuple(a[2:]) == tuple(b[2:]))


# -----------------------------------------------------------------------------
# Dataset protocol
# -----------------------------------------------------------------------------
class Squares(D.Dataset):
    def prepare(self):
        self.data = np.arange(5)
        self.label = np.arange(5) ** 2


class Unlabelled(D.Dataset):
    def prepare(self):
        self.data = np.arange(3) * 1.5


def test_dataset_indexing_and_transforms():
    ds = Squares()
    assert len(ds) == 5 and ds.train is True
    assert ds[3] == (3, 9)
    assert ds[np.int64(-1)] == (4, 16)
    ds = Squares(train=False, transform=lambda x: x + 100,
                 target_transform=lambda t: -t)
    assert ds.train is False
    assert ds[2] == (102, -4)
    assert Unlabelled()[2] == (3.0, None)


def test_dataset_index_must_be_a_scalar():
    with pytest.raises(TypeError, match='one integer index'):
        Squares()[[0, 1]]
    with pytest.raises(TypeError):
        Squares()[0:2]


def test_base_dataset_prepare_does_nothing():
    ds = D.Dataset()
    assert ds.data is None and ds.label is None


# -----------------------------------------------------------------------------
# Spiral and SinCurve
# -----------------------------------------------------------------------------
def test_spiral_shape_and_classes():
    x, t = D.get_spiral()
    assert x.shape == (300, 2) and x.dtype == np.float32
    assert t.shape == (300,) and t.dtype == np.dtype(int)
    assert np.bincount(t).tolist() == [100, 100, 100]
    assert np.all(np.hypot(x[:, 0], x[:, 1]) < 1.0)
    x2, _ = D.get_spiral(train=False)
    assert not np.array_equal(x, x2)
    ds = D.Spiral(train=False)
    np.testing.assert_array_equal(ds.data, x2)
    xi, ti = ds[7]
    assert xi.shape == (2,) and ti == ds.label[7]


@pytest.mark.parametrize('train', [True, False])
def test_spiral_equals_dezero_and_leaves_the_same_random_state(dezero, train):
    import dezero.datasets as DD
    np.random.seed(123)
    x_ref, t_ref = DD.get_spiral(train)
    state_ref = np.random.get_state()
    after_ref = np.random.randn(5)

    np.random.seed(456)  # a different state before: the result must not depend on it
    x, t = D.get_spiral(train)
    assert x.dtype == x_ref.dtype and t.dtype == t_ref.dtype
    np.testing.assert_array_equal(x, x_ref)
    np.testing.assert_array_equal(t, t_ref)
    assert same_global_state(np.random.get_state(), state_ref)
    np.testing.assert_array_equal(np.random.randn(5), after_ref)

    ds, ds_ref = D.Spiral(train=train), DD.Spiral(train=train)
    np.testing.assert_array_equal(ds.data, ds_ref.data)
    np.testing.assert_array_equal(ds.label, ds_ref.label)


@pytest.mark.parametrize('train', [True, False])
def test_sincurve_equals_dezero_from_the_same_global_seed(dezero, train):
    import dezero.datasets as DD
    np.random.seed(7)
    ref = DD.SinCurve(train=train)
    state_ref = np.random.get_state()
    np.random.seed(7)
    ds = D.SinCurve(train=train)
    assert same_global_state(np.random.get_state(), state_ref)
    assert ds.data.dtype == ref.data.dtype == np.float64
    assert ds.data.shape == ref.data.shape == (999, 1)
    np.testing.assert_array_equal(ds.data, ref.data)
    np.testing.assert_array_equal(ds.label, ref.label)


def test_sincurve_label_is_the_next_value():
    ds = D.SinCurve(train=False)
    np.testing.assert_array_equal(ds.data[1:], ds.label[:-1])
    np.testing.assert_allclose(ds.data[:, 0], np.cos(np.linspace(0, 2 * np.pi, 1000))[:-1])
    noisy = D.SinCurve()
    x = np.linspace(0, 2 * np.pi, 1000)[:-1]
    assert np.all(np.abs(noisy.data[:, 0] - np.sin(x)) <= 0.05)
    assert not np.array_equal(noisy.data, D.SinCurve().data)  # unseeded noise


# -----------------------------------------------------------------------------
# fake files in the real formats
# -----------------------------------------------------------------------------
def write_idx_gz(path, magic, dims, payload):
    header = struct.pack('>I', magic) + b''.join(struct.pack('>I', d) for d in dims)
    with gzip.open(path, 'wb') as f:
        f.write(header + payload.tobytes())


def fake_mnist(directory, prefix, n, seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    write_idx_gz(os.path.join(directory, prefix + '-images-idx3-ubyte.gz'),
                 2051, (n, 28, 28), images)
    write_idx_gz(os.path.join(directory, prefix + '-labels-idx1-ubyte.gz'),
                 2049, (n,), labels)
    return images, labels


def add_pickle(tar, name, obj):
    raw = pickle.dumps(obj, protocol=2)
    info = tarfile.TarInfo(name)
    info.size = len(raw)
    tar.addfile(info, io.BytesIO(raw))


def fake_cifar10(path, n=3):
    rng = np.random.default_rng(10)
    batches = {}
    with tarfile.open(path, 'w:gz') as tar:
        info = tarfile.TarInfo('cifar-10-batches-py')
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        add_pickle(tar, 'cifar-10-batches-py/batches.meta', {b'label_names': []})
        # test_batch before the training batches: order in the archive must not matter
        for name in ['test_batch'] + [f'data_batch_{i}' for i in range(1, 6)]:
            data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
            labels = rng.integers(0, 10, size=n).tolist()
            batches[name] = (data, labels)
            add_pickle(tar, 'cifar-10-batches-py/' + name,
                       {b'batch_label': name.encode(), b'data': data, b'labels': labels})
    return batches


def fake_cifar100(path, n=4):
    rng = np.random.default_rng(100)
    parts = {}
    with tarfile.open(path, 'w:gz') as tar:
        add_pickle(tar, 'cifar-100-python/meta', {b'fine_label_names': []})
        for name in ['train', 'test']:
            part = {b'data': rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                    b'fine_labels': rng.integers(0, 100, size=n).tolist(),
                    b'coarse_labels': rng.integers(0, 20, size=n).tolist()}
            parts[name] = part
            add_pickle(tar, 'cifar-100-python/' + name, part)
    return parts


@pytest.fixture
def cache(monkeypatch, tmp_path):
    """An empty cache directory that get_file uses, and no network at all."""
    directory = tmp_path / 'cache'
    directory.mkdir()
    monkeypatch.setenv('CYDEZERO_CACHE', str(directory))

    def offline(*args, **kwargs):
        raise urllib.error.URLError('network is unreachable (test)')
    monkeypatch.setattr(urllib.request, 'urlretrieve', offline)
    monkeypatch.setattr(urllib.request, 'urlopen', offline)
    return directory


@pytest.fixture
def dezero_cache(dezero, monkeypatch, tmp_path):
    """A separate cache directory for the DeZero oracle."""
    import dezero.datasets as DD
    import dezero.utils as DU
    directory = tmp_path / 'dezero_cache'
    directory.mkdir()
    monkeypatch.setattr(DU, 'cache_dir', str(directory))
    monkeypatch.setattr(DD, 'cache_dir', str(directory))
    return directory


# -----------------------------------------------------------------------------
# MNIST
# -----------------------------------------------------------------------------
def test_mnist_from_prefilled_cache(cache):
    images, labels = fake_mnist(cache, 'train', 5, 0)
    test_images, test_labels = fake_mnist(cache, 't10k', 3, 1)
    ds = D.MNIST()
    assert ds.data.shape == (5, 1, 28, 28) and ds.data.dtype == np.uint8
    np.testing.assert_array_equal(ds.data[:, 0], images)
    np.testing.assert_array_equal(ds.label, labels)
    x, t = ds[2]
    assert x.shape == (784,) and x.dtype == np.float32
    np.testing.assert_allclose(x, images[2].ravel() / np.float32(255))
    assert t == labels[2]
    raw = D.MNIST(train=False, transform=None)
    assert len(raw) == 3
    np.testing.assert_array_equal(raw[1][0], test_images[1][None])
    np.testing.assert_array_equal(raw.label, test_labels)
    assert D.MNIST.labels() == {i: str(i) for i in range(10)}


def test_mnist_equals_dezero(cache, dezero_cache):
    import dezero.datasets as DD
    for d in (cache, dezero_cache):
        fake_mnist(d, 'train', 4, 2)
    ours, ref = D.MNIST(), DD.MNIST()
    np.testing.assert_array_equal(ours.data, ref.data)
    np.testing.assert_array_equal(ours.label, ref.label)
    assert ours.label.dtype == ref.label.dtype
    for i in range(4):
        np.testing.assert_array_equal(ours[i][0], ref[i][0])
        assert ours[i][0].dtype == ref[i][0].dtype
    assert D.MNIST.labels() == DD.MNIST.labels()


def test_mnist_rejects_a_file_that_is_not_idx(cache):
    fake_mnist(cache, 'train', 2, 0)
    with gzip.open(cache / 'train-labels-idx1-ubyte.gz', 'wb') as f:
        f.write(b'<html>Forbidden</html>')
    with pytest.raises(ValueError, match='train-labels-idx1-ubyte.gz.*not an IDX'):
        D.MNIST()


def test_mnist_offline_error_names_every_url_and_the_cache(cache):
    with pytest.raises(OSError) as info:
        D.MNIST()
    msg = str(info.value)
    assert 'http://yann.lecun.com/exdb/mnist/train-images-idx3-ubyte.gz' in msg
    for base in D.MNIST.mirrors:
        assert base + 'train-images-idx3-ubyte.gz' in msg
    assert str(cache / 'train-images-idx3-ubyte.gz') in msg
    assert os.listdir(cache) == []  # no partial files left


def test_mnist_falls_back_to_the_mirror(cache, monkeypatch):
    src = cache.parent / 'server'
    src.mkdir()
    images, _ = fake_mnist(src, 'train', 2, 3)
    fetched = []

    def fake_urlretrieve(url, path, hook=None):
        fetched.append(url)
        if url.startswith('http://yann.lecun.com/'):
            raise urllib.error.HTTPError(url, 403, 'Forbidden', None, None)
        with open(src / url.rsplit('/', 1)[1], 'rb') as f, open(path, 'wb') as g:
            g.write(f.read())
    monkeypatch.setattr(urllib.request, 'urlretrieve', fake_urlretrieve)
    ds = D.MNIST()
    np.testing.assert_array_equal(ds.data[:, 0], images)
    assert [u.split('/')[2] for u in fetched] == [
        'yann.lecun.com', D.MNIST.mirrors[0].split('/')[2]] * 2


# -----------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100
# -----------------------------------------------------------------------------
def test_cifar10_from_prefilled_cache_and_npz_cache(cache, capsys):
    batches = fake_cifar10(cache / 'cifar-10-python.tar.gz')
    train = D.CIFAR10(transform=None)
    expected = np.concatenate([batches[f'data_batch_{i}'][0] for i in range(1, 6)])
    assert train.data.shape == (15, 3, 32, 32) and train.data.dtype == np.uint8
    np.testing.assert_array_equal(train.data.reshape(15, -1), expected)
    np.testing.assert_array_equal(
        train.label, [t for i in range(1, 6) for t in batches[f'data_batch_{i}'][1]])
    assert train.label.dtype == np.dtype(int)
    assert (cache / 'cifar-10-python.tar.gz.train.npz').exists()
    assert 'Saving: cifar-10-python.tar.gz.train.npz' in capsys.readouterr().out

    test = D.CIFAR10(train=False)
    np.testing.assert_array_equal(test.data.reshape(3, -1), batches['test_batch'][0])
    x, t = test[1]
    assert x.dtype == np.float32 and x.shape == (3, 32, 32)
    np.testing.assert_allclose(x, (test.data[1] - 0.5) / 0.5)
    assert t == batches['test_batch'][1][1]

    # the .npz cache is enough from now on
    os.remove(cache / 'cifar-10-python.tar.gz')
    again = D.CIFAR10(transform=None)
    np.testing.assert_array_equal(again.data, train.data)
    np.testing.assert_array_equal(again.label, train.label)
    assert D.CIFAR10.labels()[0] == 'airplane' and len(D.CIFAR10.labels()) == 10


def test_cifar10_test_set_equals_dezero_and_shares_its_npz_cache(cache, dezero_cache):
    import dezero.datasets as DD
    for d in (cache, dezero_cache):
        fake_cifar10(d / 'cifar-10-python.tar.gz')
    ours, ref = D.CIFAR10(train=False), DD.CIFAR10(train=False)
    np.testing.assert_array_equal(ours.data, ref.data)
    np.testing.assert_array_equal(ours.label, ref.label)
    np.testing.assert_array_equal(ours[2][0], ref[2][0])
    # an .npz written by DeZero is read as is
    os.remove(cache / 'cifar-10-python.tar.gz')
    os.replace(dezero_cache / 'cifar-10-python.tar.gz.test.npz',
               cache / 'cifar-10-python.tar.gz.test.npz')
    np.testing.assert_array_equal(D.CIFAR10(train=False).data, ref.data)


def test_cifar100_fine_and_coarse(cache):
    parts = fake_cifar100(cache / 'cifar-100-python.tar.gz')
    fine = D.CIFAR100(transform=None)
    assert fine.data.shape == (4, 3, 32, 32)
    np.testing.assert_array_equal(fine.data.reshape(4, -1), parts['train'][b'data'])
    np.testing.assert_array_equal(fine.label, parts['train'][b'fine_labels'])
    coarse = D.CIFAR100(train=False, label_type='coarse')
    np.testing.assert_array_equal(coarse.label, parts['test'][b'coarse_labels'])
    # the npz caches of the two label types are separate
    again = D.CIFAR100(train=False, label_type='coarse')
    np.testing.assert_array_equal(again.label, parts['test'][b'coarse_labels'])
    np.testing.assert_array_equal(D.CIFAR100(train=False).label,
                                  parts['test'][b'fine_labels'])
    with pytest.raises(ValueError, match='label_type'):
        D.CIFAR100(label_type='medium')
    fine_names, coarse_names = D.CIFAR100.labels(), D.CIFAR100.labels('coarse')
    assert len(fine_names) == 100 and fine_names[0] == 'apple' and fine_names[99] == 'worm'
    assert len(set(fine_names.values())) == 100
    assert len(coarse_names) == 20 and coarse_names[19] == 'vehicles 2'


def test_cifar100_equals_dezero(cache, dezero_cache):
    import dezero.datasets as DD
    for d in (cache, dezero_cache):
        fake_cifar100(d / 'cifar-100-python.tar.gz')
    for train in (True, False):
        ours, ref = D.CIFAR100(train=train), DD.CIFAR100(train=train)
        np.testing.assert_array_equal(ours.data, ref.data)
        np.testing.assert_array_equal(ours.label, ref.label)
        np.testing.assert_array_equal(ours[3][0], ref[3][0])
    assert D.CIFAR100.labels('coarse') == DD.CIFAR100.labels('coarse')


def test_cifar_offline_error_names_url_and_cache(cache):
    for cls, name in [(D.CIFAR10, 'cifar-10-python.tar.gz'),
                      (D.CIFAR100, 'cifar-100-python.tar.gz')]:
        with pytest.raises(OSError) as info:
            cls()
        assert 'https://www.cs.toronto.edu/~kriz/' + name in str(info.value)
        assert str(cache / name) in str(info.value)


def test_cifar_archive_without_the_batch_says_so(cache):
    with tarfile.open(cache / 'cifar-10-python.tar.gz', 'w:gz') as tar:
        add_pickle(tar, 'cifar-10-batches-py/readme', {})
    with pytest.raises(ValueError, match='lacks test_batch'):
        D.CIFAR10(train=False)


# -----------------------------------------------------------------------------
# Shakespear, ImageNet labels, npz helpers
# -----------------------------------------------------------------------------
TEXT = 'First Citizen:\nBefore we proceed, hear me speak.\n\nAll:\nSpeak, speak.\n'


def test_shakespear_from_prefilled_cache(cache):
    (cache / 'shakespear.txt').write_text(TEXT, encoding='utf-8')
    ds = D.Shakespear()
    chars = list(dict.fromkeys(TEXT))
    assert list(ds.char_to_id) == chars
    assert ds.id_to_char == dict(enumerate(chars))
    ids = [ds.char_to_id[c] for c in TEXT]
    np.testing.assert_array_equal(ds.data, ids[:-1])
    np.testing.assert_array_equal(ds.label, ids[1:])
    assert ''.join(ds.id_to_char[int(i)] for i in ds.data) == TEXT[:-1]
    assert ds[0] == (ids[0], ids[1])


def test_shakespear_equals_dezero(cache, dezero_cache):
    import dezero.datasets as DD
    for d in (cache, dezero_cache):
        (d / 'shakespear.txt').write_text(TEXT, encoding='utf-8')
    ours, ref = D.Shakespear(), DD.Shakespear()
    assert ours.char_to_id == ref.char_to_id and ours.id_to_char == ref.id_to_char
    assert ours.data.dtype == ref.data.dtype
    np.testing.assert_array_equal(ours.data, ref.data)
    np.testing.assert_array_equal(ours.label, ref.label)


def test_shakespear_offline_error(cache):
    with pytest.raises(OSError) as info:
        D.Shakespear()
    assert D.Shakespear.url in str(info.value)
    assert str(cache / 'shakespear.txt') in str(info.value)


def test_imagenet_labels_from_prefilled_cache(cache):
    (cache / 'imagenet1000_clsidx_to_labels.txt').write_text(
        "{0: 'tench, Tinca tinca',\n 1: 'goldfish, Carassius auratus',\n"
        " 999: 'toilet tissue'}", encoding='utf-8')
    labels = D.ImageNet.labels()
    assert labels == {0: 'tench, Tinca tinca', 1: 'goldfish, Carassius auratus',
                      999: 'toilet tissue'}
    assert isinstance(D.ImageNet(), D.Dataset)


def test_imagenet_labels_are_not_evaluated_as_code(cache):
    (cache / 'imagenet1000_clsidx_to_labels.txt').write_text(
        "__import__('os').getcwd()", encoding='utf-8')
    with pytest.raises(ValueError):
        D.ImageNet.labels()


def test_imagenet_offline_error(cache):
    with pytest.raises(OSError) as info:
        D.ImageNet.labels()
    assert 'imagenet1000_clsidx_to_labels.txt' in str(info.value)
    assert str(cache) in str(info.value)


def test_save_and_load_cache_npz(cache, capsys):
    url = 'https://example.com/some/data.tar.gz'
    assert D.load_cache_npz(url) == (None, None)
    data, label = np.arange(6).reshape(2, 3), np.array([1, 0])
    path = D.save_cache_npz(data, label, url, train=True)
    assert path == str(cache / 'data.tar.gz.train.npz')
    assert capsys.readouterr().out == 'Saving: data.tar.gz.train.npz\n Done\n'
    assert D.save_cache_npz(data + 1, label, url, train=True) is None  # kept
    d, t = D.load_cache_npz(url, train=True)
    np.testing.assert_array_equal(d, data)
    np.testing.assert_array_equal(t, label)
    assert D.load_cache_npz(url, train=False) == (None, None)
    assert sorted(os.listdir(cache)) == ['data.tar.gz.train.npz']


def test_save_cache_npz_leaves_nothing_on_failure(cache, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(np, 'savez_compressed', broken)
    with pytest.raises(KeyboardInterrupt):
        D.save_cache_npz(np.zeros(2), np.zeros(2), 'x.bin')
    assert os.listdir(cache) == []


def test_default_transforms_match_dezero_signatures():
    mnist_t = D.MNIST.__init__.__defaults__[1]
    assert [type(t) for t in mnist_t.transforms] == [T.Flatten, T.ToFloat, T.Normalize]
    cifar_t = D.CIFAR10.__init__.__defaults__[1]
    assert [type(t) for t in cifar_t.transforms] == [T.ToFloat, T.Normalize]
    assert (cifar_t.transforms[1].mean, cifar_t.transforms[1].std) == (0.5, 0.5)


def test_show_tiles_random_images(cache, monkeypatch):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    shown = []

    def show():
        shown.append(plt.gca().get_images()[-1].get_array())
        plt.close('all')
    monkeypatch.setattr(plt, 'show', show)
    images, _ = fake_mnist(cache, 'train', 3, 4)
    np.random.seed(0)
    D.MNIST().show(row=2, col=3)
    grid = shown[-1]
    assert grid.shape == (56, 84)
    tiles = [grid[r * 28:(r + 1) * 28, c * 28:(c + 1) * 28] for r in range(2) for c in range(3)]
    assert all(any(np.array_equal(tile, img) for img in images) for tile in tiles)
    fake_cifar10(cache / 'cifar-10-python.tar.gz')
    D.CIFAR10(train=False).show(row=1, col=2)
    assert shown[-1].shape == (32, 64, 3)
    assert 0.0 <= shown[-1].min() and shown[-1].max() <= 1.0
