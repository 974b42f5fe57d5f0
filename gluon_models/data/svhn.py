"""SVHN cropped digits (format 2) from the official ``.mat`` files to RecordIO.

Sources (http://ufldl.stanford.edu/housenumbers/): ``train_32x32.mat`` (73,257 images),
``extra_32x32.mat`` (531,131) and ``test_32x32.mat`` (26,032), MATLAB v5 files with ``X`` of
shape (32, 32, 3, N) uint8 (RGB) and ``y`` of shape (N, 1) holding 1..10, where 10 is the
digit 0. Records carry the digit itself (10 -> 0), so labels are 0..9.

The IGC seed trains on train + extra (604,388 images): ``extra='merge'`` (the default) writes
them into one ``train.*``, train first. ``'separate'`` writes ``extra.*`` on its own and
``'skip'`` ignores it.
"""
import logging
import os

import numpy as np

from .datasets import DataFormatError, default_data_dir
from .recordio import needs_write, write_records

__all__ = ["SVHN_FILES", "svhn_mat_size", "load_svhn_mat", "convert_svhn"]

_LOG = logging.getLogger(__name__)

SVHN_FILES = {"train": "train_32x32.mat", "extra": "extra_32x32.mat", "test": "test_32x32.mat"}
_EXTRA = ("merge", "separate", "skip")


def _mat_error(path, e):
    return DataFormatError("%s: truncated or not a MATLAB v5 SVHN file (%s: %s)"
                           % (path, type(e).__name__, e))


def svhn_mat_size(path):
    """Number of images in an SVHN ``.mat`` file, read from its header (fast)."""
    import scipy.io
    if not os.path.isfile(path):
        raise FileNotFoundError("SVHN file not found: %s" % path)
    try:
        shapes = {name: shape for name, shape, _ in scipy.io.whosmat(path)}
    except Exception as e:  # noqa: BLE001  (scipy raises IndexError, ValueError, OSError, ...)
        raise _mat_error(path, e) from None
    x = shapes.get("X")
    if x is None or len(x) != 4 or tuple(x[:3]) != (32, 32, 3):
        raise DataFormatError("%s: expected a variable 'X' of shape (32, 32, 3, N); found %s"
                              % (path, shapes or "no variables"))
    return int(x[3])


def load_svhn_mat(path):
    """Read one SVHN file.

    Returns
    -------
    X : ndarray, (32, 32, 3, N) uint8
        Images, RGB, as stored (image ``i`` is ``X[:, :, :, i]``).
    labels : ndarray, (N,) int64
        Digits 0..9 (the file's 10 becomes 0).
    """
    import scipy.io
    if not os.path.isfile(path):
        raise FileNotFoundError("SVHN file not found: %s" % path)
    try:
        mat = scipy.io.loadmat(path, variable_names=("X", "y"))
    except Exception as e:  # noqa: BLE001
        raise _mat_error(path, e) from None
    missing = [k for k in ("X", "y") if k not in mat]
    if missing:
        raise DataFormatError("%s: missing variable(s) %s" % (path, ", ".join(missing)))
    X, y = mat["X"], mat["y"]
    if X.dtype != np.uint8 or X.ndim != 4 or X.shape[:3] != (32, 32, 3):
        raise DataFormatError("%s: 'X' must be (32, 32, 3, N) uint8, got %s %s"
                              % (path, X.shape, X.dtype))
    n = X.shape[3]
    if y.shape not in ((n, 1), (n,)) or not np.issubdtype(y.dtype, np.number):
        raise DataFormatError("%s: 'y' must be (%d, 1) numbers to match 'X', got %s %s"
                              % (path, n, y.shape, y.dtype))
    y = y.reshape(-1)
    labels = y.astype(np.int64)
    if n and (not np.array_equal(labels, y) or labels.min() < 1 or labels.max() > 10):
        raise DataFormatError("%s: 'y' must hold integers 1..10, found %s..%s"
                              % (path, y.min(), y.max()))
    return X, np.where(labels == 10, 0, labels)


def _items(paths, encoding):
    """Records of several files in order, loading one file at a time."""
    index = 0
    for path in paths:
        X, labels = load_svhn_mat(path)
        stem = os.path.splitext(os.path.basename(path))[0]
        for i in range(X.shape[3]):
            yield (index, int(labels[i]), X[:, :, ::-1, i],  # RGB -> BGR
                   "%s/%06d%s" % (stem, i, encoding))
            index += 1
        del X


def convert_svhn(source, out_dir=None, extra="merge", splits=("train", "test"), encoding=".png",
                 quality=None, num_workers=1, progress=True, overwrite=False):
    """Convert SVHN to ``train.*`` / ``test.*`` (and ``extra.*``) records in ``out_dir``.

    Parameters
    ----------
    source : str
        Directory holding ``train_32x32.mat``, ``test_32x32.mat`` (and ``extra_32x32.mat``).
    out_dir : str, optional
        Output directory; default ``default_data_dir('svhn')``.
    extra : {'merge', 'separate', 'skip'}
        Append ``extra_32x32.mat`` to train (the IGC setting, 604,388 images), write it as
        ``extra.*``, or ignore it.
    splits : sequence of {'train', 'test'}
    encoding, quality, num_workers, progress, overwrite
        As in :func:`~gluon_models.data.cifar.convert_cifar`.

    Returns
    -------
    dict
        ``split -> WriteResult`` (``None`` for a skipped split).
    """
    if extra not in _EXTRA:
        raise ValueError("extra must be one of %s, got %r" % (", ".join(_EXTRA), extra))
    plan = {}
    for s in splits:
        if s not in ("train", "test"):
            raise ValueError("SVHN splits: train, test; got %r" % (s,))
        merge = s == "train" and extra == "merge"
        plan[s] = [SVHN_FILES[s]] + ([SVHN_FILES["extra"]] if merge else [])
    if extra == "separate":
        plan["extra"] = [SVHN_FILES["extra"]]
    source = os.path.abspath(os.path.expanduser(source))
    out_dir = out_dir or default_data_dir("svhn")
    results = {s: None for s in plan}
    # Check every file's header first: a missing or broken file fails before any writing.
    sizes = {f: svhn_mat_size(os.path.join(source, f)) for fs in plan.values() for f in fs}
    for s, files in plan.items():
        if not needs_write(os.path.join(out_dir, s), overwrite):
            continue
        paths = [os.path.join(source, f) for f in files]
        results[s] = write_records(os.path.join(out_dir, s), _items(paths, encoding),
                                   encoding=encoding, quality=quality, num_workers=num_workers,
                                   total=sum(sizes[f] for f in files), progress=progress)
    return results
