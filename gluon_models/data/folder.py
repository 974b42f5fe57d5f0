"""Image folders to RecordIO: the logic of ``tools/im2rec.py``, a drop-in for MXNet's own.

Two steps, as in MXNet's ``tools/im2rec.py`` (same options, same files):

* **list** (:func:`make_image_lists`): walk ``root`` and write ``PREFIX.lst``, one line
  ``index \\t label \\t relative/path`` per image with the label as ``%f``. With ``recursive``
  every folder that holds images gets its own label, numbered in the order of a sorted walk
  (so one label per class folder, in sorted order); without it only the files directly in
  ``root`` are listed, all with label 0. The list is shuffled by default with the seed MXNet
  uses (``random.seed(100)``), and can be cut into ``chunks`` and train/val/test parts
  (``PREFIX[_k][_train|_val|_test].lst``). The files are identical to MXNet's.
* **records** (:func:`im2rec`, :func:`convert_lst`): for every ``PREFIX*.lst`` next to
  ``PREFIX``, read each image, optionally crop its centre square and resize its shorter side,
  encode it (or store the file's bytes as they are, ``pass_through``) and write
  ``<list name>.rec`` and ``.idx``. Record headers are MXNet's: ``IRHeader(0, label, index, 0)``
  (with ``pack_label``, all labels after the header and ``flag`` = their number), the ``.idx``
  key is the list's index, records are in list order, and the image operations are the same
  OpenCV calls, so the output is byte-identical to MXNet's im2rec (tests/data/test_im2rec.py
  runs both). The input ``.lst`` is not rewritten.

What differs, on purpose: the records go through the shared writer
(:func:`~gluon_models.data.recordio.write_records`): parallel but ordered, a progress bar,
atomic output, resumable (``resume``). The ``num_workers`` (``--num-thread``) workers are
threads by default: OpenCV decodes, resizes and encodes outside the GIL, so threads run in
parallel without copying images and records between processes (``backend='process'`` forks
a pool instead; benchmarks/bench_im2rec.py measures both). An unreadable, truncated or
non-image file is skipped, counted, logged and listed in ``<list name>.skipped``, or is an
error with ``strict``; MXNet's prints a traceback, stores what ``cv2.imread`` makes of a
cut-off JPEG (the missing part grey) and crashes on an unreadable file in its single-process
mode. Before decoding, each file is checked: a JPEG must have its end-of-image marker after
its last scan and a PNG its ``IEND`` chunk, so a cut-off download is caught even with
``pass_through``, which does not decode.

The old C++ ``im2rec`` command line (``im2rec LST ROOT OUTPUT.rec key=value ...``) is accepted
too (:func:`parse_im2rec_args`), with its keys ``resize``, ``quality``, ``encoding``, ``color``,
``center_crop``, ``unchanged``, ``pack_label``, ``label_width`` and ``inter_method``.
"""
import argparse
import logging
import os
import random

import numpy as np

from .datasets import DataFormatError
from .recordio import (escape_name, lst_name_problem, partial_runs, read_lst, write_lst,
                       write_records)
from ..utils.fileio import atomic_open, file_digest

__all__ = ["IMAGE_EXTS", "INTER_METHODS", "UnreadableImageError", "check_image_bytes",
           "ImageLoader", "walk_tree", "list_images", "split_image_list", "make_image_lists",
           "find_lst_files", "convert_lst", "im2rec", "add_image_args", "image_options_from_args",
           "parse_im2rec_args", "run_im2rec"]

_LOG = logging.getLogger(__name__)

IMAGE_EXTS = (".jpeg", ".jpg", ".png")  # im2rec's default --exts
# OpenCV interpolation flags (the numbers of the C++ im2rec's inter_method); 9 = auto.
INTER_METHODS = {0: "nearest", 1: "linear", 2: "cubic", 3: "area", 4: "lanczos4",
                 9: "auto: cubic to enlarge, area to shrink, linear otherwise"}
_LIST_SEED = 100  # the seed of im2rec --list's shuffle


class UnreadableImageError(DataFormatError):
    """An image file that cannot be read or decoded (the message says why)."""


# ------------------------------------------------------------------------------------------
# Reading one image (runs in the writer's workers)

def check_image_bytes(data):
    """Why ``data`` is not a complete image file, or None when it may be one.

    Cheap checks, without decoding: an empty file; a JPEG without an end-of-image marker
    after its last start-of-scan (a cut-off file); a PNG without its ``IEND`` chunk. Other
    formats pass (the decoder decides)."""
    if not data:
        return "empty file"
    if data[:3] == b"\xff\xd8\xff":
        sos = data.rfind(b"\xff\xda")
        if sos < 0:
            return "JPEG without image data (no start-of-scan marker)"
        # Inside entropy-coded data 0xFF is always followed by 0x00 or a restart marker, so
        # an FFD9 after the last scan can only be the end-of-image marker.
        if data.rfind(b"\xff\xd9") < sos:
            return "truncated JPEG (no end-of-image marker after the image data)"
        return None
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        if data.rfind(b"IEND") < 0:
            return "truncated PNG (no IEND chunk)"
        return None
    return None


def _is_jpeg_or_png(data):
    return data[:3] == b"\xff\xd8\xff" or data[:8] == b"\x89PNG\r\n\x1a\n"


class ImageLoader:
    """Reads one image file for :func:`~gluon_models.data.recordio.write_records` (its
    ``transform``): called with a path relative to ``root``, returns the file's bytes
    (``pass_through``) or a BGR / grey uint8 array, and raises :class:`UnreadableImageError`
    for a file that is missing, empty, truncated or not an image.

    Parameters
    ----------
    root : str
        Folder the list's paths are relative to.
    resize : int
        Resize so that the shorter side is this many pixels (0: keep the size). The longer
        side is ``long * resize // short``, as im2rec computes it.
    center_crop : bool
        Crop the centre square first (before ``resize``).
    color : {1, 0, -1}
        ``cv2.imdecode`` flag: colour, grey, or as stored (alpha kept).
    pass_through : bool
        Store the file's bytes unchanged (checked with :func:`check_image_bytes`, and decoded
        once only if it is neither JPEG nor PNG).
    inter_method : int
        OpenCV interpolation of the resize, see :data:`INTER_METHODS` (1, bilinear, is what
        MXNet's python im2rec uses).
    square : bool
        Resize to ``resize x resize`` whatever the aspect ratio (MATLAB's ``imresize(img,
        [n n])``, how GM-SOP made its 100 x 100 Places365) instead of the shorter side.
    """

    def __init__(self, root, resize=0, center_crop=False, color=1, pass_through=False,
                 inter_method=1, square=False):
        if color not in (-1, 0, 1):
            raise ValueError("color must be 1 (colour), 0 (grey) or -1 (unchanged), got %r"
                             % (color,))
        if inter_method not in INTER_METHODS:
            raise ValueError("inter_method must be one of %s, got %r"
                             % (", ".join(map(str, sorted(INTER_METHODS))), inter_method))
        if resize < 0:
            raise ValueError("resize must be >= 0, got %d" % resize)
        self.root = os.path.abspath(root)
        self.resize, self.center_crop, self.color = int(resize), bool(center_crop), int(color)
        self.pass_through, self.inter_method = bool(pass_through), int(inter_method)
        self.square = bool(square)
        if self.square and not self.resize:
            raise ValueError("square needs resize > 0 (the side of the square)")

    def options(self):
        """The settings that change the output (for resume signatures and logs)."""
        options = dict(resize=self.resize, center_crop=self.center_crop, color=self.color,
                       pass_through=self.pass_through, inter_method=self.inter_method)
        if self.square:  # only when set, so that earlier signatures stay valid
            options["square"] = True
        return options

    def __call__(self, relpath):
        import cv2
        try:
            with open(os.path.join(self.root, relpath), "rb") as f:
                data = f.read()
        except OSError as e:
            raise UnreadableImageError("cannot read the file: %s" % (e.strerror or e)) from None
        problem = check_image_bytes(data)
        if problem:
            raise UnreadableImageError(problem)
        if self.pass_through and _is_jpeg_or_png(data):
            return data
        img = cv2.imdecode(np.frombuffer(data, np.uint8), self.color)
        if img is None:
            raise UnreadableImageError("not an image OpenCV can decode")
        if self.pass_through:
            return data
        if self.center_crop:
            h, w = img.shape[:2]
            if h > w:
                top = (h - w) // 2
                img = img[top:top + w]
            else:
                left = (w - h) // 2
                img = img[:, left:left + h]
        if self.resize:
            h, w = img.shape[:2]
            if self.square:
                size = (self.resize, self.resize)
            else:
                size = (self.resize, h * self.resize // w) if h > w else \
                    (w * self.resize // h, self.resize)  # (width, height)
            img = cv2.resize(img, size, interpolation=self._interpolation(w, h, *size))
        return img

    def _interpolation(self, w, h, new_w, new_h):
        if self.inter_method != 9:
            return self.inter_method
        if new_w > w and new_h > h:
            return 2  # cubic to enlarge
        if new_w < w and new_h < h:
            return 3  # area to shrink
        return 1


# ------------------------------------------------------------------------------------------
# Lists

def _normalize_exts(exts):
    return tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in exts)


def _inside(path, folder):
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def walk_tree(root, tree=None):
    """``os.walk(root, followlinks=True)`` in sorted order, each real folder visited once.

    Symbolic links to folders are followed, except a link whose target lies inside ``tree``
    (default ``root``): that folder is (or will be) walked under its own name, so following
    the link would list its images twice, and a link to an ancestor would loop until the path
    grew too long. A folder reached a second time by any route (a link into another linked
    folder, a loop outside ``tree``) is not walked again. Yields ``(path, dirs, files)``,
    ``dirs`` and ``files`` sorted."""
    tree = os.path.realpath(tree or root)
    seen = set()
    for path, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(path)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        kept = []
        for d in sorted(dirs):
            full = os.path.join(path, d)
            if os.path.islink(full):
                target = os.path.realpath(full)
                if _inside(target, tree) or target in seen or _inside(real, target):
                    _LOG.info("not following %s: it links to %s, which is walked already "
                              "or inside the tree", full, target)
                    continue
            kept.append(d)
        dirs[:] = kept
        yield path, dirs, sorted(files)


def list_images(root, recursive=False, exts=IMAGE_EXTS, refused=None):
    """The images under ``root`` as im2rec ``--list`` finds them.

    Returns ``(images, folders)``: ``images`` is ``[(index, relative path, label)]`` in walk
    order (folders and files sorted, symbolic links followed once, see :func:`walk_tree`);
    ``folders`` is ``[(relative folder, label)]``. With ``recursive`` each folder holding
    images gets the next label when its first image is met; otherwise only the files directly
    in ``root`` are listed, label 0. A file counts when its extension, lowercased, is in
    ``exts``. An image whose relative path cannot be written into a ``.lst`` (a tab or line
    break in a file or folder name, see :func:`~gluon_models.data.recordio.lst_name_problem`)
    is not listed: it is logged and appended to ``refused`` (a list of ``(path, reason)``)."""
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError("image folder not found: %s" % root)
    exts = _normalize_exts(exts)
    images, labels = [], {}
    refused = [] if refused is None else refused

    def accept(full):
        rel = os.path.relpath(full, root)
        problem = lst_name_problem(rel)
        if problem:
            _LOG.warning("not listing %s: %s", escape_name(rel), problem)
            refused.append((rel, problem))
        return rel, problem is None

    if recursive:
        for path, dirs, files in walk_tree(root):
            for fname in files:
                full = os.path.join(path, fname)
                if os.path.splitext(fname)[1].lower() in exts and os.path.isfile(full):
                    rel, ok = accept(full)
                    if ok:
                        label = labels.setdefault(path, len(labels))
                        images.append((len(images), rel, label))
    else:
        for fname in sorted(os.listdir(root)):
            full = os.path.join(root, fname)
            if os.path.splitext(fname)[1].lower() in exts and os.path.isfile(full):
                rel, ok = accept(full)
                if ok:
                    images.append((len(images), rel, 0))
        if images:
            labels[root] = 0
    folders = [(os.path.relpath(p, root), lab) for p, lab in sorted(labels.items(),
                                                                    key=lambda kv: kv[1])]
    return images, folders


def split_image_list(images, shuffle=True, train_ratio=1.0, test_ratio=0.0, chunks=1,
                     seed=_LIST_SEED):
    """Cut a list into im2rec's parts: ``{suffix: images}`` with suffixes ``''`` (one list),
    ``'_train'``, ``'_val'``, ``'_test'``, each prefixed by ``'_<k>'`` when ``chunks > 1``.

    Like im2rec: the whole list is shuffled with ``random.Random(seed)`` (im2rec seeds with
    100), cut into ``chunks`` of ``ceil(N / chunks)`` images, and each chunk into the first
    ``int(chunk_size * test_ratio)`` images (test), the next ``int(chunk_size * train_ratio)``
    (train) and the rest (val, when ``train_ratio + test_ratio < 1``). ``train_ratio`` 1 keeps
    each chunk whole."""
    if chunks < 1:
        raise ValueError("chunks must be >= 1, got %d" % chunks)
    if not (0 <= train_ratio <= 1 and 0 <= test_ratio <= 1 and train_ratio + test_ratio <= 1):
        raise ValueError("train_ratio and test_ratio must lie in [0, 1] and add up to at most "
                         "1, got %g and %g" % (train_ratio, test_ratio))
    images = list(images)
    if shuffle:
        random.Random(seed).shuffle(images)
    chunk_size = (len(images) + chunks - 1) // chunks
    parts = {}
    for k in range(chunks):
        chunk = images[k * chunk_size:(k + 1) * chunk_size]
        tag = "_%d" % k if chunks > 1 else ""
        if train_ratio == 1.0:
            parts[tag] = chunk
            continue
        n_train, n_test = int(chunk_size * train_ratio), int(chunk_size * test_ratio)
        if test_ratio:
            parts[tag + "_test"] = chunk[:n_test]
        if train_ratio + test_ratio < 1.0:
            parts[tag + "_val"] = chunk[n_test + n_train:]
        parts[tag + "_train"] = chunk[n_test:n_test + n_train]
    return parts


def make_image_lists(prefix, root, recursive=False, exts=IMAGE_EXTS, shuffle=True,
                     train_ratio=1.0, test_ratio=0.0, chunks=1):
    """``im2rec --list``: list the images under ``root`` (:func:`list_images`), cut the list
    (:func:`split_image_list`) and write ``PREFIX<suffix>.lst`` for each part. Returns the
    paths written, in suffix order."""
    refused = []
    images, folders = list_images(root, recursive, exts, refused)
    _write_refused(os.path.abspath(prefix) + ".lst.skipped", refused)
    for folder, label in folders:
        _LOG.info("label %d: %s", label, folder)
    _LOG.info("%s: %d images in %d labelled folder(s)", root, len(images), len(folders))
    parts = split_image_list(images, shuffle, train_ratio, test_ratio, chunks)
    prefix = os.path.abspath(prefix)
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    written = []
    for suffix in sorted(parts):
        path = write_lst(prefix + suffix + ".lst",
                         [(index, label, rel) for index, rel, label in parts[suffix]])
        _LOG.info("wrote %s (%d images)", path, len(parts[suffix]))
        written.append(path)
    return written


def _write_refused(path, refused):
    """``PREFIX.lst.skipped``: ``path \t reason`` of each image left out of the lists (the
    path escaped); it exists only when something was left out."""
    if not refused:
        if os.path.exists(path):
            os.remove(path)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_open(path) as f:
        for rel, reason in refused:
            f.write("%s\t%s\n" % (escape_name(rel), reason))
    _LOG.warning("%d image(s) not listed, see %s", len(refused), path)


# ------------------------------------------------------------------------------------------
# Records

def find_lst_files(prefix):
    """The lists im2rec converts for ``prefix``: every ``*.lst`` file in ``prefix`` when it is
    a folder, else in its folder whose path starts with ``prefix``; sorted."""
    prefix = os.path.abspath(prefix)
    folder = prefix if os.path.isdir(prefix) else os.path.dirname(prefix)
    if not os.path.isdir(folder):
        return []
    found = []
    for fname in sorted(os.listdir(folder)):
        path = os.path.join(folder, fname)
        if path.startswith(prefix) and fname.endswith(".lst") and os.path.isfile(path):
            found.append(path)
    return found


def _record_label(labels, pack_label, label_width=None):
    if label_width is not None and len(labels) < label_width:
        raise ValueError("label_width %d but the line has %d label(s)"
                         % (label_width, len(labels)))
    if pack_label:
        return labels[:label_width] if label_width else labels
    return labels[0]


def convert_lst(lst, root, prefix=None, resize=0, center_crop=False, color=1,
                pass_through=False, inter_method=1, quality=95, encoding=".jpg",
                pack_label=False, label_width=None, num_workers=1, backend="thread",
                strict=False, resume=False, progress=True, chunksize=32):
    """Write the records of one im2rec list: ``PREFIX.rec`` and ``PREFIX.idx``.

    Parameters
    ----------
    lst : str
        The ``.lst`` file (``index \\t label(s) \\t path``).
    root : str
        Folder the list's paths are relative to.
    prefix : str, optional
        Output path without extension; default: the list's path without ``.lst``.
    resize, center_crop, color, pass_through, inter_method
        As in :class:`ImageLoader`.
    quality : int
        JPEG quality 1-100, or PNG compression 0-9 (larger values mean 9, as OpenCV takes
        them in MXNet's im2rec, whose default 95 is also the default here).
    encoding : {'.jpg', '.png'}
    pack_label : bool
        Store every label of a line after the header (``flag`` = their number; only when a
        line has more than one); otherwise the first label goes in the header.
    label_width : int, optional
        With ``pack_label``, the number of labels to store (the C++ im2rec's option).
    num_workers : int
        Workers reading and encoding images (``<= 1``: this process alone).
    backend : {'thread', 'process'}
        Workers as threads (the default: the work is OpenCV's, which runs outside the GIL,
        and nothing is copied between processes) or as forked processes; see
        :func:`~gluon_models.data.recordio.write_records` and benchmarks/bench_im2rec.py.
    strict : bool
        An unreadable image is an error instead of being skipped.
    resume : bool
        Continue an interrupted conversion of the same list with the same options (see
        :mod:`~gluon_models.data.recordio`); a list whose ``.rec`` and ``.idx`` are already
        complete and newer than it is left as it is.
    progress : bool
    chunksize : int
        Images per task sent to a worker.

    Returns
    -------
    WriteResult or None
        None when ``resume`` found the list already converted.
    """
    lst = os.path.abspath(lst)
    if not os.path.isfile(lst):
        raise FileNotFoundError("list file not found: %s" % lst)
    prefix = os.path.abspath(prefix or os.path.splitext(lst)[0])
    if encoding not in (".jpg", ".png"):
        raise ValueError("encoding must be .jpg or .png, got %r" % (encoding,))
    if encoding == ".png":
        quality = min(int(quality), 9)
    loader = ImageLoader(root, resize, center_crop, color, pass_through, inter_method)
    if resume and not partial_runs(prefix) and all(
            os.path.isfile(p) and os.path.getmtime(p) >= os.path.getmtime(lst)
            for p in (prefix + ".rec", prefix + ".idx")):
        _LOG.info("%s.rec/.idx are complete and newer than %s: nothing to resume", prefix, lst)
        return None
    rows = read_lst(lst)
    _LOG.info("creating %s.rec from %s (%d images) in %s", prefix, lst, len(rows),
              os.path.dirname(prefix))
    items = []
    for index, labels, rel in rows:
        try:
            items.append((index, _record_label(labels, pack_label, label_width), rel, rel))
        except ValueError as e:
            raise DataFormatError("%s: record %d: %s" % (lst, index, e)) from None
    signature = dict(lst=file_digest(lst, "sha1"), root=loader.root, pack_label=bool(pack_label),
                     label_width=label_width, **loader.options())
    return write_records(prefix, items, encoding=encoding, quality=quality,
                         num_workers=num_workers, progress=progress, chunksize=chunksize,
                         transform=loader, skip_errors=not strict, log_every=1000,
                         write_lst=False, resume=resume, signature=signature, backend=backend)


def im2rec(prefix, root, **options):
    """``im2rec PREFIX ROOT``: :func:`convert_lst` every list :func:`find_lst_files` finds for
    ``prefix``, each to the ``.rec``/``.idx`` of its own name. Returns ``{lst: WriteResult}``;
    ``FileNotFoundError`` when there is no list."""
    lsts = find_lst_files(prefix)
    if not lsts:
        raise FileNotFoundError("no .lst file with prefix %s (im2rec --list writes one)"
                                % os.path.abspath(prefix))
    return {lst: convert_lst(lst, root, **options) for lst in lsts}


# ------------------------------------------------------------------------------------------
# Command line (tools/im2rec.py, tools/prepare_folder.py)

def add_image_args(parser, num_workers_default=1, pack_label=True):
    """Add the ``Options for creating database`` group: im2rec's image options (same names and
    defaults; ``--pack-label`` only with ``pack_label``) plus ``--num-thread``/``--num-workers``,
    ``--strict``, ``--resume``, ``--no-progress``."""
    group = parser.add_argument_group("Options for creating database")
    group.add_argument("--pass-through", action="store_true",
                       help="store the image files' bytes unchanged (no decode, resize or "
                            "re-encode; still checked for truncation)")
    group.add_argument("--resize", type=int, default=0,
                       help="resize the shorter side to this many pixels (0: keep the size)")
    group.add_argument("--center-crop", action="store_true",
                       help="crop the centre square before resizing")
    group.add_argument("--quality", type=int, default=95,
                       help="JPEG quality 1-100, or PNG compression 0-9 (larger means 9)")
    group.add_argument("--num-thread", "--num-workers", dest="num_thread", type=int,
                       default=num_workers_default,
                       help="workers reading and encoding images; the output does not "
                            "depend on it")
    group.add_argument("--backend", choices=["thread", "process"], default="thread",
                       help="workers as threads (OpenCV works outside the GIL; nothing is "
                            "copied between processes) or as processes")
    group.add_argument("--color", type=int, default=1, choices=[-1, 0, 1],
                       help="1: colour (alpha dropped), 0: grey, -1: as stored (alpha kept)")
    group.add_argument("--encoding", default=".jpg", choices=[".jpg", ".png"],
                       help="image format inside the records")
    if pack_label:
        group.add_argument("--pack-label", action="store_true",
                           help="store all labels of a multi-label line after the header")
    group.add_argument("--inter-method", type=int, default=1, choices=sorted(INTER_METHODS),
                       help="resize interpolation: %s" % ", ".join(
                           "%d %s" % kv for kv in sorted(INTER_METHODS.items())))
    group.add_argument("--strict", action="store_true",
                       help="stop at an unreadable image (default: skip it, count it and list "
                            "it in <name>.skipped)")
    group.add_argument("--resume", action="store_true",
                       help="continue an interrupted conversion (its .partial files) instead "
                            "of starting over")
    group.add_argument("--no-progress", action="store_true", help="no progress bar")
    return group


def image_options_from_args(args):
    """Keyword arguments of :func:`convert_lst` from :func:`add_image_args` options."""
    return dict(resize=args.resize, center_crop=args.center_crop, color=args.color,
                pass_through=args.pass_through, inter_method=args.inter_method,
                quality=args.quality, encoding=args.encoding,
                pack_label=getattr(args, "pack_label", False),
                num_workers=args.num_thread, backend=args.backend, strict=args.strict,
                resume=args.resume,
                progress=not args.no_progress)


# key -> (option, parser) of the C++ im2rec's key=value arguments
_LEGACY_KEYS = {
    "resize": ("resize", int), "quality": ("quality", int), "encoding": ("encoding", str),
    "color": ("color", int), "center_crop": ("center_crop", int),
    "unchanged": ("pass_through", int), "pack_label": ("pack_label", int),
    "label_width": ("label_width", int), "inter_method": ("inter_method", int),
    "num_thread": ("num_thread", int), "nsplit": ("nsplit", int), "part": ("part", int),
}


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="im2rec.py", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Create image lists (--list) or RecordIO files from them, as MXNet's "
                    "tools/im2rec.py; also takes the C++ im2rec's form LST ROOT OUTPUT.rec "
                    "[key=value ...]")
    parser.add_argument("prefix", help="prefix of the .lst files to write or read (a folder: "
                                       "every .lst in it); in the C++ form, the .lst file")
    parser.add_argument("root", help="folder holding the images")
    parser.add_argument("legacy", nargs="*", metavar="OUTPUT.rec [key=value]",
                        default=argparse.SUPPRESS,
                        help="the C++ im2rec's output file and key=value options: "
                             + ", ".join(sorted(k for k in _LEGACY_KEYS
                                                if k not in ("nsplit", "part"))))
    group = parser.add_argument_group("Options for creating image lists")
    group.add_argument("--list", action="store_true",
                       help="write PREFIX.lst from the images under ROOT instead of records")
    group.add_argument("--exts", nargs="+", default=list(IMAGE_EXTS),
                       help="image file extensions to list")
    group.add_argument("--chunks", type=int, default=1, help="number of chunks")
    group.add_argument("--train-ratio", type=float, default=1.0,
                       help="fraction of each chunk for PREFIX_train.lst")
    group.add_argument("--test-ratio", type=float, default=0.0,
                       help="fraction of each chunk for PREFIX_test.lst")
    group.add_argument("--recursive", action="store_true",
                       help="walk sub-folders, one label per folder (sorted order); otherwise "
                            "list ROOT's own images with label 0")
    group.add_argument("--shuffle", dest="shuffle", action="store_true", default=True,
                       help="shuffle the list (seed 100, as MXNet's im2rec)")
    group.add_argument("--no-shuffle", dest="shuffle", action="store_false",
                       help="keep the walk order")
    add_image_args(parser)
    return parser


def parse_im2rec_args(argv=None):
    """Parse an im2rec command line (MXNet's python form, or the C++ ``LST ROOT OUTPUT.rec
    key=value...`` form, told apart by the third positional argument). The namespace has
    ``legacy_output`` (None for the python form) and, for the C++ form, the key=value settings
    applied over the option defaults. Errors exit through ``argparse`` naming the argument."""
    parser = _build_parser()
    args = parser.parse_intermixed_args(argv)  # key=value may follow options
    args.legacy_output, args.label_width = None, None
    args.legacy = getattr(args, "legacy", [])
    if not args.legacy:
        return args
    if args.list:
        parser.error("--list takes PREFIX ROOT only, got extra arguments %s"
                     % " ".join(args.legacy))
    output, pairs = args.legacy[0], args.legacy[1:]
    if "=" in output or not output.endswith(".rec"):
        parser.error("the C++ form is LST ROOT OUTPUT.rec [key=value ...]; got %r where "
                     "OUTPUT.rec goes" % output)
    if not args.prefix.endswith(".lst"):
        parser.error("the C++ form is LST ROOT OUTPUT.rec [key=value ...]; %r is not a .lst "
                     "file" % args.prefix)
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in _LEGACY_KEYS:
            parser.error("unknown argument %r: expected key=value with key one of %s"
                         % (pair, ", ".join(sorted(_LEGACY_KEYS))))
        name, kind = _LEGACY_KEYS[key]
        try:
            settings[name] = kind(value)
        except ValueError:
            parser.error("%s=%s: expected an integer" % (key, value))
    if settings.pop("nsplit", 1) != 1 or settings.pop("part", 0) != 0:
        parser.error("nsplit/part are not supported: write several lists with "
                     "im2rec.py --list --chunks N and convert each")
    for name in ("center_crop", "pass_through", "pack_label"):
        if name in settings:
            settings[name] = bool(settings[name])
    for name, value in settings.items():
        setattr(args, name, value)
    # The C++ tool's rules for its keys: center_crop only together with resize; PNG
    # quality above 9 (its default 95 included) means 3.
    if "center_crop" in settings:
        args.center_crop = bool(args.center_crop and args.resize > 0)
    if args.encoding == ".png" and args.quality > 9 and (
            "quality" in settings or "encoding" in settings):
        args.quality = 3
    if args.encoding not in (".jpg", ".png"):
        parser.error("encoding=%s: must be .jpg or .png" % args.encoding)
    if args.color not in (-1, 0, 1):
        parser.error("color=%d: must be -1, 0 or 1" % args.color)
    if args.inter_method not in INTER_METHODS:
        parser.error("inter_method=%d: must be one of %s (10, random, is not supported)"
                     % (args.inter_method, ", ".join(map(str, sorted(INTER_METHODS)))))
    if args.pack_label and (args.label_width or 1) <= 1:
        parser.error("pack_label=1 needs label_width > 1 (as in the C++ im2rec)")
    args.legacy_output = output
    return args


def run_im2rec(args):
    """Do what a parsed im2rec command line asks: write lists, or records. Returns the list
    paths (``--list``) or ``{lst: WriteResult}``."""
    if args.list:
        return make_image_lists(args.prefix, args.root, args.recursive, args.exts, args.shuffle,
                                args.train_ratio, args.test_ratio, args.chunks)
    options = image_options_from_args(args)
    if args.legacy_output is not None:
        return {args.prefix: convert_lst(args.prefix, args.root,
                                         os.path.splitext(args.legacy_output)[0],
                                         label_width=args.label_width, **options)}
    return im2rec(args.prefix, args.root, **options)

