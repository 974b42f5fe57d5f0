"""Top-1 / top-5 accuracy of a trained classifier on ImageNet-style records (``tools/evaluate.py``).

The network comes from a training checkpoint (``prefix-symbol.json`` + ``prefix-NNNN.params``
as :func:`~gluon_models.training.fit` writes them), an export (``HybridBlock.export``), or a
registered model with a Gluon ``.params`` file or a checkpoint's weights.

* Single crop: the validation pipeline of training (shorter side resized, centre crop), the
  C++ ``ImageRecordIter`` built afresh for the evaluation, its ``pad`` rows dropped.
* Ten crops: the four corners and the centre of the resized image, and their mirror images
  (gluoncv's ``ten_crop``); the softmax outputs of the ten are averaged. Decoded in Python
  (``ImageRecordDataset`` + ``DataLoader``, whose last batch is simply short), so every image
  counts once.

Both use the metrics of training (``accuracy``, ``top_k_accuracy_5``, ``cross-entropy``) and
:func:`~gluon_models.training.fit.evaluate`.
"""
import argparse
import logging
import os

import mxnet as mx
import numpy as np
from gluoncv.data.transforms.image import ten_crop

from ..data.imagenet import (add_imagenet_aug_args, add_imagenet_data_args,
                             default_val_resize, imagenet_val_iter, rec_files, resolve_norm)
from ..model_zoo import add_model_args, model_options_from_args
from ..utils.argtypes import non_negative_int
from ..utils.export import build_model, load_exported, load_training_checkpoint
from .fit import _metrics, contexts, evaluate
from .runner import parse_imagenet_args

__all__ = ["CROPS", "load_classifier", "CropAverage", "TenCropData", "evaluate_classifier",
           "evaluate_parser", "parse_evaluate_args", "run_evaluation"]

_LOG = logging.getLogger(__name__)

CROPS = (1, 10)


def load_classifier(checkpoint=None, epoch=0, export=None, model=None, params=None,
                    options=None, ctx=None):
    """A Gluon block returning logits, from exactly one source.

    Parameters
    ----------
    checkpoint : str, optional
        Prefix of a training checkpoint. Alone: its own symbol is used; with ``model``: its
        weights are loaded into the registered model.
    epoch : int
        Epoch of ``checkpoint`` / ``export``.
    export : str, optional
        Prefix of an export (``-symbol.json`` + ``-%04d.params``).
    model : str, optional
        Registered model name, built with ``options``; weights from ``params`` (a Gluon
        ``save_parameters`` file) or ``checkpoint``.
    """
    ctx = mx.cpu() if ctx is None else ctx
    if export is not None:
        if checkpoint is not None or model is not None or params is not None:
            raise ValueError("give an export alone, not with a checkpoint, model or params")
        return load_exported(export, epoch, ctx)
    if model is not None:
        if params is None and checkpoint is None:
            raise ValueError("model %s needs its weights: params=FILE or checkpoint=PREFIX"
                             % model)
        return build_model(model, params=params,
                           checkpoint=None if checkpoint is None else (checkpoint, epoch),
                           ctx=ctx, **dict(options or {}))
    if params is not None:
        raise ValueError("params=FILE needs the model it belongs to (model=NAME)")
    if checkpoint is None:
        raise ValueError("nothing to evaluate: give a checkpoint, an export or a model")
    return load_training_checkpoint(checkpoint, epoch, ctx)


class CropAverage:
    """Class probabilities of a batch of crop stacks: ``(B, K, 3, S, S)`` -> ``(B, classes)``,
    the softmax of ``net`` averaged over the ``K`` crops (``average="probs"``), or the softmax
    of its logits averaged over them (``"logits"``: the fast MPN-COV evaluation, spec
    mpncov.md §5.6)."""

    def __init__(self, net, ctx=None, average="probs"):
        if average not in ("probs", "logits"):
            raise ValueError("average must be 'probs' or 'logits', got %r" % (average,))
        self.net, self.average = net, average
        self.ctx = ctx or next(iter(net.collect_params().values())).list_ctx()[0]

    def logits(self, x):
        """The ``(B, K, classes)`` logits of every crop."""
        b, k = x.shape[:2]
        return self.net(x.reshape((b * k,) + x.shape[2:]).as_in_context(self.ctx)).reshape(
            (b, k, -1))

    def __call__(self, x):
        logits = self.logits(x)
        if self.average == "logits":
            return mx.nd.softmax(logits.mean(axis=1))
        return mx.nd.softmax(logits, axis=-1).mean(axis=1)


class _TenCrops:
    """Dataset transform: HWC uint8 image -> (10, 3, S, S) normalised float32 crops."""

    def __init__(self, size, resize, mean_rgb, std_rgb):
        self.size, self.resize = size, resize
        self.mean = mx.nd.array(mean_rgb).reshape((1, 3, 1, 1))
        self.std = mx.nd.array(std_rgb).reshape((1, 3, 1, 1))

    def __call__(self, img, label):
        if self.resize:  # bilinear, as ImageRecordIter's default inter_method
            img = mx.image.resize_short(img, self.resize, interp=1)
        crops = ten_crop(img, (self.size, self.size)).astype("float32").transpose((0, 3, 1, 2))
        return (crops - self.mean) / self.std, np.float32(label)


class TenCropData:
    """Batches of ten-crop stacks of every record of ``rec``, in file order; the last batch is
    short rather than padded. Iterable any number of times (each pass reads the file anew).

    ``data[0]`` of a batch is ``(B, 10, 3, S, S)``: centre, top-left, bottom-left, top-right,
    bottom-right, then the same five mirrored."""

    def __init__(self, rec, batch_size, data_shape=224, resize=None, norm="imagenet", mean_rgb=None,
                 std_rgb=None, num_workers=0):
        rec, _ = rec_files(None, rec)
        r = resolve_norm(norm, mean_rgb, std_rgb)
        resize = default_val_resize(data_shape) if resize is None else int(resize)
        dataset = mx.gluon.data.vision.ImageRecordDataset(rec).transform(
            _TenCrops(data_shape, resize, r["mean_rgb"], r["std_rgb"]))
        self.loader = mx.gluon.data.DataLoader(dataset, batch_size, shuffle=False,
                                               last_batch="keep", num_workers=num_workers)

    def __iter__(self):
        for x, y in self.loader:
            yield mx.io.DataBatch([x], [y], pad=0)


def evaluate_classifier(net, rec, crops=1, batch_size=50, data_shape=224, resize=None,
                        norm="imagenet", mean_rgb=None, std_rgb=None, preprocess_threads=4,
                        top_k=5):
    """Metrics of ``net`` (a block returning logits) on every image of ``rec`` (with its
    ``.idx``): ``{'accuracy', 'top_k_accuracy_<k>', 'cross-entropy', 'samples'}``.

    ``crops`` is 1 (centre crop) or 10 (ten crops, softmax averaged); ``resize`` is the shorter
    side before cropping (None: ``data_shape * 256 / 224``; 0: as stored)."""
    if crops not in CROPS:
        raise ValueError("crops must be one of %s, got %r" % (CROPS, crops))
    ctx = next(iter(net.collect_params().values())).list_ctx()[0]
    classes = net(mx.nd.zeros((1, 3, data_shape, data_shape), ctx=ctx)).shape[1]
    metric = _metrics(classes, top_k)
    if crops == 1:
        data = imagenet_val_iter(rec, batch_size, data_shape, resize, norm, mean_rgb, std_rgb,
                                 preprocess_threads)
        model = net
    else:
        data = TenCropData(rec, batch_size, data_shape, resize, norm, mean_rgb, std_rgb,
                           num_workers=preprocess_threads)
        model = CropAverage(net, ctx)
    results = dict(evaluate(model, data, metric))
    results["samples"] = metric.metrics[0].num_inst
    return results


# ---- command line -----------------------------------------------------------------------------

def evaluate_parser():
    """The argument parser of ``tools/evaluate.py``."""
    parser = argparse.ArgumentParser(
        description="Top-1/top-5 accuracy of a training checkpoint, an export or a registered "
                    "model on ImageNet-style records, with one centre crop or ten crops.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = parser.add_argument_group("Weights", "what to evaluate (one of --checkpoint, "
                                    "--export, --model with --params or --checkpoint)")
    src.add_argument("--checkpoint", metavar="PREFIX", default=None,
                     help="training checkpoint (PREFIX-symbol.json, PREFIX-NNNN.params); "
                          "with --model, only its weights are used")
    src.add_argument("--export", metavar="PREFIX", default=None,
                     help="export (PREFIX-symbol.json, PREFIX-NNNN.params)")
    src.add_argument("--epoch", type=non_negative_int, default=0,
                     help="epoch of --checkpoint / --export")
    src.add_argument("--params", metavar="FILE", default=None,
                     help="Gluon save_parameters file of --model")
    add_model_args(parser, required=False)
    add_imagenet_data_args(parser, train=False)
    add_imagenet_aug_args(parser, train=False)
    run = parser.add_argument_group("Evaluation")
    run.add_argument("--crops", type=int, default=1, choices=CROPS,
                     help="1: centre crop; 10: corners + centre and their mirrors, softmax "
                          "averaged")
    run.add_argument("--gpus", default="", help="GPU id to evaluate on; empty: CPU")
    run.add_argument("--top-k", type=non_negative_int, default=5, help="also report top-k accuracy")
    parser.set_defaults(batch_size=50)
    return parser


def parse_evaluate_args(argv=None, parser=None):
    """Parse ``tools/evaluate.py``'s arguments with the presets of the training tool."""
    return parse_imagenet_args(argv, parser or evaluate_parser())


def run_evaluation(args):
    """Evaluate as the parsed ``args`` say; returns the metrics dict (see
    :func:`evaluate_classifier`) with the settings used."""
    _LOG.info("arguments: %s", args)
    ctx = contexts(args.gpus)
    if len(ctx) > 1:
        raise ValueError("evaluation runs on one device; give one GPU id, got --gpus %s"
                         % args.gpus)
    options = model_options_from_args(args) if args.model else None
    net = load_classifier(args.checkpoint, args.epoch, args.export, args.model, args.params,
                          options, ctx[0])
    rec = os.path.join(args.data_dir, args.val_rec) if args.data_dir else args.val_rec
    _LOG.info("evaluating %s on %s: %d crop(s) of %d, shorter side %s", args.checkpoint or
              args.export or args.model, rec, args.crops, args.data_shape, args.val_resize)
    results = evaluate_classifier(net, rec, args.crops, args.val_batch_size or args.batch_size,
                                  args.data_shape, args.val_resize, args.norm, args.mean_rgb,
                                  args.std_rgb, args.preprocess_threads, args.top_k)
    results.update(crops=args.crops, data_shape=args.data_shape, resize=args.val_resize,
                   rec=rec)
    for name, value in results.items():
        _LOG.info("%s=%s", name, value)
    return results
