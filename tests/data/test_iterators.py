"""Record iterators: shapes, labels, normalisation, augmentation presets, sharding, exact eval."""
import argparse
import os

import mxnet as mx
import numpy as np
import pytest

from gluon_models.data import (DATASETS, PadCropIter, add_aug_args, add_data_args,
                               apply_presets, get_rec_iters, iters_from_args, update_metric,
                               write_records)
from gluon_models.model_zoo.fbn import FBN_MEAN_RGB

from .formats import random_images, read_iter

CIFAR = DATASETS["cifar10"]


def _write_set(data_dir, train_rgb, test_rgb):
    """Records whose label is the record index, so every output row can be traced back."""
    for split, imgs in (("train", train_rgb), ("test", test_rgb)):
        write_records(os.path.join(str(data_dir), split),
                      [(i, i, imgs[i][:, :, ::-1]) for i in range(len(imgs))], progress=False)


@pytest.fixture
def rand_set(tmp_path):
    rng = np.random.RandomState(30)
    train, test = random_images(rng, 50), random_images(rng, 23)
    _write_set(tmp_path, train, test)
    return tmp_path, train, test


def _normalised(rgb, mean, std):
    """(N, 32, 32, 3) uint8 RGB -> (N, 3, 32, 32) as the iterator normalises it."""
    x = rgb.transpose(0, 3, 1, 2).astype(np.float32)
    mean = np.asarray(mean, np.float32)[:, None, None]
    return (x - mean) / np.asarray(std, np.float32)[:, None, None]


def _shifted(img, dy, dx, fill):
    """img (C, H, W) moved by (dy, dx) inside a frame of ``fill`` (per channel)."""
    c, h, w = img.shape
    out = np.empty_like(img)
    out[:] = np.asarray(fill, img.dtype).reshape(-1, 1, 1)
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[:, yd, xd] = img[:, ys, xs]
    return out


def _explain(out, src, pad, fill):
    """The (dy, dx, mirrored) that turns src into out, or None."""
    for mirrored in (False, True):
        s = src[:, :, ::-1] if mirrored else src
        for dy in range(-pad, pad + 1):
            for dx in range(-pad, pad + 1):
                if np.allclose(out, _shifted(s, dy, dx, fill), atol=1e-4):
                    return dy, dx, mirrored
    return None


def test_shapes_labels_and_eval_order(rand_set):
    data_dir, train, test = rand_set
    tr, va = get_rec_iters("cifar10", str(data_dir), batch_size=8, aug="none",
                           preprocess_threads=2)
    assert tr.provide_data[0].shape == (8, 3, 32, 32) and va.provide_label[0].shape == (8,)
    batch = next(iter(tr))
    assert batch.data[0].shape == (8, 3, 32, 32) and batch.data[0].dtype == np.float32
    x, y = read_iter(va)
    np.testing.assert_array_equal(y, np.arange(23))  # file order, each record once
    np.testing.assert_allclose(x, _normalised(test, CIFAR.mean_rgb, CIFAR.std_rgb), atol=1e-4)
    tr, _ = get_rec_iters("cifar10", str(data_dir), batch_size=8, aug="none")
    _, y = read_iter(tr)  # the first pass of a training iterator is exact too
    assert sorted(y) == list(range(50)) and not np.array_equal(y, np.arange(50))  # shuffled


def test_exact_eval_on_every_pass(rand_set):
    data_dir, _, _ = rand_set
    _, va = get_rec_iters("cifar10", str(data_dir), batch_size=8, aug="none")
    for _ in range(3):  # a plain ImageRecordIter gets `pad` wrong after reset()
        va.reset()
        pads, labels = [], []
        for batch in va:
            pads.append(batch.pad)
            labels.append(batch.label[0].asnumpy()[:8 - batch.pad])
        assert pads == [0, 0, 1]
        np.testing.assert_array_equal(np.concatenate(labels), np.arange(23))


def test_update_metric_skips_pad_rows():
    metric = mx.metric.Accuracy()
    labels = [mx.nd.array([0, 1, 2, 0])]
    preds = [mx.nd.one_hot(mx.nd.array([0, 1, 1, 2]), 3)]  # rows 3 and 4: one right, one pad
    update_metric(metric, labels, preds, pad=1)
    assert metric.num_inst == 3 and metric.get()[1] == pytest.approx(2 / 3)


def test_constant_image_normalisation(tmp_path):
    const = np.zeros((6, 32, 32, 3), np.uint8)
    const[...] = (200, 100, 50)
    _write_set(tmp_path, const, const[:5])
    for aug, mean, std in (("igc", CIFAR.mean_rgb, CIFAR.std_rgb),
                           ("fbn", FBN_MEAN_RGB, (1, 1, 1))):
        _, va = get_rec_iters("cifar10", str(tmp_path), batch_size=4, aug=aug)
        x, _ = read_iter(va)
        expect = (np.array([200, 100, 50]) - np.array(mean)) / np.array(std)
        np.testing.assert_allclose(x[:, :, 5, 7], np.tile(expect, (5, 1)), rtol=1e-5)


def test_igc_pad_crop_mirror(rand_set):
    data_dir, train, _ = rand_set
    norm = _normalised(train, CIFAR.mean_rgb, CIFAR.std_rgb)
    tr, _ = get_rec_iters("cifar10", str(data_dir), batch_size=10, aug="igc", seed=3)
    assert isinstance(tr, PadCropIter)
    x, y = read_iter(tr)
    found = [_explain(x[i], norm[int(y[i])], 4, (0, 0, 0)) for i in range(len(y))]
    assert None not in found  # only shifts (zero-filled after normalisation) and flips
    assert {f[2] for f in found} == {False, True}
    assert any(f[:2] != (0, 0) for f in found)
    # independent draws per image: the batches do not repeat one pattern slot by slot (as
    # ImageRecordIter's own augmentation does with seed_aug in MXNet 1.9.1)
    batches = [tuple(found[b:b + 10]) for b in range(0, len(found) - 9, 10)]
    assert len(set(batches)) == len(batches)


def test_fbn_white_padding(rand_set):
    data_dir, train, _ = rand_set
    norm = _normalised(train, FBN_MEAN_RGB, (1, 1, 1))
    fill = 255 - np.array(FBN_MEAN_RGB)
    tr, _ = get_rec_iters("cifar10", str(data_dir), batch_size=10, aug="fbn", seed=4)
    x, y = read_iter(tr)
    found = [_explain(x[i], norm[int(y[i])], 4, fill) for i in range(len(y))]
    assert None not in found
    assert {f[2] for f in found} == {False, True}
    assert any(f[:2] != (0, 0) for f in found)


def test_mirror_only_and_no_aug(rand_set):
    data_dir, train, _ = rand_set
    norm = _normalised(train, CIFAR.mean_rgb, CIFAR.std_rgb)
    for aug, pad, flips in (("igc", 0, {False, True}), ("none", None, {False})):
        tr, _ = get_rec_iters("cifar10", str(data_dir), batch_size=10, aug=aug, pad=pad)
        x, y = read_iter(tr)
        found = [_explain(x[i], norm[int(y[i])], 0, (0, 0, 0)) for i in range(len(y))]
        assert None not in found and {f[2] for f in found} == flips


def test_two_parts_partition_the_set(rand_set):
    data_dir, _, _ = rand_set
    seen = {"train": [], "test": []}
    for part in range(2):
        tr, va = get_rec_iters("cifar10", str(data_dir), batch_size=8, aug="none",
                               num_parts=2, part_index=part)
        seen["train"].append(set(read_iter(tr)[1].astype(int)))
        seen["test"].append(set(read_iter(va)[1].astype(int)))
    for split, n in (("train", 50), ("test", 23)):
        a, b = seen[split]
        assert a and b and not a & b and a | b == set(range(n))
    with pytest.raises(ValueError, match="part_index"):
        get_rec_iters("cifar10", str(data_dir), num_parts=2, part_index=2)


def test_missing_records_name_the_tool(tmp_path):
    with pytest.raises(FileNotFoundError, match="train.rec.*prepare_cifar.py"):
        get_rec_iters("cifar10", str(tmp_path))


def _parser():
    parser = argparse.ArgumentParser()
    add_data_args(parser)
    add_aug_args(parser)
    return parser


def test_argument_groups_and_presets():
    parser = _parser()
    apply_presets(parser, ["--dataset", "svhn"])
    args = parser.parse_args(["--dataset", "svhn"])
    assert (args.aug, args.pad, args.mirror) == ("none", 0, False)
    assert args.mean_rgb == "111.609,113.161,120.565"
    parser = _parser()
    argv = ["--dataset", "cifar100", "--aug", "fbn", "--pad", "2", "--no-mirror"]
    apply_presets(parser, argv)
    args = parser.parse_args(argv)
    assert (args.aug, args.pad, args.pad_fill, args.mirror) == ("fbn", 2, 255, False)
    assert args.std_rgb == "1,1,1" and args.mean_rgb == "123.68,116.779,103.939"
    with pytest.raises(SystemExit):
        _parser().parse_args(["--pad-fill", "grey"])


def test_digits_prepared_on_demand(tmp_path, monkeypatch):
    monkeypatch.setenv("GLUON_MODELS_DATA", str(tmp_path))
    parser = _parser()
    apply_presets(parser, [])
    args = parser.parse_args(["--batch-size", "100"])
    assert args.dataset == "digits" and args.aug == "padcrop"
    tr, va = iters_from_args(args, seed=1)
    assert sorted(os.listdir(tmp_path / "digits")) == [
        "test.idx", "test.lst", "test.rec", "train.idx", "train.lst", "train.rec"]
    x, y = read_iter(va)
    assert x.shape == (360, 3, 32, 32) and set(y.astype(int)) == set(range(10))
    batch = next(iter(tr))
    assert batch.data[0].shape == (100, 3, 32, 32)
