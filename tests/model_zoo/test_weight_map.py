"""PyTorch weights into our networks (tools/convert_weights.py, model_zoo/weight_map.py).

The state dicts here are written from the PyTorch definitions' own rules (the key names and
shapes of torchvision's ResNet / VGG / AlexNet / DenseNet and of the fast MPN-COV
repository's mpncovresnet / mpncovvgg16_bn), independently of our mapping. Each tensor gets
distinct values, so a converted parameter identifies its source; the mapping must also keep
PyTorch's order (both frameworks list parameters in module definition order), and the cheap
parts of the network (stem, reduction block, classifier) must compute what a numpy forward
with the PyTorch tensors computes.
"""
import collections
import os
import runpy
import sys

import mxnet as mx
import numpy as np
import pytest

from gluon_models.model_zoo import get_model, list_models
from gluon_models.model_zoo.registry import weight_map
from gluon_models.model_zoo.weight_map import WeightMapError, convert, map_state_dict
from tests.utils.torch_files import write_torch_file

TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "tools")
_BIG = 200_000  # tensors above this many values are constant (broadcast views, no memory)


# ---- the PyTorch definitions' names and shapes ------------------------------------------------

def _bn(sd, name, c):
    for leaf in ("weight", "bias", "running_mean", "running_var"):
        sd["%s.%s" % (name, leaf)] = (c,)
    sd[name + ".num_batches_tracked"] = ()


def _resnet(depth, classes, reduce=False):
    """torchvision ResNet (and fast MPN-COV's mpncovresnet with ``reduce``): name -> shape."""
    blocks, bottleneck = {18: ([2, 2, 2, 2], False), 34: ([3, 4, 6, 3], False),
                          50: ([3, 4, 6, 3], True), 101: ([3, 4, 23, 3], True),
                          152: ([3, 8, 36, 3], True)}[depth]
    sd = collections.OrderedDict()
    sd["conv1.weight"] = (64, 3, 7, 7)
    _bn(sd, "bn1", 64)
    inplanes, expansion = 64, 4 if bottleneck else 1
    for stage, (n, planes) in enumerate(zip(blocks, (64, 128, 256, 512)), 1):
        for b in range(n):
            p = "layer%d.%d." % (stage, b)
            if bottleneck:
                convs = [(planes, inplanes, 1), (planes, planes, 3), (planes * 4, planes, 1)]
            else:
                convs = [(planes, inplanes, 3), (planes, planes, 3)]
            for i, (o, c, k) in enumerate(convs, 1):
                sd[p + "conv%d.weight" % i] = (o, c, k, k)
                _bn(sd, p + "bn%d" % i, o)
            if b == 0 and (stage > 1 or inplanes != planes * expansion):
                sd[p + "downsample.0.weight"] = (planes * expansion, inplanes, 1, 1)
                _bn(sd, p + "downsample.1", planes * expansion)
            inplanes = planes * expansion
    if reduce:
        sd["layer_reduce.weight"] = (256, inplanes, 1, 1)
        _bn(sd, "layer_reduce_bn", 256)
        inplanes = 256 * 257 // 2
    sd["fc.weight"] = (classes, inplanes)
    sd["fc.bias"] = (classes,)
    return sd


_VGG_CFG = {11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
            13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
            16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512,
                 512, "M"],
            19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
                 512, 512, 512, 512, "M"]}


def _vgg(depth, bn, classes, mpncov=False):
    """torchvision VGG (and fast MPN-COV's mpncovvgg16_bn with ``mpncov``)."""
    sd, i, c = collections.OrderedDict(), 0, 3
    for v in _VGG_CFG[depth]:
        if v == "M":
            i += 1
            continue
        sd["features.%d.weight" % i] = (v, c, 3, 3)
        sd["features.%d.bias" % i] = (v,)
        if bn:
            _bn(sd, "features.%d" % (i + 1), v)
        i, c = i + (3 if bn else 2), v
    if mpncov:
        sd["representation.conv_dr_block.0.weight"] = (256, 512, 1, 1)
        _bn(sd, "representation.conv_dr_block.1", 256)
    for j, (o, n) in zip((0, 3, 6), ((4096, 32896 if mpncov else 25088), (4096, 4096),
                                      (classes, 4096))):
        sd["classifier.%d.weight" % j] = (o, n)
        sd["classifier.%d.bias" % j] = (o,)
    return sd


def _alexnet(classes):
    sd = collections.OrderedDict()
    for i, shape in ((0, (64, 3, 11, 11)), (3, (192, 64, 5, 5)), (6, (384, 192, 3, 3)),
                     (8, (256, 384, 3, 3)), (10, (256, 256, 3, 3))):
        sd["features.%d.weight" % i], sd["features.%d.bias" % i] = shape, shape[:1]
    for j, shape in ((1, (4096, 9216)), (4, (4096, 4096)), (6, (classes, 4096))):
        sd["classifier.%d.weight" % j], sd["classifier.%d.bias" % j] = shape, shape[:1]
    return sd


def _densenet(depth, classes, old_names=False):
    """torchvision DenseNet-BC; ``old_names``: the released files' ``norm.1`` / ``conv.1``."""
    growth, init, blocks = {121: (32, 64, (6, 12, 24, 16)), 161: (48, 96, (6, 12, 36, 24)),
                            169: (32, 64, (6, 12, 32, 32)),
                            201: (32, 64, (6, 12, 48, 32))}[depth]
    sd = collections.OrderedDict()
    sd["features.conv0.weight"] = (init, 3, 7, 7)
    _bn(sd, "features.norm0", init)
    c, sep = init, "." if old_names else ""
    for b, n in enumerate(blocks, 1):
        for j in range(1, n + 1):
            p = "features.denseblock%d.denselayer%d." % (b, j)
            _bn(sd, p + "norm%s1" % sep, c)
            sd[p + "conv%s1.weight" % sep] = (4 * growth, c, 1, 1)
            _bn(sd, p + "norm%s2" % sep, 4 * growth)
            sd[p + "conv%s2.weight" % sep] = (growth, 4 * growth, 3, 3)
            c += growth
        if b < len(blocks):
            _bn(sd, "features.transition%d.norm" % b, c)
            sd["features.transition%d.conv.weight" % b] = (c // 2, c, 1, 1)
            c //= 2
    _bn(sd, "features.norm5", c)
    sd["classifier.weight"], sd["classifier.bias"] = (classes, c), (classes,)
    return sd


def _inception_v3(classes):
    """torchvision Inception v3: BasicConv2d modules (conv without bias + BN), AuxLogits."""
    sd = collections.OrderedDict()

    def conv(name, cin, cout, kh, kw=None):
        sd[name + ".conv.weight"] = (cout, cin, kh, kw or kh)
        _bn(sd, name + ".bn", cout)
    for name, cin, cout, k in (("Conv2d_1a_3x3", 3, 32, 3), ("Conv2d_2a_3x3", 32, 32, 3),
                               ("Conv2d_2b_3x3", 32, 64, 3), ("Conv2d_3b_1x1", 64, 80, 1),
                               ("Conv2d_4a_3x3", 80, 192, 3)):
        conv(name, cin, cout, k)
    for block, cin, pool in (("5b", 192, 32), ("5c", 256, 64), ("5d", 288, 64)):
        p = "Mixed_%s." % block
        conv(p + "branch1x1", cin, 64, 1)
        conv(p + "branch5x5_1", cin, 48, 1)
        conv(p + "branch5x5_2", 48, 64, 5)
        conv(p + "branch3x3dbl_1", cin, 64, 1)
        conv(p + "branch3x3dbl_2", 64, 96, 3)
        conv(p + "branch3x3dbl_3", 96, 96, 3)
        conv(p + "branch_pool", cin, pool, 1)
    conv("Mixed_6a.branch3x3", 288, 384, 3)
    conv("Mixed_6a.branch3x3dbl_1", 288, 64, 1)
    conv("Mixed_6a.branch3x3dbl_2", 64, 96, 3)
    conv("Mixed_6a.branch3x3dbl_3", 96, 96, 3)
    for block, c7 in (("6b", 128), ("6c", 160), ("6d", 160), ("6e", 192)):
        p = "Mixed_%s." % block
        conv(p + "branch1x1", 768, 192, 1)
        conv(p + "branch7x7_1", 768, c7, 1)
        conv(p + "branch7x7_2", c7, c7, 1, 7)
        conv(p + "branch7x7_3", c7, 192, 7, 1)
        conv(p + "branch7x7dbl_1", 768, c7, 1)
        conv(p + "branch7x7dbl_2", c7, c7, 7, 1)
        conv(p + "branch7x7dbl_3", c7, c7, 1, 7)
        conv(p + "branch7x7dbl_4", c7, c7, 7, 1)
        conv(p + "branch7x7dbl_5", c7, 192, 1, 7)
        conv(p + "branch_pool", 768, 192, 1)
    conv("AuxLogits.conv0", 768, 128, 1)
    conv("AuxLogits.conv1", 128, 768, 5)
    sd["AuxLogits.fc.weight"], sd["AuxLogits.fc.bias"] = (classes, 768), (classes,)
    conv("Mixed_7a.branch3x3_1", 768, 192, 1)
    conv("Mixed_7a.branch3x3_2", 192, 320, 3)
    conv("Mixed_7a.branch7x7x3_1", 768, 192, 1)
    conv("Mixed_7a.branch7x7x3_2", 192, 192, 1, 7)
    conv("Mixed_7a.branch7x7x3_3", 192, 192, 7, 1)
    conv("Mixed_7a.branch7x7x3_4", 192, 192, 3)
    for block, cin in (("7b", 1280), ("7c", 2048)):
        p = "Mixed_%s." % block
        conv(p + "branch1x1", cin, 320, 1)
        conv(p + "branch3x3_1", cin, 384, 1)
        conv(p + "branch3x3_2a", 384, 384, 1, 3)
        conv(p + "branch3x3_2b", 384, 384, 3, 1)
        conv(p + "branch3x3dbl_1", cin, 448, 1)
        conv(p + "branch3x3dbl_2", 448, 384, 3)
        conv(p + "branch3x3dbl_3a", 384, 384, 1, 3)
        conv(p + "branch3x3dbl_3b", 384, 384, 3, 1)
        conv(p + "branch_pool", cin, 192, 1)
    sd["fc.weight"], sd["fc.bias"] = (classes, 2048), (classes,)
    return sd


def _values(shapes, seed=0):
    """Distinct values per tensor: random ones (running variances positive), or for big
    tensors a constant unique to the tensor (a broadcast view: no memory)."""
    rng = np.random.RandomState(seed)
    sd = collections.OrderedDict()
    for i, (name, shape) in enumerate(shapes.items()):
        if name.endswith("num_batches_tracked"):
            sd[name] = np.array(1000 + i, dtype=np.int64)
        elif int(np.prod(shape)) > _BIG:
            sd[name] = np.broadcast_to(np.float32(0.001 * (i + 1)), shape)
        elif name.endswith("running_var"):
            sd[name] = rng.uniform(0.5, 2, shape).astype(np.float32)
        else:
            sd[name] = rng.randn(*shape).astype(np.float32)
    return sd


# model -> (PyTorch state dict shapes for `classes`, our input size)
def _authors(model, classes):
    if model.startswith("mpncov_resnet"):
        return _resnet(int(model[len("mpncov_resnet"):]), classes, reduce=True)
    if model == "mpncov_vgg16_bn":
        return _vgg(16, True, classes, mpncov=True)
    if model.startswith("resnet"):
        return _resnet(int(model[6:]), classes)
    if model.startswith("vgg"):
        return _vgg(int(model[3:5]), model.endswith("_bn"), classes)
    if model == "alexnet":
        return _alexnet(classes)
    if model.startswith("densenet"):
        return _densenet(int(model[8:]), classes)
    if model == "inception_v3":
        return _inception_v3(classes)
    raise KeyError(model)


COVERED = ["alexnet", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19",
           "vgg19_bn", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
           "densenet121", "densenet161", "densenet169", "densenet201", "inception_v3",
           "mpncov_resnet50",
           "mpncov_resnet101", "mpncov_vgg16_bn"]


def _shaped_params(model, classes):
    net = get_model(model, classes=classes)
    size = 299 if model == "inception_v3" else 224
    net.infer_shape(mx.nd.zeros((1, 3, size, size)))
    return net, net._collect_params_with_prefix()


def _check_landing(conversion, sd, params):
    """Every parameter got exactly its source's values, in PyTorch's order."""
    for src, dst, shape in conversion.mapped:
        got = conversion.arrays[dst]
        assert got.shape == tuple(params[dst].shape) == shape, (src, dst)
        if not any(sd[src].strides):  # a big tensor's constant (see _values)
            assert not any(got.strides) and got.flat[0] == sd[src].flat[0], (src, dst)
        else:
            np.testing.assert_array_equal(got, sd[src], err_msg="%s -> %s" % (src, dst))
    ours = [dst for _, dst, _ in conversion.mapped]
    order = [n for n in params if n in set(ours)]
    assert ours == order, "the mapping does not keep PyTorch's module order"
    dropped = [k for k in sd if k.endswith("num_batches_tracked") or k.startswith("AuxLogits.")]
    assert sorted(conversion.ignored) == sorted(dropped)


def test_every_covered_network_has_a_map():
    assert set(COVERED) <= set(list_models(family="mpncov"))
    for model in COVERED:
        weight_map(model)
    with pytest.raises(ValueError, match="igc_resnet18_l4m32' has no PyTorch weight map.*resnet50"):
        weight_map("igc_resnet18_l4m32")


@pytest.mark.parametrize("model", COVERED)
def test_authors_names_land_in_the_right_parameters(model):
    classes = 7
    sd = _values(_authors(model, classes))
    _, params = _shaped_params(model, classes)
    conversion = map_state_dict(sd, weight_map(model), params)
    _check_landing(conversion, sd, params)
    consts = [n for n, p in params.items() if isinstance(p, mx.gluon.parameter.Constant)]
    assert sorted(conversion.kept) == sorted(consts)
    assert len(conversion.mapped) + len(consts) == len(params)


def test_densenet_old_key_names():
    """torchvision's released DenseNet files say norm.1 / conv.1 (its loader renames them)."""
    sd = _values(_densenet(121, 5, old_names=True))
    _, params = _shaped_params("densenet121", 5)
    _check_landing(map_state_dict(sd, weight_map("densenet121"), params), sd, params)


# ---- numpy forwards of the cheap parts --------------------------------------------------------

def _np_conv(x, w, stride=1, pad=0):
    n, c, h, wd = x.shape
    o, _, k, _ = w.shape
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    cols = np.empty((n, c, k, k, oh, ow), x.dtype)
    for i in range(k):
        for j in range(k):
            cols[:, :, i, j] = x[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]
    return np.einsum("nckluv,ockl->nouv", cols, w)


def _np_bn(x, sd, name, eps=1e-5):
    shape = (1, -1, 1, 1)
    return ((x - sd[name + ".running_mean"].reshape(shape))
            / np.sqrt(sd[name + ".running_var"].reshape(shape) + eps)
            * sd[name + ".weight"].reshape(shape) + sd[name + ".bias"].reshape(shape))


def _convert_with_tool(tmp_path, model, classes, sd, legacy, capsys, *extra):
    src = write_torch_file(str(tmp_path / "w.pth"), sd, legacy=legacy)
    out = str(tmp_path / "w.params")
    argv = ["convert_weights.py", "--model", model, "--classes", str(classes), *extra, src, out]
    old = sys.argv
    sys.argv = argv
    try:
        runpy.run_path(os.path.join(TOOLS, "convert_weights.py"), run_name="__main__")
    finally:
        sys.argv = old
    printed = capsys.readouterr().out
    net = get_model(model, classes=classes)
    net.load_parameters(out)  # what the tool promises
    return net, printed


@pytest.mark.parametrize("legacy", [False, True])
def test_tool_resnet18_stem_and_classifier_compute_as_pytorch(tmp_path, capsys, legacy):
    sd = _values(_resnet(18, 4))
    net, printed = _convert_with_tool(tmp_path, "resnet18", 4, sd, legacy, capsys)
    assert "layer4.1.bn2.weight" in printed and "features.7.1.bn2.gamma" in printed
    n_tensors = sum(not k.endswith("num_batches_tracked") for k in sd)
    assert "mapped %d tensors" % n_tensors in printed and "ignored %d" % (len(sd) - n_tensors) \
        in printed
    x = np.random.RandomState(1).randn(2, 3, 16, 16).astype(np.float32)
    stem = net.features[1](net.features[0](mx.nd.array(x))).asnumpy()  # conv1, bn1 (inference)
    want = _np_bn(_np_conv(x, sd["conv1.weight"], 2, 3), sd, "bn1")
    np.testing.assert_allclose(stem, want, rtol=1e-4, atol=1e-4)
    feats = np.random.RandomState(2).randn(3, 512).astype(np.float32)
    np.testing.assert_allclose(net.output(mx.nd.array(feats)).asnumpy(),
                               feats @ sd["fc.weight"].T + sd["fc.bias"], rtol=1e-4, atol=1e-4)


def test_tool_mpncov_resnet50_reduction_and_classifier(tmp_path, capsys):
    sd = _values(_resnet(50, 3, reduce=True))
    sd = collections.OrderedDict(("module." + k, v) for k, v in sd.items())  # DataParallel
    checkpoint = {"epoch": 65, "arch": "mpncovresnet50", "state_dict": sd, "best_prec1": 78.3}
    src = write_torch_file(str(tmp_path / "ckpt.pth.tar"), checkpoint)
    out = str(tmp_path / "r50.params")
    conversion = convert("mpncov_resnet50", src, out, classes=3)
    assert len(conversion.mapped) == sum(not k.endswith("num_batches_tracked") for k in sd)
    assert conversion.kept == ["representation.triu"]
    sd = collections.OrderedDict((k[len("module."):], v) for k, v in sd.items())
    net = get_model("mpncov_resnet50", classes=3)
    net.load_parameters(out)
    x = np.random.RandomState(3).rand(2, 2048, 3, 3).astype(np.float32)
    f = net.features
    got = f.layer_reduce_relu(f.layer_reduce_bn(f.layer_reduce(mx.nd.array(x)))).asnumpy()
    want = np.maximum(_np_bn(_np_conv(x, np.asarray(sd["layer_reduce.weight"])), sd,
                             "layer_reduce_bn"), 0)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    v = np.random.RandomState(4).randn(2, 32896).astype(np.float32)
    np.testing.assert_allclose(net.output(mx.nd.array(v)).asnumpy(),
                               v @ sd["fc.weight"].T + sd["fc.bias"], rtol=1e-4, atol=1e-3)
    params = net._collect_params_with_prefix()
    np.testing.assert_array_equal(params["features.layer3.5.bn3.running_var"].data().asnumpy(),
                                  sd["layer3.5.bn3.running_var"])
    np.testing.assert_array_equal(params["features.layer4.0.downsample.0.weight"].data()
                                  .asnumpy(), sd["layer4.0.downsample.0.weight"])


# ---- errors -----------------------------------------------------------------------------------

def _small_resnet18(classes=4):
    return _values(_resnet(18, classes))


def test_errors_list_every_bad_tensor():
    _, params = _shaped_params("resnet18", 4)
    sd = _small_resnet18()
    del sd["layer2.0.conv1.weight"], sd["bn1.running_var"]
    sd["layer1.0.conv2.weight"] = np.zeros((64, 64, 1, 1), np.float32)
    sd["extra.weight"] = np.zeros(3, np.float32)
    sd["layer1.0.se.weight"] = np.zeros(3, np.float32)
    with pytest.raises(WeightMapError) as err:
        map_state_dict(sd, weight_map("resnet18"), params, source="x.pth")
    msg = str(err.value)
    for part in ("x.pth", "2 missing", "features.5.0.conv1.weight", "features.1.running_var",
                 "2 unexpected", "extra.weight", "layer1.0.se.weight",
                 "1 mis-shaped", "layer1.0.conv2.weight -> features.4.0.conv2.weight"):
        assert part in msg, part


def test_classifier_of_other_classes(tmp_path, capsys):
    sd = _small_resnet18(classes=1000)
    _, params = _shaped_params("resnet18", 5)
    with pytest.raises(WeightMapError, match="allow a new classifier.*fc.weight -> "
                                             "output.weight: file \\(1000, 512\\)"):
        map_state_dict(sd, weight_map("resnet18"), params)
    net, printed = _convert_with_tool(tmp_path, "resnet18", 5, sd, False, capsys,
                                      "--new-classifier")
    assert "output.weight" in printed and "fc.bias" in printed
    got = net._collect_params_with_prefix()
    np.testing.assert_array_equal(got["features.7.1.conv2.weight"].data().asnumpy(),
                                  sd["layer4.1.conv2.weight"])
    w = got["output.weight"].data().asnumpy()
    assert w.shape == (5, 512) and np.all(np.abs(w) <= 1 / np.sqrt(512))  # fresh, PyTorch init
    # a mis-shaped feature tensor is still an error with a new classifier
    sd["conv1.weight"] = np.zeros((64, 3, 3, 3), np.float32)
    with pytest.raises(WeightMapError, match="conv1.weight -> features.0.weight"):
        map_state_dict(sd, weight_map("resnet18"), params, new_classifier=True)


def test_tool_errors(tmp_path, capsys):
    src = write_torch_file(str(tmp_path / "w.pth"), _small_resnet18())
    for argv, message in (
            (["--model", "resnet34", src, str(tmp_path / "o.params")], "w.pth does not fit"),
            (["--model", "resnet50_fbn", src, str(tmp_path / "o.params")], "no PyTorch weight"),
            (["--model", "resnet18", str(tmp_path / "none.pth"), str(tmp_path / "o.params")],
             "none.pth: cannot read")):
        old = sys.argv
        sys.argv = ["convert_weights.py"] + argv
        try:
            with pytest.raises(SystemExit) as exit_:
                runpy.run_path(os.path.join(TOOLS, "convert_weights.py"), run_name="__main__")
        finally:
            sys.argv = old
        assert message in str(exit_.value)
        assert not os.path.exists(str(tmp_path / "o.params"))


@pytest.mark.slow
@pytest.mark.parametrize("model", ["mpncov_vgg16_bn", "mpncov_resnet101"])
def test_full_size_files_load(tmp_path, model):
    """The full networks through a real file (VGG: a 650 MiB state dict)."""
    sd = _values(_authors(model, 10))
    out = str(tmp_path / "o.params")
    convert(model, write_torch_file(str(tmp_path / "w.pth"), sd), out, classes=10)
    net = get_model(model, classes=10)
    net.load_parameters(out)
    got = net._collect_params_with_prefix()
    last = "classifier.6.weight" if model == "mpncov_vgg16_bn" else "fc.weight"
    np.testing.assert_array_equal(got["output.6.weight" if "vgg" in model else "output.weight"]
                                  .data().asnumpy(), sd[last])


def test_mpncov_resnet_checkpoint_of_the_seeds_main(tmp_path):
    """main.py's checkpoints of a pretrained mpncovresnet (its Basemodel): the network's
    children numbered inside `features` (DataParallel around them), `fc` as `classifier`."""
    plain = _values(_resnet(50, 4, reduce=True))
    children = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4",
                "layer_reduce", "layer_reduce_bn"]
    renamed = collections.OrderedDict()
    for key, value in plain.items():
        head, _, rest = key.partition(".")
        new = ("classifier." + rest if head == "fc"
               else "features.module.%d.%s" % (children.index(head), rest))
        renamed[new] = value
    src = write_torch_file(str(tmp_path / "checkpoint.pth.tar"),
                           {"epoch": 100, "arch": "mpncovresnet50", "state_dict": renamed,
                            "best_prec1": 88.0})
    a = convert("mpncov_resnet50", src, classes=4)
    _, params = _shaped_params("mpncov_resnet50", 4)
    b = map_state_dict(plain, weight_map("mpncov_resnet50"), params)
    assert [dst for _, dst, _ in a.mapped] == [dst for _, dst, _ in b.mapped]
    for name in b.arrays:
        assert a.arrays[name] is not None and a.arrays[name].shape == b.arrays[name].shape
        if any(a.arrays[name].strides):
            np.testing.assert_array_equal(a.arrays[name], b.arrays[name], err_msg=name)
