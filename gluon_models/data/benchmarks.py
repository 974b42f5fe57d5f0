"""The fast MPN-COV preprocessing of each benchmark (spec mpncov.md §5.5), on RecordIO.

The records are ``train.rec`` / ``val.rec`` (with ``.idx``) as ``tools/prepare_folder.py``
writes them from an ImageFolder, CUB-200-2011, FGVC-Aircraft or Stanford Cars. Images are
scaled to [0, 1] and normalised with ImageNet's mean (0.485, 0.456, 0.406) and std (0.229,
0.224, 0.225); resizing is bilinear (OpenCV's, the authors use PIL's).

=========  ===============================  ===========================  ======================
benchmark  train                            val (1 crop, every epoch)    end of training
=========  ===============================  ===========================  ======================
ImageNet   random resized crop S (scale     shorter side S*256/224,      ten crops S of it
           0.08-1, ratio 3/4-4/3), flip     centre crop S                (corners, centre, flips)
CUB        shorter side S, centre crop S,   shorter side S, centre S     centre + its flip
           flip
Aircraft   S*512/448 square, centre S,      S*512/448 square, centre S   centre + its flip
           flip
Cars       S square, flip                   S square                     the image + its flip
=========  ===============================  ===========================  ======================

``S`` is 448 for the fine-grained sets and 224 for ImageNet by default. Fine-grained training
uses no random cropping, only flips. The random draws of an image are a function of
``(seed, epoch, record)``, so an epoch's data is the same with any number of loader threads
and a resumed run sees exactly the data of an uninterrupted one.

:class:`BenchmarkIter` is an ``mx.io.DataIter`` (fixed batch size, the last batch padded by
wrap-around with ``pad`` set, as ImageRecordIter does) for the Module trainer; the
multi-crop data yields ``(B, K, 3, S, S)`` crop stacks for
:class:`~gluon_models.training.evaluation.CropAverage`.
"""
import math
import os
import threading

import mxnet as mx
import numpy as np

from .imagenet import rec_files

__all__ = ["BENCHMARKS", "benchmark_name", "default_size", "BenchmarkIter", "benchmark_iters"]

BENCHMARKS = ("ImageNet", "CUB", "Aircraft", "Cars")
_MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
_STD = np.array([0.229, 0.224, 0.225], np.float32) * 255


def benchmark_name(name):
    """The benchmark of ``name`` (case-insensitive, e.g. ``cub`` -> ``CUB``)."""
    for b in BENCHMARKS:
        if str(name).lower() == b.lower():
            return b
    raise ValueError("benchmark must be one of %s, got %r" % (", ".join(BENCHMARKS), name))


def default_size(benchmark):
    """The crop side the authors use: 224 for ImageNet, 448 for the fine-grained sets."""
    return 224 if benchmark_name(benchmark) == "ImageNet" else 448


# ---- transforms of one HWC uint8 image ------------------------------------------------------

def _resize_short(img, n):
    return mx.image.resize_short(img, n, interp=1)


def _resize_square(img, n):
    return mx.image.imresize(img, n, n, interp=1)


def _center(img, n):
    h, w = img.shape[:2]
    if h < n or w < n:
        raise ValueError("image of %dx%d is smaller than the %d crop" % (w, h, n))
    y, x = (h - n) // 2, (w - n) // 2
    return img[y:y + n, x:x + n]


def _flip(img):
    return mx.nd.flip(img, axis=1)


def _random_resized_crop(img, n, rng, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0)):
    """Inception-style crop (as torchvision's RandomResizedCrop): area fraction in ``scale``,
    aspect ratio log-uniform in ``ratio``, 10 tries, else the central crop of the clamped
    ratio; resized to ``n`` x ``n``."""
    h, w = img.shape[:2]
    area = h * w
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            y, x = rng.randint(0, h - ch + 1), rng.randint(0, w - cw + 1)
            return _resize_square(img[y:y + ch, x:x + cw], n)
    aspect = w / h
    if aspect < ratio[0]:
        cw, ch = w, int(round(w / ratio[0]))
    elif aspect > ratio[1]:
        ch, cw = h, int(round(h * ratio[1]))
    else:
        cw, ch = w, h
    y, x = (h - ch) // 2, (w - cw) // 2
    return _resize_square(img[y:y + ch, x:x + cw], n)


def _ten(img, n):
    h, w = img.shape[:2]
    corners = [((h - n) // 2, (w - n) // 2), (0, 0), (h - n, 0), (0, w - n), (h - n, w - n)]
    crops = [img[y:y + n, x:x + n] for y, x in corners]
    return crops + [_flip(c) for c in crops]


def _normalise(crops):
    x = mx.nd.stack(*crops).astype("float32")
    x = (x - mx.nd.array(_MEAN)) / mx.nd.array(_STD)
    return x.transpose((0, 3, 1, 2))  # (K, 3, S, S)


def _base(benchmark, img, n):
    """The deterministic part: resize (and centre crop) to ``n`` x ``n``."""
    if benchmark == "ImageNet":
        return _center(_resize_short(img, int(round(n * 256.0 / 224.0))), n)
    if benchmark == "CUB":
        return _center(_resize_short(img, n), n)
    if benchmark == "Aircraft":
        return _center(_resize_square(img, int(round(n * 512.0 / 448.0))), n)
    return _resize_square(img, n)  # Cars


def transform(benchmark, img, n, mode, rng=None):
    """``img`` (HWC uint8 RGB NDArray) as ``(K, 3, n, n)`` normalised float32 crops:
    ``mode`` "train" (K = 1, random as the table says, drawn from ``rng``), "val" (K = 1) or
    "multi" (K = 10 for ImageNet, else 2)."""
    benchmark = benchmark_name(benchmark)
    if mode == "train":
        if benchmark == "ImageNet":
            crop = _random_resized_crop(img, n, rng)
        else:
            crop = _base(benchmark, img, n)
        return _normalise([_flip(crop) if rng.rand() < 0.5 else crop])
    if mode == "val":
        return _normalise([_base(benchmark, img, n)])
    if mode == "multi":
        if benchmark == "ImageNet":
            return _normalise(_ten(_resize_short(img, int(round(n * 256.0 / 224.0))), n))
        crop = _base(benchmark, img, n)
        return _normalise([crop, _flip(crop)])
    raise ValueError("mode must be train, val or multi, got %r" % (mode,))


# ---- iterators --------------------------------------------------------------------------------

class BenchmarkIter(mx.io.DataIter):
    """Batches of one record file under a benchmark's preprocessing.

    Parameters
    ----------
    rec : str
        ``.rec`` file (its ``.idx`` next to it).
    benchmark : str
        One of :data:`BENCHMARKS`.
    batch_size : int
        Every batch has this many rows; the last one is completed by wrapping around to the
        first records and reports how many rows are filler in ``pad``.
    size : int
        Crop side ``S``.
    mode : {"train", "val", "multi"}
        Training (shuffled, random draws), single centre crop, or crop stacks (``data[0]``
        of shape ``(B, K, 3, S, S)``).
    seed, epoch : int
        Training: the order and the draws follow ``(seed, epoch)``.
    num_workers : int
        Decoding threads.
    num_parts, part_index : int
        The shard of a distributed worker: every ``num_parts``-th record of the epoch's
        order (the same order on every worker), from ``part_index``.
    """

    def __init__(self, rec, benchmark, batch_size, size, mode="val", seed=0, epoch=0,
                 num_workers=0, num_parts=1, part_index=0):
        super().__init__(batch_size)
        rec, idx = rec_files(None, rec)
        self.benchmark, self.size, self.mode = benchmark_name(benchmark), int(size), mode
        self.seed, self.epoch = int(seed), int(epoch)
        self.records = mx.recordio.MXIndexedRecordIO(idx, rec, "r")
        self.keys = list(self.records.keys)
        self._lock = threading.Lock()  # one file position: reads one at a time
        self.num = len(self.keys)
        if self.num == 0:
            raise ValueError("%s holds no records" % rec)
        self.num_workers = num_workers
        self.crops = 1 if mode in ("train", "val") else (10 if self.benchmark == "ImageNet"
                                                          else 2)
        order = np.arange(self.num)
        if mode == "train":
            np.random.RandomState([self.seed, self.epoch, 1]).shuffle(order)
        if not 0 <= part_index < num_parts:
            raise ValueError("part_index must be in [0, num_parts), got %d of %d"
                             % (part_index, num_parts))
        order = order[part_index::num_parts]
        pad = -self.num % batch_size
        order = np.concatenate([order, np.resize(order, pad)]) if pad else order
        self.batches = [(order[i:i + batch_size], pad if i + batch_size >= len(order) else 0)
                        for i in range(0, len(order), batch_size)]
        self._pool = None
        self.reset()

    def _item(self, i):
        with self._lock:
            raw = self.records.read_idx(self.keys[int(i)])
        header, payload = mx.recordio.unpack(raw)
        img = mx.image.imdecode(payload, 1)  # RGB
        label = header.label if np.isscalar(header.label) else header.label[0]
        rng = np.random.RandomState([self.seed, self.epoch, int(i)]) \
            if self.mode == "train" else None
        crops = transform(self.benchmark, img, self.size, self.mode, rng)
        return (crops[0] if self.crops == 1 else crops), float(label)

    @property
    def provide_data(self):
        shape = (self.batch_size, 3, self.size, self.size) if self.crops == 1 else \
            (self.batch_size, self.crops, 3, self.size, self.size)
        return [mx.io.DataDesc("data", shape, np.float32)]

    @property
    def provide_label(self):
        return [mx.io.DataDesc("softmax_label", (self.batch_size,), np.float32)]

    def reset(self):
        self._next = 0

    def next(self):
        if self._next >= len(self.batches):
            raise StopIteration
        indices, pad = self.batches[self._next]
        self._next += 1
        if self.num_workers > 1:
            if self._pool is None:
                from multiprocessing.pool import ThreadPool
                self._pool = ThreadPool(self.num_workers)
            items = self._pool.map(self._item, indices)
        else:
            items = [self._item(i) for i in indices]
        data = mx.nd.stack(*[x for x, _ in items])
        label = mx.nd.array([y for _, y in items], dtype=np.float32)
        return mx.io.DataBatch([data], [label], pad=pad, provide_data=self.provide_data,
                               provide_label=self.provide_label)

    def __del__(self):
        if getattr(self, "_pool", None) is not None:
            self._pool.terminate()
        if getattr(self, "records", None) is not None:
            self.records.close()


def benchmark_iters(data_dir, benchmark, batch_size, size=None, val_batch_size=None,
                    train_rec="train.rec", val_rec="val.rec", seed=0, num_workers=0,
                    num_parts=1, part_index=0):
    """``(make_train(epoch), make_val(), make_multi())`` factories of a benchmark's data in
    ``data_dir`` (``size``: crop side, default :func:`default_size`; training sharded as
    ``num_parts`` / ``part_index`` say, see :class:`BenchmarkIter`)."""
    benchmark = benchmark_name(benchmark)
    size = size or default_size(benchmark)
    train = train_rec if os.path.isabs(train_rec) else os.path.join(data_dir, train_rec)
    val = val_rec if os.path.isabs(val_rec) else os.path.join(data_dir, val_rec)
    vb = val_batch_size or batch_size

    def make_train(epoch):
        return BenchmarkIter(train, benchmark, batch_size, size, "train", seed, epoch,
                             num_workers, num_parts, part_index)

    def make_val():
        return BenchmarkIter(val, benchmark, vb, size, "val", num_workers=num_workers)

    def make_multi():
        return BenchmarkIter(val, benchmark, vb, size, "multi", num_workers=num_workers)
    return make_train, make_val, make_multi
