"""Variable.register_hook: hooks see each pass's complete gradient of a
variable, may replace it, and come off with handle.remove()."""
import numpy as np
import pytest

import cydezero as dz
import cydezero.functions as F
from cydezero import Variable


def test_leaf_hook_sees_this_pass_gradient_not_the_accumulated_one():
    x = Variable(np.array([1.0, 2.0]))
    seen = []
    x.register_hook(lambda g: seen.append(g.data.copy()))
    for _ in range(2):
        (x * x).sum().backward()
    np.testing.assert_array_equal(seen[0], 2 * x.data)
    np.testing.assert_array_equal(seen[1], 2 * x.data)
    np.testing.assert_array_equal(x.grad.data, 4 * x.data)


def test_replacement_is_stored_and_added_to_the_earlier_grad():
    x = Variable(np.array([1.0, 2.0]))
    (x * x).sum().backward()
    x.register_hook(lambda g: g * 10)
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.data, 2 * x.data + 10 * 2 * x.data)


def _two_uses_of_a_leaf_with_an_earlier_grad():
    """x (whose .grad is 10 already) used twice, by a (2x) and d (5x); the
    backward pass reaches x through one before the other, so a hook on a
    or d runs between x's two gradients of the pass for one of them."""
    x = Variable(np.array(2.0))
    x.grad = Variable(np.array(10.0))
    a = x * 2.0
    d = x * 5.0
    y = (a * 1.0) * 1.0 + d
    return x, {'a': a, 'd': d}, y


@pytest.mark.parametrize('on', ['a', 'd'])
def test_a_hook_registered_mid_pass_adds_the_earlier_grad_once(on):
    x, uses, y = _two_uses_of_a_leaf_with_an_earlier_grad()
    seen = []

    def register_on_x(g):
        if not seen:
            seen.append('registered')
            x.register_hook(lambda g: seen.append(float(g.data)))

    uses[on].register_hook(register_on_x)
    y.backward()
    assert float(x.grad.data) == 10.0 + 2.0 + 5.0
    assert len(seen) == 2       # x's hook ran once


@pytest.mark.parametrize('on', ['a', 'd'])
def test_a_hook_removed_mid_pass_keeps_the_earlier_grad(on):
    x, uses, y = _two_uses_of_a_leaf_with_an_earlier_grad()
    handle = x.register_hook(lambda g: None)
    uses[on].register_hook(lambda g: handle.remove())
    y.backward()
    assert float(x.grad.data) == 10.0 + 2.0 + 5.0


def test_nonleaf_hook_sees_the_sum_over_every_use_and_changes_what_flows_back():
    x = Variable(np.array([0.3, -0.7]))
    a = F.sin(x)
    seen = []

    def double(g):
        seen.append(g.data.copy())
        return g * 2
    a.register_hook(double)
    y = (a * a + a * 3.0).sum()
    y.backward()
    ga = 2 * np.sin(x.data) + 3.0
    np.testing.assert_allclose(seen[0], ga)
    np.testing.assert_allclose(x.grad.data, 2 * ga * np.cos(x.data))
    assert a.grad is None


def test_hooks_run_in_registration_order_and_remove_stops_them():
    x = Variable(np.array(3.0))
    calls = []
    h1 = x.register_hook(lambda g: calls.append('first') or g + 1)
    x.register_hook(lambda g: calls.append(('second', float(g.data))))
    (x * 2.0).backward()
    assert calls == ['first', ('second', 3.0)]
    h1.remove()
    h1.remove()
    calls.clear()
    x.cleargrad()
    (x * 2.0).backward()
    assert calls == [('second', 2.0)]
    assert float(x.grad.data) == 2.0


def test_hook_returning_wrong_shape_raises_and_changes_no_gradient():
    x = Variable(np.array([1.0, 2.0]))
    w = Variable(np.array([3.0, 4.0]))
    (x * w).sum().backward()
    before = x.grad.data.copy(), w.grad.data.copy()
    x.register_hook(lambda g: np.zeros(3))
    with pytest.raises(ValueError, match=r'gradient hook .* shape \(3,\) for a variable of shape \(2,\)'):
        (x * w).sum().backward()
    np.testing.assert_array_equal(x.grad.data, before[0])
    np.testing.assert_array_equal(w.grad.data, before[1])


def test_hook_returning_garbage_raises_type_error():
    x = Variable(np.array(1.0))
    x.register_hook(lambda g: 'nope')
    with pytest.raises(TypeError, match='gradient hook'):
        (x * 2.0).backward()
    assert x.grad is None


def test_register_hook_needs_a_callable():
    with pytest.raises(TypeError, match='register_hook: expected a callable'):
        Variable(np.array(1.0)).register_hook(3)


def test_hook_under_create_graph_is_part_of_the_recorded_graph():
    x = Variable(np.array(0.5))
    y = x ** 3
    y.register_hook(lambda g: g * x)        # d/dx becomes 3x^2 * x = 3x^3
    y.backward(create_graph=True)
    gx = x.grad
    np.testing.assert_allclose(gx.data, 3 * 0.5 ** 3)
    x.cleargrad()
    gx.backward()
    np.testing.assert_allclose(x.grad.data, 9 * 0.5 ** 2)


def test_functional_grad_runs_the_inputs_hooks_and_leaves_grad_alone():
    x = Variable(np.array([1.0, -2.0]))
    x.register_hook(lambda g: g * 0.5)
    gx, = dz.grad((x * x).sum(), [x])
    np.testing.assert_array_equal(gx.data, x.data)
    assert x.grad is None


def test_a_dead_variables_hooks_do_not_reach_new_variables():
    calls = []
    x = Variable(np.array(1.0))
    x.register_hook(lambda g: calls.append(1))
    del x
    for _ in range(200):
        v = Variable(np.array(1.0))
        (v * 2.0).backward()
    assert calls == []
