"""Parameters and multiply-adds of a network, per layer and in total.

Works on the symbol graph (a hybrid block is traced with ``net(mx.sym.var('data'))``, the
graph it exports) and on shapes from ``infer_shape``, so it needs no weights and no forward
pass. ``mx.viz.print_summary`` is not used: it miscounts FullyConnected weights after
convolutions (spec platform.md section 8).

Counting rules, for one sample (batch 1):

* parameters: every learnable argument of the graph, i.e. all arguments except the data
  inputs, ``*label`` inputs, Gluon constants (``params.get_constant``, e.g. an index table)
  and the gamma of a BatchNorm with ``fix_gamma=True``; auxiliary
  states (BatchNorm running mean / variance) are not parameters. A parameter is listed on
  the first layer that uses it.
* multiply-adds: one rule per operator, from a table that a layer family extends with
  :func:`register_macs` (the FB layer's module registers its ``FMConvolution1/3`` rule).
  Built in: Convolution ``out_elems * (C_in / groups) * k_h * k_w`` and FullyConnected
  ``out_elems * in_units``, the rule that gives the IGCNets paper's FLOPs column (spec
  igc.md section 4.1); the matrix products ``batch_dot``, ``dot`` and ``linalg_gemm2``
  ``out_elems * k`` (``m * n * k`` per product, times the op's own batch, e.g. the channel
  groups of one sample in a second-order head). Biases and every op without a rule count 0.
"""
import json
import re
from collections import namedtuple

import mxnet as mx
from mxnet import gluon

__all__ = ["LayerRow", "Summary", "summary", "model_summary", "format_summary", "register_macs"]

LayerRow = namedtuple("LayerRow", ["name", "op", "output_shape", "params", "macs"])
LayerRow.__doc__ = """One op of the graph: its name, operator, output shape (batch 1; the
first output for multi-output ops), learnable parameters it uses first, multiply-adds."""

_MAC_RULES = {}


def register_macs(op_name, fn):
    """Count the multiply-adds of every ``op_name`` node with ``fn``; returns ``fn``.

    ``fn(attrs, in_shapes, out_shapes) -> int`` gets the node's attributes as written in the
    graph JSON (strings, e.g. ``{"transpose_a": "True"}``; defaults are absent), the shapes of
    its inputs in order (weights included) and of its outputs, all for a batch-1 input, and
    returns the multiply-adds of one sample. A later registration for the same op replaces
    the earlier one, so a module that is reloaded registers again without error.
    """
    if not callable(fn):
        raise TypeError("register_macs needs a callable, got %r" % (fn,))
    _MAC_RULES[op_name] = fn
    return fn


def _weighted_macs(attrs, in_shapes, out_shapes):
    # weight (out, in/groups, k_h, k_w) or (out, in): each output element costs one
    # multiply-add per weight of its filter; a convolution that runs merged groups
    # (nn.MergedGroupConv2D, attribute __merged_groups__) multiplies zeros in all but one of
    # them: its useful work is the plain grouped convolution's
    return _size(out_shapes[0]) * _size(in_shapes[1][1:]) // int(attrs.get(
        "__merged_groups__", 1))


def _product_macs(inner):
    """A matrix-product rule: each output element is one dot product of length
    ``inner(attrs, shape of the first operand)``."""
    def rule(attrs, in_shapes, out_shapes):
        return _size(out_shapes[0]) * inner(attrs, in_shapes[0])
    return rule


register_macs("Convolution", _weighted_macs)
register_macs("GroupConv", _weighted_macs)  # the native grouped conv (nn.DirectGroupConv2D)
register_macs("FullyConnected", _weighted_macs)
# batch_dot: (..., m, k) x (..., k, n); transpose_a makes the first operand (..., k, m)
register_macs("batch_dot", _product_macs(
    lambda attrs, a: a[-2] if _is_true(attrs.get("transpose_a", False)) else a[-1]))
# dot contracts the last axis of a with the first of b; transpose_a reverses a's axes
register_macs("dot", _product_macs(
    lambda attrs, a: a[0] if _is_true(attrs.get("transpose_a", False)) else a[-1]))
# linalg_gemm2: rows on `axis` (default -2), columns on the last axis
register_macs("_linalg_gemm2", _product_macs(
    lambda attrs, a: a[int(attrs.get("axis", -2))] if _is_true(attrs.get("transpose_a", False))
    else a[-1]))


class Summary(namedtuple("Summary", ["rows", "params", "macs", "aux", "input_shape"])):
    """Result of :func:`summary`: ``rows`` (list of :class:`LayerRow`), total learnable
    ``params``, total ``macs`` (multiply-adds), ``aux`` (number of auxiliary-state elements,
    not counted as parameters) and the ``input_shape`` of one sample."""

    __slots__ = ()

    def __str__(self):
        return format_summary(self)


def _is_true(text):
    return str(text).strip().lower() in ("1", "true")


def _as_symbol(net_or_symbol, data_name):
    if isinstance(net_or_symbol, mx.sym.Symbol):
        return net_or_symbol
    if isinstance(net_or_symbol, gluon.HybridBlock):
        out = net_or_symbol(mx.sym.var(data_name))
        return mx.sym.Group(list(out)) if isinstance(out, (list, tuple)) else out
    raise TypeError("summary needs a gluon.HybridBlock or an mx.sym.Symbol, got %s"
                    % type(net_or_symbol).__name__)


def _is_constant(node):
    # A Gluon constant (``params.get_constant``: an index table, fixed hashes) is a graph
    # variable whose initialiser Gluon names ``Constant_<param name>_<id>``; it is not learnt.
    return str(node.get("attrs", {}).get("__init__", "")).startswith("Constant_")


def _size(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def summary(net_or_symbol, input_shape, data_name="data"):
    """Per-layer and total parameters and multiply-adds of a network.

    Parameters
    ----------
    net_or_symbol : gluon.HybridBlock or mx.sym.Symbol
        A block (traced on a symbol variable ``data_name``; it need not be initialised) or
        a symbol whose data input is ``data_name``.
    input_shape : tuple of int
        Shape of one sample, without the batch axis, e.g. ``(3, 224, 224)``.
    data_name : str
        Name of the data input.

    Returns
    -------
    Summary
    """
    sym = _as_symbol(net_or_symbol, data_name)
    data_shape = (1,) + tuple(int(d) for d in input_shape)
    args = sym.list_arguments()
    if data_name not in args:
        raise ValueError("the symbol has no input %r; its arguments: %s"
                         % (data_name, ", ".join(args)))
    try:
        arg_shapes, _, aux_shapes = sym.infer_shape(**{data_name: data_shape})
    except mx.base.MXNetError as err:
        raise ValueError("shape inference failed for %s=%s: %s"
                         % (data_name, data_shape, err)) from err
    if arg_shapes is None or any(s is None or 0 in s for s in arg_shapes):
        raise ValueError("cannot infer every shape from %s=%s" % (data_name, data_shape))
    arg_shape = dict(zip(args, arg_shapes))
    internals = sym.get_internals()
    out_names = internals.list_outputs()
    _, out_shapes, _ = internals.infer_shape(**{data_name: data_shape})

    nodes = json.loads(sym.tojson())["nodes"]
    # get_internals() lists the visible outputs of every node in graph order: a variable as
    # its name, an op as `<name>_output` or `<name>_output<k>`. Walk both lists together so
    # that ops with equal names still get their own shapes.
    node_shapes, k = [], 0
    for node in nodes:
        shapes, own = [], re.compile(r"%s(_output\d*)?$" % re.escape(node["name"]))
        while k < len(out_names) and own.match(out_names[k]):
            shapes.append(out_shapes[k])
            k += 1
        node_shapes.append(shapes)

    fixed_gamma = set()
    for node in nodes:
        if node["op"] == "BatchNorm" and _is_true(node.get("attrs", {}).get("fix_gamma", True)):
            fixed_gamma.add(node["inputs"][1][0])
    learnable = {i for i, node in enumerate(nodes)
                 if node["op"] == "null" and node["name"] in arg_shape
                 and node["name"] != data_name and not node["name"].endswith("label")
                 and i not in fixed_gamma and not _is_constant(node)}

    rows, seen = [], set()
    for node, shapes in zip(nodes, node_shapes):
        if node["op"] == "null":
            continue
        inputs = [i for i, _, _ in node["inputs"]]
        params = 0
        for i in inputs:
            if i in learnable and i not in seen:
                seen.add(i)
                params += _size(arg_shape[nodes[i]["name"]])
        macs, rule = 0, _MAC_RULES.get(node["op"])
        if rule is not None:
            # an input is output `j` of node `i`: a variable, or computed (e.g. the FB
            # layer's masked weights)
            in_shapes = [node_shapes[i][j] if j < len(node_shapes[i]) else None
                         for i, j, _ in node["inputs"]]
            if not shapes or any(s is None for s in in_shapes + shapes):
                raise ValueError("no input or output shape for %s %r"
                                 % (node["op"], node["name"]))
            macs = int(rule(node.get("attrs", {}), in_shapes, shapes))
        rows.append(LayerRow(node["name"], node["op"], tuple(shapes[0] if shapes else ()),
                             params, macs))
    return Summary(rows, sum(r.params for r in rows), sum(r.macs for r in rows),
                   sum(_size(s) for s in aux_shapes), tuple(input_shape))


def model_summary(name, input_shape=None, **options):
    """:func:`summary` of the registered model ``name`` built with ``options``; the input
    defaults to the model's (:func:`gluon_models.utils.default_input_shape`)."""
    from ..model_zoo import get_model
    from .export import default_input_shape
    net = get_model(name, **options)
    return summary(net, default_input_shape(name) if input_shape is None else input_shape)


def _giga(n):
    return "%.3f G" % (n / 1e9)


def format_summary(result, per_layer=True):
    """A text table of a :class:`Summary`: one line per layer (``per_layer``) and totals."""
    lines = []
    if per_layer:
        head = ("Layer", "Op", "Output shape", "Params", "Mult-adds")
        body = [(r.name, r.op, "x".join(str(d) for d in r.output_shape[1:]) or "-",
                 "{:,}".format(r.params), "{:,}".format(r.macs)) for r in result.rows]
        widths = [max(len(row[i]) for row in [head] + body) for i in range(len(head))]
        fmt = "  ".join("%%-%ds" % w if i < 3 else "%%%ds" % w for i, w in enumerate(widths))
        rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
        lines += [fmt % head, rule] + [fmt % row for row in body] + [rule]
    lines += ["Input: %s (batch 1)" % "x".join(str(d) for d in result.input_shape),
              "Learnable parameters: {:,}".format(result.params),
              "Auxiliary states (not learnable): {:,}".format(result.aux),
              "Multiply-adds: {:,} ({})".format(result.macs, _giga(result.macs))]
    return "\n".join(lines)
