"""Drawings of network graphs with graphviz (``mx.viz.plot_network``, spec platform.md §8).

Rendering needs graphviz's ``dot`` program (``make graphviz``, or ``apt-get install -y
graphviz``); the Python ``graphviz`` package that mxnet pins only writes the description."""
import os
import shutil
import tempfile

import mxnet as mx

from .fileio import atomic_write

__all__ = ["DotNotFound", "require_dot", "network_symbol", "plot_network"]

FORMATS = ("png", "pdf", "svg")


class DotNotFound(RuntimeError):
    """graphviz's ``dot`` program is not installed (or not on ``PATH``)."""


def require_dot():
    """Path of ``dot``; :class:`DotNotFound` saying how to install it otherwise."""
    path = shutil.which("dot")
    if path is None:
        raise DotNotFound("graphviz's `dot` program is not on PATH: install it with `make "
                          "graphviz` (or `apt-get install -y graphviz`, `brew install "
                          "graphviz`, `conda install graphviz`)")
    return path


def network_symbol(net):
    """The symbol of a Gluon network on the input ``data`` (no export needed)."""
    return net(mx.sym.var("data"))


def plot_network(net, path, input_shape, title=None):
    """Draw ``net`` (a Gluon block or a Symbol) into ``path`` (``.png``, ``.pdf`` or ``.svg``,
    by its extension), each node labelled with its output shape for one input of
    ``input_shape`` (one sample, e.g. ``(3, 224, 224)``). Returns ``path``."""
    fmt = os.path.splitext(path)[1].lstrip(".").lower()
    if fmt not in FORMATS:
        raise ValueError("output %s: the extension must be one of %s" % (path, FORMATS))
    require_dot()
    sym = net if isinstance(net, mx.sym.Symbol) else network_symbol(net)
    # fixedsize=false: long node names otherwise make dot warn "size too small for label"
    dot = mx.viz.plot_network(sym, title=title or "plot", save_format=fmt,
                              shape={"data": (1,) + tuple(input_shape)},
                              node_attrs={"fixedsize": "false"})
    with tempfile.TemporaryDirectory() as tmp:
        rendered = dot.render(filename="net", directory=tmp, cleanup=True)
        atomic_write(path, lambda out: shutil.copyfile(rendered, out))
    return path
