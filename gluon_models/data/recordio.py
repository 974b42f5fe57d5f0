"""Write im2rec-compatible RecordIO: ``PREFIX.lst``, ``PREFIX.rec`` and ``PREFIX.idx``.

The files are the ones MXNet's ``tools/im2rec.py`` writes, so everything that reads im2rec
output reads ours (``mx.io.ImageRecordIter``, ``mx.recordio.MXIndexedRecordIO``,
``gluon.data.vision.ImageRecordDataset``):

* ``.lst``: one line per record, ``index \\t label [\\t label ...] \\t path``, labels as ``%f``;
* ``.rec``: one record per image, ``mx.recordio.pack_img`` / ``pack`` of an
  ``IRHeader(flag, label, id=index, id2=0)`` and the encoded image. A single label is stored in
  the header (``flag = 0``); several labels are stored as float32 after it (``flag`` = their
  number), as im2rec's ``--pack-label`` does;
* ``.idx``: ``index \\t byte offset`` per record, from ``MXIndexedRecordIO.write_idx``.

:func:`write_records` is the one writer behind every converter: it encodes in a process pool,
writes in input order (so the output does not depend on ``num_workers``), shows a progress bar,
logs count and rate, and is atomic: the three files are written under temporary names in the
destination directory and renamed at the very end, ``.rec`` last. An interrupted conversion
removes its temporary files; one killed outright leaves only
``.<name>.<ext>.<pid>-<tag>.partial`` files, which no reader mistakes for output and later runs
ignore (with a warning listing them, until they are deleted).
"""
import argparse
import collections
import glob
import itertools
import logging
import multiprocessing
import os
import sys
import time

import numpy as np

__all__ = ["WriteResult", "write_records", "read_lst", "record_files", "records_exist",
           "needs_write", "add_convert_args", "convert_options_from_args", "ENCODINGS",
           "DEFAULT_QUALITY"]

_LOG = logging.getLogger(__name__)

ENCODINGS = (".png", ".jpg")
# .jpg: JPEG quality 1-100 (im2rec's default 95). .png: zlib compression level 0-9, lossless at
# every level; on the 32x32 digits level 3 is 4% larger than level 9 and encodes 30% faster.
DEFAULT_QUALITY = {".jpg": 95, ".png": 3}
_QUALITY_RANGE = {".jpg": (1, 100), ".png": (0, 9)}

WriteResult = collections.namedtuple("WriteResult", [
    "count",    # records written
    "skipped",  # [(index, path, reason)] of the items that were skipped
    "seconds",  # wall time of the whole write
    "rec", "idx", "lst",  # final paths
])


def record_files(prefix):
    """``(rec, idx, lst)`` paths for ``prefix`` (a path without extension)."""
    return prefix + ".rec", prefix + ".idx", prefix + ".lst"


def records_exist(prefix):
    """True when all three files of a finished conversion exist at ``prefix``."""
    return all(os.path.isfile(p) for p in record_files(prefix))


def needs_write(prefix, overwrite=False):
    """False (and a log line) when ``prefix`` already holds a finished conversion and
    ``overwrite`` is off: converters call it before reading their source, so a re-run resumes
    with the splits that are still missing."""
    if overwrite or not records_exist(prefix):
        return True
    _LOG.info("%s.rec/.idx/.lst exist, skipping (overwrite to rewrite)", prefix)
    return False


def read_lst(path):
    """Read an im2rec ``.lst`` file into ``[(index, (label, ...), path)]``.

    Raises ``DataFormatError`` naming the file and line for a malformed line."""
    from .datasets import DataFormatError
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            parts = line.rstrip("\n").split("\t")
            try:
                if len(parts) < 3:
                    raise ValueError("expected index, label(s) and path separated by tabs")
                out.append((int(parts[0]), tuple(float(x) for x in parts[1:-1]), parts[-1]))
            except ValueError as e:
                raise DataFormatError("%s line %d: %s: %r" % (path, n, e, line)) from None
    return out


def _normalize_encoding(encoding, quality):
    enc = encoding.lower()
    enc = {"png": ".png", "jpg": ".jpg", "jpeg": ".jpg", ".jpeg": ".jpg"}.get(enc, enc)
    if enc not in ENCODINGS:
        raise ValueError("encoding must be one of %s, got %r" % (", ".join(ENCODINGS), encoding))
    if quality is None:
        quality = DEFAULT_QUALITY[enc]
    lo, hi = _QUALITY_RANGE[enc]
    if not (isinstance(quality, (int, np.integer)) and lo <= quality <= hi):
        raise ValueError("quality for %s must be an integer in [%d, %d], got %r"
                         % (enc, lo, hi, quality))
    return enc, int(quality)


# ------------------------------------------------------------------------------------------
# Encoding (runs in the worker processes, or in-process when num_workers <= 1)

_CFG = {}


def _init_worker(cfg):
    import cv2
    cv2.setNumThreads(1)  # the pool is the parallelism; OpenCV's own threads would oversubscribe
    _CFG.clear()
    _CFG.update(cfg)


def _header(index, label):
    import mxnet as mx
    lab = np.asarray(label, dtype=np.float32).ravel()
    if lab.size == 0:
        raise ValueError("record %d has no label" % index)
    # One label lives in the header (flag 0); several go after it with flag = their number.
    return mx.recordio.IRHeader(0, float(lab[0]) if lab.size == 1 else lab, int(index), 0)


def _encode_item(index, label, image, encoding, quality):
    """Pack one record: an HxW[xC] uint8 BGR array is encoded, bytes are stored as they are."""
    import mxnet as mx
    header = _header(index, label)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return mx.recordio.pack(header, bytes(image))
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (
            image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise ValueError("record %d: expected an HxW or HxWxC (C = 1, 3, 4) uint8 image, got "
                         "shape %s dtype %s" % (index, image.shape, image.dtype))
    return mx.recordio.pack_img(header, np.ascontiguousarray(image), quality=quality,
                                img_fmt=encoding)


def _encode_chunk(chunk):
    """Encode a list of ``(index, label, image, path)``; returns ``[(index, label, path,
    record or None, reason)]`` in the same order."""
    cfg = _CFG
    out = []
    for index, label, image, path in chunk:
        try:
            if cfg["transform"] is not None:
                image = cfg["transform"](image)
                if image is None:
                    out.append((index, label, path, None, "unreadable"))
                    continue
            rec = _encode_item(index, label, image, cfg["encoding"], cfg["quality"])
        except Exception as e:  # noqa: BLE001  (reported with the item, or re-raised)
            if not cfg["skip_errors"]:
                raise RuntimeError("while encoding record %d (%s): %s: %s"
                                   % (index, path, type(e).__name__, e)) from e
            out.append((index, label, path, None, "%s: %s" % (type(e).__name__, e)))
            continue
        out.append((index, label, path, rec, None))
    return out


def _chunks(items, size, default_ext):
    it = iter(items)
    while True:
        chunk = []
        for item in itertools.islice(it, size):
            if len(item) == 3:
                index, label, image = item
                path = "%d%s" % (index, default_ext)
            elif len(item) == 4:
                index, label, image, path = item
            else:
                raise ValueError("an item is (index, label(s), image[, path]), got %d fields"
                                 % len(item))
            chunk.append((int(index), label, image, str(path)))
        if not chunk:
            return
        yield chunk


def _encoded(chunks, num_workers, cfg):
    """Encoded chunks in input order, with at most a few chunks per worker in flight (bounded
    memory even when the input is a generator over a million images)."""
    if num_workers <= 1:
        _init_worker(cfg)
        for chunk in chunks:
            yield _encode_chunk(chunk)
        return
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    pool = ctx.Pool(num_workers, initializer=_init_worker, initargs=(cfg,))
    try:
        pending = collections.deque()
        for chunk in chunks:
            pending.append(pool.apply_async(_encode_chunk, (chunk,)))
            if len(pending) >= 3 * num_workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def _label_text(label):
    lab = np.asarray(label, dtype=np.float64).ravel()
    return "".join("%f\t" % v for v in lab)


def _progress_bar(total, desc, enabled):
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm comes with gluoncv; without it there is just no bar
        return None
    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr, disable=not enabled,
                dynamic_ncols=True, leave=False)


def write_records(prefix, items, encoding=".png", quality=None, num_workers=1, total=None,
                  progress=True, chunksize=256, transform=None, skip_errors=False,
                  log_every=10000):
    """Write ``prefix.lst``, ``prefix.rec`` and ``prefix.idx`` from an iterable of images.

    Parameters
    ----------
    prefix : str
        Output path without extension, e.g. ``data/cifar10/train``. Its directory is created.
    items : iterable
        ``(index, label, image)`` or ``(index, label, image, path)`` tuples. ``index`` is the
        record id (unique int; the ``.idx`` key), ``label`` a number or a sequence of numbers,
        ``image`` an HxWx3 (or HxW) uint8 array in **BGR** order (OpenCV's), or bytes of an
        already encoded image (stored as they are, like im2rec ``--pass-through``), or anything
        ``transform`` turns into one of these. ``path`` is the ``.lst`` path column (default
        ``<index><encoding>``). Records are written in iteration order.
    encoding : {'.png', '.jpg'}
        Image format. PNG is lossless (the default for the 32x32 sets).
    quality : int, optional
        JPEG quality 1-100 (default 95) or PNG compression level 0-9 (default 3).
    num_workers : int
        Encoding processes; ``<= 1`` encodes in this process. The output is identical for
        every value.
    total : int, optional
        Number of items, for the progress bar (``len(items)`` when it has one).
    progress : bool
        Show a tqdm progress bar on stderr.
    chunksize : int
        Items per task sent to a worker.
    transform : callable, optional
        Applied to each ``image`` in the worker before encoding (e.g. read and resize a file);
        returning ``None`` skips the item as unreadable. It must be picklable where processes
        are spawned rather than forked.
    skip_errors : bool
        Skip (and report) an item whose transform or encoding raises, instead of failing.
    log_every : int
        Log count and rate every this many records.

    Returns
    -------
    WriteResult
        ``count``, ``skipped`` (``[(index, path, reason)]``, also written to
        ``PREFIX.skipped`` when not empty), ``seconds`` and the three paths.
    """
    encoding, quality = _normalize_encoding(encoding, quality)
    import mxnet as mx
    name = prefix
    prefix = os.path.abspath(prefix)
    out_dir = os.path.dirname(prefix)
    os.makedirs(out_dir, exist_ok=True)
    final = record_files(prefix)
    stale = sorted(glob.glob(os.path.join(out_dir, ".%s.*.partial" % glob.escape(
        os.path.basename(prefix)))))
    if stale:
        _LOG.warning("ignoring %d leftover partial file(s) of an interrupted run: %s",
                     len(stale), ", ".join(os.path.basename(s) for s in stale))
    tag = "%d-%s" % (os.getpid(), os.urandom(4).hex())
    temp = [os.path.join(out_dir, ".%s.%s.%s.partial" % (os.path.basename(p)[:-4], p[-3:], tag))
            for p in final]
    if total is None and hasattr(items, "__len__"):
        total = len(items)
    cfg = dict(encoding=encoding, quality=quality, transform=transform, skip_errors=skip_errors)
    bar = _progress_bar(total, os.path.basename(prefix), progress)
    start = time.time()
    count, skipped, seen = 0, [], set()
    writer = lst = encoded = None
    done = False
    try:
        writer = mx.recordio.MXIndexedRecordIO(temp[1], temp[0], "w")
        lst = open(temp[2], "w")
        encoded = _encoded(_chunks(items, max(1, int(chunksize)), encoding), int(num_workers), cfg)
        for results in encoded:
            for index, label, path, record, reason in results:
                if index in seen:
                    raise ValueError("%s: record index %d appears twice" % (name, index))
                seen.add(index)
                if record is None:
                    skipped.append((index, path, reason))
                    continue
                writer.write_idx(index, record)
                lst.write("%d\t%s%s\n" % (index, _label_text(label), path))
                count += 1
                if log_every and count % log_every == 0:
                    _LOG.info("%s: %d records, %.0f images/s", name, count,
                              count / max(time.time() - start, 1e-9))
            if bar is not None:
                bar.update(len(results))
        writer.close()
        lst.close()
        # Rename .rec last: a .rec whose .idx and .lst are missing or older never appears.
        if os.path.exists(final[0]):
            os.remove(final[0])
        os.replace(temp[1], final[1])
        os.replace(temp[2], final[2])
        os.replace(temp[0], final[0])
        done = True
    finally:
        if encoded is not None:
            encoded.close()  # stops the worker pool now, also when an error is propagating
        if bar is not None:
            bar.close()
        if not done:
            if writer is not None:
                writer.close()
            if lst is not None:
                lst.close()
            for p in temp:
                if os.path.exists(p):
                    os.remove(p)
    seconds = time.time() - start
    _LOG.info("%s: wrote %d records (.rec/.idx/.lst) in %.2f s, %.0f images/s%s", name, count,
              seconds, count / max(seconds, 1e-9),
              ", skipped %d" % len(skipped) if skipped else "")
    _write_skipped(prefix + ".skipped", skipped)
    for index, path, reason in skipped:
        _LOG.warning("%s: skipped record %d (%s): %s", name, index, path, reason)
    return WriteResult(count, skipped, seconds, *final)


def _write_skipped(path, skipped):
    """``PREFIX.skipped`` lists ``index \t path \t reason`` of every skipped item; it exists
    only when something was skipped."""
    if not skipped:
        if os.path.exists(path):
            os.remove(path)
        return
    with open(path + ".tmp", "w") as f:
        for index, item_path, reason in skipped:
            f.write("%d\t%s\t%s\n" % (index, item_path, str(reason).replace("\n", " ")))
    os.replace(path + ".tmp", path)


# ------------------------------------------------------------------------------------------
# Command-line options shared by the converters (tools/prepare_*.py)

def add_convert_args(parser):
    """Add the ``Conversion`` argument group (workers, encoding, quality, overwrite, progress)."""
    group = parser.add_argument_group("Conversion", "how records are encoded and written")
    group.add_argument("--num-workers", type=int, default=min(4, os.cpu_count() or 1),
                       help="encoding processes (the output does not depend on it)")
    group.add_argument("--encoding", choices=ENCODINGS, default=".png",
                       help="image format inside the records; .png is lossless")
    group.add_argument("--quality", type=int, default=None,
                       help="JPEG quality 1-100 or PNG compression 0-9; default: %s"
                       % ", ".join("%s %d" % kv for kv in sorted(DEFAULT_QUALITY.items())))
    group.add_argument("--overwrite", action="store_true",
                       help="rewrite splits whose .rec/.idx/.lst already exist (else skip them)")
    group.add_argument("--no-progress", action="store_true", help="no progress bar")
    return group


def convert_options_from_args(args):
    """Keyword arguments for the ``convert_*`` functions from :func:`add_convert_args` options."""
    if not isinstance(args, argparse.Namespace):
        raise TypeError("expected an argparse.Namespace")
    return dict(num_workers=args.num_workers, encoding=args.encoding, quality=args.quality,
                overwrite=args.overwrite, progress=not args.no_progress)
