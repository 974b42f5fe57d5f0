"""BNReLU (BatchNorm + optional ReLU on a plain tensor) and its layer BatchNormReLU: numpy
reference, MXNet's BatchNorm + Activation, finite differences, running statistics, gradient
accumulation, Module, bad arguments."""
import numpy as np
import pytest
import mxnet as mx
from mxnet import autograd
from mxnet.base import MXNetError
from mxnet.gluon import nn
from mxnet.test_utils import check_numeric_gradient

import gluon_models  # noqa: F401  (loads the operator library)
from gluon_models.nn import BatchNormReLU

from ..passes import assert_same_pass, recorded_pass


def np_bnrelu(x, gamma, beta, moving_mean, moving_var, train, relu, eps=1e-5, residual=None):
    """(out, mean, var) of BatchNorm over every axis but 1 (biased variance), plus
    ``residual``, then ReLU."""
    axes = (0,) + tuple(range(2, x.ndim))
    bshape = (1, -1) + (1,) * (x.ndim - 2)
    if train:
        mean, var = x.mean(axis=axes), x.var(axis=axes)
    else:
        mean, var = moving_mean, moving_var
    z = (x - mean.reshape(bshape)) / np.sqrt(var.reshape(bshape) + eps) * \
        gamma.reshape(bshape) + beta.reshape(bshape)
    if residual is not None:
        z = z + residual
    return (np.maximum(z, 0) if relu else z), mean, var


def np_bnrelu_grads(x, gamma, beta, dy, train, relu, moving_mean, moving_var, eps=1e-5,
                    residual=None):
    """(dx, dgamma, dbeta) of np_bnrelu: with batch statistics (train) or with the running ones
    (inference: constants). The residual's gradient is dy masked by the ReLU."""
    axes = (0,) + tuple(range(2, x.ndim))
    bshape = (1, -1) + (1,) * (x.ndim - 2)
    z, mean, var = np_bnrelu(x, gamma, beta, moving_mean, moving_var, train, False, eps,
                             residual)
    g = dy * (z > 0) if relu else dy
    inv = 1 / np.sqrt(var.reshape(bshape) + eps)
    xhat = (x - mean.reshape(bshape)) * inv
    dgamma, dbeta = (g * xhat).sum(axis=axes), g.sum(axis=axes)
    dxhat = g * gamma.reshape(bshape)
    if not train:
        return dxhat * inv, dgamma, dbeta
    dx = inv * (dxhat - dxhat.mean(axis=axes, keepdims=True) -
                xhat * (dxhat * xhat).mean(axis=axes, keepdims=True))
    return dx, dgamma, dbeta


def _inputs(shape, dtype, rs):
    C = shape[1]
    x = rs.normal(0.5, 2.0, shape)
    gamma, beta = rs.uniform(0.5, 1.5, C), rs.normal(0, 0.5, C)
    rm, rv = rs.normal(0, 0.3, C), rs.uniform(0.5, 2.0, C)
    return [np.asarray(a, dtype=dtype) for a in (x, gamma, beta, rm, rv)]


SHAPES = [(4, 3), (2, 5, 7), (3, 4, 5, 6), (2, 3, 2, 3, 4), (2, 16, 33, 35)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("relu,residual", [(True, False), (False, False), (True, True),
                                           (False, True)])
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_forward_backward_match_numpy(shape, relu, residual, train, dtype):
    rs = np.random.RandomState(hash((shape, relu, residual, train)) % 2 ** 31)
    x, gamma, beta, rm, rv = _inputs(shape, dtype, rs)
    r = rs.normal(size=shape).astype(dtype) if residual else None
    dy = rs.normal(size=shape).astype(dtype)
    nd = [mx.nd.array(a, dtype=dtype) for a in (x, gamma, beta) + ((r,) if residual else ())]
    for a in nd:
        a.attach_grad()
    mm, mv = mx.nd.array(rm, dtype=dtype), mx.nd.array(rv, dtype=dtype)
    flag = mx.nd.array([1.0 if train else 0.0], dtype=dtype)
    with autograd.record():
        out, mean, var = mx.nd.BNReLU(nd[0], nd[1], nd[2], flag, mm, mv, *nd[3:], relu=relu,
                                      residual=residual)
    out.backward(mx.nd.array(dy, dtype=dtype))
    x64, g64, b64 = (a.astype(np.float64) for a in (x, gamma, beta))
    r64 = r.astype(np.float64) if residual else None
    ref, rmean, rvar = np_bnrelu(x64, g64, b64, rm.astype(np.float64), rv.astype(np.float64),
                                 train, relu, residual=r64)
    dx, dg, db = np_bnrelu_grads(x64, g64, b64, dy.astype(np.float64), train, relu,
                                 rm.astype(np.float64), rv.astype(np.float64), residual=r64)
    if residual:
        z = np_bnrelu(x64, g64, b64, rm.astype(np.float64), rv.astype(np.float64), train,
                      False, residual=r64)[0]
        dr = dy * (z > 0) if relu else dy
        assert np.abs(nd[3].grad.asnumpy() - dr).max() <= 1e-6
    tol = 1e-10 if dtype == "float64" else 2e-4
    scale = lambda a: tol * max(1.0, np.abs(a).max())  # noqa: E731
    assert np.abs(out.asnumpy() - ref).max() <= scale(ref)
    assert np.abs(mean.asnumpy() - rmean).max() <= scale(rmean)
    assert np.abs(var.asnumpy() - rvar).max() <= scale(rvar)
    for got, want in ((nd[0].grad, dx), (nd[1].grad, dg), (nd[2].grad, db)):
        assert np.abs(got.asnumpy() - want).max() <= scale(want) * 10
    # running statistics: updated by the training backward pass only, with the momentum in
    # float32 as MXNet's BatchNorm keeps it
    m = float(np.float32(0.9))
    want_m = m * rm + (1 - m) * rmean if train else rm
    want_v = m * rv + (1 - m) * rvar if train else rv
    assert np.allclose(mm.asnumpy(), want_m, rtol=tol, atol=tol)
    assert np.allclose(mv.asnumpy(), want_v, rtol=tol, atol=tol)


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("residual", [False, True])
def test_finite_differences(relu, train, residual):
    rs = np.random.RandomState(3)
    x, gamma, beta, rm, rv = _inputs((3, 4, 3, 5), "float64", rs)
    extra = [mx.sym.var("residual")] if residual else []
    sym = mx.sym.BNReLU(mx.sym.var("data"), mx.sym.var("gamma"), mx.sym.var("beta"),
                        mx.sym.var("train_flag"), mx.sym.var("moving_mean"),
                        mx.sym.var("moving_var"), *extra, relu=relu, residual=residual,
                        momentum=1.0)[0]
    loc = {"data": x, "gamma": gamma, "beta": beta,
           "train_flag": np.array([1.0 if train else 0.0])}
    if residual:
        loc["residual"] = rs.normal(size=x.shape)
    check_numeric_gradient(sym, loc, aux_states={"moving_mean": rm, "moving_var": rv},
                           grad_nodes=["data", "gamma", "beta"] + (["residual"] if residual
                                                                    else []),
                           numeric_eps=1e-6, rtol=1e-5, atol=1e-7, dtype=np.float64)


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("hybridize", [False, True])
def test_layer_equals_batchnorm_and_activation(relu, dtype, hybridize):
    """Two training steps and an inference pass: outputs, input and parameter gradients and
    running statistics of the layer are those of nn.BatchNorm (+ Activation('relu'))."""
    rs = np.random.RandomState(11)
    shape = (4, 8, 6, 5)
    nets = []
    for native in (True, False):
        net = nn.HybridSequential()
        with net.name_scope():
            if native:
                net.add(BatchNormReLU(relu=relu, momentum=0.8, epsilon=1e-4, in_channels=8))
            else:
                net.add(nn.BatchNorm(momentum=0.8, epsilon=1e-4, in_channels=8))
                if relu:
                    net.add(nn.Activation("relu"))
        net.initialize()
        net.cast(dtype)
        for p in net.collect_params().values():
            p.set_data(mx.nd.array(rs.uniform(0.5, 1.5, p.shape), dtype=dtype))
            rs = np.random.RandomState(11)  # both nets get the same values
        if hybridize:
            net.hybridize()
        nets.append(net)
    tol = 1e-10 if dtype == "float64" else 2e-5
    for step in range(2):
        x = mx.nd.array(np.random.RandomState(step).normal(0.3, 2, shape), dtype=dtype)
        dy = mx.nd.array(np.random.RandomState(9 + step).normal(size=shape), dtype=dtype)
        assert_same_pass(*(recorded_pass(net, x, dy) for net in nets), tol)
    x = mx.nd.array(np.random.RandomState(5).normal(0.3, 2, shape), dtype=dtype)
    a, b = (net(x).asnumpy() for net in nets)
    assert np.abs(a - b).max() <= tol * max(1.0, np.abs(b).max())


@pytest.mark.parametrize("hybridize", [False, True])
def test_layer_with_residual_equals_batchnorm_add_relu(hybridize):
    rs = np.random.RandomState(12)
    shape = (3, 6, 4, 5)
    native = BatchNormReLU(in_channels=6, prefix="bn_")
    stock = nn.BatchNorm(in_channels=6, prefix="bn_")
    for net in (native, stock):
        net.initialize()
        net.cast("float64")
        if hybridize:
            net.hybridize()
    for k, v in native.collect_params().items():
        stock.collect_params()[k].set_data(v.data())
    x, r, dy = (mx.nd.array(rs.normal(size=shape), dtype="float64") for _ in range(3))
    res = []
    for f in (lambda a, b: native(a, b), lambda a, b: mx.nd.relu(stock(a) + b)):
        xi, ri = x.copy(), r.copy()
        xi.attach_grad()
        ri.attach_grad()
        with autograd.record():
            y = f(xi, ri)
        y.backward(dy)
        res.append([y.asnumpy(), xi.grad.asnumpy(), ri.grad.asnumpy()])
    for a, b in zip(*res):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


def test_layer_falls_back_where_the_operator_does_not_apply():
    assert BatchNormReLU(in_channels=4).native
    for kwargs in (dict(native=False), dict(axis=2), dict(use_global_stats=True),
                   dict(scale=False), dict(center=False)):
        assert not BatchNormReLU(in_channels=4, **kwargs).native, kwargs
    layer = BatchNormReLU(in_channels=4)
    layer.initialize()
    layer.cast("float16")
    assert not layer.native
    x = mx.nd.array(np.random.RandomState(0).normal(size=(2, 4, 3, 3)), dtype="float16")
    with autograd.record():
        y = layer(x)
    assert y.dtype == np.float16 and (y.asnumpy() >= 0).all()


def test_layer_accumulates_gradients():
    layer = BatchNormReLU(in_channels=3)
    layer.initialize()
    layer.hybridize()
    for p in layer.collect_params().values():
        if p.grad_req != "null":
            p.grad_req = "add"
    x = mx.nd.array(np.random.RandomState(1).normal(size=(4, 3, 5, 5)))
    x.attach_grad(grad_req="add")
    grads = []
    for _ in range(2):
        with autograd.record():
            y = layer(x)
        y.backward(mx.nd.ones_like(y) * 0.5 + x)
        grads.append((x.grad.asnumpy().copy(), layer.gamma.grad().asnumpy().copy()))
    for a, b in zip(*grads):
        assert np.allclose(b, 2 * a, rtol=1e-5, atol=1e-6)


def test_module_updates_auxiliary_states():
    data = mx.sym.var("data")
    sym = mx.sym.BNReLU(data, mx.sym.var("bn_gamma"), mx.sym.var("bn_beta"),
                        mx.sym.ones((1,)), mx.sym.var("bn_moving_mean", init=mx.init.Zero()),
                        mx.sym.var("bn_moving_var", init=mx.init.One()))[0]
    mod = mx.mod.Module(mx.sym.MakeLoss(mx.sym.sum(sym)), data_names=["data"], label_names=None)
    mod.bind(data_shapes=[("data", (4, 3, 2, 2))])
    mod.init_params(mx.init.Xavier())  # gamma 1, beta 0, running mean 0, running var 1
    assert sorted(mod._exec_group.execs[0].aux_dict) == ["bn_moving_mean", "bn_moving_var"]
    x = np.random.RandomState(2).normal(1.0, 1.0, (4, 3, 2, 2))
    mod.forward(mx.io.DataBatch([mx.nd.array(x)]), is_train=True)
    mod.backward()
    # the backward pass writes the auxiliary states as mutable inputs of the operator, which
    # MXNet's engine does not order reads of the arrays after: wait for it (as IBN's tests do)
    mx.nd.waitall()
    aux = mod._exec_group.execs[0].aux_dict  # get_params() syncs only after an update
    assert np.allclose(aux["bn_moving_mean"].asnumpy(), 0.1 * x.mean(axis=(0, 2, 3)), rtol=1e-5)
    assert np.allclose(aux["bn_moving_var"].asnumpy(), 0.9 + 0.1 * x.var(axis=(0, 2, 3)),
                       rtol=1e-5)


def test_empty_batch():
    with mx.util.np_shape(True):
        x = mx.nd.zeros((0, 3, 2, 2))
        one, zero = mx.nd.ones((3,)), mx.nd.zeros((3,))
        out, mean, var = mx.nd.BNReLU(x, one, zero, mx.nd.ones((1,)), zero, one)
        assert out.shape == (0, 3, 2, 2) and mean.shape == (3,)


def _call(attrs=None, shapes=None, dtypes=None):
    shapes = shapes or [(2, 3, 4, 4), (3,), (3,), (1,), (3,), (3,)]
    dtypes = dtypes or ["float32"] * 6
    args = [mx.nd.ones(s, dtype=t) for s, t in zip(shapes, dtypes)]
    return mx.nd.BNReLU(*args, **(attrs or {}))[0].asnumpy()


@pytest.mark.parametrize("attrs,shapes,dtypes,message", [
    ({"relu": "maybe"}, None, None, "relu"),
    ({"eps": "0"}, None, None, "eps"),
    ({"momentum": "1.5"}, None, None, "momentum"),
    ({"bogus": "1"}, None, None, "bogus"),
    (None, [(2, 3, 4, 4), (4,), (3,), (1,), (3,), (3,)], None, "gamma"),
    (None, [(2, 3, 4, 4), (3,), (3,), (2,), (3,), (3,)], None, "train_flag"),
    (None, [(2, 3, 4, 4), (3,), (3,), (1,), (3,), (3, 1)], None, "moving_var"),
    (None, [(6,), (6,), (6,), (1,), (6,), (6,)], None, "data"),
    (None, None, ["float16"] * 6, "float16"),
    ({"residual": "True"}, [(2, 3, 4, 4), (3,), (3,), (1,), (3,), (3,), (2, 3, 4, 5)],
     ["float32"] * 7, "residual"),
    (None, None, ["float32", "float64"] + ["float32"] * 4, "gamma"),
])
def test_bad_arguments_name_the_argument(attrs, shapes, dtypes, message):
    with pytest.raises(MXNetError, match=message):
        _call(attrs, shapes, dtypes)


def test_missing_residual_is_named():
    with pytest.raises(ValueError, match="'residual' is missing"):
        _call({"residual": "True"})
