"""Reorder, the IGC channel permutation: native operator vs its stock twin vs a plain copy.

The permutation (spec igc.md 1.4) moves every byte once and computes nothing, so the
yardstick is a copy of the same bytes. For float32 NCHW tensors from 0.1 MiB to 64 MiB,
shaped and branched like the IGC networks (branch factors 4, 16, 100, 2), this times:

* forward + backward, as a network uses it: ``x.attach_grad()``, under ``autograd.record()``
  ``y = reorder(x)``, then ``y.backward(dy)``;
* forward only, with a fresh output each call (imperative inference);
* forward into a preallocated output (``out=``): the kernel alone, without allocation.

Variants: ``native`` = ``gluon_models.nn.igc.reorder(impl="native")`` (what the layers run;
for an input that owns a gradient buffer it adds a stock ``identity`` in front of the op,
see igc.py), ``native_op`` = ``mx.nd.Reorder`` called directly, ``stock`` = the
reshape / swapaxes / reshape twin, and the copy baselines (see :func:`_variants`). All
variants of one tensor are timed interleaved in one run (:func:`common.time_interleaved`)
after :func:`check_agreement` has verified that they compute the same result.
"""
import logging

import mxnet as mx
import numpy as np
from mxnet import autograd

import gluon_models  # noqa: F401  (loads the operator library: mx.nd.Reorder)
from gluon_models.nn.igc import reorder

from benchmarks.common import time_interleaved, verdict, verdict_line

_LOG = logging.getLogger(__name__)

# (shape N, C, H, W; branch factor; what it stands for), float32, by size. Stage widths of the
# published IGC ImageNet models are C_s = L * M * 2^s at 56, 28, 14, 7 px (spec igc.md 1.5).
CASES = [
    ((1, 64, 20, 20), 4, "0.1 MiB point"),
    ((32, 128, 8, 8), 16, "1 MiB point"),
    ((32, 128, 16, 16), 16, "4 MiB point"),
    ((32, 1600, 7, 7), 100, "1600 ch @ 7 px, B=100"),
    ((32, 1600, 7, 7), 2, "IGC-L100M2 stage 4, Reorder2"),
    ((32, 2048, 7, 7), 16, "IGC-L16M16 stage 4, Reorder1"),
    ((32, 128, 32, 32), 4, "16 MiB point"),
    ((32, 64, 56, 56), 4, "64 ch @ 56 px, L=4"),
    ((32, 1024, 14, 14), 16, "IGC-L16M16 stage 3, Reorder1"),
    ((16, 200, 56, 56), 100, "IGC-L100M2 stage 1, Reorder1 (batch 16)"),
    ((32, 128, 56, 56), 4, "IGC-L4M32 stage 1, Reorder1"),
    ((32, 128, 64, 64), 2, "64 MiB point"),
]
QUICK_CASES = CASES[:3]
FULL = {"repeats": 31, "warmup": 2, "min_time": 2e-3}
QUICK = {"repeats": 5, "warmup": 1, "min_time": 1e-3}

TARGET_SPEEDUP = 1.0        # stock time / native time
TARGET_BW_FRACTION = 0.5    # native bandwidth / copy bandwidth ...
TARGET_BW_FROM_MIB = 4.0    # ... for tensors at least this large
_DTYPE = np.float32


def reference(x, branch_factor):
    """numpy: ``out[:, c] = in[:, (c mod B) * Q + c div B]`` with ``Q = C / B``."""
    channels = x.shape[1]
    c = np.arange(channels)
    return x[:, (c % branch_factor) * (channels // branch_factor) + c // branch_factor]


def _native(x, branch_factor):
    return reorder(mx.nd, x, branch_factor, impl="native")


def _native_op(x, branch_factor):
    return mx.nd.Reorder(x, branch_factor=branch_factor)


def _stock(x, branch_factor):
    return reorder(mx.nd, x, branch_factor, impl="stock")


def _copy(x, branch_factor):
    return mx.nd.identity(x)


IMPLS = {"native": _native, "native_op": _native_op, "stock": _stock}


def check_agreement(shape, branch_factor, impls=None, seed=0):
    """Forward and backward of every implementation on the same data must agree exactly.

    Each ``impls[name](x, branch_factor)`` runs under ``autograd.record()`` on an ``x`` with a
    gradient buffer, then ``backward(dy)``; output and input gradient are compared bit for bit
    with the first implementation and with :func:`reference` (the backward is the inverse
    permutation, ``Reorder(C / B)``). ``mx.nd.Reorder(..., out=)`` is checked as well.
    Raises AssertionError naming the implementation, the tensor and the case.
    """
    impls = IMPLS if impls is None else impls
    rng = np.random.RandomState(seed)
    x_np = rng.standard_normal(shape).astype(_DTYPE)
    dy_np = rng.standard_normal(shape).astype(_DTYPE)
    expected = {"output": reference(x_np, branch_factor),
                "input gradient": reference(dy_np, shape[1] // branch_factor)}
    dy = mx.nd.array(dy_np, dtype=_DTYPE)
    references = [("the numpy reference", expected)]
    for name, fn in impls.items():
        x = mx.nd.array(x_np, dtype=_DTYPE)
        x.attach_grad()
        with autograd.record():
            y = fn(x, branch_factor)
        y.backward(dy)
        got = {"output": y.asnumpy(), "input gradient": x.grad.asnumpy()}
        for other, want in references:
            for what in ("output", "input gradient"):
                if not np.array_equal(got[what], want[what]):
                    raise AssertionError(
                        "Reorder benchmark: %s of %r differs from %s for shape %s, "
                        "branch_factor %d (max |diff| %g): the variants must compute the same "
                        "result before they are timed"
                        % (what, name, other, shape, branch_factor,
                           np.abs(got[what] - want[what]).max()))
        if len(references) == 1:
            references.append((repr(name), got))
    out = mx.nd.zeros(shape, dtype=_DTYPE)
    mx.nd.Reorder(mx.nd.array(x_np, dtype=_DTYPE), branch_factor=branch_factor, out=out)
    if not np.array_equal(out.asnumpy(), expected["output"]):
        raise AssertionError("Reorder benchmark: mx.nd.Reorder(out=) differs from the numpy "
                             "reference for shape %s, branch_factor %d" % (shape, branch_factor))
    return True


def _variants(shape, branch_factor, seed=0):
    """name -> callable for one case; names are ``<mode>/<variant>``."""
    rng = np.random.RandomState(seed)
    x = mx.nd.array(rng.standard_normal(shape), dtype=_DTYPE)
    x.attach_grad()
    dy = mx.nd.array(rng.standard_normal(shape), dtype=_DTYPE)
    x_in = x.copy()  # no gradient buffer: reorder(impl="native") is then the bare op
    out_op, out_copy = mx.nd.empty(shape, dtype=_DTYPE), mx.nd.empty(shape, dtype=_DTYPE)
    x_np, out_np = x_in.asnumpy(), np.empty(shape, dtype=_DTYPE)

    def fwd_bwd(fn):
        def call():
            with autograd.record():
                y = fn(x, branch_factor)
            y.backward(dy)
        return call

    # The copy baseline is `mx.nd.identity`: one engine operator that reads the tensor once
    # and writes a freshly allocated output of the same size, which is exactly the memory
    # traffic, dispatch and allocation of the permutation's forward; under autograd its
    # backward copies dy into x.grad, as the permutation's backward does (Reorder(C/B) into
    # x.grad). A numpy copy would skip MXNet's dispatch and allocation, and `copyto` into an
    # existing array skips the allocation, so neither is what the operator is up against in
    # these two modes. Both appear in the `out=` mode instead: identity(out=) is the fair
    # baseline for the kernel alone, and np.copyto into a reused buffer is the machine's raw
    # copy bandwidth (an upper bound).
    return {
        "fwd_bwd/native": fwd_bwd(_native),
        "fwd_bwd/native_op": fwd_bwd(_native_op),
        "fwd_bwd/stock": fwd_bwd(_stock),
        "fwd_bwd/copy": fwd_bwd(_copy),
        "fwd/native": lambda: _native(x_in, branch_factor),
        "fwd/stock": lambda: _stock(x_in, branch_factor),
        "fwd/copy": lambda: _copy(x_in, branch_factor),
        "fwd_out/native_op": lambda: mx.nd.Reorder(x_in, branch_factor=branch_factor,
                                                   out=out_op),
        "fwd_out/copy": lambda: mx.nd.identity(x_in, out=out_copy),
        "fwd_out/numpy": lambda: np.copyto(out_np, x_np),
    }


def measure_case(shape, branch_factor, label, repeats, warmup, min_time):
    """Check, then time all variants of one case interleaved; returns the case's record."""
    check_agreement(shape, branch_factor)
    timings = time_interleaved(_variants(shape, branch_factor), repeats, warmup, min_time)
    mx.nd.waitall()
    nbytes = int(np.prod(shape)) * np.dtype(_DTYPE).itemsize
    modes = {}
    for key, timing in timings.items():
        mode, variant = key.split("/")
        modes.setdefault(mode, {})[variant] = timing
    med = {mode: {v: t["median_ms"] for v, t in vs.items()} for mode, vs in modes.items()}
    best = {mode: {v: t["min_ms"] for v, t in vs.items()} for mode, vs in modes.items()}
    # bytes read + written: once per pass, forward and backward in fwd_bwd
    moved = {"fwd_bwd": 4 * nbytes, "fwd": 2 * nbytes, "fwd_out": 2 * nbytes}
    gbps = {mode: {v: moved[mode] / (ms * 1e-3) / 1e9 for v, ms in vs.items()}
            for mode, vs in med.items()}
    return {
        "label": label, "shape": list(shape), "branch_factor": branch_factor,
        "dtype": np.dtype(_DTYPE).name, "bytes": nbytes, "mib": nbytes / 2.0 ** 20,
        "outputs_agree": True,
        "fwd_bwd": modes["fwd_bwd"], "fwd": modes["fwd"], "fwd_out": modes["fwd_out"],
        "gbps": gbps,
        "speedup_fwd_bwd": med["fwd_bwd"]["stock"] / med["fwd_bwd"]["native"],
        "speedup_fwd_bwd_op": med["fwd_bwd"]["stock"] / med["fwd_bwd"]["native_op"],
        "speedup_fwd": med["fwd"]["stock"] / med["fwd"]["native"],
        # same bytes moved, so bandwidth(native) / bandwidth(copy) = time(copy) / time(native)
        "bw_fraction_fwd_bwd": med["fwd_bwd"]["copy"] / med["fwd_bwd"]["native"],
        "bw_fraction_fwd_bwd_op": med["fwd_bwd"]["copy"] / med["fwd_bwd"]["native_op"],
        "bw_fraction_fwd": med["fwd"]["copy"] / med["fwd"]["native"],
        "bw_fraction_kernel": med["fwd_out"]["copy"] / med["fwd_out"]["native_op"],
        # the same two headline ratios from the fastest timings: noise only ever adds time,
        # so these show what the code can do when the shared machine leaves it alone
        "speedup_fwd_bwd_min": best["fwd_bwd"]["stock"] / best["fwd_bwd"]["native"],
        "bw_fraction_fwd_bwd_op_min": best["fwd_bwd"]["copy"] / best["fwd_bwd"]["native_op"],
    }


def _ms(v):
    return "%.3g" % v


def _x(v):
    return "%.2fx" % v


def _pct(v):
    return "%.0f%%" % (100 * v)


def _shape(s):
    return "(%s)" % ", ".join(str(d) for d in s)


def _faults(mode, case, variants):
    return " / ".join("%.0f" % case[mode][v]["faults_per_call"] for v in variants)


def _cases(cases, key, from_mib=0.0):
    """``(label, value)`` of ``key`` per case of at least ``from_mib``, for
    :func:`benchmarks.common.verdict`."""
    return [("%s B=%d" % (_shape(c["shape"]), c["branch_factor"]), c[key])
            for c in cases if c["mib"] >= from_mib]


def run(quick=False):
    """Run the Reorder benchmark; returns the results dict (see benchmarks.common)."""
    settings = QUICK if quick else FULL
    cases = []
    for shape, branch_factor, label in (QUICK_CASES if quick else CASES):
        case = measure_case(shape, branch_factor, label, **settings)
        cases.append(case)
        _LOG.info("%-22s B=%-3d %6.2f MiB  fwd+bwd native %s ms, op %s ms, stock %s ms, "
                  "copy %s ms", _shape(shape), branch_factor, case["mib"],
                  *(_ms(case["fwd_bwd"][v]["median_ms"])
                    for v in ("native", "native_op", "stock", "copy")))

    verdicts = {
        "speedup_fwd_bwd": verdict(_cases(cases, "speedup_fwd_bwd"), TARGET_SPEEDUP,
                                   "stock / native >= %.1f, forward+backward" % TARGET_SPEEDUP),
        "speedup_fwd_bwd_op": verdict(_cases(cases, "speedup_fwd_bwd_op"), TARGET_SPEEDUP,
                                      "stock / native op >= %.1f, forward+backward"
                                      % TARGET_SPEEDUP),
        "speedup_fwd": verdict(_cases(cases, "speedup_fwd"), TARGET_SPEEDUP,
                               "stock / native >= %.1f, forward" % TARGET_SPEEDUP),
    }
    verdicts["speedup_fwd_bwd_min"] = verdict(
        _cases(cases, "speedup_fwd_bwd_min"), TARGET_SPEEDUP,
        "stock / native >= %.1f, forward+backward, from minimum times" % TARGET_SPEEDUP)
    for key, what in (("bw_fraction_fwd_bwd", "forward+backward (native)"),
                      ("bw_fraction_fwd_bwd_op", "forward+backward (native op alone)"),
                      ("bw_fraction_fwd_bwd_op_min",
                       "forward+backward (native op alone), from minimum times"),
                      ("bw_fraction_fwd", "forward"),
                      ("bw_fraction_kernel", "forward into out= (kernel)")):
        verdicts[key] = verdict(_cases(cases, key, TARGET_BW_FROM_MIB), TARGET_BW_FRACTION,
                                "native >= %.0f%% of copy bandwidth at >= %g MiB, %s"
                                % (100 * TARGET_BW_FRACTION, TARGET_BW_FROM_MIB, what))

    fb_rows = [[
        "%.2f" % c["mib"], _shape(c["shape"]), c["branch_factor"],
        _ms(c["fwd_bwd"]["native"]["median_ms"]), _ms(c["fwd_bwd"]["native_op"]["median_ms"]),
        _ms(c["fwd_bwd"]["stock"]["median_ms"]), _ms(c["fwd_bwd"]["copy"]["median_ms"]),
        _x(c["speedup_fwd_bwd"]), _x(c["speedup_fwd_bwd_op"]), _pct(c["bw_fraction_fwd_bwd"]),
        _pct(c["bw_fraction_fwd_bwd_op"]), "%.1f" % c["gbps"]["fwd_bwd"]["native_op"],
        _faults("fwd_bwd", c, ("native", "native_op", "stock", "copy")), c["label"]]
        for c in cases]
    fwd_rows = [[
        "%.2f" % c["mib"], _shape(c["shape"]), c["branch_factor"],
        _ms(c["fwd"]["native"]["median_ms"]), _ms(c["fwd"]["stock"]["median_ms"]),
        _ms(c["fwd"]["copy"]["median_ms"]), _x(c["speedup_fwd"]), _pct(c["bw_fraction_fwd"]),
        _faults("fwd", c, ("native", "stock", "copy"))] for c in cases]
    out_rows = [[
        "%.2f" % c["mib"], _shape(c["shape"]), c["branch_factor"],
        _ms(c["fwd_out"]["native_op"]["median_ms"]), _ms(c["fwd_out"]["copy"]["median_ms"]),
        _ms(c["fwd_out"]["numpy"]["median_ms"]), _pct(c["bw_fraction_kernel"]),
        "%.1f" % c["gbps"]["fwd_out"]["native_op"], "%.1f" % c["gbps"]["fwd_out"]["copy"],
        "%.1f" % c["gbps"]["fwd_out"]["numpy"]] for c in cases]

    return {
        "name": "reorder",
        "title": "Reorder (IGC channel permutation): native vs stock twin vs copy",
        "description": (
            "float32 NCHW, CPU. Times are medians over %d interleaved repeats, in ms per call. "
            "*native* = `reorder(impl=\"native\")` as the IGC layers call it (for an input "
            "with a gradient buffer it runs a stock `identity` before `mx.nd.Reorder`); "
            "*native op* = `mx.nd.Reorder` alone; *stock* = reshape / swapaxes / reshape; "
            "*copy* = `mx.nd.identity` of the same tensor (one read + one write into a fresh "
            "output, like the permutation). Bandwidth counts the bytes read + written once per "
            "pass, so *BW / copy* = copy time / native time. Every case was first checked: "
            "native, native op and stock give bit-identical outputs and input gradients, equal "
            "to a numpy reference." % settings["repeats"]),
        "settings": dict(settings, cases=len(cases)),
        "targets": {"speedup": TARGET_SPEEDUP, "bw_fraction": TARGET_BW_FRACTION,
                    "bw_from_mib": TARGET_BW_FROM_MIB},
        "verdicts": verdicts,
        "cases": cases,
        "tables": [
            {"title": "Forward + backward (autograd, `x.attach_grad()`)",
             "columns": ["MiB", "shape", "B", "native ms", "native op ms", "stock ms",
                         "copy ms", "stock / native", "stock / native op",
                         "native BW / copy", "native op BW / copy", "native op GB/s",
                         "page faults / call (native / op / stock / copy)", "case"],
             "rows": fb_rows},
            {"title": "Forward only (fresh output per call)",
             "columns": ["MiB", "shape", "B", "native ms", "stock ms", "copy ms",
                         "stock / native", "native BW / copy",
                         "page faults / call (native / stock / copy)"],
             "rows": fwd_rows},
            {"title": "Forward into a preallocated output (`out=`): the kernel alone",
             "note": "No allocation and no page faults: `mx.nd.Reorder(x, out=buf)` vs "
                     "`mx.nd.identity(x, out=buf)` vs `np.copyto` into a reused buffer (raw "
                     "copy bandwidth, outside MXNet's engine).",
             "columns": ["MiB", "shape", "B", "native op ms", "identity ms", "numpy copy ms",
                         "op BW / identity", "op GB/s", "identity GB/s", "numpy GB/s"],
             "rows": out_rows},
        ],
        "notes": [
            verdict_line(verdicts["speedup_fwd_bwd"], _x),
            verdict_line(verdicts["speedup_fwd_bwd_op"], _x),
            verdict_line(verdicts["speedup_fwd_bwd_min"], _x),
            verdict_line(verdicts["speedup_fwd"], _x),
            verdict_line(verdicts["bw_fraction_fwd_bwd"], _pct),
            verdict_line(verdicts["bw_fraction_fwd_bwd_op"], _pct),
            verdict_line(verdicts["bw_fraction_fwd_bwd_op_min"], _pct),
            verdict_line(verdicts["bw_fraction_fwd"], _pct),
            verdict_line(verdicts["bw_fraction_kernel"], _pct),
            "In forward+backward, *native* runs the guard `identity` (igc.py) because `x` owns "
            "a gradient buffer: one extra copy forward and one backward, so it moves twice the "
            "bytes of the copy baseline and cannot exceed 50% of its bandwidth. Inside a "
            "network the input of a Reorder is an intermediate result and the op runs alone: "
            "that is the *native op* column.",
            "Page faults / call are process-wide minor faults: output memory that the OS maps "
            "afresh on first write. MXNet allocates CPU outputs with plain malloc (no pool); "
            "glibc gives blocks above its mmap threshold (at most 32 MiB) back to the OS on "
            "free and trims smaller ones off the heap top, so a later allocation faults again. "
            "This cost scales with the number of buffers a variant allocates (stock: one per "
            "reshape / swapaxes and pass; native: identity + Reorder), not with the kernel, "
            "and it varies with allocator state from run to run.",
        ],
    }
