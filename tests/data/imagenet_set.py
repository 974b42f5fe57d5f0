"""A tiny ImageNet-style record set: full-size images (default 300 wide, 200 high) packed with
``mx.recordio`` as im2rec does (``.rec`` + ``.idx``), JPEG or lossless PNG."""
import os

import cv2
import mxnet as mx
import numpy as np

CLASSES = 5


def photos(rng, n, width=300, height=200):
    """``n`` smooth random RGB uint8 images (n, height, width, 3): upsampled noise, so a crop
    or a resize changes them the way it changes a photo."""
    small = rng.randint(0, 256, size=(n, height // 10, width // 10, 3)).astype(np.uint8)
    return np.stack([cv2.resize(s, (width, height), interpolation=cv2.INTER_LINEAR)
                     for s in small])


def constant_photos(rng, n, width=300, height=200):
    """``n`` images of one random colour each."""
    colours = rng.randint(0, 256, size=(n, 1, 1, 3)).astype(np.uint8)
    return np.broadcast_to(colours, (n, height, width, 3)).copy()


def write_rec(prefix, images_rgb, labels, img_fmt=".jpg"):
    """Write ``prefix.rec`` / ``prefix.idx`` holding the images (RGB in, stored as BGR
    like cv2.imread's) with their labels; returns the ``.rec`` path."""
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    rec = mx.recordio.MXIndexedRecordIO(prefix + ".idx", prefix + ".rec", "w")
    quality = 95 if img_fmt == ".jpg" else 3
    for i, (img, label) in enumerate(zip(images_rgb, labels)):
        header = mx.recordio.IRHeader(0, float(label), i, 0)
        rec.write_idx(i, mx.recordio.pack_img(header, img[:, :, ::-1], quality=quality,
                                              img_fmt=img_fmt))
    rec.close()
    return prefix + ".rec"


def write_set(data_dir, n_train=24, n_val=13, seed=0, img_fmt=".jpg"):
    """``train.rec`` and ``val.rec`` in ``data_dir`` with random labels; returns
    ``(train_images, train_labels, val_images, val_labels)``."""
    rng = np.random.RandomState(seed)
    tr, va = photos(rng, n_train), photos(rng, n_val)
    ytr, yva = rng.randint(0, CLASSES, n_train), rng.randint(0, CLASSES, n_val)
    write_rec(os.path.join(str(data_dir), "train"), tr, ytr, img_fmt)
    write_rec(os.path.join(str(data_dir), "val"), va, yva, img_fmt)
    return tr, ytr, va, yva
