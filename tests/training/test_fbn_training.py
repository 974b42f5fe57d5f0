"""FBN training options (spec fbn.md 5): slow start as a warm-up in absolute updates (right
after a resume), the --fmconv lr multiplier on the FB terms only, the FBN data presets, and
train_cifar.py end to end with a small FBN network on the digits."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import mxnet as mx

import gluon_models
from gluon_models.model_zoo import fbn
from gluon_models.training import FitConfig, fit, make_optimizer
from gluon_models.model_zoo.fbn import FBNRule
from gluon_models.training.runner import fit_config, parse_cifar_args, parse_imagenet_args
from gluon_models.utils.checkpoint import read_params

from . import synthetic as S

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMALL_FBN = ["--network", "resnet-small-fmconv", "--res-module-num", "1", "--fmconv-factor", "4"]


def _cfg(*argv):
    args = parse_cifar_args(SMALL_FBN + list(argv))
    net = fbn.preact_resnet_cifar(depth=11, fbn=True, num_factor=4)
    net.initialize()
    return fit_config(args), net


def _lrs(opt, updates):
    """The lr the optimizer uses for parameter 0 at each of ``updates`` consecutive updates,
    counted from its ``begin_num_update``, as Module's updater asks for it."""
    out = []
    for _ in range(updates):
        opt._update_count(0)
        out.append(opt._get_lr(0))
    return out


def test_slow_start_schedule_of_the_spec_example():
    """Spec 5.4: lr 0.1, slow start 3 epochs, steps 100,150, E = 390 updates per epoch: 0.01 at
    u = 0, 0.055 at 585, 0.1 from 1170, 0.01 from 39001, 0.001 from 58501."""
    cfg, net = _cfg("--lr", "0.1", "--fmconv-slowstart", "3", "--lr-step", "100,150",
                    "--num-epochs", "200")
    assert [(r.slowstart, r.scale, r.fmconv) for r in cfg.rules] == [(3.0, 0.1, False)]
    opt = make_optimizer(cfg, net, 1 / 128, 390)
    s = opt.lr_scheduler
    assert [s(u) for u in (0, 585, 1170, 39000, 39001, 58500, 58501)] == pytest.approx(
        [0.01, 0.055, 0.1, 0.1, 0.01, 0.01, 0.001])
    assert s(1) == pytest.approx(0.01 + 0.09 / 1170)
    opt = make_optimizer(cfg, net, 1 / 128, 390)
    assert _lrs(opt, 3) == pytest.approx([0.01 + 0.09 * u / 1170 for u in (1, 2, 3)])
    # --fmconv-scale sets the start of the ramp
    cfg, net = _cfg("--lr", "0.2", "--fmconv-slowstart", "1", "--fmconv-scale", "0.5",
                    "--lr-step", "10")
    s = make_optimizer(cfg, net, 1, 100).lr_scheduler
    assert [s(0), s(50), s(100), s(1001)] == pytest.approx([0.1, 0.15, 0.2, 0.02])


@pytest.mark.parametrize("epoch", [2, 3, 120])
def test_slow_start_after_resume(epoch):
    """A run resumed at ``epoch`` (update count epoch * E) continues with the lrs of the
    uninterrupted run: inside the ramp, right after it, and after the first lr step (where the
    authors' scheduler ramps again up to the next step, spec 5.4)."""
    argv = ("--lr", "0.1", "--fmconv-slowstart", "3", "--lr-step", "100,150")
    cfg, net = _cfg(*argv)
    whole = _lrs(make_optimizer(cfg, net, 1 / 128, 390), epoch * 390 + 50)
    resumed = _lrs(make_optimizer(cfg, net, 1 / 128, 390, begin_num_update=epoch * 390), 50)
    assert resumed == pytest.approx(whole[epoch * 390:])
    expected = 0.01 + 0.09 * (epoch * 390 + 1) / 1170 if epoch < 3 else \
        (0.1 if epoch < 100 else 0.01)
    assert resumed[0] == pytest.approx(expected)


def test_slow_start_conflicts_with_another_warmup():
    cfg, net = _cfg("--fmconv-slowstart", "2", "--warmup-epochs", "1")
    with pytest.raises(ValueError, match="more than one warm-up.*--warmup-epochs, FBNRule"):
        make_optimizer(cfg, net, 1, 10)
    with pytest.raises(SystemExit):  # a usage error of the command line
        _cfg("--fmconv-scale", "-1")
    with pytest.raises(ValueError, match="fmconv_scale"):
        FBNRule(scale=-1)
    # no FBN flag given: no rule, the optimizer is the plain one
    assert _cfg()[0].rules == []


def _lr_by_name(opt, net):
    names = [p.name for p in net.collect_params().values() if p.grad_req != "null"]
    opt.idx2name = dict(enumerate(names))
    return {n[len(net.prefix):]: opt._get_lr(i) for i, n in enumerate(names)}


def test_fmconv_lr_multiplier_reaches_the_fb_terms_only():
    cfg, net = _cfg("--lr", "0.1", "--fmconv", "--lr-step", "5")
    lrs = _lr_by_name(make_optimizer(cfg, net, 1, 10), net)
    scaled = sorted(k for k, v in lrs.items() if v != pytest.approx(0.1))
    assert scaled == ["bilinear_bias", "bilinear_weight"]  # the authors' `bilinear*` names
    assert lrs["bilinear_weight"] == pytest.approx(0.01)
    assert lrs["convolution13_weight"] == pytest.approx(0.1)  # the linear path: not scaled
    # the multiplier follows --fmconv-scale, and a block's own lr_mult is kept
    cfg, net = _cfg("--fmconv", "--fmconv-scale", "0.5", "--lr", "1", "--lr-step", "5")
    net.representation.fb.bilinear.bias.lr_mult = 0.2
    lrs = _lr_by_name(make_optimizer(cfg, net, 1, 10), net)
    assert (lrs["bilinear_weight"], lrs["bilinear_bias"]) == pytest.approx((0.5, 0.1))
    # with a slow start the authors' scripts ignore --fmconv
    cfg, net = _cfg("--fmconv", "--fmconv-slowstart", "1", "--lr-step", "5")
    opt = make_optimizer(cfg, net, 1, 10)
    assert all(v == pytest.approx(opt.lr_scheduler(0)) for v in _lr_by_name(opt, net).values())
    # a network without FB layers
    plain = gluon_models.get_model("resnet164_cifar")
    plain.initialize()
    with pytest.raises(ValueError, match="has none"):
        make_optimizer(FitConfig(rules=[FBNRule(fmconv=True)]), plain, 1, 10)


def test_fmconv_multiplier_in_module_training():
    """Through Module training: with --fmconv-scale 0 the FB terms stay as initialised while
    everything else, the linear path included, learns."""
    mx.random.seed(7)
    net = fbn.preact_resnet_cifar(depth=11, fbn=True, num_factor=4,
                                 classes=S.CLASSES)
    net.initialize()
    before = {n: p.data().asnumpy().copy() for n, p in net.collect_params().items()}
    fit(net, S.make_train, None, FitConfig(num_epochs=1, rules=[FBNRule(0, 0.0, True)],
                                           **S.CFG))
    changed = {n[len(net.prefix):] for n, p in net.collect_params().items()
               if p.grad_req != "null" and not np.array_equal(p.data().asnumpy(), before[n])}
    learnable = {n[len(net.prefix):] for n, p in net.collect_params().items()
                 if p.grad_req != "null"}
    assert learnable - changed == {"bilinear_weight", "bilinear_bias"}


def test_fbn_data_presets_are_the_defaults():
    """Spec 5.5: mean subtraction only, white padding on CIFAR; on the datasets the authors
    did not use, and for other families, the dataset's own preset stays the default."""
    args = parse_cifar_args(SMALL_FBN + ["--dataset", "cifar100"])
    assert (args.aug, args.pad, args.pad_fill, args.mirror) == ("fbn", 4, 255, True)
    assert (args.mean_rgb, args.std_rgb) == ("123.68,116.779,103.939", "1,1,1")
    assert parse_cifar_args(["--model", "inception_bn_small_cifar", "--dataset",
                             "cifar10"]).aug == "fbn"
    assert parse_cifar_args(SMALL_FBN + ["--dataset", "digits"]).aug == "padcrop"
    assert parse_cifar_args(SMALL_FBN + ["--dataset", "cifar10", "--aug", "igc"]).aug == "igc"
    assert parse_cifar_args(["--network", "plain_igc", "--dataset", "cifar10"]).aug == "igc"
    args = parse_imagenet_args(["--network", "resnet-fmconv", "--depth", "34"])
    assert (args.norm, args.mean_rgb, args.std_rgb, args.fill_value) == \
        ("fbn", "123.68,116.779,103.939", "1,1,1", 255)
    assert parse_imagenet_args(["--network", "inception-bn", "--norm", "raw"]).norm == "raw"
    assert parse_imagenet_args(["--model", "resnet18_w64"]).norm == "igc"


def _train(tmp_path, *extra):
    cmd = [sys.executable, os.path.join(REPO, "tools", "train_cifar.py")] + SMALL_FBN + [
        "--fmconv-drop", "0.5", "--fmconv-slowstart", "1", "--dataset", "digits",
        "--data-dir", str(tmp_path / "digits"), "--batch-size", "64", "--lr", "0.1",
        "--lr-step", "5", "--clip-gradient", "10", "--kv-store", "local",
        "--log-file", str(tmp_path / "log.txt")]
    run = subprocess.run(cmd + list(extra), capture_output=True, text=True, timeout=300,
                         cwd=str(tmp_path))
    assert run.returncode == 0, run.stderr[-3000:]


def test_train_cifar_small_fbn_on_digits_and_resume(tmp_path):
    """train_cifar.py trains a ResNet-11-FBN with slow start; resumed from its epoch-1
    checkpoint it ends with the weights of the uninterrupted run (DropFactor masks, data
    order and the lr of the slow start all continue)."""
    _train(tmp_path, "--num-epochs", "2", "--model-prefix", str(tmp_path / "a" / "net"))
    log = (tmp_path / "log.txt").read_text()
    assert "fmconv_slowstart=1.0" in log and "Epoch[1] Validation-accuracy=" in log
    arg, _, meta = read_params(str(tmp_path / "a" / "net-0002.params"))
    fb = arg["resnet11_fbn_cifar_bilinear_weight"]
    assert fb.shape == (10, 4, 256, 1, 1)
    _train(tmp_path, "--num-epochs", "2", "--load-epoch", "1", "--load-prefix",
           str(tmp_path / "a" / "net"), "--model-prefix", str(tmp_path / "b" / "net"))
    assert "Resuming from" in (tmp_path / "log.txt").read_text()
    resumed, _, meta_b = read_params(str(tmp_path / "b" / "net-0002.params"))
    assert int(meta_b["num_update"].asscalar()) == int(meta["num_update"].asscalar()) == 46
    for name, value in arg.items():
        np.testing.assert_array_equal(resumed[name].asnumpy(), value.asnumpy(), err_msg=name)
    acc = [float(v) for v in re.findall(r"Validation-accuracy=([0-9.]+)", log)]
    assert len(acc) == 2 and all(np.isfinite(acc))
