"""FBN: Factorized Bilinear Networks (Li, Wang, Liu, Hou, "Factorized Bilinear Models for Image
Recognition", ICCV 2017, https://arxiv.org/abs/1611.05709).

Ports of the authors' symbol files (spec fbn.md section 4), layer for layer, each network with
and without the FB layer:

* CIFAR-10/100 (32 x 32): the pre-activation bottleneck ResNet of depth ``9n + 2``
  (``resnet164_cifar``, ``resnet1001_cifar``; any depth with ``preact_resnet_cifar``) and
  Inception-BN-small (``inception_bn_small_cifar``).
* ImageNet (224 x 224): the pre-activation ResNet with BN on the input (``resnet34_preact``,
  ``resnet50_preact``; depths 18 ... 269 with ``preact_resnet``) and Inception-BN
  (``inception_bn``).

Name tokens: the depth; ``fbn`` the FB head; ``preact`` the pre-activation ResNet without it;
``small`` the CIFAR Inception-BN; ``_cifar`` 32 x 32 inputs (none: ImageNet, 224 x 224).

Every network is a :class:`~gluon_models.model_zoo.compose.Classifier`: ``features`` ends at
the activated final feature map; the plain networks' ``representation`` is the authors'
average pooling (``gavp``) and their ``output`` the classifier ``fc1``. The FB head (spec 4) is
the representation ``fb`` (:class:`~gluon_models.nn.FBHead`): the last activation of the trunk
becomes tanh, and an FB layer (:class:`~gluon_models.nn.FactorizedBilinear`: the FB quadratic
term plus a linear 1 x 1 convolution, both with ``classes`` outputs) is applied to the final
feature map *before* the average pooling; it gives the class scores, so ``output`` is the
identity. DropFactor (``p``, ``dropfactor_mode``) and the operator (``op``: the authors use
``FMConvolution3`` on CIFAR and ``FMConvolution1`` on ImageNet) are options of the FB
variants. The FB head goes onto any backbone as ``representation="fb"``.

The family's training recipe is declared here too: the seeds' ``--network`` values and flags,
the slow start and ``--fmconv`` learning-rate rule (:class:`FBNRule`), and the data
pipeline (mean subtraction, white padding on CIFAR).

Parameter names are the authors' under the model prefix (spec 4.5), so their checkpoints map
by name (with MXNet's ``moving_mean``/``moving_var`` as Gluon's ``running_mean``/``running_var``):

* CIFAR networks: their symbols leave the layers unnamed, so the names are the ones MXNet gave
  them, counted per operator type in creation order (``convolution<i>``, ``batchnorm<i>``; a
  ResNet module creates bn1, conv1, the projection, bn2, conv2, bn3, conv3); the FB term is
  ``bilinear`` (ResNet) / ``bilinear1`` (Inception), the linear path ``convolution<N>``
  (ResNet; N = 9n + 4, e.g. 166 for ResNet-164) / ``conv_fc`` (Inception), the plain
  classifier ``fc1``.
* ImageNet ResNets (tornadomeet's pre-activation ResNet): ``bn_data``, ``conv0``, ``bn0``,
  ``stage<s>_unit<u>_{bn1,conv1,bn2,conv2,bn3,conv3,sc}``, ``bn1``; FB term ``bilinear1``,
  linear path ``fc``, plain classifier ``fc1``.
* Inception-BN: ``conv_<name>``, ``bn_<name>`` (e.g. ``conv_3a_double_3x3_reduce``); head as the
  ImageNet ResNets.

Why the family has its own residual unit instead of gluoncv's ResNet V2 (this library reuses
gluoncv backbones where they are exact): gluoncv's pre-activation ResNet differs from the authors' layer
for layer. Its first unit of stage 1 has no projection when the width does not change (the
authors project 64 -> 64 in ResNet-34), its input BatchNorm has no learnable beta, its BatchNorm
epsilon is 1e-5 (the authors' 2e-5), and its names differ; neither the parameter counts of spec
6.2 nor the authors' checkpoints would match. gluoncv has no CIFAR bottleneck ResNet with biased
convolutions and the stride on the first 1 x 1 convolution, and no BN-Inception.
"""
import logging

from mxnet.gluon import nn
from mxnet.gluon.contrib.nn import HybridConcurrent

from ..data.imagenet import Norm
from ..data.presets import AugPreset
from ..nn.basic import ConvBNAct, check_impl, check_positive_int, he_normal
from ..nn.fb import FBHead, fb_parameters
from ..nn.ibn import IBN
from ..training.rules import OptimizerRule
from ..utils.argtypes import fraction, non_negative_float, positive_float, positive_int
from .compose import Classifier, register_representation
from .registry import register_family, register_model, register_seed_network

__all__ = ["PreActUnit", "FBNRule", "FBN_MEAN_RGB", "cifar_resnet_units", "preact_resnet_cifar",
           "preact_resnet", "preact_cifar_units", "RESNET_UNITS"]

_LOG = logging.getLogger(__name__)

# The FB head goes onto any backbone by name (it gives the class scores itself).
register_representation("fb", FBHead)

# BatchNorm of the CIFAR nets and of Inception-BN: eps 1e-10 + 1e-5, momentum 0.9 (spec 4.1,
# 4.2, 4.4); of the ImageNet ResNets: eps 2e-5 (spec 4.3).
_EPS = 1e-10 + 1e-5
_RESNET_EPS = 2e-5
_MOMENTUM = 0.9

# Units per stage of the ImageNet ResNets by depth (spec 4.3): < 50 basic, >= 50 bottleneck.
RESNET_UNITS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3),
                152: (3, 8, 36, 3), 200: (3, 24, 36, 3), 269: (3, 30, 48, 8)}


class _AutoNames:
    """The names MXNet gives unnamed symbols: ``<op><i>_``, counted per op in creation order."""

    def __init__(self):
        self._counts = {}

    def __call__(self, op):
        i = self._counts.get(op, 0)
        self._counts[op] = i + 1
        return "%s%d_" % (op, i)


# ---- blocks -----------------------------------------------------------------------------------

class PreActUnit(nn.HybridBlock):
    """Pre-activation residual unit (He et al., "Identity Mappings in Deep Residual Networks").

    ``a = relu(bn1(x))``, then bottleneck: ``conv1`` 1 x 1 (``channels / 4``), bn2-relu,
    ``conv2`` 3 x 3 (``channels / 4``), bn3-relu, ``conv3`` 1 x 1 (``channels``); basic:
    ``conv1`` 3 x 3, bn2-relu, ``conv2`` 3 x 3 (both ``channels``). The output is the sum with
    the shortcut: ``sc(a)`` (1 x 1 projection of the *activated* input, same stride) or ``x``.

    Parameters
    ----------
    in_channels, channels : int
        Input and output channels.
    stride : int
        Stride of the unit (on the shortcut too).
    bottleneck : bool
        Bottleneck (three convolutions) or basic (two) unit.
    projection : bool
        Projection shortcut ``sc``; False needs ``in_channels == channels`` and stride 1.
    stride_on_3x3 : bool
        Bottleneck only: the stride sits on the 3 x 3 convolution (ImageNet ResNets) or on the
        first 1 x 1 (the authors' CIFAR ResNet). A basic unit strides its first convolution.
    use_bias : bool
        Biases on the convolutions (the CIFAR ResNet has them, the ImageNet ResNets do not).
    norm_kwargs : dict, optional
        BatchNorm arguments.
    names : dict, optional
        Prefixes of the children by role (``bn1, conv1, sc, bn2, conv2, bn3, conv3``, and
        ``in1`` with ``ibn``); default ``"<role>_"``.
    ibn : bool
        ``bn1`` is an :class:`~gluon_models.nn.IBN` (instance norm on the first half of the
        input channels, batch norm on the rest, with ``norm_kwargs``' epsilon and momentum):
        the IBN-a unit of the MXNet port of IBN-Net, whose parameters are ``in1_gamma/beta``
        and ``bn1_*``.
    impl : {"native", "stock"}
        Implementation of that IBN layer.
    """

    ROLES = ("bn1", "in1", "conv1", "sc", "bn2", "conv2", "bn3", "conv3")

    def __init__(self, in_channels, channels, stride, bottleneck, projection,
                 stride_on_3x3=True, use_bias=False, norm_kwargs=None, names=None, ibn=False,
                 impl="native", **kwargs):
        super().__init__(**kwargs)
        if not projection and (in_channels != channels or stride != 1):
            raise ValueError("an identity shortcut needs in_channels == channels and stride 1, "
                             "got %d -> %d, stride %d" % (in_channels, channels, stride))
        norm_kwargs = {} if norm_kwargs is None else norm_kwargs
        names = dict({r: r + "_" for r in self.ROLES}, **(names or {}))

        def conv(c_in, c_out, kernel, s, role):
            return nn.Conv2D(c_out, kernel, s, kernel // 2, use_bias=use_bias,
                             in_channels=c_in, weight_initializer=he_normal(),
                             prefix=names[role])

        def bn(c, role):
            return nn.BatchNorm(in_channels=c, prefix=names[role], **norm_kwargs)

        with self.name_scope():
            if ibn:
                self.bn1 = IBN(in_channels, 0.5, True, impl=impl, in_prefix=names["in1"],
                               bn_prefix=names["bn1"], prefix="",
                               **{k: norm_kwargs[k] for k in ("epsilon", "momentum")
                                  if k in norm_kwargs})
            else:
                self.bn1 = bn(in_channels, "bn1")
            if bottleneck:
                width = channels // 4
                s1, s2 = (1, stride) if stride_on_3x3 else (stride, 1)
                self.conv1 = conv(in_channels, width, 1, s1, "conv1")
                self.bn2 = bn(width, "bn2")
                self.conv2 = conv(width, width, 3, s2, "conv2")
                self.bn3 = bn(width, "bn3")
                self.conv3 = conv(width, channels, 1, 1, "conv3")
            else:
                self.conv1 = conv(in_channels, channels, 3, stride, "conv1")
                self.bn2 = bn(channels, "bn2")
                self.conv2 = conv(channels, channels, 3, 1, "conv2")
                self.bn3 = self.conv3 = None
            self.sc = conv(in_channels, channels, 1, stride, "sc") if projection else None

    def hybrid_forward(self, F, x):
        a = F.Activation(self.bn1(x), act_type="relu")
        y = self.conv2(F.Activation(self.bn2(self.conv1(a)), act_type="relu"))
        if self.conv3 is not None:
            y = self.conv3(F.Activation(self.bn3(y), act_type="relu"))
        return y + (self.sc(a) if self.sc is not None else x)


# ---- CIFAR: pre-activation bottleneck ResNet (spec 4.1) -----------------------------------------

def cifar_resnet_units(depth):
    """Units per stage ``n`` of the CIFAR ResNet of ``depth = 9n + 2`` (164 -> 18, 1001 -> 111)."""
    if int(depth) != depth or depth < 11 or (depth - 2) % 9:
        raise ValueError("the CIFAR pre-activation ResNet needs depth = 9n + 2 with n >= 1 "
                         "(11, 20, ..., 164, ..., 1001), got %r" % (depth,))
    return (int(depth) - 2) // 9


def _cifar_resnet_layers(depth, act):
    """Stem 3 x 3 (16), three stages of ``n = (depth - 2) / 9`` bottleneck units of widths 64, 128, 256 (the first
    unit of each stage projects, with stride 2 from the second stage on), BN, ``act``."""
    n = cifar_resnet_units(depth)
    names = _AutoNames()  # creation order of the authors' ResModule
    norm = dict(epsilon=_EPS, momentum=_MOMENTUM)
    layers = [nn.Conv2D(16, 3, 1, 1, in_channels=3, weight_initializer=he_normal(),
                        prefix=names("convolution"))]
    in_c = 16
    for stage in range(3):
        channels = 16 << (2 + stage)
        for i in range(n):
            unit = {"bn1": names("batchnorm"), "conv1": names("convolution")}
            if i == 0:
                unit["sc"] = names("convolution")
            for k in (2, 3):
                unit["bn%d" % k] = names("batchnorm")
                unit["conv%d" % k] = names("convolution")
            layers.append(PreActUnit(in_c, channels, 2 if stage and i == 0 else 1, True, i == 0,
                                     stride_on_3x3=False, use_bias=True, norm_kwargs=norm,
                                     names=unit, prefix=""))
            in_c = channels
    layers += [nn.BatchNorm(in_channels=in_c, prefix=names("batchnorm"), **norm),
               nn.Activation(act, prefix="%s_" % act)]
    return layers, in_c, {"fc": "fc1_", "fb": "bilinear_", "linear": names("convolution")}




# ---- CIFAR: Inception-BN-small (spec 4.2) -----------------------------------------------------

def _inception_small_layers(act):
    """ConvFactory = conv (with bias) -> BN -> act; Simple = concat[1 x 1, 3 x 3];
    Down = concat[3 x 3 stride 2, max pool 3 x 3 stride 2]; the last module uses ``act``."""
    names = _AutoNames()
    norm = dict(epsilon=_EPS, momentum=_MOMENTUM)

    def factory(in_c, out_c, kernel, stride=1, activation="relu"):
        return ConvBNAct(in_c, out_c, kernel, stride, kernel // 2, act=activation,
                         norm_kwargs=norm, use_bias=True, conv_prefix=names("convolution"),
                         bn_prefix=names("batchnorm"), act_prefix=names("activation"),
                         prefix="")

    def concat(*branches):
        block = HybridConcurrent(axis=1, prefix="")
        block.add(*branches)
        return block

    def simple(in_c, c1, c3, activation="relu"):
        return concat(factory(in_c, c1, 1, activation=activation),
                      factory(in_c, c3, 3, activation=activation)), c1 + c3

    def down(in_c, c3):
        return concat(factory(in_c, c3, 3, 2),
                      nn.MaxPool2D(3, 2, 1, prefix=names("pooling"))), c3 + in_c

    layers, in_c = [factory(3, 96, 3)], 96
    for kind, *spec in [("s", 32, 32), ("s", 32, 48), ("d", 80),                     # in3a-c
                        ("s", 112, 48), ("s", 96, 64), ("s", 80, 80), ("s", 48, 96),  # in4a-d
                        ("d", 96), ("s", 176, 160), ("s", 176, 160, act)]:            # in4e-5b
        block, in_c = simple(in_c, *spec) if kind == "s" else down(in_c, *spec)
        layers.append(block)
    return layers, in_c, {"fc": "fc1_", "fb": "bilinear1_", "linear": "conv_fc_"}




# ---- ImageNet: pre-activation ResNet (spec 4.3) -----------------------------------------------

def preact_cifar_units(depth):
    """``(units per stage, bottleneck)`` of tornadomeet's pre-activation ResNet on 32 x 32
    inputs (the layout of the MXNet port of IBN-Net): depth >= 164 with ``(depth - 2) % 9 == 0``
    is a bottleneck net of ``(depth - 2) / 9`` units per stage, a smaller depth with
    ``(depth - 2) % 6 == 0`` a basic one of ``(depth - 2) / 6``."""
    if int(depth) == depth and depth >= 164 and (depth - 2) % 9 == 0:
        return (int(depth) - 2) // 9, True
    if int(depth) == depth and 8 <= depth < 164 and (depth - 2) % 6 == 0:
        return (int(depth) - 2) // 6, False
    raise ValueError("the 32 x 32 pre-activation ResNet needs depth = 9n + 2 >= 164 "
                     "(bottleneck) or 6n + 2 < 164 (basic), got %r" % (depth,))


def _imagenet_resnet_layers(depth, act, ibn=False, cifar=False, impl="native",
                            bn_mom=_MOMENTUM, unit_bn_mom=None):
    """BN on the input (gamma fixed), conv0 7 x 7/2 - bn0 - relu - max pool 3 x 3/2, four stages
    whose first unit projects (stride 1 in stage 1, else 2), bn1, ``act``.

    ``cifar``: the same network on 32 x 32 inputs (the layout of tornadomeet's ResNet that the
    MXNet port of IBN-Net keeps): stem ``conv0`` 3 x 3/1 only, three stages of widths 64, 128,
    256 (bottleneck) or 16, 32, 64 (basic), :func:`preact_cifar_units`. ``ibn``: the port's
    IBN-a, ``bn1`` of every bottleneck unit of width < 2048 is an IBN (instance norm on half of
    the unit's input channels); its basic units ignore the flag, as the port's do.
    ``bn_mom``: momentum of every BatchNorm (the seeds' ``--bn-mom``); ``unit_bn_mom`` that of
    the units' if they differ (the IBN port's resnet passes ``--bn-mom`` to ``bn_data``,
    ``bn0`` and ``bn1`` only, its units keep 0.9).
    """
    if cifar:
        n, bottleneck = preact_cifar_units(depth)
        units = (n, n, n)
        widths = (16, 64, 128, 256) if bottleneck else (16, 16, 32, 64)
    else:
        units, bottleneck = RESNET_UNITS[depth], depth >= 50
        widths = (64, 256, 512, 1024, 2048) if bottleneck else (64, 64, 128, 256, 512)
    norm = dict(epsilon=_RESNET_EPS, momentum=bn_mom)
    unit_norm = dict(norm, momentum=bn_mom if unit_bn_mom is None else unit_bn_mom)
    layers = [nn.BatchNorm(in_channels=3, scale=False, prefix="bn_data_", **norm)]
    if cifar:
        layers.append(nn.Conv2D(widths[0], 3, 1, 1, use_bias=False, in_channels=3,
                                weight_initializer=he_normal(), prefix="conv0_"))
    else:
        layers += [ConvBNAct(3, widths[0], 7, 2, 3, norm_kwargs=norm, conv_prefix="conv0_",
                             bn_prefix="bn0_", act_prefix="relu0_", prefix=""),
                   nn.MaxPool2D(3, 2, 1, prefix="pool0_")]
    in_c = widths[0]
    for s, n in enumerate(units):
        for u in range(n):
            stride = 2 if s and u == 0 else 1
            layers.append(PreActUnit(in_c, widths[s + 1], stride, bottleneck, u == 0,
                                     norm_kwargs=unit_norm,
                                     ibn=ibn and bottleneck and widths[s + 1] != 2048,
                                     impl=impl, prefix="stage%d_unit%d_" % (s + 1, u + 1)))
            in_c = widths[s + 1]
    layers += [nn.BatchNorm(in_channels=in_c, prefix="bn1_", **norm),
               nn.Activation(act, prefix="%s1_" % act)]
    return layers, in_c, {"fc": "fc1_", "fb": "bilinear1_", "linear": "fc_"}




# ---- ImageNet: Inception-BN (spec 4.4) ---------------------------------------------------------

def _inception_bn_layers(act):
    """MXNet's Inception-BN; ``act`` on the four branch outputs of 5b (the FBN's tanh)."""
    norm = dict(epsilon=_EPS, momentum=_MOMENTUM)

    def factory(in_c, out_c, kernel, name, stride=1, pad=0, suffix="", activation="relu"):
        full = name + suffix
        return ConvBNAct(in_c, out_c, kernel, stride, pad, act=activation, norm_kwargs=norm,
                         use_bias=True, conv_prefix="conv_%s_" % full,
                         bn_prefix="bn_%s_" % full, act_prefix="%s_%s_" % (activation, full),
                         prefix="")

    def branch(*layers):
        seq = nn.HybridSequential(prefix="")
        seq.add(*layers)
        return seq

    def inception_a(in_c, n1, n3r, n3, nd3r, nd3, pool, proj, name, activation="relu"):
        pooling = (nn.AvgPool2D if pool == "avg" else nn.MaxPool2D)(
            3, 1, 1, prefix="%s_pool_%s_pool_" % (pool, name))
        block = HybridConcurrent(axis=1, prefix="")
        block.add(
            factory(in_c, n1, 1, name + "_1x1", activation=activation),
            branch(factory(in_c, n3r, 1, name + "_3x3", suffix="_reduce"),
                   factory(n3r, n3, 3, name + "_3x3", pad=1, activation=activation)),
            branch(factory(in_c, nd3r, 1, name + "_double_3x3", suffix="_reduce"),
                   factory(nd3r, nd3, 3, name + "_double_3x3_0", pad=1),
                   factory(nd3, nd3, 3, name + "_double_3x3_1", pad=1, activation=activation)),
            branch(pooling, factory(in_c, proj, 1, name + "_proj", activation=activation)))
        return block, n1 + n3 + nd3 + proj

    def inception_b(in_c, n3r, n3, nd3r, nd3, name):
        block = HybridConcurrent(axis=1, prefix="")
        block.add(
            branch(factory(in_c, n3r, 1, name + "_3x3", suffix="_reduce"),
                   factory(n3r, n3, 3, name + "_3x3", 2, 1)),
            branch(factory(in_c, nd3r, 1, name + "_double_3x3", suffix="_reduce"),
                   factory(nd3r, nd3, 3, name + "_double_3x3_0", pad=1),
                   factory(nd3, nd3, 3, name + "_double_3x3_1", 2, 1)),
            nn.MaxPool2D(3, 2, 1, prefix="max_pool_%s_pool_" % name))
        return block, n3 + nd3 + in_c

    layers = [factory(3, 64, 7, "1", 2, 3), nn.MaxPool2D(3, 2, prefix="pool_1_"),
              factory(64, 64, 1, "2_red"), factory(64, 192, 3, "2", pad=1),
              nn.MaxPool2D(3, 2, prefix="pool_2_")]
    in_c = 192
    for spec in [("a", 64, 64, 64, 64, 96, "avg", 32, "3a"),
                 ("a", 64, 64, 96, 64, 96, "avg", 64, "3b"),
                 ("b", 128, 160, 64, 96, "3c"),
                 ("a", 224, 64, 96, 96, 128, "avg", 128, "4a"),
                 ("a", 192, 96, 128, 96, 128, "avg", 128, "4b"),
                 ("a", 160, 128, 160, 128, 160, "avg", 128, "4c"),
                 ("a", 96, 128, 192, 160, 192, "avg", 128, "4d"),
                 ("b", 128, 192, 192, 256, "4e"),
                 ("a", 352, 192, 320, 160, 224, "avg", 128, "5a"),
                 ("a", 352, 192, 320, 192, 224, "max", 128, "5b", act)]:
        make = inception_a if spec[0] == "a" else inception_b
        block, in_c = make(in_c, *spec[1:])
        layers.append(block)
    return layers, in_c, {"fc": "fc1_", "fb": "bilinear1_", "linear": "fc_"}


# ---- specification: name -> (trunk, its arguments, the authors' pooling, options) ----------------

# The authors' pooling, with its op name: 8 x 8 stride 1 on the CIFAR nets, global on the
# ImageNet ResNets without the FB head (the head left commented out in the authors' file),
# 7 x 7 stride 1 with the FB head and on Inception-BN.
_CIFAR_POOL = dict(pool_size=8, strides=1, pool_prefix="global_pool_")
_RESNET_POOL = dict(pool_size=None, pool_prefix="pool1_")
_IMAGENET_POOL = dict(pool_size=7, strides=1, pool_prefix="global_pool_")

# The FB head's options; defaults CIFAR F = 20 with FMConvolution3, ImageNet ResNets F = 50
# (the authors' commands pass 50; their script's default is 20), Inception-BN F = 20 (hard
# coded in the authors' file), FMConvolution1 on ImageNet; p = 0.5 everywhere (spec 5.2, 5.6).
_FB_CIFAR = dict(representation="fb", num_factor=20, p=0.5, dropfactor_mode="consistent", op=3)
_FB_RESNET = dict(_FB_CIFAR, num_factor=50, op=1)
_FB_INCEPTION = dict(_FB_CIFAR, op=1)
_FB_KEYS = ("num_factor", "p", "dropfactor_mode", "op")

_SPECS = {
    "resnet164_cifar": (_cifar_resnet_layers, dict(depth=164), _CIFAR_POOL, dict(classes=10)),
    "resnet164_fbn_cifar": (_cifar_resnet_layers, dict(depth=164), _CIFAR_POOL,
                            dict(_FB_CIFAR, classes=10)),
    "resnet1001_cifar": (_cifar_resnet_layers, dict(depth=1001), _CIFAR_POOL, dict(classes=10)),
    "resnet1001_fbn_cifar": (_cifar_resnet_layers, dict(depth=1001), _CIFAR_POOL,
                             dict(_FB_CIFAR, classes=10)),
    "inception_bn_small_cifar": (_inception_small_layers, {}, _CIFAR_POOL, dict(classes=10)),
    "inception_bn_small_fbn_cifar": (_inception_small_layers, {}, _CIFAR_POOL,
                                     dict(_FB_CIFAR, classes=10)),
    "resnet34_preact": (_imagenet_resnet_layers, dict(depth=34), _RESNET_POOL,
                        dict(classes=1000)),
    "resnet34_fbn": (_imagenet_resnet_layers, dict(depth=34), _IMAGENET_POOL,
                     dict(_FB_RESNET, classes=1000)),
    "resnet50_preact": (_imagenet_resnet_layers, dict(depth=50), _RESNET_POOL,
                        dict(classes=1000)),
    "resnet50_fbn": (_imagenet_resnet_layers, dict(depth=50), _IMAGENET_POOL,
                     dict(_FB_RESNET, classes=1000)),
    "inception_bn": (_inception_bn_layers, {}, _IMAGENET_POOL, dict(classes=1000)),
    "inception_bn_fbn": (_inception_bn_layers, {}, _IMAGENET_POOL,
                         dict(_FB_INCEPTION, classes=1000)),
}

# Options every network takes besides its row: the operator implementation, the
# representation (default: the authors' pooling, or the FB head) with its options, frozen
# feature children.
_COMMON = dict(impl="native", representation="gavp", representation_options=None, freeze=0)


def _options(variant):
    return dict(_COMMON, **_SPECS[variant][3])


def _build(trunk, fixed, pool, cfg, prefix):
    """The network of ``trunk(**fixed, act=...)`` with the options ``cfg`` (a full spec row)."""
    cfg = dict(cfg)
    impl = check_impl(cfg.pop("impl"))
    classes, freeze = cfg.pop("classes"), cfg.pop("freeze")
    representation, rep_options = cfg.pop("representation"), cfg.pop("representation_options")
    fb = {k: cfg.pop(k) for k in _FB_KEYS if k in cfg}
    if cfg:
        raise TypeError("unknown option(s) %s" % ", ".join(sorted(cfg)))
    classes = check_positive_int("classes", classes)
    built = {}

    def features():
        # the FB head reads a tanh-activated map (spec 4), the plain classifier a ReLU one
        layers, channels, built["names"] = trunk(
            act="tanh" if representation == "fb" else "relu",
            **dict(fixed, **({"impl": impl} if fixed.get("ibn") else {})))
        seq = nn.HybridSequential(prefix="")
        seq.add(*layers)
        return seq, channels

    def head_options():  # called once the trunk has said the authors' names of its head
        names, user = built["names"], rep_options or {}
        if representation == "gavp":
            return dict(pool, prefix="", **user)
        if representation == "fb":
            return dict(dict(fb, impl=impl, pool_size=pool["pool_size"],
                             strides=pool.get("strides", 1), fb_prefix=names["fb"],
                             linear_prefix=names["linear"], prefix=""), **user)
        return user

    def output(in_units, n):
        return nn.Dense(n, in_units=in_units, weight_initializer=he_normal(),
                        prefix=built["names"]["fc"])
    return Classifier(features, classes, representation, head_options, output, freeze, impl,
                      prefix=prefix)


def _create(variant, **kwargs):
    """Build ``variant`` with its spec-table options overridden by ``kwargs``."""
    trunk, fixed, pool, _ = _SPECS[variant]
    return _build(trunk, fixed, pool, dict(_options(variant), **kwargs), variant + "_")


# ---- variants -------------------------------------------------------------------------------------

@register_model("fbn", input_size=32, options=_options("resnet164_cifar"))
def resnet164_cifar(**kwargs):
    """Pre-activation ResNet-164 (n = 18)."""
    return _create("resnet164_cifar", **kwargs)


@register_model("fbn", input_size=32, options=_options("resnet164_fbn_cifar"))
def resnet164_fbn_cifar(**kwargs):
    """ResNet-164 with the FB head (FMConvolution3, 20 factors, p 0.5 as the authors)."""
    return _create("resnet164_fbn_cifar", **kwargs)


@register_model("fbn", input_size=32, options=_options("resnet1001_cifar"))
def resnet1001_cifar(**kwargs):
    """Pre-activation ResNet-1001 (n = 111)."""
    return _create("resnet1001_cifar", **kwargs)


@register_model("fbn", input_size=32, options=_options("resnet1001_fbn_cifar"))
def resnet1001_fbn_cifar(**kwargs):
    """ResNet-1001 with the FB head."""
    return _create("resnet1001_fbn_cifar", **kwargs)


@register_model("fbn", input_size=32, options=_options("inception_bn_small_cifar"))
def inception_bn_small_cifar(**kwargs):
    """CIFAR Inception-BN-small (authors' ``symbol_inception-bn-small.py``)."""
    return _create("inception_bn_small_cifar", **kwargs)


@register_model("fbn", input_size=32, options=_options("inception_bn_small_fbn_cifar"))
def inception_bn_small_fbn_cifar(**kwargs):
    """Inception-BN-small with the FB head (tanh in both branches of in5b)."""
    return _create("inception_bn_small_fbn_cifar", **kwargs)


@register_model("fbn", options=_options("resnet34_preact"))
def resnet34_preact(**kwargs):
    """Pre-activation ResNet-34 (basic units), the ResNet-34-FBN baseline."""
    return _create("resnet34_preact", **kwargs)


@register_model("fbn", options=_options("resnet34_fbn"))
def resnet34_fbn(**kwargs):
    """ResNet-34 with the FB head (FMConvolution1, 50 factors, as the authors' command)."""
    return _create("resnet34_fbn", **kwargs)


@register_model("fbn", options=_options("resnet50_preact"))
def resnet50_preact(**kwargs):
    """Pre-activation ResNet-50 (bottleneck units), the ResNet-50-FBN baseline."""
    return _create("resnet50_preact", **kwargs)


@register_model("fbn", options=_options("resnet50_fbn"))
def resnet50_fbn(**kwargs):
    """ResNet-50 with the FB head (FMConvolution1, 50 factors)."""
    return _create("resnet50_fbn", **kwargs)


@register_model("fbn", options=_options("inception_bn"))
def inception_bn(**kwargs):
    """Inception-BN (authors' ``imagenet/symbol_inception-bn.py``)."""
    return _create("inception_bn", **kwargs)


@register_model("fbn", options=_options("inception_bn_fbn"))
def inception_bn_fbn(**kwargs):
    """Inception-BN with the FB head (20 factors, p 0.5: hard-coded in the authors' file)."""
    return _create("inception_bn_fbn", **kwargs)


# ---- generic builders (any depth; functions, not registered models: their defaults would be
# the named variants again) ---------------------------------------------------------------------

def preact_resnet_cifar(depth=164, fbn=False, classes=10, **kwargs):
    """CIFAR pre-activation bottleneck ResNet of ``depth = 9n + 2`` (authors'
    ``symbol_resnet-small[-fmconv].py``), plain or with the FB head (``fbn``); ``kwargs`` as
    the named variants (``num_factor``, ``p``, ... with ``fbn``). Prefix
    ``resnet<depth>[_fbn]_cifar_``."""
    cifar_resnet_units(depth)
    cfg = dict(_COMMON, classes=classes, **(_FB_CIFAR if fbn else {}))
    return _build(_cifar_resnet_layers, dict(depth=depth), _CIFAR_POOL, dict(cfg, **kwargs),
                  "resnet%d%s_cifar_" % (depth, "_fbn" if fbn else ""))


def _check_momentum(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError("%s must be a number in [0, 1), got %r" % (name, value))
    return float(value)


def preact_resnet(depth=50, fbn=False, classes=1000, ibn=False, cifar=False, prefix=None,
                  bn_mom=None, unit_bn_mom=None, **kwargs):
    """ImageNet pre-activation ResNet (authors' ``symbol_resnet-fmconv.py``), plain or with the
    FB head (``fbn``); ``depth`` one of 18, 34, 50, 101, 152, 200, 269. Prefix
    ``resnet<depth>_preact_`` or ``resnet<depth>_fbn_`` unless ``prefix`` is given.

    ``ibn`` gives the IBN-a network of the MXNet port of IBN-Net (IBN on the input of every
    bottleneck unit of stages 1-3) and ``cifar`` the same layout on 32 x 32 inputs (any depth
    of :func:`preact_cifar_units`); see :func:`_imagenet_resnet_layers`. Both keep every
    parameter name (``stage<s>_unit<u>_bn1_*``, plus ``_in1_*`` for the IN half).
    ``bn_mom`` / ``unit_bn_mom``: BatchNorm momentum (default 0.9), see
    :func:`_imagenet_resnet_layers`."""
    if cifar:
        preact_cifar_units(depth)
        if fbn:
            raise ValueError("the FB head of this builder is the ImageNet one; use "
                             "preact_resnet_cifar for the FBN CIFAR networks")
    elif depth not in RESNET_UNITS:
        raise ValueError("ImageNet ResNet depth must be one of %s, got %r"
                         % (sorted(RESNET_UNITS), depth))
    cfg = dict(_COMMON, classes=classes, **(_FB_RESNET if fbn else {}))
    fixed = dict(depth=depth, **({"ibn": True} if ibn else {}), **({"cifar": True} if cifar else {}))
    for key, mom in (("bn_mom", bn_mom), ("unit_bn_mom", unit_bn_mom)):
        if mom is not None:
            fixed[key] = _check_momentum(key, mom)
    return _build(_imagenet_resnet_layers, fixed,
                  _IMAGENET_POOL if fbn else _RESNET_POOL, dict(cfg, **kwargs),
                  prefix or "resnet%d_%s_" % (depth, "fbn" if fbn else "preact"))


# ---- the FBN seed's --network values (spec 5.1, 5.2) and data pipeline (spec 5.5) --------------

def _cifar_depth(depth, res_module_num):
    """``--res-module-num n`` is depth 9n + 2; ``--depth`` may be given instead."""
    if res_module_num is None:
        return depth
    from_n = 9 * res_module_num + 2
    if depth is not None and depth != from_n:
        raise ValueError("--depth %d contradicts --res-module-num %d (depth %d)"
                         % (depth, res_module_num, from_n))
    return from_n


# Seed flag -> builder option (None values are dropped by the caller: builder defaults apply).
def _resnet_small(depth=None, res_module_num=None):
    return dict(depth=_cifar_depth(depth, res_module_num))


def _resnet_small_fmconv(depth=None, res_module_num=None, fmconv_factor=None, fmconv_drop=None):
    return dict(depth=_cifar_depth(depth, res_module_num), fbn=True, num_factor=fmconv_factor,
                p=fmconv_drop)


def _fmconv(fmconv_factor=None, fmconv_drop=None):
    return dict(num_factor=fmconv_factor, p=fmconv_drop)


def _resnet_fmconv(depth=None, fmconv_factor=None, fmconv_drop=None):
    return dict(depth=depth, fbn=True, num_factor=fmconv_factor, p=fmconv_drop)


def _resnet_plain(depth=None):
    return dict(depth=depth)


def _no_flags():
    return {}


register_seed_network("resnet-small", preact_resnet_cifar, _resnet_small, "fbn", 32)
register_seed_network("resnet-small-fmconv", preact_resnet_cifar, _resnet_small_fmconv, "fbn", 32)
register_seed_network("inception-bn-small", "inception_bn_small_cifar", _no_flags)
register_seed_network("inception-bn-small-fmconv", "inception_bn_small_fbn_cifar", _fmconv)
register_seed_network("resnet-fmconv", preact_resnet, _resnet_fmconv, "fbn")
# The repository has no plain ImageNet ResNet symbol (its baseline is the same trunk with the
# head commented out); `resnet` is the IGC seed's CIFAR ResNet, hence this name.
register_seed_network("resnet-preact", preact_resnet, _resnet_plain, "fbn")
register_seed_network("inception-bn", "inception_bn", _no_flags)
# The authors' file hard-codes 20 factors and p 0.5 and ignores these flags; their command
# passes exactly those values, so the flags are honoured here.
register_seed_network("inception-bn-fmconv", "inception_bn_fbn", _fmconv)


# ---- the FBN training recipe (spec 5.1, 5.4) ---------------------------------------------------

class FBNRule(OptimizerRule):
    """The FBN scripts' optimizer rules.

    ``slowstart`` E > 0: a linear warm-up of the global lr from ``scale * lr`` over E epochs
    (the "slow start", spec 5.4). It counts absolute updates like every schedule here, so
    unlike the authors' scheduler it is right after a resume (theirs ramps again up to the
    first lr step when the run resumes after the slow start). ``fmconv``: lr multiplier
    ``scale`` on the FB quadratic terms (:func:`~gluon_models.nn.fb_parameters`; spec 5.1),
    ignored with a slow start as in the authors' scripts.
    """

    def __init__(self, slowstart=0.0, scale=0.1, fmconv=False):
        if slowstart < 0:
            raise ValueError("fmconv_slowstart must be >= 0, got %r" % (slowstart,))
        if scale < 0:
            raise ValueError("fmconv_scale must be >= 0, got %r" % (scale,))
        self.slowstart, self.scale, self.fmconv = float(slowstart), float(scale), bool(fmconv)

    def warmup(self, cfg):
        return (self.slowstart, self.scale * cfg.lr) if self.slowstart else None

    def lr_mult(self, net, mult):
        if self.fmconv and self.slowstart:
            _LOG.info("--fmconv is ignored with --fmconv-slowstart (as in the FBN scripts)")
        elif self.fmconv:
            fb = [p.name for p in fb_parameters(net) if p.name in mult]
            if not fb:
                raise ValueError("--fmconv scales the lr of FB layers, but this network has "
                                 "none")
            for name in fb:
                mult[name] *= self.scale
            _LOG.info("lr multiplier %g on the FB parameters %s", self.scale, ", ".join(fb))


def _rules(args):
    rule = FBNRule(getattr(args, "fmconv_slowstart", 0.0), getattr(args, "fmconv_scale", 0.1),
                   getattr(args, "fmconv", False))
    return [rule] if rule.slowstart or rule.fmconv else []


# Both FBN scripts subtract the ImageNet means only, no std (spec 5.5).
FBN_MEAN_RGB = (123.68, 116.779, 103.939)

register_family(
    "fbn",
    # CIFAR pads with white before the mean subtraction; on ImageNet the warps' border keeps
    # ImageRecordIter's default 255 (spec 5.5): the defaults of train_cifar.py on
    # CIFAR-10/100 and of train_imagenet.py.
    aug_presets={"fbn": AugPreset(4, 255, True, FBN_MEAN_RGB, (1.0, 1.0, 1.0))},
    imagenet_norms={"fbn": Norm(FBN_MEAN_RGB, (1.0, 1.0, 1.0), 255)},
    cifar_aug={"cifar10": "fbn", "cifar100": "fbn"}, imagenet_norm="fbn",
    model_flags={
        "depth": (dict(type=positive_int, help="network depth (CIFAR 9n + 2; ImageNet ResNet "
                                               "18 ... 269)"), "depth"),
        "res_module_num": (dict(type=positive_int, help="CIFAR ResNet units per stage n (depth "
                                                        "9n + 2; 18 -> 164, 111 -> 1001); "
                                                        "seed networks resnet-small[-fmconv]"),
                           None),
        "fmconv_factor": (dict(type=positive_int, help="FB layer factors per output "
                                                       "(num_factor); default: the model's "
                                                       "(CIFAR 20, ImageNet ResNet 50, "
                                                       "Inception-BN 20)"), "num_factor"),
        "fmconv_drop": (dict(type=fraction, help="FB layer DropFactor drop rate p, in [0, 1); "
                                                 "default: the model's (0.5)"), "p"),
    },
    train_flags={
        "fmconv_slowstart": dict(type=non_negative_float, default=0.0, metavar="E",
                                 help="slow start: linear warm-up of the lr from "
                                      "--fmconv-scale * lr over E epochs"),
        "fmconv_scale": dict(type=positive_float, default=0.1,
                             help="the slow start's initial lr ratio, and --fmconv's "
                                  "multiplier"),
        "fmconv": dict(action="store_true",
                       help="lr multiplier --fmconv-scale on the FB layers' quadratic terms "
                            "(ignored with --fmconv-slowstart, as in the seeds)"),
    },
    optimizer_rules=_rules)
