"""IGC networks: parameter counts, published structure, CIFAR builder rules."""
import json
import re

import numpy as np
import pytest
import mxnet as mx

import gluon_models
from gluon_models.model_zoo.igc import cifar_resnet_blocks

from ..passes import assert_same_pass, copy_params, recorded_pass
from .legacy_json import PUBLISHED, resnet18_json

# Learnable parameters (conv weights, BN gamma/beta, fc weight/bias).
# ImageNet: the authors' published symbols (spec igc.md 4.1: "exact counts of the published
# symbols"). CIFAR: the authors' builder; plain_igc d38 L24M2 printed "0.3172M" (= 317,242
# + the 1-element label counted by their cal_params).
PARAM_COUNTS = [
    ("igc_plain_cifar", dict(depth=38, primary=24, secondary=2, classes=10), 317242),
    ("resnet18_w64", {}, 11689512),
    ("resnet18_w69", {}, 13542457),
    ("igc_resnet18_l4m32", {}, 12251240),
    ("igc_resnet18_l16m16", {}, 13528296),
    ("igc_resnet18_l100m2", {}, 8637900),
]


def learnable(net):
    return sum(int(np.prod(p.shape)) for p in net.collect_params().values()
               if p.grad_req != "null")


@pytest.mark.parametrize("name,options,count", PARAM_COUNTS)
def test_parameter_counts(name, options, count):
    net = gluon_models.get_model(name, **options)
    assert learnable(net) == count


def _our_name_in_published(model, ours):
    """Map a parameter name of our network to the published symbol's name."""
    name = ours[len(model) + 1:]
    name = name.replace("running_mean", "moving_mean").replace("running_var", "moving_var")
    if not model.startswith("igc"):  # regular ResNets: stem `g0`, layers `conv1`, `proj`
        name = re.sub(r"^g0_conv_", "g0_", name)
        name = re.sub(r"_(conv\d|proj)_conv_", r"_\1_", name)
    return name


def _layers(sym_json):
    """(op, attributes that define the computation) of every compute node, in graph order."""
    keys = {"Convolution": ("kernel", "stride", "pad", "num_filter", "num_group", "no_bias"),
            "Reorder": ("branch_factor",), "BatchNorm": ("eps", "fix_gamma"),
            "Pooling": ("kernel", "stride", "pool_type", "global_pool"),
            "FullyConnected": ("num_hidden",), "Activation": ("act_type",)}
    out = []
    for node in json.loads(sym_json)["nodes"]:
        if node["op"] in keys:
            attrs = node.get("attrs", node.get("param", {}))
            vals = []
            for k in keys[node["op"]]:
                v = attrs.get(k, {"global_pool": "False", "no_bias": "False",
                                  "fix_gamma": "True", "pad": "(0, 0)"}.get(k))
                vals.append(re.sub(r"\s", "", str(v)).replace("e-005", "e-05"))
            out.append((node["op"], tuple(vals)))
    return out


@pytest.mark.parametrize("model", sorted(PUBLISHED))
def test_published_symbol_loads_and_matches_our_network(model, tmp_path):
    """A legacy v0.8 JSON in the published form loads by name (Reorder from our library),
    has our network's structure layer for layer, and with our weights gives our outputs."""
    path = tmp_path / (model + "-symbol.json")
    path.write_text(resnet18_json(**PUBLISHED[model]))
    legacy = mx.sym.load(str(path))

    # the authors' op chain (Reorder, grouped conv, Reorder); the default network computes the
    # same with merged primary groups and the permutations folded into the secondary conv
    net = gluon_models.get_model(model, merge_groups=False, fuse_secondary=False)
    net.initialize(mx.init.Xavier())
    for p in net.collect_params(".*running.*").values():  # non-trivial BN statistics
        p.set_data(mx.nd.random.uniform(0.5, 1.5, p.shape))
    net.hybridize()
    x = mx.nd.random.uniform(-1, 1, (1, 3, 224, 224))
    net(x)
    ours_sym = net._cached_graph[1]
    fast = gluon_models.get_model(model)
    fast.initialize()
    for name, p in fast.collect_params().items():
        p.set_data(net.collect_params()[name].data())
    fast.hybridize()
    ours = fast(x)

    # structure: every conv / Reorder / BN / pooling / fc / relu, in order
    assert _layers(ours_sym.tojson()) == _layers(legacy.tojson())

    # numbers: the published graph with our weights
    head = legacy.get_internals()["fc_score_output"]
    args = {"data": x}
    aux = {}
    for name, p in net.collect_params().items():
        key = _our_name_in_published(model, name)
        (aux if "moving" in key else args)[key] = p.data()
    assert sorted(args) == sorted(a for a in head.list_arguments())
    assert sorted(aux) == sorted(head.list_auxiliary_states())
    ex = head.bind(mx.cpu(), args, aux_states=aux)
    theirs = ex.forward(is_train=False)[0]
    np.testing.assert_allclose(theirs.asnumpy(), ours.asnumpy(), rtol=1e-4, atol=1e-5)


def _reorders_and_groups(net, shape):
    """(num_group of the secondary conv, Reorder factors) per IGC layer, in order (of a network
    built with ``fuse_secondary=False``: the authors' op chain)."""
    net.initialize()
    net.hybridize()
    net(mx.nd.zeros(shape))
    nodes = json.loads(net._cached_graph[1].tojson())["nodes"]
    layers, current = [], None
    for node in nodes:
        if node["op"] == "Reorder":
            if current is None:
                current = [int(node["attrs"]["branch_factor"])]
            else:
                current.append(int(node["attrs"]["branch_factor"]))
                layers.append(tuple(current))
                current = None
        elif node["op"] == "Convolution" and current is not None:
            current.append(int(node["attrs"]["num_group"]))
    return layers  # (reorder1, secondary groups, reorder2)


def test_igc_plain_cifar_partitions():
    # spec 1.5: Reorder1 = L in all stages, secondary groups = Reorder2 = M * 2**s
    net = gluon_models.get_model("igc_plain_cifar", depth=8, primary=4, secondary=3,
                                 fuse_secondary=False)
    # depth 8: two layers per stage
    assert _reorders_and_groups(net, (1, 3, 32, 32)) == \
        [(4, 3, 3)] * 2 + [(4, 6, 6)] * 2 + [(4, 12, 12)] * 2


def test_igc_resnet_cifar_partitions():
    # spec 1.5: 1st IGC: L / kin/L (not the inverse where the width doubles), 2nd: L / kout/L
    net = gluon_models.get_model("igc_resnet_cifar", depth=14, primary=4, secondary=2,
                                 fuse_secondary=False)
    # blocks (2, 2, 2); widths 8, 16, 32
    expected = [(4, 2, 2), (4, 2, 2)] * 2 + [(4, 2, 2), (4, 4, 4), (4, 4, 4), (4, 4, 4)] \
        + [(4, 4, 4), (4, 8, 8), (4, 8, 8), (4, 8, 8)]
    assert _reorders_and_groups(net, (1, 3, 32, 32)) == expected
    proj = [n for n in json.loads(net._cached_graph[1].tojson())["nodes"]
            if n["op"] == "Convolution" and "proj" in n["name"]]
    assert [(p["attrs"]["num_group"], p["attrs"]["stride"]) for p in proj] == \
        [("4", "(2, 2)")] * 2


def _ops(net, shape):
    net.initialize()
    net.hybridize()
    net(mx.nd.zeros(shape))
    return [n["op"] for n in json.loads(net._cached_graph[1].tojson())["nodes"]]


def test_fused_layers_are_where_the_permutations_are_inverse():
    # igc_resnet_cifar depth 14: 12 IGC layers; the first of stages 2 and 3 keeps the authors'
    # non-inverse second Reorder (spec 1.5), so it stays unfused: 2 layers x 2 Reorders
    ops = _ops(gluon_models.get_model("igc_resnet_cifar", depth=14, primary=4, secondary=2),
               (1, 3, 32, 32))
    assert ops.count("IGCSecondary") == 10 and ops.count("Reorder") == 4
    # primaries of fused layers with groups <= 4 channels wide run as the native GroupConv:
    # widths 8, 16, 32 with 4 groups, so stage 1's 2-channel groups and stage 2's 4-channel
    # ones (7 fused layers: 4 + 3, the first of stage 2 is unfused)
    assert ops.count("GroupConv") == 7
    ops = _ops(gluon_models.get_model("igc_resnet18_l16m16", classes=10,
                                      representation_options={"pool_size": None}),
               (1, 3, 64, 64))
    assert ops.count("IGCSecondary") == 16 and ops.count("Reorder") == 0
    # BatchNorms of plain tensors as the native BNReLU: behind every fused layer and the
    # grouped projections of stages 2-4; the 256-channel stem stays oneDNN's
    assert ops.count("BNReLU") == 16 + 3 and ops.count("BatchNorm") == 1
    assert "GroupConv" not in ops  # 16-channel groups: oneDNN's blocked kernels
    ops = _ops(gluon_models.get_model("igc_resnet18_l100m2", classes=10,
                                      representation_options={"pool_size": None}),
               (1, 3, 64, 64))
    # L100M2: also the projection of stage 1 (100 -> 200) and the 100-channel stem
    assert ops.count("BNReLU") == 16 + 4 + 1 and "BatchNorm" not in ops
    # every primary of stride 1 (1-2 channels per group) native; oneDNN keeps the stem, the
    # projections and the stride-2 primaries of the first layer of stages 2-4
    assert ops.count("GroupConv") == 13 and ops.count("Convolution") == 1 + 4 + 3
    ops = _ops(gluon_models.get_model("igc_resnet18_l16m16", classes=10, impl="stock",
                                      representation_options={"pool_size": None}),
               (1, 3, 64, 64))
    # the twin: the authors' graph
    assert "IGCSecondary" not in ops and "tile" not in ops and "BNReLU" not in ops


def test_fused_onednn_primaries_exchange_plain_tensors():
    # A fused layer's oneDNN primary (16-channel groups) reads its input through an identity
    # transpose and hands its output on through another: its blocked data gradient then
    # reaches the residual sum and the native BNReLU's backward as plain NCHW, converted by
    # oneDNN into planned memory, instead of MXNet converting it on a path that allocates
    # (a mixed-layout gradient sum falls back; an extension op's blocked input is copied).
    net = gluon_models.get_model("igc_resnet18_l16m16", classes=10,
                                 representation_options={"pool_size": None})
    net.initialize()
    net.hybridize()
    net(mx.nd.zeros((1, 3, 64, 64)))
    nodes = json.loads(net._cached_graph[1].tojson())["nodes"]
    primaries = [n for n in nodes if n["op"] == "Convolution"
                 and n["attrs"]["kernel"] == "(3, 3)"]
    assert len(primaries) == 16
    for conv in primaries:
        feed = nodes[conv["inputs"][0][0]]
        assert feed["op"] == "transpose" and feed["attrs"]["axes"] == "(0, 1, 2, 3)", conv["name"]
    consumers = [nodes[n["inputs"][0][0]] for n in nodes if n["op"] == "IGCSecondary"]
    assert len(consumers) == 16 and all(c["op"] == "transpose" for c in consumers)


SPEED_PATHS = [("igc_resnet_cifar", dict(depth=14, primary=4, secondary=2), 32),
               ("igc_plain_cifar", dict(depth=8, primary=6, secondary=2), 32),
               ("igc_resnet18_l100m2", {}, 32), ("igc_resnet18_l16m16", {}, 32),
               ("igc_resnet18_l4m32", {}, 32)]


@pytest.mark.parametrize("name,options,side", SPEED_PATHS)
def test_speed_paths_compute_the_authors_graph(name, options, side):
    """Merged primary groups, the fused secondary conv and the native BatchNorms (the native
    default) give the outputs, every gradient and the updated running statistics of the
    unfused native network and of the stock twin (float64, training mode: batch statistics)."""
    if side != 224 and name.startswith("igc_resnet18"):
        options = dict(options, representation_options={"pool_size": None})
    rng = np.random.RandomState(0)
    x = mx.nd.array(rng.standard_normal((2, 3, side, side)), dtype="float64")
    dy = mx.nd.array(rng.standard_normal((2, 5)), dtype="float64")
    nets = {}
    for label, extra in (("fast", {}), ("unfused", dict(merge_groups=False, fuse_secondary=False)),
                         ("stock", dict(impl="stock"))):
        net = nets[label] = gluon_models.get_model(name, classes=5, **options, **extra)
        net.initialize(mx.init.Xavier())
        net.cast("float64")
        copy_params(nets["fast"], net)
        net.hybridize()
    results = {label: recorded_pass(net, x, dy) for label, net in nets.items()}
    for label in ("unfused", "stock"):
        assert_same_pass(results["fast"], results[label], 1e-9)


@pytest.mark.parametrize("depth,blocks", [(20, (3, 3, 3)), (32, (5, 5, 5)), (34, (5, 5, 6)),
                                          (56, (9, 9, 9)), (110, (18, 18, 18))])
def test_cifar_resnet_block_rule(depth, blocks):
    assert cifar_resnet_blocks(depth) == blocks


@pytest.mark.parametrize("name,options,message", [
    ("plain_cifar", dict(depth=37), "3n \\+ 2"),
    ("igc_plain_cifar", dict(depth=39), "3n \\+ 2"),
    ("resnet_cifar", dict(depth=21), "even depth"),
    ("igc_plain_cifar", dict(primary=0), "primary must be a positive integer"),
    ("resnet18_w64", dict(impl="gpu"), "impl must be one of"),
])
def test_invalid_options_raise(name, options, message):
    with pytest.raises(ValueError, match=message):
        gluon_models.get_model(name, **options)
