"""scatter_dataset: equal shares that cover the data set, in the root's
order (shuffled with the seed when asked), for array-backed data sets (sent
row by row, batched by DataLoader with one index) and any other one (sent
whole, wrapped in a SubDataset); only the root's data set is read."""
import numpy as np
import pytest

pytest.importorskip('mpi4py.MPI', reason='mpi4py is not installed (pip install ".[test,mpi]")')

from cydezero import DataLoader, Dataset  # noqa: E402
from cydezero.datasets import Spiral  # noqa: E402
from cydezero.distributed import SubDataset, scatter_dataset  # noqa: E402


def as_float(x):
    return x * 1.0


class Numbered(Dataset):
    """Example i is (the row [i, i], label i), read through a transform, so
    DataLoader cannot slice it and scatter_dataset must send it whole."""

    def __init__(self, n, transform=as_float):
        self.n = n
        super().__init__(transform=transform)

    def prepare(self):
        self.data = np.repeat(np.arange(self.n), 2).reshape(self.n, 2)
        self.label = np.arange(self.n)


class Pairs:
    """Not a Dataset at all: a list of examples."""

    def __init__(self, n):
        self.items = [(np.array([i, i]), i) for i in range(n)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def labels_of(share):
    return [int(share[i][1]) for i in range(len(share))]


def check_shares(comm, agree, n, labels, order):
    """Equal lengths ceil(n / size); every rank's labels a contiguous run of
    ``order``; together every example, as evenly as possible (the counts
    differ by at most one)."""
    length = -(-n // comm.size)
    agree(len(labels) == length, f'{len(labels)} examples, expected {length}')
    position = {int(v): i for i, v in enumerate(order)}
    start = position[labels[0]]
    agree(labels == [int(v) for v in order[start:start + length]], 'not a run of the order')
    everyone = comm.mpi_comm.allgather(labels)
    seen = np.bincount(np.concatenate(everyone), minlength=n)
    agree(seen.min() >= 1 and seen.max() - seen.min() <= 1 and seen.sum() == comm.size * length,
          f'coverage {seen}')


@pytest.mark.parametrize('n', [300, 7, 1])
def test_array_dataset_in_equal_shares_batched_with_one_index(comm, agree, n):
    full = Numbered(n)
    full.transform = full.target_transform = Dataset().transform  # identity: sliceable
    share = scatter_dataset(full if comm.rank == 0 else None, comm)
    agree(isinstance(share, Dataset) and DataLoader._can_slice(share), type(share).__name__)
    check_shares(comm, agree, n, labels_of(share), np.arange(n))
    agree(np.array_equal(share.data[:, 0], share.label), 'rows and labels apart')


def test_shuffled_with_a_seed_in_the_roots_order_leaving_numpys_generator(comm, agree):
    mine = Spiral() if comm.rank == 0 else None   # (Spiral seeds the generator itself)
    state = np.random.get_state()[1].copy()
    share = scatter_dataset(mine, comm, shuffle=True, seed=3)
    agree(np.array_equal(np.random.get_state()[1], state), 'the global generator moved')
    spiral = Spiral()
    order = np.random.default_rng(3).permutation(len(spiral))
    length = -(-len(spiral) // comm.size)
    b = len(spiral) * comm.rank // comm.size
    rows = order[b:b + length]
    agree(np.array_equal(share.data, spiral.data[rows])
          and np.array_equal(share.label, spiral.label[rows]), 'not the seeded order')
    agree(len(share) == length)


@pytest.mark.parametrize('make', [Numbered, Pairs])
def test_any_other_dataset_is_sent_whole_and_indexed(comm, agree, make):
    n = 11
    share = scatter_dataset(make(n) if comm.rank == 0 else 'ignored', comm, shuffle=True,
                            seed=0)
    agree(isinstance(share, SubDataset), type(share).__name__)
    check_shares(comm, agree, n, labels_of(share), np.random.default_rng(0).permutation(n))
    x, t = share[0]
    agree(np.array_equal(x, [t, t]))


def test_a_share_feeds_a_dataloader_the_same_number_of_batches_everywhere(comm, agree):
    share = scatter_dataset(Spiral() if comm.rank == 0 else None, comm, shuffle=True, seed=1)
    loader = DataLoader(share, batch_size=32)
    sizes = [len(t) for _, t in loader]
    agree(sum(sizes) == len(share) and comm.mpi_comm.allgather(len(sizes)) == [len(sizes)]
          * comm.size)


def test_a_root_without_a_picklable_dataset_fails_on_every_rank(comm):
    with pytest.raises(TypeError, match='expected a data set'):
        scatter_dataset(42 if comm.rank == 0 else None, comm)
    with pytest.raises(TypeError, match='does not pickle'):
        scatter_dataset(Numbered(3, transform=lambda x: x) if comm.rank == 0 else None, comm)
    with pytest.raises(ValueError, match='root must be a rank'):
        scatter_dataset(None, comm, root=-1)
