#!/usr/bin/env python
"""Training curves of one or more training logs (MXNet's line format, as train_cifar.py and
train_imagenet.py write them): prints, per log, the last and best validation value and the
epoch of the best, and draws train (solid) / validation (dashed) curves and the training speed
against the epoch into a PNG.

    python tools/show_log.py runs/a.log runs/b.log --output curves.png --error
"""
import argparse
import os
import sys

from gluon_models.utils.logs import parse_log, plot_logs, summarize


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logs", nargs="+", help="log files")
    parser.add_argument("--names", default=None, help="comma-separated legend names")
    parser.add_argument("--output", default="training_curves.png", help="PNG to write")
    parser.add_argument("--metric", default="accuracy",
                        help="metric to draw, e.g. accuracy, top_k_accuracy_5, cross-entropy")
    parser.add_argument("--error", action="store_true", help="draw 100*(1-metric) in percent")
    parser.add_argument("--no-speed", dest="speed", action="store_false",
                        help="leave out the speed panel")
    parser.add_argument("--node", type=int, default=None,
                        help="worker rank to read from a distributed log (default: rank 0)")
    args = parser.parse_args(argv)
    names = args.names.split(",") if args.names else [os.path.basename(p) for p in args.logs]
    if not args.names and len(set(names)) < len(names):  # same file names: show the paths
        names = list(args.logs)
    if len(names) != len(args.logs):
        sys.exit("show_log.py: error: %d names for %d logs" % (len(names), len(args.logs)))
    try:
        logs = [parse_log(p, n, args.node) for p, n in zip(args.logs, names)]
        plot_logs(logs, args.output, args.metric, args.error, args.speed)
    except (OSError, ValueError) as err:
        sys.exit("show_log.py: error: %s" % err)
    print("%-30s %10s %10s %10s %7s" % ("log", "last val", "best val", "best epoch", "epochs"))
    for log in logs:
        s = summarize(log, args.metric)
        fmt = lambda v: "-" if v is None else "%.4f" % v  # noqa: E731
        print("%-30s %10s %10s %10s %7d" % (s["name"], fmt(s["last"]), fmt(s["best"]),
                                           "-" if s["best_epoch"] is None else s["best_epoch"],
                                           s["epochs"]))
    print("curves: %s" % args.output)


if __name__ == "__main__":
    main()
