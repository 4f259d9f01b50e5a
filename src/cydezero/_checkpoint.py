"""Gradient checkpointing: ``cydezero.checkpoint(func, *inputs)`` runs
``func`` keeping none of its intermediate graph and recomputes it during
backward, trading one more forward pass of ``func`` for the memory its
intermediates would hold between forward and backward.

The whole of ``func`` becomes one node, ``Checkpoint``, whose inputs are the
Variables passed to it and every other leaf the graph of ``func`` reached
(the Parameters of the layers it calls, found by walking that graph once in
forward before dropping it). So the engine accumulates their gradients as it
does for any Function, and ``cydezero.grad`` works through a checkpoint.
"""
import contextlib

import numpy as np

from cydezero._core import Function, Variable, grad
from cydezero.core import Config, using_config


def _is_float(x):
    return x.data is not None and x.data.dtype.kind in 'fc'


def _leaves(outs, own):
    """The leaf Variables behind ``outs`` that can take a gradient, except
    those whose id is in ``own``, in the order first reached."""
    found, seen_f, seen_v = [], set(), set(own)
    stack = [y.creator for y in outs if y.creator is not None]
    while stack:
        f = stack.pop()
        if id(f) in seen_f:
            continue
        seen_f.add(id(f))
        for x in f.inputs or ():
            if id(x) in seen_v:
                continue
            seen_v.add(id(x))
            if x.creator is not None:
                stack.append(x.creator)
            elif x.requires_grad and _is_float(x):
                found.append(x)
    return found


@contextlib.contextmanager
def _numpy_rng(state):
    """Run the block with NumPy's global generator in ``state``, then put
    back the state it had, so recomputation draws the numbers the first
    run drew (dropout masks) and leaves the caller's sequence alone."""
    saved = np.random.get_state()
    np.random.set_state(state)
    try:
        yield
    finally:
        np.random.set_state(saved)


class Checkpoint(Function):
    """Runs ``func`` as one graph node. Forward returns what the first run
    of ``func`` computed; backward runs ``func`` again (same NumPy random
    state and ``Config.train``) and backpropagates the incoming gradients
    through that fresh graph: gx = (d func / d x)^T gy for every Variable
    input and every leaf ``func`` used."""

    def __init__(self, func, args, var_pos, ys, rng_state, train):
        self.func = func
        self.args = args            # func's arguments, Variables replaced by None
        self.var_pos = var_pos      # where the Variable arguments go in args
        self._ys = ys               # the first run's outputs, handed out once
        self.rng_state = rng_state
        self.train = train

    def forward(self, *xs):
        ys, self._ys = self._ys, None
        if ys is None:
            raise RuntimeError('Checkpoint: a Checkpoint node cannot be called again; '
                               'call cydezero.checkpoint(func, ...) instead')
        return ys if len(ys) > 1 else ys[0]

    def _rerun(self, xs):
        args = list(self.args)
        for pos, x in zip(self.var_pos, xs):
            args[pos] = x
        with using_config('enable_backprop', True), \
                using_config('train', self.train), _numpy_rng(self.rng_state):
            outs = self.func(*args)
        return tuple(outs) if isinstance(outs, (tuple, list)) else (outs,)

    def backward(self, *gys):
        inputs = self.inputs
        n = len(self.var_pos)
        # The engine refuses to differentiate, inside a backward pass, a
        # Variable that the pass itself is differentiating (the Parameters
        # func captured, and with create_graph the inputs). So the fresh
        # graph runs on stand-ins: new leaves for the inputs, and for each
        # captured leaf a new leaf swapped into the nodes that use it.
        xs = [Variable(x.data) for x in inputs[:n]]
        outs = self._rerun(xs)
        stand_in = {id(p): Variable(p.data) for p in inputs[n:]}
        _relink(outs, stand_in, stop=())
        pairs = [(y, g) for y, g in zip(outs, gys) if g is not None]
        wrt = [(i, x) for i, x in enumerate(xs + [stand_in[id(p)] for p in inputs[n:]])
               if _is_float(x)]
        if not pairs or not wrt:
            return (None,) * len(inputs)
        create_graph = Config.enable_backprop  # the engine sets it to create_graph
        gs = grad([y for y, _ in pairs], [x for _, x in wrt],
                  grad_outputs=[g for _, g in pairs], create_graph=create_graph)
        if create_graph:
            # Point the recorded gradient graph back at the real Variables,
            # so that it can be differentiated with respect to them.
            back = {id(s): x for s, x in zip(xs + [stand_in[id(p)] for p in inputs[n:]],
                                              inputs)}
            _relink([g for g in gs if g is not None], back, stop={id(g) for g in gys})
        result = [None] * len(inputs)
        for (i, _), g in zip(wrt, gs):
            result[i] = g
        return tuple(result)


def _relink(outs, swap, stop):
    """In every node of the graph behind ``outs``, replace each input whose
    id is a key of ``swap`` by its value. The walk does not go behind the
    Variables it swaps nor behind those whose id is in ``stop``."""
    seen = set()
    stack = [y.creator for y in outs if y.creator is not None and id(y) not in stop]
    while stack:
        f = stack.pop()
        if id(f) in seen:
            continue
        seen.add(id(f))
        xs = f.inputs or ()
        if any(id(x) in swap for x in xs):
            f.inputs = [swap.get(id(x), x) for x in xs]
        for x in xs:
            if id(x) not in swap and id(x) not in stop and x.creator is not None:
                stack.append(x.creator)


def checkpoint(func, *inputs):
    """``func(*inputs)``, computed without keeping the intermediate graph of
    ``func``; backward recomputes it. The values and gradients equal those
    of ``func(*inputs)``. Inputs that are not Variables are passed as they
    are. ``func`` must be deterministic apart from NumPy's global random
    generator, whose state is replayed; it runs twice, so side effects (a
    BatchNorm's running statistics) happen twice."""
    if not Config.enable_backprop:
        return func(*inputs)
    rng_state = np.random.get_state()
    train = bool(Config.train)
    var_pos = tuple(i for i, x in enumerate(inputs) if isinstance(x, Variable))
    args = list(inputs)
    fresh = []
    for i in var_pos:
        x = inputs[i]
        args[i] = Variable(x.data)
        if not x.requires_grad:
            args[i].requires_grad = False
        fresh.append(args[i])
    out = func(*args)
    is_tuple = isinstance(out, (tuple, list))
    outs = tuple(out) if is_tuple else (out,)
    for k, y in enumerate(outs):
        if not isinstance(y, Variable):
            raise TypeError(f'checkpoint: func must return Variables; output {k} is '
                            f'{type(y).__name__}')
    captured = _leaves(outs, [id(x) for x in fresh])
    # A view would keep an intermediate array alive through its base.
    ys = tuple(y.data if y.data.base is None else y.data.copy() for y in outs)
    del out, outs, fresh
    for i in var_pos:
        args[i] = None
    f = Checkpoint(func, tuple(args), var_pos, ys, rng_state, train)
    del ys
    res = f(*(inputs[i] for i in var_pos), *captured)
    if not is_tuple:
        return res
    return tuple(res) if isinstance(res, list) else (res,)
