"""Learning-rate schedules in absolute update counts, so a resumed run (which restarts the
optimizer at ``begin_num_update = epoch * epoch_size``) continues at exactly the right lr."""
import mxnet as mx
import numpy as np

__all__ = ["make_lr_scheduler", "SCHEDULES", "EpochLogScheduler"]

SCHEDULES = ("step", "cosine", "constant", "log")


class EpochLogScheduler(mx.lr_scheduler.LRScheduler):
    """The fast MPN-COV scripts' ``log`` method (spec mpncov.md §5.3): epoch ``e`` of
    ``num_epochs`` trains with ``logspace(p1, p2, num_epochs)[e]`` (so the base lr is
    ``10 ** p1``), constant within the epoch; updates count from 1."""

    def __init__(self, epoch_size, num_epochs, p1, p2):
        super().__init__(base_lr=10.0 ** p1)
        self.epoch_size = int(epoch_size)
        self.lrs = np.logspace(p1, p2, int(num_epochs))

    def __call__(self, num_update):
        epoch = min(max(num_update - 1, 0) // self.epoch_size, len(self.lrs) - 1)
        return float(self.lrs[epoch])


def make_lr_scheduler(base_lr, epoch_size, num_epochs, kind="step", lr_steps=(), factor=0.1,
                      warmup_epochs=0.0, warmup_begin_lr=0.0, final_lr=0.0, log_range=()):
    """Build an MXNet lr scheduler.

    Parameters
    ----------
    base_lr : float
        Learning rate after the warm-up.
    epoch_size : int
        Updates per epoch.
    num_epochs : int
        Length of the run (the cosine schedule ends there).
    kind : {"step", "cosine", "constant", "log"}
        ``step``: multiply by ``factor`` once the update count exceeds each of ``lr_steps``
        (epochs); ``cosine``: cosine decay from ``base_lr`` to ``final_lr`` over the run;
        ``log``: :class:`EpochLogScheduler` over ``log_range = (p1, p2)`` (``base_lr`` is
        then ``10 ** p1``; no warm-up).
    warmup_epochs : float
        Linear warm-up from ``warmup_begin_lr`` to ``base_lr`` (FBN's "slow start" is a
        warm-up from ``0.1 * lr`` over ``--fmconv-slowstart`` epochs, spec fbn.md 5.4).
    """
    if kind not in SCHEDULES:
        raise ValueError("lr schedule must be one of %s, got %r" % (SCHEDULES, kind))
    if epoch_size < 1:
        raise ValueError("epoch_size must be >= 1, got %r" % epoch_size)
    if kind == "log":
        if len(log_range) != 2 or warmup_epochs:
            raise ValueError("the log schedule takes two exponents (p1, p2: lr from 10^p1 to "
                             "10^p2) and no warm-up, got %s" % (list(log_range),))
        return EpochLogScheduler(epoch_size, num_epochs, *log_range)
    warmup = int(round(warmup_epochs * epoch_size))
    steps = sorted(int(round(e * epoch_size)) for e in lr_steps)
    if any(s <= warmup for s in steps):
        raise ValueError("lr steps %s must come after the warm-up (%s epochs)"
                         % (list(lr_steps), warmup_epochs))
    if kind == "constant" and not warmup:
        return None
    if kind == "cosine":
        return mx.lr_scheduler.CosineScheduler(
            max_update=max(num_epochs * epoch_size, warmup + 1), base_lr=base_lr,
            final_lr=final_lr, warmup_steps=warmup, warmup_begin_lr=warmup_begin_lr)
    if not steps:  # constant after the warm-up: one step beyond the end of the run
        steps, factor = [max(num_epochs * epoch_size, warmup) + 1], 1.0
    return mx.lr_scheduler.MultiFactorScheduler(
        step=steps, factor=factor, base_lr=base_lr, warmup_steps=warmup,
        warmup_begin_lr=warmup_begin_lr, warmup_mode="linear")
