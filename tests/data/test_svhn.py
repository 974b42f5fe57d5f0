"""SVHN .mat files to records: labels 10 -> 0, train + extra merge, format errors."""
import os

import numpy as np
import pytest
import scipy.io

from gluon_models.data import DataFormatError, convert_svhn, load_svhn_mat, read_lst

from .formats import random_images, read_records, truncate, write_svhn_mat


@pytest.fixture
def svhn(tmp_path):
    rng = np.random.RandomState(20)
    src = tmp_path / "src"
    src.mkdir()
    sets = {}
    for name, n in (("train", 9), ("extra", 7), ("test", 5)):
        x, d = random_images(rng, n), rng.randint(0, 10, n)
        d[0] = 0  # always exercise the 10 -> 0 case
        write_svhn_mat(str(src / ("%s_32x32.mat" % name)), x, d)
        sets[name] = (x, d)
    return tmp_path, sets


def test_real_layout_is_what_we_write(svhn):
    tmp, sets = svhn
    mat = scipy.io.loadmat(str(tmp / "src" / "train_32x32.mat"))
    assert mat["X"].shape == (32, 32, 3, 9) and mat["X"].dtype == np.uint8
    assert mat["y"].shape == (9, 1) and mat["y"][0, 0] == 10
    X, labels = load_svhn_mat(str(tmp / "src" / "train_32x32.mat"))
    np.testing.assert_array_equal(labels, sets["train"][1])


def test_merge_train_and_extra(svhn):
    tmp, sets = svhn
    out = str(tmp / "out")
    res = convert_svhn(str(tmp / "src"), out, num_workers=2, progress=False)
    assert res["train"].count == 16 and res["test"].count == 5
    x = np.concatenate([sets["train"][0], sets["extra"][0]])
    d = np.concatenate([sets["train"][1], sets["extra"][1]])
    for prefix, xs, ds in (("train", x, d), ("test",) + sets["test"]):
        records = read_records(os.path.join(out, prefix))
        assert [h.label for h, _ in records] == list(ds)  # digit 0 is label 0
        assert [h.id for h, _ in records] == list(range(len(ds)))
        for (_, bgr), rgb in zip(records, xs):
            np.testing.assert_array_equal(bgr[:, :, ::-1], rgb)
    lst = read_lst(os.path.join(out, "train.lst"))
    assert lst[9][2] == "extra_32x32/000000.png" and lst[0][1] == (0.0,)


def test_extra_separate_or_skipped(svhn):
    tmp, _ = svhn
    res = convert_svhn(str(tmp / "src"), str(tmp / "a"), extra="separate", progress=False)
    assert (res["train"].count, res["extra"].count) == (9, 7)
    os.remove(tmp / "src" / "extra_32x32.mat")
    res = convert_svhn(str(tmp / "src"), str(tmp / "b"), extra="skip", progress=False)
    assert res["train"].count == 9
    with pytest.raises(FileNotFoundError, match="extra_32x32.mat"):
        convert_svhn(str(tmp / "src"), str(tmp / "c"), progress=False)
    assert not os.path.exists(tmp / "c")


@pytest.mark.parametrize("keep", [0.5, 0.98, 0.01])
def test_truncated_mat_names_the_file(svhn, keep):
    tmp, _ = svhn
    truncate(str(tmp / "src" / "extra_32x32.mat"), keep)
    with pytest.raises(DataFormatError, match="extra_32x32.mat"):
        convert_svhn(str(tmp / "src"), str(tmp / "out"), progress=False)
    assert not os.path.exists(tmp / "out" / "train.rec")


def test_wrong_variables_and_values(tmp_path):
    path = str(tmp_path / "train_32x32.mat")
    scipy.io.savemat(path, {"images": np.zeros((32, 32, 3, 2), np.uint8), "y": np.ones((2, 1))})
    with pytest.raises(DataFormatError, match="train_32x32.mat: missing variable.*X"):
        load_svhn_mat(path)
    scipy.io.savemat(path, {"X": np.zeros((32, 32, 3, 2), np.float64), "y": np.ones((2, 1))})
    with pytest.raises(DataFormatError, match="train_32x32.mat: 'X' must be"):
        load_svhn_mat(path)
    scipy.io.savemat(path, {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.ones((3, 1))})
    with pytest.raises(DataFormatError, match="'y' must be"):
        load_svhn_mat(path)
    scipy.io.savemat(path, {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[0], [4]])})
    with pytest.raises(DataFormatError, match="1..10"):
        load_svhn_mat(path)
    with open(path, "wb") as f:
        f.write(b"\x89HDF\r\n\x1a\n" + b"\0" * 600)  # not a v5 .mat
    with pytest.raises(DataFormatError, match="train_32x32.mat"):
        load_svhn_mat(path)
