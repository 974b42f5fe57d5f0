"""The shared .lst/.rec/.idx writer: im2rec format, order, atomicity, errors."""
import os

import cv2
import mxnet as mx
import numpy as np
import pytest

from gluon_models.data import recordio
from gluon_models.data.recordio import read_lst, record_files, write_records

from .formats import random_images, read_records


def _items(images, labels):
    return [(i, labels[i], images[i]) for i in range(len(images))]


def test_lst_rec_idx_format_and_pixels(tmp_path):
    rng = np.random.RandomState(1)
    imgs = random_images(rng, 7)  # used as BGR
    prefix = str(tmp_path / "out" / "train")
    res = write_records(prefix, _items(imgs, [3, 0, 9, 1, 2, 2, 5]), progress=False)
    assert res.count == 7 and res.skipped == []
    assert sorted(os.listdir(tmp_path / "out")) == ["train.idx", "train.lst", "train.rec"]
    lines = open(prefix + ".lst").read().splitlines()
    assert lines[0] == "0\t3.000000\t0.png"  # im2rec: index \t %f label \t path
    assert [ln.split("\t")[0] for ln in lines] == [str(i) for i in range(7)]
    assert read_lst(prefix + ".lst")[2] == (2, (9.0,), "2.png")
    idx = [ln.split("\t") for ln in open(prefix + ".idx").read().splitlines()]
    assert [int(k) for k, _ in idx] == list(range(7)) and int(idx[0][1]) == 0
    for i, (header, img) in enumerate(read_records(prefix)):
        assert header.flag == 0 and header.id == i and header.id2 == 0
        assert header.label == [3, 0, 9, 1, 2, 2, 5][i]
        np.testing.assert_array_equal(img, imgs[i])  # PNG is lossless


def test_multi_label_flag_and_jpeg(tmp_path):
    rng = np.random.RandomState(2)
    imgs = random_images(rng, 3)
    prefix = str(tmp_path / "m")
    write_records(prefix, [(i, (i, 10 + i), imgs[i], "a/%d.jpg" % i) for i in range(3)],
                  encoding=".jpg", quality=90, progress=False)
    assert open(prefix + ".lst").readline() == "0\t0.000000\t10.000000\ta/0.jpg\n"
    rec = mx.recordio.MXIndexedRecordIO(prefix + ".idx", prefix + ".rec", "r")
    header, payload = mx.recordio.unpack(rec.read_idx(2))
    rec.close()
    assert header.flag == 2 and list(header.label) == [2.0, 12.0]
    assert payload[:2] == b"\xff\xd8"  # a JPEG stream
    decoded = cv2.imdecode(np.frombuffer(payload, np.uint8), 1)
    assert decoded.shape == (32, 32, 3)


def test_encoded_bytes_pass_through(tmp_path):
    ok, png = cv2.imencode(".png", np.full((5, 6, 3), 77, np.uint8))
    prefix = str(tmp_path / "p")
    write_records(prefix, [(4, 1, png.tobytes())], progress=False)
    rec = mx.recordio.MXIndexedRecordIO(prefix + ".idx", prefix + ".rec", "r")
    header, payload = mx.recordio.unpack(rec.read_idx(4))
    rec.close()
    assert payload == png.tobytes() and header.id == 4


def test_same_output_with_two_workers(tmp_path):
    rng = np.random.RandomState(3)
    imgs = random_images(rng, 300)
    labels = rng.randint(0, 10, 300)
    files = []
    for workers in (1, 2):
        prefix = str(tmp_path / ("w%d" % workers))
        write_records(prefix, _items(imgs, labels), num_workers=workers, chunksize=16,
                      progress=False)
        files.append([open(p, "rb").read() for p in record_files(prefix)])
    assert files[0] == files[1]  # byte-identical .rec, .idx and .lst, records in index order


@pytest.mark.parametrize("workers", [1, 2])
def test_interrupted_write_leaves_no_output(tmp_path, monkeypatch, workers):
    rng = np.random.RandomState(4)
    imgs = random_images(rng, 100)
    real = recordio._encode_item
    calls = []

    def failing(index, *args):
        if index >= 37:
            raise RuntimeError("simulated crash")
        calls.append(index)
        return real(index, *args)

    monkeypatch.setattr(recordio, "_encode_item", failing)
    prefix = str(tmp_path / "train")
    with pytest.raises(RuntimeError, match="simulated crash"):
        write_records(prefix, _items(imgs, [0] * 100), num_workers=workers, chunksize=8,
                      progress=False)
    assert os.listdir(tmp_path) == []  # neither final names nor temporaries
    monkeypatch.setattr(recordio, "_encode_item", real)
    # A crash of the source iterator itself is handled the same way.

    def source():
        for i in range(50):
            if i == 20:
                raise OSError("source broke")
            yield i, 0, imgs[i]
    with pytest.raises(OSError, match="source broke"):
        write_records(prefix, source(), num_workers=workers, progress=False)
    assert os.listdir(tmp_path) == []


def test_leftover_partial_files_are_ignored(tmp_path, caplog):
    # What a killed run leaves behind: temporaries, never the final names.
    stale = tmp_path / ".train.rec.999-deadbeef.partial"
    stale.write_bytes(b"garbage")
    imgs = random_images(np.random.RandomState(5), 2)
    write_records(str(tmp_path / "train"), _items(imgs, [1, 2]), progress=False)
    assert [h.label for h, _ in read_records(str(tmp_path / "train"))] == [1, 2]
    assert "leftover" in caplog.text


def test_overwrites_existing_output(tmp_path):
    imgs = random_images(np.random.RandomState(6), 4)
    prefix = str(tmp_path / "t")
    write_records(prefix, _items(imgs, [1, 1, 1, 1]), progress=False)
    write_records(prefix, _items(imgs[:2], [5, 6]), progress=False)
    assert [h.label for h, _ in read_records(prefix)] == [5, 6]
    assert len(read_lst(prefix + ".lst")) == 2


def test_transform_none_skips_and_reports(tmp_path):
    imgs = random_images(np.random.RandomState(7), 4)
    res = write_records(str(tmp_path / "s"), _items(imgs, [0, 1, 2, 3]), progress=False,
                        transform=lambda im: None if im[0, 0, 0] == imgs[2][0, 0, 0] else im)
    assert res.count == 3 and [s[0] for s in res.skipped] == [2]
    assert [r[0] for r in read_lst(str(tmp_path / "s.lst"))] == [0, 1, 3]


def test_errors(tmp_path):
    img = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="appears twice"):
        write_records(str(tmp_path / "d"), [(1, 0, img), (1, 0, img)], progress=False)
    with pytest.raises(RuntimeError, match="record 3 .*uint8"):
        write_records(str(tmp_path / "d"), [(3, 0, img.astype(np.float32))], progress=False)
    with pytest.raises(ValueError, match="encoding"):
        write_records(str(tmp_path / "d"), [], encoding=".bmp")
    with pytest.raises(ValueError, match="quality"):
        write_records(str(tmp_path / "d"), [], encoding=".png", quality=95)
    assert os.listdir(tmp_path) == []
