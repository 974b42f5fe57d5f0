"""Optimizer rules: how a family's training recipe adjusts the shared optimizer.

A family's authors sometimes train some parameters with their own learning rate or start the
run with a warm-up of their own (FBN: a smaller lr on the FB layers, a "slow start"). The
family declares such a rule as an :class:`OptimizerRule` (through
:func:`gluon_models.model_zoo.registry.register_family`), and :func:`~gluon_models.training.fit`
applies every rule it is given; the trainer itself knows no family.
"""

__all__ = ["OptimizerRule"]


class OptimizerRule:
    """Base class: a rule changes nothing unless it overrides a method."""

    def lr_mult(self, net, mult):
        """Adjust ``mult`` (``{parameter name: lr multiplier}`` of the learnable parameters of
        ``net``, the blocks' own ``lr_mult`` to start with) in place."""

    def warmup(self, cfg):
        """``(epochs, begin_lr)`` of a warm-up this rule asks for given the
        :class:`~gluon_models.training.FitConfig` ``cfg``, or None."""
        return None
