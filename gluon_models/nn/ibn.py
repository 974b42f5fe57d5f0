"""The IBN layer of IBN-Net (Pan, Luo, Shi, Tang, "Two at Once: Enhancing Learning and
Generalization Capacities via IBN-Net", ECCV 2018, arXiv 1807.09441; the authors' code
github.com/XingangPan/IBN-Net, the MXNet port github.com/bruinxiong/IBN-Net.mxnet).

Instance normalisation (affine, no running statistics) on one group of channels, batch
normalisation on the others, concatenated back in channel order. Replacing a ``BatchNorm(C)`` by
an ``IBN(C)`` keeps the number of learnable parameters (each group has its own gamma/beta) and
only drops the running statistics of the IN channels.

``impl="native"`` runs the ``IBN`` operator of the operator library (one pass for the
statistics, fused normalisation and affine, analytic backward); ``impl="stock"`` is its twin
made of ``slice_axis`` + instance norm (stock mean / broadcast ops, see
:func:`_instance_norm`) + ``BatchNorm`` + ``concat``, which exports without the library.
Both share the parameters, the train/inference semantics of MXNet's BatchNorm for the
BN group (batch statistics in training, running ones in inference; running statistics updated
by the backward pass of a training step, ``run <- momentum * run + (1 - momentum) * batch`` with
the biased batch variance) and give the same results. One corner differs: a backward pass
through an inference-mode forward (``autograd.record(train_mode=False)``) gives the native
layer the gradient of what it computed, the running statistics being constants (MXNet's
BatchNorm with ``use_global_stats=True``), while MXNet 1.9.1's BatchNorm applies its
batch-statistics formula to the running statistics there.
"""
import math

from mxnet.gluon import nn

from .basic import check_impl, check_int, is_graph_input, train_mode_flag

__all__ = ["IBN", "ibn_split", "InstanceNorm"]


def ibn_split(channels, ratio, in_first=True):
    """``(IN channels, BN channels)`` of an IBN over ``channels``.

    ``in_first=True`` (ResNet/ResNeXt/SE-ResNet IBN-a, the MXNet port): IN on the first
    ``floor(C * ratio)`` channels, BN on the rest. ``in_first=False`` (the authors'
    DenseNet-IBN, ratio 0.4): BN on the first ``floor(C * (1 - ratio))`` channels, IN on the rest.
    """
    channels = check_int("channels", channels, 2)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or \
            not math.isfinite(ratio) or not 0 < ratio < 1:
        raise ValueError("ratio must be a number in (0, 1), got %r" % (ratio,))
    if in_first:
        n_in = int(channels * ratio)
        n_bn = channels - n_in
    else:
        n_bn = int(channels * (1 - ratio))
        n_in = channels - n_bn
    if n_in < 1 or n_bn < 1:
        raise ValueError("channels=%d with ratio=%r leaves %s group empty"
                         % (channels, ratio, "the IN" if n_in < 1 else "the BN"))
    return n_in, n_bn


def _instance_norm(F, x, gamma, beta, eps):
    """Instance norm of ``x`` (N, C, S) over S, biased variance, affine: stock elementwise and
    reduction ops. Not MXNet 1.9.1's ``InstanceNorm`` operator: inside networks its backward
    gives wrong gradients (measured: the first block of ResNet-18-IBN-a, data and parameter
    gradients 2-15 % off a float64 reference, which this composition and the native operator
    match to 1e-5), and it has no float64."""
    d = F.broadcast_sub(x, F.mean(x, axis=2, keepdims=True))
    # reciprocal of sqrt, not rsqrt: mxnet's ONNX converter has no rsqrt (same value)
    inv = F.reciprocal(F.sqrt(F.mean(d * d, axis=2, keepdims=True) + eps))
    return F.broadcast_add(F.broadcast_mul(F.broadcast_mul(d, inv),
                                           F.reshape(gamma, shape=(1, -1, 1))),
                           F.reshape(beta, shape=(1, -1, 1)))


class InstanceNorm(nn.HybridBlock):
    """Affine instance norm over the spatial axes of (N, C, spatial...), biased variance: the
    IN of IBN-b (after the residual addition, in the stem). Parameters ``gamma`` (ones) and
    ``beta`` (zeros) as ``gluon.nn.InstanceNorm(scale=True, center=True)`` names them; built
    from stock ops (see :func:`_instance_norm` for why not MXNet's ``InstanceNorm``)."""

    def __init__(self, channels, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.channels = check_int("channels", channels, 1)
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or \
                not math.isfinite(epsilon) or epsilon <= 0:
            raise ValueError("epsilon must be a finite number > 0, got %r" % (epsilon,))
        self.epsilon = float(epsilon)
        with self.name_scope():
            self.gamma = self.params.get("gamma", shape=(self.channels,), init="ones")
            self.beta = self.params.get("beta", shape=(self.channels,), init="zeros")

    def hybrid_forward(self, F, x, gamma, beta):
        y = _instance_norm(F, F.reshape(x, shape=(0, 0, -1)), gamma, beta, self.epsilon)
        return F.reshape_like(y, x)

    def __repr__(self):
        return "%s(channels=%d, epsilon=%g)" % (self.__class__.__name__, self.channels,
                                               self.epsilon)


class IBN(nn.HybridBlock):
    """Instance norm on ``floor(C * ratio)`` channels, batch norm on the rest (IBN-Net).

    Parameters
    ----------
    channels : int
        ``C``, the channels of the input (axis 1); the input is (N, C, spatial...).
    ratio : float
        Share of the IN group, in (0, 1) (0.5 in the ResNet family, 0.4 in DenseNet-IBN).
    in_first : bool
        True: the IN group comes first; False: the BN group comes first (DenseNet-IBN), see
        :func:`ibn_split`.
    epsilon : float
        Epsilon of both groups (the authors: 1e-5, the MXNet port: 2e-5).
    momentum : float
        Running-statistics momentum of the BN group (0.9 in both references).
    impl : {"native", "stock"}
        The native ``IBN`` operator or the stock composition.
    in_prefix, bn_prefix : str
        Name prefixes of the IN group's ``gamma``/``beta`` and the BN group's ``gamma``/``beta``/
        ``running_mean``/``running_var``: the parameters are ``<prefix><in_prefix>gamma``, ...
        (the MXNet port names them ``<unit>_in1_gamma`` and ``<unit>_bn1_gamma``).
    """

    def __init__(self, channels, ratio=0.5, in_first=True, epsilon=1e-5, momentum=0.9,
                 impl="native", in_prefix="in_", bn_prefix="bn_", **kwargs):
        super().__init__(**kwargs)
        self.n_in, self.n_bn = ibn_split(channels, ratio, in_first)
        self.channels, self.ratio, self.in_first = self.n_in + self.n_bn, ratio, bool(in_first)
        for name, v in (("epsilon", epsilon), ("momentum", momentum)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError("%s must be a finite number, got %r" % (name, v))
        if epsilon <= 0:
            raise ValueError("epsilon must be > 0, got %r" % (epsilon,))
        if not 0 <= momentum <= 1:
            raise ValueError("momentum must be in [0, 1], got %r" % (momentum,))
        self.epsilon, self.momentum = float(epsilon), float(momentum)
        self.impl = check_impl(impl)
        with self.name_scope():
            get = self.params.get
            self.in_gamma = get(in_prefix + "gamma", shape=(self.n_in,), init="ones")
            self.in_beta = get(in_prefix + "beta", shape=(self.n_in,), init="zeros")
            self.bn_gamma = get(bn_prefix + "gamma", shape=(self.n_bn,), init="ones")
            self.bn_beta = get(bn_prefix + "beta", shape=(self.n_bn,), init="zeros")
            self.running_mean = get(bn_prefix + "running_mean", shape=(self.n_bn,),
                                    init="zeros", grad_req="null", differentiable=False)
            self.running_var = get(bn_prefix + "running_var", shape=(self.n_bn,), init="ones",
                                   grad_req="null", differentiable=False)

    def hybrid_forward(self, F, x, in_gamma, in_beta, bn_gamma, bn_beta, running_mean,
                       running_var):
        if self.impl == "stock":
            return self._stock(F, x, in_gamma, in_beta, bn_gamma, bn_beta, running_mean,
                               running_var)
        # The operator overwrites its input gradients (it is not told `req`): graph inputs,
        # which may accumulate (grad_req='add'), are reached through stock identities.
        if is_graph_input(F, x):
            x = F.identity(x)
        flag = train_mode_flag(F, x)
        out = F.IBN(x, F.identity(in_gamma), F.identity(in_beta), F.identity(bn_gamma),
                    F.identity(bn_beta), flag, running_mean, running_var,
                    in_channels=self.n_in, in_first=self.in_first, eps=self.epsilon,
                    momentum=self.momentum)
        return out[0]

    def _stock(self, F, x, in_gamma, in_beta, bn_gamma, bn_beta, running_mean, running_var):
        first = self.n_in if self.in_first else self.n_bn
        # (N, C, S): MXNet 1.9.1's MKLDNN slice cannot cut a blocked 4-D layout at a channel
        # offset that is not a multiple of its block ("could not construct a sub-memory", e.g.
        # 38 of DenseNet-IBN's 64 channels); the 3-D view is plain NCHW. IN and BN normalise
        # (N, C, S) exactly as (N, C, H, W).
        flat = F.reshape(x, shape=(0, 0, -1))
        a = F.slice_axis(flat, axis=1, begin=0, end=first)
        b = F.slice_axis(flat, axis=1, begin=first, end=None)
        x_in, x_bn = (a, b) if self.in_first else (b, a)
        y_in = _instance_norm(F, x_in, in_gamma, in_beta, self.epsilon)
        y_bn = F.BatchNorm(x_bn, bn_gamma, bn_beta, running_mean, running_var, eps=self.epsilon,
                           momentum=self.momentum, fix_gamma=False, use_global_stats=False)
        y = F.concat(y_in, y_bn, dim=1) if self.in_first else F.concat(y_bn, y_in, dim=1)
        return F.reshape_like(y, x)

    def __repr__(self):
        return "%s(channels=%d, in=%d, bn=%d, in_first=%s, epsilon=%g, momentum=%g, impl=%s)" % (
            self.__class__.__name__, self.channels, self.n_in, self.n_bn, self.in_first,
            self.epsilon, self.momentum, self.impl)
