"""CIFAR-10/100 python pickles (folder, parent folder, .tar.gz) to records and back."""
import os
import pickle

import mxnet as mx
import numpy as np
import pytest

from gluon_models.data import DataFormatError, convert_cifar, load_cifar_batch, read_lst

from .formats import (make_cifar10, make_cifar100, make_tar_gz, py2_pickle, read_iter,
                      read_records, truncate, write_cifar_batch)


@pytest.fixture
def cifar10(tmp_path):
    rng = np.random.RandomState(10)
    return tmp_path, make_cifar10(str(tmp_path / "src"), rng)


def _check_split(prefix, images_rgb, labels):
    records = read_records(prefix)
    assert len(records) == len(images_rgb)
    for i, (header, bgr) in enumerate(records):
        assert header.id == i and header.label == labels[i]
        np.testing.assert_array_equal(bgr[:, :, ::-1], images_rgb[i])
    assert [r[1] for r in read_lst(prefix + ".lst")] == [(float(v),) for v in labels]


@pytest.mark.parametrize("layout", ["folder", "parent", "archive", "archive_in_parent"])
def test_cifar10_layouts(cifar10, layout):
    tmp, (train_x, train_y, test_x, test_y) = cifar10
    folder = str(tmp / "src" / "cifar-10-batches-py")
    if layout.startswith("archive"):
        os.makedirs(tmp / "arc")
        source = make_tar_gz(folder, str(tmp / "arc" / "cifar-10-python.tar.gz"))
        if layout == "archive_in_parent":
            source = str(tmp / "arc")
    else:
        source = folder if layout == "folder" else str(tmp / "src")
    out = str(tmp / "out")
    res = convert_cifar(source, out, progress=False)
    assert res["train"].count == 60 and res["test"].count == 15
    _check_split(os.path.join(out, "train"), train_x, train_y)  # batches 1..5 in order
    _check_split(os.path.join(out, "test"), test_x, test_y)
    assert read_lst(os.path.join(out, "train.lst"))[13][2] == "data_batch_2/00001.png"


def test_cifar10_image_record_iter_reads_rgb(cifar10):
    tmp, (train_x, train_y, _, _) = cifar10
    out = str(tmp / "out")
    convert_cifar(str(tmp / "src"), out, splits=("train",), num_workers=2, progress=False)
    it = mx.io.ImageRecordIter(path_imgrec=os.path.join(out, "train.rec"),
                               path_imgidx=os.path.join(out, "train.idx"),
                               data_shape=(3, 32, 32), batch_size=16, verbose=False)
    data, labels = read_iter(it)
    np.testing.assert_array_equal(labels, train_y)
    np.testing.assert_array_equal(data, train_x.transpose(0, 3, 1, 2).astype(np.float32))


@pytest.mark.parametrize("label", ["fine", "coarse", "both"])
def test_cifar100_labels(tmp_path, label):
    rng = np.random.RandomState(11)
    tr_x, tr_f, tr_c, te_x, te_f, te_c = make_cifar100(str(tmp_path), rng)
    out = str(tmp_path / "out")
    convert_cifar(str(tmp_path / "cifar-100-python"), out, label=label, progress=False)
    for prefix, x, fine, coarse in (("train", tr_x, tr_f, tr_c), ("test", te_x, te_f, te_c)):
        records = read_records(os.path.join(out, prefix))
        for i, (header, bgr) in enumerate(records):
            np.testing.assert_array_equal(bgr[:, :, ::-1], x[i])
            if label == "both":
                assert header.flag == 2 and list(header.label) == [fine[i], coarse[i]]
            else:
                assert header.flag == 0
                assert header.label == (fine if label == "fine" else coarse)[i]


def test_cifar100_from_archive_and_cifar10_label_choice(tmp_path):
    make_cifar100(str(tmp_path / "src"), np.random.RandomState(12), n_train=5, n_test=3)
    arc = make_tar_gz(str(tmp_path / "src" / "cifar-100-python"), str(tmp_path / "c.tar.gz"))
    with pytest.raises(ValueError, match="dataset="):
        convert_cifar(arc, str(tmp_path / "o"), progress=False)  # unofficial archive name
    res = convert_cifar(arc, str(tmp_path / "o"), dataset="cifar100", label="coarse",
                        progress=False)
    assert res["train"].count == 5
    make_cifar10(str(tmp_path / "ten"), np.random.RandomState(0), per_batch=1, n_test=1)
    with pytest.raises(ValueError, match="labels"):
        convert_cifar(str(tmp_path / "ten"), str(tmp_path / "o10"), label="coarse")


def test_existing_splits_are_skipped_unless_overwrite(cifar10):
    tmp, _ = cifar10
    out = str(tmp / "out")
    convert_cifar(str(tmp / "src"), out, progress=False)
    res = convert_cifar(str(tmp / "src"), out, progress=False)
    assert res == {"train": None, "test": None}
    res = convert_cifar(str(tmp / "src"), out, splits=("test",), overwrite=True, progress=False)
    assert res["test"].count == 15


def test_truncated_pickle_names_the_file(cifar10):
    tmp, _ = cifar10
    bad = tmp / "src" / "cifar-10-batches-py" / "data_batch_3"
    truncate(str(bad), 0.6)
    with pytest.raises(DataFormatError, match="data_batch_3.*truncated"):
        convert_cifar(str(tmp / "src"), str(tmp / "out"), progress=False)
    assert not os.path.exists(tmp / "out" / "train.rec")


def test_wrong_keys_and_shapes_name_the_file(tmp_path):
    path = str(tmp_path / "data_batch_1")
    x = np.zeros((2, 32, 32, 3), np.uint8)
    write_cifar_batch(path, x, {"fine_labels": [0, 1]})
    with pytest.raises(DataFormatError, match="data_batch_1: missing key.*'labels'"):
        load_cifar_batch(open(path, "rb").read(), path)
    py2_pickle({"data": np.zeros((2, 1024), np.uint8), "labels": [0, 1]}, path)
    with pytest.raises(DataFormatError, match="data_batch_1: 'data' must be an N x 3072"):
        load_cifar_batch(open(path, "rb").read(), path)
    write_cifar_batch(path, x, {"labels": [0]})
    with pytest.raises(DataFormatError, match="2 images but 1"):
        load_cifar_batch(open(path, "rb").read(), path)
    write_cifar_batch(path, x, {"labels": [0, 10]})
    with pytest.raises(DataFormatError, match=r"\[0, 10\)"):
        load_cifar_batch(open(path, "rb").read(), path)


class _CallsOnLoad:
    def __reduce__(self):
        return (os.getcwd, ())


def test_not_a_cifar_pickle():
    # A pickle that would call a function when loaded is rejected, not run.
    evil = pickle.dumps({b"data": _CallsOnLoad()}, protocol=2)
    with pytest.raises(DataFormatError, match="batch.bin: refers to .*getcwd, which no CIFAR"):
        load_cifar_batch(evil, "batch.bin")
    with pytest.raises(DataFormatError, match="batch.bin"):
        load_cifar_batch(b"\x89PNG\r\n\x1a\n not a pickle", "batch.bin")
    with pytest.raises(DataFormatError, match="expected a dict"):
        load_cifar_batch(pickle.dumps([1, 2], protocol=2), "batch.bin")


def test_truncated_archive_names_it(cifar10):
    tmp, _ = cifar10
    arc = make_tar_gz(str(tmp / "src" / "cifar-10-batches-py"), str(tmp / "cifar-10-python.tar.gz"))
    truncate(arc, 0.5)
    with pytest.raises(DataFormatError, match="cifar-10-python.tar.gz.*truncated"):
        convert_cifar(arc, str(tmp / "out"), progress=False)
    with open(arc, "wb") as f:
        f.write(b"not gzip at all" * 100)
    with pytest.raises(DataFormatError, match="cifar-10-python.tar.gz"):
        convert_cifar(arc, str(tmp / "out"), progress=False)


def test_missing_source(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        convert_cifar(str(tmp_path), str(tmp_path / "out"))


def _tar_gz_with_header(path, member, size):
    """A .tar.gz whose member header claims ``size`` bytes, followed by none of them: what a
    reader sees first of a member that inflates to ``size`` (a few KB on disk)."""
    import gzip
    import tarfile
    info = tarfile.TarInfo(member)
    info.size = size
    with open(path, "wb") as f:
        f.write(gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT) + b"\0" * 4096))
    return path


def test_archive_member_larger_than_a_batch_is_not_read(tmp_path):
    # 2 GiB claimed by a 4 KB archive: refused from the header, before inflating anything
    arc = _tar_gz_with_header(str(tmp_path / "cifar-10-python.tar.gz"),
                              "cifar-10-batches-py/data_batch_1", 2 << 30)
    with pytest.raises(DataFormatError, match=r"cifar-10-python\.tar\.gz:cifar-10-batches-py/"
                                              r"data_batch_1: 2147483648 bytes, more than"):
        convert_cifar(arc, str(tmp_path / "out"), progress=False)


@pytest.mark.parametrize("layout", ["archive", "folder"])
def test_member_size_bound_is_checked_before_reading(cifar10, layout):
    # the bound (default: the official batch size) set low, so that small files trip it
    tmp, _ = cifar10
    source = str(tmp / "src" / "cifar-10-batches-py")
    if layout == "archive":
        source = make_tar_gz(source, str(tmp / "cifar-10-python.tar.gz"))
    folder = tmp / "src" / "cifar-10-batches-py"
    size = os.path.getsize(str(folder / "data_batch_1"))
    with pytest.raises(DataFormatError, match=r"data_batch_1: %d bytes, more than a CIFAR "
                                              r"batch of this split can have \(1000\)" % size):
        convert_cifar(source, str(tmp / "out"), progress=False, max_member_bytes=1000)
    assert not os.path.exists(tmp / "out" / "train.rec")
    largest = max(os.path.getsize(str(f)) for f in folder.iterdir())
    res = convert_cifar(source, str(tmp / "out"), progress=False, max_member_bytes=largest)
    assert res["train"].count == 60


@pytest.mark.parametrize("labels, bad", [([0, 1.7], "1.7"), ([0, "3"], "b'3'"),
                                         ([None, 1], "None"), ([0, float("nan")], "nan")])
def test_non_integer_labels_are_refused(tmp_path, labels, bad):
    path = str(tmp_path / "data_batch_1")
    py2_pickle({"data": np.zeros((2, 3072), np.uint8), "labels": labels}, path)
    with pytest.raises(DataFormatError, match=r"data_batch_1: 'labels' must hold integer "
                                              r"labels, entry \d is %s" % bad):
        load_cifar_batch(open(path, "rb").read(), path)
    # an integral float is the integer it holds
    py2_pickle({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 3.0]}, path)
    assert load_cifar_batch(open(path, "rb").read(), path)[1].ravel().tolist() == [0, 3]


def test_a_bad_file_of_a_later_split_stops_before_anything_is_written(cifar10):
    tmp, _ = cifar10
    truncate(str(tmp / "src" / "cifar-10-batches-py" / "test_batch"), 0.5)
    with pytest.raises(DataFormatError, match="test_batch.*truncated"):
        convert_cifar(str(tmp / "src"), str(tmp / "out"), progress=False)
    assert not os.path.exists(tmp / "out" / "train.rec")
