"""Shared machinery of the benchmarks: interleaved timing, machine facts and result files.

A benchmark's ``run(quick)`` returns a results dict with at least

* ``name`` (file stem), ``title`` and ``description`` (Markdown),
* ``tables``: ``[{"title", "columns", "rows", "note"?}]`` rendered as Markdown tables,
* ``notes``: list of Markdown lines shown under the tables (a target's outcome: a
  :func:`verdict`, kept under ``verdicts``, and its :func:`verdict_line`),

plus any raw data it wants kept in the JSON. :func:`write_results` adds nothing to it;
``benchmarks.run`` adds ``machine`` (:func:`machine_facts`), ``quick`` and ``elapsed_s``.
"""
import ctypes
import datetime
import gc
import glob
import importlib.util
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import mxnet as mx
import numpy as np

from gluon_models.utils.fileio import atomic_write_text
from mxnet import autograd, gluon

__all__ = ["RESULTS_DIR", "sync", "training_pass", "time_interleaved", "machine_facts", "verdict",
           "verdict_line", "markdown_table", "to_markdown", "write_results", "omp_threads",
           "OperatorsBlas", "peak_rss_mb", "run_child", "run_child_output", "network_callables",
           "time_networks"]

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sync():
    """Wait for every pending MXNet operation (the engine runs asynchronously)."""
    mx.nd.waitall()


def _minor_faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def training_pass(block, dy, *inputs):
    """A callable of no arguments running one training pass of ``block``: ``block(*inputs)``
    under ``autograd.record()``, then ``backward(dy)`` (gradients go to the inputs that have
    one attached and to the parameters); it leaves the work queued in the engine."""
    def call():
        with autograd.record():
            y = block(*inputs)
        y.backward(dy)
    return call


def time_interleaved(variants, repeats, warmup=2, min_time=2e-3, max_number=1000):
    """Time several callables against each other, round-robin, in one run.

    Every timing is ``number`` back-to-back calls between two :func:`sync` calls, divided by
    ``number``; ``number`` is chosen per variant after the warm-up so that one timing lasts
    at least ``min_time`` seconds (small tensors would otherwise measure the timer and the
    synchronisation). Repeat ``r`` visits the variants in the order rotated by ``r``, so
    machine noise and allocator state hit all of them alike and none always runs right
    after the same neighbour. The garbage collector is off while timing (as in ``timeit``).

    Parameters
    ----------
    variants : dict of str -> callable
        Name -> function of no arguments (it may leave work queued in the engine).
    repeats : int
        Timings per variant; the median and the minimum of these are reported.
    warmup : int
        Untimed calls per variant before calibrating ``number``.

    Returns
    -------
    dict of str -> dict
        Per variant: ``median_ms``, ``min_ms``, ``max_ms``, ``times_ms`` (each per call),
        ``number`` and ``faults_per_call`` (process-wide minor page faults per call: fresh
        memory that the kernel had to map, a cost of allocating outputs, not of the maths).
    """
    names = list(variants)
    number = {}
    for name in names:
        fn = variants[name]
        for _ in range(warmup):
            fn()
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        once = max(time.perf_counter() - t0, 1e-7)
        number[name] = int(min(max_number, max(1, math.ceil(min_time / once))))
    times = {name: [] for name in names}
    faults = dict.fromkeys(names, 0)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(repeats):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                fn, n = variants[name], number[name]
                sync()
                f0 = _minor_faults()
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                sync()
                dt = time.perf_counter() - t0
                faults[name] += _minor_faults() - f0
                times[name].append(dt / n)
    finally:
        if gc_was_enabled:
            gc.enable()
    out = {}
    for name in names:
        ts = times[name]
        out[name] = {"median_ms": statistics.median(ts) * 1e3, "min_ms": min(ts) * 1e3,
                     "max_ms": max(ts) * 1e3, "times_ms": [round(t * 1e3, 5) for t in ts],
                     "number": number[name],
                     "faults_per_call": faults[name] / float(repeats * number[name])}
    return out


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib():
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2.0 ** 20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _git_revision():
    """``<commit>`` or ``<commit>+dirty`` of the checkout, or None outside a git checkout."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=_REPO, check=True,
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=_REPO, check=True, capture_output=True, text=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("+dirty" if dirty else "")


def machine_facts():
    """What the numbers depend on: CPU, cores, versions, threading settings, date."""
    try:
        cores_available = len(os.sched_getaffinity(0))
    except AttributeError:
        cores_available = os.cpu_count()
    try:
        import gluon_models
        operators = {k: v for k, v in gluon_models.ops.info().items() if k != "path"}
    except ImportError as err:
        operators = {"error": str(err)}
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_available": cores_available,
        "memory_gib": _memory_gib(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
        # engine, threading and allocator settings that change these numbers
        "env": {k: v for k, v in sorted(os.environ.items())
                if k.startswith(("MXNET_", "OMP_", "KMP_", "MALLOC_", "GOMP_", "OPENBLAS_",
                                 "GLUON_MODELS_"))},
        "mxnet": mx.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "operators": operators,
        "git": _git_revision(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def verdict(cases, target, what, higher_is_better=True):
    """Whether every measured case meets ``target``, as kept in the results JSON.

    ``cases`` is an iterable of ``(label, value)``, e.g. ``("(32, 64, 56, 56) B=4", 1.3)``;
    ``what`` says the target in words (``"stock / native >= 1.0, forward"``); with
    ``higher_is_better`` off a value meets the target when it is at most ``target`` (memory
    ratios). Returns ``{"met", "what", "target", "cases", "worst", "worst_case", "missed"}``:
    ``cases`` the count, ``worst`` the value furthest on the wrong side and its label,
    ``missed`` ``"label (value)"`` of every case that misses. ``met`` is None (and only
    ``what``, ``target`` and ``cases`` are given) when there is no case, e.g. none in the size
    range a target applies to."""
    cases = list(cases)
    if not cases:
        return {"met": None, "what": what, "target": target, "cases": 0}
    worst_case, worst = (min if higher_is_better else max)(cases, key=lambda c: c[1])
    missed = ["%s (%.2f)" % (label, value) for label, value in cases
              if (value < target if higher_is_better else value > target)]
    return {"met": not missed, "what": what, "target": target, "cases": len(cases),
            "worst": worst, "worst_case": worst_case, "missed": missed}


def verdict_line(v, fmt="%.2f".__mod__):
    """The Markdown note of a :func:`verdict`; ``fmt`` formats its worst value (``1.65x``,
    ``54%``)."""
    if v["met"] is None:
        return "%s: no case in range." % v["what"]
    if v["met"]:
        return "%s: met in %d/%d cases; worst %s at %s." % (
            v["what"], v["cases"], v["cases"], fmt(v["worst"]), v["worst_case"])
    return "%s: **missed** in %d of %d cases: %s." % (v["what"], len(v["missed"]), v["cases"],
                                                      ", ".join(v["missed"]))


def markdown_table(columns, rows):
    """A GitHub Markdown table; cells are converted with ``str``."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def to_markdown(results):
    """Render a results dict (see the module docstring) as a Markdown page."""
    parts = ["# " + results.get("title", results["name"]), ""]
    if results.get("description"):
        parts += [results["description"], ""]
    m = results.get("machine")
    if m:
        env = ", ".join("%s=%s" % kv for kv in m.get("env", {}).items()
                        if kv[0] != "OMP_NUM_THREADS")
        parts += ["Machine: %s, %s cores (%s usable), %s GiB; mxnet %s, numpy %s, python %s; "
                  "OMP_NUM_THREADS=%s%s; git %s; %s." % (
                      m["cpu"], m["cores"], m["cores_available"], m["memory_gib"], m["mxnet"],
                      m["numpy"], m["python"], m["omp_num_threads"],
                      "; " + env if env else "", m["git"], m["date"]), ""]
    settings = []
    if "quick" in results:
        settings.append("mode: " + ("quick (smoke run)" if results["quick"] else "full"))
    if "elapsed_s" in results:
        settings.append("took %.1f s" % results["elapsed_s"])
    if settings:
        parts += ["Run: " + "; ".join(settings) + ".", ""]
    for table in results.get("tables", []):
        parts += ["## " + table["title"], ""]
        if table.get("note"):
            parts += [table["note"], ""]
        parts += [markdown_table(table["columns"], table["rows"]), ""]
    if results.get("notes"):
        parts += ["## Notes", ""] + ["- " + n for n in results["notes"]] + [""]
    return "\n".join(parts)


def write_results(results, out_dir=RESULTS_DIR):
    """Write ``<out_dir>/<name>.json`` and ``<name>.md`` atomically; return both paths."""
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, results["name"])
    json_path, md_path = stem + ".json", stem + ".md"
    atomic_write_text(json_path, json.dumps(results, indent=2) + "\n")
    atomic_write_text(md_path, to_markdown(results))
    return json_path, md_path


def omp_threads():
    """OpenMP threads MXNet gives an operator: it sets them on the main thread at import
    (``OMP_NUM_THREADS``, else half the cores) and its engine threads use the same number."""
    try:
        return int(ctypes.CDLL("libgomp.so.1").omp_get_max_threads())
    except (OSError, AttributeError):
        return None


class OperatorsBlas:
    """sgemm of the BLAS the native operators call, through the same loaded copy (``lib`` is
    None when they call mxnet's OpenBLAS, the build fallback)."""

    def __init__(self):
        import gluon_models  # the library reports which BLAS it was built against
        self.name = gluon_models.ops.info()["blas"]
        self.lib = None
        if self.name.startswith("scipy-openblas"):
            spec = importlib.util.find_spec("scipy_openblas32")  # not imported: no side effects
            lib_dir = os.path.join(list(spec.submodule_search_locations)[0], "lib")
            self.lib = ctypes.CDLL(glob.glob(os.path.join(lib_dir, "libscipy_openblas*.so"))[0])

    def sgemm(self, a, b, c, threads):
        """``c = a @ b`` (float32 C-contiguous numpy arrays) with ``threads`` BLAS threads."""
        M, K = a.shape
        N = b.shape[1]
        self.lib.scipy_openblas_set_num_threads(threads)
        try:
            ptr = ctypes.c_void_p
            self.lib.scipy_cblas_sgemm(101, 111, 111, M, N, K, ctypes.c_float(1.0),
                                       ptr(a.ctypes.data), K, ptr(b.ctypes.data), N,
                                       ctypes.c_float(0.0), ptr(c.ctypes.data), N)
        finally:
            self.lib.scipy_openblas_set_num_threads(1)  # the operators' setting (gm_blas.h)


def peak_rss_mb():
    """Peak resident memory of this process image so far (``VmHWM``), in MB. Unlike
    ``ru_maxrss`` it is not inherited from the parent across exec, so a fresh child measures
    only itself."""
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) for l in fh if l.startswith("VmHWM:")) / 1024.0


def run_child_output(module, args, env=None, timeout=3600):
    """``python -m module *args`` from the repository root; returns its standard output (text)
    or raises RuntimeError with the end of its standard error when it fails."""
    proc = subprocess.run([sys.executable, "-m", module] + list(args), capture_output=True,
                          text=True, cwd=_REPO, timeout=timeout,
                          env=dict(os.environ, **(env or {})))
    if proc.returncode != 0:
        raise RuntimeError("%s child %s failed:\n%s" % (module, args, proc.stderr[-3000:]))
    return proc.stdout


def run_child(module, args, env=None, timeout=3600):
    """``python -m module *args`` from the repository root; returns the JSON object its last
    line of output holds (a benchmark's child processes: fresh memory, other thread counts)."""
    return json.loads(run_child_output(module, args, env, timeout).strip().splitlines()[-1])


def network_callables(name, batch, side, options=None, seed=2):
    """A registry network's training step and inference on random data, as callables.

    ``gluon_models.get_model(name, **options)``, Xavier-initialised, hybridized with static
    memory (``static_alloc``, ``static_shape``), on a ``(batch, 3, side, side)`` float32 input;
    the step is forward + softmax cross entropy + backward + SGD with momentum 0.9 (labels drawn
    among the network's classes). Returns ``(step, infer)``, functions of no arguments that leave
    their work queued in the engine (see :func:`sync`)."""
    import gluon_models
    rng = np.random.RandomState(seed)
    x = mx.nd.array(rng.standard_normal((batch, 3, side, side)))
    net = gluon_models.get_model(name, **(options or {}))
    net.initialize(mx.init.Xavier())
    net.hybridize(static_alloc=True, static_shape=True)
    classes = net(x).shape[1]
    y = mx.nd.array(rng.randint(0, classes, batch))
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 1e-3, "momentum": 0.9})

    def step():
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(batch)

    return step, lambda: net(x)


def time_networks(networks, batch, side, repeats, warmup, min_time, options=None):
    """Training steps and inference of several registry networks, each timed interleaved with
    the others (:func:`time_interleaved`, per call = one step / one batch).

    ``networks`` maps a label to ``(registry name, get_model options)``; ``options`` are added to
    every network's (e.g. a smaller pooling window for small inputs). Returns ``{"train": ...,
    "infer": ...}``, each :func:`time_interleaved`'s result by label."""
    callables = {label: network_callables(name, batch, side, dict(options or {}, **opts))
                 for label, (name, opts) in networks.items()}
    return {"train": time_interleaved({k: v[0] for k, v in callables.items()}, repeats, warmup,
                                      min_time),
            "infer": time_interleaved({k: v[1] for k, v in callables.items()}, repeats, warmup,
                                      min_time)}
