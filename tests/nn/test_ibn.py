"""IBN layer and operator: numpy reference (both groups' statistics, gradients, running
statistics, inference), finite differences, native = stock in both modes (Gluon, hybridized,
Module), grad_req='add', bad arguments."""
import numpy as np
import pytest
import mxnet as mx
from mxnet import autograd, gluon
from mxnet.base import MXNetError
from mxnet.test_utils import check_numeric_gradient

from gluon_models.nn import IBN, ibn_split


# ---- numpy reference ------------------------------------------------------------------------
def np_groups(C, n_in, in_first):
    """(channels of the IN group, channels of the BN group) as index arrays."""
    idx = np.arange(C)
    return (idx[:n_in], idx[n_in:]) if in_first else (idx[C - n_in:], idx[:C - n_in])


def np_norm_fwd(x, axes, g, b, eps, mean=None, var=None):
    """Normalise x over `axes` (batch statistics unless mean/var are given)."""
    if mean is None:
        mean = x.mean(axis=axes, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)  # biased
    xhat = (x - mean) / np.sqrt(var + eps)
    return g * xhat + b, mean, var


def np_norm_bwd(dy, x, axes, g, eps, mean, var, batch_stats):
    """Analytic gradients of y = g * (x - mean) / sqrt(var + eps) + b, mean/var over `axes`."""
    inv = 1 / np.sqrt(var + eps)
    xhat = (x - mean) * inv
    red = tuple(a for a in range(x.ndim) if a != 1)
    dg, db = (dy * xhat).sum(axis=red), dy.sum(axis=red)
    if batch_stats:
        dx = g * inv * (dy - dy.mean(axis=axes, keepdims=True)
                        - xhat * (dy * xhat).mean(axis=axes, keepdims=True))
    else:
        dx = g * inv * dy
    return dx, dg, db


def np_ibn(x, params, n_in, in_first, eps, train, dy=None):
    """Forward (and backward if dy): returns y, {grads}, (batch mean, batch var) of the BN group."""
    ig, ib, bg, bb, rm, rv = params
    C = x.shape[1]
    ci, cb = np_groups(C, n_in, in_first)
    shp = (1, -1) + (1,) * (x.ndim - 2)
    sp = tuple(range(2, x.ndim))
    xi, xb = x[:, ci], x[:, cb]
    yi, mi, vi = np_norm_fwd(xi, sp, ig.reshape(shp), ib.reshape(shp), eps)
    if train:
        yb, mb, vb = np_norm_fwd(xb, (0,) + sp, bg.reshape(shp), bb.reshape(shp), eps)
    else:
        mb, vb = rm.reshape(shp), rv.reshape(shp)
        yb, _, _ = np_norm_fwd(xb, None, bg.reshape(shp), bb.reshape(shp), eps, mb, vb)
    y = np.empty_like(x)
    y[:, ci], y[:, cb] = yi, yb
    grads = None
    if dy is not None:
        dxi, dgi, dbi = np_norm_bwd(dy[:, ci], xi, sp, ig.reshape(shp), eps, mi, vi, True)
        dxb, dgb, dbb = np_norm_bwd(dy[:, cb], xb, (0,) + sp, bg.reshape(shp), eps, mb, vb, train)
        dx = np.empty_like(x)
        dx[:, ci], dx[:, cb] = dxi, dxb
        grads = {"data": dx, "in_gamma": dgi, "in_beta": dbi, "bn_gamma": dgb, "bn_beta": dbb}
    return y, grads, (mb.reshape(-1), vb.reshape(-1))


def random_params(n_in, n_bn, rs, dtype="float64"):
    return [rs.uniform(0.5, 1.5, n_in).astype(dtype), rs.uniform(-.5, .5, n_in).astype(dtype),
            rs.uniform(0.5, 1.5, n_bn).astype(dtype), rs.uniform(-.5, .5, n_bn).astype(dtype),
            rs.uniform(-.3, .3, n_bn).astype(dtype), rs.uniform(0.5, 2, n_bn).astype(dtype)]


def make_layer(C, ratio, in_first, impl, params, eps=1e-5, momentum=0.9, dtype="float32",
               hybridize=False):
    layer = IBN(C, ratio, in_first, epsilon=eps, momentum=momentum, impl=impl)
    layer.initialize()
    layer.cast(dtype)
    names = ["in_gamma", "in_beta", "bn_gamma", "bn_beta", "running_mean", "running_var"]
    for name, v in zip(names, params):
        getattr(layer, name).set_data(mx.nd.array(v, dtype=dtype))
    if hybridize:
        layer.hybridize()
    return layer


def run_layer(layer, x, dy, train, dtype):
    """One pass (training: recorded + backward); returns y, grads, running stats after."""
    xn = mx.nd.array(x, dtype=dtype)
    xn.attach_grad()
    if train:
        with autograd.record():
            y = layer(xn)
        y.backward(mx.nd.array(dy, dtype=dtype))
        grads = {"data": xn.grad.asnumpy()}
        for name in ("in_gamma", "in_beta", "bn_gamma", "bn_beta"):
            grads[name] = getattr(layer, name).grad().asnumpy()
    else:
        y, grads = layer(xn), None
    return y.asnumpy(), grads, (layer.running_mean.data().asnumpy(),
                                layer.running_var.data().asnumpy())


CASES = [((4, 6, 5, 5), 0.5, True), ((3, 7, 4, 6), 0.5, True), ((2, 10, 3, 3), 0.4, False),
         ((5, 9, 7), 0.3, True), ((2, 12, 2, 3, 2), 0.4, False), ((1, 4, 3, 3), 0.5, True)]


@pytest.mark.parametrize("hybridize", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape,ratio,in_first", CASES)
def test_layer_matches_numpy(shape, ratio, in_first, dtype, hybridize):
    rs = np.random.RandomState(1)
    C = shape[1]
    n_in, n_bn = ibn_split(C, ratio, in_first)
    params = random_params(n_in, n_bn, rs)
    x = rs.normal(0.7, 2.0, shape)
    dy = rs.normal(0, 1, shape)
    eps, mom = 2e-5, 0.8
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == "float32" else dict(rtol=1e-9, atol=1e-10)
    for impl in ("native", "stock"):
        if impl == "stock" and dtype == "float64":  # MXNet's BatchNorm: ~1e-8 off in float64
            tol = dict(rtol=1e-6, atol=1e-7)
        layer = make_layer(C, ratio, in_first, impl, params, eps, mom, dtype, hybridize)
        # inference first: running statistics, no change to them
        y, _, (rm, rv) = run_layer(layer, x, dy, False, dtype)
        want, _, _ = np_ibn(x, params, n_in, in_first, eps, False)
        np.testing.assert_allclose(y, want, **tol)
        np.testing.assert_allclose(rm, params[4], **tol)
        # training step: batch statistics, gradients of both groups, running update
        y, grads, (rm, rv) = run_layer(layer, x, dy, True, dtype)
        want, want_g, (bm, bv) = np_ibn(x, params, n_in, in_first, eps, True, dy)
        np.testing.assert_allclose(y, want, **tol)
        for name, g in want_g.items():
            np.testing.assert_allclose(grads[name], g, err_msg="%s %s" % (impl, name), **tol)
        np.testing.assert_allclose(rm, mom * params[4] + (1 - mom) * bm, **tol)
        np.testing.assert_allclose(rv, mom * params[5] + (1 - mom) * bv, **tol)


def test_inference_backward_uses_running_statistics():
    # recorded with train_mode=False: the BN group's gradient treats the running statistics
    # as constants (the gradient of the function computed, as MXNet's BatchNorm with
    # use_global_stats=True), and the running statistics are not updated. MXNet 1.9.1's stock
    # BatchNorm instead applies its batch-statistics formula to the running statistics there,
    # which is checked below as the one documented difference of the twins.
    rs = np.random.RandomState(2)
    shape, n_in, n_bn = (3, 6, 4, 4), 3, 3
    params = random_params(n_in, n_bn, rs)
    x, dy = rs.normal(0, 1, shape), rs.normal(0, 1, shape)
    want, want_g, _ = np_ibn(x, params, n_in, True, 1e-5, False, dy)
    for impl, dtype in (("native", "float64"), ("stock", "float64")):
        layer = make_layer(6, 0.5, True, impl, params, dtype=dtype)
        xn = mx.nd.array(x, dtype=dtype)
        xn.attach_grad()
        with autograd.record(train_mode=False):
            y = layer(xn)
        y.backward(mx.nd.array(dy, dtype=dtype))
        np.testing.assert_allclose(y.asnumpy(), want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(layer.running_mean.data().asnumpy(), params[4], rtol=1e-6)
        np.testing.assert_allclose(layer.bn_gamma.grad().asnumpy(), want_g["bn_gamma"], rtol=1e-5)
        same = np.allclose(xn.grad.asnumpy(), want_g["data"], rtol=1e-5, atol=1e-6)
        assert same == (impl == "native")
        # the IN group's gradient agrees in both
        np.testing.assert_allclose(xn.grad.asnumpy()[:, :n_in], want_g["data"][:, :n_in],
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("impl", ["native", "stock"])
def test_forward_alone_leaves_running_statistics(impl):
    # as MXNet's BatchNorm: a training forward without backward does not update them
    rs = np.random.RandomState(3)
    params = random_params(2, 2, rs)
    layer = make_layer(4, 0.5, True, impl, params)
    with autograd.record():
        layer(mx.nd.array(rs.normal(0, 1, (2, 4, 3, 3)))).wait_to_read()
    np.testing.assert_allclose(layer.running_mean.data().asnumpy(), params[4], rtol=1e-6)


def _ibn_sym(n_in, in_first, eps=1e-5, momentum=0.9):
    names = ["data", "in_gamma", "in_beta", "bn_gamma", "bn_beta", "train_flag",
             "moving_mean", "moving_var"]
    return mx.sym.IBN(*[mx.sym.var(n) for n in names], in_channels=n_in, in_first=in_first,
                      eps=eps, momentum=momentum)


@pytest.mark.parametrize("train", [1.0, 0.0])
@pytest.mark.parametrize("shape,ratio,in_first", [((3, 5, 3, 2), 0.4, True),
                                                  ((2, 6, 4), 0.5, False)])
def test_numeric_gradient(shape, ratio, in_first, train):
    rs = np.random.RandomState(4)
    n_in, n_bn = ibn_split(shape[1], ratio, in_first)
    ig, ib, bg, bb, rm, rv = random_params(n_in, n_bn, rs)
    loc = {"data": rs.normal(0, 1, shape), "in_gamma": ig, "in_beta": ib, "bn_gamma": bg,
           "bn_beta": bb, "train_flag": np.array([train])}
    aux = {"moving_mean": rm, "moving_var": rv}
    check_numeric_gradient(_ibn_sym(n_in, in_first)[0], loc, aux_states=aux,
                           grad_nodes=["data", "in_gamma", "in_beta", "bn_gamma", "bn_beta"],
                           numeric_eps=1e-5, rtol=1e-5, atol=1e-7, dtype=np.float64)


def test_operator_outputs_statistics():
    # outputs 1 and 2: per-(n, c) IN statistics, then the BN group's
    rs = np.random.RandomState(5)
    x = rs.normal(0, 1, (2, 5, 3, 3))
    ig, ib, bg, bb, rm, rv = random_params(2, 3, rs)
    args = [mx.nd.array(a, dtype="float64") for a in (x, ig, ib, bg, bb, [1.0], rm, rv)]
    _, mean, var = mx.nd.IBN(*args, in_channels=2, in_first=False)
    want_m = np.concatenate([x[:, 3:].mean(axis=(2, 3)).reshape(-1),
                             x[:, :3].mean(axis=(0, 2, 3))])
    want_v = np.concatenate([x[:, 3:].var(axis=(2, 3)).reshape(-1), x[:, :3].var(axis=(0, 2, 3))])
    np.testing.assert_allclose(mean.asnumpy(), want_m, rtol=1e-12)
    np.testing.assert_allclose(var.asnumpy(), want_v, rtol=1e-10)
    args[5] = mx.nd.array([0.0], dtype="float64")
    _, mean, var = mx.nd.IBN(*args, in_channels=2, in_first=False)
    np.testing.assert_allclose(mean.asnumpy()[4:], rm)
    np.testing.assert_allclose(var.asnumpy()[4:], rv)


def test_large_mean_is_stable():
    # shifted sums: a large common offset does not cancel the variance
    rs = np.random.RandomState(6)
    x = 1e4 + rs.normal(0, 1, (4, 4, 8, 8)).astype("float32")
    params = random_params(2, 2, rs)
    y, _, _ = run_layer(make_layer(4, 0.5, True, "native", params), x, x, True, "float32")
    want, _, _ = np_ibn(x.astype(np.float64), params, 2, True, 1e-5, True)
    np.testing.assert_allclose(y, want, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("hybridize", [False, True])
@pytest.mark.parametrize("impl", ["native", "stock"])
def test_grad_req_add_accumulates(impl, hybridize):
    rs = np.random.RandomState(7)
    params = random_params(3, 3, rs)
    x = mx.nd.array(rs.normal(0, 1, (2, 6, 3, 3)))
    dy = mx.nd.array(rs.normal(0, 1, (2, 6, 3, 3)))
    grads = []
    for req, passes in (("write", 1), ("add", 2)):
        layer = make_layer(6, 0.5, True, impl, params, hybridize=hybridize)
        for p in layer.collect_params().values():
            if p.grad_req != "null":
                p.grad_req = req
        xn = x.copy()
        xn.attach_grad(grad_req=req)
        for _ in range(passes):
            with autograd.record():
                y = layer(xn)
            y.backward(dy)
        g = {"data": xn.grad.asnumpy()}
        g.update({k: getattr(layer, k).grad().asnumpy()
                  for k in ("in_gamma", "in_beta", "bn_gamma", "bn_beta")})
        grads.append(g)
    for k, v in grads[0].items():
        np.testing.assert_allclose(grads[1][k], 2 * v, rtol=1e-5, atol=1e-6, err_msg=k)


def _net(impl):
    net = gluon.nn.HybridSequential(prefix="net_")
    with net.name_scope():
        net.add(gluon.nn.Conv2D(8, 3, padding=1, in_channels=3, prefix="conv_"),
                IBN(8, 0.5, impl=impl, epsilon=2e-5, prefix="ibn_"),
                gluon.nn.Activation("relu"), gluon.nn.GlobalAvgPool2D(), gluon.nn.Flatten(),
                gluon.nn.Dense(4, in_units=8, prefix="fc_"))
    return net


def test_native_equals_stock_in_module(tmp_path):
    # exported graphs bound by Module: training steps (running statistics updated by backward)
    # and deterministic inference give the same values with either implementation
    rs = np.random.RandomState(8)
    nets = {}
    for impl in ("native", "stock"):
        net = _net(impl)
        net.initialize(mx.init.Xavier())
        nets[impl] = net
    for (k, p), q in zip(nets["native"].collect_params().items(),
                         nets["stock"].collect_params().values()):
        q.set_data(p.data())
    x = rs.normal(0, 1, (4, 3, 6, 6)).astype("float32")
    label = np.array([0, 1, 2, 3], dtype="float32")
    outs = {}
    for impl, net in nets.items():
        net.hybridize()
        net(mx.nd.array(x))
        prefix = str(tmp_path / impl)
        net.export(prefix)
        sym, arg, aux = mx.model.load_checkpoint(prefix, 0)
        assert sorted(aux) == ["net_ibn_bn_running_mean", "net_ibn_bn_running_var"]
        sym = mx.sym.SoftmaxOutput(sym, mx.sym.var("softmax_label"), name="softmax")
        mod = mx.mod.Module(sym, data_names=["data"], label_names=["softmax_label"])
        mod.bind([("data", x.shape)], [("softmax_label", label.shape)])
        mod.set_params(arg, aux)
        mod.init_optimizer(optimizer="sgd", optimizer_params={"learning_rate": 0.1})
        batch = mx.io.DataBatch([mx.nd.array(x)], [mx.nd.array(label)])
        for _ in range(2):
            mod.forward(batch, is_train=True)
            mod.backward()
            mod.update()
        # MXNet 1.9.1's MKLDNN convolution may reorder its weights in place when an inference
        # forward is queued behind a pending update (the weights then differ run to run, with
        # the stock twin as well): let the updates finish first
        mx.nd.waitall()
        mod.forward(batch, is_train=False)
        a, b = mod.get_params()
        outs[impl] = (mod.get_outputs()[0].asnumpy(), a, b)
    for d in (1, 2):
        for k, v in outs["native"][d].items():
            np.testing.assert_allclose(v.asnumpy(), outs["stock"][d][k].asnumpy(), rtol=1e-4,
                                       atol=1e-5, err_msg=k)
    np.testing.assert_allclose(outs["native"][0], outs["stock"][0], rtol=1e-4, atol=1e-5)
    # the running statistics did move
    assert not np.allclose(outs["native"][2]["net_ibn_bn_running_mean"].asnumpy(), 0)


def test_symbolblock_reload_equals(tmp_path):
    net = _net("native")
    net.initialize(mx.init.Xavier())
    net.hybridize()
    x = mx.nd.random.normal(shape=(2, 3, 5, 5))
    with autograd.record():
        net(x).backward()  # moves the running statistics away from their init
    y = net(x)
    net.export(str(tmp_path / "m"))
    back = gluon.SymbolBlock.imports(str(tmp_path / "m-symbol.json"), ["data"],
                                     str(tmp_path / "m-0000.params"))
    np.testing.assert_allclose(back(x).asnumpy(), y.asnumpy(), rtol=1e-6, atol=1e-6)


def test_layer_bad_arguments():
    with pytest.raises(ValueError, match="channels"):
        IBN(1)
    with pytest.raises(ValueError, match="ratio"):
        IBN(8, ratio=1.0)
    with pytest.raises(ValueError, match="ratio"):
        IBN(8, ratio=float("nan"))
    with pytest.raises(ValueError, match="IN group empty"):
        IBN(3, ratio=0.2)
    with pytest.raises(ValueError, match="epsilon"):
        IBN(8, epsilon=0)
    with pytest.raises(ValueError, match="momentum"):
        IBN(8, momentum=1.5)
    with pytest.raises(ValueError, match="impl"):
        IBN(8, impl="cuda")


@pytest.mark.parametrize("attrs,message", [
    ({"in_channels": "0"}, "in_channels"), ({"in_channels": "abc"}, "in_channels"),
    ({"in_channels": "6"}, "in_channels"), ({"in_channels": "2", "eps": "0"}, "eps"),
    ({"in_channels": "2", "momentum": "2"}, "momentum"),
    ({"in_channels": "2", "bogus": "1"}, "bogus"),
    ({"in_channels": "2", "in_first": "maybe"}, "in_first")])
def test_operator_bad_attributes_named(attrs, message):
    args = [mx.nd.ones(s) for s in ((2, 6, 3, 3), (2,), (2,), (4,), (4,), (1,), (4,), (4,))]
    with pytest.raises(MXNetError, match=message):
        mx.nd.IBN(*args, **attrs)[0].wait_to_read()


def test_operator_bad_shapes_named():
    good = [(2, 6, 3, 3), (2,), (2,), (4,), (4,), (1,), (4,), (4,)]
    names = ["data", "in_gamma", "in_beta", "bn_gamma", "bn_beta", "train_flag", "moving_mean",
             "moving_var"]
    for i, name in enumerate(names):
        shapes = list(good)
        shapes[i] = (2, 6) if i == 0 else (5,)
        with pytest.raises(MXNetError, match=name):
            mx.nd.IBN(*[mx.nd.ones(s) for s in shapes], in_channels=2)[0].wait_to_read()
    with pytest.raises(MXNetError, match="data"):
        _ibn_sym(2, True).infer_shape(data=(2, 6), in_gamma=(2,))
