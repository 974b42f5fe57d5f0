"""One restricted unpickler for every pickle the project reads from disk.

Pickles from elsewhere (CIFAR batches, optimizer ``.states`` files, PyTorch checkpoints) are
untrusted: a plain ``pickle.load`` imports and calls whatever the file names, so opening a
crafted file runs its code. :func:`load` resolves a global only when it is in the allow list
of the format being read (:data:`NUMPY_ARRAYS`, :data:`MXNET_OPTIMIZER_STATES`, or a
caller's own), and refuses any other with :class:`UnsafePickleError` naming the file and the
class. A truncated or malformed file is a :class:`PickleFormatError` naming the file too.

An allow list maps ``(module, name)`` to the object to hand to the unpickler, or to ``None``
for the real one. A replacement lets a format admit a constructor only in the harmless form
the format uses (see ``_ndarray_from_state``).
"""
import io
import pickle

__all__ = ["PickleFormatError", "UnsafePickleError", "load", "NUMPY_ARRAYS",
           "MXNET_OPTIMIZER_STATES"]


class PickleFormatError(ValueError):
    """A pickle that cannot be read as the expected format (truncated, malformed, or
    holding something else); the message names the file."""


class UnsafePickleError(PickleFormatError):
    """A pickle that refers to a class or function outside the format's allow list."""


# What a pickled numpy array refers to (numpy 1.x and 2.x module names). _codecs.encode is
# how protocol-2 pickles written by Python 3 carry bytes.
NUMPY_ARRAYS = {
    ("numpy.core.multiarray", "_reconstruct"): None,
    ("numpy._core.multiarray", "_reconstruct"): None,
    ("numpy.core.multiarray", "scalar"): None,
    ("numpy._core.multiarray", "scalar"): None,
    ("numpy", "ndarray"): None,
    ("numpy", "dtype"): None,
    ("_codecs", "encode"): None,
}


def _ndarray_from_state(handle):
    """``NDArray`` as its ``__reduce__`` rebuilds it: ``NDArray(None)``, then ``__setstate__``
    loads the array from its raw bytes. Any other argument would be taken as a C pointer by
    ``NDArray.__init__`` (and freed later), so only ``None`` is accepted."""
    if handle is not None:
        raise pickle.UnpicklingError("an NDArray is rebuilt from its saved bytes only, not "
                                     "from a handle (%s)" % type(handle).__name__)
    import mxnet as mx
    return mx.nd.NDArray(None)


# What MXNet 1.x's Updater.get_states pickles (Module.save_optimizer_states, KVStore's
# save_optimizer_states without dump_optimizer): a dict index -> state, each state None, an
# NDArray, or a tuple of them (multi-precision SGD/NAG: (float32 weight copy, momentum)). An
# NDArray is pickled as NDArray(None) + {'handle': bytearray of its raw bytes}.
MXNET_OPTIMIZER_STATES = {
    ("mxnet.ndarray.ndarray", "NDArray"): _ndarray_from_state,
    ("builtins", "bytearray"): None,
    ("_codecs", "encode"): None,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, allowed, persistent_load=None, **kwargs):
        super().__init__(file, **kwargs)
        self._allowed = allowed
        self._persistent_load = persistent_load

    def persistent_load(self, pid):
        if self._persistent_load is None:  # a plain pickle never holds persistent ids
            raise pickle.UnpicklingError("unexpected persistent id %r" % (pid,))
        return self._persistent_load(pid)

    def find_class(self, module, name):
        if (module, name) not in self._allowed:
            raise UnsafePickleError("%s.%s" % (module, name))
        replacement = self._allowed[(module, name)]
        return replacement if replacement is not None else super().find_class(module, name)


def load(data, name, allowed, what="pickle", persistent_load=None, **kwargs):
    """Unpickle ``data`` (bytes or a binary file object) admitting only the globals in
    ``allowed``.

    Parameters
    ----------
    data : bytes or file object
    name : str
        The file, as errors name it (a path, or ``archive:member``).
    allowed : dict
        ``(module, name) -> object or None`` (see the module docstring).
    what : str
        What the file should be, for the messages (e.g. ``"CIFAR python batch"``).
    persistent_load : callable, optional
        ``persistent_load(pid) -> object`` for a format that refers to data outside the
        pickle by persistent ids (PyTorch's tensor storages); it must build nothing but
        inert data. Without it a persistent id is a format error.
    **kwargs
        ``pickle.Unpickler`` options (``encoding='bytes'`` for Python 2 pickles).

    Raises
    ------
    UnsafePickleError
        The file refers to a class or function that ``what`` never holds.
    PickleFormatError
        The file is truncated or not a pickle.
    """
    f = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    try:
        return _RestrictedUnpickler(f, allowed, persistent_load, **kwargs).load()
    except UnsafePickleError as e:
        raise UnsafePickleError("%s: refers to %s, which no %s holds; refusing to load "
                                "it (loading it could run code)" % (name, e, what)) from None
    except EOFError:
        raise PickleFormatError("%s: truncated %s (the pickle ends early)"
                                % (name, what)) from None
    except Exception as e:  # noqa: BLE001  (UnpicklingError, ValueError, TypeError, MXNetError)
        raise PickleFormatError("%s: not a readable %s (%s: %s)"
                                % (name, what, type(e).__name__, e)) from None
