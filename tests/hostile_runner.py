"""Run a hostile snippet in a fresh interpreter, so that a crash (a segfault,
an abort, a hang) fails the one test that provoked it instead of the run.

Every snippet starts with PRELUDE (the usual imports and two helpers) and
ends by printing its result lines; the test compares them with values that
come from somewhere else than cydezero: DeZero 0.0.13, NumPy formulas, or
arithmetic done by hand.
"""
import signal
import subprocess
import sys
import textwrap

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


def run(code, *expected, timeout=120):
    """Run PRELUDE + code with ``sys.executable -c``; it must exit 0 and print
    every line in ``expected`` (in that order, other lines may come between).
    Returns the lines it printed."""
    src = PRELUDE + textwrap.dedent(code)
    try:
        proc = subprocess.run([sys.executable, '-c', src], capture_output=True,
                              text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f'snippet hung for {timeout} s; output so far:\n{e.stdout}'
                             ) from None
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0, (
        f'snippet exited with {_describe_rc(proc.returncode)}\n--- stdout ---\n{proc.stdout[-3000:]}\n--- stderr ---\n{proc.stderr[-3000:]}')
    pos = 0
    for want in expected:
        while pos < len(lines) and lines[pos] != want:
            pos += 1
        assert pos < len(lines), f'expected the line {want!r}; the snippet printed:\n{proc.stdout[-3000:]}'
        pos += 1
    return lines
