"""Checkpoints in MXNet's standard layout, written atomically and checked when read.

``prefix-symbol.json``, ``prefix-NNNN.params`` (``arg:``/``aux:`` names, loadable with
``mx.model.load_checkpoint``), ``prefix-NNNN.states`` (optimizer states) and
``prefix-NNNN.sha256``, the SHA-256 of the symbol, params and states files in ``sha256sum``
format (``sha256sum -c`` checks it in the checkpoint's folder).

Writing: each file goes to a temporary name and is renamed; an existing ``.params`` of the
epoch is removed first and the new one renamed last, after the states and the checksums, so an
existing ``.params`` marks a complete checkpoint whose checksum file describes it.

Reading: the files are checked against the checksum file before they are used, so a flipped
byte, a truncated file or appended bytes (which ``mx.nd.load`` would accept silently) are
errors naming the file. A checkpoint without a checksum file (an older one, or one written by
plain MXNet) still loads, with a warning that it could not be checked. Optimizer states are
unpickled with :mod:`.safe_pickle`, admitting only what MXNet's optimizer states hold.
"""
import glob
import hashlib
import logging
import os
import re

import mxnet as mx

from . import safe_pickle
from .fileio import atomic_write, file_digest, replace_all, temp_for

__all__ = ["CheckpointError", "save_checkpoint", "save_params", "load_checkpoint",
           "read_params", "load_optimizer_states", "write_checksums", "last_complete_epoch"]

_LOG = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A checkpoint file that is corrupted, truncated, of another network or not a checkpoint
    file at all; the message names the file and what is wrong."""


def _param_file(prefix, epoch):
    return "%s-%04d.params" % (prefix, epoch)


def _states_file(prefix, epoch):
    return "%s-%04d.states" % (prefix, epoch)


def _sums_file(prefix, epoch):
    return "%s-%04d.sha256" % (prefix, epoch)


def _symbol_file(prefix):
    return "%s-symbol.json" % prefix


def save_checkpoint(module, prefix, epoch, symbol=None, meta=None, states=True):
    """Write the symbol, the optimizer states (unless ``states=False``), the parameters of
    ``module`` and the checksum file of the three.

    ``meta`` (name -> number, e.g. the update count) is stored in the params file under
    ``meta:<name>``, which ``mx.model.load_checkpoint`` ignores.
    """
    symbol = module.symbol if symbol is None else symbol
    sym_file = _symbol_file(prefix)
    atomic_write(sym_file, symbol.save)
    sums = [(file_digest(sym_file), sym_file)]
    moves = []
    with temp_for(_states_file(prefix, epoch)) as states_tmp, \
            temp_for(_param_file(prefix, epoch)) as params_tmp, \
            temp_for(_sums_file(prefix, epoch)) as sums_tmp:
        if states and module.optimizer_initialized:
            module.save_optimizer_states(states_tmp)
            sums.append((file_digest(states_tmp), _states_file(prefix, epoch)))
            moves.append((states_tmp, _states_file(prefix, epoch)))
        _save_params_to(module, params_tmp, meta)
        sums.append((file_digest(params_tmp), _param_file(prefix, epoch)))
        _write_sums(sums_tmp, sums)
        # replace_all removes the old .params first and renames the new one last.
        replace_all(moves + [(sums_tmp, _sums_file(prefix, epoch)),
                             (params_tmp, _param_file(prefix, epoch))])


def _write_sums(path, sums):
    with open(path, "w", encoding="utf-8") as f:
        f.writelines("%s  %s\n" % (digest, os.path.basename(name)) for digest, name in sums)


def write_checksums(prefix, epoch, files):
    """Write ``prefix-NNNN.sha256`` for ``files`` (final path -> the file holding its content
    now, e.g. a temporary one) and return its path; for writers of checkpoint-like files
    (exports) that rename them into place themselves."""
    path = _sums_file(prefix, epoch)
    _write_sums(path, [(file_digest(current), final) for final, current in files.items()])
    return path


def _save_params_to(module, path, meta):
    arg, aux = module.get_params()
    blob = {"arg:%s" % k: v.as_in_context(mx.cpu()) for k, v in arg.items()}
    blob.update({"aux:%s" % k: v.as_in_context(mx.cpu()) for k, v in aux.items()})
    blob.update({"meta:%s" % k: mx.nd.array([v], dtype="float64") for k, v in (meta or {}).items()})
    mx.nd.save(path, blob)


def save_params(module, path, meta=None):
    """Write the parameters of ``module`` to ``path`` atomically, in the layout of a
    checkpoint's params file (``arg:``/``aux:`` names, ``meta:<name>`` numbers)."""
    atomic_write(path, lambda tmp: _save_params_to(module, tmp, meta))


# ------------------------------------------------------------------------------------------
# Checksums

_SUM_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")
_EPOCH_FILE = re.compile(r"^(.*)-(\d{4})\.(params|states)$")
_warned_unchecked = set()


def _sums_path_of(path):
    """The checksum file of the checkpoint that ``path`` (a ``-NNNN.params`` or ``.states``
    file) belongs to, or None for a file not named like one."""
    m = _EPOCH_FILE.match(path)
    return "%s-%s.sha256" % (m.group(1), m.group(2)) if m else None


def _recorded_sums(sums_path):
    """``{file name: hex digest}`` of a checksum file; None when there is none."""
    if sums_path is None or not os.path.exists(sums_path):
        return None
    sums = {}
    try:
        with open(sums_path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError("cannot read the checksum file %s: %s" % (sums_path, e)) from None
    for n, line in enumerate(lines, 1):
        m = _SUM_LINE.match(line)
        if not m:
            raise CheckpointError("checksum file %s line %d is not '<sha256>  <file>': %r"
                                  % (sums_path, n, line[:100]))
        sums[m.group(2)] = m.group(1).lower()
    return sums


def _listed(path, sums):
    return sums is not None and os.path.basename(path) in sums


def _check_bytes(path, data, sums, sums_path):
    """Raise CheckpointError when ``data`` (the content of ``path``) differs from what
    ``sums`` recorded; warn once when there is no checksum to compare with."""
    name = os.path.basename(path)
    if sums is None:
        if path not in _warned_unchecked:
            _warned_unchecked.add(path)
            _LOG.warning("%s has no checksum file (%s): written by an older version or by "
                         "plain MXNet, it loads unchecked, so corruption goes unnoticed",
                         path, sums_path or "none for this name")
        return
    if name not in sums:
        raise CheckpointError("%s is not listed in the checksum file %s of its checkpoint "
                              "(a file from another run?)" % (path, sums_path))
    if hashlib.sha256(data).hexdigest() != sums[name]:
        raise CheckpointError("%s is corrupted: its SHA-256 differs from the one recorded in "
                              "%s when it was written (changed, truncated or appended to "
                              "since)" % (path, sums_path))


def _read_checked(path, sums_path=None):
    """The bytes of ``path``, checked against its checkpoint's checksum file."""
    sums_path = sums_path or _sums_path_of(path)
    sums = _recorded_sums(sums_path)
    with open(path, "rb") as f:
        data = f.read()
    _check_bytes(path, data, sums, sums_path)
    return data


# ------------------------------------------------------------------------------------------
# Reading

def read_params(path):
    """``(arg, aux, meta)`` dicts of a checkpoint/export params file (keys ``arg:<name>``,
    ``aux:<name>``, ``meta:<name>``), checked against the checkpoint's checksum file when it
    has one; errors name the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError("checkpoint parameter file %s does not exist" % path)
    data = _read_checked(path)
    try:
        blob = mx.nd.load_frombuffer(data)
    except mx.base.MXNetError as err:
        raise CheckpointError("cannot read checkpoint parameter file %s (truncated or not an "
                              "MXNet parameter file): %s"
                              % (path, str(err).strip().splitlines()[0])) from None
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
    """``(symbol, arg_params, aux_params, states_file or None)``, every file checked against
    the checkpoint's checksum file (see the module docstring); errors name the file.

    ``states_file`` is None when there is none, or when the checksum file does not list it
    (then it is a leftover of another run, not part of this checkpoint)."""
    sym_file, param_file = _symbol_file(prefix), _param_file(prefix, epoch)
    for f in (param_file, sym_file):
        if not os.path.exists(f):
            raise FileNotFoundError("checkpoint file %s does not exist (complete epochs: %s)"
                                    % (f, _complete_epochs(prefix) or "none"))
    sums_path = _sums_file(prefix, epoch)
    sums = _recorded_sums(sums_path)
    with open(sym_file, "rb") as f:
        sym_bytes = f.read()
    if _listed(sym_file, sums):  # (without a checksum file read_params warns below)
        _check_bytes(sym_file, sym_bytes, sums, sums_path)
    try:
        symbol = mx.sym.load_json(sym_bytes.decode("utf-8"))
    except (mx.base.MXNetError, UnicodeDecodeError) as err:
        raise CheckpointError("cannot read checkpoint symbol %s: %s"
                              % (sym_file, str(err).strip().splitlines()[0])) from None
    arg, aux, _ = read_params(param_file)
    states = _states_file(prefix, epoch)
    if sums is not None:
        if _listed(states, sums) and not os.path.exists(states):
            raise CheckpointError("%s is missing: the checksum file %s says the checkpoint "
                                  "has optimizer states" % (states, sums_path))
        if os.path.exists(states) and not _listed(states, sums):
            _LOG.warning("%s is not listed in %s: it is not part of this checkpoint (a "
                         "leftover of another run) and is not used", states, sums_path)
            return symbol, arg, aux, None
    return symbol, arg, aux, (states if os.path.exists(states) else None)


def _updater_of(module):
    """The Python updater whose ``states`` the module's optimizer uses (MXNet 1.x Module:
    its own, or its kvstore's when the kvstore updates), or None when the optimizer runs on
    dist kvstore servers."""
    if getattr(module, "_update_on_kvstore", False):
        return getattr(module._kvstore, "_updater", None)
    return module._updater


def _expected_state_shapes(module):
    """``{updater key: (parameter name, shape)}``: a local updater numbers parameter ``i``
    on device ``k`` as ``i * num_devices + k``; a kvstore updater keys by name."""
    group = module._exec_group
    names = [n for n in group.arg_names if n in group.param_names]
    num_devices = len(group.contexts)
    expected = {}
    for i, (name, arrays) in enumerate(zip(names, group.param_arrays)):
        shape = tuple(arrays[0].shape)
        expected[name] = (name, shape)
        for k in range(num_devices):
            expected[i * num_devices + k] = (name, shape)
    return expected


def load_optimizer_states(module, path):
    """Load the optimizer states file ``path`` into ``module`` (bound, optimizer initialised):
    what ``Module.load_optimizer_states`` does, but the file is checked against its
    checkpoint's checksum file and unpickled with :mod:`.safe_pickle`, so a crafted file
    cannot run code, and a truncated, empty or foreign file (another network's states) is a
    CheckpointError naming it instead of a pickle or MXNet traceback."""
    if not module.optimizer_initialized:
        raise ValueError("load_optimizer_states needs a module whose optimizer is initialised")
    updater = _updater_of(module)
    if updater is None:
        raise CheckpointError("cannot load %s: the optimizer runs on the dist kvstore servers, "
                              "whose states MXNet cannot set from a file" % path)
    data = _read_checked(path)
    try:
        states = safe_pickle.load(data, path, safe_pickle.MXNET_OPTIMIZER_STATES,
                                  "MXNet optimizer-states file")
    except safe_pickle.PickleFormatError as e:
        raise CheckpointError(str(e)) from None
    if not isinstance(states, dict):
        raise CheckpointError("%s: holds a %s, not the dict of optimizer states MXNet writes"
                              % (path, type(states).__name__))
    expected = _expected_state_shapes(module)
    for key, state in states.items():
        arrays = state if isinstance(state, tuple) else (state,)
        if not isinstance(key, (int, str)) or not all(
                a is None or (isinstance(a, mx.nd.NDArray) and a.handle is not None)
                for a in arrays):
            raise CheckpointError("%s: entry %r is not an optimizer state (expected arrays "
                                  "keyed by parameter index)" % (path, key))
        if key not in expected:
            raise CheckpointError("%s: has a state for parameter %r, which this network does "
                                  "not have (the states of another network?)" % (path, key))
        name, shape = expected[key]
        for a in arrays:
            if a is not None and tuple(a.shape) != shape:
                raise CheckpointError("%s: the state of parameter %s has shape %s, the "
                                      "parameter %s (the states of another network?)"
                                      % (path, name, tuple(a.shape), shape))
    # What Updater.set_states does after its (unrestricted) pickle.loads.
    updater.states = states
    updater.states_synced = dict.fromkeys(states.keys(), False)


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
