"""detect_anomaly: a NaN or inf made in backward names the Function and the
forward line that created it; off by default."""
import inspect
import threading

import numpy as np
import pytest

import cydezero as dz
import cydezero.functions as F
from cydezero import Variable


def test_inf_in_backward_names_the_function_and_its_creation_line():
    x = Variable(np.array([0.0, 4.0]))
    with dz.detect_anomaly():
        line = inspect.currentframe().f_lineno + 1
        y = x ** 0.5
        with pytest.raises(FloatingPointError) as err, np.errstate(divide='ignore'):
            y.sum().backward()
    msg = str(err.value)
    assert 'Pow.backward produced inf in the gradient of its input 0 (shape (2,))' in msg
    assert f'{__file__}:{line}' in msg
    assert 'y = x ** 0.5' in msg
    assert x.grad is None


def test_nan_from_a_python_function_is_blamed_on_it():
    class Bad(dz.Function):
        def forward(self, x):
            return x.copy()

        def backward(self, gy):
            return gy * np.nan

    x = Variable(np.array([1.0, 2.0]))
    (x * 2.0).sum().backward()
    before = x.grad.data.copy()
    with dz.detect_anomaly():
        y = F.exp(Bad()(x))
        with pytest.raises(FloatingPointError, match=r'Bad.backward produced NaN.*test_anomaly.py'):
            y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, before)


def test_off_by_default_nonfinite_gradients_flow_through():
    assert not dz.Config.detect_anomaly
    x = Variable(np.array(0.0))
    with np.errstate(divide='ignore'):
        (x ** 0.5).backward()
    assert np.isinf(x.grad.data)


def test_function_created_before_the_block_has_an_unknown_site():
    x = Variable(np.array(0.0))
    y = x ** 0.5
    with (dz.detect_anomaly(), np.errstate(divide='ignore'),
          pytest.raises(FloatingPointError, match='before detect_anomaly was on')):
        y.backward()


def test_the_switch_is_restored_and_per_thread():
    seen = []
    with dz.detect_anomaly():
        t = threading.Thread(target=lambda: seen.append(dz.Config.detect_anomaly))
        t.start()
        t.join()
        assert dz.Config.detect_anomaly
    assert seen == [False]
    assert not dz.Config.detect_anomaly
