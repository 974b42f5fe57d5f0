"""Every registered network: forward, gradients, eager == hybridized == exported == stock."""
import numpy as np
import pytest
import mxnet as mx
from mxnet import autograd, gluon

import gluon_models
from gluon_models.model_zoo import registry

ALL = gluon_models.list_models()


def input_shape(name):
    return (2, 3, 32, 32) if name.endswith("_cifar") else (1, 3, 224, 224)


def build(name, impl="native", classes=7):
    net = gluon_models.get_model(name, classes=classes, impl=impl)
    net.initialize(mx.init.Xavier())
    return net


@pytest.mark.parametrize("name", ALL)
def test_paths_agree(name, tmp_path):
    """Eager, hybridized, exported (SymbolBlock), Module and the stock twin: same output."""
    x = mx.nd.random.uniform(-1, 1, input_shape(name))
    net = build(name)
    eager = net(x).asnumpy()
    assert eager.shape == (x.shape[0], 7) and np.isfinite(eager).all()

    net.hybridize()
    np.testing.assert_allclose(net(x).asnumpy(), eager, rtol=1e-4, atol=1e-5)
    net.export(str(tmp_path / name))
    imported = gluon.SymbolBlock.imports(str(tmp_path / (name + "-symbol.json")), ["data"],
                                         str(tmp_path / (name + "-0000.params")))
    np.testing.assert_allclose(imported(x).asnumpy(), eager, rtol=1e-4, atol=1e-5)

    sym, args, aux = mx.model.load_checkpoint(str(tmp_path / name), 0)
    mod = mx.mod.Module(sym, data_names=["data"], label_names=None)
    mod.bind(data_shapes=[("data", x.shape)], for_training=False)
    mod.set_params(args, aux)
    mod.forward(mx.io.DataBatch([x]), is_train=False)
    np.testing.assert_allclose(mod.get_outputs()[0].asnumpy(), eager, rtol=1e-4, atol=1e-5)

    stock = gluon_models.get_model(name, classes=7, impl="stock")
    stock.collect_params().load(str(tmp_path / (name + "-0000.params")), allow_missing=False,
                                ignore_extra=False)
    stock.hybridize()
    np.testing.assert_allclose(stock(x).asnumpy(), eager, rtol=1e-4, atol=1e-5)
    has_reorder = '"Reorder"' in (tmp_path / (name + "-symbol.json")).read_text()
    assert has_reorder == ("igc" in name)


@pytest.mark.parametrize("name", ALL)
def test_every_parameter_gets_a_gradient_native_equals_stock(name):
    x = mx.nd.random.uniform(-1, 1, input_shape(name))
    grads = []
    for impl in ("native", "stock"):
        net = build(name, impl)
        if grads:  # same weights as the native net
            for (_, p), (_, q) in zip(sorted(first.collect_params().items()),
                                      sorted(net.collect_params().items())):
                q.set_data(p.data())
        else:
            first = net
        net.hybridize()
        with autograd.record():
            loss = (net(x) ** 2).mean()
        loss.backward()
        params = {k[len(net.prefix):]: p for k, p in net.collect_params().items()
                  if p.grad_req != "null"}
        norms = {k: float(mx.nd.norm(p.grad()).asscalar()) for k, p in params.items()}
        assert all(v > 0 for v in norms.values()), [k for k, v in norms.items() if v == 0]
        grads.append({k: p.grad().asnumpy() for k, p in params.items()})
    for k in grads[0]:
        np.testing.assert_allclose(grads[0][k], grads[1][k], rtol=1e-4, atol=1e-6)


def test_registry_lookup_and_listing():
    assert gluon_models.list_models("igc_resnet18_*") == [
        "igc_resnet18_l4m32", "igc_resnet18_l16m16", "igc_resnet18_l100m2"]  # natural order
    assert set(gluon_models.list_models(family="igc")) == set(ALL)
    assert gluon_models.list_models(family="no-such-family") == []
    net = gluon_models.get_model("IGC_Plain_CIFAR", depth=8, classes=3)  # case-insensitive
    assert net.output._units == 3
    info = gluon_models.model_info("igc_plain_cifar")
    assert info["family"] == "igc" and info["options"]["primary"] == 24


def test_registry_errors():
    with pytest.raises(ValueError, match="did you mean: .*igc_resnet18_l4m32"):
        gluon_models.get_model("igc_resnet18_l4m3")
    with pytest.raises(TypeError, match="no option\\(s\\) width"):
        gluon_models.get_model("igc_plain_cifar", width=3)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_model("igc")(gluon_models.model_info("resnet18_w64")["builder"])
