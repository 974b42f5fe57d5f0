"""Run benchmarks and write their results: ``python -m benchmarks.run [names...] [--quick]``.

A benchmark is registered by existing: ``benchmarks/bench_<name>.py`` with
``run(quick=False) -> dict`` (see :mod:`benchmarks.common`). With no names, all of them run.
"""
import argparse
import importlib
import logging
import pkgutil
import time

import benchmarks
from benchmarks import common

_LOG = logging.getLogger(__name__)
_PREFIX = "bench_"


def available():
    """Names of the registered benchmarks, sorted."""
    return sorted(m.name[len(_PREFIX):] for m in pkgutil.iter_modules(benchmarks.__path__)
                  if m.name.startswith(_PREFIX))


def run_one(name, quick=False, out_dir=common.RESULTS_DIR):
    """Run benchmark ``name``, write its JSON and Markdown; return ``(results, paths)``."""
    module = importlib.import_module("benchmarks." + _PREFIX + name)
    _LOG.info("benchmark %s (%s) ...", name, "quick" if quick else "full")
    t0 = time.perf_counter()
    results = module.run(quick=quick)
    results["name"] = name
    results["quick"] = bool(quick)
    results["elapsed_s"] = round(time.perf_counter() - t0, 2)
    results["machine"] = common.machine_facts()
    paths = common.write_results(results, out_dir)
    _LOG.info("benchmark %s done in %.1f s: %s", name, results["elapsed_s"], ", ".join(paths))
    return results, paths


def build_parser():
    names = available()
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="name",
                        help="benchmarks to run (default: all of %s)" % ", ".join(names))
    parser.add_argument("--quick", action="store_true",
                        help="fewer sizes and repeats: a smoke run, not a measurement")
    parser.add_argument("--out-dir", default=common.RESULTS_DIR,
                        help="where <name>.json and <name>.md go (default: %(default)s)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    return parser


def main(argv=None):
    """Command line entry; returns ``{name: (json_path, md_path)}`` of what was written."""
    parser = build_parser()
    args = parser.parse_args(argv)
    names = available()
    if args.list:
        print("\n".join(names))
        return {}
    unknown = [n for n in args.names if n not in names]
    if unknown:
        parser.error("unknown benchmark(s) %s; available: %s"
                     % (", ".join(unknown), ", ".join(names)))
    written = {}
    for name in args.names or names:
        written[name] = run_one(name, quick=args.quick, out_dir=args.out_dir)[1]
    return written


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)-15s %(message)s")
    main()
