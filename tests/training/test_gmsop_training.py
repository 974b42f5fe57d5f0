"""A GM-SOP network trained for one epoch on a tiny generated downsampled-ImageNet release
converted by ``prepare_imagenet64``, by both runners (``train_cifar.py --dataset imagenet64``
and ``train_imagenet.py --dataset imagenet64``): the family's ``imagenet64`` preset is the
default, the balance loss is in the log."""
import logging
import os

import numpy as np
import pytest

from gluon_models.data import convert_imagenet64
from gluon_models.training.runner import (parse_cifar_args, parse_imagenet_args, train_cifar,
                                          train_imagenet)
from tests.data.test_imagenet64 import make_release


def test_one_epoch_on_a_tiny_imagenet64_set(tmp_path, caplog):
    make_release(str(tmp_path / "src"), per_file=4, n_val=4)
    rec = tmp_path / "rec"
    convert_imagenet64(str(tmp_path / "src"), str(rec), progress=False)
    assert not (rec / "test.rec").exists()  # the runner evaluates on the table's val split
    argv = ["--network", "gmgap16_8_resnet18_imagenet64", "--model-opt", "num_components=4",
            "--model-opt", "top_k=2", "--dataset", "imagenet64", "--data-dir", str(rec),
            "--num-epochs", "1", "--batch-size", "4", "--lr", "0.01", "--kv-store", "local",
            "--mean-rgb", "127.5,127.5,127.5"]
    args = parse_cifar_args(argv)
    assert args.aug == "imagenet64" and args.pad == 0 and args.mirror is True
    assert [float(v) for v in str(args.std_rgb).split(",")] == [1.0, 1.0, 1.0]
    with caplog.at_level(logging.INFO):
        net, _ = train_cifar(args)
    log = [r.getMessage() for r in caplog.records]
    balance = [m for m in log if "Train-extra_loss0=" in m]
    assert balance and np.isfinite(float(balance[0].split("=")[-1]))
    assert any("Validation-accuracy" in m for m in log)
    assert net.representation.gate.gate_weight.shape == (128, 4)
    assert os.path.exists(str(rec / "mean_rgb.json"))


def test_one_epoch_through_train_imagenet(tmp_path, caplog, capsys):
    """``train_imagenet.py --dataset imagenet64`` reads the converter's records with the
    family's preset (no crop, flips, mean only), not the ImageNet crop levels."""
    make_release(str(tmp_path / "src"), per_file=2, n_val=3)
    rec = tmp_path / "rec"
    convert_imagenet64(str(tmp_path / "src"), str(rec), progress=False)
    argv = ["--network", "gmgap16_8_resnet18_imagenet64", "--model-opt", "num_components=4",
            "--model-opt", "top_k=2", "--dataset", "imagenet64", "--data-dir", str(rec),
            "--num-epochs", "1", "--batch-size", "8", "--val-batch-size", "3", "--lr", "0.01",
            "--kv-store", "local", "--mean-rgb", "127.5,127.5,127.5"]
    args = parse_imagenet_args(argv)
    assert args.dataset == "imagenet64" and args.aug == "imagenet64"
    assert args.pad == 0 and args.mirror is True
    assert [float(v) for v in str(args.std_rgb).split(",")] == [1.0, 1.0, 1.0]
    assert not hasattr(args, "aug_level") and not hasattr(args, "train_rec")
    with caplog.at_level(logging.INFO):
        net, _ = train_imagenet(args)
    log = [r.getMessage() for r in caplog.records]
    assert any("data: imagenet64 from %s" % rec in m and "mirror True" in m for m in log)
    balance = [m for m in log if "Train-extra_loss0=" in m]
    assert balance and np.isfinite(float(balance[0].split("=")[-1]))
    assert any("Validation-accuracy" in m for m in log)
    assert net.representation.gate.gate_weight.shape == (128, 4)
    # the ImageNet-style options do not apply to a table dataset: a usage error
    with pytest.raises(SystemExit) as err:
        parse_imagenet_args(argv + ["--aug-level", "1"])
    assert err.value.code == 2 and "--aug-level" in capsys.readouterr().err
    # without --dataset, train_imagenet.py reads ImageNet-style records as before
    plain = parse_imagenet_args(["--network", "gmgap16_8_resnet18_imagenet64",
                                 "--data-dir", str(rec)])
    assert plain.dataset is None and plain.aug_level == 2 and plain.data_shape == 64
