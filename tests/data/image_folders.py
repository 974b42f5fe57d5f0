"""Small image folders in the real layouts: class trees of JPEG/PNG files, a corrupt JPEG and
a non-image file, CUB-200-2011, FGVC-Aircraft and Stanford Cars metadata; record readers."""
import os

import cv2
import mxnet as mx
import numpy as np
import scipy.io

# (height, width): landscape, portrait, square, odd sizes
SIZES = [(48, 64), (70, 45), (50, 50), (37, 81), (90, 60)]


def smooth_image(rng, height, width, channels=3):
    """A photo-like uint8 image (BGR / grey): random low-resolution colours, upsampled."""
    small = rng.randint(0, 256, (max(2, height // 8), max(2, width // 8), channels))
    img = cv2.resize(small.astype(np.uint8), (width, height), interpolation=cv2.INTER_CUBIC)
    return img.reshape(height, width, channels) if channels > 1 else img.reshape(height, width)


def make_class_tree(root, rng, classes=("cat", "dog", "zebra"), per_class=5, bad=True):
    """``root/<class>/NNN.jpg|png`` (mixed JPEG/PNG, colour and grey, several sizes). With
    ``bad``: ``<second class>/broken.jpg`` (a JPEG cut in half), ``<last class>/fake.png``
    (text) and ``<first class>/notes.txt`` (not an image extension). Returns ``{relpath: BGR
    image}`` of the good files as decoded with ``cv2.imread(path, 1)``."""
    good = {}
    for c in classes:
        os.makedirs(os.path.join(root, c), exist_ok=True)
        for i in range(per_class):
            h, w = SIZES[(i + len(c)) % len(SIZES)]
            grey = i == 3
            img = smooth_image(rng, h, w, 1 if grey else 3)
            ext = ".png" if i % 2 else ".jpg"
            rel = os.path.join(c, "%03d%s" % (i, ext))
            cv2.imwrite(os.path.join(root, rel), img)
            good[rel] = cv2.imread(os.path.join(root, rel), 1)
    if bad:
        ok, buf = cv2.imencode(".jpg", smooth_image(rng, 60, 80))
        with open(os.path.join(root, classes[1], "broken.jpg"), "wb") as f:
            f.write(buf.tobytes()[:len(buf) // 2])
        with open(os.path.join(root, classes[-1], "fake.png"), "w") as f:
            f.write("this is not an image\n")
        with open(os.path.join(root, classes[0], "notes.txt"), "w") as f:
            f.write("not listed\n")
    return good


def read_raw(prefix):
    """``[(IRHeader, payload bytes)]`` of ``prefix.rec`` in ``.idx`` order."""
    rec = mx.recordio.MXIndexedRecordIO(prefix + ".idx", prefix + ".rec", "r")
    try:
        return [mx.recordio.unpack(rec.read_idx(k)) for k in rec.keys]
    finally:
        rec.close()


def decode(payload, flag=1):
    return cv2.imdecode(np.frombuffer(payload, np.uint8), flag)


def _write_lines(path, lines):
    with open(path, "w") as f:
        f.write("".join(line + "\n" for line in lines))


def make_cub(root, rng, classes=("001.Black_footed_Albatross", "002.Laysan_Albatross",
                                 "003.Sooty_Albatross"), per_class=3):
    """``root/CUB_200_2011`` with the four metadata files and ``images/<class>/*.jpg``; image
    ids are interleaved across classes and every class has train and test images. Returns
    ``{"train": [(relpath, label)], "val": [...]}`` in image-id order, labels 0-based."""
    base = os.path.join(root, "CUB_200_2011")
    images, labels, split, expected = [], [], [], {"train": [], "val": []}
    image_id = 0
    for i in range(per_class):
        for c, name in enumerate(classes):
            image_id += 1
            rel = "%s/%s_%04d.jpg" % (name, name.split(".")[1], image_id)
            os.makedirs(os.path.join(base, "images", name), exist_ok=True)
            cv2.imwrite(os.path.join(base, "images", rel), smooth_image(rng, 40 + 4 * c, 52))
            is_train = int(i != 1)
            images.append("%d %s" % (image_id, rel))
            labels.append("%d %d" % (image_id, c + 1))
            split.append("%d %d" % (image_id, is_train))
            expected["train" if is_train else "val"].append((os.path.join("images", rel), c))
    _write_lines(os.path.join(base, "images.txt"), images)
    _write_lines(os.path.join(base, "image_class_labels.txt"), labels)
    _write_lines(os.path.join(base, "train_test_split.txt"), split)
    _write_lines(os.path.join(base, "classes.txt"),
                 ["%d %s" % (c + 1, n) for c, n in enumerate(classes)])
    return base, expected


def make_aircraft(root, rng, variants=("707-320", "A300B4", "Cessna 172", "F/A-18")):
    """``root/fgvc-aircraft-2013b/data`` with variants.txt, the trainval/test lists and
    images/<7-digit id>.jpg. Returns the expected splits."""
    data = os.path.join(root, "fgvc-aircraft-2013b", "data")
    os.makedirs(os.path.join(data, "images"))
    _write_lines(os.path.join(data, "variants.txt"), variants)
    expected = {"train": [], "val": []}
    lines = {"train": [], "val": []}
    for k in range(12):
        image_id = "%07d" % (34309 + 97 * k)
        cv2.imwrite(os.path.join(data, "images", image_id + ".jpg"), smooth_image(rng, 30, 40))
        split = "val" if k % 3 == 0 else "train"
        lab = k % len(variants)
        lines[split].append("%s %s" % (image_id, variants[lab]))
        expected[split].append((os.path.join("images", image_id + ".jpg"), lab))
    _write_lines(os.path.join(data, "images_variant_trainval.txt"), lines["train"])
    _write_lines(os.path.join(data, "images_variant_test.txt"), lines["val"])
    return data, expected


def _annotations(fnames, classes):
    dtype = [("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O"),
             ("class", "O"), ("fname", "O")]
    return np.array([(1, 2, 30, 20, np.uint8(c), f) for f, c in zip(fnames, classes)],
                    dtype=dtype).reshape(1, -1)


def make_cars(root, rng, class_names=("AM General Hummer SUV 2000", "Acura RL Sedan 2012")):
    """Stanford Cars: devkit/cars_meta.mat, devkit/cars_train_annos.mat,
    cars_test_annos_withlabels.mat, cars_train/ and cars_test/ (MATLAB v5 structs as in the
    real files). Returns the expected splits."""
    os.makedirs(os.path.join(root, "devkit"))
    names = np.empty((1, len(class_names)), dtype=object)
    names[0, :] = list(class_names)
    scipy.io.savemat(os.path.join(root, "devkit", "cars_meta.mat"), {"class_names": names})
    expected = {}
    for split, folder, mat in (("train", "cars_train", "devkit/cars_train_annos.mat"),
                               ("val", "cars_test", "cars_test_annos_withlabels.mat")):
        os.makedirs(os.path.join(root, folder))
        fnames = ["%05d.jpg" % (i + 1) for i in range(4)]
        classes = [1 + i % len(class_names) for i in range(4)]
        for f in fnames:
            cv2.imwrite(os.path.join(root, folder, f), smooth_image(rng, 30, 50))
        scipy.io.savemat(os.path.join(root, mat), {"annotations": _annotations(fnames, classes)})
        expected[split] = [(os.path.join(folder, f), c - 1) for f, c in zip(fnames, classes)]
    return root, expected
