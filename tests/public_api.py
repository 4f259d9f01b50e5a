"""The public API of cydezero, walked one way by both its readers:
tests/test_docstrings.py (every public name has a docstring) and the Sphinx
API reference (docs/conf.py writes one page per module from it).

A module's public names are those not starting with ``_`` whose object is a
class or a function of cydezero's own (what a module imports from NumPy or the
standard library is not its API). Each object is documented once, in its
*home*: the public module that defines it, or, for what the compiled engine
(``cydezero._core``) and the alias helper define, the module where DeZero has
it; other modules that hold it re-export it.
"""
import importlib
import inspect

# In the order of the API reference.
MODULES = (
    'cydezero',
    'cydezero.core',
    'cydezero.core_simple',
    'cydezero.functions',
    'cydezero.functions_conv',
    'cydezero.layers',
    'cydezero.models',
    'cydezero.optimizers',
    'cydezero.optimizers.lr_scheduler',
    'cydezero.functional',
    'cydezero.profiler',
    'cydezero.datasets',
    'cydezero.dataloaders',
    'cydezero.transforms',
    'cydezero.utils',
    'cydezero.cuda',
)

# What dezero.core holds in DeZero 0.0.13 (/work/shared/dezero-api.md) is
# documented in cydezero.core; every other compiled object in the first
# module of _FALLBACK_ORDER that re-exports it (Sin in functions, where
# DeZero has it, although cydezero.core imports it too).
CORE_NAMES = frozenset({
    'Variable', 'Parameter', 'Function', 'as_array', 'as_variable',
    'Add', 'Sub', 'Mul', 'Div', 'Neg', 'Pow',
    'add', 'sub', 'rsub', 'mul', 'div', 'rdiv', 'neg', 'pow',
})
_FALLBACK_ORDER = MODULES[3:] + ('cydezero.core', 'cydezero.core_simple', 'cydezero')

# Methods of operations that the docstring rule exempts (an op's class
# docstring states its derivative; forward and backward are the definition).
OP_METHODS = frozenset({'forward', 'backward'})


def module(name):
    return importlib.import_module(name)


def _is_ours(obj):
    return (inspect.isclass(obj) or callable(obj)) and \
        (getattr(obj, '__module__', None) or '').split('.')[0] == 'cydezero'


def public_names(mod):
    """``[(name, obj)]`` of the public classes and functions ``mod`` holds,
    defined there or re-exported, in the module's own order."""
    return [(name, obj) for name, obj in vars(mod).items()
            if not name.startswith('_') and not inspect.ismodule(obj) and _is_ours(obj)]


def home(name, obj):
    """The public module where ``obj`` (held under ``name``) is documented."""
    defined_in = obj.__module__
    if defined_in in MODULES:
        return defined_in
    if defined_in == 'cydezero._core' and name in CORE_NAMES:
        return 'cydezero.core'
    for candidate in _FALLBACK_ORDER:
        if getattr(module(candidate), name, None) is obj:
            return candidate
    return None


def documented_here(modname):
    """``[(name, obj)]`` of the names whose home is ``modname``."""
    return [(n, o) for n, o in public_names(module(modname)) if home(n, o) == modname]


def reexported_here(modname):
    """``[(name, home module)]`` of the names ``modname`` holds but documents
    elsewhere."""
    return [(n, home(n, o)) for n, o in public_names(module(modname))
            if home(n, o) not in (modname, None)]


def is_op(cls):
    """True for an operation: a strict subclass of the engine's Function."""
    from cydezero.core import Function
    return inspect.isclass(cls) and issubclass(cls, Function) and cls is not Function


def public_members(cls):
    """``[(name, member)]`` of the public methods and properties ``cls``
    defines itself (inherited ones are documented on the base), without an
    operation's forward and backward."""
    skip = OP_METHODS if is_op(cls) else frozenset()
    found = []
    for name, raw in vars(cls).items():
        if name.startswith('_') or name in skip:
            continue
        if isinstance(raw, (staticmethod, classmethod)):
            raw = raw.__func__
        if inspect.isroutine(raw) or isinstance(raw, property) or inspect.isdatadescriptor(raw):
            found.append((name, raw))
    return found
