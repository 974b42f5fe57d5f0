"""Downsampled ImageNet converter on files in the release's formats (Python 3 pickles of
``{'data', 'labels', 'mean'}`` and ``.npz`` archives with the same keys, R/G/B planes per row,
1-based labels), including truncated, malformed and MATLAB files and an interrupted run."""
import json
import os
import pickle
import runpy
import sys

import numpy as np
import pytest

from gluon_models.data import DataFormatError, convert_imagenet64, load_imagenet64_batch, read_lst
from gluon_models.data.imagenet64 import IMAGENET64_FILES

from .formats import read_records

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write_batch(path, images_rgb, labels, fmt="pickle", mean=True, protocol=4):
    """One file as released: ``data`` (n, 3*s*s) uint8 rows of R, G, B planes; ``labels``
    1-based ints; ``mean`` (training files) the mean row as floats."""
    n, s = images_rgb.shape[0], images_rgb.shape[1]
    rows = np.ascontiguousarray(images_rgb.transpose(0, 3, 1, 2).reshape(n, 3 * s * s))
    d = {"data": rows, "labels": [int(v) + 1 for v in labels]}
    if mean:
        d["mean"] = rows.mean(axis=0)
    if fmt == "npz":
        np.savez(path + ".npz", data=d["data"], labels=np.asarray(d["labels"]),
                 **({"mean": d["mean"]} if mean else {}))
        return path + ".npz"
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=protocol)
    return path


def make_release(root, side=64, per_file=3, n_val=4, fmt="pickle", seed=0):
    """The ten training files in two 'part' folders and val_data; returns the RGB images and
    0-based labels per split."""
    rng = np.random.RandomState(seed)
    out = {"train": ([], []), "val": ([], [])}
    for split, names in IMAGENET64_FILES.items():
        for i, name in enumerate(names):
            n = per_file + (i % 2) if split == "train" else n_val
            folder = os.path.join(root, "Imagenet%d_%s_part%d" % (side, split, 1 + (i >= 5)))
            os.makedirs(folder, exist_ok=True)
            images = rng.randint(0, 256, (n, side, side, 3)).astype(np.uint8)
            labels = rng.randint(0, 1000, n)
            labels[0] = 999 if i == 0 else labels[0]
            write_batch(os.path.join(folder, name), images, labels, fmt, mean=split == "train")
            out[split][0].append(images)
            out[split][1].append(labels)
    return {s: (np.concatenate(a), np.concatenate(b)) for s, (a, b) in out.items()}


def check_split(prefix, images_rgb, labels):
    records = read_records(prefix)
    assert len(records) == len(images_rgb)
    for i, (header, bgr) in enumerate(records):
        assert header.id == i and header.label == labels[i]
        np.testing.assert_array_equal(bgr[:, :, ::-1], images_rgb[i])
    assert [r[1] for r in read_lst(prefix + ".lst")] == [(float(v),) for v in labels]


@pytest.mark.parametrize("fmt,side", [("pickle", 64), ("npz", 64), ("pickle", 32),
                                      ("npz", 16)])
def test_release_formats_convert_exactly(tmp_path, fmt, side):
    data = make_release(str(tmp_path / "src"), side=side, fmt=fmt)
    out = str(tmp_path / "out")
    res = convert_imagenet64(str(tmp_path / "src"), out, side=side, progress=False)
    for split in ("train", "val"):
        check_split(os.path.join(out, split), *data[split])
        assert res[split].count == len(data[split][1])
    # the training mean: the files' mean rows averaged (weighted by count), per plane
    want = data["train"][0].reshape(-1, side * side, 3).mean(axis=(0, 1))
    np.testing.assert_allclose(res["mean_rgb"], want, rtol=1e-12)
    with open(os.path.join(out, "mean_rgb.json")) as fh:
        np.testing.assert_allclose(json.load(fh)["mean_rgb"], want, rtol=1e-12)


def test_jpeg_and_a_second_run_skips(tmp_path):
    make_release(str(tmp_path / "src"), per_file=1, n_val=2)
    out = str(tmp_path / "out")
    convert_imagenet64(str(tmp_path / "src"), out, splits=("val",), encoding=".jpg",
                       quality=95, progress=False)
    assert len(read_records(os.path.join(out, "val"))) == 2
    assert convert_imagenet64(str(tmp_path / "src"), out, splits=("val",),
                              progress=False)["val"] is None


def test_batch_reader_checks_and_names_the_file(tmp_path):
    rng = np.random.RandomState(1)
    images = rng.randint(0, 256, (3, 16, 16, 3)).astype(np.uint8)
    good = write_batch(str(tmp_path / "good"), images, [0, 1, 2])
    x, y, mean = load_imagenet64_batch(good, side=16)
    assert x.shape == (3, 3, 16, 16) and list(y) == [0, 1, 2] and mean.shape == (768,)
    with pytest.raises(DataFormatError, match="good.*3072"):
        load_imagenet64_batch(good, side=32)
    cases = {
        "zero_label": ({"data": np.zeros((2, 768), np.uint8), "labels": [0, 1]}, "1..1000"),
        "big_label": ({"data": np.zeros((2, 768), np.uint8), "labels": [1, 1001]}, "1..1000"),
        "count": ({"data": np.zeros((2, 768), np.uint8), "labels": [1]}, "2 images but 1"),
        "float_data": ({"data": np.zeros((2, 768)), "labels": [1, 2]}, "uint8"),
        "no_labels": ({"data": np.zeros((2, 768), np.uint8)}, "'labels'"),
        "not_a_dict": ([1, 2, 3], "expected a dict"),
    }
    for name, (obj, match) in cases.items():
        path = str(tmp_path / name)
        with open(path, "wb") as f:
            pickle.dump(obj, f)
        with pytest.raises(DataFormatError, match=match) as e:
            load_imagenet64_batch(path, side=16)
        assert name in str(e.value)


def test_truncated_files_name_themselves(tmp_path):
    images = np.zeros((4, 16, 16, 3), np.uint8)
    for fmt in ("pickle", "npz"):
        path = write_batch(str(tmp_path / ("batch_" + fmt)), images, [1, 2, 3, 4], fmt)
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[:len(data) // 2])
        with pytest.raises(DataFormatError, match="batch_" + fmt):
            load_imagenet64_batch(path, side=16)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    path = str(tmp_path / "evil")
    with open(path, "wb") as f:
        pickle.dump({"data": _Exploit(), "labels": [1]}, f)
    with pytest.raises(DataFormatError, match="evil.*system"):
        load_imagenet64_batch(path)


def test_matlab_files_are_refused_with_a_hint(tmp_path):
    v5 = str(tmp_path / "imdb_v5.mat")
    with open(v5, "wb") as f:
        f.write(b"MATLAB 5.0 MAT-file, Platform: GLNXA64".ljust(200, b" "))
    v73 = str(tmp_path / "imdb.mat")
    with open(v73, "wb") as f:
        f.write(b"MATLAB 7.3 MAT-file".ljust(512, b" ") + b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    for path in (v5, v73):
        with pytest.raises(DataFormatError, match="MATLAB .mat.*train_data_batch"):
            load_imagenet64_batch(path)


def test_missing_files_are_named(tmp_path):
    make_release(str(tmp_path / "src"), per_file=1, n_val=1)
    os.remove(str(tmp_path / "src" / "Imagenet64_train_part2" / "train_data_batch_7"))
    with pytest.raises(FileNotFoundError, match="train_data_batch_7"):
        convert_imagenet64(str(tmp_path / "src"), str(tmp_path / "out"), progress=False)


def test_interrupted_run_resumes_to_the_same_records(tmp_path, monkeypatch):
    from gluon_models.data import imagenet64
    # enough images for several write chunks (256 records) before the failing file
    data = make_release(str(tmp_path / "src"), side=16, per_file=100, n_val=1)
    real = imagenet64.load_imagenet64_batch

    def failing(path, side=64):
        if path.endswith("train_data_batch_5"):
            raise DataFormatError("%s: read error (simulated)" % path)
        return real(path, side)
    monkeypatch.setattr(imagenet64, "load_imagenet64_batch", failing)
    out = str(tmp_path / "out")
    with pytest.raises(DataFormatError, match="train_data_batch_5"):
        convert_imagenet64(str(tmp_path / "src"), out, side=16, splits=("train",),
                           resume=True, progress=False)
    assert not os.path.exists(os.path.join(out, "train.rec"))
    monkeypatch.setattr(imagenet64, "load_imagenet64_batch", real)
    res = convert_imagenet64(str(tmp_path / "src"), out, side=16, splits=("train",),
                             resume=True, progress=False)
    assert res["train"].resumed >= 256
    check_split(os.path.join(out, "train"), *data["train"])


def _run_tool(monkeypatch, *argv):
    monkeypatch.setattr(sys, "argv", ["prepare_imagenet64.py"] + list(argv))
    runpy.run_path(os.path.join(ROOT, "tools", "prepare_imagenet64.py"), run_name="__main__")


def test_tool_end_to_end(tmp_path, monkeypatch, caplog):
    data = make_release(str(tmp_path / "src"), side=32, per_file=1, n_val=2)
    out = str(tmp_path / "out")
    with caplog.at_level("INFO"):
        _run_tool(monkeypatch, str(tmp_path / "src"), "--side", "32", "--out-dir", out,
                  "--no-progress", "--num-workers", "1")
    check_split(os.path.join(out, "val"), *data["val"])
    assert "--mean-rgb" in caplog.text
    with pytest.raises(SystemExit, match="nowhere"):
        _run_tool(monkeypatch, str(tmp_path / "nowhere"))
