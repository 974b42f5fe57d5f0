"""Places365-Standard layout (its file lists, data_256/ and val_256/) to 100x100 records, and
the tool; malformed lists name the file and line."""
import os
import runpy
import sys

import cv2
import numpy as np
import pytest

from gluon_models.data import DataFormatError
from gluon_models.data.finegrained import convert_folder_dataset, read_folder_dataset
from gluon_models.data.folder import ImageLoader

from .image_folders import decode, read_raw, smooth_image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CATEGORIES = ["/a/airfield", "/a/alley", "/b/bakery/shop"]


def make_places365(root, rng, lists_in_subfolder=False, large=False):
    """The release's layout with 3 categories; returns {split: [(relpath, label, BGR)]}."""
    lists = os.path.join(root, "filelist_places365-standard") if lists_in_subfolder else root
    os.makedirs(lists, exist_ok=True)
    with open(os.path.join(lists, "categories_places365.txt"), "w") as f:
        f.writelines("%s %d\n" % (c, i) for i, c in enumerate(CATEGORIES))
    train_dir, val_dir = ("data_large", "val_large") if large else ("data_256", "val_256")
    out = {"train": [], "val": []}
    lines = {"train": [], "val": []}
    for i in range(6):
        label = i % 3
        rel = "%s/%08d.jpg" % (CATEGORIES[label], i + 1)
        h, w = (256, 256) if not large else (512, 683)
        img = smooth_image(rng, h, w)
        path = os.path.join(root, train_dir, rel.lstrip("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        cv2.imwrite(path, img)
        lines["train"].append("%s %d\n" % (rel, label))
        out["train"].append((os.path.join(train_dir, rel.lstrip("/")), label,
                             cv2.imread(path, 1)))
    os.makedirs(os.path.join(root, val_dir), exist_ok=True)
    for i in range(3):
        name = "Places365_val_%08d.jpg" % (i + 1)
        cv2.imwrite(os.path.join(root, val_dir, name), smooth_image(rng, 256, 256))
        lines["val"].append("%s %d\n" % (name, 2 - i))
        out["val"].append((os.path.join(val_dir, name), 2 - i,
                           cv2.imread(os.path.join(root, val_dir, name), 1)))
    for split, name in (("train", "places365_train_standard.txt"),
                        ("val", "places365_val.txt")):
        with open(os.path.join(lists, name), "w") as f:
            f.writelines(lines[split])
    return out


@pytest.mark.parametrize("subfolder,large", [(False, False), (True, True)])
def test_places365_to_square_records(tmp_path, subfolder, large):
    root = str(tmp_path / "places")
    expected = make_places365(root, np.random.RandomState(0), subfolder, large)
    data = read_folder_dataset(root)
    assert data.layout == "places365" and data.classes == [c.lstrip("/") for c in CATEGORIES]
    out = str(tmp_path / "out")
    res = convert_folder_dataset(root, out, shuffle=False, resize=100, square=True,
                                 inter_method=2, encoding=".png", progress=False)
    for split in ("train", "val"):
        records = read_raw(os.path.join(out, split))
        assert res[split].count == len(expected[split]) == len(records)
        for (header, payload), (_, label, bgr) in zip(records, expected[split]):
            assert header.label == label
            img = decode(payload)
            assert img.shape == (100, 100, 3)  # every aspect ratio becomes the square
            want = cv2.resize(bgr, (100, 100), interpolation=cv2.INTER_CUBIC)
            np.testing.assert_array_equal(img, want)


def test_bad_lists_name_the_file_and_line(tmp_path):
    root = str(tmp_path / "places")
    make_places365(root, np.random.RandomState(1))
    with open(os.path.join(root, "places365_val.txt"), "a") as f:
        f.write("Places365_val_00000009.jpg 365\n")
    with pytest.raises(DataFormatError, match="places365_val.txt line 4: label 365"):
        read_folder_dataset(root)
    with open(os.path.join(root, "places365_val.txt"), "w") as f:
        f.write("Places365_val_00000001.jpg\n")
    with pytest.raises(DataFormatError, match="places365_val.txt line 1"):
        read_folder_dataset(root)
    os.rename(os.path.join(root, "val_256"), os.path.join(root, "val_x"))
    with pytest.raises(FileNotFoundError, match="validation image folder"):
        read_folder_dataset(root)


def test_square_needs_a_size():
    with pytest.raises(ValueError, match="square"):
        ImageLoader(".", resize=0, square=True)
    assert "square" not in ImageLoader(".", resize=10).options()


def test_tool(tmp_path, monkeypatch):
    root = str(tmp_path / "places")
    expected = make_places365(root, np.random.RandomState(2))
    out = str(tmp_path / "out")
    monkeypatch.setattr(sys, "argv", ["prepare_places365.py", root, "--out-dir", out,
                                      "--no-progress", "--num-workers", "1"])
    runpy.run_path(os.path.join(ROOT, "tools", "prepare_places365.py"), run_name="__main__")
    records = read_raw(os.path.join(out, "val"))
    assert [h.label for h, _ in records] == [lab for _, lab, _ in expected["val"]]
    assert all(decode(p).shape == (100, 100, 3) for _, p in records)
    assert len(read_raw(os.path.join(out, "train"))) == 6
    monkeypatch.setattr(sys, "argv", ["prepare_places365.py", str(tmp_path / "none")])
    with pytest.raises(SystemExit, match="none"):
        runpy.run_path(os.path.join(ROOT, "tools", "prepare_places365.py"), run_name="__main__")
