"""Benchmark of the FB layer: native FMConvolution3 / FMConvolution1 vs the stock twin.

One training step of ``FactorizedBilinear`` (FB term + linear 1x1 convolution, DropFactor on,
gradients for the input and every parameter), hybridized with static memory, at the two
heads of the FBN paper's networks (spec fbn.md 1.5, 4):

* ``cifar100_resnet164``: batch 128, 256 -> 100 classes, F = 20, 8 x 8
* ``imagenet_resnet50``:  batch 32, 2048 -> 1000 classes, F = 50, 7 x 7

Measured per variant:

* time: median (and min) of ``--repeats`` steps, the variants interleaved round by round so
  that drifts of the machine hit all of them alike, after one warm-up step each;
* peak memory: a fresh subprocess per variant builds the layer and its inputs (parameters,
  parameter gradients, input and its gradient, output gradient), reads the peak RSS
  (``VmHWM``), runs two steps and reports the growth of the peak: the memory the step itself
  needs (activations kept for backward, temporaries, copies). ``VmHWM`` belongs to the
  process image, unlike ``ru_maxrss``, which a child inherits from its parent across exec;
* effective GFLOP/s: the step's useful FLOPs ``6 O K S (F + 2)`` (forward, data and weight
  gradients of both paths; the native operator's recomputation of ``Z`` in backward is not
  counted) over the median time, and the same as a fraction of the GFLOP/s of an sgemm of
  the size of the main product ``Z = W X`` (``(O F) x K`` times ``K x S``, via ``mx.nd.dot``,
  i.e. the OpenBLAS the native operator calls), timed in the same run. A oneDNN 1x1
  convolution of the same size (what the stock twin runs) is timed as well.

Usage: ``python benchmarks/bench_fb.py [--cases cifar100_resnet164,imagenet_resnet50]
[--repeats 5] [--out benchmarks/results]``. Writes ``bench_fb.json`` and ``bench_fb.md``.
"""
import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("MXNET_SUBGRAPH_VERBOSE", "0")

import numpy as np  # noqa: E402
import mxnet as mx  # noqa: E402
from mxnet import autograd  # noqa: E402

import gluon_models  # noqa: E402,F401
from gluon_models.nn import FactorizedBilinear  # noqa: E402

CASES = {
    "cifar100_resnet164": dict(batch=128, in_channels=256, classes=100, num_factor=20, size=8),
    "imagenet_resnet50": dict(batch=32, in_channels=2048, classes=1000, num_factor=50, size=7),
}
# name -> FactorizedBilinear options
VARIANTS = {
    "native_op3": dict(impl="native", op=3),
    "native_op1": dict(impl="native", op=1),
    "native_op1_ws64": dict(impl="native", op=1, workspace=64),
    "stock": dict(impl="stock"),
}
TARGETS = dict(speedup=1.5, memory_ratio=0.5, sgemm_fraction=0.6)


def build(case, variant, seed=0):
    c = CASES[case]
    mx.random.seed(seed)
    layer = FactorizedBilinear(c["classes"], c["num_factor"], in_channels=c["in_channels"],
                               p=0.5, prefix="fb_", **VARIANTS[variant])
    layer.initialize()
    layer.hybridize(static_alloc=True, static_shape=True)
    rng = np.random.RandomState(seed)
    x = mx.nd.array(rng.uniform(-1, 1, (c["batch"], c["in_channels"], c["size"], c["size"])))
    x.attach_grad()
    dy = mx.nd.array(rng.uniform(-1, 1, (c["batch"], c["classes"], c["size"], c["size"])))
    mx.nd.waitall()
    return layer, x, dy


def step(layer, x, dy):
    with autograd.record():
        y = layer(x)
    y.backward(dy)
    mx.nd.waitall()


def useful_flops(case):
    c = CASES[case]
    S = c["batch"] * c["size"] ** 2
    return 6.0 * c["classes"] * c["in_channels"] * S * (c["num_factor"] + 2)


def timed(fn):
    t = time.perf_counter()
    fn()
    mx.nd.waitall()
    return time.perf_counter() - t


def reference_rates(case, repeats):
    """GFLOP/s of the Z-sized sgemm (OpenBLAS via mx.nd.dot) and of a oneDNN 1x1 conv."""
    c = CASES[case]
    O, F, K = c["classes"], c["num_factor"], c["in_channels"]
    S = c["batch"] * c["size"] ** 2
    a = mx.nd.random.uniform(-1, 1, (O * F, K))
    b = mx.nd.random.uniform(-1, 1, (K, S))
    x = mx.nd.random.uniform(-1, 1, (c["batch"], K, c["size"], c["size"]))
    w = a.reshape((O * F, K, 1, 1))
    flops = 2.0 * O * F * K * S
    gemm = lambda: mx.nd.dot(a, b)  # noqa: E731
    conv = lambda: mx.nd.Convolution(x, w, kernel=(1, 1), num_filter=O * F, no_bias=True)  # noqa
    timed(gemm), timed(conv)
    tg = [timed(gemm) for _ in range(repeats)]
    tc = [timed(conv) for _ in range(repeats)]
    return flops / np.median(tg) / 1e9, flops / np.median(tc) / 1e9


def measure_time(case, variants, repeats):
    built = {v: build(case, v) for v in variants}
    for v in variants:  # every variant gets the native variant's parameters
        src = built[variants[0]][0].collect_params()
        for name, p in built[v][0].collect_params().items():
            p.set_data(src[name].data())
    for v in variants:
        step(*built[v])  # warm-up (allocations, static memory planning)
    times = {v: [] for v in variants}
    sgemm, conv = [], []
    for _ in range(repeats):
        for v in variants:
            times[v].append(timed(lambda: step(*built[v])))
        g, c = reference_rates(case, 1)
        sgemm.append(g)
        conv.append(c)
    return times, float(np.median(sgemm)), float(np.median(conv))


def measure_memory(case, variant):
    """Growth of the peak RSS over two steps, in MB, measured in a fresh process."""
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--memory-child",
                           case, variant], capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError("memory child %s/%s failed:\n%s" % (case, variant, proc.stderr[-3000:]))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def memory_child(case, variant):
    def hwm_mb():
        with open("/proc/self/status") as fh:
            return next(int(l.split()[1]) for l in fh if l.startswith("VmHWM:")) / 1024.0

    layer, x, dy = build(case, variant)
    before = hwm_mb()
    for _ in range(2):
        step(layer, x, dy)
    param_mb = sum(p.data().size for p in layer.collect_params().values()) * 4 / 2 ** 20
    print(json.dumps(dict(peak_growth_mb=hwm_mb() - before, baseline_mb=before,
                          params_mb=param_mb)))


def run(cases, variants, repeats):
    rows = []
    for case in cases:
        times, sgemm, conv = measure_time(case, variants, repeats)
        mem = {v: measure_memory(case, v) for v in variants}
        flops = useful_flops(case)
        stock_t = np.median(times["stock"]) if "stock" in times else None
        stock_m = mem["stock"]["peak_growth_mb"] if "stock" in mem else None
        for v in variants:
            t = float(np.median(times[v]))
            row = dict(case=case, variant=v, median_s=t, min_s=float(np.min(times[v])),
                       times_s=[float(s) for s in times[v]],
                       peak_growth_mb=mem[v]["peak_growth_mb"], params_mb=mem[v]["params_mb"],
                       gflops=flops / t / 1e9, sgemm_gflops=sgemm, onednn_conv_gflops=conv)
            row["sgemm_fraction"] = row["gflops"] / sgemm
            if stock_t is not None:
                row["speedup_vs_stock"] = float(stock_t / t)
                row["memory_vs_stock"] = row["peak_growth_mb"] / stock_m
            rows.append(row)
    return rows


def markdown(rows):
    lines = ["| case | variant | median s (min) | speed vs stock | peak growth MB | "
             "memory vs stock | eff. GFLOP/s | of sgemm | sgemm / oneDNN conv GFLOP/s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| %s | %s | %.3f (%.3f) | %.2fx | %.0f | %.2f | %.1f | %.0f%% | %.0f / %.0f |"
                     % (r["case"], r["variant"], r["median_s"], r["min_s"],
                        r.get("speedup_vs_stock", float("nan")), r["peak_growth_mb"],
                        r.get("memory_vs_stock", float("nan")), r["gflops"],
                        100 * r["sgemm_fraction"], r["sgemm_gflops"], r["onednn_conv_gflops"]))
    lines.append("")
    lines.append("Targets for the native variants: speed >= %.1fx the stock twin, peak growth "
                 "<= %.1fx, >= %d%% of the sgemm GFLOP/s." % (
                     TARGETS["speedup"], TARGETS["memory_ratio"],
                     100 * TARGETS["sgemm_fraction"]))
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES), help="comma list of " + ", ".join(CASES))
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma list of " + ", ".join(VARIANTS))
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per variant")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                      "results"), help="output folder")
    parser.add_argument("--memory-child", nargs=2, metavar=("CASE", "VARIANT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(*args.memory_child)
        return
    cases, variants = args.cases.split(","), args.variants.split(",")
    for name, table in (("case", CASES), ("variant", VARIANTS)):
        bad = [v for v in (cases if name == "case" else variants) if v not in table]
        if bad:
            parser.error("unknown %s(s) %s; choose from %s" % (name, bad, list(table)))
    rows = run(cases, variants, args.repeats)
    os.makedirs(args.out, exist_ok=True)
    info = dict(mxnet=mx.__version__, cpus=os.cpu_count(), repeats=args.repeats,
                operators=gluon_models.ops.info())
    with open(os.path.join(args.out, "bench_fb.json"), "w") as fh:
        json.dump(dict(info=info, rows=rows), fh, indent=1)
    table = markdown(rows)
    with open(os.path.join(args.out, "bench_fb.md"), "w") as fh:
        fh.write("# FB layer: native vs stock twin (one training step)\n\n" + table)
    print(table)


if __name__ == "__main__":
    main()
