"""The main job on the embedded data (``make demo``): digits -> RecordIO -> train an IGC
network with the Module trainer -> export -> reload the export -> validation accuracy."""
import logging
import os
import time

import mxnet as mx

from ..data.digits import ensure_digits
from ..data.iterators import get_rec_iters
from ..utils.export import build_and_export, load_exported
from .fit import _metrics, evaluate
from .runner import parse_cifar_args, train_cifar

__all__ = ["DEMO_MODEL", "run_demo"]

_LOG = logging.getLogger(__name__)

# IGC-L4M4 ResNet-14 of the CIFAR builder (resnet_igc.py): 3 stages of 2 blocks, widths
# 16/32/64; 12 epochs reach ~98% on the digits' 360 validation images in ~40 s on 2 cores.
DEMO_MODEL = ["--network", "resnet_igc", "--depth", "14", "--primary-partition", "4",
              "--secondary-partition", "4"]
DEMO_TRAINING = ["--num-epochs", "12", "--batch-size", "64", "--lr", "0.1",
                 "--lr-step-epochs", "8,11", "--kv-store", "local", "--disp-batches", "10"]


def run_demo(workdir, extra_args=(), setup_logging=None):
    """Run every step in ``workdir``; returns a dict of what was written and measured.
    ``setup_logging(log_file, rank)``: the tool's logging set-up for the training log."""
    workdir = os.path.abspath(workdir)
    t0 = time.time()
    data_dir = os.path.join(workdir, "data", "digits")
    _LOG.info("[1/4] converting scikit-learn's digits to RecordIO in %s", data_dir)
    ensure_digits(data_dir)
    prefix = os.path.join(workdir, "checkpoints", "igc_resnet_cifar")
    log_file = os.path.join(workdir, "train.log")
    args = parse_cifar_args(DEMO_MODEL + DEMO_TRAINING + ["--dataset", "digits",
                            "--data-dir", data_dir, "--model-prefix", prefix,
                            "--log-file", log_file] + list(extra_args))
    _LOG.info("[2/4] training %s (%s epochs) on the CPU; log %s, checkpoints %s-NNNN.*",
              args.model, args.num_epochs, log_file, prefix)
    t_train = time.time()
    train_cifar(args, setup_logging=setup_logging)
    t_train = time.time() - t_train
    export_prefix = os.path.join(workdir, "export", "igc_resnet_cifar")
    _LOG.info("[3/4] exporting the trained network to %s-symbol.json / -0000.params",
              export_prefix)
    options = {"depth": args.depth, "primary": args.primary_partition,
               "secondary": args.secondary_partition, "classes": 10}
    sym_file, params_file = build_and_export("igc_resnet_cifar", export_prefix,
                                             checkpoint=(prefix, args.num_epochs), **options)
    _LOG.info("[4/4] reloading the export with gluon.SymbolBlock.imports and evaluating it")
    block = load_exported(export_prefix)
    _, val = get_rec_iters("digits", data_dir, batch_size=100)
    val.reset()
    results = dict(evaluate(block, val, _metrics(10, 5)))
    return {"accuracy": results["accuracy"], "top5": results.get("top_k_accuracy_5"),
            "cross_entropy": results["cross-entropy"],
            "train_seconds": t_train, "total_seconds": time.time() - t0,
            "symbol": sym_file, "params": params_file, "log": log_file,
            "checkpoint": "%s-%04d.params" % (prefix, args.num_epochs),
            "epochs": args.num_epochs}
