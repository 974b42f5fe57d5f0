"""GM-SOP: global gated mixture of second-order pooling (Z. Wang, B. Gao, J. Xie, W. Zuo,
P. Li, NeurIPS 2018; authors' code https://github.com/ZilinGao/GM-SOP), on downsampled
ImageNet (64 x 64, Chrabaszcz et al. 2017).

This module registers

* the representations ``gmsop`` and ``gmgap`` (:class:`~gluon_models.nn.gmsop.GatedMixture`
  with SR-SOP or average-pooled components; they give the class scores), so any backbone
  takes them: ``get_model("resnet50", representation="gmsop", representation_options=...)``;
* the authors' networks (family ``gmsop``, input 64 x 64), built on their post-activation
  ResNet template (a 3 x 3 stem with bias, no max pooling, four stages of basic blocks of
  widths 16k, 32k, 64k, 128k; stage 5 keeps stride 1 in front of second-order pooling, a
  16 x 16 map):

==================================  =========================================================
name                                network (authors' init file)
==================================  =========================================================
``resnet18_imagenet64``             ResNet-18 (k = 1, 2 blocks per stage), GAP (baseline)
``wrn36_2_imagenet64``              WRN-36-2 (k = 2, 4 blocks per stage), GAP (baseline)
``sr_sop_resnet18_imagenet64``      ResNet-18, SR-SOP of the 128-channel map (8256-d)
``gmgap16_8_resnet18_imagenet64``   ResNet-18, GM-GAP with N = 16, K = 8
``gmgap16_8_wrn36_2_imagenet64``    WRN-36-2, GM-GAP
``gmsop16_8_resnet18_imagenet64``   ResNet-18, GM-SOP (parametric SOP components)
``gmsop16_8_wrn36_2_imagenet64``    WRN-36-2, GM-SOP (dropout 0.4)
==================================  =========================================================

Options: ``classes``, ``impl``, ``freeze``; the GM networks also ``num_components`` (N),
``top_k`` (K), ``dropout``, ``noise``, ``routing`` and ``fallback`` (see
:class:`~gluon_models.nn.gmsop.GatedMixture`). Initialisation as the authors': Gaussian
``sqrt(2 / fan_in)`` convolutions and classifiers, zero biases, BN 1 / 0 with momentum 0.7,
gate matrices ``1 / Dg``, and the stem's weights divided by 60 with learning-rate multiplier
``1 / 3600`` (the inputs are only mean-subtracted, a pixel std of about 60). The GM networks'
balance loss reaches the trainer through ``extra_losses`` (weight 100 on the summed
cross-entropy, i.e. ``100 / B`` on the mean).

The authors' schedule of each network (:data:`SCHEDULES`: batch 256 or 150, 40-75 epochs,
the lr divided by 10 at fixed epochs, SGD with momentum 0.9 and weight decay 1e-4) is its
default in the training tools (``register_family(train_defaults=...)``); flags override it.
"""
import mxnet as mx
from mxnet.gluon import nn

from ..data.presets import AugPreset
from ..nn.basic import ConvBNAct, check_impl, check_int, relu
from ..nn.gmsop import GatedMixture
from .compose import Classifier, register_representation
from .registry import register_family, register_model

__all__ = ["PostActBlock", "imagenet64_features", "STEM_SCALE", "IMAGENET64_AUG", "SCHEDULES"]

STEM_SCALE = 60.0  # the stem's weights / 60, lr multiplier 1 / 60^2
_BN = dict(momentum=0.7, epsilon=1e-5)


def _gmsop(in_channels, classes, impl="native", **options):
    return GatedMixture(in_channels, classes, pool="sop", impl=impl,
                        **dict(dict(prefix="gm_"), **options))


def _gmgap(in_channels, classes, impl="native", **options):
    return GatedMixture(in_channels, classes, pool="gap", impl=impl,
                        **dict(dict(prefix="gm_"), **options))


register_representation("gmsop", _gmsop)
register_representation("gmgap", _gmgap)


# ---- the authors' post-activation ResNet template ---------------------------------------------

def _msra_in():
    return mx.init.MSRAPrelu(factor_type="in", slope=0.0)


class PostActBlock(nn.HybridBlock):
    """ResNet-v1 basic block: ``relu(BN(conv3x3(relu(BN(conv3x3(x))))) + shortcut)``; the
    shortcut is a 1 x 1 conv + BN when the width or the stride changes."""

    def __init__(self, in_channels, channels, stride, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.a = ConvBNAct(in_channels, channels, 3, stride, 1, norm_kwargs=_BN, prefix="a_")
            self.b = ConvBNAct(channels, channels, 3, 1, 1, act=False, norm_kwargs=_BN,
                               prefix="b_")
            self.proj = ConvBNAct(in_channels, channels, 1, stride, 0, act=False,
                                  norm_kwargs=_BN, prefix="proj_") \
                if stride != 1 or in_channels != channels else None
            for conv in (self.a, self.b, self.proj):
                if conv is not None:
                    conv.conv.weight.init = _msra_in()

    def hybrid_forward(self, F, x):
        shortcut = self.proj(x) if self.proj is not None else x
        return relu(F, self.b(self.a(x)) + shortcut)


def imagenet64_features(width, blocks, last_stride):
    """``(features, channels)``: the authors' 64 x 64 trunk with stage widths ``16 * width
    ... 128 * width``, ``blocks`` basic blocks per stage and stride ``last_stride`` in stage 5
    (2: an 8 x 8 map for average pooling; 1: 16 x 16 for second-order pooling)."""
    features = nn.HybridSequential(prefix="")
    stem = ConvBNAct(3, 16, 3, 1, 1, use_bias=True, norm_kwargs=_BN, prefix="stem_")
    # N(0, sqrt(2 / fan_in)) / 60, trained with lr / 60^2
    stem.conv.weight.init = mx.init.Xavier(rnd_type="gaussian", factor_type="in",
                                           magnitude=2.0 / STEM_SCALE ** 2)
    stem.conv.weight.lr_mult = 1.0 / STEM_SCALE ** 2
    features.add(stem)
    c = 16
    for s, stride in zip(range(2, 6), (1, 2, 2, last_stride)):
        stage = nn.HybridSequential(prefix="stage%d_" % s)
        w = 2 ** (s + 2) * width
        with stage.name_scope():
            for i in range(blocks):
                stage.add(PostActBlock(c, w, stride if i == 0 else 1, prefix="block%d_" % i))
                c = w
        features.add(stage)
    return features, c


# ---- specification: name -> (width k, blocks per stage, representation, its options) --------

_SOP = dict(iter_num=3, order="column", eps=1e-8)
_SPECS = {
    "resnet18_imagenet64": (1, 2, "gavp", {}),
    "wrn36_2_imagenet64": (2, 4, "gavp", {}),
    "sr_sop_resnet18_imagenet64": (1, 2, "isqrtcov", _SOP),
    "gmgap16_8_resnet18_imagenet64": (1, 2, "gmgap", dict(gate_widths=(256, 128),
                                                          component_widths=(512,))),
    "gmgap16_8_wrn36_2_imagenet64": (2, 4, "gmgap", dict(gate_widths=(512,),
                                                         component_widths=(512,))),
    "gmsop16_8_resnet18_imagenet64": (1, 2, "gmsop", dict(gate_widths=(256, 128),
                                                          component_widths=(256, 128))),
    "gmsop16_8_wrn36_2_imagenet64": (2, 4, "gmsop", dict(gate_widths=(512, 128),
                                                         component_widths=(512, 128))),
}
_COMMON = dict(classes=1000, impl="native", freeze=0)
_GM = dict(num_components=16, top_k=8, dropout=0.2, noise="per_sample", routing="dense",
           fallback="training")
_GM_KEYS = tuple(_GM)
_DROPOUT = {"gmsop16_8_wrn36_2_imagenet64": 0.4}


def _options(variant):
    if _SPECS[variant][2] not in ("gmsop", "gmgap"):
        return dict(_COMMON)
    return dict(_COMMON, **dict(_GM, dropout=_DROPOUT.get(variant, _GM["dropout"])))


def _create(variant, **kwargs):
    """Build ``variant`` with its spec-table options overridden by ``kwargs``."""
    width, blocks, representation, fixed = _SPECS[variant]
    cfg = dict(_options(variant), **kwargs)
    impl = check_impl(cfg.pop("impl"))
    classes, freeze = check_int("classes", cfg.pop("classes")), cfg.pop("freeze")
    options = dict(fixed, **{k: cfg.pop(k) for k in _GM_KEYS if k in cfg})
    if cfg:
        raise TypeError("unknown option(s) %s" % ", ".join(sorted(cfg)))
    last_stride = 2 if representation in ("gavp", "gmgap") else 1

    def features():
        return imagenet64_features(width, blocks, last_stride)

    def output(in_units, n):
        return nn.Dense(n, in_units=in_units, weight_initializer=_msra_in(), prefix="fc_")
    return Classifier(features, classes, representation, options, output, freeze, impl,
                      prefix=variant + "_")


# ---- variants -----------------------------------------------------------------------------------

@register_model("gmsop", input_size=64, options=_options("resnet18_imagenet64"))
def resnet18_imagenet64(**kwargs):
    """The authors' ResNet-18 baseline (GAP, 128-d): 829,192 parameters."""
    return _create("resnet18_imagenet64", **kwargs)


@register_model("gmsop", input_size=64, options=_options("wrn36_2_imagenet64"))
def wrn36_2_imagenet64(**kwargs):
    """The authors' WRN-36-2 baseline (GAP, 256-d): 6,184,840 parameters."""
    return _create("wrn36_2_imagenet64", **kwargs)


@register_model("gmsop", input_size=64, options=_options("sr_sop_resnet18_imagenet64"))
def sr_sop_resnet18_imagenet64(**kwargs):
    """ResNet-18 with SR-SOP (8256-d): 8,957,192 parameters."""
    return _create("sr_sop_resnet18_imagenet64", **kwargs)


@register_model("gmsop", input_size=64, options=_options("gmgap16_8_resnet18_imagenet64"))
def gmgap16_8_resnet18_imagenet64(**kwargs):
    """GM-GAP-16-8 + ResNet-18: 2,333,192 parameters."""
    return _create("gmgap16_8_resnet18_imagenet64", **kwargs)


@register_model("gmsop", input_size=64, options=_options("gmgap16_8_wrn36_2_imagenet64"))
def gmgap16_8_wrn36_2_imagenet64(**kwargs):
    """GM-GAP-16-8 + WRN-36-2: 8,687,496 parameters."""
    return _create("gmgap16_8_wrn36_2_imagenet64", **kwargs)


@register_model("gmsop", input_size=64, options=_options("gmsop16_8_resnet18_imagenet64"))
def gmsop16_8_resnet18_imagenet64(**kwargs):
    """GM-SOP-16-8 + ResNet-18: 10,352,776 parameters."""
    return _create("gmsop16_8_resnet18_imagenet64", **kwargs)


@register_model("gmsop", input_size=64, options=_options("gmsop16_8_wrn36_2_imagenet64"))
def gmsop16_8_wrn36_2_imagenet64(**kwargs):
    """GM-SOP-16-8 + WRN-36-2: 17,809,160 parameters (the authors' README says 15.7M)."""
    return _create("gmsop16_8_wrn36_2_imagenet64", **kwargs)


# The authors' downsampled-ImageNet pipeline (spec of the seed, 8.1): the full 64 x 64 image on
# the 0-255 scale minus the training set's per-channel mean (the dataset's table), never divided
# by the std (the stem's / 60 compensates), a random horizontal flip, no padding or crop.
IMAGENET64_AUG = AugPreset(0, "zero", True, None, (1.0, 1.0, 1.0))

# The authors' schedules (their init files' trainOpts; the seed's spec, 7): name -> (batch,
# epochs, lr of the first epochs, epochs after which the lr is divided by 10). SGD, momentum
# 0.9, no Nesterov, weight decay 1e-4 on every parameter, the lr constant within an epoch.
# wrn36_2_imagenet64 has no row in the paper's table: it follows the authors' WRN-36-2-GAP
# baseline (cnn_init_WRN_baseline.m), the same as the WRN GM-GAP row.
SCHEDULES = {
    "resnet18_imagenet64": (256, 75, 0.075, (50, 65)),
    "sr_sop_resnet18_imagenet64": (256, 60, 0.15, (40, 50, 55)),
    "gmgap16_8_resnet18_imagenet64": (256, 75, 0.075, (50, 65)),
    "gmsop16_8_resnet18_imagenet64": (256, 60, 0.1, (40, 50, 55)),
    "wrn36_2_imagenet64": (150, 40, 0.1, (20, 30)),
    "gmgap16_8_wrn36_2_imagenet64": (150, 40, 0.1, (20, 30)),
    "gmsop16_8_wrn36_2_imagenet64": (150, 40, 0.09, (20, 30, 35)),
}
_SGD = dict(optimizer="sgd", mom=0.9, wd=1e-4, wd_rule="all", lr_schedule="step",
            lr_factor=0.1)


def _train_defaults(batch, epochs, lr, steps):
    return dict(_SGD, batch_size=batch, num_epochs=epochs, lr=lr,
                lr_step_epochs=[float(e) for e in steps])


register_family("gmsop", aug_presets={"imagenet64": IMAGENET64_AUG},
                cifar_aug={"imagenet%d" % side: "imagenet64" for side in (64, 32, 16)},
                train_defaults={name: _train_defaults(*row) for name, row in SCHEDULES.items()})
