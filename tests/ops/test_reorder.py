"""Reorder: numpy reference, gradients, stock twin, bad arguments, gradient accumulation."""
import numpy as np
import pytest
import mxnet as mx
from mxnet import autograd
from mxnet.base import MXNetError
from mxnet.test_utils import check_numeric_gradient

from gluon_models.nn import Reorder, reorder


def np_reorder(x, branch_factor):
    """Independent reference: output channel k*B + b is input channel b*Q + k (spec 1.4)."""
    C = x.shape[1]
    Q = C // branch_factor
    out = np.empty_like(x)
    for b in range(branch_factor):
        for k in range(Q):
            out[:, k * branch_factor + b] = x[:, b * Q + k]
    return out


def np_reorder_grad(dy, branch_factor):
    """Gradient of a permutation: each input channel receives its output channel's grad."""
    C = dy.shape[1]
    Q = C // branch_factor
    dx = np.empty_like(dy)
    for b in range(branch_factor):
        for k in range(Q):
            dx[:, b * Q + k] = dy[:, k * branch_factor + b]
    return dx


# (shape, branch_factor): ndim 2..5, B = 1, B = C, prime and composite factors
CASES = [((3, 6), 2), ((2, 6, 1, 1), 3), ((4, 12, 5), 4), ((2, 24, 3, 5), 6),
         ((1, 10, 7, 7), 10), ((2, 8, 4, 4), 1), ((3, 15, 2, 3, 2), 5), ((2, 200, 7, 7), 100),
         ((5, 64, 3, 3), 32)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape,B", CASES)
def test_forward_backward_match_numpy(shape, B, dtype):
    x = np.random.uniform(-1, 1, shape).astype(dtype)
    dy = np.random.uniform(-1, 1, shape).astype(dtype)
    xn = mx.nd.array(x, dtype=dtype)
    xn.attach_grad()
    with autograd.record():
        y = mx.nd.Reorder(xn, branch_factor=B)
    y.backward(mx.nd.array(dy, dtype=dtype))
    assert y.dtype == np.dtype(dtype) and xn.grad.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(y.asnumpy(), np_reorder(x, B))
    np.testing.assert_array_equal(xn.grad.asnumpy(), np_reorder_grad(dy, B))


def test_float16_forward():
    x = np.random.uniform(-1, 1, (2, 12, 3, 3)).astype("float16")
    y = mx.nd.Reorder(mx.nd.array(x, dtype="float16"), branch_factor=3)
    assert y.dtype == np.float16
    np.testing.assert_array_equal(y.asnumpy(), np_reorder(x, 3))


def test_worked_examples_and_inverse():
    # spec 1.4: C=6, B=2 -> [0,3,1,4,2,5]; B=3 -> [0,2,4,1,3,5]; B=3 after B=2 is identity.
    x = mx.nd.arange(6).reshape((1, 6))
    assert mx.nd.Reorder(x, branch_factor=2).asnumpy().ravel().tolist() == [0, 3, 1, 4, 2, 5]
    assert mx.nd.Reorder(x, branch_factor=3).asnumpy().ravel().tolist() == [0, 2, 4, 1, 3, 5]
    z = mx.nd.random.uniform(shape=(2, 24, 3, 3))
    back = mx.nd.Reorder(mx.nd.Reorder(z, branch_factor=4), branch_factor=6)
    np.testing.assert_array_equal(back.asnumpy(), z.asnumpy())


def test_workspace_accepted_and_ignored():
    x = mx.nd.random.uniform(shape=(2, 8, 3, 3))
    a = mx.nd.Reorder(x, branch_factor=4)
    b = mx.nd.Reorder(x, branch_factor=4, workspace=16)
    np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())


@pytest.mark.parametrize("shape,B", [((2, 6, 3, 3), 2), ((3, 12, 2), 4), ((2, 10), 5)])
def test_numeric_gradient(shape, B):
    data = mx.sym.var("data")
    sym = mx.sym.Reorder(data, branch_factor=B)
    x = np.random.uniform(-1, 1, shape)
    check_numeric_gradient(sym, [x], numeric_eps=1e-4, rtol=1e-4, atol=1e-6, dtype=np.float64)


@pytest.mark.parametrize("shape,B", CASES)
def test_native_equals_stock_twin(shape, B):
    x = mx.nd.random.uniform(-1, 1, shape, dtype="float64")
    dy = mx.nd.random.uniform(-1, 1, shape, dtype="float64")
    outs, grads = [], []
    for impl in ("native", "stock"):
        xi = x.copy()
        xi.attach_grad()
        with autograd.record():
            y = reorder(mx.nd, xi, B, impl)
        y.backward(dy)
        outs.append(y.asnumpy())
        grads.append(xi.grad.asnumpy())
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(grads[0], grads[1])


def test_symbolic_native_equals_stock():
    data = mx.sym.var("data")
    x = np.random.uniform(size=(2, 12, 4, 4))
    results = []
    for impl in ("native", "stock"):
        sym = reorder(mx.sym, data * 1, 3, impl)
        ex = sym.bind(mx.cpu(), {"data": mx.nd.array(x)})
        results.append(ex.forward()[0].asnumpy())
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize("shape,B", [((2, 12, 4, 4), 3), ((3, 8), 4), ((2, 6, 2, 3, 2), 2)])
def test_symbolic_stock_twin_of_unknown_channel_count(shape, B):
    """A symbol does not know C: the stock twin then permutes with the channels last
    (transposes); outputs and gradients are the native op's, for any ndim."""
    data = mx.sym.var("data")
    x = mx.nd.random.uniform(-1, 1, shape, dtype="float64")
    dy = mx.nd.random.uniform(-1, 1, shape, dtype="float64")
    results = []
    for impl in ("native", "stock"):
        grad = mx.nd.zeros(shape, dtype="float64")
        ex = reorder(mx.sym, data * 1, B, impl).bind(mx.cpu(), {"data": x},
                                                       args_grad={"data": grad})
        out = ex.forward(is_train=True)[0].asnumpy()
        ex.backward(dy)
        results.append((out, grad.asnumpy()))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


BAD_ARGS = [
    ({}, "'branch_factor' is required"),
    ({"branch_factor": 0}, "'branch_factor' must be in"),
    ({"branch_factor": -2}, "'branch_factor' must be in"),
    ({"branch_factor": 2.5}, "'branch_factor' must be an integer"),
    ({"branch_factor": "two"}, "'branch_factor' must be an integer"),
    ({"branch_factor": 4}, "not divisible by argument 'branch_factor'"),
    ({"branch_factor": 2, "workspace": -1}, "'workspace' must be in"),
    ({"branch_factor": 2, "groups": 3}, "unknown argument 'groups'"),
]


@pytest.mark.parametrize("kwargs,message", BAD_ARGS)
def test_bad_arguments_raise_named_errors(kwargs, message):
    x = mx.nd.ones((2, 6, 3, 3))
    with pytest.raises(MXNetError, match=message):
        mx.nd.Reorder(x, **kwargs).wait_to_read()
    # the process survives and the operator still works
    assert mx.nd.Reorder(x, branch_factor=3).shape == (2, 6, 3, 3)


def test_bad_ndim_and_dtype():
    with pytest.raises(MXNetError, match="'data' must have ndim >= 2"):
        mx.nd.Reorder(mx.nd.ones((6,)), branch_factor=2).wait_to_read()
    with pytest.raises(MXNetError, match="unsupported dtype int32"):
        mx.nd.Reorder(mx.nd.ones((2, 6), dtype="int32"), branch_factor=2).wait_to_read()


def test_symbolic_shape_errors():
    sym = mx.sym.Reorder(mx.sym.var("data"), branch_factor=4)
    with pytest.raises(MXNetError, match="not divisible by argument 'branch_factor' = 4"):
        sym.infer_shape(data=(1, 6, 2, 2))
    _, out, _ = sym.infer_shape(data=(1, 8, 2, 2))
    assert out == [(1, 8, 2, 2)]


@pytest.mark.parametrize("hybridize", [False, True])
@pytest.mark.parametrize("impl", ["native", "stock"])
def test_layer_accumulates_input_gradient(impl, hybridize):
    # Extension ops always overwrite gradients; the layer must honour grad_req='add'.
    layer = Reorder(4, impl=impl)
    if hybridize:
        layer.hybridize()
    x = mx.nd.random.uniform(shape=(2, 8, 3, 3))
    x.attach_grad(grad_req="add")
    dy = np.random.uniform(size=(2, 8, 3, 3))
    for _ in range(2):
        with autograd.record():
            y = layer(x)
        y.backward(mx.nd.array(dy))
    np.testing.assert_allclose(x.grad.asnumpy(), 2 * np_reorder_grad(dy, 4), rtol=1e-6)


@pytest.mark.parametrize("hybridize", [False, True])
def test_network_parameter_gradients_accumulate(hybridize):
    # a conv feeding Reorder: with grad_req='add' two passes give twice one pass
    from mxnet.gluon import nn
    net = nn.HybridSequential()
    net.add(nn.Conv2D(8, 3, padding=1, in_channels=4), Reorder(2), nn.Conv2D(4, 1, in_channels=8))
    net.initialize()
    if hybridize:
        net.hybridize()
    x = mx.nd.random.uniform(shape=(2, 4, 5, 5))
    grads = []
    for req, passes in (("write", 1), ("add", 2)):
        net.collect_params().setattr("grad_req", req)
        net.collect_params().zero_grad()
        for _ in range(passes):
            with autograd.record():
                loss = (net(x) ** 2).sum()
            loss.backward()
        grads.append({k: p.grad().asnumpy().copy() for k, p in net.collect_params().items()})
    for k in grads[0]:
        np.testing.assert_allclose(grads[1][k], 2 * grads[0][k], rtol=1e-5, atol=1e-6)


def test_layer_rejects_bad_branch_factor():
    with pytest.raises(ValueError, match="branch_factor"):
        Reorder(0)
    with pytest.raises(ValueError, match="impl"):
        Reorder(2, impl="cuda")
