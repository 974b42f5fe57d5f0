"""Reusable layers, one module per idea (see DESIGN.md)."""
from .basic import ConvBNAct, he_normal, fc_uniform, train_mode_dropout, train_mode_flag
from .fb import FactorizedBilinear, FBConv2D, fb_quadratic, dropfactor_mask, fb_parameters
from .igc import Reorder, IGCConv, reorder

__all__ = ["ConvBNAct", "he_normal", "fc_uniform", "train_mode_dropout", "train_mode_flag",
           "FactorizedBilinear", "FBConv2D", "fb_quadratic", "dropfactor_mask", "fb_parameters",
           "Reorder", "IGCConv", "reorder"]
