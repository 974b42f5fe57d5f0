"""A small writer of PyTorch checkpoint files for the tests (PyTorch cannot be imported here).

It emits the pickle opcodes ``torch.save`` emits for a state dict (protocol 2: tensors as
``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())``
with storages by persistent id) and packs them in either on-disk format: the zip archive of
PyTorch >= 1.6 or the legacy sequence of pickles of PyTorch <= 1.5.
"""
import collections
import io
import pickle
import struct
import zipfile

import numpy as np

_STORAGE = {np.dtype(np.float32): "FloatStorage", np.dtype(np.float64): "DoubleStorage",
            np.dtype(np.float16): "HalfStorage", np.dtype(np.int64): "LongStorage",
            np.dtype(np.int32): "IntStorage", np.dtype(np.uint8): "ByteStorage"}


class View:
    """A tensor that is a strided view of another entry's storage (``base``: its name)."""

    def __init__(self, base, offset, size, stride):
        self.base, self.offset, self.size, self.stride = base, offset, size, stride


class _Writer:
    def __init__(self, legacy, cuda=False):
        self.out = io.BytesIO()
        self.storages = collections.OrderedDict()  # key -> contiguous array
        self.by_name = {}
        self.legacy, self.cuda = legacy, cuda

    def op(self, data):
        self.out.write(data)

    def glob(self, module, name):
        self.op(b"c" + module.encode() + b"\n" + name.encode() + b"\n")

    def emit(self, obj):
        if obj is None:
            self.op(b"N")
        elif isinstance(obj, bool):
            self.op(b"\x88" if obj else b"\x89")
        elif isinstance(obj, int):
            if -2 ** 31 <= obj < 2 ** 31:
                self.op(b"J" + struct.pack("<i", obj))
            else:
                raw = obj.to_bytes((obj.bit_length() + 8) // 8, "little", signed=True)
                self.op(b"\x8a" + bytes([len(raw)]) + raw)
        elif isinstance(obj, float):
            self.op(b"G" + struct.pack(">d", obj))
        elif isinstance(obj, str):
            raw = obj.encode("utf-8")
            self.op(b"X" + struct.pack("<I", len(raw)) + raw)
        elif isinstance(obj, tuple):
            self.op(b"(")
            for v in obj:
                self.emit(v)
            self.op(b"t")
        elif isinstance(obj, list):
            self.op(b"](")
            for v in obj:
                self.emit(v)
            self.op(b"e")
        elif isinstance(obj, dict):
            if isinstance(obj, collections.OrderedDict):
                self.glob("collections", "OrderedDict")
                self.op(b")R")
            else:
                self.op(b"}")
            self.op(b"(")
            for k, v in obj.items():
                self.emit(k)
                if isinstance(v, (np.ndarray, View)):
                    self.tensor(k, v)
                else:
                    self.emit(v)
            self.op(b"u")
        else:
            raise TypeError(type(obj))

    def tensor(self, name, value):
        if isinstance(value, View):
            key, arr = self.by_name[value.base]
            offset, size, stride = value.offset, value.size, value.stride
        else:
            arr = np.ascontiguousarray(value)
            key = str(len(self.storages) if not self.legacy else 94000000 + len(self.storages))
            self.storages[key] = arr
            self.by_name[name] = (key, arr)
            offset, size = 0, arr.shape
            stride = tuple(s // arr.itemsize for s in arr.strides)
        self.glob("torch._utils", "_rebuild_tensor_v2")
        self.op(b"(")
        self.op(b"(")  # the persistent id
        self.emit("storage")
        self.glob("torch.cuda" if self.cuda else "torch", _STORAGE[arr.dtype])
        self.emit(key)
        self.emit("cuda:0" if self.cuda else "cpu")
        self.emit(int(arr.size))
        if self.legacy:
            self.emit(None)
        self.op(b"tQ")
        self.emit(int(offset))
        self.emit(tuple(int(s) for s in size))
        self.emit(tuple(int(s) for s in stride))
        self.emit(False)
        self.glob("collections", "OrderedDict")
        self.op(b")R")
        self.op(b"tR")

    def pickle(self, obj):
        self.op(b"\x80\x02")
        self.emit(obj)
        self.op(b".")
        return self.out.getvalue()


def torch_bytes(obj, legacy=False, cuda=False):
    """The bytes of ``torch.save(obj)``: ``obj`` is a (nested) dict whose numpy arrays and
    :class:`View` s are tensors; ``legacy`` selects the PyTorch <= 1.5 format."""
    writer = _Writer(legacy, cuda)
    data = writer.pickle(obj)
    if legacy:
        out = io.BytesIO()
        for header in (0x1950a86a20f9469cfc6c, 1001,
                       {"protocol_version": 1001, "little_endian": True,
                        "type_sizes": {"short": 2, "int": 4, "long": 4}}):
            out.write(pickle.dumps(header, protocol=2))
        out.write(data)
        out.write(pickle.dumps(list(writer.storages), protocol=2))
        for arr in writer.storages.values():
            out.write(struct.pack("<q", arr.size))
            out.write(arr.astype(arr.dtype.newbyteorder("<")).tobytes())
        return out.getvalue()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", data)
        archive.writestr("archive/byteorder", "little")
        for key, arr in writer.storages.items():
            archive.writestr("archive/data/" + key, arr.astype(
                arr.dtype.newbyteorder("<")).tobytes())
        archive.writestr("archive/version", "3\n")
    return out.getvalue()


def write_torch_file(path, obj, legacy=False, cuda=False):
    """Write :func:`torch_bytes` to ``path``; returns ``path``."""
    with open(path, "wb") as fh:
        fh.write(torch_bytes(obj, legacy, cuda))
    return path
