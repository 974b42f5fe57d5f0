"""IGC networks against plain ResNets: training step and inference speed, and where a step's
time goes (issue: IGC networks train and infer as fast as in other frameworks on the CPU).

Timing: each network of :data:`NETWORKS` (registry names, IGC ones with ``impl="native"``)
runs a training step (forward, softmax cross entropy, backward, SGD with momentum 0.9) and an
inference pass, hybridized with static memory, on random data: the ImageNet ResNet-18 family at
batch 16, 224 px, the CIFAR IGC ResNet beside the plain CIFAR ResNet of the same width (48) at
batch 64, 32 px. Networks of a group are timed interleaved (``benchmarks.common.
time_interleaved``), medians of warm steps; each network is reported as a ratio to its group's
plain baseline (``resnet18_w64``, ``resnet_cifar``), with the issue's targets (IGC-L16M16 step
and inference <= 2.5x ResNet-18-w64's, IGC-L100M2 <= 2.0x).

Breakdown: the wheel has no profiler, so one training step and one inference pass of each
ImageNet network run in a child process with oneDNN's verbose mode on (``DNNL_VERBOSE=1``).
oneDNN prints one line per executed primitive, with its execution time in ms as the last field,
on standard output; the child prints marker lines around exactly one warm step (after flushing
C's stdio, so the markers and oneDNN's lines keep their order) and :func:`parse_dnnl_verbose`
adds the lines between them up by primitive and propagation kind, convolutions also by grouped
(problem descriptor ``g<N>...``) vs dense and by implementation, reorders by source ->
destination layout (``aBcd16b->abcd``: out of oneDNN's blocked layout into plain NCHW). The
step's wall time minus the oneDNN total is the time outside oneDNN (the extension operators
such as Reorder, stock MXNet operators, the optimizer, the engine). The wall time there is of
the marked step, with verbose printing on; the same step without it is in the timing table.

Variants: :data:`VARIANTS` (or the environment variable ``GLUON_MODELS_IGC_NETS_VARIANTS``, a
JSON object of the same form) maps a network's label to a list of ``get_model`` option dicts;
each is timed and broken down beside the others as ``<label> [k=v, ...]`` (``{}`` = as
registered), so that one run compares a change before and after.
"""
import argparse
import ctypes
import gc
import json
import logging
import os
import resource
import sys
import time
from collections import OrderedDict

from benchmarks.common import (network_callables, peak_rss_mb, run_child_output, sync,
                               time_networks, verdict, verdict_line)

_LOG = logging.getLogger(__name__)

# label -> (registry name, get_model options, group)
NETWORKS = OrderedDict([
    ("resnet18_w64", ("resnet18_w64", {}, "imagenet")),
    ("igc_resnet18_l4m32", ("igc_resnet18_l4m32", {"impl": "native"}, "imagenet")),
    ("igc_resnet18_l16m16", ("igc_resnet18_l16m16", {"impl": "native"}, "imagenet")),
    ("igc_resnet18_l100m2", ("igc_resnet18_l100m2", {"impl": "native"}, "imagenet")),
    ("resnet_cifar", ("resnet_cifar", {}, "cifar")),
    ("igc_resnet_cifar", ("igc_resnet_cifar", {"impl": "native"}, "cifar")),
])
# group -> baseline label, (batch, side), extra get_model options, breakdown or not
GROUPS = {
    "imagenet": {"baseline": "resnet18_w64", "full": (16, 224), "quick": (2, 64),
                 "quick_options": {"representation_options": {"pool_size": None}},
                 "breakdown": True},
    "cifar": {"baseline": "resnet_cifar", "full": (64, 32), "quick": (4, 32),
              "quick_options": {}, "breakdown": False},
}
# the targets: label -> most step (and inference) time as a multiple of the baseline's
TARGETS = {"igc_resnet18_l16m16": 2.5, "igc_resnet18_l100m2": 2.0}
# label -> list of get_model option dicts to time as named variants ({} = as registered): by
# default each IGC network as registered and with the authors' op chain (no merged primary
# groups, Reorder + grouped conv + Reorder), i.e. after and before the CPU speed paths
BEFORE = {"merge_groups": False, "fuse_secondary": False}
VARIANTS = {label: [{}, BEFORE] for label in ("igc_resnet18_l4m32", "igc_resnet18_l16m16",
                                              "igc_resnet18_l100m2", "igc_resnet_cifar")}
VARIANTS_ENV = "GLUON_MODELS_IGC_NETS_VARIANTS"
FULL = {"repeats": 5, "warmup": 2, "min_time": 1e-3, "breakdown_warmup": 2}
QUICK = {"repeats": 2, "warmup": 1, "min_time": 1e-3, "breakdown_warmup": 1}
TOP_ROWS = 15
OUTSIDE = "outside oneDNN (extension ops such as Reorder, stock ops, optimizer, engine)"
_MARK = "@@igc_nets"


# ---- oneDNN verbose lines -> aggregates ------------------------------------------------------

def _layout(desc):
    """``src_f32::blocked:aBcd16b:f0`` -> ``aBcd16b`` (the memory format tag)."""
    parts = desc.split(":")
    return parts[3] if len(parts) > 3 else desc


def classify(line):
    """``(key, ms, implementation, problem descriptor)`` of one ``dnnl_verbose,exec,...``
    line, or None for any other line.

    Keys: ``convolution <prop_kind> grouped|dense <implementation>``, ``reorder <src layout>
    -> <dst layout>``, otherwise ``<primitive> <prop_kind>`` (``undef`` dropped)."""
    fields = line.strip().split(",")
    if len(fields) < 11 or fields[0] != "dnnl_verbose" or fields[1] != "exec":
        return None
    primitive, impl, prop = fields[3], fields[4], fields[5]
    descs, problem = fields[6].split(), fields[-2]
    try:
        ms = float(fields[-1])
    except ValueError:
        return None
    if primitive == "convolution":
        kind = "grouped" if problem[:1] == "g" and problem[1:2].isdigit() else "dense"
        key = "convolution %s %s %s" % (prop, kind, impl)
    elif primitive == "reorder":
        src = [_layout(d) for d in descs if d.startswith("src")]
        dst = [_layout(d) for d in descs if d.startswith("dst")]
        key = "reorder %s->%s" % (src[0] if src else "?", dst[0] if dst else "?")
    else:
        key = primitive if prop in ("undef", "") else "%s %s" % (primitive, prop)
    return key, ms, impl, problem


def parse_dnnl_verbose(lines):
    """Sum oneDNN's verbose ``exec`` lines by :func:`classify` key.

    Returns ``{"ops": {key: entry}, "total_ms", "calls", "by_primitive": {primitive: entry}}``,
    ops ordered by time, largest first (ties by key); an entry is ``{"ms", "calls", "impl_ms":
    {implementation: ms}, "slowest": {"ms", "problem"}}`` (the slowest single call's time and
    problem descriptor, e.g. its shape)."""
    ops, by_prim = {}, {}
    for line in lines:
        got = classify(line)
        if got is None:
            continue
        key, ms, impl, problem = got
        for table, k in ((ops, key), (by_prim, key.split(" ", 1)[0])):
            entry = table.setdefault(k, {"ms": 0.0, "calls": 0, "impl_ms": {},
                                         "slowest": {"ms": -1.0, "problem": ""}})
            entry["ms"] += ms
            entry["calls"] += 1
            entry["impl_ms"][impl] = entry["impl_ms"].get(impl, 0.0) + ms
            if ms > entry["slowest"]["ms"]:
                entry["slowest"] = {"ms": ms, "problem": problem}
    order = lambda t: OrderedDict(sorted(t.items(), key=lambda kv: (-kv[1]["ms"], kv[0])))  # noqa: E731
    return {"ops": order(ops), "by_primitive": order(by_prim),
            "total_ms": sum(e["ms"] for e in ops.values()),
            "calls": sum(e["calls"] for e in ops.values())}


def sections(text):
    """``{(label, mode): [lines]}`` of the child's output between its begin / end markers."""
    out, current = {}, None
    for line in text.splitlines():
        if line.startswith(_MARK + " begin "):
            label, mode = json.loads(line[len(_MARK + " begin "):])
            current = out.setdefault((label, mode), [])
        elif line.startswith(_MARK + " end"):
            current = None
        elif current is not None:
            current.append(line)
    return out


# ---- networks and variants -------------------------------------------------------------------

def _variant_label(label, options):
    if not options:
        return label
    return "%s [%s]" % (label, ", ".join("%s=%s" % (k, json.dumps(v, sort_keys=True))
                                         for k, v in sorted(options.items())))


def network_list(variants=None):
    """``[(label, registry name, options, group, base label)]``: every network of
    :data:`NETWORKS`, or, for a label with variants, one entry per variant's options."""
    variants = VARIANTS if variants is None else variants
    unknown = sorted(set(variants) - set(NETWORKS))
    if unknown:
        raise ValueError("igc_nets variants: unknown network label(s) %s; known: %s"
                         % (", ".join(unknown), ", ".join(NETWORKS)))
    out = []
    for label, (name, options, group) in NETWORKS.items():
        for extra in variants.get(label) or [{}]:
            if not isinstance(extra, dict):
                raise ValueError("igc_nets variants of %r: each variant is a dict of get_model "
                                 "options, got %r" % (label, extra))
            out.append((_variant_label(label, extra), name, dict(options, **extra), group,
                        label))
    return out


def _env_variants():
    text = os.environ.get(VARIANTS_ENV)
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError as err:
        raise ValueError("%s is not JSON: %s" % (VARIANTS_ENV, err)) from err
    if not isinstance(value, dict):
        raise ValueError("%s must be a JSON object {label: [options, ...]}" % VARIANTS_ENV)
    return value


# ---- the breakdown child ---------------------------------------------------------------------

def _minor_faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _flush_all():
    """Flush C's stdio (oneDNN prints there) and Python's stdout, in that order."""
    ctypes.CDLL(None).fflush(None)
    sys.stdout.flush()


def _marked(label, mode, fn):
    """Run ``fn`` once between markers; returns ``{"wall_ms", "faults"}`` of that run."""
    sync()
    _flush_all()
    print("%s begin %s" % (_MARK, json.dumps([label, mode])))
    _flush_all()
    f0, t0 = _minor_faults(), time.perf_counter()
    fn()
    sync()
    wall, faults = (time.perf_counter() - t0) * 1e3, _minor_faults() - f0
    _flush_all()
    print("%s end" % _MARK)
    _flush_all()
    return {"wall_ms": wall, "faults": faults}


def breakdown_child(spec):
    """In a child with ``DNNL_VERBOSE=1``: for each network of ``spec["networks"]`` (``[label,
    name, options]``), warm up, then one marked training step and one marked inference pass.
    Prints the markers and, last, a JSON line ``{label: {mode: {"wall_ms", "faults",
    "peak_rss_mb"}}}`` (the child's peak resident memory so far: networks run in order)."""
    batch, side, warmup = spec["batch"], spec["side"], spec["warmup"]
    out = {}
    for label, name, options in spec["networks"]:
        step, infer = network_callables(name, batch, side, options)
        out[label] = {}
        for mode, fn in (("train", step), ("infer", infer)):
            for _ in range(warmup):
                fn()
            out[label][mode] = _marked(label, mode, fn)
            out[label][mode]["peak_rss_mb"] = peak_rss_mb()
        del step, infer
        gc.collect()
    _flush_all()
    print(json.dumps(out))


def breakdown(networks, batch, side, warmup):
    """Run :func:`breakdown_child` on ``networks`` (``[(label, name, options)]``); returns
    ``{label: {mode: parsed + wall_ms, faults, outside_ms}}``."""
    spec = {"batch": batch, "side": side, "warmup": warmup,
            "networks": [list(n) for n in networks]}
    text = run_child_output("benchmarks.bench_igc_nets", ["--breakdown-child", json.dumps(spec)],
                            env={"DNNL_VERBOSE": "1"})
    walls = json.loads(text.strip().splitlines()[-1])
    parts = sections(text)
    out = {}
    for label, _, _ in networks:
        out[label] = {}
        for mode in ("train", "infer"):
            parsed = parse_dnnl_verbose(parts.get((label, mode), []))
            if not parsed["calls"]:
                raise RuntimeError("igc_nets breakdown: no oneDNN verbose line for %s %s (is "
                                   "DNNL_VERBOSE honoured by this mxnet?)" % (label, mode))
            parsed.update(walls[label][mode])
            parsed["outside_ms"] = parsed["wall_ms"] - parsed["total_ms"]
            out[label][mode] = parsed
    return out


def breakdown_rows(b, top=TOP_ROWS):
    """Markdown rows of one parsed breakdown: the ``top`` keys by time, then the totals."""
    wall = b["wall_ms"]
    pct = lambda ms: "%.1f%%" % (100.0 * ms / wall) if wall > 0 else "-"  # noqa: E731
    impls = lambda e: ", ".join("%s %.1f" % kv for kv in sorted(  # noqa: E731
        e["impl_ms"].items(), key=lambda kv: (-kv[1], kv[0])))
    rows = [[k, "%.1f" % e["ms"], e["calls"], pct(e["ms"]), impls(e),
             "%.1f ms %s" % (e["slowest"]["ms"], e["slowest"]["problem"])]
            for k, e in list(b["ops"].items())[:top]]
    rest = list(b["ops"].values())[top:]
    if rest:
        rows.append(["(%d other oneDNN kinds)" % len(rest), "%.1f" % sum(e["ms"] for e in rest),
                     sum(e["calls"] for e in rest), pct(sum(e["ms"] for e in rest)), "", ""])
    rows += [["**oneDNN total**", "%.1f" % b["total_ms"], b["calls"], pct(b["total_ms"]), "",
              ""],
             ["**" + OUTSIDE + "**", "%.1f" % b["outside_ms"], "", pct(b["outside_ms"]), "", ""],
             ["**wall (verbose on)**", "%.1f" % wall, "", "100%", "", ""]]
    return rows


BREAKDOWN_COLUMNS = ["oneDNN primitive (kind, layout)", "ms", "calls", "% of wall",
                     "implementations (ms)", "slowest call (problem)"]


def _summary(b):
    """Grouped-convolution and layout-reorder shares of a parsed breakdown, in ms."""
    ops = b["ops"]
    grouped = sum(e["ms"] for k, e in ops.items() if k.startswith("convolution ")
                  and " grouped " in k)
    conv = sum(e["ms"] for k, e in ops.items() if k.startswith("convolution "))
    reorders = sum(e["ms"] for k, e in ops.items() if k.startswith("reorder "))
    return grouped, conv - grouped, reorders


# ---- the benchmark ---------------------------------------------------------------------------

def run(quick=False, variants=None):
    """Run the IGC network benchmark; returns the results dict (see benchmarks.common)."""
    settings = QUICK if quick else FULL
    if variants is None:
        variants = _env_variants()
    nets = network_list(variants)
    tables, notes, verdicts, groups_out = [], [], {}, {}
    breakdowns = {}
    for group, g in GROUPS.items():
        members = [n for n in nets if n[3] == group]
        if not members:
            continue
        batch, side = g["quick" if quick else "full"]
        extra = g["quick_options"] if quick else {}
        baseline = [n for n in members if n[4] == g["baseline"]]
        others = [n for n in members if n[4] != g["baseline"]]
        # One timing run per network (with its variants) beside the baseline: the ratios of a
        # run come from one interleaved timing, and only those networks are in memory at once
        # (several ImageNet IGC networks with static memory at batch 16 do not fit beside
        # each other in 24 GB).
        plains = list(OrderedDict.fromkeys(n[4] for n in others)) or [g["baseline"]]
        rows, ratios, train, infer = [], {}, {}, {}
        for number, plain in enumerate(plains):
            part = baseline + [n for n in others if n[4] == plain]
            timed = time_networks({n[0]: (n[1], n[2]) for n in part}, batch, side,
                                  settings["repeats"], settings["warmup"], settings["min_time"],
                                  extra)
            gc.collect()
            base = baseline[0][0]
            for label, name, _, _, _ in part:
                t, i = timed["train"][label]["median_ms"], timed["infer"][label]["median_ms"]
                key = label if label != base or number == 0 else \
                    "%s (beside %s)" % (label, plain)
                train[key], infer[key] = timed["train"][label], timed["infer"][label]
                ratios[key] = {"train": t / timed["train"][base]["median_ms"],
                               "infer": i / timed["infer"][base]["median_ms"]}
                rows.append([key, "%.0f" % t, "%.2f" % (batch / t * 1e3), "%.2fx"
                             % ratios[key]["train"], "%.0f" % i, "%.2f" % (batch / i * 1e3),
                             "%.2fx" % ratios[key]["infer"],
                             "%.0f" % timed["train"][label]["faults_per_call"],
                             "%.0f" % timed["infer"][label]["faults_per_call"]])
        base = baseline[0][0]
        _LOG.info("%s: %s", group, "; ".join("%s %s ms" % (r[0], r[1]) for r in rows))
        tables.append({"title": "%s: training step and inference, batch %d, %d px"
                                % (group, batch, side),
                       "note": "Each network (and its variants) timed interleaved with the "
                               "baseline %s in a run of its own; ratios within that run."
                               % base if len(plains) > 1 else None,
                       "columns": ["network", "step ms", "train img/s", "step / %s" % base,
                                   "inference ms", "inference img/s", "inference / %s" % base,
                                   "minor faults / step", "minor faults / inference"],
                       "rows": rows})
        groups_out[group] = {"batch": batch, "side": side, "baseline": base, "train": train,
                             "infer": infer, "ratios": ratios}
        for label, _, _, _, plain_label in members:
            if plain_label in TARGETS and label == plain_label:  # as registered
                target = TARGETS[plain_label]
                for mode, word in (("train", "step"), ("infer", "inference")):
                    verdicts["%s %s" % (label, mode)] = verdict(
                        [("%s, batch %d, %d px" % (label, batch, side), ratios[label][mode])],
                        target, "%s %s / %s %s <= %.1fx" % (label, word, base, word, target),
                        higher_is_better=False)
        if g["breakdown"]:
            got = breakdown([(n[0], n[1], dict(extra, **n[2])) for n in members], batch, side,
                            settings["breakdown_warmup"])
            breakdowns.update(got)
            summary = []
            for label, _, _, _, _ in members:
                for mode in ("train", "infer"):
                    b = got[label][mode]
                    grouped, dense, reorders = _summary(b)
                    quiet = (train if mode == "train" else infer)[label]["median_ms"]
                    summary.append([label, mode, "%.0f" % quiet, "%.0f" % b["wall_ms"],
                                    "%.0f" % b["total_ms"],
                                    "%.0f" % b["outside_ms"], "%.0f" % grouped, "%.0f" % dense,
                                    "%.0f" % reorders, b["faults"]])
                    tables.append({"title": "breakdown: %s, %s, batch %d, %d px"
                                            % (label, "training step" if mode == "train"
                                               else "inference", batch, side),
                                   "columns": BREAKDOWN_COLUMNS,
                                   "rows": breakdown_rows(b)})
            tables.append({"title": "breakdown summary: %s, batch %d, %d px"
                                    % (group, batch, side),
                           "note": "One marked step per pass in a child process with oneDNN "
                                   "verbose printing on (*wall*); *median* is the same pass "
                                   "without it, from the timing table. *outside* = wall - oneDNN "
                                   "total: time " + OUTSIDE + ".",
                           "columns": ["network", "pass", "median ms (verbose off)",
                                       "wall ms (verbose on)", "oneDNN ms", "outside ms",
                                       "grouped conv ms", "dense conv ms", "reorder ms",
                                       "minor faults"],
                           "rows": summary})
    # the summary tables first after the timing tables, then the per-network breakdowns
    order = lambda t: (0 if "breakdown" not in t["title"] else  # noqa: E731
                       1 if "summary" in t["title"] else 2)
    tables.sort(key=order)
    notes += [verdict_line(v, "%.2fx".__mod__) for v in verdicts.values()]
    notes.append("Minor page faults are per call of the interleaved timing (process-wide): "
                 "memory the kernel had to map afresh, a sign of allocation churn.")
    return {
        "name": "igc_nets",
        "title": "IGC networks vs plain ResNets: training step, inference and where the time "
                 "goes",
        "description": (
            "Training step (forward, softmax CE, backward, SGD momentum 0.9) and inference of "
            "hybridized (static_alloc, static_shape) networks on random data, float32, CPU; "
            "medians of %d interleaved repeats per group. IGC networks with `impl=\"native\"`. "
            "Breakdown: one marked step in a child process with `DNNL_VERBOSE=1`, oneDNN's "
            "per-primitive times summed by kind." % settings["repeats"]),
        "tables": tables,
        "notes": notes,
        "verdicts": verdicts,
        "variants": variants or {},
        "groups": groups_out,
        "breakdowns": breakdowns,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description="breakdown child of the igc_nets benchmark "
                                     "(run the benchmark with python -m benchmarks.run igc_nets)")
    parser.add_argument("--breakdown-child", required=True, metavar="JSON")
    args = parser.parse_args(argv)
    breakdown_child(json.loads(args.breakdown_child))


if __name__ == "__main__":
    main()
