"""Learning-rate schedules, importable as ``cydezero.optimizers.lr_scheduler``:
StepLR, ExponentialLR, CosineAnnealingLR and LambdaLR with PyTorch's
semantics. A scheduler drives its optimizer's own rate attribute (``lr``;
``alpha`` for Adam, whose ``lr`` is the bias-corrected step it derives).

As in PyTorch, making a scheduler counts as its step 0 (the rate is then the
initial one); each ``step()``, called once per epoch after the optimizer's
updates, moves to the next epoch's rate. StepLR, ExponentialLR and
CosineAnnealingLR update the current rate from the previous one (PyTorch's
recursive forms), so they compose with changes made by other code, and the
rates equal PyTorch's to the last bit. The optimizer remembers the starting
rate as ``initial_lr`` (as PyTorch's param groups do), which its
``state_dict`` saves.
"""
import math

__all__ = ['CosineAnnealingLR', 'ExponentialLR', 'LRScheduler', 'LambdaLR', 'StepLR']


def _rate_attr(optimizer):
    d = vars(optimizer)
    if 'lr' in d:
        return 'lr'
    if 'alpha' in d:
        return 'alpha'
    raise TypeError(f'{type(optimizer).__name__} has no learning rate to schedule '
                    '(neither an lr nor an alpha attribute)')


class LRScheduler:
    """Base class: subclasses give ``_next_rate()``, the rate for
    ``self.last_epoch`` computed from the current one."""

    def __init__(self, optimizer, last_epoch=-1):
        self.optimizer = optimizer
        self.attr = _rate_attr(optimizer)
        if last_epoch == -1:
            if not hasattr(optimizer, 'initial_lr'):
                optimizer.initial_lr = getattr(optimizer, self.attr)
        elif not hasattr(optimizer, 'initial_lr'):
            raise ValueError(f'{type(self).__name__}: last_epoch={last_epoch} resumes a '
                             'schedule, but the optimizer has no initial_lr (load its '
                             'state first)')
        self.base_lr = optimizer.initial_lr
        self.last_epoch = last_epoch
        self._step_count = 0
        self.step()

    def _next_rate(self):
        raise NotImplementedError

    def step(self):
        """Advance one epoch and set the optimizer's rate for it."""
        self._step_count += 1
        self.last_epoch += 1
        rate = self._next_rate()
        setattr(self.optimizer, self.attr, rate)
        self._last_lr = [rate]

    def get_last_lr(self):
        """The rate the last ``step()`` set, as a one-element list (one per
        parameter group in PyTorch; cydezero's optimizers have one)."""
        return list(self._last_lr)

    def state_dict(self):
        """Everything but the optimizer (and LambdaLR's function): a dict
        of numbers and lists of numbers, for pickle or ``json`` (a rate
        that is a NumPy scalar stays one)."""
        return {k: (list(v) if isinstance(v, list) else v) for k, v in vars(self).items()
                if k not in ('optimizer', 'lr_lambda')}

    def load_state_dict(self, state):
        """Restore what ``state_dict`` returned. The optimizer's rate is
        not touched: it comes back with the optimizer's own state."""
        self.__dict__.update({k: (list(v) if isinstance(v, list) else v)
                              for k, v in state.items()})


class StepLR(LRScheduler):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs:
    rate = initial * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def _next_rate(self):
        rate = getattr(self.optimizer, self.attr)
        if self.last_epoch == 0 or self.last_epoch % self.step_size:
            return rate
        return rate * self.gamma


class ExponentialLR(LRScheduler):
    """Multiply the rate by ``gamma`` every epoch: initial * gamma ** epoch."""

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def _next_rate(self):
        rate = getattr(self.optimizer, self.attr)
        return rate if self.last_epoch == 0 else rate * self.gamma


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from the initial rate to ``eta_min`` over
    ``T_max`` epochs (then back up, periodically, as PyTorch's does):
    rate = eta_min + (initial - eta_min) (1 + cos(pi epoch / T_max)) / 2,
    computed by PyTorch's documented recurrence from the previous rate."""

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def _next_rate(self):
        e, T, lo = self.last_epoch, self.T_max, self.eta_min
        rate = getattr(self.optimizer, self.attr)
        if e == 0:
            return rate
        if self._step_count == 1:  # resumed at e > 0: the closed form
            return lo + (self.base_lr - lo) * (1 + math.cos(e * math.pi / T)) / 2
        if (e - 1 - T) % (2 * T) == 0:  # the bottom of a period
            return rate + (self.base_lr - lo) * (1 - math.cos(math.pi / T)) / 2
        return (1 + math.cos(math.pi * e / T)) / (1 + math.cos(math.pi * (e - 1) / T)) \
            * (rate - lo) + lo


class LambdaLR(LRScheduler):
    """rate = initial * lr_lambda(epoch), for a function of the epoch."""

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        if not callable(lr_lambda):
            raise TypeError(f'LambdaLR: lr_lambda must be callable, got '
                            f'{type(lr_lambda).__name__}')
        self.lr_lambda = lr_lambda
        super().__init__(optimizer, last_epoch)

    def _next_rate(self):
        return self.base_lr * self.lr_lambda(self.last_epoch)
