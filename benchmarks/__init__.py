"""Side-by-side measurements of gluon-models: native operators against their stock twins, our
tools against the ones they replace, in one process and one run.

Each benchmark is a module ``benchmarks/bench_<name>.py`` with ``run(quick=False) -> dict``;
``python -m benchmarks.run [names...] [--quick]`` runs them and writes
``benchmarks/results/<name>.json`` and ``<name>.md`` (see :mod:`benchmarks.common`).
"""
