"""cydezero.profile(): calls and time per Function type, forward and
backward, in the thread that entered the block."""
import threading
import time

import numpy as np
import pytest

import cydezero as dz
import cydezero.functions as F
import cydezero.layers as L
from cydezero import Function, Variable


class Sleepy(Function):
    """y = x, after sleeping: a Function whose time is known."""

    def forward(self, x):
        time.sleep(0.02)
        return x

    def backward(self, gy):
        time.sleep(0.03)
        return gy


def step(l1, l2, x, t):
    loss = F.mean_squared_error(t, l2(F.sigmoid(l1(x))))
    l1.cleargrads()
    l2.cleargrads()
    loss.backward()


def test_counts_every_forward_and_backward_by_type():
    rng = np.random.default_rng(0)
    x, t = rng.random((8, 1)), rng.random((8, 1))
    l1, l2 = L.Linear(4), L.Linear(1)
    step(l1, l2, x, t)                       # parameters made outside the block
    with dz.profile() as r:
        for _ in range(7):
            step(l1, l2, x, t)
    s = r.stats
    assert set(s) == {'Linear', 'Sigmoid', 'MeanSquaredError'}
    assert (s['Linear']['forward_calls'], s['Linear']['backward_calls']) == (14, 14)
    assert (s['Sigmoid']['forward_calls'], s['Sigmoid']['backward_calls']) == (7, 7)
    assert (s['MeanSquaredError']['forward_calls'],
            s['MeanSquaredError']['backward_calls']) == (7, 7)
    for row in s.values():
        assert row['forward_s'] > 0 and row['backward_s'] > 0
        assert row['total_s'] == pytest.approx(row['forward_s'] + row['backward_s'])
    assert sum(row['total_s'] for row in s.values()) <= r.wall_s


def test_times_the_functions_own_computation():
    x = Variable(np.ones(3))
    with dz.profile() as r:
        y = Sleepy()(x)
        y.backward()
    row = r.stats['Sleepy']
    assert row['forward_calls'] == 1 and row['backward_calls'] == 1
    assert 0.02 <= row['forward_s'] < 0.02 + 0.5
    assert 0.03 <= row['backward_s'] < 0.03 + 0.5


def test_table_sorted_by_time_and_names_each_type():
    x = Variable(np.ones(3))
    with dz.profile() as r:
        Sleepy()(F.sin(x)).backward()
    lines = r.table().splitlines()
    assert lines[0].split()[0] == 'function'
    assert lines[1].split()[0] == 'Sleepy' and lines[2].split()[0] == 'Sin'
    assert 'ms wall' in lines[-1]
    assert len(r.table(limit=1).splitlines()) == 3


def test_nothing_is_recorded_outside_a_block_and_blocks_nest():
    x = Variable(np.ones(3))
    with dz.profile() as outer:
        F.sin(x)
        with dz.profile() as inner:
            F.cos(x)
        F.exp(x)
    F.tanh(x)                                 # after both: in neither
    assert set(inner.stats) == {'Cos'}
    assert set(outer.stats) == {'Sin', 'Cos', 'Exp'}
    with dz.profile() as later:
        pass
    assert later.stats == {}


def test_other_threads_are_not_recorded():
    x = Variable(np.ones(3))
    started, release = threading.Event(), threading.Event()

    def work():
        started.set()
        release.wait(5)
        for _ in range(5):
            F.sin(x)
    th = threading.Thread(target=work)
    th.start()
    started.wait(5)
    with dz.profile() as r:
        release.set()
        th.join(5)
        F.cos(x)
    assert set(r.stats) == {'Cos'}


def test_an_exception_ends_the_block_cleanly():
    x = Variable(np.ones(3))
    with pytest.raises(KeyError):
        with dz.profile() as r:
            F.sin(x)
            raise KeyError('inside the block')
    assert set(r.stats) == {'Sin'}
    F.cos(x)
    assert set(r.stats) == {'Sin'}


def test_ending_a_table_twice_or_elsewhere_is_an_error():
    table = dz._core._profile_begin()
    dz._core._profile_end(table)
    with pytest.raises(RuntimeError, match='profile'):
        dz._core._profile_end(table)
    x = Variable(np.ones(3))
    F.sin(x)
    assert table == {}
