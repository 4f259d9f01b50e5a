"""The release configuration: the cibuildwheel table and the wheels workflow
say what the README promises (they cannot run here, so they are read)."""
from pathlib import Path

import pytest
import yaml

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip('tomli')

ROOT = Path(__file__).resolve().parent.parent


def test_cibuildwheel_table_covers_the_promised_platforms():
    cfg = tomllib.loads((ROOT / 'pyproject.toml').read_text())['tool']['cibuildwheel']
    assert cfg['build'] == ['cp310-*', 'cp311-*', 'cp312-*', 'cp313-*', 'cp314-*']
    assert cfg['linux']['archs'] == ['x86_64', 'aarch64']
    assert cfg['macos']['archs'] == ['x86_64', 'arm64']
    assert cfg['windows']['archs'] == ['AMD64']
    assert 'test' in cfg['test-extras']
    assert '{project}/tests' in cfg['test-command']


def test_wheels_workflow_builds_every_platform_and_the_sdist():
    wf = yaml.safe_load((ROOT / '.github' / 'workflows' / 'wheels.yml').read_text())
    jobs = wf['jobs']
    oses = jobs['wheels']['strategy']['matrix']['os']
    assert any('ubuntu' in o and 'arm' in o for o in oses)
    assert any(o.startswith('windows') for o in oses)
    assert sum(o.startswith('macos') for o in oses) == 2
    steps = [s.get('uses', '') for s in jobs['wheels']['steps']]
    assert any(s.startswith('pypa/cibuildwheel@') for s in steps)
    assert any('build --sdist' in s.get('run', '') for s in jobs['sdist']['steps'])
    assert jobs['publish']['needs'] == ['wheels', 'sdist']


def test_manifest_ships_cython_sources_not_generated_c():
    manifest = (ROOT / 'MANIFEST.in').read_text()
    assert 'recursive-include pyx *.pyx *.pxd *.pxi' in manifest
    assert 'recursive-exclude pyx *.c' in manifest


def test_type_stub_names_every_public_name_of_the_compiled_module():
    import ast
    import inspect
    from pathlib import Path

    import cydezero
    from cydezero import _core

    stub = Path(cydezero.__file__).with_name('_core.pyi')
    tree = ast.parse(stub.read_text())
    stubbed = {node.name for node in tree.body
               if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    public = {name for name, value in vars(_core).items()
              if not name.startswith('_') and (inspect.isclass(value) or callable(value))
              and getattr(value, '__module__', None) == 'cydezero._core'}
    assert public - stubbed == set()


def test_numpy_1_is_refused_at_import():
    # pyproject says numpy>=2.0; an environment that has NumPy 1.x anyway
    # (pip --no-deps, a pinned image) gets a clear error, not dtypes that
    # change with the memory layout.
    import subprocess
    import sys
    code = ("import numpy; numpy.__version__ = '1.26.4'\n"
            "try:\n"
            "    import cydezero\n"
            "except ImportError as e:\n"
            "    print(e)\n")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == 'cydezero needs NumPy 2.0 or later; this is NumPy 1.26.4'
