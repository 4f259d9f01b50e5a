"""DeZero's ``dezero.optimizers``: gradient-descent rules (SGD, MomentumSGD,
AdaGrad, AdaDelta, Adam) that update a model's Parameters in place from
their gradients, and hooks run on the gradients first (WeightDecay,
ClipGrad, FreezeParam).

The arithmetic is DeZero 0.0.13's, operation for operation, so the numbers
are the same; when a gradient has its parameter's dtype and the
hyperparameters are Python numbers (the usual case) the intermediate results
reuse one or two scratch arrays instead of a fresh array per operation, and
Adam's step on a small float32 or float64 parameter is one call into the
compiled engine, which does the same operations in the same order (the same
bits; anything that would warn, raise or give a NaN is left to NumPy).

Where this differs from DeZero 0.0.13, and why:

- Per-parameter state is still kept in dicts keyed by ``id(param)``
  (``optimizer.vs[id(p)]`` works as in DeZero), but an entry is dropped when
  its Parameter is garbage-collected: DeZero's dicts grew without bound and
  could hand a dead parameter's state to a new one that reused its id.
- A parameter whose gradient a hook set to None (FreezeParam) is skipped;
  DeZero then crashed on ``None.data``.
- WeightDecay and ClipGrad change each gradient array once: when several
  parameters share one gradient array (``y = p1 + p2`` gives both the same
  one), or it is read-only (a broadcast view, as ``sum``'s backward gives),
  the parameter gets a new gradient instead of DeZero's in-place change,
  which decayed a shared array once per sharer, scaled it by rate**2, or
  failed on a read-only view.
"""
import math
import sys
import weakref

import numpy as np

from cydezero import _lr_scheduler as lr_scheduler
from cydezero import cuda
from cydezero._core import Parameter, Variable, _adam_step

_WEAK_SCALARS = (float, int)  # Python numbers keep an array's dtype (NEP 50)
# Below this many elements a fresh array per operation is cheaper than the
# out= arguments that reuse one, and Adam's step is one call into _core.
_SCRATCH_MIN_SIZE = 4096


def _fast(data, grad, *hyper):
    """True when the update should reuse scratch arrays: the parameter is
    large enough for that to pay, and every intermediate has its dtype, so
    that writing into them rounds exactly as DeZero's expressions do."""
    if data.size < _SCRATCH_MIN_SIZE or grad.dtype != data.dtype:
        return False
    for h in hyper:
        if type(h) not in _WEAK_SCALARS:
            return False
    return True


# =============================================================================
# Optimizer (base class)
# =============================================================================
class Optimizer:
    """Base class: ``setup(model)`` then, after each backward, ``update()``
    runs the hooks on the parameters that have a gradient and then
    ``update_one`` on each of them."""

    _state_names = ()  # attributes holding per-parameter state dicts

    def __init__(self):
        self.target = None
        self.hooks = []
        self._finalizers = {}

    def setup(self, target):
        """Optimize ``target``'s parameters (a Layer or Model); returns self."""
        self.target = target
        return self

    def update(self):
        """One step: the hooks on the parameters that have a gradient, then
        ``update_one`` on each of those."""
        if self.target is None:
            raise RuntimeError(f'{type(self).__name__}.update: call '
                               'setup(model) first')
        params = [p for p in self.target.params() if p.grad is not None]

        for f in self.hooks:
            f(params)

        for param in params:
            if param.grad is not None:
                self.update_one(param)

    def update_one(self, param):
        """Update one parameter from its gradient; each optimizer defines it."""
        raise NotImplementedError(
            f'{type(self).__name__} does not implement update_one()')

    def add_hook(self, f):
        """Run ``f(params)`` before every update (WeightDecay, ClipGrad, ...)."""
        self.hooks.append(f)

    def __getstate__(self):
        state = self.__dict__.copy()
        state['_finalizers'] = {}  # weak references do not pickle
        return state

    def _new_state(self, param):
        """Create zero state arrays like param.data under id(param) in each
        dict named in ``_state_names``; they go when param dies."""
        key = id(param)
        xp = cuda.get_array_module(param.data)
        for name in self._state_names:
            getattr(self, name)[key] = xp.zeros_like(param.data)

        owner = weakref.ref(self)

        def forget(_, key=key, owner=owner):
            opt = owner()
            if opt is not None:
                for name in opt._state_names:
                    getattr(opt, name).pop(key, None)
                opt._finalizers.pop(key, None)

        self._finalizers[key] = weakref.ref(param, forget)
        return tuple(getattr(self, name)[key] for name in self._state_names)

    # -- Training state: state_dict / load_state_dict / save_state / load_state
    # Attributes that are not hyperparameters: the model, the hook objects
    # (code, which the caller re-adds) and the weak references.
    _not_hyper = ('target', 'hooks', '_finalizers')

    def _paths(self, who):
        """[(path, Parameter)] for the target's parameters, each once under
        the first path that reaches it (a Layer's slash-joined attribute
        path; the position in params() for other targets)."""
        if self.target is None:
            raise RuntimeError(f'{type(self).__name__}.{who}: call setup(model) first')
        named = getattr(self.target, '_named_params', None)
        pairs = named() if named is not None else \
            ((str(i), p) for i, p in enumerate(self.target.params()))
        seen, out = set(), []
        for path, p in pairs:
            if id(p) not in seen:
                seen.add(id(p))
                out.append((path, p))
        return out

    def state_dict(self):
        """The optimizer's training state as a dict: ``'type'`` (the class
        name), ``'hyperparams'`` (every attribute that is not a state dict,
        the model or the hooks: ``lr``, ``momentum``, Adam's step count
        ``t``, ...) and ``'state'``, mapping each parameter's path in the
        model (``'l1/W'``) to its state arrays by name (``{'ms': ..., 'vs':
        ...}``). Arrays are copies. Hooks are not included."""
        hyper = {k: v for k, v in vars(self).items()
                 if k not in self._not_hyper and k not in self._state_names}
        state = {}
        for path, p in self._paths('state_dict'):
            entry = {name: getattr(self, name)[id(p)].copy() for name in self._state_names
                     if id(p) in getattr(self, name)}
            if entry:
                state[path] = entry
        return {'type': type(self).__name__, 'hyperparams': hyper, 'state': state}

    def load_state_dict(self, state):
        """Restore what ``state_dict`` returned, onto the model given to
        ``setup`` (its parameters found by path). Everything is checked
        first (the optimizer type, every path, every array's shape), so a
        failure changes nothing. The arrays are copied."""
        cls = type(self).__name__
        if state.get('type') != cls:
            raise ValueError(f'{cls}.load_state_dict: the state is of a '
                             f'{state.get("type")}, not a {cls}')
        params = dict(self._paths('load_state_dict'))
        for path, entry in state['state'].items():
            p = params.get(path)
            if p is None:
                raise KeyError(f'{cls}.load_state_dict: the model has no parameter '
                               f'{path!r} (it has: {", ".join(params) or "none"})')
            for name, arr in entry.items():
                if name not in self._state_names:
                    raise KeyError(f'{cls}.load_state_dict: {path!r} has state '
                                   f'{name!r}; {cls} keeps {self._state_names}')
                if p.data is None or arr.shape != p.data.shape:
                    raise ValueError(
                        f'{cls}.load_state_dict: state {name!r} of {path!r} has shape '
                        f'{arr.shape} but the parameter has shape '
                        f'{None if p.data is None else p.data.shape}')
        for name in self._state_names:
            getattr(self, name).clear()
        self._finalizers.clear()
        for k, v in state['hyperparams'].items():
            setattr(self, k, v)
        for path, entry in state['state'].items():
            arrays = dict(zip(self._state_names, self._new_state(params[path])))
            for name, arr in entry.items():
                arrays[name][...] = arr

    def save_state(self, path):
        """Write ``state_dict()`` to the ``.npz`` file ``path`` (the suffix
        added when missing), beside the model's ``save_weights`` file and as
        safely: complete or not at all. The hyperparameters go in as JSON,
        NumPy scalars with their dtype, so a resumed run rounds as the
        uninterrupted one does."""
        import json

        from cydezero.layers import _save_npz
        sd = self.state_dict()
        arrays = {f'state/{p}/{name}': cuda.as_numpy(arr)
                  for p, entry in sd['state'].items() for name, arr in entry.items()}
        meta = {'type': sd['type'],
                'hyperparams': {k: _encode_hyper(type(self).__name__, k, v)
                                for k, v in sd['hyperparams'].items()}}
        arrays['meta'] = np.array(json.dumps(meta))
        _save_npz(path, arrays)

    def load_state(self, path):
        """Read a file written by ``save_state`` and ``load_state_dict`` it
        (``path`` may omit ``.npz``)."""
        import json
        import os

        if not hasattr(path, 'read'):
            path = os.fspath(path)
            if not os.path.exists(path) and os.path.exists(path + '.npz'):
                path += '.npz'
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz['meta']))
            state = {}
            for key in npz.files:
                if key.startswith('state/'):
                    p, name = key[len('state/'):].rsplit('/', 1)
                    state.setdefault(p, {})[name] = npz[key]
        xp_params = {p: param for p, param in self._paths('load_state')}
        for p, entry in state.items():  # back onto the parameters' device
            param = xp_params.get(p)
            if param is not None and param.data is not None and \
                    cuda.get_array_module(param.data) is not np:
                state[p] = {n: cuda.as_cupy(a) for n, a in entry.items()}
        hyper = {k: _decode_hyper(v) for k, v in meta['hyperparams'].items()}
        self.load_state_dict({'type': meta['type'], 'hyperparams': hyper, 'state': state})


def _encode_hyper(cls, name, v):
    """A hyperparameter as JSON: Python scalars as they are (JSON keeps a
    float's every bit), NumPy scalars tagged with their dtype."""
    if v is None or type(v) in (bool, int, float, str):
        return v
    if isinstance(v, np.generic) and v.dtype.kind in 'biuf':
        return {'numpy': v.dtype.str, 'value': v.item()}
    raise TypeError(f'{cls}.save_state: hyperparameter {name!r} is a '
                    f'{type(v).__name__}; only numbers, strings, None and NumPy '
                    'scalars can be saved (use state_dict() for the rest)')


def _decode_hyper(v):
    if isinstance(v, dict):
        return np.dtype(v['numpy']).type(v['value'])
    return v


# =============================================================================
# Hook functions
# =============================================================================
def _owned_grads(params):
    """For each param, whether its gradient array may be changed in place:
    writeable, and not the gradient array of another param in ``params``."""
    count = {}
    for p in params:
        k = id(p.grad.data)
        count[k] = count.get(k, 0) + 1
    return [count[id(p.grad.data)] == 1
            and getattr(p.grad.data.flags, 'writeable', True) for p in params]


class WeightDecay:
    """L2 regularisation: grad += rate * param for every parameter."""

    def __init__(self, rate):
        self.rate = rate

    def __call__(self, params):
        for param, owned in zip(params, _owned_grads(params)):
            if owned:
                param.grad.data += self.rate * param.data
            else:
                g = param.grad.data.copy()
                g += self.rate * param.data
                param.grad = Variable(g)


class ClipGrad:
    """Scale every gradient by max_norm / (total norm + 1e-6) when that is
    below 1, the total norm being over all the parameters' gradients."""

    def __init__(self, max_norm):
        self.max_norm = max_norm

    def __call__(self, params):
        total_norm = 0
        for param in params:
            total_norm += (param.grad.data ** 2).sum()
        total_norm = math.sqrt(float(total_norm))

        rate = self.max_norm / (total_norm + 1e-6)
        if rate < 1:
            done = set()
            for param in params:
                g = param.grad.data
                if id(g) in done:  # a shared array: scaled already
                    continue
                if getattr(g.flags, 'writeable', True):
                    g *= rate
                    done.add(id(g))
                else:
                    param.grad = Variable(g * rate)


class FreezeParam:
    """Keep the given Parameters, or all those of the given Layers, fixed:
    their gradients are dropped before the update."""

    def __init__(self, *layers):
        self.freeze_params = []
        for layer in layers:
            if isinstance(layer, Parameter):
                self.freeze_params.append(layer)
            else:
                self.freeze_params.extend(layer.params())

    def __call__(self, params):
        for p in self.freeze_params:
            p.grad = None


# =============================================================================
# SGD / MomentumSGD / AdaGrad / AdaDelta / Adam
# =============================================================================
class SGD(Optimizer):
    """param -= lr * grad."""

    def __init__(self, lr=0.01):
        super().__init__()
        self.lr = lr

    def update_one(self, param):
        data = param.data
        data -= self.lr * param.grad.data


class MomentumSGD(Optimizer):
    """v = momentum * v - lr * grad;  param += v."""

    _state_names = ('vs',)

    def __init__(self, lr=0.01, momentum=0.9):
        super().__init__()
        self.lr = lr
        self.momentum = momentum
        self.vs = {}

    def update_one(self, param):
        v = self.vs.get(id(param))
        if v is None:
            v, = self._new_state(param)
        data = param.data
        v *= self.momentum
        v -= self.lr * param.grad.data
        data += v


class AdaGrad(Optimizer):
    """h += grad * grad;  param -= lr * grad / (sqrt(h) + eps)."""

    _state_names = ('hs',)

    def __init__(self, lr=0.001, eps=1e-8):
        super().__init__()
        self.lr = lr
        self.eps = eps
        self.hs = {}

    def update_one(self, param):
        h = self.hs.get(id(param))
        if h is None:
            h, = self._new_state(param)
        data, grad = param.data, param.grad.data
        xp = cuda.get_array_module(data)
        lr, eps = self.lr, self.eps

        if _fast(data, grad, lr, eps):
            buf = grad * grad
            h += buf
            xp.sqrt(h, out=buf)
            buf += eps
            step = lr * grad
            step /= buf
            data -= step
        else:
            h += grad * grad
            data -= lr * grad / (xp.sqrt(h) + eps)


class AdaDelta(Optimizer):
    """msg = rho msg + (1 - rho) grad^2;
    dx = sqrt((msdx + eps) / (msg + eps)) * grad;
    msdx = rho msdx + (1 - rho) dx^2;  param -= dx."""

    _state_names = ('msg', 'msdx')

    def __init__(self, rho=0.95, eps=1e-6):
        super().__init__()
        self.rho = rho
        self.eps = eps
        self.msg = {}
        self.msdx = {}

    def update_one(self, param):
        key = id(param)
        msg = self.msg.get(key)
        if msg is None:
            msg, msdx = self._new_state(param)
        else:
            msdx = self.msdx[key]
        data, grad = param.data, param.grad.data
        xp = cuda.get_array_module(data)
        rho, eps = self.rho, self.eps

        if _fast(data, grad, rho, eps):
            buf = (1 - rho) * grad
            buf *= grad
            msg *= rho
            msg += buf
            dx = msdx + eps
            xp.add(msg, eps, out=buf)
            dx /= buf
            xp.sqrt(dx, out=dx)
            dx *= grad
            msdx *= rho
            xp.multiply(dx, 1 - rho, out=buf)
            buf *= dx
            msdx += buf
            data -= dx
        else:
            msg *= rho
            msg += (1 - rho) * grad * grad
            dx = xp.sqrt((msdx + eps) / (msg + eps)) * grad
            msdx *= rho
            msdx += (1 - rho) * dx * dx
            data -= dx


class Adam(Optimizer):
    """m += (1 - beta1)(grad - m);  v += (1 - beta2)(grad^2 - v);
    param -= lr m / (sqrt(v) + eps) with the bias-corrected step
    lr = alpha sqrt(1 - beta2^t) / (1 - beta1^t), t counting update()s."""

    _state_names = ('ms', 'vs')

    def __init__(self, alpha=0.001, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__()
        self.t = 0
        self.alpha = alpha
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.ms = {}
        self.vs = {}

    def update(self, *args, **kwargs):
        """One step, counting it in ``t`` for the bias correction."""
        self.t += 1
        super().update(*args, **kwargs)

    @property
    def lr(self):
        """The bias-corrected step size of the current ``t``."""
        fix1 = 1. - math.pow(self.beta1, self.t)
        fix2 = 1. - math.pow(self.beta2, self.t)
        return self.alpha * math.sqrt(fix2) / fix1

    def update_one(self, param):
        key = id(param)
        m = self.ms.get(key)
        if m is None:
            m, v = self._new_state(param)
        else:
            v = self.vs[key]
        data, grad = param.data, param.grad.data
        beta1, beta2, eps = self.beta1, self.beta2, self.eps
        lr = self.lr
        if (data.size < _SCRATCH_MIN_SIZE
                and _adam_step(data, grad, m, v, 1 - beta1, 1 - beta2, eps, lr)):
            return  # small float arrays: the expressions below in one call
        xp = cuda.get_array_module(data)

        if _fast(data, grad, beta1, beta2, eps, lr):
            buf = grad - m
            buf *= 1 - beta1
            m += buf
            xp.multiply(grad, grad, out=buf)
            buf -= v
            buf *= 1 - beta2
            v += buf
            denom = xp.sqrt(v)
            denom += eps
            xp.multiply(m, lr, out=buf)
            buf /= denom
            data -= buf
        else:
            m += (1 - beta1) * (grad - m)
            v += (1 - beta2) * (grad * grad - v)
            data -= lr * m / (xp.sqrt(v) + eps)


# =============================================================================
# Learning-rate schedules: cydezero.optimizers.lr_scheduler
# =============================================================================
# Registered as a submodule too, so that PyTorch's spelling works:
# ``from cydezero.optimizers.lr_scheduler import StepLR``.
sys.modules[__name__ + '.lr_scheduler'] = lr_scheduler
