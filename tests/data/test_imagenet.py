"""ImageNet-style record iterators: augmentation levels (what ImageRecordIter receives and what
comes out), normalisation presets, validation resize + centre crop, exactness, sharding."""
import argparse
import os

import cv2
import mxnet as mx
import numpy as np
import pytest

from gluon_models.data import imagenet as I

from .formats import read_iter
from .imagenet_set import photos, write_rec

W, H, S = 300, 200, 64


def position_image(seed):
    """R = x mod 256, G = y, B = 100 * (x // 256) + seed: every pixel names its position."""
    y, x = np.mgrid[0:H, 0:W]
    return np.stack([x % 256, y, 100 * (x // 256) + seed], axis=-1).astype(np.uint8)


@pytest.fixture(scope="module")
def pos_set(tmp_path_factory):
    """24 position-coded images, lossless (PNG), label = index."""
    d = tmp_path_factory.mktemp("pos")
    imgs = np.stack([position_image(i) for i in range(24)])
    write_rec(str(d / "train"), imgs, np.arange(24), img_fmt=".png")
    write_rec(str(d / "val"), imgs[:13], np.arange(13), img_fmt=".png")
    return str(d), imgs


def _window(out, src):
    """(y0, x0, mirrored) when ``out`` (C, S, S) is exactly a window of ``src`` (H, W, C) or its
    mirror image, else None."""
    hwc = out.transpose(1, 2, 0)
    r, g, b = hwc[0, 0]
    x0, y0 = int(r) + 256 * (int(b) // 100), int(g)
    for mirrored in (False, True):
        xl = x0 - S + 1 if mirrored else x0  # a mirrored window starts at its right edge
        if xl < 0 or xl + S > W or y0 + S > H:
            continue
        win = src[y0:y0 + S, xl:xl + S]
        if np.array_equal(hwc, win[:, ::-1] if mirrored else win):
            return y0, xl, mirrored
    return None


def test_aug_level_table():
    """The arguments of each level (spec fbn.md 5.5), and overrides."""
    assert I.imagenet_aug_kwargs(1) == dict(rand_crop=True, rand_mirror=True)
    two = I.imagenet_aug_kwargs(2)
    assert two == dict(rand_crop=True, rand_mirror=True, min_random_scale=0.533,
                       max_random_scale=1.0, max_aspect_ratio=0.25, random_h=36, random_s=50,
                       random_l=50)
    three = I.imagenet_aug_kwargs(3, fill_value=127)
    assert three == dict(two, max_rotate_angle=10, max_shear_ratio=0.1, fill_value=127)
    assert I.imagenet_aug_kwargs(2, aug_opts=[("min_random_scale", 0.667)])[
        "min_random_scale"] == 0.667  # IBN's level 2
    with pytest.raises(ValueError, match="aug level must be one of"):
        I.imagenet_aug_kwargs(4)
    with pytest.raises(ValueError, match="unknown augmentation argument 'min_scale'"):
        I.imagenet_aug_kwargs(1, aug_opts={"min_scale": 0.5})
    assert I.parse_aug_opt("min-random-scale=0.667") == ("min_random_scale", 0.667)
    assert I.parse_aug_opt("random_resized_crop=1") == ("random_resized_crop", 1)
    with pytest.raises(argparse.ArgumentTypeError, match="augmentation argument"):
        I.parse_aug_opt("shuffle=1")


def test_norm_presets():
    assert I.resolve_norm("igc")["mean_rgb"] == (123.370, 112.757, 99.406)
    fbn = I.resolve_norm("fbn")
    assert fbn["std_rgb"] == (1.0, 1.0, 1.0) and fbn["fill_value"] == 255
    fb = I.resolve_norm("fb", std_rgb="1,2,3", fill_value=0)
    assert fb["mean_rgb"] == (123.675, 116.28, 103.53) and fb["std_rgb"] == (1, 2, 3)
    assert fb["fill_value"] == 0
    assert I.resolve_norm("imagenet")["mean_rgb"] == fb["mean_rgb"]  # IGC's --fb-mean
    with pytest.raises(ValueError, match="unknown normalisation 'imagenet1k'"):
        I.resolve_norm("imagenet1k")
    with pytest.raises(ValueError, match="registered twice"):
        I.register_norm("igc", I.NORMS["raw"])
    with pytest.raises(ValueError, match="std_rgb must be positive"):
        I.resolve_norm("raw", std_rgb="1,0,1")


@pytest.mark.parametrize("level", [1, 2, 3])
def test_iterator_arguments_and_shapes(pos_set, monkeypatch, level):
    data_dir, _ = pos_set
    real, calls = mx.io.ImageRecordIter, []

    def recording(**kw):
        calls.append(kw)
        return real(**kw)
    monkeypatch.setattr(mx.io, "ImageRecordIter", recording)
    train, val = I.get_imagenet_iters(data_dir, "train", "val", batch_size=8, data_shape=S,
                                      aug_level=level, norm="fb", preprocess_threads=2,
                                      num_parts=2, part_index=1, seed=5)
    kw = calls[0]
    for key, value in I.AUG_LEVELS[level].items():
        assert kw[key] == value, key
    assert kw["fill_value"] == I.NORMS["fb"].fill_value
    assert (kw["mean_r"], kw["std_b"]) == (123.675, 57.375)
    assert kw["data_shape"] == (3, S, S) and kw["shuffle"] and kw["seed"] == 5
    assert "seed_aug" not in kw  # by default the augmentation is drawn afresh per image
    assert (kw["num_parts"], kw["part_index"]) == (2, 1)
    if level == 1:
        assert "min_random_scale" not in kw and "max_rotate_angle" not in kw
    batch = next(iter(train))
    assert batch.data[0].shape == (8, 3, S, S) and batch.label[0].shape == (8,)
    x, y = read_iter(val)
    vkw = calls[-1]
    assert vkw["resize"] == I.default_val_resize(S) == 73
    assert not vkw["rand_crop"] and not vkw["rand_mirror"] and not vkw["shuffle"]
    assert (vkw["num_parts"], vkw["part_index"]) == (1, 0)  # every worker sees all of val
    assert x.shape == (13, 3, S, S) and list(y) == list(range(13))


def _train_windows(data_dir, imgs, level, reproducible=None, seed=3):
    """One pass of the training iterator (batches of 8); ``reproducible`` None: the default."""
    kw = {} if reproducible is None else {"reproducible_aug": reproducible}
    train, _ = I.get_imagenet_iters(data_dir, "train", False, batch_size=8, data_shape=S,
                                    aug_level=level, norm="raw", seed=seed, **kw)
    x, y = read_iter(train)
    assert sorted(y) == list(range(24))
    return x, y, [_window(x[i], imgs[int(y[i])]) for i in range(len(y))]


def test_level1_is_crop_and_mirror_only_and_level2_is_more(pos_set):
    data_dir, imgs = pos_set
    _, _, found = _train_windows(data_dir, imgs, 1, reproducible=False)
    assert all(f is not None for f in found), "level 1 produced something that is not a window"
    assert len({(f[0], f[1]) for f in found}) > 16  # random offsets
    assert {f[2] for f in found} == {False, True}  # and random mirrors
    _, _, found = _train_windows(data_dir, imgs, 2, reproducible=False)
    assert sum(f is not None for f in found) < 3  # scale, aspect, colour change (nearly) all


def test_default_augmentation_is_drawn_per_image(pos_set):
    """Training from scratch needs a fresh crop and mirror for every image: more than
    ``batch_size`` distinct ones per pass, and different ones in one batch slot."""
    data_dir, imgs = pos_set
    _, y, found = _train_windows(data_dir, imgs, 1)
    assert all(f is not None for f in found)
    assert len(set(found)) > 8  # the reproducible mode gives exactly 8 (test below)
    per_slot = [set(found[slot::8]) for slot in range(8)]
    assert any(len(s) > 1 for s in per_slot)
    _, y2, _ = _train_windows(data_dir, imgs, 1)
    np.testing.assert_array_equal(y, y2)  # the order still follows the seed


def test_reproducible_augmentation(pos_set):
    """seed_aug makes the augmentation a function of the seed, but MXNet 1.9.1 re-seeds it by
    the record's position in its batch: each batch draws the same parameters."""
    data_dir, imgs = pos_set
    x1, y1, found = _train_windows(data_dir, imgs, 1, reproducible=True)
    x2, y2, _ = _train_windows(data_dir, imgs, 1, reproducible=True)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    per_slot = [{(f[0], f[1], f[2]) for f in found[slot::8]} for slot in range(8)]
    assert all(len(s) == 1 for s in per_slot)  # why it is not the default
    x3, _, _ = _train_windows(data_dir, imgs, 1, reproducible=True, seed=4)
    assert not np.array_equal(x1, x3)


def test_validation_resize_and_centre_crop(pos_set, tmp_path):
    data_dir, imgs = pos_set
    # as stored (resize 0): exactly the centre window
    _, val = I.get_imagenet_iters(data_dir, False, "val", batch_size=4, data_shape=S,
                                  norm="raw", val_resize=0)
    for _ in range(2):  # exact on every pass: 13 rows, file order
        val.reset()
        x, y = read_iter(val)
        assert list(y) == list(range(13))
    y0, x0 = (H - S) // 2, (W - S) // 2
    np.testing.assert_array_equal(x[5].transpose(1, 2, 0), imgs[5][y0:y0 + S, x0:x0 + S])
    # resized (shorter side 73, bilinear as cv2), normalised, centre 64 crop
    rng = np.random.RandomState(1)
    ph = photos(rng, 3)
    write_rec(str(tmp_path / "v"), ph, [0, 1, 2], img_fmt=".png")
    norm = I.resolve_norm("imagenet")  # the default
    _, val = I.get_imagenet_iters(str(tmp_path), False, "v", batch_size=2, data_shape=S)
    x, _ = read_iter(val)
    for i in range(3):
        r = cv2.resize(ph[i], (73 * W // H, 73), interpolation=cv2.INTER_LINEAR)
        cy, cx = (r.shape[0] - S) // 2, (r.shape[1] - S) // 2
        ref = (r[cy:cy + S, cx:cx + S].astype(np.float32) - norm["mean_rgb"]) / norm["std_rgb"]
        np.testing.assert_allclose(x[i].transpose(1, 2, 0), ref, atol=1e-4)


def test_shards_partition_the_training_set(pos_set):
    data_dir, _ = pos_set
    labels = []
    for part in range(2):
        train, _ = I.get_imagenet_iters(data_dir, "train", False, batch_size=5, data_shape=S,
                                        aug_level=1, num_parts=2, part_index=part)
        labels.append(set(read_iter(train)[1].astype(int)))
    assert labels[0] and labels[1] and not labels[0] & labels[1]
    assert labels[0] | labels[1] == set(range(24))


def test_missing_records_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="train.rec not found.*--train-rec"):
        I.get_imagenet_iters(str(tmp_path), data_shape=S)  # prepare_folder.py's names
    write_rec(str(tmp_path / "t"), photos(np.random.RandomState(0), 1), [0])
    os.remove(str(tmp_path / "t.idx"))
    with pytest.raises(FileNotFoundError, match="t.idx not found"):
        I.get_imagenet_iters(str(tmp_path), "t", False, data_shape=S)


def test_argument_presets():
    def parse(argv, shape=224):
        parser = argparse.ArgumentParser()
        I.add_imagenet_data_args(parser)
        I.add_imagenet_aug_args(parser)
        I.apply_imagenet_presets(parser, argv, data_shape=shape)
        return parser.parse_args(argv)
    a = parse(["--aug-level", "1"])
    assert (a.train_rec, a.val_rec, a.data_shape, a.val_resize) == \
        ("train.rec", "val.rec", 224, 256)
    assert a.reproducible_aug is False and parse(["--reproducible-aug"]).reproducible_aug
    assert a.norm == "imagenet" and a.mean_rgb == "123.675,116.28,103.53"
    assert a.fill_value == 115 and a.batch_size == 256
    a = parse(["--norm", "igc"])
    assert a.mean_rgb == "123.37,112.757,99.406" and a.fill_value == 112
    a = parse(["--fb-mean", "--aug-opt", "min_random_scale=0.667"], shape=32)
    assert a.norm == "imagenet" and a.std_rgb == "58.395,57.12,57.375" and a.data_shape == 32
    assert a.aug_opts == [("min_random_scale", 0.667)]
    a = parse(["--norm", "fbn", "--std-rgb", "2,2,2", "--data-shape", "160"])
    assert a.std_rgb == "2,2,2" and a.fill_value == 255 and a.val_resize == 183
