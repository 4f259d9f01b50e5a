"""Importing cydezero.distributed without mpi4py says how to install the
extra; with it, a program started without mpiexec is a world of one rank.
Both run in a fresh interpreter, outside this run's MPI job (if any)."""
import os
import subprocess
import sys

import pytest


def python(code):
    # Without the launcher's variables, or the child would try to join
    # this job as one of its ranks.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(('PMI', 'PMIX', 'HYDRA', 'HYDI', 'MPIR', 'MPICH', 'OMPI'))}
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=120, env=env, check=False)


def test_without_mpi4py_the_import_says_how_to_install_the_extra():
    proc = python('import sys; sys.modules["mpi4py"] = None\n'
                  'import cydezero.distributed')
    assert proc.returncode != 0
    assert 'ImportError: cydezero.distributed needs mpi4py' in proc.stderr, proc.stderr
    assert 'pip install "cydezero[mpi]"' in proc.stderr
    assert 'mpiexec -n 2 python -m mpi4py' in proc.stderr


def test_without_mpiexec_a_program_is_a_world_of_one_rank():
    pytest.importorskip('mpi4py.MPI', reason='mpi4py is not installed (pip install ".[test,mpi]")')
    proc = python(
        'import numpy as np\n'
        'import cydezero.layers as L\n'
        'from cydezero import Variable, optimizers\n'
        'from cydezero.distributed import create_communicator, '
        'create_multi_node_optimizer, scatter_dataset\n'
        'comm = create_communicator()\n'
        'model = L.Linear(2, in_size=3)\n'
        'opt = create_multi_node_optimizer(optimizers.SGD(1.0), comm).setup(model)\n'
        'before = model.W.data.copy()\n'
        'for _ in range(2):\n'
        '    model.cleargrads()\n'
        '    (model(np.ones((1, 3), np.float32)) ** 2).sum().backward()\n'
        '    opt.update()\n'
        'print(comm.rank, comm.size, len(scatter_dataset(list(range(5)), comm)),\n'
        '      bool((model.W.data != before).any()))\n')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ['0', '1', '5', 'True']
