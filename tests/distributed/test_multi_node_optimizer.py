"""create_multi_node_optimizer: data-parallel training on equal shards of
the mean loss is one process training on the whole batch, to 1e-12, on
every rank; the first update broadcasts; hooks see the mean gradient; the
wrapper reads and writes the wrapped optimizer's attributes."""
import numpy as np
import pytest

pytest.importorskip('mpi4py.MPI', reason='mpi4py is not installed (pip install ".[test,mpi]")')

import cydezero.functions as F  # noqa: E402
import cydezero.layers as L  # noqa: E402
from cydezero import Model, optimizers  # noqa: E402
from cydezero.distributed import create_multi_node_optimizer  # noqa: E402

SHARD = 8     # examples per rank and step
STEPS = 6


class Net(Model):
    def __init__(self):
        super().__init__()
        self.l1 = L.Linear(7, dtype=np.float64)
        self.l2 = L.Linear(3, dtype=np.float64)

    def forward(self, x):
        return self.l2(F.tanh(self.l1(x)))


def batches(size):
    """STEPS batches of size * SHARD examples, the same on every rank."""
    rng = np.random.default_rng(2024)
    return [(rng.standard_normal((size * SHARD, 4)), rng.integers(0, 3, size * SHARD))
            for _ in range(STEPS)]


def step(model, optimizer, x, t):
    loss = F.softmax_cross_entropy(model(x), t)   # the mean over the batch
    model.cleargrads()
    loss.backward()
    optimizer.update()


def make_optimizer(name):
    if name == 'SGD':
        return optimizers.SGD(lr=0.5)
    if name == 'MomentumSGD+ClipGrad':
        opt = optimizers.MomentumSGD(lr=0.3)
        # Clips hard: the norm of the whole batch's mean gradient is well
        # above 0.05, so the step depends on which gradient the hook sees.
        opt.add_hook(optimizers.ClipGrad(0.05))
        return opt
    opt = optimizers.Adam(alpha=0.05)
    opt.add_hook(optimizers.WeightDecay(0.1))
    return opt


@pytest.mark.parametrize('name', ['SGD', 'MomentumSGD+ClipGrad', 'Adam+WeightDecay'])
def test_data_parallel_training_is_one_process_on_the_whole_batch(comm, agree, same_everywhere,
                                                                   name):
    data = batches(comm.size)
    mine = slice(comm.rank * SHARD, (comm.rank + 1) * SHARD)

    # Every rank starts from other parameters: the first update must
    # replace them by rank 0's and take no step.
    np.random.seed(100 + comm.rank)
    model = Net()
    model(data[0][0][:1])
    start = comm.bcast_obj([p.data.copy() for p in model.params()])
    optimizer = create_multi_node_optimizer(make_optimizer(name), comm).setup(model)
    step(model, optimizer, data[0][0][mine], data[0][1][mine])
    agree(all(np.array_equal(p.data, s) for p, s in zip(model.params(), start)),
          'the first update did not just broadcast rank 0\'s parameters')
    for x, t in data:
        step(model, optimizer, x[mine], t[mine])

    # The truth: one process, rank 0's starting point, the whole batches.
    reference = Net()
    reference(data[0][0][:1])
    for p, s in zip(reference.params(), start):
        p.data = s.copy()
    plain = make_optimizer(name).setup(reference)
    for x, t in data:
        step(reference, plain, x, t)

    moved = max(float(np.abs(p.data - s).max()) for p, s in zip(reference.params(), start))
    agree(moved > 1e-2, f'the reference hardly moved ({moved}): the test would prove nothing')
    worst = max(float(np.abs(p.data - q.data).max())
                for p, q in zip(model.params(), reference.params()))
    agree(worst <= 1e-12, f'{name}: {worst:.3g} from one process on the whole batch')
    same_everywhere([p.data for p in model.params()], 'parameters after training')


def test_the_wrapper_is_the_wrapped_optimizer_for_everything_but_update(comm, agree):
    plain = optimizers.SGD(lr=0.1)
    opt = create_multi_node_optimizer(plain, comm)
    model = Net()
    agree(opt.setup(model) is opt and plain.target is model and opt.target is model)
    opt.lr = 0.25
    agree(plain.lr == 0.25 and opt.lr == 0.25)
    hook = optimizers.WeightDecay(0.0)
    opt.add_hook(hook)
    agree(plain.hooks == [hook])
    agree(opt.actual_optimizer is plain and opt.communicator is comm)
    agree('multi-node SGD' in repr(opt), repr(opt))


def test_setup_again_broadcasts_again(comm, agree):
    data = batches(comm.size)
    np.random.seed(7 + comm.rank)
    model = Net()
    model(data[0][0][:1])
    opt = create_multi_node_optimizer(optimizers.SGD(lr=0.1), comm).setup(model)
    step(model, opt, *data[0])
    agree(not opt.needs_broadcast)
    opt.setup(model)
    agree(opt.needs_broadcast)


def test_refusals(comm):
    with pytest.raises(TypeError, match='expected a Communicator'):
        create_multi_node_optimizer(optimizers.SGD(), comm.mpi_comm)
    with pytest.raises(TypeError, match='expected an optimizer'):
        create_multi_node_optimizer(object(), comm)
    twice = create_multi_node_optimizer(optimizers.SGD(), comm)
    with pytest.raises(TypeError, match='multi-node already'):
        create_multi_node_optimizer(twice, comm)
    with pytest.raises(RuntimeError, match='call setup'):
        twice.update()
