"""IBN-Net (Pan, Luo, Shi, Tang, "Two at Once: Enhancing Learning and Generalization Capacities
via IBN-Net", ECCV 2018, arXiv 1807.09441): instance and batch normalisation in one layer
(:class:`~gluon_models.nn.IBN`).

Two sets of networks:

* **The authors' PyTorch definitions** (github.com/XingangPan/IBN-Net, package ``ibnnet``; the
  ones with published weights and their siblings), family ``ibn``: post-activation ResNets
  ``resnet{18,34,50,101,152}_ibn_a`` / ``_ibn_b``, ``resnext{50,101,152}_ibn_a`` (32 x 4d),
  ``se_resnet{50,101,152}_ibn_a`` and ``densenet{121,161,169,201}_ibn_a``. IBN-a: the first
  normalisation of every block of stages 1-3 is an IBN (IN on half of the channels); IBN-b: IN
  (affine) replaces the stem BN and follows the residual addition of the last block of stages 1
  and 2; DenseNet-IBN-a: BN on the first 60 % and IN on the rest of the first normalisation of
  every third dense layer of blocks 1-3. Epsilon 1e-5, input normalised with the ImageNet
  mean/std, a fixed 7 x 7 average pooling (224-pixel inputs). The authors' baselines gluoncv
  lacks in their form are the same builders with ``ibn=None``: ``se_resnet{50,101,152}`` (their
  SE-ResNet, global pooling) and ``resnext152_32x4d``. Parameter names follow the
  authors' module paths with ``_`` for ``.`` (``layer1_0_bn1_IN_gamma`` is ``layer1.0.bn1.IN
  .weight``; DenseNet: ``features_denseblock1_denselayer1_norm1_BN_gamma``). The authors'
  state dicts convert with ``tools/convert_weights.py`` (the family's weight maps
  :data:`PT_RESNET_IBN`, :data:`PT_DENSENET_IBN`), and ``tools/train_imagenet.py`` trains these
  networks with the authors' PyTorch recipe (:data:`PT_RECIPE`) by default, the port's with
  its recipe (:data:`PORT_RECIPE`; its ``--bn-mom`` is the builder option ``bn_mom``).
* **The MXNet port** (github.com/bruinxiong/IBN-Net.mxnet), family ``ibn_mx``, suffix ``_mx``:
  raw 0-255 pixels normalised by ``bn_data`` (BatchNorm with gamma fixed to 1), epsilon 2e-5.
  ``resnet<d>_ibn_a_mx`` (d = 18 ... 269) and ``resnet{110,164,1001}_ibn_a_mx_cifar`` are the
  pre-activation ResNet v2 of the FBN family's builder
  (:func:`~gluon_models.model_zoo.fbn.preact_resnet` with ``ibn``), IBN on the *input* of every
  bottleneck unit of stages 1-3 (basic units, depth < 50 or CIFAR depth < 164, have none, as in
  the port). ``resnext{50,101,152}_ibn_a_mx``, ``_ibn_a_w_d_mx`` and ``_ibn_b_mx`` are its
  post-activation ResNeXt (32 groups) files; see :class:`MXResNeXtUnit` for what they compute,
  including the port's unused first 1 x 1 convolution. Parameter names are the port's symbol
  names (``stage1_unit1_in1_gamma``, ``stage1_unit1_bn1_gamma``, ``fc1_weight``, ...) under the
  model prefix, with MXNet's ``moving_mean``/``moving_var`` as Gluon's ``running_mean`` /
  ``running_var``.

Every network is a :class:`~gluon_models.model_zoo.compose.Classifier` (features ->
representation -> output) with the common options ``classes``, ``impl`` (the IBN layers:
``native`` operator or the ``stock`` twin), ``representation``, ``representation_options`` and
``freeze``.
"""
import mxnet as mx
from mxnet.gluon import nn

from ..nn.basic import (check_impl, check_positive_int, fc_uniform, he_normal, layout_barrier,
                        relu)
from ..nn.ibn import IBN, InstanceNorm
from ..utils.argtypes import fraction, positive_int
from .compose import Classifier
from .fbn import RESNET_UNITS, _check_momentum, preact_resnet
from .registry import register_family, register_model, register_seed_network
from .weight_map import WeightMap

__all__ = ["PTBottleneck", "PTBasicBlock", "DenseLayer", "MXResNeXtUnit", "pt_resnet",
           "pt_densenet", "mx_resnext", "PT_RESNET_IBN", "PT_DENSENET_IBN", "PT_RECIPE",
           "PORT_RECIPE"]

_PT_EPS = 1e-5
_MX_EPS = 2e-5
_MOMENTUM = 0.9


def _fan_out():
    """The authors' PyTorch conv init: N(0, sqrt(2 / (k_h k_w out_channels)))."""
    return mx.init.Xavier(rnd_type="gaussian", factor_type="out", magnitude=2)


def _pt_conv(c_in, c_out, kernel, stride=1, padding=0, groups=1, prefix="", init=None):
    return nn.Conv2D(c_out, kernel, stride, padding, groups=groups, use_bias=False,
                     in_channels=c_in, weight_initializer=init or _fan_out(), prefix=prefix)


def _bn(c, prefix, eps, momentum=_MOMENTUM):
    return nn.BatchNorm(in_channels=c, epsilon=eps, momentum=momentum, prefix=prefix)


def _in(c, prefix, eps):
    return InstanceNorm(c, eps, prefix=prefix)


# ---- the authors' PyTorch ResNet / ResNeXt / SE-ResNet ------------------------------------------

def _downsample(in_channels, channels, stride, wanted):
    """The projection shortcut ``downsample_0`` (1 x 1 conv, stride) + ``downsample_1`` (BN),
    or (None, None)."""
    if not wanted:
        return None, None
    return (_pt_conv(in_channels, channels, 1, stride, prefix="downsample_0_"),
            _bn(channels, "downsample_1_", _PT_EPS))


class _SE(nn.HybridBlock):
    """Squeeze-and-excitation gate: global average -> fc (C -> int(C/16), no bias) -> ReLU -> fc
    (-> C, no bias) -> sigmoid, multiplied onto the input (``se.fc.0`` / ``se.fc.2``)."""

    def __init__(self, channels, reduction=16, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.fc0 = nn.Dense(int(channels / reduction), use_bias=False, in_units=channels,
                                weight_initializer=fc_uniform(), prefix="fc_0_")
            self.fc2 = nn.Dense(channels, use_bias=False, in_units=int(channels / reduction),
                                weight_initializer=fc_uniform(), prefix="fc_2_")

    def hybrid_forward(self, F, x):
        z = F.sigmoid(self.fc2(relu(F, self.fc0(F.contrib.AdaptiveAvgPooling2D(x, 1)))))
        return F.broadcast_mul(x, F.reshape(z, shape=(0, 0, 1, 1)))


class PTBottleneck(nn.HybridBlock):
    """The authors' ``Bottleneck_IBN`` (ResNet), ResNeXt block and SE-ResNet block in one:

    ``conv1`` 1 x 1 (-> width) - ``bn1`` (IBN if ``ibn == "a"``) - relu - ``conv2`` 3 x 3
    (``groups``, stride) - ``bn2`` - relu - ``conv3`` 1 x 1 (-> ``channels``) - ``bn3`` - [SE
    gate] - + shortcut (``downsample_0`` 1 x 1 conv + ``downsample_1`` BN when given) -
    [``IN`` if ``ibn == "b"``] - relu.
    """

    def __init__(self, in_channels, channels, width, stride, ibn, downsample, groups=1,
                 se=False, impl="native", **kwargs):
        super().__init__(**kwargs)
        eps = _PT_EPS
        with self.name_scope():
            self.conv1 = _pt_conv(in_channels, width, 1, prefix="conv1_")
            self.bn1 = IBN(width, 0.5, epsilon=eps, impl=impl, in_prefix="IN_", bn_prefix="BN_",
                           prefix="bn1_") if ibn == "a" else _bn(width, "bn1_", eps)
            self.conv2 = _pt_conv(width, width, 3, stride, 1, groups, prefix="conv2_")
            self.bn2 = _bn(width, "bn2_", eps)
            self.conv3 = _pt_conv(width, channels, 1, prefix="conv3_")
            self.bn3 = _bn(channels, "bn3_", eps)
            self.se = _SE(channels, prefix="se_") if se else None
            self.down_conv, self.down_bn = _downsample(in_channels, channels, stride, downsample)
            self.IN = _in(channels, "IN_", eps) if ibn == "b" else None
        self.grouped = groups > 1

    def hybrid_forward(self, F, x):
        y = relu(F, self.bn1(self.conv1(x)))
        if self.grouped:  # grouped conv next to BN: see layout_barrier
            y = layout_barrier(F, self.conv2(layout_barrier(F, y)))
        else:
            y = self.conv2(y)
        y = self.bn3(self.conv3(relu(F, self.bn2(y))))
        if self.se is not None:
            y = self.se(y)
        y = y + (self.down_bn(self.down_conv(x)) if self.down_conv is not None else x)
        if self.IN is not None:
            y = self.IN(y)
        return relu(F, y)


class PTBasicBlock(nn.HybridBlock):
    """The authors' ``BasicBlock_IBN``: ``conv1`` 3 x 3 (stride) - ``bn1`` (IBN if ``ibn ==
    "a"``) - relu - ``conv2`` 3 x 3 - ``bn2`` - + shortcut - [``IN`` if ``ibn == "b"``] - relu."""

    def __init__(self, in_channels, channels, stride, ibn, downsample, impl="native", **kwargs):
        super().__init__(**kwargs)
        eps = _PT_EPS
        with self.name_scope():
            self.conv1 = _pt_conv(in_channels, channels, 3, stride, 1, prefix="conv1_")
            self.bn1 = IBN(channels, 0.5, epsilon=eps, impl=impl, in_prefix="IN_",
                           bn_prefix="BN_", prefix="bn1_") if ibn == "a" else \
                _bn(channels, "bn1_", eps)
            self.conv2 = _pt_conv(channels, channels, 3, 1, 1, prefix="conv2_")
            self.bn2 = _bn(channels, "bn2_", eps)
            self.down_conv, self.down_bn = _downsample(in_channels, channels, stride, downsample)
            self.IN = _in(channels, "IN_", eps) if ibn == "b" else None

    def hybrid_forward(self, F, x):
        y = self.bn2(self.conv2(relu(F, self.bn1(self.conv1(x)))))
        y = y + (self.down_bn(self.down_conv(x)) if self.down_conv is not None else x)
        if self.IN is not None:
            y = self.IN(y)
        return relu(F, y)


def _pt_resnet_layers(units, block, ibn_cfg, groups=1, base_width=64, se=False, stem_in=False,
                      impl="native"):
    """Stem conv1 7 x 7/2 - bn1 (IN with IBN-b) - relu - maxpool 3 x 3/2, layer1..4 (planes 64,
    128, 256, 512; ``ibn_cfg`` per layer, IBN-b only on the last block of a layer)."""
    eps = _PT_EPS
    layers = [_pt_conv(3, 64, 7, 2, 3, prefix="conv1_"),
              _in(64, "bn1_", eps) if stem_in else _bn(64, "bn1_", eps),
              nn.Activation("relu", prefix="relu_"), nn.MaxPool2D(3, 2, 1, prefix="maxpool_")]
    expansion = 4 if block == "bottleneck" else 1
    in_c = 64
    for li, (n, planes, ibn) in enumerate(zip(units, (64, 128, 256, 512), ibn_cfg)):
        stage = nn.HybridSequential(prefix="layer%d_" % (li + 1))
        stride = 1 if li == 0 else 2
        with stage.name_scope():
            for b in range(n):
                s = stride if b == 0 else 1
                channels = planes * expansion
                down = b == 0 and (s != 1 or in_c != channels)
                # IBN-b: the authors give 'b' to the last block of the layer only
                block_ibn = ibn if ibn != "b" or b == n - 1 else None
                if block == "bottleneck":
                    width = (planes * base_width // 64) * groups
                    stage.add(PTBottleneck(in_c, channels, width, s, block_ibn, down, groups,
                                           se, impl, prefix="%d_" % b))
                else:
                    stage.add(PTBasicBlock(in_c, channels, s, block_ibn, down, impl,
                                           prefix="%d_" % b))
                in_c = channels
        layers.append(stage)
    return layers, in_c


# ---- the authors' PyTorch DenseNet-IBN-a --------------------------------------------------------

class DenseLayer(nn.HybridBlock):
    """``norm1`` (IBN: BN on the first 60 %, IN on the rest, or BN) - relu - ``conv1`` 1 x 1
    (-> ``bn_size * growth``) - ``norm2`` - relu - ``conv2`` 3 x 3 (-> ``growth``); the output
    is the input with the new maps concatenated."""

    def __init__(self, in_channels, growth, bn_size, ibn, impl="native", **kwargs):
        super().__init__(**kwargs)
        eps, init = _PT_EPS, fc_uniform()  # PyTorch's default conv init (no custom init)
        with self.name_scope():
            self.norm1 = IBN(in_channels, 0.4, in_first=False, epsilon=eps, impl=impl,
                             in_prefix="IN_", bn_prefix="BN_", prefix="norm1_") if ibn else \
                _bn(in_channels, "norm1_", eps)
            self.conv1 = _pt_conv(in_channels, bn_size * growth, 1, prefix="conv1_", init=init)
            self.norm2 = _bn(bn_size * growth, "norm2_", eps)
            self.conv2 = _pt_conv(bn_size * growth, growth, 3, 1, 1, prefix="conv2_", init=init)

    def hybrid_forward(self, F, x):
        y = self.conv1(relu(F, self.norm1(x)))
        return F.concat(x, self.conv2(relu(F, self.norm2(y))), dim=1)


def _pt_densenet_layers(init_features, growth, blocks, bn_size=4, impl="native"):
    """``features``: conv0 7 x 7/2 - norm0 - relu0 - pool0, dense blocks (IBN on every third
    layer of blocks 1-3) with transitions (BN - relu - 1 x 1 conv halving - avg pool 2/2),
    norm5, relu (the authors' forward applies it before the pooling)."""
    eps, init = _PT_EPS, fc_uniform()
    seq = nn.HybridSequential(prefix="features_")
    with seq.name_scope():
        seq.add(_pt_conv(3, init_features, 7, 2, 3, prefix="conv0_", init=init),
                _bn(init_features, "norm0_", eps), nn.Activation("relu", prefix="relu0_"),
                nn.MaxPool2D(3, 2, 1, prefix="pool0_"))
        c = init_features
        for bi, n in enumerate(blocks):
            block = nn.HybridSequential(prefix="denseblock%d_" % (bi + 1))
            with block.name_scope():
                for i in range(n):
                    block.add(DenseLayer(c, growth, bn_size, bi < 3 and i % 3 == 0, impl,
                                         prefix="denselayer%d_" % (i + 1)))
                    c += growth
            seq.add(block)
            if bi < len(blocks) - 1:
                trans = nn.HybridSequential(prefix="transition%d_" % (bi + 1))
                with trans.name_scope():
                    trans.add(_bn(c, "norm_", eps), nn.Activation("relu", prefix="relu_"),
                              _pt_conv(c, c // 2, 1, prefix="conv_", init=init),
                              nn.AvgPool2D(2, 2, prefix="pool_"))
                seq.add(trans)
                c //= 2
        seq.add(_bn(c, "norm5_", eps))
    return [seq, nn.Activation("relu", prefix="relu_")], c


# ---- the MXNet port's ResNeXt files -------------------------------------------------------------

class MXResNeXtUnit(nn.HybridBlock):
    """A post-activation ResNeXt unit of the MXNet port (``residual_unit`` of its resnext
    files), ``channels = F``, width ``w = F / 2``, ``groups = G``:

    * ``kind="a"`` (``symbol_resnext_ibn_a.py`` and ``_w_d_v2``), **as the port computes it**:
      the port declares ``conv1`` (1 x 1, x -> w) but never uses its result; the first
      normalisation reads the unit input instead::

          a = relu(IBN(C_in)(x))  (``in1`` + ``bn1``; BN ``bn1`` when not ``ibn``)
          h = bn3(conv3(relu(bn2(conv2(a)))))   conv2: 3 x 3, C_in -> w, G groups, stride
          out = relu(h + shortcut)

      so the unit has no ``conv1`` weights and its grouped conv reads the full-width input,
      which is why these networks have far fewer parameters than a ResNeXt-50 (the authors'
      ``resnext*_ibn_a`` of family ``ibn`` is the correct form).
    * ``kind="b"`` (``symbol_resnext_ibn_b.py``): the correct unit ``conv1`` (x -> w) - bn1 -
      relu - ``conv2`` (grouped, stride) - bn2 - relu - ``conv3`` - bn3, plus the shortcut, then
      ``ibn1`` = InstanceNorm(F) after the addition (in every unit), relu.

    ``bn_mom``: momentum of the unit's BatchNorms (the port's ``--bn-mom``); the BN half of the
    IBN keeps 0.9, as the port's ``ibn_block`` is called without it.

    Shortcut: ``x`` or ``sc`` (1 x 1, stride) + ``sc_bn``; ``sc_kernel=3`` is the w_d variant's
    3 x 3 stride-2 projection (pad 1), used where the unit has stride 2.
    """

    def __init__(self, in_channels, channels, stride, projection, groups, kind, ibn,
                 sc_kernel=1, impl="native", bn_mom=_MOMENTUM, **kwargs):
        super().__init__(**kwargs)
        eps, w, m = _MX_EPS, channels // 2, bn_mom
        self.kind = kind
        with self.name_scope():
            if kind == "a":
                self.bn1 = IBN(in_channels, 0.5, epsilon=eps, impl=impl, in_prefix="in1_",
                               bn_prefix="bn1_", prefix="") if ibn else \
                    _bn(in_channels, "bn1_", eps, m)
                self.conv1 = None
                c2_in = in_channels
            else:
                self.conv1 = _pt_conv(in_channels, w, 1, prefix="conv1_", init=he_normal())
                self.bn1 = _bn(w, "bn1_", eps, m)
                c2_in = w
            self.conv2 = _pt_conv(c2_in, w, 3, stride, 1, groups, prefix="conv2_",
                                  init=he_normal())
            self.bn2 = _bn(w, "bn2_", eps, m)
            self.conv3 = _pt_conv(w, channels, 1, prefix="conv3_", init=he_normal())
            self.bn3 = _bn(channels, "bn3_", eps, m)
            if projection:
                k = sc_kernel if stride == 2 else 1
                self.sc = _pt_conv(in_channels, channels, k, stride, k // 2, prefix="sc_",
                                   init=he_normal())
                self.sc_bn = _bn(channels, "sc_bn_", eps, m)
            else:
                self.sc = self.sc_bn = None
            self.ibn1 = _in(channels, "ibn1_", eps) if kind == "b" and ibn else None

    def hybrid_forward(self, F, x):
        a = x if self.conv1 is None else self.conv1(x)
        a = relu(F, self.bn1(a))
        h = layout_barrier(F, self.conv2(layout_barrier(F, a)))  # grouped conv next to BN
        h = self.bn3(self.conv3(relu(F, self.bn2(h))))
        y = h + (self.sc_bn(self.sc(x)) if self.sc is not None else x)
        if self.ibn1 is not None:
            y = self.ibn1(y)
        return relu(F, y)


def _mx_resnext_layers(depth, kind, groups=32, deep_stem=False, impl="native",
                       bn_mom=_MOMENTUM):
    """bn_data (gamma fixed) - stem (conv0 7 x 7/2, or the w_d file's conv02 3 x 3/1 - conv03
    3 x 3/2, each with BN and ReLU) - max pool 3 x 3/2 - four stages of :class:`MXResNeXtUnit`
    (widths 256 ... 2048; IBN-a in stages 1-3, IBN-b everywhere)."""
    eps = _MX_EPS
    init = he_normal()
    layers = [nn.BatchNorm(in_channels=3, scale=False, epsilon=eps, momentum=bn_mom,
                           prefix="bn_data_")]
    if deep_stem:  # as coded: conv01/bn01 are dead (conv02 reads the data), see the docs
        layers += [_pt_conv(3, 64, 3, 1, 1, prefix="conv02_", init=init),
                   _bn(64, "bn02_", eps, bn_mom), nn.Activation("relu", prefix="relu02_"),
                   _pt_conv(64, 64, 3, 2, 1, prefix="conv03_", init=init),
                   _bn(64, "bn03_", eps, bn_mom), nn.Activation("relu", prefix="relu03_")]
    else:
        layers += [_pt_conv(3, 64, 7, 2, 3, prefix="conv0_", init=init),
                   _bn(64, "bn0_", eps, bn_mom), nn.Activation("relu", prefix="relu0_")]
    layers.append(nn.MaxPool2D(3, 2, 1, prefix="pool0_"))
    in_c = 64
    for s, n in enumerate(RESNET_UNITS[depth]):
        width = (256, 512, 1024, 2048)[s]
        for u in range(n):
            layers.append(MXResNeXtUnit(in_c, width, 2 if s and u == 0 else 1, u == 0, groups,
                                        kind, kind == "b" or width != 2048,
                                        3 if deep_stem else 1, impl, bn_mom,
                                        prefix="stage%d_unit%d_" % (s + 1, u + 1)))
            in_c = width
    return layers, in_c


# ---- networks -----------------------------------------------------------------------------------

_COMMON = dict(impl="native", representation="gavp", representation_options=None, freeze=0)


def _classifier(trunk, fixed, prefix, pool, fc_prefix, dropout=0.0, **cfg):
    """The network of ``trunk(impl=..., **fixed)`` -> ``pool`` (GAvP options) -> [dropout] ->
    Dense ``fc_prefix``, with the common options ``cfg``."""
    cfg = dict(dict(_COMMON, classes=1000), **cfg)
    impl = check_impl(cfg.pop("impl"))
    classes = check_positive_int("classes", cfg.pop("classes"))
    representation, rep_options = cfg.pop("representation"), cfg.pop("representation_options")
    freeze = cfg.pop("freeze")
    if cfg:
        raise TypeError("unknown option(s) %s" % ", ".join(sorted(cfg)))

    def features():
        layers, channels = trunk(impl=impl, **fixed)
        seq = nn.HybridSequential(prefix="")
        seq.add(*layers)
        return seq, channels

    def head_options():
        user = rep_options or {}
        return dict(pool, prefix="", **user) if representation == "gavp" else user

    def output(in_units, n):
        dense = nn.Dense(n, in_units=in_units, weight_initializer=fc_uniform(), prefix=fc_prefix)
        if not dropout:
            return dense
        head = nn.HybridSequential(prefix="")
        head.add(nn.Dropout(dropout, prefix="dp1_"), dense)
        return head
    return Classifier(features, classes, representation, head_options, output, freeze, impl,
                      prefix=prefix)


# PyTorch's AvgPool2d(7): a 7 x 7 window with stride 7 (DenseNet: avg_pool2d(7, stride=1))
_PT_POOL = dict(pool_size=7, strides=7, pool_prefix="avgpool_")
_PT_DENSE_POOL = dict(pool_size=7, strides=1, pool_prefix="avgpool_")
_PT_GLOBAL_POOL = dict(pool_size=None, pool_prefix="avgpool_")  # AdaptiveAvgPool2d(1)
_MX_POOL = dict(pool_size=None, pool_prefix="pool1_")

_PT_LAYERS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3),
              152: (3, 8, 36, 3)}
_DENSENETS = {121: (64, 32, (6, 12, 24, 16)), 161: (96, 48, (6, 12, 36, 24)),
              169: (64, 32, (6, 12, 32, 32)), 201: (64, 32, (6, 12, 48, 32))}


def pt_resnet(depth, ibn="a", resnext=False, se=False, global_pool=False, **cfg):
    """The authors' ResNet-IBN-a/b (depth 18 ... 152), ResNeXt-IBN-a (32 x 4d, depth >= 50) or
    SE-ResNet-IBN-a; ``ibn=None``: the same network without IN, the authors' baselines
    (their SE-ResNet, ``models/imagenet/se_resnet.py``: torchvision's ResNet with the SE gate
    before the addition and a global average pooling, ``global_pool=True``).
    ``cfg``: the common options (``classes``, ``impl``, ...)."""
    if ibn not in ("a", "b", None):
        raise ValueError("ibn must be 'a', 'b' or None, got %r" % (ibn,))
    if ibn is None:
        name = "se_resnet%d_" % depth if se else "resnext%d_32x4d_" % depth if resnext \
            else "resnet%d_" % depth
    else:
        name = "%sresnet%s%d_ibn_%s_" % ("se_" if se else "", "xt" if resnext else "", depth,
                                         ibn)
    block = "bottleneck" if depth >= 50 else "basic"
    ibn_cfg = {"a": ("a", "a", "a", None), "b": ("b", "b", None, None), None: (None,) * 4}[ibn]
    fixed = dict(units=_PT_LAYERS[depth], block=block, ibn_cfg=ibn_cfg, se=se,
                 stem_in=ibn == "b", **(dict(groups=32, base_width=4) if resnext else {}))
    return _classifier(_pt_resnet_layers, fixed, cfg.pop("prefix", name),
                       _PT_GLOBAL_POOL if global_pool else _PT_POOL, "fc_", **cfg)


def pt_densenet(depth, **cfg):
    """The authors' DenseNet-IBN-a (121, 161, 169, 201)."""
    init, growth, blocks = _DENSENETS[depth]
    return _classifier(_pt_densenet_layers, dict(init_features=init, growth=growth,
                                                 blocks=blocks),
                       cfg.pop("prefix", "densenet%d_ibn_a_" % depth), _PT_DENSE_POOL,
                       "classifier_", **cfg)


def mx_resnext(depth=50, kind="a", deep=False, dropout=0.0, groups=32, bn_mom=_MOMENTUM,
               **cfg):
    """The MXNet port's ResNeXt-IBN-a (``kind="a"``), -IBN-b (``"b"``) or the w_d_v2 variant
    (``deep``: deep stem, 3 x 3 projections; its run script passes dropout 0.2 before
    ``fc1``); ``groups`` (the port's ``--num-group``, 32) in every grouped convolution;
    ``bn_mom`` (its ``--bn-mom``, 0.9) the momentum of every BatchNorm but the IBN's BN half
    (0.9)."""
    if depth not in (50, 101, 152):
        raise ValueError("the port's ResNeXt depth must be one of 50, 101, 152, got %r"
                         % (depth,))
    groups = check_positive_int("groups", groups)
    name = "resnext%d_ibn_%s%s_mx_" % (depth, kind, "_w_d" if deep else "")
    return _classifier(_mx_resnext_layers, dict(depth=depth, kind=kind, deep_stem=deep,
                                                groups=groups,
                                                bn_mom=_check_momentum("bn_mom", bn_mom)),
                       cfg.pop("prefix", name), _MX_POOL, "fc1_", dropout, **cfg)


def mx_resnet(depth=50, cifar=False, bn_mom=_MOMENTUM, **cfg):
    """The MXNet port's pre-activation ResNet-IBN-a: the FBN family's builder with ``ibn``.
    ``bn_mom`` (the port's ``--bn-mom``) reaches ``bn_data``, ``bn0`` and the final ``bn1``
    only: the port's ``resnet()`` calls its residual units without it, so they keep 0.9."""
    cfg = dict(_COMMON, **cfg)
    name = "resnet%d_ibn_a_mx%s_" % (depth, "_cifar" if cifar else "")
    return preact_resnet(depth, ibn=True, cifar=cifar, prefix=cfg.pop("prefix", name),
                         bn_mom=bn_mom, unit_bn_mom=_MOMENTUM, **cfg)


# One line per variant: name -> (builder, its fixed arguments, family, input size, classes).
_PT, _DN, _MXR, _MXX = pt_resnet, pt_densenet, mx_resnet, mx_resnext
_SPECS = {
    "resnet18_ibn_a": (_PT, dict(depth=18, ibn="a"), "ibn", 224, 1000),
    "resnet18_ibn_b": (_PT, dict(depth=18, ibn="b"), "ibn", 224, 1000),
    "resnet34_ibn_a": (_PT, dict(depth=34, ibn="a"), "ibn", 224, 1000),
    "resnet34_ibn_b": (_PT, dict(depth=34, ibn="b"), "ibn", 224, 1000),
    "resnet50_ibn_a": (_PT, dict(depth=50, ibn="a"), "ibn", 224, 1000),
    "resnet50_ibn_b": (_PT, dict(depth=50, ibn="b"), "ibn", 224, 1000),
    "resnet101_ibn_a": (_PT, dict(depth=101, ibn="a"), "ibn", 224, 1000),
    "resnet101_ibn_b": (_PT, dict(depth=101, ibn="b"), "ibn", 224, 1000),
    "resnet152_ibn_a": (_PT, dict(depth=152, ibn="a"), "ibn", 224, 1000),
    "resnet152_ibn_b": (_PT, dict(depth=152, ibn="b"), "ibn", 224, 1000),
    "resnext50_ibn_a": (_PT, dict(depth=50, resnext=True), "ibn", 224, 1000),
    "resnext101_ibn_a": (_PT, dict(depth=101, resnext=True), "ibn", 224, 1000),
    "resnext152_ibn_a": (_PT, dict(depth=152, resnext=True), "ibn", 224, 1000),
    "se_resnet50_ibn_a": (_PT, dict(depth=50, se=True), "ibn", 224, 1000),
    "se_resnet101_ibn_a": (_PT, dict(depth=101, se=True), "ibn", 224, 1000),
    "se_resnet152_ibn_a": (_PT, dict(depth=152, se=True), "ibn", 224, 1000),
    # the authors' baselines gluoncv lacks in their form (gluoncv's se_resnet*_v1 put the
    # stride on the first 1 x 1 conv and give convs biases; it has no ResNeXt-152 32x4d)
    "se_resnet50": (_PT, dict(depth=50, se=True, ibn=None, global_pool=True), "ibn", 224, 1000),
    "se_resnet101": (_PT, dict(depth=101, se=True, ibn=None, global_pool=True), "ibn", 224,
                     1000),
    "se_resnet152": (_PT, dict(depth=152, se=True, ibn=None, global_pool=True), "ibn", 224,
                     1000),
    "resnext152_32x4d": (_PT, dict(depth=152, resnext=True, ibn=None), "ibn", 224, 1000),
    "densenet121_ibn_a": (_DN, dict(depth=121), "ibn", 224, 1000),
    "densenet161_ibn_a": (_DN, dict(depth=161), "ibn", 224, 1000),
    "densenet169_ibn_a": (_DN, dict(depth=169), "ibn", 224, 1000),
    "densenet201_ibn_a": (_DN, dict(depth=201), "ibn", 224, 1000),
    "resnet18_ibn_a_mx": (_MXR, dict(depth=18), "ibn_mx", 224, 1000),
    "resnet34_ibn_a_mx": (_MXR, dict(depth=34), "ibn_mx", 224, 1000),
    "resnet50_ibn_a_mx": (_MXR, dict(depth=50), "ibn_mx", 224, 1000),
    "resnet101_ibn_a_mx": (_MXR, dict(depth=101), "ibn_mx", 224, 1000),
    "resnet152_ibn_a_mx": (_MXR, dict(depth=152), "ibn_mx", 224, 1000),
    "resnet200_ibn_a_mx": (_MXR, dict(depth=200), "ibn_mx", 224, 1000),
    "resnet269_ibn_a_mx": (_MXR, dict(depth=269), "ibn_mx", 224, 1000),
    "resnet110_ibn_a_mx_cifar": (_MXR, dict(depth=110, cifar=True), "ibn_mx", 32, 10),
    "resnet164_ibn_a_mx_cifar": (_MXR, dict(depth=164, cifar=True), "ibn_mx", 32, 10),
    "resnet1001_ibn_a_mx_cifar": (_MXR, dict(depth=1001, cifar=True), "ibn_mx", 32, 10),
    "resnext50_ibn_a_mx": (_MXX, dict(depth=50), "ibn_mx", 224, 1000),
    "resnext101_ibn_a_mx": (_MXX, dict(depth=101), "ibn_mx", 224, 1000),
    "resnext152_ibn_a_mx": (_MXX, dict(depth=152), "ibn_mx", 224, 1000),
    "resnext50_ibn_b_mx": (_MXX, dict(depth=50, kind="b"), "ibn_mx", 224, 1000),
    "resnext101_ibn_b_mx": (_MXX, dict(depth=101, kind="b"), "ibn_mx", 224, 1000),
    "resnext152_ibn_b_mx": (_MXX, dict(depth=152, kind="b"), "ibn_mx", 224, 1000),
    "resnext50_ibn_a_w_d_mx": (_MXX, dict(depth=50, deep=True), "ibn_mx", 224, 1000),
    "resnext101_ibn_a_w_d_mx": (_MXX, dict(depth=101, deep=True), "ibn_mx", 224, 1000),
    "resnext152_ibn_a_w_d_mx": (_MXX, dict(depth=152, deep=True), "ibn_mx", 224, 1000),
}


def _options(name):
    extra = dict(dropout=0.2) if name.endswith("_w_d_mx") else {}
    if _SPECS[name][2] == "ibn_mx":
        extra["bn_mom"] = _MOMENTUM  # the port's --bn-mom
    return dict(_COMMON, classes=_SPECS[name][4], **extra)


def _create(name, **kwargs):
    """Build ``name`` with its spec-table options overridden by ``kwargs``."""
    builder, fixed, _, _, _ = _SPECS[name]
    return builder(**fixed, **dict(_options(name), **kwargs))


def _register(name):
    family, size = _SPECS[name][2], _SPECS[name][3]

    def build(**kwargs):
        return _create(name, **kwargs)
    build.__name__ = name
    build.__qualname__ = name
    build.__doc__ = "IBN-Net %s (see the module docstring)." % name
    globals()[name] = register_model(family, input_size=size, options=_options(name))(build)


for _name in _SPECS:
    _register(_name)


# ---- the port's train_*.py --network values and flags (its --depth, --num-group, --drop-out) --

def _seed(**fixed):
    def options(depth=None, num_group=None, drop_out=None, bn_mom=None):
        values = dict(fixed, depth=depth, bn_mom=bn_mom)
        if fixed.get("kind") is not None:  # the ResNeXt files
            values.update(groups=num_group, dropout=drop_out)
        return values
    return options


register_seed_network("resnet_ibn_a", mx_resnet, _seed(), "ibn_mx")
register_seed_network("resnext_ibn_a", mx_resnext, _seed(kind="a"), "ibn_mx")
register_seed_network("resnext_ibn_b", mx_resnext, _seed(kind="b"), "ibn_mx")
register_seed_network("resnext_w_d_v2", mx_resnext, _seed(kind="a", deep=True), "ibn_mx")

# ---- the authors' PyTorch weights (their state dicts' module paths -> ours) ---------------------

# Inside a block or dense layer: the IBN's halves (``bn1.IN`` / ``bn1.BN``, DenseNet
# ``norm1.BN`` / ``norm1.IN``) are the IBN's parameters under the prefixes in_ / bn_; the
# shortcut and the SE gate's two Linear layers have attribute names here. Other modules
# (conv1..3, bn1..3, the IBN-b ``IN``, norm1/2, conv1/2) keep their names.
_PT_INNER = {"bn1.IN": "bn1.in_", "bn1.BN": "bn1.bn_", "norm1.IN": "norm1.in_",
             "norm1.BN": "norm1.bn_", "downsample.0": "down_conv", "downsample.1": "down_bn",
             "se.fc.0": "se.fc0", "se.fc.2": "se.fc2"}


def _pt_block(m):
    # layer1..4 are children 4..7 of features (after conv1, bn1, relu, maxpool)
    return "features.%d.%s.%s" % (int(m.group(1)) + 3, m.group(2),
                                  _PT_INNER.get(m.group(3), m.group(3)))


def _pt_dense_layer(m):
    # features (child 0 of ours) = conv0, norm0, relu0, pool0, then dense block b at 2b + 2
    # and transition b at 2b + 3, norm5 at 11; dense layer j of a block is its child j - 1
    return "features.0.%d.%d.%s" % (2 * int(m.group(1)) + 2, int(m.group(2)) - 1,
                                    _PT_INNER.get(m.group(3), m.group(3)))


def _pt_transition(m):
    return "features.0.%d.%d" % (2 * int(m.group(1)) + 3, {"norm": 0, "conv": 2}[m.group(2)])


# ResNet-IBN-a/b, ResNeXt-IBN-a (stem max pool ``maxpool1``: no parameters), SE-ResNet-IBN-a;
# IBN-b's stem ``bn1`` is an InstanceNorm here too.
PT_RESNET_IBN = WeightMap([(r"conv1", "features.0"), (r"bn1", "features.1"),
                           (r"layer([1-4])\.(\d+)\.(.+)", _pt_block), (r"fc", "output")])
PT_DENSENET_IBN = WeightMap([
    (r"features\.conv0", "features.0.0"), (r"features\.norm0", "features.0.1"),
    (r"features\.denseblock([1-4])\.denselayer(\d+)\.(.+)", _pt_dense_layer),
    (r"features\.transition([1-3])\.(norm|conv)", _pt_transition),
    (r"features\.norm5", "features.0.11"), (r"classifier", "output")])

# The authors' networks read mean/std-normalised RGB; the port's read raw 0-255 pixels (its
# bn_data normalises them; its iterators fill with 127).
# The authors' PyTorch recipe (imagenet.py, train.sh): SGD with classic momentum 0.9 in
# PyTorch's form, weight decay 1e-4 on every parameter, lr 0.1 x 0.1 at epochs 30 / 60 / 90,
# 100 epochs, batch 256, RandomResizedCrop 224 (area 0.08-1, aspect 3/4-4/3) + flip in
# ImageRecordIter's form, no colour jitter, mean/std normalisation (the family's norm),
# validation shorter side 256 + centre 224 (the shared default), cross-entropy without smoothing.
PT_RECIPE = dict(
    optimizer="torch_sgd", mom=0.9, wd=1e-4, wd_rule="all", lr=0.1, lr_schedule="step",
    lr_step_epochs=[30.0, 60.0, 90.0], lr_factor=0.1, num_epochs=100, batch_size=256,
    label_smoothing=0.0, aug_level=1,
    aug_opts=[("rand_crop", 0), ("random_resized_crop", 1), ("min_random_area", 0.08),
              ("max_random_area", 1), ("min_aspect_ratio", 0.75),
              ("max_aspect_ratio", 4.0 / 3.0)])

register_family("ibn", imagenet_norm="imagenet", train_defaults={"*": PT_RECIPE}, weight_maps={
    "*resnet*": PT_RESNET_IBN, "resnext*": PT_RESNET_IBN, "densenet*": PT_DENSENET_IBN})


# The MXNet port's recipe (its train_*.py): NAG, momentum 0.9, weight decay 1e-4 on
# ``*_weight`` / ``*_gamma`` only (MXNet's default rule), lr 0.1 x 0.1 at epochs 30, 60, 90,
# 95, 115, 120, 125 epochs, batch 256, its --aug-level 2 (random scale down to 0.667, 0.533
# for the w_d file, aspect jitter 0.25, HSL jitter 36/50/50), raw pixels (the family's norm);
# the w_d file (resnext_w_d_v2, *_w_d_mx) adds MXNet's label smoothing 0.1. The CIFAR
# networks keep train_cifar.py's defaults.
PORT_RECIPE = dict(
    optimizer="nag", mom=0.9, wd=1e-4, wd_rule="weights", lr=0.1, lr_schedule="step",
    lr_step_epochs=[30.0, 60.0, 90.0, 95.0, 115.0, 120.0], lr_factor=0.1, num_epochs=125,
    batch_size=256, aug_level=2, aug_opts=[("min_random_scale", 0.667)], label_smoothing=0.0)
_PORT_W_D = dict(PORT_RECIPE, aug_opts=[], label_smoothing=0.1)


register_family(
    "ibn_mx", imagenet_norm="raw",
    train_defaults={"*_cifar": {}, "resnext_w_d_v2": _PORT_W_D, "*_w_d_mx": _PORT_W_D,
                    "*": PORT_RECIPE},
    model_flags={
        "depth": (dict(type=positive_int, help="network depth"), None),
        "num_group": (dict(type=positive_int, help="ResNeXt groups (the port's --num-group, "
                                                   "default 32)"), None),
        "drop_out": (dict(type=fraction, help="dropout before fc1 of resnext_w_d_v2 (the "
                                              "port's --drop-out, default 0)"), None),
        "bn_mom": (dict(type=fraction, help="BatchNorm momentum (the port's --bn-mom, default "
                                            "0.9): resnet_ibn_a's bn_data, bn0 and bn1 only, "
                                            "the ResNeXt files' every BN but the IBN's"),
                   "bn_mom"),
    })
