"""Classify the spiral data set with a two-layer MLP trained data-parallel
over MPI: every process (rank) holds the model and trains it on its own
share of the data, and the ranks average their gradients at every step, as
ChainerMN did for Chainer. Rank 0 prints one line per epoch.

    pip install ".[mpi]"
    mpiexec -n 2 python -m mpi4py examples/spiral_mlp_mpi.py [--epochs 300]
                                  [--batch-size 15] [--hidden 10] [--lr 1.0]

``--batch-size`` is per rank: on 2 ranks each step sees 2 x 15 examples.
``python -m mpi4py`` makes an error on one rank end the whole job instead of
leaving the other ranks waiting. Without ``mpiexec`` it runs as one rank.
"""
import argparse
import time

import numpy as np

import cydezero as dezero
import cydezero.functions as F
from cydezero import DataLoader, optimizers
from cydezero.datasets import Spiral
from cydezero.distributed import (
    create_communicator,
    create_multi_node_optimizer,
    scatter_dataset,
)
from cydezero.models import MLP


def run_epoch(comm, model, loader, optimizer=None):
    """Mean loss and accuracy over every rank's pass of its ``loader``;
    trains when an optimizer is given."""
    totals = np.zeros(3)  # loss sum, correct count, examples
    for x, t in loader:
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
        totals += (float(loss.data) * len(t), float(F.accuracy(y, t).data) * len(t), len(t))
    loss_sum, correct, n = comm.allreduce(totals)
    return loss_sum / n, correct / n


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--epochs', type=int, default=300)
    parser.add_argument('--batch-size', type=int, default=15, help='examples per rank and step')
    parser.add_argument('--hidden', type=int, default=10)
    parser.add_argument('--lr', type=float, default=1.0)
    args = parser.parse_args(argv)

    comm = create_communicator()
    # Rank 0 makes the data sets and hands every rank an equal share (the
    # others' argument is not read).
    train = scatter_dataset(Spiral(train=True) if comm.rank == 0 else None, comm,
                            shuffle=True, seed=0)
    test = scatter_dataset(Spiral(train=False) if comm.rank == 0 else None, comm)
    train_loader = DataLoader(train, args.batch_size)
    test_loader = DataLoader(test, args.batch_size, shuffle=False)

    model = MLP((args.hidden, 3))
    # The first update copies rank 0's parameters to every rank; the later
    # ones average the gradients, then step.
    optimizer = create_multi_node_optimizer(optimizers.SGD(args.lr), comm).setup(model)

    if comm.rank == 0:
        print(f'{comm.size} rank(s), {len(train)} training examples each, '
              f'{args.batch_size} per rank and step', flush=True)
    start = time.perf_counter()
    losses = []
    for epoch in range(1, args.epochs + 1):
        train_loss, train_acc = run_epoch(comm, model, train_loader, optimizer)
        test_loss, test_acc = run_epoch(comm, model, test_loader)
        losses.append(train_loss)
        if comm.rank == 0:
            print(f'epoch {epoch:{len(str(args.epochs))}d}/{args.epochs}'
                  f' train loss {train_loss:.4f} acc {train_acc:.4f}'
                  f' | test loss {test_loss:.4f} acc {test_acc:.4f}', flush=True)
    if comm.rank == 0:
        print(f'first loss {losses[0]:.4f}, final loss {losses[-1]:.4f}'
              f' ({time.perf_counter() - start:.2f} s)', flush=True)
    return losses


if __name__ == '__main__':
    main()
