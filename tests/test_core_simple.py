"""core_simple, the book's simpler engine: gradients are ndarrays, a
Function's backward works on ndarrays. The same programs run on DeZero's
core_simple and must print the same numbers."""
import numpy as np
import pytest

import cydezero
from cydezero import core_simple as S


def _program(core):
    """A program in the style of the book's steps 23-32: user Functions,
    the operators, a diamond graph, retain_grad, gradient descent on
    ``x.data -= lr * x.grad``. Returns what it would print."""
    Variable, Function = core.Variable, core.Function
    core.setup_variable()

    class Square(Function):
        def forward(self, x):
            return x ** 2

        def backward(self, gy):
            return 2 * self.inputs[0].data * gy

    class Exp(Function):
        def forward(self, x):
            return np.exp(x)

        def backward(self, gy):
            return np.exp(self.inputs[0].data) * gy

    out = []
    x = Variable(np.array(0.5))
    a = Square()(x)
    b = Exp()(a)
    y = Square()(b)
    y.backward(retain_grad=True)
    out.append((x.grad, a.grad, b.grad, y.grad))

    x = Variable(np.array(2.0))
    a = Square()(x)
    y = Square()(a) + Square()(a)
    y.backward()
    out.append((y.data, x.grad, a.grad, y.grad))

    x = Variable(np.array([[1.0, 2.0], [3.0, 4.0]]))
    y = 2.0 * x - 1 / x + np.array(3.0) ** 1 - x / 4.0 + (-x) ** 3
    y.backward()
    out.append((repr(y), x.grad))

    x0, x1 = Variable(np.array(0.0)), Variable(np.array(2.0))
    for _ in range(200):
        y = 100 * (x1 - x0 ** 2) ** 2 + (x0 - 1) ** 2
        x0.cleargrad()
        x1.cleargrad()
        y.backward()
        x0.data -= 0.001 * x0.grad
        x1.data -= 0.001 * x1.grad
    out.append((repr(x0), repr(x1)))

    x = Variable(np.array(2.0))
    for _ in range(6):
        y = x ** 4 - 2 * x ** 2
        x.cleargrad()
        y.backward()
        x.data -= x.grad / (12 * x.data ** 2 - 4)
    out.append(repr(x))

    with core.no_grad():
        y = x * 2
    out.append(y.creator)
    y = x * 2
    out.append((y.generation, y.creator.generation, len(y.creator.inputs),
                y.creator.outputs[0]() is y))
    return [[np.asarray(v) if isinstance(v, (np.ndarray, np.generic)) else v
             for v in (o if isinstance(o, tuple) else (o,))] for o in out]


def _same(a, b):
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        for va, vb in zip(ra, rb):
            if isinstance(va, np.ndarray):
                np.testing.assert_array_equal(va, vb)
                assert va.dtype == vb.dtype
            else:
                assert va == vb


def test_programs_print_what_dezero_core_simple_prints(dezero):
    import dezero.core_simple as theirs
    _same(_program(theirs), _program(S))


def test_grad_is_an_ndarray_so_data_minus_grad_stays_an_array():
    x = S.Variable(np.array(3.0))
    y = x * x + x
    y.backward()
    assert type(x.grad) is np.ndarray and x.grad == 7.0
    x.data -= 0.1 * x.grad
    assert type(x.data) is np.ndarray and x.data == pytest.approx(2.3)
    assert y.grad is None      # an output's gradient is dropped without retain_grad


def test_backward_of_a_user_function_receives_and_returns_arrays():
    seen = []

    class Cube(S.Function):
        def forward(self, x):
            return x ** 3

        def backward(self, gy):
            seen.append(type(gy))
            return 3 * self.inputs[0].data ** 2 * gy

    x = S.Variable(np.array(2.0))
    Cube()(x).backward()
    assert seen == [np.ndarray] and x.grad == 12.0
    # a direct call, as the book's early steps make, passes arrays through
    c = Cube()
    c.inputs = [S.Variable(np.array(2.0))]
    assert c.backward(np.array(1.0)) == 12.0


def test_grad_can_be_assigned_an_array_and_seeds_backward():
    x = S.Variable(np.array(2.0))
    y = x * x
    y.grad = np.array(10.0)
    y.backward()
    assert type(y.grad) is type(None) and x.grad == 40.0
    x.grad = np.array(1.5)
    assert type(x.grad) is np.ndarray and x.grad == 1.5


def test_no_create_graph_as_in_dezero(dezero):
    import dezero.core_simple as theirs
    for core in (theirs, S):
        with pytest.raises(TypeError):
            core.Variable(np.array(1.0)).backward(create_graph=True)
        with pytest.raises(TypeError, match='is not supported'):
            core.Variable(1.0)


def test_broadcast_inputs_get_gradients_of_their_own_shape():
    x = S.Variable(np.array([1.0, 2.0, 3.0]))
    b = S.Variable(np.array(10.0))
    y = x * b + b
    y.backward()
    np.testing.assert_array_equal(x.grad, [10.0, 10.0, 10.0])
    assert b.grad.shape == () and b.grad == 1 + 2 + 3 + 3


def test_is_simple_core_is_false_as_in_dezero(dezero):
    assert cydezero.is_simple_core is dezero.is_simple_core is False


def test_core_functions_on_its_variables_make_its_variables():
    # the built-in operations serve both engines: called on a core_simple
    # Variable they make core_simple Variables (grad an ndarray)
    from cydezero import functions as F
    x = S.Variable(np.array([0.3, 1.2]))
    y = F.sum(F.sin(x) * x)
    assert type(y) is S.Variable and type(y.creator.inputs[0]) is S.Variable
    y.backward()
    want = np.cos(x.data) * x.data + np.sin(x.data)    # d/dx x sin x
    assert type(x.grad) is np.ndarray
    np.testing.assert_allclose(x.grad, want, rtol=1e-12)
    # a core Variable alone still makes core Variables
    z = F.sin(cydezero.Variable(np.array(1.0)))
    assert type(z) is cydezero.Variable


def test_inputs_of_its_functions_are_its_variables():
    class Twice(S.Function):
        def forward(self, x):
            return 2 * x

        def backward(self, gy):
            return 2 * gy

    f = Twice()
    y = f(np.array(3.0))
    assert type(y) is S.Variable and type(f.inputs[0]) is S.Variable
    assert y.creator is f and y.generation == 1


def test_a_core_function_keeps_its_variable_backward_on_its_variables():
    # a core Function's backward receives Variables whatever its inputs
    seen = []

    class Square(cydezero.Function):
        def forward(self, x):
            return x ** 2

        def backward(self, gy):
            seen.append(type(gy))
            return 2 * self.inputs[0] * gy

    x = S.Variable(np.array(3.0))
    y = Square()(x)
    assert type(y) is S.Variable
    y.backward()
    assert seen == [cydezero.Variable] and type(x.grad) is np.ndarray and x.grad == 6.0


def test_create_graph_through_its_function_raises_and_changes_nothing():
    class Cube(S.Function):
        def forward(self, x):
            return x ** 3

        def backward(self, gy):
            return 3 * self.inputs[0].data ** 2 * gy

    # reached from core: core_simple's own backward has no create_graph
    x = cydezero.Variable(np.array(2.0))
    x.grad = cydezero.Variable(np.array(5.0))
    y = Cube()(x) * 1.0
    assert type(y) is S.Variable
    with pytest.raises(TypeError, match='Cube: a core_simple Function has no create_graph'):
        cydezero.Variable.backward(y, create_graph=True)
    with pytest.raises(TypeError, match='Cube: a core_simple Function has no create_graph'):
        cydezero.grad(y, x, create_graph=True)
    assert x.grad.data == 5.0 and y.grad is None
    y.backward()                        # without create_graph it works
    assert x.grad.data == 5.0 + 12.0


def test_register_rejects_other_classes():
    with pytest.raises(TypeError, match='_register_core_simple'):
        cydezero._core._register_core_simple(object, S.Variable)
