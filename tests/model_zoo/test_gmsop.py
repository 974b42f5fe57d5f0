"""The GM-SOP family's networks: parameter counts against the authors' init files (and the
README figures beside them), the 64 x 64 trunk's geometry, the authors' initialisation and
stem learning rate, the options, the GM head on a gluoncv ImageNet backbone, and the balance
loss reaching the trainer's symbol. Export / reload / native = stock of every network: the
registry-wide tests (tests/model_zoo/test_registry.py)."""
import numpy as np
import pytest
import mxnet as mx

import gluon_models
from gluon_models.model_zoo.compose import _descendants
from gluon_models.model_zoo.reference import REFERENCE, SOURCES
from gluon_models.nn.gmsop import GatedMixture
from gluon_models.training import FitConfig, training_symbol
from gluon_models.training.fit import lr_multipliers
from gluon_models.utils.summary import model_summary

# spec section 5.2, "total (code)" and "BN running" columns, 1000 classes
COUNTS = {
    "resnet18_imagenet64": (829192, 2400),
    "wrn36_2_imagenet64": (6184840, 8672),  # backbone 5,927,840 + 256 * 1000 + 1000
    "sr_sop_resnet18_imagenet64": (8957192, 2400),
    "gmgap16_8_resnet18_imagenet64": (2333192, 4192),
    "gmgap16_8_wrn36_2_imagenet64": (8687496, 10720),
    "gmsop16_8_resnet18_imagenet64": (10352776, 19680),
    "gmsop16_8_wrn36_2_imagenet64": (17809160, 26464),
}


def counts(net):
    learn = sum(int(np.prod(p.shape)) for p in net.collect_params().values()
                if p.grad_req != "null" and not p.name.endswith("triu"))
    running = sum(int(np.prod(p.shape)) for p in net.collect_params().values()
                  if "running" in p.name)
    return learn, running


def test_family_lists_the_seven_networks():
    assert sorted(gluon_models.list_models(family="gmsop")) == sorted(COUNTS)
    for name in COUNTS:
        assert gluon_models.model_info(name)["input_size"] == 64


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_parameter_counts_equal_the_authors_code(name):
    net = gluon_models.get_model(name)
    assert counts(net) == COUNTS[name]
    assert model_summary(name).params == COUNTS[name][0]
    ref = REFERENCE.get(name)
    if ref is not None:
        assert ref["exact_params"] == COUNTS[name][0] and ref["source"] in SOURCES
        # the README's rounded figure agrees to 0.1M except its two inconsistent entries
        off = abs(ref["params_m"] - COUNTS[name][0] / 1e6)
        assert (off > 0.06) == (name in ("resnet18_imagenet64",
                                         "gmsop16_8_wrn36_2_imagenet64")), off


@pytest.mark.parametrize("name,side,channels", [
    ("resnet18_imagenet64", 8, 128), ("wrn36_2_imagenet64", 8, 256),
    ("sr_sop_resnet18_imagenet64", 16, 128), ("gmgap16_8_resnet18_imagenet64", 8, 128),
    ("gmgap16_8_wrn36_2_imagenet64", 8, 256), ("gmsop16_8_resnet18_imagenet64", 16, 128),
    ("gmsop16_8_wrn36_2_imagenet64", 16, 256)])
def test_trunk_geometry(name, side, channels):
    """Stage 5 keeps stride 1 in front of second-order pooling (16 x 16), 2 otherwise."""
    net = gluon_models.get_model(name, classes=3)
    _, out, _ = net.features(mx.sym.var("data")).infer_shape(data=(1, 3, 64, 64))
    assert out[0] == (1, channels, side, side)
    blocks = [len(s) for s in list(net.features._children.values())[1:]]
    assert blocks == ([4] * 4 if "wrn" in name else [2] * 4)
    projections = [s[0].proj is not None for s in list(net.features._children.values())[1:]]
    assert projections == [("wrn" in name), True, True, True]


def test_authors_initialisation_and_stem_learning_rate():
    net = gluon_models.get_model("gmsop16_8_resnet18_imagenet64", classes=1000)
    net.initialize()
    params = {p.name[len(net.prefix):]: p for p in net.collect_params().values()}
    stem = params["stem_conv_weight"]
    fan_in = 27
    assert abs(float(stem.data().asnumpy().std()) - np.sqrt(2 / fan_in) / 60) < 0.1 * \
        np.sqrt(2 / fan_in) / 60
    assert stem.lr_mult == pytest.approx(1 / 3600)
    assert (params["stem_conv_bias"].data().asnumpy() == 0).all()
    conv = params["stage5_block1_b_conv_weight"].data().asnumpy()
    assert abs(conv.std() - np.sqrt(2 / (9 * 128))) < 0.05 * np.sqrt(2 / (9 * 128))
    comp = params["gm_component_weight0"].data().asnumpy()  # (16 * 256, 128)
    assert comp.shape == (4096, 128, 1, 1)
    assert abs(comp.std() - np.sqrt(2 / 128)) < 0.05 * np.sqrt(2 / 128)
    fc = params["gm_fc_weight"].data().asnumpy()
    assert abs(fc.std() - np.sqrt(2 / 8256)) < 0.05 * np.sqrt(2 / 8256)
    assert (params["gm_fc_bias"].data().asnumpy() == 0).all()
    for key in ("gm_gate_gate_weight", "gm_gate_noise_weight"):
        assert params[key].shape == (8256, 16)
        assert (params[key].data().asnumpy() == np.float32(1 / 8256)).all()
    bns = [b for b in _descendants(net) if isinstance(b, mx.gluon.nn.BatchNorm)]
    assert len(bns) == 1 + 16 + 3 + 2 + 1  # stem, 8 blocks x 2, 3 projections, gate, fusion
    assert {b._kwargs["momentum"] for b in bns} == {0.7}
    assert {b._kwargs["eps"] for b in bns} == {1e-5}
    # the trainer reads the stem's multiplier; every other parameter keeps 1
    mult = lr_multipliers(FitConfig(), net)
    assert mult[stem.name] == pytest.approx(1 / 3600)
    assert {v for k, v in mult.items() if k != stem.name} == {1.0}


def test_options_reach_the_head():
    net = gluon_models.get_model("gmsop16_8_wrn36_2_imagenet64", classes=5, num_components=4,
                                 top_k=2, routing="routed", noise="per_entry")
    head = net.representation
    assert isinstance(head, GatedMixture) and head.dropout._rate == 0.4
    assert head.components.num == 4 and head.components.top_k == 2
    assert head.components.routing == "routed" and head.gate.noise == "per_entry"
    assert head.gate.gate_weight.shape == (8256, 4)
    assert gluon_models.get_model("gmgap16_8_resnet18_imagenet64").representation \
        .dropout._rate == 0.2
    with pytest.raises(TypeError, match="no option"):
        gluon_models.get_model("resnet18_imagenet64", top_k=3)
    with pytest.raises(ValueError, match="top_k"):
        gluon_models.get_model("gmgap16_8_resnet18_imagenet64", top_k=20)


def test_dense_equals_routed_network():
    x = mx.nd.random.uniform(-60, 60, (3, 3, 64, 64))
    outs, first = [], None
    for routing in ("dense", "routed"):
        net = gluon_models.get_model("gmsop16_8_resnet18_imagenet64", classes=5,
                                     num_components=4, top_k=2, routing=routing)
        net.initialize(mx.init.Xavier())
        params = net._collect_params_with_prefix()
        if first is None:
            first = params
            params["representation.gate.gate_weight"].set_data(
                mx.nd.random.normal(0, 1, (8256, 4)))
        else:  # the routed form has one more constant, its component numbers
            assert set(params) - set(first) == {"representation.components.index"}
            for key, p in first.items():
                params[key].set_data(p.data())
        net.hybridize()
        outs.append(net(x).asnumpy())
    np.testing.assert_allclose(outs[1], outs[0], rtol=0,
                               atol=1e-4 * float(np.abs(outs[0]).max()))


def test_gm_head_on_a_gluoncv_imagenet_backbone():
    net = gluon_models.get_model("resnet18", representation="gmsop", classes=6,
                                 representation_options=dict(num_components=4, top_k=2))
    assert isinstance(net.representation, GatedMixture)
    assert net.representation.components.widths == (512, 128)  # min(2C, 512), 128
    net.initialize()
    assert net(mx.nd.random.uniform(-1, 1, (2, 3, 64, 64))).shape == (2, 6)
    gap = gluon_models.get_model("resnet18", representation="gmgap", classes=6)
    assert gap.representation.components.output_dim == 512


@pytest.mark.parametrize("name", ["gmgap16_8_resnet18_imagenet64", "resnet18_imagenet64"])
def test_training_symbol_carries_the_balance_loss(name):
    net = gluon_models.get_model(name, classes=5)
    sym = training_symbol(net)
    if name.startswith("gm"):
        assert sym.list_outputs() == ["softmax_output", "extra_loss0_output"]
        internals = sym.get_internals().list_outputs()
        assert any("extra_loss0" in o for o in internals)
    else:
        assert sym.list_outputs() == ["softmax_output"]


def test_imagenet64_augmentation_preset():
    """Mean subtraction on 0-255 (the dataset's mean), no std, random flip, no pad or crop."""
    from gluon_models.data.presets import AUG_PRESETS
    preset = AUG_PRESETS["imagenet64"]
    assert preset.pad == 0 and preset.mirror is True
    assert preset.mean_rgb is None and preset.std_rgb == (1.0, 1.0, 1.0)


def test_module_trainer_trains_and_logs_the_balance_loss(caplog):
    """One epoch of the shared Module trainer on a GM network: the balance loss is logged
    (the epoch mean of CV^2) and every learnable parameter moves, the gate matrices too."""
    import logging
    from gluon_models.training import fit
    rng = np.random.RandomState(0)
    x = rng.uniform(-60, 60, (12, 3, 64, 64)).astype("float32")
    y = rng.randint(0, 3, 12).astype("float32")

    def data(epoch=0):
        return mx.io.NDArrayIter(x, y, 8, shuffle=False, last_batch_handle="pad",
                                 label_name="softmax_label")
    mx.random.seed(3)
    net = gluon_models.get_model("gmgap16_8_resnet18_imagenet64", classes=3,
                                 num_components=4, top_k=2)
    net.initialize()
    before = {n: p.data().asnumpy().copy() for n, p in net.collect_params().items()
              if p.grad_req != "null"}
    with caplog.at_level(logging.INFO):
        fit(net, data, None, FitConfig(num_epochs=1, lr=0.01, wd_rule="all", kv_store="local"))
    logged = [r.getMessage() for r in caplog.records if "extra_loss0" in r.getMessage()]
    assert logged and np.isfinite(float(logged[-1].split("=")[-1]))
    still = [n for n, p in net.collect_params().items()
             if n in before and np.array_equal(p.data().asnumpy(), before[n])]
    assert not still, still


def test_gluon_loop_through_extra_losses_with_static_memory():
    """``net.extra_losses(mx.nd, x)`` in a Gluon loop (sum CE + weight * sum loss_b, then
    ``trainer.step(B)``) on a net hybridized with static_alloc: the same gradients as without
    (a stand-alone Identity output with static_alloc used to break MXNet's backward)."""
    x = mx.nd.random.uniform(-60, 60, (3, 3, 64, 64))
    label = mx.nd.array([0, 2, 1])
    grads = []
    for static in (False, True):
        mx.random.seed(5)
        net = gluon_models.get_model("gmgap16_8_resnet18_imagenet64", classes=3,
                                     num_components=4, top_k=2, dropout=0.0, noise="none")
        net.initialize()
        net.hybridize(static_alloc=static)
        with mx.autograd.record():
            scores, extra = net.extra_losses(mx.nd, x)
            loss = mx.gluon.loss.SoftmaxCrossEntropyLoss()(scores, label).sum() + \
                sum(e.weight * e.loss.sum() for e in extra)
        loss.backward()
        grads.append({k: p.grad().asnumpy() for k, p in net._collect_params_with_prefix()
                      .items() if p.grad_req != "null"})
    for k in grads[0]:
        np.testing.assert_allclose(grads[1][k], grads[0][k], rtol=1e-4,
                                   atol=1e-5 * max(float(np.abs(grads[0][k]).max()), 1e-6),
                                   err_msg=k)
