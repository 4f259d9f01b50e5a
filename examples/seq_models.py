"""Predict the next value of a noisy sine wave from a window of the values
before it, with a GRU or with self-attention, using cydezero's additions to
DeZero: ``L.GRU``, ``L.MultiHeadAttention``, ``L.LayerNorm``, ``L.Dropout``,
``cydezero.checkpoint``, a cosine learning-rate schedule, and the saved
training state (``save_weights`` + the optimizer's ``save_state``).

Shows a progress bar per epoch, prints the first and final training loss and
the test loss, and writes a plot of the loss curves and of the predictions
(``seq_<model>.png``) into OUTDIR.

    python examples/seq_models.py [OUTDIR] [--model gru|attention]
                                  [--epochs 20] [--window 16] [--hidden 32]
                                  [--batch-size 32] [--seed 0]
"""
import argparse
import os
import sys
import time

import numpy as np
from cydezero.optimizers.lr_scheduler import CosineAnnealingLR

import cydezero
import cydezero.functions as F
import cydezero.layers as L
from cydezero import optimizers
from cydezero.models import Model


# =============================================================================
# Data: windows of a noisy sine wave and the value after each
# =============================================================================
def windows(n_points, window, rng, phase=0.0):
    t = np.linspace(0, 4 * np.pi, n_points) + phase
    wave = np.sin(t) + rng.normal(scale=0.05, size=n_points)
    idx = np.arange(window)[None, :] + np.arange(n_points - window)[:, None]
    x = wave[idx].astype(np.float32)[:, :, None]       # (N, window, 1)
    t_next = wave[window:].astype(np.float32)[:, None]  # (N, 1)
    return x, t_next


# =============================================================================
# Models
# =============================================================================
class GRURegressor(Model):
    """A GRU read over the window, its last state through LayerNorm and a
    linear read-out. The recurrence runs inside ``cydezero.checkpoint``, so
    its per-step intermediates are recomputed in backward, not stored."""

    def __init__(self, hidden):
        super().__init__()
        self.gru = L.GRU(hidden)
        self.norm = L.LayerNorm()
        self.drop = L.Dropout(0.1)
        self.out = L.Linear(1)

    def encode(self, x):
        self.gru.reset_state()
        h = None
        for k in range(x.shape[1]):
            h = self.gru(x[:, k, :])
        self.gru.reset_state()  # keep no graph in the layer's state
        return h

    def forward(self, x):
        h = cydezero.checkpoint(self.encode, cydezero.Variable(x))
        return self.out(self.drop(self.norm(h)))


class AttentionRegressor(Model):
    """Each value embedded (with a learned position vector), one causal
    self-attention block with a residual connection and LayerNorm, the last
    position read out."""

    def __init__(self, hidden, window, heads=4):
        super().__init__()
        self.embed = L.Linear(hidden)
        self.pos = cydezero.Parameter(
            (np.random.randn(window, hidden) * 0.1).astype(np.float32), name='pos')
        self.attn = L.MultiHeadAttention(heads, embed_dim=hidden)
        self.norm = L.LayerNorm()
        self.out = L.Linear(1)

    def forward(self, x):
        N, T, _ = x.shape
        h = F.reshape(self.embed(x.reshape(N * T, 1)), (N, T, -1)) + self.pos
        causal = np.tril(np.ones((T, T), dtype=bool))
        h = self.norm(h + self.attn(h, mask=causal))
        return self.out(h[:, -1, :])


# =============================================================================
# Training
# =============================================================================
def progress(epoch, epochs, done, total, loss, start, width=24):
    """Redraw one line: the epoch's bar, batches done, mean loss so far and
    time. When stdout is not a terminal only the finished line is written."""
    if done < total and not sys.stdout.isatty():
        return
    filled = width * done // total
    bar = '#' * filled + '.' * (width - filled)
    end = '\n' if done == total else ''
    sys.stdout.write(f'\repoch {epoch}/{epochs} [{bar}] {done}/{total} '
                     f'loss {loss:.5f} {time.perf_counter() - start:5.1f}s{end}')
    sys.stdout.flush()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('outdir', nargs='?', default='.')
    ap.add_argument('--model', choices=('gru', 'attention'), default='gru')
    ap.add_argument('--epochs', type=int, default=20)
    ap.add_argument('--window', type=int, default=16)
    ap.add_argument('--hidden', type=int, default=32)
    ap.add_argument('--batch-size', type=int, default=32)
    ap.add_argument('--seed', type=int, default=0)
    args = ap.parse_args(argv)
    os.makedirs(args.outdir, exist_ok=True)

    np.random.seed(args.seed)
    rng = np.random.default_rng(args.seed)
    x_train, t_train = windows(400, args.window, rng)
    x_test, t_test = windows(200, args.window, rng, phase=0.5)

    model = GRURegressor(args.hidden) if args.model == 'gru' \
        else AttentionRegressor(args.hidden, args.window)
    optimizer = optimizers.Adam(alpha=0.01).setup(model)
    optimizer.add_hook(optimizers.ClipGrad(1.0))
    scheduler = CosineAnnealingLR(optimizer, T_max=args.epochs, eta_min=1e-4)

    n = len(x_train)
    batches = (n + args.batch_size - 1) // args.batch_size
    train_curve, test_curve = [], []
    for epoch in range(1, args.epochs + 1):
        start, total, seen = time.perf_counter(), 0.0, 0
        order = np.random.permutation(n)
        for b in range(batches):
            idx = order[b * args.batch_size:(b + 1) * args.batch_size]
            loss = F.mean_squared_error(model(x_train[idx]), t_train[idx])
            model.cleargrads()
            loss.backward()
            optimizer.update()
            total += float(loss.data) * len(idx)
            seen += len(idx)
            progress(epoch, args.epochs, b + 1, batches, total / seen, start)
        scheduler.step()
        train_curve.append(total / n)
        with cydezero.test_mode(), cydezero.no_grad():
            test_curve.append(float(F.mean_squared_error(model(x_test), t_test).data))

    print(f'first loss {train_curve[0]:.6f}, final loss {train_curve[-1]:.6f}, '
          f'test loss {test_curve[-1]:.6f}')
    model.save_weights(os.path.join(args.outdir, f'seq_{args.model}_weights.npz'))
    optimizer.save_state(os.path.join(args.outdir, f'seq_{args.model}_optimizer.npz'))

    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    with cydezero.test_mode(), cydezero.no_grad():
        pred = model(x_test).data[:, 0]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax1.plot(range(1, args.epochs + 1), train_curve, label='train')
    ax1.plot(range(1, args.epochs + 1), test_curve, label='test')
    ax1.set_yscale('log')
    ax1.set_xlabel('epoch')
    ax1.set_ylabel('mean squared error')
    ax1.legend()
    ax2.plot(t_test[:, 0], label='truth')
    ax2.plot(pred, label=f'{args.model} prediction')
    ax2.set_xlabel('test step')
    ax2.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.outdir, f'seq_{args.model}.png'))


if __name__ == '__main__':
    main()
