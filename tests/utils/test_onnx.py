"""ONNX export: every registered network's stock twin and every representation export, pass
``onnx.checker`` and compute MXNet's output in numpy (onnx's reference evaluator, with the
two operators of ``utils.onnx_reference`` held to the reference / the specification here);
dynamic batch; the refusals name the layer; the command line."""
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")  # a pinned requirement; skipped only where not installed

from onnx import TensorProto, helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

import gluon_models  # noqa: E402
from gluon_models.model_zoo.compose import representations  # noqa: E402
from gluon_models.utils import export_onnx  # noqa: E402
from gluon_models.utils.export import ONNX_OPSET  # noqa: E402
from gluon_models.utils.onnx_reference import reference_session, run_onnx  # noqa: E402
from tests.model_zoo.test_registry import (ALL, EXCLUDED, assert_close,  # noqa: E402
                                           finish_deferred_init, input_shape, options)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ---- the numpy runner's two operators --------------------------------------------------------

def _single_node_model(node, inputs):
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info(k, TensorProto.FLOAT, v.shape)
                      for k, v in inputs.items()],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)])


# (input shape, out channels, kernel, group, stride, pads, dilation, bias)
CONVS = [((2, 8, 9, 10), 12, (3, 3), 1, (1, 1), (1, 1, 1, 1), (1, 1), False),
         ((1, 8, 9, 10), 12, (3, 3), 4, (2, 2), (1, 0, 2, 1), (1, 1), True),
         ((2, 6, 11, 7), 6, (3, 1), 6, (1, 2), (0, 0, 0, 0), (2, 1), True),
         ((1, 4, 13, 13), 8, (7, 7), 2, (2, 2), (3, 3, 3, 3), (1, 1), False)]


@pytest.mark.parametrize("shape,out,kernel,group,stride,pads,dilation,bias", CONVS)
def test_fast_conv_equals_the_reference_conv(shape, out, kernel, group, stride, pads,
                                             dilation, bias):
    inputs = {"x": np.random.randn(*shape).astype(np.float32),
              "w": np.random.randn(out, shape[1] // group, *kernel).astype(np.float32)}
    if bias:
        inputs["b"] = np.random.randn(out).astype(np.float32)
    node = helper.make_node("Conv", list(inputs), ["y"], group=group, strides=stride,
                            pads=pads, dilations=dilation, kernel_shape=kernel)
    model = _single_node_model(node, inputs)
    fast = reference_session(model).run(None, inputs)[0]
    slow = ReferenceEvaluator(model).run(None, inputs)[0]
    assert fast.shape == slow.shape and fast.dtype == np.float32
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-5)


def test_batchnorm_is_the_specifications_inference_form():
    c = 5
    inputs = {"x": np.random.randn(2, c, 3, 4).astype(np.float32),
              "s": np.random.uniform(0.5, 2, c).astype(np.float32),
              "b": np.random.randn(c).astype(np.float32),
              "m": np.random.randn(c).astype(np.float32),
              "v": np.random.uniform(0.5, 2, c).astype(np.float32)}
    node = helper.make_node("BatchNormalization", list(inputs), ["y"], epsilon=2e-5,
                            momentum=0.9)
    y = reference_session(_single_node_model(node, inputs)).run(None, inputs)[0]
    r = lambda a: a.reshape(1, c, 1, 1)  # noqa: E731
    expected = r(inputs["s"]) * (inputs["x"] - r(inputs["m"])) / np.sqrt(
        r(inputs["v"]) + 2e-5) + r(inputs["b"])
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


# ---- every registered network, every representation ------------------------------------------

def _randomise_statistics(net):
    """Random BatchNorm running statistics, so that a wrongly translated BatchNorm (or one
    computed from the batch) changes the output."""
    for name, p in net.collect_params().items():
        if name.endswith("running_mean"):
            p.set_data(mx.nd.random.uniform(-0.1, 0.1, p.shape))
        elif name.endswith("running_var"):
            p.set_data(mx.nd.random.uniform(0.8, 1.25, p.shape))


def _check_export(net, shape, path):
    """Export ``net`` (initialised, stock; random BatchNorm statistics) for inputs ``shape``,
    check the file and compare the numpy run with MXNet's output."""
    x = mx.nd.random.uniform(-1, 1, shape)
    finish_deferred_init(net, x)  # gluoncv backbones: shapes known after a first forward
    _randomise_statistics(net)
    net.hybridize()
    expected = net(x).asnumpy()
    assert np.isfinite(expected).all()
    export_onnx(net, str(path), input_shape=shape[1:], batch_size=shape[0])
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", ONNX_OPSET)]
    assert not {n.op_type for n in model.graph.node} & {"Reorder", "FMConvolution1",
                                                         "FMConvolution3"}
    assert_close(run_onnx(model, x.asnumpy()), expected)


@pytest.mark.parametrize("name,size", ALL)
def test_every_network_exports_and_computes_mxnets_output(name, size, tmp_path):
    net = gluon_models.get_model(name, **options(name, size, classes=7, impl="stock"))
    net.initialize(mx.init.Xavier())
    _check_export(net, input_shape(name, size), tmp_path / (name + ".onnx"))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXCLUDED))
def test_networks_left_out_of_the_registry_tests_export(name, tmp_path):
    """The 1001-layer networks (no numeric comparison: their freshly initialised outputs
    overflow, see tests/model_zoo/test_registry.py; their builder is compared at depth 164)
    export and pass the checker."""
    net = gluon_models.get_model(name, impl="stock", classes=7)
    net.initialize(mx.init.Xavier())
    path = export_onnx(net, str(tmp_path / (name + ".onnx")), input_shape=(3, 32, 32))
    onnx.checker.check_model(path, full_check=True)


# Options a representation needs on the 8 x 8 map of the CIFAR backbone below (a new one
# that needs some fails here until it is given them).
REPRESENTATION_OPTIONS = {"maxpool": dict(pool_size=2, strides=2, map_size=8),
                          "fb": dict(num_factor=3), "isqrtcov": dict(reduced_dim=16),
                          "cbp": dict(proj_dim=512)}


@pytest.mark.parametrize("representation", representations())
def test_every_representation_exports(representation, tmp_path):
    net = gluon_models.get_model(
        "resnet_cifar", depth=8, classes=7, impl="stock", representation=representation,
        representation_options=REPRESENTATION_OPTIONS.get(representation))
    net.initialize(mx.init.Xavier())
    _check_export(net, (2, 3, 32, 32), tmp_path / "net.onnx")


def test_reorder_of_unknown_channel_count_exports(tmp_path):
    """The stock Reorder without ``channels`` (a symbol of unknown C) takes its transposed
    form; it exports and permutes as the native op does."""
    from gluon_models.nn.igc import Reorder
    block = Reorder(3, impl="stock")
    x = mx.nd.random.uniform(-1, 1, (2, 12, 3, 5))
    export_onnx(block, str(tmp_path / "r.onnx"), input_shape=(12, 3, 5), batch_size=2)
    assert_close(run_onnx(str(tmp_path / "r.onnx"), x.asnumpy()),
                 mx.nd.Reorder(x, branch_factor=3).asnumpy(), tol=0)


# ---- by name, weights, batch axis, refusals ----------------------------------------------------

def test_by_name_with_weights_and_a_dynamic_batch(tmp_path):
    opts = dict(depth=8, classes=5)
    net = gluon_models.get_model("igc_resnet_cifar", impl="native", **opts)
    net.initialize(mx.init.Xavier())
    _randomise_statistics(net)
    net.save_parameters(str(tmp_path / "w.params"))  # a native network's weights
    path = export_onnx("igc_resnet_cifar", str(tmp_path / "igc.onnx"), dynamic_batch=True,
                       params=str(tmp_path / "w.params"), **opts)
    model = onnx.load(path)
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert not batch.HasField("dim_value")  # a free batch axis
    for n in (1, 3):
        x = mx.nd.random.uniform(-1, 1, (n, 3, 32, 32))
        assert_close(run_onnx(model, x.asnumpy()), net(x).asnumpy())
    fixed = onnx.load(export_onnx("igc_resnet_cifar", str(tmp_path / "fixed.onnx"),
                                  batch_size=4, **opts))
    assert [d.dim_value for d in fixed.graph.input[0].type.tensor_type.shape.dim] == \
        [4, 3, 32, 32]


def test_refusals_name_the_layer(tmp_path):
    native = gluon_models.get_model("igc_resnet_cifar", depth=8, impl="native")
    native.initialize()
    with pytest.raises(ValueError, match="network igc_resnet_cifar(.|\n)*g1_b1_conv1_conv2_fwd "
                       "\\(IGCSecondary\\): a native operator"):
        export_onnx(native, str(tmp_path / "n.onnx"), input_shape=(3, 32, 32))

    class Sign(mx.gluon.HybridBlock):  # an op mxnet's converter does not translate
        def hybrid_forward(self, F, x):
            return F.sign(x)

    with pytest.raises(ValueError, match="sign0 \\(sign\\): mxnet's ONNX converter has no"):
        export_onnx(Sign(), str(tmp_path / "s.onnx"), input_shape=(4,))

    class Split(mx.gluon.HybridBlock):  # an MXNet-only reshape code
        def hybrid_forward(self, F, x):
            return F.reshape(x, shape=(0, -4, 2, -1, -2))

    with pytest.raises(ValueError, match="reshape0 \\(Reshape \\(0, -4, 2, -1, -2\\)\\)"):
        export_onnx(Split(), str(tmp_path / "r.onnx"), input_shape=(4, 3))
    with pytest.raises(ValueError, match="always goes through the stock twin"):
        export_onnx("igc_resnet_cifar", str(tmp_path / "x.onnx"), impl="native")
    with pytest.raises(ValueError, match="opset must be one of"):
        export_onnx("plain_cifar", str(tmp_path / "x.onnx"), opset=11, depth=5)
    assert sorted(os.listdir(tmp_path)) == []  # nothing written by a refused export


def test_command_line(tmp_path):
    out = tmp_path / "igc"
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "export_model.py"), "--model",
         "igc_plain_cifar", "--model-opt", "depth=8", "--format", "onnx", "--dynamic-batch",
         "--output", str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(out) + ".onnx"]
    onnx.checker.check_model(str(out) + ".onnx", full_check=True)
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "export_model.py"), "--model",
         "igc_plain_cifar", "--format", "onnx", "--impl", "native", "--output", str(out)],
        capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode != 0 and "stock twin" in result.stderr
