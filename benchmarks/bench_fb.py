"""FB layer: native FMConvolution3 / FMConvolution1 vs the stock twin, one training step.

One training step of ``FactorizedBilinear`` (FB term + linear 1x1 convolution, DropFactor on,
gradients for the input and every parameter), hybridized with static memory, at the two
heads of the FBN paper's networks (spec fbn.md 1.5, 4):

* ``cifar100_resnet164``: batch 128, 256 -> 100 classes, F = 20, 8 x 8
* ``imagenet_resnet50``:  batch 32, 2048 -> 1000 classes, F = 50, 7 x 7

(the quick run takes the CIFAR head at batch 32). Measured per variant:

* time: median (and min) of the timed steps, the variants interleaved round by round
  (:func:`benchmarks.common.time_interleaved`) after a warm-up step each, with the OpenMP
  threads MXNet gives an operator by default (half the cores) and, in a child process, with
  ``OMP_NUM_THREADS`` = all cores;
* peak memory: a fresh subprocess per variant builds the layer and its inputs (parameters,
  parameter gradients, input and its gradient, output gradient), reads the peak RSS
  (``VmHWM``), runs two steps and reports the growth of the peak: the memory the step itself
  needs (activations kept for backward, temporaries, copies). ``VmHWM`` belongs to the
  process image, unlike ``ru_maxrss``, which a child inherits from its parent across exec;
* effective GFLOP/s: the step's useful FLOPs ``6 O K S (F + 2)`` (forward, data and weight
  gradients of both paths; the native operator's recomputation of ``Z`` in backward is not
  counted) over the median time, and the same as a fraction of the GFLOP/s of an sgemm of
  the size of the main product ``Z = W X`` (``(O F) x K`` times ``K x S``) on the BLAS the
  native operators call, with as many threads as MXNet gives an operator, timed in the same
  run. ``mx.nd.dot`` (mxnet's own OpenBLAS) and a oneDNN 1x1 convolution of the same size
  (what the stock twin runs) are timed as well.

``python -m benchmarks.run fb [--quick]`` writes ``benchmarks/results/fb.json`` and ``fb.md``.
"""
import json
import logging
import os

os.environ.setdefault("MXNET_SUBGRAPH_VERBOSE", "0")

import numpy as np  # noqa: E402
import mxnet as mx  # noqa: E402
from mxnet import autograd  # noqa: E402

import gluon_models  # noqa: E402
from gluon_models.nn import FactorizedBilinear  # noqa: E402

from benchmarks.common import (OperatorsBlas, omp_threads, peak_rss_mb, run_child,  # noqa: E402
                               time_interleaved, verdict, verdict_line)

_LOG = logging.getLogger(__name__)
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CASES = {
    "cifar100_resnet164": dict(batch=128, in_channels=256, classes=100, num_factor=20, size=8),
    "imagenet_resnet50": dict(batch=32, in_channels=2048, classes=1000, num_factor=50, size=7),
    "cifar100_resnet164_b32": dict(batch=32, in_channels=256, classes=100, num_factor=20, size=8),
}
# name -> FactorizedBilinear options
VARIANTS = {
    "native_op3": dict(impl="native", op=3),
    "native_op1": dict(impl="native", op=1),
    "native_op1_ws64": dict(impl="native", op=1, workspace=64),
    "stock": dict(impl="stock"),
}
NATIVE = [v for v in VARIANTS if v.startswith("native")]
FULL = dict(cases=["cifar100_resnet164", "imagenet_resnet50"], repeats=5, warmup=1,
            threads_variants=["native_op3", "native_op1", "stock"])
QUICK = dict(cases=["cifar100_resnet164_b32"], repeats=2, warmup=1, threads_variants=[])
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


def reference_rates(case, repeats, threads):
    """GFLOP/s of the Z-sized sgemm (operators' BLAS; mx.nd.dot) and of a oneDNN 1x1 conv."""
    c = CASES[case]
    O, F, K = c["classes"], c["num_factor"], c["in_channels"]
    S = c["batch"] * c["size"] ** 2
    rng = np.random.RandomState(0)
    a_np = rng.uniform(-1, 1, (O * F, K)).astype(np.float32)
    b_np = rng.uniform(-1, 1, (K, S)).astype(np.float32)
    c_np = np.empty((O * F, S), np.float32)
    a, b = mx.nd.array(a_np), mx.nd.array(b_np)
    x = mx.nd.random.uniform(-1, 1, (c["batch"], K, c["size"], c["size"]))
    w = a.reshape((O * F, K, 1, 1))
    blas = OperatorsBlas()
    timings = time_interleaved({
        # the mxnet fallback calls mxnet's OpenBLAS, as mx.nd.dot does
        "sgemm": (lambda: blas.sgemm(a_np, b_np, c_np, threads or 1)) if blas.lib else
                 (lambda: mx.nd.dot(a, b)),
        "mx_dot": lambda: mx.nd.dot(a, b),
        "onednn_conv": lambda: mx.nd.Convolution(x, w, kernel=(1, 1), num_filter=O * F,
                                                 no_bias=True),
    }, repeats=repeats, warmup=1, min_time=0.05)
    flops = 2.0 * O * F * K * S
    return {k: flops / (t["median_ms"] / 1e3) / 1e9 for k, t in timings.items()}


def measure_time(case, variants, repeats, warmup):
    """Per variant: ``median_s``, ``min_s``, ``times_s`` of one training step."""
    built = {v: build(case, v) for v in variants}
    src = built[variants[0]][0].collect_params()
    for v in variants[1:]:  # every variant gets the first variant's parameters
        for name, p in built[v][0].collect_params().items():
            p.set_data(src[name].data())
    timings = time_interleaved({v: (lambda v=v: step(*built[v])) for v in variants},
                               repeats=repeats, warmup=warmup, min_time=0)
    return {v: {"median_s": t["median_ms"] / 1e3, "min_s": t["min_ms"] / 1e3,
                "times_s": [s / 1e3 for s in t["times_ms"]]} for v, t in timings.items()}


def _child(args, env=None):
    return run_child("benchmarks.bench_fb", args, env)


def measure_memory(case, variant):
    """Growth of the peak RSS over two steps, in MB, measured in a fresh process."""
    return _child(["--memory-child", case, variant])


def memory_child(case, variant):
    layer, x, dy = build(case, variant)
    before = peak_rss_mb()
    for _ in range(2):
        step(layer, x, dy)
    param_mb = sum(p.data().size for p in layer.collect_params().values()) * 4 / 2 ** 20
    print(json.dumps(dict(peak_growth_mb=peak_rss_mb() - before, baseline_mb=before,
                          params_mb=param_mb)))


def time_child(case, variants, repeats, warmup):
    print(json.dumps({"omp_threads": omp_threads(),
                      "times": measure_time(case, variants.split(","), int(repeats),
                                            int(warmup))}))


def _cases(rows, key):
    """``(label, value)`` of ``key`` per row, for :func:`benchmarks.common.verdict`."""
    return [("%s %s" % (r["case"], r["variant"]), r[key]) for r in rows]


def _x(v):
    return "%.2fx" % v


def run(quick=False):
    """Run the FB benchmark; returns the results dict (see benchmarks.common)."""
    settings = QUICK if quick else FULL
    variants = list(VARIANTS)
    threads = omp_threads()
    cores = len(os.sched_getaffinity(0))
    load_before = os.getloadavg()
    rows, refs, thread_rows = [], [], []
    for case in settings["cases"]:
        times = measure_time(case, variants, settings["repeats"], settings["warmup"])
        rates = reference_rates(case, max(3, settings["repeats"]), threads)
        refs.append(dict(case=case, omp_threads=threads, **rates))
        mem = {v: measure_memory(case, v) for v in variants}
        flops = useful_flops(case)
        for v in variants:
            t = times[v]["median_s"]
            row = dict(case=case, variant=v, **times[v],
                       peak_growth_mb=mem[v]["peak_growth_mb"], params_mb=mem[v]["params_mb"],
                       gflops=flops / t / 1e9, sgemm_gflops=rates["sgemm"])
            row["sgemm_fraction"] = row["gflops"] / rates["sgemm"]
            row["speedup_vs_stock"] = times["stock"]["median_s"] / t
            row["memory_vs_stock"] = row["peak_growth_mb"] / mem["stock"]["peak_growth_mb"]
            rows.append(row)
            _LOG.info("%s %-16s %.3f s  %.2fx stock  %.0f MB  %.1f GFLOP/s", case, v, t,
                      row["speedup_vs_stock"], row["peak_growth_mb"], row["gflops"])
        tv = settings["threads_variants"]
        if tv and cores > 1 and threads != cores:
            child = _child(["--time-child", case, ",".join(tv), str(settings["repeats"]),
                            str(settings["warmup"])], env={"OMP_NUM_THREADS": str(cores)})
            for v in tv:
                t = child["times"][v]["median_s"]
                thread_rows.append(dict(case=case, variant=v, omp_threads=child["omp_threads"],
                                        **child["times"][v], gflops=flops / t / 1e9,
                                        speedup_vs_stock=child["times"]["stock"]["median_s"] / t))
    load_after = os.getloadavg()

    native_rows = [r for r in rows if r["variant"] in NATIVE]
    verdicts = {
        "speedup": verdict(_cases(native_rows, "speedup_vs_stock"), TARGETS["speedup"],
                           "native >= %.1fx the stock twin's speed" % TARGETS["speedup"]),
        "memory_ratio": verdict(_cases(native_rows, "memory_vs_stock"), TARGETS["memory_ratio"],
                                "native peak growth <= %.1fx the stock twin's"
                                % TARGETS["memory_ratio"], higher_is_better=False),
        "sgemm_fraction": verdict(_cases(native_rows, "sgemm_fraction"),
                                  TARGETS["sgemm_fraction"], "native >= %d%% of the sgemm GFLOP/s"
                                  % (100 * TARGETS["sgemm_fraction"])),
    }
    native_threads = [r for r in thread_rows if r["variant"] in NATIVE]
    if native_threads:
        verdicts["speedup_all_cores"] = verdict(
            _cases(native_threads, "speedup_vs_stock"), TARGETS["speedup"],
            "with OMP_NUM_THREADS=%d: native >= %.1fx the stock twin's speed"
            % (cores, TARGETS["speedup"]))

    info = gluon_models.ops.info()
    blas = "%s (%s kernels)" % (info["blas"], info["blas_core"])
    tables = [
        {"title": "Training step, %s OpenMP thread(s) per operator (MXNet's default)" % threads,
         "columns": ["case", "variant", "median s (min)", "speed vs stock", "peak growth MB",
                     "memory vs stock", "eff. GFLOP/s", "of sgemm"],
         "rows": [[r["case"], r["variant"], "%.3f (%.3f)" % (r["median_s"], r["min_s"]),
                   _x(r["speedup_vs_stock"]), "%.0f" % r["peak_growth_mb"],
                   "%.2f" % r["memory_vs_stock"], "%.1f" % r["gflops"],
                   "%.0f%%" % (100 * r["sgemm_fraction"])] for r in rows]},
        {"title": "Reference rates (Z-sized product), GFLOP/s",
         "note": "*sgemm*: the BLAS the native operators call, %s, with as many BLAS threads "
                 "as MXNet gives an operator; *mx.nd.dot*: mxnet's own OpenBLAS 0.3.13; "
                 "*oneDNN conv*: `mx.nd.Convolution` 1x1 of the same size, what the stock "
                 "twin runs." % blas,
         "columns": ["case", "threads", "sgemm", "mx.nd.dot", "oneDNN conv"],
         "rows": [[r["case"], r["omp_threads"], "%.0f" % r["sgemm"], "%.0f" % r["mx_dot"],
                   "%.0f" % r["onednn_conv"]] for r in refs]},
    ]
    if thread_rows:
        tables.append({
            "title": "Training step with OMP_NUM_THREADS=%d (all cores)" % cores,
            "note": "Measured in a child process (MXNet reads the variable at start-up). The "
                    "native operators cut each GEMM into one single-threaded BLAS call per "
                    "thread; oneDNN parallelises the stock twin's convolutions.",
            "columns": ["case", "variant", "median s (min)", "speed vs stock",
                        "eff. GFLOP/s"],
            "rows": [[r["case"], r["variant"], "%.3f (%.3f)" % (r["median_s"], r["min_s"]),
                      _x(r["speedup_vs_stock"]), "%.1f" % r["gflops"]] for r in thread_rows]})
    notes = [verdict_line(verdicts["speedup"], _x),
             verdict_line(verdicts["memory_ratio"]),
             verdict_line(verdicts["sgemm_fraction"], lambda v: "%.0f%%" % (100 * v))]
    if "speedup_all_cores" in verdicts:
        notes.append(verdict_line(verdicts["speedup_all_cores"], _x))
    notes += [
        "Native operators' BLAS: %s, %s BLAS thread(s) per call; an inherited "
        "OPENBLAS_CORETYPE (%s) is not applied to it (gluon_models/ops.py)."
        % (blas, info["blas_threads"], info.get("blas_coretype_set_aside")),
        "Load average (1 min) before / after the run: %.2f / %.2f. The machine may be shared; "
        "a load near the core count means other processes took CPU time from these timings."
        % (load_before[0], load_after[0]),
    ]
    return {
        "name": "fb",
        "title": "FB layer: native FMConvolution3 / FMConvolution1 vs the stock twin "
                 "(one training step)",
        "description": (
            "`FactorizedBilinear` (FB term + linear 1x1 convolution, DropFactor on, gradients "
            "for the input and every parameter), hybridized with static memory, float32, CPU. "
            "Heads: *cifar100_resnet164* batch 128, 256 -> 100 classes, F = 20, 8x8; "
            "*imagenet_resnet50* batch 32, 2048 -> 1000 classes, F = 50, 7x7 (the quick run: "
            "the CIFAR head at batch 32). Times: median (min) of %d interleaved steps after %d "
            "warm-up step(s). *peak growth*: growth of the peak RSS over two steps in a fresh "
            "process (what the step needs beyond its inputs and parameters). *eff. GFLOP/s*: "
            "useful FLOPs 6 O K S (F + 2) per step over the median time; *of sgemm*: that "
            "over the GFLOP/s of a Z-sized sgemm (O F x K times K x S) on the operators' BLAS. "
            "Variants: *native_op3* / *native_op1* = `FMConvolution3` / `FMConvolution1` "
            "(default workspace 512 MB), *native_op1_ws64* = `FMConvolution1` with "
            "workspace=64, *stock* = the twin of stock operators."
            % (settings["repeats"], settings["warmup"])),
        "settings": dict(settings, omp_threads=threads, cores=cores,
                         load_before=list(load_before), load_after=list(load_after)),
        "targets": TARGETS,
        "verdicts": verdicts,
        "rows": rows,
        "reference_rates": refs,
        "threads_rows": thread_rows,
        "tables": tables,
        "notes": notes,
    }


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(description="Child processes of the FB benchmark; run "
                                     "the benchmark with `python -m benchmarks.run fb`.")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--memory-child", nargs=2, metavar=("CASE", "VARIANT"))
    group.add_argument("--time-child", nargs=4, metavar=("CASE", "VARIANTS", "REPEATS",
                                                         "WARMUP"))
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(*args.memory_child)
    else:
        time_child(*args.time_child)


if __name__ == "__main__":
    main()
