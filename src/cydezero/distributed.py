"""Data-parallel training over MPI, in ChainerMN's names.

Every process (rank) holds the whole model and trains it on its own share of
the data; after each backward the ranks average their gradients, so every
rank takes the same step and the parameters stay identical everywhere. With
equal shards of the mean loss this is, up to rounding, one process training
on the union of the shards.

MPI is mpi4py's (``pip install "cydezero[mpi]"`` brings mpi4py and MPICH
from PyPI). Run a program on 2 processes with::

    mpiexec -n 2 python -m mpi4py train.py

``python -m mpi4py`` makes an uncaught exception on one rank abort the whole
job; without it the other ranks would wait forever in their next collective
call. A program started without ``mpiexec`` is a world of one rank.

- :func:`create_communicator` wraps an MPI communicator: ``rank``, ``size``,
  ``bcast_data`` (rank 0's parameters to every rank), ``multi_node_mean_grad``
  (the mean gradient, one collective call for the whole model),
  ``allreduce``, ``bcast_obj``, ``gather_obj``, ``allreduce_obj``.
- :func:`create_multi_node_optimizer` wraps any optimizer: its first
  ``update()`` broadcasts the parameters, later ones average the gradients
  and then step.
- :func:`scatter_dataset` gives each rank an equal share of a data set.

Not done here: model parallelism, GPUs (NCCL), overlapping communication
with backward.
"""
import hashlib
import numbers
import pickle

import numpy as np

try:
    from mpi4py import MPI
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        'cydezero.distributed needs mpi4py and an MPI library: '
        'pip install "cydezero[mpi]" (mpi4py and MPICH from PyPI), then run '
        'programs with: mpiexec -n 2 python -m mpi4py train.py'
        f' (importing mpi4py.MPI failed: {e})') from e

from cydezero._core import Variable
from cydezero.dataloaders import DataLoader
from cydezero.datasets import Dataset

__all__ = [
    'Communicator',
    'SubDataset',
    'create_communicator',
    'create_multi_node_optimizer',
    'scatter_dataset',
]

# ChainerMN's communicator names. Every CPU one means "allreduce the
# gradients" and this module packs them into one buffer whatever the name;
# the GPU ones (NCCL) have no counterpart here.
_CPU_NAMES = frozenset({'naive', 'flat', 'hierarchical', 'two_dimensional',
                        'single_node', 'non_cuda_aware'})
_GPU_NAMES = frozenset({'pure_nccl', 'dummy'})

_OPS = {'sum': MPI.SUM, 'max': MPI.MAX, 'min': MPI.MIN, 'prod': MPI.PROD}

# The layout check rides in the gradient buffer as an integer below 2**12, so
# that the sum over up to 4096 ranks stays exact even in float32.
_LAYOUT_MOD = 1 << 12


# =============================================================================
# The model's parameters, as a layout every rank must agree on
# =============================================================================
def _params(model, where):
    """The model's Parameters in its order (the same on every rank for the
    same model class), failing early on a non-model or a GPU array."""
    params_of = getattr(model, 'params', None)
    if not callable(params_of):
        raise TypeError(f'{where}: expected a Layer or Model (something with params()), '
                        f'got {type(model).__name__}')
    params = list(params_of())
    for p in params:
        for a in (p.data, None if p.grad is None else p.grad.data):
            if a is not None and type(a) is not np.ndarray:
                raise TypeError(f'{where}: parameters must hold NumPy arrays (GPUs are not '
                                f'supported), got {type(a).__module__}.{type(a).__name__}')
    return params


def _names(model, params):
    """A readable name per parameter (its attribute path) for messages."""
    named = getattr(model, '_named_params', None)
    by_id = {}
    if callable(named):
        for key, p in named():
            by_id.setdefault(id(p), key)
    return [by_id.get(id(p), f'#{i}') for i, p in enumerate(params)]


def _signature(params):
    """(shape, dtype) per parameter; (None, None) where the data is not made
    yet (a Linear with in_size=None before its first call)."""
    return [(None, None) if p.data is None else (p.data.shape, p.data.dtype.str)
            for p in params]


def _layout_code(signature):
    """A small integer that differs, almost surely, between two signatures."""
    digest = hashlib.blake2b(repr(signature).encode(), digest_size=8).digest()
    return int.from_bytes(digest, 'little') % _LAYOUT_MOD


def _grad_buffer_dtype(params, where):
    """float64 when any parameter is float64, else float32 (float16
    gradients are summed in float32). The sums for float32 parameters are
    then rounded once, on the way back."""
    kinds = {p.data.dtype for p in params if p.data is not None}
    for dt in kinds:
        if dt.kind != 'f':
            raise TypeError(f'{where}: gradients are averaged in floating point; '
                            f'a parameter has dtype {dt}')
    return np.result_type(np.float32, *kinds)


# =============================================================================
# Communicator
# =============================================================================
class Communicator:
    """One MPI communicator and the collective operations training needs.

    Every method here is collective: every rank of the communicator must call
    it, in the same order, or the ranks that did wait for the others.
    """

    def __init__(self, mpi_comm):
        if not isinstance(mpi_comm, MPI.Intracomm):
            raise TypeError('Communicator: expected an mpi4py intracommunicator '
                            f'(MPI.COMM_WORLD or one split from it), got {mpi_comm!r}')
        self.mpi_comm = mpi_comm

    @property
    def rank(self):
        """This process's index, 0 to size - 1."""
        return self.mpi_comm.Get_rank()

    @property
    def size(self):
        """The number of processes."""
        return self.mpi_comm.Get_size()

    def __repr__(self):
        return f'<cydezero.distributed.Communicator rank {self.rank} of {self.size}>'

    # -- the model ------------------------------------------------------------
    def bcast_data(self, model, root=0):
        """Copy the root's parameter values into every rank's model.

        The ranks first compare their models' parameter shapes and dtypes and
        all fail with the same message if they differ; then the root sends
        every parameter's bytes in one broadcast. Each rank's parameters get
        arrays of their own (no rank shares memory with the buffer).
        """
        where = f'{type(self).__name__}.bcast_data'
        self._check_root(root, where)
        params = _params(model, where)
        signature = _signature(params)
        names = _names(model, params)
        everyone = self.mpi_comm.allgather(signature)
        for r, theirs in enumerate(everyone):
            if theirs != signature:
                diff = _describe_difference(names, signature, theirs)
                raise ValueError(f'{where}: rank {r} has a model with other parameters '
                                 f'than rank {self.rank}: {diff}')
        unset = [n for n, (shape, _) in zip(names, signature) if shape is None]
        if unset:
            raise ValueError(f'{where}: parameters {unset} have no data yet (layers with '
                             'in_size=None create it on their first call): run one forward '
                             'pass before broadcasting')
        if self.size == 1:
            return
        nbytes = [p.data.nbytes for p in params]
        buf = np.empty(sum(nbytes), np.uint8)
        offset = 0
        if self.rank == root:
            for p, n in zip(params, nbytes):
                buf[offset:offset + n] = np.ascontiguousarray(p.data).reshape(-1).view(np.uint8)
                offset += n
        self.mpi_comm.Bcast(buf, root=root)
        if self.rank != root:
            for p, n in zip(params, nbytes):
                # A copy: each parameter owns its array, as it did before.
                p.data = buf[offset:offset + n].view(p.data.dtype).reshape(p.data.shape).copy()
                offset += n

    def multi_node_mean_grad(self, model):
        """Replace every parameter's gradient by its mean over the ranks.

        One allreduce carries the whole model: the gradients packed into one
        buffer, then one flag per parameter (does this rank have a gradient),
        then a code of the parameters' shapes. A rank without a gradient for a
        parameter counts as zero (that parameter did not touch its data); a
        parameter with no gradient on any rank keeps None, so optimizers and
        FreezeParam skip it as they would on one process. The mean is in the
        parameter's dtype, in a new array per parameter (a gradient array
        shared by two parameters is never changed in place).
        """
        where = f'{type(self).__name__}.multi_node_mean_grad'
        params = _params(model, where)
        signature = _signature(params)
        dtype = _grad_buffer_dtype(params, where)
        if self.size == 1:
            # The mean over one rank is its gradient: packing would cost
            # 0.9 ms a step for nothing (bench/distributed.py, mlp_large).
            return
        sizes = [0 if p.data is None else p.data.size for p in params]
        total = sum(sizes)
        buf = np.zeros(total + len(params) + 1, dtype)
        offset = 0
        for i, (p, n) in enumerate(zip(params, sizes)):
            if p.grad is not None:
                g = p.grad.data
                if g.size != n:
                    raise ValueError(f'{where}: the gradient of {_names(model, params)[i]} '
                                     f'has shape {g.shape}, its data {p.data.shape}')
                buf[offset:offset + n] = g.reshape(-1)
                buf[total + i] = 1
            offset += n
        code = _layout_code(signature)
        buf[-1] = code
        if self.size > 1:
            self.mpi_comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        if buf[-1] != code * self.size:
            raise ValueError(f'{where}: the ranks\' models have different parameters '
                             f'(shapes or dtypes); this rank has {signature}')
        buf[:total] /= self.size
        offset = 0
        for i, (p, n) in enumerate(zip(params, sizes)):
            if buf[total + i] != 0:
                g = buf[offset:offset + n].reshape(p.data.shape)
                p.grad = Variable(g.astype(p.data.dtype) if g.dtype != p.data.dtype else g)
            offset += n

    # -- arrays and objects ---------------------------------------------------
    def allreduce(self, x, op='sum'):
        """The elementwise ``op`` ('sum', 'mean', 'max', 'min', 'prod') of
        array ``x`` over the ranks, as a new array on every rank. Every rank
        must pass the same shape and dtype."""
        where = f'{type(self).__name__}.allreduce'
        if isinstance(x, Variable):
            x = x.data
        if op != 'mean' and op not in _OPS:
            raise ValueError(f"{where}: op must be one of 'sum', 'mean', 'max', 'min', 'prod', "
                             f'got {op!r}')
        a = np.array(x, copy=True, order='C')
        if a.dtype.kind not in 'biufc':
            raise TypeError(f'{where}: expected a numeric array, got dtype {a.dtype}')
        if op == 'mean' and a.dtype.kind != 'f' and a.dtype.kind != 'c':
            a = a.astype(np.float64)
        if self.size > 1:
            self.mpi_comm.Allreduce(MPI.IN_PLACE, a, op=_OPS.get(op, MPI.SUM))
        if op == 'mean':
            a /= self.size
        return a

    def bcast_obj(self, obj, root=0):
        """The root's ``obj`` (any picklable object) on every rank."""
        self._check_root(root, f'{type(self).__name__}.bcast_obj')
        return self.mpi_comm.bcast(obj, root=root)

    def gather_obj(self, obj, root=0):
        """On the root, the list of every rank's ``obj`` in rank order; None
        on the other ranks."""
        self._check_root(root, f'{type(self).__name__}.gather_obj')
        return self.mpi_comm.gather(obj, root=root)

    def allreduce_obj(self, obj):
        """The sum (``+``) of every rank's ``obj`` (numbers, or anything
        picklable that adds), on every rank."""
        return self.mpi_comm.allreduce(obj, op=MPI.SUM)

    def _check_root(self, root, where):
        if not isinstance(root, numbers.Integral) or not 0 <= root < self.size:
            raise ValueError(f'{where}: root must be a rank, 0 to {self.size - 1}, got {root!r}')


def _describe_difference(names, mine, theirs):
    if len(mine) != len(theirs):
        return f'{len(theirs)} parameters against {len(mine)}'
    for name, a, b in zip(names, mine, theirs):
        if a != b:
            return f'{name}: (shape, dtype) {b} against {a}'
    return 'they differ'


def create_communicator(mpi_comm=None):
    """A :class:`Communicator` over ``mpi_comm`` (default ``MPI.COMM_WORLD``).

    ChainerMN's first argument was a communicator name; ``'naive'``,
    ``'flat'`` and its other CPU names are accepted and all mean this one
    (which packs the gradients into one buffer, as ``'flat'`` did). Its GPU
    names are refused: there is no NCCL here.
    """
    if isinstance(mpi_comm, str):
        if mpi_comm in _GPU_NAMES:
            raise ValueError(f'create_communicator: {mpi_comm!r} is a ChainerMN GPU '
                             "communicator; cydezero trains on CPUs only: use 'naive'")
        if mpi_comm not in _CPU_NAMES:
            raise ValueError(f'create_communicator: unknown communicator name {mpi_comm!r}; '
                             'pass an mpi4py communicator, or None for MPI.COMM_WORLD')
        mpi_comm = None
    return Communicator(MPI.COMM_WORLD if mpi_comm is None else mpi_comm)


# =============================================================================
# Multi-node optimizer
# =============================================================================
class _MultiNodeOptimizer:
    """An optimizer whose ``update()`` first makes every rank's gradients
    their mean over the ranks. Everything else (``lr``, ``hooks``,
    ``add_hook``, ``target``, ...) is the wrapped optimizer's."""

    _own = frozenset({'actual_optimizer', 'communicator', 'needs_broadcast'})

    def __init__(self, actual_optimizer, communicator):
        object.__setattr__(self, 'actual_optimizer', actual_optimizer)
        object.__setattr__(self, 'communicator', communicator)
        object.__setattr__(self, 'needs_broadcast', True)

    def setup(self, target):
        self.actual_optimizer.setup(target)
        self.needs_broadcast = True
        return self

    def update(self):
        """First call: rank 0's parameters to every rank, no step (the ranks
        start from different values, so their gradients are discarded). Then:
        the mean gradient, then the wrapped optimizer's update, whose hooks
        (WeightDecay, ClipGrad) see the mean."""
        target = self.actual_optimizer.target
        if target is None:
            raise RuntimeError(f'{type(self.actual_optimizer).__name__}.update: call '
                               'setup(model) first')
        if self.needs_broadcast:
            self.communicator.bcast_data(target)
            self.needs_broadcast = False
            return
        self.communicator.multi_node_mean_grad(target)
        self.actual_optimizer.update()

    def __getattr__(self, name):
        return getattr(self.actual_optimizer, name)

    def __setattr__(self, name, value):
        if name in self._own:
            object.__setattr__(self, name, value)
        else:
            setattr(self.actual_optimizer, name, value)

    def __repr__(self):
        return (f'<multi-node {type(self.actual_optimizer).__name__} on rank '
                f'{self.communicator.rank} of {self.communicator.size}>')


def create_multi_node_optimizer(actual_optimizer, communicator):
    """Wrap ``actual_optimizer`` (any cydezero optimizer, set up or not) so
    that its updates are data-parallel over ``communicator``'s ranks."""
    if not isinstance(communicator, Communicator):
        raise TypeError('create_multi_node_optimizer: expected a Communicator '
                        f'(create_communicator()), got {type(communicator).__name__}')
    if isinstance(actual_optimizer, _MultiNodeOptimizer):
        raise TypeError('create_multi_node_optimizer: the optimizer is multi-node already '
                        '(wrapping it twice would average twice)')
    if not (callable(getattr(actual_optimizer, 'update', None))
            and callable(getattr(actual_optimizer, 'setup', None))):
        raise TypeError('create_multi_node_optimizer: expected an optimizer (with setup() '
                        f'and update()), got {type(actual_optimizer).__name__}')
    return _MultiNodeOptimizer(actual_optimizer, communicator)


# =============================================================================
# Data
# =============================================================================
class SubDataset(Dataset):
    """The examples ``dataset[indices[i]]``, for ``i`` in ``range(len(indices))``."""

    def __init__(self, dataset, indices):
        self._dataset = dataset
        self._indices = np.asarray(indices, dtype=np.intp)
        super().__init__()

    def __getitem__(self, index):
        if not np.isscalar(index):
            raise TypeError(f'{type(self).__name__} takes one integer index, got {index!r}')
        return self._dataset[int(self._indices[index])]

    def __len__(self):
        return len(self._indices)


class _ArrayShard(Dataset):
    """Rows of an array-backed Dataset, as a Dataset of its own: DataLoader
    then batches it with one fancy index instead of one call per example."""

    def __init__(self, data, label):
        super().__init__()
        self.data = data
        self.label = label


def _shares(n, size):
    """Rank r's positions in the (shuffled) order: ceil(n / size) of them
    from n * r // size on. The shares are equal; when size does not divide
    n they overlap, as in ChainerMN, and some examples are used once more
    than the others."""
    length = -(-n // size)
    return [(n * r // size, n * r // size + length) for r in range(size)]


def scatter_dataset(dataset, comm, root=0, shuffle=False, seed=None):
    """This rank's share of the root's ``dataset`` (the other ranks' argument
    is not read; pass None). Collective.

    The root orders the examples (shuffled with ``np.random.default_rng(seed)``
    when ``shuffle``; NumPy's global generator is left alone) and cuts the
    order into ``comm.size`` shares of equal length, ``ceil(len / size)``,
    so every rank runs the same number of mini-batches per epoch; when the
    size does not divide the length, neighbouring shares overlap by an
    example. An array-backed Dataset (no transforms) is sent row by row,
    each rank receiving its rows only; any other data set is sent whole to
    every rank and wrapped in a :class:`SubDataset`.
    """
    if not isinstance(comm, Communicator):
        raise TypeError('scatter_dataset: expected a Communicator (create_communicator()), '
                        f'got {type(comm).__name__}')
    comm._check_root(root, 'scatter_dataset')
    parts = None
    if comm.rank == root:
        try:
            n = len(dataset)
        except TypeError:
            n = None
        if n is None or not callable(getattr(dataset, '__getitem__', None)):
            # Every rank must still enter the collective below: the error
            # travels with it and every rank raises it.
            parts = [TypeError('scatter_dataset: expected a data set (len() and [i]) on '
                               f'the root, got {type(dataset).__name__}')] * comm.size
        else:
            order = (np.random.default_rng(seed).permutation(n) if shuffle
                     else np.arange(n))
            shares = [order[b:e] for b, e in _shares(n, comm.size)]
            if DataLoader._can_slice(dataset):
                parts = [('rows', dataset.data[idx],
                          None if dataset.label is None else dataset.label[idx])
                         for idx in shares]
            else:
                # Pickled here, before any rank waits for it: a data set
                # that does not pickle (a lambda transform) fails everywhere.
                try:
                    whole = np.frombuffer(pickle.dumps(dataset, protocol=5), np.uint8)
                    parts = [('indices', idx, whole.size) for idx in shares]
                except Exception as e:
                    parts = [TypeError(f'scatter_dataset: the root\'s data set does not '
                                       f'pickle ({type(e).__name__}: {e})')] * comm.size
    part = comm.mpi_comm.scatter(parts, root=root)
    if isinstance(part, Exception):
        raise part
    if part[0] == 'rows':
        return _ArrayShard(part[1], part[2])
    if comm.rank != root:
        whole = np.empty(part[2], np.uint8)
    comm.mpi_comm.Bcast(whole, root=root)
    return SubDataset(pickle.loads(whole) if comm.rank != root else dataset, part[1])
