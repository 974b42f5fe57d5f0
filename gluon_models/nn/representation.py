"""Global image representations: what turns a feature map ``(B, C, H, W)`` into the vector a
classifier reads.

Every representation block takes ``in_channels`` and exposes ``output_dim`` (the length of the
``(B, output_dim)`` output it returns), so a network's classifier is sized when the network is
built. First-order pooling (:class:`GAvP`) and the second-order ones of fast MPN-COV (Li, Xie,
Wang, Gao, "Towards Faster Training of Global Covariance Pooling Networks by Iterative Matrix
Square Root Normalization", CVPR 2018, arXiv 1712.01034; authors' code
https://github.com/jiangtaoxie/fast-MPN-COV) live here:

* :class:`ISqrtCov`: iSQRT-COV (the authors' ``MPNCOV``): covariance pooling, trace
  pre-normalisation, coupled Newton-Schulz iteration, post-compensation, upper-triangle
  vectorisation.
* :class:`BCNN`: bilinear pooling (Lin, RoyChowdhury, Maji, ICCV 2015, arXiv 1504.07889).
* :class:`CBP`: compact bilinear pooling by Tensor Sketch (Gao, Beijbom, Zhang, Darrell,
  CVPR 2016, arXiv 1511.06062).

The graph functions :func:`covpool`, :func:`sqrtm`, :func:`triuvec`, :func:`signed_sqrt`,
:func:`l2_normalize` and :func:`compact_bilinear` take ``F`` (``mx.nd`` or ``mx.sym``) first,
so they run eagerly and inside ``hybrid_forward``. They are the stock implementation: plain
``batch_dot`` / ``take`` graphs differentiated by autograd, which gives the exact gradients of
the paper's backward (the unrolled iteration is a polynomial in the input). The native
operator ``ISqrtCov`` (covariance, iteration and triangle fused, with the paper's analytic
backward; see the library's ``operators/isqrtcov.cc``) is the default ``impl`` of
:class:`ISqrtCov`; the graph functions are its stock twin.
"""
import numpy as np

import mxnet as mx
from mxnet.gluon import nn

from ..utils.summary import register_macs

from .basic import ConvBNAct, check_impl, check_int, check_positive_int, is_graph_input

__all__ = ["GAvP", "MaxPoolFlatten", "ISqrtCov", "BCNN", "CBP", "covpool", "sqrtm", "triuvec", "triu_index",
           "signed_sqrt", "l2_normalize", "compact_bilinear", "cbp_hashes", "cbp_bins"]

# Smallest trace the pre-normalisation divides by. The authors have no epsilon (a zero-variance
# feature map, e.g. a constant image or a 1 x 1 map, gives 0/0 = NaN); clamping the trace here
# changes nothing for any trace >= 1e-30 (bit-identical) and turns an exactly zero covariance
# into an exactly zero output (its true square root) with finite gradients.
_MIN_TRACE = 1e-30
# B-CNN / CBP signed square root epsilon (the authors' ``thresh``) and the l2 floor
# (``max(||v||, 1e-12)``, applied to the squared norm so that the backward of sqrt never sees 0).
_SIGNED_SQRT_EPS = 1e-8
_L2_FLOOR = 1e-12


def _isqrtcov_macs(attrs, in_shapes, out_shapes):
    """Multiply-adds of the ``ISqrtCov`` operator for :func:`gluon_models.utils.summary`: the
    covariance ``C² M`` plus ``3N - 3`` products of ``C x C`` (one for N < 2), as the stock
    twin's ``batch_dot`` nodes count them (the operator computes half of each product, a
    saving the summary does not credit)."""
    _, c, h, w = in_shapes[0]
    macs = c * c * h * w
    if str(attrs.get("sqrt", "True")).strip() in ("True", "true", "1"):
        n = int(attrs.get("iter_num", 5))
        macs += (3 * n - 3 if n >= 2 else 1) * c ** 3
    return macs


register_macs("ISqrtCov", _isqrtcov_macs)


def _flatten_spatial(F, x):
    """``(B, C, H, W) -> (B, C, M)``, column ``m = h*W + w``."""
    return F.reshape(x, shape=(0, 0, -1))


def _positions(F, xf):
    """``M`` as a ``(1, 1, 1)`` array of ``xf``'s dtype (the graph does not know H and W)."""
    one = F.slice_axis(F.slice_axis(xf, axis=0, begin=0, end=1), axis=1, begin=0, end=1)
    return F.sum(F.ones_like(F.BlockGrad(one)), axis=2, keepdims=True)


def covpool(F, x):
    """Covariance pooling: ``(B, C, H, W) -> (B, C, C)``, ``Σ = (1/M) X_c X_cᵀ``.

    The biased estimator (divide by ``M = H*W``) of the paper's Eq. (1) ``Σ = X Ī Xᵀ`` with the
    centring matrix ``Ī = (1/M)(I - (1/M) 1 1ᵀ)``. The authors build ``Ī`` as a dense
    ``M x M`` matrix (O(C M²) work, B M² memory); centring the features first is the same
    number in O(C² M) with one ``(B, C, M)`` temporary, and unlike ``X Xᵀ/M - μμᵀ`` it has
    no cancellation: a constant map gives an exactly zero (or rounding-small PSD) ``Σ``, never
    a negative trace.
    """
    xf = _flatten_spatial(F, x)
    xc = F.broadcast_sub(xf, F.mean(xf, axis=2, keepdims=True))
    return F.broadcast_div(F.batch_dot(xc, xc, transpose_b=True), _positions(F, xf))


def sqrtm(F, cov, iter_num=5, eps=0.0):
    """Approximate matrix square root of a batch of PSD matrices ``(B, C, C)`` (iSQRT).

    Pre-normalisation by the trace ``A = Σ / tr(Σ)`` (paper Eq. 2; the trace is clamped at
    1e-30, see ``_MIN_TRACE``), then ``N = iter_num`` coupled Newton-Schulz steps (Eq. 3:
    ``T = ½(3I - Z Y)``, ``Y ← Y T``, ``Z ← T Z`` from ``Y₀ = A``, ``Z₀ = I``), the first one
    specialised to ``Z₀ = I`` and the last computing ``Y`` only, as the authors do; then
    post-compensation ``sqrt(tr Σ) · Y_N`` (Eq. 4). ``eps`` > 0 uses ``tr Σ + eps`` in both
    places (GM-SOP's guard; fast MPN-COV has none). ``iter_num`` < 2 (0 included) is the
    one-step form ``½ A (3I - A)``. ``3N - 3`` batched ``C x C`` products for N >= 2, 1 for
    N = 1. With N = 5 this is deliberately a rough square root (the networks are trained
    with it); N -> infinity gives ``Σ^{1/2}``.
    """
    n = int(iter_num)
    eye = _identity(F, cov)                                           # (1, C, C), no gradient
    diag = F.sum(F.broadcast_mul(cov, eye), axis=2)                   # (B, C)
    trace = F.sum(diag, axis=-1)                                      # (B,)
    trace = F.maximum(trace + eps if eps else trace, _MIN_TRACE)
    trace = F.reshape(trace, shape=(-1, 1, 1))
    a = F.broadcast_div(cov, trace)
    three = 3 * eye                                                   # 3I
    if n < 2:
        y = 0.5 * F.batch_dot(a, F.broadcast_sub(three, a))
    else:
        t = 0.5 * F.broadcast_sub(three, a)
        y, z = F.batch_dot(a, t), t
        for _ in range(2, n):
            t = 0.5 * F.broadcast_sub(three, F.batch_dot(z, y))
            y, z = F.batch_dot(y, t), F.batch_dot(t, z)
        y = 0.5 * F.batch_dot(y, F.broadcast_sub(three, F.batch_dot(z, y)))
    return F.broadcast_mul(y, F.sqrt(trace))


def _identity(F, m):
    """The ``(1, C, C)`` identity for the batch of square matrices ``m`` ``(B, C, C)``, with
    ``m``'s dtype and no gradient path: ``arange(C) == arange(C)ᵀ``, which the graph builds
    without knowing C and ONNX expresses (``linalg.extractdiag``/``makediag`` have no ONNX
    form); the diagonal is then ``sum(m * I, axis=2)``, the same numbers and gradient."""
    m = F.BlockGrad(m)
    rows = F.reshape(F.contrib.arange_like(m, axis=1), shape=(1, -1, 1))
    cols = F.reshape(F.contrib.arange_like(m, axis=2), shape=(1, 1, -1))
    return F.BlockGrad(F.broadcast_equal(rows, cols))


TRIANGLE_ORDERS = ("row", "column")


def triu_index(dim, order="row"):
    """Flat positions ``i*dim + j`` (``i <= j``) of the upper triangle, diagonal included:
    ``dim(dim+1)/2`` int64.

    ``order="row"``: fast MPN-COV's ``(0,0), (0,1), ..., (0,dim-1), (1,1), ...`` (not
    ``linalg.extracttrian``'s order: MXNet's upper triangle is column-major);
    ``order="column"``: GM-SOP's ``(0,0), (0,1), (1,1), (0,2), (1,2), (2,2), ...``, which for a
    symmetric matrix is ``linalg.extracttrian(lower=True)``.
    """
    dim = check_positive_int("dim", dim)
    if order not in TRIANGLE_ORDERS:
        raise ValueError("order must be one of %s, got %r" % (TRIANGLE_ORDERS, order))
    rows, cols = np.triu_indices(dim)     # row-major: sorted by i, then j
    if order == "column":
        by_column = np.lexsort((rows, cols))
        rows, cols = rows[by_column], cols[by_column]
    return rows.astype(np.int64) * dim + cols


def triuvec(F, m, index=None):
    """Row-major upper triangle (diagonal included) of ``(B, C, C)``: ``(B, C(C+1)/2)``.

    A gather of the flattened matrix (``take``; its backward scatters into the upper
    triangle and leaves the lower one zero, as the paper's Triuvec). ``index`` is
    :func:`triu_index` as an array or graph input (a block keeps it as a constant); eagerly
    (``F = mx.nd``) it may be omitted and is built from ``m``'s shape.
    """
    if index is None:
        if F is not mx.nd:
            raise ValueError("triuvec on a symbol needs index=triu_index(C) (a constant of "
                             "the block), since the graph does not know C")
        index = mx.nd.array(triu_index(m.shape[-1]), ctx=m.context, dtype="int32")
    return F.take(F.reshape(m, shape=(0, -1)), index, axis=1)


def signed_sqrt(F, x, eps=_SIGNED_SQRT_EPS):
    """``sign(x) · sqrt(|x| + eps)``: exactly 0 with zero gradient where ``x == 0`` (sign has
    zero derivative, sign(0) = 0: the authors' autograd value, not ``1/(2 sqrt(eps))``)."""
    # sign(x) as (x > 0) - (x < 0): the same values and zero gradient, in ops ONNX has
    sign = (x > 0) - (x < 0)
    return sign * F.sqrt(F.abs(x) + eps)


def l2_normalize(F, x, axis=1):
    """``x / max(||x||₂, 1e-12)`` along ``axis`` (the floor is applied to the squared norm,
    ``1e-24``, so an all-zero ``x`` gives 0 with a finite, zero-through-the-norm gradient)."""
    sq = F.sum(F.square(x), axis=axis, keepdims=True)
    return F.broadcast_div(x, F.sqrt(F.maximum(sq, _L2_FLOOR ** 2)))


class GAvP(nn.HybridBlock):
    """Global average pooling, flattened: ``(B, C, H, W) -> (B, C)``; no parameters.

    Parameters
    ----------
    in_channels : int
        Input channels ``C`` (= ``output_dim``).
    pool_size : int, optional
        A fixed ``pool_size x pool_size`` average window instead of the global one, as some
        seeds' symbols write it (e.g. 7 x 7 stride 1 on the 7 x 7 map of a 224-pixel ImageNet
        network, 8 x 8 on the 8 x 8 map of a CIFAR one): the same numbers on the input size
        the network is defined for, and the authors' symbol layer for layer. The window must
        then cover the whole map, so the output is one value per channel.
    strides : int
        Stride of the fixed window.
    pool_prefix, flatten_prefix : str
        Prefixes of the two children (op names in the exported symbol).
    """

    def __init__(self, in_channels, pool_size=None, strides=1, pool_prefix="pool_",
                 flatten_prefix="flatten_", **kwargs):
        super().__init__(**kwargs)
        self.output_dim = int(in_channels)
        with self.name_scope():
            self.pool = nn.GlobalAvgPool2D(prefix=pool_prefix) if pool_size is None else \
                nn.AvgPool2D(pool_size, strides, prefix=pool_prefix)
            self.flatten = nn.Flatten(prefix=flatten_prefix)

    def hybrid_forward(self, F, x):
        return self.flatten(self.pool(x))


class MaxPoolFlatten(nn.HybridBlock):
    """A fixed max-pooling window, flattened: ``(B, C, H, W) -> (B, C * h * w)``.

    The last pooling of AlexNet and VGG, which the fast MPN-COV code treats as those networks'
    representation (their fully connected head reads its flattened ``C x h x w`` map, so the
    head's width fixes the input size: 7 x 7 from the 14 x 14 map of a 224-pixel VGG).

    Parameters
    ----------
    in_channels : int
        Input channels ``C``.
    pool_size, strides : int
        The pooling window and stride.
    map_size : int
        Side of the input map the network is defined for; with the window it gives
        ``output_dim = C * ((map_size - pool_size) // strides + 1) ** 2``.
    """

    def __init__(self, in_channels, pool_size, strides, map_size, **kwargs):
        super().__init__(**kwargs)
        side = (check_positive_int("map_size", map_size)
                - check_positive_int("pool_size", pool_size)) // check_positive_int(
                    "strides", strides) + 1
        if side < 1:
            raise ValueError("MaxPoolFlatten: a %d x %d window does not fit a %d x %d map"
                             % (pool_size, pool_size, map_size, map_size))
        self.output_dim = check_positive_int("in_channels", in_channels) * side * side
        with self.name_scope():
            self.pool = nn.MaxPool2D(pool_size, strides, prefix="pool_")
            self.flatten = nn.Flatten(prefix="flatten_")

    def hybrid_forward(self, F, x):
        return self.flatten(self.pool(x))


class _IndexConstants(nn.HybridBlock):
    """A block whose int32 index constants stay int32 when the network is cast (``take``
    indices above 2048 are not exact in float16, and ``cast`` would convert them)."""

    _index_constants = ()

    def cast(self, dtype):
        super().cast(dtype)
        for name in self._index_constants:
            if getattr(self, name) is not None:
                getattr(self, name).cast("int32")


class ISqrtCov(_IndexConstants):
    """iSQRT-COV global covariance pooling (the authors' ``MPNCOV`` module; paper Sec. 3).

    ``[1x1 conv (no bias) -> BN -> ReLU to reduced_dim] -> covpool -> sqrtm(iter_num) ->
    triuvec``; output ``(B, d(d+1)/2)`` (vectorize) or ``(B, d, d)``, ``d = reduced_dim or
    in_channels``.

    Parameters
    ----------
    in_channels : int
        Input channels (0: inferred at the first forward; then ``reduced_dim`` must be set,
        since ``output_dim`` depends on ``d``).
    reduced_dim : int, optional
        Channels of the dimension-reduction block (256 in every network of the paper), whose
        conv is initialised Kaiming-normal in fan-out mode (``N(0, 2/d)``), as the authors'.
    iter_num : int
        Newton-Schulz steps ``N`` (every network of the paper uses 5; < 2 means 1).
    sqrt : bool
        Matrix square root; False: the plain covariance (no trace normalisation either).
    vectorize : bool
        Upper-triangle vector; False: the ``d x d`` matrix (``output_dim = d²``).
    order : {"row", "column"}
        Order of the upper triangle (:func:`triu_index`): fast MPN-COV's row-major one, or
        GM-SOP's column-major one.
    eps : float
        Added to the trace before normalisation and compensation (GM-SOP's guard, 1e-8;
        0 for fast MPN-COV, whose zero-trace inputs are kept finite by a 1e-30 clamp).
    impl : {"native", "stock"}
        ``"native"``: the ``ISqrtCov`` operator (the same numbers to rounding, about a quarter
        of the time and a fraction of the memory on the CPU: ``python -m benchmarks.run
        isqrtcov``); ``"stock"``: the graph functions of this module, which export anywhere.
        Both have the same parameters (the triangle index is a constant of either).

    float16: the block computes in float32 and returns float16 (the iteration loses about
    three digits in float16, spec: 1.5e-3 relative); ``cast("float16")`` sets this up.
    """

    _index_constants = ("triu",)

    def __init__(self, in_channels=0, reduced_dim=None, iter_num=5, sqrt=True, vectorize=True,
                 impl="native", order="row", eps=0.0, **kwargs):
        super().__init__(**kwargs)
        self.impl = check_impl(impl)
        self._half = False
        in_channels = check_int("in_channels", in_channels, 0)
        if reduced_dim is None and in_channels == 0:
            raise ValueError("ISqrtCov needs in_channels (or reduced_dim) to size output_dim")
        dim = in_channels if reduced_dim is None else check_positive_int("reduced_dim",
                                                                         reduced_dim)
        self.iter_num = check_int("iter_num", iter_num, 0)
        self.sqrt, self.vectorize, self.dim = bool(sqrt), bool(vectorize), dim
        self.eps = float(eps)
        if not 0 <= self.eps <= 1:
            raise ValueError("eps must be in [0, 1], got %r" % (eps,))
        self.output_dim = dim * (dim + 1) // 2 if self.vectorize else dim * dim
        with self.name_scope():
            self.reduce = None
            if reduced_dim is not None:
                self.reduce = ConvBNAct(in_channels, dim, 1, prefix="reduce_")
                self.reduce.conv.weight.init = mx.init.MSRAPrelu(factor_type="out", slope=0)
            self.triu = self.params.get_constant(
                "triu", mx.nd.array(triu_index(dim, order), dtype="int32")) \
                if self.vectorize else None

    def cast(self, dtype):
        super().cast(dtype)
        self._half = np.dtype(dtype) == np.float16

    def hybrid_forward(self, F, x, triu=None):
        if self.reduce is not None:
            x = self.reduce(x)
        if self._half:
            return F.cast(self._pool(F, F.cast(x, dtype="float32"), triu), dtype="float16")
        return self._pool(F, x, triu)

    def _pool(self, F, x, triu):
        if self.impl == "native":
            # Extension operators overwrite their input gradients (they are not told `req`);
            # a stock identity in front keeps grad_req="add" working (see is_graph_input).
            if is_graph_input(F, x):
                x = F.identity(x)
            args = dict(iter_num=self.iter_num, sqrt=self.sqrt, vectorize=self.vectorize)
            if self.eps:
                args["eps"] = self.eps
            return F.ISqrtCov(x, triu, **args) if self.vectorize else F.ISqrtCov(x, **args)
        cov = covpool(F, x)
        if self.sqrt:
            cov = sqrtm(F, cov, self.iter_num, self.eps)
        return triuvec(F, cov, triu) if self.vectorize else cov


class BCNN(nn.HybridBlock):
    """Bilinear pooling, B-CNN as in fast MPN-COV's ``BCNN`` module (no parameters).

    ``P = (1/M) X Xᵀ`` (uncentred) -> signed sqrt ``sign(P) sqrt(|P| + eps)`` -> l2. With
    ``vectorize`` the ``C²`` row-major entries are normalised as one vector: ``(B, C²)``;
    without, the output stays ``(B, C, C)`` and each column is normalised on its own (the
    authors' l2 over dimension 1). ``output_dim = C²`` either way.
    """

    def __init__(self, in_channels, vectorize=True, eps=_SIGNED_SQRT_EPS, **kwargs):
        super().__init__(**kwargs)
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.vectorize, self.eps = bool(vectorize), float(eps)
        self.output_dim = self.in_channels ** 2

    def hybrid_forward(self, F, x):
        xf = _flatten_spatial(F, x)
        p = F.broadcast_div(F.batch_dot(xf, xf, transpose_b=True), _positions(F, xf))
        s = signed_sqrt(F, p, self.eps)
        if self.vectorize:
            return l2_normalize(F, F.reshape(s, shape=(0, -1)), axis=1)
        return l2_normalize(F, s, axis=1)


def cbp_hashes(in_channels, proj_dim=8192, seed=1):
    """Tensor Sketch hashes ``(h1, h2, s1, s2)`` of the authors' CBP, without torch.

    Their module seeds torch's generator with ``seed`` and draws ``h1, h2 ~ randint(0, D)``
    then ``s1, s2 = 2 randint(0, 2) - 1``, ``C`` each; these are the first ``4C`` raw 32-bit
    outputs of MT19937 seeded with ``seed`` (``numpy.random.RandomState``'s generator, the
    classic ``init_genrand``), reduced modulo ``D`` (hashes) and modulo 2 mapped to ±1
    (signs), in that order. int64 arrays of length ``C``.
    """
    c = check_positive_int("in_channels", in_channels)
    d = check_positive_int("proj_dim", proj_dim)
    raw = np.random.RandomState(seed).randint(0, 2 ** 32, size=4 * c, dtype=np.uint64)
    raw = raw.astype(np.int64)   # < 2**32, exact
    h1, h2 = raw[:c] % d, raw[c:2 * c] % d
    s1, s2 = 2 * (raw[2 * c:3 * c] % 2) - 1, 2 * (raw[3 * c:] % 2) - 1
    return h1, h2, s1, s2


def cbp_bins(h1, h2, proj_dim):
    """Gather table of the FFT-free Tensor Sketch: ``(D, L)`` int64.

    Row ``k`` lists the flat positions ``i*C + j`` of the pairs with ``(h1_i + h2_j) mod D
    = k`` in increasing order, padded with ``C²`` (a zero slot appended to the flattened
    matrix); ``L`` is the largest bin (for C = 512, D = 8192 and the seed-1 hashes about 2x
    the mean C²/D = 32).
    """
    c, d = len(h1), int(proj_dim)
    k = ((np.asarray(h1)[:, None] + np.asarray(h2)[None, :]) % d).ravel()
    order = np.argsort(k, kind="stable")
    counts = np.bincount(k, minlength=d)
    starts = np.cumsum(counts) - counts
    rank = np.arange(c * c) - starts[k[order]]
    bins = np.full((d, max(int(counts.max()), 1)), c * c, dtype=np.int64)
    bins[k[order], rank] = order
    return bins


def compact_bilinear(F, x, sign1, sign2, bins):
    """Tensor Sketch of ``Σ_p x_p ⊗ x_p`` without FFT: ``(B, C, H, W) -> (B, D)``.

    The exact closed form ``r[k] = Σ_{(h1_i + h2_j) mod D = k} s1_i s2_j Q_ij`` with
    ``Q = X Xᵀ`` (uncentred, summed over positions, no 1/M): ``(s1∘X)(s2∘X)ᵀ`` by one
    ``batch_dot`` (C² M multiply-adds per image), then a gather of its ``C²`` entries into
    ``bins`` (:func:`cbp_bins`, ``D x L`` reads) and a sum over each row. The gather's
    backward is the transposed scatter ``Q̄_ij = s1_i s2_j r̄[bin(i, j)]``. Memory: ``B C²``
    plus ``B D L`` values (D = 8192, L ~ 64: 2 MB per float32 image), never ``C² x D``.
    ``sign1``/``sign2`` are the signs as ``(1, C, 1)`` arrays.
    """
    xf = _flatten_spatial(F, x)
    q = F.batch_dot(F.broadcast_mul(xf, sign1), F.broadcast_mul(xf, sign2), transpose_b=True)
    flat = F.reshape(q, shape=(0, -1))
    zero = F.zeros_like(F.BlockGrad(F.slice_axis(flat, axis=1, begin=0, end=1)))
    return F.sum(F.take(F.concat(flat, zero, dim=1), bins, axis=1), axis=2)


class CBP(_IndexConstants):
    """Compact bilinear pooling by Tensor Sketch (the authors' ``CBP`` module).

    ``r = Tensor Sketch of Σ_p x_p x_pᵀ`` (:func:`compact_bilinear`) -> signed sqrt
    (eps 1e-8) -> l2: ``(B, D)``. The hashes are the authors' (:func:`cbp_hashes`), kept as
    constants (``sign1``, ``sign2``, the gather table ``bins``), so an exported network
    reloads with the same sketch; ``hash1``/``hash2``/``sign1``/``sign2`` are also plain numpy
    attributes. The authors' FFT path (MXNet's FFT is GPU-only) is replaced by its exact
    FFT-free form; their output is always float32, this one has the input's dtype.
    """

    _index_constants = ("bins",)

    def __init__(self, in_channels, proj_dim=8192, seed=1, **kwargs):
        super().__init__(**kwargs)
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.proj_dim = check_positive_int("proj_dim", proj_dim)
        if self.in_channels ** 2 >= 2 ** 31:
            raise ValueError("CBP in_channels=%d: C² must fit int32 gather indices"
                             % self.in_channels)
        self.hash1, self.hash2, self.signs1, self.signs2 = cbp_hashes(
            self.in_channels, self.proj_dim, seed)
        self.output_dim = self.proj_dim
        c = self.in_channels
        with self.name_scope():
            self.sign1 = self.params.get_constant(
                "sign1", mx.nd.array(self.signs1.reshape(1, c, 1)))
            self.sign2 = self.params.get_constant(
                "sign2", mx.nd.array(self.signs2.reshape(1, c, 1)))
            self.bins = self.params.get_constant(
                "bins", mx.nd.array(cbp_bins(self.hash1, self.hash2, self.proj_dim),
                                    dtype="int32"))

    def hybrid_forward(self, F, x, sign1, sign2, bins):
        r = compact_bilinear(F, x, sign1, sign2, bins)
        return l2_normalize(F, signed_sqrt(F, r), axis=1)
