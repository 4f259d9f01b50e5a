#!/usr/bin/env python
"""Two builds of cydezero, side by side, on the bench's DeZero programs.

    python bench/ab.py OLD NEW --only mlp_large,chain [--reps 6] [--runs 3]
                       [--n N] [--blas-threads 1]

OLD and NEW are directories from which ``import cydezero`` finds a build:
a checkout's ``src`` after ``python setup.py build_ext --inplace`` (for
example a ``git worktree`` of the older commit), or a site-packages. Each
rep starts one process per build, the two alternating, so both see the same
load on a busy machine; a process runs the workload once to warm up, then
``--runs`` times, each on inputs made outside the timed region, and reports
its fastest run. Printed per workload: the median over reps of each build's
time per run (thread CPU time, and wall time for the BLAS workloads) and
NEW / OLD (below 1: NEW is faster).

It answers "did this change make it faster" on a machine whose noise is
larger than the change; ``run.py`` answers "how does cydezero compare with
its peers".
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import run as bench  # noqa: E402 (found through the path set just above)

# What each process runs: argv = build directory, workload, n, runs.
CHILD = r'''
import json, os, sys
build, name, n, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sys.path.insert(0, build)
sys.path.insert(0, {here!r})
import run as bench
import workloads as W
dz = W.load_dz("cydezero")
where = os.path.realpath(dz.lib.__file__)
if not where.startswith(os.path.realpath(build) + os.sep):
    sys.exit("cydezero was imported from %s, not from %s" % (where, build))
spec = bench.WORKLOADS[name]
prepare = bench.make_runner(spec, "cydezero", dz, n)
bench.timed(prepare)
times = [bench.timed(prepare)[0] for _ in range(runs)]
print(json.dumps({{c: min(t[c] for t in times) for c in ("thread", "wall")}}))
'''.format(here=HERE)


def run_child(build, name, n, runs, env):
    out = subprocess.run([sys.executable, "-c", CHILD, build, name, str(n), str(runs)],
                         capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"{name} on {build} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(old, new, name, n, reps, runs, env):
    """{clock: (old median s, new median s)} over reps, the builds alternating."""
    got = {"old": [], "new": []}
    for rep in range(reps):
        order = (("old", old), ("new", new)) if rep % 2 == 0 else (("new", new), ("old", old))
        for tag, build in order:
            got[tag].append(run_child(build, name, n, runs, env))
    return {c: (statistics.median(r[c] for r in got["old"]),
                statistics.median(r[c] for r in got["new"]))
            for c in bench.clocks(bench.WORKLOADS[name])}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old", help="directory holding the first build of cydezero")
    ap.add_argument("new", help="directory holding the second build")
    ap.add_argument("--only", required=True,
                    help="comma-separated workloads: " + ",".join(bench.WORKLOADS))
    ap.add_argument("--reps", type=int, default=6, help="processes per build (default 6)")
    ap.add_argument("--runs", type=int, default=3,
                    help="timed runs per process, the fastest kept (default 3)")
    ap.add_argument("--n", type=int, default=None,
                    help="the workload's size (default: its first full-run size)")
    ap.add_argument("--blas-threads", type=int, default=None,
                    help="OPENBLAS_NUM_THREADS and OMP_NUM_THREADS for both builds")
    args = ap.parse_args(argv)
    names = args.only.split(",")
    unknown = [x for x in names if x not in bench.WORKLOADS]
    if unknown:
        ap.error("unknown workload(s): " + ", ".join(unknown))
    for d in (args.old, args.new):
        if not os.path.isdir(d):
            ap.error(f"{d} is not a directory")
    env = dict(os.environ)
    if args.blas_threads is not None:
        env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = str(args.blas_threads)
    print(f"old: {args.old}\nnew: {args.new}\n"
          f"medians over {args.reps} processes per build, fastest of {args.runs} runs each")
    for name in names:
        n = args.n or bench.WORKLOADS[name]["sizes"][0][0]
        for clock, (o, w) in compare(args.old, args.new, name, n, args.reps,
                                     args.runs, env).items():
            print(f"{name:18s} n={n:<8d} {clock:6s} old {bench.fmt_t(o):>9s}  "
                  f"new {bench.fmt_t(w):>9s}  new/old {w / o:.3f}")


if __name__ == "__main__":
    main()
