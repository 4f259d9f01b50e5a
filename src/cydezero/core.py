"""DeZero's ``dezero.core``: the compiled engine's public names plus the
per-thread ``Config`` and the context managers that switch it."""
import contextlib

import numpy as np

from cydezero import _core, cuda
from cydezero._core import (  # noqa: F401
    Add,
    Cos,
    Div,
    Exp,
    Function,
    Log,
    Mul,
    Neg,
    Parameter,
    Pow,
    Sin,
    Sub,
    Tanh,
    Variable,
    add,
    as_array,
    as_variable,
    div,
    mul,
    neg,
    pow,
    rdiv,
    rsub,
    sub,
)

#: The array types a Variable may hold, NumPy's and, when CuPy is
#: installed, CuPy's (DeZero's name).
array_types = np.ndarray if cuda.cupy is None else (np.ndarray, cuda.cupy.ndarray)


class _PerThread(type):
    """Makes ``Config.enable_backprop`` and ``Config.train`` read and write
    the calling thread's value, so DeZero code that assigns them directly
    still works and one thread's ``no_grad()`` never leaks into another."""

    enable_backprop = property(
        lambda cls: _core._config_get('enable_backprop'),
        lambda cls, value: _core._config_set('enable_backprop', value))
    train = property(
        lambda cls: _core._config_get('train'),
        lambda cls, value: _core._config_set('train', value))
    detect_anomaly = property(
        lambda cls: _core._config_get('detect_anomaly'),
        lambda cls, value: _core._config_set('detect_anomaly', value))


class Config(metaclass=_PerThread):
    """Global switches: ``enable_backprop`` (record graphs), ``train``
    (dropout and batch norm behave as in training) and ``detect_anomaly``
    (see ``detect_anomaly()``). All are per thread."""


@contextlib.contextmanager
def using_config(name, value):
    """Set ``Config.<name>`` to ``value`` inside the block, restoring the old
    value on exit, exceptions included. Also usable as a decorator."""
    old = getattr(Config, name)
    setattr(Config, name, value)
    try:
        yield
    finally:
        setattr(Config, name, old)


def no_grad():
    """Do not record graphs inside the block (``enable_backprop = False``)."""
    return using_config('enable_backprop', False)


def test_mode():
    """Run layers in inference mode inside the block (``train = False``)."""
    return using_config('train', False)


def detect_anomaly():
    """Inside the block, a NaN or inf that a Function's backward produces
    raises FloatingPointError naming the Function and the file and line of
    the forward pass that created it. Recording creation sites costs time,
    so it is off by default; the check costs nothing when off."""
    return using_config('detect_anomaly', True)


def setup_variable():
    """Kept for DeZero code that calls it: the operators are already part of
    the compiled Variable, so there is nothing left to set up."""
