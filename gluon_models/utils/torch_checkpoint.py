"""PyTorch checkpoints read without PyTorch, and without running code from them.

Published weights of the original projects are ``torch.save`` files: a state dict (parameter
name -> tensor) or a training checkpoint (``{"epoch", "arch", "state_dict", "best_prec1",
"optimizer"}``). Two on-disk formats exist:

* the **zip** format (PyTorch >= 1.6): a zip archive ``<name>/data.pkl`` (the pickled object),
  ``<name>/data/<key>`` (the raw bytes of each tensor storage), ``<name>/byteorder``;
* the **legacy** format (PyTorch <= 1.5, e.g. the 2018 releases): five pickles and raw data in
  sequence: a magic number, the protocol version (1001), system information (byte order, type
  sizes), the object, the list of storage keys, then for each key its element count (int64)
  and its raw bytes.

In both the pickle refers to a storage by a persistent id (``('storage', type, key, location,
numel[, view])``) and rebuilds a tensor with ``torch._utils._rebuild_tensor_v2(storage, offset,
size, stride, ...)``, which may be a non-contiguous view into a storage shared with other
tensors. Here the pickle is read by the project's restricted unpickler
(:mod:`.safe_pickle`) admitting only :data:`TORCH_CHECKPOINT`: those rebuild functions are
replaced by ones that record the view, storages become numpy buffers, and every tensor becomes
a contiguous numpy array (its bounds checked against its storage). Any other class is refused
with an error naming the file and the class.

:func:`read_torch_file` returns the object as saved, tensors as numpy arrays;
:func:`load_state_dict` returns the state dict of a state-dict file or a training checkpoint,
with DataParallel's ``module.`` removed from the names.
"""
import collections
import io
import os
import struct
import tarfile
import zipfile

import numpy as np

from . import safe_pickle

__all__ = ["TorchCheckpointError", "TORCH_CHECKPOINT", "read_torch_file", "load_state_dict",
           "strip_data_parallel"]


class TorchCheckpointError(safe_pickle.PickleFormatError):
    """A file that is not a readable PyTorch checkpoint; the message names the file."""


# storage class name -> numpy dtype (bfloat16: its 16 high bits of a float32)
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    """What ``torch.FloatStorage`` and its kin stand for here: the element type only."""

    def __init__(self, name, dtype):
        self.name, self.dtype = name, dtype

    @property
    def itemsize(self):
        return 2 if self.dtype == "bfloat16" else np.dtype(self.dtype).itemsize

    def __call__(self, *args):
        raise TypeError("a storage is only referred to by a persistent id in a checkpoint")


class _Storage:
    """A storage of ``numel`` elements; ``array`` (1-D numpy) once its bytes are read."""

    def __init__(self, kind, key, numel):
        self.kind, self.key, self.numel = kind, key, numel
        self.array = None


class _Tensor:
    """A tensor as the pickle describes it: a strided view into a storage."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


def _int_tuple(what, value):
    if not isinstance(value, (tuple, list)) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise TypeError("tensor %s must be a tuple of integers, got %r" % (what, value))
    return tuple(value)


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    """``torch._utils._rebuild_tensor`` (PyTorch < 0.4) and, through the wrapper below,
    ``_rebuild_tensor_v2``: record the view; the extra arguments (requires_grad, backward
    hooks, metadata) do not change the values."""
    if not isinstance(storage, _Storage):
        raise TypeError("a tensor must be rebuilt from a storage, got %s"
                        % type(storage).__name__)
    if not isinstance(storage_offset, int) or storage_offset < 0:
        raise TypeError("tensor storage offset must be a non-negative integer, got %r"
                        % (storage_offset,))
    size, stride = _int_tuple("size", size), _int_tuple("stride", stride)
    if len(size) != len(stride) or any(s < 0 for s in size + stride):
        raise ValueError("tensor size %s and stride %s do not describe a view"
                         % (size, stride))
    return _Tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    """``torch._utils._rebuild_parameter``: an ``nn.Parameter`` is its tensor here."""
    if not isinstance(data, _Tensor):
        raise TypeError("a parameter wraps a tensor, got %s" % type(data).__name__)
    return data


def _storage_types():
    table = {}
    for module in ("torch", "torch.cuda"):  # GPU-saved files name the CUDA storage classes
        for name, dtype in _STORAGE_DTYPES.items():
            table[(module, name)] = _StorageType(name, dtype)
    return table


# Everything a checkpoint of a network holds: dicts, lists, numbers, strings, tensors (and
# numpy scalars, which some training scripts store as their best accuracy).
TORCH_CHECKPOINT = {
    **safe_pickle.NUMPY_ARRAYS,
    ("collections", "OrderedDict"): None,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    **_storage_types()}

_WHAT = "PyTorch checkpoint"


def _fail(path, message):
    raise TorchCheckpointError("%s: %s" % (path, message))


class _Storages:
    """The persistent-id handler of one file: one :class:`_Storage` per key (tensors that
    share a storage share the object), legacy views of a storage included."""

    def __init__(self, path):
        self.path = path
        self.by_key = collections.OrderedDict()
        self.views = []  # legacy: (view storage, root storage, offset)

    def __call__(self, pid):
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage" or len(pid) not in (
                5, 6):
            raise TypeError("unknown persistent id %r" % (pid,))
        kind, key, _location, numel = pid[1:5]
        if not isinstance(kind, _StorageType):
            raise TypeError("storage of unknown type %r" % (kind,))
        if not isinstance(numel, int) or numel < 0:
            raise TypeError("storage size must be a non-negative integer, got %r" % (numel,))
        key = str(key)
        root = self.by_key.get(key)
        if root is None:
            root = self.by_key[key] = _Storage(kind, key, numel)
        elif root.kind.dtype != kind.dtype or root.numel != numel:
            raise TypeError("storage %s is referred to with two types or sizes" % key)
        view = pid[5] if len(pid) == 6 else None
        if view is None:
            return root
        view_key, offset, view_size = view  # PyTorch < 0.4: a storage slice of a storage
        if not (isinstance(offset, int) and isinstance(view_size, int) and offset >= 0
                and view_size >= 0 and offset + view_size <= numel):
            raise TypeError("storage view %r out of its storage's %d elements" % (view, numel))
        storage = _Storage(kind, str(view_key), view_size)
        self.views.append((storage, root, offset))
        return storage

    def fill(self, key, data, byteorder="little"):
        """Give storage ``key`` its raw bytes."""
        storage = self.by_key[key]
        need = storage.numel * storage.kind.itemsize
        if len(data) < need:
            _fail(self.path, "storage %s holds %d bytes, its %d elements need %d (truncated "
                             "file?)" % (key, len(data), storage.numel, need))
        data = bytes(data[:need])
        if storage.kind.dtype == "bfloat16":
            half = np.frombuffer(data, dtype=("<u2" if byteorder == "little" else ">u2"))
            storage.array = (half.astype(np.uint32) << 16).view(np.float32)
        else:
            dtype = np.dtype(storage.kind.dtype).newbyteorder(
                "<" if byteorder == "little" else ">")
            storage.array = np.frombuffer(data, dtype=dtype).astype(
                np.dtype(storage.kind.dtype), copy=False)

    def finish(self):
        for storage, root, offset in self.views:
            storage.array = root.array[offset:offset + storage.numel]


def _materialise(obj, path):
    """``obj`` with every recorded tensor replaced by a contiguous numpy array."""
    if isinstance(obj, _Tensor):
        arr = obj.storage.array
        numel = int(np.prod(obj.size, dtype=np.int64))
        if numel == 0:
            return np.zeros(obj.size, dtype=arr.dtype)
        last = obj.offset + sum((n - 1) * s for n, s in zip(obj.size, obj.stride))
        if last >= len(arr):
            _fail(path, "a tensor of size %s, stride %s at offset %d reaches past its "
                        "storage %s of %d elements" % (obj.size, obj.stride, obj.offset,
                                                      obj.storage.key, len(arr)))
        base = arr[obj.offset:]
        view = np.lib.stride_tricks.as_strided(
            base, shape=obj.size, strides=[s * arr.itemsize for s in obj.stride],
            writeable=False)
        return np.array(view, copy=True, order="C")
    if isinstance(obj, collections.OrderedDict):
        out = collections.OrderedDict((k, _materialise(v, path)) for k, v in obj.items())
        out.__dict__.update(obj.__dict__)
        return out
    if isinstance(obj, dict):
        return {k: _materialise(v, path) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_materialise(v, path) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_materialise(v, path) for v in obj)
    if isinstance(obj, _Storage):
        return obj.array
    return obj


def _read_zip(path, archive):
    names = archive.namelist()
    pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") <= 1]
    if len(pickles) != 1:
        _fail(path, "a zip archive without exactly one data.pkl (not a PyTorch >= 1.6 "
                    "checkpoint); it holds %s" % ", ".join(names[:8]))
    prefix = pickles[0][:-len("data.pkl")]
    byteorder = "little"
    if prefix + "byteorder" in names:
        byteorder = archive.read(prefix + "byteorder").decode("ascii", "replace").strip()
        if byteorder not in ("little", "big"):
            _fail(path, "unknown byte order %r" % byteorder)
    storages = _Storages(path)
    obj = safe_pickle.load(archive.read(pickles[0]), path, TORCH_CHECKPOINT, _WHAT,
                           persistent_load=storages, encoding="utf-8")
    for key in storages.by_key:
        record = prefix + "data/" + key
        if record not in names:
            _fail(path, "the storage %s the pickle refers to is missing (no %s)"
                        % (key, record))
        storages.fill(key, archive.read(record), byteorder)
    storages.finish()
    return obj, storages


_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_LEGACY_PROTOCOL = 1001


def _read_legacy(path, data):
    f = io.BytesIO(data)
    plain = {}  # the header pickles hold numbers, strings and dicts only

    def header(what):
        return safe_pickle.load(f, path, plain, _WHAT + " " + what, encoding="utf-8")
    if header("magic number") != _LEGACY_MAGIC:
        _fail(path, "not a PyTorch checkpoint (neither a zip archive nor the legacy "
                    "format's magic number)")
    protocol = header("protocol version")
    if protocol != _LEGACY_PROTOCOL:
        _fail(path, "legacy format protocol %r, expected %d" % (protocol, _LEGACY_PROTOCOL))
    info = header("system information")
    byteorder = "little" if not isinstance(info, dict) or info.get("little_endian", True) \
        else "big"
    storages = _Storages(path)
    obj = safe_pickle.load(f, path, TORCH_CHECKPOINT, _WHAT, persistent_load=storages,
                           encoding="utf-8")
    keys = header("storage list")
    if not isinstance(keys, list) or set(map(str, keys)) != set(storages.by_key):
        _fail(path, "its storage list %s does not match the storages its tensors use (%s)"
                    % (keys if isinstance(keys, list) else type(keys).__name__,
                       ", ".join(storages.by_key)))
    for key in map(str, keys):
        head = f.read(8)
        if len(head) < 8:
            _fail(path, "truncated: the data of storage %s is missing" % key)
        numel = struct.unpack("<q" if byteorder == "little" else ">q", head)[0]
        if numel != storages.by_key[key].numel:
            _fail(path, "storage %s has %d elements, its tensors say %d"
                        % (key, numel, storages.by_key[key].numel))
        need = numel * storages.by_key[key].kind.itemsize
        chunk = f.read(need)
        if len(chunk) < need:
            _fail(path, "truncated: storage %s has %d of its %d bytes" % (key, len(chunk),
                                                                          need))
        storages.fill(key, chunk, byteorder)
    storages.finish()
    return obj, storages


def read_torch_file(path):
    """The object ``torch.save`` wrote to ``path`` (either format), every tensor a contiguous
    numpy array of its dtype (bfloat16 as float32).

    Raises
    ------
    safe_pickle.UnsafePickleError
        The file refers to a class or function a checkpoint does not hold (names both).
    TorchCheckpointError
        The file is truncated, malformed or not a PyTorch checkpoint (names the file).
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as e:
        raise TorchCheckpointError("%s: cannot read (%s)" % (path, e.strerror or e)) from None
    if data[:4] == b"PK\x03\x04" or zipfile.is_zipfile(io.BytesIO(data)):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                obj, _ = _read_zip(path, archive)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, KeyError) as e:
            raise TorchCheckpointError("%s: not a readable PyTorch zip checkpoint "
                                       "(truncated or damaged: %s)" % (path, e)) from None
    elif _is_tar(data):
        _fail(path, "the tar format of PyTorch < 0.1.10 is not supported; load and save it "
                    "again with a newer PyTorch")
    else:
        obj, _ = _read_legacy(path, data)
    return _materialise(obj, path)


def _is_tar(data):
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            return bool(tar.getnames())
    except (tarfile.TarError, EOFError, OSError):
        return False


def strip_data_parallel(name):
    """``name`` without DataParallel's ``module.`` (``module.conv1.weight`` ->
    ``conv1.weight``; ``features.module.0.weight`` -> ``features.0.weight``)."""
    parts = name.split(".")
    return ".".join(p for i, p in enumerate(parts) if not (p == "module" and i < len(parts) - 1))


def load_state_dict(path):
    """The state dict in ``path``: ``OrderedDict`` name -> numpy array.

    ``path`` holds a state dict, or a training checkpoint whose ``"state_dict"`` entry is one.
    DataParallel's ``module.`` components are removed from the names; two names that become
    equal are an error.
    """
    obj = read_torch_file(path)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj:
        _fail(path, "holds %s, not a state dict (name -> tensor) or a training checkpoint "
                    "with a 'state_dict'" % ("an empty dict" if isinstance(obj, dict)
                                              else type(obj).__name__))
    out = collections.OrderedDict()
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, np.ndarray):
            _fail(path, "state dict entry %r is a %s, not a tensor"
                        % (key, type(value).__name__))
        name = strip_data_parallel(key)
        if name in out:
            _fail(path, "entries %r and another become %r without DataParallel's 'module.'"
                        % (key, name))
        out[name] = value
    return out
