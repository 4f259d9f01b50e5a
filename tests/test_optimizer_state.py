"""Optimizer state_dict / load_state_dict / save_state / load_state: 5
steps, save, load into fresh objects, 5 more steps gives bit-identical
weights to 10 uninterrupted steps, for every optimizer (with a schedule
and a hook too)."""
import pickle

import numpy as np
import pytest
from cydezero.optimizers.lr_scheduler import CosineAnnealingLR

import cydezero.functions as F
import cydezero.optimizers as O
from cydezero.models import MLP

RNG = np.random.default_rng(0)
X = RNG.normal(size=(16, 60)).astype(np.float32)
T = RNG.integers(0, 3, size=16)

# W of the first layer has 60 x 80 = 4800 entries, above the optimizers'
# scratch-array threshold, so both of their code paths run.
OPTIMIZERS = {
    'SGD': lambda: O.SGD(lr=0.05),
    'MomentumSGD': lambda: O.MomentumSGD(lr=0.05, momentum=0.8),
    'AdaGrad': lambda: O.AdaGrad(lr=0.01),
    'AdaDelta': lambda: O.AdaDelta(rho=0.9),
    'Adam': lambda: O.Adam(alpha=0.01),
    'Adam_numpy_hyper': lambda: O.Adam(alpha=np.float32(0.01), beta1=np.float64(0.8)),
}


def model(seed):
    np.random.seed(seed)
    m = MLP((80, 3))
    m(X)  # make the lazy weights
    return m


def train(m, opt, sched, steps):
    for _ in range(steps):
        m.cleargrads()
        F.softmax_cross_entropy(m(X), T).backward()
        opt.update()
        if sched is not None:
            sched.step()


def make(name, seed, with_extras):
    m = model(seed)
    opt = OPTIMIZERS[name]().setup(m)
    sched = None
    if with_extras:
        opt.add_hook(O.WeightDecay(1e-3))
        if name != 'AdaDelta':
            sched = CosineAnnealingLR(opt, T_max=4, eta_min=1e-4)
    return m, opt, sched


@pytest.mark.parametrize('with_extras', [False, True])
@pytest.mark.parametrize('name', list(OPTIMIZERS))
def test_resume_from_files_is_bit_identical(name, with_extras, tmp_path):
    m, opt, sched = make(name, 0, with_extras)
    train(m, opt, sched, 10)
    want = [p.data.copy() for p in m.params()]

    m, opt, sched = make(name, 0, with_extras)
    train(m, opt, sched, 5)
    m.save_weights(tmp_path / 'model.npz')
    opt.save_state(tmp_path / 'opt')
    sched_state = pickle.dumps(sched.state_dict()) if sched is not None else None
    del m, opt, sched

    m2, opt2, sched2 = make(name, 1, with_extras)  # other weights, fresh state
    m2.load_weights(tmp_path / 'model.npz')
    opt2.load_state(tmp_path / 'opt')
    if sched2 is not None:
        sched2.load_state_dict(pickle.loads(sched_state))
    train(m2, opt2, sched2, 5)
    for a, b in zip(want, m2.params()):
        np.testing.assert_array_equal(a, b.data)


def test_without_the_state_the_resumed_run_differs():
    # The check above can fail: a fresh Adam (t = 0, zero moments) drifts.
    m, opt, _ = make('Adam', 0, False)
    train(m, opt, None, 10)
    want = [p.data.copy() for p in m.params()]
    m, opt, _ = make('Adam', 0, False)
    train(m, opt, None, 5)
    opt2 = O.Adam(alpha=0.01).setup(m)
    train(m, opt2, None, 5)
    assert not all(np.array_equal(a, b.data) for a, b in zip(want, m.params()))


def test_state_dict_is_keyed_by_parameter_path():
    m, opt, _ = make('Adam', 0, False)
    train(m, opt, None, 2)
    sd = opt.state_dict()
    assert sd['type'] == 'Adam'
    assert set(sd['state']) == {'l0/W', 'l0/b', 'l1/W', 'l1/b'}
    assert set(sd['state']['l0/W']) == {'ms', 'vs'}
    assert sd['hyperparams']['t'] == 2 and sd['hyperparams']['alpha'] == 0.01
    # copies: training on does not change a state dict already taken
    before = sd['state']['l0/W']['ms'].copy()
    train(m, opt, None, 1)
    np.testing.assert_array_equal(sd['state']['l0/W']['ms'], before)


def test_load_state_dict_checks_everything_before_changing_anything():
    m, opt, _ = make('MomentumSGD', 0, False)
    train(m, opt, None, 2)
    sd = opt.state_dict()
    with pytest.raises(ValueError, match='the state is of a MomentumSGD, not a Adam'):
        O.Adam().setup(m).load_state_dict(sd)
    sd_bad = {**sd, 'state': {**sd['state'], 'l1/b': {'vs': np.zeros(7)}},
              'hyperparams': {**sd['hyperparams'], 'lr': 123.0}}
    with pytest.raises(ValueError, match=r"state 'vs' of 'l1/b' has shape \(7,\) but the "
                                         r"parameter has shape \(3,\)"):
        opt.load_state_dict(sd_bad)
    assert opt.lr == 0.05  # unchanged
    sd_missing = {**sd, 'state': {'l9/W': {'vs': np.zeros(1)}}}
    with pytest.raises(KeyError, match="no parameter 'l9/W'"):
        opt.load_state_dict(sd_missing)
    with pytest.raises(RuntimeError, match='call setup'):
        O.SGD().state_dict()


def test_save_state_refuses_what_it_cannot_write_back(tmp_path):
    _, opt, _ = make('SGD', 0, False)
    opt.note = object()
    with pytest.raises(TypeError, match="hyperparameter 'note' is a object"):
        opt.save_state(tmp_path / 'o.npz')
    assert not list(tmp_path.iterdir())


def test_numpy_hyperparameters_come_back_with_their_dtype(tmp_path):
    m, opt, _ = make('Adam_numpy_hyper', 0, False)
    opt.save_state(tmp_path / 'o')
    opt2 = O.Adam().setup(m)
    opt2.load_state(tmp_path / 'o.npz')
    assert type(opt2.alpha) is np.float32 and type(opt2.beta1) is np.float64
    assert type(opt2.beta2) is float
