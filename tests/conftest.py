"""Shared helpers for the tests: numerical differentiation and the DeZero
0.0.13 oracle (which needs ``numpy.int`` on NumPy 2). Code that could crash
the interpreter runs through ``hostile_runner.run``."""
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


def differentiate_again(x, times):
    """Replace x.grad by its own derivative, ``times`` times, as the book's
    loop for higher derivatives does (each backward with create_graph).
    Works on DeZero's Variables too."""
    for _ in range(times):
        gx = x.grad
        x.cleargrad()
        gx.backward(create_graph=True)


@pytest.fixture(scope='session')
def dezero():
    if not hasattr(np, 'int'):
        np.int = int
    return pytest.importorskip('dezero')

