"""Grouped 3x3 convolutions of a few channels per group: the native GroupConv vs MXNet's.

IGC-L100M2's primary convolutions (and the first stages of the CIFAR IGC ResNets) have groups
of 1-4 channels. MXNet 1.9.1's oneDNN backend runs such groups through im2col + GEMM; merged
into groups of 8 channels (:class:`gluon_models.nn.MergedGroupConv2D`, more multiply-adds)
they run on its direct kernels but in its blocked layout, which costs a conversion when the
next operator is an extension operator working on plain NCHW, as in the IGC layers.
:class:`gluon_models.nn.DirectGroupConv2D` (the ``GroupConv`` operator) computes the groups
on plain NCHW. For every such layer shape of those networks this times, hybridized with
static memory, float32, one training pass (forward + backward: data and weight gradients)
and one inference pass of

* *native*: ``DirectGroupConv2D``;
* *oneDNN*: ``nn.Conv2D(groups=...)`` (im2col + GEMM);
* *merged*: ``MergedGroupConv2D`` with the merge factor the networks would use,

each alone and *then Reorder*: followed by the channel permutation ``Reorder`` (an extension
operator like the ``IGCSecondary`` that follows the primary convolution in the networks), so
that a layer leaving oneDNN's blocked layout pays its conversion back to plain NCHW. All
variants are first checked against MXNet's float64 convolution (:func:`check_agreement`), then
timed interleaved in one run. The IGC layers use the native operator at stride 1 only (its
stride-2 loops are generic and lose to the merged groups here, see
:data:`gluon_models.nn.igc.DIRECT_GROUP_WIDTH`), so the target is for the layers of stride 1.
"""
import logging

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon
from mxnet.gluon import nn

from gluon_models.nn import DirectGroupConv2D, MergedGroupConv2D
from gluon_models.nn.basic import merge_factor

from benchmarks.common import time_interleaved, training_pass, verdict, verdict_line

_LOG = logging.getLogger(__name__)

# (batch, in channels, out channels, groups, side of the input, stride, where)
CASES = [(16, 200, 200, 100, 56, 1, "IGC-L100M2 stage 1"),
         (16, 200, 400, 200, 56, 2, "IGC-L100M2 stage 2, first"),
         (16, 400, 400, 200, 28, 1, "IGC-L100M2 stage 2"),
         (16, 400, 800, 400, 28, 2, "IGC-L100M2 stage 3, first"),
         (16, 800, 800, 400, 14, 1, "IGC-L100M2 stage 3"),
         (16, 800, 1600, 800, 14, 2, "IGC-L100M2 stage 4, first"),
         (16, 1600, 1600, 800, 7, 1, "IGC-L100M2 stage 4"),
         (64, 48, 48, 24, 32, 1, "IGC ResNet CIFAR stage 1"),
         (64, 96, 96, 24, 16, 1, "IGC ResNet CIFAR stage 2")]
QUICK_CASES = [(2, 8, 8, 4, 8, 1, "quick point"), (2, 4, 8, 4, 8, 2, "quick point, stride 2")]
FULL = {"repeats": 7, "warmup": 2, "min_time": 1e-3}
QUICK = {"repeats": 3, "warmup": 1, "min_time": 1e-3}
KINDS = ("native", "oneDNN", "merged")
# fastest MXNet variant / native, training pass then Reorder, at stride 1 (where the IGC
# layers use the native operator)
TARGET_SPEEDUP = 1.0


class _Layer(gluon.HybridBlock):
    """One grouped 3x3 convolution (padding 1, no bias), optionally followed by Reorder."""

    def __init__(self, kind, case, then_reorder, **kwargs):
        super().__init__(**kwargs)
        _, cin, cout, groups, _, stride, _ = case
        kw = dict(strides=stride, padding=1, groups=groups, use_bias=False, in_channels=cin,
                  prefix="conv_")
        self.groups = groups if then_reorder else None
        with self.name_scope():
            if kind == "native":
                self.conv = DirectGroupConv2D(cout, 3, **kw)
            elif kind == "merged":
                merge = merge_factor(groups, cin // groups, cout // groups, (3, 3))
                self.conv = MergedGroupConv2D(cout, 3, merge=merge, **kw)
            else:
                self.conv = nn.Conv2D(cout, 3, **kw)

    def hybrid_forward(self, F, x):
        y = self.conv(x)
        return y if self.groups is None else F.Reorder(y, branch_factor=self.groups)


def _inputs(case, seed, dtype="float32"):
    n, cin, cout, _, side, stride, _ = case
    out_side = (side - 1) // stride + 1
    rng = np.random.RandomState(seed)
    x = mx.nd.array(rng.standard_normal((n, cin, side, side)), dtype=dtype)
    dy = mx.nd.array(rng.standard_normal((n, cout, out_side, out_side)), dtype=dtype)
    x.attach_grad()
    return x, dy


def _layers(case, then_reorder, weight):
    out = {}
    for kind in KINDS:
        layer = _Layer(kind, case, then_reorder, prefix="l_")
        layer.initialize()
        layer.conv.weight.set_data(weight)
        layer.hybridize(static_alloc=True, static_shape=True)
        out[kind] = layer
    return out


def _pass(layer, x, dy):
    """Output, data gradient and weight gradient of one training pass, as float64 numpy."""
    x = x.copy()
    x.attach_grad()
    with autograd.record():
        y = layer(x)
    y.backward(dy)
    return [a.asnumpy().astype(np.float64) for a in (y, x.grad, layer.conv.weight.grad())]


def check_agreement(case, layers, weight, tol=1e-4):
    """Every variant's output and gradients against MXNet's float64 convolution (the same
    layer without Reorder, cast to float64) within ``tol`` of the largest value. Returns the
    largest relative deviations per variant; raises AssertionError naming the variant and the
    tensor."""
    ref_layer = _Layer("oneDNN", case, False, prefix="l_")
    ref_layer.initialize()
    ref_layer.cast("float64")
    ref_layer.conv.weight.set_data(weight.astype("float64"))
    x, dy = _inputs(case, 0, "float64")
    ref = _pass(ref_layer, x, dy)
    errors = {}
    for kind, layer in layers.items():
        if layer.groups is not None:  # compare before the permutation
            layer = _Layer(kind, case, False, prefix="l_")
            layer.initialize()
            layer.conv.weight.set_data(weight)
        got = _pass(layer, x.astype("float32"), dy.astype("float32"))
        errors[kind] = {}
        for what, a, b in zip(("output", "data gradient", "weight gradient"), got, ref):
            scale = float(np.abs(b).max()) or 1.0
            diff = float(np.abs(a - b).max())
            errors[kind][what] = diff / scale
            if diff > tol * scale:
                raise AssertionError(
                    "GroupConv benchmark: %s of the %s layer differs from MXNet's float64 "
                    "convolution for %s (max |diff| %g of %g)" % (what, kind, _label(case),
                                                                   diff, scale))
    return errors


def _label(case):
    n, cin, cout, groups, side, stride, _ = case
    return "%dx%dx%dx%d -> %d, %d groups%s" % (n, cin, side, side, cout, groups,
                                               ", stride %d" % stride if stride > 1 else "")


def measure_case(case, repeats, warmup, min_time):
    n, cin, cout, groups, *_ = case
    weight = mx.nd.array(np.random.RandomState(7).uniform(-0.3, 0.3, (cout, cin // groups, 3, 3)))
    x, dy = _inputs(case, 1)
    result = {"label": case[-1], "case": _label(case), "batch": n, "in_channels": cin,
              "out_channels": cout, "groups": groups, "side": case[4], "stride": case[5],
              "merge": merge_factor(groups, cin // groups, cout // groups, (3, 3))}
    for then_reorder in (False, True):
        layers = _layers(case, then_reorder, weight)
        if not then_reorder:
            result["relative_error_vs_float64"] = check_agreement(case, layers, weight)
        key = "then_reorder" if then_reorder else "alone"
        train = time_interleaved({k: training_pass(v, dy, x) for k, v in layers.items()},
                                 repeats, warmup, min_time)
        infer = time_interleaved({k: (lambda v=v: v(x)) for k, v in layers.items()},
                                 repeats, warmup, min_time)
        best = lambda t: min(t["oneDNN"]["median_ms"], t["merged"]["median_ms"])  # noqa: E731
        result[key] = {"train": train, "infer": infer,
                       "train_speedup": best(train) / train["native"]["median_ms"],
                       "infer_speedup": best(infer) / infer["native"]["median_ms"]}
    result["outputs_agree"] = True
    return result


def _rows(cases, key):
    rows = []
    for c in cases:
        r = c[key]
        rows.append([c["case"], "x%d" % c["merge"]] + [
            "%.1f" % r[p][k]["median_ms"] for p in ("train", "infer") for k in KINDS] + [
            "%.2fx" % r["train_speedup"], "%.2fx" % r["infer_speedup"], c["label"]])
    return rows


def run(quick=False):
    """Run the GroupConv benchmark; returns the results dict (see benchmarks.common)."""
    settings = QUICK if quick else FULL
    cases = []
    for case in (QUICK_CASES if quick else CASES):
        c = measure_case(case, **settings)
        cases.append(c)
        _LOG.info("%-40s train native %.1f / oneDNN %.1f / merged %.1f ms (then Reorder: "
                  "%.1f / %.1f / %.1f)", c["case"],
                  *(c[k]["train"][v]["median_ms"] for k in ("alone", "then_reorder")
                    for v in KINDS))
    verdicts = {"train_speedup": verdict(
        [(c["case"], c["then_reorder"]["train_speedup"]) for c in cases if c["stride"] == 1],
        TARGET_SPEEDUP, "min(oneDNN, merged) / native >= %.1f, training pass then Reorder, "
        "stride 1" % TARGET_SPEEDUP)}
    columns = ["layer", "merge", "train native ms", "train oneDNN ms", "train merged ms",
               "infer native ms", "infer oneDNN ms", "infer merged ms",
               "train: best MXNet / native", "infer: best MXNet / native", "site"]
    errors = [[c["case"]] + ["%.0e" % max(c["relative_error_vs_float64"][k].values())
                             for k in KINDS] for c in cases]
    return {
        "name": "groupconv",
        "title": "Grouped 3x3 convolutions of a few channels per group: GroupConv vs MXNet",
        "description": (
            "Hybridized (static memory) float32 layers on plain NCHW input, CPU; medians over "
            "%d interleaved repeats, ms per pass. *native* = `DirectGroupConv2D` (the "
            "`GroupConv` operator), *oneDNN* = `nn.Conv2D(groups=...)`, *merged* = "
            "`MergedGroupConv2D` (*merge* neighbouring groups computed as one). Training pass "
            "= forward + backward (data and weight gradients). *then Reorder*: the layer "
            "followed by the `Reorder` channel permutation, an extension operator, as the "
            "primary convolution is followed by one in the IGC networks; a layer whose output "
            "is in oneDNN's blocked layout pays the conversion to plain NCHW there."
            % settings["repeats"]),
        "tables": [
            {"title": "layer then Reorder (as in the networks)", "columns": columns,
             "rows": _rows(cases, "then_reorder")},
            {"title": "layer alone", "columns": columns, "rows": _rows(cases, "alone")},
            {"title": "agreement with MXNet's float64 convolution",
             "note": "Largest deviation of output, data or weight gradient, relative to the "
                     "largest value of the float64 result.",
             "columns": ["layer"] + list(KINDS), "rows": errors}],
        "notes": [verdict_line(verdicts["train_speedup"], "%.2fx".__mod__)],
        "verdicts": verdicts,
        "cases": cases,
    }
