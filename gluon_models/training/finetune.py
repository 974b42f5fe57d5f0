"""Fine-tuning as the fast MPN-COV seed's ``main.py`` and its scripts do it (spec mpncov.md
§4.3, §5), on the shared Module trainer (:func:`~gluon_models.training.fit.fit`).

* The network: ``--model`` (a backbone or a named network) with ``--representation`` (the
  seed's names GAvP / MPNCOV / BCNN / CBP / None, or ours), ``--classes``, ``--freeze K``
  (the first K children of ``features``). ``--pretrained FILE`` (a file of
  ``tools/convert_weights.py`` or a network of ours) loads ``features`` and, when the file
  has all of them, the representation's parameters; the classifier is new.
* The optimizer: SGD with momentum in PyTorch's form (``torch_sgd``), three parts as the
  seed's parameter groups: the classifier (``output``) trains with ``lr *
  --classifier-factor``, and with no weight decay when a pretrained plain VGG is fine-tuned
  (§5.2); ``--lr-method step|log`` with ``--lr-params`` (§5.3).
* The data: records of ``tools/prepare_folder.py`` under the preprocessing of
  ``--benchmark`` (:mod:`gluon_models.data.benchmarks`): a single centre crop after every
  epoch, and at the end two crops (centre + flip; ImageNet: ten) with their logits averaged.
* ``--two-stage E1`` (``two_stage_finetune.sh``): epochs 1..E1 train the classifier only
  (every child of ``features`` frozen), then the run resumes from epoch E1's checkpoint with
  every layer trainable (classifier momentum carried over, the others' starting at zero, as
  when the seed resumes its optimizer).
* ``--resume`` continues from the newest checkpoint of ``--model-prefix``; ``--evaluate``
  only evaluates it (multi-crop, then one crop).
"""
import argparse
import dataclasses
import logging

import mxnet as mx
import numpy as np

from ..data.benchmarks import BENCHMARKS, benchmark_iters, benchmark_name, default_size
from ..data.imagenet import rec_files
from ..data.iterators import count_records
from ..data.presets import add_batch_args
from ..model_zoo import add_model_args, get_model, model_info, model_options_from_args
from ..model_zoo.cli import check_model_args
from ..model_zoo.compose import load_parts
from ..utils.argtypes import (finite_float, fraction, non_negative_float, non_negative_int,
                              positive_float, positive_int)
from ..utils.checkpoint import last_complete_epoch
from ..utils.export import load_checkpoint_params
from .evaluation import CropAverage
from .fit import _metrics, add_fit_args, evaluate, fit, make_kvstore
from .runner import _add_run_args, fit_config

__all__ = ["REPRESENTATIONS", "finetune_parser", "parse_finetune_args", "build_network",
           "classifier_rule", "finetune", "evaluate_multicrop"]

_LOG = logging.getLogger(__name__)

# the seed's --representation values -> ours (None: the model's own)
REPRESENTATIONS = {"gavp": "gavp", "mpncov": "isqrtcov", "isqrtcov": "isqrtcov",
                   "bcnn": "bcnn", "cbp": "cbp", "none": None}


def _representation(text):
    key = str(text).lower()
    if key not in REPRESENTATIONS:
        raise argparse.ArgumentTypeError(
            "expected one of GAvP, MPNCOV, BCNN, CBP, None (or isqrtcov), got %r" % (text,))
    return key


def _benchmark(text):
    try:
        return benchmark_name(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def finetune_parser():
    """The argument parser of ``tools/finetune.py``; defaults reproduce ``finetune.sh``
    (mpncov_resnet50, batch 10, lr 1.2e-3 constant over 100 epochs, classifier factor 5,
    weight decay 1e-4, momentum 0.9)."""
    parser = argparse.ArgumentParser(
        description="Fine-tune a registered network on a benchmark's records as the fast "
                    "MPN-COV scripts do.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_args(parser, default_model="mpncov_resnet50")
    data = parser.add_argument_group("Data", "records of tools/prepare_folder.py")
    data.add_argument("--data-dir", required=True, help="directory of train.rec and val.rec")
    data.add_argument("--train-rec", default="train.rec", help="training records")
    data.add_argument("--val-rec", default="val.rec", help="validation (test) records")
    data.add_argument("--benchmark", type=_benchmark, required=True,
                      help="preprocessing: %s (spec mpncov.md 5.5)" % "|".join(BENCHMARKS))
    data.add_argument("--data-shape", type=positive_int, default=None,
                      help="crop side; default 448 (fine-grained) or 224 (ImageNet)")
    add_batch_args(data, batch_size=10)
    add_fit_args(parser)
    _add_run_args(parser)
    g = parser.add_argument_group("Fine-tuning", "the fast MPN-COV main.py options")
    g.add_argument("--representation", type=_representation, default=None,
                   help="GAvP, MPNCOV, BCNN, CBP or None (the model's own); default: the "
                        "model's")
    g.add_argument("--freeze", "--freezed-layer", dest="freeze", type=non_negative_int,
                   default=0, help="freeze the first K children of features")
    g.add_argument("--pretrained", metavar="PARAMS", default=None,
                   help="weights of features (and the representation) to start from: a "
                        "tools/convert_weights.py file or one of ours; the classifier is new")
    g.add_argument("--classifier-factor", type=positive_float, default=5.0,
                   help="classifier lr = lr x factor")
    g.add_argument("--lr-method", dest="lr_schedule", choices=("step", "log"),
                   default=argparse.SUPPRESS, help="same as --lr-schedule step|log")
    g.add_argument("--lr-params", type=finite_float, nargs="+", default=None,
                   help="step: the epochs at which the lr is divided by 10 (those >= "
                        "--epochs never act); log: P1 P2 (lr from 10^P1 to 10^P2)")
    g.add_argument("--epochs", dest="num_epochs", type=positive_int,
                   default=argparse.SUPPRESS, help="same as --num-epochs")
    g.add_argument("--momentum", dest="mom", type=fraction, default=argparse.SUPPRESS,
                   help="same as --mom")
    g.add_argument("--weight-decay", dest="wd", type=non_negative_float,
                   default=argparse.SUPPRESS, help="same as --wd")
    g.add_argument("--two-stage", metavar="E1", type=positive_int, default=None,
                   help="train the classifier only for E1 epochs, then every layer "
                        "(two_stage_finetune.sh); needs --model-prefix")
    g.add_argument("--resume", action="store_true",
                   help="continue from the newest checkpoint of --model-prefix")
    g.add_argument("--evaluate", action="store_true",
                   help="only evaluate the newest checkpoint of --model-prefix (or "
                        "--load-epoch): multi-crop, then one crop")
    parser.set_defaults(lr=1.2e-3, num_epochs=100, lr_step_epochs=[100.0], wd=1e-4, mom=0.9,
                        optimizer="torch_sgd", kv_store="local", disp_batches=10)
    return parser


def parse_finetune_args(argv=None, parser=None):
    """Parse, translating ``--lr-params`` into the schedule's options."""
    parser = parser or finetune_parser()
    args = parser.parse_args(argv)
    check_model_args(parser, args)
    if args.lr_params is not None:
        if args.lr_schedule == "log":
            if len(args.lr_params) != 2:
                parser.error("--lr-method log takes two --lr-params (P1 P2), got %s"
                             % args.lr_params)
            args.lr_log = list(args.lr_params)
        elif args.lr_schedule == "step":
            if any(p < 0 for p in args.lr_params):
                parser.error("--lr-params of step are epochs (>= 0), got %s" % args.lr_params)
            args.lr_step_epochs, args.lr_factor = list(args.lr_params), 0.1
        else:
            parser.error("--lr-params applies to --lr-method step or log")
    if args.lr_schedule == "log" and not args.lr_log:
        parser.error("--lr-method log needs --lr-params P1 P2")
    if args.two_stage is not None and not args.model_prefix:
        parser.error("--two-stage needs --model-prefix (stage 2 resumes from stage 1's "
                     "checkpoint)")
    if args.two_stage is not None and args.two_stage >= args.num_epochs:
        parser.error("--two-stage %d must be below --epochs %d" % (args.two_stage,
                                                                  args.num_epochs))
    if (args.resume or args.evaluate) and not args.model_prefix:
        parser.error("--resume / --evaluate read the checkpoints of --model-prefix")
    args.data_shape = args.data_shape or default_size(args.benchmark)
    return args


def _options(args, freeze=None):
    """The builder options: the model arguments, ``--representation`` and ``--freeze``. As
    the seed's MPNCOV preset, iSQRT-COV on a pretrained backbone has no dimension reduction
    unless ``--model-opt reduced_dim=D`` says otherwise (VGG: a 131,328-d vector; the 2048
    channels of ResNet-50 are refused as the senseless combination they are); and, as its
    ``Newmodel``, a pretrained AlexNet / VGG gets one fully connected layer as classifier
    (``pretrained_head``)."""
    options = model_options_from_args(args)
    if args.representation is not None:
        options["representation"] = REPRESENTATIONS[args.representation]
    accepted = model_info(args.model)["options"]
    if (args.pretrained and options.get("representation") == "isqrtcov"
            and "reduced_dim" in accepted and "reduced_dim" not in options):
        options["reduced_dim"] = 0
    if args.pretrained and "pretrained_head" in accepted:
        options.setdefault("pretrained_head", True)  # AlexNet / VGG: one layer, fc6/7 gone
    options["freeze"] = args.freeze if freeze is None else freeze
    return options


def build_network(args, freeze=None, pretrained=True):
    """The network of parsed ``args``, initialised (shapes known), with ``--pretrained``
    loaded (when ``pretrained``) and the classifier's lr / wd multipliers set (§5.2)."""
    net = get_model(args.model, **_options(args, freeze))
    mx.random.seed(args.seed)
    np.random.seed(args.seed)
    net.initialize()
    net(mx.nd.zeros((1, 3, args.data_shape, args.data_shape)))  # deferred shapes
    if pretrained and args.pretrained:
        _load_pretrained(net, args.pretrained)
    classifier_rule(net, args.model, args.classifier_factor, bool(args.pretrained))
    return net


def classifier_rule(net, model, factor, pretrained):
    """The seed's parameter groups (spec mpncov.md §5.2): the classifier (``output``) trains
    with ``lr * factor``; its weight decay is 0 when a pretrained plain VGG (``vgg*``, not
    ``mpncov_vgg16_bn``) is fine-tuned, else ``wd`` as everywhere."""
    classifier = net.output.collect_params()
    classifier.setattr("lr_mult", float(factor))
    classifier.setattr("wd_mult", 0.0 if pretrained and model.startswith("vgg") else 1.0)


def _load_pretrained(net, path):
    names = set(mx.nd.load(path))
    structural = net._collect_params_with_prefix()
    rep = [k for k in structural if k.startswith("representation.")]
    parts = ("features", "representation") if all(
        k in names or structural[k].name in names or "arg:" + structural[k].name in names
        or "aux:" + structural[k].name in names for k in rep) else ("features",)
    loaded = load_parts(net, path, parts=parts)
    _LOG.info("loaded %d parameters of %s from %s (new classifier%s)", len(loaded),
              "/".join(parts), path, "" if "representation" in parts
              else ", new representation")


def _children(net):
    return len(net.features._children)


def evaluate_multicrop(net, make_multi, classes):
    """Metrics of ``net`` on the multi-crop data (logits averaged over the crops)."""
    return dict(evaluate(CropAverage(net, average="logits"), make_multi(),
                         _metrics(classes, 5)))


def finetune(args):
    """Run as the parsed ``args`` say; returns ``(net, results)`` with ``results`` the
    metrics of the final (or ``--evaluate``) multi-crop and single-crop evaluations."""
    _LOG.info("arguments: %s", args)
    kv = make_kvstore(args.kv_store)
    rank, workers = (kv.rank, kv.num_workers) if isinstance(kv, mx.kv.KVStore) else (0, 1)
    make_train, make_val, make_multi = benchmark_iters(
        args.data_dir, args.benchmark, args.batch_size, args.data_shape, args.val_batch_size,
        args.train_rec, args.val_rec, args.seed, args.preprocess_threads, workers, rank)
    cfg = fit_config(args)
    if cfg.num_examples is None:  # from the .idx: no decoding pass to count them
        cfg = dataclasses.replace(cfg, num_examples=-(-count_records(
            rec_files(args.data_dir, args.train_rec)[1]) // workers))
    if args.resume or args.evaluate:
        last = args.load_epoch or last_complete_epoch(args.model_prefix)
        if args.evaluate and not last:
            raise ValueError("--evaluate: no checkpoint %s-NNNN.params" % args.model_prefix)
        cfg = dataclasses.replace(cfg, load_epoch=last or None)
        _LOG.info("resuming from %s-%04d" % (args.model_prefix, last) if last
                  else "no checkpoint of %s yet: starting afresh" % args.model_prefix)
    if args.evaluate:
        net = build_network(args, pretrained=False)
        load_checkpoint_params(net, args.model_prefix, cfg.load_epoch)
    else:
        net = _train(args, cfg, make_train, make_val, kv)
    results = {"multi_crop": evaluate_multicrop(net, make_multi, net.classes),
               "one_crop": dict(evaluate(net, make_val(), _metrics(net.classes, 5)))}
    for kind, metrics in results.items():
        for name, value in metrics.items():
            _LOG.info("Final %s-%s=%f", kind, name, value)
    return net, results


def _train(args, cfg, make_train, make_val, kv):
    start = cfg.load_epoch or 0
    stage1 = args.two_stage
    if stage1 is not None and start < stage1:
        # stage 1: the classifier only (every child of features frozen)
        net = build_network(args, freeze=_children(get_model(args.model, **_options(args))))
        _LOG.info("stage 1: classifier only, epochs %d..%d", start + 1, stage1)
        fit(net, make_train, make_val, dataclasses.replace(cfg, num_epochs=stage1),
            classes=net.classes, kvstore=kv)
        start = stage1
        cfg = dataclasses.replace(cfg, load_epoch=stage1)
    if stage1 is not None:
        _LOG.info("stage 2: every layer, epochs %d..%d", start + 1, cfg.num_epochs)
        net = build_network(args, pretrained=False)  # weights: the checkpoint's
    else:
        net = build_network(args, pretrained=not cfg.load_epoch)
    fit(net, make_train, make_val, cfg, classes=net.classes, kvstore=kv)
    return net
