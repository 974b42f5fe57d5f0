"""What ``tools/train_cifar.py`` does: parse the seeds' options, build the network and the
record iterators, shard them over distributed workers and call :func:`fit`."""
import argparse
import logging

import mxnet as mx

from ..data.datasets import get_dataset_info
from ..data.iterators import iters_from_args
from ..data.presets import add_aug_args, add_data_args, apply_presets
from ..model_zoo import add_model_args, get_model, model_options_from_args
from .fit import FitConfig, add_fit_args, fit, make_kvstore
from .logs import configure_logging

__all__ = ["cifar_parser", "parse_cifar_args", "train_cifar"]

_LOG = logging.getLogger(__name__)


def cifar_parser(default_model="igc_plain_cifar"):
    """The argument parser of ``tools/train_cifar.py``: model, data, augmentation, training."""
    parser = argparse.ArgumentParser(
        description="Train a network of the registry on a 32x32 RecordIO dataset with the "
                    "Module trainer.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_args(parser, default_model=default_model)
    add_data_args(parser)
    add_aug_args(parser)
    add_fit_args(parser)
    parser.add_argument("--log-file", default=None, help="also write the log to this file")
    return parser


def parse_cifar_args(argv=None, parser=None):
    parser = parser or cifar_parser()
    apply_presets(parser, argv)  # the dataset's augmentation preset becomes the defaults
    return parser.parse_args(argv)


def train_cifar(args):
    """Train as the parsed ``args`` say; returns ``(net, module)``."""
    kv = make_kvstore(args.kv_store)
    rank, workers = (kv.rank, kv.num_workers) if isinstance(kv, mx.kv.KVStore) else (0, 1)
    configure_logging(args.log_file, rank if workers > 1 else None)
    _LOG.info("start with arguments %s", args)
    info = get_dataset_info(args.dataset)
    options = model_options_from_args(args)
    options.setdefault("classes", info.classes)
    net = get_model(args.model, **options)
    net.initialize()
    mx.random.seed(args.seed)

    def make_train(epoch):  # a fresh, epoch-seeded iterator: resuming is then exact
        train, _ = iters_from_args(args, num_parts=workers, part_index=rank,
                                   seed=args.seed * 1000 + epoch)
        return train
    _, val = iters_from_args(args, num_parts=1, part_index=0, seed=args.seed)
    cfg = FitConfig.from_args(args)
    if cfg.num_examples is None:
        cfg.num_examples = -(-info.num_train // workers)
    module = fit(net, make_train, val, cfg, classes=options["classes"], kvstore=kv)
    return net, module
