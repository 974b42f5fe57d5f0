"""The authors' PyTorch IBN-Net weights (github.com/XingangPan/IBN-Net, package ``ibnnet``) into
the networks of family ``ibn`` (tools/convert_weights.py, the family's weight maps).

The state dicts are written here from the authors' module definitions as the spec describes
them (key names and shapes of ``resnet_ibn.py``, ``resnext_ibn.py``, ``se_resnet_ibn.py``,
``densenet_ibn.py`` and ``modules.py``), independently of our networks' parameter names: the
IBN's ``bn1.IN`` (affine InstanceNorm2d, no running statistics) and ``bn1.BN`` halves, IBN-b's
stem InstanceNorm ``bn1`` and post-addition ``IN``, the SE gate's ``se.fc.0`` / ``se.fc.2``
(Linear without bias), DenseNet's ``norm1.BN`` (first 60 %) / ``norm1.IN``. Every tensor has
values of its own, so a converted parameter identifies its source.
"""
import collections
import os
import re
import runpy
import sys

import mxnet as mx
import numpy as np
import pytest

from gluon_models.model_zoo import get_model, list_models
from gluon_models.model_zoo.registry import weight_map
from gluon_models.model_zoo.weight_map import WeightMapError, convert, map_state_dict
from tests.model_zoo.test_weight_map import TOOLS, _bn, _values
from tests.utils.torch_files import write_torch_file

_LAYERS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3),
           152: (3, 8, 36, 3)}


def _in(sd, name, c):  # InstanceNorm2d(affine=True): no buffers
    sd[name + ".weight"], sd[name + ".bias"] = (c,), (c,)


def _ibn(sd, name, c, ratio=0.5, in_first=True):
    """ibnnet.modules.IBN (IN first, int(C * ratio) channels) or densenet_ibn.IBN (BN first,
    int(C * (1 - ratio)) channels), in the order the modules are declared."""
    if in_first:
        half = int(c * ratio)
        _in(sd, name + ".IN", half)
        _bn(sd, name + ".BN", c - half)
    else:
        half = int(c * (1 - ratio))
        _bn(sd, name + ".BN", half)
        _in(sd, name + ".IN", c - half)


def pt_resnet_keys(depth, ibn="a", resnext=False, se=False, classes=1000):
    """ResNet_IBN / ResNeXt_IBN / SE ResNet_IBN state dict: name -> shape."""
    sd = collections.OrderedDict()
    sd["conv1.weight"] = (64, 3, 7, 7)
    (_in if ibn == "b" else _bn)(sd, "bn1", 64)
    cfg = {"a": ("a", "a", "a", None), "b": ("b", "b", None, None), None: (None,) * 4}[ibn]
    bottleneck, inplanes = depth >= 50, 64
    for li, (n, planes) in enumerate(zip(_LAYERS[depth], (64, 128, 256, 512))):
        out = planes * (4 if bottleneck else 1)
        for b in range(n):
            p = "layer%d.%d." % (li + 1, b)
            stride = 2 if li and b == 0 else 1
            block_ibn = cfg[li] if cfg[li] != "b" or b == n - 1 else None
            width = (planes * 4 // 64) * 32 if resnext else planes
            if bottleneck:
                convs = [(width, inplanes, 1, 1), (width, width // (32 if resnext else 1), 3, 3),
                         (out, width, 1, 1)]
            else:
                convs = [(planes, inplanes, 3, 3), (planes, planes, 3, 3)]
            for i, shape in enumerate(convs, 1):
                sd[p + "conv%d.weight" % i] = shape
                if i == 1 and block_ibn == "a":
                    _ibn(sd, p + "bn1", shape[0])
                else:
                    _bn(sd, p + "bn%d" % i, shape[0])
            if se:  # SELayer(out, 16): fc = Linear, ReLU, Linear, Sigmoid
                sd[p + "se.fc.0.weight"] = (out // 16, out)
                sd[p + "se.fc.2.weight"] = (out, out // 16)
            if block_ibn == "b":  # declared before downsample in the blocks
                _in(sd, p + "IN", out)
            if b == 0 and (stride != 1 or inplanes != out):
                sd[p + "downsample.0.weight"] = (out, inplanes, 1, 1)
                _bn(sd, p + "downsample.1", out)
            inplanes = out
    sd["fc.weight"], sd["fc.bias"] = (classes, inplanes), (classes,)
    return sd


def pt_densenet_keys(depth, classes=1000):
    init, growth, blocks = {121: (64, 32, (6, 12, 24, 16)), 161: (96, 48, (6, 12, 36, 24)),
                            169: (64, 32, (6, 12, 32, 32)), 201: (64, 32, (6, 12, 48, 32))}[depth]
    sd = collections.OrderedDict()
    sd["features.conv0.weight"] = (init, 3, 7, 7)
    _bn(sd, "features.norm0", init)
    c = init
    for bi, n in enumerate(blocks, 1):
        for i in range(n):
            p = "features.denseblock%d.denselayer%d." % (bi, i + 1)
            if bi < 4 and i % 3 == 0:
                _ibn(sd, p + "norm1", c, 0.4, in_first=False)
            else:
                _bn(sd, p + "norm1", c)
            sd[p + "conv1.weight"] = (4 * growth, c, 1, 1)
            _bn(sd, p + "norm2", 4 * growth)
            sd[p + "conv2.weight"] = (growth, 4 * growth, 3, 3)
            c += growth
        if bi < 4:
            _bn(sd, "features.transition%d.norm" % bi, c)
            sd["features.transition%d.conv.weight" % bi] = (c // 2, c, 1, 1)
            c //= 2
    _bn(sd, "features.norm5", c)
    sd["classifier.weight"], sd["classifier.bias"] = (classes, c), (classes,)
    return sd


def authors_keys(model, classes):
    if model.startswith("densenet"):
        return pt_densenet_keys(int(model[8:11]), classes)
    depth = int(re.search(r"\d+", model).group())
    return pt_resnet_keys(depth, model[-1] if "_ibn_" in model else None,
                          model.startswith("resnext"), model.startswith("se_"), classes)


AUTHORS = ["resnet%d_ibn_%s" % (d, v) for v in "ab" for d in (18, 34, 50, 101, 152)] + \
    ["resnext%d_ibn_a" % d for d in (50, 101, 152)] + \
    ["se_resnet%d_ibn_a" % d for d in (50, 101, 152)] + \
    ["densenet%d_ibn_a" % d for d in (121, 161, 169, 201)]
# the authors' baselines registered here (SE-ResNet of their se_resnet.py, ResNeXt-152)
BASELINES = ["se_resnet50", "se_resnet101", "se_resnet152", "resnext152_32x4d"]


def _params(model, classes):
    # the stock twin: the same parameters, and its shape inference is fast (the native
    # operator's takes ~20 s for DenseNet-201)
    net = get_model(model, classes=classes, impl="stock")
    net.infer_shape(mx.nd.zeros((1, 3, 224, 224)))
    return net, net._collect_params_with_prefix()


def test_every_authors_network_has_a_map():
    assert sorted(AUTHORS + BASELINES) == sorted(list_models(family="ibn"))
    for model in AUTHORS + BASELINES:
        weight_map(model)
    with pytest.raises(ValueError, match="resnet50_ibn_a_mx' has no PyTorch weight map"):
        weight_map("resnet50_ibn_a_mx")


def test_key_generator_matches_published_counts():
    """The generated state dicts hold the authors' learnable-parameter counts (README of the
    issue / spec): a check of the generator itself, independent of our networks."""
    def count(sd):
        return sum(int(np.prod(s)) for k, s in sd.items()
                   if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    for model, n in (("resnet50_ibn_a", 25_557_032), ("resnet50_ibn_b", 25_558_568),
                     ("resnext50_ibn_a", 25_028_904), ("se_resnet50_ibn_a", 28_071_976),
                     ("densenet121_ibn_a", 7_978_856)):
        assert count(authors_keys(model, 1000)) == n, model


@pytest.mark.parametrize("model", AUTHORS + BASELINES)
def test_authors_names_land_in_the_right_parameters(model):
    classes = 7
    sd = _values(authors_keys(model, classes))
    _, params = _params(model, classes)
    conversion = map_state_dict(sd, weight_map(model), params)
    assert len(conversion.mapped) == len(params) and not conversion.kept
    assert sorted(conversion.ignored) == sorted(k for k in sd if k.endswith("num_batches_tracked"))
    for src, dst, shape in conversion.mapped:
        got = conversion.arrays[dst]
        assert got.shape == tuple(params[dst].shape) == shape, (src, dst)
        if not any(sd[src].strides):  # a big tensor's constant (see _values)
            assert got.flat[0] == sd[src].flat[0], (src, dst)
        else:
            np.testing.assert_array_equal(got, sd[src], err_msg="%s -> %s" % (src, dst))
    # every name lands where it belongs: the IBN halves on the IBN's in_/bn_ parameters, the
    # running statistics of its BN half on the IBN's, IBN-b's IN on the InstanceNorm
    pairs = {src: dst for src, dst, _ in conversion.mapped}
    for src, dst in pairs.items():
        if ".IN." in src and ("bn1." in src or "norm1." in src):
            assert dst.split(".")[-1] == {"weight": "in_gamma", "bias": "in_beta"}[
                src.split(".")[-1]], (src, dst)
        if ".BN." in src:
            assert dst.split(".")[-1] == {"weight": "bn_gamma", "bias": "bn_beta",
                                          "running_mean": "running_mean",
                                          "running_var": "running_var"}[src.split(".")[-1]]
        if src.endswith(".IN.weight") and "bn1" not in src and "norm1" not in src:
            assert dst.endswith(".IN.gamma"), (src, dst)


def _np_in(x, w, b, eps=1e-5):
    mu = x.mean(axis=(2, 3), keepdims=True)
    var = x.var(axis=(2, 3), keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w.reshape(1, -1, 1, 1) + b.reshape(1, -1, 1, 1)


def _np_bn(x, sd, name, eps=1e-5):
    s = (1, -1, 1, 1)
    return ((x - sd[name + ".running_mean"].reshape(s)) /
            np.sqrt(sd[name + ".running_var"].reshape(s) + eps) * sd[name + ".weight"].reshape(s)
            + sd[name + ".bias"].reshape(s))


def _run_tool(tmp_path, model, classes, sd, *extra, legacy=False):
    src = write_torch_file(str(tmp_path / "w.pth"), sd, legacy=legacy)
    out = str(tmp_path / "w.params")
    old = sys.argv
    sys.argv = ["convert_weights.py", "--model", model, "--classes", str(classes), *extra,
                src, out]
    try:
        runpy.run_path(os.path.join(TOOLS, "convert_weights.py"), run_name="__main__")
    finally:
        sys.argv = old
    net = get_model(model, classes=classes)
    net.load_parameters(out)
    return net


@pytest.mark.parametrize("impl", ["native", "stock"])
def test_tool_resnet18_ibn_a_layers_compute_as_the_authors(tmp_path, capsys, impl):
    """A file through the tool; the converted IBN (IN on the first half with the IN tensors,
    BN with the running statistics on the rest, inference) and IBN-free parts compute what
    numpy computes with the PyTorch tensors."""
    sd = _values(pt_resnet_keys(18, "a", classes=3))
    net = _run_tool(tmp_path, "resnet18_ibn_a", 3, sd, legacy=impl == "stock")
    printed = capsys.readouterr().out
    assert "layer1.0.bn1.IN.weight" in printed and "features.4.0.bn1.in_gamma" in printed
    if impl == "stock":  # the same file into the stock twin
        twin = get_model("resnet18_ibn_a", classes=3, impl="stock")
        twin.load_parameters(str(tmp_path / "w.params"))
        net = twin
    x = np.random.RandomState(1).randn(2, 64, 9, 9).astype(np.float32)
    got = net.features[4][0].bn1(mx.nd.array(x)).asnumpy()
    want = np.concatenate([_np_in(x[:, :32], sd["layer1.0.bn1.IN.weight"],
                                  sd["layer1.0.bn1.IN.bias"]),
                           _np_bn(x[:, 32:], sd, "layer1.0.bn1.BN")], axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    f = np.random.RandomState(2).randn(2, 512).astype(np.float32)
    np.testing.assert_allclose(net.output(mx.nd.array(f)).asnumpy(),
                               f @ sd["fc.weight"].T + sd["fc.bias"], rtol=1e-4, atol=1e-4)


def test_tool_resnet18_ibn_b_instance_norms(tmp_path, capsys):
    sd = _values(pt_resnet_keys(18, "b", classes=3))
    net = _run_tool(tmp_path, "resnet18_ibn_b", 3, sd)
    capsys.readouterr()
    x = np.random.RandomState(3).randn(2, 64, 8, 8).astype(np.float32)
    np.testing.assert_allclose(net.features[1](mx.nd.array(x)).asnumpy(),
                               _np_in(x, sd["bn1.weight"], sd["bn1.bias"]), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(net.features[4][1].IN(mx.nd.array(x)).asnumpy(),
                               _np_in(x, sd["layer1.1.IN.weight"], sd["layer1.1.IN.bias"]),
                               rtol=1e-4, atol=1e-4)


def test_densenet_ibn_halves_in_the_authors_order(tmp_path):
    """DenseNet-IBN-a: BN on the first floor(0.6 C) channels, IN on the rest (block 1 layer 1:
    C = 64 -> BN 38, IN 26)."""
    sd = _values(pt_densenet_keys(121, classes=3))
    out = str(tmp_path / "d.params")
    convert("densenet121_ibn_a", write_torch_file(str(tmp_path / "d.pth"), sd), out, classes=3,
            impl="stock")
    net = get_model("densenet121_ibn_a", classes=3)  # the native IBN reads the same file
    net.load_parameters(out)
    p = "features.denseblock1.denselayer1.norm1"
    x = np.random.RandomState(4).randn(2, 64, 6, 6).astype(np.float32)
    got = net.features[0][4][0].norm1(mx.nd.array(x)).asnumpy()
    want = np.concatenate([_np_bn(x[:, :38], sd, p + ".BN"),
                           _np_in(x[:, 38:], sd[p + ".IN.weight"], sd[p + ".IN.bias"])], axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_se_gate_weights(tmp_path):
    sd = _values(pt_resnet_keys(50, "a", se=True, classes=3))
    _, params = _params("se_resnet50_ibn_a", 3)
    arrays = map_state_dict(sd, weight_map("se_resnet50_ibn_a"), params).arrays
    np.testing.assert_array_equal(arrays["features.5.3.se.fc0.weight"],
                                  sd["layer2.3.se.fc.0.weight"])
    np.testing.assert_array_equal(arrays["features.5.3.se.fc2.weight"],
                                  sd["layer2.3.se.fc.2.weight"])


def test_errors_name_the_bad_tensors():
    _, params = _params("resnet50_ibn_a", 4)
    sd = _values(pt_resnet_keys(50, "a", classes=4))
    del sd["layer2.1.bn1.IN.weight"], sd["layer3.0.bn1.BN.running_var"]
    sd["layer1.0.bn1.BN.weight"] = np.zeros(64, np.float32)  # the whole width: wrong shape
    sd["layer1.0.bn1.IN.running_mean"] = np.zeros(32, np.float32)  # IN has no running stats
    sd["layer4.0.bn1.IN.weight"] = np.zeros(256, np.float32)  # layer 4 has no IBN
    with pytest.raises(WeightMapError) as err:
        map_state_dict(sd, weight_map("resnet50_ibn_a"), params, source="r50.pth")
    msg = str(err.value)
    for part in ("r50.pth", "features.5.1.bn1.in_gamma", "features.6.0.bn1.running_var",
                 "layer1.0.bn1.BN.weight -> features.4.0.bn1.bn_gamma: file (64,), network "
                 "(32,)", "layer4.0.bn1.IN.weight", "layer1.0.bn1.IN.running_mean"):
        assert part in msg, part
    # an IBN-a file is not an IBN-b network
    _, params_b = _params("resnet50_ibn_b", 4)
    with pytest.raises(WeightMapError, match="layer1.0.bn1.IN.weight"):
        map_state_dict(_values(pt_resnet_keys(50, "a", classes=4)), weight_map("resnet50_ibn_b"),
                       params_b)


def test_tool_error_for_a_file_of_another_network(tmp_path):
    src = write_torch_file(str(tmp_path / "w.pth"), _values(pt_resnet_keys(18, "b", classes=3)))
    old = sys.argv
    sys.argv = ["convert_weights.py", "--model", "resnet18_ibn_a", "--classes", "3", src,
                str(tmp_path / "o.params")]
    try:
        with pytest.raises(SystemExit) as exit_:
            runpy.run_path(os.path.join(TOOLS, "convert_weights.py"), run_name="__main__")
    finally:
        sys.argv = old
    for part in ("w.pth does not fit", "features.4.0.bn1.in_gamma", "layer1.1.IN.weight"):
        assert part in str(exit_.value), part
    assert not os.path.exists(str(tmp_path / "o.params"))
