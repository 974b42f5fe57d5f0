"""Training-log parsing (MXNet's line format), summaries, curve PNGs and tools/show_log.py."""
import logging
import os
import runpy
import subprocess
import sys

import pytest

from gluon_models.training import FitConfig, fit
from gluon_models.utils.logs import parse_log, plot_logs, summarize

from ..training import synthetic as S

TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "tools")
PNG = b"\x89PNG\r\n\x1a\n"

# Two workers writing one file, a run killed in epoch 2, its resume, then a retrain.
LOG = """\
2026-11-22 10:00:00,000 Node[0] start with arguments Namespace(lr=0.1)
2026-11-22 10:00:00,000 Node[1] start with arguments Namespace(lr=0.1)
2026-11-22 10:00:01,000 Node[0] Epoch[0] Batch [0-10]\tSpeed: 100.00 samples/sec\taccuracy=0.1
2026-11-22 10:00:01,000 Node[0] Epoch[0] Batch [0-20]\tSpeed: 300.00 samples/sec\taccuracy=0.2
2026-11-22 10:00:01,000 Node[1] Epoch[0] Batch [0-20]\tSpeed: 999.00 samples/sec\taccuracy=0.9
2026-11-22 10:00:01,000 Node[0] Epoch[0] Train-accuracy=0.250000
2026-11-22 10:00:01,000 Node[1] Epoch[0] Train-accuracy=0.990000
2026-11-22 10:00:01,000 Node[0] Epoch[0] Train-top_k_accuracy_5=0.600000
2026-11-22 10:00:01,000 Node[0] Epoch[0] Time cost=12.500
2026-11-22 10:00:01,000 Node[0] Epoch[0] Validation-accuracy=0.300000
2026-11-22 10:00:01,000 Node[0] Epoch[0] Validation-top_k_accuracy_5=0.700000
2026-11-22 10:00:01,000 Node[0] Epoch[1] Train-accuracy=0.400000
2026-11-22 10:00:01,000 Node[0] Epoch[1] Validation-accuracy=0.450000
2026-11-22 10:00:01,000 Node[0] Epoch[1] Validation-cross-entropy=1.500000
2026-11-22 10:00:01,000 Node[0] Epoch[2] Batch [0-10]\tSpeed: 50.00 samples/sec\taccuracy=0.1
2026-11-22 10:00:02,000 Node[0] start with arguments Namespace(load_epoch=2)
2026-11-22 10:00:02,000 Node[0] Resuming from m-0002 (update 20)
2026-11-22 10:00:03,000 Node[0] Epoch[2] Batch [0-10]\tSpeed: 200.00 samples/sec\taccuracy=0.5
2026-11-22 10:00:03,000 Node[0] Epoch[2] Train-accuracy=0.500000
2026-11-22 10:00:03,000 Node[0] Epoch[2] Validation-accuracy=0.420000
2026-11-22 10:00:03,000 Node[0] Epoch[3] Train-accuracy=0.600000
2026-11-22 10:00:03,000 Node[0] Epoch[3] Validation-accuracy=0.440000
"""


def test_parse_runs_nodes_speed_and_time():
    log = parse_log(LOG.splitlines(True), "run")
    assert log.epoch_numbers() == [0, 1, 2, 3]
    assert log.series("train", "accuracy") == ([0, 1, 2, 3], [0.25, 0.4, 0.5, 0.6])
    assert log.series("val", "accuracy") == ([0, 1, 2, 3], [0.3, 0.45, 0.42, 0.44])
    assert log.series("val", "top_k_accuracy_5") == ([0], [0.7])
    assert log.epochs[1]["val"]["cross-entropy"] == 1.5
    # rank 0 only; the killed epoch 2's speed line is replaced by the resumed run's
    assert log.speed() == ([0, 2], [200.0, 200.0])
    assert log.epochs[0]["time"] == 12.5
    assert summarize(log) == {"name": "run", "epochs": 4, "last": 0.44, "best": 0.45,
                              "best_epoch": 1}
    one = parse_log(LOG.splitlines(True), node=1)
    assert one.series("train", "accuracy") == ([0], [0.99]) and one.speed() == ([0], [999.0])
    # a later run starting at epoch 0 (a retrain, or a run from scratch) replaces the curve
    restarted = parse_log(LOG.splitlines(True) + [
        "x Node[0] start with arguments Namespace(retrain=True)\n",
        "x Node[0] Epoch[0] Validation-accuracy=0.500000\n"])
    assert restarted.series("val", "accuracy") == ([0], [0.5])
    assert summarize(parse_log([], "empty"))["best"] is None


def test_parse_a_trainer_log_and_plot(tmp_path):
    path = tmp_path / "train.log"
    handler = logging.FileHandler(str(path))
    handler.setFormatter(logging.Formatter("%(asctime)-15s %(message)s"))  # the tools' format
    root = logging.getLogger()
    root.addHandler(handler)
    old = root.level
    root.setLevel(logging.INFO)
    try:
        fit(S.make_net(), S.make_train, S.make_val, FitConfig(**dict(S.CFG, num_epochs=3)))
    finally:
        root.removeHandler(handler)
        root.setLevel(old)
        handler.close()
    log = parse_log(str(path))
    assert log.name == "train.log" and log.epoch_numbers() == [0, 1, 2]
    xs, ys = log.series("val", "accuracy")
    assert xs == [0, 1, 2] and all(0 <= y <= 1 for y in ys)
    assert len(log.series("train", "cross-entropy")[0]) == 3
    assert log.speed()[0] == [0, 1, 2] and all(v > 0 for v in log.speed()[1])
    assert all(log.epochs[e]["time"] > 0 for e in xs)
    out = plot_logs([log, parse_log(LOG.splitlines(True), "synthetic")], str(tmp_path / "c.png"),
                    error=True)
    data = open(out, "rb").read()
    assert data[:8] == PNG and len(data) > 10000
    with pytest.raises(ValueError, match="no 'top_k_accuracy_9' values"):
        plot_logs([log], str(tmp_path / "x.png"), metric="top_k_accuracy_9")
    assert not (tmp_path / "x.png").exists()


def test_show_log_tool(tmp_path, monkeypatch, capsys):
    (tmp_path / "a.log").write_text(LOG)
    monkeypatch.setattr(sys, "argv", ["show_log.py", str(tmp_path / "a.log"), "--metric",
                                      "accuracy", "--output", str(tmp_path / "out.png")])
    runpy.run_path(os.path.join(TOOLS, "show_log.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "a.log" in out and "0.4400" in out and "0.4500" in out
    assert open(str(tmp_path / "out.png"), "rb").read(8) == PNG
    monkeypatch.setattr(sys, "argv", ["show_log.py", str(tmp_path / "missing.log")])
    with pytest.raises(SystemExit, match="missing.log"):
        runpy.run_path(os.path.join(TOOLS, "show_log.py"), run_name="__main__")


def test_matplotlib_is_imported_only_to_plot():
    code = ("import sys, gluon_models.utils.logs as L; "
            "print('matplotlib' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert run.stdout.strip() == "False", run.stderr[-2000:]
