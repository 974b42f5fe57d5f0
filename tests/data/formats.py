"""Small files in the exact formats of the real downloads, and readers for the records.

* CIFAR: Python 2 ``cPickle`` protocol-2 dicts. :class:`Py2Pickler` writes every str/bytes as
  a Python 2 ``str`` (``SHORT_BINSTRING``/``BINSTRING`` opcodes), so keys load as bytes with
  ``pickle.load(f, encoding='bytes')``, as in the official files; ``data`` is N x 3072 uint8
  (R plane, G plane, B plane), labels are lists of ints.
* SVHN: MATLAB v5 files (``scipy.io.savemat``) with ``X`` (32, 32, 3, N) uint8 RGB and ``y``
  (N, 1) uint8 holding 1..10 (10 = digit 0).
"""
import os
import pickle
import struct
import tarfile

import mxnet as mx
import numpy as np
import scipy.io


class Py2Pickler(pickle._Pickler):
    """Pickles str and bytes the way Python 2 pickled its byte strings."""
    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str


def py2_pickle(obj, path):
    with open(path, "wb") as f:
        Py2Pickler(f, protocol=2).dump(obj)


def random_images(rng, n):
    """``n`` random 32x32 RGB uint8 images, (n, 32, 32, 3)."""
    return rng.randint(0, 256, size=(n, 32, 32, 3)).astype(np.uint8)


def cifar_rows(images_rgb):
    """(N, 32, 32, 3) RGB -> the N x 3072 rows of a CIFAR batch."""
    return np.ascontiguousarray(images_rgb.transpose(0, 3, 1, 2).reshape(len(images_rgb), 3072))


def write_cifar_batch(path, images_rgb, labels, batch_label="training batch 1 of 5"):
    """``labels``: dict key -> list of ints, e.g. {'labels': [...]}."""
    d = {"batch_label": batch_label, "data": cifar_rows(images_rgb),
         "filenames": ["img_%05d.png" % i for i in range(len(images_rgb))]}
    d.update({k: [int(v) for v in vals] for k, vals in labels.items()})
    py2_pickle(d, path)


def make_cifar10(root, rng, per_batch=12, n_test=15):
    """``root/cifar-10-batches-py`` with data_batch_1..5, test_batch and batches.meta.
    Returns (train_images, train_labels, test_images, test_labels), RGB."""
    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder)
    train_x, train_y = random_images(rng, 5 * per_batch), rng.randint(0, 10, 5 * per_batch)
    for b in range(5):
        s = slice(b * per_batch, (b + 1) * per_batch)
        write_cifar_batch(os.path.join(folder, "data_batch_%d" % (b + 1)), train_x[s],
                          {"labels": train_y[s]}, "training batch %d of 5" % (b + 1))
    test_x, test_y = random_images(rng, n_test), rng.randint(0, 10, n_test)
    write_cifar_batch(os.path.join(folder, "test_batch"), test_x, {"labels": test_y},
                      "testing batch 1 of 1")
    py2_pickle({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                "horse", "ship", "truck"], "num_cases_per_batch": per_batch,
                "num_vis": 3072}, os.path.join(folder, "batches.meta"))
    return train_x, train_y, test_x, test_y


def make_cifar100(root, rng, n_train=40, n_test=16):
    """``root/cifar-100-python`` with train, test and meta. Returns
    (train_images, train_fine, train_coarse, test_images, test_fine, test_coarse)."""
    folder = os.path.join(root, "cifar-100-python")
    os.makedirs(folder)
    out = []
    for name, n in (("train", n_train), ("test", n_test)):
        x, fine = random_images(rng, n), rng.randint(0, 100, n)
        coarse = fine // 5  # any 0..19 mapping will do
        write_cifar_batch(os.path.join(folder, name), x,
                          {"fine_labels": fine, "coarse_labels": coarse}, name)
        out += [x, fine, coarse]
    py2_pickle({"fine_label_names": ["c%d" % i for i in range(100)],
                "coarse_label_names": ["s%d" % i for i in range(20)]}, os.path.join(folder, "meta"))
    return tuple(out)


def make_tar_gz(folder, path):
    """The official archive layout: the folder as the only top-level member."""
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname=os.path.basename(folder))
    return path


def write_svhn_mat(path, images_rgb, digits):
    """``digits`` 0..9; stored as 1..10 with 10 for the digit 0, like the real files."""
    y = np.where(np.asarray(digits) == 0, 10, digits).astype(np.uint8).reshape(-1, 1)
    scipy.io.savemat(path, {"X": np.ascontiguousarray(images_rgb.transpose(1, 2, 3, 0)), "y": y})


def truncate(path, keep_fraction=0.5):
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:int(len(data) * keep_fraction)])


def read_records(prefix):
    """All records of ``prefix.rec`` via its ``.idx``: [(header, BGR image)] in .idx order."""
    rec = mx.recordio.MXIndexedRecordIO(prefix + ".idx", prefix + ".rec", "r")
    try:
        return [mx.recordio.unpack_img(rec.read_idx(k), iscolor=1) for k in rec.keys]
    finally:
        rec.close()


def read_iter(it):
    """Every non-pad row of one pass of a DataIter: (data (N, C, H, W), labels)."""
    data, labels = [], []
    for batch in it:
        n = batch.data[0].shape[0] - batch.pad
        data.append(batch.data[0].asnumpy()[:n])
        labels.append(batch.label[0].asnumpy()[:n])
    return np.concatenate(data), np.concatenate(labels)
