"""L.GRU, F.layer_norm / L.LayerNorm and L.Dropout: gradients against
central differences, values and gradients against PyTorch with the same
weights (skipped without torch)."""
import numpy as np
import pytest
from conftest import num_grads

import cydezero
import cydezero.functions as F
import cydezero.layers as L
from cydezero import Variable

RNG = np.random.default_rng(0)


def to64(layer):
    for p in layer.params():
        p.data = p.data.astype(np.float64)


# ---------------------------------------------------------------------------
# GRU
# ---------------------------------------------------------------------------
def run_gru(gru, xs):
    gru.reset_state()
    return [gru(x) for x in xs]


def test_gru_gradients_match_central_differences():
    np.random.seed(0)
    gru = L.GRU(3, in_size=2)
    to64(gru)
    for p in gru.params():  # non-zero biases
        p.data = p.data + RNG.normal(size=p.shape) * 0.1
    xs = RNG.normal(size=(3, 4, 2))
    w = RNG.normal(size=(4, 3))

    def loss(*arrays):
        hs = run_gru(gru, [Variable(a) for a in arrays])
        return F.sum(hs[-1] * w) + F.sum(hs[0] * hs[1])
    vs = [Variable(a.copy()) for a in xs]
    hs = run_gru(gru, vs)
    gru.cleargrads()
    (F.sum(hs[-1] * w) + F.sum(hs[0] * hs[1])).backward()
    got = [v.grad.data for v in vs]
    got_W = {k: p.grad.data.copy() for k, p in gru._named_params()}
    want = num_grads(lambda *a: loss(*a).data, list(xs))
    for g, n in zip(got, want):
        np.testing.assert_allclose(g, n, rtol=1e-6, atol=1e-8)
    # and one weight of each kind
    for key in ('x2n/W', 'h2r/W', 'h2n/b', 'x2z/b'):
        p = dict(gru._named_params())[key]
        base = p.data.copy()

        def f(a, p=p):
            p.data = a
            return loss(*xs).data
        (n,) = num_grads(f, [base])
        p.data = base
        np.testing.assert_allclose(got_W[key], n, rtol=1e-6, atol=1e-8, err_msg=key)


def test_gru_equals_torch_gru_cell():
    torch = pytest.importorskip('torch')
    torch.manual_seed(0)
    H, I = 4, 3
    cell = torch.nn.GRUCell(I, H, dtype=torch.float64)
    gru = L.GRU(H, in_size=I)
    Wi = cell.weight_ih.detach().numpy().reshape(3, H, I)  # r, z, n
    Wh = cell.weight_hh.detach().numpy().reshape(3, H, H)
    bi = cell.bias_ih.detach().numpy().reshape(3, H)
    bh = cell.bias_hh.detach().numpy().reshape(3, H)
    gru.x2r.W.data, gru.x2z.W.data, gru.x2n.W.data = (W.T.copy() for W in Wi)
    gru.h2r.W.data, gru.h2z.W.data, gru.h2n.W.data = (W.T.copy() for W in Wh)
    gru.x2r.b.data, gru.x2z.b.data = bi[0] + bh[0], bi[1] + bh[1]
    gru.x2n.b.data, gru.h2n.b.data = bi[2].copy(), bh[2].copy()

    xs = RNG.normal(size=(4, 2, I))
    gys = RNG.normal(size=(4, 2, H))
    vs = [Variable(x) for x in xs]
    hs = run_gru(gru, vs)
    F.sum(sum(h * g for h, g in zip(hs, gys))).backward()

    tx = [torch.tensor(x, requires_grad=True) for x in xs]
    h, ths = None, []
    for x in tx:
        h = cell(x, h)
        ths.append(h)
    sum((h * torch.tensor(g)).sum() for h, g in zip(ths, gys)).backward()

    for h, th in zip(hs, ths):
        np.testing.assert_allclose(h.data, th.detach().numpy(), rtol=1e-12, atol=1e-14)
    for v, t in zip(vs, tx):
        np.testing.assert_allclose(v.grad.data, t.grad.numpy(), rtol=1e-10, atol=1e-13)
    gWi = cell.weight_ih.grad.numpy().reshape(3, H, I)
    gWh = cell.weight_hh.grad.numpy().reshape(3, H, H)
    gbh = cell.bias_hh.grad.numpy().reshape(3, H)
    for ours, theirs in ((gru.x2r.W, gWi[0]), (gru.x2n.W, gWi[2]), (gru.h2z.W, gWh[1]),
                         (gru.h2n.W, gWh[2])):
        np.testing.assert_allclose(ours.grad.data, theirs.T, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(gru.h2n.b.grad.data, gbh[2], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(gru.x2r.b.grad.data, gbh[0], rtol=1e-10, atol=1e-13)


def test_gru_reset_state_starts_again_from_zero():
    np.random.seed(0)
    gru = L.GRU(3)
    x = RNG.normal(size=(2, 5)).astype(np.float32)
    h1 = gru(x).data
    h2 = gru(x).data
    gru.reset_state()
    np.testing.assert_array_equal(gru(x).data, h1)
    assert not np.allclose(h1, h2)
    assert gru.x2r.W.shape == (5, 3) and h1.dtype == np.float32


# ---------------------------------------------------------------------------
# layer_norm / LayerNorm
# ---------------------------------------------------------------------------
def test_layer_norm_gradients_match_central_differences():
    x, g, b = RNG.normal(size=(2, 3, 5)), RNG.normal(size=5), RNG.normal(size=5)
    w = RNG.normal(size=(2, 3, 5))
    vs = [Variable(a.copy()) for a in (x, g, b)]
    F.sum(F.layer_norm(*vs) * w).backward()
    want = num_grads(lambda *a: F.layer_norm(*[Variable(t) for t in a]).data * w, [x, g, b])
    for v, n in zip(vs, want):
        np.testing.assert_allclose(v.grad.data, n, rtol=1e-6, atol=1e-8)


def test_layer_norm_second_derivative_matches_central_differences():
    x, g, b = RNG.normal(size=(2, 4)), RNG.normal(size=4), RNG.normal(size=4)
    w = RNG.normal(size=(2, 4))

    def gx(a):
        v = Variable(a)
        (d,) = cydezero.grad(F.sum(F.layer_norm(v, Variable(g), Variable(b)) ** 2 * w), [v])
        return d.data
    v = Variable(x.copy())
    (d,) = cydezero.grad(F.sum(F.layer_norm(v, Variable(g), Variable(b)) ** 2 * w), [v],
                         create_graph=True)
    F.sum(d).backward()
    (want,) = num_grads(gx, [x])
    np.testing.assert_allclose(v.grad.data, want, rtol=1e-5, atol=1e-7)


def test_layer_norm_equals_torch():
    torch = pytest.importorskip('torch')
    x, g, b = RNG.normal(size=(3, 6)) * 4 + 1, RNG.normal(size=6), RNG.normal(size=6)
    gy = RNG.normal(size=(3, 6))
    vs = [Variable(a) for a in (x, g, b)]
    y = F.layer_norm(*vs, eps=1e-3)
    F.sum(y * gy).backward()
    ts = [torch.tensor(a, requires_grad=True) for a in (x, g, b)]
    ty = torch.nn.functional.layer_norm(ts[0], (6,), ts[1], ts[2], eps=1e-3)
    (ty * torch.tensor(gy)).sum().backward()
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-12, atol=1e-13)
    for v, t in zip(vs, ts):
        np.testing.assert_allclose(v.grad.data, t.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_layer_norm_layer_makes_its_parameters_on_first_call():
    ln = L.LayerNorm()
    x = RNG.normal(size=(4, 7)).astype(np.float32)
    y = ln(x)
    assert ln.gamma.shape == (7,) and ln.gamma.dtype == np.float32
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.data.mean(axis=-1), 0, atol=1e-6)
    np.testing.assert_allclose(y.data.var(axis=-1), 1, rtol=1e-3)
    assert [k for k, _ in ln._named_params()] == ['gamma', 'beta']
    assert L.LayerNorm(in_size=3).gamma.shape == (3,)


def test_layer_norm_rejects_mismatched_gamma():
    with pytest.raises(ValueError, match=r'gamma must have shape \(4,\) to match '
                                         r'x.shape=\(2, 4\), got \(3,\)'):
        F.layer_norm(np.ones((2, 4)), np.ones(3), np.ones(4))


# ---------------------------------------------------------------------------
# Dropout
# ---------------------------------------------------------------------------
def test_dropout_layer_masks_and_scales_in_training_only():
    d = L.Dropout(0.25)
    x = Variable(np.ones((200, 50)))
    np.random.seed(3)
    y = d(x)
    kept = y.data != 0
    np.testing.assert_allclose(y.data[kept], 1 / 0.75)
    assert abs(kept.mean() - 0.75) < 0.02
    F.sum(y).backward()
    np.testing.assert_array_equal(x.grad.data, kept / 0.75)
    with cydezero.test_mode():
        assert d(x) is x or np.array_equal(d(x).data, x.data)


def test_dropout_layer_rejects_a_bad_ratio():
    with pytest.raises(ValueError, match=r'dropout_ratio must lie in \[0, 1\], got 1.5'):
        L.Dropout(1.5)


def test_gru_follows_its_equations_written_in_numpy():
    # The equations of the docstring, independently of torch.
    np.random.seed(2)
    gru = L.GRU(3, in_size=2)
    to64(gru)
    for p in gru.params():
        p.data = p.data + RNG.normal(size=p.shape) * 0.3
    P = {k: p.data for k, p in gru._named_params()}

    def sig(a):
        return 1 / (1 + np.exp(-a))
    xs = RNG.normal(size=(3, 4, 2))
    h = np.zeros((4, 3))
    for x, got in zip(xs, run_gru(gru, xs)):
        r = sig(x @ P['x2r/W'] + P['x2r/b'] + h @ P['h2r/W'])
        z = sig(x @ P['x2z/W'] + P['x2z/b'] + h @ P['h2z/W'])
        n = np.tanh(x @ P['x2n/W'] + P['x2n/b'] + r * (h @ P['h2n/W'] + P['h2n/b']))
        h = (1 - z) * n + z * h
        np.testing.assert_allclose(got.data, h, rtol=1e-12, atol=1e-14)
