"""examples/spiral_mlp_mpi.py, run inside this job by every rank: rank 0
prints, the others do not, every rank sees the same losses, and the loss
goes down."""
import importlib.util
import os
import re

import pytest

pytest.importorskip('mpi4py.MPI', reason='mpi4py is not installed (pip install ".[test,mpi]")')

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), 'examples', 'spiral_mlp_mpi.py')


def test_spiral_mlp_mpi_trains_and_only_rank_0_prints(comm, agree, capsys):
    spec = importlib.util.spec_from_file_location('spiral_mlp_mpi', EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    losses = example.main(['--epochs', '15'])
    out = capsys.readouterr().out
    agree(comm.mpi_comm.allgather(losses) == [losses] * comm.size, 'ranks disagree')
    agree(losses[-1] < losses[0] - 0.05, f'the loss did not go down: {losses}')
    if comm.rank == 0:
        epochs = re.findall(r'^epoch +(\d+)/15 train loss', out, re.M)
        agree(epochs == [str(i) for i in range(1, 16)] and 'first loss' in out, out)
    else:
        agree(out == '', f'rank {comm.rank} printed {out!r}')
