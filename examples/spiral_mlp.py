"""Classify the spiral data set with a two-layer MLP, as in steps 48-50 of
"Deep Learning from Scratch 3", with cydezero standing in for DeZero.

Prints one progress line per epoch (a bar over the mini-batches, then the
training and test loss and accuracy) and writes ``spiral_loss.png`` (loss
curves) and ``spiral_boundary.png`` (decision regions with the training
points) into the output directory.

    python examples/spiral_mlp.py [OUTDIR] [--epochs 300] [--batch-size 30]
                                  [--hidden 10] [--lr 1.0]
"""
import argparse
import os
import sys

import numpy as np

import cydezero as dezero
import cydezero.functions as F
from cydezero import DataLoader, optimizers
from cydezero.datasets import Spiral
from cydezero.models import MLP


def pyplot():
    """matplotlib.pyplot drawing into files only (the Agg backend)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def progress(epoch, max_epoch, done, total, width=20):
    """The bar for ``done`` of ``total`` mini-batches of one epoch."""
    filled = width * done // total
    return 'epoch {:{w}d}/{} [{}{}]'.format(
        epoch, max_epoch, '#' * filled, '.' * (width - filled), w=len(str(max_epoch)))


def run_epoch(model, loader, optimizer=None, bar=None):
    """Mean loss and accuracy over one pass of ``loader``; trains when an
    optimizer is given, else evaluates without building graphs."""
    sum_loss, sum_acc, n = 0.0, 0.0, 0
    for i, (x, t) in enumerate(loader):
        if optimizer is None:
            with dezero.no_grad():
                y = model(x)
                loss = F.softmax_cross_entropy(y, t)
        else:
            y = model(x)
            loss = F.softmax_cross_entropy(y, t)
            model.cleargrads()
            loss.backward()
            optimizer.update()
        acc = F.accuracy(y, t)
        sum_loss += float(loss.data) * len(t)
        sum_acc += float(acc.data) * len(t)
        n += len(t)
        if bar is not None:
            bar(i + 1, loader.max_iter)
    return sum_loss / n, sum_acc / n


def plot_losses(train_losses, test_losses, path):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = np.arange(1, len(train_losses) + 1)
    ax.plot(epochs, train_losses, label='train')
    ax.plot(epochs, test_losses, label='test')
    ax.set_xlabel('epoch')
    ax.set_ylabel('softmax cross entropy')
    ax.set_title('Spiral: MLP loss')
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_boundary(model, x, t, path, h=0.01):
    """Colour the plane by the class the model predicts, with the points on top."""
    x_min, x_max = x[:, 0].min() - 0.1, x[:, 0].max() + 0.1
    y_min, y_max = x[:, 1].min() - 0.1, x[:, 1].max() + 0.1
    xx, yy = np.meshgrid(np.arange(x_min, x_max, h), np.arange(y_min, y_max, h))
    grid = np.c_[xx.ravel(), yy.ravel()].astype(np.float32)
    with dezero.no_grad():
        score = model(grid)
    predicted = np.argmax(score.data, axis=1).reshape(xx.shape)

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.contourf(xx, yy, predicted, levels=[-0.5, 0.5, 1.5, 2.5], alpha=0.3,
                colors=['tab:blue', 'tab:orange', 'tab:green'])
    for c, marker in zip(range(3), 'ox^'):
        ax.scatter(x[t == c, 0], x[t == c, 1], s=20, marker=marker, label=f'class {c}')
    ax.set_xlim(x_min, x_max)
    ax.set_ylim(y_min, y_max)
    ax.set_title('Spiral: decision regions')
    ax.legend(loc='upper right', fontsize='small')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('outdir', nargs='?', default='.',
                        help='directory for the PNG files (default: current directory)')
    parser.add_argument('--epochs', type=int, default=300)
    parser.add_argument('--batch-size', type=int, default=30)
    parser.add_argument('--hidden', type=int, default=10)
    parser.add_argument('--lr', type=float, default=1.0)
    args = parser.parse_args(argv)
    os.makedirs(args.outdir, exist_ok=True)

    # As in the book: the data sets seed NumPy's generator, so every run
    # (and DeZero itself) prints the same numbers.
    train_set = Spiral(train=True)
    test_set = Spiral(train=False)
    train_loader = DataLoader(train_set, args.batch_size)
    test_loader = DataLoader(test_set, args.batch_size, shuffle=False)

    model = MLP((args.hidden, 3))
    optimizer = optimizers.SGD(args.lr).setup(model)

    tty = sys.stdout.isatty()
    train_losses, test_losses = [], []
    for epoch in range(1, args.epochs + 1):
        def bar(done, total, epoch=epoch):
            if tty:
                print('\r' + progress(epoch, args.epochs, done, total), end='', flush=True)
        train_loss, train_acc = run_epoch(model, train_loader, optimizer, bar)
        test_loss, test_acc = run_epoch(model, test_loader)
        train_losses.append(train_loss)
        test_losses.append(test_loss)
        print(('\r' if tty else '') + progress(epoch, args.epochs, 1, 1)
              + f' train loss {train_loss:.4f} acc {train_acc:.4f}'
              f' | test loss {test_loss:.4f} acc {test_acc:.4f}',
              end='\n', flush=True)

    loss_png = os.path.join(args.outdir, 'spiral_loss.png')
    boundary_png = os.path.join(args.outdir, 'spiral_boundary.png')
    plot_losses(train_losses, test_losses, loss_png)
    plot_boundary(model, train_set.data, train_set.label, boundary_png)
    print(f'first loss {train_losses[0]:.4f}, final loss {train_losses[-1]:.4f}')
    print('wrote ' + loss_png)
    print('wrote ' + boundary_png)


if __name__ == '__main__':
    main()
