"""Write im2rec-compatible RecordIO: ``PREFIX.lst``, ``PREFIX.rec`` and ``PREFIX.idx``.

The files are the ones MXNet's ``tools/im2rec.py`` writes, so everything that reads im2rec
output reads ours (``mx.io.ImageRecordIter``, ``mx.recordio.MXIndexedRecordIO``,
``gluon.data.vision.ImageRecordDataset``):

* ``.lst``: one line per record, ``index \\t label [\\t label ...] \\t path``, labels as ``%f``;
* ``.rec``: one record per image, ``mx.recordio.pack_img`` / ``pack`` of an
  ``IRHeader(flag, label, id=index, id2=0)`` and the encoded image. A single label is stored in
  the header (``flag = 0``); several labels are stored as float32 after it (``flag`` = their
  number), as im2rec's ``--pack-label`` does;
* ``.idx``: ``index \\t byte offset`` per record, the lines ``MXIndexedRecordIO.write_idx``
  writes.

:func:`write_records` is the one writer behind every converter: it encodes in a pool of
workers (processes, or threads where the work releases the GIL), writes in input order (so the
output does not depend on ``num_workers``), shows a progress bar, logs count and rate, and is
atomic: the files are written under temporary names in the destination directory (created
exclusively, with a random tag, so two runs on one prefix never share one) and renamed at the
very end, ``.rec`` last. A conversion that fails with an error removes its temporary
files (unless it was asked to ``resume``).

Resuming. A run that is killed (or stopped with Ctrl-C) leaves its temporaries,
``.<name>.<ext>.<pid>-<tag>.partial`` for ``ext`` in ``rec idx lst meta skipped``, which no reader
mistakes for output. ``write_records(..., resume=True)`` continues such a run instead of starting
over: it picks the newest partial set of the same prefix whose ``meta`` file holds the same
signature (encoding, quality, ``write_lst`` and the caller's ``signature``, e.g. a hash of the
source list and the image options) and that no live process holds (the writer keeps a POSIX lock
on its ``meta`` file while it runs). It reads the partial ``.rec`` back record by record (the
RecordIO framing below), keeps the longest prefix of complete records that the ``.idx`` (and
``.lst``) lines agree with, cuts the three files back to it, skips the input items up to the
last kept record (items in between that are not in it were skipped by the first run: their
reasons come from the partial ``skipped`` file) and appends the rest. The result is
byte-identical to an uninterrupted run. The writer flushes its files after every chunk of
records, so a killed run loses only the chunks it was encoding. Without ``resume`` a later run
ignores partial files (with a warning listing them).

The ``.rec`` framing is dmlc's RecordIO, written here in Python so that a partial file can be
appended to: each record is ``magic (0xced7230a) | lrec | data | zero padding to 4 bytes``,
``lrec`` = ``cflag << 29 | length``. A 4-aligned occurrence of the magic word inside the data
splits the record into parts (``cflag`` 1 = first, 2 = middle, 3 = last; the magic word itself
is dropped and restored by readers); an unsplit record has ``cflag`` 0. The bytes are those of
``mx.recordio.MXRecordIO`` (tests/data/test_recordio.py holds the two against each other).
"""
import argparse
import collections
import functools
import itertools
import json
import logging
import multiprocessing
import os
import re
import struct
import sys
import time

import numpy as np

from ..utils.fileio import atomic_open, create_exclusive, replace_all

__all__ = ["WriteResult", "Refused", "lst_name_problem", "escape_name", "write_records",
           "read_lst", "write_lst", "record_files",
           "records_exist", "needs_write", "partial_runs", "frame_record", "scan_records",
           "add_convert_args", "convert_options_from_args", "ENCODINGS", "DEFAULT_QUALITY"]

_LOG = logging.getLogger(__name__)

ENCODINGS = (".png", ".jpg")
# .jpg: JPEG quality 1-100 (im2rec's default 95). .png: zlib compression level 0-9, lossless at
# every level; on the 32x32 digits level 3 is 4% larger than level 9 and encodes 30% faster.
DEFAULT_QUALITY = {".jpg": 95, ".png": 3}
_QUALITY_RANGE = {".jpg": (1, 100), ".png": (0, 9)}

WriteResult = collections.namedtuple("WriteResult", [
    "count",    # records in the output (kept from an interrupted run + written now)
    "skipped",  # [(index, path, reason)] of the items that were skipped
    "seconds",  # wall time of the whole write
    "rec", "idx", "lst",  # final paths (lst is None when the writer was told not to write it)
    "resumed",  # records kept from an interrupted run (0 for a fresh write)
], defaults=(0,))


# A name holding a tab or a line break splits its .lst line (a crafted file name adds a fake
# record, or makes read_lst fail); readers strip the fields, so leading or trailing white space
# would name another file. Such names are refused, listed with the reason, never written.
_LINE_BREAKS = ("\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028",
                "\u2029")  # everything str.splitlines splits at


def lst_name_problem(name):
    """Why ``name`` (an image path or a class name) cannot go into a ``.lst`` or
    ``classes.txt`` line, or None when it can."""
    if "\t" in name:
        return "the name contains a tab, which would split its .lst line"
    if any(c in name for c in _LINE_BREAKS):
        return "the name contains a line break, which would split its .lst line"
    if name != name.strip():
        return "the name starts or ends with white space, which readers of a .lst strip"
    return None


def escape_name(name):
    """``name`` with its tabs and line breaks written as escapes (Python's ``unicode_escape``),
    for one field of a tab-separated line (skipped lists); other names are kept as they are."""
    if any(c in name for c in ("\t",) + _LINE_BREAKS):
        return name.encode("unicode_escape").decode("ascii")
    return name


class Refused(collections.namedtuple("Refused", ["reason"])):
    """An item's image that :func:`write_records` lists as skipped with ``reason`` and
    never encodes: how a converter hands over the items it refused itself (a class whose
    name cannot be written), so that they appear in the skipped list in order."""


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

    Blank lines are ignored (as im2rec does); fields may carry surrounding spaces and the line a
    ``\\r\\n`` ending. Raises ``DataFormatError`` naming the file and line for a malformed line."""
    from .datasets import DataFormatError
    out = []
    n = 0
    try:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                parts = [x.strip() for x in line.rstrip("\r\n").split("\t")]
                try:
                    if len(parts) < 3:
                        raise ValueError("expected index, label(s) and path separated by tabs")
                    out.append((int(parts[0]), tuple(float(x) for x in parts[1:-1]), parts[-1]))
                except ValueError as e:
                    raise DataFormatError("%s line %d: %s: %r" % (path, n, e, line)) from None
    except UnicodeDecodeError as e:  # a binary file (a .rec given as the list, say)
        raise DataFormatError("%s: not a text .lst file: undecodable bytes after line %d (%s)"
                              % (path, n, e.reason)) from None
    return out


def write_lst(path, rows):
    """Write an im2rec ``.lst``: ``rows`` of ``(index, label or labels, path)``, one line each,
    ``index \\t label \\t ... \\t path`` with labels as ``%f`` (im2rec's format). Atomic: the
    file appears complete or not at all."""
    rows = list(rows)
    for index, _, item_path in rows:  # callers refuse such names first; never write one
        problem = lst_name_problem(item_path)
        if problem:
            raise ValueError("%s: record %d (%s): %s" % (path, index, escape_name(item_path),
                                                         problem))
    with atomic_open(path) as f:
        for index, label, item_path in rows:
            f.write("%d\t%s%s\n" % (index, _label_text(label), item_path))
    return path


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
    framed record or None, reason)]`` in the same order. The framing is done here too, so the
    writing process only writes."""
    cfg = _CFG
    out = []
    for index, label, image, path in chunk:
        if isinstance(image, Refused):
            out.append((index, label, path, None, image.reason))
            continue
        problem = lst_name_problem(path)
        if problem:  # never written: it would corrupt the .lst (and the skipped list)
            if not cfg["skip_errors"]:
                raise ValueError("record %d (%s): %s" % (index, escape_name(path), problem))
            out.append((index, label, path, None, problem))
            continue
        try:
            if cfg["transform"] is not None:
                image = cfg["transform"](image)
                if image is None:
                    out.append((index, label, path, None, "unreadable"))
                    continue
            rec = frame_record(_encode_item(index, label, image, cfg["encoding"],
                                            cfg["quality"]))
        except Exception as e:  # noqa: BLE001  (reported with the item, or re-raised)
            if not cfg["skip_errors"]:
                raise RuntimeError("while encoding record %d (%s): %s: %s"
                                   % (index, path, type(e).__name__, e)) from e
            out.append((index, label, path, None, "%s: %s" % (type(e).__name__, e)))
            continue
        out.append((index, label, path, rec, None))
    return out


def _normalized(items, default_ext):
    """Each item as ``(index, label, image, path)`` (see :func:`write_records` for the forms)."""
    for item in items:
        if len(item) == 3:
            index, label, image = item
            path = "%d%s" % (index, default_ext)
        elif len(item) == 4:
            index, label, image, path = item
        else:
            raise ValueError("an item is (index, label(s), image[, path]), got %d fields"
                             % len(item))
        yield int(index), label, image, str(path)


def _chunks(items, size):
    it = iter(items)
    while True:
        chunk = list(itertools.islice(it, size))
        if not chunk:
            return
        yield chunk


def _encoded(chunks, num_workers, cfg, backend="process"):
    """Encoded chunks in input order, with at most a few chunks per worker in flight (bounded
    memory even when the input is a generator over a million images)."""
    if num_workers <= 1:
        _init_worker(cfg)
        for chunk in chunks:
            yield _encode_chunk(chunk)
        return
    if backend == "thread":
        from concurrent.futures import ThreadPoolExecutor
        _init_worker(cfg)
        pool = ThreadPoolExecutor(num_workers)
        submit, get = functools.partial(pool.submit, _encode_chunk), "result"
    else:
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        pool = ctx.Pool(num_workers, initializer=_init_worker, initargs=(cfg,))
        submit, get = (lambda chunk: pool.apply_async(_encode_chunk, (chunk,))), "get"
    try:
        pending = collections.deque()
        for chunk in chunks:
            pending.append(submit(chunk))
            if len(pending) >= 3 * num_workers:
                yield getattr(pending.popleft(), get)()
        while pending:
            yield getattr(pending.popleft(), get)()
    finally:
        if backend == "thread":
            pool.shutdown(wait=True, cancel_futures=True)  # a running chunk finishes first
        else:
            pool.terminate()
            pool.join()


def _label_text(label):
    lab = np.asarray(label, dtype=np.float64).ravel()
    return "".join("%f\t" % v for v in lab)


def _progress_bar(total, desc, enabled, initial=0):
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm comes with gluoncv; without it there is just no bar
        return None
    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr, disable=not enabled,
                dynamic_ncols=True, leave=False, initial=initial)


# ------------------------------------------------------------------------------------------
# RecordIO framing (see the module docstring), and reading a partial file back

_MAGIC = 0xCED7230A
_MAGIC_WORD = struct.pack("<I", _MAGIC)
_LENGTH_MASK = (1 << 29) - 1
_IRHEADER_SIZE = struct.calcsize("IfQQ")  # flag, label, id, id2: 24 bytes

RecordSpan = collections.namedtuple("RecordSpan", ["offset", "end", "id"])


def frame_record(payload):
    """The bytes of one RecordIO record holding ``payload``, laid out as dmlc's writer (and so
    ``mx.recordio.MXRecordIO.write``) lays them out; see the module docstring."""
    payload = bytes(payload)
    size = len(payload)
    if size > _LENGTH_MASK:
        raise ValueError("a RecordIO record holds less than 2**29 bytes, got %d" % size)
    pad = b"\0" * (-size % 4)
    cuts = []
    if _MAGIC_WORD in payload:  # rare (~1 in 2**32 per position): only then look for it aligned
        words = np.frombuffer(payload, dtype="<u4", count=size // 4)
        cuts = (np.flatnonzero(words == _MAGIC) * 4).tolist()
    if not cuts:  # the usual case: one part
        return b"".join((struct.pack("<II", _MAGIC, size), payload, pad))
    pieces, start = [], 0
    for k, cut in enumerate(cuts):
        pieces += [struct.pack("<II", _MAGIC, (1 if k == 0 else 2) << 29 | (cut - start)),
                   payload[start:cut]]
        start = cut + 4
    pieces += [struct.pack("<II", _MAGIC, 3 << 29 | (size - start)), payload[start:], pad]
    return b"".join(pieces)


def scan_records(path):
    """Read a ``.rec`` back without decoding: the ``RecordSpan(offset, end, id)`` of each
    complete record from the start, stopping at the first one that is cut short or damaged
    (what a killed writer leaves at the end). ``id`` is the record's ``IRHeader.id``.

    Only the framing and the first bytes of each record are read, so this is quick even for
    a file of many gigabytes."""
    spans = []
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        pos = 0
        while pos < size:
            start, head, part, complete = pos, b"", 0, False
            while True:
                f.seek(pos)
                frame = f.read(8)
                if len(frame) < 8:
                    break
                magic, lrec = struct.unpack("<II", frame)
                cflag, length = lrec >> 29, lrec & _LENGTH_MASK
                if magic != _MAGIC or cflag > 3 or (part == 0) != (cflag in (0, 1)):
                    break
                end = pos + 8 + length + (-length % 4)
                if end > size:
                    break
                if len(head) < _IRHEADER_SIZE:
                    head += (_MAGIC_WORD if part else b"") + f.read(min(length,
                                                                       _IRHEADER_SIZE))
                pos, part = end, part + 1
                if cflag in (0, 3):
                    complete = True
                    break
            if not complete or len(head) < _IRHEADER_SIZE:
                break
            spans.append(RecordSpan(start, pos, struct.unpack_from("<Q", head, 8)[0]))
    return spans


def _complete_lines(path):
    """The newline-terminated lines of a file (bytes, without the newline); a cut-off last line
    is dropped."""
    with open(path, "rb") as f:
        data = f.read()
    return data[:data.rfind(b"\n") + 1].split(b"\n")[:-1]


# ------------------------------------------------------------------------------------------
# Partial output of an interrupted run

try:
    import fcntl
except ImportError:  # not POSIX: no lock, a partial set is taken to be unused
    fcntl = None

_PARTIAL_EXTS = ("rec", "idx", "lst", "meta", "skipped")


def _partial_path(out_dir, base, ext, tag):
    return os.path.join(out_dir, ".%s.%s.%s.partial" % (base, ext, tag))


def _partial_sets(out_dir, base):
    """``{tag: {ext: path}}`` of the partial files of ``base`` in ``out_dir``."""
    pattern = re.compile(r"^\.%s\.(%s)\.(\d+-[0-9a-f]{8})\.partial$"
                         % (re.escape(base), "|".join(_PARTIAL_EXTS)))
    sets = collections.defaultdict(dict)
    for fname in os.listdir(out_dir):
        m = pattern.match(fname)
        if m:
            sets[m.group(2)][m.group(1)] = os.path.join(out_dir, fname)
    return dict(sets)


def partial_runs(prefix):
    """Tags (``<pid>-<hex>``) of the interrupted runs whose partial files lie next to
    ``prefix``, sorted; ``write_records(prefix, ..., resume=True)`` continues one of them."""
    prefix = os.path.abspath(prefix)
    out_dir = os.path.dirname(prefix)
    if not os.path.isdir(out_dir):
        return []
    return sorted(_partial_sets(out_dir, os.path.basename(prefix)))


def _try_lock(fh, wait=False):
    """Take the POSIX lock of an open file; False when another process holds it (with
    ``wait``, wait for it instead). (POSIX locks belong to the process, are not inherited by
    the worker processes and go away when the process dies, so a killed run never leaves its
    partial set locked.)"""
    if fcntl is None:
        return True
    try:
        fcntl.lockf(fh.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        return True
    except OSError:
        return False


def _signature_text(encoding, quality, write_lst, signature):
    try:
        return json.dumps({"format": 1, "encoding": encoding, "quality": quality,
                           "lst": bool(write_lst), "source": signature}, sort_keys=True)
    except TypeError as e:
        raise TypeError("signature must be JSON-serialisable: %s" % e) from None


_Partial = collections.namedtuple("_Partial", ["tag", "meta", "ids", "skipped"])


def _adopt_partial(out_dir, base, sig_text, write_lst, name):
    """Take over the newest unlocked partial set of ``base`` written with ``sig_text``: cut it
    back to its longest consistent prefix of complete records and return a ``_Partial`` (its
    locked meta file, the kept record ids in order, ``{index: reason}`` of the items it
    skipped), or None when there is none."""
    sets = _partial_sets(out_dir, base)
    needed = {"rec", "idx", "meta"} | ({"lst"} if write_lst else set())

    def newest(tag):
        return max(os.path.getmtime(p) for p in sets[tag].values())

    for tag in sorted((t for t in sets if needed <= set(sets[t])), key=newest, reverse=True):
        files = sets[tag]
        try:
            meta = open(files["meta"], "r+")
        except OSError:
            continue
        if not _try_lock(meta):
            _LOG.info("%s: partial output %s is in use by a running conversion", name, tag)
            meta.close()
            continue
        if meta.readline().rstrip("\n") != sig_text:
            meta.close()
            continue
        spans = scan_records(files["rec"])
        idx_lines = _complete_lines(files["idx"])
        lst_lines = _complete_lines(files["lst"]) if write_lst else None
        limit = min(len(spans), len(idx_lines),
                    len(spans) if lst_lines is None else len(lst_lines))
        n = 0
        while n < limit:
            try:
                key, offset = (int(x) for x in idx_lines[n].split(b"\t"))
                ok = key == spans[n].id and offset == spans[n].offset and (
                    lst_lines is None or int(lst_lines[n].split(b"\t", 1)[0]) == key)
            except ValueError:
                ok = False
            if not ok:
                break
            n += 1
        rec_size, rec_end = os.path.getsize(files["rec"]), spans[n - 1].end if n else 0
        os.truncate(files["rec"], rec_end)
        os.truncate(files["idx"], sum(len(line) + 1 for line in idx_lines[:n]))
        if write_lst:
            os.truncate(files["lst"], sum(len(line) + 1 for line in lst_lines[:n]))
        skipped = {}
        if "skipped" in files:
            for line in _complete_lines(files["skipped"]):
                parts = line.decode("utf-8", "replace").split("\t", 2)
                if len(parts) == 3 and parts[0].lstrip("-").isdigit():
                    skipped[int(parts[0])] = parts[2]
        _LOG.info("%s: resuming the interrupted run %s: kept its %d complete records, cut off "
                  "%d trailing bytes of its .rec", name, tag, n, rec_size - rec_end)
        return _Partial(tag, meta, [s.id for s in spans[:n]], skipped)
    return None


# ------------------------------------------------------------------------------------------
# The writer

def write_records(prefix, items, encoding=".png", quality=None, num_workers=1, total=None,
                  progress=True, chunksize=256, transform=None, skip_errors=False,
                  log_every=10000, write_lst=True, resume=False, signature=None,
                  backend="process"):
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
        Encoding workers; ``<= 1`` encodes in this process. The output is identical for
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
    write_lst : bool
        Write ``prefix.lst`` (the records' index, label(s) and path). im2rec, whose ``.lst``
        is the input, turns it off.
    resume : bool
        Continue the partial output of an interrupted run with the same signature instead of
        starting over (see the module docstring); with it, an error keeps the partial output
        too, so the run can be continued once the cause is fixed.
    signature : JSON-serialisable, optional
        What identifies the input and options beyond encoding and quality (e.g. a hash of the
        source list, the resize setting): a partial output is only resumed by a call with the
        same signature.
    backend : {'process', 'thread'}
        How the workers run: a pool of forked processes (each item and its record are copied
        between processes), or threads of this process, which run in parallel where the work
        releases the GIL, as OpenCV's decode, resize and encode do (image folders).

    Returns
    -------
    WriteResult
        ``count``, ``skipped`` (``[(index, path, reason)]``, also written to
        ``PREFIX.skipped`` when not empty), ``seconds``, the paths and ``resumed``.
    """
    encoding, quality = _normalize_encoding(encoding, quality)
    if backend not in ("process", "thread"):
        raise ValueError("backend must be 'process' or 'thread', got %r" % (backend,))
    name = prefix
    prefix = os.path.abspath(prefix)
    out_dir, base = os.path.split(prefix)
    os.makedirs(out_dir, exist_ok=True)
    final = record_files(prefix)
    sig_text = _signature_text(encoding, quality, write_lst, signature)
    partial = _adopt_partial(out_dir, base, sig_text, write_lst, name) if resume else None
    others = sorted(t for t in _partial_sets(out_dir, base) if not partial or t != partial.tag)
    if others:
        _LOG.warning("%s: ignoring leftover partial output of %d interrupted run(s) (%s)%s", name,
                     len(others), ", ".join(others),
                     " with other options or still running" if resume
                     else "; resume=True continues one")
    if partial is not None:
        tag, meta, mode = partial.tag, partial.meta, "a"
    else:
        # A new set is created exclusively under a random tag, so two runs on one prefix
        # never share (or truncate) each other's files; the pid in the tag is for people.
        pid, mode = os.getpid(), "w"
        exts = [ext for ext in _PARTIAL_EXTS if write_lst or ext != "lst"]
        token, _ = create_exclusive(
            lambda t: [_partial_path(out_dir, base, ext, "%d-%s" % (pid, t)) for ext in exts])
        tag = "%d-%s" % (pid, token)
        meta = open(_partial_path(out_dir, base, "meta", tag), "w")
        # A resuming run may be looking at the still empty meta file; it lets go at once (no
        # signature), and the set must be locked for the whole of this run.
        _try_lock(meta, wait=True)
        meta.write("%s\n%s\n" % (sig_text, json.dumps({"pid": os.getpid(),
                                                       "started": time.time()})))
        meta.flush()
    temp = {ext: _partial_path(out_dir, base, ext, tag) for ext in _PARTIAL_EXTS}
    if total is None and hasattr(items, "__len__"):
        total = len(items)
    cfg = dict(encoding=encoding, quality=quality, transform=transform, skip_errors=skip_errors)
    start = time.time()
    count, kept, skipped, seen = 0, 0, [], set()
    rec = idx = lst = skip_file = encoded = bar = None
    done = keep = False
    try:
        rec = open(temp["rec"], mode + "b", buffering=1 << 18)
        pos = os.path.getsize(temp["rec"])
        idx = open(temp["idx"], mode)
        lst = open(temp["lst"], mode) if write_lst else None
        skip_file = open(temp["skipped"], "w")
        stream = _normalized(items, encoding)
        if partial is not None and partial.ids:
            # Walk the items up to the last kept record: those not kept were skipped then.
            ids, last = partial.ids, partial.ids[-1]
            for index, label, image, path in stream:
                if index in seen:
                    raise ValueError("%s: record index %d appears twice" % (name, index))
                seen.add(index)
                if kept < len(ids) and index == ids[kept]:
                    kept += 1
                else:
                    reason = partial.skipped.get(index, "skipped by the interrupted run")
                    skipped.append((index, path, reason))
                    skip_file.write(_skipped_line(index, path, reason))
                if index == last:
                    break
            if kept < len(ids):
                raise ValueError("%s: the partial output of an interrupted run (%s) does not "
                                 "match the items (record %d is missing or out of order); "
                                 "delete its .%s.*.%s.partial files or write without resume"
                                 % (name, tag, ids[kept], base, tag))
            count = kept
            skip_file.flush()
        bar = _progress_bar(total, base, progress, initial=len(seen))
        encoded = _encoded(_chunks(stream, max(1, int(chunksize))), int(num_workers), cfg,
                           backend)
        for results in encoded:
            for index, label, path, record, reason in results:
                if index in seen:
                    raise ValueError("%s: record index %d appears twice" % (name, index))
                seen.add(index)
                if record is None:
                    skipped.append((index, path, reason))
                    skip_file.write(_skipped_line(index, path, reason))
                    skip_file.flush()  # before any later record can reach the disk
                    continue
                idx.write("%d\t%d\n" % (index, pos))
                rec.write(record)
                pos += len(record)
                if lst is not None:
                    lst.write("%d\t%s%s\n" % (index, _label_text(label), path))
                count += 1
                if log_every and count % log_every == 0:
                    _LOG.info("%s: %d records, %.0f images/s", name, count,
                              (count - kept) / max(time.time() - start, 1e-9))
            for f in (rec, idx, lst):  # what a killed run leaves is then at most a chunk old
                if f is not None:
                    f.flush()
            if bar is not None:
                bar.update(len(results))
        for f in (rec, idx, lst, skip_file):
            if f is not None:
                f.close()
        # .rec last: a .rec whose .idx and .lst are missing or older never appears.
        replace_all([(temp["idx"], final[1])] + ([(temp["lst"], final[2])] if write_lst else [])
                    + [(temp["rec"], final[0])])
        done = True
    except KeyboardInterrupt:
        keep = True
        raise
    except BaseException:
        keep = resume
        raise
    finally:
        if encoded is not None:
            encoded.close()  # stops the worker pool now, also when an error is propagating
        if bar is not None:
            bar.close()
        for f in (rec, idx, lst, skip_file):
            if f is not None:
                f.close()  # flushes: the kept partial output holds everything encoded so far
        if done or not keep:
            for ext in ("rec", "idx", "lst", "skipped", "meta"):
                if os.path.exists(temp[ext]):
                    os.remove(temp[ext])
        elif not done:
            _LOG.warning("%s: interrupted after %d records; the partial output (%s) is kept: run "
                         "again with resume to continue", name, count, tag)
        meta.close()  # releases the lock
    seconds = time.time() - start
    _LOG.info("%s: wrote %d records (%s) in %.2f s, %.0f images/s%s%s", name, count,
              ".rec/.idx/.lst" if write_lst else ".rec/.idx", seconds,
              (count - kept) / max(seconds, 1e-9),
              ", %d kept from the interrupted run" % kept if partial is not None else "",
              ", skipped %d (listed in %s.skipped)" % (len(skipped), prefix) if skipped else "")
    _write_skipped(prefix + ".skipped", skipped)
    for index, path, reason in skipped:
        _LOG.warning("%s: skipped record %d (%s): %s", name, index, escape_name(path), reason)
    return WriteResult(count, skipped, seconds, final[0], final[1],
                       final[2] if write_lst else None, kept)


def _write_skipped(path, skipped):
    """``PREFIX.skipped`` lists ``index \t path \t reason`` of every skipped item; it exists
    only when something was skipped."""
    if not skipped:
        if os.path.exists(path):
            os.remove(path)
        return
    with atomic_open(path) as f:
        for index, item_path, reason in skipped:
            f.write(_skipped_line(index, item_path, reason))


def _skipped_line(index, path, reason):
    """One ``index \t path \t reason`` line; a path that would split it is escaped."""
    reason = " ".join(str(reason).split())  # one line, no tabs
    return "%d\t%s\t%s\n" % (index, escape_name(path), reason)


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
