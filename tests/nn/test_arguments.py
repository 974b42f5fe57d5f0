"""Layer arguments are checked when the layer is built: a bad size, count or group number is a
ValueError naming the argument, not a TypeError/OverflowError/ZeroDivisionError from inside the
constructor or an MXNetError at the first forward pass."""
import math

import mxnet as mx
import numpy as np
import pytest

import gluon_models
from gluon_models.model_zoo import fbn as fbn_zoo, igc as igc_zoo
from gluon_models.nn import FactorizedBilinear, IGCConv, Reorder
from gluon_models.nn.basic import check_int, check_positive_int


@pytest.mark.parametrize("value", [None, math.nan, math.inf, -math.inf, 0, -3, 2.5, "4", True,
                                   (2,)])
def test_check_positive_int_names_the_argument(value):
    with pytest.raises(ValueError, match="^width must be a positive integer, got "):
        check_positive_int("width", value)


def test_check_int_accepts_whole_numbers_and_returns_ints():
    for value in (3, 3.0, np.int64(3), np.float32(3)):
        out = check_positive_int("n", value)
        assert out == 3 and type(out) is int
    assert check_int("pad", 0, 0) == 0
    with pytest.raises(ValueError, match="pad must be an integer >= 0, got -1"):
        check_int("pad", -1, 0)


def test_one_check_shared_by_the_layers_and_the_families():
    # the families used private copies (_check_positive) that drifted apart (one skipped
    # None, the other did not); there is one check now
    assert not hasattr(igc_zoo, "_check_positive") and not hasattr(fbn_zoo, "_check_positive")
    assert igc_zoo.check_positive_int is check_positive_int
    assert fbn_zoo.check_positive_int is check_positive_int


@pytest.mark.parametrize("build,name", [
    (lambda: Reorder(None), "branch_factor"),
    (lambda: Reorder(math.nan), "branch_factor"),
    (lambda: Reorder(math.inf), "branch_factor"),
    (lambda: Reorder(2.5), "branch_factor"),
    (lambda: Reorder(3, channels=0), "channels"),
    (lambda: IGCConv(8, 8, 0, 2), "primary"),         # was ZeroDivisionError (8 % 0)
    (lambda: IGCConv(8, 8, 2, 0), "secondary"),
    (lambda: IGCConv(8, 8, 2, 2, reorder2=0), "reorder2"),
    (lambda: IGCConv(8, 8, 2, 2, kernel="(3,,3)"), "kernel"),
    (lambda: IGCConv(8, None, 2, 2), "channels"),
    (lambda: FactorizedBilinear(4, 2, kernel_size=2.5), "kernel_size"),
    (lambda: FactorizedBilinear(4, 2, kernel_size=True), "kernel_size"),
    (lambda: FactorizedBilinear(4, 2, kernel_size="(3,,3)"), "kernel_size"),
    (lambda: FactorizedBilinear(4, 2, kernel_size="33"), "kernel_size"),
    (lambda: FactorizedBilinear(4, 2, padding=-1), "padding"),
    (lambda: FactorizedBilinear(4, 2, workspace="a"), "workspace"),
    (lambda: FactorizedBilinear(4, 2, workspace=-1), "workspace"),
    (lambda: FactorizedBilinear(4, 2, workspace=5000), "workspace"),
    (lambda: FactorizedBilinear(4, 2.5), "num_factor"),
    (lambda: FactorizedBilinear(4, 2, in_channels=-4), "in_channels"),
])
def test_layers_reject_bad_arguments_by_name(build, name):
    with pytest.raises(ValueError, match="^%s must be " % name):
        build()


def test_reorder_channels_must_split_into_the_branches():
    with pytest.raises(ValueError, match="channels=8 is not divisible by branch_factor=3"):
        Reorder(3, channels=8)


def test_integral_float_geometry_reaches_both_fb_paths_as_ints():
    # (3, 3.0) passes the check; the companion Conv2D must get the checked ints too, or
    # MXNet rejects its attribute string "(3, 3.0)" at the first forward pass
    layer = FactorizedBilinear(4, 2, in_channels=3, kernel_size=(3, 3.0), impl="stock")
    layer.initialize()
    assert layer(mx.nd.ones((1, 3, 5, 5))).shape == (1, 4, 3, 3)


def test_family_options_are_checked_by_name():
    with pytest.raises(ValueError, match="classes must be a positive integer"):
        gluon_models.get_model("resnet164_fbn_cifar", classes=2.5)
    with pytest.raises(ValueError, match="secondary must be a positive integer, got nan"):
        gluon_models.get_model("igc_plain_cifar", secondary=math.nan)
