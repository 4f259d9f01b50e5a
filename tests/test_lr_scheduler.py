"""cydezero.optimizers.lr_scheduler: the rates of each schedule against
their closed forms and, where torch is installed, against PyTorch's
schedulers (bit for bit), including resuming from a state dict."""
import math

import numpy as np
import pytest

import cydezero.optimizers as O
from cydezero.optimizers import lr_scheduler as S


def rates(sched, n):
    out = []
    for _ in range(n):
        out.append(sched.get_last_lr()[0])
        sched.step()
    return out


CASES = {
    'StepLR': (lambda o: S.StepLR(o, step_size=3, gamma=0.5),
               lambda e: 0.1 * 0.5 ** (e // 3)),
    'ExponentialLR': (lambda o: S.ExponentialLR(o, gamma=0.9),
                      lambda e: 0.1 * 0.9 ** e),
    'CosineAnnealingLR': (lambda o: S.CosineAnnealingLR(o, T_max=5, eta_min=0.01),
                          lambda e: 0.01 + 0.09 * (1 + math.cos(math.pi * e / 5)) / 2),
    'LambdaLR': (lambda o: S.LambdaLR(o, lambda e: 1 / (1 + e)),
                 lambda e: 0.1 / (1 + e)),
}


@pytest.mark.parametrize('name', list(CASES))
def test_rates_follow_the_closed_form(name):
    make, closed = CASES[name]
    opt = O.SGD(lr=0.1)
    got = rates(make(opt), 23)
    np.testing.assert_allclose(got, [closed(e) for e in range(23)], rtol=1e-12)
    # the optimizer's own rate is the one for the epoch after the last read
    assert opt.lr == pytest.approx(closed(23), rel=1e-12)


def torch_scheduler(name, torch):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    L = torch.optim.lr_scheduler
    return opt, {
        'StepLR': lambda: L.StepLR(opt, step_size=3, gamma=0.5),
        'ExponentialLR': lambda: L.ExponentialLR(opt, gamma=0.9),
        'CosineAnnealingLR': lambda: L.CosineAnnealingLR(opt, T_max=5, eta_min=0.01),
        'LambdaLR': lambda: L.LambdaLR(opt, lambda e: 1 / (1 + e)),
    }[name]()


@pytest.mark.parametrize('name', list(CASES))
def test_rates_equal_torch_bit_for_bit(name):
    torch = pytest.importorskip('torch')
    topt, tsched = torch_scheduler(name, torch)
    want = []
    for _ in range(23):
        want.append(tsched.get_last_lr()[0])
        topt.step()
        tsched.step()
    assert rates(CASES[name][0](O.SGD(lr=0.1)), 23) == want


@pytest.mark.parametrize('name', list(CASES))
def test_a_resumed_schedule_continues_exactly(name):
    make = CASES[name][0]
    want = rates(make(O.SGD(lr=0.1)), 12)
    opt = O.SGD(lr=0.1)
    sched = make(opt)
    first = rates(sched, 6)
    opt_state, sched_state = dict(vars(opt)), sched.state_dict()
    opt2 = O.SGD(lr=0.7)
    sched2 = make(opt2)
    opt2.lr, opt2.initial_lr = opt_state['lr'], opt_state['initial_lr']
    sched2.load_state_dict(sched_state)
    assert first + rates(sched2, 6) == want


def test_adam_is_driven_through_alpha_and_adadelta_has_no_rate():
    opt = O.Adam(alpha=0.01)
    sched = S.StepLR(opt, step_size=1, gamma=0.5)
    sched.step()
    assert opt.alpha == 0.005 and opt.initial_lr == 0.01
    with pytest.raises(TypeError, match='AdaDelta has no learning rate'):
        S.ExponentialLR(O.AdaDelta(), 0.9)


def test_resuming_with_last_epoch_needs_an_initial_rate():
    with pytest.raises(ValueError, match='has no initial_lr'):
        S.StepLR(O.SGD(), 2, last_epoch=4)
    opt = O.SGD(lr=0.1)
    opt.initial_lr = 0.1
    # PyTorch starts a resumed cosine schedule from the closed form.
    sched = S.CosineAnnealingLR(opt, T_max=5, last_epoch=2)
    assert sched.last_epoch == 3
    assert sched.get_last_lr()[0] == pytest.approx(0.05 * (1 + math.cos(math.pi * 3 / 5)))


def test_lambda_state_dict_leaves_the_function_out():
    sd = S.LambdaLR(O.SGD(), lambda e: 1.0).state_dict()
    assert 'lr_lambda' not in sd and 'optimizer' not in sd and sd['last_epoch'] == 0
