"""DeZero's ``dezero.core_simple``: the simpler engine of the book's steps
23-32, where a gradient is a plain array.

What sets it apart from ``core``: ``Variable.grad`` is an ndarray (so a
script can write ``x.data -= lr * x.grad``), a Function's ``backward``
receives and returns ndarrays, and there is no ``create_graph``.

It runs on the compiled engine. Its Variable and Function are Python
subclasses of the compiled ones, registered with the engine: the outputs
of its Functions, and of any built-in operation called on one of its
Variables, are of its Variable class, and its Functions' ``backward`` is
handed arrays. The arithmetic (``Add`` ... ``Pow``) is the engine's own,
forward and backward compiled, and ``backward()`` is the engine's loop (a
generation-ordered heap in C, where DeZero sorts a Python list after every
function it schedules). The engine stores a gradient as a Variable in its
``grad`` field; ``Variable.grad`` here reads that Variable's array.

Where this differs from DeZero 0.0.13's core_simple, and why:

- ``Config``, ``using_config`` and ``no_grad`` are ``core``'s (one switch,
  per thread, for both engines, since they share one graph engine).
- ``+``, ``-``, ``*``, ``/`` sum a gradient back to a broadcast input's
  shape (DeZero's core_simple returned a gradient of the wrong shape).
- A 0-d gradient is a 0-d array, where DeZero's is sometimes a NumPy
  scalar (they print the same and take part in arithmetic alike).
- The operators exist before ``setup_variable()`` is called (which is kept,
  and sets them again). Its Variables are also ``cydezero.Variable``
  instances, so ``core``'s functions accept them, and return Variables of
  this module. A ``create_graph`` pass (started from a ``core`` Variable)
  that reaches one of this module's Functions raises TypeError: their
  backward works on arrays, so it has no graph to build.
"""

from cydezero import _core
from cydezero.core import Config, no_grad, using_config  # noqa: F401

# The engine's own reader of the gradient field (a member descriptor on the
# compiled Variable), reached past the ``grad`` property defined below.
# Writes need nothing of ours: the compiled Variable.__setattr__ stores
# what it is given (an array, a Variable or None) in the field itself.
_grad_get = _core.Variable.__dict__['grad'].__get__
_Variable = _core.Variable


# =============================================================================
# Variable / Function
# =============================================================================
class Variable(_core.Variable):
    """A Variable whose ``grad`` is an ndarray (or None), as in DeZero's
    core_simple. ``backward(retain_grad=False)`` has no ``create_graph``."""

    @property
    def grad(self):
        """The gradient from the last backward pass (an ndarray), or None."""
        g = _grad_get(self)
        return g.data if isinstance(g, _Variable) else g

    def backward(self, retain_grad=False):
        """Add the gradient of this variable to every leaf's ``grad`` (and,
        with ``retain_grad``, to every variable's)."""
        _Variable.backward(self, retain_grad)


def as_variable(obj):
    """Return ``obj`` if it is a Variable (of either engine), else wrap it in
    one of this module's."""
    if isinstance(obj, _Variable):
        return obj
    return Variable(obj)


as_array = _core.as_array


class Function(_core.Function):
    """An operation on arrays: subclasses define ``forward(*xs)`` and
    ``backward(*gys)``, both on ndarrays. Calling one records it as the
    creator of its outputs (when ``Config.enable_backprop``).

    Calling is the engine's: it knows this class (registered below), so the
    outputs are this module's Variables and ``backward`` is handed arrays.
    """

    def forward(self, xs):
        """The computation on the inputs' arrays; returns an array or a
        tuple of arrays. Subclasses define it."""
        raise NotImplementedError(f'{type(self).__name__}.forward is not implemented')

    def backward(self, gys):
        """The gradients of the inputs (arrays) from those of the outputs
        (arrays). Subclasses define it."""
        raise NotImplementedError(f'{type(self).__name__}.backward is not implemented')


_core._register_core_simple(Function, Variable)


# =============================================================================
# Arithmetic: the engine's own operations. Called on this module's Variables
# they make this module's Variables, and their backward is compiled.
# =============================================================================
Add, add = _core.Add, _core.add
Sub, sub, rsub = _core.Sub, _core.sub, _core.rsub
Mul, mul = _core.Mul, _core.mul
Div, div, rdiv = _core.Div, _core.div, _core.rdiv
Neg, neg = _core.Neg, _core.neg
Pow, pow = _core.Pow, _core.pow


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
