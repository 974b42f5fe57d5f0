"""CIFAR-10 / CIFAR-100 from the official "python version" files to RecordIO.

The sources are the pickles of https://www.cs.toronto.edu/~kriz/cifar.html, written by
Python 2 ``cPickle``: a dict with bytes keys, ``b'data'`` an N x 3072 uint8 array (the 1024 red,
then green, then blue values of a 32x32 image, row-major) and the labels as a list of ints
(``b'labels'`` in CIFAR-10; ``b'fine_labels'`` and ``b'coarse_labels'`` in CIFAR-100).

Input layouts accepted by :func:`convert_cifar` (``source``):

* the extracted folder itself (``cifar-10-batches-py/`` or ``cifar-100-python/``);
* a directory holding that folder, or holding the archive (``cifar-10-python.tar.gz`` /
  ``cifar-100-python.tar.gz``);
* the ``.tar.gz`` archive itself (members are read from it; nothing is extracted to disk).

Output: ``train.*`` (CIFAR-10: ``data_batch_1`` ... ``_5`` in order; CIFAR-100: ``train``) and
``test.*`` in ``out_dir``, record ``i`` being image ``i`` of the split in file order.

The pickles are read with the project's restricted unpickler
(:mod:`gluon_models.utils.safe_pickle`) admitting only the numpy classes an array needs, so a
file that is not a CIFAR pickle fails with :class:`DataFormatError` instead of running whatever
it refers to.
"""
import logging
import os
import tarfile
import zlib

import numpy as np

from ..utils import safe_pickle
from .datasets import DataFormatError, default_data_dir, get_dataset_info
from .recordio import needs_write, write_records

__all__ = ["CIFAR_LAYOUT", "cifar_member_limit", "load_cifar_batch", "find_cifar_source", "cifar_split_items",
           "convert_cifar"]

_LOG = logging.getLogger(__name__)

# Real member names; label keys per label choice.
CIFAR_LAYOUT = {
    "cifar10": dict(
        folder="cifar-10-batches-py", archive="cifar-10-python.tar.gz",
        splits={"train": ["data_batch_%d" % i for i in range(1, 6)], "test": ["test_batch"]},
        images={"train": 10000, "test": 10000},  # per member of the split
        labels={"fine": ("labels",)}),
    "cifar100": dict(
        folder="cifar-100-python", archive="cifar-100-python.tar.gz",
        splits={"train": ["train"], "test": ["test"]},
        images={"train": 50000, "test": 10000},
        labels={"fine": ("fine_labels",), "coarse": ("coarse_labels",),
                "both": ("fine_labels", "coarse_labels")}),
}
_CLASSES = {"labels": 10, "fine_labels": 100, "coarse_labels": 20}

# Bytes a member may have, per image of the official split: 3072 pixel bytes plus room for the
# pickle framing, the label(s) and the file name (the real files use about 3104 bytes per
# image: data_batch_1 is 31,035,704 bytes). Anything larger is not a CIFAR batch, and is not
# read: a small .tar.gz can inflate to gigabytes.
_BYTES_PER_IMAGE = 3072 + 256
_SLACK_BYTES = 1 << 20


def cifar_member_limit(dataset, split):
    """The largest size a member of ``split`` of ``dataset`` may have (see above)."""
    return CIFAR_LAYOUT[dataset]["images"][split] * _BYTES_PER_IMAGE + _SLACK_BYTES

def load_cifar_batch(data, name, label_keys=("labels",)):
    """Parse one CIFAR python batch.

    Parameters
    ----------
    data : bytes or file object
        The pickle's content.
    name : str
        How to name the file in errors (a path, or ``archive:member``).
    label_keys : tuple of str
        Label lists to return, e.g. ``('labels',)`` or ``('fine_labels', 'coarse_labels')``.

    Returns
    -------
    images : ndarray, (N, 3072) uint8
        Rows as stored (R plane, G plane, B plane).
    labels : ndarray, (N, len(label_keys)) int64
    """
    try:
        obj = safe_pickle.load(data, name, safe_pickle.NUMPY_ARRAYS, "CIFAR python pickle",
                               encoding="bytes")
    except safe_pickle.PickleFormatError as e:
        raise DataFormatError(str(e)) from None
    if not isinstance(obj, dict):
        raise DataFormatError("%s: expected a dict, the pickle holds a %s"
                              % (name, type(obj).__name__))
    d = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}
    missing = [k for k in ("data",) + tuple(label_keys) if k not in d]
    if missing:
        raise DataFormatError("%s: missing key(s) %s; it has %s" % (
            name, ", ".join(repr(k) for k in missing), ", ".join(sorted(map(repr, d)))))
    images = d["data"]
    if not (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 2
            and images.shape[1] == 3072):
        got = "%s %s" % (getattr(images, "shape", "?"), getattr(images, "dtype", type(images)))
        raise DataFormatError("%s: 'data' must be an N x 3072 uint8 array, got %s" % (name, got))
    labels = []
    for key in label_keys:
        lab = _integer_labels(d[key], name, key)
        if lab.shape[0] != images.shape[0]:
            raise DataFormatError("%s: %d images but %d entries in %r"
                                  % (name, images.shape[0], lab.shape[0], key))
        hi = _CLASSES.get(key)
        if lab.size and (lab.min() < 0 or (hi is not None and lab.max() >= hi)):
            raise DataFormatError("%s: %r values must lie in [0, %s), found %d..%d"
                                  % (name, key, hi, lab.min(), lab.max()))
        labels.append(lab)
    return images, np.stack(labels, axis=1)


def _integer_labels(values, name, key):
    """``values`` as an int64 vector; a label that is not an integer (1.7, '3', None) is an
    error naming the file: casting would truncate it silently into another class."""
    try:
        raw = np.asarray(values)
    except (TypeError, ValueError) as e:
        raise DataFormatError("%s: %r is not a list of integers (%s)" % (name, key, e)) from None
    if raw.dtype.kind in "iu":
        return raw.astype(np.int64).reshape(-1)
    bad = None
    if raw.dtype.kind == "f":
        flat = raw.reshape(-1)
        wrong = np.flatnonzero(~np.isfinite(flat) | (flat != np.round(flat)))
        if not wrong.size:  # 3.0 is the integer 3
            return flat.astype(np.int64)
        bad = (int(wrong[0]), flat[wrong[0]])
    else:  # mixed, bytes, strings, None: the first entry that is not an integer
        try:  # the entries as stored (np.asarray made them one type: [0, b'3'] -> b'0')
            flat = np.asarray(values, dtype=object).reshape(-1)
        except (TypeError, ValueError):
            flat = raw.astype(object).reshape(-1)
        for i, v in enumerate(flat):
            if not isinstance(v, (int, np.integer)) or isinstance(v, (bool, np.bool_)):
                bad = (i, v)
                break
        else:
            return flat.astype(np.int64)
    raise DataFormatError("%s: %r must hold integer labels, entry %d is %r"
                          % (name, key, bad[0], bad[1]))


# ------------------------------------------------------------------------------------------
# Finding the files: a folder or an archive

class _FolderSource:
    def __init__(self, folder):
        self.folder = folder

    def describe(self, member):
        return os.path.join(self.folder, member)

    def read(self, members):
        """``{member: bytes}``; ``members`` maps each name to the most bytes it may have."""
        out = {}
        for m, limit in members.items():
            path = os.path.join(self.folder, m)
            if not os.path.isfile(path):
                raise FileNotFoundError("CIFAR file not found: %s" % path)
            _check_size(path, os.path.getsize(path), limit)
            with open(path, "rb") as f:
                out[m] = f.read(limit + 1)  # bounded even if the file grows meanwhile
            _check_size(path, len(out[m]), limit)
        return out


def _check_size(name, size, limit):
    if size > limit:
        raise DataFormatError("%s: %d bytes, more than a CIFAR batch of this split can have "
                              "(%d); not reading it (a damaged or crafted file?)"
                              % (name, size, limit))


class _ArchiveSource:
    def __init__(self, path, folder):
        self.path, self.folder = path, folder

    def describe(self, member):
        return "%s:%s/%s" % (self.path, self.folder, member)

    def read(self, members):
        """One streaming pass over the archive, keeping the wanted members' bytes;
        ``members`` maps each name to the most bytes it may have, checked against the
        member's header before anything is inflated."""
        wanted = {"%s/%s" % (self.folder, m): m for m in members}
        out, current = {}, None
        try:
            with tarfile.open(self.path, "r|*") as tar:
                for info in tar:
                    key = info.name[2:] if info.name.startswith("./") else info.name
                    if key in wanted and info.isfile():
                        current, limit = key, members[wanted[key]]
                        where = "%s:%s" % (self.path, key)
                        _check_size(where, info.size, limit)
                        out[wanted[key]] = tar.extractfile(info).read(limit + 1)
                        _check_size(where, len(out[wanted[key]]), limit)
                        current = None
        except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
            where = " (member %s)" % current if current else ""
            raise DataFormatError("%s: truncated or not a tar archive%s: %s"
                                  % (self.path, where, e)) from None
        missing = [k for k, m in wanted.items() if m not in out]
        if missing:
            raise DataFormatError("%s: archive has no member(s) %s"
                                  % (self.path, ", ".join(missing)))
        return out


def _is_archive(path):
    return os.path.isfile(path) and path.endswith((".tar.gz", ".tgz", ".tar"))


def find_cifar_source(source, dataset=None):
    """Locate the CIFAR files under ``source`` (see the module docstring for the layouts).

    Returns ``(dataset, source_object)``; ``dataset`` is inferred when ``None``. Raises
    ``FileNotFoundError`` naming what was looked for."""
    names = [dataset] if dataset else list(CIFAR_LAYOUT)
    for n in names:
        if n not in CIFAR_LAYOUT:
            raise ValueError("dataset must be one of %s, got %r" % (", ".join(CIFAR_LAYOUT), n))
    source = os.path.abspath(os.path.expanduser(source))
    found = []
    for n in names:
        lay = CIFAR_LAYOUT[n]
        first = lay["splits"]["train"][0]
        if os.path.isdir(source):
            if os.path.basename(source) == lay["folder"] or os.path.isfile(
                    os.path.join(source, first)):
                found.append((n, _FolderSource(source)))
            elif os.path.isdir(os.path.join(source, lay["folder"])):
                found.append((n, _FolderSource(os.path.join(source, lay["folder"]))))
            elif os.path.isfile(os.path.join(source, lay["archive"])):
                archive = os.path.join(source, lay["archive"])
                found.append((n, _ArchiveSource(archive, lay["folder"])))
        elif _is_archive(source):
            if len(names) == 1 or os.path.basename(source) == lay["archive"]:
                found.append((n, _ArchiveSource(source, lay["folder"])))
    if not found and _is_archive(source) and dataset is None:
        raise ValueError("%s: cannot tell CIFAR-10 from CIFAR-100 by the archive name; "
                         "pass dataset='cifar10' or 'cifar100'" % source)
    if not found:
        what = " or ".join("%s/ (or %s)" % (CIFAR_LAYOUT[n]["folder"], CIFAR_LAYOUT[n]["archive"])
                           for n in names)
        raise FileNotFoundError("no %s found at %s" % (what, source))
    if len(found) > 1:
        raise ValueError("%s holds both CIFAR-10 and CIFAR-100; pass dataset=" % source)
    return found[0]


def cifar_split_items(batches, encoding=".png"):
    """``(index, label, BGR image, path)`` items of one split from ``[(member, images,
    labels)]`` batches, numbered from 0 in batch order."""
    index = 0
    for member, images, labels in batches:
        planes = images.reshape(-1, 3, 32, 32)
        for i in range(planes.shape[0]):
            bgr = planes[i, ::-1].transpose(1, 2, 0)  # RGB planes -> HxWx3 BGR (OpenCV order)
            lab = labels[i]
            yield (index, lab[0] if lab.shape[0] == 1 else lab, bgr,
                   "%s/%05d%s" % (member, i, encoding))
            index += 1


def convert_cifar(source, out_dir=None, dataset=None, label="fine", splits=("train", "test"),
                  encoding=".png", quality=None, num_workers=1, progress=True, overwrite=False,
                  max_member_bytes=None):
    """Convert CIFAR-10 or CIFAR-100 to ``train.*`` / ``test.*`` records in ``out_dir``.

    Parameters
    ----------
    source : str
        The extracted folder, a directory holding it or its archive, or the archive itself.
    out_dir : str, optional
        Output directory; default :func:`~gluon_models.data.datasets.default_data_dir`.
    dataset : {'cifar10', 'cifar100'}, optional
        Inferred from the folder or archive name when omitted.
    label : {'fine', 'coarse', 'both'}
        CIFAR-100 label set (100 fine classes, 20 coarse, or both as two labels per record);
        CIFAR-10 has only ``'fine'`` (its ``labels``).
    splits : sequence of {'train', 'test'}
    encoding, quality, num_workers, progress
        As in :func:`~gluon_models.data.recordio.write_records`.
    overwrite : bool
        Rewrite splits that already exist (else they are skipped).
    max_member_bytes : int, optional
        Refuse a batch file (or archive member) larger than this; default: the most a batch
        of the official split can have (:func:`cifar_member_limit`, about 34 MB for a
        10000-image batch), so that a crafted archive is not inflated into memory.

    Every input file is read and checked before the first split is written, so a bad file
    of a later split leaves no output behind.

    Returns
    -------
    dict
        ``split -> WriteResult`` (``None`` for a skipped split).
    """
    dataset, src = find_cifar_source(source, dataset)
    lay = CIFAR_LAYOUT[dataset]
    if label not in lay["labels"]:
        raise ValueError("%s labels: one of %s, got %r"
                         % (dataset, ", ".join(lay["labels"]), label))
    for s in splits:
        if s not in lay["splits"]:
            raise ValueError("%s splits: %s, got %r" % (dataset, ", ".join(lay["splits"]), s))
    info = get_dataset_info(dataset)
    out_dir = out_dir or default_data_dir(dataset)
    todo = [s for s in splits if needs_write(os.path.join(out_dir, s), overwrite)]
    raw = src.read({m: max_member_bytes or cifar_member_limit(dataset, s)
                    for s in todo for m in lay["splits"][s]})
    # Every split is parsed and checked before the first one is written.
    parsed = {s: [(m,) + load_cifar_batch(raw.pop(m), src.describe(m), lay["labels"][label])
                  for m in lay["splits"][s]] for s in todo}
    results = {s: None for s in splits}
    for s in todo:
        batches = parsed.pop(s)
        n = sum(b[1].shape[0] for b in batches)
        expected = info.num_train if s == "train" else info.num_test
        if n != expected:
            _LOG.warning("%s %s: %d images (the official set has %d)", dataset, s, n, expected)
        results[s] = write_records(os.path.join(out_dir, s), cifar_split_items(batches, encoding),
                                   encoding=encoding, quality=quality, num_workers=num_workers,
                                   total=n, progress=progress)
    return results
