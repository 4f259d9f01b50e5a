"""Timings behind the choices in cydezero.functional and checkpoint (README,
"Beyond DeZero, part 2"): jvp by the double-vjp trick against one vjp, the
same products in torch.autograd.functional, and checkpoint's cost on a deep
MLP. Prints the best of --reps runs in milliseconds (the minimum: on a shared
machine it is the figure least disturbed by other load).

    python bench/functional_transforms.py [--reps 15]
"""
import argparse
import time

import numpy as np

import cydezero
import cydezero.functional as AF
import cydezero.functions as F
import cydezero.layers as L


def median_ms(fn, reps):
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--reps', type=int, default=15)
    reps = ap.parse_args().reps
    rng = np.random.default_rng(0)
    D, depth = 256, 8
    Ws = [rng.normal(size=(D, D)) / np.sqrt(D) for _ in range(depth)]
    x = rng.normal(size=(64, D))
    v = rng.normal(size=x.shape)

    def f(h):
        for W in Ws:
            h = F.tanh(F.matmul(h, W))
        return h

    rows = [('vjp', median_ms(lambda: AF.vjp(f, x, v), reps)),
            ('jvp (double vjp)', median_ms(lambda: AF.jvp(f, x, v), reps)),
            ('vhp', median_ms(lambda: AF.vhp(lambda h: F.sum(f(h)), x, v), reps)),
            ('hvp (double vjp)', median_ms(lambda: AF.hvp(lambda h: F.sum(f(h)), x, v), reps))]
    try:
        import torch
        TF = torch.autograd.functional
        tW = [torch.tensor(W) for W in Ws]
        tx, tv = torch.tensor(x), torch.tensor(v)

        def tf(h):
            for W in tW:
                h = torch.tanh(h @ W)
            return h
        rows += [('torch vjp', median_ms(lambda: TF.vjp(tf, tx, tv), reps)),
                 ('torch jvp (double backward)', median_ms(lambda: TF.jvp(tf, tx, tv), reps)),
                 ('torch vhp', median_ms(lambda: TF.vhp(lambda h: tf(h).sum(), tx, tv), reps)),
                 ('torch hvp', median_ms(lambda: TF.hvp(lambda h: tf(h).sum(), tx, tv), reps))]
    except ImportError:
        rows.append(('torch', float('nan')))

    np.random.seed(0)
    layers = [L.Linear(D, in_size=D, dtype=np.float64) for _ in range(24)]
    xin = cydezero.Variable(x)

    def seg(ls):
        def run(h):
            for layer in ls:
                h = F.tanh(layer(h))
            return h
        return run
    segs = [seg(layers[i:i + 6]) for i in range(0, 24, 6)]

    def step(ck):
        h = xin
        for s in segs:
            h = cydezero.checkpoint(s, h) if ck else s(h)
        F.sum(h).backward()
    rows += [('MLP 24x256 fwd+bwd', median_ms(lambda: step(False), reps)),
             ('  same, 4 checkpointed segments', median_ms(lambda: step(True), reps))]
    for name, ms in rows:
        print(f'{name:34s} {ms:8.2f} ms')


if __name__ == '__main__':
    main()
