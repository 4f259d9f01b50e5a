"""Every public module, class, function, method and property of cydezero has a
docstring (the API reference is made of them), the compiled engine's types
included. Operations' forward and backward are exempt (the class docstring
states the derivative), and a method overriding a documented one inherits its
docstring, as in the reference. The walk is tests/public_api.py, which the
Sphinx configuration uses too.
"""
import inspect
import re

import pytest
from public_api import MODULES, module, public_members, public_names

from cydezero.core import Function, Variable

# The compiled engine is walked too, for the types only it holds (HookHandle)
# and for the public methods of the compiled Variable and Function; __main__
# is the command line, public in that users run it.
WALKED = MODULES + ('cydezero._core', 'cydezero.__main__')

# Cython's embedsignature puts "name(args)" (and "-> type") first in every
# docstring, even where the source has none.
_EMBEDDED_SIGNATURE = re.compile(r'\A[\w.]+\(.*\)(\s*->\s*[^\n]+)?\s*(\n|\Z)')


# A ``cdef public`` field of a compiled class is data, like a Python
# attribute, and is not checked; a property is, as a method is. At run time
# the two are alike (getset descriptors; under the clinic signature format a
# field has no __doc__ at all), so the fields are named here: the node types'
# own, and an op's, which are its constructor's arguments that the class
# docstring describes.
def _doc(obj):
    return _EMBEDDED_SIGNATURE.sub('', inspect.getdoc(obj) or '', count=1).strip()


NODE_FIELDS = {('Variable', 'name'), ('Variable', 'generation'), ('Function', 'generation')}


def _is_field(cls, name, member):
    if not inspect.isgetsetdescriptor(member) or member.__doc__:
        return False
    from cydezero import Function
    if (cls.__name__, name) in NODE_FIELDS:
        return True
    # an op's field: defined by the op class itself, not inherited
    return (cls.__module__ == 'cydezero._core' and issubclass(cls, Function)
            and cls is not Function and name in cls.__dict__)


def _own_class_doc(cls):
    # inspect.getdoc falls back to a base class's docstring; a class must
    # say what it is itself (ResNet50 is not ResNet).
    doc = cls.__dict__.get('__doc__')
    return _EMBEDDED_SIGNATURE.sub('', inspect.cleandoc(doc or ''), count=1).strip()


def undocumented(modname):
    """The public names of ``modname`` (and of the classes defined in it)
    without a docstring, as dotted names."""
    mod = module(modname)
    missing = [] if _doc(mod) else [modname]
    for name, obj in public_names(mod):
        if obj.__module__ != modname:
            continue  # a re-export: checked where it is defined
        if inspect.isclass(obj):
            if not _own_class_doc(obj):
                missing.append(f'{modname}.{name}')
            for mname, member in public_members(obj):
                if not _is_field(obj, mname, member) and not _doc(getattr(obj, mname)):
                    missing.append(f'{modname}.{name}.{mname}')
        elif not _doc(obj):
            missing.append(f'{modname}.{name}')
    return missing


@pytest.mark.parametrize('modname', WALKED)
def test_every_public_name_has_a_docstring(modname):
    missing = undocumented(modname)
    assert not missing, f'{len(missing)} public names without a docstring:\n  ' + \
        '\n  '.join(missing)


def test_the_walk_reaches_the_compiled_types():
    # So that a bug in the walk cannot pass the test above by seeing nothing.
    assert {'backward', 'register_hook', 'shape', 'T'} <= dict(public_members(Variable)).keys()
    assert {'forward', 'backward', 'inputs'} <= dict(public_members(Function)).keys()
    assert _doc(Variable.backward) and not _doc(Variable.backward).startswith('Variable.')
