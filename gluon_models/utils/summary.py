"""Parameters and multiply-adds of a network, per layer and in total.

Works on the symbol graph (a hybrid block is traced with ``net(mx.sym.var('data'))``, the
graph it exports) and on shapes from ``infer_shape``, so it needs no weights and no forward
pass. ``mx.viz.print_summary`` is not used: it miscounts FullyConnected weights after
convolutions (spec platform.md section 8).

Counting rules, for one sample (batch 1):

* parameters: every learnable argument of the graph, i.e. all arguments except the data
  inputs, ``*label`` inputs and the gamma of a BatchNorm with ``fix_gamma=True``; auxiliary
  states (BatchNorm running mean / variance) are not parameters. A parameter is listed on
  the first layer that uses it.
* multiply-adds: Convolution ``out_elems * (C_in / groups) * k_h * k_w`` and FullyConnected
  ``out_elems * in_units``; biases and every other op count 0. This is the rule that gives
  the IGCNets paper's FLOPs column (spec igc.md section 4.1). The FB quadratic term
  (``FMConvolution1/3``, weight ``(O, F, C/G, kh, kw)``) counts ``out_elems * (F + 1) *
  (C/G) * kh * kw``: its projection GEMM and its diagonal correction (spec fbn.md 1.5), i.e.
  exactly the two Convolutions of its stock twin.
"""
import json
import re
from collections import namedtuple

import mxnet as mx
from mxnet import gluon

__all__ = ["LayerRow", "Summary", "summary", "model_summary", "format_summary"]

LayerRow = namedtuple("LayerRow", ["name", "op", "output_shape", "params", "macs"])
LayerRow.__doc__ = """One op of the graph: its name, operator, output shape (batch 1; the
first output for multi-output ops), learnable parameters it uses first, multiply-adds."""

_MAC_OPS = ("Convolution", "FullyConnected", "FMConvolution1", "FMConvolution3")


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
    node_shape, k = [], 0
    for node in nodes:
        first, own = None, re.compile(r"%s(_output\d*)?$" % re.escape(node["name"]))
        while k < len(out_names) and own.match(out_names[k]):
            first = out_shapes[k] if first is None else first
            k += 1
        node_shape.append(first)

    fixed_gamma = set()
    for node in nodes:
        if node["op"] == "BatchNorm" and _is_true(node.get("attrs", {}).get("fix_gamma", True)):
            fixed_gamma.add(node["inputs"][1][0])
    learnable = {i for i, node in enumerate(nodes)
                 if node["op"] == "null" and node["name"] in arg_shape
                 and node["name"] != data_name and not node["name"].endswith("label")
                 and i not in fixed_gamma}

    rows, seen = [], set()
    for node, shape in zip(nodes, node_shape):
        if node["op"] == "null":
            continue
        inputs = [i for i, _, _ in node["inputs"]]
        params = 0
        for i in inputs:
            if i in learnable and i not in seen:
                seen.add(i)
                params += _size(arg_shape[nodes[i]["name"]])
        macs = 0
        if node["op"] in _MAC_OPS:
            w = inputs[1]  # a variable, or computed (the FB layer's, e.g. masked weights)
            weight = arg_shape.get(nodes[w]["name"]) if nodes[w]["op"] == "null" \
                else node_shape[w]
            if weight is None or shape is None:
                raise ValueError("no weight or output shape for %s %r"
                                 % (node["op"], node["name"]))
            # weight (out, in/groups, k_h, k_w) or (out, in): each output element costs
            # one multiply-add per weight of its filter; FB weight (out, F, in/groups, k_h,
            # k_w): F projections plus the diagonal correction.
            macs = _size(shape) * _size(weight[1:])
            if node["op"].startswith("FMConvolution"):
                macs += _size(shape) * _size(weight[2:])
        rows.append(LayerRow(node["name"], node["op"], tuple(shape or ()), params, macs))
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
              "Multiply-adds (conv, fc, FB): {:,} ({})".format(result.macs, _giga(result.macs))]
    return "\n".join(lines)
