"""The embedded default dataset: scikit-learn's handwritten digits as 32x32 RGB records.

``sklearn.datasets.load_digits()`` ships 1,797 8x8 images (values 0..16, 10 classes) inside
the scikit-learn wheel, so the main job runs on a machine with no download. Each image is

1. scaled to 0..255 (``v * 255 / 16``),
2. upsampled to 32x32 with ``cv2.resize(..., interpolation=cv2.INTER_LINEAR)`` (bilinear: no
   overshoot, so no clipping is needed),
3. rounded to uint8 and replicated to 3 identical channels (bright strokes on black).

The split is fixed and stratified: per class, a ``numpy.random.RandomState(0)`` permutation
of that class's images (in ``load_digits`` order) puts its first ``k_c`` images in test, where
``k_c`` are the largest-remainder shares of 360 test images in proportion to the class sizes.
That gives **1,437 train / 360 test** images (35-37 test images per class). Records are in
``load_digits`` order within each split; the ``.lst`` path column names the original index
(``sklearn_digits/0042.png``).
"""
import logging
import os

import numpy as np

from .datasets import default_data_dir, get_dataset_info, split_files
from .recordio import needs_write, records_exist, write_records

__all__ = ["DIGITS_SIZE", "DIGITS_NUM_TEST", "DIGITS_SEED", "digits_images", "digits_split",
           "convert_digits", "ensure_digits"]

_LOG = logging.getLogger(__name__)

DIGITS_SIZE = 32
DIGITS_NUM_TEST = 360
DIGITS_SEED = 0


def digits_images(size=DIGITS_SIZE):
    """All 1,797 digits as ``(images (N, size, size, 3) uint8, labels (N,) int64)``."""
    import cv2
    from sklearn.datasets import load_digits
    d = load_digits()
    images = np.empty((len(d.images), size, size, 3), np.uint8)
    for i, img in enumerate(d.images):
        up = cv2.resize((img * (255.0 / 16.0)).astype(np.float32), (size, size),
                        interpolation=cv2.INTER_LINEAR)
        images[i] = np.clip(np.rint(up), 0, 255).astype(np.uint8)[:, :, None]
    return images, d.target.astype(np.int64)


def digits_split(labels, num_test=DIGITS_NUM_TEST, seed=DIGITS_SEED):
    """Stratified ``(train_indices, test_indices)``, both sorted (see the module docstring)."""
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    share = counts * float(num_test) / counts.sum()
    k = np.floor(share).astype(np.int64)
    # Largest remainders get the leftover test slots; ties go to the smaller class id.
    order = sorted(range(len(classes)), key=lambda c: (-(share[c] - k[c]), c))
    for c in order[:num_test - int(k.sum())]:
        k[c] += 1
    rng = np.random.RandomState(seed)
    test = []
    for c, kc in zip(classes, k):
        members = np.flatnonzero(labels == c)
        test.extend(members[rng.permutation(len(members))[:kc]])
    test = np.sort(np.asarray(test, np.int64))
    train = np.setdiff1d(np.arange(len(labels)), test)
    return train, test


def convert_digits(out_dir=None, encoding=".png", quality=None, num_workers=1, progress=True,
                   overwrite=False):
    """Write the digits as ``train.*`` (1,437) and ``test.*`` (360) records in ``out_dir``.

    ``out_dir`` defaults to ``default_data_dir('digits')``; the other arguments are those of
    :func:`~gluon_models.data.cifar.convert_cifar`. Returns ``split -> WriteResult`` (``None``
    for a split that existed and was skipped)."""
    out_dir = out_dir or default_data_dir("digits")
    images, labels = digits_images()
    train, test = digits_split(labels)
    results = {}
    for split, idx in (("train", train), ("test", test)):
        prefix = os.path.join(out_dir, split)
        if not needs_write(prefix, overwrite):
            results[split] = None
            continue
        items = ((n, int(labels[i]), images[i], "sklearn_digits/%04d%s" % (i, encoding))
                 for n, i in enumerate(idx))  # gray x3: RGB and BGR are the same
        results[split] = write_records(prefix, items, encoding=encoding, quality=quality,
                                       num_workers=num_workers, total=len(idx), progress=progress)
    return results


def ensure_digits(data_dir=None, progress=False):
    """Prepare the digits in ``data_dir`` (default ``default_data_dir('digits')``) unless they
    are already there; returns the directory."""
    data_dir = data_dir or default_data_dir("digits")
    if not all(records_exist(os.path.splitext(split_files(data_dir, s)[0])[0])
               for s in ("train", "test")):
        info = get_dataset_info("digits")
        _LOG.info("preparing the embedded digits dataset (%d train / %d test) in %s",
                  info.num_train, info.num_test, data_dir)
        convert_digits(data_dir, progress=progress)
    return data_dir
