"""Summary: parameter and multiply-add counts against hand counts and the published figures;
the summary and model-table command lines."""
import importlib
import os
import subprocess
import sys

import mxnet as mx
import pytest
from mxnet.gluon import nn

import gluon_models
from gluon_models.model_zoo.reference import REFERENCE, SOURCES
from gluon_models.nn import FBConv2D
from gluon_models.utils import format_summary, model_summary, register_macs, summary
from gluon_models.utils.model_table import BEGIN, END, check_model_table

summary_module = importlib.import_module("gluon_models.utils.summary")  # not the function

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tiny():
    net = nn.HybridSequential(prefix="tiny_")
    with net.name_scope():
        net.add(nn.Conv2D(4, 3, padding=1, in_channels=3, prefix="conv1_"),
                nn.BatchNorm(in_channels=4, prefix="bn_"),
                nn.Conv2D(6, 1, groups=2, use_bias=False, in_channels=4, prefix="conv2_"),
                nn.Dense(5, in_units=6 * 8 * 8, prefix="fc_"))
    return net


def test_tiny_net_by_hand():
    result = summary(_tiny(), (3, 8, 8))
    rows = {r.name: r for r in result.rows}
    # conv1: weight 4*3*3*3 + bias 4; output 4*8*8 elements, each 3*3*3 multiply-adds
    assert (rows["tiny_conv1_fwd"].params, rows["tiny_conv1_fwd"].macs) == (112, 256 * 27)
    assert rows["tiny_conv1_fwd"].output_shape == (1, 4, 8, 8)
    # bn: gamma + beta learnable; running mean / var (8) are auxiliary states
    assert (rows["tiny_bn_fwd"].params, rows["tiny_bn_fwd"].macs) == (8, 0)
    # conv2, 2 groups: weight 6*(4/2)*1*1; output 6*8*8 elements, each (4/2) multiply-adds
    assert (rows["tiny_conv2_fwd"].params, rows["tiny_conv2_fwd"].macs) == (12, 384 * 2)
    # fc: 384 inputs (flattened) -> 5: weight 384*5 + bias 5; 384*5 multiply-adds
    assert (rows["tiny_fc_fwd"].params, rows["tiny_fc_fwd"].macs) == (1925, 1920)
    assert rows["tiny_fc_fwd"].output_shape == (1, 5)
    assert (result.params, result.macs, result.aux) == (2057, 6912 + 768 + 1920, 8)
    text = format_summary(result)
    assert "tiny_conv2_fwd" in text and "2,057" in text and "9,600" in text
    assert "tiny_conv2_fwd" not in format_summary(result, per_layer=False)


def test_symbol_labels_and_fixed_gamma():
    """Labels and a BatchNorm gamma fixed at 1 (the symbol default) are not learnable."""
    x = mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=3, name="fc")
    sym = mx.sym.SoftmaxOutput(mx.sym.BatchNorm(x, name="bn"), name="softmax")
    result = summary(sym, (4,))
    assert (result.params, result.macs) == (4 * 3 + 3 + 3, 12)
    sym = mx.sym.BatchNorm(x, fix_gamma=False, name="bn")
    assert summary(sym, (4,)).params == 4 * 3 + 3 + 6
    with pytest.raises(ValueError, match="no input 'image'"):
        summary(sym, (4,), data_name="image")


@pytest.mark.parametrize("impl", ["native", "stock"])
def test_igc_plain_cifar_count(impl):
    """README example IGC-L24M2, depth 38: 317,242 (authors' log: 0.3172M)."""
    net = gluon_models.get_model("igc_plain_cifar", impl=impl)
    result = summary(net, (3, 32, 32))
    assert result.params == 317242 == REFERENCE["igc_plain_cifar"]["exact_params"]
    assert result.params == sum(r.params for r in result.rows)
    assert result.macs == sum(r.macs for r in result.rows)
    learnable = sum(p.data().size for p in _initialised(net).collect_params().values()
                    if p.grad_req != "null")
    assert result.params == learnable


@pytest.mark.parametrize("name", ["igc_plain_cifar", "igc_resnet_cifar", "igc_resnet18_l4m32",
                                  "igc_resnet18_l16m16", "igc_resnet18_l100m2"])
def test_igc_speed_paths_count_the_authors_multiply_adds(name):
    """The native networks' primary convolutions (merged groups, zeros multiplied, or the native
    GroupConv) and fused secondary convolution (IGCSecondary) count what the authors' op chain
    counts, layer for layer."""
    opts = {} if "cifar" in name else {"representation_options": {"pool_size": None}}
    fast = summary(gluon_models.get_model(name, **opts), (3, 32, 32))
    plain = summary(gluon_models.get_model(name, impl="stock", **opts), (3, 32, 32))
    assert fast.macs == plain.macs and fast.params == plain.params
    merged = [r for r in fast.rows if r.op in ("Convolution", "GroupConv") and "conv1" in r.name]
    fused = [r for r in fast.rows if r.op == "IGCSecondary"]
    assert fused and all(r.macs > 0 for r in fused)
    assert sum(r.macs for r in merged + fused) == sum(
        r.macs for r in plain.rows if r.op == "Convolution" and
        ("conv1_fwd" in r.name or "conv2_fwd" in r.name) and "_b" in r.name)


def _initialised(net):
    net.initialize()
    return net


@pytest.mark.parametrize("impl", ["native", "stock"])
def test_fb_layer_multiply_adds(impl):
    """The FB quadratic term: F projections plus the diagonal correction per output element
    (spec fbn.md 1.5), the same for the native op and its two stock Convolutions."""
    result = model_summary("resnet164_fbn_cifar", classes=100, impl=impl)
    plain = model_summary("resnet164_cifar", classes=100)
    # CIFAR-100 head on 256 x 8 x 8: FB 100 * (20 + 1) * 256 * 64, linear 1x1 100 * 256 * 64,
    # in place of the fc layer's 256 * 100
    fb = 100 * 21 * 256 * 64
    assert result.macs - plain.macs == fb + 100 * 256 * 64 - 256 * 100
    if impl == "native":
        rows = [r for r in result.rows if r.op.startswith("FMConvolution")]
        assert [r.macs for r in rows] == [fb]


@pytest.mark.parametrize("op", [1, 3])
def test_fb_rule_is_registered_by_the_layer_module(op):
    """The FB layer's module owns its rule; it counts (F + 1) * C/G * kh * kw per output."""
    from gluon_models.nn import fb
    assert summary_module._MAC_RULES["FMConvolution%d" % op] is fb._fb_macs
    net = FBConv2D(6, 5, kernel_size=3, padding=1, groups=2, in_channels=4, op=op,
                   prefix="fb_")
    result = summary(net, (4, 7, 7))
    row, = [r for r in result.rows if r.op == "FMConvolution%d" % op]
    # output 6 x 7 x 7; weight (6, 5, 4/2, 3, 3): 5 projections + 1 diagonal of 2*3*3
    assert row.macs == result.macs == 6 * 7 * 7 * (5 + 1) * 2 * 3 * 3
    assert result.params == 6 * 5 * 2 * 3 * 3 + 6


def test_registered_rule_counts_its_op(monkeypatch):
    """A family's rule gets the node's attributes and its input and output shapes."""
    monkeypatch.setattr(summary_module, "_MAC_RULES", dict(summary_module._MAC_RULES))
    seen = []

    def pooling_macs(attrs, in_shapes, out_shapes):
        seen.append((attrs["pool_type"], in_shapes, out_shapes))
        return out_shapes[0][1] * 7

    x = mx.sym.Pooling(mx.sym.var("data"), kernel=(2, 2), stride=(2, 2), pool_type="avg",
                       name="pool")
    sym = mx.sym.FullyConnected(x, num_hidden=2, name="fc")
    assert summary(sym, (3, 4, 4)).macs == 3 * 2 * 2 * 2
    assert register_macs("Pooling", pooling_macs) is pooling_macs
    result = summary(sym, (3, 4, 4))
    assert [r.macs for r in result.rows] == [3 * 7, 3 * 2 * 2 * 2]
    assert seen == [("avg", [(1, 3, 4, 4)], [(1, 3, 2, 2)])]
    with pytest.raises(TypeError, match="callable"):
        register_macs("Pooling", 3)


def test_matrix_products_count_m_n_k_per_product():
    """batch_dot, dot and linalg_gemm2: m * n * k per product, times the op's own batch."""
    data = mx.sym.var("data")  # one sample (4, 6, 5): 4 matrices 6 x 5, e.g. channel groups
    gram = mx.sym.batch_dot(data, data, transpose_b=True, name="gram")  # 4 x (6x5)(5x6)
    cov = mx.sym.batch_dot(data, data, transpose_a=True, name="cov")    # 4 x (5x6)(6x5)
    flat = mx.sym.reshape(data, shape=(-1, 5))                          # (24, 5)
    proj = mx.sym.dot(flat, mx.sym.var("w", shape=(5, 3)), name="proj")  # (24x5)(5x3)
    projt = mx.sym.dot(flat, flat, transpose_a=True, name="projt")      # (5x24)(24x5)
    gemm = mx.sym.linalg.gemm2(data, data, transpose_b=True, name="gemm")
    gemm1 = mx.sym.linalg.gemm2(data, data, transpose_a=True, axis=1, name="gemm1")
    sym = mx.sym.Group([gram, cov, proj, projt, gemm, gemm1])
    rows = {r.name: r.macs for r in summary(sym, (4, 6, 5)).rows}
    assert rows["gram"] == 4 * 6 * 6 * 5
    assert rows["cov"] == 4 * 5 * 5 * 6
    assert rows["proj"] == 24 * 3 * 5
    assert rows["projt"] == 5 * 5 * 24
    assert rows["gemm"] == 4 * 6 * 6 * 5
    # axis=1: rows on axis 1 (4), columns last (5), batch 1 x 6; A^T B is 5 x 5 over k=4
    assert rows["gemm1"] == 6 * 5 * 5 * 4
    assert summary(sym, (4, 6, 5)).macs == sum(rows.values())


def test_block_and_exported_symbol_agree(tmp_path):
    from gluon_models.utils import export_model
    net = _initialised(gluon_models.get_model("igc_resnet_cifar", depth=8))
    sym_file, _ = export_model(net, str(tmp_path / "net"), (3, 32, 32))
    a, b = summary(net, (3, 32, 32)), summary(mx.sym.load(sym_file), (3, 32, 32))
    assert (a.params, a.macs, a.aux) == (b.params, b.macs, b.aux)
    assert a.rows == b.rows


def test_resnet18_w64():
    result = model_summary("resnet18_w64")
    assert result.input_shape == (3, 224, 224)
    assert result.params == 11689512
    assert 1.7e9 <= result.macs <= 1.9e9
    assert result.rows[-1].op == "FullyConnected" and result.rows[-1].macs == 512 * 1000


@pytest.mark.parametrize("name", sorted(n for n in REFERENCE if "flops_g" in REFERENCE[n]))
def test_published_imagenet_figures(name):
    """Exact parameter counts of the authors' symbols; the paper's FLOPs column to 0.1 G."""
    ref, result = REFERENCE[name], model_summary(name)
    assert result.params == ref["exact_params"]
    assert abs(result.macs / 1e9 - ref["flops_g"]) <= 0.1
    assert ref["source"] in SOURCES


def _tool(*argv):
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", argv[0])] +
                          [str(a) for a in argv[1:]], capture_output=True, text=True,
                          timeout=120)


def test_summary_command_line():
    out = _tool("summary.py", "--model", "igc_plain_cifar", "--per-layer")
    assert out.returncode == 0, out.stderr
    assert "317,242" in out.stdout and "igc_plain_cifar_fc_score_fwd" in out.stdout
    out = _tool("summary.py", "--model", "igc_resnet_cifar", "--model-opt", "depth=8",
                "--impl", "stock", "--classes", "7", "--input-size", "64")
    assert out.returncode == 0, out.stderr
    assert "3x64x64" in out.stdout and "fc_score" not in out.stdout
    expected = model_summary("igc_resnet_cifar", (3, 64, 64), depth=8, classes=7)
    assert "{:,}".format(expected.macs) in out.stdout


def test_model_table(tmp_path, readme_model_table):
    table = readme_model_table
    assert table.startswith(BEGIN) and table.rstrip().endswith(END)
    assert table.count("\n| `") == len(gluon_models.list_models())
    assert "| `resnet18_w64` | igc | 224x224 | 11,689,512 | 1.81 |" in table
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\ntext before\n\n" + table + "\ntext after\n")
    assert check_model_table(str(readme), table)[0]
    readme.write_text(readme.read_text().replace("11,689,512", "11,689,513"))
    ok, message = check_model_table(str(readme), table)
    assert not ok and "11,689,513" in message


def test_model_table_command_line(tmp_path):
    # a subset of the registry: the full table is checked once, against README.md
    subset = ("--filter", "igc_*")
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\n%s\n%s\n\ntext after\n" % (BEGIN, END))
    out = _tool("model_table.py", "--output", readme, *subset)
    assert out.returncode == 0, out.stderr
    text = readme.read_text()
    assert text.startswith("# Title\n\n" + BEGIN) and text.endswith(END + "\n\ntext after\n")
    assert "317,242" in text and "`plain_cifar`" not in text
    assert _tool("model_table.py", "--check", readme, *subset).returncode == 0
    readme.write_text(text.replace("| 1.26 |", "| 1.27 |"))
    out = _tool("model_table.py", "--check", readme, *subset)
    assert out.returncode == 1 and "stale" in out.stderr and "1.27" in out.stderr
    assert os.listdir(tmp_path) == ["README.md"]


def test_gluon_constants_are_not_parameters():
    """An index table kept as a Gluon constant (iSQRT-COV's upper-triangle gather) is a graph
    variable but not learnt: 0 parameters, while the matrix products are counted."""
    from gluon_models.nn.representation import ISqrtCov
    s = summary(ISqrtCov(4, iter_num=2), (4, 3, 3))
    assert s.params == 0
    assert s.macs == 4 * 4 * 9 + 3 * 4 ** 3
