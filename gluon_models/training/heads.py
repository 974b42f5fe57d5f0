"""Training heads: the network's symbol plus the softmax loss and any extra losses."""
import mxnet as mx

__all__ = ["training_symbol"]


def training_symbol(net, label_smoothing=0.0, data_name="data", label_name="softmax_label"):
    """Symbol for Module training: ``SoftmaxOutput(net(data))`` grouped with extra losses.

    The softmax gradient is summed over the batch (``normalization='null'``); the optimizer's
    ``rescale_grad = 1 / batch`` makes it a mean, as in the seeds. A network may declare extra
    losses by defining ``extra_losses(F, data)``, returning ``(logits, [(loss, weight), ...])``
    with scalar-per-sample loss symbols; each becomes a ``MakeLoss`` output scaled by its
    weight. Label smoothing uses SoftmaxOutput's ``smooth_alpha``.
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
    losses = [mx.sym.MakeLoss(loss, grad_scale=weight, name="extra_loss%d" % i)
              for i, (loss, weight) in enumerate(extra)]
    return mx.sym.Group([head] + losses)
