"""Learn to predict the next value of a noisy sine wave with a recurrent
network trained by truncated backpropagation through time, in the manner of
steps 59-60 of "Deep Learning from Scratch 3", with cydezero standing in for
DeZero.

Prints the mean squared error of each epoch. With ``--plot PATH`` it then
feeds the trained network a cosine wave and saves its one-step predictions
next to the truth.

    python examples/sin_curve.py [--epochs 100] [--cell lstm|rnn]
                                 [--hidden 100] [--bptt 30] [--batch-size 30]
                                 [--seed 0] [--plot sin_curve.png]
"""
import argparse

import numpy as np

import cydezero as dezero
import cydezero.functions as F
import cydezero.layers as L
from cydezero import optimizers
from cydezero.dataloaders import SeqDataLoader
from cydezero.datasets import SinCurve
from cydezero.models import Model


class RecurrentRegressor(Model):
    """One recurrent layer (LSTM or plain RNN) and a linear read-out."""

    def __init__(self, hidden_size, out_size, cell='lstm'):
        super().__init__()
        self.rnn = L.LSTM(hidden_size) if cell == 'lstm' else L.RNN(hidden_size)
        self.fc = L.Linear(out_size)

    def reset_state(self):
        self.rnn.reset_state()

    def forward(self, x):
        return self.fc(self.rnn(x))


def train(model, loader, optimizer, bptt_length):
    """One epoch over ``loader``; returns the mean loss per mini-batch.

    The graph grows for ``bptt_length`` steps (and at the end of the epoch),
    is backpropagated, then cut behind the current state so the next stretch
    starts from it without reaching further back.
    """
    model.reset_state()
    loss, total, count = 0, 0.0, 0
    for x, t in loader:
        y = model(x)
        step_loss = F.mean_squared_error(y, t)
        loss += step_loss
        total += float(step_loss.data)
        count += 1
        if count % bptt_length == 0 or count == loader.max_iter:
            model.cleargrads()
            loss.backward()
            loss.unchain_backward()
            optimizer.update()
            loss = 0
    return total / count


def predict(model, xs):
    """One-step predictions for the sequence ``xs``, fed in one at a time."""
    model.reset_state()
    out = []
    with dezero.no_grad():
        for x in xs:
            y = model(np.array(x).reshape(1, 1))
            out.append(float(y.data[0, 0]))
    return np.array(out)


def plot(xs, pred, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(np.arange(len(xs)), xs, label='y = cos(x)')
    # pred[i] is the guess for xs[i + 1]
    ax.plot(np.arange(1, len(pred) + 1), pred, label='one-step prediction')
    ax.set_xlabel('step')
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--epochs', type=int, default=100)
    parser.add_argument('--cell', choices=['lstm', 'rnn'], default='lstm')
    parser.add_argument('--hidden', type=int, default=100)
    parser.add_argument('--bptt', type=int, default=30, help='truncation length')
    parser.add_argument('--batch-size', type=int, default=30)
    parser.add_argument('--seed', type=int, default=0,
                        help="seed for NumPy's generator (the noise and the weights)")
    parser.add_argument('--plot', metavar='PATH', help='save the prediction plot (PNG)')
    args = parser.parse_args(argv)

    np.random.seed(args.seed)
    train_set = SinCurve(train=True)
    loader = SeqDataLoader(train_set, batch_size=args.batch_size)
    model = RecurrentRegressor(args.hidden, 1, args.cell)
    optimizer = optimizers.Adam().setup(model)

    losses = []
    for epoch in range(1, args.epochs + 1):
        losses.append(train(model, loader, optimizer, args.bptt))
        print(f'| epoch {epoch} | loss {losses[-1]:.6f}', flush=True)
    print(f'first loss {losses[0]:.6f}, final loss {losses[-1]:.6f}')

    xs = np.cos(np.linspace(0, 4 * np.pi, 1000))
    pred = predict(model, xs)
    print(f'test (cosine) one-step MSE {np.mean((pred[:-1] - xs[1:]) ** 2):.6f}')
    if args.plot:
        plot(xs, pred, args.plot)
        print('wrote ' + args.plot)


if __name__ == '__main__':
    main()
