"""Interleaved group convolution (IGCNets, Zhang et al., ICCV 2017, arXiv 1707.02725).

An IGC block maps ``G = L * M`` channels with a primary group convolution (``L`` groups,
spatial k x k), a permutation ``Reorder(L)``, a secondary group convolution (1 x 1, ``M``
groups) and the permutation back ``Reorder(M)``, followed by BatchNorm and optionally ReLU
(spec igc.md section 1). The permutation is the native ``Reorder`` operator or, with
``impl="stock"``, its twin made of stock reshape / swapaxes / reshape_like, which gives
identical results and exports without the operator library, to ONNX too.
"""
import mxnet as mx
import numpy as np
from mxnet.gluon import nn

from ..utils.summary import register_macs
from .basic import (BatchNormReLU, DirectGroupConv2D, MergedGroupConv2D, check_impl, check_positive_int, he_normal,
                    is_graph_input as _is_graph_input, layout_barrier, relu)

__all__ = ["reorder", "Reorder", "IGCConv", "InterleavedConv2D"]

# Primary groups at most this many channels wide (input and output) and of stride 1 run as
# the native GroupConv on the fused path (IGC-L100M2: 1-2, the CIFAR IGC nets: 2-4). Strided
# ones stay merged in oneDNN: GroupConv computes stride 2 with its generic row loops, and
# `python -m benchmarks.run groupconv` measured them 1.4-1.7x slower per training pass than the
# merged groups with their layout conversions (IGC-L100M2's three stride-2 layers; with them
# merged the step took 2-4 % less and inference 0-1 % more, two interleaved runs).
DIRECT_GROUP_WIDTH = 4


def reorder(F, x, branch_factor, impl="native", channels=None):
    """Channel permutation ``out[:, k*B + b] = in[:, b*(C/B) + k]`` (``B = branch_factor``).

    ``x`` has channels on axis 1 and any ndim >= 2. ``impl="stock"`` is a stock twin made only
    of ops that ONNX expresses (explicit reshape sizes, no MXNet-only reshape codes): with the
    channel count ``C`` known (``channels``, or the shape of an NDArray) it splits the channels
    as ``reshape(0, B, C/B, -1)``, swaps the two channel axes and restores ``x``'s shape
    (``reshape_like``); a symbol of unknown ``C`` takes the same permutation with the channels
    last (``(N, S, C) -> (N, S, B, C/B)``, swap, merge), two transposes more.
    """
    if impl == "stock":
        if F is mx.nd:
            channels = x.shape[1]
        if channels is not None:
            y = F.reshape(x, shape=(0, branch_factor, channels // branch_factor, -1))
            return F.reshape_like(F.swapaxes(y, 1, 2), x)
        y = F.transpose(F.reshape(x, shape=(0, 0, -1)), axes=(0, 2, 1))       # (N, S, C)
        y = F.swapaxes(F.reshape(y, shape=(0, 0, branch_factor, -1)), 2, 3)  # (N, S, C/B, B)
        y = F.transpose(F.reshape(y, shape=(0, 0, -1)), axes=(0, 2, 1))       # (N, C, S)
        return F.reshape_like(y, x)
    # Extension operators always overwrite their input gradient (they are not told `req`),
    # so a gradient buffer owned by the caller, which may be in grad_req='add' mode, is
    # reached through a stock identity that honours `req`. Inside networks the input is an
    # intermediate result and this costs nothing.
    if _is_graph_input(F, x):
        x = F.identity(x)
    return F.Reorder(x, branch_factor=branch_factor)


class Reorder(nn.HybridBlock):
    """The IGC permutation as a block (see :func:`reorder`).

    Parameters
    ----------
    branch_factor : int
        ``B``; the channel count must be divisible by it. ``Reorder(C // B)`` is the inverse.
    impl : {"native", "stock"}
        Native operator or the stock-op twin.
    channels : int, optional
        The input's channel count ``C``, if known: the stock twin then needs no transposes
        (see :func:`reorder`).
    """

    def __init__(self, branch_factor, impl="native", channels=None, **kwargs):
        super().__init__(**kwargs)
        self.branch_factor = check_positive_int("branch_factor", branch_factor)
        self.impl = check_impl(impl)
        self.channels = None if channels is None else check_positive_int("channels", channels)
        if self.channels is not None and self.channels % self.branch_factor:
            raise ValueError("channels=%d is not divisible by branch_factor=%d"
                             % (self.channels, self.branch_factor))

    def hybrid_forward(self, F, x):
        return reorder(F, x, self.branch_factor, self.impl, self.channels)

    def __repr__(self):
        return "%s(branch_factor=%d, impl=%s)" % (self.__class__.__name__, self.branch_factor,
                                                  self.impl)


class InterleavedConv2D(nn.Conv2D):
    """The secondary 1 x 1 group convolution of an IGC block, optionally with the block's two
    permutations around it folded in.

    ``nn.Conv2D(channels, 1, groups=channels // primary)`` (parameter ``weight`` of shape
    ``(channels, primary, 1, 1)``, as the plain layer). With ``fused=True`` it computes
    ``Reorder(channels // primary) o conv o Reorder(primary)`` as the native ``IGCSecondary``
    operator: group ``j`` reads the ``j``-th channel of every primary partition in place (one
    strided matrix product per image and group), so neither permutation is copied and the
    tensor crosses between MXNet's oneDNN layout and the plain one once instead of three
    times. ``fused=False`` is the plain convolution (the permutations are then the caller's).
    float16 runs unfused (the operator computes float32/float64; see :meth:`cast`).
    """

    def __init__(self, channels, primary, fused, **kwargs):
        self.primary = check_positive_int("primary", primary)
        channels = check_positive_int("channels", channels)
        if channels % self.primary:
            raise ValueError("channels=%d is not divisible by primary=%d"
                             % (channels, self.primary))
        super().__init__(channels, 1, 1, 0, groups=channels // self.primary, use_bias=False,
                         in_channels=channels, **kwargs)
        self.fused = bool(fused)

    def cast(self, dtype):
        if np.dtype(dtype) == np.float16:
            self.fused = False
        super().cast(dtype)

    def hybrid_forward(self, F, x, weight):
        if not self.fused:
            return super().hybrid_forward(F, x, weight)
        if _is_graph_input(F, x):  # see reorder(): extension ops overwrite gradients
            x = F.identity(x)
        return F.IGCSecondary(x, F.identity(weight), primary=self.primary, name="fwd")


def _igc_secondary_macs(attrs, in_shapes, out_shapes):
    """IGCSecondary: one multiply-add per output element and weight of its row (``primary``),
    as the grouped 1 x 1 convolution it computes (the permutations cost none)."""
    out = 1
    for d in out_shapes[0]:
        out *= d
    return out * in_shapes[1][1]


register_macs("IGCSecondary", _igc_secondary_macs)


class IGCConv(nn.HybridBlock):
    """One interleaved group convolution, as the authors' op chain (spec igc.md 1.3)::

        conv1: k x k conv, in -> out, `primary` groups, stride, pad k//2   (primary)
        reorder1: Reorder(primary)
        conv2: 1 x 1 conv, out -> out, `secondary` groups                 (secondary)
        reorder2: Reorder(reorder2)            (default: out // primary, the inverse)
        bn, then relu if `act`

    No bias anywhere and nothing between the two group convolutions. Children are named
    like the authors' ops (``conv1``, ``reorder1``, ``conv2``, ``reorder2``, ``bn``, ``relu``).

    Parameters
    ----------
    in_channels, channels : int
        Input / output channels; both divisible by ``primary``.
    primary : int
        Primary groups ``L`` (also the branch factor of the first Reorder).
    secondary : int
        Groups of the secondary 1 x 1 convolution.
    reorder2 : int, optional
        Branch factor of the second Reorder. Default ``channels // primary`` (the inverse of
        the first). The authors' CIFAR ResNet uses ``secondary`` here, which differs in the
        first block of a widening stage (spec igc.md 1.5).
    kernel, stride : int
        Spatial kernel and stride of the primary convolution.
    act : bool
        ReLU after BatchNorm.
    impl : {"native", "stock"}
        Reorder implementation.
    norm_kwargs : dict, optional
        BatchNorm arguments.
    merge_groups : bool or None
        Compute the primary convolution with merged groups
        (:class:`~gluon_models.nn.basic.MergedGroupConv2D`: the same parameters and results,
        oneDNN's direct kernels instead of im2col + GEMM when its groups are narrower than 8
        channels, e.g. IGC-L100M2's 2-channel groups). None (default): with
        ``impl="native"`` (the speed path), not with the stock twin, which keeps the plain
        grouped convolution of the authors' graphs for export.
    fuse_secondary : bool or None
        Compute ``reorder1``, ``conv2`` and ``reorder2`` as one native operator
        (:class:`InterleavedConv2D` with ``fused=True``; same parameters and results) where
        ``reorder2`` is the inverse of ``reorder1`` and each secondary group takes one channel
        of every primary partition (``secondary == channels // primary``: every IGC network of
        the authors except the first block of the CIFAR ResNets' widening stages), and the
        BatchNorm (+ ReLU) of its plain output as the native ``BNReLU``
        (:class:`~gluon_models.nn.basic.BatchNormReLU`; with :meth:`take_residual` also the
        residual addition and ReLU closing a basic block). A fused layer of stride 1 whose
        primary groups are at most :data:`DIRECT_GROUP_WIDTH` channels wide (input and
        output) also computes ``conv1`` natively, in the plain layout
        (:class:`~gluon_models.nn.basic.DirectGroupConv2D`, the ``GroupConv`` operator;
        ``merge_groups`` then does not apply): the layer never enters oneDNN's blocked
        layout, whose conversions cost IGC-L100M2 more than its convolutions. None (default): with ``impl="native"``.
        ``reorder1``/``reorder2`` stay children (without parameters) either way; parameter
        names are the same in every form.
    """

    def __init__(self, in_channels, channels, primary, secondary, reorder2=None, kernel=3,
                 stride=1, act=True, impl="native", norm_kwargs=None, merge_groups=None,
                 fuse_secondary=None, **kwargs):
        super().__init__(**kwargs)
        norm_kwargs = {} if norm_kwargs is None else norm_kwargs
        # checked before the divisibility tests below divide by them
        in_channels, channels, primary, secondary, kernel, stride = (
            check_positive_int(n, v) for n, v in (
                ("in_channels", in_channels), ("channels", channels), ("primary", primary),
                ("secondary", secondary), ("kernel", kernel), ("stride", stride)))
        for name, c in (("in_channels", in_channels), ("channels", channels)):
            if c % primary:
                raise ValueError("%s=%d is not divisible by primary=%d" % (name, c, primary))
        if channels % secondary:
            raise ValueError("channels=%d is not divisible by secondary=%d" % (channels, secondary))
        reorder2 = channels // primary if reorder2 is None else \
            check_positive_int("reorder2", reorder2)
        if channels % reorder2:
            raise ValueError("channels=%d is not divisible by reorder2=%d" % (channels, reorder2))
        self.primary, self.secondary, self.reorder2_factor = primary, secondary, reorder2
        if merge_groups is None:
            merge_groups = impl == "native"
        if fuse_secondary is None:
            fuse_secondary = impl == "native"
        fusable = secondary == channels // primary and reorder2 == channels // primary
        direct = fusable and fuse_secondary and \
            max(in_channels, channels) // primary <= DIRECT_GROUP_WIDTH and stride == 1
        with self.name_scope():
            if direct:
                self.conv1 = DirectGroupConv2D(channels, kernel, stride, kernel // 2,
                                               groups=primary, in_channels=in_channels,
                                               weight_initializer=he_normal(), prefix="conv1_")
            else:
                self.conv1 = MergedGroupConv2D(channels, kernel, stride, kernel // 2,
                                               groups=primary, use_bias=False,
                                               in_channels=in_channels,
                                               weight_initializer=he_normal(), prefix="conv1_",
                                               merge=None if merge_groups else 1)
            self.reorder1 = Reorder(primary, impl, channels, prefix="reorder1_")
            if fusable:
                self.conv2 = InterleavedConv2D(channels, primary, fuse_secondary,
                                               weight_initializer=he_normal(), prefix="conv2_")
            else:
                self.conv2 = nn.Conv2D(channels, 1, 1, 0, groups=secondary, use_bias=False,
                                       in_channels=channels, weight_initializer=he_normal(),
                                       prefix="conv2_")
            self.reorder2 = Reorder(reorder2, impl, channels, prefix="reorder2_")
            if fusable and fuse_secondary:
                # BatchNorm (+ ReLU) of the operator's plain output as one native operator
                self.bn = BatchNormReLU(relu=act, in_channels=channels, prefix="bn_",
                                        **norm_kwargs)
            else:
                self.bn = nn.BatchNorm(in_channels=channels, prefix="bn_", **norm_kwargs)
            self.relu = nn.Activation("relu", prefix="relu_") if act else None

    def take_residual(self):
        """Make this layer the tail of a basic residual block where its BatchNorm is the
        native one: called as ``layer(x, shortcut)`` it then returns ``relu(bn(...) +
        shortcut)`` in one operator pass (the ReLU whatever ``act``). Returns whether it did;
        a layer with MXNet's BatchNorm is left as it is (the caller adds and activates)."""
        if not (isinstance(self.bn, BatchNormReLU) and self.bn.native):
            return False
        self.bn.relu = True
        return True

    def hybrid_forward(self, F, x, residual=None):
        """``residual``: the shortcut, for a layer that took it (:meth:`take_residual`)."""
        if getattr(self.conv2, "fused", False):
            # The permutations folded in. The identity transpose hands the operator its
            # input in plain NCHW through one oneDNN reorder: an extension operator fed the
            # grouped conv's blocked output directly converts it on a slow path (measured in
            # igc_nets' breakdown: 16x512x28x28 from aBcd16b in 82-85 ms against 4-5 ms;
            # IGC-L16M16's reorders 578 -> 174 ms per step); a same-shape reshape does the
            # same with one more copy (MXNet's oneDNN reshape reorders, then copies). No layout
            # barrier in front of conv1 here: the BatchNorm it guards against sits behind the
            # operator's plain output (measured without it, interleaved: IGC-L16M16 step
            # -15 %, IGC-L100M2 inference -18 %, the CIFAR IGC ResNet step -10 %).
            # The identity transpose in front of a oneDNN conv1 is for the backward pass: it
            # turns conv1's blocked data gradient into plain NCHW in planned memory. Without
            # it MXNet converts that gradient on paths that allocate afresh: where it meets
            # the shortcut's plain gradient (a mixed-layout sum falls back to plain) and at the
            # native BNReLU behind the previous layer (IGC-L16M16: 62.7k -> 12.5k minor page
            # faults per step; step time unchanged, inference +2 %, within noise).
            if getattr(self.conv1, "direct", False):
                y = self.conv1(x)
            else:
                same = (0, 1, 2, 3)
                y = F.transpose(self.conv1(F.transpose(x, axes=same)), axes=same)
            y = self.conv2(y)
        else:
            # the authors' op chain: the input usually comes from BN + ReLU, keep the grouped
            # conv1 away from it
            x = self.conv1(layout_barrier(F, x))
            y = self.reorder2(self.conv2(self.reorder1(x)))
        if isinstance(self.bn, BatchNormReLU):  # the ReLU (if any) and residual inside
            return self.bn(y) if residual is None else self.bn(y, residual)
        if residual is not None:
            return relu(F, self.bn(y) + residual)
        return self._finish(F, y)

    def _finish(self, F, x):
        x = self.bn(x)
        return self.relu(x) if self.relu is not None else x
