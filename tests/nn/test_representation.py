"""Global representations of fast MPN-COV (iSQRT-COV, B-CNN, CBP) and GAvP: numpy float64
references written here (the paper's explicit forms, not the layer's arrangement), finite
differences in float64, the self-checks of the paper/repository (scale invariance, convergence
to the eigendecomposition root, MT19937 hashes), degenerate inputs, export/reload and the
multiply-add count of the summary."""
import numpy as np
import pytest
import mxnet as mx
from mxnet import autograd, gluon

from gluon_models.model_zoo import get_model
from gluon_models.model_zoo.compose import make_representation, representations
from gluon_models.nn.representation import (
    BCNN, CBP, GAvP, ISqrtCov, cbp_bins, cbp_hashes, compact_bilinear, covpool, sqrtm,
    triu_index, triuvec)
from gluon_models.utils.summary import summary


# ---- numpy references ------------------------------------------------------------------------

def ref_covpool(x):
    """Σ = X Ī Xᵀ with the explicit M x M centring matrix Ī = I/M - 1 1ᵀ/M² (paper Eq. 1)."""
    b, c = x.shape[:2]
    xf = x.reshape(b, c, -1)
    m = xf.shape[2]
    ibar = np.eye(m) / m - np.ones((m, m)) / m ** 2
    return np.einsum("bcm,mn,bdn->bcd", xf, ibar, xf)


def ref_iterates(cov, n):
    """Textbook coupled Newton-Schulz from Y0 = A, Z0 = I, N full steps: lists of Y_k, Z_k."""
    t = np.trace(cov, axis1=1, axis2=2)[:, None, None]
    a = cov / t
    eye = np.eye(cov.shape[1])
    ys, zs = [a], [np.broadcast_to(eye, a.shape)]
    for _ in range(max(n, 1)):
        tk = 0.5 * (3 * eye - zs[-1] @ ys[-1])
        ys.append(ys[-1] @ tk)
        zs.append(tk @ zs[-1])
    return t, ys, zs


def ref_sqrtm(cov, n):
    t, ys, _ = ref_iterates(cov, n)
    return np.sqrt(t) * ys[-1]


def ref_triuvec(m):
    c = m.shape[-1]
    return np.stack([np.concatenate([mi[i, i:] for i in range(c)]) for mi in m])


def ref_l2(v, axis):
    return v / np.maximum(np.sqrt((v ** 2).sum(axis=axis, keepdims=True)), 1e-12)


def ref_bcnn(x, vectorize=True):
    b, c = x.shape[:2]
    xf = x.reshape(b, c, -1)
    p = xf @ xf.transpose(0, 2, 1) / xf.shape[2]
    s = np.sign(p) * np.sqrt(np.abs(p) + 1e-8)
    return ref_l2(s.reshape(b, -1), 1) if vectorize else ref_l2(s, 1)


def ref_sketch_fft(x, h1, h2, s1, s2, d):
    """The authors' Tensor Sketch: count sketches per position, circular convolution by FFT,
    summed over positions (float64 numpy FFT)."""
    b, c = x.shape[:2]
    xf = x.reshape(b, c, -1)
    s1m, s2m = np.zeros((c, d)), np.zeros((c, d))
    s1m[np.arange(c), h1] = s1
    s2m[np.arange(c), h2] = s2
    u = np.einsum("cd,bcm->bmd", s1m, xf)
    w = np.einsum("cd,bcm->bmd", s2m, xf)
    return np.fft.ifft(np.fft.fft(u, axis=2) * np.fft.fft(w, axis=2), axis=2).real.sum(axis=1)


def relmax(a, b):
    return np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max()


def features(shape, seed=0, relu=True):
    x = np.random.RandomState(seed).randn(*shape)
    return np.maximum(x, 0) if relu else x


def nd64(x):
    return mx.nd.array(x, dtype="float64")


def block64(block):
    block.initialize()
    block.cast("float64")
    return block


# ---- finite differences ----------------------------------------------------------------------

def check_gradient(fn, x, seed=0, step=1e-6, rtol=1e-5):
    """autograd of ``sum(fn(x) * R)`` (R fixed random) vs central differences, float64, on
    every input entry."""
    x = np.asarray(x, dtype=np.float64)
    xa = nd64(x)
    xa.attach_grad()
    with autograd.record(train_mode=False):
        out = fn(xa)
    proj = np.random.RandomState(seed + 100).randn(*out.shape)
    out.backward(nd64(proj))
    analytic = xa.grad.asnumpy()

    def loss(v):
        return float((fn(nd64(v)).asnumpy() * proj).sum())

    numeric = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += step
        xm[idx] -= step
        numeric[idx] = (loss(xp) - loss(xm)) / (2 * step)
    assert np.isfinite(analytic).all()
    assert relmax(analytic, numeric) < rtol, relmax(analytic, numeric)


# ---- covpool ---------------------------------------------------------------------------------

def test_covpool_is_the_centred_biased_covariance():
    x = features((2, 5, 3, 4))
    cov = covpool(mx.nd, nd64(x)).asnumpy()
    ref = ref_covpool(x)
    assert cov.shape == (2, 5, 5)
    assert relmax(cov, ref) < 1e-12
    # self-check: symmetric PSD, trace = mean squared norm of the centred positions
    xf = x.reshape(2, 5, -1)
    xc = xf - xf.mean(axis=2, keepdims=True)
    np.testing.assert_allclose(np.trace(cov, axis1=1, axis2=2),
                               (xc ** 2).sum(axis=1).mean(axis=1), rtol=1e-12)
    assert np.abs(cov - cov.transpose(0, 2, 1)).max() < 1e-15   # GEMM summation order
    assert np.linalg.eigvalsh(cov).min() > -1e-12


def test_covpool_gradient():
    check_gradient(lambda v: covpool(mx.nd, v), features((2, 3, 2, 3), relu=False))


# ---- sqrtm -----------------------------------------------------------------------------------

def spd_batch(c, seed=0, low=0.5, high=1.0, b=2):
    rng = np.random.RandomState(seed)
    out = []
    for _ in range(b):
        q, _ = np.linalg.qr(rng.randn(c, c))
        out.append((q * rng.uniform(low, high, c)) @ q.T)
    return np.stack(out)


@pytest.mark.parametrize("n", [1, 3, 5])
def test_sqrtm_follows_the_newton_schulz_recurrence(n):
    cov = ref_covpool(features((2, 6, 4, 4), seed=n))
    ref = ref_sqrtm(cov, n)
    np.testing.assert_array_less(relmax(sqrtm(mx.nd, nd64(cov), n).asnumpy(), ref), 1e-12)
    # float32 path vs the float64 recurrence (spec tolerance ~1e-5 relative to max)
    out32 = sqrtm(mx.nd, mx.nd.array(cov, dtype="float32"), n).asnumpy()
    assert relmax(out32, ref) < 1e-5


def test_sqrtm_iterates_and_the_specialised_first_and_last_steps():
    """The textbook iterates satisfy the repository's specialised steps: Y1 = ½A(3I - A),
    Z1 = ½(3I - A), Y_N = ½ Y_{N-1}(3I - Z_{N-1} Y_{N-1}); N = 1 is sqrt(t)·½A(3I - A), and
    iter_num 0 behaves like 1."""
    cov = ref_covpool(features((1, 5, 3, 3)))
    t, ys, zs = ref_iterates(cov, 3)
    a, eye = ys[0], np.eye(5)
    np.testing.assert_allclose(ys[1], 0.5 * a @ (3 * eye - a), atol=1e-14)
    np.testing.assert_allclose(zs[1], 0.5 * (3 * eye - a), atol=1e-14)
    np.testing.assert_allclose(ys[3], 0.5 * ys[2] @ (3 * eye - zs[2] @ ys[2]), atol=1e-14)
    one = np.sqrt(t) * 0.5 * a @ (3 * eye - a)
    for n in (0, 1):
        assert relmax(sqrtm(mx.nd, nd64(cov), n).asnumpy(), one) < 1e-13
    # the iterations differ: N = 3 is not N = 1
    assert relmax(sqrtm(mx.nd, nd64(cov), 3).asnumpy(), one) > 1e-3


def test_sqrtm_scale_invariance():
    cov = ref_covpool(features((2, 6, 4, 4)))
    base = sqrtm(mx.nd, nd64(cov), 5).asnumpy()
    for s in (1e-3, 7.0, 1e4):
        assert relmax(sqrtm(mx.nd, nd64(s * cov), 5).asnumpy(), np.sqrt(s) * base) < 1e-12


@pytest.mark.parametrize("c", [16, 64])
def test_sqrtm_converges_to_the_eigen_square_root(c):
    cov = spd_batch(c)
    w, v = np.linalg.eigh(cov)
    root = np.einsum("bij,bj,bkj->bik", v, np.sqrt(w), v)
    assert relmax(sqrtm(mx.nd, nd64(cov), 15).asnumpy(), root) < 1e-12
    # N = 5 is only a rough root (by design, spec of the paper's Sec. 4 choice)
    assert relmax(sqrtm(mx.nd, nd64(cov), 5).asnumpy(), root) > 1e-2


@pytest.mark.parametrize("n", [1, 3, 5])
def test_sqrtm_gradient(n):
    check_gradient(lambda v: sqrtm(mx.nd, v, n), spd_batch(4, seed=n, low=0.2))


def test_sqrtm_symbol_equals_eager():
    cov = spd_batch(5)
    sym = sqrtm(mx.sym, mx.sym.var("cov"), 5)
    out = sym.eval(cov=nd64(cov))[0].asnumpy()
    assert relmax(out, ref_sqrtm(cov, 5)) < 1e-12


# ---- triuvec ---------------------------------------------------------------------------------

def test_triuvec_order_and_size():
    m = np.arange(16.0).reshape(1, 4, 4)
    out = triuvec(mx.nd, nd64(m)).asnumpy()
    np.testing.assert_array_equal(out[0], [0, 1, 2, 3, 5, 6, 7, 10, 11, 15])
    # not MXNet's extracttrian order (column-major upper triangle)
    assert not np.array_equal(out[0], mx.nd.linalg.extracttrian(nd64(m[0])).asnumpy())
    idx = triu_index(256)
    assert idx.shape == (32896,)
    for i in (0, 1, 100, 255):  # row i starts at i*C - i(i-1)/2 with element (i, i)
        assert idx[i * 256 - i * (i - 1) // 2] == i * 256 + i
    sym = triuvec(mx.sym, mx.sym.var("m"), mx.sym.var("idx"))
    big = np.random.RandomState(0).randn(2, 256, 256)
    out = sym.eval(m=nd64(big), idx=mx.nd.array(idx, dtype="int32"))[0].asnumpy()
    np.testing.assert_array_equal(out, ref_triuvec(big))
    with pytest.raises(ValueError, match="index"):
        triuvec(mx.sym, mx.sym.var("m"))


def test_triuvec_gradient_fills_the_upper_triangle_only():
    m = nd64(np.random.RandomState(0).randn(1, 3, 3))
    m.attach_grad()
    with autograd.record():
        out = triuvec(mx.nd, m)
    out.backward(nd64(np.arange(1.0, 7.0)[None]))
    np.testing.assert_array_equal(m.grad.asnumpy()[0], [[1, 2, 3], [0, 4, 5], [0, 0, 6]])
    check_gradient(lambda v: triuvec(mx.nd, v), np.random.RandomState(1).randn(2, 3, 3))


# ---- ISqrtCov --------------------------------------------------------------------------------

def ref_isqrtcov(x, n=5, sqrt=True, vectorize=True):
    cov = ref_covpool(x)
    if sqrt:
        cov = ref_sqrtm(cov, n)
    return ref_triuvec(cov) if vectorize else cov


@pytest.mark.parametrize("impl", ["native", "stock"])
@pytest.mark.parametrize("n,sqrt,vectorize", [(5, True, True), (3, True, False),
                                              (1, True, True), (5, False, True)])
def test_isqrtcov_matches_the_reference(n, sqrt, vectorize, impl):
    x = features((2, 6, 5, 4))
    block = block64(ISqrtCov(6, iter_num=n, sqrt=sqrt, vectorize=vectorize, impl=impl))
    ref = ref_isqrtcov(x, n, sqrt, vectorize)
    out = block(nd64(x)).asnumpy()
    assert out.shape == ref.shape and np.prod(out.shape[1:]) == block.output_dim
    assert relmax(out, ref) < 1e-12
    block32 = ISqrtCov(6, iter_num=n, sqrt=sqrt, vectorize=vectorize, impl=impl)
    block32.initialize()
    assert relmax(block32(mx.nd.array(x)).asnumpy(), ref) < 1e-5


def test_isqrtcov_reduction_block():
    block = ISqrtCov(8, reduced_dim=4, prefix="rep_")
    assert block.output_dim == 10
    block.initialize()
    params = block.collect_params()
    assert sorted(params) == ["rep_reduce_bn_beta", "rep_reduce_bn_gamma",
                              "rep_reduce_bn_running_mean", "rep_reduce_bn_running_var",
                              "rep_reduce_conv_weight", "rep_triu"]
    assert params["rep_reduce_conv_weight"].shape == (4, 8, 1, 1)
    x = features((2, 8, 5, 5))
    w = params["rep_reduce_conv_weight"].data().asnumpy()
    # inference mode: BN with running stats (0, 1), gamma 1, beta 0: y = relu(conv / sqrt(1+eps))
    y = np.maximum(np.einsum("oc,bchw->bohw", w[:, :, 0, 0], x) / np.sqrt(1 + 1e-5), 0)
    assert relmax(block(mx.nd.array(x)).asnumpy(), ref_isqrtcov(y)) < 1e-5
    # Kaiming-normal, fan-out (d' = 4): std sqrt(2/4); a wide layer shows it
    wide = ISqrtCov(64, reduced_dim=256)
    wide.initialize(mx.init.Xavier())   # the block's own initialiser wins over the global one
    std = wide.reduce.conv.weight.data().asnumpy().std()
    assert abs(std - np.sqrt(2 / 256)) < 0.05 * np.sqrt(2 / 256)


def test_isqrtcov_arguments():
    assert ISqrtCov(8).impl == "native" and ISqrtCov(8, impl="stock").impl == "stock"
    with pytest.raises(ValueError, match="impl"):
        ISqrtCov(8, impl="cuda")
    with pytest.raises(ValueError, match="in_channels"):
        ISqrtCov()
    assert ISqrtCov(reduced_dim=256).output_dim == 32896
    assert ISqrtCov(2048, reduced_dim=256, vectorize=False).output_dim == 65536


@pytest.mark.parametrize("impl", ["native", "stock"])
def test_isqrtcov_gradient(impl):
    block = block64(ISqrtCov(3, iter_num=5, impl=impl))
    check_gradient(block, features((2, 3, 3, 2), relu=False))
    block = block64(ISqrtCov(3, iter_num=3, vectorize=False, impl=impl))
    check_gradient(block, features((1, 3, 2, 3), relu=False, seed=2))


def _finite_forward_backward(block, x):
    """Forward and backward of ``block`` on ``x`` (float64); both must be finite. Returns the
    output."""
    xa = nd64(x)
    xa.attach_grad()
    with autograd.record():
        out = block(xa)
    out.backward(mx.nd.ones_like(out))
    assert np.isfinite(out.asnumpy()).all() and np.isfinite(xa.grad.asnumpy()).all()
    return out.asnumpy()


@pytest.mark.parametrize("impl", ["native", "stock"])
def test_isqrtcov_degenerate_inputs_give_no_nan(impl):
    block = block64(ISqrtCov(4, impl=impl))
    for x in (np.full((2, 4, 3, 3), 0.7), np.zeros((1, 4, 4, 4)), np.ones((1, 4, 1, 1))):
        out = _finite_forward_backward(block, x)
        assert np.abs(out).max() < 1e-6
    # a dead channel: finite, and the other channels' result as without it
    x = features((2, 4, 3, 3))
    x[:, 1] = 0
    assert np.isfinite(block(nd64(x)).asnumpy()).all()


@pytest.mark.parametrize("impl", ["native", "stock"])
def test_isqrtcov_multiply_adds_in_the_summary(impl):
    c, side, n = 8, 6, 5
    m = side * side
    s = summary(ISqrtCov(c, iter_num=n, impl=impl), (c, side, side))
    assert s.params == 0
    assert s.macs == c * c * m + (3 * n - 3) * c ** 3      # covpool + 12 products of C x C
    s = summary(ISqrtCov(c, iter_num=1, impl=impl), (c, side, side))
    assert s.macs == c * c * m + c ** 3
    s = summary(ISqrtCov(c, sqrt=False, impl=impl), (c, side, side))
    assert s.macs == c * c * m
    d = 4
    s = summary(ISqrtCov(c, reduced_dim=d, iter_num=n, impl=impl), (c, side, side))
    assert s.macs == c * d * m + d * d * m + (3 * n - 3) * d ** 3
    assert s.params == c * d + 2 * d


# ---- BCNN ------------------------------------------------------------------------------------

@pytest.mark.parametrize("vectorize", [True, False])
def test_bcnn_matches_the_reference(vectorize):
    x = features((2, 5, 3, 4))
    block = block64(BCNN(5, vectorize=vectorize))
    ref = ref_bcnn(x, vectorize)
    out = block(nd64(x)).asnumpy()
    assert out.shape == ref.shape and block.output_dim == 25
    assert relmax(out, ref) < 1e-12
    b32 = BCNN(5, vectorize=vectorize)
    assert relmax(b32(mx.nd.array(x)).asnumpy(), ref) < 1e-5
    if not vectorize:  # each column has unit norm (the authors' l2 over dimension 1)
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1, rtol=1e-12)


def test_bcnn_gradient():
    # inputs away from P = 0, where signed sqrt has its kink
    check_gradient(block64(BCNN(3)), features((2, 3, 2, 2), relu=False) + 3)
    check_gradient(block64(BCNN(3, vectorize=False)), features((1, 3, 2, 2), relu=False) + 3)


def test_bcnn_zero_channel_has_zero_gradient_and_no_nan():
    x = features((2, 4, 3, 3)) + 0.1
    x[:, 2] = 0
    block = block64(BCNN(4))
    xa = nd64(x)
    xa.attach_grad()
    with autograd.record():
        out = block(xa)
    out.backward(nd64(np.random.RandomState(0).randn(*out.shape)))
    grad = xa.grad.asnumpy()
    assert np.isfinite(out.asnumpy()).all() and np.isfinite(grad).all()
    np.testing.assert_array_equal(grad[:, 2], 0)
    assert np.abs(grad[:, [0, 1, 3]]).min() > 0
    # an all-zero input: output 0, gradient finite
    xa = nd64(np.zeros((1, 4, 2, 2)))
    xa.attach_grad()
    with autograd.record():
        out = block(xa)
    out.backward(mx.nd.ones_like(out))
    assert np.abs(out.asnumpy()).max() == 0 and np.isfinite(xa.grad.asnumpy()).all()


# ---- GAvP ------------------------------------------------------------------------------------

def test_gavp_matches_the_mean():
    x = features((2, 5, 3, 4))
    block = block64(GAvP(5))
    np.testing.assert_allclose(block(nd64(x)).asnumpy(), x.mean(axis=(2, 3)), rtol=1e-12)
    check_gradient(block, features((1, 3, 2, 2)))


# ---- CBP -------------------------------------------------------------------------------------

def test_cbp_hashes_are_the_authors_mt19937_draws():
    h1, h2, s1, s2 = cbp_hashes(512, 8192, 1)
    np.testing.assert_array_equal(h1[:5], [5157, 235, 3980, 5192, 7935])
    assert h1.shape == h2.shape == s1.shape == s2.shape == (512,)
    assert set(np.unique(s1)) == {-1, 1} and set(np.unique(s2)) == {-1, 1}
    raw = np.random.RandomState(1).randint(0, 2 ** 32, size=4 * 512, dtype=np.uint64)
    np.testing.assert_array_equal(h2, raw[512:1024] % 8192)
    np.testing.assert_array_equal(s2, 2 * (raw[1536:].astype(np.int64) % 2) - 1)
    assert not np.array_equal(cbp_hashes(512, 8192, 2)[0], h1)   # the seed matters
    block = CBP(512)
    block.initialize()
    np.testing.assert_array_equal(block.hash1, h1)
    bins = block.bins.data().asnumpy()
    assert bins.dtype == np.int32 and bins.shape[0] == 8192
    # every pair sits in exactly one bin, the right one
    flat = bins[bins < 512 * 512]
    assert flat.size == 512 * 512 and np.unique(flat).size == 512 * 512
    k = np.repeat(np.arange(8192), bins.shape[1]).reshape(bins.shape)[bins < 512 * 512]
    np.testing.assert_array_equal((h1[flat // 512] + h2[flat % 512]) % 8192, k)


@pytest.mark.parametrize("c,d", [(6, 32), (16, 8)])
def test_cbp_closed_form_equals_the_fft_form(c, d):
    x = features((2, c, 3, 3))
    h1, h2, s1, s2 = cbp_hashes(c, d, 1)
    bins = cbp_bins(h1, h2, d)
    r = compact_bilinear(mx.nd, nd64(x), nd64(s1.reshape(1, c, 1)), nd64(s2.reshape(1, c, 1)),
                         mx.nd.array(bins, dtype="int32")).asnumpy()
    fft = ref_sketch_fft(x, h1, h2, s1, s2, d)
    assert relmax(r, fft) < 1e-12
    block = block64(CBP(c, proj_dim=d))
    assert block.output_dim == d
    ref = ref_l2(np.sign(fft) * np.sqrt(np.abs(fft) + 1e-8), 1)
    # bins no pair reaches are exactly 0 here but carry FFT round-off (random sign after the
    # signed sqrt) in the reference: an absolute tolerance
    np.testing.assert_allclose(block(nd64(x)).asnumpy(), ref, atol=1e-3)
    exact = ref_l2(np.sign(r) * np.sqrt(np.abs(r) + 1e-8), 1)
    assert relmax(block(nd64(x)).asnumpy(), exact) < 1e-12
    b32 = CBP(c, proj_dim=d)
    b32.initialize()
    assert relmax(b32(mx.nd.array(x)).asnumpy(), exact) < 1e-5


def test_cbp_gradient():
    check_gradient(block64(CBP(4, proj_dim=16)), features((2, 4, 2, 2), relu=False) + 2)


def test_cbp_full_size_runs():
    x = mx.nd.array(features((1, 512, 4, 4)))
    block = CBP(512)
    block.initialize()
    out = block(x).asnumpy()
    assert out.shape == (1, 8192) and np.isfinite(out).all()
    np.testing.assert_allclose(np.linalg.norm(out), 1, rtol=1e-5)


def test_cbp_and_bcnn_degenerate_inputs():
    for block in (block64(CBP(4, proj_dim=8)), block64(BCNN(4))):
        # all zero: the signed square root is exactly 0 and l2 keeps it 0
        zero = _finite_forward_backward(block, np.zeros((1, 4, 3, 3)))
        assert zero.shape == (1, block.output_dim) and not zero.any()
        # a constant map: a finite vector of unit length
        const = _finite_forward_backward(block, np.full((1, 4, 2, 2), 0.5))
        np.testing.assert_allclose(np.linalg.norm(const), 1, rtol=1e-6)


# ---- hybridize, export, cast, registry -------------------------------------------------------

BLOCKS = {
    "isqrtcov": lambda: ISqrtCov(6, iter_num=5, prefix="isqrtcov_"),
    "isqrtcov_reduced": lambda: ISqrtCov(6, reduced_dim=4, prefix="isqrtcov_"),
    "isqrtcov_matrix": lambda: ISqrtCov(6, vectorize=False, prefix="isqrtcov_"),
    "isqrtcov_stock": lambda: ISqrtCov(6, iter_num=5, impl="stock", prefix="isqrtcov_"),
    "isqrtcov_matrix_stock": lambda: ISqrtCov(6, vectorize=False, impl="stock",
                                              prefix="isqrtcov_"),
    "bcnn": lambda: BCNN(6, prefix="bcnn_"),
    "cbp": lambda: CBP(6, proj_dim=64, prefix="cbp_"),
    "gavp": lambda: GAvP(6, prefix="gavp_"),
}


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_hybridize_and_export_reload(name, tmp_path):
    block = BLOCKS[name]()
    block.initialize()
    x = mx.nd.array(features((2, 6, 4, 5)))
    eager = block(x).asnumpy()
    block.hybridize()
    hybrid = block(x).asnumpy()
    np.testing.assert_array_equal(hybrid, eager)
    block.export(str(tmp_path / name))
    loaded = gluon.SymbolBlock.imports(str(tmp_path / (name + "-symbol.json")), ["data"],
                                       str(tmp_path / (name + "-0000.params")))
    np.testing.assert_array_equal(loaded(x).asnumpy(), eager)


def test_cast_keeps_index_constants_int32():
    for block in (ISqrtCov(6), CBP(6, proj_dim=64)):
        block.initialize()
        block.cast("float64")
        for name, param in block.collect_params().items():
            if name.endswith(("triu", "bins")):
                assert param.data().dtype == np.int32
            else:
                assert param.data().dtype == np.float64


def test_representations_are_registered():
    assert {"isqrtcov", "bcnn", "cbp"} <= set(representations())
    assert make_representation("isqrtcov", 2048, 10, reduced_dim=256).output_dim == 32896
    assert make_representation("bcnn", 512, 10).output_dim == 262144
    assert make_representation("cbp", 512, 10).output_dim == 8192


def test_isqrtcov_on_an_igc_network_exports(tmp_path):
    net = get_model("igc_resnet_cifar", depth=8, primary=4, secondary=2,
                    representation="isqrtcov", representation_options=dict(reduced_dim=16),
                    classes=5)
    assert net.output._in_units == 136
    net.initialize()
    x = mx.nd.array(np.random.RandomState(0).uniform(-1, 1, (2, 3, 32, 32)))
    eager = net(x).asnumpy()
    assert eager.shape == (2, 5) and np.isfinite(eager).all()
    net.hybridize()
    np.testing.assert_allclose(net(x).asnumpy(), eager, rtol=1e-5, atol=1e-6)
    net.export(str(tmp_path / "net"))
    loaded = gluon.SymbolBlock.imports(str(tmp_path / "net-symbol.json"), ["data"],
                                       str(tmp_path / "net-0000.params"))
    np.testing.assert_allclose(loaded(x).asnumpy(), eager, rtol=1e-5, atol=1e-6)
