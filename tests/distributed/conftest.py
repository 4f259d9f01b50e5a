"""The data-parallel tests: every rank runs the same tests in the same order
and every check is rank-symmetric (``agree``), so a failure on one rank
fails the test on all of them instead of leaving the others waiting in the
next collective call.

Run them on 2 processes (and 1), each run wrapped in a timeout, as the mpi
leg of .ci/run does::

    CYDEZERO_MPI_WORLD=2 timeout 300 mpiexec -n 2 python -m mpi4py -m pytest \\
        -p no:cacheprovider tests/distributed

``python -m mpi4py`` aborts the whole job on an uncaught exception.
``CYDEZERO_MPI_WORLD=n`` says the run is meant to be a world of n ranks: the
session then stops at once if mpi4py is missing or the world has another
size (an ``mpiexec`` of another MPI library starts n worlds of one rank
each, where every test would pass alone), and a skipped test fails.

Under a plain ``python -m pytest`` (the other legs, which do not install
mpi4py) the modules that need MPI are skipped, saying so; with mpi4py
installed they run as a world of one rank.
"""
import os

import numpy as np
import pytest

WORLD = os.environ.get('CYDEZERO_MPI_WORLD')

if WORLD is not None:
    from mpi4py import MPI  # an ImportError here stops the session

    if MPI.COMM_WORLD.Get_size() != int(WORLD):
        raise RuntimeError(
            f'CYDEZERO_MPI_WORLD={WORLD} but this process is in a world of '
            f'{MPI.COMM_WORLD.Get_size()} rank(s): is mpiexec from the MPI library '
            'mpi4py was built against (the venv\'s, from the mpich wheel)?')


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if WORLD is not None and report.skipped:
        # Under mpiexec nothing may pass by not running.
        report.outcome = 'failed'
        report.longrepr = f'skipped under CYDEZERO_MPI_WORLD={WORLD}: {report.longrepr}'


@pytest.fixture(scope='session')
def comm():
    from cydezero.distributed import create_communicator
    return create_communicator()


@pytest.fixture(scope='session')
def agree(comm):
    """``agree(ok, message)``: fail on every rank if ``ok`` is false on any.

    A plain ``assert`` that failed on one rank only would send that rank on
    to the next test while the others wait for it in a collective call.
    """
    def check(ok, message=''):
        everyone = comm.mpi_comm.allgather((bool(ok), str(message)))
        bad = [f'rank {r}: {m}' for r, (good, m) in enumerate(everyone) if not good]
        assert not bad, '; '.join(bad)
    return check


@pytest.fixture(scope='session')
def same_everywhere(comm, agree):
    """``same_everywhere(arrays)``: every rank holds bitwise rank 0's arrays."""
    def check(arrays, what='arrays'):
        mine = [np.ascontiguousarray(a) for a in arrays]
        root = comm.bcast_obj(mine)
        ok = len(root) == len(mine) and all(
            a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
            for a, b in zip(root, mine))
        agree(ok, f'{what} differ from rank 0\'s')
    return check
