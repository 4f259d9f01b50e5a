"""The cache of big gradient buffers (_bufcache.pxi): a NumPy memory
handler a backward pass allocates through once it meets a big gradient, so
that a training step reuses the blocks the step before freed."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import cydezero as dz
import cydezero.functions as F
from cydezero import _core

get_handler_name = np._core.multiarray.get_handler_name if hasattr(np, '_core') \
    else np.core.multiarray.get_handler_name
CACHE = 'cydezero_buffer_cache'
BIG = _core.buffer_cache_info()['min_bytes']


def _step(x, W, b):
    W.cleargrad()
    b.cleargrad()
    loss = F.sum(F.sigmoid(F.linear(x, W, b)))
    loss.backward()
    return loss


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((256, 300))     # gradients of (256, 400): 800 kB
    W = dz.Variable(0.1 * rng.standard_normal((300, 400)))     # 960 kB
    b = dz.Variable(np.zeros(400))
    return x, W, b


def _want(x, W, b):
    # d/dW sum(sigmoid(xW + b)) = x^T (s (1 - s)), by hand
    s = 1 / (1 + np.exp(-(x @ W.data + b.data)))
    g = s * (1 - s)
    return x.T @ g, g.sum(axis=0)


def test_a_training_step_reuses_the_blocks_of_the_one_before():
    _core.buffer_cache_clear()
    x, W, b = _data()
    _step(x, W, b)
    assert get_handler_name(W.grad.data) == CACHE     # made in the pass
    assert get_handler_name() != CACHE                # and the pass put it back
    hits = _core.buffer_cache_info()['hits']
    for _ in range(3):
        _step(x, W, b)
        gW, gb = _want(x, W, b)
        np.testing.assert_allclose(W.grad.data, gW, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(b.grad.data, gb, rtol=1e-12, atol=1e-12)
    assert _core.buffer_cache_info()['hits'] >= hits + 3


def test_small_passes_do_not_use_it():
    x = dz.Variable(np.array(2.0))
    y = F.sin(x) * x
    y.backward()
    assert get_handler_name(x.grad.data) != CACHE


def test_the_handler_is_put_back_when_a_pass_fails():
    x, W, b = _data()
    y = F.sum(F.sigmoid(F.linear(x, W, b)))

    def hook(g):
        raise RuntimeError('boom')

    W.register_hook(hook)
    with pytest.raises(RuntimeError, match='boom'):
        y.backward()
    assert get_handler_name() != CACHE and W.grad is None


def test_it_is_bounded_and_clears():
    _core.buffer_cache_clear()
    info = _core.buffer_cache_info()
    assert info['blocks'] == [] and info['bytes'] == 0
    x, W, b = _data()
    _step(x, W, b)
    W.cleargrad()                   # a gradient freed goes to the cache
    info = _core.buffer_cache_info()
    assert W.data.nbytes in info['blocks'] and len(info['blocks']) <= 64
    assert info['bytes'] == sum(info['blocks']) <= info['cap_bytes']
    assert min(info['blocks']) >= BIG
    _core.buffer_cache_clear()
    assert _core.buffer_cache_info()['bytes'] == 0


def test_a_block_no_pass_reuses_is_let_go():
    _core.buffer_cache_clear()
    x, W, b = _data()
    _step(x, W, b)
    W.cleargrad()
    assert W.data.nbytes in _core.buffer_cache_info()['blocks']
    # passes with gradients of other sizes: W's block is not reused, and
    # goes once two passes have begun since it was freed
    x2 = np.ones((512, 1000))
    W2 = dz.Variable(np.full((1000, 200), 0.01))
    for i in range(3):
        W2.cleargrad()
        F.sum(F.linear(x2, W2)).backward()
        if i == 0:
            assert W.data.nbytes in _core.buffer_cache_info()['blocks']
    assert W.data.nbytes not in _core.buffer_cache_info()['blocks']
    _core.buffer_cache_clear()


def _run(code, env=None):
    import os
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], env=e,
                          capture_output=True, text=True, timeout=300)


def test_it_can_be_turned_off_and_sized():
    code = '''
        import numpy as np, cydezero as dz, cydezero.functions as F
        from cydezero import _core
        W = dz.Variable(np.ones((300, 400)))
        F.sum(F.linear(np.ones((256, 300)), W)).backward()
        W.cleargrad()
        print(_core.buffer_cache_info())
    '''
    off = _run(code, {'CYDEZERO_BUFFER_CACHE_MB': '0'})
    assert off.returncode == 0, off.stderr
    assert "'cap_bytes': 0" in off.stdout and "'blocks': []" in off.stdout
    small = _run(code, {'CYDEZERO_BUFFER_CACHE_MB': '1', 'CYDEZERO_BUFFER_CACHE_MIN': '4096'})
    assert small.returncode == 0, small.stderr
    assert "'cap_bytes': 1048576" in small.stdout and "'min_bytes': 4096" in small.stdout
    bad = _run('import cydezero', {'CYDEZERO_BUFFER_CACHE_MB': 'lots'})
    assert bad.returncode != 0 and 'CYDEZERO_BUFFER_CACHE_MB' in bad.stderr
    bad = _run('import cydezero', {'CYDEZERO_BUFFER_CACHE_MIN': '4k'})
    assert bad.returncode != 0
    assert "CYDEZERO_BUFFER_CACHE_MIN takes a whole number, got '4k'" in bad.stderr
    least = _run(code, {'CYDEZERO_BUFFER_CACHE_MIN': '0'})     # a block has a byte at least
    assert least.returncode == 0, least.stderr
    assert "'min_bytes': 1" in least.stdout


def test_blocks_freed_on_other_threads_while_passes_run():
    # NumPy frees an array's data on whatever thread drops it: the table is
    # locked. Run where a crash would only fail this test.
    code = '''
        import threading, numpy as np, cydezero as dz, cydezero.functions as F
        from cydezero import _core
        grads = []
        stop = threading.Event()
        def drop():
            while not stop.is_set():
                while grads:
                    grads.pop()
        t = threading.Thread(target=drop)
        t.start()
        rng = np.random.default_rng(0)
        x = rng.standard_normal((256, 300))
        W = dz.Variable(0.1 * rng.standard_normal((300, 400)))
        for i in range(200):
            W.cleargrad()
            F.sum(F.sigmoid(F.linear(x, W))).backward()
            grads.append(W.grad)
            if i % 50 == 0:
                _core.buffer_cache_clear()
        stop.set()
        t.join()
        s = 1 / (1 + np.exp(-(x @ W.data)))
        assert np.allclose(W.grad.data, x.T @ (s * (1 - s)))
        print('ok', _core.buffer_cache_info()['hits'] > 0)
    '''
    r = _run(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ['ok', 'True']
