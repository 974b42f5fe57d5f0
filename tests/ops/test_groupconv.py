"""GroupConv (a grouped 2-d convolution on plain NCHW, computed directly): numpy reference,
MXNet's Convolution, finite differences, the generic (non-AVX-512) build of the kernels, bad
arguments, empty tensors, and the Gluon layer DirectGroupConv2D."""
import os
import subprocess
import sys

import numpy as np
import pytest
import mxnet as mx
from mxnet import autograd, gluon
from mxnet.base import MXNetError
from mxnet.test_utils import check_numeric_gradient

import gluon_models  # noqa: F401  (loads the operator library)
from gluon_models.nn import DirectGroupConv2D

from ..passes import assert_same_pass, recorded_pass

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _taps(x, kh, kw, sh, sw, ph, pw):
    """Padded input and, per tap, the (N, C, OH, OW) window it reads."""
    H, W = x.shape[2:]
    OH, OW = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    sl = {(ky, kx): (slice(ky, ky + sh * (OH - 1) + 1, sh), slice(kx, kx + sw * (OW - 1) + 1, sw))
          for ky in range(kh) for kx in range(kw)}
    return xp, sl, OH, OW


def np_group_conv(x, w, groups, stride, pad):
    """out[n, g*Og + o] = sum_{c, ky, kx} w[g*Og + o, c, ky, kx] x_pad[n, g*Cg + c, ...]."""
    N, C = x.shape[:2]
    F, Cg, kh, kw = w.shape
    Og = F // groups
    xp, sl, OH, OW = _taps(x, kh, kw, *stride, *pad)
    y = np.zeros((N, F, OH, OW), dtype=np.float64)
    for g in range(groups):
        for (ky, kx), (sy, sx) in sl.items():
            y[:, g * Og:(g + 1) * Og] += np.einsum(
                "oc,nchw->nohw", w[g * Og:(g + 1) * Og, :, ky, kx],
                xp[:, g * Cg:(g + 1) * Cg, sy, sx])
    return y


def np_group_conv_grads(x, w, dy, groups, stride, pad):
    """The adjoint, tap by tap: dx gathers w^T dy into the windows, dw = dy . window."""
    F, Cg, kh, kw = w.shape
    Og = F // groups
    H, W = x.shape[2:]
    xp, sl, _, _ = _taps(x, kh, kw, *stride, *pad)
    dxp, dw = np.zeros_like(xp, dtype=np.float64), np.zeros(w.shape)
    for g in range(groups):
        o, c = slice(g * Og, (g + 1) * Og), slice(g * Cg, (g + 1) * Cg)
        for (ky, kx), (sy, sx) in sl.items():
            dxp[:, c, sy, sx] += np.einsum("oc,nohw->nchw", w[o, :, ky, kx], dy[:, o])
            dw[o, :, ky, kx] = np.einsum("nohw,nchw->oc", dy[:, o], xp[:, c, sy, sx])
    return dxp[:, :, pad[0]:pad[0] + H, pad[1]:pad[1] + W], dw


# (data shape, num_filter, num_group, kernel, stride, pad): the IGC primaries (1 -> 2 and
# 2 -> 2 channels per group, stride 1 and 2), 4 and 3 (the generic path) outputs per group, a
# single group, rectangular kernels and strides, no padding, a 1 x 1 kernel, a plane shorter
# than the vector width, a kernel as large as the padded input, 2 -> 1 channels and a 5 x 3
# kernel (the AVX-512 kernels take 1-2 -> 1-2 channels at stride 1)
CASES = [((2, 4, 7, 9), 8, 4, (3, 3), (1, 1), (1, 1)),
         ((2, 8, 9, 8), 8, 4, (3, 3), (1, 1), (1, 1)),
         ((2, 8, 11, 10), 16, 8, (3, 3), (2, 2), (1, 1)),
         ((2, 6, 6, 7), 12, 3, (3, 3), (1, 1), (1, 1)),
         ((1, 6, 5, 5), 9, 3, (3, 3), (1, 1), (1, 1)),
         ((2, 5, 6, 6), 3, 1, (3, 3), (1, 1), (1, 1)),
         ((2, 6, 8, 7), 6, 2, (3, 1), (2, 1), (1, 0)),
         ((2, 4, 9, 9), 8, 2, (5, 5), (2, 3), (2, 2)),
         ((1, 4, 6, 5), 4, 4, (3, 3), (1, 1), (0, 0)),
         ((2, 6, 4, 4), 6, 3, (1, 1), (1, 1), (0, 0)),
         ((3, 2, 2, 3), 4, 2, (3, 3), (1, 1), (1, 1)),
         ((1, 2, 3, 3), 2, 1, (5, 5), (1, 1), (1, 1)),
         ((2, 4, 6, 6), 2, 2, (3, 3), (1, 1), (1, 1)),
         ((1, 3, 10, 6), 6, 3, (5, 3), (1, 1), (2, 1)),
         ((2, 200, 14, 14), 200, 100, (3, 3), (1, 1), (1, 1)),
         ((2, 100, 12, 12), 200, 100, (3, 3), (2, 2), (1, 1))]


def _run(x, w, dy, groups, kernel, stride, pad, dtype):
    xn, wn = mx.nd.array(x, dtype=dtype), mx.nd.array(w, dtype=dtype)
    xn.attach_grad()
    wn.attach_grad()
    with autograd.record():
        y = mx.nd.GroupConv(xn, wn, num_filter=w.shape[0], num_group=groups, kernel=kernel,
                            stride=stride, pad=pad)
    y.backward(mx.nd.array(dy, dtype=dtype))
    return y.asnumpy(), xn.grad.asnumpy(), wn.grad.asnumpy()


def _case(shape, F, G, kernel, stride, pad, seed=0):
    rng = np.random.RandomState(seed + sum(shape) + F)
    x = rng.uniform(-1, 1, shape)
    w = rng.uniform(-1, 1, (F, shape[1] // G) + kernel)
    y = np_group_conv(x, w, G, stride, pad)
    dy = rng.uniform(-1, 1, y.shape)
    return x, w, dy, y


def _mismatches(got, want, dtype):
    """(output, grad_data, grad_weight) against the reference: a list of what differs."""
    tol = 1e-12 if dtype == "float64" else 3e-6
    bad = []
    for name, g, wnt in zip(("out", "grad_data", "grad_weight"), got, want):
        if g.dtype != np.dtype(dtype) or g.shape != wnt.shape:
            bad.append("%s: %s %s, expected %s %s" % (name, g.dtype, g.shape, dtype, wnt.shape))
        elif not np.allclose(g, wnt, rtol=tol, atol=tol * max(1.0, np.abs(wnt).max())):
            bad.append("%s: differs by %g" % (name, np.abs(g - wnt).max()))
    return bad


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape,F,G,kernel,stride,pad", CASES)
def test_forward_backward_match_numpy(shape, F, G, kernel, stride, pad, dtype):
    x, w, dy, y = _case(shape, F, G, kernel, stride, pad)
    got = _run(x, w, dy, G, kernel, stride, pad, dtype)
    assert not _mismatches(got, (y,) + np_group_conv_grads(x, w, dy, G, stride, pad), dtype)


@pytest.mark.parametrize("shape,F,G,kernel,stride,pad", CASES[:4] + CASES[6:8])
def test_equals_mxnet_convolution(shape, F, G, kernel, stride, pad):
    x, w, dy, _ = _case(shape, F, G, kernel, stride, pad, seed=1)
    got = _run(x, w, dy, G, kernel, stride, pad, "float64")
    xn, wn = mx.nd.array(x, dtype="float64"), mx.nd.array(w, dtype="float64")
    xn.attach_grad()
    wn.attach_grad()
    with autograd.record():
        y = mx.nd.Convolution(xn, wn, num_filter=F, num_group=G, kernel=kernel, stride=stride,
                              pad=pad, no_bias=True)
    y.backward(mx.nd.array(dy, dtype="float64"))
    assert not _mismatches(got, (y.asnumpy(), xn.grad.asnumpy(), wn.grad.asnumpy()), "float64")


GENERIC_CHILD = """
import numpy as np, gluon_models
from tests.ops.test_groupconv import CASES, _case, _run, _mismatches, np_group_conv_grads
for shape, F, G, kernel, stride, pad in CASES:
    x, w, dy, y = _case(shape, F, G, kernel, stride, pad)
    bad = _mismatches(_run(x, w, dy, G, kernel, stride, pad, "float32"),
                      (y,) + np_group_conv_grads(x, w, dy, G, stride, pad), "float32")
    assert not bad, (shape, F, G, kernel, stride, pad, bad)
print("generic ok")
"""


def test_generic_kernels_match_numpy():
    """The build of the kernels for CPUs without AVX-512 (chosen with GLUON_MODELS_NO_AVX512),
    in float32 (float64 takes it on every CPU)."""
    env = dict(os.environ, GLUON_MODELS_NO_AVX512="1")
    out = subprocess.run([sys.executable, "-c", GENERIC_CHILD], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "generic ok" in out.stdout, out.stderr[-3000:]


@pytest.mark.parametrize("shape,F,G,kernel,stride,pad", [
    ((2, 4, 4, 5), 8, 4, (3, 3), (1, 1), (1, 1)), ((1, 6, 5, 4), 9, 3, (3, 3), (2, 1), (1, 1)),
    ((2, 4, 3, 3), 4, 2, (2, 3), (1, 2), (0, 1))])
def test_finite_differences(shape, F, G, kernel, stride, pad):
    rng = np.random.RandomState(2)
    x = rng.uniform(-1, 1, shape)
    w = rng.uniform(-1, 1, (F, shape[1] // G) + kernel)
    sym = mx.sym.GroupConv(mx.sym.var("data"), mx.sym.var("weight"), num_filter=F,
                           num_group=G, kernel=kernel, stride=stride, pad=pad)
    check_numeric_gradient(sym, {"data": x, "weight": w}, numeric_eps=1e-6, rtol=1e-5,
                           atol=1e-7, dtype=np.float64)


def test_empty_batch():
    w = mx.nd.ones((4, 1, 3, 3))
    w.attach_grad()
    with mx.util.np_shape(True):
        x = mx.nd.zeros((0, 2, 5, 5))
        x.attach_grad()
        with autograd.record():
            y = mx.nd.GroupConv(x, w, num_filter=4, num_group=2, kernel=(3, 3), pad=(1, 1))
        y.backward(mx.nd.zeros(y.shape))
        assert y.shape == (0, 4, 5, 5) and x.grad.shape == (0, 2, 5, 5)
        np.testing.assert_array_equal(w.grad.asnumpy(), 0)  # an empty sum


def test_symbol_infers_shapes():
    sym = mx.sym.GroupConv(mx.sym.var("data"), mx.sym.var("weight"), num_filter=12,
                           num_group=3, kernel=(3, 1), stride=(2, 1), pad=(1, 0))
    args, outs, _ = sym.infer_shape(data=(2, 6, 9, 7))
    assert args == [(2, 6, 9, 7), (12, 2, 3, 1)] and outs == [(2, 12, 5, 7)]


def _layers(dtype="float64", **kwargs):
    direct = DirectGroupConv2D(8, 3, 1, 1, groups=4, in_channels=4, prefix="c_", **kwargs)
    plain = gluon.nn.Conv2D(8, 3, 1, 1, groups=4, in_channels=4, use_bias=False, prefix="c_")
    for layer in (direct, plain):
        layer.initialize(mx.init.Uniform())
        layer.cast(dtype)
    plain.weight.set_data(direct.weight.data())
    return direct, plain


def test_layer_is_the_plain_conv():
    direct, plain = _layers()
    assert direct.weight.shape == plain.weight.shape == (8, 1, 3, 3)
    x = mx.nd.array(np.random.RandomState(3).uniform(-1, 1, (2, 4, 6, 5)), dtype="float64")
    dy = mx.nd.array(np.random.RandomState(4).uniform(-1, 1, (2, 8, 6, 5)), dtype="float64")
    for layer in (direct, plain):
        layer.hybridize()
    assert_same_pass(*(recorded_pass(layer, x, dy) for layer in (direct, plain)), 1e-12)
    sym = direct(mx.sym.var("data"))
    assert "GroupConv" in sym.tojson()


def test_layer_accumulates_gradients():
    """grad_req='add' on the block's input and weight: two passes give twice one pass."""
    direct, _ = _layers("float32")
    direct.hybridize()
    direct.collect_params().setattr("grad_req", "add")
    x = mx.nd.random.uniform(shape=(2, 4, 5, 5))
    x.attach_grad(grad_req="add")
    for _ in range(2):
        with autograd.record():
            y = direct(x)
        y.backward()
    once = _run(x.asnumpy(), direct.weight.data().asnumpy(), np.ones((2, 8, 5, 5)), 4, (3, 3),
                (1, 1), (1, 1), "float32")
    np.testing.assert_allclose(x.grad.asnumpy(), 2 * once[1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(direct.weight.grad().asnumpy(), 2 * once[2], rtol=1e-5,
                               atol=1e-5)


def test_layer_float16_and_bad_options():
    direct, _ = _layers("float32")
    assert direct.direct
    direct.cast("float16")  # MXNet's own convolution then (the operator has no float16)
    assert not direct.direct and np.dtype(direct.weight.dtype) == np.float16
    assert "GroupConv" not in direct(mx.sym.var("data")).tojson()
    with pytest.raises(ValueError, match="no bias"):
        DirectGroupConv2D(8, 3, groups=4, in_channels=4, use_bias=True)
    with pytest.raises(ValueError, match="without dilation"):
        DirectGroupConv2D(8, 3, groups=4, in_channels=4, dilation=2)
    with pytest.raises(ValueError, match="in_channels"):
        DirectGroupConv2D(8, 3, groups=4)


GOOD = {"num_filter": "8", "num_group": "4", "kernel": "(3, 3)", "pad": "(1, 1)"}


@pytest.mark.parametrize("attrs,shapes,dtypes,message", [
    (dict(GOOD, num_group="3"), [(2, 6, 5, 5), (8, 2, 3, 3)], None,
     "'num_filter' = 8 not divisible by argument 'num_group'"),
    (dict(GOOD), [(2, 6, 5, 5), (8, 1, 3, 3)], None, "not divisible by argument 'num_group'"),
    (dict(GOOD), [(2, 8, 5, 5), (8, 1, 3, 3)], None, "'weight' has shape"),
    (dict(GOOD), [(2, 8, 5, 5), (8, 2, 3, 2)], None, "'weight' has shape"),
    (dict(GOOD, kernel="(7, 7)", pad="(0, 0)"), [(2, 8, 5, 5), (8, 2, 7, 7)], None,
     "'kernel'"),
    (dict(GOOD, kernel="(0, 3)"), [(2, 8, 5, 5), (8, 2, 3, 3)], None, "'kernel'"),
    (dict(GOOD, stride="0"), [(2, 8, 5, 5), (8, 2, 3, 3)], None, "'stride'"),
    (dict(GOOD, pad="-1"), [(2, 8, 5, 5), (8, 2, 3, 3)], None, "'pad'"),
    (dict(GOOD, num_filter="x"), [(2, 8, 5, 5), (8, 2, 3, 3)], None, "'num_filter'"),
    ({k: v for k, v in GOOD.items() if k != "kernel"}, [(2, 8, 5, 5), (8, 2, 3, 3)], None,
     "'kernel' is required"),
    (dict(GOOD, dilate="(2, 2)"), [(2, 8, 5, 5), (8, 2, 3, 3)], None, "'dilate'"),
    (dict(GOOD), [(8, 5, 5), (8, 2, 3, 3)], None, "must be 4-d"),
    (dict(GOOD), [(2, 8, 5, 5), (8, 2, 3, 3)], ["float16", "float16"], "float16"),
    (dict(GOOD), [(2, 8, 5, 5), (8, 2, 3, 3)], ["float32", "float64"], "dtype"),
])
def test_bad_arguments_name_the_argument(attrs, shapes, dtypes, message):
    dtypes = dtypes or ["float32", "float32"]
    arrs = [mx.nd.ones(s, dtype=t) for s, t in zip(shapes, dtypes)]
    with pytest.raises(MXNetError, match=message):
        mx.nd.GroupConv(*arrs, **attrs).wait_to_read()
