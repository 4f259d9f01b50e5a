"""DeZero's ``dezero.dataloaders``: iterate a Dataset in mini-batches of
stacked arrays ``(x, t)``, one epoch per ``for`` loop, optionally shuffled
(with ``np.random.permutation``) and moved to the GPU."""
import importlib.util
import math

import numpy as np

from cydezero import cuda
from cydezero.datasets import Dataset, _identity

# DeZero's flag; found without importing Pillow (the loaders never need it).
#: True when Pillow is installed (DeZero's flag).
pil_available = importlib.util.find_spec('PIL') is not None

# dtypes for which fancy indexing gives exactly what stacking the examples
# one by one with np.array gives (not strings, whose width could shrink,
# nor objects, which np.array would look inside).
_STACKABLE_KINDS = frozenset('biufc')


def _plain_array(a):
    # Exactly ndarray: a subclass (np.matrix) may index rows differently.
    return type(a) is np.ndarray and a.ndim >= 1 and a.dtype.kind in _STACKABLE_KINDS


class DataLoader:
    """Mini-batches ``(x, t)`` of ``batch_size`` examples of ``dataset``.

    One pass of ``for x, t in loader`` is one epoch: ``ceil(len(dataset) /
    batch_size)`` batches, the last one smaller when the size does not divide
    evenly. At the end of the epoch the loader raises StopIteration and
    resets itself, drawing a new order when ``shuffle`` is true. With
    ``gpu=True`` the batches are CuPy arrays.
    """

    def __init__(self, dataset, batch_size, shuffle=True, gpu=False):
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.data_size = len(dataset)
        self.max_iter = math.ceil(self.data_size / batch_size)
        self.gpu = gpu
        self.reset()

    def reset(self):
        """Start a new epoch (a new random order when shuffling)."""
        self.iteration = 0
        if self.shuffle:
            self.index = np.random.permutation(len(self.dataset))
        else:
            self.index = np.arange(len(self.dataset))

    def __iter__(self):
        return self

    def __next__(self):
        if self.iteration >= self.max_iter:
            self.reset()
            raise StopIteration
        i, n = self.iteration, self.batch_size
        batch = self._batch(self.index[i * n:(i + 1) * n])
        self.iteration += 1
        return batch

    def next(self):
        """The next batch (DeZero's spelling of ``next(loader)``)."""
        return self.__next__()

    def to_cpu(self):
        """Give the following batches as NumPy arrays."""
        self.gpu = False

    def to_gpu(self):
        """Give the following batches as CuPy arrays (CuPy must be installed)."""
        self.gpu = True

    def _batch(self, indices):
        """``(x, t)`` for the examples at ``indices``, as stacked arrays."""
        ds = self.dataset
        if self._can_slice(ds):
            # The examples are rows of arrays and indexing changes nothing,
            # so one fancy index gives the stacked batch at once.
            x = ds.data[indices]
            t = np.array([None] * len(indices)) if ds.label is None else ds.label[indices]
        else:
            examples = [ds[j] for j in indices]
            x = np.array([e[0] for e in examples])
            t = np.array([e[1] for e in examples])
        if self.gpu:
            return cuda.as_cupy(x), cuda.as_cupy(t)
        return x, t

    @staticmethod
    def _can_slice(ds):
        cls = type(ds)
        return (isinstance(ds, Dataset)
                and cls.__getitem__ is Dataset.__getitem__
                and cls.__len__ is Dataset.__len__
                and ds.transform is _identity
                and ds.target_transform is _identity
                and _plain_array(ds.data)
                and (ds.label is None
                     or (_plain_array(ds.label) and len(ds.label) >= len(ds.data))))


class SeqDataLoader(DataLoader):
    """Mini-batches for time series, in order: the dataset is cut into
    ``batch_size`` equal stretches and batch ``k`` holds the ``k``-th
    example of each stretch, so row ``i`` of consecutive batches follows one
    stretch through time (wrapping around at the end)."""

    def __init__(self, dataset, batch_size, gpu=False):
        super().__init__(dataset=dataset, batch_size=batch_size, shuffle=False,
                         gpu=gpu)

    def __next__(self):
        if self.iteration >= self.max_iter:
            self.reset()
            raise StopIteration
        jump = self.data_size // self.batch_size
        indices = ((np.arange(self.batch_size) * jump + self.iteration)
                   % self.data_size).tolist()
        batch = self._batch(indices)
        self.iteration += 1
        return batch
