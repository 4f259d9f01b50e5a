"""DeZero's ``dezero.core_simple``, which the book's early steps import: the
same engine as ``core`` (there is only one)."""
from cydezero.core import *
from cydezero.core import (  # noqa: F401
    Config,
    Function,
    Variable,
    as_array,
    as_variable,
    no_grad,
    setup_variable,
    using_config,
)
