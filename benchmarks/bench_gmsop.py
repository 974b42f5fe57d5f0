"""GM-SOP: a training step of the GM-SOP network and the cost of its head.

One training step (forward, backward with the authors' objective ``sum_b CE_b + 100 CV^2``,
SGD update with ``trainer.step(B)``) of ``gmsop16_8_resnet18_imagenet64`` at B = 150 (the
authors' WRN batch; the quick run: B = 4), 1000 classes, float32 on this CPU, hybridized,
against

* the GAP baseline ``resnet18_imagenet64`` (the same trunk with stride 2 in stage 5, global
  average pooling and a 128 -> 1000 classifier);
* the GM-SOP head computed densely (all 16 components on every sample, the default) and
  routed (each sample's 8 selected components only);

and the head alone (input: the trunk's map, which owns a gradient): GM-SOP dense / routed on
(B, 128, 16, 16) and GAP + classifier on (B, 128, 8, 8). Times: median (min) of interleaved
steps (:func:`benchmarks.common.time_interleaved`).

``python -m benchmarks.run gmsop [--quick]`` writes ``benchmarks/results/gmsop.json`` and
``.md``.
"""
import logging
import os

os.environ.setdefault("MXNET_SUBGRAPH_VERBOSE", "0")

import numpy as np  # noqa: E402
import mxnet as mx  # noqa: E402
from mxnet import autograd, gluon  # noqa: E402

import gluon_models  # noqa: E402
from gluon_models.nn.gmsop import GatedMixture  # noqa: E402
from gluon_models.nn.representation import GAvP  # noqa: E402

from benchmarks.common import omp_threads, time_interleaved  # noqa: E402

_LOG = logging.getLogger(__name__)

FULL = dict(batch=150, repeats=5, warmup=1)
QUICK = dict(batch=4, repeats=1, warmup=1)
CLASSES = 1000
NETWORKS = {
    "gap baseline (resnet18_imagenet64)": ("resnet18_imagenet64", {}),
    "GM-SOP dense (gmsop16_8_resnet18_imagenet64)": ("gmsop16_8_resnet18_imagenet64",
                                                     dict(routing="dense")),
    "GM-SOP routed": ("gmsop16_8_resnet18_imagenet64", dict(routing="routed")),
}


def _trainer(block):
    return gluon.Trainer(block.collect_params(), "sgd",
                         dict(learning_rate=1e-4, momentum=0.9, wd=1e-4))


def _ce():
    return gluon.loss.SoftmaxCrossEntropyLoss()


def _gm_head(routing):
    head = GatedMixture(128, CLASSES, pool="sop", gate_widths=(256, 128),
                        component_widths=(256, 128), routing=routing, prefix="gm_")
    head.initialize(mx.init.Xavier())
    return head


class _GapHead(gluon.HybridBlock):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.pool = GAvP(128)
            self.fc = gluon.nn.Dense(CLASSES, in_units=128)

    def hybrid_forward(self, F, x):
        return self.fc(self.pool(x))


def _scores_and_extra(block, x):
    """Scores and the summed extra losses times their weights (the authors' objective: the
    per-sample balance loss summed is CV^2 with the gradient of CV^2 / B per entry... see
    gluon_models.nn.gmsop.balance_loss), or 0."""
    if hasattr(block, "extra_losses"):
        scores, extra = block.extra_losses(mx.nd, x)
        return scores, sum(e.weight * e.loss.sum() for e in extra) if extra else 0
    return block(x), 0


def _step_fn(block, x, label):
    trainer, ce, batch = _trainer(block), _ce(), x.shape[0]

    def step():
        with autograd.record():
            scores, extra = _scores_and_extra(block, x)
            loss = ce(scores, label).sum() + extra
        loss.backward()
        trainer.step(batch)
        mx.nd.waitall()
    return step


def build_network(name, options, batch, rng):
    net = gluon_models.get_model(name, classes=CLASSES, **options)
    net.initialize()
    # gate matrices away from their constant start (its first batches take the random path)
    for p in net.collect_params().values():
        if p.name.endswith(("gate_weight", "noise_weight")):
            p.set_data(mx.nd.array(rng.normal(0, 0.01, p.shape)))
    net.hybridize(static_alloc=True)
    x = mx.nd.array(rng.uniform(-60, 60, (batch, 3, 64, 64)))
    label = mx.nd.array(rng.randint(0, CLASSES, batch))
    return _step_fn(net, x, label)


def build_head(kind, batch, rng):
    head = _GapHead(prefix="gap_") if kind == "gap" else _gm_head(kind)
    if kind == "gap":
        head.initialize(mx.init.Xavier())
    head.hybridize(static_alloc=True)
    side = 8 if kind == "gap" else 16
    x = mx.nd.array(np.maximum(rng.randn(batch, 128, side, side), 0))
    x.attach_grad()
    label = mx.nd.array(rng.randint(0, CLASSES, batch))
    return _step_fn(head, x, label)


def _rows(timings, reference):
    ref = timings[reference]["median_ms"]
    return [[name, "%.3f (%.3f)" % (t["median_ms"] / 1e3, t["min_ms"] / 1e3),
             "%.2fx" % (t["median_ms"] / ref)] for name, t in timings.items()]


def run(quick=False):
    """Run the GM-SOP benchmark; returns the results dict (see benchmarks.common)."""
    settings = QUICK if quick else FULL
    batch, rng = settings["batch"], np.random.RandomState(0)
    nets = {name: build_network(n, o, batch, rng) for name, (n, o) in NETWORKS.items()}
    net_times = time_interleaved(nets, repeats=settings["repeats"],
                                 warmup=settings["warmup"], min_time=0)
    del nets
    heads = {"GAP + classifier on (B, 128, 8, 8)": build_head("gap", batch, rng),
             "GM-SOP head dense on (B, 128, 16, 16)": build_head("dense", batch, rng),
             "GM-SOP head routed": build_head("routed", batch, rng)}
    head_times = time_interleaved(heads, repeats=settings["repeats"],
                                  warmup=settings["warmup"], min_time=0)
    for name, t in list(net_times.items()) + list(head_times.items()):
        _LOG.info("%-45s %.3f s", name, t["median_ms"] / 1e3)
    first_net, first_head = list(NETWORKS)[0], "GAP + classifier on (B, 128, 8, 8)"
    dense_net, routed_net = list(NETWORKS)[1:]
    gm = net_times[dense_net]["median_ms"]
    head_dense = head_times["GM-SOP head dense on (B, 128, 16, 16)"]["median_ms"]
    head_routed = head_times["GM-SOP head routed"]["median_ms"]
    notes = [
        "GM-SOP network step / GAP baseline step: %.2fx; routed / dense network step: %.2fx."
        % (gm / net_times[first_net]["median_ms"],
           net_times[routed_net]["median_ms"] / gm),
        "GM-SOP head (dense) / GAP head: %.1fx; routed / dense head: %.2fx; the dense head "
        "is %.0f%% of the GM-SOP network's step."
        % (head_dense / head_times[first_head]["median_ms"], head_routed / head_dense,
           100 * head_dense / gm),
        "Load average (1 min) at the end: %.2f; the machine may be shared." % os.getloadavg()[0],
    ]
    return {
        "name": "gmsop",
        "title": "GM-SOP: training step of the network and of its head (CPU, float32)",
        "description": (
            "One training step (forward, backward of `sum CE + 100 CV^2`, SGD update) at "
            "B = %d, 1000 classes, hybridized, %s OpenMP thread(s) per operator. Networks: "
            "the GAP baseline and GM-SOP-16-8 + ResNet-18 with its mixture computed densely "
            "(all components on every sample) or routed (the 8 selected per sample). Heads: "
            "the same on the trunk's map (which owns a gradient). Median (min) of %d "
            "interleaved steps after %d warm-up step(s); *vs first*: median over the first "
            "row's." % (batch, omp_threads(), settings["repeats"], settings["warmup"])),
        "settings": dict(settings, omp_threads=omp_threads()),
        "networks": net_times,
        "heads": head_times,
        "tables": [
            {"title": "Network training step, B = %d" % batch,
             "columns": ["network", "median s (min)", "vs first"],
             "rows": _rows(net_times, first_net)},
            {"title": "Head training step, B = %d" % batch,
             "columns": ["head", "median s (min)", "vs first"],
             "rows": _rows(head_times, first_head)},
        ],
        "notes": notes,
    }
