"""DeZero's ``dezero.cuda``: pick NumPy or CuPy for an array.

CuPy is optional. When it cannot be imported (not installed, or no usable
CUDA driver) ``gpu_enable`` is False, every helper falls back to NumPy, and
only :func:`as_cupy` complains, with an error saying CuPy is missing.
"""
import numpy as np

from cydezero._core import Variable

try:  # CuPy is an optional dependency.
    import cupy as cp
except Exception:  # noqa: BLE001  (ImportError, or a CUDA runtime that fails to load)
    cp = None

#: The ``cupy`` module, or None when CuPy cannot be imported (DeZero's name).
cupy = cp
#: True when CuPy could be imported (DeZero's flag).
gpu_enable = cp is not None


def _unwrap(x):
    return x.data if isinstance(x, Variable) else x


def get_array_module(x):
    """Return the module (``numpy`` or ``cupy``) that owns ``x``.

    ``x`` may be a Variable, a NumPy array, a CuPy array or a scalar; without
    CuPy the answer is always ``numpy``.
    """
    x = _unwrap(x)
    if not gpu_enable:
        return np
    return cp.get_array_module(x)


def as_numpy(x):
    """Return ``x`` (a Variable, scalar, NumPy or CuPy array) as a NumPy array."""
    x = _unwrap(x)
    if np.isscalar(x):
        return np.array(x)
    if isinstance(x, np.ndarray):
        return x
    if gpu_enable and isinstance(x, cp.ndarray):
        return cp.asnumpy(x)
    return np.asarray(x)


def as_cupy(x):
    """Return ``x`` (a Variable, scalar, NumPy or CuPy array) as a CuPy array.

    Raises RuntimeError when CuPy is not available.
    """
    x = _unwrap(x)
    if not gpu_enable:
        raise RuntimeError('CuPy cannot be loaded. Install CuPy (and a CUDA '
                           'driver) to move arrays to the GPU.')
    return cp.asarray(x)
