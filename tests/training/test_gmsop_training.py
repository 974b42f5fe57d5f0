"""A GM-SOP network trained for one epoch by the 32x32-style runner (``train_cifar.py``) on
a tiny generated downsampled-ImageNet release converted by ``prepare_imagenet64``: the
family's ``imagenet64`` preset is the default, the balance loss is in the log."""
import logging
import os

import numpy as np

from gluon_models.data import convert_imagenet64
from gluon_models.training.runner import parse_cifar_args, train_cifar
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
