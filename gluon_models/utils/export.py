"""Export registered networks to ``-symbol.json`` + ``-NNNN.params`` (or to ONNX) and load
them back.

The files are the standard MXNet pair written by ``HybridBlock.export`` (plus the checksum
file ``prefix-NNNN.sha256`` that :mod:`.checkpoint` checks on load): they load with
``gluon.SymbolBlock.imports`` and ``mx.mod.Module``. A network built with ``impl="native"``
contains ``Reorder`` ops and needs the operator library (``import gluon_models``) to load; one
built with ``impl="stock"`` needs stock MXNet only. The native op has no parameters, so the
parameter names of the two are identical and :func:`build_and_export` converts one into the
other: build with the other ``impl`` and load the first one's ``checkpoint``.

:func:`export_onnx` writes the same network as an ONNX file: always the stock twin (native
operators cannot leave MXNet), through this module's MXNet export and mxnet's own converter
(``mx.onnx``) at a stated opset, checked with ``onnx.checker``. A layer without an ONNX form
makes it refuse with a ValueError naming the layer.
"""
import contextlib
import json
import logging
import os
import shutil
import tempfile
import warnings

import mxnet as mx
from mxnet import gluon

from ..ops import OPERATORS
from .checkpoint import load_checkpoint, read_params, write_checksums
from .fileio import atomic_write, replace_all

__all__ = ["default_input_shape", "export_model", "build_and_export", "build_model",
           "load_exported", "load_training_checkpoint", "load_checkpoint_params",
           "check_symbol_ops", "export_onnx", "symbol_to_onnx", "ONNX_OPSETS", "ONNX_OPSET"]

_LOG = logging.getLogger(__name__)


def default_input_shape(name):
    """Shape of one input sample, ``(3, S, S)``, that the registered model ``name`` is defined
    for: ``S`` is 224 for ImageNet models and 32 for the ``*_cifar`` ones."""
    # model_zoo is imported where it is used: its layers (nn) register their multiply-add
    # rules in utils.summary at import, so a top-level import here would be a cycle
    from ..model_zoo import model_info
    size = model_info(name)["input_size"]
    return (3, size, size)


def _params_file(prefix, epoch):
    return "%s-%04d.params" % (prefix, epoch)


def _context_of(net):
    for param in net.collect_params().values():
        try:
            return param.list_ctx()[0]
        except RuntimeError:  # deferred initialisation: no context yet
            continue
    return mx.cpu()


def export_model(net, prefix, input_shape, epoch=0):
    """Hybridize ``net``, run it once on zeros and write ``prefix-symbol.json`` and
    ``prefix-%04d.params`` (``epoch``).

    The files are written under a temporary name in the target directory and then moved
    into place with ``os.replace``, so a failed export leaves no partial files and never
    clobbers an existing export. The directory is created when missing.

    Parameters
    ----------
    net : gluon.HybridBlock
        An initialised network.
    prefix : str
        Output path prefix.
    input_shape : tuple of int
        Shape of one sample (no batch axis), e.g. ``(3, 32, 32)``; the forward uses batch 1.
    epoch : int
        Epoch number in the parameter file name.

    Returns
    -------
    (str, str)
        The symbol file and the parameter file written.
    """
    prefix = os.path.abspath(prefix)
    out_dir = os.path.dirname(prefix)
    os.makedirs(out_dir, exist_ok=True)
    net.hybridize()
    net(mx.nd.zeros((1,) + tuple(input_shape), ctx=_context_of(net))).wait_to_read()
    sym_file, params_file = prefix + "-symbol.json", _params_file(prefix, epoch)
    # Same directory, hence the same file system: os.replace is then an atomic rename.
    tmp_dir = tempfile.mkdtemp(prefix=".%s.export-" % os.path.basename(prefix), dir=out_dir)
    try:
        tmp_prefix = os.path.join(tmp_dir, "net")
        net.export(tmp_prefix, epoch)
        # The checksum file the checkpoint readers check (utils/checkpoint.py), so that a
        # loaded export is known intact; the params are renamed last, as in a checkpoint.
        tmp_sums = write_checksums(tmp_prefix, epoch, {
            sym_file: tmp_prefix + "-symbol.json", params_file: _params_file(tmp_prefix, epoch)})
        replace_all([(tmp_prefix + "-symbol.json", sym_file),
                     (tmp_sums, "%s-%04d.sha256" % (prefix, epoch)),
                     (_params_file(tmp_prefix, epoch), params_file)])
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    _LOG.info("exported %s and %s", sym_file, params_file)
    return sym_file, params_file


def _name_list(names, limit=10):
    names = sorted(names)
    text = ", ".join(names[:limit])
    return text + (", ... (%d in all)" % len(names) if len(names) > limit else "")


def load_checkpoint_params(net, prefix, epoch=0):
    """Set the parameters of ``net`` from the MXNet Module / export checkpoint
    ``prefix-%04d.params`` (keys ``arg:<name>`` / ``aux:<name>``).

    The names must be exactly those of ``net.collect_params()`` (a network exported by
    ``HybridBlock.export`` uses them). Missing, unexpected and mis-shaped parameters raise
    ValueError naming them; nothing is skipped silently.
    """
    path = _params_file(prefix, epoch)
    try:
        arg, aux, _ = read_params(path)
    except FileNotFoundError as err:
        raise ValueError(str(err)) from err
    arrays = dict(arg, **aux)
    params = net.collect_params()
    missing = set(params.keys()) - set(arrays)
    unexpected = set(arrays) - set(params.keys())
    if missing or unexpected:
        problems = []
        if missing:
            problems.append("missing from the file: %s" % _name_list(missing))
        if unexpected:
            problems.append("not parameters of the network: %s" % _name_list(unexpected))
        raise ValueError("checkpoint %s does not match the network %s; %s"
                         % (path, net.name, "; ".join(problems)))
    wrong = ["%s (network %s, file %s)" % (n, params[n].shape, arrays[n].shape)
             for n in sorted(arrays) if tuple(params[n].shape) != arrays[n].shape]
    if wrong:
        raise ValueError("checkpoint %s has parameters of the wrong shape: %s"
                         % (path, "; ".join(wrong)))
    for name, param in params.items():
        param.set_data(arrays[name])


def build_and_export(name, prefix, impl="native", input_shape=None, params=None,
                     checkpoint=None, **options):
    """Build the registered model ``name``, load its weights and export it.

    Parameters
    ----------
    name : str
        Registered model name (see :func:`gluon_models.list_models`).
    prefix : str
        Output prefix; writes ``prefix-symbol.json`` and ``prefix-0000.params``.
    impl : {"native", "stock"}
        Operator implementation of the exported network.
    input_shape : tuple of int, optional
        One sample's shape; default :func:`default_input_shape` of the model.
    params : str, optional
        A Gluon ``.params`` file written by ``save_parameters``.
    checkpoint : (str, int), optional
        ``(prefix, epoch)`` of a Module or export checkpoint (see
        :func:`load_checkpoint_params`). A checkpoint exported with one ``impl`` loads into
        the other: this is how a native export is converted to a stock one.
    **options
        Builder options (``classes``, ``depth``, ...).

    Without ``params`` or ``checkpoint`` the network keeps its initial weights.

    Returns
    -------
    (str, str)
        The symbol file and the parameter file written.
    """
    net = build_model(name, impl, params, checkpoint, **options)
    if input_shape is None:
        input_shape = default_input_shape(name)
    return export_model(net, prefix, input_shape)


def build_model(name, impl="native", params=None, checkpoint=None, ctx=None, **options):
    """Build the registered model ``name`` on ``ctx`` (default CPU) with the weights of a
    Gluon ``params`` file or a Module/export ``checkpoint=(prefix, epoch)`` (see
    :func:`build_and_export`); with neither, the initialiser's."""
    if params is not None and checkpoint is not None:
        raise ValueError("give params or checkpoint, not both")
    from ..model_zoo import get_model  # not at the top: see default_input_shape
    ctx = mx.cpu() if ctx is None else ctx
    net = get_model(name, impl=impl, **options)
    net.initialize(ctx=ctx)
    if params is not None:
        # Gluon would read arg:/aux: keys through its legacy prefix rules and report
        # doubled-prefix names; say what the file is instead.
        keys = mx.nd.load(params) if os.path.isfile(params) else {}
        if isinstance(keys, dict) and keys and all(k[:4] in ("arg:", "aux:") for k in keys):
            raise ValueError("%s is a Module/export checkpoint (arg:/aux: names); load it "
                             "with checkpoint=(prefix, epoch)" % params)
        try:
            net.load_parameters(params, ctx=ctx)
        except AssertionError as err:  # Gluon reports missing / mis-shaped names this way
            raise ValueError("cannot load %s into %s: %s" % (params, name, err)) from err
    elif checkpoint is not None:
        ckpt_prefix, ckpt_epoch = checkpoint
        load_checkpoint_params(net, ckpt_prefix, int(ckpt_epoch))
    return net


def check_symbol_ops(sym_file):
    """Raise ValueError naming every operator of the symbol file ``sym_file`` that this
    process's MXNet has not registered.

    MXNet's own loader stops at the first such node with "Operator Reorder is not
    registered", which does not say that the operator library is missing. A native export
    needs ``import gluon_models`` first (in a process where the package is imported, a missing
    native op means the library did not load); a stock export (``impl="stock"``) needs
    nothing. Unreadable files are left to MXNet's loader, whose errors name them.
    """
    try:
        with open(sym_file) as fh:
            nodes = json.load(fh).get("nodes", [])
        used = {n["op"] for n in nodes if n.get("op", "null") != "null"}
    except (OSError, ValueError, AttributeError, TypeError, KeyError):
        return
    missing = sorted(used - set(mx.operator.get_all_registered_operators()))
    if not missing:
        return
    native = [op for op in missing if op in OPERATORS]
    raise ValueError(
        "%s uses operator(s) %s that this MXNet does not have registered; %s"
        % (sym_file, ", ".join(missing),
           "%s %s gluon-models' native operator(s): `import gluon_models` before loading "
           "the symbol (it loads the operator library), or re-export the network with "
           "impl='stock' (tools/export_model.py --impl stock), which needs stock MXNet only"
           % (", ".join(native), "is" if len(native) == 1 else "are") if native else
           "the symbol was written by another MXNet version or an extension library"))


def load_training_checkpoint(prefix, epoch, ctx=None):
    """The network of a training checkpoint (``prefix-symbol.json`` as the trainer writes it,
    softmax head and extra losses included, + ``prefix-%04d.params``) as a
    ``gluon.SymbolBlock`` returning the logits (input ``data``)."""
    check_symbol_ops("%s-symbol.json" % prefix)
    sym, arg, aux, _ = load_checkpoint(prefix, epoch)
    head = sym[0] if len(sym.list_outputs()) > 1 else sym  # the softmax head comes first
    if head.list_outputs() != ["softmax_output"]:
        raise ValueError("%s-symbol.json is not a training checkpoint (its first output is %s, "
                         "not the softmax head); load an export with load_exported"
                         % (prefix, head.list_outputs()[0]))
    logits = head.get_children()[0]
    with warnings.catch_warnings():  # the input dtype is only known at the first call
        warnings.filterwarnings("ignore", message="Cannot decide type")
        net = gluon.SymbolBlock(logits, mx.sym.var("data"))
    params = net.collect_params()
    arrays = dict(arg, **aux)
    missing = set(params.keys()) - set(arrays)
    if missing:
        raise ValueError("checkpoint %s-%04d.params lacks parameters of its own symbol: %s"
                         % (prefix, epoch, _name_list(missing)))
    params.load_dict({n: arrays[n] for n in params.keys()}, ctx=mx.cpu() if ctx is None else ctx)
    return net


def load_exported(prefix, epoch=0, ctx=None):
    """Load ``prefix-symbol.json`` + ``prefix-%04d.params`` as a ``gluon.SymbolBlock``
    (input ``data``). The operator library is already loaded with this package, so native
    exports load too."""
    ctx = mx.cpu() if ctx is None else ctx
    check_symbol_ops(prefix + "-symbol.json")
    with warnings.catch_warnings():  # the input dtype is only known at the first call
        warnings.filterwarnings("ignore", message="Cannot decide type")
        return gluon.SymbolBlock.imports(prefix + "-symbol.json", ["data"],
                                         _params_file(prefix, epoch), ctx=ctx)


# ---- ONNX --------------------------------------------------------------------------------------

# The opsets mxnet 1.9.1's converter (mx.onnx) translates to; the file states the one used.
ONNX_OPSETS = (12, 13)
ONNX_OPSET = 13


def _import_onnx():
    try:
        import onnx
        from mxnet.onnx.mx2onnx._export_onnx import MXNetGraph
    except ImportError as err:
        raise ImportError("ONNX export needs the onnx package (pip install onnx==1.14.1, "
                          "see requirements.txt): %s" % err) from err
    # the translation functions register themselves when their modules are imported
    from mxnet.onnx.mx2onnx import _op_translations  # noqa: F401
    MXNetGraph.registry_.setdefault(12, {}).setdefault("_random_normal_like",
                                                       _random_normal_like)
    return onnx, MXNetGraph


def _random_normal_like(node, **kwargs):
    """ONNX ``RandomNormalLike`` for MXNet's ``random.normal_like`` (its converter has none):
    in-graph noise drawn in the input's shape and dtype, e.g. the GM-SOP gate noise, which
    the network multiplies by its train-mode flag (0 in an inference graph)."""
    import onnx
    from mxnet.onnx.mx2onnx._op_translations._op_translations_opset12 import get_inputs
    name, inputs, attrs = get_inputs(node, kwargs)
    return [onnx.helper.make_node("RandomNormalLike", inputs, [name], name=name,
                                  mean=float(attrs.get("loc", 0.0)),
                                  scale=float(attrs.get("scale", 1.0)))]


def _onnx_refusals(nodes, opset, registry):
    """``layer (op): reason`` for every node of an MXNet symbol that has no ONNX form."""
    refused = []
    for node in nodes:
        op, name = node["op"], node["name"]
        if op == "null":
            continue
        if op in OPERATORS:
            refused.append("%s (%s): a native operator of gluon-models; export the stock twin "
                           "(impl='stock')" % (name, op))
        elif not any(op in registry.get(v, {}) for v in range(opset, 11, -1)):
            refused.append("%s (%s): mxnet's ONNX converter has no translation for it"
                           % (name, op))
        elif op == "Reshape":
            codes = [int(v) for v in node.get("attrs", {}).get("shape", "()").strip(
                "()[] ").replace("L", "").split(",") if v.strip()]
            if any(v < -1 for v in codes):
                refused.append("%s (Reshape %s): MXNet-only reshape codes (< -1)"
                               % (name, tuple(codes)))
    return refused


@contextlib.contextmanager
def _converter(graph_class, checker, opset):
    """mxnet's ONNX converter (``graph_class``) made to name the layer it failed on (it reports
    only the op's complaint) and to check its graph against ``opset``, the one it translated
    to (it checks against onnx's newest, where e.g. ReduceMean's axes are no attribute)."""
    original = graph_class.__dict__["convert_layer"]
    context = checker.DEFAULT_CONTEXT
    default_opsets = dict(context.opset_imports)

    def convert_layer(node, **kwargs):
        try:
            return original.__func__(node, **kwargs)
        except Exception as err:  # re-raised with the layer's name
            raise ValueError("layer %s (%s) cannot be exported to ONNX: %s"
                             % (node.get("name"), node.get("op"), err)) from err

    graph_class.convert_layer = staticmethod(convert_layer)
    context.opset_imports = {"": opset}
    try:
        yield
    finally:
        graph_class.convert_layer = original
        context.opset_imports = default_opsets


def symbol_to_onnx(sym_file, params_file, path, input_shape, dynamic_batch=False,
                   opset=ONNX_OPSET, doc="", source=None):
    """Convert an MXNet export (``-symbol.json`` + ``.params``, input ``data``) of stock ops to
    the ONNX file ``path``.

    Parameters
    ----------
    input_shape : tuple of int
        The full input shape, batch axis included, e.g. ``(1, 3, 224, 224)``.
    dynamic_batch : bool
        Leave the batch axis of the input and output free (``N``) instead of fixed.
    opset : int
        ONNX opset of the file, one of :data:`ONNX_OPSETS`.
    doc, source : str
        The model's ONNX ``doc_string``; what error messages call the network (default
        ``sym_file``).

    A layer without an ONNX form (a native operator, an op mxnet's converter does not
    translate, an MXNet-only reshape code) raises ValueError naming every such layer, before
    anything is written. The model is checked with ``onnx.checker`` (full check, shape
    inference included) and written atomically. Returns ``path``.
    """
    onnx, graph_class = _import_onnx()
    from onnx import helper
    if opset not in ONNX_OPSETS:
        raise ValueError("opset must be one of %s (mxnet 1.9.1's ONNX converter), got %r"
                         % (ONNX_OPSETS, opset))
    input_shape = tuple(int(d) for d in input_shape)
    with open(sym_file) as fh:
        nodes = json.load(fh)["nodes"]
    refused = _onnx_refusals(nodes, opset, graph_class.registry_)
    if refused:
        more = len(refused) - 20
        raise ValueError("%s cannot be exported to ONNX; layers without an ONNX form:\n  %s%s"
                         % (source or sym_file, "\n  ".join(refused[:20]),
                            "\n  ... and %d more" % more if more > 0 else ""))
    sym = mx.sym.load(sym_file)
    try:
        arg, aux, _ = read_params(params_file)
        params = dict(arg, **aux)
    except ValueError:
        if mx.nd.load(params_file) != []:  # [] is what a network without parameters saves
            raise
        params = {}
    inputs = [n for n in sym.list_inputs() if n not in params]
    if inputs != ["data"]:
        raise ValueError("%s: expected one input 'data' besides the parameters, got %s"
                         % (sym_file, inputs))
    dtype = onnx.TensorProto.FLOAT
    with _converter(graph_class, onnx.checker, opset):
        graph = graph_class().create_onnx_graph_proto(
            sym, params, [input_shape], [dtype], opset_version=opset, dynamic=dynamic_batch,
            dynamic_input_shapes=[(None,) + input_shape[1:]] if dynamic_batch else None)
    model = helper.make_model(graph, producer_name="gluon-models",
                              opset_imports=[helper.make_opsetid("", opset)], doc_string=doc)
    onnx.checker.check_model(model, full_check=True)
    atomic_write(path, lambda tmp: onnx.save(model, tmp))
    _LOG.info("exported %s (ONNX opset %d, input %s%s)", path, opset, input_shape,
              ", dynamic batch" if dynamic_batch else "")
    return path


def export_onnx(model, path, input_shape=None, batch_size=1, dynamic_batch=False,
                opset=ONNX_OPSET, params=None, checkpoint=None, **options):
    """Write a network's stock twin as the ONNX file ``path`` (see :func:`symbol_to_onnx`).

    Parameters
    ----------
    model : str or gluon.HybridBlock
        A registered model name (built with ``impl="stock"`` and the weights of ``params`` or
        ``checkpoint``, as :func:`build_model`), or an initialised network built with
        ``impl="stock"``.
    path : str
        Output file, e.g. ``NAME.onnx``.
    input_shape : tuple of int, optional
        One sample's shape; default :func:`default_input_shape` of a registered model.
    batch_size : int
        Batch axis of the input when it is fixed (and the size the graph is traced with).
    dynamic_batch : bool
        Free batch axis.
    opset : int
        ONNX opset, one of :data:`ONNX_OPSETS`.
    params, checkpoint, **options
        As :func:`build_and_export` (``impl`` may only be ``"stock"``).

    Returns ``path``.
    """
    if isinstance(model, str):
        impl = options.pop("impl", "stock")
        if impl != "stock":
            raise ValueError("ONNX export always goes through the stock twin (native "
                             "operators cannot leave MXNet); got impl=%r" % (impl,))
        if input_shape is None:
            input_shape = default_input_shape(model)
        name, net = model, build_model(model, "stock", params, checkpoint, **options)
    else:
        if params is not None or checkpoint is not None or options:
            raise ValueError("params, checkpoint and builder options apply to a registered "
                             "model name, not to a network object")
        if input_shape is None:
            raise ValueError("input_shape is needed for a network object")
        name, net = model.name, model
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ValueError("batch_size must be a positive integer, got %r" % (batch_size,))
    out_dir = os.path.dirname(os.path.abspath(path))
    os.makedirs(out_dir, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=".%s.onnx-" % os.path.basename(path), dir=out_dir)
    try:
        sym_file, params_file = export_model(net, os.path.join(tmp_dir, "net"),
                                             tuple(input_shape))
        return symbol_to_onnx(sym_file, params_file, path,
                              (batch_size,) + tuple(input_shape), dynamic_batch, opset,
                              doc="%s (gluon-models), stock twin" % name,
                              source="network %s" % name)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
