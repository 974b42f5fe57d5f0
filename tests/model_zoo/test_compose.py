"""The one classifier shape (features -> representation -> output), gluoncv backbones cut at
their last feature map, partial weight loading, freezing, and the registry's aliases."""
import argparse

import numpy as np
import pytest
import mxnet as mx
from mxnet import gluon

import gluon_models
from gluon_models.model_zoo import add_model_args, model_options_from_args
from gluon_models.model_zoo.compose import (Classifier, gluoncv_features, load_parts,
                                            representations)
from gluon_models.model_zoo.registry import _SEED_NETWORKS
from gluon_models.utils.summary import summary


def _count(net):
    return sum(int(np.prod(p.shape)) for p in net.collect_params().values()
               if p.grad_req != "null")


def test_every_registered_network_has_the_three_parts():
    for name in gluon_models.list_models():
        net = gluon_models.get_model(name)
        assert list(net._children) == ["features", "representation", "output"], name
        rep = gluon_models.model_info(name)["options"].get("representation")
        if getattr(net.representation, "logits", False):  # the head gives the scores (GM)
            assert type(net.output).__name__ == "Identity", name
            assert net.representation.output_dim == net.classes, name
        elif rep in ("gavp", "fb"):
            assert net.representation.output_dim == (net.classes if name.count("fbn") else
                                                     net.feature_channels), name
        else:  # iSQRT-COV, AlexNet / VGG's flattened last pooling: the classifier reads it
            first = net.output[0] if isinstance(net.output, gluon.nn.HybridSequential) else net.output
            first = first if isinstance(first, gluon.nn.Dense) else net.output[1]  # AlexNet: dropout
            assert first.weight.shape[1] == net.representation.output_dim, name


def test_a_representation_goes_onto_any_backbone():
    assert {"gavp", "fb"} <= set(representations())
    x = mx.nd.random.uniform(-1, 1, (2, 3, 32, 32))
    # the FB head on an IGC backbone: the head gives the scores, the output is the identity
    net = gluon_models.get_model("igc_resnet_cifar", depth=8, primary=4, secondary=2,
                                 classes=5, representation="fb",
                                 representation_options=dict(num_factor=3))
    net.initialize()
    assert type(net.output).__name__ == "Identity"
    assert net.representation.fb.bilinear.weight.shape == (5, 3, 32, 1, 1)
    assert net(x).shape == (2, 5)
    # the network's impl reaches the head: the stock twin has no FMConvolution
    stock = gluon_models.get_model("igc_resnet_cifar", depth=8, primary=4, secondary=2,
                                   classes=5, representation="fb", impl="stock")
    assert "FMConvolution" not in stock(mx.sym.var("data")).tojson()
    assert "FMConvolution" in net(mx.sym.var("data")).tojson()
    # global average pooling on the FBN trunk instead of the FB head: a Dense classifier
    plain = gluon_models.get_model("inception_bn_small_fbn_cifar", representation="gavp",
                                   classes=4)
    plain.initialize()
    assert plain.output.weight.shape == (4, 336) and plain(x).shape == (2, 4)
    # no representation: the features go to the classifier as they are
    flat = Classifier(lambda: (gluon.nn.Flatten(), 3 * 32 * 32), 6, representation=None,
                      prefix="flat_")
    flat.initialize()
    assert flat(x).shape == (2, 6)
    with pytest.raises(ValueError, match="unknown representation 'cov'; registered: .*gavp"):
        gluon_models.get_model("igc_resnet_cifar", representation="cov")


@pytest.mark.parametrize("name,channels,side,last_side,last", [
    ("resnet18_v1b", 512, 224, 7, "HybridSequential"),
    ("resnet18_v1", 512, 224, 7, "HybridSequential"),
    ("se_resnet18_v1", 512, 224, 7, "HybridSequential"),
    ("vgg11_bn", 512, 224, 14, "Activation"),  # conv5 + BN + ReLU, pool5 removed
    ("alexnet", 256, 224, 13, "Conv2D"),  # conv5 with its ReLU, the last max pool removed
    ("densenet121", 1024, 224, 7, "Activation"),  # norm5 + ReLU
    ("inceptionv3", 2048, 299, 8, "HybridConcurrent"),
])
def test_gluoncv_backbones_are_cut_at_the_last_feature_map(name, channels, side, last_side,
                                                           last):
    def build():
        return Classifier(lambda: gluoncv_features(name), 10, prefix="cut_")
    net = build()
    assert net.feature_channels == channels and type(net.features[-1]).__name__ == last
    _, out, _ = net.features(mx.sym.var("data")).infer_shape(data=(1, 3, side, side))
    assert out[0] == (1, channels, last_side, last_side)
    # the same parameter names however many gluoncv networks the process built before
    names = list(net.collect_params())
    assert list(build().collect_params()) == names and all(n.startswith("cut_") for n in names)


def test_gluoncv_resnet_counts_and_last_stride():
    # gluoncv's ResNet-50 v1b: features + GAvP + a 1000-way classifier = its 25,557,032;
    # with 200 classes 23,508,032 + 409,800 (fast MPN-COV's table, 4.7)
    # (gluoncv leaves in_channels unset: shapes come from the symbol)
    net = Classifier(lambda: gluoncv_features("resnet50_v1b"), 1000, prefix="r50_")
    assert summary(net, (3, 224, 224)).params == 25557032
    net200 = Classifier(lambda: gluoncv_features("resnet50_v1b"), 200, prefix="r50_")
    assert summary(net200, (3, 224, 224)).params == 23917832
    assert summary(net200.features, (3, 224, 224)).params == 23508032
    # the conv parts of fast MPN-COV's table (4.7): VGG-16 14,714,688, AlexNet 2,469,696
    for name, count in (("vgg16", 14714688), ("alexnet", 2469696)):
        net = Classifier(lambda: gluoncv_features(name), 10, prefix="c_")
        assert summary(net.features, (3, 224, 224)).params == count, name
    s1 = Classifier(lambda: gluoncv_features("resnet50_v1b", last_stride=1), 10, prefix="s1_")
    _, out, _ = s1.features(mx.sym.var("data")).infer_shape(data=(1, 3, 224, 224))
    assert out[0] == (1, 2048, 14, 14)
    with pytest.raises(ValueError, match="no cut point"):
        gluoncv_features("mobilenet1.0")
    with pytest.raises(ValueError, match="last_stride=1 applies to the ResNet"):
        gluoncv_features("vgg11", last_stride=1)


def _small(classes, prefix="small_", **kw):
    net = gluon_models.get_model("igc_resnet_cifar", depth=8, primary=4, secondary=2,
                                 classes=classes, **kw)
    net.initialize(mx.init.Xavier())
    return net


def test_load_parts_takes_the_features_and_leaves_a_new_classifier(tmp_path):
    trained = _small(10)
    trained.save_parameters(str(tmp_path / "structural.params"))
    trained.collect_params().save(str(tmp_path / "full.params"))
    for f in ("structural.params", "full.params"):
        mx.random.seed(5)
        new = _small(3)
        out_before = new.output.weight.data().asnumpy()
        loaded = load_parts(new, str(tmp_path / f))
        assert len(loaded) == len(list(new.features.collect_params().keys()))
        for p, q in zip(trained.features.collect_params().values(),
                        new.features.collect_params().values()):
            np.testing.assert_array_equal(p.data().asnumpy(), q.data().asnumpy())
        np.testing.assert_array_equal(new.output.weight.data().asnumpy(), out_before)
    # a Module checkpoint (arg:/aux: names) and a name map (another network's prefix)
    args = {"arg:old_" + k[len(trained.prefix):]: v.data()
            for k, v in trained.collect_params().items() if "running" not in k}
    args.update({"aux:old_" + k[len(trained.prefix):]: v.data()
                 for k, v in trained.collect_params().items() if "running" in k})
    mx.nd.save(str(tmp_path / "ckpt.params"), args)
    new = _small(3)
    load_parts(new, str(tmp_path / "ckpt.params"),
               name_map=lambda k: trained.prefix + k[len("old_"):])
    np.testing.assert_array_equal(new.features[0].conv.weight.data().asnumpy(),
                                  trained.features[0].conv.weight.data().asnumpy())


def test_load_parts_names_what_does_not_fit(tmp_path):
    trained = _small(10)
    params = {k: v.data() for k, v in trained.collect_params().items()}
    stem = trained.features[0].conv.weight.name
    del params[stem]
    mx.nd.save(str(tmp_path / "missing.params"), params)
    with pytest.raises(ValueError, match="missing.*%s" % stem):
        load_parts(_small(3), str(tmp_path / "missing.params"))
    params[stem] = mx.nd.zeros((1, 1, 1, 1))
    mx.nd.save(str(tmp_path / "shape.params"), params)
    with pytest.raises(ValueError, match="mis-shaped.*%s" % stem):
        load_parts(_small(3), str(tmp_path / "shape.params"))
    with pytest.raises(ValueError, match="no child 'head'"):
        load_parts(_small(3), str(tmp_path / "shape.params"), parts=("head",))


def test_freeze_the_first_children_of_features():
    net = _small(3, freeze=2)
    req = [set(p.grad_req for p in c.collect_params().values())
           for c in net.features._children.values()]
    assert req[0] == {"null"} and req[1] == {"null"} and "write" in req[2]
    assert set(p.grad_req for p in net.output.collect_params().values()) == {"write"}
    with pytest.raises(ValueError, match="freeze must be an integer in \\[0, 4\\]"):
        _small(3, freeze=5)


def _cli_options(*argv):
    parser = argparse.ArgumentParser()
    add_model_args(parser)
    return model_options_from_args(parser.parse_args(list(argv)))


def _shapes(net):
    return {k[len(net.prefix):]: p.shape for k, p in net.collect_params().items()}


@pytest.mark.parametrize("alias", sorted(_SEED_NETWORKS))
def test_a_seed_alias_is_the_same_network_everywhere(alias):
    """get_model(alias) applies the alias's options exactly as the command line does (an
    alias once resolved to its builder only, e.g. resnet-small-fmconv to a plain ResNet)."""
    if alias in ("resnet-fmconv", "resnet-preact"):  # ImageNet ResNet-50: same code, slower
        pytest.skip("covered by the other aliases of the same builders")
    direct = gluon_models.get_model(alias)
    via_cli = gluon_models.get_model(alias, **_cli_options("--network", alias))
    assert direct.prefix == via_cli.prefix and _shapes(direct) == _shapes(via_cli)
    assert gluon_models.model_info(alias)["family"] in ("igc", "fbn", "ibn_mx")


def test_resnet_small_fmconv_is_resnet164_fbn():
    alias, named = (gluon_models.get_model(n) for n in ("resnet-small-fmconv",
                                                         "resnet164_fbn_cifar"))
    assert _shapes(alias) == _shapes(named) and alias.prefix == named.prefix
    assert alias.representation.fb.bilinear.weight.shape == (10, 20, 256, 1, 1)


def test_registered_names_are_distinct_networks(readme_model_table):
    """Generic builders are functions, not registered models whose defaults repeat a named
    variant (once preact_resnet_cifar was resnet164_cifar again)."""
    names = gluon_models.list_models()
    assert not [n for n in names if n.startswith("preact_resnet")]
    rows = {line.split(" | ")[0][3:-1]: tuple(line.split(" | ")[3:5])
            for line in readme_model_table.splitlines() if line.startswith("| `")}
    assert sorted(rows) == sorted(names)
    # Two families' seeds name the same network; each family keeps its seed's name.
    same = {"resnet18": "resnet18_w64"}  # fast MPN-COV's torchvision ResNet-18 = IGC's C = 64
    assert all(rows[a] == rows[b] for a, b in same.items())
    # IBN-Net replaces BatchNorms by IBN layers of the same parameter count, so an IBN-a
    # network has the row of its plain backbone (resnet50_ibn_a: gluoncv's resnet50 of the
    # fast MPN-COV family): the IBN families are distinct among themselves.
    ibn = {n for n in names if gluon_models.model_info(n)["family"] in ("ibn", "ibn_mx")}
    # ... and the authors' baselines registered there have the rows of their IBN-a variants
    baselines = {"se_resnet50": "se_resnet50_ibn_a", "se_resnet101": "se_resnet101_ibn_a",
                 "se_resnet152": "se_resnet152_ibn_a", "resnext152_32x4d": "resnext152_ibn_a"}
    assert all(rows[a] == rows[b] for a, b in baselines.items())
    ibn -= set(baselines)
    for group in ([n for n in rows if n not in ibn and n not in baselines], sorted(ibn)):
        distinct = [rows[n] for n in group if n not in same]
        assert len(set(distinct)) == len(distinct)
