"""F.batched_matmul, F.scaled_dot_product_attention and
L.MultiHeadAttention: gradients against central differences, values and
gradients against PyTorch with the same weights (skipped without torch)."""
import numpy as np
import pytest
from conftest import num_grads

import cydezero
import cydezero.functions as F
import cydezero.layers as L
from cydezero import Variable

RNG = np.random.default_rng(0)


def weighted(f, w):
    """sum(f(...) * w): a scalar whose gradient sees every output entry."""
    return lambda *xs: F.sum(f(*[Variable(x) for x in xs]) * w)


def check_grads(f, arrays, rtol=1e-6, atol=1e-8):
    xs = [Variable(a.copy()) for a in arrays]
    y = f(*xs)
    w = RNG.normal(size=y.shape)
    F.sum(y * w).backward()
    want = num_grads(weighted(f, w), arrays)
    for x, g in zip(xs, want):
        np.testing.assert_allclose(x.grad.data, g, rtol=rtol, atol=atol)


@pytest.mark.parametrize('sa,sb', [((2, 3, 4), (2, 4, 5)), ((2, 1, 3, 4), (3, 4, 2)),
                                   ((3, 4), (2, 4, 2)), ((4, 3), (3, 2))])
def test_batched_matmul_values_and_gradients(sa, sb):
    a, b = RNG.normal(size=sa), RNG.normal(size=sb)
    np.testing.assert_array_equal(F.batched_matmul(a, b).data, np.matmul(a, b))
    check_grads(F.batched_matmul, [a, b])


def test_batched_matmul_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r'got \(2, 3\) and \(4, 5\)'):
        F.batched_matmul(np.ones((2, 3)), np.ones((4, 5)))


def masks():
    m = RNG.random((3, 5)) > 0.4
    m[:, 0] = True
    dead = m.copy()
    dead[1] = False  # a row where nothing takes part
    return {'none': None, 'bool': m, 'dead_row': dead,
            'float': RNG.normal(size=(3, 5)), 'causal': 'causal'}


@pytest.mark.parametrize('kind', list(masks()))
def test_attention_gradients_match_central_differences(kind):
    q, k, v = (RNG.normal(size=(2, 3, 4)), RNG.normal(size=(2, 5, 4)),
               RNG.normal(size=(2, 5, 3)))
    mask = masks()[kind]
    causal = mask == 'causal' if isinstance(mask, str) else False
    if causal:
        mask = None

    def f(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, mask=mask, is_causal=causal)
    check_grads(f, [q, k, v])


def test_a_row_with_nothing_to_attend_is_zero_not_nan():
    q, k, v = (RNG.normal(size=(2, 4)), RNG.normal(size=(3, 4)), RNG.normal(size=(3, 4)))
    mask = np.array([[True, False, True], [False, False, False]])
    y = F.scaled_dot_product_attention(q, k, v, mask=mask)
    np.testing.assert_array_equal(y.data[1], 0)
    assert np.isfinite(y.data).all()


@pytest.mark.parametrize('kind', list(masks()))
def test_attention_equals_torch(kind):
    torch = pytest.importorskip('torch')
    q, k, v = (RNG.normal(size=(2, 3, 4)), RNG.normal(size=(2, 5, 4)),
               RNG.normal(size=(2, 5, 3)))
    mask = masks()[kind]
    causal = isinstance(mask, str)
    if causal:
        mask = None
    gy = RNG.normal(size=(2, 3, 3))
    xs = [Variable(a) for a in (q, k, v)]
    y = F.scaled_dot_product_attention(*xs, mask=mask, is_causal=causal, scale=0.7)
    F.sum(y * gy).backward()
    ts = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
    tm = None if mask is None else torch.tensor(mask)
    ty = torch.nn.functional.scaled_dot_product_attention(*ts, attn_mask=tm,
                                                           is_causal=causal, scale=0.7)
    (ty * torch.tensor(gy)).sum().backward()
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-12, atol=1e-14)
    for x, t in zip(xs, ts):
        np.testing.assert_allclose(x.grad.data, t.grad.numpy(), rtol=1e-10, atol=1e-13)


def test_attention_float32_stays_float32():
    q = RNG.normal(size=(2, 3, 4)).astype(np.float32)
    y = F.scaled_dot_product_attention(q, q, q, mask=np.ones((3, 3), bool))
    assert y.dtype == np.float32


def test_attention_dropout_only_in_training():
    q = RNG.normal(size=(2, 3, 4))
    base = F.scaled_dot_product_attention(q, q, q).data
    with cydezero.test_mode():
        np.testing.assert_array_equal(
            F.scaled_dot_product_attention(q, q, q, dropout_p=0.5).data, base)
    np.random.seed(0)
    assert not np.allclose(F.scaled_dot_product_attention(q, q, q, dropout_p=0.5).data,
                           base)


def mha_and_torch(E=8, heads=2, kdim=None, seed=0):
    torch = pytest.importorskip('torch')
    torch.manual_seed(seed)
    kdim = kdim or E
    tm = torch.nn.MultiheadAttention(E, heads, batch_first=True, kdim=kdim, vdim=kdim,
                                     dtype=torch.float64)
    with torch.no_grad():  # non-zero biases, so that their mapping is checked
        tm.in_proj_bias.uniform_(-0.5, 0.5)
        tm.out_proj.bias.uniform_(-0.5, 0.5)
    m = L.MultiHeadAttention(heads)
    m._build(E)
    if tm.in_proj_weight is not None:
        Wq, Wk, Wv = tm.in_proj_weight.detach().numpy().copy().reshape(3, E, E)
    else:
        Wq, Wk, Wv = (tm.q_proj_weight.detach().numpy(), tm.k_proj_weight.detach().numpy(),
                      tm.v_proj_weight.detach().numpy())
    bq, bk, bv = tm.in_proj_bias.detach().numpy().copy().reshape(3, E)
    for lin, W, b in ((m.wq, Wq, bq), (m.wk, Wk, bk), (m.wv, Wv, bv),
                      (m.wo, tm.out_proj.weight.detach().numpy(),
                       tm.out_proj.bias.detach().numpy())):
        lin.W.data = W.T.copy()
        lin.b.data = b.copy()
    return m, tm, torch


@pytest.mark.parametrize('cross', [False, True])
@pytest.mark.parametrize('with_mask', [False, True])
def test_multi_head_attention_equals_torch(cross, with_mask):
    kdim = 6 if cross else None
    m, tm, torch = mha_and_torch(kdim=kdim)
    x = RNG.normal(size=(2, 3, 8))
    kv = RNG.normal(size=(2, 4, 6)) if cross else x
    S = kv.shape[1]
    mask = None
    if with_mask:
        mask = RNG.random((2, 3, S)) > 0.3
        mask[:, :, 0] = True
    gy = RNG.normal(size=(2, 3, 8))
    xv, kvv = Variable(x), (Variable(kv) if cross else None)
    y = m(xv, kvv, kvv, mask=mask) if cross else m(xv, mask=mask)
    F.sum(y * gy).backward()

    tx = torch.tensor(x, requires_grad=True)
    tkv = torch.tensor(kv, requires_grad=True) if cross else tx
    # torch's boolean mask in MultiheadAttention marks what may NOT attend,
    # per (batch x head) as its first axis.
    tmask = None if mask is None else torch.tensor(~mask).repeat_interleave(2, dim=0)
    ty, _ = tm(tx, tkv, tkv, attn_mask=tmask, need_weights=False)
    (ty * torch.tensor(gy)).sum().backward()
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(xv.grad.data, tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    if cross:
        np.testing.assert_allclose(kvv.grad.data, tkv.grad.numpy(), rtol=1e-9, atol=1e-12)
    Wq_grad = tm.in_proj_weight.grad if tm.in_proj_weight is not None \
        else tm.q_proj_weight.grad
    np.testing.assert_allclose(m.wq.W.grad.data, Wq_grad.numpy()[:8].T, rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(m.wo.W.grad.data, tm.out_proj.weight.grad.numpy().T,
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(m.wo.b.grad.data, tm.out_proj.bias.grad.numpy(),
                               rtol=1e-9, atol=1e-12)


def test_multi_head_attention_gradient_check_and_lazy_sizes():
    np.random.seed(1)
    m = L.MultiHeadAttention(2)
    x = RNG.normal(size=(2, 3, 4))
    y = m(x)
    assert y.shape == (2, 3, 4) and m.embed_dim == 4 and m.wq.W.shape == (4, 4)
    for p in m.params():
        p.data = p.data.astype(np.float64)
    check_grads(lambda x: m(x), [x])


def test_multi_head_attention_explains_bad_shapes():
    with pytest.raises(ValueError, match='not divisible by num_heads 3'):
        L.MultiHeadAttention(3, embed_dim=8)
    with pytest.raises(ValueError, match=r'query must be 3-d \(N, T, E\), got shape \(3, 4\)'):
        L.MultiHeadAttention(2)(np.ones((3, 4)))


def test_attention_values_follow_the_formula_in_numpy():
    q, k, v = (RNG.normal(size=(2, 3, 4)), RNG.normal(size=(2, 5, 4)),
               RNG.normal(size=(2, 5, 3)))
    mask = masks()['bool']
    s = q @ k.transpose(0, 2, 1) / 2.0 + np.where(mask, 0.0, -np.inf)  # 1/sqrt(4)
    w = np.exp(s - s.max(axis=-1, keepdims=True))
    w /= w.sum(axis=-1, keepdims=True)
    y = F.scaled_dot_product_attention(q, k, v, mask=mask)
    np.testing.assert_allclose(y.data, w @ v, rtol=1e-12, atol=1e-14)
