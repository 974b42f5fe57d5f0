"""Training heads: the network's symbol plus the softmax loss and any extra losses, and the
metrics that log the extra losses."""
import re
from collections import namedtuple
from numbers import Real

import mxnet as mx

__all__ = ["training_symbol", "ExtraLoss", "ExtraLossMetric", "extra_loss_outputs",
           "extra_loss_metric"]

ExtraLoss = namedtuple("ExtraLoss", ["loss", "weight", "per_sample"], defaults=(True,))
ExtraLoss.__doc__ = """One extra loss of a network (see :func:`training_symbol`): a loss symbol,
its weight and whether it is one value per sample (``(B,)``, the default) or one value for
the whole batch (``(1,)``). A plain ``(loss, weight)`` or ``(loss, weight, per_sample)`` tuple
means the same."""

_EXTRA_OUTPUT = re.compile(r"(extra_loss\d+)_output$")


def _batch_size(F, data):
    """The executor's batch size as a ``(1,)`` array, from the data (no gradient path)."""
    column = F.slice_axis(F.reshape(F.BlockGrad(data), shape=(0, -1)), axis=1, begin=0, end=1)
    return F.sum(F.ones_like(column))


def _times_batch_gradient(F, loss, data):
    """``loss`` itself in the forward pass, ``B * d loss`` in the backward pass.

    ``loss + (B - 1) * (loss - BlockGrad(loss))`` adds an exact zero to the value (so the
    logged loss is the loss) and ``B - 1`` copies of the gradient. B is the batch of the
    executor that computes ``loss``, so with several devices each device's batch-level loss
    is weighted by its share of the batch after the trainer's ``1 / batch``.
    """
    b_minus_1 = _batch_size(F, data) - 1
    return F.broadcast_add(loss, F.broadcast_mul(b_minus_1, loss - F.BlockGrad(loss)))


def _extra_loss(item, index):
    if not isinstance(item, tuple) or len(item) not in (2, 3):
        raise ValueError("extra loss %d must be (loss, weight) or (loss, weight, per_sample), "
                         "got %r" % (index, item))
    spec = ExtraLoss(*item)
    if not isinstance(spec.weight, Real) or isinstance(spec.weight, bool):
        raise ValueError("extra loss %d: the weight must be a number, got %r"
                         % (index, spec.weight))
    if not isinstance(spec.per_sample, bool):
        raise ValueError("extra loss %d: per_sample must be True or False, got %r"
                         % (index, spec.per_sample))
    return spec


def training_symbol(net, label_smoothing=0.0, data_name="data", label_name="softmax_label"):
    """Symbol for Module training: ``SoftmaxOutput(net(data))`` grouped with extra losses.

    The softmax gradient is summed over the batch (``normalization='null'``); the optimizer's
    ``rescale_grad = 1 / B`` (``B`` the batch size) makes it a mean, as in the seeds. Label
    smoothing uses SoftmaxOutput's ``smooth_alpha``.

    A network may declare extra losses by defining ``extra_losses(F, data)``, returning
    ``(logits, [loss, ...])`` where each loss is an :class:`ExtraLoss` ``(loss, weight,
    per_sample=True)`` or a plain tuple of the same fields. Each becomes an output
    ``extra_loss<i>`` (a ``MakeLoss`` whose value is the loss itself, unweighted; ``fit``
    logs its mean per epoch in training and in the validation pass) and adds to
    the parameter gradient, after the trainer's ``1 / B``, exactly:

    * ``per_sample=True``: ``loss`` has shape ``(B,)``, one value per sample; the gradient is
      ``weight * d mean_b(loss_b) / d theta``, a mean over the batch like the softmax's.
    * ``per_sample=False``: ``loss`` has shape ``(1,)`` and is a property of the whole batch
      (e.g. a balance loss over the batch's gate weights); the gradient is
      ``weight * d loss / d theta``, independent of ``B``: the head multiplies its gradient
      by ``B`` in the graph so that the trainer's ``1 / B`` does not divide it again. With
      several devices each computes the loss on its slice, weighted by its share of the
      batch. An objective written as ``(w / B) * loss`` (a loss added to a summed
      cross-entropy before the division by ``B``) declares ``weight = w / B``.
    """
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError("label_smoothing must be in [0, 1), got %r" % label_smoothing)
    data = mx.sym.var(data_name)
    extra = []
    if hasattr(net, "extra_losses"):
        logits, extra = net.extra_losses(mx.sym, data)
    else:
        logits = net(data)
    label = mx.sym.var(label_name)
    head = mx.sym.SoftmaxOutput(logits, label, name="softmax", normalization="null",
                                smooth_alpha=label_smoothing)
    if not extra:
        return head
    losses = []
    for i, item in enumerate(extra):
        spec = _extra_loss(item, i)
        loss = spec.loss if spec.per_sample else _times_batch_gradient(mx.sym, spec.loss, data)
        losses.append(mx.sym.MakeLoss(loss, grad_scale=spec.weight, name="extra_loss%d" % i))
    return mx.sym.Group([head] + losses)


class ExtraLossMetric(mx.metric.Loss):
    """Mean of the output ``index`` (an extra loss of :func:`training_symbol`) over every
    element of every batch since the last reset: the per-sample mean of a ``(B,)`` loss, the
    per-batch mean of a ``(1,)`` one. Update it with all of the Module's outputs."""

    def __init__(self, index, name):
        super().__init__(name=name)
        self.index = index

    def update(self, labels, preds):
        super().update(labels, [preds[self.index]])


def extra_loss_outputs(symbol):
    """``[(index, name), ...]`` of the extra-loss outputs of a :func:`training_symbol`,
    e.g. ``[(1, "extra_loss0")]``."""
    found = []
    for i, out in enumerate(symbol.list_outputs()):
        match = _EXTRA_OUTPUT.match(out)
        if match:
            found.append((i, match.group(1)))
    return found


def extra_loss_metric(symbol):
    """One :class:`ExtraLossMetric` per extra loss of ``symbol``, as a composite metric
    (empty, logging nothing, for a network without extra losses)."""
    return mx.metric.CompositeEvalMetric([ExtraLossMetric(i, name)
                                          for i, name in extra_loss_outputs(symbol)])
