"""cydezero.optimizers: each update rule and hook against its formula written
out in NumPy, bit-for-bit agreement with dezero 0.0.13's optimizers, state
that dies with its parameter, convergence on a quadratic, and a seeded MLP
trained side by side with dezero."""
import ctypes
import ctypes.util
import gc
import platform
import warnings

import numpy as np
import pytest

import cydezero.functions as F
import cydezero.layers as L
import cydezero.models as M
import cydezero.optimizers as O
from cydezero import Parameter, Variable
from cydezero._core import _adam_step as REAL_ADAM_STEP

RNG = np.random.default_rng(0)
SHAPE = (3, 4)


def make_layer(dtype=np.float64, n=2):
    layer = L.Layer()
    for i in range(n):
        setattr(layer, f'p{i}', Parameter(RNG.standard_normal(SHAPE).astype(dtype)))
    return layer


def step(opt, layer, grads):
    """Give each parameter its gradient, then one optimizer.update()."""
    for p, g in zip(layer.params(), grads):
        p.grad = None if g is None else Variable(g.copy())
    opt.update()


# -----------------------------------------------------------------------------
# the update rules, written out
# -----------------------------------------------------------------------------
def ref_sgd(p, gs, lr=0.01):
    for g in gs:
        p = p - lr * g
    return p


def ref_momentum(p, gs, lr=0.01, momentum=0.9):
    v = np.zeros_like(p)
    for g in gs:
        v = momentum * v - lr * g
        p = p + v
    return p


def ref_adagrad(p, gs, lr=0.001, eps=1e-8):
    h = np.zeros_like(p)
    for g in gs:
        h = h + g * g
        p = p - lr * g / (np.sqrt(h) + eps)
    return p


def ref_adadelta(p, gs, rho=0.95, eps=1e-6):
    msg, msdx = np.zeros_like(p), np.zeros_like(p)
    for g in gs:
        msg = rho * msg + (1 - rho) * g * g
        dx = np.sqrt((msdx + eps) / (msg + eps)) * g
        msdx = rho * msdx + (1 - rho) * dx * dx
        p = p - dx
    return p


def ref_adam(p, gs, alpha=0.001, beta1=0.9, beta2=0.999, eps=1e-8):
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(gs, 1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        lr = alpha * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
        p = p - lr * m / (np.sqrt(v) + eps)
    return p


RULES = [
    (O.SGD, ref_sgd, {}), (O.SGD, ref_sgd, {'lr': 0.3}),
    (O.MomentumSGD, ref_momentum, {}),
    (O.MomentumSGD, ref_momentum, {'lr': 0.1, 'momentum': 0.5}),
    (O.AdaGrad, ref_adagrad, {}), (O.AdaGrad, ref_adagrad, {'lr': 0.1, 'eps': 1e-3}),
    (O.AdaDelta, ref_adadelta, {}), (O.AdaDelta, ref_adadelta, {'rho': 0.5, 'eps': 1e-2}),
    (O.Adam, ref_adam, {}),
    (O.Adam, ref_adam, {'alpha': 0.1, 'beta1': 0.5, 'beta2': 0.9, 'eps': 1e-4}),
]


@pytest.mark.parametrize('cls, ref, kwargs', RULES)
@pytest.mark.parametrize('dtypes', [(np.float64, np.float64), (np.float32, np.float32),
                                    (np.float32, np.float64)],
                         ids=['f64', 'f32', 'f32-param-f64-grad'])
@pytest.mark.parametrize('scratch', [False, True], ids=['plain', 'scratch'])
def test_updates_follow_the_formula(cls, ref, kwargs, dtypes, scratch, monkeypatch):
    """Three steps with different gradients (the state carries over), for
    a parameter and gradient of the same dtype and of different ones, with
    and without the scratch-array path that large parameters take."""
    if scratch:
        monkeypatch.setattr(O, '_SCRATCH_MIN_SIZE', 0)
    p_dtype, g_dtype = dtypes
    layer = make_layer(p_dtype)
    p0 = [p.data.astype(np.float64) for p in layer.params()]
    grads = [[RNG.standard_normal(SHAPE).astype(g_dtype) for _ in range(2)]
             for _ in range(3)]
    opt = cls(**kwargs)
    assert opt.setup(layer) is opt
    data_ids = [id(p.data) for p in layer.params()]
    for gs in grads:
        step(opt, layer, gs)
    rtol = 1e-12 if p_dtype == np.float64 else 2e-5
    for i, p in enumerate(layer.params()):
        assert p.data.dtype == p_dtype
        assert id(p.data) == data_ids[i]          # updated in place
        expected = ref(p0[i], [gs[i].astype(np.float64) for gs in grads], **kwargs)
        np.testing.assert_allclose(p.data, expected, rtol=rtol, atol=rtol * 1e-2)


def test_adam_counts_updates_and_exposes_lr():
    opt = O.Adam(alpha=0.01).setup(make_layer())
    for t in (1, 2):
        step(opt, opt.target, [np.ones(SHAPE)] * 2)
        assert opt.t == t
        assert opt.lr == pytest.approx(0.01 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t))


def test_only_parameters_with_a_grad_are_updated():
    layer = make_layer()
    before = layer.p1.data.copy()
    opt = O.MomentumSGD().setup(layer)
    step(opt, layer, [np.ones(SHAPE), None])
    np.testing.assert_array_equal(layer.p1.data, before)
    assert list(opt.vs) == [id(layer.p0)]


def test_shared_parameter_is_updated_once_per_step():
    lin = L.Linear(2, in_size=3)
    model = M.Sequential(lin, lin)
    before = lin.W.data.copy()
    opt = O.SGD(lr=0.5).setup(model)
    lin.W.grad = Variable(np.ones((3, 2), dtype=np.float32))
    lin.b.grad = Variable(np.ones(2, dtype=np.float32))
    opt.update()
    np.testing.assert_allclose(lin.W.data, before - 0.5)


def test_update_before_setup_says_so():
    with pytest.raises(RuntimeError, match=r'SGD.update: call setup\(model\) first'):
        O.SGD().update()


@pytest.mark.parametrize('cls', [O.MomentumSGD, O.AdaGrad, O.AdaDelta, O.Adam])
def test_state_dies_with_its_parameter(cls):
    opt = cls().setup(make_layer())
    step(opt, opt.target, [np.ones(SHAPE)] * 2)
    states = [getattr(opt, name) for name in cls._state_names]
    assert all(len(s) == 2 for s in states)
    opt.target = None
    gc.collect()
    assert all(len(s) == 0 for s in states) and not opt._finalizers


def test_a_new_parameter_never_inherits_a_dead_ones_state():
    opt = O.MomentumSGD(lr=1.0, momentum=1.0)
    for _ in range(20):   # CPython reuses freed ids; each param starts at v = 0
        layer = make_layer(n=1)
        before = layer.p0.data.copy()
        opt.setup(layer)
        step(opt, layer, [np.ones(SHAPE)])
        np.testing.assert_allclose(layer.p0.data, before - 1.0)
        del layer


# -----------------------------------------------------------------------------
# hooks
# -----------------------------------------------------------------------------
def test_weight_decay_adds_rate_times_param():
    layer = make_layer()
    p = [q.data.copy() for q in layer.params()]
    g = [RNG.standard_normal(SHAPE) for _ in range(2)]
    opt = O.SGD(lr=0.1).setup(layer)
    opt.add_hook(O.WeightDecay(1e-2))
    step(opt, layer, g)
    for q, p_i, g_i in zip(layer.params(), p, g):
        np.testing.assert_allclose(q.data, p_i - 0.1 * (g_i + 1e-2 * p_i), rtol=1e-13)
        np.testing.assert_allclose(q.grad.data, g_i + 1e-2 * p_i, rtol=1e-13)


@pytest.mark.parametrize('max_norm', [0.5, 100.0])
def test_clip_grad_scales_by_the_total_norm(max_norm):
    layer = make_layer()
    g = [RNG.standard_normal(SHAPE) for _ in range(2)]
    norm = np.sqrt(sum((gi ** 2).sum() for gi in g))
    opt = O.SGD(lr=1.0).setup(layer)
    opt.add_hook(O.ClipGrad(max_norm))
    p = [q.data.copy() for q in layer.params()]
    step(opt, layer, g)
    rate = min(1.0, max_norm / (norm + 1e-6))
    for q, p_i, g_i in zip(layer.params(), p, g):
        np.testing.assert_allclose(q.grad.data, g_i * rate, rtol=1e-13)
        np.testing.assert_allclose(q.data, p_i - g_i * rate, rtol=1e-13)


def test_freeze_param_keeps_layers_and_parameters_fixed():
    model = M.MLP([3, 2])
    x = RNG.standard_normal((4, 2))
    model(x)
    extra = Parameter(np.ones(2))
    model.extra = extra
    frozen = [p.data.copy() for p in model.l0.params()]
    l1_before = model.l1.W.data.copy()
    opt = O.Adam().setup(model)
    opt.add_hook(O.FreezeParam(model.l0, extra))
    loss = F.sum(model(x)) + F.sum(extra)
    loss.backward()
    opt.update()    # DeZero crashed here (None.data)
    for p, f in zip(model.l0.params(), frozen):
        np.testing.assert_array_equal(p.data, f)
        assert p.grad is None
    np.testing.assert_array_equal(extra.data, np.ones(2))
    assert not np.array_equal(model.l1.W.data, l1_before)


def test_hooks_do_not_mix_up_shared_or_read_only_gradients():
    a, b = Parameter(np.full(2, 1.0)), Parameter(np.full(2, 3.0))
    c = Parameter(np.full(2, 5.0))
    layer = L.Layer()
    layer.a, layer.b, layer.c = a, b, c
    # The engine may give several inputs one gradient array (Add passes gy to
    # both) and a read-only broadcast view (sum's backward).
    shared = np.ones(2)
    a.grad, b.grad = Variable(shared), Variable(shared)
    c.grad = Variable(np.broadcast_to(np.ones(1), (2,)))
    opt = O.SGD(lr=1.0).setup(layer)
    opt.add_hook(O.WeightDecay(0.5))
    opt.add_hook(O.ClipGrad(1.0))
    opt.update()
    g = np.array([1.5, 1.5, 2.5, 2.5, 3.5, 3.5])     # 1 + 0.5 p
    g *= 1.0 / (np.sqrt((g ** 2).sum()) + 1e-6)
    np.testing.assert_allclose(np.concatenate([a.grad.data, b.grad.data, c.grad.data]),
                               g, rtol=1e-13)
    np.testing.assert_allclose(c.data, 5.0 - g[4:], rtol=1e-13)


# -----------------------------------------------------------------------------
# convergence, and dezero parity
# -----------------------------------------------------------------------------
@pytest.mark.parametrize('opt, steps', [
    (O.SGD(lr=0.1), 100), (O.MomentumSGD(lr=0.05), 200), (O.AdaGrad(lr=0.5), 300),
    (O.AdaDelta(), 1000), (O.Adam(alpha=0.1), 300),
], ids=lambda v: type(v).__name__ if not isinstance(v, int) else str(v))
def test_quadratic_converges(opt, steps):
    c = np.array([1.0, -2.0, 0.5])
    layer = L.Layer()
    layer.x = Parameter(np.zeros(3))
    opt.setup(layer)
    for _ in range(steps):
        layer.cleargrads()
        F.sum((layer.x - c) ** 2).backward()
        opt.update()
    np.testing.assert_allclose(layer.x.data, c, atol=1e-2)


OPTIMIZERS = [('SGD', {'lr': 0.2}), ('MomentumSGD', {}), ('AdaGrad', {'lr': 0.05}),
              ('AdaDelta', {}), ('Adam', {'alpha': 0.01})]


@pytest.mark.parametrize('case', ['large', 'small', 'mixed-dtype', 'numpy-scalars'])
@pytest.mark.parametrize('name, kwargs', OPTIMIZERS, ids=[n for n, _ in OPTIMIZERS])
def test_steps_are_bitwise_dezeros(dezero, name, kwargs, case):
    """Same parameters and gradients into both libraries' optimizers give
    identical arrays: float32 parameters large enough for the scratch-array
    path and small ones; float64 gradients on float32 parameters, and NumPy
    float64 hyperparameters (both of which take DeZero's expressions)."""
    assert O._SCRATCH_MIN_SIZE <= 64 * 64
    shape = (64, 64) if case in ('large', 'numpy-scalars') else SHAPE
    if case == 'numpy-scalars':
        kwargs = {k: np.float64(v) for k, v in kwargs.items()}
    g_dtype = np.float64 if case == 'mixed-dtype' else np.float32
    init = [RNG.standard_normal(shape).astype(np.float32) for _ in range(2)]
    grads = [[RNG.standard_normal(shape).astype(g_dtype) for _ in init]
             for _ in range(4)]

    ours, ref = L.Layer(), dezero.Layer()
    for i, arr in enumerate(init):
        setattr(ours, f'p{i}', Parameter(arr.copy()))
        setattr(ref, f'p{i}', dezero.Parameter(arr.copy()))
    ours_opt = getattr(O, name)(**kwargs).setup(ours)
    ref_opt = getattr(dezero.optimizers, name)(**kwargs).setup(ref)
    for gs in grads:
        for i, g in enumerate(gs):
            getattr(ours, f'p{i}').grad = Variable(g.copy())
            getattr(ref, f'p{i}').grad = dezero.Variable(g.copy())
        ours_opt.update()
        ref_opt.update()
    for i in range(len(init)):
        np.testing.assert_array_equal(getattr(ours, f'p{i}').data,
                                      getattr(ref, f'p{i}').data)


@pytest.mark.parametrize('name, kwargs', OPTIMIZERS, ids=[n for n, _ in OPTIMIZERS])
def test_mlp_training_matches_dezero(dezero, name, kwargs):
    """50 steps on the same seeded MLP: DeZero's weights are float64 under
    NumPy 2, ours float32, so the losses agree to float32 precision."""
    x = RNG.standard_normal((32, 3))
    t = np.sin(x.sum(axis=1, keepdims=True))

    def train(models, functions, optimizers):
        np.random.seed(0)
        model = models.MLP([10, 10, 1])
        opt = getattr(optimizers, name)(**kwargs).setup(model)
        if name == 'SGD':
            opt.add_hook(optimizers.WeightDecay(1e-3))
            opt.add_hook(optimizers.ClipGrad(0.5))
        losses = []
        for _ in range(50):
            loss = functions.mean_squared_error(model(x), t)
            model.cleargrads()
            loss.backward()
            opt.update()
            losses.append(float(loss.data))
        return np.array(losses)

    ref = train(dezero.models, dezero.functions, dezero.optimizers)
    ours = train(M, F, O)
    assert ref[-1] < ref[0]
    np.testing.assert_allclose(ours, ref, rtol=1e-6)


# -----------------------------------------------------------------------------
# Adam's one-call step (_core._adam_step) against its NumPy expressions
# -----------------------------------------------------------------------------
def _adam_run(monkeypatch, one_call, dtype, grads, data, errstate=None, **kwargs):
    """Adam over grads from data; the parameter, m, v, the warnings' texts
    and the error raised, if any. one_call=False takes the NumPy route."""
    monkeypatch.setattr(O, '_adam_step', REAL_ADAM_STEP if one_call else lambda *args: False)
    layer = L.Layer()
    layer.p = Parameter(data.astype(dtype))
    opt = O.Adam(**kwargs).setup(layer)
    with np.errstate(all='ignore'):     # the casts are not the step
        grads = [g.astype(dtype) for g in grads]
    error = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        with np.errstate(**(errstate or {})):
            try:
                for g in grads:
                    layer.p.grad = Variable(g)
                    opt.update()
            except FloatingPointError as e:
                error = str(e)
    key = id(layer.p)
    return (layer.p.data, opt.ms[key], opt.vs[key],
            [str(w.message) for w in caught], error)


ADAM_CASES = {
    'plain': ({}, lambda r, s: r.standard_normal(s)),
    'nan-and-inf': ({}, lambda r, s: np.where(r.random(s) < 0.2, np.nan,
                                              np.where(r.random(s) < 0.2, -np.inf,
                                                       r.standard_normal(s)))),
    'overflow': ({'alpha': 1e30, 'eps': 0.0}, lambda r, s: r.standard_normal(s) * 1e200),
    'underflow': ({'eps': 1e-300}, lambda r, s: r.standard_normal(s) * 1e-170),
}


@pytest.mark.parametrize('errstate', [None, {'all': 'raise'}], ids=['warn', 'raise'])
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('case', list(ADAM_CASES))
def test_adam_one_call_step_is_numpys_to_the_bit(monkeypatch, case, dtype, errstate):
    """The one-call step gives NumPy's parameter, moments, warnings and
    errors, bit for bit, NaNs included: values that raise a floating-point
    exception or give a NaN are left to NumPy, with nothing changed first."""
    kwargs, draw = ADAM_CASES[case]
    r = np.random.default_rng(7)
    shape = (10, 3)
    data = r.standard_normal(shape)
    grads = [draw(r, shape) for _ in range(5)]
    ours = _adam_run(monkeypatch, True, dtype, grads, data, errstate, **kwargs)
    ref = _adam_run(monkeypatch, False, dtype, grads, data, errstate, **kwargs)
    for a, b in zip(ours[:3], ref[:3]):
        assert a.dtype == b.dtype == dtype
        assert a.tobytes() == b.tobytes()
    assert ours[3:] == ref[3:]
    if case in ('nan-and-inf', 'overflow'):     # these do reach NumPy's warnings
        assert ours[3] or ours[4]


def test_adam_one_call_step_declines_and_changes_nothing():
    """Where the one call does not apply it returns False and writes
    nothing: other dtypes, a read-only, strided or overlapping array, a
    NumPy-scalar coefficient, an empty parameter."""
    def arrays(n=6, dtype=np.float32):
        r = np.random.default_rng(1)
        return [r.random(n).astype(dtype) for _ in range(4)]

    def declines(d, g, m, v, c=(0.1, 0.001, 1e-8, 0.01)):
        before = [a.copy() for a in (d, g, m, v)]
        assert REAL_ADAM_STEP(d, g, m, v, *c) is False
        for a, b in zip((d, g, m, v), before):
            assert a.tobytes() == b.tobytes()

    d, g, m, v = arrays()
    assert REAL_ADAM_STEP(d, g, m, v, 0.1, 0.001, 1e-8, 0.01) is True   # it applies
    declines(*arrays(dtype=np.float16))
    d, g, m, v = arrays()
    declines(d, g.astype(np.float64), m, v)                # gradient of another type
    d.flags.writeable = False
    declines(d, g, m, v)                                   # read-only parameter
    d, g, m, v = arrays(12)
    declines(d[::2], g[::2], m[::2], v[::2])               # strided
    d, g, m, v = arrays()
    declines(d, g, m, m)                                   # m and v one array
    declines(d, d, m, v)                                   # the gradient is the parameter
    declines(d, g, m[:3], v[:3])                           # shapes differ
    declines(d, g, m, v, (np.float64(0.1), 0.001, 1e-8, 0.01))
    declines(d, g, m, v, (0.1, 0.001, 0, 0.01))            # an int
    declines(*arrays(0))


def test_adam_one_call_step_clears_flags_numpy_left_set():
    """NumPy leaves the floating-point flags of an ignored overflow set. The
    one-call step clears them before its loop, rather than taking them for
    its own and declining: it applies, with the bits of a clean start."""
    r = np.random.default_rng(3)
    arrays = [r.random(6).astype(np.float32) for _ in range(4)]
    clean = [a.copy() for a in arrays]
    assert REAL_ADAM_STEP(*clean, 0.1, 0.001, 1e-8, 0.01) is True
    with np.errstate(all='ignore'):
        np.array([1e308]) * 10      # overflows, and the flag stays set
    if platform.machine() in ('x86_64', 'AMD64') and ctypes.util.find_library('m'):
        libm = ctypes.CDLL(ctypes.util.find_library('m'))
        assert libm.fetestexcept(0x08)      # FE_OVERFLOW on x86: the premise holds
    assert REAL_ADAM_STEP(*arrays, 0.1, 0.001, 1e-8, 0.01) is True
    for a, b in zip(arrays, clean):
        assert a.tobytes() == b.tobytes()
