"""Functional transforms of differentiation: ``vjp``, ``jvp``, ``jacobian``,
``hessian``, ``hvp`` and ``vhp``, with the names, arguments and results of
``torch.autograd.functional``.

Each takes ``func`` (a function of Variables returning a Variable or a tuple
of Variables) and ``inputs`` (a Variable, an array, or a tuple of them), and
returns Variables: a tuple wherever PyTorch returns a tuple (several inputs,
or a function with several outputs), one Variable otherwise. Nothing reads or
writes any ``.grad``; everything is built on ``cydezero.grad``.

Without ``create_graph`` the function is evaluated on fresh leaf copies of
the inputs and the results carry no graph. With it the results are
differentiable again: inputs that are Variables needing a gradient are used
as they are, so the results are differentiable with respect to them.

Forward-mode products (``jvp``, ``hvp``) use the double-vjp trick: for a
dummy ``u`` shaped like the output, ``g(u) = J^T u`` is linear in ``u``, and
the vjp of ``g`` with ``v`` is ``J v``. That costs two reverse passes (the
second over a graph about twice the size of the first); the engine has no
forward mode, and adding one would mean a tangent rule for every operation.
README, "Beyond DeZero, part 2", has the measurement.
"""
import numpy as np

from cydezero import cuda
from cydezero._core import Function, Variable, grad
from cydezero.core import using_config

__all__ = ['hessian', 'hvp', 'jacobian', 'jvp', 'vhp', 'vjp']


# =============================================================================
# Argument handling shared by every transform
# =============================================================================
def _as_tuple(x, arg, fname):
    """(tuple of x's items, whether x was a tuple), each item a Variable or
    an array; anything else is a TypeError naming the argument."""
    is_tuple = isinstance(x, (tuple, list))
    items = tuple(x) if is_tuple else (x,)
    for i, item in enumerate(items):
        if not isinstance(item, Variable) and not isinstance(item, np.ndarray) \
                and cuda.get_array_module(item) is np:
            where = f'{arg}[{i}]' if is_tuple else arg
            raise TypeError(f'{fname}: {where} must be a Variable or an array, got '
                            f'{type(item).__name__}')
    return items, is_tuple


def _data(x):
    return x.data if isinstance(x, Variable) else x


def _prepare_inputs(inputs, create_graph, fname):
    """The Variables to call func with: the caller's own Variables when a
    graph is wanted and they need a gradient, else fresh leaves."""
    items, is_tuple = _as_tuple(inputs, 'inputs', fname)
    xs = []
    for i, x in enumerate(items):
        data = _data(x)
        if data is None or data.dtype.kind not in 'fc':
            raise TypeError(f'{fname}: inputs[{i}] has dtype '
                            f'{None if data is None else data.dtype}; only floating-point '
                            'inputs can be differentiated')
        if create_graph and isinstance(x, Variable) and x.requires_grad:
            xs.append(x)
        else:
            xs.append(Variable(data))
    return tuple(xs), is_tuple


def _call(func, xs, fname):
    """func(*xs) with graph recording on, as (tuple of outputs, was tuple)."""
    with using_config('enable_backprop', True):
        out = func(*xs)
    outs, is_tuple = _as_tuple(out, 'the output of func', fname)
    for i, y in enumerate(outs):
        if not isinstance(y, Variable):
            raise TypeError(f'{fname}: func must return Variables, output {i} is '
                            f'{type(y).__name__}')
    return outs, is_tuple


def _check_v(v, like, like_name, fname):
    """v as a tuple of arrays matching ``like`` (the outputs for vjp, the
    inputs otherwise) in number and shapes. None is ones for a single
    one-element ``like``, as in PyTorch."""
    if v is None:
        if len(like) != 1 or like[0].data.size != 1:
            raise ValueError(
                f'{fname}: v can be None only when {like_name} is a single Variable '
                f'with one element; {like_name} have shapes '
                f'{[y.shape for y in like]}')
        xp = cuda.get_array_module(like[0].data)
        return (xp.ones_like(like[0].data),)
    vs, _ = _as_tuple(v, 'v', fname)
    if len(vs) != len(like):
        raise ValueError(f'{fname}: v has {len(vs)} entries but {like_name} have '
                         f'{len(like)}')
    out = []
    for i, (vi, y) in enumerate(zip(vs, like)):
        vi = _data(vi)
        if vi.shape != y.shape:
            raise ValueError(f'{fname}: v[{i}] has shape {vi.shape} but {like_name}[{i}] '
                             f'has shape {y.shape}')
        out.append(vi)
    return tuple(out)


def _fill(gs, like, strict, fname, what):
    """Replace the Nones ``grad`` gives for unreachable inputs by zeros (or,
    with ``strict``, raise as PyTorch does)."""
    out = []
    for i, (g, x) in enumerate(zip(gs, like)):
        if g is None:
            if strict:
                raise RuntimeError(f'{fname}: {what} {i} does not depend on the '
                                   'differentiated variable (strict=True)')
            xp = cuda.get_array_module(x.data)
            g = Variable(xp.zeros_like(x.data))
        out.append(g)
    return tuple(out)


def _detach(ys, create_graph):
    return tuple(ys) if create_graph else tuple(Variable(y.data) for y in ys)


def _shape_result(items, is_tuple):
    return tuple(items) if is_tuple else items[0]


# =============================================================================
# vjp / jvp
# =============================================================================
def vjp(func, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), v^T J)``: the product of ``v`` (shaped like the
    outputs) with the Jacobian of ``func`` at ``inputs``, one result per
    input. ``v`` may be None when func has one one-element output."""
    xs, in_tuple = _prepare_inputs(inputs, create_graph, 'vjp')
    outs, out_tuple = _call(func, xs, 'vjp')
    vs = _check_v(v, outs, 'the outputs', 'vjp')
    gs = grad(list(outs), list(xs), grad_outputs=[Variable(a) for a in vs],
              create_graph=create_graph)
    gs = _detach(_fill(gs, xs, strict, 'vjp', 'input'), create_graph)
    return _shape_result(_detach(outs, create_graph), out_tuple), \
        _shape_result(gs, in_tuple)


def _jvp_of(outs, xs, vs, create_graph, strict, fname):
    """J v for outputs ``outs`` of inputs ``xs``, by the double-vjp trick."""
    us = []
    for y in outs:
        xp = cuda.get_array_module(y.data)
        us.append(Variable(xp.zeros_like(y.data)))
    # g = J^T u, recorded so that it can be differentiated in u.
    gs = grad(list(outs), list(xs), grad_outputs=us, create_graph=True)
    pairs = [(g, vi) for g, vi in zip(gs, vs) if g is not None]
    if not pairs:
        jv = [None] * len(outs)
    else:
        jv = grad([g for g, _ in pairs], us, grad_outputs=[Variable(vi) for _, vi in pairs],
                  create_graph=create_graph)
    return _detach(_fill(jv, outs, strict, fname, 'output'), create_graph)


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), J v)``: the product of the Jacobian of ``func`` at
    ``inputs`` with ``v`` (shaped like the inputs), one result per output.
    ``v`` may be None when there is one one-element input."""
    xs, _ = _prepare_inputs(inputs, create_graph, 'jvp')
    outs, out_tuple = _call(func, xs, 'jvp')
    vs = _check_v(v, xs, 'the inputs', 'jvp')
    jv = _jvp_of(outs, xs, vs, create_graph, strict, 'jvp')
    return _shape_result(_detach(outs, create_graph), out_tuple), \
        _shape_result(jv, out_tuple)


# =============================================================================
# jacobian / hessian
# =============================================================================
class _Stack(Function):
    """y = stack(xs) along a new first axis;  gx_i = gy[i]."""

    def forward(self, *xs):
        return cuda.get_array_module(xs[0]).stack(xs)

    def backward(self, gy):
        return tuple(gy[i] for i in range(len(self.inputs)))


def _jacobian_rows(outs, xs, create_graph, strict, fname):
    """jac[i][j] = d outs[i] / d xs[j], of shape outs[i].shape + xs[j].shape,
    one reverse pass per output element."""
    jac = []
    for i, y in enumerate(outs):
        xp = cuda.get_array_module(y.data)
        rows = [[] for _ in xs]  # rows[j][k]: the k-th row for input j
        for k in range(y.data.size):
            seed = xp.zeros(y.data.size, dtype=y.data.dtype)
            seed[k] = 1
            gs = grad([y], list(xs), grad_outputs=[Variable(seed.reshape(y.shape))],
                      create_graph=create_graph)
            for j, (g, x) in enumerate(zip(gs, xs)):
                if g is None:
                    if strict:
                        raise RuntimeError(
                            f'{fname}: output {i} does not depend on input {j} '
                            '(strict=True)')
                    g = Variable(xp.zeros_like(x.data))
                rows[j].append(g if create_graph else g.data)
        blocks = []
        for j, x in enumerate(xs):
            shape = y.shape + x.shape
            if not rows[j]:  # an empty output
                block = Variable(xp.zeros(shape, dtype=x.dtype))
            elif create_graph:
                block = _Stack()(*rows[j]).reshape(shape)
            else:
                block = Variable(xp.stack(rows[j]).reshape(shape))
            blocks.append(block)
        jac.append(blocks)
    return jac


def _jacobian_columns(outs, xs, create_graph, strict, fname):
    """The same blocks as _jacobian_rows, one jvp per input element."""
    cols = [[[] for _ in xs] for _ in outs]  # cols[i][j][k]
    for j, x in enumerate(xs):
        xp = cuda.get_array_module(x.data)
        for k in range(x.data.size):
            vs = [xp.zeros_like(xi.data) for xi in xs]
            vs[j].reshape(-1)[k] = 1
            jv = _jvp_of(outs, xs, vs, create_graph, strict, fname)
            for i, g in enumerate(jv):
                cols[i][j].append(g)
    jac = []
    for i, y in enumerate(outs):
        blocks = []
        for j, x in enumerate(xs):
            xp = cuda.get_array_module(x.data)
            c = cols[i][j]
            if not c:
                blocks.append(Variable(xp.zeros(y.shape + x.shape, dtype=y.dtype)))
                continue
            # (x.size, *y.shape) -> y.shape + x.shape
            if create_graph:
                st = _Stack()(*c).reshape((x.size, y.size))
                blocks.append(st.T.reshape(y.shape + x.shape))
            else:
                st = xp.stack([g.data for g in c]).reshape(x.size, y.size)
                blocks.append(Variable(st.T.reshape(y.shape + x.shape)))
        jac.append(blocks)
    return jac


def _nest(jac, in_tuple, out_tuple):
    rows = [_shape_result(blocks, in_tuple) for blocks in jac]
    return _shape_result(rows, out_tuple)


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False,
             strategy='reverse-mode'):
    """The Jacobian of ``func`` at ``inputs``: for output i and input j a
    Variable of shape ``outputs[i].shape + inputs[j].shape``, nested in
    tuples as PyTorch nests them (by output, then by input). ``strategy``
    'reverse-mode' takes one vjp per output element, 'forward-mode' one jvp
    per input element (better when there are fewer inputs than outputs).
    ``vectorize`` is accepted for PyTorch's signature; the rows are always
    computed one by one."""
    if strategy not in ('reverse-mode', 'forward-mode'):
        raise ValueError(f"jacobian: strategy must be 'reverse-mode' or 'forward-mode', "
                         f'got {strategy!r}')
    xs, in_tuple = _prepare_inputs(inputs, create_graph, 'jacobian')
    outs, out_tuple = _call(func, xs, 'jacobian')
    build = _jacobian_rows if strategy == 'reverse-mode' else _jacobian_columns
    return _nest(build(outs, xs, create_graph, strict, 'jacobian'), in_tuple, out_tuple)


def _scalar_output(func, xs, fname):
    outs, _ = _call(func, xs, fname)
    if len(outs) != 1 or outs[0].data.size != 1:
        raise ValueError(f'{fname}: func must return a single Variable with one '
                         f'element, got shapes {[y.shape for y in outs]}')
    return outs[0]


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False,
            outer_jacobian_strategy='reverse-mode'):
    """The Hessian of the scalar function ``func`` at ``inputs``: for inputs
    i and j a Variable of shape ``inputs[i].shape + inputs[j].shape`` (a
    tuple of tuples when ``inputs`` is a tuple). It is the Jacobian of the
    gradient, computed with ``outer_jacobian_strategy``."""
    xs, in_tuple = _prepare_inputs(inputs, create_graph, 'hessian')

    def gradient(*zs):
        y = _scalar_output(func, zs, 'hessian')
        gs = grad([y], list(zs), create_graph=True)
        return _fill(gs, zs, strict, 'hessian', 'input')

    if outer_jacobian_strategy not in ('reverse-mode', 'forward-mode'):
        raise ValueError("hessian: outer_jacobian_strategy must be 'reverse-mode' or "
                         f"'forward-mode', got {outer_jacobian_strategy!r}")
    outs, _ = _call(gradient, xs, 'hessian')
    build = _jacobian_rows if outer_jacobian_strategy == 'reverse-mode' \
        else _jacobian_columns
    return _nest(build(outs, xs, create_graph, strict, 'hessian'), in_tuple, in_tuple)


# =============================================================================
# hvp / vhp
# =============================================================================
def vhp(func, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), v^T H)`` for the scalar function ``func``: the vjp
    of its gradient with ``v`` (shaped like the inputs)."""
    xs, in_tuple = _prepare_inputs(inputs, create_graph, 'vhp')
    y = _scalar_output(func, xs, 'vhp')
    vs = _check_v(v, xs, 'the inputs', 'vhp')
    gs = _fill(grad([y], list(xs), create_graph=True), xs, strict, 'vhp', 'input')
    res = grad(list(gs), list(xs), grad_outputs=[Variable(a) for a in vs],
               create_graph=create_graph)
    res = _detach(_fill(res, xs, strict, 'vhp', 'input'), create_graph)
    return _detach((y,), create_graph)[0], _shape_result(res, in_tuple)


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), H v)`` for the scalar function ``func``: the jvp of
    its gradient with ``v`` (double-vjp trick). Equal to ``vhp`` whenever
    the Hessian is symmetric, as it is for twice continuously differentiable
    functions; ``vhp`` is cheaper by one reverse pass."""
    xs, in_tuple = _prepare_inputs(inputs, create_graph, 'hvp')
    y = _scalar_output(func, xs, 'hvp')
    vs = _check_v(v, xs, 'the inputs', 'hvp')
    gs = _fill(grad([y], list(xs), create_graph=True), xs, strict, 'hvp', 'input')
    res = _jvp_of(gs, xs, vs, create_graph, strict, 'hvp')
    return _detach((y,), create_graph)[0], _shape_result(res, in_tuple)
