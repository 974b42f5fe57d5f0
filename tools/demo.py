#!/usr/bin/env python
"""The main job on the embedded default data: convert scikit-learn's digits to RecordIO,
train an IGC network with the Module trainer on the CPU, export it, reload the export with
gluon.SymbolBlock.imports and print its validation top-1 accuracy (`make demo`)."""
import argparse
from gluon_models.training.demo import run_demo
from gluon_models.training.logs import configure_logging


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--workdir", default="runs/demo", help="where everything is written")
    args, extra = parser.parse_known_args(argv)  # the rest goes to train_cifar's parser
    configure_logging()
    r = run_demo(args.workdir, extra, setup_logging=configure_logging)
    print("\nDemo finished in %.0f s (training %.0f s, %d epochs)." % (
        r["total_seconds"], r["train_seconds"], r["epochs"]))
    print("  training log:      %s\n  last checkpoint:   %s\n  exported network:  %s\n"
          "                     %s" % (r["log"], r["checkpoint"], r["symbol"], r["params"]))
    print("Reloaded export, validation (360 digits): top-1 accuracy %.4f, top-5 %.4f"
          % (r["accuracy"], r["top5"]))


if __name__ == "__main__":
    main()
