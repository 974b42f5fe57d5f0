"""Augmentation presets of the 32x32 pipelines, and the data/augmentation options.

A preset fixes the training augmentation and the normalisation (the evaluation iterator uses
the same normalisation and no augmentation). Built in:

==============  ================================================================  ==========
name            training augmentation                                             normalise
==============  ================================================================  ==========
none            none                                                              dataset
padcrop-mirror  pad 4, random 32x32 crop, random mirror; the pad is 0 *after*     dataset
                normalisation (the usual CIFAR augmentation)
padcrop         as ``padcrop-mirror`` without the mirror (default for digits: a   dataset
                mirrored digit is another shape)
==============  ================================================================  ==========

A family adds the presets its authors used under their own names
(:func:`register_aug_preset`, through ``register_family(aug_presets=...)``), e.g. FBN's white
padding before mean subtraction, and makes them its networks' defaults per dataset.

"dataset" normalisation is ``(x - mean_c) / std_c`` with the per-dataset mean/std of
:data:`~gluon_models.data.datasets.DATASETS`.

Why ``pad_fill='zero'``: padding each channel with its mean before normalisation (as some
authors' MXNet forks do) is 0 within half a grey level after it; stock MXNet 1.9.1 has a single
``fill_value`` for all channels, so :class:`~gluon_models.data.iterators.PadCropIter` pads with
exact zeros after normalisation instead. An integer ``pad_fill`` (0-255, before normalisation,
e.g. white 255) is normalised per channel. All padding, cropping and mirroring is done by
``PadCropIter`` with its own seeded generator. Random crop and mirror without padding is
``padcrop-mirror`` with ``pad=0``: on 32x32 images only the mirror remains.
"""
import argparse
from collections import namedtuple

from ..utils.argtypes import non_negative_int, positive_int
from .datasets import DATASETS, default_data_root, get_dataset_info, list_datasets

__all__ = ["AugPreset", "AUG_PRESETS", "register_aug_preset", "resolve_aug", "add_data_args",
           "add_batch_args", "add_aug_args", "apply_presets", "parse_rgb"]

AugPreset = namedtuple("AugPreset", ["pad", "pad_fill", "mirror", "mean_rgb", "std_rgb"])

# mean_rgb / std_rgb None: the dataset's, from the table.
AUG_PRESETS = {
    "none": AugPreset(0, "zero", False, None, None),
    "padcrop-mirror": AugPreset(4, "zero", True, None, None),
    "padcrop": AugPreset(4, "zero", False, None, None),
}


def register_aug_preset(name, preset):
    """Add the augmentation preset ``name`` (an :class:`AugPreset`; its settings are checked
    as :func:`resolve_aug` would use them)."""
    if name in AUG_PRESETS:
        raise ValueError("augmentation preset %r is registered twice" % name)
    if not isinstance(preset, AugPreset):
        raise TypeError("preset %r must be an AugPreset, got %r" % (name, preset))
    _check_fill(preset.pad_fill)
    AUG_PRESETS[name] = preset


def _check_fill(value):
    if value == "zero":
        return value
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise ValueError("pad_fill must be 'zero' or an integer 0..255, got %r"
                         % (value,)) from None
    if not 0 <= v <= 255:
        raise ValueError("pad_fill must be 'zero' or an integer 0..255, got %r" % (value,))
    return v


def parse_rgb(value, name):
    """Three numbers (R, G, B) from a ``"r,g,b"`` string or a sequence; ValueError naming
    ``name`` otherwise."""
    if isinstance(value, str):
        value = value.split(",")
    try:
        t = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        t = ()
    if len(t) != 3:
        raise ValueError("%s must be three numbers (R, G, B), got %r" % (name, value))
    return t


def resolve_aug(dataset, aug=None, pad=None, pad_fill=None, mirror=None, mean_rgb=None,
                std_rgb=None):
    """Concrete settings: the preset (default: the dataset's) with any given value overriding
    it. Returns a dict with keys ``aug, pad, pad_fill, mirror, mean_rgb, std_rgb``."""
    info = get_dataset_info(dataset)
    aug = aug or info.aug
    if aug not in AUG_PRESETS:
        raise ValueError("unknown augmentation preset %r; known: %s"
                         % (aug, ", ".join(sorted(AUG_PRESETS))))
    p = AUG_PRESETS[aug]
    pad = p.pad if pad is None else int(pad)
    if pad < 0:
        raise ValueError("pad must be >= 0, got %d" % pad)
    std = parse_rgb((p.std_rgb or info.std_rgb) if std_rgb is None else std_rgb, "std_rgb")
    if min(std) <= 0:
        raise ValueError("std_rgb must be positive, got %s" % (std,))
    fill = _check_fill(p.pad_fill if pad_fill is None else pad_fill)
    return dict(aug=aug, pad=pad, pad_fill=fill,
                mirror=p.mirror if mirror is None else bool(mirror),
                mean_rgb=parse_rgb((p.mean_rgb or info.mean_rgb) if mean_rgb is None
                                   else mean_rgb, "mean_rgb"),
                std_rgb=std)


# ------------------------------------------------------------------------------------------
# Argument groups (tools/train_*.py): add the groups, apply_presets, then parse_args.

def add_data_args(parser):
    """Add the ``Data`` argument group: dataset, data-dir, batch sizes, decoding threads."""
    g = parser.add_argument_group("Data", "record files and batching")
    g.add_argument("--dataset", default="digits", choices=list_datasets(),
                   help="dataset (sets classes, sizes, normalisation, augmentation)")
    g.add_argument("--data-dir", default=None,
                   help="directory with train.rec/.idx and test.rec/.idx; default "
                        "%s/<dataset> ($GLUON_MODELS_DATA overrides the root); the digits are "
                        "prepared there on first use" % default_data_root())
    add_batch_args(g)
    return g


def add_batch_args(group, batch_size=128):
    """Add ``--batch-size``, ``--val-batch-size`` and ``--preprocess-threads`` to an argument
    group (shared by the 32x32 and the ImageNet data groups)."""
    group.add_argument("--batch-size", type=positive_int, default=batch_size,
                       help="training batch size (per worker)")
    group.add_argument("--val-batch-size", type=positive_int, default=None,
                       help="evaluation batch size; default: --batch-size")
    group.add_argument("--preprocess-threads", type=positive_int, default=4,
                       help="ImageRecordIter decoding/augmentation threads")
    return group


def _fill_arg(value):
    try:
        return _check_fill(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_aug_args(parser):
    """Add the ``Augmentation`` argument group. ``None`` defaults mean "the preset's";
    :func:`apply_presets` fills them in before the final parse so ``--help`` and the logged
    arguments show the values used."""
    g = parser.add_argument_group("Augmentation", "training augmentation and normalisation")
    g.add_argument("--aug", default=None, choices=sorted(AUG_PRESETS),
                   help="preset; default: the dataset's (%s)"
                   % ", ".join("%s %s" % (k, v.aug) for k, v in sorted(DATASETS.items())))
    g.add_argument("--pad", type=non_negative_int, default=None,
                   help="pixels of padding before the random crop")
    g.add_argument("--pad-fill", type=_fill_arg, default=None,
                   help="'zero' (0 after normalisation) or a 0..255 fill before normalisation")
    g.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=None,
                   help="random horizontal flips")
    g.add_argument("--mean-rgb", default=None, help="R,G,B means subtracted (0-255 scale)")
    g.add_argument("--std-rgb", default=None, help="R,G,B stds divided by")
    return g


def apply_presets(parser, argv=None):
    """Read ``--dataset``/``--aug`` with ``parse_known_args`` and make the dataset's preset the
    defaults of the augmentation options; call it between adding the groups and ``parse_args``."""
    known, _ = parser.parse_known_args(argv)
    r = resolve_aug(known.dataset, getattr(known, "aug", None), getattr(known, "pad", None),
                    getattr(known, "pad_fill", None), getattr(known, "mirror", None),
                    getattr(known, "mean_rgb", None), getattr(known, "std_rgb", None))
    if hasattr(known, "aug"):  # only when add_aug_args was used
        parser.set_defaults(aug=r["aug"], pad=r["pad"], pad_fill=r["pad_fill"],
                            mirror=r["mirror"], mean_rgb=",".join("%g" % v for v in r["mean_rgb"]),
                            std_rgb=",".join("%g" % v for v in r["std_rgb"]))
    return r
