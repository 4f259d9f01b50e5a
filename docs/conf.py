"""Sphinx configuration of cydezero's documentation.

Build (from the repository root, after ``pip install ".[docs]"``)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The API reference documents the installed package with autodoc, the compiled
engine (``cydezero._core``) included: its signatures come from Cython's
``embedsignature`` (setup.py). Its pages, ``docs/api/*.rst``, are written
here at each build from tests/public_api.py, the same walk of the public
names that tests/test_docstrings.py checks, so a name added to a module
appears in the reference without editing any page.
"""
import importlib
import re
import sys
from pathlib import Path

from sphinx.errors import PycodeError
from sphinx.pycode import ModuleAnalyzer

import cydezero

DOCS = Path(__file__).parent
sys.path.insert(0, str(DOCS.parent / 'tests'))
public_api = importlib.import_module('public_api')  # tests/public_api.py

project = 'cydezero'
author = 'the cydezero authors'
copyright = '2026, ' + author
release = version = cydezero.__version__

# Markdown pages (myst-parser) for the guides, which share the README's
# format; the API reference is reStructuredText written by this file.
extensions = ['sphinx.ext.autodoc', 'myst_parser']
source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}
myst_heading_anchors = 3
exclude_patterns = ['_build']
html_theme = 'alabaster'
html_static_path = []

autodoc_member_order = 'bysource'
autodoc_preserve_defaults = True  # np.float32, not <class 'numpy.float32'>
autodoc_typehints = 'none'  # nothing is annotated; the stubs are for type checkers


# --- The API reference pages ---------------------------------------------------
def _module_data(modname):
    """Module-level constants documented with a ``#:`` comment, in source order."""
    try:
        docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
    except PycodeError:  # a module without Python source
        return []
    return [name for (namespace, name) in docs if namespace == '' and not name.startswith('_')]


def _class_entry(name, cls):
    lines = [f'.. autoclass:: {name}', '   :members:', '   :undoc-members:',
             '   :show-inheritance:']
    if public_api.is_op(cls):
        lines.append('   :exclude-members: ' + ', '.join(sorted(public_api.OP_METHODS)))
    return lines


def _page(modname):
    title = f'``{modname}``'
    lines = [title, '=' * len(title), '', f'.. automodule:: {modname}', '   :no-members:', '']
    for name in _module_data(modname):
        lines += [f'.. autodata:: {name}', '']
    for name, obj in public_api.documented_here(modname):
        if isinstance(obj, type):
            lines += _class_entry(name, obj) + ['']
        else:
            lines += [f'.. autofunction:: {name}', '']
    again = public_api.reexported_here(modname)
    if again:
        lines += ['.. rubric:: Re-exported here, documented in their home module', '']
        lines += [', '.join(f':py:obj:`{name} <{home}.{name}>`' for name, home in again), '']
    return '\n'.join(lines)


def _write_if_changed(path, text):
    # Rewriting an unchanged page would make Sphinx rebuild it every time.
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def write_api_pages():
    api = DOCS / 'api'
    api.mkdir(exist_ok=True)
    index = ['API reference', '=============', '',
             "One page per public module, in DeZero's layout. Each object is documented",
             'once, in the module where DeZero has it; a module that re-exports it links there.',
             '', '.. toctree::', '   :maxdepth: 1', '']
    for modname in public_api.MODULES:
        _write_if_changed(api / f'{modname}.rst', _page(modname))
        index.append(f'   {modname}')
    _write_if_changed(api / 'index.rst', '\n'.join(index) + '\n')


write_api_pages()


# --- The compiled engine's signatures and bases --------------------------------
def _split_params(params):
    """Split a parameter list at its top-level commas."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(params):
        depth += ch in '([{'
        depth -= ch in ')]}'
        if ch == ',' and depth == 0:
            parts.append(params[start:i].strip())
            start = i + 1
    last = params[start:].strip()
    return parts + [last] if last else parts


# "Function func", "Py_ssize_t key=0": a C type before the name.
_C_TYPED = re.compile(r'^(?:[A-Za-z_][\w.]*\s+)+(?P<rest>\w.*)$')


def compiled_signature(app, what, name, obj, options, signature, return_annotation):
    """Make the signatures that Cython's embedsignature writes read as Python:
    no ``self`` on methods, no C types, and the keyword-only marker where it
    belongs (Cython 3.3 writes a class's signature from ``__init__`` as
    ``Variable(data, name=None, requires_grad=None, *)``: one parameter too
    late, which only shows when the ``*`` comes last)."""
    if not signature or getattr(obj, '__module__', None) != 'cydezero._core':
        return None
    params = [_C_TYPED.sub(r'\g<rest>', p) for p in _split_params(signature.strip()[1:-1])]
    if what == 'method' and params and params[0] == 'self':
        params = params[1:]
    if len(params) >= 2 and params[-1] == '*':
        params[-2:] = ['*', params[-2]]
    return '(' + ', '.join(params) + ')', return_annotation


def public_bases(app, name, obj, options, bases):
    """Show a private base class (the engine's ``_Builtin``) as its nearest
    public ancestor (``Function``)."""
    for i, base in enumerate(bases):
        if base.__name__.startswith('_'):
            bases[i] = next(b for b in base.__mro__ if not b.__name__.startswith('_'))


def setup(app):
    app.connect('autodoc-process-signature', compiled_signature)
    app.connect('autodoc-process-bases', public_bases)
