"""IGCNets: interleaved group convolution networks (Zhang, Qi, Xiao, Wang; ICCV 2017).

Ports of the authors' builders (spec igc.md section 2), layer for layer:

* CIFAR-10/100 and SVHN (32 x 32, three stages of widths W, 2W, 4W):
  ``plain_cifar`` / ``resnet_cifar`` (regular 3 x 3 convolutions of first-stage width W) and
  ``igc_plain_cifar`` / ``igc_resnet_cifar`` (every 3 x 3 layer an IGC block, W = L * M).
* ImageNet ResNet-18 family (224 x 224): ``resnet18_w64``, ``resnet18_w69`` and the
  published IGC models ``igc_resnet18_l4m32``, ``igc_resnet18_l16m16``,
  ``igc_resnet18_l100m2`` ("+Ident." in the paper's table).

Name tokens: ``d`` depth, ``w<C>`` first-stage width of a regular ResNet, ``l<L>m<M>`` the
numbers of primary (``L``) and secondary (``M``) partitions of the first stage.
Block names follow the authors' symbols: stem ``g0``, stage ``s`` block ``i`` is
``g<s>_b<i>`` with layers ``conv1``/``conv2`` (an IGC layer has children ``conv1``,
``reorder1``, ``conv2``, ``reorder2``, ``bn``, ``relu``) and projection ``proj``.

Every network is a :class:`~gluon_models.model_zoo.compose.Classifier`: ``features`` (stem and
stages), ``representation`` (the authors' average pooling: 8 x 8 stride 1 on the plain CIFAR
nets, global on the CIFAR ResNets, 7 x 7 stride 1 on the ImageNet nets) and ``output`` (the
classifier ``fc_score``). Any registered representation replaces the pooling
(``representation=...``).
"""
from mxnet.gluon import nn

from ..data.imagenet import NORMS, Norm
from ..data.presets import AugPreset
from ..nn.basic import ConvBNAct, check_impl, check_positive_int, fc_uniform
from ..nn.igc import IGCConv
from ..utils.argtypes import positive_int
from .compose import Classifier
from .registry import register_family, register_model, register_seed_network

__all__ = ["ResidualBlock", "cifar_resnet_blocks"]

_EPS = 2e-5  # BatchNorm epsilon in every seed network


class ResidualBlock(nn.HybridBlock):
    """Basic residual block: ``relu(shortcut(x) + conv2(conv1(x)))``.

    ``conv1`` and ``conv2`` are the two 3 x 3 layers (conv-bn-relu and conv-bn), made by the
    layer factories ``layer1`` / ``layer2`` (regular or IGC, signature
    ``(in_c, out_c, stride, act, norm_kwargs, prefix, impl)``). The shortcut is the identity,
    or ``proj`` (1 x 1 conv with ``proj_groups`` groups + BN) when the width changes. With
    ``native_bn`` a grouped projection's BN runs as the native operator (ConvBNAct) and a
    ``conv2`` that can (``take_residual``: an IGC layer with the native BatchNorm) computes the
    tail ``relu(bn + shortcut)`` itself; ``plain_input``: the block's input is plain NCHW (the
    output of such a block), else an identity shortcut is converted once for the operator
    (see IGCConv.hybrid_forward).
    """

    def __init__(self, in_channels, channels, stride, layer1, layer2, proj_groups=1,
                 norm_kwargs=None, impl="native", native_bn=False, plain_input=True, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.conv1 = layer1(in_channels, channels, stride, True, norm_kwargs, "conv1_", impl)
            self.conv2 = layer2(channels, channels, 1, False, norm_kwargs, "conv2_", impl)
            self.proj = None
            if in_channels != channels:
                self.proj = ConvBNAct(in_channels, channels, 1, stride, 0, groups=proj_groups,
                                      act=False, norm_kwargs=norm_kwargs, prefix="proj_",
                                      native_bn=native_bn and proj_groups > 1)
            self.relu = nn.Activation("relu", prefix="relu_")
        take = getattr(self.conv2, "take_residual", None)
        self.fused_tail = bool(native_bn and take is not None and take())
        self.plain_input = plain_input

    def hybrid_forward(self, F, x):
        shortcut = self.proj(x) if self.proj is not None else x
        if self.fused_tail:
            if self.proj is None and not self.plain_input:
                shortcut = F.transpose(shortcut, axes=(0, 1, 2, 3))  # to plain NCHW, once
            return self.conv2(self.conv1(x), shortcut)
        return self.relu(shortcut + self.conv2(self.conv1(x)))


# ---- layer factories ------------------------------------------------------------------------

def _regular(in_c, out_c, stride, act, norm, prefix, impl):
    return ConvBNAct(in_c, out_c, 3, stride, 1, act=act, norm_kwargs=norm, prefix=prefix)


def _igc(primary, secondary, reorder2=None, fast=None):
    """Factory of IGC layers with fixed partition counts; ``fast``: the speed options of
    IGCConv (``merge_groups``, ``fuse_secondary``)."""
    def make(in_c, out_c, stride, act, norm, prefix, impl):
        return IGCConv(in_c, out_c, primary, secondary, reorder2, 3, stride, act, impl, norm,
                       prefix=prefix, **(fast or {}))
    return make


def _native_bn(impl, fast):
    """Whether BatchNorms MXNet feeds plain NCHW (grouped projections, stems whose width
    oneDNN does not tile) run as the native operator: with the ``fuse_secondary`` speed path
    (None: with the native impl), which already normalises the IGC layers' outputs so."""
    fuse = (fast or {}).get("fuse_secondary")
    return impl == "native" if fuse is None else bool(fuse)


def _norm(momentum):
    return {"epsilon": _EPS, "momentum": momentum}


# ---- trunks: (layers, channels) of the features, built inside the network's name scope ----

def _plain_depth(depth):
    if (depth - 2) % 3 or depth < 5:
        raise ValueError("plain CIFAR networks need depth = 3n + 2 with n >= 1, got %r" % depth)
    return (depth - 2) // 3


def cifar_resnet_blocks(depth):
    """Blocks per stage of the authors' CIFAR ResNets (spec igc.md 2.1): the later stages
    take the extra blocks when (depth - 2) is not divisible by 6, e.g. 34 -> (5, 5, 6)."""
    if depth < 8 or depth % 2:
        raise ValueError("residual CIFAR networks need an even depth >= 8, got %r" % depth)
    used, blocks = 2, []
    for i in range(3):
        n = (depth - used) // (2 * (3 - i))
        blocks.append(n)
        used += 2 * n
    return tuple(blocks)


def _cifar_plain(impl, depth, width=None, primary=None, secondary=None, fast=None):
    """Authors' ``plain.py`` (regular layers of first-stage width ``width``) or
    ``plain_igc.py`` (IGC layers: ``primary`` groups in all stages, ``secondary * 2**s``
    secondary groups, width L*M)."""
    n = _plain_depth(depth)
    if primary is None:
        layer = lambda s: _regular  # noqa: E731
    else:
        width = primary * secondary
        layer = lambda s: _igc(primary, secondary << s, None, fast)  # noqa: E731
    norm = _norm(0.99)  # plain.py / plain_igc.py use BN momentum 0.99
    layers = [ConvBNAct(3, width, 3, 1, 1, norm_kwargs=norm, prefix="g0_")]
    in_c = width
    for s in range(3):
        out_c = width << s
        for i in range(n):
            stride = 2 if s > 0 and i == 0 else 1
            layers.append(layer(s)(in_c, out_c, stride, True, norm,
                                   "g%d_b%d_" % (s + 1, i + 1), impl))
            in_c = out_c
    return layers, in_c


def _cifar_resnet(impl, depth, width=None, primary=None, secondary=None, fast=None):
    """Authors' ``resnet.py`` (regular basic blocks, 1 x 1 stride-2 projections) or
    ``resnet_igc.py``: first IGC of a block ``primary`` / ``kin // primary`` groups, second
    ``primary`` / ``kout // primary``; each second Reorder uses the secondary group count,
    which is not the inverse of the first in the first block of stages 2 and 3 (as the authors
    wrote it, spec igc.md 1.5); projections 1 x 1 stride 2 with ``primary`` groups."""
    blocks = cifar_resnet_blocks(depth)
    if primary is None:
        layers_of, proj_groups = (lambda i, o: (_regular, _regular)), 1
    else:
        width, proj_groups = primary * secondary, primary

        def layers_of(in_c, out_c):
            return (_igc(primary, in_c // primary, in_c // primary, fast),
                    _igc(primary, out_c // primary, out_c // primary, fast))
    norm = _norm(0.9)
    layers = [ConvBNAct(3, width, 3, 1, 1, norm_kwargs=norm, prefix="g0_")]
    in_c = width
    for s, n in enumerate(blocks):
        out_c = width << s
        for i in range(n):
            stride = 2 if s > 0 and i == 0 else 1
            make1, make2 = layers_of(in_c, out_c)
            layers.append(ResidualBlock(in_c, out_c, stride, make1, make2, proj_groups, norm,
                                        impl, _native_bn(impl, fast), s + i > 0,
                                        prefix="g%d_b%d_" % (s + 1, i + 1)))
            in_c = out_c
    return layers, in_c


def _resnet18(impl, width=None, primary=None, secondary=None, double=None, fast=None):
    """ResNet-18 of first-stage width ``width``, or IGC ResNet-18 by the published rules (spec
    igc.md 2.3): ``double="m"``: stem = widths[0] = L*M, widths L*M*2**s, L primary groups
    everywhere, M*2**s secondary groups (IGC-L4M32, IGC-L16M16); ``double="l"``: stem L*M/2,
    widths L*M*2**s, L*2**s primary groups, M secondary groups (IGC-L100M2).

    Four stages of two basic blocks on a 7 x 7/2 stem and 3 x 3/2 max pooling; a block whose
    width changes gets a 1 x 1 projection with the stage's primary groups, stride 2 from
    stage 2 on (stride 1 in stage 1, as in IGC-L100M2).
    """
    if primary is None:
        widths, stem, prim, sec = [width << s for s in range(4)], width, None, None
    else:
        widths = [primary * secondary << s for s in range(4)]
        if double == "m":
            stem, prim, sec = widths[0], [primary] * 4, [secondary << s for s in range(4)]
        else:
            stem, prim, sec = widths[0] // 2, [primary << s for s in range(4)], [secondary] * 4
    norm = _norm(0.9)
    native_bn = prim is not None and _native_bn(impl, fast)
    layers = [ConvBNAct(3, stem, 7, 2, 3, norm_kwargs=norm, prefix="g0_",
                        native_bn=native_bn and stem % 8 != 0),
              nn.MaxPool2D(3, 2, 1, prefix="g0_pool_")]
    in_c = stem
    for s, out_c in enumerate(widths):
        make = _regular if prim is None else _igc(prim[s], sec[s], None, fast)
        groups = 1 if prim is None else prim[s]
        for i in range(2):
            stride = 2 if s > 0 and i == 0 else 1
            layers.append(ResidualBlock(in_c, out_c, stride, make, make, groups, norm, impl,
                                        native_bn, s + i > 0,
                                        prefix="g%d_b%d_" % (s + 1, i + 1)))
            in_c = out_c
    return layers, in_c


# ---- specification: name -> (trunk, fixed arguments, authors' pooling, options) ------------------

# The authors' pooling is the default representation's window: 8 x 8 stride 1 on the plain
# CIFAR nets (global only for 32 x 32 inputs), global on the CIFAR ResNets, 7 x 7 stride 1 on
# the ImageNet nets, as published.
_PLAIN_POOL = dict(pool_size=8, strides=1, pool_prefix="pool_")
_GLOBAL_POOL = dict(pool_size=None, pool_prefix="pool_")
_IMAGENET_POOL = dict(pool_size=7, strides=1, pool_prefix="global_pool_")
_CIFAR = dict(depth=38, primary=24, secondary=2, classes=10)

_SPECS = {
    "plain_cifar": (_cifar_plain, {}, _PLAIN_POOL, dict(depth=38, width=48, classes=10)),
    "igc_plain_cifar": (_cifar_plain, {}, _PLAIN_POOL, _CIFAR),
    "resnet_cifar": (_cifar_resnet, {}, _GLOBAL_POOL, dict(depth=20, width=48, classes=10)),
    "igc_resnet_cifar": (_cifar_resnet, {}, _GLOBAL_POOL, dict(_CIFAR, depth=20)),
    "resnet18_w64": (_resnet18, dict(width=64), _IMAGENET_POOL, dict(classes=1000)),
    "resnet18_w69": (_resnet18, dict(width=69), _IMAGENET_POOL, dict(classes=1000)),
    "igc_resnet18_l4m32": (_resnet18, dict(primary=4, secondary=32, double="m"),
                           _IMAGENET_POOL, dict(classes=1000)),
    "igc_resnet18_l16m16": (_resnet18, dict(primary=16, secondary=16, double="m"),
                            _IMAGENET_POOL, dict(classes=1000)),
    "igc_resnet18_l100m2": (_resnet18, dict(primary=100, secondary=2, double="l"),
                            _IMAGENET_POOL, dict(classes=1000)),
}

# Options every network takes besides its row: the operator implementation, the
# representation (default: the authors' pooling) with its options, frozen feature children.
# ``merge_groups``, ``fuse_secondary``: the CPU speed paths of the IGC layers (nn.IGCConv; None:
# with the native impl).
_COMMON = dict(impl="native", representation="gavp", representation_options=None, freeze=0,
               merge_groups=None, fuse_secondary=None)


def _options(variant):
    return dict(_COMMON, **_SPECS[variant][3])


def _create(variant, **kwargs):
    """Build ``variant`` with its spec-table options overridden by ``kwargs``."""
    trunk, fixed, pool, _ = _SPECS[variant]
    cfg = dict(_options(variant), **kwargs)
    impl = check_impl(cfg.pop("impl"))
    classes, freeze = cfg.pop("classes"), cfg.pop("freeze")
    fast = {k: cfg.pop(k) for k in ("merge_groups", "fuse_secondary")}
    for k, v in fast.items():
        if v not in (None, True, False):
            raise ValueError("%s must be None, True or False, got %r" % (k, v))
    representation, rep_options = cfg.pop("representation"), cfg.pop("representation_options")
    classes = check_positive_int("classes", classes)
    # depth, width, primary, secondary: None means the trunk's default
    cfg = {k: None if v is None else check_positive_int(k, v) for k, v in cfg.items()}
    if representation == "gavp":
        rep_options = dict(pool, prefix="", **(rep_options or {}))

    def features():
        layers, channels = trunk(impl, **fixed, **cfg, fast=fast)
        seq = nn.HybridSequential(prefix="")
        seq.add(*layers)
        return seq, channels

    def output(in_units, n):
        return nn.Dense(n, in_units=in_units, weight_initializer=fc_uniform(),
                        prefix="fc_score_")
    return Classifier(features, classes, representation, rep_options, output, freeze, impl,
                      prefix=variant + "_")


# ---- variants -------------------------------------------------------------------------------------

@register_model("igc", input_size=32, options=_options("plain_cifar"))
def plain_cifar(**kwargs):
    """Plain CIFAR network of regular 3 x 3 conv-bn-relu layers (``plain.py``), depth 3n + 2."""
    return _create("plain_cifar", **kwargs)


@register_model("igc", input_size=32, options=_options("igc_plain_cifar"))
def igc_plain_cifar(**kwargs):
    """Plain IGC network (``plain_igc.py``); IGC-L24M2 depth 38: 317,242 params on CIFAR-10."""
    return _create("igc_plain_cifar", **kwargs)


@register_model("igc", input_size=32, options=_options("resnet_cifar"))
def resnet_cifar(**kwargs):
    """CIFAR ResNet of basic blocks (``resnet.py``)."""
    return _create("resnet_cifar", **kwargs)


@register_model("igc", input_size=32, options=_options("igc_resnet_cifar"))
def igc_resnet_cifar(**kwargs):
    """CIFAR ResNet of IGC blocks (``resnet_igc.py``), width ``primary * secondary``."""
    return _create("igc_resnet_cifar", **kwargs)


@register_model("igc", options=_options("resnet18_w64"))
def resnet18_w64(**kwargs):
    """ResNet-18, first-stage width 64 (authors' ``ResNet18-w64`` symbol)."""
    return _create("resnet18_w64", **kwargs)


@register_model("igc", options=_options("resnet18_w69"))
def resnet18_w69(**kwargs):
    """ResNet-18, first-stage width 69 (authors' ``ResNet18-w69`` symbol)."""
    return _create("resnet18_w69", **kwargs)


@register_model("igc", options=_options("igc_resnet18_l4m32"))
def igc_resnet18_l4m32(**kwargs):
    """IGC-L4M32+Ident.: L = 4 primary partitions, M = 32 doubling per stage."""
    return _create("igc_resnet18_l4m32", **kwargs)


@register_model("igc", options=_options("igc_resnet18_l16m16"))
def igc_resnet18_l16m16(**kwargs):
    """IGC-L16M16+Ident.: L = 16 primary partitions, M = 16 doubling per stage."""
    return _create("igc_resnet18_l16m16", **kwargs)


@register_model("igc", options=_options("igc_resnet18_l100m2"))
def igc_resnet18_l100m2(**kwargs):
    """IGC-L100M2+Ident.: L = 100 primary partitions doubling per stage, M = 2."""
    return _create("igc_resnet18_l100m2", **kwargs)


# ---- the IGC seed's `train_model.py --network` values and flags (spec igc.md 3.1) ---------------

def _drop_none(**values):
    return {k: v for k, v in values.items() if v is not None}


def _width(primary, secondary):
    """A regular baseline's width is requested as --primary-partition (secondary left at 1)."""
    return None if primary is None else primary * (secondary or 1)


def _regular_seed(depth=None, primary_partition=None, secondary_partition=None):
    return _drop_none(depth=depth, width=_width(primary_partition, secondary_partition))


def _igc_seed(depth=None, primary_partition=None, secondary_partition=None):
    return _drop_none(depth=depth, primary=primary_partition, secondary=secondary_partition)


register_seed_network("plain", "plain_cifar", _regular_seed)
register_seed_network("resnet", "resnet_cifar", _regular_seed)
register_seed_network("plain_igc", "igc_plain_cifar", _igc_seed)
register_seed_network("resnet_igc", "igc_resnet_cifar", _igc_seed)

register_family(
    "igc",
    # The IGC seed's CIFAR augmentation (aug_type 1: pad 4, crop, mirror; its fork pads with
    # the channel means, i.e. 0 after normalisation) and its own ImageNet statistics (fill:
    # the mean of its per-channel fill 123, 113, 99); SVHN keeps the dataset's "none" (its
    # aug_type 0). Spec igc.md 3.1, 3.2.
    aug_presets={"igc": AugPreset(4, "zero", True, None, None)},
    imagenet_norms={"igc": Norm((123.370, 112.757, 99.406), (68.998, 66.093, 68.292), 112),
                    "fb": NORMS["imagenet"]},  # its --fb-mean: the usual statistics
    cifar_aug={"cifar10": "igc", "cifar100": "igc"}, imagenet_norm="igc",
    model_flags={
        "depth": (dict(type=positive_int, help="network depth"), "depth"),
        "primary_partition": (dict(type=positive_int, help="IGC primary partitions L, or a regular "
                                                  "network's width"), "primary"),
        "secondary_partition": (dict(type=positive_int, help="IGC secondary partitions M"),
                                "secondary"),
    })
