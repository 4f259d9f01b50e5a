"""cydezero.functional: every transform against central differences (the
independent truth) and against torch.autograd.functional on the same
functions (skipped where torch is not installed)."""
import numpy as np
import pytest

import cydezero.functional as AF
import cydezero.functions as F
from cydezero import Variable

# torch.autograd.functional warns about torch.jit.script internally.
pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning')


def torch_or_skip():
    return pytest.importorskip('torch')


# ---------------------------------------------------------------------------
# Functions written twice: for cydezero (F) and for torch (T)
# ---------------------------------------------------------------------------
def vec_cz(x):
    return F.sin(x) * x ** 2


def vec_t(x):
    import torch
    return torch.sin(x) * x ** 2


def pair_cz(x, y):  # two inputs, two outputs
    return F.matmul(x, y), F.sum(F.tanh(x)) * F.exp(y[0, 0])


def pair_t(x, y):
    import torch
    return x @ y, torch.tanh(x).sum() * torch.exp(y[0, 0])


def scal_cz(x, y):  # scalar function of two inputs
    return F.sum(F.exp(x) * y ** 2) + F.sum(F.sin(x * y)) + F.sum(x ** 3)


def scal_t(x, y):
    import torch
    return (torch.exp(x) * y ** 2).sum() + torch.sin(x * y).sum() + (x ** 3).sum()


def ln_cz(x):  # layer norm then softmax: second derivatives of new ops
    D = x.shape[-1]
    g = np.linspace(0.5, 1.5, D)
    b = np.linspace(-0.2, 0.3, D)
    y = F.layer_norm(x, Variable(g), Variable(b))
    return F.sum(F.softmax(y, axis=-1) * np.arange(D) + y ** 3)


def ln_t(x):
    import torch
    D = x.shape[-1]
    g = torch.tensor(np.linspace(0.5, 1.5, D))
    b = torch.tensor(np.linspace(-0.2, 0.3, D))
    y = torch.nn.functional.layer_norm(x, (D,), g, b, eps=1e-5)
    return (torch.softmax(y, -1) * torch.arange(D) + y ** 3).sum()


RNG = np.random.default_rng(0)
X = RNG.normal(size=(2, 3))
Y = RNG.normal(size=(3, 2))
Xs = RNG.normal(size=(2, 3))  # same shape as X, for scal
Xv = RNG.normal(size=4)


def numerical_jacobian(f, arrays, eps=1e-6):
    """d f_i / d x_j by central differences: list over outputs of lists over
    inputs of arrays shaped out.shape + in.shape."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]

    def outs():
        y = f(*[Variable(a.copy()) for a in arrays])
        return [v.data for v in (y if isinstance(y, tuple) else (y,))]
    base = outs()
    jac = [[np.zeros(o.shape + a.shape) for a in arrays] for o in base]
    for j, a in enumerate(arrays):
        for idx in np.ndindex(*a.shape):
            orig = a[idx]
            a[idx] = orig + eps
            hi = outs()
            a[idx] = orig - eps
            lo = outs()
            a[idx] = orig
            for i in range(len(base)):
                jac[i][j][(Ellipsis,) + idx] = (hi[i] - lo[i]) / (2 * eps)
    return jac


def as_np(r):
    if isinstance(r, tuple):
        return tuple(as_np(x) for x in r)
    assert isinstance(r, Variable), type(r)
    return r.data


def t_np(r):
    # torch's forward-mode jacobian nests lists where reverse mode nests
    # tuples; the values are what is compared.
    if isinstance(r, (tuple, list)):
        return tuple(t_np(x) for x in r)
    return r.detach().numpy()


def assert_tree_close(a, b, rtol=1e-7, atol=1e-9):
    if isinstance(b, tuple):
        assert isinstance(a, tuple) and len(a) == len(b), (type(a), a)
        for x, y in zip(a, b):
            assert_tree_close(x, y, rtol, atol)
    else:
        assert not isinstance(a, tuple)
        assert a.shape == b.shape, (a.shape, b.shape)
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def tt(*arrays):
    torch = torch_or_skip()
    return tuple(torch.tensor(a) for a in arrays)


# ---------------------------------------------------------------------------
# vjp / jvp
# ---------------------------------------------------------------------------
def test_vjp_is_v_times_the_numerical_jacobian():
    v = (RNG.normal(size=(2, 2)), np.array(0.7))
    out, g = AF.vjp(pair_cz, (X, Y), v)
    J = numerical_jacobian(pair_cz, [X, Y])
    for j in range(2):
        want = sum(np.tensordot(v[i], J[i][j], axes=v[i].ndim) for i in range(2))
        np.testing.assert_allclose(g[j].data, want, rtol=1e-6, atol=1e-8)
    assert isinstance(out, tuple) and len(out) == 2
    np.testing.assert_allclose(out[0].data, X @ Y)


def test_jvp_is_the_numerical_jacobian_times_v():
    v = (RNG.normal(size=X.shape), RNG.normal(size=Y.shape))
    out, jv = AF.jvp(pair_cz, (X, Y), v)
    np.testing.assert_allclose(out[0].data, X @ Y)
    J = numerical_jacobian(pair_cz, [X, Y])
    for i in range(2):
        want = sum(np.tensordot(J[i][j], v[j], axes=v[j].ndim) for j in range(2))
        np.testing.assert_allclose(jv[i].data, want, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize('name', ['vjp', 'jvp'])
def test_vjp_jvp_equal_torch(name):
    torch = torch_or_skip()
    ours, theirs = getattr(AF, name), getattr(torch.autograd.functional, name)
    vo = (RNG.normal(size=(2, 2)), np.array(1.3))
    vi = (RNG.normal(size=X.shape), RNG.normal(size=Y.shape))
    v = vo if name == 'vjp' else vi
    a = ours(pair_cz, (X, Y), v)
    b = theirs(pair_t, tt(X, Y), tt(*v))
    assert_tree_close(as_np(a), t_np(b))
    # one input, one output
    v1 = RNG.normal(size=Xv.shape)
    assert_tree_close(as_np(ours(vec_cz, Xv, v1)),
                      t_np(theirs(vec_t, torch.tensor(Xv), torch.tensor(v1))))


def test_v_may_be_none_only_for_one_element():
    out, g = AF.vjp(lambda x: F.sum(x * x), Xv)
    np.testing.assert_allclose(g.data, 2 * Xv)
    assert out.data == np.sum(Xv * Xv)
    _, jv = AF.jvp(lambda x: x * x, np.array([3.0]))
    np.testing.assert_allclose(jv.data, [6.0])
    with pytest.raises(ValueError, match='v can be None only'):
        AF.vjp(vec_cz, Xv)
    with pytest.raises(ValueError, match=r'v\[0\] has shape \(3,\)'):
        AF.jvp(vec_cz, Xv, np.ones(3))


def test_results_detached_unless_create_graph():
    x = Variable(Xv.copy())
    out, g = AF.vjp(lambda x: F.sum(x ** 3), x)
    assert out.creator is None and g.creator is None and x.grad is None
    out, g = AF.vjp(lambda x: F.sum(x ** 3), x, create_graph=True)
    assert g.creator is not None
    F.sum(g).backward()  # d/dx sum(3 x^2) = 6x, through the caller's x
    np.testing.assert_allclose(x.grad.data, 6 * Xv)


def test_jvp_create_graph_differentiates_through_the_inputs():
    x = Variable(Xv.copy())
    v = RNG.normal(size=Xv.shape)
    _, jv = AF.jvp(lambda x: x ** 3, x, v, create_graph=True)
    F.sum(jv).backward()  # jv = 3 x^2 v, d/dx sum = 6 x v
    np.testing.assert_allclose(x.grad.data, 6 * Xv * v)


def test_unused_input_gives_zeros_or_strict_error():
    def f(x, y):
        return F.sin(x)
    _, g = AF.vjp(f, (Xv, Xv), np.ones(4))
    np.testing.assert_array_equal(g[1].data, np.zeros(4))
    with pytest.raises(RuntimeError, match='strict'):
        AF.vjp(f, (Xv, Xv), np.ones(4), strict=True)


def test_bad_arguments_say_what_they_got():
    with pytest.raises(TypeError, match='inputs must be a Variable or an array, got float'):
        AF.vjp(vec_cz, 1.0)
    with pytest.raises(TypeError, match='func must return Variables'):
        AF.jvp(lambda x: x.data, Xv, Xv)
    with pytest.raises(TypeError, match='only floating-point'):
        AF.jacobian(vec_cz, np.arange(3))


# ---------------------------------------------------------------------------
# jacobian / hessian
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('strategy', ['reverse-mode', 'forward-mode'])
def test_jacobian_equals_the_numerical_one(strategy):
    J = AF.jacobian(pair_cz, (X, Y), strategy=strategy)
    want = numerical_jacobian(pair_cz, [X, Y])
    for i in range(2):
        for j in range(2):
            np.testing.assert_allclose(J[i][j].data, want[i][j], rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize('strategy', ['reverse-mode', 'forward-mode'])
def test_jacobian_equals_torch_in_every_nesting(strategy):
    torch = torch_or_skip()
    TF = torch.autograd.functional
    vec = strategy == 'forward-mode'  # torch's forward mode needs vectorize
    kw = {'strategy': strategy, 'vectorize': vec}
    assert_tree_close(as_np(AF.jacobian(pair_cz, (X, Y), **kw)),
                      t_np(TF.jacobian(pair_t, tt(X, Y), **kw)))
    assert_tree_close(as_np(AF.jacobian(vec_cz, Xv, **kw)),
                      t_np(TF.jacobian(vec_t, torch.tensor(Xv), **kw)))
    assert_tree_close(as_np(AF.jacobian(lambda x: (vec_cz(x),), Xv, **kw)),
                      t_np(TF.jacobian(lambda x: (vec_t(x),), torch.tensor(Xv), **kw)))
    assert_tree_close(as_np(AF.jacobian(vec_cz, (Xv,), **kw)),
                      t_np(TF.jacobian(vec_t, (torch.tensor(Xv),), **kw)))


def test_jacobian_create_graph_is_differentiable():
    x = Variable(Xv.copy())
    J = AF.jacobian(lambda x: x ** 3, x, create_graph=True)  # diag(3 x^2)
    F.sum(J).backward()
    np.testing.assert_allclose(x.grad.data, 6 * Xv)


def test_hessian_equals_the_numerical_jacobian_of_the_gradient():
    H = AF.hessian(scal_cz, (Xs, X))

    def gradient(x, y):
        return tuple(AF.vjp(scal_cz, (x.data, y.data))[1])
    want = numerical_jacobian(gradient, [Xs, X])
    for i in range(2):
        for j in range(2):
            np.testing.assert_allclose(H[i][j].data, want[i][j], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize('strategy', ['reverse-mode', 'forward-mode'])
def test_hessian_equals_torch(strategy):
    torch = torch_or_skip()
    TF = torch.autograd.functional
    vec = strategy == 'forward-mode'
    kw = {'outer_jacobian_strategy': strategy, 'vectorize': vec}
    assert_tree_close(as_np(AF.hessian(scal_cz, (Xs, X), **kw)),
                      t_np(TF.hessian(scal_t, tt(Xs, X), **kw)))
    assert_tree_close(as_np(AF.hessian(ln_cz, X, **kw)),
                      t_np(TF.hessian(ln_t, torch.tensor(X), **kw)), rtol=1e-6, atol=1e-8)


def test_hessian_create_graph_gives_third_derivatives():
    x = Variable(Xv.copy())
    H = AF.hessian(lambda x: F.sum(x ** 4), x, create_graph=True)  # diag(12 x^2)
    F.sum(H).backward()
    np.testing.assert_allclose(x.grad.data, 24 * Xv)


def test_hessian_needs_a_scalar_function():
    with pytest.raises(ValueError, match='one element'):
        AF.hessian(vec_cz, Xv)


# ---------------------------------------------------------------------------
# hvp / vhp
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('name', ['hvp', 'vhp'])
def test_hvp_vhp_equal_the_hessian_times_v(name):
    v = (RNG.normal(size=Xs.shape), RNG.normal(size=X.shape))
    out, res = getattr(AF, name)(scal_cz, (Xs, X), v)
    H = AF.hessian(scal_cz, (Xs, X))
    for i in range(2):
        want = sum(np.tensordot(H[i][j].data, v[j], axes=2) for j in range(2))
        np.testing.assert_allclose(res[i].data, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out.data, scal_cz(Variable(Xs), Variable(X)).data)


@pytest.mark.parametrize('name', ['hvp', 'vhp'])
def test_hvp_vhp_equal_torch(name):
    torch = torch_or_skip()
    ours, theirs = getattr(AF, name), getattr(torch.autograd.functional, name)
    v = (RNG.normal(size=Xs.shape), RNG.normal(size=X.shape))
    assert_tree_close(as_np(ours(scal_cz, (Xs, X), v)),
                      t_np(theirs(scal_t, tt(Xs, X), tt(*v))))
    v1 = RNG.normal(size=X.shape)
    assert_tree_close(as_np(ours(ln_cz, X, v1)),
                      t_np(theirs(ln_t, torch.tensor(X), torch.tensor(v1))),
                      rtol=1e-6, atol=1e-8)
