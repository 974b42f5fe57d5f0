"""A run whose loss or weights become NaN/inf stops with TrainingDiverged (a ValueError, so the
tools exit with an error) instead of training on to NaN and exiting 0, and it never writes a
NaN checkpoint over the finite ones it could be resumed from."""
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

from gluon_models.training import FitConfig, TrainingDiverged, fit, last_complete_epoch, \
    load_checkpoint

from . import synthetic as S

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cfg(**kw):
    return FitConfig(**dict(S.CFG, **kw))


def _finite(prefix, epoch):
    _, arg, aux, _ = load_checkpoint(prefix, epoch)
    return all(np.isfinite(a.asnumpy()).all() for a in list(arg.values()) + list(aux.values()))


def test_huge_weight_decay_stops_with_a_clear_error(tmp_path):
    prefix = str(tmp_path / "m")
    with pytest.raises(TrainingDiverged, match="training diverged: Train-cross-entropy is nan "
                                               "at epoch 0 batch [0-9]+; lower --lr or --wd"):
        fit(S.make_net(), S.make_train, None, _cfg(num_epochs=2, wd=1e30, model_prefix=prefix))
    assert issubclass(TrainingDiverged, ValueError)  # what the tools turn into an error exit
    assert last_complete_epoch(prefix) is None       # nothing was saved


def _spoiled_from_epoch_1(value):
    # epoch 0 trains normally and is saved; from epoch 1 on every input is multiplied by value
    def make_train(epoch):
        return mx.io.NDArrayIter(S.TRAIN[0] * (value if epoch >= 1 else 1.0), S.TRAIN[1],
                                 S.BATCH, label_name="softmax_label")
    return make_train


def test_non_finite_weights_are_not_saved(tmp_path):
    # inputs of 1e38 (or NaN, which ReLU turns into 0) leave the outputs finite, as BatchNorm
    # normalises them, so no loss shows the divergence, but BN's running mean overflows to
    # inf: that checkpoint must not be written after the finite one
    prefix = str(tmp_path / "m")
    with pytest.raises(TrainingDiverged, match="_running_mean.* not finite at the end of "
                                               "epoch 1; checkpoint .*m-0002 not saved"):
        fit(S.make_net(), _spoiled_from_epoch_1(1e38), None,
            _cfg(num_epochs=3, model_prefix=prefix))
    assert last_complete_epoch(prefix) == 1 and _finite(prefix, 1)


def test_train_cifar_exits_with_an_error_when_the_loss_diverges(tmp_path):
    run = subprocess.run(
        [sys.executable, os.path.join(REPO, "tools", "train_cifar.py"), "--network",
         "plain_igc", "--depth", "5", "--primary-partition", "4", "--secondary-partition", "2",
         "--dataset", "digits", "--data-dir", str(tmp_path / "digits"), "--batch-size", "64",
         "--num-epochs", "1", "--wd", "1e30", "--kv-store", "local",
         "--model-prefix", str(tmp_path / "ckpt" / "net")],
        capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert run.returncode == 1, run.stderr[-3000:]
    assert "train_cifar.py: error: training diverged" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "ckpt" / "net-0001.params").exists()
