"""FactorizedBilinear / FBConv2D: parameters and init, DropFactor in Gluon and Module, native vs
stock, gradient accumulation, export with and without the operator library."""
import os
import subprocess
import sys

import numpy as np
import pytest
import mxnet as mx
from mxnet import autograd, gluon

from gluon_models.nn import FactorizedBilinear, FBConv2D, dropfactor_mask, fb_quadratic

X_SHAPE = (3, 4, 5, 6)
GEOM = dict(kernel_size=(3, 2), strides=(1, 2), padding=(1, 0), groups=2)


def make_layer(impl="native", op=3, p=0.5, mode="consistent", linear=True, **kw):
    args = dict(GEOM, **kw)
    layer = FactorizedBilinear(6, 8, in_channels=4, impl=impl, op=op, p=p,
                               dropfactor_mode=mode, linear=linear, prefix="fb_", **args)
    layer.initialize()
    for name, param in layer.collect_params().items():  # non-zero biases, reproducible
        if name.endswith("bias"):
            param.set_data(mx.nd.array(np.linspace(-1, 1, param.shape[0])))
    return layer


def copy_params(src, dst):
    dp = dst.collect_params()
    for name, param in src.collect_params().items():
        dp[name].set_data(param.data())


def input_x(seed=0):
    return mx.nd.array(np.random.RandomState(seed).uniform(-1, 1, X_SHAPE))


def factor_terms(layer, x):
    """Per-factor FB terms q_f (no bias), from the op with one-hot masks: (F, output size)."""
    fb = layer.bilinear
    F = fb._num_factor
    terms = []
    for f in range(F):
        onehot = mx.nd.one_hot(mx.nd.array([f]), F).reshape((F,))
        q = fb_quadratic(mx.nd, x, fb.weight.data(), None, onehot, fb._kernel, fb._channels, F,
                         fb._stride, fb._pad, fb._dilate, fb._groups)
        terms.append(q.asnumpy().ravel())
    return np.array(terms)


def bias_of(layer, shape):
    b = layer.bilinear.bias.data().asnumpy()[None, :, None, None]
    return np.broadcast_to(b, shape)


def solve_scales(layer, x, y):
    """Per-factor scales s_f with y = b + sum_f s_f q_f; also the relative residual."""
    Q = factor_terms(layer, x)
    r = (y - bias_of(layer, y.shape)).ravel()
    s, *_ = np.linalg.lstsq(Q.T, r, rcond=None)
    return s, np.linalg.norm(Q.T @ s - r) / np.linalg.norm(Q.sum(axis=0))


# ---- parameters --------------------------------------------------------------------------
@pytest.mark.parametrize("classes,F,C,fb_count,lin_count,fb_prefix,lin_prefix", [
    (100, 20, 256, 512100, 25700, "bilinear_", "convolution0_"),  # CIFAR-100 ResNet (spec 6.2)
    (10, 20, 256, 51210, 2570, "bilinear_", "convolution0_"),     # CIFAR-10 ResNet
    (100, 20, 336, 672100, 33700, "bilinear1_", "conv_fc_"),     # CIFAR-100 Inception-small
    (1000, 50, 2048, 102401000, 2049000, "bilinear1_", "fc_"),   # ImageNet ResNet-50, F=50
])
def test_head_parameter_names_shapes_and_counts(classes, F, C, fb_count, lin_count, fb_prefix,
                                                lin_prefix):
    layer = FactorizedBilinear(classes, F, in_channels=C, fb_prefix=fb_prefix,
                               linear_prefix=lin_prefix, prefix="")
    shapes = {k: v.shape for k, v in layer.collect_params().items()}
    assert shapes == {fb_prefix + "weight": (classes, F, C, 1, 1), fb_prefix + "bias": (classes,),
                      lin_prefix + "weight": (classes, C, 1, 1), lin_prefix + "bias": (classes,)}
    count = {k: int(np.prod(s)) for k, s in shapes.items()}
    assert count[fb_prefix + "weight"] + count[fb_prefix + "bias"] == fb_count
    assert count[lin_prefix + "weight"] + count[lin_prefix + "bias"] == lin_count


def test_geometry_shapes_and_options():
    layer = make_layer()
    shapes = {k: v.shape for k, v in layer.collect_params().items()}
    assert shapes == {"fb_bilinear_weight": (6, 8, 2, 3, 2), "fb_bilinear_bias": (6,),
                      "fb_fc_weight": (6, 2, 3, 2), "fb_fc_bias": (6,)}
    bare = FactorizedBilinear(6, 8, in_channels=4, use_bias=False, linear=False, prefix="b_")
    assert list(bare.collect_params()) == ["b_bilinear_weight"]
    assert make_layer()(input_x()).shape == (3, 6, 5, 3)


def test_authors_initialisation():
    # Xavier(gaussian, 'in', 2) on every weight (spec 1.7): std = sqrt(2 / fan_in) with
    # fan_in = F * C/G * kh * kw for the 5-D FB weight; biases start at zero.
    layer = FactorizedBilinear(50, 20, in_channels=64, kernel_size=3, groups=2, prefix="i_")
    layer.initialize()
    w = layer.bilinear.weight.data().asnumpy()
    assert abs(w.std() / np.sqrt(2.0 / (20 * 32 * 9)) - 1) < 0.03
    assert abs(w.mean()) < 0.05 * w.std()
    lw = layer.linear.weight.data().asnumpy()
    assert abs(lw.std() / np.sqrt(2.0 / (32 * 9)) - 1) < 0.05
    for b in (layer.bilinear.bias, layer.linear.bias):
        assert not b.data().asnumpy().any()


@pytest.mark.parametrize("impl", ["native", "stock"])
def test_deferred_initialisation(impl):
    layer = FactorizedBilinear(6, 3, kernel_size=3, padding=1, groups=2, impl=impl, prefix="d_")
    layer.initialize()
    layer.hybridize()
    y = layer(mx.nd.ones((2, 8, 4, 4)))
    assert y.shape == (2, 6, 4, 4)
    assert layer.bilinear.weight.shape == (6, 3, 4, 3, 3)
    assert layer.linear.weight.shape == (6, 4, 3, 3)


def test_output_is_fb_term_plus_linear_convolution():
    layer = make_layer()
    x = input_x()
    fb = layer.bilinear
    q = fb_quadratic(mx.nd, x, fb.weight.data(), fb.bias.data(), mx.nd.ones((8,)), fb._kernel,
                     6, 8, fb._stride, fb._pad, fb._dilate, 2, impl="stock")
    lin = mx.nd.Convolution(x, layer.linear.weight.data(), layer.linear.bias.data(),
                            kernel=(3, 2), stride=(1, 2), pad=(1, 0), num_filter=6, num_group=2)
    np.testing.assert_allclose(layer(x).asnumpy(), (q + lin).asnumpy(), rtol=1e-5, atol=1e-5)


# ---- DropFactor ------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["consistent", "authors"])
@pytest.mark.parametrize("p", [0.3, 0.5])
def test_training_mask_values_and_expectation(mode, p):
    keep = 1 - p
    ones = mx.nd.ones((4000,))
    draws = []
    with autograd.record():
        for _ in range(25):
            draws.append(dropfactor_mask(mx.nd, ones, p, mode).asnumpy())
    m = np.array(draws)
    assert np.all(np.isclose(m, 0) | np.isclose(m, np.sqrt(1 / keep), rtol=1e-6))
    assert abs((m > 0).mean() - keep) < 0.02
    assert abs((m ** 2).mean() - 1) < 0.02       # E[m^2] = 1: inverted dropout on m^2
    assert not np.array_equal(draws[0], draws[1])  # one draw per call


@pytest.mark.parametrize("mode,expected", [("consistent", 1.0), ("authors", np.sqrt(0.6))])
def test_inference_mask_per_mode(mode, expected):
    ones = mx.nd.ones((50,))
    np.testing.assert_allclose(dropfactor_mask(mx.nd, ones, 0.4, mode).asnumpy(), expected,
                               rtol=1e-6)
    with autograd.record(train_mode=False):
        m = dropfactor_mask(mx.nd, ones, 0.4, mode)
    np.testing.assert_allclose(m.asnumpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("mode", ["consistent", "authors"])
def test_p0_gives_mask_one_in_both_modes(mode):
    ones = mx.nd.ones((10,))
    with autograd.record():
        np.testing.assert_array_equal(dropfactor_mask(mx.nd, ones, 0.0, mode).asnumpy(), 1)
    np.testing.assert_array_equal(dropfactor_mask(mx.nd, ones, 0.0, mode).asnumpy(), 1)
    layer = make_layer(p=0.0, mode=mode)
    x = input_x()
    with autograd.record():
        y_train = layer(x)
    np.testing.assert_array_equal(y_train.asnumpy(), layer(x).asnumpy())


@pytest.mark.parametrize("impl", ["native", "stock"])
@pytest.mark.parametrize("mode", ["consistent", "authors"])
def test_layer_training_masks_are_shared_and_scaled(mode, impl):
    # y_train - b = sum_f s_f q_f with s_f = m_f^2 in {0, 1/keep}, one s for the whole call:
    # the same mask for every sample, position, output channel and group (3 samples, 2
    # groups here), otherwise no single s would fit.
    layer = make_layer(impl=impl, p=0.5, mode=mode, linear=False)
    x = input_x()
    seen = []
    for _ in range(12):
        with autograd.record():
            y = layer(x).asnumpy()
        s, residual = solve_scales(layer, x, y)
        assert residual < 1e-5
        assert np.all(np.isclose(s, 0, atol=1e-5) | np.isclose(s, 2.0, rtol=1e-5)), s
        seen.append(np.round(s, 3))
    seen = np.array(seen)
    assert 0.25 < (seen > 0).mean() < 0.75 and len({tuple(r) for r in seen}) > 1


@pytest.mark.parametrize("impl", ["native", "stock"])
@pytest.mark.parametrize("mode,scale", [("consistent", 1.0), ("authors", 0.5)])
def test_layer_inference_scales_and_training_mean(mode, scale, impl):
    layer = make_layer(impl=impl, p=0.5, mode=mode, linear=False)
    x = input_x()
    Q = factor_terms(layer, x).sum(axis=0).reshape(layer(x).shape)
    b = bias_of(layer, Q.shape)
    expected = b + scale * Q                 # authors: keep * q + bias exactly (spec 7.3)
    np.testing.assert_allclose(layer(x).asnumpy(), expected, rtol=1e-5, atol=1e-5)
    with autograd.record(train_mode=False):
        np.testing.assert_allclose(layer(x).asnumpy(), expected, rtol=1e-5, atol=1e-5)
    # Monte-Carlo mean of the training output = the m = 1 output (in both modes)
    mean = np.mean([_train(layer, x) for _ in range(200)], axis=0)
    assert np.linalg.norm(mean - (b + Q)) < 0.1 * np.linalg.norm(Q)


def _train(layer, x):
    with autograd.record():
        return layer(x).asnumpy()


@pytest.mark.parametrize("impl", ["native", "stock"])
def test_hybridized_predict_is_deterministic_and_training_is_not(impl):
    layer = make_layer(impl=impl)
    layer.hybridize(static_alloc=True, static_shape=True)
    x = input_x()
    y1, y2 = layer(x).asnumpy(), layer(x).asnumpy()
    np.testing.assert_array_equal(y1, y2)
    with autograd.predict_mode():
        np.testing.assert_array_equal(layer(x).asnumpy(), y1)
    train = [_train(layer, x) for _ in range(4)]
    assert any(not np.array_equal(train[0], t) for t in train[1:])


@pytest.mark.parametrize("impl", ["native", "stock"])
def test_module_predict_deterministic_forward_train_stochastic(impl):
    layer = make_layer(impl=impl, linear=True)
    x = input_x()
    expected = layer(x).asnumpy()  # eager inference, mask 1
    sym = layer(mx.sym.var("data"))
    mod = mx.mod.Module(sym, data_names=["data"], label_names=None)
    mod.bind(data_shapes=[("data", x.shape)], for_training=True)
    mod.set_params({k: v.data() for k, v in layer.collect_params().items()}, {})
    it = mx.io.NDArrayIter(x, batch_size=x.shape[0])
    p1, p2 = mod.predict(it).asnumpy(), mod.predict(it).asnumpy()
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_allclose(p1, expected, rtol=1e-5, atol=1e-5)
    batch = mx.io.DataBatch([x])
    mod.forward(batch, is_train=False)
    np.testing.assert_array_equal(mod.get_outputs()[0].asnumpy(), p1)
    train = []
    for _ in range(4):
        mod.forward(batch, is_train=True)
        train.append(mod.get_outputs()[0].asnumpy())
    assert any(not np.array_equal(train[0], t) for t in train[1:])
    assert all(not np.allclose(t, p1) for t in train)


# ---- gradients -------------------------------------------------------------------------------
def _grads(layer, x, req, passes, seed=7):
    layer.collect_params().setattr("grad_req", req)
    layer.collect_params().zero_grad()
    xi = x.copy()
    xi.attach_grad(grad_req=req)
    w = mx.nd.array(np.random.RandomState(3).uniform(-1, 1, (3, 6, 5, 3)))
    for _ in range(passes):
        mx.random.seed(seed)  # the same DropFactor mask in every pass
        with autograd.record():
            loss = (layer(xi) * w).sum()
        loss.backward()
    out = {k: p.grad().asnumpy().copy() for k, p in layer.collect_params().items()}
    out["data"] = xi.grad.asnumpy().copy()
    return out


@pytest.mark.parametrize("linear", [True, False])  # False: x feeds only the extension op
@pytest.mark.parametrize("hybridize", [False, True])
@pytest.mark.parametrize("impl,op", [("native", 3), ("native", 1), ("stock", 3)])
def test_grad_req_add_accumulates_through_the_layer(impl, op, hybridize, linear):
    layer = make_layer(impl=impl, op=op, linear=linear)
    if hybridize:
        layer.hybridize()
    x = input_x()
    once = _grads(layer, x, "write", 1)
    twice = _grads(layer, x, "add", 2)
    assert all(np.abs(v).max() > 0 for v in once.values())
    for k in once:
        np.testing.assert_allclose(twice[k], 2 * once[k], rtol=1e-5, atol=1e-5, err_msg=k)


@pytest.mark.parametrize("hybridize", [False, True])
def test_native_equals_stock_and_op1_equals_op3(hybridize):
    ref = make_layer(impl="stock")
    x = input_x()
    results = []
    for impl, op, ws in (("stock", 3, 512), ("native", 3, 512), ("native", 1, 512),
                         ("native", 1, 0)):
        layer = make_layer(impl=impl, op=op, workspace=ws)
        copy_params(ref, layer)
        if hybridize:
            layer.hybridize()
        results.append((layer(x).asnumpy(), _grads(layer, x, "write", 1)))
    for y, g in results[1:]:
        np.testing.assert_allclose(y, results[0][0], rtol=1e-5, atol=1e-5)
        for k in g:
            np.testing.assert_allclose(g[k], results[0][1][k], rtol=1e-4, atol=1e-4, err_msg=k)


def test_legacy_data_grad_changes_only_the_input_gradient():
    exact = make_layer(impl="native")
    legacy = make_layer(impl="native", legacy_data_grad=True)
    copy_params(exact, legacy)
    x = input_x()
    ge, gl = _grads(exact, x, "write", 1), _grads(legacy, x, "write", 1)
    assert np.abs(ge["data"] - gl["data"]).max() > 1e-2
    for k in ge:
        if k != "data":
            np.testing.assert_allclose(gl[k], ge[k], rtol=1e-6, atol=1e-6)


# ---- export ----------------------------------------------------------------------------------
@pytest.mark.parametrize("op", [1, 3])
def test_native_export_imports_with_the_library(op, tmp_path):
    layer = make_layer(op=op)
    layer.hybridize()
    x = input_x()
    y = layer(x).asnumpy()
    layer.export(str(tmp_path / "fb"))
    text = (tmp_path / "fb-symbol.json").read_text()
    assert '"FMConvolution%d"' % op in text
    imported = gluon.SymbolBlock.imports(str(tmp_path / "fb-symbol.json"), ["data"],
                                         str(tmp_path / "fb-0000.params"))
    np.testing.assert_allclose(imported(x).asnumpy(), y, rtol=1e-6, atol=1e-6)


STOCK_LOADER = r"""
import sys
import numpy as np
import mxnet as mx
assert "gluon_models" not in sys.modules and not hasattr(mx.nd, "FMConvolution3")
net = mx.gluon.SymbolBlock.imports("fb-symbol.json", ["data"], "fb-0000.params")
y = net(mx.nd.array(np.load("x.npy"))).asnumpy()
np.testing.assert_allclose(y, np.load("y.npy"), rtol=1e-5, atol=1e-5)
print("loaded", y.shape)
"""


def test_stock_export_loads_where_only_mxnet_is_imported(tmp_path):
    layer = make_layer(impl="stock")
    layer.hybridize()
    x = input_x()
    y = layer(x).asnumpy()
    layer.export(str(tmp_path / "fb"))
    assert "FMConvolution" not in (tmp_path / "fb-symbol.json").read_text()
    np.save(str(tmp_path / "x.npy"), x.asnumpy())
    np.save(str(tmp_path / "y.npy"), y)
    env = dict(os.environ, PYTHONPATH="")
    proc = subprocess.run([sys.executable, "-c", STOCK_LOADER], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "loaded (3, 6, 5, 3)" in proc.stdout


# ---- argument checks -------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,match", [
    (dict(channels=5, groups=2), "groups"),
    (dict(in_channels=5, groups=2), "in_channels"),
    (dict(p=1.0), "p \\(the DropFactor"),
    (dict(p=-0.5), "p \\(the DropFactor"),
    (dict(dropfactor_mode="expectation"), "dropfactor_mode"),
    (dict(impl="cuda"), "impl"),
    (dict(op=2), "op must be"),
    (dict(impl="stock", legacy_data_grad=True), "legacy_data_grad"),
    (dict(kernel_size=(3, 3, 3)), "kernel_size"),
    (dict(strides=0), "strides"),
    (dict(num_factor=0), "num_factor"),
])
def test_layer_rejects_bad_arguments(kwargs, match):
    args = dict(channels=6, num_factor=4, in_channels=4)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        FactorizedBilinear(**args)


def test_fbconv2d_alone_and_repr():
    fb = FBConv2D(4, 3, kernel_size=3, padding=1, in_channels=2, prefix="q_")
    fb.initialize()
    assert fb(mx.nd.ones((1, 2, 4, 4))).shape == (1, 4, 4, 4)
    assert "num_factor=3" in repr(fb) and "impl=native" in repr(fb)
