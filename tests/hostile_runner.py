"""Run a hostile snippet in a process of its own, so that a crash (a segfault,
an abort, a hang) fails the one test that provoked it instead of the run.

On Linux the process is a fork of the test run (NumPy and cydezero already
imported: about 10 ms a snippet instead of 300 ms for a new interpreter,
which makes the matrix of CI legs affordable); the snippet's objects are
then released and collected before the child exits, so teardown is
exercised too. ``fresh=True``, other platforms, CYDEZERO_TEST_FRESH=1, or
another Python thread still alive in the test run (a fork would copy the
locks it holds; CPython 3.12+ warns) start a new interpreter instead
(``sys.executable -c``).

Every snippet starts with PRELUDE (the usual imports and two helpers) and
ends by printing its result lines; the test compares them with values that
come from somewhere else than cydezero: DeZero 0.0.13, NumPy formulas, or
arithmetic done by hand.
"""
import faulthandler
import gc
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import traceback
import warnings

import numpy  # noqa: F401  (imported here so that forked children have it)

import cydezero  # noqa: F401

PRELUDE = '''
import copy, gc, pickle, sys, weakref
import numpy as np
import cydezero
import cydezero.functions as F
from cydezero import Variable, Function
import cydezero._core as C


def grads(*vs):
    """The .grad of each variable as a plain list (None where it has none)."""
    return [None if v.grad is None else np.asarray(v.grad.data).tolist() for v in vs]


def expect_error(fn, *kinds):
    """Call fn; it must raise one of kinds (any Exception if none given).
    Returns the exception's class name, so a snippet can print it."""
    kinds = kinds or (Exception,)
    try:
        fn()
    except kinds as e:
        return type(e).__name__
    raise AssertionError('expected one of {}, nothing was raised'.format(kinds))
'''


def _describe_rc(rc):
    if rc < 0:
        try:
            return f'{rc} ({signal.Signals(-rc).name})'
        except ValueError:
            return str(rc)
    return str(rc)


FORK = sys.platform == 'linux' and os.environ.get('CYDEZERO_TEST_FRESH', '') in ('', '0')


def _run_fresh(src, timeout):
    """(return code, stdout, stderr) of src in a new interpreter."""
    try:
        proc = subprocess.run([sys.executable, '-c', src], capture_output=True,
                              text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f'snippet hung for {timeout} s; output so far:\n{e.stdout}'
                             ) from None
    return proc.returncode, proc.stdout, proc.stderr


def _alone(wait=2.0):
    """True when this is the process's only Python thread as
    ``threading`` counts them, waiting up to ``wait`` s for threads that
    are ending (a thread that ``join()`` has seen finish can stay counted
    for a moment). CPython 3.13's ``os.fork()`` counts the same way;
    3.12.1's can lag behind it, see _run_forked."""
    deadline = time.monotonic() + wait
    while threading.active_count() > 1:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def _run_forked(src, timeout):
    """(return code, stdout, stderr) of src in a child forked from this
    process; a negative code is the signal that killed it."""
    code = compile(src, '<snippet>', 'exec')
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        with warnings.catch_warnings():
            # _alone() saw no other Python thread; CPython 3.12.1 still warns
            # for a moment after a thread ended (measured: 3 forks in 4 right
            # after a join), and may count native threads (the BLAS's).
            warnings.filterwarnings('ignore', r'This process \(pid=\d+\) is multi-threaded',
                                    DeprecationWarning)
            pid = os.fork()
        if pid == 0:      # the child: never returns into the test run
            status = 1
            try:
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                sys.stdout = open(1, 'w', closefd=False)
                sys.stderr = open(2, 'w', closefd=False)
                faulthandler.enable(sys.stderr)     # a crash's traceback: into err
                ns = {'__name__': '__main__'}
                exec(code, ns)
                ns.clear()          # the snippet's graphs are freed here
                gc.collect()
                status = 0
            except SystemExit as e:
                status = e.code if isinstance(e.code, int) else 1
            except BaseException:
                traceback.print_exc()
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(status)
        deadline = time.monotonic() + timeout
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                out.seek(0)
                raise AssertionError(f'snippet hung for {timeout} s; output so far:\n'
                                     + out.read().decode(errors='replace'))
            time.sleep(0.002)
        out.seek(0)
        err.seek(0)
        return (os.waitstatus_to_exitcode(status), out.read().decode(errors='replace'),
                err.read().decode(errors='replace'))


def run(code, *expected, timeout=120, fresh=False):
    """Run PRELUDE + code in a process of its own; it must exit 0 and print
    every line in ``expected`` (in that order, other lines may come between).
    Returns the lines it printed."""
    src = PRELUDE + textwrap.dedent(code)
    forked = FORK and not fresh and _alone()
    rc, stdout, stderr = (_run_forked if forked else _run_fresh)(src, timeout)
    lines = stdout.splitlines()
    assert rc == 0, (
        f'snippet exited with {_describe_rc(rc)}\n--- stdout ---\n{stdout[-3000:]}\n--- stderr ---\n{stderr[-3000:]}')
    pos = 0
    for want in expected:
        while pos < len(lines) and lines[pos] != want:
            pos += 1
        assert pos < len(lines), f'expected the line {want!r}; the snippet printed:\n{stdout[-3000:]}'
        pos += 1
    return lines
