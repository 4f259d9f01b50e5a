"""DeZero's ``dezero.core_simple``: the simpler engine of the book's steps
23-32, where a gradient is a plain array.

What sets it apart from ``core``: ``Variable.grad`` is an ndarray (so a
script can write ``x.data -= lr * x.grad``), a Function's ``backward``
receives and returns ndarrays, and there is no ``create_graph``. Its
Variable and Function are Python subclasses of the compiled ones: the graph
is recorded in the engine's node types and ``backward()`` is the engine's
loop (a generation-ordered heap in C, where DeZero sorts a Python list after
every function it schedules); what this module adds is the array face.

The engine keeps a gradient as a Variable in its ``grad`` field;
``Variable.grad`` here reads that field's array and wraps an array written
to it. A Function's ``backward`` is wrapped once, when its class is made,
so that it sees arrays whatever the engine hands it.

Where this differs from DeZero 0.0.13's core_simple, and why:

- ``Config``, ``using_config`` and ``no_grad`` are ``core``'s (one switch,
  per thread, for both engines, since they share one graph engine).
- ``+``, ``-``, ``*``, ``/`` sum a gradient back to a broadcast input's
  shape (DeZero's core_simple returned a gradient of the wrong shape).
- The operators exist before ``setup_variable()`` is called (which is kept,
  and sets them again). Its Variables are also ``cydezero.Variable``
  instances, so ``core``'s functions accept them (returning ``core``
  Variables) and ``utils.get_dot_graph`` draws their graphs.
"""
import functools

import numpy as np

from cydezero import _core
from cydezero._core import sum_to_array as _sum_to_array
from cydezero.core import Config, no_grad, using_config  # noqa: F401

# The engine's own accessor of the gradient field (a member descriptor on
# the compiled Variable), read past the ``grad`` property defined below.
_grad_field = _core.Variable.__dict__['grad']
_engine_setattr = _core.Variable.__setattr__
_Variable = _core.Variable
_config_get = _core._config_get
# The engine's own setters, called directly: through the attribute, each
# would pass through Variable.__setattr__ below (0.2 us a call).
_set_creator = _core.Variable.creator.__set__
_set_generation = _core.Variable.generation.__set__


# =============================================================================
# Variable / Function
# =============================================================================
class Variable(_core.Variable):
    """A Variable whose ``grad`` is an ndarray (or None), as in DeZero's
    core_simple. ``backward(retain_grad=False)`` has no ``create_graph``."""

    @property
    def grad(self):
        """The gradient from the last backward pass (an ndarray), or None."""
        g = _grad_field.__get__(self)
        return g.data if isinstance(g, _core.Variable) else g

    def __setattr__(self, name, value):
        # The engine's field holds a Variable; an array written here is
        # wrapped (the compiled __setattr__ would store it as it is).
        if name == 'grad' and value is not None and not isinstance(value, _core.Variable):
            value = _core.Variable(as_array(value))
        _engine_setattr(self, name, value)

    def backward(self, retain_grad=False):
        """Add the gradient of this variable to every leaf's ``grad`` (and,
        with ``retain_grad``, to every variable's)."""
        _core.Variable.backward(self, retain_grad)


def as_variable(obj):
    """Return ``obj`` if it is a Variable (of either engine), else wrap it in
    one of this module's."""
    if isinstance(obj, _core.Variable):
        return obj
    return Variable(obj)


def as_array(x, array_module=np):
    """Turn a Python or NumPy scalar into a 0-d array; leave anything else."""
    if isinstance(x, (np.ndarray, _Variable)):
        return x    # the common case, without np.isscalar's checks
    if np.isscalar(x):
        return array_module.array(x)
    return x


def _arrays(gys):
    return [g.data if isinstance(g, _core.Variable) else g for g in gys]


class Function(_core.Function):
    """An operation on arrays: subclasses define ``forward(*xs)`` and
    ``backward(*gys)``, both on ndarrays. Calling one records it as the
    creator of its outputs (when ``Config.enable_backprop``)."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # The engine hands a Python backward its gradients as Variables;
        # this engine's backward takes arrays. Wrapped once per class, and
        # arrays pass through, so a direct call f.backward(gy) works too.
        bw = cls.__dict__.get('backward')
        if bw is not None and not getattr(bw, '_takes_arrays', False):
            @functools.wraps(bw)
            def backward(self, *gys):
                if len(gys) == 1:
                    gy = gys[0]
                    return bw(self, gy.data if isinstance(gy, _Variable) else gy)
                return bw(self, *_arrays(gys))
            backward._takes_arrays = True
            cls.backward = backward

    def __call__(self, *inputs):
        inputs = [x if isinstance(x, _Variable) else Variable(x) for x in inputs]
        ys = self.forward(*[x.data for x in inputs])
        if type(ys) is not tuple:
            ys = (ys,)
        outputs = [Variable(as_array(y)) for y in ys]
        if _config_get('enable_backprop'):
            gen = max([x.generation for x in inputs])
            self.generation = gen
            for y in outputs:
                _set_creator(y, self)
                _set_generation(y, gen + 1)
            self.inputs = inputs
            # The engine keeps its outputs by borrowed pointers (DeZero's
            # weak references): f.outputs[0]() is the output.
            self.outputs = outputs
        return outputs if len(outputs) > 1 else outputs[0]

    def forward(self, xs):
        """The computation on the inputs' arrays; returns an array or a
        tuple of arrays. Subclasses define it."""
        raise NotImplementedError(f'{type(self).__name__}.forward is not implemented')

    def backward(self, gys):
        """The gradients of the inputs (arrays) from those of the outputs
        (arrays). Subclasses define it."""
        raise NotImplementedError(f'{type(self).__name__}.backward is not implemented')


def _to(gx, x):
    """gx summed back to the shape of input x, if broadcasting widened it."""
    shape = x.data.shape
    return gx if gx.shape == shape else _sum_to_array(gx, shape)


# =============================================================================
# Arithmetic
# =============================================================================
class Add(Function):
    """y = x0 + x1;  gx0 = gy, gx1 = gy (summed to each input's shape)."""

    def forward(self, x0, x1):
        return x0 + x1

    def backward(self, gy):
        x0, x1 = self.inputs
        return _to(gy, x0), _to(gy, x1)


def add(x0, x1):
    """x0 + x1."""
    return Add()(x0, as_array(x1))


class Mul(Function):
    """y = x0 * x1;  gx0 = gy * x1, gx1 = gy * x0."""

    def forward(self, x0, x1):
        return x0 * x1

    def backward(self, gy):
        x0, x1 = self.inputs
        return _to(gy * x1.data, x0), _to(gy * x0.data, x1)


def mul(x0, x1):
    """x0 * x1."""
    return Mul()(x0, as_array(x1))


class Neg(Function):
    """y = -x;  gx = -gy."""

    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


def neg(x):
    """-x."""
    return Neg()(x)


class Sub(Function):
    """y = x0 - x1;  gx0 = gy, gx1 = -gy."""

    def forward(self, x0, x1):
        return x0 - x1

    def backward(self, gy):
        x0, x1 = self.inputs
        return _to(gy, x0), _to(-gy, x1)


def sub(x0, x1):
    """x0 - x1."""
    return Sub()(x0, as_array(x1))


def rsub(x0, x1):
    """x1 - x0 (for ``other - variable``)."""
    return Sub()(as_array(x1), x0)


class Div(Function):
    """y = x0 / x1;  gx0 = gy / x1, gx1 = -gy * x0 / x1**2."""

    def forward(self, x0, x1):
        return x0 / x1

    def backward(self, gy):
        x0, x1 = self.inputs
        gx0 = gy / x1.data
        gx1 = gy * (-x0.data / x1.data ** 2)
        return _to(gx0, x0), _to(gx1, x1)


def div(x0, x1):
    """x0 / x1."""
    return Div()(x0, as_array(x1))


def rdiv(x0, x1):
    """x1 / x0 (for ``other / variable``)."""
    return Div()(as_array(x1), x0)


class Pow(Function):
    """y = x ** c for a constant c;  gx = c * x**(c-1) * gy."""

    def __init__(self, c):
        self.c = c

    def forward(self, x):
        return x ** self.c

    def backward(self, gy):
        x = self.inputs[0].data
        return self.c * x ** (self.c - 1) * gy


def pow(x, c):
    """x ** c, c a constant."""
    return Pow(c)(x)


def setup_variable():
    """Give Variable its operators (DeZero's book adds them in this call;
    here they are already there, and this sets them again)."""
    Variable.__add__ = add
    Variable.__radd__ = add
    Variable.__mul__ = mul
    Variable.__rmul__ = mul
    Variable.__neg__ = neg
    Variable.__sub__ = sub
    Variable.__rsub__ = rsub
    Variable.__truediv__ = div
    Variable.__rtruediv__ = rdiv
    Variable.__pow__ = pow


setup_variable()
