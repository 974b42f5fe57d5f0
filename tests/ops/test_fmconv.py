"""FMConvolution1/3: numpy reference, finite differences, stock twin, chunking, legacy gradient,
bad arguments, shape inference, bounded temporary memory."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import mxnet as mx
from mxnet import autograd
from mxnet.base import MXNetError
from mxnet.test_utils import check_numeric_gradient

from gluon_models.nn import fb_quadratic

OPS = {1: mx.nd.FMConvolution1, 3: mx.nd.FMConvolution3}
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ---- independent numpy reference (explicit patches, pairwise interaction matrix) ------------
def out_size(n, k, s, p, d):
    return (n + 2 * p - (d * (k - 1) + 1)) // s + 1


def np_patches(x, kernel, stride, pad, dilate):
    """P[n, l, c, ky, kx] = x_pad[n, c, oy*sh + ky*dh, ox*sw + kx*dw], l = oy*OW + ox."""
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, pad, dilate
    OH, OW = out_size(H, kh, sh, ph, dh), out_size(W, kw, sw, pw, dw)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    P = np.empty((N, OH, OW, C, kh, kw), x.dtype)
    for oy in range(OH):
        for ox in range(OW):
            for ky in range(kh):
                for kx in range(kw):
                    P[:, oy, ox, :, ky, kx] = xp[:, :, oy * sh + ky * dh, ox * sw + kx * dw]
    return P.reshape(N, OH * OW, C, kh, kw), (OH, OW)


def np_unpatch(dP, x_shape, kernel, stride, pad, dilate, out_hw):
    """Adjoint of np_patches: every tap adds its gradient to the pixel it read."""
    N, C, H, W = x_shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, pad, dilate
    OH, OW = out_hw
    dxp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dP.dtype)
    dP = dP.reshape(N, OH, OW, C, kh, kw)
    for oy in range(OH):
        for ox in range(OW):
            for ky in range(kh):
                for kx in range(kw):
                    dxp[:, :, oy * sh + ky * dh, ox * sw + kx * dw] += dP[:, oy, ox, :, ky, kx]
    return dxp[:, :, ph:ph + H, pw:pw + W]


def np_fmconv(x, w, b, m, kernel, stride=(1, 1), pad=(0, 0), dilate=(1, 1), groups=1, gy=None):
    """Forward sum_{d != e} (V^T V)_{de} x_d x_e + b with V = diag(m) W[o] (spec 7.1), and, given
    the output gradient gy, the exact gradients and the authors' legacy data gradient."""
    N, C = x.shape[:2]
    O, Fn = w.shape[:2]
    Cg, Og = C // groups, O // groups
    P, (OH, OW) = np_patches(x, kernel, stride, pad, dilate)
    L = OH * OW
    y = np.zeros((N, O, L))
    dP, dP_legacy = np.zeros(P.shape), np.zeros(P.shape)
    dw = np.zeros(w.shape)
    for g in range(groups):
        Pg = P[:, :, g * Cg:(g + 1) * Cg].reshape(N, L, -1)            # (N, L, K)
        V = m[None, :, None] * w[g * Og:(g + 1) * Og].reshape(Og, Fn, -1)  # (Og, F, K)
        VtV = np.einsum("ofk,ofj->okj", V, V)
        A = VtV - np.einsum("okk->ok", VtV)[:, :, None] * np.eye(VtV.shape[1])
        y[:, g * Og:(g + 1) * Og] = np.einsum("nlk,okj,nlj->nol", Pg, A, Pg)
        if gy is None:
            continue
        G = gy[:, g * Og:(g + 1) * Og].reshape(N, Og, L)
        # d/dx_d sum_{d!=e} A_de x_d x_e = 2 (A x)_d
        dPg = 2 * np.einsum("nol,okj,nlj->nlk", G, A, Pg)
        dP[:, :, g * Cg:(g + 1) * Cg] = dPg.reshape(N, L, Cg, *kernel)
        # authors: 2 (V^T V x)_d - 2 sum_f V_fd^2, the diagonal term not multiplied by x_d
        D = np.einsum("ofk,ofk->ok", V, V)
        dPl = 2 * np.einsum("nol,okj,nlj->nlk", G, VtV, Pg) - 2 * np.einsum("nol,ok->nlk", G, D)
        dP_legacy[:, :, g * Cg:(g + 1) * Cg] = dPl.reshape(N, L, Cg, *kernel)
        # d/dV_fd sum_{d!=e} sum_f V_fd V_fe x_d x_e = 2 x_d (V_f . x - V_fd x_d); dW = m_f dV
        Vx = np.einsum("ofk,nlk->nofl", V, Pg)
        dV = 2 * (np.einsum("nol,nofl,nlk->ofk", G, Vx, Pg)
                  - V * np.einsum("nol,nlk->ok", G, Pg ** 2)[:, None, :])
        dw[g * Og:(g + 1) * Og] = (m[None, :, None] * dV).reshape(dw[g * Og:(g + 1) * Og].shape)
    y = y.reshape(N, O, OH, OW) + (0 if b is None else b[None, :, None, None])
    if gy is None:
        return y
    grads = dict(
        data=np_unpatch(dP, x.shape, kernel, stride, pad, dilate, (OH, OW)),
        data_legacy=np_unpatch(dP_legacy, x.shape, kernel, stride, pad, dilate, (OH, OW)),
        weight=dw, bias=gy.sum(axis=(0, 2, 3)))
    return y, grads


# (N, C, H, W, O, F, kernel, stride, pad, dilate, groups): square and non-square kernels,
# strides and dilations, asymmetric pads, groups 1-3, F = 1
CASES = [
    (2, 3, 5, 5, 4, 2, (1, 1), (1, 1), (0, 0), (1, 1), 1),
    (2, 4, 6, 5, 6, 3, (3, 3), (1, 1), (1, 1), (1, 1), 2),
    (1, 6, 7, 6, 3, 2, (3, 2), (2, 1), (1, 0), (1, 1), 3),
    (2, 4, 8, 7, 4, 3, (2, 3), (2, 2), (0, 2), (2, 2), 1),
    (2, 6, 9, 9, 6, 2, (3, 3), (2, 1), (2, 1), (3, 2), 2),
    (1, 3, 4, 6, 2, 4, (1, 1), (2, 2), (1, 1), (1, 1), 1),
    (3, 2, 5, 4, 2, 1, (3, 3), (1, 2), (1, 1), (1, 2), 2),
    (2, 3, 6, 6, 3, 2, (2, 2), (3, 3), (0, 0), (1, 1), 1),  # stride > kernel: unread pixels
]
MASKS = ("ones", "dropfactor", "positive")


def make_mask(kind, F, rng):
    if kind == "ones":
        return np.ones(F)
    if kind == "dropfactor":  # p = 0.5: 0 or sqrt(2)
        return (rng.uniform(size=F) < 0.5) * np.sqrt(2.0)
    return rng.uniform(0.3, 1.7, size=F)


def make_inputs(case, mask="positive", seed=0):
    N, C, H, W, O, F, k = case[:7]
    G = case[10]
    rng = np.random.RandomState(seed)
    return dict(data=rng.uniform(-1, 1, (N, C, H, W)),
                weight=rng.uniform(-1, 1, (O, F, C // G) + k),
                bias=rng.uniform(-1, 1, O), factor_mask=make_mask(mask, F, rng))


def attrs(case, **extra):
    N, C, H, W, O, F, k, s, p, d, G = case
    return dict(kernel=k, stride=s, pad=p, dilate=d, num_filter=O, num_factor=F, num_group=G,
                **extra)


def run_op(op, inputs, gy, dtype="float64", no_bias=False, **kw):
    names = ["data", "weight"] + ([] if no_bias else ["bias"]) + ["factor_mask"]
    arrs = [mx.nd.array(inputs[n], dtype=dtype) for n in names]
    for a in arrs:
        a.attach_grad()
    with autograd.record():
        y = OPS[op](*arrs, no_bias=no_bias, **kw)
    y.backward(mx.nd.array(gy, dtype=dtype))
    return y.asnumpy(), {n: a.grad.asnumpy() for n, a in zip(names, arrs)}


@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("case", CASES)
def test_forward_and_gradients_match_numpy(case, mask):
    inp = make_inputs(case, mask)
    k, s, p, d, G = case[6:]
    gy_shape = (case[0], case[4], out_size(case[2], k[0], s[0], p[0], d[0]),
                out_size(case[3], k[1], s[1], p[1], d[1]))
    gy = np.random.RandomState(1).uniform(-1, 1, gy_shape)
    y_ref, g_ref = np_fmconv(inp["data"], inp["weight"], inp["bias"], inp["factor_mask"], k, s,
                             p, d, G, gy=gy)
    for op in (1, 3):
        y, g = run_op(op, inp, gy, **attrs(case))
        np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-10)
        for name in ("data", "weight", "bias"):
            np.testing.assert_allclose(g[name], g_ref[name], rtol=1e-10, atol=1e-10,
                                       err_msg="op %d, grad %s" % (op, name))
        np.testing.assert_array_equal(g["factor_mask"], 0)


@pytest.mark.parametrize("case", CASES[:4])
def test_float32_matches_numpy(case):
    inp = make_inputs(case)
    y_ref = np_fmconv(inp["data"], inp["weight"], inp["bias"], inp["factor_mask"], *case[6:])
    for op in (1, 3):
        y, _ = run_op(op, inp, np.ones(y_ref.shape), dtype="float32", **attrs(case))
        assert y.dtype == np.float32
        np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-4)


def test_without_bias():
    case = CASES[1]
    inp = make_inputs(case)
    y_ref = np_fmconv(inp["data"], inp["weight"], None, inp["factor_mask"], *case[6:])
    for op in (1, 3):
        y, g = run_op(op, inp, np.ones(y_ref.shape), no_bias=True, **attrs(case))
        np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-10)
        assert set(g) == {"data", "weight", "factor_mask"}


def fm_symbol(op, case, no_bias=False, **extra):
    names = ["data", "weight"] + ([] if no_bias else ["bias"]) + ["factor_mask"]
    fn = mx.sym.FMConvolution1 if op == 1 else mx.sym.FMConvolution3
    return fn(*[mx.sym.var(n) for n in names], no_bias=no_bias, **attrs(case, **extra))


@pytest.mark.parametrize("op", [1, 3])
@pytest.mark.parametrize("case", [CASES[1], CASES[2], CASES[4]])
def test_numeric_gradient_float64(op, case):
    inp = make_inputs(case)
    check_numeric_gradient(fm_symbol(op, case), inp, grad_nodes=["data", "weight", "bias"],
                           numeric_eps=1e-6, rtol=1e-5, atol=1e-8, dtype=np.float64)


def test_legacy_data_gradient_is_the_authors_formula_and_wrong():
    case = CASES[4]
    inp = make_inputs(case)
    shape = np_fmconv(inp["data"], inp["weight"], inp["bias"], inp["factor_mask"],
                      *case[6:]).shape
    y_ref, g_ref = np_fmconv(inp["data"], inp["weight"], inp["bias"], inp["factor_mask"],
                             *case[6:], gy=np.ones(shape))
    for op in (1, 3):
        _, exact = run_op(op, inp, np.ones(y_ref.shape), **attrs(case))
        _, legacy = run_op(op, inp, np.ones(y_ref.shape), legacy_data_grad=True, **attrs(case))
        np.testing.assert_allclose(legacy["data"], g_ref["data_legacy"], rtol=1e-10, atol=1e-10)
        assert np.abs(legacy["data"] - exact["data"]).max() > 0.1 * np.abs(exact["data"]).max()
        for name in ("weight", "bias"):  # only the data gradient differs
            np.testing.assert_allclose(legacy[name], exact[name], rtol=1e-12, atol=1e-12)
    with pytest.raises(AssertionError):  # it is not the derivative of the forward pass
        check_numeric_gradient(fm_symbol(3, case, legacy_data_grad=True), inp,
                               grad_nodes=["data"], numeric_eps=1e-6, rtol=1e-5, atol=1e-8,
                               dtype=np.float64)


def test_mask_gradient_is_zero_even_over_a_dirty_buffer():
    case = CASES[1]
    inp = make_inputs(case)
    arrs = [mx.nd.array(inp[n], dtype="float64") for n in ("data", "weight", "bias",
                                                               "factor_mask")]
    for a in arrs:
        a.attach_grad()
    arrs[3].grad[:] = 7
    with autograd.record():
        y = mx.nd.FMConvolution3(*arrs, **attrs(case))
    y.backward()
    np.testing.assert_array_equal(arrs[3].grad.asnumpy(), 0)


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-10), ("float32", 2e-4)])
@pytest.mark.parametrize("case", [CASES[1], CASES[3], CASES[4], CASES[6]])
def test_native_equals_stock_twin(case, dtype, tol):
    inp = make_inputs(case, "dropfactor")
    k, s, p, d, G = case[6:]
    outs, grads = [], []
    for impl, fold in (("native", True), ("stock", True), ("stock", False)):
        arrs = {n: mx.nd.array(v, dtype=dtype) for n, v in inp.items()}
        for a in arrs.values():
            a.attach_grad()
        with autograd.record():
            y = fb_quadratic(mx.nd, arrs["data"], arrs["weight"], arrs["bias"],
                             arrs["factor_mask"], k, case[4], case[5], s, p, d, G, impl=impl,
                             fold_mask=fold)
        y.backward(mx.nd.array(np.linspace(-1, 1, y.size).reshape(y.shape), dtype=dtype))
        outs.append(y.asnumpy())
        grads.append({n: a.grad.asnumpy() for n, a in arrs.items()})
    for i in (1, 2):  # the stock twin, mask folded into the weight or scaling Z
        np.testing.assert_allclose(outs[i], outs[0], rtol=tol, atol=tol)
        for n in inp:
            np.testing.assert_allclose(grads[i][n], grads[0][n], rtol=tol, atol=tol, err_msg=n)
        np.testing.assert_array_equal(grads[i]["factor_mask"], 0)


def test_symbolic_native_equals_stock():
    # executors bound by argument name (the two graphs list their arguments in other orders)
    case = CASES[4]
    k, s, p, d, G = case[6:]
    inp = make_inputs(case, "dropfactor")
    v = {n: mx.sym.var(n) for n in inp}
    results = []
    for impl in ("native", "stock"):
        sym = fb_quadratic(mx.sym, v["data"], v["weight"], v["bias"], v["factor_mask"], k,
                           case[4], case[5], s, p, d, G, impl=impl)
        args = {n: mx.nd.array(a, dtype="float64") for n, a in inp.items()}
        grads = {n: mx.nd.zeros(a.shape, dtype="float64") for n, a in inp.items()}
        ex = sym.bind(mx.cpu(), args, args_grad=grads)
        y = ex.forward(is_train=True)[0]
        ex.backward(mx.nd.ones(y.shape, dtype="float64"))
        results.append((y.asnumpy(), {n: g.asnumpy() for n, g in grads.items()}))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-10, atol=1e-10)
    for n in inp:
        np.testing.assert_allclose(results[0][1][n], results[1][1][n], rtol=1e-10, atol=1e-10)


# (case, workspace): 0 MB forces FMConvolution1 to one image x one output channel per block
# (FMConvolution3: one image x all channels); in the second case one image with all 32 output
# channels needs 1.4 MB, so FMConvolution1 at workspace=1 cuts output channels (24 + 8 in
# float32); the third cuts images (5 + 1 forward, 3 + 3 backward in float32); in the fourth,
# 40 images x 64 positions exceed the 2048-column cap at the default workspace (32 + 8 images);
# in the fifth the weights dominate (O F = 4096 > 4 S), so FMConvolution1 keeps all 4 images
# and cuts output channels (15 + 15 + 15 + 15 + 4 forward in float32).
CHUNKED = [(CASES[4], 0), ((2, 16, 16, 16, 32, 40, (1, 1), (1, 1), (0, 0), (1, 1), 1), 1),
           ((6, 32, 12, 12, 8, 4, (3, 3), (1, 1), (1, 1), (1, 1), 2), 1),
           ((40, 3, 8, 8, 4, 2, (3, 3), (1, 1), (1, 1), (1, 1), 1), 512),
           ((4, 8, 8, 8, 64, 64, (1, 1), (1, 1), (0, 0), (1, 1), 1), 1)]


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-10), ("float32", 1e-4)])
@pytest.mark.parametrize("case,workspace", CHUNKED)
def test_fmconv1_equals_fmconv3_across_chunkings(case, workspace, dtype, tol):
    inp = make_inputs(case, "dropfactor")
    ref_y = np_fmconv(inp["data"], inp["weight"], inp["bias"], inp["factor_mask"], *case[6:])
    gy = np.random.RandomState(2).uniform(-1, 1, ref_y.shape)
    results = [run_op(op, inp, gy, dtype, workspace=ws, **attrs(case))
               for op, ws in ((3, 512), (3, workspace), (1, workspace), (1, 512))]
    scale = np.abs(ref_y).max()
    np.testing.assert_allclose(results[0][0], ref_y, rtol=tol, atol=tol * scale)
    for y, g in results[1:]:
        np.testing.assert_allclose(y, results[0][0], rtol=tol, atol=tol * scale)
        for n in g:
            np.testing.assert_allclose(g[n], results[0][1][n], rtol=tol,
                                       atol=tol * max(1, np.abs(results[0][1][n]).max()),
                                       err_msg=n)


def test_shape_inference_fills_parameters_and_uses_the_dilated_extent():
    sym = fm_symbol(3, (0, 0, 0, 0, 6, 4, (3, 3), (1, 1), (0, 0), (3, 3), 2))
    args, outs, _ = sym.infer_shape(data=(2, 6, 10, 9))
    assert dict(zip(sym.list_arguments(), args)) == {
        "data": (2, 6, 10, 9), "weight": (6, 4, 3, 3, 3), "bias": (6,), "factor_mask": (4,)}
    assert outs == [(2, 6, 4, 3)]  # extent 3*(3-1)+1 = 7 (the authors' k*d-1 = 8 gives 3x2)


def test_float64_dtype_inference():
    sym = fm_symbol(1, CASES[0])
    args, outs, _ = sym.infer_type(data=np.float64)
    assert set(args) == {np.float64} and outs == [np.float64]


BAD_ARGS = [
    (dict(kernel=None), "'kernel' is required"),
    (dict(num_filter=None), "'num_filter' is required"),
    (dict(num_filter=5, num_group=2), "'num_filter' = 5 is not divisible by argument 'num_group'"),
    (dict(num_group=4, num_filter=4), "'data' are not divisible by argument 'num_group' = 4"),
    (dict(kernel=(8, 1)), "argument 'kernel' height = 8"),
    (dict(kernel=(3, 3), dilate=(1, 4)), "argument 'kernel' width = 3 \\(dilated extent 9"),
    (dict(kernel=(1, 2, 3)), "'kernel' must have 2 elements"),
    # an empty item is a malformed tuple, not a shorter one (only "(3,)" may end in a comma)
    (dict(kernel="(3,,3)"), "'kernel' must be a tuple of integers"),
    (dict(kernel="(,3,3)"), "'kernel' must be a tuple of integers"),
    (dict(kernel="(3,3,,)"), "'kernel' must be a tuple of integers"),
    (dict(p=1.0), "'p' must be in \\[0, 1\\)"),
    (dict(p=-0.1), "'p' must be in"),
    (dict(stride=(0, 1)), "'stride' elements must be >= 1"),
    (dict(dilate=(1, -1)), "'dilate' elements must be >= 1"),
    (dict(pad=(-1, 0)), "'pad' elements must be >= 0"),
    (dict(num_factor=0), "'num_factor' must be in"),
    (dict(workspace=-1), "'workspace' must be in"),
    (dict(no_bias="maybe"), "'no_bias' must be True or False"),
    (dict(legacy_data_grad="yes"), "'legacy_data_grad' must be True or False"),
    (dict(groups=2), "unknown argument 'groups'"),
    (dict(kernel=(99999, 1)), "'kernel' elements must be <= 65536"),
]
GOOD = dict(kernel=(3, 3), num_filter=4, num_factor=2, pad=(1, 1))


def good_inputs(F=2, C=6, shape=(2, 6, 5, 5), dtype="float32"):
    return [mx.nd.ones(shape, dtype=dtype), mx.nd.ones((4, F, C, 3, 3), dtype=dtype),
            mx.nd.ones((4,), dtype=dtype), mx.nd.ones((F,), dtype=dtype)]


@pytest.mark.parametrize("op", [1, 3])
@pytest.mark.parametrize("kwargs,message", BAD_ARGS)
def test_bad_arguments_raise_named_errors(op, kwargs, message):
    kw = {k: v for k, v in dict(GOOD, **kwargs).items() if v is not None}
    inputs = good_inputs(F=kw.get("num_factor", 2) or 2)
    if kw.get("num_group", 1) != 1:  # consistent weight for the grouped cases
        inputs[1] = mx.nd.ones((4, 2, 6 // kw["num_group"], 3, 3))
    with pytest.raises(MXNetError, match=message):
        OPS[op](*inputs, **kw).wait_to_read()
    assert OPS[op](*good_inputs(), **GOOD).shape == (2, 4, 5, 5)  # the process survives


BAD_INPUTS = [
    (lambda a: a.__setitem__(1, mx.nd.ones((4, 2, 5, 3, 3))), "'weight' has shape \\(4, 2, 5, 3, 3\\)"),
    (lambda a: a.__setitem__(1, mx.nd.ones((4, 2, 6, 3))), "'weight' has shape"),
    (lambda a: a.__setitem__(2, mx.nd.ones((5,))), "'bias' has shape \\(5,\\), expected \\(4,\\)"),
    (lambda a: a.__setitem__(3, mx.nd.ones((3,))), "'factor_mask' has shape \\(3,\\)"),
    (lambda a: a.__setitem__(0, mx.nd.ones((2, 6, 5))), "'data' must be 4-D"),
    (lambda a: a.__setitem__(0, mx.nd.ones((2, 6, 5, 5), dtype="int32")),
     "unsupported dtype int32"),
    (lambda a: a.__setitem__(1, mx.nd.ones((4, 2, 6, 3, 3), dtype="float64")),
     "'weight' has dtype float64"),
    (lambda a: a.__setitem__(0, mx.nd.ones((2, 6, 5, 5), dtype="float16")),
     "unsupported dtype float16"),
]


@pytest.mark.parametrize("op", [1, 3])
@pytest.mark.parametrize("mutate,message", BAD_INPUTS)
def test_bad_inputs_raise_named_errors(op, mutate, message):
    inputs = good_inputs()
    mutate(inputs)
    with pytest.raises(MXNetError, match=message):
        OPS[op](*inputs, **GOOD).wait_to_read()


def test_tuple_spellings():
    """"(3, 3)", "[3,3]", "3" and Python's one-element "(3,)" are accepted."""
    for kernel in ("(3, 3)", "[3,3]", "3", "(3,)", "(3, )"):
        assert OPS[3](*good_inputs(), **dict(GOOD, kernel=kernel)).shape == (2, 4, 5, 5)


def test_symbolic_shape_errors():
    sym = fm_symbol(3, (0, 0, 0, 0, 4, 2, (3, 3), (1, 1), (0, 0), (1, 1), 2))
    with pytest.raises(MXNetError, match="not divisible by argument 'num_group' = 2"):
        sym.infer_shape(data=(1, 5, 4, 4))
    with pytest.raises(MXNetError, match="'weight' has shape"):
        sym.infer_shape(data=(1, 6, 4, 4), weight=(4, 2, 6, 3, 3))
    with pytest.raises(MXNetError, match="argument 'kernel' height"):
        sym.infer_shape(data=(1, 6, 2, 4))


MEMORY_SCRIPT = r"""
import json, sys
import mxnet as mx
import gluon_models  # noqa: F401
from mxnet import autograd

def rss_mb():
    # peak RSS of this process image; ru_maxrss would inherit the parent's peak across exec
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) for l in fh if l.startswith("VmHWM:")) / 1024.0

N, C, HW, O, F = 16, 256, 7, 1000, 50
arrs = [mx.nd.random.uniform(-1, 1, (N, C, HW, HW)), mx.nd.random.normal(0, 0.02, (O, F, C, 1, 1)),
        mx.nd.zeros((O,)), mx.nd.ones((F,))]
for a in arrs:
    a.attach_grad()
gy = mx.nd.ones((N, O, HW, HW))
small = [a[:1] if i == 0 else a for i, a in enumerate(arrs)]
mx.nd.FMConvolution1(*small, kernel=(1, 1), num_filter=O, num_factor=F, workspace=0).wait_to_read()
mx.nd.waitall()
result = {}
for name, op, ws in (("op1", mx.nd.FMConvolution1, 8), ("op3", mx.nd.FMConvolution3, 512)):
    before = rss_mb()
    with autograd.record():
        y = op(*arrs, kernel=(1, 1), num_filter=O, num_factor=F, workspace=ws)
    y.backward(gy)
    mx.nd.waitall()
    result[name] = rss_mb() - before
print(json.dumps(result))
"""


def test_fmconv1_temporary_memory_is_bounded_by_workspace():
    # One forward + backward of a head with Z = 50000 x 784 floats (157 MB) per pass. MXNet
    # hands the forward and the backward pass different temporary-space copies, so peak RSS
    # grows by two pools plus the 3 MB output: FMConvolution1 with workspace=8 MB must stay
    # near 2 x 8 + 3 MB, while FMConvolution3 (all output channels per block) needs ~2 x 160 MB.
    proc = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    grown = json.loads(proc.stdout.strip().splitlines()[-1])
    assert grown["op1"] < 2 * 8 + 3 + 8, grown
    assert grown["op3"] > 250, grown


# GEMMs large enough to be cut into one part per OpenMP thread (operators/gm_blas.h: at least
# 2^21 multiply-adds and 32 rows or columns). MXNet hands an operator OMP_NUM_THREADS threads
# (by default it takes half the cores, one on a 2-core machine, so the other tests call every
# GEMM whole). Each case cuts a different way: A cuts columns of the forward and backward GEMMs
# (S = 512 > M = 64); B cuts rows of Z = W X and of dW (M = O F = 1024 > S = 128); C cuts rows
# of the transposed W^T P (K = 576 > S = 16) and columns of P X^T (K > O F = 256), groups 2.
SPLIT = [(8, 32, 8, 8, 8, 8, (3, 3), (1, 1), (1, 1), (1, 1), 1),
         (2, 32, 8, 8, 64, 16, (1, 1), (1, 1), (0, 0), (1, 1), 1),
         (1, 128, 4, 4, 32, 16, (3, 3), (1, 1), (1, 1), (1, 1), 2)]
def split_results(path):
    """Outputs and gradients of every SPLIT case, both operators and dtypes, saved to ``path``
    (run in a subprocess with OMP_NUM_THREADS set: MXNet reads it when it starts)."""
    res = {}
    for i, case in enumerate(SPLIT):
        inp, gy = split_inputs(case)
        for op in (1, 3):
            for dtype in ("float64", "float32"):
                y, g = run_op(op, inp, gy, dtype, **attrs(case))
                res["%d_%d_%s_y" % (i, op, dtype)] = y
                for n, v in g.items():
                    res["%d_%d_%s_%s" % (i, op, dtype, n)] = v
    np.savez(path, **res)


def split_inputs(case):
    inp = make_inputs(case, "dropfactor")
    y = np_fmconv(inp["data"], inp["weight"], inp["bias"], inp["factor_mask"], *case[6:])
    return inp, np.random.RandomState(3).uniform(-1, 1, y.shape)


@pytest.mark.parametrize("threads", [2, 3])
def test_gemms_cut_across_threads_match_numpy(threads, tmp_path):
    code = ("import sys; sys.path.insert(0, 'tests/ops'); import test_fmconv; "
            "test_fmconv.split_results(sys.argv[1])")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "r.npz")],
                          capture_output=True, text=True, cwd=REPO, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = np.load(tmp_path / "r.npz")
    for i, case in enumerate(SPLIT):
        inp, gy = split_inputs(case)
        y_ref, g_ref = np_fmconv(inp["data"], inp["weight"], inp["bias"], inp["factor_mask"],
                                 *case[6:], gy=gy)
        for op in (1, 3):
            for dtype, tol in (("float64", 1e-10), ("float32", 1e-4)):
                key = "%d_%d_%s_" % (i, op, dtype)
                np.testing.assert_allclose(res[key + "y"], y_ref, rtol=tol,
                                           atol=tol * np.abs(y_ref).max(), err_msg=key)
                for n in ("data", "weight", "bias"):
                    np.testing.assert_allclose(res[key + n], g_ref[n], rtol=tol,
                                               atol=tol * max(1, np.abs(g_ref[n]).max()),
                                               err_msg=key + n)
