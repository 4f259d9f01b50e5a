"""``python -m cydezero``: usage text, the demo, and ``run``, which must
behave like ``python script.py`` with ``import dezero`` giving cydezero."""
import subprocess
import sys

import pytest


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, '-m', 'cydezero', *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)


def python(*args, cwd=None):
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize('flag', ['--help', '-h'])
def test_help_prints_usage_on_stdout_and_exits_0(flag):
    p = cli(flag)
    assert p.returncode == 0 and p.stderr == ''
    assert p.stdout.startswith('usage: python -m cydezero') and 'run SCRIPT' in p.stdout


def test_unknown_command_is_an_error_with_usage():
    p = cli('frobnicate')
    assert p.returncode == 2 and p.stdout == ''
    assert 'usage:' in p.stderr and "unknown command 'frobnicate'" in p.stderr


@pytest.fixture
def project(tmp_path):
    """A script with a module beside it, as the book's steps import their
    helpers; run from another directory."""
    d = tmp_path / 'steps'
    d.mkdir()
    (d / 'helper.py').write_text('def answer():\n    return 42\n')
    (d / 'step.py').write_text(
        'import sys\n'
        'import helper\n'
        'import numpy as np\n'
        'import dezero\n'
        'from dezero import Variable\n'
        'print(helper.answer(), sys.argv[1:], __name__)\n'
        'print(dezero.__name__.startswith("cy") or "python", Variable(np.array(2.0)) * 3)\n'
        'def fail():\n'
        '    raise ValueError("bad input")\n'
        'if sys.argv[1:] == ["fail"]:\n'
        '    fail()\n'
        'if sys.argv[1:] == ["exit"]:\n'
        '    sys.exit(3)\n')
    # For `python step.py`, a stand-in dezero beside it; `run` must not use it.
    (d / 'dezero').mkdir()
    (d / 'dezero' / '__init__.py').write_text('from cydezero import Variable  # noqa\n')
    return tmp_path, d / 'step.py'


def test_run_is_like_python_script(project):
    root, script = project
    p = cli('run', script, 'a', '--flag', cwd=root)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["42 ['a', '--flag'] __main__", 'True variable(6.0)']


def test_run_reports_an_error_as_python_does_without_runpy_frames(project):
    root, script = project
    p = cli('run', script, 'fail', cwd=root)
    q = python(script, 'fail', cwd=root)
    assert p.returncode == q.returncode == 1
    assert p.stderr == q.stderr
    assert 'runpy' not in p.stderr and '__main__.py' not in p.stderr


def test_run_passes_the_exit_status_on(project):
    root, script = project
    assert cli('run', script, 'exit', cwd=root).returncode == 3


def test_run_of_a_missing_file_is_a_one_line_error(tmp_path):
    p = cli('run', 'nope.py', cwd=tmp_path)
    assert p.returncode == 2 and p.stdout == ''
    assert p.stderr.count('\n') == 1
    assert "can't open file" in p.stderr and 'nope.py' in p.stderr
    assert 'No such file or directory' in p.stderr
