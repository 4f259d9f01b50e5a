"""Spare 0-d float64 arrays: what a backward pass consumed, or a dying
Variable held alone, is filled in again by the scalar fast paths. No array
that anything else can see, or that is not a plain NumPy float64 array of
its own, may ever be reused."""
import gc
import warnings
import weakref

import numpy as np

import cydezero.functions as F
from cydezero import Variable, _core


def _scalar_step(x0, x1):
    """One Rosenbrock step, as the book writes it; returns the gradients."""
    y = 100 * (x1 - x0 ** 2) ** 2 + (1 - x0) ** 2
    x0.cleargrad()
    x1.cleargrad()
    y.backward()
    return float(x0.grad.data), float(x1.grad.data)


def _closed_form(a, b):
    return -400.0 * (b - a * a) * a - 2.0 * (1 - a), 200.0 * (b - a * a)


def _assert_plain_new_array(a):
    assert type(a) is np.ndarray and a.shape == () and a.dtype == np.float64
    assert a.dtype.metadata is None and a.dtype.byteorder in '=|'
    assert a.base is None and a.flags.owndata and a.flags.writeable and a.flags.aligned


def test_consumed_gradients_are_reused_and_results_stay_right():
    for _ in range(3):
        _scalar_step(Variable(np.array(0.5)), Variable(np.array(1.5)))
    gc.collect()
    assert _core._spare_count() > 0
    x0, x1 = Variable(np.array(0.3)), Variable(np.array(-0.7))
    for _ in range(50):
        g = _scalar_step(x0, x1)
        want = _closed_form(float(x0.data), float(x1.data))
        assert g == want    # the same IEEE operations in the same order
        x0.data -= 0.001 * x0.grad.data
        x1.data -= 0.001 * x1.grad.data


def test_an_array_anyone_still_holds_is_never_reused():
    # gradients kept by a hook and data kept by the user must keep their values
    kept = []
    x = Variable(np.array(0.25))
    ys = []
    for i in range(80):
        y = F.sin(x * float(i + 1))
        y.data.copy()
        kept.append((y.data, float(y.data)))
        ys.append(y)
    for y in ys:
        y.backward()
    del ys, y
    for _ in range(20):
        _scalar_step(Variable(np.array(0.5)), Variable(np.array(1.5)))
    assert all(float(a) == v for a, v in kept)


def _drop_through_variable(make):
    """Make an array, give it to a Variable, drop both; whether it was kept."""
    one = Variable(np.array(1.0))
    # More arrays than the spares (a value read as .data is made from one):
    # takes them all.
    hold = [(one * 2.0).data for _ in range(100)]
    assert _core._spare_count() == 0
    v = Variable(make())
    del v
    kept = _core._spare_count()
    del hold
    return kept


def test_a_plain_array_a_dying_variable_held_alone_is_kept():
    assert _drop_through_variable(lambda: np.array(7.0)) == 1


def test_hostile_arrays_are_not_kept():
    # each of these, dropped by a dying Variable that held it alone, would be
    # wrong to hand out as a new result
    class Sub(np.ndarray):
        pass

    backing = np.zeros(4)

    def read_only():
        a = np.array(2.0)
        a.flags.writeable = False
        return a

    def reshaped():
        # setting .shape changes an array in place; NumPy 2.5 deprecates it
        a = np.array(3.0)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', DeprecationWarning)
            a.shape = (1,)
        return a

    hostile = {
        'a view into another array': lambda: backing[1, ...],
        'read-only': read_only,
        'byte-swapped': lambda: np.array(1.0, dtype='>f8'),
        'a dtype with metadata': lambda: np.array(
            1.0, dtype=np.dtype(np.float64, metadata={'unit': 'm'})),
        'a subclass': lambda: np.array(1.0).view(Sub),
        'reshaped in place': reshaped,
        'float32': lambda: np.array(1.0, dtype=np.float32),
    }
    kept = [name for name, make in hostile.items() if _drop_through_variable(make)]
    assert kept == []
    assert not backing.any()


def test_an_array_with_a_weak_reference_is_not_kept():
    died = []
    refs = []

    def make():
        a = np.array(4.0)
        refs.append(weakref.ref(a, lambda r: died.append(True)))
        return a
    assert _drop_through_variable(make) == 0
    assert died == [True] and refs[0]() is None


def test_new_results_are_plain_arrays_of_their_own():
    for _ in range(3):
        _scalar_step(Variable(np.array(0.5)), Variable(np.array(1.5)))
    assert _core._spare_count() > 0
    made = [Variable(np.array(float(i))) * 1.5 for i in range(100)]
    for i, y in enumerate(made):
        _assert_plain_new_array(y.data)
        assert float(y.data) == i * 1.5
    assert len({id(y.data) for y in made}) == 100
