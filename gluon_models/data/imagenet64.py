"""Downsampled ImageNet (64x64, 32x32, 16x16) from its original files to RecordIO.

The sets of P. Chrabaszcz, I. Loshchilov, F. Hutter, "A Downsampled Variant of ImageNet as an
Alternative to the CIFAR datasets", arXiv 1707.08819 (https://image-net.org/download-images,
"Downsampled ImageNet"), which GM-SOP (Wang, Li, Zuo, Zhang, NeurIPS 2018) trains on at 64x64.
Each release is ten training files ``train_data_batch_1`` ... ``train_data_batch_10`` and one
``val_data``, as Python pickles or as ``.npz`` archives with the same keys:

* ``data``: uint8 ``(n, 3 * side * side)``, each row the R plane, then G, then B (row-major);
* ``labels``: n integers in 1..1000 (the ILSVRC devkit's ``map_clsloc.txt`` order);
* ``mean`` (training files): the mean image on the 0-255 scale, ``3 * side * side`` floats.

:func:`convert_imagenet64` streams them one file at a time (a training file of the 64x64 set
holds about 128,000 images, 1.5 GB; the whole set is never in memory) into ``train.*`` and
``val.*`` records with 0-based labels (``label - 1``), lossless PNG by default or JPEG, with a
progress bar, resumable after an interruption (``resume=True``: the records written so far are
kept and the run continues after them). Every file is checked (keys, dtype, shape, label
range, image count) as it is read; a truncated or malformed file is a :class:`DataFormatError`
naming it. The per-channel mean of the training set (the ``mean`` fields averaged per plane,
weighted by image count: the normalisation GM-SOP uses) is written to ``mean_rgb.json`` next
to the records.

The GM-SOP authors' MATLAB ``imdb.mat`` (v7.3, HDF5) is not read: its orientation is not
documented, and the original files are the better source. Such a file is refused with a message
saying so.
"""
import json
import logging
import os
import zipfile

import numpy as np

from ..utils import safe_pickle
from ..utils.fileio import atomic_write_text
from .cifar import _integer_labels
from .datasets import DataFormatError, default_data_dir
from .recordio import needs_write, write_records

__all__ = ["IMAGENET64_FILES", "SIDES", "find_imagenet64_files", "load_imagenet64_batch",
           "imagenet64_items", "convert_imagenet64"]

_LOG = logging.getLogger(__name__)

SIDES = (64, 32, 16)
IMAGENET64_FILES = {"train": ["train_data_batch_%d" % i for i in range(1, 11)],
                    "val": ["val_data"]}
NUM_IMAGES = {"train": 1281167, "val": 50000}
_CLASSES = 1000
_MATLAB_HEADER = b"MATLAB 5.0 MAT-file"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _dataset_name(side):
    return "imagenet%d" % side


def _check_side(side):
    if side not in SIDES:
        raise ValueError("side must be one of %s, got %r" % (SIDES, side))
    return side


def find_imagenet64_files(source, splits=("train", "val")):
    """``{split: [path, ...]}``: each file of ``splits`` under ``source`` (the folder itself or
    one level of subfolders, e.g. the release's ``Imagenet64_train_part1/``), with or without
    ``.npz``. ``FileNotFoundError`` names every file that is missing."""
    if not os.path.isdir(source):
        raise FileNotFoundError("downsampled ImageNet: %s is not a folder" % source)
    folders = [source] + sorted(os.path.join(source, d) for d in os.listdir(source)
                                if os.path.isdir(os.path.join(source, d)))
    found, missing = {}, []
    for split in splits:
        if split not in IMAGENET64_FILES:
            raise ValueError("splits: 'train' and/or 'val', got %r" % (split,))
        found[split] = []
        for name in IMAGENET64_FILES[split]:
            hits = [os.path.join(f, n) for f in folders for n in (name, name + ".npz")
                    if os.path.isfile(os.path.join(f, n))]
            if len(hits) > 1:
                raise DataFormatError("downsampled ImageNet: %s exists twice: %s"
                                      % (name, ", ".join(hits)))
            if hits:
                found[split].append(hits[0])
            else:
                missing.append(name)
    if missing:
        raise FileNotFoundError("downsampled ImageNet: %s not found in %s or its subfolders"
                                % (", ".join(missing), source))
    return found


def _read_dict(path):
    """The file's dict (pickle or npz), checked for its format, never executing anything."""
    with open(path, "rb") as fh:
        head = fh.read(1024)
        if head.startswith(_MATLAB_HEADER) or head[512:520] == _HDF5_SIGNATURE \
                or head.startswith(_HDF5_SIGNATURE):
            raise DataFormatError(
                "%s: a MATLAB .mat file (e.g. the GM-SOP authors' imdb.mat), which is not read "
                "here: its image orientation is not documented. Convert the original "
                "downsampled ImageNet files (train_data_batch_1..10, val_data: pickles or "
                ".npz) instead" % path)
        fh.seek(0)
        if head.startswith(b"PK"):
            try:
                with np.load(fh, allow_pickle=False) as z:
                    return {k: z[k] for k in z.files}
            except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
                raise DataFormatError("%s: unreadable .npz archive (%s)" % (path, e)) from None
        try:
            obj = safe_pickle.load(fh, path, safe_pickle.NUMPY_ARRAYS,
                                   "downsampled ImageNet batch", encoding="latin1")
        except safe_pickle.PickleFormatError as e:
            raise DataFormatError(str(e)) from None
    if not isinstance(obj, dict):
        raise DataFormatError("%s: expected a dict, the pickle holds a %s"
                              % (path, type(obj).__name__))
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def load_imagenet64_batch(path, side=64):
    """Read and check one file: ``(images (n, 3, side, side) uint8 RGB, labels (n,) int64
    0-based, mean (3 * side * side,) float64 or None)``."""
    side = _check_side(side)
    d = _read_dict(path)
    missing = [k for k in ("data", "labels") if k not in d]
    if missing:
        raise DataFormatError("%s: missing key(s) %s; it has %s"
                              % (path, ", ".join(map(repr, missing)), ", ".join(map(repr, d))))
    data = d["data"]
    values = 3 * side * side
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == values):
        got = "%s %s" % (getattr(data, "shape", "?"), getattr(data, "dtype", type(data)))
        raise DataFormatError("%s: 'data' must be an n x %d uint8 array (%dx%d images), got %s"
                              % (path, values, side, side, got))
    labels = _integer_labels(d["labels"], path, "labels")
    if labels.shape[0] != data.shape[0]:
        raise DataFormatError("%s: %d images but %d labels" % (path, data.shape[0],
                                                              labels.shape[0]))
    if labels.size and (labels.min() < 1 or labels.max() > _CLASSES):
        raise DataFormatError("%s: labels must lie in 1..%d, found %d..%d"
                              % (path, _CLASSES, labels.min(), labels.max()))
    mean = d.get("mean")
    if mean is not None:
        mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        if mean.shape[0] != values or not np.isfinite(mean).all():
            raise DataFormatError("%s: 'mean' must hold %d finite values, got %s"
                                  % (path, values, mean.shape[0]))
    return data.reshape(-1, 3, side, side), labels - 1, mean


def imagenet64_items(paths, side=64, encoding=".png", means=None):
    """``(index, label, BGR image, path)`` of the files in order, one file in memory at a time.
    ``means``, a list, receives ``(n, mean)`` per file that has a ``mean``."""
    index = 0
    for path in paths:
        images, labels, mean = load_imagenet64_batch(path, side)
        if means is not None and mean is not None:
            means.append((images.shape[0], mean))
        name = os.path.basename(path)
        for i in range(images.shape[0]):
            yield (index, int(labels[i]), images[i, ::-1].transpose(1, 2, 0),
                   "%s/%06d%s" % (name, i, encoding))
            index += 1
        del images, labels


def _mean_rgb(means, side):
    total = sum(n for n, _ in means)
    image = sum(n * m for n, m in means) / total
    return [float(p.mean()) for p in image.reshape(3, side * side)]


def convert_imagenet64(source, out_dir=None, side=64, splits=("train", "val"),
                       encoding=".png", quality=None, num_workers=1, progress=True,
                       overwrite=False, resume=False):
    """Convert downsampled ImageNet (``side`` 64, 32 or 16) to ``train.*`` / ``val.*`` records.

    Parameters
    ----------
    source : str
        Folder holding the files (or subfolders holding them), see
        :func:`find_imagenet64_files`.
    out_dir : str, optional
        Default: ``<data root>/imagenet<side>``.
    side : {64, 32, 16}
    splits : sequence of {'train', 'val'}
    encoding, quality, num_workers, progress
        As in :func:`~gluon_models.data.recordio.write_records` (PNG is lossless; JPEG takes
        ``quality``, default 95).
    overwrite : bool
        Rewrite splits whose records exist (else they are skipped).
    resume : bool
        Continue an interrupted conversion of the same files with the same options.

    Returns
    -------
    dict
        ``split -> WriteResult`` (None for a skipped split); ``mean_rgb`` (the training set's
        per-channel mean, also in ``out_dir/mean_rgb.json``) when the training split was
        written.
    """
    side = _check_side(side)
    files = find_imagenet64_files(source, splits)
    out_dir = out_dir or default_data_dir(_dataset_name(side))
    results = {s: None for s in splits}
    for split in splits:
        prefix = os.path.join(out_dir, split)
        if not needs_write(prefix, overwrite):
            _LOG.info("%s exists: skipped (overwrite=True rewrites it)", prefix)
            continue
        paths = files[split]
        signature = dict(side=side, files=[(os.path.basename(p), os.path.getsize(p))
                                           for p in paths])
        means = []
        # for the progress bar: a pickle or npz row is the image's bytes plus a few of framing
        estimate = sum(os.path.getsize(p) for p in paths) // (3 * side * side + 8)
        results[split] = write_records(
            prefix, imagenet64_items(paths, side, encoding, means), encoding=encoding,
            quality=quality, num_workers=num_workers, total=estimate, progress=progress,
            resume=resume, signature=signature)
        n = results[split].count
        if n != NUM_IMAGES[split]:
            _LOG.warning("%s: %d images (the official set has %d)", prefix, n, NUM_IMAGES[split])
        if split == "train" and means:
            mean_rgb = _mean_rgb(means, side)
            atomic_write_text(os.path.join(out_dir, "mean_rgb.json"),
                              json.dumps({"mean_rgb": mean_rgb, "files": signature["files"]},
                                         indent=1) + "\n")
            results["mean_rgb"] = mean_rgb
            _LOG.info("training set mean (0-255, RGB): %s  (--mean-rgb %s)",
                      mean_rgb, ",".join("%.3f" % v for v in mean_rgb))
    return results
