"""Shared helpers for the tests: numerical differentiation, the DeZero
0.0.13 oracle (which needs ``numpy.int`` on NumPy 2), and a fresh
interpreter for code that could crash one."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest


def numerical_grad(f, x, eps=1e-6):
    """Central differences of the scalar sum of f(x) with respect to array x."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=['multi_index'])
    for _ in it:
        i = it.multi_index
        orig = x[i]
        x[i] = orig + eps
        hi = np.sum(f(x.copy()))
        x[i] = orig - eps
        lo = np.sum(f(x.copy()))
        x[i] = orig
        grad[i] = (hi - lo) / (2 * eps)
    return grad


def num_grads(f, arrays, eps=1e-6):
    """Central differences of sum(f(*arrays)) with respect to every input
    (f may return an array or a Variable)."""
    from cydezero import Variable

    def total(y):
        return np.sum(y.data if isinstance(y, Variable) else y)
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    grads = []
    for a in arrays:
        g = np.zeros_like(a)
        for idx in np.ndindex(*a.shape):
            orig = a[idx]
            a[idx] = orig + eps
            hi = total(f(*arrays))
            a[idx] = orig - eps
            lo = total(f(*arrays))
            a[idx] = orig
            g[idx] = (hi - lo) / (2 * eps)
        grads.append(g)
    return grads


@pytest.fixture(scope='session')
def dezero():
    if not hasattr(np, 'int'):
        np.int = int
    return pytest.importorskip('dezero')


def run_isolated(code, timeout=120):
    """Run ``code`` in a fresh interpreter and return what it printed; fail
    the calling test (not the run) if it crashed, raised or hung. A
    segfault shows as a negative return code (the signal)."""
    try:
        r = subprocess.run([sys.executable, '-c', textwrap.dedent(code)],
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail('the snippet hung (> {} s)'.format(timeout))
    if r.returncode != 0:
        pytest.fail('the snippet exited with {}{}:\n{}\n{}'.format(
            r.returncode, ' (killed by signal {})'.format(-r.returncode) if r.returncode < 0 else '',
            r.stdout[-3000:], r.stderr[-3000:]))
    return r.stdout
