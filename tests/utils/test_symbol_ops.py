"""Loading a symbol whose operators this MXNet lacks names the operators and the remedy
(``import gluon_models`` for the native ones, or a stock export) instead of MXNet's
"Operator Reorder is not registered"."""
import json

import mxnet as mx
import pytest
from mxnet.gluon import nn

from gluon_models.nn import Reorder
from gluon_models.utils import export_model, load_exported, load_training_checkpoint
from gluon_models.utils.export import check_symbol_ops


def _native_export(tmp_path):
    net = nn.HybridSequential(prefix="net_")
    with net.name_scope():
        net.add(nn.Conv2D(4, 1, in_channels=2), Reorder(2))
    net.initialize()
    export_model(net, str(tmp_path / "native"), (2, 3, 3))
    return str(tmp_path / "native")


def _without(monkeypatch, op):
    # what a process that has not loaded the operator library sees
    registered = mx.operator.get_all_registered_operators()
    monkeypatch.setattr(mx.operator, "get_all_registered_operators",
                        lambda: [o for o in registered if o != op])


def test_native_export_without_the_library_says_import_gluon_models(tmp_path, monkeypatch):
    prefix = _native_export(tmp_path)
    assert load_exported(prefix)(mx.nd.ones((1, 2, 3, 3))).shape == (1, 4, 3, 3)
    _without(monkeypatch, "Reorder")
    with pytest.raises(ValueError, match="native-symbol.json uses operator\\(s\\) Reorder .*"
                                         "`import gluon_models` before loading.*impl='stock'"):
        load_exported(prefix)


def _with_unknown_op(sym_file):
    with open(sym_file) as fh:
        graph = json.load(fh)
    next(n for n in graph["nodes"] if n["op"] == "Convolution")["op"] = "NoSuchConvolution"
    with open(sym_file, "w") as fh:
        json.dump(graph, fh)


def test_unknown_operator_is_named_by_every_loader(tmp_path):
    prefix = _native_export(tmp_path)
    _with_unknown_op(prefix + "-symbol.json")
    # MXNet's own loader fails with "Failed loading Op ... is not registered", an MXNetError
    with pytest.raises(ValueError, match="uses operator\\(s\\) NoSuchConvolution that this "
                                         "MXNet does not have registered; the symbol was "
                                         "written by another MXNet"):
        load_exported(prefix)
    with pytest.raises(ValueError, match="NoSuchConvolution"):
        load_training_checkpoint(prefix, 0)


def test_unreadable_files_are_left_to_the_loaders(tmp_path):
    check_symbol_ops(str(tmp_path / "missing-symbol.json"))  # no error of its own
    (tmp_path / "bad-symbol.json").write_text("{not json")
    check_symbol_ops(str(tmp_path / "bad-symbol.json"))
