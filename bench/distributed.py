#!/usr/bin/env python
"""Data-parallel training over MPI (cydezero.distributed): time per epoch of
the mlp_large model (784-1000-10 ReLU MLP, float32, softmax cross entropy,
SGD) on 1 and on 2 processes, and what the communication costs per step.

    python bench/distributed.py                  # 1 and 2 processes
    python bench/distributed.py --ranks 1,2,4 --epochs 5 --examples 16384
    python bench/distributed.py --tiny           # seconds (smoke test)

Needs ``pip install ".[mpi]"``. The driver starts ``mpiexec -n N python -m
mpi4py bench/distributed.py --worker`` for each N, reads rank 0's JSON line,
prints a table and writes DIR/distributed.json (DIR: --out, default
bench/results).

The epoch is the same on every N (strong scaling): ``--examples`` examples
in steps of ``--batch`` examples in all, so each of N ranks computes on
batch / N examples per step and the ranks average their gradients (3.2 MB
of float32 for this model) in one allreduce per step. Reported per N:

* ``epoch_s``: median wall time of one epoch (rank 0), after a warm-up epoch;
* ``step_ms``: epoch_s / steps;
* ``mean_grad_ms``: median time per step in ``multi_node_mean_grad``: packing,
  the allreduce, unpacking, and any wait for the slower rank;
* ``allreduce_ms``: median time of the allreduce alone of a buffer that size,
  the ranks lined up by a barrier first (the wire cost, no waiting).

BLAS runs one thread per process (``--threads``), so that N processes use N
cores and the 1-process figure is one core's.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
THREAD_VARS = ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS')


def worker(args):
    import numpy as np
    from mpi4py import MPI

    import cydezero.functions as F
    from cydezero import DataLoader, Dataset, optimizers
    from cydezero.distributed import (
        create_communicator,
        create_multi_node_optimizer,
        scatter_dataset,
    )
    from cydezero.models import MLP

    comm = create_communicator()
    if args.batch % comm.size:
        raise SystemExit(f'--batch {args.batch} does not divide among {comm.size} ranks')
    data = None
    if comm.rank == 0:
        rng = np.random.default_rng(0)
        data = Dataset()
        data.data = rng.random((args.examples, 784), dtype=np.float32)
        data.label = rng.integers(0, 10, args.examples)
    share = scatter_dataset(data, comm)
    loader = DataLoader(share, args.batch // comm.size, shuffle=False)

    np.random.seed(0)
    model = MLP((args.hidden, 10), activation=F.relu)
    optimizer = create_multi_node_optimizer(optimizers.SGD(0.1), comm).setup(model)

    mean_grad_times = []
    mean_grad = comm.multi_node_mean_grad

    def timed_mean_grad(target):
        t0 = time.perf_counter()
        mean_grad(target)
        mean_grad_times.append(time.perf_counter() - t0)
    comm.multi_node_mean_grad = timed_mean_grad

    epoch_times, losses = [], []
    for epoch in range(args.epochs + 1):   # epoch 0: warm-up (and the broadcast)
        mean_grad_times.clear()
        comm.mpi_comm.Barrier()
        t0 = time.perf_counter()
        for x, t in loader:
            loss = F.softmax_cross_entropy(model(x), t)
            model.cleargrads()
            loss.backward()
            optimizer.update()
        comm.mpi_comm.Barrier()
        if epoch:
            epoch_times.append(time.perf_counter() - t0)
            losses.append(float(comm.allreduce(np.array(float(loss.data)), op='mean')))
            step_mean_grad = list(mean_grad_times)

    # The allreduce alone, on a buffer of the packed size.
    n = sum(p.data.size for p in model.params()) + len(list(model.params())) + 1
    buf = np.ones(n, np.float32)
    wire = []
    for _ in range(args.wire_reps):
        comm.mpi_comm.Barrier()
        t0 = time.perf_counter()
        comm.mpi_comm.Allreduce(MPI.IN_PLACE, buf)
        wire.append(time.perf_counter() - t0)

    if comm.rank == 0:
        steps = loader.max_iter
        epoch_s = statistics.median(epoch_times)
        print('RESULT ' + json.dumps({
            'ranks': comm.size, 'steps_per_epoch': steps,
            'examples_per_rank_and_step': args.batch // comm.size,
            'epoch_s': epoch_s, 'epoch_times_s': epoch_times,
            'step_ms': 1e3 * epoch_s / steps,
            'mean_grad_ms': 1e3 * statistics.median(step_mean_grad),
            'allreduce_ms': 1e3 * statistics.median(wire) if comm.size > 1 else 0.0,
            'gradient_bytes': 4 * n, 'last_step_loss': losses[-1],
        }), flush=True)


def driver(args):
    ranks = [int(r) for r in args.ranks.split(',')]
    mpiexec = os.path.join(os.path.dirname(sys.executable), 'mpiexec')
    if not os.path.exists(mpiexec):
        mpiexec = 'mpiexec'
    env = dict(os.environ, **{v: str(args.threads) for v in THREAD_VARS})
    passed = ['--epochs', args.epochs, '--examples', args.examples, '--batch', args.batch,
              '--hidden', args.hidden, '--wire-reps', args.wire_reps]
    rows = []
    for n in ranks:
        cmd = [mpiexec, '-n', str(n), sys.executable, '-m', 'mpi4py', os.path.abspath(__file__),
               '--worker', *map(str, passed)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                              timeout=args.timeout, check=False)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('RESULT ')]
        if proc.returncode or not lines:
            sys.exit(f'{" ".join(cmd)} failed ({proc.returncode}):\n'
                     f'{proc.stdout[-2000:]}{proc.stderr[-3000:]}')
        rows.append(json.loads(lines[0][len('RESULT '):]))

    base = rows[0]['epoch_s']
    print(f'mlp_large data-parallel: 784-{args.hidden}-10 ReLU MLP, float32, '
          f'{args.examples} examples per epoch, {args.batch} per step in all, '
          f'BLAS threads per process: {args.threads}')
    print(f'{"ranks":>5} {"epoch s":>8} {"speed-up":>8} {"step ms":>8} '
          f'{"mean_grad ms":>12} {"allreduce ms":>12}')
    for r in rows:
        print(f'{r["ranks"]:>5} {r["epoch_s"]:>8.3f} {base / r["epoch_s"]:>8.2f} '
              f'{r["step_ms"]:>8.2f} {r["mean_grad_ms"]:>12.2f} {r["allreduce_ms"]:>12.2f}')
    import mpi4py
    import numpy
    meta = {'python': platform.python_version(), 'numpy': numpy.__version__,
            'mpi4py': mpi4py.__version__, 'cpu_count': os.cpu_count(),
            'load_average': os.getloadavg(), 'settings': vars(args)}
    try:
        from mpi4py import MPI
        meta['mpi'] = MPI.Get_library_version().splitlines()[0].strip()
    except Exception as e:  # noqa: BLE001 - reported, not fatal
        meta['mpi'] = f'unknown ({e})'
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, 'distributed.json')
    with open(path, 'w') as f:
        json.dump({'meta': meta, 'results': rows}, f, indent=1)
    print('wrote ' + path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--ranks', default='1,2', help='process counts to run (default 1,2)')
    p.add_argument('--epochs', type=int, default=3, help='timed epochs after a warm-up one')
    p.add_argument('--examples', type=int, default=8192)
    p.add_argument('--batch', type=int, default=256, help='examples per step, all ranks')
    p.add_argument('--hidden', type=int, default=1000)
    p.add_argument('--threads', type=int, default=1, help='BLAS threads per process')
    p.add_argument('--wire-reps', type=int, default=30)
    p.add_argument('--timeout', type=float, default=600)
    p.add_argument('--out', default=os.path.join(HERE, 'results'))
    p.add_argument('--tiny', action='store_true', help='smoke-test sizes')
    p.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.tiny:
        args.epochs, args.examples, args.batch, args.hidden, args.wire_reps = 1, 64, 16, 32, 3
    if args.worker:
        worker(args)
    else:
        driver(args)


if __name__ == '__main__':
    main()
