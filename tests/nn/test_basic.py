"""The in-graph train/inference mode probe: train_mode_flag and train_mode_dropout follow
autograd's mode in eager and hybridized Gluon and Module's is_train, and pass no gradient."""
import numpy as np
import pytest
import mxnet as mx
from mxnet import autograd, gluon

from gluon_models.nn import dropfactor_mask, train_mode_dropout, train_mode_flag


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
