"""The cycle collector and the graph (_tracking.pxi): the built-in
operations' outputs and recorded Functions are hidden from it (a graph they
make is freed by reference counting), and every reference cycle that can
form is still collected. Each cycle test first checks that the objects
outlive their last reference (so a cycle really holds them), then that
gc.collect() frees them."""
import gc
import weakref

import numpy as np
import pytest
from conftest import differentiate_again

import cydezero as dz
import cydezero.functions as F
from cydezero import _core


@pytest.fixture(autouse=True)
def _no_automatic_collection():
    # Collections only where a test asks for one.
    gc.collect()
    gc.disable()
    yield
    gc.enable()


def _held_by_a_cycle_then_collected(refs):
    assert all(r() is not None for r in refs), 'no cycle held them'
    gc.collect()
    assert all(r() is None for r in refs), 'a cycle was not collected'


def test_built_in_outputs_and_functions_are_hidden_from_the_collector():
    x = dz.Variable(np.array(1.0))
    y = F.sin(x) * 2.0
    assert gc.is_tracked(x)                     # a leaf is as always
    assert not gc.is_tracked(y) and not gc.is_tracked(y.creator)
    # and a chain is freed by reference counting alone
    r = weakref.ref(y.creator.inputs[0])
    del y
    assert r() is None


def test_python_functions_and_their_outputs_are_tracked():
    class Twice(dz.Function):
        def forward(self, x):
            return 2 * x

        def backward(self, gy):
            return 2 * gy

    y = Twice()(dz.Variable(np.array(1.0)))
    assert gc.is_tracked(y) and gc.is_tracked(y.creator)


def test_create_graph_gradient_of_a_leaf():
    x = dz.Variable(np.array(0.7))
    y = F.sin(x) * x ** 3
    y.backward(create_graph=True)
    refs = [weakref.ref(o) for o in (x, x.grad, x.grad.creator)]
    del x, y
    _held_by_a_cycle_then_collected(refs)


def test_create_graph_gradients_of_retained_intermediates():
    x = dz.Variable(np.array(0.3))
    h = F.tanh(x)
    y = h * h * x
    y.backward(create_graph=True, retain_grad=True)
    refs = [weakref.ref(o) for o in (x, h, h.grad, h.grad.creator)]
    del x, h, y
    _held_by_a_cycle_then_collected(refs)


def test_higher_order_derivatives():
    x = dz.Variable(np.array(1.0))
    y = F.tanh(x)
    y.backward(create_graph=True)
    differentiate_again(x, 4)
    refs = [weakref.ref(x), weakref.ref(x.grad), weakref.ref(x.grad.creator)]
    del x, y
    _held_by_a_cycle_then_collected(refs)


def test_grad_set_from_python_to_a_graph_through_the_variable():
    v = F.exp(dz.Variable(np.array(1.0)))
    w = v * 2.0
    v.grad = w                  # v -> w -> Mul -> v
    refs = [weakref.ref(v), weakref.ref(w), weakref.ref(w.creator)]
    del v, w
    _held_by_a_cycle_then_collected(refs)


def test_creator_set_from_python():
    x = dz.Variable(np.array(2.0))
    a = F.sin(x)
    b = F.cos(a)
    a.creator = b.creator       # a -> Cos -> a
    refs = [weakref.ref(a), weakref.ref(b.creator)]     # b is not on it
    del x, a, b
    _held_by_a_cycle_then_collected(refs)


def test_inputs_set_from_python():
    y = F.sin(dz.Variable(np.array(2.0))) * 3.0
    f = y.creator
    f.inputs = [y]              # Mul -> y -> Mul
    refs = [weakref.ref(y), weakref.ref(f)]
    del y, f
    _held_by_a_cycle_then_collected(refs)


def test_a_built_in_function_called_twice():
    f = _core.Sin()
    y1 = f(dz.Variable(np.array(0.5)))
    y2 = f(y1)                  # Sin -> y1 -> Sin
    assert y2.data == np.sin(np.sin(0.5))
    refs = [weakref.ref(f), weakref.ref(y1)]     # y2 is not on it
    del f, y1, y2
    _held_by_a_cycle_then_collected(refs)


def test_a_python_function_called_again_on_a_later_variable():
    class Twice(dz.Function):
        def forward(self, x):
            return 2 * x

        def backward(self, gy):
            return 2 * gy

    p = Twice()
    y1 = p(dz.Variable(np.array(1.0)))
    z = F.sin(y1)               # built-in, hidden from the collector
    p(z)                        # p -> z -> Sin -> y1 -> p
    refs = [weakref.ref(p), weakref.ref(z), weakref.ref(z.creator)]
    del p, y1, z
    _held_by_a_cycle_then_collected(refs)


def test_a_python_backward_that_keeps_its_gradient_under_create_graph():
    class Keep(dz.Function):
        def forward(self, x):
            return x * x

        def backward(self, gy):
            self.gy = gy        # gy's graph reaches this Function's output
            return 2 * self.inputs[0] * gy

    x = dz.Variable(np.array(1.5))
    y = Keep()(x)
    z = F.sin(y) * y
    z.backward(create_graph=True)
    keep = y.creator
    refs = [weakref.ref(o) for o in (x, y, keep, keep.gy, keep.gy.creator)]
    del x, y, z, keep
    _held_by_a_cycle_then_collected(refs)


def test_a_hook_that_keeps_its_gradient_under_create_graph():
    class Box:
        pass

    x = dz.Variable(np.array(0.4))
    h = F.sin(x)
    y = h * F.cos(h)
    box = Box()
    box.kept = []
    h.name = box                # h -> Box -> the gradient it keeps -> h
    handle = h.register_hook(box.kept.append)
    y.backward(create_graph=True)
    handle.remove()             # the hook table no longer holds box
    g = box.kept[0]
    refs = [weakref.ref(o) for o in (h, box, g, g.creator)]
    del x, h, y, box, handle, g
    _held_by_a_cycle_then_collected(refs)


def test_name_and_data_set_to_objects_that_hold_the_variable():
    v = F.sin(dz.Variable(np.array(1.0)))

    class Holder:
        pass

    holder = Holder()
    holder.v = v
    v.name = holder             # v -> Holder -> v
    w = F.cos(dz.Variable(np.array(1.0)))
    w.data = [w]                # w -> list -> w
    refs = [weakref.ref(v), weakref.ref(holder), weakref.ref(w)]
    del v, holder, w
    _held_by_a_cycle_then_collected(refs)


def test_track_graph_shows_a_graph_by_hand():
    # the documented limit: a cycle closed later through an object the
    # engine holds (here a Pow's exponent) is shown with track_graph
    class Exponent(float):
        pass

    c = Exponent(2.0)
    x = dz.Variable(np.array(3.0))
    y = x ** c
    z = F.sin(y)
    c.later = z                 # Pow -> c -> z -> Sin -> y -> Pow
    _core.track_graph(z)
    refs = [weakref.ref(y), weakref.ref(z)]
    del c, x, y, z
    _held_by_a_cycle_then_collected(refs)
    with pytest.raises(TypeError, match='track_graph: expected a Variable or a Function'):
        _core.track_graph(3)


def _ids(objs):
    return sorted(id(o) for o in objs)


def test_a_variable_shows_the_collector_every_reference_it_holds():
    # Variable's tp_traverse skips the fields that hold None; every other
    # reference must still be visited, or a cycle through it would leak.
    # gc.get_referents runs tp_traverse, so it lists exactly what is visited.
    x = dz.Variable(np.array(2.0), name='x')
    c = dz.Variable(np.array(3.0))
    y = x * c                                   # fused: x, c held by y
    assert _core._fused_op_name(y) == 'Mul'
    d = y.data                                  # (made an array now, held from now on)
    assert _ids(gc.get_referents(y)) == _ids([d, x, c])
    y.name = 'y'
    y.grad = dz.Variable(np.array(1.0))
    assert _ids(gc.get_referents(y)) == _ids([d, x, c, y.name, y.grad])
    # get_referrers stops a traversal at what it looks for (its visit
    # returns 1), which the traverse must pass back; y is tracked since a
    # name was set on it from Python.
    assert gc.is_tracked(y)
    assert any(r is y for r in gc.get_referrers(x))
    assert any(r is y for r in gc.get_referrers(c))
    f = y.creator                               # made: y holds its creator instead
    assert _ids(gc.get_referents(y)) == _ids([d, y.name, y.grad, f])
    assert _ids(gc.get_referents(x)) == _ids([x.data, x.name])
    p = dz.Parameter(np.array(1.0))
    p.grad = dz.Variable(np.array(0.5))
    assert _ids(gc.get_referents(p)) == _ids([p.data, p.grad])


class _Box:
    pass


def _variable_on_a_cycle_through(field):
    """Weak references to x and y = sin(x), on a cycle through y's field."""
    x = dz.Variable(np.array(2.0))
    y = F.sin(x)
    if field == 'name':
        b = _Box()
        b.v = y
        y.name = b
    elif field == 'grad':
        y.grad = dz.Variable(np.array(1.0))
        y.grad.name = y
    else:
        x.name = y          # y, fused, holds x as its input
    return [weakref.ref(x), weakref.ref(y)]


@pytest.mark.parametrize('field', ['name', 'grad', 'input'])
def test_a_cycle_through_each_field_a_variable_holds_is_collected(field):
    # Each field that can close a cycle, through the traverse that skips None.
    _held_by_a_cycle_then_collected(_variable_on_a_cycle_through(field))
