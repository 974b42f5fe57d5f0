"""--retrain (IBN seed): a new run that starts from a checkpoint's weights only."""
import logging

import numpy as np
import pytest

from gluon_models.training import FitConfig, fit, load_checkpoint
from gluon_models.utils import load_checkpoint_params
from gluon_models.utils.checkpoint import read_params

from . import synthetic as S

EPOCH_SIZE = S.N_TRAIN // S.BATCH  # 10 updates per epoch


def _cfg(**kw):
    return FitConfig(**dict(S.CFG, **kw))


def _params(prefix, epoch):
    _, arg, aux, _ = load_checkpoint(prefix, epoch)
    return {k: v.asnumpy() for k, v in dict(arg, **aux).items()}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """Two epochs at lr 0.1: the checkpoint a retrain starts from."""
    prefix = str(tmp_path_factory.mktemp("src") / "a")
    fit(S.make_net(), S.make_train, S.make_val, _cfg(num_epochs=2, model_prefix=prefix))
    return prefix


def test_retrain_is_a_new_run_from_the_checkpoint_weights(source, tmp_path, caplog):
    new = dict(num_epochs=2, lr=0.05, lr_step_epochs=[1])  # a step inside the new run
    with caplog.at_level(logging.INFO):
        mod = fit(S.make_net(seed=99), S.make_train, S.make_val,
                  _cfg(model_prefix=str(tmp_path / "b"), load_prefix=source, load_epoch=2,
                       retrain=True, **new))
    # the reference: a fresh run whose initial weights are set to the checkpoint's by hand
    ref_net = S.make_net(seed=99)
    load_checkpoint_params(ref_net, source, 2)
    fit(ref_net, S.make_train, S.make_val, _cfg(model_prefix=str(tmp_path / "c"), **new))
    b, c = _params(str(tmp_path / "b"), 2), _params(str(tmp_path / "c"), 2)
    assert sorted(b) == sorted(c)
    for k in b:  # same data per epoch 0, 1; momentum from zero; schedule from update 0
        np.testing.assert_array_equal(b[k], c[k], err_msg=k)
    # the weights did come from the checkpoint: ignoring it ends elsewhere
    fit(S.make_net(seed=99), S.make_train, S.make_val,
        _cfg(model_prefix=str(tmp_path / "d"), **new))
    d = _params(str(tmp_path / "d"), 2)
    assert any(not np.array_equal(b[k], d[k]) for k in b)
    # epochs numbered from 1 again, the update count and the lr restarted
    assert (tmp_path / "b-0001.params").exists() and not (tmp_path / "b-0003.params").exists()
    _, _, meta = read_params(str(tmp_path / "b-0002.params"))
    assert int(meta["num_update"].asscalar()) == 2 * EPOCH_SIZE
    opt = mod._optimizer
    assert opt.num_update == 2 * EPOCH_SIZE
    assert opt.learning_rate == pytest.approx(0.005)  # 0.05, one step of 0.1 at epoch 1
    assert "Retraining from the weights of %s-0002" % source in caplog.text
    assert "Epoch[0] Train-accuracy=" in caplog.text
    assert "momentum restarts" not in caplog.text  # no warning: the reset is the point


def test_resume_by_contrast_continues_counters(source, tmp_path):
    prefix = str(tmp_path / "r")
    mod = fit(S.make_net(seed=99), S.make_train, None,
              _cfg(num_epochs=3, model_prefix=prefix, load_prefix=source, load_epoch=2))
    assert mod._optimizer.num_update == 3 * EPOCH_SIZE
    assert (tmp_path / "r-0003.params").exists() and not (tmp_path / "r-0001.params").exists()


def test_retrain_errors(source, tmp_path):
    with pytest.raises(ValueError, match="retrain needs load_epoch"):
        fit(S.make_net(), S.make_train, None, _cfg(num_epochs=1, retrain=True))
    with pytest.raises(ValueError, match="would overwrite the checkpoints"):
        fit(S.make_net(), S.make_train, None,
            _cfg(num_epochs=1, model_prefix=source, load_epoch=2, retrain=True))
    with pytest.raises(FileNotFoundError, match="a-0005.params"):
        fit(S.make_net(), S.make_train, None,
            _cfg(num_epochs=1, model_prefix=str(tmp_path / "x"), load_prefix=source,
                 load_epoch=5, retrain=True))
    import gluon_models
    other = gluon_models.get_model("plain_cifar", depth=5, width=4, classes=S.CLASSES)
    other.initialize()
    with pytest.raises(ValueError, match="different network"):
        fit(other, S.make_train, None, _cfg(num_epochs=1, model_prefix=str(tmp_path / "y"),
                                            load_prefix=source, load_epoch=2, retrain=True))
