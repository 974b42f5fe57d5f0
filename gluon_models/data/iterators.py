"""Record iterators for the datasets of the table: ``mx.io.ImageRecordIter`` plus two wrappers.

:func:`get_rec_iters` returns ``(train_iter, val_iter)``, both ``mx.io.DataIter`` that
``mx.mod.Module`` accepts, yielding float32 RGB NCHW batches normalised as the augmentation
preset says (:mod:`.presets`).

Exact evaluation. ``ImageRecordIter`` fills the last batch by wrapping around and reports
the number of wrapped rows in ``batch.pad``, but only on the iterator's first pass: after
``reset()`` it starts mid-file and reports bogus ``pad`` values (spec platform.md §7). The
validation iterator is therefore a :class:`FreshIter`, which builds a new ``ImageRecordIter``
on every ``reset()``, so every pass covers the split exactly once and ``pad`` is right. Drop
the ``pad`` rows before updating a metric (:func:`update_metric`); ``Module.score`` does not.
"""
import functools
import logging
import os

import mxnet as mx
import numpy as np

from .datasets import default_data_dir, get_dataset_info, split_files
from .digits import ensure_digits
from .presets import resolve_aug

__all__ = ["PadCropIter", "FreshIter", "strip_pad", "update_metric", "count_records",
           "get_rec_iters", "iters_from_args"]

_LOG = logging.getLogger(__name__)


class PadCropIter(mx.io.DataIter):
    """The 32x32 training augmentation on normalised batches: pad each image by ``pad``
    pixels with the constant ``fill`` (per channel, in normalised units), crop it back to its
    size at a random offset (uniform in ``[0, 2 * pad]`` on each axis) and, with ``mirror``,
    flip it horizontally with probability 1/2. One draw per image, from a
    ``numpy.random.RandomState(seed)``.

    Why not ImageRecordIter's own ``pad``/``rand_crop``/``rand_mirror``: stock 1.9.1 has one
    ``fill_value`` before normalisation (IGC pads with each channel's mean, i.e. 0 after
    normalisation), and with ``seed_aug`` (needed for reproducible, exactly resumable runs)
    it re-seeds the augmentation by the record's slot in the batch, so every batch of an
    epoch repeats the same crops and flips (tests/data/test_imagenet.py shows it). Labels,
    ``pad`` and ``index`` pass through unchanged.

    Parameters
    ----------
    base : mx.io.DataIter
        Iterator of normalised NCHW batches (one data array).
    pad : int
        Padding in pixels on each side (0: no crop).
    seed : int or sequence of int
        Seed of the offsets and flips.
    fill : float or sequence of float
        Value of the padding in each channel, after normalisation.
    mirror : bool
        Random horizontal flips.
    """

    def __init__(self, base, pad, seed=0, fill=0.0, mirror=False):
        super().__init__(base.batch_size)
        if pad < 0:
            raise ValueError("pad must be >= 0, got %d" % pad)
        self.base, self.pad, self.mirror = base, int(pad), bool(mirror)
        self.fill = np.asarray(fill, dtype=np.float32).reshape(-1)
        self._rng = np.random.RandomState(seed)

    @property
    def provide_data(self):
        return self.base.provide_data

    @property
    def provide_label(self):
        return self.base.provide_label

    def reset(self):
        self.base.reset()

    def next(self):
        batch = self.base.next()
        x = batch.data[0]
        data = x.asnumpy()
        n, c, h, w = data.shape
        p = self.pad
        out = data
        if p:
            padded = np.empty((n, c, h + 2 * p, w + 2 * p), data.dtype)
            padded[...] = np.broadcast_to(self.fill, (c,))[None, :, None, None]
            padded[:, :, p:p + h, p:p + w] = data
            oy = self._rng.randint(0, 2 * p + 1, size=n)
            ox = self._rng.randint(0, 2 * p + 1, size=n)
            windows = np.lib.stride_tricks.sliding_window_view(padded, (h, w), axis=(2, 3))
            out = windows[np.arange(n), :, oy, ox]  # (n, c, h, w)
        if self.mirror:
            flip = self._rng.rand(n) < 0.5
            out = np.where(flip[:, None, None, None], out[..., ::-1], out)
        return mx.io.DataBatch([mx.nd.array(out, ctx=x.context, dtype=x.dtype)], batch.label,
                               pad=batch.pad, index=batch.index,
                               provide_data=self.provide_data, provide_label=self.provide_label)


class FreshIter(mx.io.DataIter):
    """An iterator rebuilt by ``factory()`` at every ``reset()`` (unless nothing was read yet).

    Wrapping ``functools.partial(mx.io.ImageRecordIter, ...)`` gives a validation iterator
    whose every pass starts at the first record and reports the wrap-around ``pad`` of its
    last batch correctly (building one takes a few milliseconds)."""

    def __init__(self, factory):
        self._factory = factory
        self._it = factory()
        self._used = False
        super().__init__(self._it.batch_size)

    @property
    def provide_data(self):
        return self._it.provide_data

    @property
    def provide_label(self):
        return self._it.provide_label

    def reset(self):
        if self._used:
            self._it = self._factory()
            self._used = False

    def next(self):
        self._used = True
        return self._it.next()


def strip_pad(arrays, pad):
    """The arrays without their last ``pad`` rows (the wrap-around filler of a last batch)."""
    if not pad:
        return list(arrays)
    return [a[:a.shape[0] - pad] for a in arrays]


def update_metric(metric, labels, preds, pad=0):
    """``metric.update`` on the rows that are not padding (``pad`` = ``batch.pad``)."""
    metric.update(strip_pad(labels, pad), strip_pad(preds, pad))


def count_records(path_idx):
    """Number of records listed in an ``.idx`` file."""
    with open(path_idx) as f:
        return sum(1 for line in f if line.strip())


def _files(data_dir, split, dataset):
    rec, idx, _ = split_files(data_dir, split)
    for p in (rec, idx):
        if not os.path.isfile(p):
            raise FileNotFoundError("%s not found; prepare %s with %s (see --help)"
                                    % (p, dataset, get_dataset_info(dataset).prepare))
    return rec, idx


def get_rec_iters(dataset="digits", data_dir=None, batch_size=128, val_batch_size=None,
                  aug=None, pad=None, pad_fill=None, mirror=None, mean_rgb=None, std_rgb=None,
                  preprocess_threads=4, num_parts=1, part_index=0, seed=0,
                  train_split="train", val_split=None):
    """Training and evaluation iterators over ``<data_dir>/{train,test}.rec`` (``val.rec``
    for the datasets evaluated on their validation set: the table's ``eval_split``).

    Parameters
    ----------
    dataset : str
        A name of the dataset table (``digits``, ``cifar10``, ``cifar100``, ``svhn``).
    data_dir : str, optional
        Directory of the records; default ``default_data_dir(dataset)``. The digits are
        prepared there when absent; other datasets must have been converted.
    batch_size, val_batch_size : int
        Batch sizes (per worker); ``val_batch_size`` defaults to ``batch_size``.
    aug, pad, pad_fill, mirror, mean_rgb, std_rgb
        Augmentation preset and overrides, see :func:`~gluon_models.data.presets.resolve_aug`.
    preprocess_threads : int
        ImageRecordIter decoding threads.
    num_parts, part_index : int
        Shard for distributed workers (worker ``part_index`` of ``num_parts`` reads about
        ``1 / num_parts`` of each split; the parts partition it).
    seed : int
        Seed of the shuffle and of the augmentation.

    Returns
    -------
    train_iter : mx.io.DataIter
        Shuffled, augmented; full batches (a short last batch wraps around).
    val_iter : FreshIter
        In file order, no augmentation; exact on every pass (drop ``batch.pad`` rows).
    """
    info = get_dataset_info(dataset)
    data_dir = data_dir or default_data_dir(info.name)
    if info.name == "digits":
        ensure_digits(data_dir)
    if not 0 <= part_index < num_parts:
        raise ValueError("part_index must be in [0, num_parts), got %d of %d"
                         % (part_index, num_parts))
    r = resolve_aug(info.name, aug, pad, pad_fill, mirror, mean_rgb, std_rgb)
    train_rec, train_idx = _files(data_dir, train_split, info.name)
    val_rec, val_idx = _files(data_dir, val_split or info.eval_split, info.name)
    common = dict(data_shape=info.data_shape, preprocess_threads=preprocess_threads,
                  num_parts=num_parts, part_index=part_index, verbose=False,
                  mean_r=r["mean_rgb"][0], mean_g=r["mean_rgb"][1], mean_b=r["mean_rgb"][2],
                  std_r=r["std_rgb"][0], std_g=r["std_rgb"][1], std_b=r["std_rgb"][2])
    train = mx.io.ImageRecordIter(**dict(common, path_imgrec=train_rec, path_imgidx=train_idx,
                                         batch_size=batch_size, shuffle=True, seed=seed))
    if r["pad"] > 0 or r["mirror"]:
        # pad value after normalisation: 0 ("zero"), or the 0-255 fill normalised per channel
        fill = 0.0 if r["pad_fill"] == "zero" else [
            (r["pad_fill"] - m) / sd for m, sd in zip(r["mean_rgb"], r["std_rgb"])]
        train = PadCropIter(train, r["pad"], seed=[seed, part_index], fill=fill,
                            mirror=r["mirror"])
    val_kw = dict(common, path_imgrec=val_rec, path_imgidx=val_idx,
                  batch_size=val_batch_size or batch_size, shuffle=False, round_batch=True)
    val = FreshIter(functools.partial(mx.io.ImageRecordIter, **val_kw))
    _LOG.info("data: %s from %s, part %d/%d, aug %s (pad %d fill %s, mirror %s), mean %s, std %s",
              info.name, data_dir, part_index, num_parts, r["aug"], r["pad"], r["pad_fill"],
              r["mirror"], r["mean_rgb"], r["std_rgb"])
    return train, val


def iters_from_args(args, num_parts=1, part_index=0, seed=0):
    """:func:`get_rec_iters` from the options of ``add_data_args`` and ``add_aug_args``."""
    aug = {k: getattr(args, k, None) for k in ("aug", "pad", "pad_fill", "mirror", "mean_rgb",
                                               "std_rgb")}
    return get_rec_iters(args.dataset, args.data_dir, args.batch_size, args.val_batch_size, **aug,
                         preprocess_threads=args.preprocess_threads, num_parts=num_parts,
                         part_index=part_index, seed=seed)
