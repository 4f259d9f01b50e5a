"""cydezero: DeZero's define-by-run automatic differentiation on a Cython
graph engine. ``import cydezero as dezero`` and DeZero code runs unchanged."""
from cydezero import core  # noqa: F401
from cydezero._alias import install_as_dezero  # noqa: F401
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

__version__ = "0.1.0"
