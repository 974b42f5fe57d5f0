"""Extra losses of the training head: their exact gradient scale under the trainer's
``rescale_grad = 1 / B`` (per-sample and batch-level losses, one and two devices), their
metrics, and their per-epoch lines in the training log."""
import logging
import math

import numpy as np
import pytest
import mxnet as mx
from mxnet import autograd, gluon
from mxnet.gluon import nn

from gluon_models.training import ExtraLoss, FitConfig, fit, training_symbol
from gluon_models.training.heads import ExtraLossMetric, extra_loss_metric, extra_loss_outputs

from . import synthetic as S

B, IN, CLASSES = 6, 4, 3


def _per_sample_loss(F, logits):
    return F.sum(F.square(logits), axis=1)  # (B,)


def _balance_loss(F, logits):
    """CV^2 of the classes' importance over the batch, like a gate-balance loss: (1,), and
    not a sum of per-sample terms, so its scale does not follow the batch size."""
    imp = F.sum(F.softmax(logits), axis=0)
    mean = F.mean(imp)
    var = F.mean(F.square(F.broadcast_sub(imp, mean)))
    return F.reshape(var / F.square(mean), shape=(1,))


class Tiny(gluon.HybridBlock):
    """Dense -> tanh -> Dense, with the extra losses it is built with."""

    def __init__(self, losses, in_units=IN, classes=CLASSES, **kwargs):
        super().__init__(**kwargs)
        self.losses = losses  # [(fn(F, logits), weight, per_sample)]
        with self.name_scope():
            self.hidden = nn.Dense(5, activation="tanh", in_units=in_units, prefix="hidden_")
            self.output = nn.Dense(classes, in_units=5, prefix="out_")

    def hybrid_forward(self, F, x):
        return self.output(self.hidden(x))

    def extra_losses(self, F, data):
        logits = self(data)
        return logits, [ExtraLoss(fn(F, logits), w, per_sample)
                        for fn, w, per_sample in self.losses]


def _net(losses, **kwargs):
    mx.random.seed(4)
    net = Tiny(losses, prefix="tiny_", **kwargs)
    net.initialize(mx.init.Uniform(0.5))
    return net


def _batch():
    rng = np.random.RandomState(0)
    return (mx.nd.array(rng.uniform(-1, 1, (B, IN))),
            mx.nd.array(rng.randint(0, CLASSES, B).astype("float32")))


def _expected_gradient(net, x, y, losses, slices):
    """d J / d theta with autograd, J = mean_b CE_b + sum over per-sample losses of
    w * mean_b loss_b + sum over batch-level losses of w * (mean over ``slices`` of the loss
    computed on each slice)."""
    params = net.collect_params()
    with autograd.record():
        logits = net(x)
        j = mx.nd.sum(-mx.nd.pick(mx.nd.log_softmax(logits), y)) / B
        for fn, w, per_sample in losses:
            if per_sample:
                j = j + w * mx.nd.mean(fn(mx.nd, logits))
            else:
                parts = [fn(mx.nd, logits[a:b]) * ((b - a) / B) for a, b in slices]
                j = j + w * mx.nd.add_n(*parts)
    j.backward()
    return {name: p.grad().asnumpy().copy() for name, p in params.items()}


def _module_gradient(net, x, y, contexts):
    """The update of one SGD step (lr 1, no momentum or decay) with the trainer's rescale
    1 / B: the parameter gradient as the trainer applies it."""
    sym = training_symbol(net)
    mod = mx.mod.Module(sym, data_names=["data"], label_names=["softmax_label"],
                        context=contexts)
    mod.bind(data_shapes=[("data", (B, IN))], label_shapes=[("softmax_label", (B,))])
    before = {p.name: p.data().copy() for p in net.collect_params().values()}
    mod.init_params(arg_params=before, aux_params={})
    mod.init_optimizer(kvstore="local", optimizer="sgd", optimizer_params=dict(
        learning_rate=1.0, momentum=0.0, wd=0.0, rescale_grad=1.0 / B))
    mod.forward_backward(mx.io.DataBatch([x], [y]))
    mod.update()
    after, _ = mod.get_params()
    return {k: (before[k] - after[k]).asnumpy() for k in before}, mod


CASES = {
    "per_sample": [(_per_sample_loss, 0.3, True)],
    "batch_level": [(_balance_loss, 2.5, False)],
    "both": [(_per_sample_loss, 0.3, True), (_balance_loss, 2.5, False)],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_gradient_is_weight_times_loss_gradient(case):
    losses = CASES[case]
    x, y = _batch()
    got, mod = _module_gradient(_net(losses), x, y, [mx.cpu()])
    expected = _expected_gradient(_net(losses), x, y, losses, [(0, B)])
    assert sorted(got) == sorted(expected)
    for k in expected:
        np.testing.assert_allclose(got[k], expected[k], rtol=1e-4, atol=1e-6, err_msg=k)
    # the outputs are the unweighted losses themselves (the batch-level one is not scaled)
    logits = _net(losses)(x)
    for i, (fn, _, _) in enumerate(losses):
        np.testing.assert_allclose(mod.get_outputs()[1 + i].asnumpy(),
                                   fn(mx.nd, logits).asnumpy(), rtol=1e-5)


def test_batch_level_gradient_does_not_depend_on_the_batch_division():
    """Without the head's compensation the batch-level term would be weight / B: make sure
    the test above can tell the two apart for this loss."""
    losses = CASES["batch_level"]
    x, y = _batch()
    full = _expected_gradient(_net(losses), x, y, losses, [(0, B)])
    divided = _expected_gradient(_net(losses), x, y, [(_balance_loss, 2.5 / B, False)],
                                 [(0, B)])
    assert any(not np.allclose(full[k], divided[k], rtol=1e-3) for k in full)


def test_batch_level_loss_on_two_devices_is_weighted_by_each_share():
    """Each device computes the batch-level loss on its half; after 1 / B the gradient is
    weight times the mean of the halves' loss gradients."""
    losses = CASES["both"]
    x, y = _batch()
    got, _ = _module_gradient(_net(losses), x, y, [mx.cpu(0), mx.cpu(1)])
    expected = _expected_gradient(_net(losses), x, y, losses, [(0, B // 2), (B // 2, B)])
    for k in expected:
        np.testing.assert_allclose(got[k], expected[k], rtol=1e-4, atol=1e-6, err_msg=k)


def test_extra_loss_declarations_are_checked():
    x = mx.sym.var("data")

    class Bad(Tiny):
        def __init__(self, extra):
            super().__init__([])
            self.extra = extra

        def extra_losses(self, F, data):
            return self(data), self.extra

    for extra, match in [([(x,)], "must be"), ([(x, "0.1")], "weight must be a number"),
                         ([(x, 0.1, "yes")], "per_sample")]:
        with pytest.raises(ValueError, match=match):
            training_symbol(Bad(extra))


def test_extra_loss_metric_averages_each_output():
    sym = training_symbol(_net(CASES["both"]))
    assert extra_loss_outputs(sym) == [(1, "extra_loss0"), (2, "extra_loss1")]
    assert extra_loss_outputs(training_symbol(_net([]))) == []
    assert extra_loss_metric(training_symbol(_net([]))).get_name_value() == []
    metric = extra_loss_metric(sym)
    softmax = mx.nd.zeros((2, CLASSES))
    metric.update(None, [softmax, mx.nd.array([1, 2]), mx.nd.array([10])])
    metric.update(None, [softmax, mx.nd.array([3, 6]), mx.nd.array([20])])
    assert metric.get_name_value() == [("extra_loss0", 3.0), ("extra_loss1", 15.0)]
    metric.reset()
    assert all(math.isnan(v) for _, v in metric.get_name_value())
    single = ExtraLossMetric(2, "balance")
    single.update(None, [softmax, mx.nd.array([1, 2]), mx.nd.array([4])])
    assert single.get_name_value() == [("balance", 4.0)]


def test_fit_logs_each_extra_loss_every_epoch(caplog):
    with caplog.at_level(logging.INFO):
        net = _net([(_per_sample_loss, 0.01, True), (_balance_loss, 0.1, False)],
                   in_units=3 * 32 * 32, classes=S.CLASSES)
        fit(net, S.make_train, None, FitConfig(**dict(S.CFG, num_epochs=2)))
    for epoch in (0, 1):
        for name in ("extra_loss0", "extra_loss1"):
            line, = [r.getMessage() for r in caplog.records
                     if r.getMessage().startswith("Epoch[%d] Train-%s=" % (epoch, name))]
            assert float(line.split("=")[1]) > 0


def test_fit_logs_each_extra_loss_of_the_validation_pass(caplog):
    """The validation pass logs every extra loss too, computed in inference mode over the
    validation batches as fed: a per-sample loss over exactly the validation samples (the last
    batch's pad rows dropped), a batch-level loss as the mean of its batches' values."""
    with caplog.at_level(logging.INFO):
        net = _net([(_per_sample_loss, 0.01, True), (_balance_loss, 0.1, False)],
                   in_units=3 * 32 * 32, classes=S.CLASSES)
        fit(net, S.make_train, S.make_val, FitConfig(**dict(S.CFG, num_epochs=1)))
    per_sample, batch_level = [], []
    for batch in S.make_val():  # 40 samples in batches of 16: the last one has 8 pad rows
        logits = net(batch.data[0]).asnumpy().astype(np.float64)
        keep = logits.shape[0] - batch.pad
        per_sample.extend((logits[:keep] ** 2).sum(axis=1))
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        imp = (p / p.sum(axis=1, keepdims=True)).sum(axis=0)
        batch_level.append(((imp - imp.mean()) ** 2).mean() / imp.mean() ** 2)
    assert len(per_sample) == S.N_VAL and len(batch_level) == 3
    logged = {}
    for r in caplog.records:
        name, _, value = r.getMessage().partition("=")
        if name.startswith("Epoch[0] Validation-extra_loss"):
            logged[name.split("-", 1)[1]] = float(value)
    assert logged["extra_loss0"] == pytest.approx(np.mean(per_sample), rel=1e-4)
    assert logged["extra_loss1"] == pytest.approx(np.mean(batch_level), rel=1e-4)
