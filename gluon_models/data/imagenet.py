"""ImageNet-style record iterators: the seeds' augmentation levels and normalisations.

The records hold full images, ``train.rec`` and ``val.rec`` (with their ``.idx``) as
``tools/prepare_folder.py`` writes them, usually with the shorter side resized; the seeds'
files are ``train_480_q90.rec`` (levels 2-3), ``train_256_q90.rec`` (level 1) and
``val_256_q90.rec`` (pass them with ``--train-rec``/``--val-rec``). ``mx.io.ImageRecordIter``
decodes and augments them in C++ threads. Everything below is expressed with ImageRecordIter's
own arguments, so the pipeline is the seeds' one. Levels 2-3 expect the shorter side stored at
about 480 (the random scale 0.533 takes it to 256); records stored at 480 serve level 1 with
``--aug-opt resize=256``.

Training augmentation, ``--aug-level`` (spec fbn.md §5.5; the IBN scripts use the same table
with ``min_random_scale 0.667``, spec ibn.md §5.2; IGC's ``--aug-type 1`` is level 2, spec
igc.md §3.2):

* level 1: ``rand_crop``, ``rand_mirror`` (the seeds train on records of shorter side 256);
* level 2: + ``min/max_random_scale 0.533/1`` (one affine warp together with the aspect
  jitter ``max_aspect_ratio 0.25``) and ``random_h/s/l 36/50/50`` (integer offsets in OpenCV's
  HLS space) (records of shorter side 480);
* level 3: + ``max_rotate_angle 10``, ``max_shear_ratio 0.1`` (records of shorter side 480).

Any ImageRecordIter augmentation argument can be overridden (``aug_opts``, ``--aug-opt
KEY=VALUE``), e.g. ``min_random_scale=0.667`` (IBN) or, for Inception-style crops at level 1,
``random_resized_crop=1 rand_crop=0 min_random_area=0.08 min_aspect_ratio=0.75
max_aspect_ratio=1.333`` (MXNet refuses ``random_resized_crop`` with ``rand_crop``).

Every training image gets its own augmentation draw, as in the seeds. ``reproducible_aug``
(``--reproducible-aug``) seeds the augmentation instead, which is what makes a resumed run
bit-exact, at a price: MXNet 1.9.1 re-seeds it by the record's slot in the batch, so a pass
draws only ``batch_size`` distinct augmentations (image ``i`` of every batch gets the same crop,
mirror and warp), far fewer than training from scratch should see.

Normalisation presets (``x' = (x - mean) / std`` per RGB channel, 0-255 scale; ``fill`` is the
grey level of the border the warp, rotation and shear create):

========  ==========================================================  =====================
name      mean / std                                                  used by
========  ==========================================================  =====================
imagenet  (123.675, 116.280, 103.530) / (58.395, 57.12, 57.375)        the usual statistics
raw       0 / 1 (the network normalises, e.g. with a ``bn_data``)       IBN (MXNet scripts)
========  ==========================================================  =====================

Families add their authors' presets (:func:`register_norm`, through
``register_family(imagenet_norms=...)``: IGC's own statistics, FBN's mean subtraction) and make
them their networks' default. Stock MXNet has one ``fill_value`` for all channels: where a seed
fills with its per-channel mean, the preset uses the mean of the seed's three fill values.

Validation: the shorter side resized to ``val_resize`` (default ``data_shape * 256 / 224``,
i.e. 256 for 224 crops; 0 keeps the stored size), then the centre ``data_shape`` crop, no
mirror. The validation iterator is a :class:`~gluon_models.data.iterators.FreshIter`, exact on
every pass (drop ``batch.pad`` rows).
"""
import argparse
import functools
import logging
import os
from collections import namedtuple

import mxnet as mx

from ..utils.argtypes import bounded_int, non_negative_int, positive_int
from .datasets import default_data_root
from .iterators import FreshIter, count_records
from .presets import add_batch_args, parse_rgb

__all__ = ["AUG_LEVELS", "AUG_KEYS", "NORMS", "Norm", "register_norm", "imagenet_aug_kwargs",
           "resolve_norm", "rec_files", "default_val_resize", "imagenet_val_iter",
           "get_imagenet_iters", "imagenet_iters_from_args", "count_train_records",
           "add_imagenet_data_args",
           "add_imagenet_aug_args", "apply_imagenet_presets", "parse_aug_opt"]

_LOG = logging.getLogger(__name__)

# spec fbn.md §5.5 (table "ImageNet train augmentation")
AUG_LEVELS = {
    1: dict(rand_crop=True, rand_mirror=True),
    2: dict(rand_crop=True, rand_mirror=True, min_random_scale=0.533, max_random_scale=1.0,
            max_aspect_ratio=0.25, random_h=36, random_s=50, random_l=50),
    3: dict(rand_crop=True, rand_mirror=True, min_random_scale=0.533, max_random_scale=1.0,
            max_aspect_ratio=0.25, random_h=36, random_s=50, random_l=50,
            max_rotate_angle=10, max_shear_ratio=0.1),
}

# ImageRecordIter's augmentation arguments (mxnet 1.9.1 DefaultImageAugmentParam), the keys
# that --aug-opt accepts.
AUG_KEYS = frozenset((
    "resize", "rand_crop", "random_resized_crop", "max_rotate_angle", "max_aspect_ratio",
    "min_aspect_ratio", "max_shear_ratio", "max_crop_size", "min_crop_size",
    "max_random_scale", "min_random_scale", "max_random_area", "min_random_area",
    "max_img_size", "min_img_size", "brightness", "contrast", "saturation", "pca_noise",
    "random_h", "random_s", "random_l", "rotate", "fill_value", "inter_method", "pad",
    "rand_mirror"))

Norm = namedtuple("Norm", ["mean_rgb", "std_rgb", "fill_value"])

NORMS = {
    # the usual ImageNet statistics (of torchvision, and Facebook's ResNet code); the border
    # is their mean grey (124, 116, 104)
    "imagenet": Norm((123.675, 116.280, 103.530), (58.395, 57.12, 57.375), 115),
    # no mean/std (a network whose first layer normalises, e.g. a BatchNorm), fill 127
    "raw": Norm((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 127),
}


def register_norm(name, norm):
    """Add the normalisation preset ``name`` (a :class:`Norm`); a family declares its
    authors' through ``register_family(imagenet_norms=...)``."""
    if name in NORMS:
        raise ValueError("normalisation preset %r is registered twice" % name)
    if not isinstance(norm, Norm):
        raise TypeError("normalisation %r must be a Norm, got %r" % (name, norm))
    NORMS[name] = norm

def parse_aug_opt(text):
    """``"key=value"`` -> ``(key, number)``, the key one of :data:`AUG_KEYS`."""
    key, sep, raw = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or key not in AUG_KEYS:
        raise argparse.ArgumentTypeError(
            "expected KEY=VALUE with KEY an ImageRecordIter augmentation argument (%s), got %r"
            % (", ".join(sorted(AUG_KEYS)), text))
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError("--aug-opt %s: %r is not a number" % (key, raw)) \
            from None
    return key, int(value) if value.is_integer() else value


def imagenet_aug_kwargs(level=2, fill_value=None, aug_opts=None):
    """ImageRecordIter keyword arguments of training augmentation ``level`` (1, 2 or 3), the
    border ``fill_value`` and any overrides ``aug_opts`` (dict or ``(key, value)`` pairs)."""
    if level not in AUG_LEVELS:
        raise ValueError("aug level must be one of %s, got %r" % (sorted(AUG_LEVELS), level))
    kw = dict(AUG_LEVELS[level])
    if fill_value is not None:
        kw["fill_value"] = int(fill_value)
    for key, value in dict(aug_opts or {}).items():
        if key not in AUG_KEYS:
            raise ValueError("unknown augmentation argument %r; ImageRecordIter's are: %s"
                             % (key, ", ".join(sorted(AUG_KEYS))))
        kw[key] = value
    return kw


def resolve_norm(norm="imagenet", mean_rgb=None, std_rgb=None, fill_value=None):
    """``dict(norm, mean_rgb, std_rgb, fill_value)``: the preset with the given values
    overriding it."""
    if norm not in NORMS:
        raise ValueError("unknown normalisation %r; known: %s" % (norm, ", ".join(sorted(NORMS))))
    p = NORMS[norm]
    std = parse_rgb(p.std_rgb if std_rgb is None else std_rgb, "std_rgb")
    if min(std) <= 0:
        raise ValueError("std_rgb must be positive, got %s" % (std,))
    fill = p.fill_value if fill_value is None else int(fill_value)
    if not 0 <= fill <= 255:
        raise ValueError("fill_value must be in 0..255, got %r" % fill_value)
    return dict(norm=norm, mean_rgb=parse_rgb(p.mean_rgb if mean_rgb is None else mean_rgb,
                                              "mean_rgb"), std_rgb=std, fill_value=fill)


def rec_files(data_dir, name):
    """``(rec, idx)`` of a record file ``name`` (relative to ``data_dir`` unless absolute;
    ``.rec`` optional); FileNotFoundError naming the missing file."""
    rec = name if os.path.isabs(name) or not data_dir else os.path.join(data_dir, name)
    if not rec.endswith(".rec"):
        rec += ".rec"
    idx = rec[:-4] + ".idx"
    for path in (rec, idx):
        if not os.path.isfile(path):
            raise FileNotFoundError(
                "%s not found; write ImageNet-style records with tools/prepare_folder.py or "
                "tools/im2rec.py and give their place with --data-dir/--train-rec/--val-rec "
                "(the seeds' names: train_480_q90.rec, train_256_q90.rec, val_256_q90.rec)"
                % path)
    return rec, idx


def default_val_resize(data_shape):
    """Shorter side before the centre crop: 256 for 224 crops, in proportion otherwise."""
    return int(round(data_shape * 256.0 / 224.0))


def _norm_kwargs(r):
    (mr, mg, mb), (sr, sg, sb) = r["mean_rgb"], r["std_rgb"]
    return dict(mean_r=mr, mean_g=mg, mean_b=mb, std_r=sr, std_g=sg, std_b=sb)


def imagenet_val_iter(rec, batch_size, data_shape=224, resize=None, norm="imagenet", mean_rgb=None,
                      std_rgb=None, preprocess_threads=4, num_parts=1, part_index=0):
    """Evaluation iterator: shorter side ``resize`` (None: :func:`default_val_resize`; 0: as
    stored), centre ``data_shape`` crop, normalised; a FreshIter, exact on every pass."""
    rec, idx = rec_files(None, rec)
    r = resolve_norm(norm, mean_rgb, std_rgb)
    resize = default_val_resize(data_shape) if resize is None else int(resize)
    if resize and resize < data_shape:
        raise ValueError("val resize %d is smaller than the crop %d" % (resize, data_shape))
    kw = dict(_norm_kwargs(r), path_imgrec=rec, path_imgidx=idx, data_shape=(3, data_shape,
              data_shape), batch_size=batch_size, shuffle=False, round_batch=True,
              rand_crop=False, rand_mirror=False, preprocess_threads=preprocess_threads,
              num_parts=num_parts, part_index=part_index, verbose=False)
    if resize:
        kw["resize"] = resize
    return FreshIter(functools.partial(mx.io.ImageRecordIter, **kw))


def get_imagenet_iters(data_dir, train_rec="train.rec", val_rec="val.rec", batch_size=256,
                       val_batch_size=None, data_shape=224, aug_level=2, aug_opts=None,
                       norm="imagenet", mean_rgb=None, std_rgb=None, fill_value=None,
                       val_resize=None, preprocess_threads=4, num_parts=1, part_index=0,
                       seed=0, reproducible_aug=False):
    """Training and validation iterators over ImageNet-style records.

    Parameters
    ----------
    data_dir : str
        Directory of the records (names below are relative to it unless absolute).
    train_rec, val_rec : str
        Record files, each with its ``.idx`` next to it. ``False`` skips one.
    batch_size, val_batch_size : int
        Per-worker batch sizes; ``val_batch_size`` defaults to ``batch_size``.
    data_shape : int
        Side of the square crop fed to the network.
    aug_level, aug_opts
        Training augmentation, see :func:`imagenet_aug_kwargs`.
    norm, mean_rgb, std_rgb, fill_value
        Normalisation preset and overrides, see :func:`resolve_norm`.
    val_resize : int, optional
        Shorter side before the centre crop (None: :func:`default_val_resize`; 0: as stored).
    num_parts, part_index : int
        Shard of a distributed worker (training only: every worker evaluates on the whole
        validation set, so each log holds the exact metrics).
    seed : int
        Seed of the shuffle and (``reproducible_aug``) of the augmentation.
    reproducible_aug : bool
        False (the default, for training): independent augmentation draws for every image,
        as in the seeds; the shuffle follows ``seed``, the draws do not (a resumed run sees
        the same images in the same order, augmented differently). True: seed the
        augmentation too (ImageRecordIter's ``seed_aug``), so an iterator built with the same
        seed repeats its output exactly, which is what makes a resume bit-exact. MXNet 1.9.1
        re-seeds it by the record's position in its batch, so every batch of a pass draws the
        same ``batch_size`` augmentation parameters (given to different images: each image's
        augmentation still follows the level's distribution, but a pass sees only
        ``batch_size`` distinct ones).

    Returns
    -------
    (train_iter or None, val_iter or None)
    """
    if not 0 <= part_index < num_parts:
        raise ValueError("part_index must be in [0, num_parts), got %d of %d"
                         % (part_index, num_parts))
    r = resolve_norm(norm, mean_rgb, std_rgb, fill_value)
    train = val = None
    if train_rec is not False:
        rec, idx = rec_files(data_dir, train_rec)
        aug = imagenet_aug_kwargs(aug_level, r["fill_value"], aug_opts)
        if reproducible_aug:
            aug["seed_aug"] = seed
        train = mx.io.ImageRecordIter(
            path_imgrec=rec, path_imgidx=idx, data_shape=(3, data_shape, data_shape),
            batch_size=batch_size, shuffle=True, seed=seed,
            preprocess_threads=preprocess_threads, num_parts=num_parts, part_index=part_index,
            verbose=False, **_norm_kwargs(r), **aug)
        _LOG.info("train: %s part %d/%d, %dx%d crops, aug level %s %s, norm %s mean %s std %s",
                  rec, part_index, num_parts, data_shape, data_shape, aug_level, aug, r["norm"],
                  r["mean_rgb"], r["std_rgb"])
    if val_rec is not False:
        path = val_rec if not data_dir else os.path.join(data_dir, val_rec)
        val = imagenet_val_iter(path, val_batch_size or batch_size, data_shape, val_resize,
                                norm, r["mean_rgb"], r["std_rgb"], preprocess_threads)
    return train, val


def imagenet_iters_from_args(args, num_parts=1, part_index=0, seed=0, train=True, val=True):
    """:func:`get_imagenet_iters` from the options of the ImageNet argument groups."""
    return get_imagenet_iters(
        args.data_dir, args.train_rec if train else False, args.val_rec if val else False,
        args.batch_size, args.val_batch_size, args.data_shape, args.aug_level,
        dict(args.aug_opts), args.norm, args.mean_rgb, args.std_rgb, args.fill_value,
        args.val_resize, args.preprocess_threads, num_parts, part_index, seed,
        args.reproducible_aug)


def count_train_records(args):
    """Number of training records (from the ``.idx``) of the parsed options."""
    return count_records(rec_files(args.data_dir, args.train_rec)[1])


# ------------------------------------------------------------------------------------------
# Argument groups (tools/train_imagenet.py, tools/evaluate.py)

def add_imagenet_data_args(parser, train=True):
    """The ``Data`` group of ImageNet-style records (``train=False``: validation only)."""
    g = parser.add_argument_group("Data", "ImageNet-style record files and batching")
    g.add_argument("--data-dir", default=os.path.join(default_data_root(), "imagenet"),
                   help="directory of the record files")
    if train:
        g.add_argument("--train-rec", default="train.rec",
                       help="training records (with their .idx), in --data-dir unless absolute "
                            "(the seeds': train_480_q90.rec, or train_256_q90.rec for level 1)")
    g.add_argument("--val-rec", default="val.rec",
                   help="validation records (with their .idx; the seeds': val_256_q90.rec)")
    g.add_argument("--data-shape", type=positive_int, default=None,
                   help="side of the square crop; default: the model's input size")
    g.add_argument("--val-resize", type=non_negative_int, default=None,
                   help="shorter side before the centre crop; default data-shape*256/224; "
                        "0: as stored")
    add_batch_args(g, batch_size=256)
    return g


def add_imagenet_aug_args(parser, train=True):
    """The ``Augmentation`` group: ``--aug-level``, ``--aug-opt``, normalisation presets."""
    g = parser.add_argument_group("Augmentation", "training augmentation and normalisation")
    if train:
        g.add_argument("--aug-level", type=int, default=2, choices=sorted(AUG_LEVELS),
                       help="1: crop + mirror; 2: + scale/aspect and HSL jitter; "
                            "3: + rotation and shear (spec fbn.md 5.5)")
        g.add_argument("--reproducible-aug", action=argparse.BooleanOptionalAction,
                       default=False,
                       help="seed the augmentation from --seed and the epoch: what makes a "
                            "--load-epoch resume bit-exact, but MXNet then draws the same "
                            "parameters for every batch of an epoch (image i of each batch "
                            "alike, only batch-size distinct augmentations per epoch); "
                            "default: independent draws per image as in the seeds (a resume "
                            "then repeats the data order, not the augmentation)")
        g.add_argument("--aug-opt", dest="aug_opts", metavar="KEY=VALUE", action="append",
                       default=[], type=parse_aug_opt,
                       help="override an ImageRecordIter augmentation argument, repeatable, "
                            "e.g. min_random_scale=0.667")
    g.add_argument("--norm", default="imagenet", choices=sorted(NORMS),
                   help="mean/std preset: imagenet (the usual statistics), raw (none), or a "
                        "family's (%s); default: the model family's, else imagenet"
                   % ", ".join(sorted(set(NORMS) - {"imagenet", "raw"})))
    g.add_argument("--fb-mean", dest="norm", action="store_const", const="imagenet",
                   default=argparse.SUPPRESS, help="same as --norm imagenet (a seed's flag)")
    g.add_argument("--mean-rgb", default=None, help="R,G,B means (0-255); default: --norm's")
    g.add_argument("--std-rgb", default=None, help="R,G,B stds; default: --norm's")
    if train:
        g.add_argument("--fill-value", type=bounded_int(0, 255), default=None,
                       help="border grey level of warps (0-255); default: --norm's")
    return g


def apply_imagenet_presets(parser, argv=None, data_shape=224):
    """Make the resolved presets the defaults (normalisation, crop size ``data_shape`` unless
    given, validation resize), so the logged arguments show the values used; call it between
    adding the groups and ``parse_args``."""
    known, _ = parser.parse_known_args(argv)
    r = resolve_norm(known.norm, known.mean_rgb, known.std_rgb,
                     getattr(known, "fill_value", None))
    shape = known.data_shape or data_shape
    defaults = dict(mean_rgb=",".join("%g" % v for v in r["mean_rgb"]),
                    std_rgb=",".join("%g" % v for v in r["std_rgb"]), data_shape=shape,
                    val_resize=default_val_resize(shape))
    if hasattr(known, "fill_value"):
        defaults["fill_value"] = r["fill_value"]
    parser.set_defaults(**defaults)
    return r
