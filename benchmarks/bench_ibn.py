"""The IBN layer (IBN-Net): native operator vs the stock twin vs MXNet's own composition.

One training pass of the layer (forward under ``autograd.record()``, backward into the input
and the four affine parameters, the running statistics updated), hybridized, float32, at the
IBN sites of ResNet-50-IBN-a (the authors': IBN on the first 1 x 1 conv's output, 64 / 128 /
256 channels at 56 / 28 / 14 px), of the MXNet port (IBN on the unit input, 256 channels at
56 px), of DenseNet-121-IBN-a (BN on the first 60 %, IN on the rest) and the issue's
(32, 128, 56, 56) point. Variants, each a hybridized ``IBN`` block on the same data:

* ``native``: ``IBN(impl="native")``, the operator library's ``IBN``;
* ``stock``: ``IBN(impl="stock")``, the twin the library ships (slices, instance norm from
  stock reductions, ``BatchNorm``, concat);
* ``mxnet``: the composition of MXNet's own operators, ``slice_axis`` + ``InstanceNorm`` +
  ``BatchNorm`` + ``concat`` (what IBN-Net's MXNet port computes; its ``InstanceNorm`` gives
  wrong gradients inside networks, see gluon_models/nn/ibn.py, so it is timed here only).

The input owns a gradient buffer, so the native layer copies it once through a stock
``identity`` first (extension operators cannot accumulate gradients); inside a network it
does not. Outputs and gradients of ``native`` and ``stock`` are checked against each other
before timing.

Then whole networks: a ResNet-50-IBN-a training step (SGD with momentum, softmax cross
entropy, batch 32 at 224 px; quick: batch 2 at 64 px) and inference, with the native IBN, with
the stock twin, and the same network without IN (gluoncv's resnet50_v1b, ``resnet50`` in the
registry), timed interleaved.
"""
import logging

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

import gluon_models  # noqa: F401  (loads the operator library)
from gluon_models.nn import IBN

from benchmarks.common import (time_interleaved, time_networks, training_pass, verdict,
                               verdict_line)

_LOG = logging.getLogger(__name__)

# (shape, ratio, in_first, what it stands for)
CASES = [
    ((32, 64, 56, 56), 0.5, True, "ResNet-50-IBN-a layer1 bn1"),
    ((32, 128, 28, 28), 0.5, True, "ResNet-50-IBN-a layer2 bn1"),
    ((32, 256, 14, 14), 0.5, True, "ResNet-50-IBN-a layer3 bn1"),
    ((32, 128, 56, 56), 0.5, True, "issue's point (128 ch @ 56 px)"),
    ((32, 256, 56, 56), 0.5, True, "MXNet port stage1 unit input"),
    ((32, 256, 28, 28), 0.4, False, "DenseNet-121-IBN-a block2 (BN first, 40 % IN)"),
]
QUICK_CASES = [((4, 16, 14, 14), 0.5, True, "quick point"),
               ((4, 20, 7, 7), 0.4, False, "quick point, BN first")]
FULL = {"repeats": 7, "warmup": 1, "min_time": 1e-3}
QUICK = {"repeats": 3, "warmup": 1, "min_time": 1e-3}
TARGET_SPEEDUP = 4.0
# networks: (batch, side), timing settings
NET_FULL = ((32, 224), {"repeats": 3, "warmup": 1, "min_time": 1e-3})
NET_QUICK = ((2, 64), {"repeats": 2, "warmup": 1, "min_time": 1e-3})
NETWORKS = {"resnet50_ibn_a native": ("resnet50_ibn_a", "native"),
            "resnet50_ibn_a stock": ("resnet50_ibn_a", "stock"),
            "resnet50 (no IN)": ("resnet50", "native")}
TARGET_OVERHEAD = 1.10  # IBN network step / plain network step


class _MXNetComposition(gluon.HybridBlock):
    """slice_axis + MXNet's InstanceNorm + BatchNorm + concat with the IBN's parameters."""

    def __init__(self, ibn, **kwargs):
        super().__init__(**kwargs)
        self.ibn = ibn

    def hybrid_forward(self, F, x):
        b = self.ibn
        first = b.n_in if b.in_first else b.n_bn
        lo = F.slice_axis(x, axis=1, begin=0, end=first)
        hi = F.slice_axis(x, axis=1, begin=first, end=None)
        x_in, x_bn = (lo, hi) if b.in_first else (hi, lo)
        p = {k: getattr(b, k).var() if F is mx.sym else getattr(b, k).data()
             for k in ("in_gamma", "in_beta", "bn_gamma", "bn_beta", "running_mean",
                       "running_var")}
        y_in = F.InstanceNorm(x_in, p["in_gamma"], p["in_beta"], eps=b.epsilon)
        y_bn = F.BatchNorm(x_bn, p["bn_gamma"], p["bn_beta"], p["running_mean"],
                           p["running_var"], eps=b.epsilon, momentum=b.momentum,
                           fix_gamma=False)
        return F.concat(y_in, y_bn, dim=1) if b.in_first else F.concat(y_bn, y_in, dim=1)


def _layers(shape, ratio, in_first):
    out = {}
    for impl in ("native", "stock"):
        layer = IBN(shape[1], ratio, in_first, impl=impl, prefix="ibn_")
        layer.initialize()
        layer.hybridize(static_alloc=True)
        out[impl] = layer
    mxc = _MXNetComposition(IBN(shape[1], ratio, in_first, prefix="ibn_"))
    mxc.initialize()
    mxc.hybridize(static_alloc=True)
    out["mxnet"] = mxc
    return out


def check_agreement(shape, ratio, in_first, layers, seed=0):
    """native and stock: same output and input/parameter gradients (float32 rounding)."""
    rng = np.random.RandomState(seed)
    x_np = rng.standard_normal(shape).astype(np.float32)
    dy = mx.nd.array(rng.standard_normal(shape))
    got = {}
    for impl in ("native", "stock"):
        x = mx.nd.array(x_np)
        x.attach_grad()
        with autograd.record():
            y = layers[impl](x)
        y.backward(dy)
        got[impl] = [y.asnumpy(), x.grad.asnumpy(),
                     layers[impl].in_gamma.grad().asnumpy(), layers[impl].bn_gamma.grad().asnumpy()]
    for what, a, b in zip(("output", "data gradient", "in_gamma gradient", "bn_gamma gradient"),
                          got["native"], got["stock"]):
        scale = float(np.abs(b).max()) or 1.0
        if np.abs(a - b).max() > 1e-3 * scale:
            raise AssertionError("IBN benchmark: %s of native and stock differ for %s (max "
                                 "|diff| %g of %g)" % (what, shape, np.abs(a - b).max(), scale))
    return True


def measure_case(shape, ratio, in_first, label, repeats, warmup, min_time):
    layers = _layers(shape, ratio, in_first)
    check_agreement(shape, ratio, in_first, layers)
    rng = np.random.RandomState(1)
    x = mx.nd.array(rng.standard_normal(shape))
    x.attach_grad()
    dy = mx.nd.array(rng.standard_normal(shape))
    timings = time_interleaved({k: training_pass(v, dy, x) for k, v in layers.items()}, repeats,
                               warmup, min_time)
    med = {k: t["median_ms"] for k, t in timings.items()}
    return {"label": label, "shape": list(shape), "ratio": ratio, "in_first": in_first,
            "timings": timings, "outputs_agree": True,
            "speedup_vs_stock": med["stock"] / med["native"],
            "speedup_vs_mxnet": med["mxnet"] / med["native"]}


def measure_networks(batch, side, repeats, warmup, min_time):
    opts = None if side == 224 else {"representation_options": {"pool_size": None}}
    timed = time_networks({k: (name, {"impl": impl}) for k, (name, impl) in NETWORKS.items()},
                          batch, side, repeats, warmup, min_time, opts)
    train, infer = timed["train"], timed["infer"]
    plain = "resnet50 (no IN)"
    rows, overhead = [], {}
    for k in NETWORKS:
        t, i = train[k]["median_ms"], infer[k]["median_ms"]
        overhead[k] = t / train[plain]["median_ms"]
        rows.append([k, "%.0f" % t, "%.2f" % (batch / t * 1e3), "%.0f" % i,
                     "%.2f" % (batch / i * 1e3), "%.2fx" % overhead[k]])
    return {"batch": batch, "side": side, "train": train, "infer": infer,
            "step_vs_plain": overhead, "rows": rows}


def _shape(s):
    return "(%s)" % ", ".join(str(d) for d in s)


def run(quick=False):
    """Run the IBN layer benchmark; returns the results dict (see benchmarks.common)."""
    settings = QUICK if quick else FULL
    cases = []
    for shape, ratio, in_first, label in (QUICK_CASES if quick else CASES):
        case = measure_case(shape, ratio, in_first, label, **settings)
        cases.append(case)
        _LOG.info("%-20s native %.1f ms, stock %.1f ms, mxnet %.1f ms", _shape(shape),
                  *(case["timings"][v]["median_ms"] for v in ("native", "stock", "mxnet")))
    (batch, side), net_settings = NET_QUICK if quick else NET_FULL
    nets = measure_networks(batch, side, **net_settings)
    _LOG.info("networks: %s", "; ".join(" ".join(r[:2]) + " ms" for r in nets["rows"]))
    label = lambda c: "%s %s" % (_shape(c["shape"]), c["label"])  # noqa: E731
    verdicts = {
        "speedup_vs_mxnet": verdict([(label(c), c["speedup_vs_mxnet"]) for c in cases],
                                    TARGET_SPEEDUP, "MXNet's composition / native >= %.0f, "
                                    "forward+backward" % TARGET_SPEEDUP),
        "speedup_vs_stock": verdict([(label(c), c["speedup_vs_stock"]) for c in cases],
                                    TARGET_SPEEDUP, "stock twin / native >= %.0f, "
                                    "forward+backward" % TARGET_SPEEDUP),
        "ibn_network_overhead": verdict(
            [("resnet50_ibn_a native, batch %d, %d px" % (batch, side),
              nets["step_vs_plain"]["resnet50_ibn_a native"])], TARGET_OVERHEAD,
            "ResNet-50-IBN-a step / ResNet-50 step <= %.2f" % TARGET_OVERHEAD,
            higher_is_better=False),
    }
    rows = [[_shape(c["shape"]), "%g" % c["ratio"], "IN" if c["in_first"] else "BN",
             "%.1f" % c["timings"]["native"]["median_ms"],
             "%.1f" % c["timings"]["stock"]["median_ms"],
             "%.1f" % c["timings"]["mxnet"]["median_ms"],
             "%.1fx" % c["speedup_vs_stock"], "%.1fx" % c["speedup_vs_mxnet"], c["label"]]
            for c in cases]
    fmt = "%.1fx".__mod__
    return {
        "name": "ibn",
        "title": "IBN layer: native operator vs stock twin vs MXNet's InstanceNorm composition",
        "description": (
            "One training pass (forward + backward, all gradients, running statistics) of a "
            "hybridized IBN block, float32, CPU. Medians over %d interleaved repeats, ms per "
            "pass. *native* = `IBN(impl=\"native\")`, *stock* = `IBN(impl=\"stock\")`, "
            "*mxnet* = slice_axis + MXNet's `InstanceNorm` + `BatchNorm` + concat."
            % settings["repeats"]),
        "tables": [{"title": "forward + backward",
                    "columns": ["shape", "ratio", "first", "native ms", "stock ms", "mxnet ms",
                                "stock / native", "mxnet / native", "site"],
                    "rows": rows},
                   {"title": "networks: training step and inference, batch %d, %d px"
                             % (batch, side),
                    "columns": ["network", "step ms", "train img/s", "inference ms",
                                "inference img/s", "step / plain step"],
                    "rows": nets["rows"]}],
        "notes": [verdict_line(v, fmt) for k, v in verdicts.items()
                  if k != "ibn_network_overhead"]
        + [verdict_line(verdicts["ibn_network_overhead"])],
        "verdicts": verdicts,
        "cases": cases,
        "networks": {k: v for k, v in nets.items() if k != "rows"},
    }
