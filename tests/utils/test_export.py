"""Export / import: exported networks compute what the block computes, in Gluon and in Module;
native <-> stock conversion through checkpoints; stock exports load with stock MXNet only;
atomic writes; strict checkpoint loading; the export command line."""
import argparse
import json
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

import gluon_models
from gluon_models.model_zoo import add_model_args, model_options_from_args
from gluon_models.model_zoo.cli import parse_model_opt
from gluon_models.utils import (build_and_export, default_input_shape, export_model,
                                load_exported)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHAPE = (3, 32, 32)
# Small CIFAR networks: every IGC variant (plain: inverse Reorders; residual: the authors'
# non-inverse second Reorder and grouped projections) at a depth that builds in milliseconds.
MODELS = [("igc_plain_cifar", dict(depth=8)), ("igc_resnet_cifar", dict(depth=8))]


def _randomise(net):
    """Random weights and BatchNorm statistics, so that a wrongly mapped or skipped
    parameter changes the output."""
    for name, p in net.collect_params().items():
        if name.endswith("running_var"):
            p.set_data(mx.nd.random.uniform(0.5, 1.5, p.shape))
        else:
            p.set_data(mx.nd.random.normal(0, 0.2, p.shape))


def _build(name, options, impl):
    net = gluon_models.get_model(name, impl=impl, **options)
    net.initialize()
    _randomise(net)
    return net


def _ops(sym_file):
    with open(sym_file) as fh:
        return {node["op"] for node in json.load(fh)["nodes"]}


def _module_forward(sym_file, params_file, x):
    mod = mx.mod.Module(mx.sym.load(sym_file), data_names=["data"], label_names=None,
                        context=mx.cpu())
    mod.bind(data_shapes=[("data", x.shape)], for_training=False)
    saved = mx.nd.load(params_file)
    arg = {k[4:]: v for k, v in saved.items() if k.startswith("arg:")}
    aux = {k[4:]: v for k, v in saved.items() if k.startswith("aux:")}
    mod.set_params(arg, aux)  # allow_missing=False: every argument must be in the file
    mod.forward(mx.io.DataBatch([x]), is_train=False)
    return mod.get_outputs()[0].asnumpy()


# the native IGC networks' operators: the permutation, or the secondary conv with the
# permutations folded in (and, for narrow groups, the primary conv)
NATIVE_IGC = {"Reorder", "IGCSecondary", "GroupConv"}


@pytest.mark.parametrize("name,options", MODELS)
@pytest.mark.parametrize("impl", ["native", "stock"])
def test_export_matches_block_in_gluon_and_module(tmp_path, name, options, impl):
    net = _build(name, options, impl)
    x = mx.nd.random.normal(0, 1, (2,) + SHAPE)
    expected = net(x).asnumpy()
    sym_file, params_file = export_model(net, str(tmp_path / "net"), SHAPE)
    assert (sym_file, params_file) == (str(tmp_path / "net-symbol.json"),
                                       str(tmp_path / "net-0000.params"))
    assert bool(NATIVE_IGC & _ops(sym_file)) == (impl == "native")
    loaded = load_exported(str(tmp_path / "net"))
    np.testing.assert_allclose(loaded(x).asnumpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_module_forward(sym_file, params_file, x), expected,
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,options", MODELS)
@pytest.mark.parametrize("src,dst", [("native", "stock"), ("stock", "native")])
def test_checkpoint_converts_between_impls(tmp_path, name, options, src, dst):
    net = _build(name, options, src)
    x = mx.nd.random.normal(0, 1, (2,) + SHAPE)
    expected = net(x).asnumpy()
    src_sym, _ = export_model(net, str(tmp_path / src), SHAPE)
    dst_sym, _ = build_and_export(name, str(tmp_path / dst), impl=dst,
                                  checkpoint=(str(tmp_path / src), 0), **options)
    assert NATIVE_IGC & _ops(tmp_path / "native-symbol.json")
    assert not NATIVE_IGC & _ops(tmp_path / "stock-symbol.json")
    out = load_exported(str(tmp_path / dst))(x).asnumpy()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_gluon_params_file_loads(tmp_path):
    name, options = MODELS[0]
    net = _build(name, options, "native")
    x = mx.nd.random.normal(0, 1, (1,) + SHAPE)
    expected = net(x).asnumpy()
    net.save_parameters(str(tmp_path / "w.params"))
    build_and_export(name, str(tmp_path / "out"), impl="stock",
                     params=str(tmp_path / "w.params"), **options)
    out = load_exported(str(tmp_path / "out"))(x).asnumpy()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="missing"):  # a deeper net has more parameters
        build_and_export(name, str(tmp_path / "bad"), params=str(tmp_path / "w.params"),
                         depth=11)
    with pytest.raises(ValueError, match="checkpoint=\\(prefix, epoch\\)"):  # wrong kind
        build_and_export(name, str(tmp_path / "bad"), params=str(tmp_path / "out-0000.params"),
                         **options)
    with pytest.raises(ValueError, match="params or checkpoint"):
        build_and_export(name, str(tmp_path / "bad"), params=str(tmp_path / "w.params"),
                         checkpoint=(str(tmp_path / "out"), 0), **options)
    assert not list(tmp_path.glob("bad*"))


# Runs with stock MXNet only: the stock export must load and compute; the native one must
# not load (so this check can tell the two apart).
_STOCK_ONLY = r"""
import sys
import mxnet as mx
stock, native, io_file = sys.argv[1:4]
net = mx.gluon.SymbolBlock.imports(stock + "-symbol.json", ["data"], stock + "-0000.params")
mx.nd.save(io_file, {"y": net(mx.nd.load(io_file)["x"])})
try:
    mx.gluon.SymbolBlock.imports(native + "-symbol.json", ["data"], native + "-0000.params")
    print("native loaded")
except mx.base.MXNetError as err:
    print("native failed:", any(op in str(err) for op in ("Reorder", "IGCSecondary", "GroupConv")))
print("gluon_models imported:", "gluon_models" in sys.modules)
"""


def test_stock_export_runs_without_the_operator_library(tmp_path):
    name, options = MODELS[1]
    net = _build(name, options, "native")
    x = mx.nd.random.normal(0, 1, (2,) + SHAPE)
    expected = net(x).asnumpy()
    export_model(net, str(tmp_path / "native"), SHAPE)
    build_and_export(name, str(tmp_path / "stock"), impl="stock",
                     checkpoint=(str(tmp_path / "native"), 0), **options)
    io_file = str(tmp_path / "io.nd")
    mx.nd.save(io_file, {"x": x})
    proc = subprocess.run([sys.executable, "-c", _STOCK_ONLY, str(tmp_path / "stock"),
                           str(tmp_path / "native"), io_file],
                          cwd=str(tmp_path), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "native failed: True" in proc.stdout
    assert "gluon_models imported: False" in proc.stdout
    np.testing.assert_allclose(mx.nd.load(io_file)["y"].asnumpy(), expected,
                               rtol=1e-5, atol=1e-5)


def test_export_is_atomic(tmp_path):
    name, options = MODELS[0]
    net = _build(name, options, "native")
    prefix = tmp_path / "new" / "dir" / "net"  # created on demand
    export_model(net, str(prefix), SHAPE)
    assert sorted(os.listdir(prefix.parent)) == ["net-0000.params", "net-0000.sha256",
                                                 "net-symbol.json"]
    before = {f: (prefix.parent / f).read_bytes() for f in os.listdir(prefix.parent)}

    real_export = net.export

    def export_then_fail(path, epoch=0):
        real_export(path, epoch)
        raise RuntimeError("disk full")
    net.export = export_then_fail
    _randomise(net)  # new weights: a non-atomic export would change the files
    with pytest.raises(RuntimeError, match="disk full"):
        export_model(net, str(prefix), SHAPE)
    # no temporary files left, and the earlier export untouched
    assert {f: (prefix.parent / f).read_bytes() for f in os.listdir(prefix.parent)} == before

    del net.export
    with pytest.raises(mx.base.MXNetError):  # the forward fails before anything is written
        export_model(net, str(tmp_path / "bad" / "net"), (5, 32, 32))
    assert os.listdir(tmp_path / "bad") == []


def test_checkpoint_names_are_checked(tmp_path):
    name, options = MODELS[0]
    net = _build(name, options, "native")
    _, params_file = export_model(net, str(tmp_path / "good"), SHAPE)
    saved = mx.nd.load(params_file)
    first = sorted(k for k in saved if k.startswith("arg:"))[0]

    renamed = dict(saved)
    renamed["arg:not_a_parameter"] = renamed.pop(first)
    mx.nd.save(str(tmp_path / "renamed-0000.params"), renamed)
    with pytest.raises(ValueError) as err:
        build_and_export(name, str(tmp_path / "o"), checkpoint=(str(tmp_path / "renamed"), 0),
                         **options)
    assert first[4:] in str(err.value) and "not_a_parameter" in str(err.value)

    mx.nd.save(str(tmp_path / "plain-0000.params"), {k[4:]: v for k, v in saved.items()})
    with pytest.raises(ValueError, match="arg:"):
        build_and_export(name, str(tmp_path / "o"), checkpoint=(str(tmp_path / "plain"), 0),
                         **options)
    with pytest.raises(ValueError, match="fc_score_weight"):  # wrong shape, named
        build_and_export(name, str(tmp_path / "o"), checkpoint=(str(tmp_path / "good"), 0),
                         classes=7, **options)
    with pytest.raises(ValueError, match="missing"):
        build_and_export(name, str(tmp_path / "o"), checkpoint=(str(tmp_path / "good"), 0),
                         depth=11)
    with pytest.raises(ValueError, match="does not exist"):
        build_and_export(name, str(tmp_path / "o"), checkpoint=(str(tmp_path / "good"), 3),
                         **options)
    assert not list(tmp_path.glob("o-*"))


def test_default_input_shape():
    assert default_input_shape("igc_plain_cifar") == (3, 32, 32)
    assert default_input_shape("resnet_cifar") == (3, 32, 32)
    assert default_input_shape("resnet18_w64") == (3, 224, 224)
    assert gluon_models.model_info("IGC_RESNET18_L100M2")["input_size"] == 224
    for name in gluon_models.list_models("*_cifar"):
        assert gluon_models.model_info(name)["input_size"] == 32, name


def test_model_args():
    assert parse_model_opt("depth=8") == ("depth", 8)
    assert parse_model_opt("ratio=0.5") == ("ratio", 0.5)
    assert parse_model_opt("flag=true") == ("flag", True)
    assert parse_model_opt("flag=False") == ("flag", False)
    assert parse_model_opt("mode=abc") == ("mode", "abc")
    assert parse_model_opt("some-key=(2, 2)") == ("some_key", (2, 2))
    with pytest.raises(argparse.ArgumentTypeError):
        parse_model_opt("depth")
    parser = argparse.ArgumentParser()
    add_model_args(parser)
    args = parser.parse_args(["--model", "igc_plain_cifar", "--model-opt", "depth=8",
                              "--model-opt", "primary=4", "--impl", "stock", "--classes", "5"])
    assert model_options_from_args(args) == dict(depth=8, primary=4, impl="stock", classes=5)
    args = parser.parse_args(["--model", "resnet18_w64"])
    assert model_options_from_args(args) == dict(impl="native")
    for bad in (["--model-opt", "depth=8", "--model-opt", "depth=11"],
                ["--model-opt", "classes=3"]):
        with pytest.raises(ValueError):
            model_options_from_args(parser.parse_args(["--model", "igc_plain_cifar"] + bad))
    with pytest.raises(ValueError, match="unknown model 'm'"):
        model_options_from_args(parser.parse_args(["--model", "m"]))


def test_seed_network_flags():
    """The IGC seed's --network values and flags map onto the registry (spec igc.md 3.1)."""
    parser = argparse.ArgumentParser()
    add_model_args(parser)
    seed = ["--depth", "38", "--primary-partition", "24", "--secondary-partition", "2"]
    args = parser.parse_args(["--network", "plain_igc"] + seed)
    assert args.model == "plain_igc"
    assert model_options_from_args(args) == dict(depth=38, primary=24, secondary=2,
                                                 impl="native")
    assert gluon_models.get_model(args.model, **model_options_from_args(args)).prefix == \
        "igc_plain_cifar_"
    # a regular baseline's width is --primary-partition (x secondary)
    args = parser.parse_args(["--network", "resnet", "--depth", "20",
                              "--primary-partition", "16"])
    assert model_options_from_args(args) == dict(depth=20, width=16, impl="native")
    # the flags also reach registry names that take them, and are refused where they don't
    args = parser.parse_args(["--model", "igc_resnet_cifar", "--depth", "14"])
    assert model_options_from_args(args) == dict(depth=14, impl="native")
    with pytest.raises(ValueError, match="--depth does not apply to model resnet18_w64"):
        model_options_from_args(parser.parse_args(["--model", "resnet18_w64", "--depth", "18"]))


def _tool(*argv):
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", argv[0])] +
                          [str(a) for a in argv[1:]], capture_output=True, text=True,
                          timeout=120)


def test_export_command_line(tmp_path):
    out = _tool("export_model.py", "--model", "igc_plain_cifar", "--model-opt", "depth=8",
                "--classes", "5", "--output", tmp_path / "cli" / "native")
    assert out.returncode == 0, out.stderr
    native = [tmp_path / "cli" / "native-symbol.json", tmp_path / "cli" / "native-0000.params"]
    assert out.stdout.split() == [str(f) for f in native]
    out = _tool("export_model.py", "--model", "igc_plain_cifar", "--model-opt", "depth=8",
                "--classes", "5", "--impl", "stock", "--checkpoint", tmp_path / "cli" / "native",
                "--epoch", "0", "--output", tmp_path / "cli" / "stock")
    assert out.returncode == 0, out.stderr
    assert not NATIVE_IGC & _ops(tmp_path / "cli" / "stock-symbol.json")
    x = mx.nd.random.normal(0, 1, (1,) + SHAPE)
    y_native = load_exported(str(tmp_path / "cli" / "native"))(x)
    y_stock = load_exported(str(tmp_path / "cli" / "stock"))(x)
    assert y_native.shape == (1, 5)
    np.testing.assert_allclose(y_stock.asnumpy(), y_native.asnumpy(), rtol=1e-5, atol=1e-5)
    out = _tool("export_model.py", "--model", "igc_plain_cifar", "--model-opt", "depth=8",
                "--checkpoint", tmp_path / "cli" / "native", "--output", tmp_path / "x")
    assert out.returncode != 0 and "fc_score_weight" in out.stderr  # classes 10 vs 5


def test_a_corrupted_export_is_named_when_loaded(tmp_path):
    # exports get the checkpoint checksum file, so a flipped byte in the weights is caught
    name, options = MODELS[0]
    _, params_file = export_model(_build(name, options, "native"), str(tmp_path / "e"), SHAPE)
    data = bytearray(open(params_file, "rb").read())
    data[len(data) // 2] ^= 0x40  # inside the weights: mx.nd.load takes it silently
    open(params_file, "wb").write(bytes(data))
    with pytest.raises(ValueError, match=r"e-0000\.params is corrupted"):
        gluon_models.utils.build_model(name, checkpoint=(str(tmp_path / "e"), 0), **options)
