"""The native ``ISqrtCov`` operator: against a numpy float64 reference of the paper's forward,
against its stock twin (outputs and input gradients; MXNet autograd through the unrolled
iteration, i.e. the exact gradient), finite differences, any gather index, the batch paths
(images in parallel, one image with split products), grad_req='add', Module, float16 through
the block, and named errors for bad arguments."""
import numpy as np
import pytest
import mxnet as mx
from mxnet import autograd
from mxnet.base import MXNetError

import gluon_models  # noqa: F401  (loads the operator library)
from gluon_models.nn.representation import ISqrtCov, covpool, sqrtm, triu_index


def np_isqrtcov(x, index=None, iter_num=5, sqrt=True, vectorize=True, eps=0.0):
    """float64 reference: centred covariance / M, trace (+ eps) clamped at 1e-30, the authors' N-step
    coupled Newton-Schulz (first step specialised, last without Z), sqrt(t) compensation, then
    ``flat[:, index]``. Matches the operator's argument defaults."""
    x = np.asarray(x, dtype=np.float64)
    b, c = x.shape[:2]
    xf = x.reshape(b, c, int(np.prod(x.shape[2:])))
    xc = xf - xf.mean(axis=2, keepdims=True)
    out = xc @ xc.transpose(0, 2, 1) / xf.shape[2]
    if sqrt:
        eye = np.eye(c)
        t = np.maximum(np.trace(out, axis1=1, axis2=2) + eps, 1e-30)[:, None, None]
        a = out / t
        if iter_num < 2:
            y = 0.5 * a @ (3 * eye - a)
        else:
            tk = 0.5 * (3 * eye - a)
            y, z = a @ tk, tk
            for _ in range(2, iter_num):
                tk = 0.5 * (3 * eye - z @ y)
                y, z = y @ tk, tk @ z
            y = 0.5 * y @ (3 * eye - z @ y)
        out = np.sqrt(t) * y
    if not vectorize:
        return out
    return out.reshape(b, c * c)[:, np.asarray(index)]


def relmax(a, b):
    return np.abs(np.asarray(a) - np.asarray(b)).max() / max(np.abs(np.asarray(b)).max(), 1e-300)


def features(shape, seed=0):
    return np.maximum(np.random.RandomState(seed).randn(*shape), 0)


def native(x, index, **attrs):
    return mx.nd.ISqrtCov(x, index, **attrs) if attrs.get("vectorize", True) \
        else mx.nd.ISqrtCov(x, **attrs)


def stock(x, index, iter_num=5, sqrt=True, vectorize=True, eps=0.0):
    cov = covpool(mx.nd, x)
    if sqrt:
        cov = sqrtm(mx.nd, cov, iter_num, eps)
    return mx.nd.take(cov.reshape((0, -1)), index, axis=1) if vectorize else cov


def forward_backward(fn, x, index, head, dtype, **attrs):
    xa = mx.nd.array(x, dtype=dtype)
    xa.attach_grad()
    with autograd.record():
        y = fn(xa, index, **attrs)
    y.backward(mx.nd.array(head, dtype=dtype))
    return y.asnumpy(), xa.grad.asnumpy()


CASES = [dict(iter_num=n, sqrt=s, vectorize=v) for n in (0, 1, 2, 3, 5)
         for s, v in ((True, True), (True, False), (False, True))] + \
        [dict(iter_num=5, sqrt=False, vectorize=False)]


@pytest.mark.parametrize("attrs", CASES, ids=lambda a: "N%(iter_num)d-s%(sqrt)d-v%(vectorize)d" % a)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_native_equals_reference_and_stock_twin(attrs, dtype):
    x = features((3, 6, 4, 5))
    index = mx.nd.array(triu_index(6), dtype="int32")
    ref = np_isqrtcov(x, triu_index(6), **attrs)
    head = np.random.RandomState(1).randn(*ref.shape)
    y_n, g_n = forward_backward(native, x, index, head, dtype, **attrs)
    y_s, g_s = forward_backward(stock, x, index, head, dtype, **attrs)
    tol = 1e-12 if dtype == "float64" else 1e-5
    assert y_n.dtype == np.dtype(dtype) and y_n.shape == ref.shape
    assert relmax(y_n, ref) < tol
    assert relmax(y_n, y_s) < tol
    assert relmax(g_n, g_s) < tol


def test_batch_paths_and_wide_channels():
    """Images in parallel (B > threads), one image alone (products split across threads, the
    full-product fallback of the symmetric products), and C large enough for split GEMMs."""
    rs = np.random.RandomState(3)
    for shape in ((7, 5, 3, 3), (1, 130, 4, 4), (2, 130, 3, 5)):
        x = np.maximum(rs.randn(*shape), 0)
        c = shape[1]
        index = mx.nd.array(triu_index(c), dtype="int32")
        head = rs.randn(shape[0], c * (c + 1) // 2)
        y_n, g_n = forward_backward(native, x, index, head, "float64")
        y_s, g_s = forward_backward(stock, x, index, head, "float64")
        assert relmax(y_n, np_isqrtcov(x, triu_index(c))) < 1e-10
        assert relmax(g_n, g_s) < 1e-9


def test_finite_differences():
    rs = np.random.RandomState(4)
    x = rs.randn(2, 3, 2, 3)
    index = mx.nd.array(triu_index(3), dtype="int32")
    for attrs in (dict(iter_num=5), dict(iter_num=1), dict(iter_num=3, vectorize=False),
                  dict(sqrt=False)):
        xa = mx.nd.array(x, dtype="float64")
        xa.attach_grad()
        with autograd.record():
            y = native(xa, index, **attrs)
        proj = rs.randn(*y.shape)
        y.backward(mx.nd.array(proj, dtype="float64"))
        numeric = np.zeros_like(x)
        for i in np.ndindex(*x.shape):
            for sign in (1, -1):
                v = x.copy()
                v[i] += sign * 1e-6
                out = native(mx.nd.array(v, dtype="float64"), index, **attrs).asnumpy()
                numeric[i] += sign * (out * proj).sum() / 2e-6
        assert relmax(xa.grad.asnumpy(), numeric) < 1e-6, attrs


def test_any_gather_index():
    """The column-major upper triangle (GM-SOP's order = linalg.extracttrian lower=True on the
    symmetric result) and repeated positions, whose gradients add up."""
    c = 5
    x = features((2, c, 3, 4), seed=5)
    rows, cols = np.triu_indices(c)
    order = np.lexsort((rows, cols))              # by column, then row
    col_major = (rows[order] * c + cols[order]).astype(np.int32)
    y = mx.nd.ISqrtCov(mx.nd.array(x, dtype="float64"), mx.nd.array(col_major, dtype="int32"))
    full = np_isqrtcov(x, vectorize=False)
    trian = mx.nd.linalg.extracttrian(mx.nd.array(full, dtype="float64"), lower=True).asnumpy()
    assert relmax(y.asnumpy(), trian) < 1e-12
    dup = mx.nd.array([0, 7, 7, 24, 3], dtype="int32")
    head = np.random.RandomState(6).randn(2, 5)
    g_n = forward_backward(native, x, dup, head, "float64")[1]
    g_s = forward_backward(stock, x, dup, head, "float64")[1]
    assert relmax(g_n, g_s) < 1e-12


def test_trace_epsilon_and_column_order():
    """GM-SOP's form: T = 3, trace + 1e-8, the column-major triangle (extracttrian lower=True
    of the symmetric result); the block's ``order`` and ``eps`` for both impls."""
    x = features((3, 5, 4, 4), seed=9)
    x[0] = 0  # a dead component: eps keeps it finite, and it gets no gradient
    ref_full = np_isqrtcov(x, iter_num=3, vectorize=False, eps=1e-8)
    trian = mx.nd.linalg.extracttrian(mx.nd.array(ref_full, dtype="float64"), lower=True)
    head = np.random.RandomState(10).randn(3, 15)
    grads = []
    for impl in ("native", "stock"):
        block = ISqrtCov(5, iter_num=3, order="column", eps=1e-8, impl=impl)
        block.initialize()
        block.cast("float64")
        xa = mx.nd.array(x, dtype="float64")
        xa.attach_grad()
        with autograd.record():
            y = block(xa)
        y.backward(mx.nd.array(head, dtype="float64"))
        assert relmax(y.asnumpy(), trian.asnumpy()) < 1e-12, impl
        grads.append(xa.grad.asnumpy())
    assert relmax(grads[0], grads[1]) < 1e-10 and np.isfinite(grads[0]).all()
    assert list(triu_index(3, "column")) == [0, 1, 4, 2, 5, 8]
    with pytest.raises(ValueError, match="order"):
        triu_index(3, "diagonal")


def test_degenerate_inputs_are_finite():
    index = mx.nd.array(triu_index(4), dtype="int32")
    for x in (np.zeros((2, 4, 3, 3)), np.full((1, 4, 2, 2), 0.3), np.ones((1, 4, 1, 1))):
        y, g = forward_backward(native, x, index, np.ones((x.shape[0], 10)), "float64")
        assert np.isfinite(y).all() and np.isfinite(g).all() and np.abs(y).max() < 1e-6


def test_grad_req_add_through_the_block():
    block = ISqrtCov(4, iter_num=3)
    block.initialize()
    block.cast("float64")
    block.hybridize()
    x = mx.nd.array(features((2, 4, 3, 3)), dtype="float64")
    x.attach_grad(grad_req="add")
    for _ in range(2):
        with autograd.record():
            y = block(x)
        y.backward()
    twin = ISqrtCov(4, iter_num=3, impl="stock")
    twin.initialize()
    twin.cast("float64")
    x2 = x.copy()
    x2.attach_grad()
    with autograd.record():
        y2 = twin(x2)
    y2.backward()
    assert relmax(x.grad.asnumpy(), 2 * x2.grad.asnumpy()) < 1e-12


def test_module_forward_backward_equals_the_twin():
    c = 5
    outs = []
    for impl in ("native", "stock"):
        block = ISqrtCov(c, iter_num=5, impl=impl, prefix="rep_")
        block.initialize()
        sym = block(mx.sym.var("data"))
        mod = mx.mod.Module(sym, data_names=["data"], label_names=None,
                            fixed_param_names=["rep_triu"])
        mod.bind(data_shapes=[("data", (3, c, 4, 4))], inputs_need_grad=True)
        mod.init_params(arg_params={"rep_triu": mx.nd.array(triu_index(c))}, allow_missing=True)
        batch = mx.io.DataBatch([mx.nd.array(features((3, c, 4, 4), seed=7))])
        mod.forward(batch, is_train=True)
        mod.backward([mx.nd.ones((3, c * (c + 1) // 2))])
        outs.append((mod.get_outputs()[0].asnumpy(), mod.get_input_grads()[0].asnumpy()))
    assert relmax(outs[0][0], outs[1][0]) < 1e-5 and relmax(outs[0][1], outs[1][1]) < 1e-5


def test_float16_runs_in_float32():
    x = features((2, 6, 4, 4), seed=8)
    for impl in ("native", "stock"):
        block = ISqrtCov(6, impl=impl)
        block.initialize()
        block.cast("float16")
        y = block(mx.nd.array(x, dtype="float16"))
        assert y.dtype == np.float16
        ref = np_isqrtcov(x.astype(np.float16).astype(np.float64), triu_index(6))
        assert relmax(y.asnumpy(), ref) < 2e-3


@pytest.mark.parametrize("call,named", [
    (lambda x, i: mx.nd.ISqrtCov(x, i, iter_num=-1), "iter_num"),
    (lambda x, i: mx.nd.ISqrtCov(x, i, iter_num="3.5"), "iter_num"),
    (lambda x, i: mx.nd.ISqrtCov(x, i, sqrt="maybe"), "sqrt"),
    (lambda x, i: mx.nd.ISqrtCov(x, i, vectorize="2"), "vectorize"),
    (lambda x, i: mx.nd.ISqrtCov(x, i, bogus=1), "bogus"),
    (lambda x, i: mx.nd.ISqrtCov(x, i, eps=-1e-8), "eps"),
    (lambda x, i: mx.nd.ISqrtCov(x, i, eps="nan"), "eps"),
    (lambda x, i: mx.nd.ISqrtCov(x.reshape((2, 3, 16)), i), "data"),
    (lambda x, i: mx.nd.ISqrtCov(x.astype("int32"), i), "data"),
    (lambda x, i: mx.nd.ISqrtCov(x, i.astype("float32")), "index"),
    (lambda x, i: mx.nd.ISqrtCov(x, i.reshape((2, 3))), "index"),
    (lambda x, i: mx.nd.ISqrtCov(x, mx.nd.array([0, 9], dtype="int32")), "index"),
    (lambda x, i: mx.nd.ISqrtCov(x, mx.nd.array([-1], dtype="int32")), "index"),
    (lambda x, i: mx.nd.ISqrtCov(x), "index"),
    (lambda x, i: mx.nd.ISqrtCov(x, i, vectorize=False), "data"),
])
def test_bad_arguments_are_named_errors(call, named):
    x = mx.nd.ones((2, 3, 4, 4))
    i = mx.nd.array(triu_index(3), dtype="int32")
    # MXNetError from the operator; ValueError from the input-count check of the library's
    # mx.nd wrappers (a missing or surplus input), which names the inputs too
    with pytest.raises((MXNetError, ValueError), match=named):
        call(x, i).wait_to_read()
