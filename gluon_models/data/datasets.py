"""The dataset table: one entry per dataset the converters write and the iterators read.

Every tool and function that needs a dataset's class count, split sizes, normalisation or file
names reads it from :data:`DATASETS`, so there is one place to change. The 32x32 sets are
stored as ``train.rec/.idx/.lst`` and ``test.rec/.idx/.lst`` in one directory (the names the
IGC and FBN CIFAR scripts expect, spec igc.md §3.1 and fbn.md §5.5).

Where prepared data lives by default (:func:`default_data_root`): ``$GLUON_MODELS_DATA`` when
it is set; otherwise ``<repository>/data`` when the package is used from a source checkout
(the directory holding ``setup.py``; ``/data/`` is git-ignored there); otherwise
``~/.cache/gluon_models/data``. Each dataset goes in a subdirectory named after it, e.g.
``<root>/digits``.
"""
import os
from collections import namedtuple

__all__ = ["DataFormatError", "DatasetInfo", "DATASETS", "get_dataset_info", "list_datasets",
           "default_data_root", "default_data_dir", "split_files"]


class DataFormatError(ValueError):
    """A source file is truncated, malformed or not in the expected format.

    The message always names the file (and the archive member, where there is one)."""


DatasetInfo = namedtuple("DatasetInfo", [
    "name",         # key in DATASETS
    "classes",      # number of classes
    "num_train",    # images in the training records (as the seeds use them)
    "num_test",     # images in the test records
    "data_shape",   # (C, H, W) fed to the network
    "mean_rgb",     # per-channel mean, 0-255, RGB order
    "std_rgb",      # per-channel std, 0-255, RGB order
    "aug",          # default augmentation preset (see presets.AUG_PRESETS)
    "sources",      # source files the converter reads (relative to its input directory)
    "prepare",      # the tool that writes the records
    "eval_split",   # the records evaluated on: test.* (CIFAR, SVHN, digits) or val.*
], defaults=("test",))

# mean/std: spec igc.md §3.1 (`__dataset_args` of the IGC options), 0-255 RGB.
DATASETS = {
    "cifar10": DatasetInfo(
        "cifar10", 10, 50000, 10000, (3, 32, 32),
        (125.307, 122.950, 113.865), (62.993, 62.089, 66.705), "padcrop-mirror",
        tuple("cifar-10-batches-py/data_batch_%d" % i for i in range(1, 6))
        + ("cifar-10-batches-py/test_batch",),
        "tools/prepare_cifar.py"),
    "cifar100": DatasetInfo(
        "cifar100", 100, 50000, 10000, (3, 32, 32),
        (129.304, 124.070, 112.434), (68.170, 65.392, 70.418), "padcrop-mirror",
        ("cifar-100-python/train", "cifar-100-python/test"),
        "tools/prepare_cifar.py"),
    # The IGC seed trains SVHN on train + extra (73,257 + 531,131 = 604,388) without augmentation.
    "svhn": DatasetInfo(
        "svhn", 10, 604388, 26032, (3, 32, 32),
        (111.609, 113.161, 120.565), (50.498, 51.259, 50.244), "none",
        ("train_32x32.mat", "extra_32x32.mat", "test_32x32.mat"),
        "tools/prepare_svhn.py"),
    # scikit-learn's load_digits, upsampled to 32x32 (see data/digits.py); mean/std measured on
    # the 1437 training images written by convert_digits (tests/data checks them).
    "digits": DatasetInfo(
        "digits", 10, 1437, 360, (3, 32, 32),
        (77.975, 77.975, 77.975), (82.646, 82.646, 82.646), "padcrop",
        (),
        "tools/prepare_digits.py"),
}
# Downsampled ImageNet (Chrabaszcz et al. 2017; data/imagenet64.py). mean/std: full-size
# ImageNet's (0-255 RGB) as a default; the converter writes the set's own training mean to
# mean_rgb.json beside the records (pass it as --mean-rgb). Families set their own
# normalisation and augmentation (GM-SOP: mean only, flips) through their presets.
for _side in (64, 32, 16):
    DATASETS["imagenet%d" % _side] = DatasetInfo(
        "imagenet%d" % _side, 1000, 1281167, 50000, (3, _side, _side),
        (123.675, 116.28, 103.53), (58.395, 57.12, 57.375), "none",
        tuple("train_data_batch_%d" % i for i in range(1, 11)) + ("val_data",),
        "tools/prepare_imagenet64.py", "val")
# Places365-Standard at GM-SOP's 100 x 100 (tools/prepare_places365.py); ImageNet's mean/std.
DATASETS["places365"] = DatasetInfo(
    "places365", 365, 1803460, 36500, (3, 100, 100), (123.675, 116.28, 103.53),
    (58.395, 57.12, 57.375), "none",
    ("places365_train_standard.txt", "places365_val.txt", "categories_places365.txt"),
    "tools/prepare_places365.py", "val")


def list_datasets():
    """Names of the datasets in the table, sorted."""
    return sorted(DATASETS)


def get_dataset_info(name):
    """The :class:`DatasetInfo` of ``name``; ``ValueError`` listing the known names otherwise."""
    key = str(name).lower()
    if key not in DATASETS:
        raise ValueError("unknown dataset %r; known: %s" % (name, ", ".join(list_datasets())))
    return DATASETS[key]


def split_files(data_dir, split):
    """``(rec, idx, lst)`` paths of one split (``'train'``, ``'test'``, ...) in ``data_dir``."""
    prefix = os.path.join(data_dir, split)
    return prefix + ".rec", prefix + ".idx", prefix + ".lst"


def default_data_root():
    """Root directory for prepared datasets (see the module docstring for the rule)."""
    env = os.environ.get("GLUON_MODELS_DATA")
    if env:
        return os.path.abspath(os.path.expanduser(env))
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if os.path.isfile(os.path.join(repo, "setup.py")):
        return os.path.join(repo, "data")
    return os.path.join(os.path.expanduser("~"), ".cache", "gluon_models", "data")


def default_data_dir(name):
    """``<default_data_root()>/<name>``, the default ``--data-dir`` of dataset ``name``."""
    return os.path.join(default_data_root(), get_dataset_info(name).name)
