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
"""
from mxnet.gluon import nn

from ..nn.basic import ConvBNAct, check_impl, fc_uniform
from ..nn.igc import IGCConv
from .registry import register_model, register_seed_network

__all__ = ["IGCNet", "ResidualBlock", "cifar_resnet_blocks"]

_EPS = 2e-5  # BatchNorm epsilon in every seed network


class ResidualBlock(nn.HybridBlock):
    """Basic residual block: ``relu(shortcut(x) + conv2(conv1(x)))``.

    ``conv1`` and ``conv2`` are the two 3 x 3 layers (conv-bn-relu and conv-bn), made by the
    layer factories ``layer1`` / ``layer2`` (regular or IGC, signature
    ``(in_c, out_c, stride, act, norm_kwargs, prefix, impl)``). The shortcut is the identity,
    or ``proj`` (1 x 1 conv with ``proj_groups`` groups + BN) when the width changes.
    """

    def __init__(self, in_channels, channels, stride, layer1, layer2, proj_groups=1,
                 norm_kwargs=None, impl="native", **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.conv1 = layer1(in_channels, channels, stride, True, norm_kwargs, "conv1_", impl)
            self.conv2 = layer2(channels, channels, 1, False, norm_kwargs, "conv2_", impl)
            self.proj = None
            if in_channels != channels:
                self.proj = ConvBNAct(in_channels, channels, 1, stride, 0, groups=proj_groups,
                                      act=False, norm_kwargs=norm_kwargs, prefix="proj_")
            self.relu = nn.Activation("relu", prefix="relu_")

    def hybrid_forward(self, F, x):
        shortcut = self.proj(x) if self.proj is not None else x
        return self.relu(shortcut + self.conv2(self.conv1(x)))


class IGCNet(nn.HybridBlock):
    """A network of the IGC seed: ``features`` (stem, stages, pooling, flatten) -> ``output``.

    Built by the registered builders below; ``features`` is a HybridSequential of the stem
    blocks, the stage blocks, the pooling layer and Flatten, ``output`` the fully connected
    classifier (named ``fc_score`` as in the authors' symbols). ``make_layers()`` returns
    ``(layers, feature_channels)``; it is called inside the network's name scope so every
    parameter name starts with the network's prefix.
    """

    def __init__(self, make_layers, classes, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            layers, feat_channels = make_layers()
            self.features = nn.HybridSequential(prefix="")
            for layer in layers:
                self.features.add(layer)
            self.features.add(nn.Flatten(prefix="flatten_"))
            self.output = nn.Dense(classes, in_units=feat_channels,
                                   weight_initializer=fc_uniform(), prefix="fc_score_")

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


# ---- layer factories ------------------------------------------------------------------------

def _regular(in_c, out_c, stride, act, norm, prefix, impl):
    return ConvBNAct(in_c, out_c, 3, stride, 1, act=act, norm_kwargs=norm, prefix=prefix)


def _igc(primary, secondary, reorder2=None):
    """Factory of IGC layers with fixed partition counts."""
    def make(in_c, out_c, stride, act, norm, prefix, impl):
        return IGCConv(in_c, out_c, primary, secondary, reorder2, 3, stride, act, impl, norm,
                       prefix=prefix)
    return make


def _norm(momentum):
    return {"epsilon": _EPS, "momentum": momentum}


def _check_positive(**values):
    for k, v in values.items():
        if int(v) != v or v < 1:
            raise ValueError("%s must be a positive integer, got %r" % (k, v))


# ---- CIFAR / SVHN -------------------------------------------------------------------------

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


def _cifar_plain(depth, width, classes, layer, impl, prefix):
    n = _plain_depth(depth)
    return IGCNet(lambda: _cifar_plain_layers(n, width, layer, impl), classes, prefix=prefix)


def _cifar_plain_layers(n, width, layer, impl):
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
    # 8 x 8 average pooling with stride 1 (not global): global only for 32 x 32 inputs.
    layers.append(nn.AvgPool2D(8, 1, prefix="pool_"))
    return layers, in_c


def _cifar_resnet(depth, width, classes, layers_of, proj_groups, impl, prefix):
    blocks = cifar_resnet_blocks(depth)
    return IGCNet(lambda: _cifar_resnet_layers(blocks, width, layers_of, proj_groups, impl),
                  classes, prefix=prefix)


def _cifar_resnet_layers(blocks, width, layers_of, proj_groups, impl):
    norm = _norm(0.9)
    layers = [ConvBNAct(3, width, 3, 1, 1, norm_kwargs=norm, prefix="g0_")]
    in_c = width
    for s, n in enumerate(blocks):
        out_c = width << s
        for i in range(n):
            stride = 2 if s > 0 and i == 0 else 1
            make1, make2 = layers_of(in_c, out_c)
            layers.append(ResidualBlock(in_c, out_c, stride, make1, make2, proj_groups, norm,
                                        impl, prefix="g%d_b%d_" % (s + 1, i + 1)))
            in_c = out_c
    layers.append(nn.GlobalAvgPool2D(prefix="pool_"))
    return layers, in_c


@register_model(family="igc", input_size=32)
def plain_cifar(depth=38, width=48, classes=10, impl="native"):
    """Plain CIFAR network of regular 3 x 3 conv-bn-relu layers (authors' ``plain.py``).

    ``depth = 3n + 2`` (stem + 3 stages of n layers + fc); stage widths ``width``, 2x, 4x.
    """
    check_impl(impl)
    _check_positive(depth=depth, width=width, classes=classes)
    return _cifar_plain(depth, width, classes, lambda s: _regular, impl, "plain_cifar_")


@register_model(family="igc", input_size=32)
def igc_plain_cifar(depth=38, primary=24, secondary=2, classes=10, impl="native"):
    """Plain CIFAR IGC network (authors' ``plain_igc.py``): every layer an IGC block with
    ``primary`` groups in all stages and ``secondary * 2**s`` secondary groups.

    The README's IGC-L24M2, depth 38, has 317,242 parameters on CIFAR-10.
    """
    check_impl(impl)
    _check_positive(depth=depth, primary=primary, secondary=secondary, classes=classes)
    return _cifar_plain(depth, primary * secondary, classes,
                        lambda s: _igc(primary, secondary << s), impl, "igc_plain_cifar_")


@register_model(family="igc", input_size=32)
def resnet_cifar(depth=20, width=48, classes=10, impl="native"):
    """CIFAR ResNet of basic blocks (authors' ``resnet.py``); 1 x 1 stride-2 projections
    where the width doubles, global average pooling."""
    check_impl(impl)
    _check_positive(depth=depth, width=width, classes=classes)
    return _cifar_resnet(depth, width, classes, lambda i, o: (_regular, _regular), 1, impl,
                         "resnet_cifar_")


@register_model(family="igc", input_size=32)
def igc_resnet_cifar(depth=20, primary=24, secondary=2, classes=10, impl="native"):
    """CIFAR ResNet of IGC blocks (authors' ``resnet_igc.py``), width ``primary*secondary``.

    First IGC of a block: ``primary`` / ``kin // primary`` groups, second IGC: ``primary`` /
    ``kout // primary``; each second Reorder uses the secondary group count, which is not
    the inverse of the first in the first block of stages 2 and 3 (as the authors wrote it,
    spec igc.md 1.5). Projections are 1 x 1 stride-2 convolutions with ``primary`` groups.
    """
    check_impl(impl)
    _check_positive(depth=depth, primary=primary, secondary=secondary, classes=classes)

    def layers_of(in_c, out_c):
        return (_igc(primary, in_c // primary, in_c // primary),
                _igc(primary, out_c // primary, out_c // primary))
    return _cifar_resnet(depth, primary * secondary, classes, layers_of, primary, impl,
                         "igc_resnet_cifar_")


# ---- ImageNet ResNet-18 family ------------------------------------------------------------

def _imagenet_resnet18(stem, widths, primary, secondary, classes, impl, prefix):
    return IGCNet(lambda: _imagenet_resnet18_layers(stem, widths, primary, secondary, impl),
                  classes, prefix=prefix)


def _imagenet_resnet18_layers(stem, widths, primary, secondary, impl):
    """Four stages of two basic blocks on a 7 x 7/2 stem and 3 x 3/2 max pooling.

    ``primary``/``secondary``: per-stage group counts of the IGC layers, or None for regular
    3 x 3 convolutions. A block whose width changes gets a 1 x 1 projection with the stage's
    primary groups, stride 2 from stage 2 on (stride 1 in stage 1, as in IGC-L100M2).
    """
    norm = _norm(0.9)
    layers = [ConvBNAct(3, stem, 7, 2, 3, norm_kwargs=norm, prefix="g0_"),
              nn.MaxPool2D(3, 2, 1, prefix="g0_pool_")]
    in_c = stem
    for s, out_c in enumerate(widths):
        make = _regular if primary is None else _igc(primary[s], secondary[s])
        groups = 1 if primary is None else primary[s]
        for i in range(2):
            stride = 2 if s > 0 and i == 0 else 1
            layers.append(ResidualBlock(in_c, out_c, stride, make, make, groups, norm, impl,
                                        prefix="g%d_b%d_" % (s + 1, i + 1)))
            in_c = out_c
    layers.append(nn.AvgPool2D(7, 1, prefix="global_pool_"))  # 7 x 7, stride 1, as published
    return layers, in_c


def _resnet18(width, classes, impl, prefix):
    check_impl(impl)
    return _imagenet_resnet18(width, [width << s for s in range(4)], None, None, classes,
                              impl, prefix)


def _igc_resnet18(primary, secondary, double, classes, impl, prefix):
    """IGC ResNet-18 by the published rules (spec igc.md 2.3).

    ``double="m"``: stem = widths[0] = L*M, widths L*M*2**s, L primary groups everywhere,
    M*2**s secondary groups (IGC-L4M32, IGC-L16M16). ``double="l"``: stem L*M/2, widths
    L*M*2**s, L*2**s primary groups, M secondary groups (IGC-L100M2).
    """
    check_impl(impl)
    widths = [primary * secondary << s for s in range(4)]
    if double == "m":
        stem, prim, sec = widths[0], [primary] * 4, [secondary << s for s in range(4)]
    else:
        stem, prim, sec = widths[0] // 2, [primary << s for s in range(4)], [secondary] * 4
    return _imagenet_resnet18(stem, widths, prim, sec, classes, impl, prefix)


@register_model(family="igc")
def resnet18_w64(classes=1000, impl="native"):
    """ResNet-18, first-stage width 64 (authors' ``ResNet18-w64`` symbol)."""
    return _resnet18(64, classes, impl, "resnet18_w64_")


@register_model(family="igc")
def resnet18_w69(classes=1000, impl="native"):
    """ResNet-18, first-stage width 69 (authors' ``ResNet18-w69`` symbol)."""
    return _resnet18(69, classes, impl, "resnet18_w69_")


@register_model(family="igc")
def igc_resnet18_l4m32(classes=1000, impl="native"):
    """IGC-L4M32+Ident.: L = 4 primary partitions, M = 32 doubling per stage."""
    return _igc_resnet18(4, 32, "m", classes, impl, "igc_resnet18_l4m32_")


@register_model(family="igc")
def igc_resnet18_l16m16(classes=1000, impl="native"):
    """IGC-L16M16+Ident.: L = 16 primary partitions, M = 16 doubling per stage."""
    return _igc_resnet18(16, 16, "m", classes, impl, "igc_resnet18_l16m16_")


@register_model(family="igc")
def igc_resnet18_l100m2(classes=1000, impl="native"):
    """IGC-L100M2+Ident.: L = 100 primary partitions doubling per stage, M = 2."""
    return _igc_resnet18(100, 2, "l", classes, impl, "igc_resnet18_l100m2_")


# ---- the IGC seed's `train_model.py --network` values (spec igc.md 3.1) ---------------------

def _options(**values):
    return {k: v for k, v in values.items() if v is not None}


def _width(primary, secondary):
    """A regular baseline's width is requested as --primary-partition (secondary left at 1)."""
    return None if primary is None else primary * (secondary or 1)


def _regular_seed(depth=None, primary_partition=None, secondary_partition=None):
    return _options(depth=depth, width=_width(primary_partition, secondary_partition))


def _igc_seed(depth=None, primary_partition=None, secondary_partition=None):
    return _options(depth=depth, primary=primary_partition, secondary=secondary_partition)


register_seed_network("plain", "plain_cifar", _regular_seed)
register_seed_network("resnet", "resnet_cifar", _regular_seed)
register_seed_network("plain_igc", "igc_plain_cifar", _igc_seed)
register_seed_network("resnet_igc", "igc_resnet_cifar", _igc_seed)
