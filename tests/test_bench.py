"""Smoke test for bench/run.py: runs it at tiny sizes in a subprocess and
checks the JSON it writes, and checks that each NumPy floor computes the
numbers of the DeZero program it stands for. No timing assertions; peers that
are not installed must be reported as missing, not skipped."""
import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.path.join(ROOT, "bench", "run.py")
sys.path.insert(0, os.path.join(ROOT, "bench"))
import rss  # noqa: E402 (bench/ is not a package)
import run as bench  # noqa: E402
import workloads as W  # noqa: E402
PEERS = {"cydezero", "dezero", "torch", "numpy"}
QUICK = {"chain", "wide", "deep", "rosenbrock", "rosenbrock_simple", "higher_order",
         "newton", "mlp_small", "spiral"}
STATUSES = {"ok", "missing", "not yet available", "n/a", "skipped", "error"}


def run_bench(tmp_path, *args, env=None):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, RUN, "--tiny", "--no-plot", "--out", str(out),
         *args],
        check=False, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(out / "latest.json") as f:
        return json.load(f), proc.stdout


def table_keys(stdout):
    """workload, n and clock of each line of the printed table."""
    return [[c.strip() for c in line.split("|")][:3]
            for line in stdout.splitlines() if line.count("|") == 9]


def check_rows(doc, workloads):
    rows = doc["results"]
    assert {r["workload"] for r in rows} == workloads
    for r in rows:
        assert r["peer"] in PEERS
        assert r["status"] in STATUSES, r
        assert r["status"] != "error", r
        assert r["n"] > 0
        # every row says which clock its headline figures are in
        assert r["clock"] == doc["meta"]["workload_clocks"][r["workload"]][0]
        if r["status"] == "ok":
            assert r["reps"] >= 1
            assert len(r["times_s"]) == r["reps"]
            assert all(t > 0 for t in r["times_s"])
            assert 0 < r["min_s"] <= r["median_s"] <= r["max_s"]
            assert r.get("agrees", True), r
            # every clock is read on every rep; the headline is one of them
            assert set(r["by_clock"]) == {"thread", "wall", "process"}
            for t in r["by_clock"].values():
                assert len(t["times_s"]) == r["reps"]
                assert all(x > 0 for x in t["times_s"])
                assert 0 < t["min_s"] <= t["median_s"] <= t["max_s"]
            assert r["times_s"] == r["by_clock"][r["clock"]]["times_s"]
        else:
            assert r.get("reason"), r
    # every (workload, n) has one row per peer: nothing silently dropped
    keys = {(r["workload"], r["n"]) for r in rows}
    for key in keys:
        got = {r["peer"] for r in rows if (r["workload"], r["n"]) == key}
        assert got == PEERS, key
    # cydezero and the numpy floor always run the core workloads
    for r in rows:
        if r["workload"] in {"chain", "wide", "deep", "rosenbrock",
                             "rosenbrock_simple", "higher_order", "newton"} and r["peer"] in (
                                 "cydezero", "numpy"):
            assert r["status"] == "ok", r
    for r in doc["ratios"]:
        assert r["ratio"] > 0
        assert r["clock"] in doc["meta"]["workload_clocks"][r["workload"]]
    assert set(doc["meta"]["clocks"]) == {"thread", "wall", "process"}


def test_quick_tiny(tmp_path):
    doc, stdout = run_bench(tmp_path, "--quick")
    check_rows(doc, QUICK)
    meta = doc["meta"]
    assert meta["mode"] == "tiny"
    for key in ("python", "numpy", "blas", "cpu", "cores", "peers"):
        assert key in meta
    assert set(meta["peers"]) == PEERS
    mem = [r for r in doc["results"]
           if r["workload"] == "deep" and r["peer"] == "cydezero"]
    assert all(r["bytes_per_node"] > 0 for r in mem)
    # RSS once per peer with a graph, at its largest size, where /proc is
    deep = [r for r in doc["results"] if r["workload"] == "deep"]
    assert not [r for r in deep if "rss_error" in r]
    if rss.resident_bytes() is not None:
        assert {(r["peer"], r["n"]) for r in deep if "rss_bytes_per_node" in r} == {
            (r["peer"], 1000) for r in deep if r["peer"] in rss.FORWARD and r["status"] == "ok"}
        assert "deep graph memory (RSS, fresh process" in stdout
    assert "cz/dezero" in stdout
    # single-threaded workloads are given in thread CPU time only
    assert all(c == ["thread"] for c in meta["workload_clocks"].values())
    assert "time.thread_time" in stdout
    assert {k[2] for k in table_keys(stdout)} == {"clock", "thread"}


def test_compute_bound_tiny(tmp_path):
    names = {"mlp_large", "mlp_large_f64", "conv"}
    doc, stdout = run_bench(tmp_path, "--only", ",".join(sorted(names)), "--reps", "1")
    check_rows(doc, names)
    # BLAS workloads: wall time first, thread CPU time too, in the JSON
    # (ratios) and in the table
    for name in names:
        assert doc["meta"]["workload_clocks"][name] == ["wall", "thread"]
        assert {r["clock"] for r in doc["ratios"] if r["workload"] == name} == {
            "wall", "thread"}
        assert [name, "1", "wall"] in table_keys(stdout)
        assert [name, "1", "thread"] in table_keys(stdout)
    conv_np = [r for r in doc["results"]
               if r["workload"] == "conv" and r["peer"] == "numpy"]
    assert conv_np and conv_np[0]["status"] == "n/a"


def test_a_quick_run_leaves_the_tracked_results_alone():
    tracked = os.path.join(ROOT, "bench", "results", "latest.json")
    with open(tracked, "rb") as f:
        before = f.read()
    proc = subprocess.run(
        [sys.executable, RUN, "--quick", "--tiny", "--only", "chain", "--no-plot"],
        check=False, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(tracked, "rb") as f:
        assert f.read() == before
    written = os.path.join(ROOT, "bench", "results", "tiny", "latest.json")
    assert "wrote " + written in proc.stdout
    with open(written) as f:
        assert json.load(f)["meta"]["mode"] == "tiny"


def test_missing_peers_reported(tmp_path):
    # shadow dezero and torch with modules that fail to import
    shadow = tmp_path / "shadow"
    (shadow / "dezero").mkdir(parents=True)
    (shadow / "dezero" / "__init__.py").write_text(
        "raise ImportError('dezero hidden by test')\n")
    (shadow / "torch.py").write_text(
        "raise ImportError('torch hidden by test')\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(shadow)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                         if p])
    doc, stdout = run_bench(tmp_path, "--only", "chain,mlp_small", env=env)
    check_rows(doc, {"chain", "mlp_small"})
    for r in doc["results"]:
        if r["peer"] in ("dezero", "torch"):
            assert r["status"] == "missing", r
    assert "missing" in doc["meta"]["peers"]["torch"]
    assert "missing" in stdout


# ----------------------------------------------------------------------------
# the floors: same numbers as the DeZero program, data made outside the run
# ----------------------------------------------------------------------------

FLOORS = [k for k, v in bench.WORKLOADS.items() if v["numpy"] is not None]
# spiral's torch program has its own initialisation, so run.py compares no
# peer there; its floor draws DeZero's random stream and must agree
FLOOR_RTOL = {"spiral": 1e-5}


@pytest.mark.parametrize("lib", ["cydezero", "dezero"])
@pytest.mark.parametrize("name", FLOORS)
def test_floor_computes_the_dezero_programs_numbers(name, lib):
    try:
        dz = W.load_dz(lib)  # sets numpy.int for DeZero 0.0.13 first
    except ImportError:
        pytest.skip(f"{lib} is not installed")
    spec = bench.WORKLOADS[name]
    n = spec["sizes"][2][0]
    want = bench.make_runner(spec, lib, dz, n)()()
    got = bench.make_runner(spec, "numpy", np, n)()()
    rtol = spec["rtol"] or FLOOR_RTOL[name]
    assert np.isclose(got, want, rtol=rtol, atol=1e-12), (got, want)


def test_floors_run_without_cydezero():
    # a floor is an independent NumPy program: it runs where cydezero cannot
    # be imported
    code = "\n".join([
        "import sys",
        "sys.modules['cydezero'] = None",
        f"sys.path.insert(0, {os.path.join(ROOT, 'bench')!r})",
        "import run",
        "for name, spec in run.WORKLOADS.items():",
        "    if spec['numpy'] is not None:",
        "        run.make_runner(spec, 'numpy', None, spec['sizes'][2][0])()()",
        "print('ok')",
    ])
    proc = subprocess.run([sys.executable, "-c", code], check=False,
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


@pytest.mark.parametrize("peer", ["cydezero", "torch", "numpy"])
def test_inputs_are_made_before_the_timed_run(peer):
    handle = {"cydezero": W.load_dz("cydezero"), "numpy": np}.get(peer)
    if peer == "torch":
        handle = pytest.importorskip("torch")
    calls = []

    def data(n):
        calls.append(n)
        return W.mlp_small_data(n)

    spec = dict(bench.WORKLOADS["mlp_small"], data=data)
    prepare = bench.make_runner(spec, peer, handle, 2)
    run = prepare()
    assert calls == [2]
    assert run() > 0
    assert calls == [2]


@pytest.mark.skipif(bench.resource is None, reason="no resource module (Windows)")
def test_timed_counts_the_page_faults_of_the_run_alone():
    # 64 MiB written for the first time maps fresh pages: at least one a
    # 2 MiB huge page (NumPy asks for them), thousands at 4 KiB; an empty
    # run maps next to none (the counts around it are taken inside timed;
    # a sanitizer's bookkeeping may fault a page or two)
    big, empty = [], []
    bench.timed(lambda: lambda: np.ones(2**23).sum(), big)
    bench.timed(lambda: lambda: None, empty)
    assert len(big) == len(empty) == 1
    assert empty[0] < 2**26 // 2**21 <= big[0], (empty, big)


# ----------------------------------------------------------------------------
# rss.py: resident memory of a live graph, in a fresh process
# ----------------------------------------------------------------------------

needs_proc = pytest.mark.skipif(rss.resident_bytes() is None,
                                reason="no /proc/self/statm on this platform")


@needs_proc
def test_rss_per_node_of_a_live_graph_is_plausible():
    # 100,000 live nodes are tens of MB: measured in the wrong process, or
    # with the graph already freed, the growth would be about 0
    per_node = rss.measure("cydezero", W.load_dz("cydezero"), 100_000)
    assert 50 < per_node < 2000, per_node


@needs_proc
def test_rss_refuses_a_process_that_imported_another_build(tmp_path):
    # the child looks for cydezero where this fake says it is, finds the
    # installed build instead, and must say so rather than measure it
    fake = types.SimpleNamespace(lib=types.SimpleNamespace(
        __file__=str(tmp_path / "cydezero" / "__init__.py")))
    with pytest.raises(RuntimeError, match="imported .*the bench"):
        rss.measure("cydezero", fake, 10)


def test_rss_is_skipped_without_proc(monkeypatch):
    monkeypatch.setattr(rss, "resident_bytes", lambda: None)
    row = {}
    bench.measure_rss(row, "cydezero", W.load_dz("cydezero"), 10)
    assert row == {}


# -- bench/ab.py: two builds side by side ---------------------------------------

AB = os.path.join(ROOT, "bench", "ab.py")


def run_ab(*args):
    return subprocess.run([sys.executable, AB, *args], check=False, capture_output=True,
                          text=True, timeout=600, cwd=ROOT)


def installed_build():
    """The directory from which `import cydezero` takes this build."""
    import cydezero
    return os.path.dirname(os.path.dirname(os.path.abspath(cydezero.__file__)))


def test_ab_compares_two_builds_per_workload_and_clock():
    build = installed_build()
    proc = run_ab(build, build, "--only", "chain,mlp_large", "--n", "2", "--reps", "2",
                  "--runs", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if "new/old" in line]
    # chain: thread time; mlp_large (BLAS): wall time, then thread time
    assert [(r[0], r[2]) for r in rows] == [
        ("chain", "thread"), ("mlp_large", "wall"), ("mlp_large", "thread")]
    for r in rows:
        assert float(r[-1]) > 0


def test_ab_refuses_a_directory_without_that_build(tmp_path):
    # An empty directory: `import cydezero` would find the installed build,
    # which would compare that build with itself and call it the old one.
    build = installed_build()
    proc = run_ab(str(tmp_path), build, "--only", "chain", "--n", "2", "--reps", "1",
                  "--runs", "1")
    assert proc.returncode != 0
    assert "not from " + str(tmp_path) in proc.stdout + proc.stderr
    proc = run_ab(build, build, "--only", "no_such_workload")
    assert proc.returncode != 0 and "no_such_workload" in proc.stderr


# -- bench/bounds.py: the least an engine can reach ------------------------------

BOUNDS = os.path.join(ROOT, "bench", "bounds.py")


def test_bounds_fixed_parts_make_the_dezero_programs_updates():
    import bounds
    dz = W.load_dz("cydezero")
    # rosenbrock at x0=0, x1=2: d/dx0 of 100(x1 - x0^2)^2 + (1 - x0)^2 is -2
    x0 = np.array(0.0)
    for _ in range(5):
        x0 -= 0.001 * np.array(-2.0)
    assert bounds.rosenbrock_fixed(dz, 5) == float(x0)
    # mlp_small: each step moves W1 by lr (0.2) times its gradient (1e-3)
    data = W.mlp_small_data(3)
    W1 = data[2].copy()
    for _ in range(3):
        W1 -= 0.2 * np.full_like(W1, 1e-3)
    assert bounds.mlp_small_fixed(dz, 3, data) == W1[0, 0]


def test_bounds_prints_each_part_against_the_floor():
    proc = subprocess.run([sys.executable, BOUNDS, "--reps", "1"], check=False,
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    for workload in ("rosenbrock", "mlp_small"):
        at = next(i for i, line in enumerate(lines) if line.startswith(workload + ": floor"))
        parts = [line.split()[0] for line in lines[at + 1:at + 3]]
        assert parts == ["cydezero", "fixed"]
        assert all(line.endswith("x the floor") for line in lines[at + 1:at + 3])


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
