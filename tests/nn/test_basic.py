"""Shared layers: the in-graph train/inference mode probe (train_mode_flag and
train_mode_dropout follow autograd's mode in eager and hybridized Gluon and Module's is_train,
and pass no gradient) and MergedGroupConv2D (the plain grouped convolution's results)."""
import numpy as np
import pytest
import mxnet as mx
from mxnet import autograd, gluon
from mxnet.gluon import nn

from gluon_models.nn import (BatchNormReLU, ConvBNAct, MergedGroupConv2D, dropfactor_mask,
                             train_mode_dropout, train_mode_flag)
from gluon_models.nn.basic import merge_factor

from ..passes import assert_same_pass, copy_params, recorded_pass


class Flagged(gluon.HybridBlock):
    """x + 10 * flag: the flag switches a term on in training only."""

    def hybrid_forward(self, F, x):
        return F.broadcast_add(x, 10 * train_mode_flag(F, x))


def _x(dtype="float32"):
    return mx.nd.array(np.arange(6).reshape(2, 3), dtype=dtype)


@pytest.mark.parametrize("dtype", ["float32", "float16", "float64"])
def test_eager_flag_follows_autograd_mode(dtype):
    x = _x(dtype)
    flag = train_mode_flag(mx.nd, x)
    assert flag.shape == (1,) and flag.dtype == np.dtype(dtype) and flag.context == x.context
    assert flag.asscalar() == 0  # outside any scope: inference
    with autograd.train_mode():
        assert train_mode_flag(mx.nd, x).asscalar() == 1
    with autograd.record():
        assert train_mode_flag(mx.nd, x).asscalar() == 1
    with autograd.record(train_mode=False):
        assert train_mode_flag(mx.nd, x).asscalar() == 0
    with autograd.train_mode(), autograd.predict_mode():
        assert train_mode_flag(mx.nd, x).asscalar() == 0


def test_flag_is_one_on_every_training_draw():
    """|Dropout(1, 0.5) - 1| is 1 for both outcomes of the draw, not only on average."""
    x = _x()
    with autograd.train_mode():
        assert all(train_mode_flag(mx.nd, x).asscalar() == 1 for _ in range(50))


@pytest.fixture(params=[False, True], ids=["eager", "hybridized"])
def flagged(request):
    net = Flagged()
    if request.param:
        net.hybridize()
    return net


def test_block_follows_mode_hybridized_or_not(flagged):
    net, x = flagged, _x()
    # inference first: a hybridized graph traced now must not freeze the inference mode
    np.testing.assert_array_equal(net(x).asnumpy(), x.asnumpy())
    with autograd.record():
        np.testing.assert_array_equal(net(x).asnumpy(), x.asnumpy() + 10)
    with autograd.train_mode():
        np.testing.assert_array_equal(net(x).asnumpy(), x.asnumpy() + 10)
    np.testing.assert_array_equal(net(x).asnumpy(), x.asnumpy())


def test_module_follows_is_train():
    sym = Flagged()(mx.sym.var("data"))
    mod = mx.mod.Module(sym, data_names=["data"], label_names=None)
    mod.bind(data_shapes=[("data", (2, 3))], for_training=True, inputs_need_grad=True)
    mod.init_params()
    x = _x()
    batch = mx.io.DataBatch([x])
    mod.forward(batch, is_train=True)
    np.testing.assert_array_equal(mod.get_outputs()[0].asnumpy(), x.asnumpy() + 10)
    # the data gradient is the identity path's alone: nothing comes back through the flag
    mod.backward([mx.nd.full((2, 3), 3.0)])
    np.testing.assert_array_equal(mod.get_input_grads()[0].asnumpy(), 3.0)
    mod.forward(batch, is_train=False)
    np.testing.assert_array_equal(mod.get_outputs()[0].asnumpy(), x.asnumpy())


def test_no_gradient_flows_through_the_flag(flagged):
    net, x = flagged, _x()
    x.attach_grad()
    with autograd.record():
        y = net(x)
    y.backward(mx.nd.full(y.shape, 2.0))
    np.testing.assert_array_equal(x.grad.asnumpy(), 2.0)
    with autograd.record():
        flag = train_mode_flag(mx.nd, x)
    flag.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), 0.0)


def test_dropout_draw_is_the_stock_dropout_draw():
    """DropFactor's mask is made from this draw: the same values as F.Dropout on the same seed
    (so moving the draw here changed no mask), 1 in inference, and no gradient to ``ones``."""
    ones = mx.nd.ones((64,))
    ones.attach_grad()
    with autograd.record():
        mx.random.seed(11)
        d = train_mode_dropout(mx.nd, ones, 0.3)
        mx.random.seed(11)
        stock = mx.nd.Dropout(mx.nd.ones((64,)), p=0.3)
        mx.random.seed(11)
        mask = dropfactor_mask(mx.nd, mx.nd.ones((64,)), 0.3, "consistent")
    np.testing.assert_array_equal(d.asnumpy(), stock.asnumpy())
    np.testing.assert_array_equal(mask.asnumpy(), np.sqrt(stock.asnumpy()))
    assert set(np.unique(d.asnumpy())) == {0, np.float32(1 / 0.7)}
    d.backward()
    np.testing.assert_array_equal(ones.grad.asnumpy(), 0.0)
    np.testing.assert_array_equal(train_mode_dropout(mx.nd, ones, 0.3).asnumpy(), 1.0)


# ---- MergedGroupConv2D: merged groups compute the plain grouped convolution ----------------

@pytest.mark.parametrize("groups,ipg,opg,kernel,want", [
    (100, 2, 2, (3, 3), 4),     # IGC-L100M2: 2-channel groups -> 8
    (100, 1, 2, (3, 3), 10),    # its first block (100 -> 200): 8 does not divide 100
    (24, 2, 2, (3, 3), 4),      # CIFAR IGC-L24M2
    (16, 16, 16, (3, 3), 1),    # already wide
    (32, 4, 4, (1, 1), 1),      # 1 x 1: no gain measured
    (3, 2, 2, (3, 3), 1),       # no divisor reaches 8
    (50, 4, 4, (1, 3), 2),
])
def test_merge_factor(groups, ipg, opg, kernel, want):
    assert merge_factor(groups, ipg, opg, kernel) == want


@pytest.mark.parametrize("cin,cout,groups,kernel,stride,bias,merge", [
    (12, 12, 6, 3, 1, False, None), (12, 24, 6, 3, 2, False, 3), (8, 16, 8, 3, 1, True, None),
    (20, 20, 10, 5, 1, False, 5), (6, 6, 3, 3, 2, True, 3), (16, 16, 8, 3, 1, False, 1)])
def test_merged_group_conv_equals_the_grouped_conv(cin, cout, groups, kernel, stride, bias,
                                                    merge):
    rng = np.random.RandomState(cin + cout + groups)
    side = (7 + 2 * (kernel // 2) - kernel) // stride + 1
    x = mx.nd.array(rng.standard_normal((2, cin, 7, 7)), dtype="float64")
    dy = mx.nd.array(rng.standard_normal((2, cout, side, side)), dtype="float64")
    kw = dict(strides=stride, padding=kernel // 2, groups=groups, use_bias=bias,
              in_channels=cin, prefix="conv_")
    plain = nn.Conv2D(cout, kernel, **kw)
    merged = MergedGroupConv2D(cout, kernel, merge=merge, **kw)
    for conv in (plain, merged):
        conv.initialize(mx.init.Uniform(1.0))
        conv.cast("float64")
        conv.hybridize()
    copy_params(plain, merged)  # same names and shapes
    if merge != 1:
        assert merged.merge > 1
    assert_same_pass(recorded_pass(merged, x, dy), recorded_pass(plain, x, dy), 1e-12)


def test_merged_group_conv_arguments():
    with pytest.raises(ValueError, match="merge=4 does not divide groups=6"):
        MergedGroupConv2D(12, 3, groups=6, in_channels=12, merge=4)
    with pytest.raises(ValueError, match="in_channels"):
        MergedGroupConv2D(12, 3, groups=6)
    assert "merge=3" in repr(MergedGroupConv2D(12, 3, groups=6, in_channels=12, merge=3))


@pytest.mark.parametrize("groups,channels,act", [(4, 8, True), (1, 12, True), (4, 8, False),
                                                 (1, 12, "tanh")])
def test_conv_bn_act_native_bn_equals_the_stock_layers(groups, channels, act):
    """ConvBNAct(native_bn=True) (BatchNorm + ReLU as the BNReLU operator): the parameters,
    outputs, gradients and running statistics of the stock layers (float64, two steps)."""
    nets = []
    for native in (True, False):
        net = ConvBNAct(8, channels, 3, 1, 1, groups=groups, act=act, native_bn=native,
                        norm_kwargs={"momentum": 0.8}, prefix="c_")
        net.initialize(mx.init.Xavier())
        net.cast("float64")
        net.hybridize()
        nets.append(net)
    assert isinstance(nets[0].bn, BatchNormReLU) and type(nets[1].bn) is nn.BatchNorm
    copy_params(nets[0], nets[1])
    rng = np.random.RandomState(4)
    for _ in range(2):
        x = mx.nd.array(rng.standard_normal((3, 8, 5, 6)), dtype="float64")
        dy = mx.nd.array(rng.standard_normal((3, channels, 5, 6)), dtype="float64")
        assert_same_pass(*(recorded_pass(net, x, dy) for net in nets), 1e-10)
