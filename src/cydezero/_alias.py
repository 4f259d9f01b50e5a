"""Make ``import dezero`` (and ``dezero.functions`` and friends) resolve to
cydezero, for code nobody wants to edit."""
import importlib
import importlib.abc
import importlib.util
import sys


class _DezeroAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers imports of ``dezero`` and ``dezero.X`` with ``cydezero`` and
    ``cydezero.X``: one module object under two names, so state such as
    ``dezero.Config`` is shared."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != 'dezero' and not fullname.startswith('dezero.'):
            return None
        real = 'cy' + fullname
        if importlib.util.find_spec(real) is None:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        return importlib.import_module('cy' + spec.name)

    def exec_module(self, module):
        # The module is cydezero's own, already executed on import.
        pass


def install_as_dezero():
    """Make ``import dezero`` give cydezero from now on in this process.

    Like PyMySQL's ``install_as_MySQLdb()``: call it once before the code
    that imports dezero. Modules already imported under ``dezero`` (the real
    package) are replaced.
    """
    for name in [n for n in sys.modules if n == 'dezero' or n.startswith('dezero.')]:
        del sys.modules[name]
    if not any(isinstance(f, _DezeroAlias) for f in sys.meta_path):
        sys.meta_path.insert(0, _DezeroAlias())
