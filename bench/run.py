#!/usr/bin/env python
"""Side-by-side benchmark: cydezero vs DeZero 0.0.13 vs PyTorch eager vs a
hand-written NumPy floor.

    python bench/run.py                 # full run (a few minutes on 2 cores)
    python bench/run.py --quick         # core subset, small sizes (< 1 min)
    python bench/run.py --quick --tiny  # smoke test sizes (seconds)
    python bench/run.py --only chain,deep --reps 9 --out /tmp/b

Writes DIR/latest.json and DIR/scaling.png. DIR defaults to bench/results
for a full run (its latest.json is tracked: the figures the README quotes)
and to bench/results/<quick|tiny|partial> (git-ignored) for any other, so a
quick or partial run never dirties the checkout.
See bench/README.md for what each workload is and how to read the ratios.
"""
import argparse
import functools
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc

import numpy as np

try:
    import resource     # minor page faults per run (not on Windows)
except ImportError:
    resource = None

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import rss  # noqa: E402 (found through the path set just above)
import workloads as W  # noqa: E402

PEERS = ("cydezero", "dezero", "torch", "numpy")

# name -> spec.  sizes: (full, quick, tiny).  overhead: single-threaded
# (torch runs 1 thread), timed in thread CPU time; otherwise BLAS does most
# of the work on every core, timed in wall time and thread CPU time (see
# CLOCKS).  data / dz_data: makes a run's inputs, untimed (workloads.py).
# rtol: peers must agree on the returned value or it is flagged.
WORKLOADS = {
    "chain": {
        "desc": "2000 links of y = (sin(y) + y) * 0.5 on a 0-d float64, "
             "forward+backward",
        "dz": W.dz_chain, "torch": W.torch_chain, "numpy": W.np_chain,
        "sizes": ([2000], [2000], [50]), "rtol": 1e-9, "overhead": True, "quick": True},
    "wide": {
        "desc": "x feeds n branches sin(x * c_i) summed by a chain of adds",
        "dz": W.dz_wide, "torch": W.torch_wide, "numpy": W.np_wide,
        "data": W.wide_data,
        "sizes": ([1500, 3000, 6000], [500, 1500], [20, 40]), "rtol": 1e-9,
        "overhead": True, "quick": True},
    "deep": {
        "desc": "n multiplications y = y * 1.0000001, forward+backward; "
             "plus bytes/node of the live graph (tracemalloc; RSS in a fresh "
             "process at each peer's largest n)",
        "dz": W.dz_deep, "torch": W.torch_deep, "numpy": W.np_deep,
        "sizes": ([1000, 10000, 200000, 1000000], [1000, 10000], [100, 1000]),
        "cydezero_only_above": 200000, "rtol": 1e-9, "overhead": True, "quick": True,
        "memory": True, "rss": True},
    "rosenbrock": {
        "desc": "n gradient-descent steps on Rosenbrock, scalar Variables, "
             "x0=0, x1=2, lr=0.001",
        "dz": W.dz_rosenbrock, "torch": W.torch_rosenbrock, "numpy": W.np_rosenbrock,
        "sizes": ([2000], [500], [20]), "rtol": 1e-9, "overhead": True, "quick": True},
    "rosenbrock_simple": {
        "desc": "rosenbrock on core_simple, the book's steps 23-32 engine "
             "(x.grad an ndarray); torch and the floor as for rosenbrock",
        "dz": W.dz_rosenbrock_simple, "torch": W.torch_rosenbrock,
        "numpy": W.np_rosenbrock,
        "sizes": ([2000], [500], [20]), "rtol": 1e-9, "overhead": True, "quick": True},
    "higher_order": {
        "desc": "n-th derivative (n=5) of tanh at x=1: repeated backward on "
             "x.grad with create_graph",
        "dz": W.dz_higher, "torch": W.torch_higher, "numpy": W.np_higher,
        "sizes": ([5], [5], [3]), "rtol": 1e-9, "overhead": True, "quick": True},
    "newton": {
        "desc": "n steps of the book's Newton's method with second derivatives "
             "(create_graph) on x^4 - 2x^2 from x=2",
        "dz": W.dz_newton, "torch": W.torch_newton, "numpy": W.np_newton,
        "sizes": ([200], [50], [3]), "rtol": 1e-9, "overhead": True, "quick": True},
    "mlp_small": {
        "desc": "1-10-1 sigmoid MLP, MSE, n SGD steps (lr 0.2) on 100 points",
        "dz": W.dz_sigmoid_mlp, "torch": W.torch_sigmoid_mlp,
        "numpy": W.np_sigmoid_mlp, "data": W.mlp_small_data,
        "sizes": ([1000], [200], [5]), "rtol": 1e-6, "overhead": True, "quick": True},
    "mlp_large": {
        "desc": "784-1000-10 ReLU MLP, softmax CE, batch 256 float32, n SGD "
             "steps (compute bound: torch uses all cores)",
        "dz": W.dz_mlp_large, "torch": W.torch_mlp_large, "numpy": W.np_mlp_large,
        "data": W.mlp_large_data,
        "sizes": ([20], [3], [1]), "rtol": 1e-3, "overhead": False, "quick": False,
        "step_memory": True},
    "mlp_large_f64": {
        "desc": "784-1000-10 sigmoid MLP, MSE against one-hot targets, batch "
             "256 float64, n SGD steps (lr 0.001; compute bound: torch uses "
             "all cores)",
        "dz": W.dz_sigmoid_mlp, "torch": W.torch_sigmoid_mlp,
        "numpy": W.np_sigmoid_mlp, "data": W.mlp_large_f64_data,
        "sizes": ([20], [3], [1]), "rtol": 1e-6, "overhead": False, "quick": False},
    "conv": {
        "desc": "conv3x3(16, pad 1)-relu-maxpool2-linear(10), batch 32x1x28x28 "
             "float32, n SGD steps",
        "dz": W.dz_conv, "torch": W.torch_conv, "numpy": None,
        "data": W.conv_data,
        "sizes": ([10], [2], [1]), "rtol": 1e-3, "overhead": False, "quick": False},
    "spiral": {
        "desc": "MLP((10, 3)) + Adam + DataLoader(batch 30) over Spiral (300 "
             "points), n epochs",
        "dz": W.dz_spiral, "torch": W.torch_spiral, "numpy": W.np_spiral,
        "data": W.spiral_data, "dz_data": W.dz_spiral_data,
        "sizes": ([30], [5], [1]), "rtol": None, "overhead": True, "quick": True},
}


# ----------------------------------------------------------------------------
# peers
# ----------------------------------------------------------------------------

def load_peer(name):
    """(handle, version) of one peer; raises what its import raises."""
    if name in ("cydezero", "dezero"):
        ns = W.load_dz(name)
        return ns, ns.version
    if name == "torch":
        import torch
        return torch, torch.__version__
    return np, np.__version__


def load_peers():
    """name -> (handle or None, version or reason)."""
    peers = {}
    for name in PEERS:
        try:
            peers[name] = load_peer(name)
        except Exception as e:  # noqa: BLE001 (ImportError or a broken install)
            peers[name] = (None, f"missing ({type(e).__name__}: {e})")
    return peers


def runs_at(spec, peer, n):
    """Whether `peer` runs the workload at size n (some sizes are for
    cydezero only)."""
    lim = spec.get("cydezero_only_above")
    return lim is None or n <= lim or peer == "cydezero"


def make_runner(spec, peer, handle, n):
    """A zero-argument callable that makes one run's inputs and returns the
    zero-argument callable to time; or raise W.Unavailable."""
    kind = "dz" if peer in ("cydezero", "dezero") else peer
    fn = spec[kind]
    if fn is None:
        raise W.Unavailable("n/a (no hand-written floor for this workload)")
    args = (n,) if kind == "numpy" else (handle, n)
    if kind == "dz" and "dz_data" in spec:
        return lambda: functools.partial(fn, *args, spec["dz_data"](handle, n))
    if "data" in spec:
        return lambda: functools.partial(fn, *args, spec["data"](n))
    return lambda: functools.partial(fn, *args)


# ----------------------------------------------------------------------------
# machine description
# ----------------------------------------------------------------------------

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_info():
    try:
        import threadpoolctl
        return [{k: d.get(k) for k in ("internal_api", "version",
                                        "num_threads", "architecture")}
                for d in threadpoolctl.threadpool_info()]
    except ImportError:
        pass
    try:
        cfg = np.show_config(mode="dicts")
        deps = cfg.get("Build Dependencies", {})
        return {k: {kk: deps[k].get(kk) for kk in ("name", "version")}
                for k in ("blas", "lapack") if k in deps}
    except Exception as e:  # noqa: BLE001 (reported, not raised)  # older numpy: no mode=
        return f"unknown ({e})"


def git_rev():
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"],
                             cwd=HERE, capture_output=True, text=True,
                             timeout=10, check=False)
        return out.stdout.strip() or None
    except Exception:  # noqa: BLE001 (no git: no revision)
        return None


def machine_info(peers):
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "numpy": np.__version__,
        "blas": blas_info(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "peers": {k: v[1] for k, v in peers.items()},
        "git": git_rev(),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


# ----------------------------------------------------------------------------
# measuring
# ----------------------------------------------------------------------------

def quantiles(ts):
    ts = sorted(ts)
    if len(ts) >= 4:
        q1, _, q3 = statistics.quantiles(ts, n=4, method="inclusive")
    else:
        q1, q3 = ts[0], ts[-1]
    return {"median_s": statistics.median(ts), "min_s": ts[0], "max_s": ts[-1],
                "q1_s": q1, "q3_s": q3}


def set_torch_threads(torch, spec):
    if torch is not None:
        torch.set_num_threads(1 if spec["overhead"] else (os.cpu_count() or 1))


GC_DURING_TIMING = True

# Every clock is read around every timed run. Thread CPU time is what a
# single-threaded program costs, and other processes on a busy machine do
# not inflate it (wall time counts the time they hold the core); it misses
# work done on other threads, so BLAS workloads, whose work is spread over
# every core, are given in wall time first. Process CPU time is kept in the
# JSON as the check that a workload given in thread time ran on one thread.
CLOCKS = {
    "thread": "time.thread_time(): CPU time (user + system) of the thread "
              "that runs the program",
    "wall": "time.perf_counter(): elapsed time",
    "process": "time.process_time(): CPU time of all the process's threads "
               "(JSON only; equal to thread when the program ran on one "
               "thread)",
}


def clocks(spec):
    """The clocks a workload's figures are given in, the headline first."""
    return ("thread",) if spec["overhead"] else ("wall", "thread")


def minor_faults():
    """The process's minor page faults so far (None without `resource`)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt if resource else None


def timed(prepare, faults=None):
    """Make one run's inputs (untimed), then run it: ({clock: s}, value).
    With a list for `faults`, the run's minor page faults are appended to
    it: on a virtual machine each can cost microseconds, and a run that
    keeps a big graph alive touches fresh pages the floor never does."""
    run = prepare()
    gc.collect()
    if not GC_DURING_TIMING:
        gc.disable()
    try:
        f0 = minor_faults()
        w0 = time.perf_counter()
        p0 = time.process_time()
        c0 = time.thread_time()
        value = run()
        c1 = time.thread_time()
        p1 = time.process_time()
        w1 = time.perf_counter()
        f1 = minor_faults()
    finally:
        gc.enable()
    if faults is not None and f0 is not None:
        faults.append(f1 - f0)
    return {"thread": c1 - c0, "wall": w1 - w0, "process": p1 - p0}, value


def measure_memory(handle, n):
    """Bytes per node of the live deep graph (forward done, no backward)."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        x, y = W.dz_deep_forward(handle, n)
        cur = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del x, y
    gc.collect()
    return (cur - base) / n


def measure_rss(row, peer, handle, n):
    """Put the RSS bytes/node of peer's live deep graph of n nodes, made in
    a fresh process, in `row` (nothing without /proc/self/statm); a failure
    is reported in `rss_error`, never raised."""
    try:
        per_node = rss.measure(peer, handle, n)
    except Exception as e:  # noqa: BLE001 (reported, not raised)
        row["rss_error"] = str(e)
        print(f"  RSS of {peer}'s deep graph not measured: {e}", flush=True)
        return
    if per_node is not None:
        row["rss_bytes_per_node"] = per_node


def measure_step_peak(prepare):
    """Peak traced bytes above the start while one training step's inputs
    are made and the step runs (its data, parameters, graph and gradients).
    NumPy reports its buffers to tracemalloc, so the floor is measured too;
    PyTorch's are invisible."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        prepare()()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    gc.collect()
    return peak - base


def run_workload(name, spec, size_idx, peers, reps, do_memory):
    rows = []
    torch = peers["torch"][0]
    headline = clocks(spec)[0]
    for n in spec["sizes"][size_idx]:
        runners, results = {}, {}
        for peer in PEERS:
            handle, info = peers[peer]
            row = {"workload": name, "n": n, "peer": peer, "clock": headline}
            results[peer] = row
            if handle is None:
                row.update(status="missing", reason=info)
                continue
            if not runs_at(spec, peer, n):
                row.update(status="skipped", reason="size above {} runs for cydezero "
                           "only".format(spec["cydezero_only_above"]))
                continue
            try:
                runners[peer] = make_runner(spec, peer, handle, n)
            except W.Unavailable as e:
                row.update(status="n/a" if str(e).startswith("n/a")
                           else "not yet available", reason=str(e))
        set_torch_threads(torch, spec)
        # warm-up (also the first value, and how long one run takes)
        slowest = 0.0
        for peer, fn in list(runners.items()):
            row = results[peer]
            try:
                dt, value = timed(fn)
            except W.Unavailable as e:
                row.update(status="not yet available", reason=str(e))
                del runners[peer]
                continue
            except Exception as e:  # noqa: BLE001 (reported, not raised)
                row.update(status="error",
                           reason=f"{type(e).__name__}: {e}")
                del runners[peer]
                continue
            if not spec["overhead"]:
                # compute bound: a second warm-up for BLAS threads, page
                # faults of the big buffers, torch's allocator
                dt, value = timed(fn)
            row.update(status="ok", value=value, times_s=[], faults=[],
                       by_clock={c: {"times_s": []} for c in CLOCKS})
            slowest = max(slowest, dt["wall"])
        r = reps
        if slowest > 2.0:
            r = min(r, 3)
        elif slowest > 0.5:
            r = min(r, 5)
        # interleave: every rep runs each peer once, in a rotating order
        order = list(runners)
        for i in range(r):
            k = i % len(order) if order else 0
            for peer in order[k:] + order[:k]:
                row = results[peer]
                try:
                    dt, _ = timed(runners[peer], row["faults"])
                except Exception as e:  # noqa: BLE001 (reported, not raised)
                    row.update(status="error",
                               reason=f"{type(e).__name__}: {e}")
                    order = [p for p in order if p != peer]
                    continue
                row["times_s"].append(dt[headline])
                for c, t in dt.items():
                    row["by_clock"][c]["times_s"].append(t)
        for peer in runners:
            row = results[peer]
            if row["status"] == "ok":
                row.update(reps=len(row["times_s"]),
                           **quantiles(row["times_s"]))
                if row["faults"]:
                    row["faults_median"] = statistics.median(row["faults"])
                for stats in row["by_clock"].values():
                    stats.update(quantiles(stats["times_s"]))
        if do_memory and spec.get("memory"):
            for peer in ("cydezero", "dezero"):
                row = results[peer]
                if row.get("status") == "ok":
                    row["bytes_per_node"] = measure_memory(peers[peer][0], n)
        if do_memory and spec.get("rss"):
            # once per peer, at the largest size it runs: RSS grows by whole
            # pages and arenas, so only big graphs give a per-node figure
            for peer in rss.FORWARD:
                largest = max(m for m in spec["sizes"][size_idx] if runs_at(spec, peer, m))
                if n == largest and results[peer].get("status") == "ok":
                    measure_rss(results[peer], peer, peers[peer][0], n)
        if do_memory and spec.get("step_memory"):
            for peer in ("cydezero", "dezero", "numpy"):
                row = results[peer]
                if row.get("status") == "ok":
                    row["step_peak_bytes"] = measure_step_peak(
                        make_runner(spec, peer, peers[peer][0], 1))
        # correctness: every peer's value against cydezero's (or dezero's)
        rtol = spec.get("rtol")
        ref = next((results[p]["value"] for p in ("cydezero", "dezero")
                    if results[p].get("status") == "ok"), None)
        for peer in PEERS:
            row = results[peer]
            if row.get("status") == "ok" and rtol is not None and ref is not None:
                row["agrees"] = bool(np.isclose(row["value"], ref, rtol=rtol,
                                                atol=1e-12))
        rows.extend(results[p] for p in PEERS)
        print_progress(name, n, results)
    return rows


def print_progress(name, n, results):
    parts = []
    for peer in PEERS:
        row = results[peer]
        if row.get("status") == "ok":
            parts.append("{} {}".format(peer, fmt_t(row["median_s"])))
        else:
            parts.append("{} {}".format(peer, row.get("status")))
    clock = results[PEERS[0]]["clock"]
    print(f"  {name:<13} n={n:<8} {clock:<6} {' | '.join(parts)}", flush=True)


# ----------------------------------------------------------------------------
# reporting
# ----------------------------------------------------------------------------

HEADER = (
    "median time ±half the interquartile range as % of median (min/max and "
    "every rep in the JSON); clock: thread = CPU time of the running thread "
    "(time.thread_time), wall = elapsed (time.perf_counter); cz/X = cydezero "
    "median / X median in that clock (<1: cydezero faster); (!) = result "
    "disagrees")


def fmt_t(s):
    if s is None:
        return "-"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return "%.1f ms" % (s * 1e3)
    return "%.0f us" % (s * 1e6)


def cell(row, clock):
    st = row.get("status")
    if st == "ok":
        t = row["by_clock"][clock]
        spread = (t["q3_s"] - t["q1_s"]) / t["median_s"] * 100
        flag = "" if row.get("agrees", True) else " (!)"
        return "{} ±{:.0f}%{}".format(fmt_t(t["median_s"]), spread / 2, flag)
    return {"missing": "missing", "not yet available": "not yet",
            "n/a": "n/a", "skipped": "-", "error": "ERROR"}.get(st, st)


def ratio(cz, row, clock):
    """cydezero's median / the peer row's, in one clock; None unless both
    ran."""
    if cz.get("status") == "ok" and row.get("status") == "ok":
        return (cz["by_clock"][clock]["median_s"]
                / row["by_clock"][clock]["median_s"])
    return None


def ratios(rows):
    """cydezero's median / each peer's, in each clock the workload is
    given in (the headline first)."""
    out = []
    by = {}
    for r in rows:
        by.setdefault((r["workload"], r["n"]), {})[r["peer"]] = r
    for (wl, n), d in by.items():
        cz = d.get("cydezero", {})
        for clock in clocks(WORKLOADS[wl]):
            for peer in PEERS[1:]:
                x = ratio(cz, d.get(peer, {}), clock)
                if x is not None:
                    out.append({"workload": wl, "n": n, "peer": peer,
                                "clock": clock, "ratio": x})
    return out


def table(rows, mem=True):
    by = {}
    for r in rows:
        by.setdefault((r["workload"], r["n"]), {})[r["peer"]] = r
    hdr = ["workload", "n", "clock"] + list(PEERS) + [
        "cz/dezero", "cz/torch", "cz/numpy"]
    lines = []
    for (wl, n), d in by.items():
        cz = d["cydezero"]
        for clock in clocks(WORKLOADS[wl]):
            line = [wl, str(n), clock] + [cell(d[p], clock) for p in PEERS]
            for p in PEERS[1:]:
                x = ratio(cz, d[p], clock)
                line.append("-" if x is None else "%.2fx" % x)
            lines.append(line)
    widths = [max(len(x) for x in col) for col in zip(hdr, *lines)]
    fmt = " | ".join(f"%-{w}s" for w in widths)
    out = [fmt % tuple(hdr), "-+-".join("-" * w for w in widths)]
    out += [fmt % tuple(line) for line in lines]
    if mem:
        out += memory_section(
            rows, "bytes_per_node",
            "deep graph memory (tracemalloc, graph alive, before backward):",
            lambda r: f"  {r['peer']:<9} n={r['n']:<8} {r['bytes_per_node']:6.0f} bytes/node")
        out += memory_section(
            rows, "rss_bytes_per_node",
            "deep graph memory (RSS, fresh process, graph alive, before backward; "
            "each peer at its largest n):",
            lambda r: f"  {r['peer']:<9} n={r['n']:<8} {r['rss_bytes_per_node']:6.0f} "
                      "bytes/node")
        out += memory_section(
            [r for r in rows if WORKLOADS[r["workload"]].get("rss")], "faults_median",
            "minor page faults per run (median; each maps a fresh page, "
            "microseconds on a virtual machine):",
            lambda r: f"  {r['peer']:<9} n={r['n']:<8} {r['faults_median']:8.0f}")
        out += memory_section(
            rows, "step_peak_bytes",
            "one training step, peak memory (tracemalloc: data, parameters, graph, "
            "gradients):",
            lambda r: f"  {r['workload']:<12} {r['peer']:<9} "
                      f"{r['step_peak_bytes'] / 2**20:7.1f} MiB")
    return "\n".join(out)


def memory_section(rows, key, title, line):
    """A blank line, the title and one line per row that measured `key`;
    nothing when no row did."""
    picked = [r for r in rows if key in r]
    return ["", title] + [line(r) for r in picked] if picked else []


def plot(rows, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no plot written")
        return None
    names = [w for w in ("wide", "deep")
             if any(r["workload"] == w and r.get("status") == "ok"
                    for r in rows)]
    if not names:
        return None
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4.5),
                             squeeze=False)
    for ax, wl in zip(axes[0], names):
        for peer in PEERS:
            pts = sorted((r["n"], r["median_s"]) for r in rows
                         if r["workload"] == wl and r["peer"] == peer
                         and r.get("status") == "ok")
            if pts:
                ax.loglog([p[0] for p in pts], [p[1] for p in pts],
                          marker="o", label=peer)
        ax.set_title(wl)
        ax.set_xlabel("n (graph size)")
        ax.set_ylabel("median {} time, s".format(clocks(WORKLOADS[wl])[0]))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="core subset on small sizes (under a minute)")
    ap.add_argument("--tiny", action="store_true",
                    help="smoke-test sizes (seconds); for tests")
    ap.add_argument("--only", default=None,
                    help="comma-separated workload names: " + ",".join(WORKLOADS))
    ap.add_argument("--reps", type=int, default=None,
                    help="timed repetitions after one warm-up (default 7; "
                         "3 in --tiny; fewer automatically for slow runs)")
    ap.add_argument("--out", default=None,
                    help="output directory (default bench/results for a full run, "
                         "bench/results/<quick|tiny|partial> otherwise)")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--no-gc", action="store_true",
                    help="disable the cyclic GC inside timed runs "
                         "(diagnostic; default: enabled)")
    args = ap.parse_args(argv)
    global GC_DURING_TIMING
    GC_DURING_TIMING = not args.no_gc

    size_idx = 2 if args.tiny else (1 if args.quick else 0)
    reps = args.reps if args.reps is not None else (2 if args.tiny else 7)
    if args.only:
        names = [s.strip() for s in args.only.split(",") if s.strip()]
        bad = [s for s in names if s not in WORKLOADS]
        if bad:
            ap.error("unknown workload(s) {}; known: {}".format(",".join(bad), ",".join(WORKLOADS)))
    elif args.quick:
        names = [k for k, v in WORKLOADS.items() if v["quick"]]
    else:
        names = list(WORKLOADS)

    if args.out is None:
        mode = ("tiny" if args.tiny else "quick" if args.quick
                else "partial" if args.only else None)
        args.out = os.path.join(HERE, "results", *([mode] if mode else []))

    peers = load_peers()
    # Move everything the imports created (torch alone is ~200k objects) to
    # the permanent generation, so full collections triggered by a big graph
    # do not rescan the other peers' modules: each library then pays for its
    # own objects only, as in a process that imported just that library.
    gc.collect()
    gc.freeze()
    meta = machine_info(peers)
    meta.update(mode="tiny" if args.tiny else ("quick" if args.quick
                                                else "full"),
                reps=reps, workloads={k: WORKLOADS[k]["desc"] for k in names},
                torch_threads="1 for overhead-bound workloads, "
                              "os.cpu_count() for the others ({})".format(
                                  ", ".join(k for k, v in WORKLOADS.items()
                                            if not v["overhead"])),
                clocks=CLOCKS,
                workload_clocks={k: list(clocks(WORKLOADS[k])) for k in names},
                data="made before each run, outside the timed region",
                gc=("disabled during timing (--no-gc)" if args.no_gc else
                    "enabled during timing")
                + "; gc.collect() before each run; gc.freeze() after imports")
    print("cydezero bench: python {}, numpy {}, {} x{}".format(
        meta["python"], meta["numpy"], meta["cpu"], meta["cores"]))
    for k, v in meta["peers"].items():
        print(f"  {k:<9} {v}")
    t_start = time.perf_counter()
    rows = []
    for name in names:
        rows += run_workload(name, WORKLOADS[name], size_idx, peers, reps,
                             do_memory=True)
    meta["elapsed_s"] = time.perf_counter() - t_start

    print()
    print(HEADER)
    print(table(rows))
    os.makedirs(args.out, exist_ok=True)
    doc = {"meta": meta, "results": rows, "ratios": ratios(rows)}
    jpath = os.path.join(args.out, "latest.json")
    with open(jpath, "w") as f:
        json.dump(doc, f, indent=1, default=str)
    print("\nwrote", jpath)
    if not args.no_plot:
        p = plot(rows, os.path.join(args.out, "scaling.png"))
        if p:
            print("wrote", p)
    print("elapsed {:.1f} s".format(meta["elapsed_s"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
