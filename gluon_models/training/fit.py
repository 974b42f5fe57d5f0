"""``fit``: train a Gluon network with ``mx.mod.Module`` and resume it exactly.

The network's symbol (plus the softmax head and declared extra losses) runs in a Module that
starts from the block's initialised parameters. Each epoch's randomness (data order,
augmentation, dropout masks) is seeded from ``(seed, epoch)`` and each epoch ends with an
atomic checkpoint holding the weights, the optimizer states and the update count, so a run
resumed from epoch N (``load_epoch=N``) ends with the weights of an uninterrupted run.

``retrain=True`` (the IBN seed's ``--retrain``) is the other way to start from a checkpoint:
only its weights are taken, and the run is a new one: epochs count from 0, the update count,
the lr schedule (from ``lr``) and the optimizer states (momentum) restart.
"""
import argparse
import dataclasses
import logging
import math
import os
import random
import time
from typing import Optional, Sequence

import numpy as np
import mxnet as mx

from ..utils.argtypes import (file_prefix, fraction, non_negative_float, non_negative_int,
                              positive_float, positive_int)
from ..utils.checkpoint import (load_checkpoint, load_optimizer_states, read_params,
                                save_checkpoint)
from .heads import extra_loss_metric, training_symbol
from .optimizers import TorchSGD  # noqa: F401  (registers torch_sgd)
from .schedules import SCHEDULES, make_lr_scheduler

__all__ = ["FitConfig", "fit", "evaluate", "add_fit_args", "contexts", "make_optimizer",
           "make_kvstore", "warmup_of", "lr_multipliers", "KVSTORES", "TrainingDiverged"]

_LOG = logging.getLogger(__name__)
KVSTORES = ("local", "device", "dist_sync", "dist_device_sync", "dist_async")
OPTIMIZERS = ("sgd", "nag", "torch_sgd")


class TrainingDiverged(ValueError):
    """The training loss or the weights became NaN or infinite (too high an lr or weight
    decay, no gradient clipping). A ValueError, so the tools report it as an error and exit
    with a non-zero status; no checkpoint is written after the divergence."""


def _check_finite(epoch, nbatch, *metrics):
    """Raise :class:`TrainingDiverged` when a running training metric (the cross-entropy of
    the outputs, an extra loss) is no longer finite. The metrics have already read the batch's
    outputs into numpy, so this check costs no device synchronisation; the running sums stay
    NaN/inf once one batch was, so the first bad batch is reported."""
    for metric in metrics:
        for name, value in metric.get_name_value():
            if not math.isfinite(value):
                raise TrainingDiverged(
                    "training diverged: Train-%s is %s at epoch %d batch %d; lower --lr or "
                    "--wd, or set --clip-gradient" % (name, value, epoch, nbatch))


def _check_finite_params(mod, epoch, prefix):
    """Raise :class:`TrainingDiverged` unless every parameter is finite, before the epoch's
    checkpoint is written: the losses the metrics saw come before the epoch's last update,
    and BatchNorm can keep the outputs finite while its running statistics overflow. A NaN
    checkpoint must never follow the finite one a run would be resumed from."""
    # Let the epoch's last updates finish before the parameters are copied out: copying
    # them while BatchNorm's running statistics are still being written made an exact
    # resume differ in the running means (seen in tests/training/test_fit.py)
    mx.nd.waitall()
    arg, aux = mod.get_params()
    bad = sorted(n for n, a in list(arg.items()) + list(aux.items())
                 if not np.isfinite(a.asnumpy()).all())
    if bad:
        raise TrainingDiverged(
            "training diverged: parameter(s) %s are not finite at the end of epoch %d; "
            "checkpoint %s-%04d not saved; lower --lr or --wd, or set --clip-gradient"
            % (", ".join(bad[:5]) + (", ..." if len(bad) > 5 else ""), epoch, prefix,
               epoch + 1))


@dataclasses.dataclass
class FitConfig:
    """Options of :func:`fit` (the command-line flags of :func:`add_fit_args`)."""
    num_epochs: int = 10
    num_examples: Optional[int] = None   # training-set size; default: counted by one pass
    optimizer: str = "sgd"
    lr: float = 0.1
    mom: float = 0.9
    wd: float = 1e-4
    wd_rule: str = "all"                 # seeds decay every parameter; "weights": MXNet's rule
    lr_schedule: str = "step"
    lr_step_epochs: Sequence[float] = ()
    lr_factor: float = 0.1
    lr_log: Sequence[float] = ()         # the log schedule's exponents (p1, p2)
    warmup_epochs: float = 0.0
    warmup_lr: float = 0.0
    rules: Sequence = ()                 # OptimizerRule objects (a family's recipe)
    clip_gradient: Optional[float] = None
    label_smoothing: float = 0.0
    kv_store: str = "device"
    gpus: str = ""
    model_prefix: Optional[str] = None
    load_epoch: Optional[int] = None
    load_prefix: Optional[str] = None    # checkpoint to start from; default: model_prefix
    retrain: bool = False                # take only the weights of load_epoch (see module doc)
    disp_batches: int = 50
    top_k: int = 5
    seed: int = 0

    @classmethod
    def from_args(cls, args):
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in vars(args).items() if k in names})


def contexts(gpus):
    """``"0,1"`` -> ``[mx.gpu(0), mx.gpu(1)]``; ``""`` -> ``[mx.cpu()]``; a clear error when
    this MXNet has no CUDA or the ids do not exist."""
    if gpus is None or str(gpus).strip() == "":
        return [mx.cpu()]
    try:
        ids = [int(g) for g in str(gpus).split(",") if g.strip() != ""]
    except ValueError:
        raise ValueError("--gpus must be a comma-separated list of GPU ids, got %r" % gpus)
    available = mx.context.num_gpus()
    if available == 0:
        raise ValueError("--gpus %s requested, but this MXNet build has no CUDA support or "
                         "no GPU is visible (mx.context.num_gpus() == 0); leave --gpus empty "
                         "to train on the CPU" % gpus)
    bad = [i for i in ids if i < 0 or i >= available]
    if bad:
        raise ValueError("--gpus %s: GPU id(s) %s do not exist (%d visible)"
                         % (gpus, bad, available))
    return [mx.gpu(i) for i in ids]


def make_kvstore(kind, num_devices=1):
    """A KVStore for distributed or multi-device training, else the name (Module then
    updates locally)."""
    if kind not in KVSTORES:
        raise ValueError("kv_store must be one of %s, got %r" % (KVSTORES, kind))
    return mx.kv.create(kind) if "dist" in kind or num_devices > 1 else kind


def warmup_of(cfg):
    """``(warmup_epochs, warmup_begin_lr)`` of ``cfg``: its own warm-up, or the one a rule of
    ``cfg.rules`` asks for (e.g. FBN's slow start); two warm-ups are an error. Schedules count
    absolute updates, so a warm-up is right after a resume too."""
    asked = [(r, w) for r, w in ((r, r.warmup(cfg)) for r in cfg.rules) if w is not None]
    if not asked:
        return cfg.warmup_epochs, cfg.warmup_lr
    if len(asked) > 1 or cfg.warmup_epochs:
        raise ValueError("more than one warm-up is requested (%s); give one"
                         % ", ".join(["--warmup-epochs"] * bool(cfg.warmup_epochs)
                                     + [type(r).__name__ for r, _ in asked]))
    return asked[0][1]


def lr_multipliers(cfg, net):
    """``{name: lr_mult}`` of the learnable parameters of ``net``: the blocks' own
    ``lr_mult``, adjusted by every rule of ``cfg.rules``."""
    mult = {p.name: p.lr_mult for p in net.collect_params().values() if p.grad_req != "null"}
    for rule in cfg.rules:
        rule.lr_mult(net, mult)
    return mult


def make_optimizer(cfg, net, rescale_grad, epoch_size, begin_num_update=0):
    """SGD or NAG with the seeds' weight-decay rule and the blocks' lr/wd multipliers.

    ``wd_rule="all"`` decays every learnable parameter (BN gamma/beta and biases too), as the
    IGC and FBN seeds do; ``"weights"`` follows MXNet's default (only ``*_weight`` and
    ``*_gamma``). MXNet 1.9.1's ``nag`` keeps the lr inside the momentum buffer, which equals
    the seeds' NAG while the lr is constant (spec igc.md 3.1). The warm-up and the lr
    multipliers follow :func:`warmup_of` and :func:`lr_multipliers` (the rules in
    ``cfg.rules``). Frozen parameters (``grad_req='null'``) are not the optimizer's: ``fit``
    binds them as fixed, so neither their gradient nor their weight decay moves them.
    """
    if cfg.optimizer not in OPTIMIZERS:
        raise ValueError("optimizer must be one of %s, got %r" % (OPTIMIZERS, cfg.optimizer))
    if cfg.wd_rule not in ("all", "weights"):
        raise ValueError("wd_rule must be 'all' or 'weights', got %r" % cfg.wd_rule)
    warmup_epochs, warmup_lr = warmup_of(cfg)
    scheduler = make_lr_scheduler(cfg.lr, epoch_size, cfg.num_epochs, cfg.lr_schedule,
                                  cfg.lr_step_epochs, cfg.lr_factor, warmup_epochs, warmup_lr,
                                  log_range=cfg.lr_log)
    kwargs = dict(learning_rate=cfg.lr, momentum=cfg.mom, wd=cfg.wd, rescale_grad=rescale_grad,
                  lr_scheduler=scheduler, begin_num_update=begin_num_update)
    if cfg.clip_gradient:
        kwargs["clip_gradient"] = cfg.clip_gradient
    opt = mx.optimizer.create(cfg.optimizer, **kwargs)
    params = {p.name: p for p in net.collect_params().values() if p.grad_req != "null"}
    opt.set_lr_mult(lr_multipliers(cfg, net))
    wd_mult = {}
    for n, p in params.items():
        decayed = cfg.wd_rule == "all" or n.endswith("_weight") or n.endswith("_gamma")
        wd_mult[n] = p.wd_mult if decayed else 0.0
    opt.set_wd_mult(wd_mult)
    return opt


def _seed(seed, epoch):
    """Seed every RNG an epoch uses (data order, augmentation, dropout) from (seed, epoch)."""
    s = (seed * 100003 + epoch) % (2 ** 31)
    random.seed(s)
    np.random.seed(s)
    mx.random.seed(s)
    return s


def _metrics(classes, top_k):
    ms = [mx.metric.Accuracy(name="accuracy")]
    if top_k and 1 < top_k < classes:
        ms.append(mx.metric.TopKAccuracy(top_k=top_k, name="top_k_accuracy"))  # adds _<k>
    ms.append(mx.metric.CrossEntropy(name="cross-entropy"))
    return mx.metric.CompositeEvalMetric(ms)


def evaluate(model, data, metric, extra=None):
    """Metrics of ``model`` over exactly the samples of ``data``: the ``pad`` rows that fill
    the last batch are dropped (use a freshly created iterator, or one that rebuilds itself on
    reset; see platform.md section 7).

    ``model`` is a bound Module with a softmax head, a Gluon block returning logits, or any
    other callable mapping a batch's data array to class probabilities (e.g.
    :class:`~gluon_models.training.evaluation.CropAverage`).

    ``extra`` (a Module's only): the metric of the extra losses of its training symbol
    (:func:`~gluon_models.training.heads.extra_loss_metric`), updated with all the Module's
    outputs in inference mode (e.g. a balance loss without the training noise); its values
    follow the others. A per-sample loss drops the ``pad`` rows; a whole-batch loss is the
    value of each batch as fed, a last batch's wrap-around rows included."""
    metric.reset()
    if extra is not None:
        extra.reset()
    for batch in data:
        outs = None
        if isinstance(model, mx.module.BaseModule):
            model.forward(batch, is_train=False)
            outs = model.get_outputs()
            out = outs[0]
        elif isinstance(model, mx.gluon.Block):  # record iterators hand out cpu_pinned arrays
            ctx = next(iter(model.collect_params().values())).list_ctx()[0]
            out = mx.nd.softmax(model(batch.data[0].as_in_context(ctx)))  # logits -> probs
        else:
            out = model(batch.data[0])
        rows = batch.data[0].shape[0]
        keep = rows - (batch.pad or 0)
        metric.update([batch.label[0][:keep]], [out[:keep]])
        if extra is not None and outs is not None:
            extra.update([label[:keep] for label in batch.label],
                         [o[:keep] if o.shape[0] == rows else o for o in outs])
    values = metric.get_name_value()
    return values + extra.get_name_value() if extra is not None else values


def _as_factory(data):
    if data is None or callable(data):
        return data

    def reuse(_epoch=None):
        data.reset()
        return data
    return reuse


def _count_samples(make_train):
    n = 0
    for batch in make_train(0):
        n += batch.data[0].shape[0] - (batch.pad or 0)
    return n


def fit(net, train_data, val_data=None, cfg=None, classes=None, kvstore=None, **overrides):
    """Train ``net`` (an initialised HybridBlock) with a Module; returns the Module.

    Parameters
    ----------
    net : HybridBlock
        The network, its parameters initialised (shapes known).
    train_data, val_data : callable or DataIter
        Preferably factories ``train_data(epoch) -> DataIter`` and ``val_data() -> DataIter``
        that create a fresh iterator seeded for that epoch: then resuming is exact and the
        evaluation counts every sample once. A plain DataIter is reset and reused.
    cfg : FitConfig
        Options; keyword ``overrides`` replace fields of it.
    classes : int, optional
        Number of classes (for the top-k metric); default: the output width of ``net``.
    kvstore : mx.kv.KVStore, optional
        An existing store (the caller made it to shard the data by its rank); default: one
        created from ``cfg.kv_store``.
    """
    cfg = dataclasses.replace(cfg or FitConfig(), **overrides)
    _check_start(cfg)
    make_train, make_val = _as_factory(train_data), _as_factory(val_data)
    ctx = contexts(cfg.gpus)
    kv = kvstore if kvstore is not None else make_kvstore(cfg.kv_store, len(ctx))
    rank, workers = (kv.rank, kv.num_workers) if isinstance(kv, mx.kv.KVStore) else (0, 1)
    kv_type = kv.type if isinstance(kv, mx.kv.KVStore) else str(kv)

    symbol = training_symbol(net, cfg.label_smoothing)
    _seed(cfg.seed, 0)
    first = make_train(0)
    batch_size = first.provide_data[0].shape[0]
    num_examples = cfg.num_examples or _count_samples(make_train)
    epoch_size = max(1, -(-num_examples // batch_size))  # batches per epoch (last one padded)
    if classes is None:  # the width of the logits, from the graph
        classes = _output_width(net, first.provide_data[0].shape)

    params = {p.name: p for p in net.collect_params().values()}
    arg_names, aux_names = symbol.list_arguments(), symbol.list_auxiliary_states()
    arg_params = {n: params[n].data() for n in arg_names if n in params}
    aux_params = {n: params[n].data() for n in aux_names if n in params}
    begin_epoch, num_update, states = 0, 0, None
    if cfg.load_epoch:
        arg_params, aux_params, states, begin_epoch, num_update = _load_start(
            cfg, arg_names, aux_names, epoch_size)

    label_names = [n for n in arg_names if n.endswith("label")]
    # Frozen parameters (grad_req 'null', e.g. a fine-tuned network's stem) must not train:
    # Module computes no gradient for fixed parameters and its optimizer never updates them.
    fixed = [p.name for p in net.collect_params().values()
             if p.grad_req == "null" and p.name in arg_names]
    mod = mx.mod.Module(symbol, data_names=["data"], label_names=label_names, context=ctx,
                        logger=_LOG, fixed_param_names=fixed)
    mod.bind(data_shapes=first.provide_data, label_shapes=first.provide_label,
             for_training=True)
    mod.init_params(arg_params=arg_params, aux_params=aux_params, allow_missing=False)
    sync_workers = workers if "_sync" in kv_type else 1
    opt = make_optimizer(cfg, net, 1.0 / (batch_size * sync_workers), epoch_size, num_update)
    mod.init_optimizer(kvstore=kv, optimizer=opt)
    if states is not None:  # not mod.load_optimizer_states: it unpickles the file unchecked
        load_optimizer_states(mod, states)
    elif cfg.load_epoch and not cfg.retrain:
        _LOG.warning("no optimizer states for epoch %d: momentum restarts from zero",
                     cfg.load_epoch)

    metric = _metrics(classes or 0, cfg.top_k)
    extra_metric = extra_loss_metric(symbol)  # the epoch mean of each extra loss
    speedometer = mx.callback.Speedometer(batch_size, cfg.disp_batches, auto_reset=False)
    for epoch in range(begin_epoch, cfg.num_epochs):
        _seed(cfg.seed, epoch)
        data = first if epoch == 0 and first is not None else make_train(epoch)
        first = None
        if workers > 1 and "_sync" in kv_type:
            # Every worker must make the same number of updates: a worker whose shard yields
            # one batch more would wait forever in its last push for the others.
            data = mx.io.ResizeIter(data, epoch_size, reset_internal=False)
        tic = time.time()
        metric.reset()
        extra_metric.reset()
        for nbatch, batch in enumerate(data):
            mod.forward_backward(batch)
            mod.update()
            num_update += 1
            metric.update(batch.label[:1], mod.get_outputs()[:1])
            extra_metric.update(batch.label, mod.get_outputs())
            _check_finite(epoch, nbatch, metric, extra_metric)
            speedometer(mx.model.BatchEndParam(epoch=epoch, nbatch=nbatch, eval_metric=metric,
                                               locals=None))
        for name, value in metric.get_name_value() + extra_metric.get_name_value():
            _LOG.info("Epoch[%d] Train-%s=%f", epoch, name, value)
        _LOG.info("Epoch[%d] Time cost=%.3f", epoch, time.time() - tic)
        if cfg.model_prefix and rank == 0:
            _check_finite_params(mod, epoch, cfg.model_prefix)
            # Under dist_* kvstores the optimizer runs on the servers, whose states MXNet
            # cannot save: those checkpoints have weights only (a resume restarts momentum).
            save_checkpoint(mod, cfg.model_prefix, epoch + 1, symbol,
                            meta={"num_update": num_update}, states="dist" not in kv_type)
            _LOG.info('Saved checkpoint to "%s-%04d.params"', cfg.model_prefix, epoch + 1)
        if make_val is not None:
            for name, value in evaluate(mod, make_val(), metric, extra_metric):
                _LOG.info("Epoch[%d] Validation-%s=%f", epoch, name, value)
    _copy_back(net, *mod.get_params())
    return mod


def _output_width(net, data_shape):
    out = net(mx.sym.var("data"))
    out = out[0] if isinstance(out, (list, tuple)) else out
    _, shapes, _ = out.infer_shape(data=data_shape)
    return shapes[0][-1]


def _load_start(cfg, arg_names, aux_names, epoch_size):
    """Weights (and for a resume, optimizer states and counters) of the starting checkpoint:
    ``(arg, aux, states_file, begin_epoch, num_update)``."""
    prefix = cfg.load_prefix or cfg.model_prefix
    if not prefix:
        raise ValueError("load_epoch %d needs the checkpoint prefix (--model-prefix or "
                         "--load-prefix)" % cfg.load_epoch)
    sym, arg, aux, states = load_checkpoint(prefix, cfg.load_epoch)
    if sym.list_arguments() != arg_names or sym.list_auxiliary_states() != aux_names:
        raise ValueError("checkpoint %s-%04d was made by a different network (its "
                         "arguments differ from this one's)" % (prefix, cfg.load_epoch))
    if cfg.retrain:
        _LOG.info("Retraining from the weights of %s-%04d: epochs, updates, the lr schedule "
                  "(lr %g) and the optimizer states start again", prefix, cfg.load_epoch,
                  cfg.lr)
        return arg, aux, None, 0, 0
    _, _, meta = read_params("%s-%04d.params" % (prefix, cfg.load_epoch))
    num_update = int(meta["num_update"].asscalar()) if "num_update" in meta \
        else cfg.load_epoch * epoch_size
    _LOG.info("Resuming from %s-%04d (update %d)", prefix, cfg.load_epoch, num_update)
    return arg, aux, states, cfg.load_epoch, num_update


def _check_start(cfg):
    if cfg.retrain and not cfg.load_epoch:
        raise ValueError("retrain needs load_epoch (--load-epoch N): the checkpoint whose "
                         "weights start the new run")
    if cfg.retrain and cfg.model_prefix and os.path.abspath(cfg.model_prefix) == \
            os.path.abspath(cfg.load_prefix or cfg.model_prefix):
        raise ValueError("retrain counts epochs from 0 again and would overwrite the "
                         "checkpoints %s-NNNN it starts from; give the new run another "
                         "--model-prefix and the old one as --load-prefix" % cfg.model_prefix)


def _copy_back(net, arg, aux):
    """Put the trained values back into the Gluon block."""
    for p in net.collect_params().values():
        src = arg.get(p.name, aux.get(p.name))
        if src is not None:
            p.set_data(src)


def _floats(text):
    """``"30,60,90"`` -> ``[30.0, 60.0, 90.0]``: epochs, so each finite and >= 0."""
    return [non_negative_float(t) for t in str(text).split(",") if t.strip()]


def _exponents(text):
    """``"-2,-4"`` -> ``[-2.0, -4.0]``: the two exponents of the log schedule."""
    try:
        values = [float(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        values = []
    if len(values) != 2 or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError("expected two exponents P1,P2, got %r" % (text,))
    return values


def add_fit_args(parser):
    """The training argument group (names of the seeds' scripts kept as aliases)."""
    g = parser.add_argument_group("Training", "optimisation, schedule, devices, checkpoints")
    g.add_argument("--gpus", default="", help="GPU ids, e.g. 0,1; empty: CPU")
    g.add_argument("--kv-store", default="device", choices=KVSTORES, help="key-value store")
    g.add_argument("--num-epochs", "--num-epoches", dest="num_epochs", type=positive_int,
                   default=10, help="epochs to train")
    g.add_argument("--num-examples", type=positive_int, default=None,
                   help="training-set size (default: from the data)")
    g.add_argument("--optimizer", default="sgd", choices=OPTIMIZERS,
                   help="sgd, nag, or torch_sgd (momentum in PyTorch's form)")
    g.add_argument("--lr", type=non_negative_float, default=0.1, help="base learning rate")
    g.add_argument("--lr-schedule", default="step", choices=SCHEDULES, help="lr schedule")
    g.add_argument("--lr-step-epochs", "--lr-step", "--lr-steps", dest="lr_step_epochs",
                   type=_floats, default=[], help="epochs at which the lr is multiplied by "
                   "--lr-factor, comma separated")
    g.add_argument("--lr-factor", type=positive_float, default=0.1, help="lr decay factor")
    g.add_argument("--lr-log", type=_exponents, default=[], metavar="P1,P2",
                   help="--lr-schedule log: epoch e trains with logspace(P1, P2, epochs)[e]")
    g.add_argument("--warmup-epochs", type=non_negative_float, default=0.0,
                   help="linear lr warm-up length in epochs")
    g.add_argument("--warmup-lr", type=non_negative_float, default=0.0,
                   help="lr at the start of warm-up")
    g.add_argument("--mom", type=fraction, default=0.9, help="momentum, in [0, 1)")
    g.add_argument("--wd", type=non_negative_float, default=1e-4, help="weight decay")
    g.add_argument("--wd-rule", default="all", choices=("all", "weights"),
                   help="decay all parameters (seeds) or only *_weight/*_gamma (MXNet)")
    g.add_argument("--clip-gradient", type=non_negative_float, default=None,
                   help="element-wise clip (0: none)")
    g.add_argument("--label-smoothing", type=fraction, default=0.0, help="label smoothing")
    g.add_argument("--model-prefix", type=file_prefix, default=None, help="checkpoint prefix")
    g.add_argument("--load-epoch", "--model-load-epoch", dest="load_epoch", type=non_negative_int,
                   default=None, help="resume exactly from the checkpoint of this epoch (0: "
                   "start afresh)")
    g.add_argument("--load-prefix", "--model-load-prefix", dest="load_prefix", type=file_prefix,
                   default=None,
                   help="prefix of the checkpoint to start from; default: --model-prefix")
    g.add_argument("--retrain", action="store_true",
                   help="take only the weights of --load-epoch and start a new run: epochs, "
                        "lr schedule (from --lr) and momentum restart (IBN seed)")
    g.add_argument("--disp-batches", "--frequent", "--log-iters", dest="disp_batches",
                   type=positive_int, default=50, help="batches between progress lines")
    g.add_argument("--top-k", type=non_negative_int, default=5,
                   help="also report top-k accuracy (0: not)")
    g.add_argument("--seed", type=non_negative_int, default=0,
                   help="random seed of the initialisation, the data order, the augmentation "
                        "and dropout")
    from ..model_zoo.registry import families  # the registry imports no training code
    for fam in families():  # each family's own training flags (its authors' recipe)
        for dest, kwargs in fam.train_flags.items():
            g.add_argument("--" + dest.replace("_", "-"), dest=dest,
                           **dict(kwargs, help="%s: %s" % (fam.name.upper(),
                                                           kwargs.get("help", ""))))
    return g
