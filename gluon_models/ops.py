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

Shape inference guard
---------------------
MXNet 1.9.1 runs an extension operator's shape hook through glue (``src/c_api/c_api.cc``,
``registerOperators``) that copies the input shapes into a buffer sized by summing the inputs'
ndims, where an input of unknown shape counts -1. Whenever one of the operators' inputs has no
shape yet (the weights of an FB layer left to inference, as in the authors' symbol files, or
data of unknown shape) that buffer is too small and the copy writes past it: a silent heap
overflow with 4-D data, a crash (SIGSEGV, ``free(): invalid next size``, ``std::bad_alloc``)
with other ndims. Nothing in the library can prevent it: the write happens before the hook is
called. So :func:`load` installs a guard in front of every symbolic shape inference entry point
(``Symbol.infer_shape``/``infer_shape_partial`` through ``Symbol._infer_shape_impl``,
``Symbol.simple_bind``, which ``Module.bind`` uses, and ``Executor.reshape``, which
``Module.forward`` uses for a new batch size); graphs without these operators pass straight
through. For a graph with them it resolves the shapes first, never letting MXNet infer a node
of these operators while one of its inputs has an unknown ndim:

1. The graph is *cut*: each node of these operators becomes a variable standing for its
   output, and its inputs become extra outputs. MXNet infers this graph, which only has stock
   operators, from the given shapes.
2. Each node whose input ndims are now all known (from step 1, or fixed by its attributes:
   :data:`SHAPE_RULES`) is inferred alone, in a one-node graph whose inputs carry those shapes,
   so the operator's own hook fills its parameter shapes and output, or raises its named error.
3. What step 2 found is fed back into the cut graph (the output as the shape of the standing
   variable, fully known inputs as ``elemwise_add`` constraints that MXNet propagates back to
   the variables behind them, e.g. through Gluon's ``identity(weight)``), and 1-2 repeat until
   nothing changes.
   If MXNet's inference of the cut graph fails downstream of a stand-in variable whose shape
   is not known yet (1.9.1's Concat takes a wrong channel count from partly unknown inputs, as
   in DenseNet's ``concat(x, f(op(x)))``), what feeds each node without a result is inferred
   alone, and the rounds go on. Mutable inputs of these operators (IBN's running statistics,
   auxiliary states) get their resolved shapes passed on like the arguments'.
4. Only if every argument's shape is then known does MXNet infer the real graph, with all of
   them given (every node then sees fully known inputs); otherwise ``infer_shape`` returns
   ``(None, None, None)`` as MXNet does for an incomplete inference, ``infer_shape_partial``
   returns what the cut graph knows, and ``simple_bind``/``reshape`` raise an MXNetError that
   names the arguments whose shapes are missing.

Gluon's deferred initialisation goes through ``Symbol.infer_shape``; a hybridized block's
cached graph is only run with every input and parameter allocated, so all shapes are known.
Eager calls (``mx.nd.<Op>``) always have shapes, but in MXNet's legacy shape mode a 0-d array
counts as "unknown", with the same overflow: the ``mx.nd`` functions of these operators reject
0-d and zero-size arrays unless ``mx.util.set_np_shape(True)`` is on (legacy mode reads a 0
extent as unknown). A new operator adds its entry to :data:`SHAPE_RULES` and inherits all this.
Not covered: graphs whose nodes of these operators sit inside control-flow subgraphs.
"""
import copy
import ctypes
import functools
import hashlib
import json
import logging
import os

import mxnet as mx
from mxnet.base import MXNetError

__all__ = ["load", "info", "check_build", "LIB_PATH", "BUILD_HELP", "CORETYPE_VAR"]

_LOG = logging.getLogger(__name__)
_PKG_DIR = os.path.dirname(os.path.abspath(__file__))
LIB_PATH = os.path.join(_PKG_DIR, "libgluon_models_ops.so")
_SOURCE_DIR = os.path.join(os.path.dirname(_PKG_DIR), "operators")
BUILD_HELP = ("build it from the repository root with `pip install -e .` (or `make build`, "
              "which also creates .venv)")
OPERATORS = ("Reorder", "FMConvolution1", "FMConvolution3", "ISqrtCov", "IBN", "IGCSecondary",
             "BNReLU", "GroupConv")


def _attr_tuple(text, n):
    vals = [int(v) for v in str(text).strip("()[] ").split(",") if v.strip()]
    return tuple(vals * n if len(vals) == 1 else vals)


def _attr_bool(text):
    return str(text).strip() in ("True", "true", "1")


def _fm_rule(attrs):
    """FMConvolution1/3: input names, and the shapes the attributes fix (-1: not fixed)."""
    no_bias = _attr_bool(attrs.get("no_bias", "False"))
    names = ["data", "weight"] + ([] if no_bias else ["bias"]) + ["factor_mask"]
    try:
        o, f = int(attrs["num_filter"]), int(attrs.get("num_factor", 1))
        kh, kw = _attr_tuple(attrs["kernel"], 2)
    except (KeyError, ValueError, TypeError):
        return names, [None] * len(names)  # the operator's own hook names the bad argument
    hints = [(-1, -1, -1, -1), (o, f, -1, kh, kw)] + ([] if no_bias else [(o,)]) + [(f,)]
    return names, hints


def _isqrtcov_rule(attrs):
    """ISqrtCov: ``data`` (B, C, H, W), and ``index`` (K,) unless vectorize is false. An
    unreadable ``vectorize`` counts as true here; the operator's own hook then names it."""
    vectorize = str(attrs.get("vectorize", "True")).strip() not in ("False", "false", "0")
    if vectorize:
        return ["data", "index"], [(-1, -1, -1, -1), (-1,)]
    return ["data"], [(-1, -1, -1, -1)]


def _ibn_rule(attrs):
    """IBN: the IN group's gamma/beta are (in_channels,); the BN group's vectors and the flag
    are 1-d. ``moving_mean``/``moving_var`` are auxiliary states (mutable inputs)."""
    names = ["data", "in_gamma", "in_beta", "bn_gamma", "bn_beta", "train_flag", "moving_mean",
             "moving_var"]
    try:
        ci = int(attrs["in_channels"])
    except (KeyError, ValueError, TypeError):
        return names, [None] * len(names)
    return names, [None, (ci,), (ci,), (-1,), (-1,), (1,), (-1,), (-1,)]


def _igc_secondary_rule(attrs):
    """IGCSecondary: ``data`` (N, C, ...) of unfixed ndim and ``weight`` (C, primary, 1, 1)."""
    try:
        primary = int(attrs["primary"])
    except (KeyError, ValueError, TypeError):
        return ["data", "weight"], [None, None]
    return ["data", "weight"], [None, (-1, primary, 1, 1)]


def _group_conv_rule(attrs):
    """GroupConv: ``data`` (N, C, H, W) and ``weight`` (num_filter, C / num_group, kh, kw)."""
    try:
        f = int(attrs["num_filter"])
        kh, kw = _attr_tuple(attrs["kernel"], 2)
    except (KeyError, ValueError, TypeError):
        return ["data", "weight"], [(-1, -1, -1, -1), None]
    return ["data", "weight"], [(-1, -1, -1, -1), (f, -1, kh, kw)]


def _bnrelu_rule(attrs):
    """BNReLU: ``data`` (N, C, ...) of unfixed ndim, the channel vectors and the flag 1-d,
    ``residual`` (with residual=True) shaped as data; ``moving_mean``/``moving_var`` are
    auxiliary states (mutable inputs)."""
    names = ["data", "gamma", "beta", "train_flag", "moving_mean", "moving_var"]
    hints = [None, (-1,), (-1,), (1,), (-1,), (-1,)]
    if _attr_bool(attrs.get("residual", "False")):
        return names + ["residual"], hints + [None]
    return names, hints


# Per operator: attrs -> (input names, per input the shape its attributes fix, -1 for a free
# dimension, or None when they do not fix its ndim). Used by the shape inference guard (module
# docstring): a node is inferred alone once every input's ndim is known from these or from the
# graph. A new operator adds one entry here.
SHAPE_RULES = {
    "Reorder": lambda attrs: (["data"], [None]),
    "FMConvolution1": _fm_rule,
    "FMConvolution3": _fm_rule,
    "ISqrtCov": _isqrtcov_rule,
    "IBN": _ibn_rule,
    "IGCSecondary": _igc_secondary_rule,
    "BNReLU": _bnrelu_rule,
    "GroupConv": _group_conv_rule,
}

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
    _install_guards()
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


# ---- shape inference guard (see the module docstring) ------------------------------------------
_ORIG = {}


def _np_shape():
    return bool(mx.util.is_np_shape())


def _norm(shape):
    """A shape as MXNet reports it -> None if its ndim is unknown, else a tuple (-1: unknown)."""
    if shape is None:
        return None
    shape = tuple(int(d) for d in shape)
    if not _np_shape():  # legacy mode: () and 0 mean "unknown"
        if shape == ():
            return None
        shape = tuple(-1 if d == 0 else d for d in shape)
    return shape


def _known(shape):
    return shape is not None and all(d >= 0 for d in shape)


def _our_nodes(graph):
    return [i for i, n in enumerate(graph["nodes"]) if n["op"] in SHAPE_RULES]


def _named_error(op, name, text):
    return MXNetError("%s '%s': %s" % (op, name, text))


def _infer_one(node, shapes):
    """Infer one node of our operators alone, its inputs having the (ndim-known) ``shapes``.

    Returns (input shapes, output shape); the operator's hook raises its named errors.
    """
    attrs = {k: v for k, v in node.get("attrs", {}).items()}
    names, _ = SHAPE_RULES[node["op"]](attrs)
    for name, shape in zip(names, shapes):
        if shape == ():  # only reachable with np shapes: no operator here takes a 0-d input
            raise _named_error(node["op"], node["name"], "input '%s' is 0-d (shape ()), which "
                               "this operator does not accept" % name)
    inputs = [mx.sym.var("in%d" % i, shape=s) for i, s in enumerate(shapes)]
    one = getattr(mx.sym, node["op"])(*inputs, **attrs)
    args, outs, aux = _ORIG["infer"](one, True)
    by_name = dict(zip(one.list_arguments(), args))
    by_name.update(zip(one.list_auxiliary_states(), aux or []))  # mutable inputs (IBN's)
    return [_norm(by_name["in%d" % i]) for i in range(len(shapes))], _norm(outs[0])


def _cut_graph(graph, ours, facts, only=None):
    """The graph with our nodes cut out (module docstring, step 1): returns (symbol, {nid: the
    indices of its inputs among the symbol's outputs}). ``only`` (a node id): the outputs are
    just that node's inputs, so only what feeds it is inferred (see :func:`_resolve`)."""
    nodes = copy.deepcopy(graph["nodes"])
    heads = [] if only is not None else [list(h) for h in graph["heads"]]
    input_heads = {}
    for nid in ours:
        node = graph["nodes"][nid]
        attrs = {}
        if nid in facts and facts[nid][1] is not None:
            attrs["__shape__"] = str(facts[nid][1])
        nodes[nid] = {"op": "null", "name": "%s__gm_out%d" % (node["name"], nid), "attrs": attrs,
                      "inputs": []}
        if only is not None and nid != only:
            continue
        input_heads[nid] = list(range(len(heads), len(heads) + len(node["inputs"])))
        heads += [list(e) for e in node["inputs"]]
    for nid, (in_shapes, _) in facts.items():
        node = graph["nodes"][nid]
        names, _ = SHAPE_RULES[node["op"]](node.get("attrs", {}))
        for entry, name, shape in zip(node["inputs"], names, in_shapes):
            if not _known(shape):
                continue
            # elemwise_add infers each operand from the other: MXNet carries the shape back to
            # whatever produced the entry. Named after the node and input it stands for.
            nodes.append({"op": "null", "name": "%s__gm_%s_shape%d" % (node["name"], name, nid),
                          "attrs": {"__shape__": str(shape)}, "inputs": []})
            nodes.append({"op": "elemwise_add", "name": "%s_input_%s" % (node["name"], name),
                          "inputs": [list(entry), [len(nodes) - 1, 0, 0]]})
            heads.append([len(nodes) - 1, 0, 0])
    cut = {"nodes": nodes, "heads": heads, "attrs": graph.get("attrs", {}),
           "arg_nodes": [i for i, n in enumerate(nodes) if n["op"] == "null"]}
    return mx.sym.load_json(json.dumps(cut)), input_heads


def _resolve(sym, shapes):
    """Shapes of ``sym`` given ``shapes`` {arg name: shape}, without MXNet ever inferring one of
    our nodes with an input of unknown ndim. Returns None for a graph without our operators,
    else (complete, arg shapes {name: shape}, cut-graph result (args, outs, aux), cut symbol)."""
    graph = json.loads(sym.tojson())
    ours = _our_nodes(graph)
    if not ours:
        return None
    facts = {}

    def infer(only=None):
        cut, input_heads = _cut_graph(graph, ours, facts, only)
        given = {k: v for k, v in shapes.items() if k in set(cut.list_arguments())}
        return cut, input_heads, _ORIG["infer"](cut, True, **given)

    def learn(nid, outs, heads):
        """Ask node nid's operator, its inputs as the cut graph saw them; True if that
        changed what is known of it."""
        node = graph["nodes"][nid]
        _, hints = SHAPE_RULES[node["op"]](node.get("attrs", {}))
        seen = [_norm(outs[i]) for i in heads]
        merged = [s if s is not None else (tuple(h) if h is not None else None)
                  for s, h in zip(seen, hints)]
        if any(m is None for m in merged):
            return False  # an input's ndim is still unknown: not safe to ask the operator
        fact = _infer_one(node, merged)
        if fact == facts.get(nid):
            return False
        facts[nid] = fact
        return True

    partial = False
    for _ in range(2 * len(ours) + 2):
        try:
            cut, input_heads, res = infer()
            partial = False
        except MXNetError:
            # Downstream of a node whose output is not known yet, MXNet's partial inference
            # can fail (1.9.1's Concat takes a wrong channel count from partly unknown
            # inputs, e.g. DenseNet's concat(x, f(op(x))); Pooling with a fixed window rejects
            # an unknown size): infer what feeds each node without a complete fact alone, in
            # graph order, each new fact at once in the cut for the next node, so a chain of
            # our nodes is resolved in one sweep.
            pending = [nid for nid in ours if not (nid in facts and _known(facts[nid][1]))]
            if not pending:
                raise
            partial, changed = True, False
            for nid in pending:
                try:
                    _, heads_of, one = infer(nid)
                except MXNetError:
                    continue
                changed = learn(nid, one[1], heads_of[nid]) or changed
            if not changed:
                break
            continue
        changed = False
        for nid in ours:
            changed = learn(nid, res[1], input_heads[nid]) or changed
        if not changed:
            break
    if partial:
        cut, input_heads, res = infer()
    arg_shapes = {n: _norm(s) for n, s in zip(cut.list_arguments(), res[0])}
    complete = all(_known(arg_shapes.get(n)) for n in sym.list_arguments())
    return complete, arg_shapes, res, cut


def _all_given(sym, arg_shapes):
    """Every argument's shape, plus those of the auxiliary states that the cut graph resolved:
    the mutable inputs of our operators (IBN's running statistics), which MXNet would otherwise
    hand the operator's hook with an unknown ndim (module docstring)."""
    given = {n: arg_shapes[n] for n in sym.list_arguments()}
    given.update({n: arg_shapes[n] for n in sym.list_auxiliary_states()
                  if _known(arg_shapes.get(n))})
    return given


def _shape_kwargs(sym, args, kwargs):
    if args:
        return {n: s for n, s in zip(sym.list_arguments(), args) if s is not None}
    return dict(kwargs)


def _infer_shape_impl(self, partial, *args, **kwargs):
    if args and kwargs:  # MXNet's own message
        return _ORIG["infer"](self, partial, *args, **kwargs)
    given = _shape_kwargs(self, args, kwargs)
    resolved = _resolve(self, given)
    if resolved is None:
        return _ORIG["infer"](self, partial, *args, **kwargs)
    complete, arg_shapes, (cargs, couts, caux), cut = resolved
    if complete:
        return _ORIG["infer"](self, partial, **_all_given(self, arg_shapes))
    if not partial:
        return None, None, None
    by_arg = dict(zip(cut.list_arguments(), cargs))
    by_aux = dict(zip(cut.list_auxiliary_states(), caux))
    return ([by_arg[n] for n in self.list_arguments()], list(couts[:len(self.list_outputs())]),
            [by_aux.get(n) for n in self.list_auxiliary_states()])


def _complete_shapes(sym, given, what):
    resolved = _resolve(sym, given)
    if resolved is None:
        return given
    complete, arg_shapes, _, _ = resolved
    if not complete:
        missing = [n for n in sym.list_arguments() if not _known(arg_shapes.get(n))]
        raise MXNetError("%s: cannot infer the shapes of arguments %s from the given shapes %s "
                         "(the graph has gluon_models operators, which MXNet 1.9.1 cannot infer "
                         "with unknown input shapes without corrupting memory; give these shapes)"
                         % (what, missing, given))
    return _all_given(sym, arg_shapes)


def _simple_bind(self, ctx, grad_req="write", type_dict=None, stype_dict=None, group2ctx=None,
                 shared_arg_names=None, shared_exec=None, shared_buffer=None, **kwargs):
    resolved = _complete_shapes(self, kwargs, "simple_bind")
    try:
        return _ORIG["simple_bind"](self, ctx, grad_req, type_dict, stype_dict, group2ctx,
                                    shared_arg_names, shared_exec, shared_buffer, **resolved)
    except MXNetError:
        raise
    except RuntimeError as err:
        if resolved is kwargs:  # not our graph: MXNet's behaviour unchanged
            raise
        # MXNet re-raises the operator's MXNetError as a plain RuntimeError; MXNetError is a
        # RuntimeError, so callers catching either still do.
        raise MXNetError(str(err)) from err


def _reshape(self, partial_shaping=False, allow_up_sizing=False, **kwargs):
    kwargs = _complete_shapes(self._symbol, kwargs, "Executor.reshape")
    return _ORIG["reshape"](self, partial_shaping, allow_up_sizing, **kwargs)


def _check_count(op, args, kwargs, kind):
    """MXNet's own messages for a missing or extra input name no input; these do."""
    names = SHAPE_RULES[op]({k: str(v) for k, v in kwargs.items()})[0]
    given = [a for a in args if isinstance(a, kind)]
    # `out=` (mx.nd) is where the result goes, not an input
    given += [k for k, v in kwargs.items() if isinstance(v, kind) and k != "out"]
    if len(given) < len(names):
        raise ValueError("%s: expects %d inputs %s, got %d: input '%s' is missing"
                         % (op, len(names), tuple(names), len(given), names[len(given)]))
    if len(given) > len(names):  # e.g. a bias passed with no_bias=True
        raise ValueError("%s: expects %d inputs %s with these arguments, got %d"
                         % (op, len(names), tuple(names), len(given)))


def _symbolic(op, fn):
    """mx.sym.<op> that names a missing input (see _check_count)."""
    @functools.wraps(fn)
    def call(*args, **kwargs):
        _check_count(op, args, kwargs, mx.sym.Symbol)
        return fn(*args, **kwargs)
    call._gm_guard = True
    return call


def _eager(op, fn):
    """mx.nd.<op> that refuses, in legacy shape mode, the 0-d and zero-size arrays that MXNet
    would hand the operator as shapes of unknown ndim or extent (module docstring)."""
    @functools.wraps(fn)
    def call(*args, **kwargs):
        _check_count(op, args, kwargs, mx.nd.NDArray)
        names = SHAPE_RULES[op]({k: str(v) for k, v in kwargs.items()})[0]
        arrays = [(names[i] if i < len(names) else "input %d" % i, a) for i, a in enumerate(args)]
        for name, a in arrays + list(kwargs.items()):
            if not isinstance(a, mx.nd.NDArray) or name == "out":
                continue
            if a.ndim == 0:  # the hooks cannot tell it from "unknown" (gm_common.h)
                raise ValueError("%s: input '%s' is 0-d (shape ()), which this operator does "
                                 "not accept" % (op, name))
            if 0 in a.shape and not _np_shape():
                raise ValueError("%s: input '%s' has shape %s; zero-size arrays need "
                                 "mx.util.set_np_shape(True) (legacy shape mode reads 0 as "
                                 "unknown)" % (op, name, a.shape))
        return fn(*args, **kwargs)
    call._gm_guard = True
    return call


def _install_guards():
    """Install the shape inference guard (module docstring), once per process."""
    if _ORIG:
        return
    sym_cls, exe_cls = mx.sym.Symbol, mx.executor.Executor
    _ORIG.update(infer=sym_cls._infer_shape_impl, simple_bind=sym_cls.simple_bind,
                 reshape=exe_cls.reshape)
    sym_cls._infer_shape_impl = _infer_shape_impl
    sym_cls.simple_bind = _simple_bind
    exe_cls.reshape = _reshape
    for op in SHAPE_RULES:
        for mods, wrap in (((mx.nd, mx.nd.op), _eager), ((mx.sym, mx.sym.op), _symbolic)):
            fn = getattr(mods[0], op)
            if not getattr(fn, "_gm_guard", False):
                for mod in set(mods):
                    setattr(mod, op, wrap(op, fn))
