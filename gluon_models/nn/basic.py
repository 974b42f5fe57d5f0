"""Basic building blocks shared by every family: conv-bn-act, the seeds' initialisers and the
checks of layer arguments."""
import math
import numbers

import mxnet as mx
import numpy as np
from mxnet.gluon import nn

__all__ = ["BatchNormReLU", "ConvBNAct", "DirectGroupConv2D", "MergedGroupConv2D", "merge_factor",
           "relu", "he_normal", "fc_uniform", "IMPLS", "check_impl", "check_positive_int", "check_int",
           "is_graph_input", "layout_barrier", "train_mode_dropout", "train_mode_flag"]

IMPLS = ("native", "stock")


def check_int(name, value, minimum=1):
    """``int(value)`` if ``value`` is a whole number >= ``minimum``; else ValueError naming
    the argument ``name``.

    A layer argument that is a size, a count or a group number must be checked when the layer
    is built: otherwise None, nan, inf, 2.5, 0 or a string reach ``int()``, ``%`` or the
    operator and fail later as a TypeError, an OverflowError, a ZeroDivisionError or an
    MXNetError that does not say which argument was wrong. Integral floats (``8.0``) are
    accepted; bools are not (``True`` is no size).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
            not math.isfinite(value) or int(value) != value or value < minimum:
        raise ValueError("%s must be %s, got %r" % (
            name, "a positive integer" if minimum == 1 else "an integer >= %d" % minimum,
            value))
    return int(value)


def check_positive_int(name, value):
    """``int(value)`` if ``value`` is a whole number >= 1, else ValueError naming ``name``
    (see :func:`check_int`)."""
    return check_int(name, value, 1)


def check_impl(impl):
    """Validate the ``impl`` option shared by every block with a native operator."""
    if impl not in IMPLS:
        raise ValueError("impl must be one of %s, got %r" % (IMPLS, impl))
    return impl


def relu(F, x):
    """ReLU as ``Activation(act_type="relu")``, the spelling MXNet 1.9.1's oneDNN backend
    implements: the ``relu`` operator is not, so ``F.relu`` between oneDNN operators converts its
    input to plain NCHW and the next convolution's input back (measured: ResNet-50-IBN-a,
    batch 16, 159 such conversions per training step instead of 52). Same values."""
    return F.Activation(x, act_type="relu")


def layout_barrier(F, x):
    """Identity that hands on ``x`` (and its gradient) in MXNet's default NCHW layout.

    MXNet 1.9.1's MKLDNN grouped convolution exchanges data and gradients with its
    neighbours in blocked layouts that make an adjacent BatchNorm 10-20x slower on the CPU
    (measured: grouped 1x1 conv -> BN, 64x16x32x32, 137 ms forward+backward vs 8 ms with
    this barrier; see benchmarks/). ``slice_axis`` over the whole channel axis is a stock,
    non-MKLDNN op, so its output and its input gradient are plain NCHW; it costs one copy.
    """
    return F.slice_axis(x, axis=1, begin=0, end=None)


def is_graph_input(F, x):
    """True when ``x`` owns a gradient buffer that the caller may accumulate into.

    Extension operators always overwrite their input gradients (they are not told `req`), so
    such an input is passed through a stock ``identity`` first, which honours
    ``grad_req='add'`` (spec platform.md section 2).
    """
    if F is mx.nd:
        return x.grad is not None  # a leaf marked with attach_grad(), maybe grad_req='add'
    return x.get_children() is None  # a variable of the traced graph


def train_mode_dropout(F, ones, p):
    """``Dropout(ones, p)`` as a constant of the pass: the one in-graph probe of train mode.

    Training: every entry independently 0 with probability ``p``, else ``1 / (1 - p)``;
    inference: exactly ``ones``. "Training" is what stock ops see: Gluon's
    ``autograd.is_training()`` (``autograd.record()`` or ``autograd.train_mode()``), the same
    hybridized or not, and Module's ``forward(is_train=...)``. Extension operators are never
    told the mode, and ``autograd.is_training()`` read in ``hybrid_forward`` would be frozen
    into a hybridized graph at trace time, so a block (or the input of a native op) that
    behaves differently in training derives it from this draw or from
    :func:`train_mode_flag`, never otherwise. No gradient flows through the result.
    """
    return F.BlockGrad(F.Dropout(F.BlockGrad(ones), p=p))


def train_mode_flag(F, like):
    """``(1,)`` array: 1.0 in training, 0.0 in inference (see :func:`train_mode_dropout`).

    It has the dtype and context of ``like`` (any array of the graph, e.g. the block's
    input) and no gradient path, so ``F.broadcast_mul(flag, noise)`` switches a term on in
    training only, e.g. noise added to a gate or a batch-statistics path. Computed as
    ``|Dropout(1, p=0.5) - 1|``: the draw is 0 or 2 in training and exactly 1 in inference.
    """
    one = F.ones_like(F.slice_axis(F.reshape(F.BlockGrad(like), shape=(-1,)), axis=0,
                                   begin=0, end=1))
    return F.abs(train_mode_dropout(F, one, 0.5) - 1)


def he_normal():
    """N(0, sqrt(2 / fan_in)) with fan_in = (C_in / groups) * k_h * k_w: the seeds' conv init."""
    return mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2)


def fc_uniform():
    """U(-sqrt(1 / fan_in), sqrt(1 / fan_in)): the seeds' classifier init (Xavier, 'in', 1)."""
    return mx.init.Xavier(rnd_type="uniform", factor_type="in", magnitude=1)


# Graph attribute of a MergedGroupConv2D's convolution: how many groups it merged (its useful
# multiply-adds are the counted ones / this; gluon_models.utils.summary reads it).
MERGE_ATTR = "__merged_groups__"


def merge_factor(groups, in_per_group, out_per_group, kernel, width=8):
    """How many neighbouring groups :class:`MergedGroupConv2D` computes as one: the smallest
    divisor ``f`` of ``groups`` with ``f * min(in_per_group, out_per_group) >= width``, for
    a spatial kernel (any side > 1) whose groups are narrower than ``width``; else 1.

    MXNet 1.9.1's oneDNN has no direct (JIT) kernel for groups of fewer than 8 channels and
    runs them through im2col + GEMM. Measured on a 2-core AVX-512 Xeon, 3 x 3 convolution
    forward + backward, batch 16: 200 channels at 56 px, 2 per group 259 ms, merged to 8 per
    group 106 ms (with 4x the multiply-adds); 800 at 14 px 66 vs 19 ms; 1600 at 7 px 46 vs
    18 ms; 1 x 1 convolutions gain nothing (128 channels, 4 per group 32 ms, 8 per group 37).
    """
    if max(kernel) <= 1 or min(in_per_group, out_per_group) >= width:
        return 1
    for f in range(2, groups + 1):
        if groups % f == 0 and f * min(in_per_group, out_per_group) >= width:
            return f
    return 1


class MergedGroupConv2D(nn.Conv2D):
    """A grouped ``nn.Conv2D`` that runs ``merge`` neighbouring groups as one wider group.

    Parameters, initialisation and results are those of ``nn.Conv2D(..., groups=groups)``
    (same names and shapes, so checkpoints and symbols of the plain layer load). The
    forward pass builds the block-diagonal weight of ``groups / merge`` groups from the
    stored one in the graph (``tile`` + a mask computed with ``arange_like``: exact zeros off
    the diagonal blocks, whose gradients are dropped by the mask and summed away by the
    ``tile`` backward) and runs one convolution with fewer, wider groups, which oneDNN
    computes with its direct kernels (see :func:`merge_factor` for when and how much that
    pays). The extra products are with exact zeros, so the output is the plain layer's up to
    the order of float additions (an inf or nan input would spread to the neighbouring
    groups of its merged group: 0 * inf is nan).

    Parameters
    ----------
    channels, kernel_size, strides, padding, groups, in_channels :
        As ``nn.Conv2D``; ``in_channels`` is required.
    merge : int or None
        Groups computed as one, a divisor of ``groups``; None: :func:`merge_factor`.
    """

    def __init__(self, channels, kernel_size, strides=1, padding=0, groups=1, in_channels=0,
                 merge=None, **kwargs):
        groups = check_positive_int("groups", groups)
        in_channels = check_positive_int("in_channels", in_channels)
        channels = check_positive_int("channels", channels)
        super().__init__(channels, kernel_size, strides, padding, groups=groups,
                         in_channels=in_channels, **kwargs)
        self._in_per_group, self._out_per_group = in_channels // groups, channels // groups
        if merge is None:
            merge = merge_factor(groups, self._in_per_group, self._out_per_group,
                                 self._kwargs["kernel"])
        merge = check_positive_int("merge", merge)
        if groups % merge:
            raise ValueError("merge=%d does not divide groups=%d" % (merge, groups))
        self.merge = merge

    def hybrid_forward(self, F, x, weight, bias=None):
        if self.merge == 1:
            return super().hybrid_forward(F, x, weight, bias)
        f, ipg = self.merge, self._in_per_group
        wide = F.tile(weight, reps=(1, f, 1, 1))   # (C_out, f * ipg, kh, kw): f copies
        # output o (group g = o // opg) keeps copy t = g % f of its weights, the block of
        # the merged group's inputs that are its own group's
        copy = F.floor(F.contrib.arange_like(wide, axis=1) / ipg)
        own = F.floor(F.contrib.arange_like(wide, axis=0) / self._out_per_group) % f
        mask = F.broadcast_equal(F.reshape(own, shape=(-1, 1, 1, 1)),
                                 F.reshape(copy, shape=(1, -1, 1, 1)))
        kwargs = dict(self._kwargs, num_group=self._kwargs["num_group"] // f)
        if F is mx.sym:  # for utils.summary: the layer's multiply-adds are the plain conv's
            kwargs["attr"] = {MERGE_ATTR: str(f)}
        args = (x, F.broadcast_mul(wide, mask)) + (() if bias is None else (bias,))
        out = F.Convolution(*args, name="fwd", **kwargs)
        return self.act(out) if self.act is not None else out

    def __repr__(self):
        return "%s, merge=%d)" % (super().__repr__()[:-1], self.merge)


class DirectGroupConv2D(nn.Conv2D):
    """A grouped ``nn.Conv2D`` (no bias, no dilation) computed by the native ``GroupConv``
    operator on plain NCHW tensors, for groups of a few channels.

    Parameters, initialisation and results are those of ``nn.Conv2D(channels, kernel_size,
    strides, padding, groups=groups, use_bias=False, in_channels=in_channels)`` (same names
    and shapes). MXNet's oneDNN backend computes such narrow groups with im2col + GEMM or,
    merged (:class:`MergedGroupConv2D`), in its blocked layout, which costs a layout
    conversion on each side when the neighbours are extension operators working on plain
    NCHW (IGC's :class:`~gluon_models.nn.igc.InterleavedConv2D` and
    :class:`BatchNormReLU`); the operator computes the groups directly in the plain layout.
    float16 runs MXNet's convolution (the operator computes float32/float64).

    Parameters
    ----------
    channels, kernel_size, strides, padding, groups, in_channels :
        As ``nn.Conv2D``; ``in_channels`` is required.
    """

    def __init__(self, channels, kernel_size, strides=1, padding=0, groups=1, in_channels=0,
                 **kwargs):
        in_channels = check_positive_int("in_channels", in_channels)
        if kwargs.pop("use_bias", False):
            raise ValueError("DirectGroupConv2D has no bias")
        super().__init__(check_positive_int("channels", channels), kernel_size, strides,
                         padding, groups=check_positive_int("groups", groups), use_bias=False,
                         in_channels=in_channels, **kwargs)
        if tuple(self._kwargs["dilate"]) != (1, 1) or self._kwargs["layout"] != "NCHW":
            raise ValueError("DirectGroupConv2D computes NCHW without dilation")
        self.direct = True

    def cast(self, dtype):
        if np.dtype(dtype) == np.float16:
            self.direct = False
        super().cast(dtype)

    def hybrid_forward(self, F, x, weight, bias=None):
        if not self.direct:
            return super().hybrid_forward(F, x, weight, bias)
        if is_graph_input(F, x):  # the operator overwrites its input gradient (BatchNormReLU)
            x = F.identity(x)
        k = self._kwargs
        return F.GroupConv(x, F.identity(weight), num_filter=k["num_filter"],
                           num_group=k["num_group"], kernel=k["kernel"], stride=k["stride"],
                           pad=k["pad"], name="fwd")

    def __repr__(self):
        return "%s, direct=%s)" % (super().__repr__()[:-1], self.direct)


class BatchNormReLU(nn.BatchNorm):
    """``nn.BatchNorm``, then ReLU if ``relu``, computed by the native ``BNReLU`` operator;
    called with a second input ``residual`` it computes ``relu(bn(x) + residual)`` (the tail
    of a residual block) in the same pass.

    For a plain NCHW input, e.g. the output of an extension operator (IGC's
    :class:`~gluon_models.nn.igc.InterleavedConv2D`): MXNet 1.9.1 normalises plain tensors
    with oneDNN's slower "ncsp" kernels and runs the ReLU (and a residual addition) as more
    passes each way (``python -m benchmarks.run bnrelu``, 16 x 200 x 56 x 56, one core:
    training pass 58 ms against 99 ms for ``nn.BatchNorm`` + ``Activation``, inference 24
    against 31 ms). For a oneDNN blocked input (a dense convolution's output) it is not
    meant: MXNet converts such an input for an extension operator on a slow path.
    Parameters (names, shapes, initialisation), results and gradients are those of
    ``nn.BatchNorm`` followed by ``Activation("relu")``; the running statistics are updated by
    the training backward pass, as MXNet's BatchNorm does them in a training step.

    ``native=False``, float16, ``axis`` other than 1, ``use_global_stats``, ``scale=False`` or
    ``center=False`` run the stock BatchNorm (+ ReLU) instead.

    Parameters
    ----------
    relu : bool
        ReLU after the normalisation.
    native : bool
        Use the operator (needs the operator library, see :mod:`gluon_models.ops`).
    **kwargs :
        ``nn.BatchNorm`` arguments.
    """

    def __init__(self, relu=True, native=True, **kwargs):
        super().__init__(**kwargs)
        k = self._kwargs
        self.relu = bool(relu)
        self.native = bool(native) and k["axis"] == 1 and not k["use_global_stats"] and \
            not k["fix_gamma"] and self.beta.grad_req != "null"

    def cast(self, dtype):
        if np.dtype(dtype) == np.float16:
            self.native = False
        super().cast(dtype)

    def hybrid_forward(self, F, x, residual=None, gamma=None, beta=None, running_mean=None,
                       running_var=None):
        """``relu(bn(x) [+ residual])`` (no ReLU with ``relu=False``); ``residual``: an optional
        second input shaped as ``x``, e.g. the shortcut of a residual block."""
        if not self.native:
            y = super().hybrid_forward(F, x, gamma, beta, running_mean, running_var)
            if residual is not None:
                y = y + residual
            return relu(F, y) if self.relu else y
        # The operator overwrites its input gradients (it is not told `req`): graph inputs,
        # which may accumulate (grad_req='add'), are reached through stock identities.
        if is_graph_input(F, x):
            x = F.identity(x)
        extra = ()
        if residual is not None:
            extra = (F.identity(residual) if is_graph_input(F, residual) else residual,)
        out = F.BNReLU(x, F.identity(gamma), F.identity(beta), train_mode_flag(F, x),
                       running_mean, running_var, *extra, relu=self.relu,
                       residual=bool(extra), eps=self._kwargs["eps"],
                       momentum=self._kwargs["momentum"], name="fwd")
        return out[0]

    def __repr__(self):
        return "%s, relu=%s, native=%s)" % (super().__repr__()[:-1], self.relu, self.native)


class ConvBNAct(nn.HybridBlock):
    """Convolution -> BatchNorm -> optional activation.

    Children are ``conv``, ``bn`` and ``act`` (parameter names ``<prefix>conv_weight``,
    ``<prefix>bn_gamma``, ...), matching the op names of the seeds' symbols; the ``*_prefix``
    arguments rename them where a seed names its layers otherwise (the FBN Inception nets:
    ``conv_3a_1x1_`` / ``bn_3a_1x1_`` / ``relu_3a_1x1_`` under an empty block prefix).

    Parameters
    ----------
    in_channels, channels : int
        Input and output channels.
    kernel, stride, padding : int
        Square convolution geometry.
    groups : int
        Convolution groups.
    act : bool or str
        Activation after BatchNorm: True (ReLU), False/None (none), or an ``act_type`` of
        ``nn.Activation`` such as ``"tanh"``.
    norm_kwargs : dict, optional
        BatchNorm arguments (``epsilon``, ``momentum``, ...).
    use_bias : bool
        Bias on the convolution (the FBN seeds' convolutions have one; IGC's do not).
    conv_prefix, bn_prefix, act_prefix : str
        Prefixes of the children (``act_prefix`` default: ``"<act_type>_"``).
    native_bn : bool
        BatchNorm (and a ReLU ``act``) as :class:`BatchNormReLU` (the native operator; same
        parameters and results): for convolutions whose output MXNet hands on in plain NCHW,
        where oneDNN's BatchNorm is slow: grouped ones (behind the layout barrier) and those
        with a channel count oneDNN's blocked layouts do not tile (not a multiple of 8, e.g.
        IGC-L100M2's 100-channel stem). Needs the operator library.
    """

    def __init__(self, in_channels, channels, kernel, stride=1, padding=0, groups=1, act=True,
                 norm_kwargs=None, use_bias=False, conv_prefix="conv_", bn_prefix="bn_",
                 act_prefix=None, native_bn=False, **kwargs):
        super().__init__(**kwargs)
        norm_kwargs = {} if norm_kwargs is None else norm_kwargs
        act_type = "relu" if act is True else (act or None)
        with self.name_scope():
            self.conv = nn.Conv2D(channels, kernel, stride, padding, groups=groups,
                                  use_bias=use_bias, in_channels=in_channels,
                                  weight_initializer=he_normal(), prefix=conv_prefix)
            if native_bn:
                self.bn = BatchNormReLU(relu=act_type == "relu", in_channels=channels,
                                        prefix=bn_prefix, **norm_kwargs)
            else:
                self.bn = nn.BatchNorm(in_channels=channels, prefix=bn_prefix, **norm_kwargs)
            self.act = nn.Activation(act_type, prefix=act_prefix or "%s_" % act_type) \
                if act_type else None

    def hybrid_forward(self, F, x):
        if self.conv._kwargs["num_group"] > 1:  # grouped conv next to BN: see layout_barrier
            x = self.bn(layout_barrier(F, self.conv(layout_barrier(F, x))))
        else:
            x = self.bn(self.conv(x))
        if self.act is None or getattr(self.bn, "relu", False):  # none, or inside the BN
            return x
        return self.act(x)
