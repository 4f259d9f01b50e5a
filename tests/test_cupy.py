"""The GPU paths: the same programs on CuPy arrays and on NumPy arrays.

They run only where CuPy imports and sees a CUDA device (elsewhere the
module is skipped, as the PyTorch comparisons are where torch is missing).
Truth is cydezero's own NumPy run of the same program: a GPU's sin, exp and
reductions may round differently, so results are compared to a relative
1e-10, gradients and all, and every array that comes out must live where
its inputs do."""
import numpy as np
import pytest

cupy = pytest.importorskip('cupy')
try:
    if cupy.cuda.runtime.getDeviceCount() < 1:
        raise RuntimeError('no CUDA device')
except Exception as e:  # noqa: BLE001  (no driver, or no device)
    pytest.skip('CuPy sees no CUDA device: {}'.format(e), allow_module_level=True)

import cydezero  # noqa: E402
import cydezero.functions as F  # noqa: E402
import cydezero.functions_conv as FC  # noqa: E402
from cydezero import Variable, cuda, optimizers  # noqa: E402
from cydezero.models import MLP  # noqa: E402

RTOL = 1e-10


def on(xp, a):
    return xp.asarray(a)


def same(a_gpu, a_cpu):
    """A CuPy result equals the NumPy one (to RTOL) and is on the GPU."""
    assert isinstance(a_gpu, cupy.ndarray), type(a_gpu)
    assert isinstance(a_cpu, np.ndarray), type(a_cpu)
    assert a_gpu.shape == a_cpu.shape and a_gpu.dtype == a_cpu.dtype
    np.testing.assert_allclose(cupy.asnumpy(a_gpu), a_cpu, rtol=RTOL, atol=1e-300)


rng = np.random.default_rng(0)
A = rng.normal(size=(3, 4))
B = rng.normal(size=(4, 2))
P = rng.uniform(0.5, 2.0, size=(3, 4))
S = np.array(0.7)

# name: (program on Variables and the array module, its inputs as NumPy
# arrays); constants are made with the inputs' module, as CuPy mixes no
# NumPy arrays in (nor does DeZero on CuPy)
PROGRAMS = {
    'scalar chain': (lambda xp, x: (F.sin(x) + x) * 0.5 - F.cos(x) / (1 + x ** 2), [S]),
    'scalar fused ops': (lambda xp, x: 1 - F.tanh(x) * 100 + F.exp(-x) + F.log(x) - x ** 3,
                         [S]),
    'elementwise': (lambda xp, x, p: F.sum(F.sin(x) * F.exp(x) / p - p ** 2 + F.tanh(x)),
                    [A, P]),
    'broadcast': (lambda xp, x, b: F.sum((x + b[0]) * 2.0), [A, rng.normal(size=(1, 4))]),
    'matmul': (lambda xp, x, w: F.sum(F.matmul(x, w) ** 2), [A, B]),
    'linear sigmoid mse': (lambda xp, x, w, b: F.mean_squared_error(
        F.sigmoid(F.linear(x, w, b)), xp.zeros((3, 2))), [A, B, rng.normal(size=2)]),
    'relu softmax': (lambda xp, x: F.sum(F.softmax(F.relu(x)) * 3.0), [A]),
    'reshape transpose': (lambda xp, x: F.sum(F.transpose(F.reshape(x, (4, 3))) * on(xp, A)),
                          [A]),
    'sum axis, sum_to': (lambda xp, x: F.sum(F.sum(x, axis=0) ** 2) + F.sum(F.sum_to(x, (1, 4))),
                         [A]),
    'get_item': (lambda xp, x: F.sum(x[1:, ::2] * 2.0), [A]),
    'max min clip': (lambda xp, x: F.max(x) - F.min(x, axis=1)[0] + F.sum(F.clip(x, -0.5, 0.5)),
                     [A]),
    'log_softmax': (lambda xp, x: F.sum(F.log_softmax(x) * on(xp, A)), [A]),
}


def run(prog, arrays, xp):
    xs = [Variable(on(xp, a)) for a in arrays]
    y = prog(xp, *xs)
    y.backward()
    return y, xs


@pytest.mark.parametrize('name', sorted(PROGRAMS))
def test_a_program_on_the_gpu_gives_what_it_gives_on_the_cpu(name):
    prog, arrays = PROGRAMS[name]
    y_cpu, xs_cpu = run(prog, arrays, np)
    y_gpu, xs_gpu = run(prog, arrays, cupy)
    same(y_gpu.data, y_cpu.data)
    for xg, xc in zip(xs_gpu, xs_cpu):
        same(xg.grad.data, xc.grad.data)


def test_softmax_cross_entropy_with_gpu_labels():
    t = np.array([0, 3, 1])
    got = []
    for xp in (np, cupy):
        x = Variable(on(xp, A))
        loss = F.softmax_cross_entropy(x, on(xp, t))
        loss.backward()
        got.append((loss.data, x.grad.data))
    same(got[1][0], got[0][0])
    same(got[1][1], got[0][1])


def test_higher_order_derivatives_on_the_gpu():
    got = []
    for xp in (np, cupy):
        x = Variable(on(xp, np.array(1.0)))
        y = F.tanh(x)
        y.backward(create_graph=True)
        for _ in range(3):
            gx = x.grad
            x.cleargrad()
            gx.backward(create_graph=True)
        got.append(x.grad.data)
    same(got[1], got[0])


def test_conv2d_and_pooling_on_the_gpu():
    x0 = rng.normal(size=(2, 1, 6, 6))
    W0 = rng.normal(size=(3, 1, 3, 3))
    got = []
    for xp in (np, cupy):
        x, W = Variable(on(xp, x0)), Variable(on(xp, W0))
        y = FC.pooling(F.relu(FC.conv2d(x, W, pad=1)), 2)
        loss = F.sum(y * y)
        loss.backward()
        got.append((loss.data, x.grad.data, W.grad.data))
    for g, c in zip(got[1], got[0]):
        same(g, c)


def test_to_gpu_and_to_cpu_move_data_and_gradient():
    x = Variable(np.array([1.0, 2.0]))
    x.to_gpu()
    assert isinstance(x.data, cupy.ndarray)
    y = F.sum(x * x)
    y.backward()
    assert isinstance(x.grad.data, cupy.ndarray)
    assert cuda.get_array_module(x) is cupy
    x.to_cpu()
    assert isinstance(x.data, np.ndarray) and x.data.tolist() == [1.0, 2.0]
    assert cuda.as_numpy(cuda.as_cupy(np.arange(3.0))).tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize('opt', ['SGD', 'MomentumSGD', 'Adam', 'AdaGrad'])
def test_training_an_mlp_on_the_gpu_follows_the_cpu(opt):
    x0 = rng.normal(size=(16, 3))
    t0 = rng.normal(size=(16, 2))
    losses = []
    for gpu in (False, True):
        np.random.seed(3)
        model = MLP((8, 2))
        model(x0)       # the weights are made on the first call, by NumPy's RNG
        optimizer = getattr(optimizers, opt)().setup(model)
        x, t = (on(cupy, x0), on(cupy, t0)) if gpu else (x0, t0)
        if gpu:
            model.to_gpu()
        trace = []
        for _ in range(20):
            loss = F.mean_squared_error(model(x), t)
            model.cleargrads()
            loss.backward()
            optimizer.update()
            trace.append(float(cuda.as_numpy(loss.data)))
        for p in model.params():
            assert isinstance(p.data, cupy.ndarray if gpu else np.ndarray)
        losses.append(trace)
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-9)
    assert losses[0][-1] < losses[0][0]


def test_a_gpu_dataloader_gives_cupy_batches():
    from cydezero.dataloaders import DataLoader
    from cydezero.datasets import Spiral
    loader = DataLoader(Spiral(train=True), batch_size=30, shuffle=False, gpu=True)
    x, t = next(iter(loader))
    assert isinstance(x, cupy.ndarray) and isinstance(t, cupy.ndarray)
    assert x.shape == (30, 2)


def test_no_grad_and_test_mode_on_the_gpu():
    x = Variable(on(cupy, A))
    with cydezero.no_grad():
        y = F.sin(x) * 2.0
    assert y.creator is None and isinstance(y.data, cupy.ndarray)
    with cydezero.test_mode():
        z = F.dropout(x, 0.5)
    same(z.data, A)
