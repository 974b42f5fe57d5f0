"""What ``tools/train_cifar.py`` and ``tools/train_imagenet.py`` do: parse the seeds' options,
build the network and the record iterators, shard the training data over distributed workers
and call :func:`fit`. The two runners differ only in their data options and iterators.

Two kinds of record sets: the datasets of the table
(:data:`~gluon_models.data.datasets.DATASETS`: CIFAR, SVHN, the digits, downsampled ImageNet,
Places365), read whole with their augmentation presets (``--dataset``, ``--aug``,
``--mean-rgb``, ...), and ImageNet-style records of full images, cropped and augmented by level
(``--train-rec``, ``--aug-level``, ``--norm``, ...). ``train_cifar.py`` takes the first kind;
``train_imagenet.py`` the second, and the first as well when ``--dataset NAME`` is given (e.g.
``--dataset imagenet64``), keeping its own training defaults.

Every parse also applies the training defaults the model's family declares for it
(:func:`apply_train_defaults`, ``register_family(train_defaults=...)``, e.g. the GM-SOP
authors' batch size and lr schedule per network); options given on the command line win."""
import argparse
import copy
import dataclasses
import logging
import os

import numpy as np
import mxnet as mx

from ..data.datasets import get_dataset_info, list_datasets
from ..data.imagenet import (add_imagenet_aug_args, add_imagenet_data_args,
                             apply_imagenet_presets, count_train_records,
                             imagenet_iters_from_args)
from ..data.iterators import iters_from_args
from ..data.presets import add_aug_args, add_data_args, apply_presets
from ..model_zoo import add_model_args, get_model, model_info, model_options_from_args
from ..model_zoo.cli import check_model_args
from ..model_zoo.registry import data_defaults, optimizer_rules, train_defaults
from ..utils.checkpoint import save_params
from .fit import FitConfig, add_fit_args, fit, make_kvstore

__all__ = ["fit_config", "cifar_parser", "parse_cifar_args", "train_cifar", "imagenet_parser",
           "parse_imagenet_args", "train_imagenet", "rank_params_file",
           "dataset_imagenet_parser", "apply_train_defaults"]

_LOG = logging.getLogger(__name__)


def _add_run_args(parser):
    g = parser.add_argument_group("Run", "log and debugging output")
    g.add_argument("--log-file", default=None, help="also write the log to this file")
    g.add_argument("--save-rank-params", metavar="PREFIX", default=None,
                   help="debug: every worker writes its final parameters to "
                        "PREFIX-rank<R>.params (checkpoints come from rank 0 only)")
    return g


def rank_params_file(prefix, rank):
    """The file ``--save-rank-params PREFIX`` makes worker ``rank`` write."""
    return "%s-rank%d.params" % (prefix, rank)


def _train(args, make_train_iter, make_val_iter, num_train, classes=None, setup_logging=None):
    """Train as ``args`` say. ``make_train_iter(num_parts, part_index, seed)`` and
    ``make_val_iter()`` build the iterators; ``num_train()`` is the training-set size.
    ``setup_logging(log_file, rank)`` is the tool's logging set-up (the library leaves the
    root logger alone), called once the worker's rank is known (None: one worker)."""
    kv = make_kvstore(args.kv_store)
    rank, workers = (kv.rank, kv.num_workers) if isinstance(kv, mx.kv.KVStore) else (0, 1)
    if setup_logging is not None:
        setup_logging(args.log_file, rank if workers > 1 else None)
    _LOG.info("start with arguments %s", args)
    try:
        return _train_worker(args, kv, rank, workers, make_train_iter, make_val_iter,
                             num_train, classes)
    except BaseException as err:  # pylint: disable=broad-except
        if workers < 2:
            raise
        # A failed worker that exits normally waits forever in the kvstore's exit barrier for
        # the others (which wait for its gradients): leave at once so the launcher sees the
        # failure and stops the job.
        if isinstance(err, (ValueError, FileNotFoundError)):
            _LOG.error("worker %d failed: %s", rank, err)
        else:
            _LOG.exception("worker %d failed", rank)
        logging.shutdown()
        os._exit(1)


def _train_worker(args, kv, rank, workers, make_train_iter, make_val_iter, num_train, classes):
    options = model_options_from_args(args)
    if classes is not None:
        options.setdefault("classes", classes)
    net = get_model(args.model, **options)
    # --seed decides the initial weights too (the blocks' initialisers draw from these RNGs)
    mx.random.seed(args.seed)
    np.random.seed(args.seed)
    net.initialize()

    def make_train(epoch):  # a fresh, epoch-seeded shard: resuming is then exact
        return make_train_iter(workers, rank, args.seed * 1000 + epoch)
    cfg = fit_config(args)
    if cfg.num_examples is None:
        cfg.num_examples = -(-num_train() // workers)
    module = fit(net, make_train, make_val_iter(), cfg, classes=options.get("classes"),
                 kvstore=kv)
    if args.save_rank_params:
        path = rank_params_file(args.save_rank_params, rank)
        save_params(module, path)
        _LOG.info("Saved the final parameters of rank %d to %s", rank, path)
    return net, module


def fit_config(args):
    """The :class:`FitConfig` of parsed training ``args``, with the optimizer rules of the
    families' training flags (e.g. FBN's slow start) that the arguments ask for."""
    return dataclasses.replace(FitConfig.from_args(args), rules=optimizer_rules(args))


# ---- record sets of the dataset table (32x32 sets, downsampled ImageNet, ...) ----------------

def cifar_parser(default_model="igc_plain_cifar", description=None):
    """The argument parser of ``tools/train_cifar.py`` (and of ``train_imagenet.py
    --dataset``): model, data (a dataset of the table), augmentation, training."""
    parser = argparse.ArgumentParser(
        description=description or "Train a network of the registry on a RecordIO dataset of "
                    "the table (CIFAR, SVHN, digits, downsampled ImageNet, ...) with the Module "
                    "trainer.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_args(parser, default_model=default_model)
    add_data_args(parser)
    add_aug_args(parser)
    add_fit_args(parser)
    _add_run_args(parser)
    return parser


def parse_cifar_args(argv=None, parser=None):
    """Parse with the presets applied as defaults: the augmentation preset the model's
    family was trained with on this dataset (e.g. ``fbn`` for the FBN nets on CIFAR), else
    the dataset's own."""
    def presets(known):
        aug = data_defaults(known.model)["cifar_aug"].get(known.dataset)
        if aug is not None:
            parser.set_defaults(aug=aug)
        apply_presets(parser, argv)  # the preset becomes the defaults of its options
    parser = parser or cifar_parser()
    return _parse_with_presets(parser, argv, presets)


def _parse_with_presets(parser, argv, presets):
    """``presets(known)`` (after ``parse_known_args``) sets the defaults the model and data
    imply, then the model's training defaults its family declares (:func:`apply_train_defaults`)
    and the final parse; an unknown ``--model`` or a bad preset value is a usage error (exit
    status 2), as is a ``--model-opt`` the model does not take."""
    known, _ = parser.parse_known_args(argv)
    try:
        presets(known)
        if getattr(known, "model", None):
            apply_train_defaults(parser, known.model)
    except ValueError as err:
        parser.error(str(err))
    args = parser.parse_args(argv)
    check_model_args(parser, args)
    return args


def apply_train_defaults(parser, model):
    """Make the training options that ``model``'s family declares for it
    (``register_family(train_defaults=...)``, e.g. its authors' batch size and lr schedule)
    the defaults of ``parser``, when it is a training command line (it has the training
    group of :func:`~gluon_models.training.fit.add_fit_args`; e.g. ``tools/evaluate.py``'s is
    not, and keeps its own batch size); returns what it applied. Flags given on the command
    line still win. Options of another training command line's data pipeline (the ImageNet
    crops of ``train_imagenet.py``'s ``--aug-level`` / ``--aug-opt`` when a table's dataset is
    read) are not this one's and are skipped; ``ValueError`` when one is an option of no
    training command line."""
    dests = {a.dest for a in parser._actions}  # pylint: disable=protected-access
    if "num_epochs" not in dests:
        return {}
    values = copy.deepcopy(train_defaults(model))  # an appended list must not grow the table
    unknown = sorted(set(values) - dests)
    if unknown:
        anywhere = {a.dest for p in (imagenet_parser(), cifar_parser())
                    for a in p._actions}  # pylint: disable=protected-access
        wrong = [k for k in unknown if k not in anywhere]
        if wrong:
            raise ValueError("the training defaults of model %r name option(s) %s that no "
                             "training command line has" % (model, ", ".join(wrong)))
        values = {k: v for k, v in values.items() if k in dests}
    parser.set_defaults(**values)
    return values


def train_cifar(args, setup_logging=None):
    """Train as the parsed ``args`` say; returns ``(net, module)``. ``setup_logging(log_file,
    rank)``: the calling tool's logging set-up."""
    info = get_dataset_info(args.dataset)
    return _train(
        args,
        lambda parts, index, seed: iters_from_args(args, parts, index, seed)[0],
        lambda: iters_from_args(args, 1, 0, args.seed)[1],
        lambda: info.num_train, classes=info.classes, setup_logging=setup_logging)


# ---- ImageNet-style record sets ---------------------------------------------------------------

# train_imagenet.py's training defaults, the seeds' (NAG, lr 0.1 divided by 10 at epochs 30,
# 60, 90, 120 epochs, batch 256), whichever kind of records it reads
_IMAGENET_DEFAULTS = dict(optimizer="nag", num_epochs=120, lr_step_epochs=[30.0, 60.0, 90.0],
                          batch_size=256)
_IMAGENET_MODEL = "igc_resnet18_l16m16"


def imagenet_parser(default_model=_IMAGENET_MODEL):
    """The argument parser of ``tools/train_imagenet.py``; defaults follow the seeds (NAG,
    lr 0.1 divided by 10 at epochs 30, 60, 90, 120 epochs, batch 256, aug level 2).
    ``--dataset NAME`` switches to :func:`dataset_imagenet_parser` (see
    :func:`parse_imagenet_args`)."""
    parser = argparse.ArgumentParser(
        description="Train a network of the registry on ImageNet-style RecordIO with the "
                    "Module trainer.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_args(parser, default_model=default_model)
    group = add_imagenet_data_args(parser)
    group.add_argument("--dataset", default=None, choices=list_datasets(),
                       help="train on a dataset of the table instead (its converter's "
                            "train/val records in --data-dir, its augmentation presets: "
                            "--aug, --mirror, --mean-rgb, ...; e.g. imagenet64); see "
                            "'--dataset NAME --help'")
    add_imagenet_aug_args(parser)
    add_fit_args(parser)
    _add_run_args(parser)
    parser.set_defaults(**_IMAGENET_DEFAULTS)
    return parser


def dataset_imagenet_parser(default_model=_IMAGENET_MODEL):
    """The parser of ``tools/train_imagenet.py --dataset NAME``: the data and augmentation
    options of the table's datasets (:func:`cifar_parser`) with train_imagenet.py's training
    defaults."""
    parser = cifar_parser(default_model, description=(
        "Train a network of the registry on a RecordIO dataset of the table (--dataset, e.g. "
        "imagenet64) with the Module trainer."))
    parser.set_defaults(**_IMAGENET_DEFAULTS)
    return parser


def _dataset_of(argv):
    """The ``--dataset`` value of a command line, else None."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--dataset", default=None)
    known, _ = pre.parse_known_args(argv)
    return known.dataset


def parse_imagenet_args(argv=None, parser=None):
    """Parse with the presets (normalisation: the model family's, e.g. ``fbn`` for the FBN
    nets, else ``--norm``'s default; record names; the model's input size, 224 without a
    model) applied as defaults; also the parse of ``tools/evaluate.py``.

    Without a ``parser``, a command line with ``--dataset NAME`` is parsed by
    :func:`dataset_imagenet_parser` (as :func:`parse_cifar_args` does);
    :func:`train_imagenet` then reads that dataset's records."""
    if parser is None and _dataset_of(argv) is not None:
        return parse_cifar_args(argv, dataset_imagenet_parser())

    def presets(known):
        norm = data_defaults(known.model)["imagenet_norm"] if known.model else None
        if norm is not None:  # the normalisation the model's family was trained with
            parser.set_defaults(norm=norm)
        size = model_info(known.model)["input_size"] if known.model else 224
        apply_imagenet_presets(parser, argv, data_shape=size)
    parser = parser or imagenet_parser()
    return _parse_with_presets(parser, argv, presets)


def train_imagenet(args, setup_logging=None):
    """Train as the parsed ``args`` (of :func:`parse_imagenet_args`) say; returns
    ``(net, module)``. ``setup_logging(log_file, rank)``: the calling tool's logging set-up.
    With ``args.dataset`` (``--dataset NAME``) the table's dataset is read, as
    :func:`train_cifar` does."""
    if getattr(args, "dataset", None):
        return train_cifar(args, setup_logging=setup_logging)
    return _train(
        args,
        lambda parts, index, seed: imagenet_iters_from_args(args, parts, index, seed,
                                                            val=False)[0],
        lambda: imagenet_iters_from_args(args, 1, 0, args.seed, train=False)[1],
        lambda: count_train_records(args), setup_logging=setup_logging)
