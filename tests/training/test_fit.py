"""The Module trainer: learning, exact resume (also after a kill), atomic checkpoints."""
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import mxnet as mx

import gluon_models

from gluon_models.training import (FitConfig, fit, last_complete_epoch, load_checkpoint,
                                   make_optimizer, save_checkpoint, training_symbol)
from gluon_models.training.fit import contexts, evaluate

from . import synthetic as S

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cfg(**kw):
    return FitConfig(**dict(S.CFG, **kw))


def _params(prefix, epoch):
    _, arg, aux, _ = load_checkpoint(prefix, epoch)
    return {**arg, **aux}


def _loss(net, data):
    out = net(mx.nd.array(data[0]))
    return float(mx.nd.softmax_cross_entropy(out, mx.nd.array(data[1])).asscalar()) / len(data[1])


def test_training_reduces_loss_and_logs_mxnet_format(tmp_path, caplog):
    net = S.make_net()
    before = _loss(net, S.TRAIN)
    with caplog.at_level(logging.INFO):
        fit(net, S.make_train, S.make_val, _cfg(num_epochs=4, model_prefix=str(tmp_path / "m")))
    after = _loss(net, S.TRAIN)  # fit copies the trained weights back into the block
    assert after < 0.5 * before
    text = caplog.text
    for line in ("Epoch[3] Train-accuracy=", "Epoch[3] Validation-accuracy=",
                 "Epoch[0] Time cost=", "Validation-cross-entropy=", "Speed: ",
                 'Saved checkpoint to "%s-0004.params"' % (tmp_path / "m")):
        assert line in text
    for f in ("m-symbol.json", "m-0001.params", "m-0004.params", "m-0004.states"):
        assert (tmp_path / f).exists()
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]
    # the checkpoint is a standard one
    sym, arg, aux = mx.model.load_checkpoint(str(tmp_path / "m"), 4)
    assert "softmax_label" in sym.list_arguments() and arg and aux


def test_resume_is_exact(tmp_path):
    full = str(tmp_path / "full")
    fit(S.make_net(), S.make_train, S.make_val, _cfg(num_epochs=3, model_prefix=full))
    part = str(tmp_path / "part")
    fit(S.make_net(), S.make_train, S.make_val, _cfg(num_epochs=2, model_prefix=part))
    # a different initialisation proves the weights come from the checkpoint
    fit(S.make_net(seed=99), S.make_train, S.make_val,
        _cfg(num_epochs=3, model_prefix=part, load_epoch=2))
    a, b = _params(full, 3), _params(part, 3)
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_array_equal(a[k].asnumpy(), b[k].asnumpy(), err_msg=k)
    # and the resumed run did move away from epoch 2
    assert any(not np.array_equal(_params(part, 2)[k].asnumpy(), b[k].asnumpy()) for k in b)


KILL_SCRIPT = r"""
import os, signal, sys
sys.path.insert(0, {repo!r})
from tests.training import synthetic as S
from gluon_models.training import FitConfig, fit

def make_train(epoch):
    it = S.make_train(epoch)
    if epoch < 2:
        return it
    class Dying:  # killed in the middle of epoch 3 (index 2)
        provide_data, provide_label = it.provide_data, it.provide_label
        def __iter__(self):
            for i, b in enumerate(it):
                if i == 3:
                    os.kill(os.getpid(), signal.SIGKILL)
                yield b
    return Dying()

fit(S.make_net(), make_train, S.make_val,
    FitConfig(**dict(S.CFG, num_epochs=3, model_prefix={prefix!r}, num_examples=S.N_TRAIN)))
"""


def test_resume_after_kill_mid_epoch(tmp_path):
    full = str(tmp_path / "full")
    fit(S.make_net(), S.make_train, S.make_val, _cfg(num_epochs=3, model_prefix=full))
    prefix = str(tmp_path / "killed")
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT.format(repo=REPO, prefix=prefix)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert last_complete_epoch(prefix) == 2
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]
    fit(S.make_net(seed=5), S.make_train, S.make_val,
        _cfg(num_epochs=3, model_prefix=prefix, load_epoch=last_complete_epoch(prefix)))
    a, b = _params(full, 3), _params(prefix, 3)
    for k in a:
        np.testing.assert_array_equal(a[k].asnumpy(), b[k].asnumpy(), err_msg=k)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    prefix = str(tmp_path / "m")
    mod = fit(S.make_net(), S.make_train, None, _cfg(num_epochs=1, model_prefix=prefix))
    good = (tmp_path / "m-0001.params").read_bytes()

    def broken_save(fname, data):
        with open(fname, "wb") as fh:
            fh.write(b"partial")
        raise OSError("disk full")
    monkeypatch.setattr(mx.nd, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(mod, prefix, 1)
    with pytest.raises(OSError):
        save_checkpoint(mod, prefix, 2)
    assert (tmp_path / "m-0001.params").read_bytes() == good  # old checkpoint intact
    assert not (tmp_path / "m-0002.params").exists()
    assert last_complete_epoch(prefix) == 1
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]


def test_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="m-0007.params"):
        fit(S.make_net(), S.make_train, None,
            _cfg(num_epochs=8, model_prefix=str(tmp_path / "m"), load_epoch=7))


def test_checkpoint_of_another_network_is_rejected(tmp_path):
    prefix = str(tmp_path / "m")
    fit(S.make_net(), S.make_train, None, _cfg(num_epochs=1, model_prefix=prefix))
    import gluon_models
    other = gluon_models.get_model("plain_cifar", depth=5, width=4, classes=S.CLASSES)
    other.initialize()
    with pytest.raises(ValueError, match="different network"):
        fit(other, S.make_train, None, _cfg(num_epochs=2, model_prefix=prefix, load_epoch=1))


def test_evaluate_counts_each_sample_once():
    net = S.make_net()
    mod = fit(net, S.make_train, None, _cfg(num_epochs=1))
    metric = mx.metric.Accuracy()
    evaluate(mod, S.make_val(), metric)  # 40 samples, batches of 16: last batch has pad 8
    assert metric.num_inst == S.N_VAL
    preds = net(mx.nd.array(S.VAL[0])).argmax(axis=1).asnumpy()
    assert metric.get()[1] == pytest.approx(np.mean(preds == S.VAL[1]))


def test_weight_decay_rules_and_multipliers():
    net = S.make_net()
    net.output.bias.lr_mult = 0.5
    names = [p.name for p in net.collect_params().values() if p.grad_req != "null"]
    opt = make_optimizer(_cfg(wd_rule="all"), net, 1 / 16, 10)
    opt.idx2name = dict(enumerate(names))
    wd = {n: opt._get_wd(i) for i, n in enumerate(names)}
    assert all(v == pytest.approx(1e-4) for v in wd.values())  # seeds: BN beta, biases too
    assert opt._get_lr(names.index(net.output.bias.name)) == pytest.approx(0.1 * 0.5)
    opt = make_optimizer(_cfg(wd_rule="weights"), net, 1 / 16, 10)
    opt.idx2name = dict(enumerate(names))
    for i, n in enumerate(names):
        expected = 1e-4 if n.endswith("_weight") or n.endswith("_gamma") else 0.0
        assert opt._get_wd(i) == pytest.approx(expected), n
    assert isinstance(make_optimizer(_cfg(optimizer="nag"), net, 1, 10), mx.optimizer.NAG)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        make_optimizer(_cfg(optimizer="adamw"), net, 1, 10)


def test_gpus_fail_clearly_on_this_build():
    assert contexts("") == [mx.cpu()]
    if mx.context.num_gpus() == 0:
        with pytest.raises(ValueError, match="--gpus 0 requested, but this MXNet build"):
            contexts("0")
    with pytest.raises(ValueError, match="comma-separated"):
        contexts("a,b")


def test_label_smoothing_and_extra_losses():
    net = S.make_net()
    sym = training_symbol(net, label_smoothing=0.1)
    assert sym.attr_dict()["softmax"]["smooth_alpha"] == "0.1"

    class WithExtra(mx.gluon.HybridBlock):
        def __init__(self, inner, **kw):
            super().__init__(**kw)
            self.inner = inner
            self.output = inner.output

        def hybrid_forward(self, F, x):
            return self.inner(x)

        def extra_losses(self, F, data):
            logits = self.inner(data)
            return logits, [(F.mean(F.square(logits), axis=1), 0.01)]

    wrapped = WithExtra(net)
    sym = training_symbol(wrapped)
    assert sym.list_outputs() == ["softmax_output", "extra_loss0_output"]
    mod = fit(wrapped, S.make_train, S.make_val, _cfg(num_epochs=1))
    assert len(mod.get_outputs()) == 2
    with pytest.raises(ValueError, match="label_smoothing"):
        training_symbol(net, label_smoothing=1.5)


def test_frozen_parameters_do_not_train():
    """grad_req='null' (here the stem, frozen by the builder's ``freeze``) keeps a parameter
    exactly as it was: neither its gradient nor weight decay reaches it (Module binds it as
    fixed). Before, a frozen stem moved by up to 0.087 in one epoch."""
    mx.random.seed(7)
    net = gluon_models.get_model("igc_resnet_cifar", depth=8, primary=4, secondary=2,
                                 classes=S.CLASSES, freeze=1)
    net.initialize()
    frozen = {p.name for p in net.features[0].collect_params().values()
              if p.grad_req == "null" and "running" not in p.name}
    assert len(frozen) == 3  # conv weight, BN gamma and beta
    before = {n: p.data().asnumpy().copy() for n, p in net.collect_params().items()}
    fit(net, S.make_train, None, _cfg(num_epochs=1, wd=1e-2))
    moved = {n for n, p in net.collect_params().items()
             if not np.array_equal(p.data().asnumpy(), before[n])}
    assert not frozen & moved
    assert net.output.weight.name in moved and net.features[1].conv1.conv1.weight.name in moved


def test_seed_decides_the_initial_weights(tmp_path):
    """--seed reaches the initialisation: the runner seeds before it initialises the net."""
    from gluon_models.training.runner import parse_cifar_args, train_cifar
    argv = ["--network", "resnet_igc", "--depth", "8", "--primary-partition", "2",
            # lr 0 (no momentum, so no weight decay either): the one epoch leaves the
            # initial weights as they are (--num-epochs 0 is refused as a usage error)
            "--secondary-partition", "2", "--num-epochs", "1", "--lr", "0", "--mom", "0",
            "--kv-store", "local",
            "--data-dir", str(tmp_path / "digits")]

    def initial(seed, before):
        mx.random.seed(before)  # whatever the RNGs held before must not matter
        np.random.seed(before)
        net, _ = train_cifar(parse_cifar_args(argv + ["--seed", str(seed)]))
        return {k: p.data().asnumpy() for k, p in net.collect_params().items()}
    first, again, other = initial(1, 11), initial(1, 22), initial(2, 11)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first[[k for k in first if k.endswith("conv_weight")][0]],
                              other[[k for k in first if k.endswith("conv_weight")][0]])
