"""Fast MPN-COV: global covariance pooling by iterative matrix square root normalization
(P. Li, J. Xie, Q. Wang, Z. Gao, "Towards Faster Training of Global Covariance Pooling Networks
by Iterative Matrix Square Root Normalization", CVPR 2018, https://arxiv.org/abs/1712.01034;
authors' code https://github.com/jiangtaoxie/fast-MPN-COV).

The authors' repository composes every model as ``features -> representation -> classifier``
(its ``Basemodel`` / ``Newmodel``); here that is :class:`~.compose.Classifier`. This module
registers

* the representations it offers besides average pooling, so any backbone takes them with
  ``get_model(name, representation=...)``: ``isqrtcov`` (iSQRT-COV,
  :class:`~gluon_models.nn.ISqrtCov`; options ``reduced_dim``, ``iter_num``, ``sqrt``,
  ``vectorize``), ``bcnn`` (bilinear pooling, :class:`~gluon_models.nn.BCNN`; ``vectorize``,
  ``eps``) and ``cbp`` (compact bilinear pooling, :class:`~gluon_models.nn.CBP`; ``proj_dim``,
  ``seed``);
* the repository's backbones, by its own function names (family ``mpncov``), built from
  gluoncv at the repository's split points: ``alexnet``, ``vgg11`` ... ``vgg19`` and their
  ``_bn`` variants, ``resnet18`` ... ``resnet152`` (torchvision layout, i.e. gluoncv's
  ``resnet*_v1b``: stride on the 3 x 3 convolution), ``densenet121/161/169/201`` and
  ``inception_v3`` (gluoncv ``inceptionv3``, 299 pixels);
* the fast MPN-COV networks ``mpncov_resnet50``, ``mpncov_resnet101`` and ``mpncov_vgg16_bn``
  (the repository's ``mpncovresnet50``, ``mpncovresnet101``, ``mpncovvgg16_bn``).

Name tokens: a bare backbone name is the repository's (and torchvision's) function name:
``alexnet``; ``vgg<depth>`` (configurations A/B/D/E), ``_bn`` BatchNorm after every
convolution; ``resnet<depth>``; ``densenet<depth>`` (DenseNet-BC); ``inception_v3``. The prefix
``mpncov_`` marks the paper's networks: a backbone whose head is iSQRT-COV (N = 5) on a
256-channel map, reduced from the backbone's last stage by a 1 x 1 conv + BN + ReLU.

Options of the backbones (every model takes ``classes``, ``freeze``, ``impl``):

* ``representation``: None (the backbone's own: global average pooling, or for AlexNet / VGG
  their last max pooling read by their fully connected head), ``"gavp"``, ``"isqrtcov"``,
  ``"bcnn"``, ``"cbp"``, or another family's registered representation (e.g. ``"gmsop"``),
  with ``representation_options``;
* ``reduced_dim``: iSQRT-COV's dimension reduction (default 256, the repository's preset when
  training from scratch; 0: none);
* the classifier follows the repository's rules for a model trained from scratch (its
  ``Newmodel``): AlexNet / VGG keep their 3-layer head, its first layer resized to the
  representation and its last to ``classes``; the others get one fully connected layer;
* ``pretrained_head=True``: the head the repository builds when it fine-tunes from pretrained
  weights (``--pretrained``): one fully connected layer on any representation (AlexNet / VGG
  drop fc6 / fc7, so they need a representation: without one the repository fails), and
  iSQRT-COV without dimension reduction unless ``reduced_dim`` is given (VGG: 131,328
  dimensions; on 2048 channels that is one of the senseless combinations below). New
  fully connected layers are initialised as PyTorch's (weights and biases
  ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``), the heads' own layers as the repository's
  (VGG / MPN-COV-VGG ``N(0, 0.01)``, zero bias).

Combinations the repository cannot build, or builds into something senseless, raise
``ValueError`` naming them: ``mpncov_resnet*`` without a representation, ``mpncov_vgg16_bn``
with another representation than its own, second-order vectors of more than 512 channels
(B-CNN or iSQRT-COV without reduction on ResNet-50's 2048 channels: 4,194,304 / 2,098,176
dimensions), and options of a representation that is not requested.
"""
import math

import mxnet as mx
from mxnet.gluon import nn

from ..nn.basic import ConvBNAct, check_impl, check_int, check_positive_int, fc_uniform
from ..nn.representation import BCNN, CBP, ISqrtCov
from .compose import Classifier, gluoncv_features, register_representation, representations
from .registry import register_family, register_model
from .weight_map import (TORCHVISION_ALEXNET, TORCHVISION_DENSENET,
                         TORCHVISION_INCEPTION_V3, TORCHVISION_RESNET, TORCHVISION_VGG,
                         WeightMap)

__all__ = []


# The factory names ``impl``, so the network's choice (native operator or stock twin) reaches
# the iSQRT-COV block.
def _isqrtcov(in_channels, classes, impl="native", **options):
    return ISqrtCov(in_channels, impl=impl, **options)


def _bcnn(in_channels, classes, **options):
    return BCNN(in_channels, **options)


def _cbp(in_channels, classes, **options):
    return CBP(in_channels, **options)


register_representation("isqrtcov", _isqrtcov)
register_representation("bcnn", _bcnn)
register_representation("cbp", _cbp)


# ---- heads ------------------------------------------------------------------------------------

def _new_dense(in_units, units, prefix):
    """A fully connected layer the repository creates (PyTorch's default initialisation:
    weight and bias ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``)."""
    bound = 1.0 / math.sqrt(in_units)
    return nn.Dense(units, in_units=in_units, weight_initializer=fc_uniform(),
                    bias_initializer=mx.init.Uniform(bound), prefix=prefix)


def _own_dense(in_units, units, prefix, init):
    """A fully connected layer of the backbone's own head, with the backbone's init:
    ``"normal"``: ``N(0, 0.01)``, zero bias (VGG, MPN-COV-VGG); ``"pytorch"``: PyTorch's
    default (torchvision's AlexNet of 2018 sets none)."""
    if init == "pytorch":
        return _new_dense(in_units, units, prefix)
    return nn.Dense(units, in_units=in_units, weight_initializer=mx.init.Normal(0.01),
                    prefix=prefix)


def _fc_head(in_units, classes, dropout_first, new_first, init):
    """The 3-layer head of AlexNet / VGG / MPN-COV-VGG: ``fc6 -> ReLU -> Dropout -> fc7 ->
    ReLU -> Dropout -> fc8`` (AlexNet: the dropouts before fc6 and fc7). fc8 is always the
    repository's new ``Linear(4096, classes)``; fc6 is new when a representation replaced the
    backbone's own (``new_first``), else the backbone's."""
    head = nn.HybridSequential(prefix="")
    fc6 = (_new_dense(in_units, 4096, "fc6_") if new_first
           else _own_dense(in_units, 4096, "fc6_", init))
    relu = lambda i: nn.Activation("relu", prefix="relu%d_" % i)  # noqa: E731
    drop = lambda i: nn.Dropout(0.5, prefix="drop%d_" % i)  # noqa: E731
    if dropout_first:  # torchvision AlexNet: Dropout, fc6, ReLU, Dropout, fc7, ReLU, fc8
        head.add(drop(6), fc6, relu(6), drop(7), _own_dense(4096, 4096, "fc7_", init), relu(7))
    else:  # VGG: fc6, ReLU, Dropout, fc7, ReLU, Dropout, fc8
        head.add(fc6, relu(6), drop(6), _own_dense(4096, 4096, "fc7_", init), relu(7), drop(7))
    head.add(_new_dense(4096, classes, "fc8_"))
    return head


def _named(children):
    """A sequential block whose children have the given structural names (``features.conv1``
    instead of ``features.0``, attribute ``features.conv1``): the repository's module names,
    for weight conversion."""
    seq = nn.HybridSequential(prefix="")
    for name, block in children:
        setattr(seq, name, block)  # Block.__setattr__ registers the child under that name
    return seq


# ---- specification ------------------------------------------------------------------------------

# name -> (gluoncv network, input size, kind, channels of the last feature map). Kinds: "fc"
# networks (AlexNet, VGG) read their last max pooling (window, stride, map side at the input
# size) with a 3-layer head; "pool" networks pool globally into one fully connected layer.
_VGG_POOL = dict(pool_size=2, strides=2, map_size=14)      # pool5: 14 x 14 -> 7 x 7 (25,088)
_ALEXNET_POOL = dict(pool_size=3, strides=2, map_size=13)  # 13 x 13 -> 6 x 6 (9,216)
_BACKBONES = {"alexnet": ("alexnet", 224, "alexnet", 256)}
for _d in (11, 13, 16, 19):
    for _bn in ("", "_bn"):
        _BACKBONES["vgg%d%s" % (_d, _bn)] = ("vgg%d%s" % (_d, _bn), 224, "vgg", 512)
for _d, _c in ((18, 512), (34, 512), (50, 2048), (101, 2048), (152, 2048)):
    _BACKBONES["resnet%d" % _d] = ("resnet%d_v1b" % _d, 224, "pool", _c)
for _d, _c in ((121, 1024), (161, 2208), (169, 1664), (201, 1920)):
    _BACKBONES["densenet%d" % _d] = ("densenet%d" % _d, 224, "pool", _c)
_BACKBONES["inception_v3"] = ("inceptionv3", 299, "pool", 2048)

_REPRESENTATION_NAMES = (None, "gavp", "isqrtcov", "bcnn", "cbp")
# The widest map a full second-order vector is taken of: VGG's 512 channels (B-CNN 262,144-d,
# iSQRT-COV 131,328-d). ResNet-50's 2048 would give 4,194,304 / 2,098,176 dimensions and a
# classifier of billions of parameters (spec: the repository's senseless combinations).
_MAX_SECOND_ORDER_CHANNELS = 512
_REDUCED_DIM = 256  # the repository's MPNCOV preset from scratch, and every paper network

_COMMON = dict(classes=1000, representation_options=None, freeze=0, impl="native")


def _backbone_options(name):
    kind = _BACKBONES[name][2]
    return dict(_COMMON, representation=None if kind in ("vgg", "alexnet") else "gavp",
                reduced_dim=None, pretrained_head=False)


def _second_order_check(name, representation, channels, options):
    dim = options.get("reduced_dim") or channels
    if representation in ("bcnn", "isqrtcov") and dim > _MAX_SECOND_ORDER_CHANNELS:
        raise ValueError(
            "%s + %s on %d channels without reduction (a %d-dimensional vector) is one of the "
            "fast MPN-COV repository's senseless combinations; %s"
            % (name, representation, dim,
               dim * dim if representation == "bcnn" else dim * (dim + 1) // 2,
               "use cbp, isqrtcov with reduced_dim, or mpncov_resnet*"
               if representation == "bcnn" else "set reduced_dim (e.g. 256, the preset from scratch)"))


def _representation(name, representation, channels, rep_options, reduced_dim,
                    pretrained_head=False):
    """The (name, options) handed to Classifier, after the repository's rules; besides the
    repository's representations a backbone takes any other family's registered one (e.g.
    GM-SOP's ``gmsop`` head)."""
    allowed = _REPRESENTATION_NAMES + tuple(
        r for r in representations() if r not in _REPRESENTATION_NAMES and r != "maxpool")
    if representation not in allowed:
        raise ValueError("%s: representation must be one of %s, got %r"
                         % (name, ", ".join(map(str, allowed)), representation))
    options = dict(rep_options or {})
    if representation != "isqrtcov" and (reduced_dim is not None or "reduced_dim" in options):
        raise ValueError("%s: reduced_dim applies to representation='isqrtcov', not %r"
                         % (name, representation))
    if representation == "isqrtcov":
        if reduced_dim is not None and "reduced_dim" in options:
            raise ValueError("%s: reduced_dim given twice (option and representation_options)"
                             % name)
        dim = options.pop("reduced_dim", reduced_dim)
        default = 0 if pretrained_head else _REDUCED_DIM  # the preset drops DR when pretrained
        dim = default if dim is None else check_int("reduced_dim", dim, 0)
        options["reduced_dim"] = dim or None  # 0: no reduction
    if representation is None and rep_options:
        raise ValueError("%s: representation_options %s without a representation"
                         % (name, sorted(rep_options)))
    _second_order_check(name, representation, channels, options)
    return representation, options


def _create_backbone(name, **kwargs):
    cfg = dict(_backbone_options(name), **kwargs)
    gluoncv_name, _, kind, channels = _BACKBONES[name]
    classes = check_positive_int("classes", cfg["classes"])
    impl = check_impl(cfg["impl"])
    pretrained_head = bool(cfg["pretrained_head"])
    representation, options = _representation(
        name, cfg["representation"], channels, cfg["representation_options"],
        cfg["reduced_dim"], pretrained_head)
    if pretrained_head and kind in ("vgg", "alexnet") and representation is None:
        raise ValueError("%s with pretrained_head=True and no representation: the head for "
                         "pretrained weights is one fully connected layer on a representation "
                         "(the repository fails on this combination); name a representation, "
                         "or use pretrained_head=False for the network's own 3-layer head"
                         % name)
    if pretrained_head:
        representation = representation or "gavp"

        def output(in_units, n):
            return _new_dense(in_units, n, "fc_")
    elif kind in ("vgg", "alexnet"):
        own = representation is None
        if own:  # the backbone's own last max pooling, read by its head
            representation, options = "maxpool", dict(
                _VGG_POOL if kind == "vgg" else _ALEXNET_POOL, prefix="pool5_")

        def output(in_units, n):
            return _fc_head(in_units, n, kind == "alexnet", not own,
                            "normal" if kind == "vgg" else "pytorch")
    else:
        representation = representation or "gavp"  # the backbone's own: average pooling

        def output(in_units, n):
            return _new_dense(in_units, n, "fc_")

    def features():
        return gluoncv_features(gluoncv_name)
    return Classifier(features, classes, representation, options, output, cfg["freeze"], impl,
                      prefix=name + "_")


# ---- the fast MPN-COV networks ----------------------------------------------------------------

_STAGES = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")


def _mpncov_resnet_features(depth):
    """ResNet v1.5 (gluoncv ``resnet<depth>_v1b``) with ``layer4`` at stride 1 (output stride
    16) and the 1 x 1 reduction 2048 -> 256 (no bias) + BN + ReLU, as the repository's
    ``mpncovresnet``; children named as its modules (spec of the repository, section 4.4)."""
    trunk, channels = gluoncv_features("resnet%d_v1b" % depth, last_stride=1)
    reduce = ConvBNAct(channels, _REDUCED_DIM, 1, conv_prefix="layer_reduce_",
                       bn_prefix="layer_reduce_bn_", act_prefix="layer_reduce_relu_", prefix="")
    # Kaiming-normal in fan-out mode like every convolution of the network (BN: 1 / 0)
    reduce.conv.weight.init = mx.init.MSRAPrelu(factor_type="out", slope=0)
    children = list(zip(_STAGES, trunk._children.values()))
    children += [("layer_reduce", reduce.conv), ("layer_reduce_bn", reduce.bn),
                 ("layer_reduce_relu", reduce.act)]
    return _named(children), _REDUCED_DIM


def _mpncov_vgg_features():
    return gluoncv_features("vgg16_bn")


# name -> (features, the network's own representation options, own head)
_NETWORKS = {
    "mpncov_resnet50": (lambda: _mpncov_resnet_features(50), dict(reduced_dim=None), False),
    "mpncov_resnet101": (lambda: _mpncov_resnet_features(101), dict(reduced_dim=None), False),
    "mpncov_vgg16_bn": (_mpncov_vgg_features, dict(reduced_dim=_REDUCED_DIM), True),
}


def _network_options(name):
    return dict(_COMMON, representation="isqrtcov")


def _create_network(name, **kwargs):
    """A fast MPN-COV network: its own iSQRT-COV (N = 5) head by default.

    ``mpncov_resnet*`` take another representation of the 256-channel map (the repository
    builds one on its ``features``) but not None (the repository then has no representation
    and fails). ``mpncov_vgg16_bn``'s reduction is inside its representation, so it takes no
    other; None keeps that representation and replaces the 3-layer head by one fully
    connected layer (what the repository's ``Newmodel`` does without a representation).
    """
    cfg = dict(_network_options(name), **kwargs)
    make_features, own_options, own_head = _NETWORKS[name]
    classes = check_positive_int("classes", cfg["classes"])
    impl = check_impl(cfg["impl"])
    representation, rep_options = cfg["representation"], dict(cfg["representation_options"] or {})
    if representation not in _REPRESENTATION_NAMES:
        raise ValueError("%s: representation must be one of %s, got %r"
                         % (name, ", ".join(map(str, _REPRESENTATION_NAMES)), representation))
    if own_head:
        if representation not in (None, "isqrtcov"):
            raise ValueError("%s with representation=%r: its iSQRT-COV is part of the network "
                             "(the repository fails on this combination); use None (one fully "
                             "connected layer on its representation) or 'isqrtcov'"
                             % (name, representation))
        collapse, representation = representation is None, "isqrtcov"
    elif representation is None:
        raise ValueError("%s with representation=None: the network has no representation of "
                         "its own besides iSQRT-COV (the repository fails on this "
                         "combination); use 'isqrtcov', 'gavp', 'bcnn' or 'cbp'" % name)
    if representation == "isqrtcov":
        rep_options = dict(own_options, iter_num=5, **rep_options)

    def output(in_units, n):
        if own_head and not collapse:
            return _fc_head(in_units, n, False, False, "normal")
        return _new_dense(in_units, n, "fc_")
    net = Classifier(make_features, classes, representation, rep_options, output,
                     cfg["freeze"], impl, prefix=name + "_")
    if own_head:  # the network's init loop draws its reduction conv as its Linear layers
        net.representation.reduce.conv.weight.init = mx.init.Normal(0.01)
    return net


# ---- variants -----------------------------------------------------------------------------------

def _register_backbone(name):
    """One registered builder per repository backbone name (all alike; the table is above)."""
    def builder(**kwargs):
        return _create_backbone(name, **kwargs)
    builder.__name__ = builder.__qualname__ = name
    builder.__module__ = __name__
    builder.__doc__ = ("The fast MPN-COV repository's ``%s`` backbone (gluoncv ``%s``, %d "
                       "pixels); see the module docstring for its options."
                       % ((name,) + _BACKBONES[name][:2]))
    register_model("mpncov", input_size=_BACKBONES[name][1],
                   options=_backbone_options(name))(builder)
    return builder


for _name in _BACKBONES:
    globals()[_name] = _register_backbone(_name)


@register_model("mpncov", options=_network_options("mpncov_resnet50"))
def mpncov_resnet50(**kwargs):
    """Fast MPN-COV-ResNet-50: 56,929,832 parameters with 1000 classes."""
    return _create_network("mpncov_resnet50", **kwargs)


@register_model("mpncov", options=_network_options("mpncov_resnet101"))
def mpncov_resnet101(**kwargs):
    """Fast MPN-COV-ResNet-101: 75,921,960 parameters with 1000 classes."""
    return _create_network("mpncov_resnet101", **kwargs)


@register_model("mpncov", options=_network_options("mpncov_vgg16_bn"))
def mpncov_vgg16_bn(**kwargs):
    """Fast MPN-COV-VGG-D (VGG-16 with BN, no pool5): 170,479,144 parameters."""
    return _create_network("mpncov_vgg16_bn", **kwargs)


# ---- PyTorch weights --------------------------------------------------------------------------

# The repository's mpncovresnet: torchvision's ResNet names plus layer_reduce(_bn), all but fc
# inside our `features` under the same names; or, in a checkpoint of its main.py (Basemodel
# of a pretrained mpncovresnet), the same children numbered inside `features` and `fc` as
# `classifier`.
_MPNCOV_CHILDREN = _STAGES + ("layer_reduce", "layer_reduce_bn")
_MPNCOV_RESNET_WEIGHTS = WeightMap.renames(dict(
    {n: "features." + n for n in _MPNCOV_CHILDREN}, fc="output",
    **{"features.%d" % i: "features." + n for i, n in enumerate(_MPNCOV_CHILDREN)},
    classifier="output"))
# The repository's mpncovvgg16_bn: VGG's features and 3-layer classifier, and its MPNCOV's
# reduction block conv_dr_block (conv, BN, ReLU).
_MPNCOV_VGG_WEIGHTS = TORCHVISION_VGG.then(WeightMap.renames({
    "representation.conv_dr_block.0": "representation.reduce.conv",
    "representation.conv_dr_block.1": "representation.reduce.bn"}))

register_family("mpncov", imagenet_norm="imagenet", weight_maps={
    "resnet*": TORCHVISION_RESNET, "vgg*": TORCHVISION_VGG, "alexnet": TORCHVISION_ALEXNET,
    "densenet*": TORCHVISION_DENSENET, "inception_v3": TORCHVISION_INCEPTION_V3,
    "mpncov_resnet*": _MPNCOV_RESNET_WEIGHTS,
    "mpncov_vgg16_bn": _MPNCOV_VGG_WEIGHTS})
