#!/usr/bin/env python
"""Resident memory (RSS) per node of a live ``deep`` graph, in a fresh process.

    python bench/rss.py PEER N ROOT    # prints {"bytes_per_node": ..., "file": ...}

tracemalloc counts the bytes Python's allocators hand out; RSS is what the
process holds in RAM for them: allocator headers and rounding, pymalloc's
pools and arenas, and what a library allocates behind tracemalloc's back
(PyTorch's tensors, autograd nodes and the C++ objects around them). It is
read in a new process per peer, because in the bench's own process the
free memory other workloads left in the allocators would be reused by the
graph and not show up as growth.

The process imports PEER's library from ROOT first (the directory the bench
imported it from), builds and drops a small warm-up graph so that what the
first operations allocate once is not counted, disables the cyclic GC,
reads its RSS, builds the chain ``y = y * DEEP_C`` of N nodes, holds it,
reads its RSS again, and prints (after - before) / N together with the file
it imported the library from. ``bytes_per_node`` is null where there is no
``/proc/self/statm`` (not Linux).
"""
import gc
import json
import os
import subprocess
import sys

import workloads as W

# peer -> its program that builds the deep graph and returns it alive
FORWARD = {"cydezero": W.dz_deep_forward, "dezero": W.dz_deep_forward,
           "torch": W.torch_deep_forward}
WARM_UP_NODES = 100


def resident_bytes():
    """This process's resident set size in bytes, or None without
    /proc/self/statm."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except OSError:
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def bytes_per_node(handle, forward, n):
    """RSS growth per node while `forward(handle, n)` builds a graph, held
    alive until the second reading; None without /proc/self/statm."""
    forward(handle, WARM_UP_NODES)
    gc.collect()
    gc.disable()
    try:
        before = resident_bytes()
        graph = forward(handle, n)
        after = resident_bytes()
    finally:
        gc.enable()
    del graph
    return None if before is None else (after - before) / n


def library_file(handle):
    """The file a peer's library was imported from (a load_dz namespace
    keeps the module in `lib`)."""
    return os.path.realpath(getattr(handle, "lib", handle).__file__)


def import_root(path):
    """The sys.path entry from which `path` (a package's __init__.py or a
    module) was imported."""
    folder = os.path.dirname(path)
    return os.path.dirname(folder) if os.path.basename(path) == "__init__.py" else folder


def measure(peer, handle, n, timeout=600):
    """RSS bytes per node of a live deep graph of `n` nodes built by `peer`
    in a new Python process that imports the library `handle` came from;
    None without /proc/self/statm. RuntimeError if that process fails or
    imports another copy of the library."""
    if resident_bytes() is None:
        return None
    want = library_file(handle)
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), peer, str(n), import_root(want)],
        capture_output=True, text=True, timeout=timeout, check=False)  # our environment
    if proc.returncode:
        raise RuntimeError(f"{peer}: the RSS process failed:\n{proc.stderr[-2000:]}")
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    if got["file"] != want:
        raise RuntimeError(f"{peer}: the RSS process imported {got['file']}, "
                           f"the bench {want}")
    return got["bytes_per_node"]


def main(argv):
    """Child side: argv = PEER N ROOT; prints one line of JSON."""
    peer, n, root = argv[0], int(argv[1]), argv[2]
    sys.path.insert(1, root)  # after this script's directory (workloads, run)
    import run
    handle = run.load_peer(peer)[0]
    print(json.dumps({"bytes_per_node": bytes_per_node(handle, FORWARD[peer], n),
                      "file": library_file(handle)}))


if __name__ == "__main__":
    main(sys.argv[1:])
