"""The cache of freed object arenas (pyx/cydezero/_arenas.pxi): a graph
that dies leaves its arenas to the next one instead of giving them back to
the system, so the next graph touches no fresh page.

Each case runs in a fresh interpreter: the cache is process-wide, and the
page faults of a run are counted from the start. Under PYTHONMALLOC=malloc
(the sanitizer leg) CPython's arenas are not used at all, and the cache
must then stay empty.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

import cydezero  # noqa: F401  (fails here, not in a subprocess, if it cannot import)

# Whether this interpreter allocates objects in arenas (pymalloc): it counts
# no blocks when PYTHONMALLOC=malloc sends every object to malloc.
ARENAS = sys.getallocatedblocks() > 0

PRELUDE = '''
import json, sys
import numpy as np
import cydezero as dz
from cydezero import _core


def faults():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def deep(n):
    """Build, differentiate and free an n-node scalar chain (128 bytes a
    node: 1e5 nodes fill a dozen 1 MiB arenas)."""
    x = dz.Variable(np.array(1.0))
    y = x
    for _ in range(n):
        y = y * 1.0000001
    y.backward()
    return float(x.grad.data)


def report(**kw):
    print(json.dumps(kw))
'''


def run(code, **env):
    """The JSON object the last line of PRELUDE + code prints, run in a new
    interpreter with env added to this one's environment."""
    e = dict(os.environ)
    e.update(env)
    out = subprocess.run([sys.executable, '-c', PRELUDE + textwrap.dedent(code)],
                         capture_output=True, text=True, env=e, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.splitlines()[-1])


def test_a_dead_graph_leaves_its_arenas_to_the_next():
    r = run('''
        runs = []
        for _ in range(4):
            deep(100000)
            runs.append(_core.arena_cache_info())
        report(runs=runs)
    ''')
    first, last = r['runs'][0], r['runs'][-1]
    assert last['cap_bytes'] == 32 << 20
    if not ARENAS:
        # The nodes are malloc's; the allocator still serves the frame
        # stacks of threads (blocks of 16 KiB and up), but no arena.
        assert all(size < 256 << 10 for size in last['arenas'])
        return
    # The first graph's arenas came from the system and went to the cache;
    # the later graphs took theirs from it.
    assert len(first['arenas']) >= 8
    # (Smaller blocks are frame stacks, see above.)
    arenas = [size for size in last['arenas'] if size >= 256 << 10]
    assert len(set(arenas)) == 1 and len(arenas) >= 8
    assert last['bytes'] == sum(last['arenas']) <= last['cap_bytes']
    assert last['hits'] - first['hits'] >= 3 * len(first['arenas']) - 3


@pytest.mark.skipif(sys.platform != 'linux', reason="counts page faults with Linux's getrusage")
def test_the_next_graph_touches_no_fresh_page():
    code = '''
        runs = []
        for _ in range(4):
            f = faults()
            deep(100000)
            runs.append(faults() - f)
        report(runs=runs)
    '''
    cached = run(code)['runs']
    uncached = run(code, CYDEZERO_ARENA_CACHE_MB='0')['runs']
    if not ARENAS:
        return      # the arena allocator is never called: nothing to compare
    # 1e5 nodes are about 3,000 pages, mapped afresh by every graph when the
    # arenas go back to the system; with the cache, only by the first.
    assert min(uncached[1:]) > 2000, uncached
    assert max(cached[2:]) < min(uncached[1:]) / 10, (cached, uncached)


def test_the_cap_bounds_what_it_holds():
    r = run('''
        deep(100000)
        report(info=_core.arena_cache_info())
    ''', CYDEZERO_ARENA_CACHE_MB='2')['info']
    assert r['cap_bytes'] == 2 << 20
    assert r['bytes'] <= 2 << 20
    if ARENAS:
        assert r['bytes'] > 0


def test_zero_installs_nothing():
    r = run('''
        deep(100000)
        report(info=_core.arena_cache_info())
    ''', CYDEZERO_ARENA_CACHE_MB='0')['info']
    assert r == dict(arenas=[], bytes=0, hits=0, misses=0, cap_bytes=0)


def test_a_bad_setting_is_a_clear_error():
    e = dict(os.environ, CYDEZERO_ARENA_CACHE_MB='lots')
    out = subprocess.run([sys.executable, '-c', 'import cydezero'], capture_output=True,
                         text=True, env=e, timeout=120, check=False)
    assert out.returncode != 0
    assert "ValueError: CYDEZERO_ARENA_CACHE_MB takes a whole number, got 'lots'" in out.stderr


def test_arenas_no_graph_reuses_go_after_two_passes():
    r = run('''
        deep(100000)
        held = len(_core.arena_cache_info()['arenas'])
        deep(1)      # a pass begins: what the last graph left stays
        kept = len(_core.arena_cache_info()['arenas'])
        deep(1)      # another: it goes
        report(held=held, kept=kept, left=_core.arena_cache_info()['arenas'])
    ''')
    if not ARENAS:
        return      # no arena to keep (see the first test)
    assert r['held'] >= 8
    assert r['kept'] >= r['held']
    assert len(r['left']) <= 1      # one freed in that very pass may stay


def test_clear_gives_every_arena_back():
    r = run('''
        deep(100000)
        held = _core.arena_cache_info()['bytes']
        _core.arena_cache_clear()
        report(held=held, info=_core.arena_cache_info())
    ''')
    assert r['info']['bytes'] == 0 and r['info']['arenas'] == []
    if ARENAS:
        assert r['held'] > 0


@pytest.mark.skipif(sys.version_info < (3, 12), reason='interpreters with a GIL of their own '
                    'came with CPython 3.12')
def test_interpreters_with_their_own_gil_allocate_at_once():
    # Each such interpreter has its own small-object allocator, but the arena
    # allocator is the process's: these threads call it at the same time, and
    # the cache's table must stay whole. Each round maps and frees about 16
    # arenas; without the lock, 2 of 3 runs of 40 rounds crashed or left the
    # table inconsistent (CPython 3.13).
    rounds = 25 if ARENAS else 2       # under malloc there is nothing to race on
    r = run('''
        import threading
        try:
            import _interpreters as interpreters
        except ImportError:
            import _xxsubinterpreters as interpreters
        churn = ('for _ in range(ROUNDS):\\n'
                 '    junk = [object() for _ in range(1000000)]\\n'
                 '    del junk')
        errors = []

        def work():
            try:
                iid = interpreters.create()
                try:
                    interpreters.run_string(iid, churn)
                finally:
                    interpreters.destroy(iid)
            except BaseException as e:
                errors.append(repr(e))
        ts = [threading.Thread(target=work) for _ in range(3)]
        for t in ts:
            t.start()
        values = [deep(50000) for _ in range(10)]
        for t in ts:
            t.join()
        info = _core.arena_cache_info()
        report(errors=errors, values=sorted(set(values)), info=info)
    '''.replace('ROUNDS', str(rounds)))
    assert r['errors'] == []
    assert len(r['values']) == 1
    info = r['info']
    assert info['bytes'] == sum(info['arenas']) <= info['cap_bytes']
    if ARENAS:
        assert info['hits'] > 0


@pytest.mark.skipif(not hasattr(os, 'fork'), reason='fork() is POSIX')
def test_a_forked_child_finds_the_tables_whole_and_unlocked():
    # fork() takes the caches' locks first and gives them back on both sides:
    # each child must build a graph (its arenas go through the table) and
    # exit, and the parent must go on, while threads churn arenas. (Not
    # interpreters with a GIL of their own: CPython 3.12 and 3.13 themselves
    # hang or abort a child forked while those run.)
    r = run('''
        import os, threading, time, warnings
        warnings.simplefilter('ignore', DeprecationWarning)     # fork with threads

        def work():
            for _ in range(30):
                junk = [object() for _ in range(200000)]
                del junk
        ts = [threading.Thread(target=work) for _ in range(2)]
        for t in ts:
            t.start()
        codes = []
        for _ in range(20):
            pid = os.fork()
            if pid == 0:
                ok = deep(30000) > 1.0 and _core.arena_cache_info()['cap_bytes'] > 0
                os._exit(0 if ok else 1)
            deadline = time.monotonic() + 60
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    codes.append(os.waitstatus_to_exitcode(status))
                    break
                if time.monotonic() > deadline:
                    os.kill(pid, 9)
                    os.waitpid(pid, 0)
                    codes.append('hung')
                    break
                time.sleep(0.001)
            if codes[-1] == 'hung':
                break
        for t in ts:
            t.join()
        report(codes=codes, after=deep(30000), info=_core.arena_cache_info())
    ''')
    assert r['codes'] == [0] * 20, r['codes']
    info = r['info']
    assert info['bytes'] == sum(info['arenas']) <= info['cap_bytes']
