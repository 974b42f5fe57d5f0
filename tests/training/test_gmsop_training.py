"""A GM-SOP network trained for one epoch on a tiny generated downsampled-ImageNet release
converted by ``prepare_imagenet64``, by both runners (``train_cifar.py --dataset imagenet64``
and ``train_imagenet.py --dataset imagenet64``): the family's ``imagenet64`` preset is the
default, the balance loss is in the log."""
import logging
import os

import mxnet as mx
import numpy as np
import pytest

from gluon_models.data import convert_imagenet64
from gluon_models.model_zoo.registry import families, train_defaults
from gluon_models.training.evaluation import parse_evaluate_args
from gluon_models.training.runner import (fit_config, parse_cifar_args, parse_imagenet_args,
                                          train_cifar, train_imagenet)
from gluon_models.training.schedules import make_lr_scheduler
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
    release = make_release(str(tmp_path / "src"), per_file=2, n_val=3)
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
    # the validation log carries the balance loss of the inference pass (no gate noise) over
    # the one validation batch: CV^2 of the importance, N - 1 variance, as the training log
    # (unweighted; its weight 100 on the summed cross-entropy, 100 / B on the mean, is the
    # gradient's: each sample's entry is CV^2 and the trainer averages them)
    line, = [m for m in log if m.startswith("Epoch[0] Validation-extra_loss0=")]
    images = release["val"][0].astype(np.float32) - 127.5  # the preset: mean 127.5, std 1
    x = mx.nd.array(images.transpose(0, 3, 1, 2))
    gates = net.representation.gate(net.features(x))[0].asnumpy().astype(np.float64)
    assert gates.shape == (3, 4) and ((gates > 0).sum(axis=1) == 2).all()
    np.testing.assert_allclose(gates.sum(axis=1), 1.0, rtol=1e-6)
    imp = gates.sum(axis=0)
    cv2 = ((imp - imp.mean()) ** 2).sum() / (4 - 1) / imp.mean() ** 2
    assert float(line.split("=")[1]) == pytest.approx(cv2, rel=1e-4, abs=1e-6)
    # the ImageNet-style options do not apply to a table dataset: a usage error
    with pytest.raises(SystemExit) as err:
        parse_imagenet_args(argv + ["--aug-level", "1"])
    assert err.value.code == 2 and "--aug-level" in capsys.readouterr().err
    # without --dataset, train_imagenet.py reads ImageNet-style records as before
    plain = parse_imagenet_args(["--network", "gmgap16_8_resnet18_imagenet64",
                                 "--data-dir", str(rec)])
    assert plain.dataset is None and plain.aug_level == 2 and plain.data_shape == 64


# The seed's schedules (the authors' init files, spec section 7), written out: network ->
# (batch, [(lr, last epoch of that lr), ...]); wrn36_2_imagenet64 has no row there and follows
# the authors' WRN-36-2-GAP baseline file (cnn_init_WRN_baseline.m).
SCHEDULE_TABLE = {
    "resnet18_imagenet64": (256, [(0.075, 50), (0.0075, 65), (0.00075, 75)]),
    "sr_sop_resnet18_imagenet64": (256, [(0.15, 40), (0.015, 50), (0.0015, 55),
                                         (0.00015, 60)]),
    "gmgap16_8_resnet18_imagenet64": (256, [(0.075, 50), (0.0075, 65), (0.00075, 75)]),
    "gmsop16_8_resnet18_imagenet64": (256, [(0.1, 40), (0.01, 50), (0.001, 55),
                                            (0.0001, 60)]),
    "wrn36_2_imagenet64": (150, [(0.1, 20), (0.01, 30), (0.001, 40)]),
    "gmgap16_8_wrn36_2_imagenet64": (150, [(0.1, 20), (0.01, 30), (0.001, 40)]),
    "gmsop16_8_wrn36_2_imagenet64": (150, [(0.09, 20), (0.009, 30), (0.0009, 35),
                                           (0.00009, 40)]),
}


def _epoch_lrs(args, epoch_size=7):
    """The lr of the first and the last update of every epoch (1-based) of parsed ``args``,
    from the scheduler the trainer builds."""
    cfg = fit_config(args)
    sched = make_lr_scheduler(cfg.lr, epoch_size, cfg.num_epochs, cfg.lr_schedule,
                              cfg.lr_step_epochs, cfg.lr_factor)
    lrs = {}
    for epoch in range(1, cfg.num_epochs + 1):
        first, last = (epoch - 1) * epoch_size + 1, epoch * epoch_size
        lrs[epoch] = (sched(first), sched(last))
    return lrs


@pytest.mark.parametrize("name", sorted(SCHEDULE_TABLE))
def test_authors_schedule_is_the_default(name, tmp_path):
    batch, rows = SCHEDULE_TABLE[name]
    args = parse_imagenet_args(["--network", name, "--dataset", "imagenet64",
                                "--data-dir", str(tmp_path)])
    assert (args.batch_size, args.num_epochs) == (batch, rows[-1][1])
    assert (args.optimizer, args.mom, args.wd, args.wd_rule) == ("sgd", 0.9, 1e-4, "all")
    lrs = _epoch_lrs(args)
    expected, start = {}, 1
    for lr, last in rows:
        expected.update({e: lr for e in range(start, last + 1)})
        start = last + 1
    assert sorted(lrs) == sorted(expected)
    for epoch, lr in expected.items():  # every epoch, boundaries included
        assert lrs[epoch] == (pytest.approx(lr, rel=1e-9),) * 2, (epoch, lrs[epoch], lr)


def test_schedule_defaults_in_every_parse_and_explicit_flags_win(tmp_path):
    name = "gmsop16_8_wrn36_2_imagenet64"
    base = ["--network", name, "--data-dir", str(tmp_path)]
    for args in (parse_cifar_args(base + ["--dataset", "imagenet64"]),  # train_cifar.py
                 parse_imagenet_args(base)):  # train_imagenet.py on ImageNet-style records
        assert (args.batch_size, args.num_epochs, args.lr, args.lr_step_epochs) == \
            (150, 40, 0.09, [20.0, 30.0, 35.0])
        assert args.optimizer == "sgd"  # not train_imagenet.py's own default, NAG
    given = ["--batch-size", "32", "--num-epochs", "3", "--lr", "0.05", "--lr-step-epochs",
             "1,2", "--lr-factor", "0.5", "--optimizer", "nag", "--mom", "0.5", "--wd", "0"]
    for parse in (parse_cifar_args, parse_imagenet_args):
        args = parse(base + ["--dataset", "imagenet64"] + given)
        assert (args.batch_size, args.num_epochs, args.lr, args.lr_step_epochs,
                args.lr_factor, args.optimizer, args.mom, args.wd) == \
            (32, 3, 0.05, [1.0, 2.0], 0.5, "nag", 0.5, 0.0)
    assert _epoch_lrs(args) == {1: (0.05, 0.05), 2: (0.025, 0.025), 3: (0.0125, 0.0125)}
    # a flag alone replaces only its own default
    args = parse_imagenet_args(base + ["--lr", "0.2"])
    assert (args.lr, args.batch_size, args.lr_step_epochs) == (0.2, 150, [20.0, 30.0, 35.0])
    # a network whose family declares none keeps the tool's defaults
    other = parse_imagenet_args(["--network", "resnet_cifar", "--data-dir", str(tmp_path)])
    assert (other.optimizer, other.batch_size, other.num_epochs, other.lr_step_epochs) == \
        ("nag", 256, 120, [30.0, 60.0, 90.0])
    assert train_defaults("resnet_cifar") == {}
    # a command line that does not train (evaluate.py) keeps its own options
    evaluated = parse_evaluate_args(["--model", name, "--data-dir", str(tmp_path)])
    assert evaluated.batch_size == 50 and not hasattr(evaluated, "lr")


def test_train_defaults_naming_an_unknown_option_is_a_usage_error(monkeypatch, capsys, tmp_path):
    fam = next(f for f in families() if f.name == "gmsop")
    monkeypatch.setitem(fam.train_defaults, "resnet18_imagenet64", dict(no_such_option=1))
    with pytest.raises(SystemExit) as err:
        parse_imagenet_args(["--network", "resnet18_imagenet64", "--data-dir", str(tmp_path)])
    assert err.value.code == 2 and "no_such_option" in capsys.readouterr().err
