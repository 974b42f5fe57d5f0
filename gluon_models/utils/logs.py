"""Training logs in MXNet's line format, parsed into per-epoch records and drawn as curves.

The lines read (``training.fit`` writes them; MXNet's ``Module.fit`` and the seeds' scripts
write the same):

* ``Epoch[N] Train-<metric>=V`` and ``Epoch[N] Validation-<metric>=V`` (``accuracy``,
  ``top_k_accuracy_5``, ``cross-entropy``, ...);
* ``Epoch[N] Batch [a-b]\\tSpeed: X samples/sec ...`` (Speedometer; averaged per epoch);
* ``Epoch[N] Time cost=T``.

A line may carry ``Node[R]`` (distributed workers writing one file): only ``node``'s lines are
read (default: rank 0, or lines without a rank). A log may hold several runs (a resume appends
to it): a run's first epoch line replaces that epoch and every later one of the runs before
it, so a resumed run continues the curve and a restarted one (``--retrain``) replaces it.
"""
import os
import re
from collections import OrderedDict

from .fileio import atomic_write

__all__ = ["TrainingLog", "parse_log", "summarize", "plot_logs"]

_EPOCH = re.compile(r"Epoch\[(\d+)\]\s+(Train|Validation)-([\w\-]+)=\s*([-+\w.]+)")
_SPEED = re.compile(r"Epoch\[(\d+)\]\s+Batch\s*\[[\d\-]+\]\s+Speed:\s*([\d.]+)\s+samples/sec")
_TIME = re.compile(r"Epoch\[(\d+)\]\s+Time cost=([\d.]+)")
_NODE = re.compile(r"Node\[(\d+)\]")
_RUN_START = ("start with arguments", "Start training with")


class TrainingLog:
    """Per-epoch facts of one log: ``epochs`` maps epoch -> ``{'train': {metric: value},
    'val': {metric: value}, 'speed': [samples/sec, ...], 'time': seconds or None}``."""

    def __init__(self, name):
        self.name = name
        self.epochs = OrderedDict()

    def epoch_numbers(self):
        return sorted(self.epochs)

    def series(self, kind, metric):
        """``(epochs, values)`` of ``kind`` ('train' or 'val') ``metric``, where present."""
        xs = [e for e in self.epoch_numbers() if metric in self.epochs[e][kind]]
        return xs, [self.epochs[e][kind][metric] for e in xs]

    def speed(self):
        """``(epochs, mean samples/sec)`` over the Speedometer lines of each epoch."""
        xs = [e for e in self.epoch_numbers() if self.epochs[e]["speed"]]
        return xs, [sum(self.epochs[e]["speed"]) / len(self.epochs[e]["speed"]) for e in xs]


def parse_log(source, name=None, node=None):
    """Parse a log file (path) or an iterable of lines into a :class:`TrainingLog`.

    ``node``: the rank whose lines to read; None reads rank 0 and lines without a rank."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, errors="replace") as f:
            return parse_log(f.readlines(), name or os.path.basename(str(source)), node)
    log = TrainingLog(name or "log")
    seen_in_run = None  # epochs of the current run (None: no run line seen yet)
    for line in source:
        m = _NODE.search(line)
        rank = int(m.group(1)) if m else None
        if rank is not None and rank != (node or 0):
            continue
        if node is not None and rank is None:
            continue
        if any(s in line for s in _RUN_START):
            seen_in_run = set()
            continue
        epoch, fact = _fact(line)
        if epoch is None:
            continue
        if seen_in_run is not None and epoch not in seen_in_run:
            if not seen_in_run:  # the run's first epoch: it replaces what came before
                for e in [e for e in log.epochs if e >= epoch]:
                    del log.epochs[e]
            seen_in_run.add(epoch)
        rec = log.epochs.setdefault(epoch, {"train": {}, "val": {}, "speed": [], "time": None})
        kind, key, value = fact
        if kind == "speed":
            rec["speed"].append(value)
        elif kind == "time":
            rec["time"] = value
        else:
            rec[kind][key] = value
    return log


def _fact(line):
    m = _EPOCH.search(line)
    if m:
        try:
            value = float(m.group(4))
        except ValueError:
            return None, None
        return int(m.group(1)), ("train" if m.group(2) == "Train" else "val", m.group(3), value)
    m = _SPEED.search(line)
    if m:
        return int(m.group(1)), ("speed", None, float(m.group(2)))
    m = _TIME.search(line)
    if m:
        return int(m.group(1)), ("time", None, float(m.group(2)))
    return None, None


def summarize(log, metric="accuracy"):
    """``{'name', 'epochs', 'last', 'best', 'best_epoch'}`` of the validation ``metric``
    (``last``/``best`` None when the log has no validation line)."""
    xs, ys = log.series("val", metric)
    out = {"name": log.name, "epochs": len(log.epochs), "last": None, "best": None,
           "best_epoch": None}
    if ys:
        best = max(range(len(ys)), key=lambda i: ys[i])
        out.update(last=ys[-1], best=ys[best], best_epoch=xs[best])
    return out


_COLOURS = ("tab:blue", "tab:green", "tab:red", "tab:purple", "tab:orange", "tab:brown",
            "tab:pink", "tab:gray", "tab:olive", "tab:cyan")


def plot_logs(logs, path, metric="accuracy", error=False, speed=True, title=None):
    """Draw the training (solid, circles) and validation (dashed, squares) ``metric`` of each log
    against the epoch, one colour per log, and (``speed``) the training speed, into the PNG
    ``path``. ``error=True`` plots ``100 * (1 - metric)`` in percent. Returns ``path``.

    matplotlib is imported here only, and through its Agg canvas: no display, no global
    backend switch."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    logs = list(logs)
    if not logs:
        raise ValueError("no logs to plot")
    panels = 2 if speed else 1
    fig = Figure(figsize=(6.4 * panels, 4.8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, panels, 1)
    label = ("%s error (%%)" % metric) if error else metric
    drawn = 0
    for i, log in enumerate(logs):
        colour = _COLOURS[i % len(_COLOURS)]
        for kind, style in (("train", dict(linestyle="-", marker="o", markersize=3)),
                            ("val", dict(linestyle="--", marker="s", markersize=3,
                                         markerfacecolor="none"))):
            xs, ys = log.series(kind, metric)
            if not xs:
                continue
            if error:
                ys = [100.0 * (1.0 - y) for y in ys]
            ax.plot(xs, ys, color=colour, label="%s %s" % (log.name, kind), **style)
            drawn += 1
    if not drawn:
        raise ValueError("no %r values in the log(s) %s"
                         % (metric, ", ".join(log.name for log in logs)))
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(label)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right" if error else "lower right", fontsize="small")
    if title:
        ax.set_title(title)
    if speed:
        sp = fig.add_subplot(1, panels, 2)
        for i, log in enumerate(logs):
            xs, ys = log.speed()
            if xs:
                sp.plot(xs, ys, color=_COLOURS[i % len(_COLOURS)], marker="o", markersize=3,
                        label=log.name)
        sp.set_xlabel("epoch")
        sp.xaxis.set_major_locator(MaxNLocator(integer=True))
        sp.set_ylabel("training speed (samples/sec)")
        sp.grid(True, alpha=0.3)
        if sp.lines:
            sp.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    return path
