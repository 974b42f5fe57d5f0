"""IBN-Net families: parameter counts of every network against the published figures and an
independent count, IBN-a / IBN-b / DenseNet-IBN placements, the MXNet port's names and
checkpoints, options."""
import numpy as np
import pytest
import mxnet as mx

import gluon_models
from gluon_models.model_zoo import ibn as zoo
from gluon_models.model_zoo.compose import load_parts
from gluon_models.model_zoo.fbn import preact_resnet
from gluon_models.nn import IBN, InstanceNorm


def learnable(net):
    """Every argument (the MXNet port counts bn_data's fixed gamma too), no running stats."""
    return sum(int(np.prod(p.shape)) for k, p in net.collect_params().items()
               if "running_" not in k)


# ---- independent counts (from the layer tables of the authors' code, spec sections 3-4) -----
def bn(c):
    return 2 * c


def pt_resnet_count(depth, ibn="a", groups=1, base_width=64, se=False, classes=1000):
    units = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3),
             152: (3, 8, 36, 3)}[depth]
    n = 3 * 64 * 49 + bn(64)
    in_c = 64
    for li, (k, planes) in enumerate(zip(units, (64, 128, 256, 512))):
        for b in range(k):
            stride = 2 if li and b == 0 else 1
            if depth >= 50:
                c, w = planes * 4, planes * base_width // 64 * groups
                n += in_c * w + bn(w) + w * (w // groups) * 9 + bn(w) + w * c + bn(c)
                if se:
                    n += 2 * c * (c // 16)
            else:
                c = planes
                n += in_c * c * 9 + bn(c) + c * c * 9 + bn(c)
            if stride != 1 or in_c != c:
                n += in_c * c + bn(c)
            if ibn == "b" and li < 2 and b == k - 1:
                n += bn(c)  # IN after the addition: gamma + beta
            in_c = c
    return n + in_c * classes + classes


def densenet_count(init, growth, blocks, classes=1000):
    n, c = 3 * init * 49 + bn(init), init
    for bi, k in enumerate(blocks):
        for _ in range(k):
            n += bn(c) + c * 4 * growth + bn(4 * growth) + 4 * growth * growth * 9
            c += growth
        if bi < 3:
            n += bn(c) + c * (c // 2)
            c //= 2
    return n + bn(c) + c * classes + classes


def mx_resnext_count(depth, kind, deep=False, classes=1000, groups=32):
    units = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}[depth]
    n = bn(3)  # bn_data, gamma fixed but an argument
    n += (3 * 64 * 9 + bn(64) + 64 * 64 * 9 + bn(64)) if deep else (3 * 64 * 49 + bn(64))
    in_c = 64
    for s, (k, c) in enumerate(zip(units, (256, 512, 1024, 2048))):
        w = c // 2
        for u in range(k):
            stride = 2 if s and u == 0 else 1
            if kind == "a":  # no conv1: the grouped conv reads the unit input
                n += bn(in_c) + in_c * w // groups * 9 + bn(w)
            else:
                n += in_c * w + bn(w) + w * w // groups * 9 + bn(w) + bn(c)  # + ibn1
            n += w * c + bn(c)
            if u == 0:
                n += in_c * c * (9 if deep and stride == 2 else 1) + bn(c)
            in_c = c
    return n + in_c * classes + classes


# the figures of the issue and of the authors' / torchvision's published models
PUBLISHED = {"resnet50_ibn_a": 25557032, "resnet50_ibn_b": 25558568,
             "resnext50_ibn_a": 25028904, "se_resnet50_ibn_a": 28071976,
             "densenet121_ibn_a": 7978856, "resnet50_ibn_a_mx": 25549486,
             "resnext50_ibn_a_mx": 17401774, "resnext50_ibn_b_mx": 25059118,
             "resnext50_ibn_a_w_d_mx": 39451182, "resnet164_ibn_a_mx_cifar": 1703264,
             # IBN-a keeps the counts of the plain networks (torchvision's figures)
             "resnet18_ibn_a": 11689512, "resnet34_ibn_a": 21797672,
             "resnet101_ibn_a": 44549160, "resnet152_ibn_a": 60192808,
             "resnext101_ibn_a": 44177704, "densenet161_ibn_a": 28681000,
             "densenet169_ibn_a": 14149480, "densenet201_ibn_a": 20013928}


def independent(name):
    spec = zoo._SPECS[name]
    fixed = spec[1]
    if spec[0] is zoo.pt_resnet:
        return pt_resnet_count(fixed["depth"], fixed.get("ibn", "a"),
                               32 if fixed.get("resnext") else 1,
                               4 if fixed.get("resnext") else 64, fixed.get("se", False))
    if spec[0] is zoo.pt_densenet:
        return densenet_count(*zoo._DENSENETS[fixed["depth"]])
    if spec[0] is zoo.mx_resnext:
        return mx_resnext_count(fixed["depth"], fixed.get("kind", "a"), fixed.get("deep", False))
    # the port's pre-activation ResNet: the FBN builder's count (IBN keeps the count)
    net = preact_resnet(fixed["depth"], cifar=fixed.get("cifar", False), classes=spec[4])
    return learnable(net)


IBN_NAMES = gluon_models.list_models(family="ibn") + gluon_models.list_models(family="ibn_mx")


def test_every_variant_is_listed():
    assert len(gluon_models.list_models(family="ibn")) == 24  # 20 + 4 baselines
    assert len(gluon_models.list_models(family="ibn_mx")) == 19


@pytest.mark.parametrize("name", IBN_NAMES)
def test_parameter_counts(name):
    net = gluon_models.get_model(name)
    got = learnable(net)
    assert got == independent(name)
    if name in PUBLISHED:
        assert got == PUBLISHED[name]


def _blocks(net, kind):
    return {k: b for k, b in _walk(net) if isinstance(b, kind)}


def _walk(block, path=""):
    for name, child in block._children.items():
        yield path + name, child
        yield from _walk(child, path + name + ".")


def test_resnet50_ibn_a_placement():
    net = gluon_models.get_model("resnet50_ibn_a")
    ibns = {b.prefix[len(net.prefix):]: (b.n_in, b.n_bn, b.in_first, b.epsilon)
            for b in _blocks(net, IBN).values()}
    assert len(ibns) == 3 + 4 + 6
    assert ibns["layer1_0_bn1_"] == (32, 32, True, 1e-5)
    assert ibns["layer2_3_bn1_"] == (64, 64, True, 1e-5)
    assert ibns["layer3_5_bn1_"] == (128, 128, True, 1e-5)
    assert not any(k.startswith("layer4") for k in ibns)
    assert not _blocks(net, InstanceNorm)
    names = set(net.collect_params().keys())
    assert "resnet50_ibn_a_layer1_0_bn1_IN_gamma" in names
    assert "resnet50_ibn_a_layer1_0_bn1_BN_running_mean" in names
    assert "resnet50_ibn_a_layer4_0_bn1_running_mean" in names


@pytest.mark.parametrize("name,widths", [("resnet50_ibn_b", (64, 256, 512)),
                                         ("resnet18_ibn_b", (64, 64, 128))])
def test_ibn_b_placement(name, widths):
    net = gluon_models.get_model(name)
    ins = {b.prefix[len(net.prefix):]: b.channels for b in _blocks(net, InstanceNorm).values()}
    last1, last2 = (2, 3) if "50" in name else (1, 1)
    assert ins == {"bn1_": widths[0], "layer1_%d_IN_" % last1: widths[1],
                   "layer2_%d_IN_" % last2: widths[2]}
    assert not _blocks(net, IBN)


def test_densenet_ibn_placement():
    net = gluon_models.get_model("densenet121_ibn_a")
    ibns = {b.prefix[len(net.prefix):]: (b.n_bn, b.n_in, b.in_first)
            for b in _blocks(net, IBN).values()}
    per_block = [sum(k.startswith("features_denseblock%d_" % i) for k in ibns)
                 for i in (1, 2, 3, 4)]
    assert per_block == [2, 4, 8, 0]
    assert ibns["features_denseblock1_denselayer1_norm1_"] == (38, 26, False)
    assert ibns["features_denseblock1_denselayer4_norm1_"] == (96, 64, False)
    assert ibns["features_denseblock2_denselayer1_norm1_"] == (76, 52, False)
    assert ibns["features_denseblock3_denselayer1_norm1_"] == (153, 103, False)
    counts = {d: len(_blocks(gluon_models.get_model("densenet%d_ibn_a" % d), IBN))
              for d in (161, 169, 201)}
    assert counts == {161: 2 + 4 + 12, 169: 2 + 4 + 11, 201: 2 + 4 + 16}


def test_mx_resnet_ibn_a_on_the_unit_input():
    net = gluon_models.get_model("resnet50_ibn_a_mx")
    ibns = {b.prefix[len(net.prefix):]: (b.n_in, b.n_bn, b.epsilon)
            for b in _blocks(net, IBN).values()}
    assert len(ibns) == 3 + 4 + 6
    assert ibns["stage1_unit1_"] == (32, 32, 2e-5)
    assert ibns["stage1_unit2_"] == (128, 128, 2e-5)
    assert ibns["stage2_unit1_"] == (128, 128, 2e-5)
    assert ibns["stage3_unit2_"] == (512, 512, 2e-5)
    # basic units ignore the flag, as the port's do; CIFAR bottlenecks: all three stages
    assert not _blocks(gluon_models.get_model("resnet34_ibn_a_mx"), IBN)
    assert not _blocks(gluon_models.get_model("resnet110_ibn_a_mx_cifar"), IBN)
    assert len(_blocks(gluon_models.get_model("resnet164_ibn_a_mx_cifar"), IBN)) == 54


def test_mx_resnext_units():
    a = gluon_models.get_model("resnext50_ibn_a_mx")
    names = {k[len(a.prefix):] for k in a.collect_params()}
    # the port's unit never uses conv1: no such weights; conv2 reads the unit input
    assert not any("conv1_weight" in k for k in names)
    assert a.features[5].conv2.weight.shape == (128, 2, 3, 3)  # 64 inputs / 32 groups
    assert {"stage1_unit1_in1_gamma", "stage1_unit1_bn1_gamma", "stage4_unit1_bn1_gamma",
            "stage1_unit1_sc_weight", "stage1_unit1_sc_bn_gamma", "fc1_weight"} <= names
    assert "stage4_unit1_in1_gamma" not in names
    b = gluon_models.get_model("resnext50_ibn_b_mx")
    ins = [blk for blk in _blocks(b, InstanceNorm).values()]
    assert len(ins) == 16 and ins[-1].channels == 2048  # every unit, stage 4 included
    w = gluon_models.get_model("resnext50_ibn_a_w_d_mx")
    wn = {k[len(w.prefix):]: p.shape for k, p in w.collect_params().items()}
    assert "conv0_weight" not in wn and wn["conv02_weight"] == (64, 3, 3, 3)
    assert wn["conv03_weight"] == (64, 64, 3, 3)
    assert wn["stage2_unit1_sc_weight"] == (512, 256, 3, 3)  # 3 x 3 stride-2 projection
    assert wn["stage1_unit1_sc_weight"] == (256, 64, 1, 1)
    assert isinstance(w.output[0], mx.gluon.nn.Dropout) and w.output[0]._rate == 0.2


def _port_name(gluon_name, prefix):
    return gluon_name[len(prefix):].replace("running_mean", "moving_mean") \
        .replace("running_var", "moving_var")


@pytest.mark.parametrize("name", ["resnet50_ibn_a_mx", "resnext50_ibn_b_mx"])
def test_port_checkpoint_loads_by_name(name, tmp_path):
    """A checkpoint written in the port's naming (arg:/aux:, moving_*) loads one to one."""
    net = gluon_models.get_model(name, classes=5)
    net.initialize()
    rs = np.random.RandomState(0)
    arrays, want = {}, {}
    for k, p in net.collect_params().items():
        port = _port_name(k, net.prefix)
        kind = "aux" if "moving_" in port else "arg"
        v = rs.uniform(0.5, 1.5, p.shape).astype("float32")
        arrays["%s:%s" % (kind, port)] = mx.nd.array(v)
        want[k] = v
    # every name is a symbol name of the port (spec 4.7)
    ports = {k.split(":", 1)[1] for k in arrays}
    assert {"bn_data_gamma", "bn_data_beta", "conv0_weight", "bn0_gamma", "fc1_weight",
            "fc1_bias", "stage1_unit1_bn1_moving_mean"} <= ports
    assert all(not k.startswith(("arg:features", "arg:output")) for k in arrays)
    mx.nd.save(str(tmp_path / "port-0001.params"), arrays)
    loaded = load_parts(net, str(tmp_path / "port-0001.params"), parts=("features", "output"),
                        name_map=lambda key: net.prefix + key.replace("moving_", "running_"))
    assert len(loaded) == len(want)
    for k, p in net.collect_params().items():
        np.testing.assert_array_equal(p.data().asnumpy(), want[k])


def test_forward_shapes_and_impl_option():
    x = mx.nd.random.uniform(0, 255, (2, 3, 32, 32))
    net = gluon_models.get_model("resnet164_ibn_a_mx_cifar", impl="stock")
    net.initialize()
    assert net(x).shape == (2, 10)
    with pytest.raises(ValueError, match="impl"):
        gluon_models.get_model("resnet50_ibn_a", impl="cuda")
    with pytest.raises(ValueError, match="classes"):
        gluon_models.get_model("densenet121_ibn_a", classes=0)
    with pytest.raises(TypeError):
        gluon_models.get_model("resnext50_ibn_a_mx", dropout=0.5)


def test_family_input_normalisation():
    from gluon_models.model_zoo.registry import data_defaults
    assert data_defaults("resnet50_ibn_a")["imagenet_norm"] == "imagenet"
    assert data_defaults("resnet50_ibn_a_mx")["imagenet_norm"] == "raw"


def test_reference_figures_are_ours():
    from gluon_models.model_zoo.reference import REFERENCE, SOURCES
    for name, ref in REFERENCE.items():
        if ref["source"] not in ("ibn-imagenet", "ibn-mx"):
            continue
        assert ref["source"] in SOURCES and name in IBN_NAMES
        if "exact_params" in ref:
            assert ref["exact_params"] == PUBLISHED[name]


def test_seed_networks_of_the_port():
    r = gluon_models.get_model("resnet_ibn_a", depth=101)
    assert learnable(r) == learnable(gluon_models.get_model("resnet101_ibn_a_mx"))
    b = gluon_models.get_model("resnext_ibn_b")  # the scripts' defaults: depth 50, 32 groups
    assert learnable(b) == PUBLISHED["resnext50_ibn_b_mx"]
    w = gluon_models.get_model("resnext_w_d_v2", depth=50, groups=16)
    assert w.features[8].conv2.weight.shape == (128, 64 // 16, 3, 3)
    assert not isinstance(w.output, mx.gluon.nn.HybridSequential)  # --drop-out defaults to 0
    from gluon_models.model_zoo.registry import seed_network
    assert seed_network("resnext_w_d_v2")(depth=101, num_group=32, drop_out=0.2) == dict(
        kind="a", deep=True, depth=101, groups=32, dropout=0.2, bn_mom=None)
    assert seed_network("resnet_ibn_a")(depth=None, bn_mom=0.8) == dict(depth=None, bn_mom=0.8)
    with pytest.raises(ValueError, match="depth"):
        gluon_models.get_model("resnext_ibn_a", depth=34)


# ---- the authors' baselines gluoncv lacks in their form ----------------------------------------

def _gluoncv_count(name):
    from gluoncv.model_zoo import get_model as gluoncv_model
    net = gluoncv_model(name)
    net.initialize()
    net(mx.nd.zeros((1, 3, 224, 224)))
    return learnable(net)


def test_baselines_against_gluoncv_and_the_independent_count():
    """ResNeXt-50 32x4d without IBN is gluoncv's resnext50_32x4d (torchvision's 25,028,904), so
    only the depth gluoncv lacks is registered; the authors' SE-ResNet (bias-free SE
    Linear layers, stride on the 3 x 3) is not gluoncv's se_resnet50_v1 (stride on the first
    1 x 1, convolution biases), so it is registered."""
    resnext50 = zoo.pt_resnet(50, ibn=None, resnext=True)
    assert learnable(resnext50) == _gluoncv_count("resnext50_32x4d") == 25_028_904
    se50 = gluon_models.get_model("se_resnet50")
    # ResNet-50 (25,557,032) + 2 C^2/16 per block: the IBN-a variant's published count
    assert learnable(se50) == pt_resnet_count(50, None, se=True) == 28_071_976
    assert learnable(se50) != _gluoncv_count("se_resnet50_v1")
    assert learnable(gluon_models.get_model("resnext152_32x4d")) == \
        pt_resnet_count(152, None, 32, 4)


def test_baseline_placement():
    net = gluon_models.get_model("se_resnet50", impl="stock")
    assert not _blocks(net, IBN) and not _blocks(net, InstanceNorm)
    block = net.features[5][0]  # layer2.0: the stride on the 3 x 3, SE gate of 512 channels
    assert block.conv1._kwargs["stride"] == (1, 1) and block.conv2._kwargs["stride"] == (2, 2)
    assert block.se.fc0.weight.shape == (32, 512) and block.se.fc0.bias is None
    x = mx.nd.random.normal(shape=(1, 3, 160, 160))  # global pooling: any input size
    net.initialize()
    assert net(x).shape == (1, 1000)
    with pytest.raises(ValueError, match="ibn must be"):
        zoo.pt_resnet(50, ibn="c")


# ---- the port's --bn-mom (spec: where the scripts' flag reaches) -------------------------------

def _momenta(net):
    """{structural name: momentum} of every BatchNorm and IBN (its BN half)."""
    out = {}
    for path, block in _walk(net):
        if isinstance(block, mx.gluon.nn.BatchNorm):
            out[path] = block._kwargs["momentum"]
        elif isinstance(block, IBN):
            out[path] = block.momentum
    return out


def test_bn_mom_reaches_what_the_port_passes_it_to():
    # resnet_ibn_a: bn_data, bn0 and the final bn1; the units (IBN halves too) keep 0.9
    net = gluon_models.get_model("resnet50_ibn_a_mx", bn_mom=0.8, impl="stock")
    blocks = dict(_walk(net))
    mom = {blocks[p].prefix: m for p, m in _momenta(net).items()}
    stem = {k: v for k, v in mom.items() if "_unit" not in k}
    assert sorted(k.rsplit("_mx_", 1)[1] for k in stem) == ["bn0_", "bn1_", "bn_data_"]
    assert set(stem.values()) == {0.8}
    assert {v for k, v in mom.items() if "_unit" in k} == {0.9}
    assert any(isinstance(b, IBN) for _, b in _walk(net))
    # the ResNeXt files: every BatchNorm (stem, units, shortcuts), not the IBN's BN half
    for name in ("resnext50_ibn_a_mx", "resnext50_ibn_a_w_d_mx", "resnext50_ibn_b_mx"):
        net = gluon_models.get_model(name, bn_mom=0.7, impl="stock")
        blocks = dict(_walk(net))
        kinds = {(isinstance(blocks[p], IBN), m) for p, m in _momenta(net).items()}
        want = {(False, 0.7), (True, 0.9)} if "_a" in name else {(False, 0.7)}
        assert kinds == want, name
    with pytest.raises(ValueError, match="bn_mom"):
        gluon_models.get_model("resnext50_ibn_a_mx", bn_mom=1.5)


def test_bn_mom_updates_the_running_statistics():
    """bn_data's running mean after one training step: (1 - bn_mom) * the batch mean."""
    net = gluon_models.get_model("resnet18_ibn_a_mx", bn_mom=0.5, classes=3, impl="stock")
    net.initialize()
    x = mx.nd.random.uniform(0, 255, shape=(2, 3, 32, 32))
    with mx.autograd.record():
        y = net(x)
    y.backward()
    got = net.features[0].running_mean.data().asnumpy()
    np.testing.assert_allclose(got, 0.5 * x.asnumpy().mean(axis=(0, 2, 3)), rtol=1e-4)


def test_bn_mom_from_the_command_line(capsys):
    from gluon_models.model_zoo import model_options_from_args
    from gluon_models.training.runner import parse_imagenet_args
    args = parse_imagenet_args(["--network", "resnext_ibn_b", "--depth", "50", "--bn-mom",
                                "0.95"])
    assert model_options_from_args(args)["bn_mom"] == 0.95
    args = parse_imagenet_args(["--network", "resnet50_ibn_a_mx", "--bn-mom", "0.95"])
    assert model_options_from_args(args)["bn_mom"] == 0.95
    args = parse_imagenet_args(["--network", "resnet_ibn_a", "--depth", "50"])
    assert "bn_mom" not in model_options_from_args(args)  # the builder's 0.9
    with pytest.raises(SystemExit):  # the authors' networks have no such flag
        parse_imagenet_args(["--network", "resnet50_ibn_a", "--bn-mom", "0.95"])
    assert "--bn-mom does not apply to model resnet50_ibn_a" in capsys.readouterr().err
