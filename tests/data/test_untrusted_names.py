"""Names and trees from elsewhere: a tab or line break in a file, folder or class name must
not corrupt a .lst or classes.txt, symbolic links must not list an image twice, and a list
that is not text is an error naming it."""
import os

import cv2
import numpy as np
import pytest

from gluon_models.data import DataFormatError, read_lst, write_records
from gluon_models.data.finegrained import convert_folder_dataset, read_folder_dataset
from gluon_models.data.folder import list_images, make_image_lists


def _png(path, value=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cv2.imwrite(path, np.full((8, 8, 3), value, np.uint8))


def _tree(root, names):
    for i, rel in enumerate(names):
        _png(os.path.join(root, rel), 10 * i)


def test_list_refuses_names_that_would_split_a_lst_line(tmp_path):
    root = str(tmp_path / "imgs")
    # a file whose name would add a fake record "7  0.0  x.png", a folder with a
    # line break, a tab, a trailing space
    _tree(root, ["cat/a.png", "cat/b.png\n7\t0.000000\tx.png", "do\ng/c.png",
                 "dog/d\te.png", "dog/f.png ", "dog/g.png"])
    prefix = str(tmp_path / "out" / "l")
    make_image_lists(prefix, root, recursive=True, shuffle=False, exts=[".png", ".png "])
    rows = read_lst(prefix + ".lst")
    assert [r[2] for r in rows] == [os.path.join("cat", "a.png"), os.path.join("dog", "g.png")]
    assert [r[1] for r in rows] == [(0.0,), (1.0,)]  # refused folders take no label
    skipped = open(prefix + ".lst.skipped").read().splitlines()
    assert len(skipped) == 4
    assert all(len(line.split("\t")) == 2 for line in skipped)
    assert skipped[0] == "cat/b.png\\n7\\t0.000000\\tx.png\tthe name contains a tab, which " \
                         "would split its .lst line"
    assert any("white space" in line for line in skipped)


def test_folder_dataset_refuses_bad_class_and_file_names(tmp_path):
    src = tmp_path / "src"
    _tree(str(src / "train"), ["ant/1.png", "bad\tclass/2.png", "bee/3.png", "bee/x\ny.png",
                               "cow/4.png"])
    _tree(str(src / "val"), ["ant/5.png", "bad\tclass/6.png", "cow/7.png"])
    out = tmp_path / "out"
    res = convert_folder_dataset(str(src), str(out), shuffle=False, encoding=".png",
                                 progress=False)
    assert (out / "classes.txt").read_text() == "0\tant\n1\tbee\n2\tcow\n"
    train = read_lst(str(out / "train.lst"))
    assert [(r[1][0], os.path.basename(r[2])) for r in train] == [
        (0.0, "1.png"), (1.0, "3.png"), (2.0, "4.png")]
    assert res["train"].count == 3 and len(res["train"].skipped) == 2
    skipped = (out / "train.skipped").read_text().splitlines()
    assert len(skipped) == 2 and all(len(line.split("\t")) == 3 for line in skipped)
    assert "class name bad\\tclass" in skipped[0] and "line break" in skipped[1]
    assert [(r[1][0], os.path.basename(r[2])) for r in read_lst(str(out / "val.lst"))] == [
        (0.0, "5.png"), (2.0, "7.png")]
    with pytest.raises(DataFormatError, match=r"bad\\tclass"):
        convert_folder_dataset(str(src), str(tmp_path / "strict"), strict=True, progress=False)
    assert not (tmp_path / "strict" / "classes.txt").exists()


def test_write_records_never_writes_a_name_that_splits_the_lst(tmp_path):
    img = np.zeros((4, 4, 3), np.uint8)
    items = [(0, 1, img, "a.png"), (1, 2, img, "b.png\n9\t5.000000\tc.png"), (2, 3, img, "d.png")]
    res = write_records(str(tmp_path / "t"), items, progress=False, skip_errors=True)
    assert res.count == 2 and [s[0] for s in res.skipped] == [1]
    assert [r[2] for r in read_lst(str(tmp_path / "t.lst"))] == ["a.png", "d.png"]
    line, = (tmp_path / "t.skipped").read_text().splitlines()
    assert line.split("\t")[:2] == ["1", "b.png\\n9\\t5.000000\\tc.png"]
    with pytest.raises(ValueError, match=r"record 1 \(b\.png\\n9.*contains a tab"):
        write_records(str(tmp_path / "u"), items, progress=False)


def test_symlink_loops_and_links_into_the_tree_list_each_image_once(tmp_path):
    root = tmp_path / "imgs"
    _tree(str(root), ["a/1.png", "a/2.png", "b/3.png"])
    os.symlink("..", str(root / "a" / "loop"))          # a cycle back to the root
    os.symlink(str(root / "a"), str(root / "c_alias"))  # a second route to a/
    outside = tmp_path / "outside"
    _tree(str(outside), ["4.png"])
    os.symlink(str(outside), str(root / "d_linked"))    # a linked class folder: followed
    os.symlink(str(root), str(outside / "back"))        # ... and a cycle through it
    images, folders = list_images(str(root), recursive=True)
    paths = [p for _, p, _ in images]
    assert sorted(paths) == sorted(["a/1.png", "a/2.png", "b/3.png", "d_linked/4.png"])
    assert [f for f, _ in folders] == ["a", "b", "d_linked"]


def test_folder_dataset_class_linking_into_another_is_not_listed_twice(tmp_path):
    src = tmp_path / "src"
    _tree(str(src / "train"), ["ant/1.png", "bee/2.png"])
    _tree(str(src / "val"), ["ant/3.png"])
    os.symlink(str(src / "train" / "ant"), str(src / "train" / "bee" / "also_ants"))
    os.symlink("..", str(src / "train" / "ant" / "up"))  # a loop inside a class
    data = read_folder_dataset(str(src))
    assert sorted(data.splits["train"]) == [(os.path.join("train", "ant", "1.png"), 0),
                                            (os.path.join("train", "bee", "2.png"), 1)]


def test_a_binary_lst_is_an_error_naming_it(tmp_path):
    path = tmp_path / "train.lst"
    path.write_bytes(b"0\t1.000000\ta.png\n" + bytes(range(128, 256)) * 40)
    with pytest.raises(DataFormatError, match=r"train\.lst: not a text \.lst file"):
        read_lst(str(path))
