"""Checkpoints in MXNet's standard layout, written atomically.

``prefix-symbol.json``, ``prefix-NNNN.params`` (``arg:``/``aux:`` names, loadable with
``mx.model.load_checkpoint``) and ``prefix-NNNN.states`` (optimizer states). Each file is
written to a temporary name and renamed; the states are written before the params, so an
existing ``.params`` marks a complete checkpoint.
"""
import glob
import os
import re

import mxnet as mx

from .fileio import atomic_write

__all__ = ["save_checkpoint", "save_params", "load_checkpoint", "read_params",
           "last_complete_epoch"]


def _param_file(prefix, epoch):
    return "%s-%04d.params" % (prefix, epoch)


def _states_file(prefix, epoch):
    return "%s-%04d.states" % (prefix, epoch)


def save_checkpoint(module, prefix, epoch, symbol=None, meta=None, states=True):
    """Write the symbol, the optimizer states (unless ``states=False``) and the parameters of
    ``module``.

    ``meta`` (name -> number, e.g. the update count) is stored in the params file under
    ``meta:<name>``, which ``mx.model.load_checkpoint`` ignores.
    """
    symbol = module.symbol if symbol is None else symbol
    atomic_write("%s-symbol.json" % prefix, symbol.save)
    if states and module.optimizer_initialized:
        atomic_write(_states_file(prefix, epoch), module.save_optimizer_states)
    save_params(module, _param_file(prefix, epoch), meta)


def save_params(module, path, meta=None):
    """Write the parameters of ``module`` to ``path`` atomically, in the layout of a
    checkpoint's params file (``arg:``/``aux:`` names, ``meta:<name>`` numbers)."""
    arg, aux = module.get_params()
    blob = {"arg:%s" % k: v.as_in_context(mx.cpu()) for k, v in arg.items()}
    blob.update({"aux:%s" % k: v.as_in_context(mx.cpu()) for k, v in aux.items()})
    blob.update({"meta:%s" % k: mx.nd.array([v], dtype="float64") for k, v in (meta or {}).items()})
    atomic_write(path, lambda tmp: mx.nd.save(tmp, blob))


def read_params(path):
    """``(arg, aux, meta)`` dicts of a checkpoint/export params file (keys ``arg:<name>``,
    ``aux:<name>``, ``meta:<name>``); errors name the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError("checkpoint parameter file %s does not exist" % path)
    try:
        blob = mx.nd.load(path)
    except mx.base.MXNetError as err:
        raise ValueError("cannot read checkpoint parameter file %s: %s" % (path, err)) from err
    if not isinstance(blob, dict):
        raise ValueError("%s holds an unnamed list of arrays, not a checkpoint" % path)
    parts = {"arg": {}, "aux": {}, "meta": {}}
    for key, value in blob.items():
        kind, sep, name = key.partition(":")
        if not sep or kind not in parts:
            raise ValueError("%s is not a Module/export checkpoint: key %r has no 'arg:' or "
                             "'aux:' prefix (a file written by save_parameters loads with "
                             "params=...)" % (path, key))
        parts[kind][name] = value
    return parts["arg"], parts["aux"], parts["meta"]


def load_checkpoint(prefix, epoch):
    """``(symbol, arg_params, aux_params, states_file or None)``; errors name the file."""
    sym_file, param_file = "%s-symbol.json" % prefix, _param_file(prefix, epoch)
    for f in (param_file, sym_file):
        if not os.path.exists(f):
            raise FileNotFoundError("checkpoint file %s does not exist (complete epochs: %s)"
                                    % (f, _complete_epochs(prefix) or "none"))
    try:
        symbol = mx.sym.load(sym_file)
    except mx.base.MXNetError as err:
        raise ValueError("cannot read checkpoint symbol %s: %s" % (sym_file, err)) from err
    arg, aux, _ = read_params(param_file)
    states = _states_file(prefix, epoch)
    return symbol, arg, aux, (states if os.path.exists(states) else None)


def _complete_epochs(prefix):
    pattern = re.compile(re.escape(os.path.basename(prefix)) + r"-(\d{4})\.params$")
    epochs = []
    for f in glob.glob(glob.escape(prefix) + "-*.params"):
        m = pattern.match(os.path.basename(f))
        if m:
            epochs.append(int(m.group(1)))
    return sorted(epochs)


def last_complete_epoch(prefix):
    """The last epoch with a complete checkpoint, or None."""
    epochs = _complete_epochs(prefix)
    return epochs[-1] if epochs else None
