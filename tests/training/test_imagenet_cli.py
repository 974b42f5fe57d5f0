"""train_imagenet.py and evaluate.py end to end on a tiny ImageNet-style record set."""
import os
import re
import runpy
import subprocess
import sys

import pytest

from ..data.imagenet_set import write_set

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(REPO, "tools")


SMALL_NET = ("--network", "resnet_cifar", "--depth", "8", "--model-opt", "width=4")


def _train(tmp_path, *extra, net=SMALL_NET):
    cmd = [sys.executable, os.path.join(TOOLS, "train_imagenet.py")] + list(net) + [
           "--num-classes", "10", "--data-dir", str(tmp_path / "data"),  # train.rec, val.rec
           "--data-shape", "32", "--batch-size", "8", "--kv-store", "local",
           "--num-epoches", "1", "--lr-step", "1", "--disp-batches", "1",
           "--log-file", str(tmp_path / "train.log")] + list(extra)
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=str(tmp_path),
                         env=dict(os.environ, MXNET_SUBGRAPH_VERBOSE="0"))
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def _evaluate(monkeypatch, capsys, *argv):
    monkeypatch.setattr(sys, "argv", ["evaluate.py"] + list(argv))
    runpy.run_path(os.path.join(TOOLS, "evaluate.py"), run_name="__main__")
    return capsys.readouterr().out


def test_train_evaluate_retrain(tmp_path, monkeypatch, capsys):
    write_set(tmp_path / "data", n_train=24, n_val=13)
    _train(tmp_path, "--aug-level", "3", "--model-prefix", str(tmp_path / "ck" / "net"))
    for f in ("net-symbol.json", "net-0001.params", "net-0001.states"):
        assert (tmp_path / "ck" / f).exists()
    log = (tmp_path / "train.log").read_text()
    assert "start with arguments" in log and "aug level 3" in log
    assert "max_rotate_angle': 10" in log and "optimizer='nag'" in log
    val = float(re.search(r"Epoch\[0\] Validation-accuracy=([0-9.]+)", log).group(1))
    assert "Epoch[0] Validation-top_k_accuracy_5=" in log

    common = ["--checkpoint", str(tmp_path / "ck" / "net"), "--epoch", "1", "--data-dir",
              str(tmp_path / "data"), "--val-rec", "val", "--data-shape", "32",
              "--batch-size", "5", "--preprocess-threads", "1"]
    out = _evaluate(monkeypatch, capsys, *common)
    m = re.search(r"13 images, 1 crop\(s\) of 32: top-1 accuracy ([0-9.]+)", out)
    assert m, out
    assert float(m.group(1)) == pytest.approx(val, abs=1e-4)  # what training reported
    out = _evaluate(monkeypatch, capsys, *common, "--crops", "10")
    assert re.search(r"13 images, 10 crop\(s\) of 32: top-1 accuracy [0-9.]+ \(error", out), out
    with pytest.raises(SystemExit, match="nothing to evaluate"):
        _evaluate(monkeypatch, capsys, "--data-dir", str(tmp_path / "data"))

    # the IBN seed's restart: new lr, the weights of epoch 1, epochs counted from 0 again
    _train(tmp_path, "--model-load-epoch", "1", "--retrain", "--lr", "0.01",
           "--model-load-prefix", str(tmp_path / "ck" / "net"),
           "--model-prefix", str(tmp_path / "ck" / "re"))
    assert (tmp_path / "ck" / "re-0001.params").exists()
    log = (tmp_path / "train.log").read_text()
    assert "Retraining from the weights of %s-0001" % (tmp_path / "ck" / "net") in log


def test_ibn_port_network_trains_and_retrains(tmp_path):
    """The MXNet port's ResNet-IBN-a by its seed --network value: native IBN operators (their
    running statistics are auxiliary states) through Module training, checkpoint, --retrain."""
    write_set(tmp_path / "data", n_train=16, n_val=8)
    net = ["--network", "resnet_ibn_a", "--depth", "50", "--optimizer", "nag",
           "--label-smoothing", "0.1"]
    _train(tmp_path, "--model-prefix", str(tmp_path / "ck" / "ibn"), net=net)
    log = (tmp_path / "train.log").read_text()
    assert "Epoch[0] Validation-accuracy=" in log
    import mxnet as mx
    saved = mx.nd.load(str(tmp_path / "ck" / "ibn-0001.params"))
    # the IBN of stage 1 unit 1: IN and BN halves, the BN half's running statistics moved
    assert saved["arg:resnet50_ibn_a_mx_stage1_unit1_in1_gamma"].shape == (32,)
    moving = saved["aux:resnet50_ibn_a_mx_stage1_unit1_bn1_running_var"].asnumpy()
    assert moving.shape == (32,) and not (moving == 1).all()
    sym = (tmp_path / "ck" / "ibn-symbol.json").read_text()
    assert '"IBN"' in sym
    _train(tmp_path, "--model-load-epoch", "1", "--retrain", "--lr", "0.001",
           "--model-load-prefix", str(tmp_path / "ck" / "ibn"),
           "--model-prefix", str(tmp_path / "ck" / "ibn_re"), net=net)
    assert (tmp_path / "ck" / "ibn_re-0001.params").exists()
