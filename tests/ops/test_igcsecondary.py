"""IGCSecondary (an IGC block's secondary 1 x 1 group convolution with its two permutations
folded in): numpy reference, the three stock operators it replaces, gradients, finite
differences, bad arguments, gradient accumulation, Module."""
import numpy as np
import pytest
import mxnet as mx
from mxnet import autograd
from mxnet.base import MXNetError
from mxnet.test_utils import check_numeric_gradient

import gluon_models  # noqa: F401  (loads the operator library)
from gluon_models.nn import InterleavedConv2D
from tests.ops.test_reorder import np_reorder, np_reorder_grad


def np_grouped_1x1(x, w, groups):
    """Grouped 1 x 1 convolution of (N, C, ...) with weight (C, C / groups, 1, 1)."""
    N, C = x.shape[:2]
    if x.size == 0:  # nothing to sum (also C = 0, where there are no groups)
        return np.zeros_like(x)
    g = C // groups
    xs = x.reshape(N, C, -1)
    out = np.empty_like(xs)
    for k in range(groups):
        wk = w[k * g:(k + 1) * g, :, 0, 0]
        out[:, k * g:(k + 1) * g] = np.einsum("oi,nis->nos", wk, xs[:, k * g:(k + 1) * g])
    return out.reshape(x.shape)


def np_igc_secondary(x, w, primary):
    """What the operator replaces, step by step: Reorder(L), the grouped 1 x 1 convolution
    with C / L groups, Reorder(C / L) (spec igc.md 1.3)."""
    C = x.shape[1]
    if x.size == 0:
        return np.zeros_like(x)
    return np_reorder(np_grouped_1x1(np_reorder(x, primary), w, C // primary), C // primary)


def np_igc_secondary_grads(x, w, dy, primary):
    """Gradients through the same three steps: permutation gradients are the inverse
    permutations; the grouped conv's are per group dX = W^T dY, dW = dY X^T."""
    C = x.shape[1]
    Q = C // primary
    xp = np_reorder(x, primary).reshape(x.shape[0], C, -1)
    dyp = np_reorder_grad(dy, Q).reshape(x.shape[0], C, -1)
    dxp = np.empty_like(xp)
    dw = np.zeros_like(w)
    for k in range(Q):
        s = slice(k * primary, (k + 1) * primary)
        dxp[:, s] = np.einsum("oi,nos->nis", w[s, :, 0, 0], dyp[:, s])
        dw[s, :, 0, 0] = np.einsum("nos,nis->oi", dyp[:, s], xp[:, s])
    return np_reorder_grad(dxp.reshape(x.shape), primary), dw


# (data shape, primary): ndim 2..5, L = 1, L = C, the IGC networks' kinds (L16M16-like, L100M2-
# like, CIFAR L24M2) and a spatial size that no GEMM kernel tiles evenly
CASES = [((3, 6), 2), ((2, 6, 5), 3), ((2, 12, 3, 5), 4), ((2, 8, 4, 4), 1), ((2, 8, 4, 4), 8),
         ((3, 64, 7, 7), 16), ((2, 200, 5, 5), 100), ((4, 48, 6, 6), 24), ((2, 10, 2, 3, 2), 5),
         ((1, 32, 13, 11), 4)]


def _run(x, w, dy, primary, dtype):
    xn, wn = mx.nd.array(x, dtype=dtype), mx.nd.array(w, dtype=dtype)
    xn.attach_grad()
    wn.attach_grad()
    with autograd.record():
        y = mx.nd.IGCSecondary(xn, wn, primary=primary)
    y.backward(mx.nd.array(dy, dtype=dtype))
    return y.asnumpy(), xn.grad.asnumpy(), wn.grad.asnumpy()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape,L", CASES)
def test_forward_backward_match_numpy(shape, L, dtype):
    rng = np.random.RandomState(sum(shape) + L)
    x = rng.uniform(-1, 1, shape)
    w = rng.uniform(-1, 1, (shape[1], L, 1, 1))
    dy = rng.uniform(-1, 1, shape)
    y, dx, dw = _run(x, w, dy, L, dtype)
    want_dx, want_dw = np_igc_secondary_grads(x, w, dy, L)
    tol = 1e-12 if dtype == "float64" else 2e-5
    for got, want in ((y, np_igc_secondary(x, w, L)), (dx, want_dx), (dw, want_dw)):
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1.0, np.abs(want).max()))


@pytest.mark.parametrize("shape,L", [((2, 64, 7, 7), 16), ((2, 200, 5, 5), 100),
                                     ((3, 48, 4, 4), 24)])
def test_equals_reorder_conv_reorder(shape, L):
    """The three stock/native operators it replaces, in MXNet (float32, the oneDNN conv)."""
    rng = np.random.RandomState(0)
    C = shape[1]
    x = mx.nd.array(rng.standard_normal(shape))
    w = mx.nd.array(rng.standard_normal((C, L, 1, 1)))
    dy = mx.nd.array(rng.standard_normal(shape))
    got, want = [], []
    for fused, out in ((True, got), (False, want)):
        xi, wi = x.copy(), w.copy()
        xi.attach_grad()
        wi.attach_grad()
        with autograd.record():
            if fused:
                y = mx.nd.IGCSecondary(xi, wi, primary=L)
            else:
                y = mx.nd.Reorder(mx.nd.Convolution(mx.nd.Reorder(xi, branch_factor=L), wi,
                                                    kernel=(1, 1), num_filter=C, num_group=C // L,
                                                    no_bias=True), branch_factor=C // L)
        y.backward(dy)
        out += [y.asnumpy(), xi.grad.asnumpy(), wi.grad.asnumpy()]
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max())


@pytest.mark.parametrize("shape,L", [((2, 6, 3, 2), 2), ((2, 12, 2, 2), 3), ((3, 4, 5), 4)])
def test_finite_differences(shape, L):
    rng = np.random.RandomState(1)
    x = rng.uniform(-1, 1, shape)
    w = rng.uniform(-1, 1, (shape[1], L, 1, 1))
    sym = mx.sym.IGCSecondary(mx.sym.var("data"), mx.sym.var("weight"), primary=L)
    check_numeric_gradient(sym, {"data": x, "weight": w}, numeric_eps=1e-6, rtol=1e-5,
                           atol=1e-7, dtype=np.float64)


def test_empty_batch_and_empty_image():
    w = mx.nd.ones((8, 4, 1, 1))
    w.attach_grad()
    with mx.util.np_shape(True):
        for shape in ((0, 8, 3, 3), (2, 8, 0, 3)):
            x = mx.nd.zeros(shape)
            x.attach_grad()
            with autograd.record():
                y = mx.nd.IGCSecondary(x, w, primary=4)
            y.backward(mx.nd.zeros(shape))
            assert y.shape == shape and x.grad.shape == shape
            np.testing.assert_array_equal(w.grad.asnumpy(), 0)  # an empty sum


def test_module_forward_backward():
    shape, L = (4, 12, 3, 3), 3
    rng = np.random.RandomState(2)
    x, w = rng.uniform(-1, 1, shape), rng.uniform(-1, 1, (12, L, 1, 1))
    sym = mx.sym.MakeLoss(mx.sym.sum(mx.sym.IGCSecondary(mx.sym.var("data"),
                                                           mx.sym.var("weight"), primary=L)))
    mod = mx.mod.Module(sym, data_names=["data"], label_names=None)
    mod.bind(data_shapes=[("data", shape)], inputs_need_grad=True)
    mod.init_params()
    mod.set_params({"weight": mx.nd.array(w)}, {})
    mod.forward(mx.io.DataBatch([mx.nd.array(x)]), is_train=True)
    mod.backward()
    want_dx, want_dw = np_igc_secondary_grads(x, w, np.ones(shape), L)
    np.testing.assert_allclose(mod.get_input_grads()[0].asnumpy(), want_dx, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mod._exec_group.grad_arrays[0][0].asnumpy(), want_dw, rtol=1e-4,
                               atol=1e-4)


def test_layer_accumulates_gradients():
    """grad_req='add' on the block's input and weight: two passes give twice one pass."""
    layer = InterleavedConv2D(12, 3, fused=True, prefix="c_")
    layer.initialize(mx.init.Uniform())
    layer.hybridize()
    layer.collect_params().setattr("grad_req", "add")
    x = mx.nd.random.uniform(shape=(2, 12, 3, 3))
    x.attach_grad(grad_req="add")
    for _ in range(2):
        with autograd.record():
            y = layer(x)
        y.backward()
    once = _run(x.asnumpy(), layer.weight.data().asnumpy(), np.ones(x.shape), 3, "float32")
    np.testing.assert_allclose(x.grad.asnumpy(), 2 * once[1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.weight.grad().asnumpy(), 2 * once[2], rtol=1e-5, atol=1e-5)


def test_layer_unfused_is_the_plain_conv_and_float16_runs_unfused():
    fused = InterleavedConv2D(8, 4, fused=True, prefix="c_")
    assert fused.weight.shape == (8, 4, 1, 1) and fused._kwargs["num_group"] == 2
    fused.initialize()
    fused.cast("float64")
    assert fused.fused
    fused.cast("float16")  # MXNet's own convolution then (the operator has no float16)
    assert not fused.fused and np.dtype(fused.weight.dtype) == np.float16
    with pytest.raises(ValueError, match="channels=10 is not divisible by primary=4"):
        InterleavedConv2D(10, 4, fused=True)


@pytest.mark.parametrize("attrs,shapes,dtypes,message", [
    ({"primary": "4"}, [(2, 6, 3, 3), (6, 4, 1, 1)], None, "not divisible by argument 'primary'"),
    ({"primary": "3"}, [(2, 6, 3, 3), (6, 2, 1, 1)], None, "'weight' has shape"),
    ({"primary": "3"}, [(2, 6, 3, 3), (6, 3, 3, 3)], None, "'weight' has shape"),
    ({"primary": "0"}, [(2, 6, 3, 3), (6, 3, 1, 1)], None, "'primary'"),
    ({"primary": "x"}, [(2, 6, 3, 3), (6, 3, 1, 1)], None, "'primary'"),
    ({}, [(2, 6, 3, 3), (6, 3, 1, 1)], None, "'primary' is required"),
    ({"primary": "3", "bogus": "1"}, [(2, 6, 3, 3), (6, 3, 1, 1)], None, "bogus"),
    ({"primary": "3"}, [(6,), (6, 3, 1, 1)], None, "ndim >= 2"),
    ({"primary": "3"}, [(2, 6, 3, 3), (6, 3, 1, 1)], ["float16", "float16"], "float16"),
    ({"primary": "3"}, [(2, 6, 3, 3), (6, 3, 1, 1)], ["float32", "float64"], "but an earlier input has"),
])
def test_bad_arguments_name_the_argument(attrs, shapes, dtypes, message):
    dtypes = dtypes or ["float32", "float32"]
    arrs = [mx.nd.ones(s, dtype=t) for s, t in zip(shapes, dtypes)]
    with pytest.raises(MXNetError, match=message):
        mx.nd.IGCSecondary(*arrs, **attrs).wait_to_read()
