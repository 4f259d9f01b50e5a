"""Smoke test for bench/run.py: runs it at tiny sizes in a subprocess and
checks the JSON it writes. No timing assertions; peers that are not
installed must be reported as missing, not skipped."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.path.join(ROOT, "bench", "run.py")
PEERS = {"cydezero", "dezero", "torch", "numpy"}
QUICK = {"chain", "wide", "deep", "rosenbrock", "higher_order", "mlp_small",
         "spiral"}
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


def check_rows(doc, workloads):
    rows = doc["results"]
    assert {r["workload"] for r in rows} == workloads
    for r in rows:
        assert r["peer"] in PEERS
        assert r["status"] in STATUSES, r
        assert r["status"] != "error", r
        assert r["n"] > 0
        if r["status"] == "ok":
            assert r["reps"] >= 1
            assert len(r["times_s"]) == r["reps"]
            assert all(t > 0 for t in r["times_s"])
            assert 0 < r["min_s"] <= r["median_s"] <= r["max_s"]
            assert r.get("agrees", True), r
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
                             "higher_order"} and r["peer"] in (
                                 "cydezero", "numpy"):
            assert r["status"] == "ok", r
    for r in doc["ratios"]:
        assert r["ratio"] > 0


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
    assert "cz/dezero" in stdout


def test_compute_bound_tiny(tmp_path):
    doc, _ = run_bench(tmp_path, "--only", "mlp_large,conv", "--reps", "1")
    check_rows(doc, {"mlp_large", "conv"})
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


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
