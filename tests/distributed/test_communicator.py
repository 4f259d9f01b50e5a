"""Communicator: rank and size, bcast_data, multi_node_mean_grad, and the
array and object collectives. Each rank computes what every other rank
holds by itself (the values are functions of the rank), so the truth never
comes from the code under test."""
import numpy as np
import pytest

pytest.importorskip('mpi4py.MPI', reason='mpi4py is not installed (pip install ".[test,mpi]")')

from mpi4py import MPI  # noqa: E402

import cydezero.functions as F  # noqa: E402
import cydezero.layers as L  # noqa: E402
from cydezero import Model, Parameter, Variable  # noqa: E402
from cydezero.distributed import Communicator, create_communicator  # noqa: E402


class TwoLayer(Model):
    def __init__(self, hidden=4, out=3, dtype=np.float64):
        super().__init__()
        self.l1 = L.Linear(hidden, dtype=dtype)
        self.l2 = L.Linear(out, dtype=dtype)

    def forward(self, x):
        return self.l2(F.sigmoid(self.l1(x)))


def built(seed, dtype=np.float64, hidden=4, in_size=2):
    """A TwoLayer whose parameters exist (one forward pass), drawn from seed."""
    np.random.seed(seed)
    model = TwoLayer(hidden, dtype=dtype)
    model(np.zeros((1, in_size), dtype))
    return model


def grad_of(rank, shape, salt=0):
    """The gradient rank ``rank`` sets in these tests: any rank can compute it."""
    return np.random.default_rng([rank, salt]).standard_normal(shape)


# -----------------------------------------------------------------------------
# the world
# -----------------------------------------------------------------------------
def test_rank_and_size_are_mpi_comm_worlds(comm, agree):
    agree(isinstance(comm, Communicator) and comm.mpi_comm is MPI.COMM_WORLD)
    agree(comm.rank == MPI.COMM_WORLD.Get_rank() and comm.size == MPI.COMM_WORLD.Get_size())
    ranks = comm.gather_obj(comm.rank)
    if comm.rank == 0:
        agree(ranks == list(range(comm.size)), ranks)
    else:
        agree(ranks is None, ranks)
    agree(repr(comm).endswith(f'rank {comm.rank} of {comm.size}>'), repr(comm))


def test_create_communicator_takes_a_split_communicator(comm, agree):
    sub = MPI.COMM_WORLD.Split(color=comm.rank % 2, key=comm.rank)
    try:
        c = create_communicator(sub)
        agree(c.mpi_comm is sub and c.size == len(range(comm.rank % 2, comm.size, 2)))
        agree(c.allreduce_obj(1) == c.size)
    finally:
        sub.Free()


def test_chainermn_cpu_names_mean_comm_world_and_gpu_names_are_refused(agree):
    agree(create_communicator('naive').mpi_comm is MPI.COMM_WORLD)
    agree(create_communicator('flat').mpi_comm is MPI.COMM_WORLD)
    with pytest.raises(ValueError, match='GPU communicator'):
        create_communicator('pure_nccl')
    with pytest.raises(ValueError, match='unknown communicator name'):
        create_communicator('fastest')
    with pytest.raises(TypeError, match='intracommunicator'):
        create_communicator(object())


# -----------------------------------------------------------------------------
# bcast_data
# -----------------------------------------------------------------------------
@pytest.mark.parametrize('dtype', [np.float64, np.float32])
def test_bcast_data_gives_every_rank_rank_0s_parameters(comm, agree, same_everywhere, dtype):
    model = built(seed=10 + comm.rank, dtype=dtype)
    truth = [p.data.copy() for p in built(seed=10, dtype=dtype).params()]
    before = [p.data for p in model.params()]
    comm.bcast_data(model)
    after = [p.data for p in model.params()]
    agree(all(a.dtype == dtype and np.array_equal(a, t) for a, t in zip(after, truth)),
          'parameters are not rank 0\'s')
    same_everywhere(after, 'parameters')
    if comm.rank == 0:
        agree(all(a is b for a, b in zip(after, before)), 'rank 0\'s arrays were replaced')
    else:
        # Arrays of their own, writeable, not views into the receive buffer.
        agree(all(a.base is None and a.flags.writeable for a in after), 'not own arrays')


def test_bcast_data_from_the_last_rank(comm, agree):
    last = comm.size - 1
    model = built(seed=20 + comm.rank)
    truth = [p.data.copy() for p in built(seed=20 + last).params()]
    comm.bcast_data(model, root=last)
    agree(all(np.array_equal(p.data, t) for p, t in zip(model.params(), truth)))
    with pytest.raises(ValueError, match='root must be a rank'):
        comm.bcast_data(model, root=comm.size)


def test_bcast_data_fails_on_every_rank_when_the_models_differ(comm, agree):
    # Rank 0 has 4 hidden units, the others 5: every rank must say so
    # (on one rank there is nothing to differ from, and it just works).
    model = built(seed=0, hidden=4 if comm.rank == 0 else 5)
    if comm.size == 1:
        comm.bcast_data(model)
        return
    with pytest.raises(ValueError, match='other parameters') as info:
        comm.bcast_data(model)
    agree('l1/W' in str(info.value), str(info.value))


def test_bcast_data_before_the_first_forward_says_to_run_one(comm):
    model = TwoLayer()  # in_size=None: no W until the first call
    with pytest.raises(ValueError, match=r"\['l1/W', 'l2/W'\] have no data yet"):
        comm.bcast_data(model)


# -----------------------------------------------------------------------------
# multi_node_mean_grad
# -----------------------------------------------------------------------------
@pytest.mark.parametrize('dtype', [np.float64, np.float32])
def test_mean_grad_is_the_mean_over_the_ranks(comm, agree, dtype):
    model = built(seed=0, dtype=dtype)
    params = list(model.params())
    for i, p in enumerate(params):
        p.grad = Variable(grad_of(comm.rank, p.shape, i).astype(dtype))
    comm.multi_node_mean_grad(model)
    for i, p in enumerate(params):
        truth = sum(grad_of(r, p.shape, i) for r in range(comm.size)) / comm.size
        tol = 1e-12 if dtype == np.float64 else 1e-6
        agree(p.grad.data.dtype == dtype and p.grad.data.shape == p.shape
              and np.allclose(p.grad.data, truth, rtol=0, atol=tol),
              f'param {i}: {p.grad.data!r} against {truth!r}')


def test_mean_grad_counts_a_missing_gradient_as_zero_and_keeps_none_where_all_miss(comm, agree):
    model = built(seed=0)
    W1, b1, W2, b2 = model.params()
    W1.grad = Variable(grad_of(comm.rank, W1.shape)) if comm.rank == 0 else None
    b1.grad = Variable(grad_of(comm.rank, b1.shape))
    W2.grad = b2.grad = None
    comm.multi_node_mean_grad(model)
    agree(np.allclose(W1.grad.data, grad_of(0, W1.shape) / comm.size, rtol=0, atol=1e-15))
    agree(W2.grad is None and b2.grad is None, 'a gradient appeared where no rank had one')


def test_mean_grad_leaves_a_shared_gradient_array_alone(comm, agree):
    a, b = Parameter(np.ones(3)), Parameter(np.ones(3))

    class Pair(Model):
        def __init__(self):
            super().__init__()
            self.a, self.b = a, b

    shared = np.full(3, float(comm.rank + 1))
    a.grad = b.grad = Variable(shared)
    comm.multi_node_mean_grad(Pair())
    mean = (comm.size + 1) / 2
    agree(np.array_equal(shared, np.full(3, float(comm.rank + 1))), 'shared array changed')
    agree(np.array_equal(a.grad.data, np.full(3, mean))
          and np.array_equal(b.grad.data, a.grad.data))


def test_mean_grad_fails_on_every_rank_when_the_shapes_differ(comm):
    # The same number of elements (the collective call completes), in other
    # shapes: without the layout code the ranks would average unrelated numbers.
    model = Model()
    model.p = Parameter(np.zeros((2, 6) if comm.rank == 0 else (6, 2)))
    model.p.grad = Variable(np.ones(model.p.shape))
    if comm.size == 1:
        comm.multi_node_mean_grad(model)
        return
    with pytest.raises(ValueError, match='different parameters'):
        comm.multi_node_mean_grad(model)


def test_mean_grad_refuses_integer_parameters_before_any_collective(comm):
    model = Model()
    model.p = Parameter(np.zeros(3, np.int64))
    with pytest.raises(TypeError, match='dtype int64'):
        comm.multi_node_mean_grad(model)
    with pytest.raises(TypeError, match='Layer or Model'):
        comm.multi_node_mean_grad([model.p])


# -----------------------------------------------------------------------------
# allreduce and the object collectives
# -----------------------------------------------------------------------------
def test_allreduce_sum_mean_max_min(comm, agree):
    x = np.arange(6.0).reshape(2, 3) * (comm.rank + 1)
    ranks = np.arange(1, comm.size + 1)
    base = np.arange(6.0).reshape(2, 3)
    expected = {'sum': base * ranks.sum(), 'mean': base * ranks.mean(),
                'max': base * ranks.max(), 'min': base * ranks.min()}
    for op, truth in expected.items():
        got = comm.allreduce(x, op=op)
        agree(got is not x and np.allclose(got, truth, rtol=1e-15, atol=0), f'{op}: {got}')
    agree(np.array_equal(x, base * (comm.rank + 1)), 'the argument was changed')
    agree(comm.allreduce(Variable(np.array(2.0))) == 2.0 * comm.size)
    agree(comm.allreduce(np.array([comm.rank]), op='mean') == (comm.size - 1) / 2)
    with pytest.raises(ValueError, match="op must be one of"):
        comm.allreduce(x, op='average')


def test_bcast_obj_gather_obj_allreduce_obj(comm, agree):
    agree(comm.bcast_obj({'from': comm.rank}) == {'from': 0})
    agree(comm.bcast_obj(comm.rank, root=comm.size - 1) == comm.size - 1)
    gathered = comm.gather_obj(('rank', comm.rank), root=comm.size - 1)
    if comm.rank == comm.size - 1:
        agree(gathered == [('rank', r) for r in range(comm.size)], gathered)
    else:
        agree(gathered is None)
    agree(comm.allreduce_obj(comm.rank) == sum(range(comm.size)))
    agree(comm.allreduce_obj([comm.rank]) == list(range(comm.size)))
