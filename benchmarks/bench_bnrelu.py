"""BatchNorm + ReLU of a plain NCHW tensor: the native BNReLU operator vs MXNet's layers.

MXNet 1.9.1 hands an extension operator's output (the IGC layers' ``IGCSecondary``) to the
next BatchNorm in plain NCHW, where oneDNN normalises with its slower "ncsp" kernels, and the
ReLU (or the residual addition and ReLU closing a residual block) is one more pass each way.
:class:`gluon_models.nn.BatchNormReLU` computes them as one operator. For the IGC networks'
shapes (batch 16, float32), hybridized with static memory, this times one training pass
(forward + backward: data, gamma/beta and residual gradients, running statistics) and one
inference pass of

* ``relu``: ``BatchNormReLU(x)`` (native) vs ``nn.BatchNorm`` + ``Activation('relu')`` (stock);
* ``residual``: ``BatchNormReLU(x, shortcut)`` vs ``relu(nn.BatchNorm(x) + shortcut)``,

interleaved in one run after checking both against float64 numpy (:func:`check_agreement`).
"""
import logging

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon
from mxnet.gluon import nn

import gluon_models  # noqa: F401  (loads the operator library)
from gluon_models.nn import BatchNormReLU

from benchmarks.common import time_interleaved, training_pass, verdict, verdict_line

_LOG = logging.getLogger(__name__)

# (shape, where the IGC networks have it)
CASES = [((16, 200, 56, 56), "IGC-L100M2 stage 1"),
         ((16, 256, 56, 56), "IGC-L16M16 stage 1"),
         ((16, 512, 28, 28), "IGC-L16M16 stage 2"),
         ((16, 800, 14, 14), "IGC-L100M2 stage 3"),
         ((16, 2048, 7, 7), "IGC-L16M16 stage 4")]
QUICK_CASES = [((4, 16, 8, 8), "quick point")]
FULL = {"repeats": 9, "warmup": 2, "min_time": 1e-3}
QUICK = {"repeats": 3, "warmup": 1, "min_time": 1e-3}
TARGET_SPEEDUP = 1.0  # stock / native, training pass: never slower than the layers it replaces


class _Stock(gluon.HybridBlock):
    """nn.BatchNorm, then (+ residual and) Activation('relu')."""

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.bn = nn.BatchNorm(in_channels=channels, prefix="bn_")

    def hybrid_forward(self, F, x, residual=None):
        y = self.bn(x)
        return F.Activation(y if residual is None else y + residual, act_type="relu")


class _Native(gluon.HybridBlock):
    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.bn = BatchNormReLU(in_channels=channels, prefix="bn_")

    def hybrid_forward(self, F, x, residual=None):
        return self.bn(x) if residual is None else self.bn(x, residual)


def _layers(channels):
    out = {}
    for name, cls in (("native", _Native), ("stock", _Stock)):
        layer = cls(channels, prefix="l_")
        layer.initialize()
        layer.hybridize(static_alloc=True, static_shape=True)
        out[name] = layer
    return out


def _inputs(shape, seed):
    rng = np.random.RandomState(seed)
    x, r, dy = (mx.nd.array(rng.standard_normal(shape)) for _ in range(3))
    x.attach_grad()
    r.attach_grad()
    return x, r, dy


def _infer(layer, x, r, residual):
    return lambda: layer(x, r) if residual else layer(x)


def _reference(x, r, dy, residual):
    """float64 numpy: (output, data gradient, residual gradient) of relu(bn(x) [+ r]) with
    gamma 1, beta 0 (the layers' initialisation), batch statistics, eps 1e-5, and the
    pre-activation ``z``."""
    axes = (0, 2, 3)
    mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    xhat = (x - mean) / np.sqrt(var + 1e-5)
    z = xhat + (r if residual else 0)
    g = dy * (z > 0)
    dx = (g - g.mean(axis=axes, keepdims=True) -
          xhat * (g * xhat).mean(axis=axes, keepdims=True)) / np.sqrt(var + 1e-5)
    return [np.maximum(z, 0), dx, g], z


def check_agreement(shape, layers, residual, seed=0, tol=1e-3, kink=1e-4):
    """Both layers against float64 numpy: output, data and residual gradients within ``tol``
    of the largest value, away from the ReLU's kink (elements with ``|z| < kink``, where
    float32 rounding may put the pre-activation on the other side of 0, are left out: at
    16x2048x7x7 with the residual a few of 1.6 million do). Returns the largest relative
    deviations per layer; raises AssertionError naming the layer and the tensor."""
    x, r, dy = _inputs(shape, seed)
    ref, z = _reference(*(a.asnumpy().astype(np.float64) for a in (x, r, dy)), residual)
    away = np.abs(z) >= kink
    errors = {}
    for name, layer in layers.items():
        x, r, dy = _inputs(shape, seed)
        with autograd.record():
            y = layer(x, r) if residual else layer(x)
        y.backward(dy)
        got = [y.asnumpy(), x.grad.asnumpy()] + ([r.grad.asnumpy()] if residual else [])
        errors[name] = {}
        for what, a, b in zip(("output", "data gradient", "residual gradient"), got, ref):
            scale = float(np.abs(b).max()) or 1.0
            diff = float(np.abs(a - b)[away].max(initial=0.0))
            errors[name][what] = diff / scale
            if diff > tol * scale:
                raise AssertionError(
                    "BNReLU benchmark: %s of the %s layer differs from numpy for %s "
                    "(residual=%s; max |diff| %g of %g away from the ReLU kink)"
                    % (what, name, shape, residual, diff, scale))
    return errors


def measure_case(shape, label, residual, repeats, warmup, min_time):
    layers = _layers(shape[1])
    errors = check_agreement(shape, layers, residual)
    x, r, dy = _inputs(shape, 1)
    inputs = (x, r) if residual else (x,)
    train = time_interleaved({k: training_pass(v, dy, *inputs) for k, v in layers.items()},
                             repeats, warmup, min_time)
    infer = time_interleaved({k: _infer(v, x, r, residual) for k, v in layers.items()},
                             repeats, warmup, min_time)
    ratio = lambda t: t["stock"]["median_ms"] / t["native"]["median_ms"]  # noqa: E731
    return {"label": label, "shape": list(shape), "residual": residual, "outputs_agree": True,
            "relative_error_vs_numpy": errors,
            "train": train, "infer": infer, "train_speedup": ratio(train),
            "infer_speedup": ratio(infer)}


def _shape(s):
    return "(%s)" % ", ".join(str(d) for d in s)


def run(quick=False):
    """Run the BNReLU benchmark; returns the results dict (see benchmarks.common)."""
    settings = QUICK if quick else FULL
    cases = []
    for shape, label in (QUICK_CASES if quick else CASES):
        for residual in (False, True):
            case = measure_case(shape, label, residual, **settings)
            cases.append(case)
            _LOG.info("%-20s residual=%-5s train native %.1f / stock %.1f ms, infer %.1f / "
                      "%.1f ms", _shape(shape), residual,
                      case["train"]["native"]["median_ms"], case["train"]["stock"]["median_ms"],
                      case["infer"]["native"]["median_ms"], case["infer"]["stock"]["median_ms"])
    name = lambda c: "%s%s" % (_shape(c["shape"]), " + residual" if c["residual"] else "")  # noqa
    verdicts = {"train_speedup": verdict(
        [(name(c), c["train_speedup"]) for c in cases], TARGET_SPEEDUP,
        "stock / native >= %.1f, training pass" % TARGET_SPEEDUP)}
    rows = [[_shape(c["shape"]), "relu(bn + shortcut)" if c["residual"] else "relu(bn)",
             "%.1f" % c["train"]["native"]["median_ms"],
             "%.1f" % c["train"]["stock"]["median_ms"], "%.2fx" % c["train_speedup"],
             "%.1f" % c["infer"]["native"]["median_ms"],
             "%.1f" % c["infer"]["stock"]["median_ms"], "%.2fx" % c["infer_speedup"],
             "%.0e" % c["relative_error_vs_numpy"]["native"]["data gradient"],
             "%.0e" % c["relative_error_vs_numpy"]["stock"]["data gradient"],
             c["label"]] for c in cases]
    return {
        "name": "bnrelu",
        "title": "BatchNorm + ReLU of a plain tensor: BNReLU operator vs MXNet's layers",
        "description": (
            "Hybridized (static memory) float32 layers on plain NCHW input, CPU; medians over "
            "%d interleaved repeats, ms per pass. *native* = `BatchNormReLU` (the `BNReLU` "
            "operator), *stock* = `nn.BatchNorm` + `Activation('relu')` (with the residual: "
            "`relu(bn(x) + shortcut)`). Training pass = forward + backward (all gradients, "
            "running statistics). *dx error*: largest deviation of the data gradient from "
            "float64 numpy away from the ReLU's kink, relative to its largest value."
            % settings["repeats"]),
        "tables": [{"title": "training pass and inference",
                    "columns": ["shape", "computes", "train native ms", "train stock ms",
                                "stock / native", "infer native ms", "infer stock ms",
                                "stock / native", "native dx error", "stock dx error", "site"],
                    "rows": rows}],
        "notes": [verdict_line(verdicts["train_speedup"], "%.2fx".__mod__)],
        "verdicts": verdicts,
        "cases": cases,
    }
