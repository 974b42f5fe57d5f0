"""The fast MPN-COV family (arXiv 1712.01034, https://github.com/jiangtaoxie/fast-MPN-COV):
exact parameter counts of the published networks, the authors' split of composed models into
features / representation / classifier, their failing combinations, freezing, initialisation,
export.

Counts come from the symbol (no forward pass); forwards run at 64 pixels, where the networks'
global representations allow it (224-pixel forwards only in the slow set).
"""
import numpy as np
import pytest
import mxnet as mx
from mxnet import gluon

import gluon_models
from gluon_models.utils.summary import summary

FULL = (3, 224, 224)


def params(name, **options):
    return summary(gluon_models.get_model(name, **options), FULL).params


def split(net, size=224):
    """Learnable parameters of ``features`` / ``representation`` / ``output``, with shapes
    inferred from the symbol (BN running statistics are auxiliary states, iSQRT-COV's index
    and CBP's hashes constants: neither counts)."""
    sym = net(mx.sym.var("data"))
    shapes = dict(zip(sym.list_arguments(), sym.infer_shape(data=(1, 3, size, size))[0]))
    out = []
    for part in (net.features, net.representation, net.output):
        out.append(sum(int(np.prod(shapes[p.name])) for p in part.collect_params().values()
                       if p.name in shapes and not isinstance(p, gluon.Constant)))
    return tuple(out)


# ---- exact counts (spec section 4.4 / 4.5: the authors' networks, 1000 classes) --------------

@pytest.mark.parametrize("name,count", [("mpncov_resnet50", 56929832),
                                        ("mpncov_resnet101", 75921960),
                                        ("mpncov_vgg16_bn", 170479144)])
def test_published_network_counts(name, count):
    assert params(name) == count


def test_reference_figures_are_our_counts():
    """The README table's "authors' definition" column holds the counts measured above."""
    from gluon_models.model_zoo.reference import REFERENCE, SOURCES
    for name in ("mpncov_resnet50", "mpncov_resnet101", "mpncov_vgg16_bn"):
        assert REFERENCE[name]["exact_params"] == params(name)
        assert REFERENCE[name]["source"] in SOURCES


def test_resnet50_gavp_200_classes():
    assert params("resnet50", representation="gavp", classes=200) == 23917832


@pytest.mark.parametrize("name,count", [("alexnet", 61100840), ("vgg16", 138357544),
                                        ("vgg16_bn", 138365992), ("resnet18", 11689512),
                                        ("resnet50", 25557032), ("densenet121", 7978856),
                                        ("inception_v3", 23834568)])
def test_backbones_are_torchvision_sized(name, count):
    """The repository builds torchvision's networks (Inception v3 without its auxiliary
    head): their well-known sizes with 1000 classes."""
    size = gluon_models.model_info(name)["input_size"]
    assert summary(gluon_models.get_model(name), (3, size, size)).params == count


# ---- the authors' composed models (spec table 4.7; every model here is built from scratch) --

@pytest.mark.parametrize("name,options,parts", [
    # mpncovresnet50 + MPNCOV, "pre" row: layer_reduce in features, no DR in the representation
    ("mpncov_resnet50", dict(classes=200), (24032832, 0, 6579400)),
    ("mpncov_resnet101", dict(classes=200), (43024960, 0, 6579400)),
    ("mpncov_resnet50", dict(), (24032832, 0, 32897000)),
    # mpncovvgg16_bn + None: its MPNCOV kept, its 3-FC head collapsed into one Linear
    ("mpncov_vgg16_bn", dict(representation=None), (14723136, 131584, 32897000)),
    ("mpncov_vgg16_bn", dict(), (14723136, 131584, 155624424)),
    ("vgg16", dict(representation="isqrtcov"), (14714688, 131584, 155624424)),
    ("alexnet", dict(representation="isqrtcov"), (2469696, 66048, 155624424)),
    ("resnet50", dict(representation="gavp", classes=200), (23508032, 0, 409800)),
    # the "pre" rows of plain backbones: one Linear (VGG drops fc6 / fc7), iSQRT-COV without DR
    ("vgg16", dict(representation="bcnn", classes=200, pretrained_head=True),
     (14714688, 0, 52429000)),
    ("vgg16", dict(representation="cbp", classes=200, pretrained_head=True),
     (14714688, 0, 1638600)),
    ("vgg16", dict(representation="isqrtcov", classes=200, pretrained_head=True),
     (14714688, 0, 26265800)),
    ("resnet50", dict(representation="gavp", classes=200, pretrained_head=True),
     (23508032, 0, 409800)),
    ("alexnet", dict(representation="isqrtcov", reduced_dim=256, pretrained_head=True),
     (2469696, 66048, 32897000)),
])
def test_table_rows(name, options, parts):
    assert split(gluon_models.get_model(name, **options)) == parts


@pytest.mark.parametrize("name,options,dim", [
    ("vgg16", dict(representation="bcnn"), 262144),
    ("vgg16", dict(representation="cbp"), 8192),
    ("vgg16", dict(representation="isqrtcov", reduced_dim=0), 131328),  # no DR
    ("vgg16", dict(representation="isqrtcov"), 32896),
    ("resnet50", dict(), 2048),
    ("resnet18", dict(), 512),
    ("densenet121", dict(), 1024),
    ("densenet169", dict(), 1664),
    ("densenet201", dict(), 1920),
    ("densenet161", dict(), 2208),
])
def test_representation_dims(name, options, dim):
    net = gluon_models.get_model(name, **options)
    assert net.representation.output_dim == dim
    first = net.output[0] if isinstance(net.output, gluon.nn.HybridSequential) else net.output
    assert first.weight.shape[1] == dim


def test_own_heads_without_representation():
    """AlexNet / VGG read their last max pooling (6 x 6 / 7 x 7) with their whole head; the
    others pool globally into one layer."""
    vgg = gluon_models.get_model("vgg16", classes=10)
    assert vgg.representation.output_dim == 25088
    assert [b.weight.shape for b in vgg.output if isinstance(b, gluon.nn.Dense)] == [
        (4096, 25088), (4096, 4096), (10, 4096)]
    alex = gluon_models.get_model("alexnet", classes=10)
    assert alex.representation.output_dim == 9216
    assert type(alex.output[0]).__name__ == "Dropout"  # torchvision's AlexNet head order
    assert split(gluon_models.get_model("vgg16")) == (14714688, 0, 123642856)
    assert split(gluon_models.get_model("alexnet")) == (2469696, 0, 58631144)


# ---- failing or senseless combinations (spec 4.8) ---------------------------------------------

@pytest.mark.parametrize("name,options,match", [
    ("mpncov_resnet50", dict(representation=None), "mpncov_resnet50 with representation=None"),
    ("mpncov_resnet101", dict(representation=None), "mpncov_resnet101 with representation"),
    ("mpncov_vgg16_bn", dict(representation="bcnn"), "mpncov_vgg16_bn with representation='bcnn'"),
    ("mpncov_vgg16_bn", dict(representation="gavp"), "mpncov_vgg16_bn with representation='gavp'"),
    ("resnet50", dict(representation="bcnn"), "resnet50 \\+ bcnn on 2048 channels"),
    ("resnet152", dict(representation="isqrtcov", reduced_dim=0),
     "resnet152 \\+ isqrtcov on 2048 channels"),
    ("densenet121", dict(representation="bcnn"), "densenet121 \\+ bcnn on 1024"),
    ("vgg16", dict(pretrained_head=True), "vgg16 with pretrained_head=True and no representation"),
    ("resnet50", dict(representation="isqrtcov", pretrained_head=True),
     "resnet50 \\+ isqrtcov on 2048 channels"),
    ("resnet50", dict(representation="gavp", reduced_dim=128), "reduced_dim applies"),
    ("vgg16", dict(representation="isqrtcov", reduced_dim=64,
                   representation_options={"reduced_dim": 32}), "reduced_dim given twice"),
    ("vgg16", dict(representation_options={"pool_size": None}), "without a representation"),
    ("resnet50", dict(representation="mpncov"), "representation must be one of"),
])
def test_rejected_combinations(name, options, match):
    with pytest.raises(ValueError, match=match):
        gluon_models.get_model(name, **options)


def test_resnet50_isqrtcov_reduced_by_default():
    """From scratch the authors' MPNCOV preset reduces 2048 -> 256: not rejected."""
    net = gluon_models.get_model("resnet50", representation="isqrtcov")
    assert net.representation.output_dim == 32896


# ---- options reach the blocks -----------------------------------------------------------------

def test_representation_options_reach_the_block():
    net = gluon_models.get_model("vgg16", representation="isqrtcov", reduced_dim=64,
                                 representation_options={"iter_num": 3})
    rep = net.representation
    assert (rep.dim, rep.iter_num, rep.output_dim) == (64, 3, 64 * 65 // 2)
    assert rep.reduce.conv.weight.shape == (64, 512, 1, 1)
    net = gluon_models.get_model("resnet18", representation="isqrtcov",
                                 representation_options={"reduced_dim": 128})
    assert net.representation.dim == 128
    assert gluon_models.get_model("vgg16", representation="cbp",
                                  representation_options={"proj_dim": 1024}
                                  ).representation.output_dim == 1024
    assert gluon_models.get_model("mpncov_resnet50").representation.iter_num == 5
    assert gluon_models.get_model("mpncov_resnet50").representation.reduce is None


# ---- structure: names, freezing, initialisation ------------------------------------------------

def test_mpncov_resnet_children_and_strides():
    net = gluon_models.get_model("mpncov_resnet50")
    assert list(net.features._children) == [
        "conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4",
        "layer_reduce", "layer_reduce_bn", "layer_reduce_relu"]
    names = net._collect_params_with_prefix()
    assert "features.layer_reduce.weight" in names and "output.weight" in names
    assert net.features.layer_reduce.weight.name == "mpncov_resnet50_layer_reduce_weight"
    # layer4 at stride 1: output stride 16
    out = net.features(mx.sym.var("data")).infer_shape(data=(1, 3, 224, 224))[1][0]
    assert out == (1, 256, 14, 14)
    assert net.features.layer_reduce._kwargs["no_bias"]


def learnable_names(block):
    # BN running statistics are never trained (grad_req 'null' from the start)
    return {p.name for p in block.collect_params().values()
            if "running_" not in p.name and not isinstance(p, gluon.Constant)}


def frozen_names(net):
    return {n for n in learnable_names(net) if net.collect_params()[n].grad_req == "null"}


@pytest.mark.parametrize("name,k,children", [("vgg16", 30, 30), ("vgg16_bn", 43, 43),
                                             ("resnet50", 8, 8), ("mpncov_resnet50", 11, 11),
                                             ("alexnet", 7, 7)])
def test_freeze(name, k, children):
    """``freeze=k``: the first k children of features, parameter-free ones counted (VGG-16:
    30 children, k = 30 freezes every convolution; ResNet: 8)."""
    assert len(gluon_models.get_model(name).features) == children
    net = gluon_models.get_model(name, freeze=k)
    assert frozen_names(net) == learnable_names(net.features)
    partial = gluon_models.get_model(name, freeze=2)  # conv1 (+ its ReLU / bn1)
    first_two = list(partial.features._children.values())[:2]
    assert frozen_names(partial) == set().union(*map(learnable_names, first_two))
    assert frozen_names(partial)
    with pytest.raises(ValueError, match="freeze"):
        gluon_models.get_model(name, freeze=children + 1)


def test_head_initialisation():
    """New Linear layers: PyTorch's default U(+-1/sqrt(fan_in)) on weight and bias; VGG's own
    head layers N(0, 0.01) with zero bias."""
    mx.random.seed(3)
    vgg = gluon_models.get_model("vgg16", representation="gavp")  # fc6 new, fc7 VGG's own
    vgg.output.initialize()
    fc6, fc7, fc8 = [b for b in vgg.output if isinstance(b, gluon.nn.Dense)]
    assert abs(fc7.weight.data().asnumpy().std() - 0.01) < 1e-3
    assert not fc7.bias.data().asnumpy().any()
    for fc, fan_in in ((fc6, 512), (fc8, 4096)):
        bound = 1 / np.sqrt(fan_in)
        for p in (fc.weight, fc.bias):
            v = p.data().asnumpy()
            assert np.abs(v).max() <= bound and np.abs(v).max() > 0.9 * bound
    alex = gluon_models.get_model("alexnet", representation="gavp")
    alex.output.initialize()
    fc6 = alex.output[1]
    assert fc6.weight.shape == (4096, 256)
    v = fc6.bias.data().asnumpy()
    assert np.abs(v).max() <= 1 / 16 and np.abs(v).max() > 0.9 / 16


# ---- forward, hybridize, export -----------------------------------------------------------------

@pytest.mark.parametrize("name", ["mpncov_resnet50", "mpncov_resnet101", "mpncov_vgg16_bn"])
def test_named_networks_export(name, tmp_path):
    mx.random.seed(0)
    net = gluon_models.get_model(name, classes=5)
    net.initialize()
    x = mx.nd.random.uniform(-1, 1, (2, 3, 64, 64))
    eager = net(x).asnumpy()
    assert eager.shape == (2, 5) and np.isfinite(eager).all()
    net.hybridize()
    hybrid = net(x).asnumpy()
    np.testing.assert_allclose(hybrid, eager, rtol=0, atol=1e-4 * np.abs(eager).max())
    net.export(str(tmp_path / name))
    loaded = gluon.SymbolBlock.imports(str(tmp_path / (name + "-symbol.json")), ["data"],
                                       str(tmp_path / (name + "-0000.params")))
    np.testing.assert_allclose(loaded(x).asnumpy(), hybrid, rtol=0,
                               atol=1e-5 * np.abs(hybrid).max())


@pytest.mark.parametrize("name,options", [
    ("resnet18", dict(representation="isqrtcov", reduced_dim=32)),
    # (VGG + B-CNN from scratch: a 1.07 G-parameter fc6, 262,144 -> 4096; counted above)
    ("resnet18", dict(representation="bcnn")),
    ("vgg11_bn", dict(representation="gavp")),
    ("alexnet", dict(representation="cbp", representation_options={"proj_dim": 512})),
    ("densenet121", dict()),
    ("mpncov_vgg16_bn", dict(representation=None)),
])
def test_backbone_forward_small(name, options):
    net = gluon_models.get_model(name, classes=3, **options)
    net.initialize()
    out = net(mx.nd.random.uniform(-1, 1, (2, 3, 64, 64)))
    assert out.shape == (2, 3) and np.isfinite(out.asnumpy()).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(gluon_models.list_models(family="mpncov")))
def test_full_size_forward(name):
    size = gluon_models.model_info(name)["input_size"]
    net = gluon_models.get_model(name, classes=3)
    net.initialize()
    net.hybridize()
    out = net(mx.nd.random.uniform(-1, 1, (1, 3, size, size)))
    assert out.shape == (1, 3) and np.isfinite(out.asnumpy()).all()


def test_registered_names():
    names = set(gluon_models.list_models(family="mpncov"))
    assert names == {"alexnet", "densenet121", "densenet161", "densenet169", "densenet201",
                     "inception_v3", "mpncov_resnet50", "mpncov_resnet101", "mpncov_vgg16_bn",
                     "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vgg11",
                     "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"}
    assert gluon_models.model_info("inception_v3")["input_size"] == 299
    assert gluon_models.model_info("vgg16")["options"]["representation"] is None
    assert gluon_models.model_info("resnet50")["options"]["representation"] == "gavp"
