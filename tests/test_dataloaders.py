"""cydezero.dataloaders: batch sizes and epochs, shuffling parity with the
DeZero oracle under the same seed, the array fast path giving exactly what
the per-example path gives, SeqDataLoader order, and GPU fallback."""
import numpy as np
import pytest

from cydezero import cuda
from cydezero.dataloaders import DataLoader, SeqDataLoader
from cydezero.datasets import Dataset, SinCurve, Spiral


class Table(Dataset):
    """n examples: x[i] = [i, i + 0.5] (float32), t[i] = i % 3."""

    def __init__(self, n=10, **kwargs):
        self.n = n
        super().__init__(**kwargs)

    def prepare(self):
        self.data = np.stack([np.arange(self.n), np.arange(self.n) + 0.5], 1).astype(np.float32)
        self.label = np.arange(self.n) % 3


class PerItem(Table):
    """The same examples, but through an overridden __getitem__ (no fast path)."""

    def __getitem__(self, index):
        return self.data[index].copy(), self.label[index]


def collect(loader, epochs=1):
    return [(x, t) for _ in range(epochs) for x, t in loader]


def assert_same_batches(a, b):
    assert len(a) == len(b)
    for (xa, ta), (xb, tb) in zip(a, b):
        assert xa.dtype == xb.dtype and ta.dtype == tb.dtype
        assert xa.shape == xb.shape and ta.shape == tb.shape
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ta, tb)


# -----------------------------------------------------------------------------
# batching and epochs
# -----------------------------------------------------------------------------
def test_batches_in_order_with_a_smaller_last_batch():
    loader = DataLoader(Table(10), batch_size=4, shuffle=False)
    assert loader.max_iter == 3 and loader.data_size == 10
    batches = collect(loader)
    assert [x.shape for x, _ in batches] == [(4, 2), (4, 2), (2, 2)]
    np.testing.assert_array_equal(np.concatenate([x for x, _ in batches])[:, 0], np.arange(10))
    np.testing.assert_array_equal(batches[2][1], [8 % 3, 9 % 3])
    assert batches[0][0].dtype == np.float32 and batches[0][1].dtype == np.dtype(int)


def test_epoch_ends_with_stop_iteration_then_starts_again():
    loader = DataLoader(Table(5), batch_size=2, shuffle=False)
    assert loader.next()[0].shape == (2, 2)
    assert next(loader)[0].shape == (2, 2)
    assert loader.next()[0].shape == (1, 2)
    assert loader.iteration == 3
    with pytest.raises(StopIteration):
        loader.next()
    assert loader.iteration == 0
    assert len(collect(loader)) == 3
    assert iter(loader) is loader


def test_shuffle_covers_every_example_once_per_epoch():
    np.random.seed(0)
    loader = DataLoader(Table(23), batch_size=5)
    epochs = [np.concatenate([x[:, 0] for x, _ in loader]) for _ in range(3)]
    for e in epochs:
        np.testing.assert_array_equal(np.sort(e), np.arange(23))
    assert not np.array_equal(epochs[0], epochs[1])


def test_empty_dataset_gives_no_batches():
    assert collect(DataLoader(Table(0), 3)) == []


# -----------------------------------------------------------------------------
# the fast path gives exactly what the per-example path gives
# -----------------------------------------------------------------------------
@pytest.mark.parametrize('shuffle', [True, False])
def test_fast_path_equals_per_item_path(shuffle):
    np.random.seed(1)
    fast = collect(DataLoader(Table(17), 4, shuffle=shuffle), epochs=2)
    np.random.seed(1)
    slow = collect(DataLoader(PerItem(17), 4, shuffle=shuffle), epochs=2)
    assert_same_batches(fast, slow)


def test_transforms_are_applied_per_example():
    ds = Table(6, transform=lambda x: x * 2, target_transform=lambda t: t + 10)
    x, t = DataLoader(ds, 6, shuffle=False).next()
    np.testing.assert_array_equal(x, ds.data * 2)
    np.testing.assert_array_equal(t, ds.label + 10)


def test_unlabelled_data_gives_a_batch_of_none():
    class Unlabelled(Dataset):
        def prepare(self):
            self.data = np.arange(5.0)
    x, t = DataLoader(Unlabelled(), 3, shuffle=False).next()
    np.testing.assert_array_equal(x, [0.0, 1.0, 2.0])
    assert t.dtype == object and t.tolist() == [None, None, None]


def test_object_and_string_data_go_through_the_per_item_path():
    class Words(Dataset):
        def prepare(self):
            self.data = np.array(['a', 'bbb', 'cc'])
            self.label = np.array([{'n': 1}, {'n': 3}, {'n': 2}], dtype=object)
    x, _ = DataLoader(Words(), 2, shuffle=False).next()
    # what stacking the examples one by one gives: width of the longest in the batch
    assert x.dtype == np.dtype('<U3') and x.tolist() == ['a', 'bbb']
    x, t = DataLoader(Words(), 3, shuffle=False).next()
    assert t.dtype == object and t.tolist() == [{'n': 1}, {'n': 3}, {'n': 2}]


# -----------------------------------------------------------------------------
# parity with DeZero
# -----------------------------------------------------------------------------
@pytest.mark.parametrize('batch_size,shuffle', [(30, True), (64, True), (7, False), (300, True)])
def test_same_batches_as_dezero_under_the_same_seed(dezero, batch_size, shuffle):
    import dezero.dataloaders as DL
    import dezero.datasets as DD
    np.random.seed(2024)
    ref_loader = DL.DataLoader(DD.Spiral(), batch_size, shuffle=shuffle)
    ref = [(x, t) for _ in range(3) for x, t in ref_loader]
    ref_state = np.random.get_state()
    np.random.seed(2024)
    loader = DataLoader(Spiral(), batch_size, shuffle=shuffle)
    ours = collect(loader, epochs=3)
    assert_same_batches(ours, ref)
    state = np.random.get_state()
    assert np.array_equal(state[1], ref_state[1]) and state[2:] == ref_state[2:]


def test_same_batches_as_dezero_for_a_custom_dataset(dezero):
    import dezero.dataloaders as DL
    np.random.seed(3)
    ref = [(x, t) for x, t in DL.DataLoader(PerItem(11), 3)]
    np.random.seed(3)
    assert_same_batches(collect(DataLoader(PerItem(11), 3)), ref)


@pytest.mark.parametrize('batch_size', [1, 3, 7])
def test_seq_loader_equals_dezero(dezero, batch_size):
    import dezero.dataloaders as DL
    import dezero.datasets as DD
    np.random.seed(0)
    ref_ds = DD.SinCurve()
    np.random.seed(0)
    ds = SinCurve()
    ref = [(x, t) for _ in range(2) for x, t in DL.SeqDataLoader(ref_ds, batch_size)]
    ours = collect(SeqDataLoader(ds, batch_size), epochs=2)
    assert_same_batches(ours, ref)


def test_seq_loader_rows_follow_their_stretch():
    loader = SeqDataLoader(Table(10), batch_size=3)
    assert loader.shuffle is False and loader.max_iter == 4
    firsts = [x[:, 0].tolist() for x, _ in loader]
    # stretches start at 0, 3, 6 (jump 10 // 3); indices wrap modulo 10
    assert firsts == [[0, 3, 6], [1, 4, 7], [2, 5, 8], [3, 6, 9]]
    assert len(collect(loader)) == 4


# -----------------------------------------------------------------------------
# GPU
# -----------------------------------------------------------------------------
def test_to_gpu_and_to_cpu():
    loader = DataLoader(Table(4), 2, shuffle=False)
    assert loader.gpu is False
    loader.to_gpu()
    assert loader.gpu is True
    if cuda.gpu_enable:
        x, t = loader.next()
        assert cuda.get_array_module(x) is cuda.cupy
        assert cuda.get_array_module(t) is cuda.cupy
        np.testing.assert_array_equal(cuda.as_numpy(x), Table(4).data[:2])
    else:
        with pytest.raises(RuntimeError, match='CuPy'):
            loader.next()
    loader.to_cpu()
    loader.reset()
    x, _ = loader.next()
    assert isinstance(x, np.ndarray)
