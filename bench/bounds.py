#!/usr/bin/env python
"""How fast an engine could make a DeZero program at best: the work its own
lines do whatever the engine, against the NumPy floor, in one process.

    python bench/bounds.py [--reps 15]

For `rosenbrock` and `mlp_small` it times, interleaved, with run.py's clock
(thread CPU time, the median of --reps runs):

* the floor (run.py's NumPy program);
* the DeZero program on cydezero;
* its fixed part: what the program's own lines compute, whatever engine
  runs them, on gradients that are already there:
  - `rosenbrock`: the update ``x.data -= lr * x.grad.data`` of both
    variables. DeZero's ``.grad.data`` is a 0-d array, so each update is two
    ufunc calls on 0-d arrays; the floor's gradients are NumPy scalars.
  - `mlp_small`: the update of the four parameters, NumPy's ``tanh`` on the
    hidden layer (DeZero's sigmoid is ``tanh(x / 2) / 2 + 1/2``, and
    NumPy's loop gives its bits) and the three matrix products whose
    entries are sums of more than one term (``h @ W2`` forward,
    ``h.T @ gy`` and ``x.T @ gh`` backward): DeZero's ``linear`` sends them
    to the BLAS, so their bits are the BLAS's. The other two products have
    one term an entry, which an engine can compute exactly itself
    (cydezero does).

Printed: each time over the floor's. The fixed part's ratio is the least
any engine can reach while giving DeZero's results with DeZero's types; a
target below it cannot be met by engine work.
"""
import argparse
import gc
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

import workloads as W  # noqa: E402 (found through the path set just above)


def rosenbrock_fixed(dz, n):
    """The two updates of the DeZero program, n times, on gradients made by
    one backward pass first."""
    x0 = dz.Variable(np.array(0.0))
    x1 = dz.Variable(np.array(2.0))
    lr = 0.001
    y = 100 * (x1 - x0 ** 2) ** 2 + (1 - x0) ** 2
    y.backward()
    for _ in range(n):
        x0.data -= lr * x0.grad.data
        x1.data -= lr * x1.grad.data
    return float(x0.data)


def mlp_small_fixed(dz, n, data):
    """The four updates, the hidden layer's tanh and the three products of
    the DeZero program that only the BLAS gives the bits of, n times."""
    x, y, W1, b1, W2, b2, lr = data
    params = [dz.Variable(p.copy()) for p in (W1, b1, W2, b2)]
    for p in params:
        p.grad = dz.Variable(np.full_like(p.data, 1e-3))
    h = np.full((len(x), W1.shape[1]), 0.5)
    gy = np.full((len(x), W2.shape[1]), 1e-3)
    gh = np.full_like(h, 1e-3)
    for _ in range(n):
        np.tanh(h, out=h)
        h.dot(W2)
        h.T.dot(gy)
        x.T.dot(gh)
        for p in params:
            p.data -= lr * p.grad.data
    return float(params[0].data[0, 0])


def programs(dz):
    """{workload: {name: (what to run)}}, n as in run.py's full run."""
    data = W.mlp_small_data(1000)
    return {
        "rosenbrock": {
            "floor": lambda: W.np_rosenbrock(2000),
            "cydezero": lambda: W.dz_rosenbrock(dz, 2000),
            "fixed part": lambda: rosenbrock_fixed(dz, 2000),
        },
        "mlp_small": {
            "floor": lambda: W.np_sigmoid_mlp(1000, data),
            "cydezero": lambda: W.dz_sigmoid_mlp(dz, 1000, data),
            "fixed part": lambda: mlp_small_fixed(dz, 1000, data),
        },
    }


def thread_time(fn):
    gc.collect()
    t0 = time.thread_time()
    fn()
    return time.thread_time() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=15, help="timed runs of each (default 15)")
    args = ap.parse_args(argv)
    dz = W.load_dz("cydezero")
    for workload, runs in programs(dz).items():
        for fn in runs.values():     # warm-up
            fn()
        times = {name: [] for name in runs}
        for _ in range(args.reps):   # interleaved, so that all see the same load
            for name, fn in runs.items():
                times[name].append(thread_time(fn))
        floor = statistics.median(times["floor"])
        print(f"{workload}: floor {floor * 1e3:.1f} ms (thread time, median of {args.reps})")
        for name in runs:
            if name != "floor":
                t = statistics.median(times[name])
                print(f"  {name:<11} {t * 1e3:7.1f} ms  {t / floor:.2f}x the floor")


if __name__ == "__main__":
    main()
