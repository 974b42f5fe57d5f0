"""Reusable layers, one module per idea."""
from .basic import (BatchNormReLU, ConvBNAct, DirectGroupConv2D, MergedGroupConv2D, he_normal,
                    fc_uniform, train_mode_dropout, train_mode_flag)
from .fb import (FactorizedBilinear, FBConv2D, FBHead, fb_quadratic, dropfactor_mask,
                 fb_parameters)
from .ibn import IBN, ibn_split, InstanceNorm
from .igc import Reorder, IGCConv, InterleavedConv2D, reorder
from .representation import GAvP, MaxPoolFlatten, ISqrtCov, BCNN, CBP, covpool, sqrtm, triuvec
from .gmsop import GatedMixture, importance_cv2

__all__ = ["BatchNormReLU", "ConvBNAct", "DirectGroupConv2D", "MergedGroupConv2D", "he_normal",
           "fc_uniform", "train_mode_dropout", "train_mode_flag", "FactorizedBilinear", "FBConv2D", "FBHead", "fb_quadratic",
           "dropfactor_mask", "fb_parameters", "IBN", "ibn_split", "InstanceNorm", "Reorder",
           "IGCConv", "InterleavedConv2D", "reorder",
           "GAvP", "MaxPoolFlatten", "ISqrtCov", "BCNN", "CBP", "covpool", "sqrtm", "triuvec",
           "GatedMixture", "importance_cv2"]
