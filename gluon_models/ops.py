"""The native operator library: found, checked and loaded once per process.

``import gluon_models`` calls :func:`load`. The library is built by ``pip install -e .``
(see ``setup.py``); a missing library, or one built from other sources or against another
mxnet, raises ImportError saying how to rebuild. After loading, the operators are available
as ``mx.nd.<Op>`` / ``mx.sym.<Op>`` (and ``F.<Op>`` in hybrid blocks), and symbol files that
use them load with ``mx.sym.load`` / ``gluon.SymbolBlock.imports``.

The CPU GEMMs run on the OpenBLAS of the scipy-openblas32 wheel (see setup.py), one BLAS thread
per OpenMP thread (operators/gm_blas.h). That OpenBLAS picks its kernels for the CPU itself when
it is loaded: an inherited ``OPENBLAS_CORETYPE`` is not applied to it (see
:class:`_CoretypeForOwnBlas`); ``GLUON_MODELS_OPENBLAS_CORETYPE`` forces a core type for it.
"""
import ctypes
import hashlib
import json
import logging
import os

import mxnet as mx

__all__ = ["load", "info", "check_build", "LIB_PATH", "BUILD_HELP", "CORETYPE_VAR"]

_LOG = logging.getLogger(__name__)
_PKG_DIR = os.path.dirname(os.path.abspath(__file__))
LIB_PATH = os.path.join(_PKG_DIR, "libgluon_models_ops.so")
_SOURCE_DIR = os.path.join(os.path.dirname(_PKG_DIR), "operators")
BUILD_HELP = ("build it from the repository root with `pip install -e .` (or `make build`, "
              "which also creates .venv)")
OPERATORS = ("Reorder", "FMConvolution1", "FMConvolution3")

_INFO = None  # set once the library is loaded: MXNet refuses a third registration


def _source_hash():
    """Hash of operators/ when running from a source checkout (editable install), else None.

    Must hash exactly what setup.py's ``source_hash`` hashes, in the same order.
    """
    if not os.path.isdir(_SOURCE_DIR):
        return None
    names = []
    for ext in (".h", ".cc", ".cu"):
        names += sorted(n for n in os.listdir(_SOURCE_DIR) if n.endswith(ext))
    h = hashlib.sha256()
    for n in names:
        h.update(n.encode())
        with open(os.path.join(_SOURCE_DIR, n), "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()[:16]


CORETYPE_VAR = "GLUON_MODELS_OPENBLAS_CORETYPE"


class _CoretypeForOwnBlas:
    """While the library, and with it its OpenBLAS, is first loaded (OpenBLAS reads
    ``OPENBLAS_CORETYPE`` once, when it initialises): ``OPENBLAS_CORETYPE`` is
    ``$GLUON_MODELS_OPENBLAS_CORETYPE`` if that is set, else unset, so that scipy-openblas picks
    the kernels for this CPU itself. An inherited ``OPENBLAS_CORETYPE`` is typically there for
    older OpenBLAS copies that do not know the CPU: mxnet's 0.3.13 and numpy's 0.3.20 take an AMD
    Zen 5 EPYC (family 1Ah) for a Barcelona without AVX, so such machines set Haswell. Applied to
    OpenBLAS 0.3.34, which detects that CPU as SkylakeX (AVX-512), it would halve sgemm (single
    thread, measured: 128 instead of 245 GFLOP/s). The variable is restored on exit; the other
    copies were initialised long before (at ``import mxnet`` and ``import numpy``)."""

    def __init__(self):
        self.saved = os.environ.get("OPENBLAS_CORETYPE")
        self.forced = os.environ.get(CORETYPE_VAR) or None

    def __enter__(self):
        if self.forced:
            os.environ["OPENBLAS_CORETYPE"] = self.forced
        else:
            os.environ.pop("OPENBLAS_CORETYPE", None)
        return self

    def __exit__(self, *exc):
        if self.saved is None:
            os.environ.pop("OPENBLAS_CORETYPE", None)
        else:
            os.environ["OPENBLAS_CORETYPE"] = self.saved


def _read_build_info(path):
    try:
        lib = ctypes.CDLL(path)
        fn = lib.gluon_models_build_info
    except (OSError, AttributeError) as err:
        raise ImportError("gluon_models: cannot open the operator library %s (%s); %s"
                          % (path, err, BUILD_HELP)) from err
    fn.restype = ctypes.c_char_p
    return json.loads(fn().decode())


def _read_blas_info(path):
    """What the linked OpenBLAS reports: ``{"config", "core", "threads"}``."""
    fn = ctypes.CDLL(path).gluon_models_blas_info
    fn.restype = ctypes.c_char_p
    return json.loads(fn().decode())


def check_build(built, mxnet_version, source_hash):
    """Raise ImportError unless the library's build info ``built`` matches the installed
    mxnet and, in a source checkout (``source_hash`` not None), the current operators/."""
    if built.get("mxnet") != mxnet_version:
        raise ImportError("gluon_models: the operator library was built against mxnet %s but "
                          "mxnet %s is installed; rebuild: %s"
                          % (built.get("mxnet"), mxnet_version, BUILD_HELP))
    if source_hash is not None and source_hash != built.get("source_hash"):
        raise ImportError("gluon_models: the operator library is stale (operators/ changed "
                          "since it was built); rebuild: %s" % BUILD_HELP)


def load(path=LIB_PATH):
    """Load the operator library (once per process) and return :func:`info`."""
    global _INFO
    if _INFO is not None:
        return _INFO
    if not os.path.exists(path):
        raise ImportError("gluon_models: the native operator library %s is not built; %s"
                          % (path, BUILD_HELP))
    with _CoretypeForOwnBlas() as coretype:
        built = _read_build_info(path)  # the first load of the library and of its OpenBLAS
    check_build(built, mx.__version__, _source_hash())
    if os.environ.get("MXNET_EXEC_ENABLE_ADDTO", "0") not in ("", "0"):
        _LOG.warning("MXNET_EXEC_ENABLE_ADDTO is set: MXNet may then ask extension operators "
                     "to accumulate gradients in place, which they cannot do (they are not "
                     "told `req`); unset it when training networks with native operators")
    mx.library.load(path, verbose=False)  # runs initialize(): one BLAS thread per call
    blas = _read_blas_info(path)
    name = built.get("blas", "mxnet libopenblas.so.0")
    own = name.startswith("scipy-openblas")  # else mxnet's, initialised at `import mxnet`
    _INFO = {"path": path, "cpu": True, "cuda": bool(built.get("cuda")),
             "mxnet": built.get("mxnet"), "source_hash": built.get("source_hash"),
             "blas": name, "blas_core": blas["core"],
             "blas_coretype_forced": coretype.forced if own else None,
             "blas_coretype_set_aside": coretype.saved if own and not coretype.forced else None,
             "blas_threads": blas["threads"],
             "operators": list(OPERATORS)}
    return _INFO


def info():
    """What was built and loaded: ``{'cpu': True, 'cuda': bool, 'operators': [...], ...}``.

    ``blas`` names the BLAS linked at build time (``"scipy-openblas32 <version>"``, or ``"mxnet
    libopenblas.so.0"`` for the fallback), ``blas_core`` the kernel set it runs on this CPU,
    ``blas_coretype_forced`` the value of ``GLUON_MODELS_OPENBLAS_CORETYPE`` (None: OpenBLAS's
    own choice), ``blas_coretype_set_aside`` an inherited ``OPENBLAS_CORETYPE`` that was not
    applied to it, and ``blas_threads`` its thread count (1: the operators parallelise around
    it). With the mxnet fallback, ``blas_core`` is what mxnet's OpenBLAS took at ``import
    mxnet`` (the environment variables above do not reach it).
    """
    return dict(load())
