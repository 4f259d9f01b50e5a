"""Threads: two threads each build and differentiate their own graphs a
thousand times, one switching recording off with ``no_grad()`` for a
forward-only part, the other switching to inference with
``using_config('train', False)``. Nothing crashes, every result is
bit-identical to the same computation run alone in the main thread, and a
configuration flag set in one thread is never seen by the other. And a
number one Variable holds (not yet an array) is computed with by some
threads while others read its ``.data``."""
import gc
import sys
import threading

import numpy as np
import pytest

import cydezero
import cydezero.functions as F
from cydezero import Config, Variable, using_config

N = 1000
RNG = np.random.default_rng(7)
X_A = RNG.normal(size=(4, 3))
W_A = RNG.normal(size=(4, 3))
X_B = RNG.normal(size=(5, 3))
W_B = RNG.normal(size=(3, 2))
MEAN_B, VAR_B = RNG.normal(size=3), RNG.uniform(0.5, 2.0, size=3)


def job_a(i, inside):
    """Training-mode batch norm on data centred by a forward-only step."""
    x = Variable(X_A + 0.001 * i)
    gamma, beta = Variable(np.ones(3) * 1.5), Variable(np.zeros(3) + 0.1)
    with cydezero.no_grad():
        center = F.sum(x, axis=0) / len(x)
        inside(a=True)
    assert center.creator is None, 'no_grad recorded a graph'
    h = F.batch_nrom(x - center, gamma, beta, np.zeros(3), np.ones(3))
    y = F.sum(F.tanh(h) * W_A)
    assert y.creator is not None
    y.backward()
    return [y.data, x.grad.data, gamma.grad.data, beta.grad.data, center.grad.data]


def job_b(i, inside):
    """Inference-mode dropout (identity) and batch norm (running stats)."""
    x = Variable(X_B - 0.002 * i)
    W = Variable(W_B.copy())
    with using_config('train', False):
        h = F.dropout(x, 0.5)
        h = F.batch_nrom(h, Variable(np.ones(3)), Variable(np.zeros(3)),
                         MEAN_B.copy(), VAR_B.copy())
        inside(a=False)
    assert h.creator is not None, 'test mode must still record the graph'
    y = F.sum(F.sigmoid(F.matmul(h, W)))
    y.backward()
    return [y.data, x.grad.data, W.grad.data]


def flags_inside(a):
    """What each job must see inside its block, in its own thread."""
    expected = (False, True) if a else (True, False)
    got = (Config.enable_backprop, Config.train)
    assert got == expected, 'job {}: (enable_backprop, train) = {}, expected {}'.format(
        'a' if a else 'b', got, expected)


def run_all(threads, errors):
    """Start the threads, wait for them all; none may hang or fail."""
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), 'a thread hung'
    assert not errors, errors


@pytest.fixture
def busy_switching():
    """Make the interpreter switch threads as often as it can."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def test_two_threads_backward_concurrently_with_their_own_config(busy_switching):
    alone = {'a': [job_a(i, flags_inside) for i in range(N)],
             'b': [job_b(i, flags_inside) for i in range(N)]}
    # Both threads are inside their blocks at the same time, every iteration:
    # the barrier lets neither leave before the other has checked its flags.
    barrier = threading.Barrier(2, timeout=30)
    results, errors = {}, []

    def inside(a):
        barrier.wait()
        flags_inside(a)
        barrier.wait()

    def run(name, job):
        try:
            results[name] = [job(i, inside) for i in range(N)]
        except BaseException as e:  # noqa: BLE001  (reported by the main thread)
            errors.append((name, e))
            barrier.abort()

    run_all([threading.Thread(target=run, args=('a', job_a)),
             threading.Thread(target=run, args=('b', job_b))], errors)
    for name in ('a', 'b'):
        assert len(results[name]) == N
        for i, (got, want) in enumerate(zip(results[name], alone[name])):
            for g, w in zip(got, want):
                assert g.dtype == w.dtype and g.shape == w.shape
                assert np.array_equal(g, w), f'job {name} iteration {i}: {g} != {w}'
    # The main thread's configuration was never touched.
    assert Config.enable_backprop is True and Config.train is True


def test_results_computed_alone_are_right():
    """The reference the threaded test compares with, against NumPy."""
    _, gx, gW = job_b(0, flags_inside)
    h = (X_B - MEAN_B) / np.sqrt(VAR_B + 2e-5)
    s = 1 / (1 + np.exp(-(h @ W_B)))
    ds = s * (1 - s)
    assert np.allclose(gW, h.T @ ds)
    assert np.allclose(gx, (ds @ W_B.T) / np.sqrt(VAR_B + 2e-5))
    y, gx, gamma, beta, gcenter = job_a(0, flags_inside)
    xc = X_A - X_A.mean(axis=0)
    hn = (xc - xc.mean(axis=0)) / np.sqrt(xc.var(axis=0) + 2e-5)
    assert np.allclose(y, np.sum(np.tanh(1.5 * hn + 0.1) * W_A))
    dt = (1 - np.tanh(1.5 * hn + 0.1) ** 2) * W_A
    assert np.allclose(beta, dt.sum(axis=0))
    assert np.allclose(gamma, (dt * hn).sum(axis=0))
    # Batch norm in training mode is invariant to a shift: no gradient
    # reaches the centre.
    assert np.allclose(gcenter, 0.0, atol=1e-12)


def test_config_set_by_assignment_in_a_thread_stays_there():
    seen = {}
    ready, done = threading.Event(), threading.Event()

    def worker():
        Config.enable_backprop = False
        Config.train = False
        ready.set()
        done.wait(10)
        seen['worker'] = (Config.enable_backprop, Config.train,
                          (Variable(np.ones(2)) * 2).creator is None)

    t = threading.Thread(target=worker)
    t.start()
    assert ready.wait(10)
    seen['main'] = (Config.enable_backprop, Config.train,
                    (Variable(np.ones(2)) * 2).creator is None)
    done.set()
    t.join(10)
    assert seen == {'worker': (False, False, True), 'main': (True, True, False)}


def test_a_number_held_by_one_variable_shared_by_threads(busy_switching):
    # y0 holds its value as a number until its .data is first read. Reader
    # threads read it (which makes it an array, once) while builder threads
    # compute with it, each on a leaf of its own: every builder must see
    # the same value whichever form it has, and every reader one array.
    with cydezero.no_grad():
        y0 = Variable(np.array(0.75)) * 2.0     # 1.5, as a held number
    rounds = 300
    ws = [0.25 * (k + 1) for k in range(3)]

    def build(w):
        x = Variable(np.array(w))
        z = x * y0 + F.sin(y0 * x) + y0 / x
        z.backward()
        return z.data.tobytes(), x.grad.data.tobytes()

    def holds_an_array(v):
        return any(type(r) is np.ndarray for r in gc.get_referents(v))

    alone = {w: build(w) for w in ws}
    assert not holds_an_array(y0)     # still a number: build never read it
    got = {w: [] for w in ws}
    seen, errors = [], []
    start = threading.Barrier(len(ws) + 3, timeout=30)

    def builder(w):
        try:
            start.wait()
            got[w].extend(build(w) for _ in range(rounds))
        except BaseException as e:  # noqa: BLE001  (reported by the main thread)
            errors.append(e)

    def reader():
        try:
            start.wait()
            seen.extend((id(y0.data), y0.data.tobytes()) for _ in range(rounds))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    run_all([threading.Thread(target=builder, args=(w,)) for w in ws]
            + [threading.Thread(target=reader) for _ in range(3)], errors)
    for w in ws:
        assert got[w] == [alone[w]] * rounds, w
    assert set(seen) == {(id(y0.data), np.array(1.5).tobytes())}
    assert holds_an_array(y0)
