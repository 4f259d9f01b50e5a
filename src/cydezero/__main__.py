"""``python -m cydezero`` shows the engine at work;
``python -m cydezero run script.py [args...]`` runs a DeZero script on
cydezero, with ``import dezero`` resolving to cydezero."""
import os
import runpy
import sys
import time

import numpy as np

import cydezero
from cydezero import Variable
from cydezero._core import matmul


def demo():
    """Print a tour of the engine: derivatives, Newton's method, a small
    regression, and a long chain."""
    from cydezero._core import exp

    print(f"cydezero {cydezero.__version__}: DeZero's API on a Cython graph engine\n")

    x = Variable(np.array(0.5))
    y = exp(x ** 2) ** 2
    y.backward()
    print("1. y = square(exp(square(x))) at x = 0.5")
    print(f"   y = {float(y.data)!r}, dy/dx = {float(x.grad.data)!r}")
    print(f"   (closed form: dy/dx = 4x·exp(2x²) = {float(4 * 0.5 * np.exp(2 * 0.25))!r})")

    x = Variable(np.array(2.0))
    for _ in range(6):
        x.cleargrad()
        y = x ** 4 - 2 * x ** 2
        y.backward(create_graph=True)
        gx = x.grad
        x.cleargrad()
        gx.backward()
        x.data -= gx.data / x.grad.data
    print("2. Newton's method on x^4 - 2x^2 from x = 2, using second derivatives")
    print(f"   x = {float(x.data)!r} after 6 steps (the minimum is at 1.0)")

    rng = np.random.default_rng(0)
    xs = rng.random((100, 1))
    ts = 5 + 2 * xs + rng.random((100, 1))
    W, b = Variable(np.zeros((1, 1))), Variable(np.zeros(1))
    start = time.perf_counter()
    for _ in range(100):
        pred = matmul(xs, W) + b
        diff = pred - ts
        loss = (diff ** 2).sum() / len(diff)
        W.cleargrad()
        b.cleargrad()
        loss.backward()
        W.data -= 0.1 * W.grad.data
        b.data -= 0.1 * b.grad.data
    took = time.perf_counter() - start
    print("3. Linear regression t = 5 + 2x + noise, 100 gradient steps")
    print(f"   W = {W.data.item():.4f}, b = {b.data.item():.4f}, "
          f"loss = {loss.data.item():.5f}  ({took * 1e3:.1f} ms)")

    x = Variable(np.array(1.0))
    y = x
    n = 100_000
    start = time.perf_counter()
    for _ in range(n):
        y = y * 1.00001
    y.backward()
    took = time.perf_counter() - start
    print(f"4. A chain of {n:,} multiplications, forward and backward: {took:.2f} s")
    print(f"   dy/dx = {float(x.grad.data)!r} (exact: 1.00001^{n:,} = {1.00001 ** n!r})")


USAGE = """\
usage: python -m cydezero [-h] [run SCRIPT [ARG ...]]

cydezero: DeZero's API on a Cython graph engine.

  (no arguments)        show the engine at work: a short demo
  run SCRIPT [ARG ...]  run a DeZero script unchanged on cydezero, as
                        `python SCRIPT ARG ...` would, except that `import
                        dezero` (and dezero.functions, ...) gives cydezero
  -h, --help            show this help and exit
"""


def run_script(path, args):
    """Run ``path`` as ``python path args...`` would (its folder first on
    sys.path, ``sys.argv`` = [path, *args], run as ``__main__``), with
    ``import dezero`` resolving to cydezero. Returns the exit status."""
    try:
        with open(path, 'rb'):
            pass
    except OSError as e:    # worded as Python words it, on one line
        print(f"python -m cydezero run: can't open file {os.path.abspath(path)!r}: "
              f'[Errno {e.errno}] {e.strerror}', file=sys.stderr)
        return 2
    cydezero.install_as_dezero()
    sys.argv = [path, *args]
    sys.path[0] = os.path.dirname(os.path.abspath(path))
    try:
        runpy.run_path(path, run_name='__main__')
    except SystemExit:
        raise
    except BaseException as e:      # noqa: BLE001  (reported as Python would)
        # Python's own traceback starts at the script: drop the frames of
        # this module and of runpy above it.
        tb = e.__traceback__
        while tb is not None and _is_launcher(tb.tb_frame.f_code.co_filename):
            tb = tb.tb_next
        sys.excepthook(type(e), e.with_traceback(tb), tb)
        return 130 if isinstance(e, KeyboardInterrupt) else 1
    return 0


def _is_launcher(filename):
    return (filename == __file__ or filename == runpy.__file__
            or filename.startswith('<frozen runpy'))


def main(argv=None):
    """The command line: see USAGE. Returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        demo()
        return 0
    if argv[0] in ('-h', '--help'):
        print(USAGE, end='')
        return 0
    if argv[0] == 'run' and len(argv) >= 2:
        return run_script(argv[1], argv[2:])
    problem = 'run needs a script' if argv[0] == 'run' else f'unknown command {argv[0]!r}'
    print(f'{USAGE}\npython -m cydezero: error: {problem}', file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main())
