"""FBN networks: parameter counts (spec fbn.md 6.2), the authors' structure (spec 4) and
parameter names (spec 4.5), DropFactor at inference through a network, the seed flags."""
import argparse
import json

import numpy as np
import pytest
import mxnet as mx
from mxnet import autograd

import gluon_models
from gluon_models.model_zoo import fbn
from gluon_models.model_zoo import add_model_args, model_options_from_args
from gluon_models.model_zoo.fbn import cifar_resnet_units
from gluon_models.model_zoo.reference import REFERENCE

# Spec fbn.md 6.2, "computed from the authors' symbol files": (model, options, all, weights).
# "all" is every argument of the authors' symbol (the ImageNet ResNets' `bn_data` gamma, fixed
# at 1, included), "weights" the conv/FC/FB weights. CIFAR: 20 factors, ImageNet ResNets 50,
# ImageNet Inception-BN 20 (its file's); the other factor counts are the table's comparisons.
PARAM_COUNTS = [
    ("inception_bn_small_cifar", dict(classes=10), 1652826, 1647680),
    ("inception_bn_small_cifar", dict(classes=100), 1683156, 1677920),
    ("inception_bn_small_fbn_cifar", dict(classes=10), 1720036, 1714880),
    ("inception_bn_small_fbn_cifar", dict(classes=100), 2355256, 2349920),
    ("resnet164_cifar", dict(classes=10), 1715818, 1679024),
    ("resnet164_cifar", dict(classes=100), 1738948, 1702064),
    ("resnet164_fbn_cifar", dict(classes=10), 1767028, 1730224),
    ("resnet164_fbn_cifar", dict(classes=100), 2251048, 2214064),
    ("resnet1001_cifar", dict(classes=10), 10402762, 10178480),
    ("resnet1001_cifar", dict(classes=100), 10425892, 10201520),
    ("resnet1001_fbn_cifar", dict(classes=10), 10453972, 10229680),
    ("resnet1001_fbn_cifar", dict(classes=100), 10937992, 10713520),
    ("resnet34_preact", {}, 21800110, 21783744),
    ("resnet34_fbn", {}, 47401110, 47383744),
    ("resnet34_fbn", dict(num_factor=20), 32041110, 32023744),
    ("resnet50_preact", {}, 25549486, 25502912),
    ("resnet50_fbn", {}, 127950486, 127902912),
    ("inception_bn", {}, 11295240, 11264192),
    ("inception_bn_fbn", {}, 31776240, 31744192),
    ("inception_bn_fbn", dict(num_factor=50), 62496240, 62464192),
]

# Spec 6.2: FB layer alone (FB weight + bias) and the BN moving statistics.
FB_LAYER = [("resnet164_fbn_cifar", 10, 51210), ("resnet164_fbn_cifar", 100, 512100),
            ("inception_bn_small_fbn_cifar", 10, 67210),
            ("inception_bn_small_fbn_cifar", 100, 672100),
            ("resnet34_fbn", 1000, 25601000), ("resnet50_fbn", 1000, 102401000),
            ("inception_bn_fbn", 1000, 20481000)]
MOVING_STATS = [("resnet164_cifar", 24224), ("resnet1001_cifar", 149216),
                ("inception_bn_small_cifar", 3424)]


def _size(p):
    return int(np.prod(p.shape))


def counts(net):
    """(all arguments, weights, learnable) from the parameter shapes: every layer is given its
    input width, so no initialisation or forward pass is needed."""
    params = net.collect_params()
    assert all(all(p.shape) for p in params.values())  # every shape known at construction
    args = [p for n, p in params.items() if "running_" not in n]
    return (sum(_size(p) for p in args),
            sum(_size(p) for n, p in params.items() if n.endswith("_weight")),
            sum(_size(p) for p in args if p.grad_req != "null"))


@pytest.mark.parametrize("name,options,total,weights", PARAM_COUNTS)
def test_parameter_counts(name, options, total, weights):
    net = gluon_models.get_model(name, **options)
    all_args, weight_args, learnable = counts(net)
    assert (all_args, weight_args) == (total, weights)
    fixed = 3 if "resnet" in name and not name.endswith("_cifar") else 0  # bn_data's gamma
    assert learnable == total - fixed
    if not options and name in REFERENCE or options == dict(classes=10):
        assert REFERENCE[name]["exact_params"] == total


@pytest.mark.parametrize("name,classes,count", FB_LAYER)
def test_fb_layer_alone(name, classes, count):
    net = gluon_models.get_model(name, classes=classes)
    fb = net.representation.fb.bilinear
    assert sum(_size(p) for p in fb.params.values()) == count
    assert [p.name for p in gluon_models.nn.fb_parameters(net)] == \
        [fb.weight.name, fb.bias.name]


@pytest.mark.parametrize("name,count", MOVING_STATS)
def test_moving_statistics(name, count):
    net = gluon_models.get_model(name)
    assert sum(_size(p) for n, p in net.collect_params().items() if "running_" in n) == count


# ---- names (spec 4.5) --------------------------------------------------------------------------

def _shapes(net):
    return {n[len(net.prefix):]: p.shape for n, p in net.collect_params().items()}


@pytest.mark.parametrize("name,classes,channels,fb,linear", [
    ("resnet164_fbn_cifar", 100, 256, "bilinear", "convolution166"),
    ("inception_bn_small_fbn_cifar", 100, 336, "bilinear1", "conv_fc"),
    ("resnet34_fbn", 1000, 512, "bilinear1", "fc"),
    ("resnet50_fbn", 1000, 2048, "bilinear1", "fc"),
])
def test_fb_head_names(name, classes, channels, fb, linear):
    shapes = _shapes(gluon_models.get_model(name, classes=classes))
    factors = 20 if "cifar" in name else 50
    assert shapes[fb + "_weight"] == (classes, factors, channels, 1, 1)
    assert shapes[fb + "_bias"] == (classes,)
    assert shapes[linear + "_weight"] == (classes, channels, 1, 1)
    assert shapes[linear + "_bias"] == (classes,)
    assert not any(k.startswith("fc1_") for k in shapes)


def test_inception_bn_fbn_and_baseline_names():
    shapes = _shapes(gluon_models.get_model("inception_bn_fbn"))
    assert shapes["bilinear1_weight"] == (1000, 20, 1024, 1, 1)  # 20: hard-coded by the authors
    assert shapes["fc_weight"] == (1000, 1024, 1, 1)
    for plain, channels in [("inception_bn", 1024), ("resnet50_preact", 2048),
                            ("resnet164_cifar", 256), ("inception_bn_small_cifar", 336)]:
        shapes = _shapes(gluon_models.get_model(plain, classes=7))
        assert shapes["fc1_weight"] == (7, channels) and shapes["fc1_bias"] == (7,)
        assert not any(k.startswith("bilinear") for k in shapes)


def test_cifar_names_are_mxnets_automatic_ones():
    """The authors' CIFAR symbols name nothing: MXNet counts each op type in creation order,
    and a module creates bn1, conv1, the projection, bn2, conv2, bn3, conv3."""
    shapes = _shapes(gluon_models.get_model("resnet164_fbn_cifar", classes=10))
    convs = sorted(int(k[11:-7]) for k in shapes if k.startswith("convolution")
                   and k.endswith("_weight"))
    bns = sorted(int(k[9:-6]) for k in shapes if k.startswith("batchnorm") and k.endswith("_gamma"))
    assert convs == list(range(167)) and bns == list(range(163))  # 9n+4 and 9n+1, n = 18
    assert shapes["convolution0_weight"] == (16, 3, 3, 3)        # stem
    assert shapes["batchnorm0_gamma"] == (16,)                   # stage 0 module 0: bn1
    assert shapes["convolution1_weight"] == (16, 16, 1, 1)       # conv1, width num_f / 4
    assert shapes["convolution2_weight"] == (64, 16, 1, 1)       # projection 16 -> 64
    assert shapes["convolution3_weight"] == (16, 16, 3, 3)       # conv2
    assert shapes["convolution4_weight"] == (64, 16, 1, 1)       # conv3
    assert shapes["convolution5_weight"] == (16, 64, 1, 1)       # module 1: identity shortcut
    assert shapes["batchnorm162_gamma"] == (256,)                # the head's BN
    inception = _shapes(gluon_models.get_model("inception_bn_small_cifar"))
    assert inception["convolution0_weight"] == (96, 3, 3, 3)
    assert inception["convolution1_weight"] == (32, 96, 1, 1)    # in3a 1x1
    assert inception["convolution2_weight"] == (32, 96, 3, 3)    # in3a 3x3


def test_imagenet_resnet_names():
    r50 = _shapes(gluon_models.get_model("resnet50_preact"))
    assert r50["bn_data_gamma"] == r50["bn_data_beta"] == (3,)
    assert r50["conv0_weight"] == (64, 3, 7, 7) and r50["bn0_gamma"] == (64,)
    assert r50["stage1_unit1_conv1_weight"] == (64, 64, 1, 1)    # bottleneck width 256 / 4
    assert r50["stage1_unit1_conv2_weight"] == (64, 64, 3, 3)
    assert r50["stage1_unit1_conv3_weight"] == (256, 64, 1, 1)
    assert r50["stage1_unit1_sc_weight"] == (256, 64, 1, 1)
    assert "stage1_unit2_sc_weight" not in r50
    assert r50["stage4_unit3_bn3_gamma"] == (512,) and r50["bn1_gamma"] == (2048,)
    r34 = _shapes(gluon_models.get_model("resnet34_preact"))
    assert r34["stage1_unit1_sc_weight"] == (64, 64, 1, 1)      # projection 64 -> 64 (spec 4.3)
    assert r34["stage3_unit6_conv2_weight"] == (256, 256, 3, 3)
    assert not any(k.endswith("conv3_weight") for k in r34)      # basic units
    assert not any(k.endswith("_bias") and "conv" in k or k.endswith("sc_bias") for k in r34)


# ---- structure (spec 4) --------------------------------------------------------------------------

def _graph(net):
    nodes = json.loads(net(mx.sym.var("data")).tojson())["nodes"]

    def attrs(n):
        return n.get("attrs", {})
    return nodes, attrs


def _producer(nodes, i):
    """The node feeding input slot i, looking through identity copies."""
    while nodes[i]["op"] in ("_copy", "identity"):
        i = nodes[i]["inputs"][0][0]
    return i


def _consumers(nodes, i):
    return [k for k, n in enumerate(nodes) if any(j == i for j, _, _ in n["inputs"])]


FBN_NETS = ["resnet164_fbn_cifar", "inception_bn_small_fbn_cifar", "resnet34_fbn",
            "resnet50_fbn", "inception_bn_fbn"]
PLAIN_NETS = ["resnet164_cifar", "inception_bn_small_cifar", "resnet34_preact",
              "resnet50_preact", "inception_bn"]
TANH_BRANCHES = {"resnet164_fbn_cifar": 1, "inception_bn_small_fbn_cifar": 2, "resnet34_fbn": 1,
                 "resnet50_fbn": 1, "inception_bn_fbn": 4}


@pytest.mark.parametrize("name", FBN_NETS)
def test_fb_head_replaces_the_classifier_before_pooling(name):
    """tanh feature map -> (FMConvolution + 1x1 Convolution) -> avg Pooling -> Flatten."""
    nodes, attrs = _graph(gluon_models.get_model(name, classes=7))
    ops = [n["op"] for n in nodes]
    fb = [i for i, op in enumerate(ops) if op.startswith("FMConvolution")]
    assert len(fb) == 1 and "FullyConnected" not in ops
    assert ops[fb[0]] == ("FMConvolution3" if name.endswith("_cifar") else "FMConvolution1")
    source = _producer(nodes, nodes[fb[0]]["inputs"][0][0])
    tanh = [i for i, n in enumerate(nodes) if n["op"] == "Activation"
            and attrs(n)["act_type"] == "tanh"]
    assert len(tanh) == TANH_BRANCHES[name]
    if len(tanh) == 1:  # ResNets: BN -> tanh -> head
        assert source == tanh[0] and ops[nodes[source]["inputs"][0][0]] == "BatchNorm"
    else:  # Inception: the last module's branches end in tanh and are concatenated
        assert ops[source] == "Concat"
        assert set(tanh) <= {_producer(nodes, j) for j, _, _ in nodes[source]["inputs"]} | \
            {j for k, _, _ in nodes[source]["inputs"] for j, _, _ in nodes[k]["inputs"]}
    users = [k for k in _consumers(nodes, source) if ops[k] != "_copy"] + \
        [k for c in _consumers(nodes, source) if ops[c] == "_copy" for k in _consumers(nodes, c)]
    assert sorted(ops[k] for k in users) == ["Convolution", ops[fb[0]]]  # FB + linear path
    linear = [k for k in users if ops[k] == "Convolution"][0]
    assert attrs(nodes[linear])["kernel"] == "(1, 1)" and attrs(nodes[linear])["num_filter"] == "7"
    add = _consumers(nodes, fb[0])
    assert len(add) == 1 and set(_consumers(nodes, linear)) == set(add)
    pool = _consumers(nodes, add[0])
    assert [ops[k] for k in pool] == ["Pooling"] and attrs(nodes[pool[0]])["pool_type"] == "avg"
    assert [ops[k] for k in _consumers(nodes, pool[0])] == ["Flatten"]


@pytest.mark.parametrize("name", PLAIN_NETS)
def test_plain_heads(name):
    nodes, attrs = _graph(gluon_models.get_model(name, classes=7))
    ops = [n["op"] for n in nodes]
    assert not any(op.startswith("FMConvolution") for op in ops)
    assert all(attrs(n)["act_type"] == "relu" for n in nodes if n["op"] == "Activation")
    chain, i = [], ops.index("FullyConnected")
    for _ in range(3):
        i = nodes[i]["inputs"][0][0]
        chain.append(ops[i])
    assert chain[:2] == ["Flatten", "Pooling"] and chain[2] in ("Activation", "Concat")
    if chain[2] == "Activation":  # ResNets: BN -> ReLU -> pooling
        assert ops[nodes[i]["inputs"][0][0]] == "BatchNorm"


@pytest.mark.parametrize("name,first,eps,bias", [
    ("resnet164_cifar", "Convolution", 1e-10 + 1e-5, True),
    ("inception_bn_small_cifar", "Convolution", 1e-10 + 1e-5, True),
    ("resnet34_preact", "BatchNorm", 2e-5, False),
    ("resnet50_fbn", "BatchNorm", 2e-5, False),
    ("inception_bn", "Convolution", 1e-10 + 1e-5, True),
])
def test_input_bn_epsilon_and_biases(name, first, eps, bias):
    """BN on the data only in the ImageNet ResNets (gamma fixed); the CIFAR nets and Inception
    have biases on every convolution, the ImageNet ResNets on none but the linear head."""
    nodes, attrs = _graph(gluon_models.get_model(name, classes=7))
    data = [i for i, n in enumerate(nodes) if n["name"] == "data"][0]
    head = _consumers(nodes, data)
    assert [nodes[k]["op"] for k in head] == [first]
    if first == "BatchNorm":
        assert attrs(nodes[head[0]])["fix_gamma"] == "True"
        assert nodes[head[0]]["name"].endswith("bn_data_fwd")
    bns = [n for n in nodes if n["op"] == "BatchNorm"]
    assert all(float(attrs(n)["eps"]) == pytest.approx(eps, rel=1e-6) for n in bns)
    assert all(attrs(n).get("momentum") == "0.9" for n in bns)
    convs = [n for n in nodes if n["op"] == "Convolution" and not n["name"].startswith(
        name + "_fc_")]
    assert all((attrs(n).get("no_bias", "False") == "False") == bias for n in convs)


def _conv(nodes, attrs, suffix):
    node = [n for n in nodes if n["op"] == "Convolution" and n["name"].endswith(suffix)]
    assert len(node) == 1, suffix
    return attrs(node[0])


def test_where_the_stride_sits():
    """CIFAR: on the first 1x1 of a module (and its projection); ImageNet: on the 3x3."""
    nodes, attrs = _graph(gluon_models.get_model("resnet164_cifar"))
    n = cifar_resnet_units(164)
    first = 1 + 3 * n + 1  # stage 1 module 0: conv1 is convolution<first>, projection +1
    assert _conv(nodes, attrs, "_convolution%d_fwd" % first)["stride"] == "(2, 2)"
    assert _conv(nodes, attrs, "_convolution%d_fwd" % (first + 1))["stride"] == "(2, 2)"
    assert _conv(nodes, attrs, "_convolution%d_fwd" % (first + 2))["stride"] == "(1, 1)"
    nodes, attrs = _graph(gluon_models.get_model("resnet50_preact"))
    assert _conv(nodes, attrs, "stage2_unit1_conv1_fwd")["stride"] == "(1, 1)"
    assert _conv(nodes, attrs, "stage2_unit1_conv2_fwd")["stride"] == "(2, 2)"
    assert _conv(nodes, attrs, "stage2_unit1_sc_fwd")["stride"] == "(2, 2)"
    assert _conv(nodes, attrs, "stage1_unit1_conv2_fwd")["stride"] == "(1, 1)"


def test_inception_bn_fbn_tanh_only_on_branch_outputs():
    nodes, attrs = _graph(gluon_models.get_model("inception_bn_fbn", classes=7))
    acts = {n["name"]: attrs(n)["act_type"] for n in nodes if n["op"] == "Activation"}
    tanh = sorted(k for k, v in acts.items() if v == "tanh")
    assert tanh == sorted("inception_bn_fbn_tanh_5b_%s_fwd" % b
                          for b in ("1x1", "3x3", "double_3x3_1", "proj"))
    for reduce in ("3x3_reduce", "double_3x3_reduce", "double_3x3_0"):
        assert acts["inception_bn_fbn_relu_5b_%s_fwd" % reduce] == "relu"


def _block_shapes(net, size, kind):
    """Output shape (C, H, W) after each ``features`` child of class ``kind``, by shape
    inference on the symbol."""
    x, shapes = mx.sym.var("data"), []
    for child in net.features:
        x = child(x)
        if isinstance(child, kind):
            shapes.append(x.infer_shape(data=(1, 3, size, size))[1][0][1:])
    return shapes


def test_inception_module_tables():
    """Spec 4.2 and 4.4: the output of every Inception module."""
    from mxnet.gluon.contrib.nn import HybridConcurrent
    small = gluon_models.get_model("inception_bn_small_fbn_cifar")
    assert _block_shapes(small, 32, HybridConcurrent) == [
        (64, 32, 32), (80, 32, 32), (160, 16, 16), (160, 16, 16), (160, 16, 16), (160, 16, 16),
        (144, 16, 16), (240, 8, 8), (336, 8, 8), (336, 8, 8)]
    big = gluon_models.get_model("inception_bn_fbn")
    assert _block_shapes(big, 224, HybridConcurrent) == [
        (256, 27, 27), (320, 27, 27), (576, 14, 14), (576, 14, 14), (576, 14, 14),
        (608, 14, 14), (608, 14, 14), (1056, 7, 7), (1024, 7, 7), (1024, 7, 7)]
    nodes, attrs = _graph(big)
    pools = {n["name"][len("inception_bn_fbn_"):-4]: attrs(n)["pool_type"] for n in nodes
             if n["op"] == "Pooling" and "_pool_" in n["name"]}
    assert pools["max_pool_5b_pool"] == "max" and pools["avg_pool_5a_pool"] == "avg"
    assert [k for k, v in pools.items() if v == "max"] == [
        "pool_1", "pool_2", "max_pool_3c_pool", "max_pool_4e_pool", "max_pool_5b_pool"]


def test_resnet_stage_tables():
    """Spec 4.1 and 4.3: the output of the last unit of every stage."""
    from gluon_models.model_zoo.fbn import PreActUnit
    cifar = _block_shapes(gluon_models.get_model("resnet164_cifar"), 32, PreActUnit)
    assert [cifar[i] for i in (17, 35, 53)] == [(64, 32, 32), (128, 16, 16), (256, 8, 8)]
    r34 = _block_shapes(gluon_models.get_model("resnet34_fbn"), 224, PreActUnit)
    assert [r34[i] for i in (2, 6, 12, 15)] == [(64, 56, 56), (128, 28, 28), (256, 14, 14),
                                                (512, 7, 7)]


@pytest.mark.parametrize("name,shape", [
    ("resnet164_fbn_cifar", (256, 8, 8)), ("inception_bn_small_fbn_cifar", (336, 8, 8)),
    ("resnet34_fbn", (512, 7, 7)), ("resnet50_fbn", (2048, 7, 7)),
    ("inception_bn_fbn", (1024, 7, 7)), ("resnet164_cifar", (256, 8, 8)),
    ("inception_bn", (1024, 7, 7)),
])
def test_feature_shapes(name, shape):
    """``features`` ends at the final feature map (the pooling is the representation's),
    inferred from the symbol without a forward pass."""
    net = gluon_models.get_model(name, classes=7)
    size = 32 if name.endswith("_cifar") else 224
    _, out, _ = net.features(mx.sym.var("data")).infer_shape(data=(1, 3, size, size))
    assert out[0] == (1,) + shape


@pytest.mark.parametrize("depth", [10, 12, 8, 164.5])
def test_cifar_depth_rule(depth):
    with pytest.raises(ValueError, match="9n \\+ 2"):
        fbn.preact_resnet_cifar(depth=depth)


def test_option_errors():
    with pytest.raises(ValueError, match="depth must be one of"):
        fbn.preact_resnet(depth=42)
    with pytest.raises(ValueError, match="dropfactor_mode"):
        gluon_models.get_model("resnet164_fbn_cifar", dropfactor_mode="paper")
    with pytest.raises(ValueError, match="op must be one of"):
        gluon_models.get_model("inception_bn_fbn", op=2)
    with pytest.raises(ValueError, match="drop rate"):
        fbn.preact_resnet_cifar(depth=11, fbn=True, p=1.0)
    with pytest.raises(ValueError, match="impl"):
        gluon_models.get_model("inception_bn", impl="cuda")
    assert fbn.preact_resnet_cifar(depth=11, fbn=True).prefix == \
        "resnet11_fbn_cifar_"
    assert fbn.preact_resnet(depth=18).prefix == "resnet18_preact_"


# ---- DropFactor through a network (spec 2.3, 2.4) ----------------------------------------------

def _small(mode="consistent", p=0.5, like=None):
    """A small ResNet-FBN (20 factors, 5 classes); ``like``: take that network's values."""
    net = fbn.preact_resnet_cifar(depth=11, fbn=True, num_factor=20, p=p,
                                 dropfactor_mode=mode, classes=5)
    net.initialize()
    if like is None:
        for q in net.collect_params(".*running.*").values():  # non-trivial BN statistics
            q.set_data(mx.nd.random.uniform(0.5, 1.5, q.shape))
        net.representation.fb.bilinear.bias.set_data(mx.nd.random.uniform(-1, 1, (5,)))
    else:
        for (_, a), (_, b) in zip(sorted(like.collect_params().items()),
                                  sorted(net.collect_params().items())):
            b.set_data(a.data())
    return net


def test_dropfactor_inference_through_the_network(tmp_path):
    x = mx.nd.random.uniform(-1, 1, (4, 3, 32, 32))
    net = _small()
    predict = net(x).asnumpy()
    assert np.array_equal(predict, net(x).asnumpy())  # inference: deterministic
    with autograd.train_mode():  # training: a fresh DropFactor mask per call
        a, b = net(x).asnumpy(), net(x).asnumpy()
    assert not np.allclose(a, b)

    authors = _small("authors", like=net)
    linear = _small(like=net)  # the same network without the FB quadratic term
    fb = linear.representation.fb.bilinear
    fb.weight.set_data(mx.nd.zeros(fb.weight.shape))
    quad = predict - linear(x).asnumpy()
    assert np.abs(quad).max() > 1e-2
    # the authors' evaluation scales the FB quadratic term by keep = 1 - p; its bias and the
    # linear path are not scaled
    np.testing.assert_allclose(authors(x).asnumpy() - linear(x).asnumpy(), 0.5 * quad,
                               rtol=1e-4, atol=1e-5)

    # Module inference (is_train=False) of the exported network does the same
    authors.hybridize()
    expected = authors(x).asnumpy()
    authors.export(str(tmp_path / "net"))
    sym, args, aux = mx.model.load_checkpoint(str(tmp_path / "net"), 0)
    mod = mx.mod.Module(sym, data_names=["data"], label_names=None)
    mod.bind(data_shapes=[("data", x.shape)], for_training=False)
    mod.set_params(args, aux)
    mod.forward(mx.io.DataBatch([x]), is_train=False)
    np.testing.assert_allclose(mod.get_outputs()[0].asnumpy(), expected, rtol=1e-4, atol=1e-5)

    # p = 0: no DropFactor, both modes alike
    a = _small(p=0.0, like=net)
    np.testing.assert_allclose(_small("authors", p=0.0, like=net)(x).asnumpy(),
                               a(x).asnumpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a(x).asnumpy(), predict, rtol=1e-5, atol=1e-6)


# ---- the seed's --network values and flags (spec 5.1, 5.2) -----------------------------------

def _options(*argv):
    parser = argparse.ArgumentParser()
    add_model_args(parser)
    args = parser.parse_args(list(argv))
    options = model_options_from_args(args)
    return options, gluon_models.get_model(args.model, **options)


def test_seed_networks_and_flags():
    opts, net = _options("--network", "resnet-small-fmconv", "--res-module-num", "1",
                         "--fmconv-factor", "4", "--fmconv-drop", "0.25", "--num-classes", "3")
    assert opts == dict(depth=11, fbn=True, num_factor=4, p=0.25, impl="native", classes=3)
    assert net.prefix == "resnet11_fbn_cifar_"
    assert net.representation.fb.bilinear.weight.shape == (3, 4, 256, 1, 1)
    opts, net = _options("--network", "resnet-small")  # defaults: --res-module-num 18
    assert opts == dict(impl="native") and net.prefix == "resnet164_cifar_"
    opts, net = _options("--network", "resnet-small", "--depth", "1001", "--res-module-num",
                         "111")
    assert opts["depth"] == 1001
    assert _options("--network", "inception-bn-small-fmconv", "--fmconv-factor", "8")[1] \
        .representation.fb.bilinear.weight.shape == (10, 8, 336, 1, 1)
    assert _options("--network", "inception-bn-small")[1].prefix == "inception_bn_small_cifar_"
    opts, net = _options("--network", "resnet-fmconv", "--depth", "34")
    assert opts == dict(depth=34, fbn=True, impl="native") and net.prefix == "resnet34_fbn_"
    assert net.representation.fb.bilinear.weight.shape == (1000, 50, 512, 1, 1)
    assert _options("--network", "resnet-preact", "--depth", "50")[1].prefix == \
        "resnet50_preact_"
    assert _options("--network", "inception-bn")[1].prefix == "inception_bn_"
    opts, net = _options("--network", "inception-bn-fmconv", "--fmconv-factor", "20",
                         "--fmconv-drop", "0.5")
    assert net.prefix == "inception_bn_fbn_" and opts["num_factor"] == 20
    # registry names take the flags they have options for
    opts, _ = _options("--model", "resnet164_fbn_cifar", "--fmconv-factor", "8",
                       "--fmconv-drop", "0.1", "--impl", "stock")
    assert opts == dict(num_factor=8, p=0.1, impl="stock")


@pytest.mark.parametrize("argv,message", [
    (["--network", "resnet-small", "--fmconv-factor", "4"],
     "--fmconv-factor does not apply to --network resnet-small"),
    (["--network", "inception-bn", "--depth", "50"], "--depth does not apply"),
    (["--network", "resnet-small-fmconv", "--depth", "20", "--res-module-num", "1"],
     "contradicts"),
    (["--network", "plain_igc", "--fmconv-drop", "0.5"], "--fmconv-drop does not apply"),
    (["--model", "resnet164_cifar", "--fmconv-factor", "8"], "does not apply to model"),
    (["--model", "resnet164_cifar", "--res-module-num", "2"], "--res-module-num does not"),
])
def test_seed_flag_errors(argv, message):
    with pytest.raises(ValueError, match=message):
        _options(*argv)
