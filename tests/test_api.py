"""Every public name of DeZero 0.0.13 exists in cydezero's module of the
same name, with the same parameters and defaults: every module-level name of
the package and of each module, callables or not, checked against the
installed DeZero (the PyPI release). The book repository's copy, which the
tests cannot download, differs in the names listed in BOOK_REPOSITORY (from
the compatibility contract); those are checked here by name."""
import importlib
import inspect

import numpy as np
import pytest

MODULES = ['', 'core', 'core_simple', 'functions', 'functions_conv', 'layers', 'models',
           'optimizers', 'dataloaders', 'datasets', 'transforms', 'utils', 'cuda']

# Compiled built-in operations take their inputs as *xs in forward and their
# output gradients as *gys in backward (one C entry point for all of them);
# positional calls such as Sin().forward(x) work as in DeZero.
COMPILED_VARIADIC = {'forward': ('xs',), 'backward': ('gys',)}


def _public(module):
    """Public module-level names. Modules imported for the module's own use
    (np, weakref, ...) are not API, except the package's own submodules in
    the package itself (``dezero.functions``)."""
    package = module.__name__.split('.')[0]
    for name, value in vars(module).items():
        if name.startswith('_'):
            continue
        if inspect.ismodule(value) and not (
                '.' not in module.__name__ and value.__name__ == f'{package}.{name}'):
            continue
        yield name, value


# What the book repository's dezero has beyond the PyPI release
# (../shared/dezero-api.md, "Two DeZeros"): module -> names, with the value
# for the names that are not callables.
BOOK_REPOSITORY = {
    '': {'is_simple_core': False},
    'core_simple': dict.fromkeys([
        'Config', 'using_config', 'no_grad', 'Variable', 'as_variable', 'as_array',
        'Function', 'Add', 'add', 'Mul', 'mul', 'Neg', 'neg', 'Sub', 'sub', 'rsub', 'Div',
        'div', 'rdiv', 'Pow', 'pow', 'setup_variable']),
    'functions': dict.fromkeys(['mean', 'average']),
}
BOOK_VARIABLE_METHODS = ['matmul', 'matmaul']


def _signature(f):
    try:
        s = inspect.signature(f)
    except (TypeError, ValueError):
        return None     # a slot of a compiled type: nothing to compare
    if str(s) == '(self, /, *args, **kwargs)':
        return None     # likewise
    return s


def _same_default(a, b):
    if a is b:
        return True
    if callable(a) and callable(b):     # e.g. MLP(activation=F.sigmoid)
        return getattr(a, '__name__', None) == getattr(b, '__name__', None)
    if type(a).__module__.startswith('dezero'):   # e.g. MNIST(transform=Compose(...))
        return type(a).__name__ == type(b).__name__
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001  (arrays and the like)
        return False


def _check(where, theirs, ours, problems):
    s1, s2 = _signature(theirs), _signature(ours)
    if s1 is None or s2 is None:
        return
    p1 = list(s1.parameters.values())
    # cydezero may add keyword-only parameters with defaults (requires_grad).
    names1 = {p.name for p in p1}
    p2 = [p for p in s2.parameters.values()
          if p.kind != p.KEYWORD_ONLY or p.name in names1 or p.default is p.empty]
    names2 = tuple(p.name for p in p2 if p.name != 'self')
    if names2 in COMPILED_VARIADIC.values():
        return
    # DeZero attaches some functions to Variable as methods (x plays self);
    # cydezero may add trailing parameters that have defaults.
    first = {'x', 'self'}
    n1 = [p.name for p in p1]
    n2 = [p.name for p in p2[:len(p1)]]
    if n1[:1] != n2[:1] and {*n1[:1], *n2[:1]} <= first:
        n1, n2 = n1[1:], n2[1:]
    if n1 != n2 or any(p.default is p.empty for p in p2[len(p1):]):
        problems.append(f'{where}: parameters {s1} in DeZero, {s2} here')
        return
    for a, b in zip(p1, p2):
        if not _same_default(a.default, b.default):
            problems.append(f'{where}: default of {a.name} is {a.default!r} in DeZero, '
                            f'{b.default!r} here')


@pytest.mark.parametrize('mod', MODULES)
def test_every_public_name_exists_with_its_signature(dezero, mod):
    theirs = importlib.import_module('dezero' + (mod and '.' + mod))
    ours = importlib.import_module('cydezero' + (mod and '.' + mod))
    problems = []
    for name, value in _public(theirs):
        if not hasattr(ours, name):
            problems.append(f'{mod}.{name} is missing')
            continue
        mine = getattr(ours, name)
        if inspect.isclass(value):
            for attr, member in vars(value).items():
                if attr.startswith('_') and attr not in ('__init__', '__call__'):
                    continue
                if not (callable(member) or isinstance(member, property)):
                    continue
                if not hasattr(mine, attr):
                    problems.append(f'{mod}.{name}.{attr} is missing')
                elif callable(member):
                    _check(f'{mod}.{name}.{attr}', member, getattr(mine, attr), problems)
        elif callable(value):
            _check(f'{mod}.{name}', value, mine, problems)
        elif inspect.ismodule(value):
            if mine is not importlib.import_module('cydezero.' + name):
                problems.append(f'{name} is not cydezero.{name}')
        elif not _same_default(value, mine):
            problems.append(f'{mod}.{name} is {mine!r} here, {value!r} in DeZero')
    assert problems == []


@pytest.mark.parametrize('mod', sorted(BOOK_REPOSITORY))
def test_the_book_repositorys_names_exist(mod):
    ours = importlib.import_module('cydezero' + (mod and '.' + mod))
    for name, value in BOOK_REPOSITORY[mod].items():
        assert hasattr(ours, name), f'{mod}.{name}'
        mine = getattr(ours, name)
        if value is None:
            assert callable(mine), f'{mod}.{name}'
        else:
            assert type(mine) is type(value) and mine == value, f'{mod}.{name}'
    from cydezero import core, core_simple, functions
    assert functions.mean is functions.average
    for cls in (core.Variable, core_simple.Variable):
        for name in BOOK_VARIABLE_METHODS:
            assert callable(getattr(cls, name))


def test_package_reexports_what_dezero_does(dezero):
    import cydezero
    for name in ('Variable', 'Parameter', 'Function', 'using_config', 'no_grad', 'test_mode',
                 'as_array', 'as_variable', 'setup_variable', 'Config', 'Layer', 'Model',
                 'Dataset', 'DataLoader', 'SeqDataLoader', 'functions', 'functions_conv',
                 'layers', 'models', 'optimizers', 'dataloaders', 'datasets', 'transforms',
                 'utils', 'cuda'):
        assert hasattr(dezero, name)
        assert hasattr(cydezero, name), name


def test_matmaul_typo_of_dezero_still_works():
    import cydezero
    x = cydezero.Variable(np.ones((2, 3)))
    W = np.ones((3, 4))
    np.testing.assert_array_equal(x.matmaul(W).data, x.matmul(W).data)
