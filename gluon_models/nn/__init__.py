"""Reusable layers, one module per idea (see DESIGN.md)."""
from .basic import ConvBNAct, he_normal, fc_uniform
from .igc import Reorder, IGCConv, reorder

__all__ = ["ConvBNAct", "he_normal", "fc_uniform", "Reorder", "IGCConv", "reorder"]
