"""cydezero: DeZero's define-by-run automatic differentiation on a Cython
graph engine. ``import cydezero as dezero`` and DeZero code runs unchanged.

As in DeZero, the package brings its library with it: ``dezero.functions``,
``dezero.optimizers``, ... work after ``import dezero`` alone."""
import numpy as _np

# NumPy 1.x promotes by value (float32 data times a float64 0-d array stays
# float32, a float32 scalar over an int becomes float64), so there the
# dtypes this library documents and tests would differ between its fast
# paths and the NumPy spelling beside them. Say so instead.
if int(_np.__version__.split('.')[0]) < 2:
    raise ImportError(f'cydezero needs NumPy 2.0 or later; this is NumPy {_np.__version__}')
from cydezero import (  # noqa: F401
    core,
    core_simple,
    cuda,
    dataloaders,
    datasets,
    functional,
    functions,
    functions_conv,
    layers,
    models,
    optimizers,
    transforms,
    utils,
)
from cydezero._alias import install_as_dezero  # noqa: F401
from cydezero._checkpoint import checkpoint  # noqa: F401
from cydezero._core import grad  # noqa: F401
from cydezero.core import (  # noqa: F401
    Config,
    Function,
    Parameter,
    Variable,
    as_array,
    as_variable,
    detect_anomaly,
    no_grad,
    setup_variable,
    test_mode,
    using_config,
)
from cydezero.dataloaders import DataLoader, SeqDataLoader  # noqa: F401
from cydezero.datasets import Dataset  # noqa: F401
from cydezero.layers import Layer  # noqa: F401
from cydezero.models import Model  # noqa: F401
from cydezero.profiler import ProfileReport, profile  # noqa: F401

# DeZero's switch between its two engines, which the book's steps 28 and 29
# read: False, the full engine (``core``) is the package's. ``core_simple``
# is importable all the same.
is_simple_core = False

__version__ = "0.1.0"
