"""Optimizers the seeds' recipes need beyond MXNet's own.

``torch_sgd`` is SGD with momentum in PyTorch's form (spec mpncov.md §5.2): PyTorch keeps an
lr-free buffer ``buf = momentum * buf + (grad + wd * w)`` and steps ``w -= lr * buf``, where
MXNet's ``sgd`` keeps ``state = momentum * state - lr * (grad + wd * w)``. The two agree while
the lr is constant; when a schedule changes the lr, PyTorch's step changes at once and MXNet's
only as its velocity decays, so recipes tuned in PyTorch (the fast MPN-COV fine-tuning
scripts) transfer exactly with ``torch_sgd`` only.
"""
import mxnet as mx

__all__ = ["TorchSGD"]


class TorchSGD(mx.optimizer.Optimizer):
    """SGD, momentum in PyTorch's form (no dampening, no Nesterov), weight decay added to the
    gradient. The rescale / clip / lr_mult / wd_mult options act as in MXNet's ``sgd``."""

    def __init__(self, momentum=0.0, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum

    def create_state(self, index, weight):
        if self.momentum == 0.0:
            return None
        return mx.nd.zeros(weight.shape, weight.context, dtype=weight.dtype,
                           stype=weight.stype)

    def update(self, index, weight, grad, state):
        self._update_count(index)
        lr, wd = self._get_lr(index), self._get_wd(index)
        g = grad * self.rescale_grad
        if self.clip_gradient is not None:
            g = mx.nd.clip(g, -self.clip_gradient, self.clip_gradient)
        if wd:
            g += wd * weight
        if state is not None:  # in place (slicing assignment costs far more per call)
            state *= self.momentum
            state += g
            g = state
        weight -= lr * g


# registered under the name the command lines use (``register`` would take "torchsgd")
mx.optimizer.Optimizer.opt_registry["torch_sgd"] = TorchSGD
