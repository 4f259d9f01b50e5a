"""Where the small-matrix loops stop paying: Linear's forward and backward on
float64 arrays, cydezero's own loops against the NumPy calls they replace.

For each shape (M, K, N) it times, as medians of interleaved repeats:

  fwd  cydezero.functions.Linear().forward(x, W, b)  vs  x.dot(W) + b
  bw   the three gradients through a recorded Linear  vs  gy.dot(W.T),
       x.T.dot(gy), gy.sum(axis=0)

and prints the ratio. Products with more multiply-adds than _SMALL_MATMUL in
pyx/cydezero/_core.pyx take the NumPy route themselves: their forward ratio
is about 1, and their backward ratio (about 1.3-1.6) is what a backward pass
costs on top of the three NumPy calls. The threshold belongs where the small
shapes' ratios reach those of the large ones. Measured here (AMD EPYC, 2
cores): forward 0.3-0.6 up to 2048 multiply-adds, 0.88 at 4000, 1.0 at
10000; backward 0.5-0.7 up to 2048, 1.26 at 4000 against 1.3-1.6 for the
NumPy route. Hence 4096.

    python bench/kernels.py
"""
import timeit

import numpy as np

import cydezero as dz

SHAPES = [
    (100, 1, 10), (100, 10, 1), (30, 2, 10), (30, 10, 3), (64, 8, 4),
    (32, 32, 2), (100, 10, 4), (100, 10, 10), (64, 16, 16), (128, 32, 4),
    (100, 20, 8), (128, 64, 2),
]


def median_time(f, number=2000, repeat=9):
    return float(np.median(timeit.repeat(f, number=number, repeat=repeat))) / number


def cases(M, K, N, rng):
    x = rng.standard_normal((M, K))
    W = rng.standard_normal((K, N))
    b = rng.standard_normal(N)
    gy = rng.standard_normal((M, N))
    lin = dz.functions.Linear()

    def cz_fwd():
        lin.forward(x, W, b)

    def np_fwd():
        x.dot(W) + b

    xv, Wv, bv = dz.Variable(x), dz.Variable(W), dz.Variable(b)
    y = dz.functions.linear(xv, Wv, bv)

    def cz_bw():
        y.grad = dz.Variable(gy)
        y.backward(retain_grad=True)
        xv.grad = Wv.grad = bv.grad = None

    def np_bw():
        gy.dot(W.T)
        x.T.dot(gy)
        gy.sum(axis=0)

    return (cz_fwd, np_fwd), (cz_bw, np_bw)


def main():
    rng = np.random.default_rng(0)
    print(f"{'M x K x N':>14} {'madds':>7} | {'fwd cz':>8} {'numpy':>8} {'ratio':>6}"
          f" | {'bw cz':>8} {'numpy':>8} {'ratio':>6}")
    for M, K, N in SHAPES:
        row = []
        for cz, ref in cases(M, K, N, rng):
            # interleave the two so that drift on a shared machine hits both
            a, b = [], []
            for _ in range(5):
                a.append(median_time(cz, repeat=3))
                b.append(median_time(ref, repeat=3))
            ta, tb = float(np.median(a)), float(np.median(b))
            row.append(f"{ta * 1e6:7.2f}u {tb * 1e6:7.2f}u {ta / tb:6.2f}")
        print(f"{M:>4} x{K:>3} x{N:>3} {M * K * N:>7} | " + " | ".join(row))


if __name__ == "__main__":
    main()
