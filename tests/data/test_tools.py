"""The prepare_* tools end to end (in-process, as `python tools/prepare_*.py ...`)."""
import os
import runpy
import sys

import numpy as np
import pytest

from .formats import (make_cifar10, make_tar_gz, random_images, read_records, truncate,
                      write_svhn_mat)

TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "tools")


def _run(monkeypatch, tool, *argv):
    monkeypatch.setattr(sys, "argv", [tool] + list(argv))
    runpy.run_path(os.path.join(TOOLS, tool), run_name="__main__")


def test_prepare_cifar_from_archive(tmp_path, monkeypatch):
    _, y, _, _ = make_cifar10(str(tmp_path / "src"), np.random.RandomState(40), per_batch=3,
                              n_test=2)
    arc = make_tar_gz(str(tmp_path / "src" / "cifar-10-batches-py"),
                      str(tmp_path / "cifar-10-python.tar.gz"))
    _run(monkeypatch, "prepare_cifar.py", arc, "--out-dir", str(tmp_path / "out"),
         "--num-workers", "2", "--no-progress")
    assert [h.label for h, _ in read_records(str(tmp_path / "out" / "train"))] == list(y)
    truncate(arc, 0.3)
    with pytest.raises(SystemExit, match="error: .*cifar-10-python.tar.gz"):
        _run(monkeypatch, "prepare_cifar.py", arc, "--out-dir", str(tmp_path / "o2"))


def test_prepare_svhn_and_digits(tmp_path, monkeypatch):
    rng = np.random.RandomState(41)
    for name in ("train", "test"):
        write_svhn_mat(str(tmp_path / ("%s_32x32.mat" % name)), random_images(rng, 4),
                       np.array([0, 1, 9, 5]))
    _run(monkeypatch, "prepare_svhn.py", str(tmp_path), "--extra", "skip", "--out-dir",
         str(tmp_path / "svhn"), "--encoding", ".jpg", "--quality", "90", "--no-progress")
    assert [h.label for h, _ in read_records(str(tmp_path / "svhn" / "test"))] == [0, 1, 9, 5]
    _run(monkeypatch, "prepare_digits.py", "--out-dir", str(tmp_path / "digits"), "--no-progress")
    assert len(read_records(str(tmp_path / "digits" / "test"))) == 360
