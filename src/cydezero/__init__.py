"""cydezero: DeZero's define-by-run automatic differentiation on a Cython
graph engine. ``import cydezero as dezero`` and DeZero code runs unchanged.

As in DeZero, the package brings its library with it: ``dezero.functions``,
``dezero.optimizers``, ... work after ``import dezero`` alone."""
from cydezero import (  # noqa: F401
    core,
    cuda,
    dataloaders,
    datasets,
    functions,
    functions_conv,
    layers,
    models,
    optimizers,
    transforms,
    utils,
)
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
from cydezero.dataloaders import DataLoader, SeqDataLoader  # noqa: F401
from cydezero.datasets import Dataset  # noqa: F401
from cydezero.layers import Layer  # noqa: F401
from cydezero.models import Model  # noqa: F401

__version__ = "0.1.0"
