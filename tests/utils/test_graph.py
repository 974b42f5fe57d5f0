"""Network drawings with graphviz (tools/plot_network.py)."""
import os
import runpy
import shutil
import sys

import pytest

import gluon_models
from gluon_models.utils.graph import DotNotFound, plot_network, require_dot

TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "tools")
needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="graphviz's dot is not installed (run `make graphviz`)")


@needs_dot
def test_plot_network_writes_a_png(tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "net.png")
    monkeypatch.setattr(sys, "argv", ["plot_network.py", "--model", "igc_plain_cifar",
                                      "--depth", "5", "--model-opt", "primary=4",
                                      "--output", out])
    runpy.run_path(os.path.join(TOOLS, "plot_network.py"), run_name="__main__")
    assert capsys.readouterr().out.strip() == out
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert not [f for f in os.listdir(str(tmp_path)) if f != "net.png"]  # no leftovers
    svg = plot_network(gluon_models.get_model("igc_plain_cifar", depth=5, primary=4),
                       str(tmp_path / "net.svg"), (3, 32, 32))
    text = open(svg).read()
    assert "Reorder" in text or "reorder" in text  # the native op is drawn
    assert "8x32x32" in text  # edges carry shapes


def test_missing_dot_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing there
    with pytest.raises(DotNotFound, match="make graphviz"):
        require_dot()
    with pytest.raises(DotNotFound, match="dot"):
        plot_network(gluon_models.get_model("igc_plain_cifar", depth=5, primary=4),
                     str(tmp_path / "n.png"), (3, 32, 32))
    with pytest.raises(ValueError, match="extension"):
        plot_network(None, str(tmp_path / "n.jpg"), (3, 32, 32))
