"""The atomic-write helpers: fresh exclusive temporary names, nothing left behind on failure,
the old file kept until the new one is complete, and multi-file sets renamed marker last."""
import os
import secrets

import pytest

from gluon_models.utils import fileio
from gluon_models.utils.fileio import (atomic_open, atomic_write, atomic_write_text,
                                       create_exclusive, replace_all)


def _tokens(monkeypatch, *first):
    """Make the next token draws return ``first``, then random ones again: a clash with a
    file that is already there, made to happen on purpose."""
    queue = list(first)
    real = secrets.token_hex
    monkeypatch.setattr(secrets, "token_hex", lambda n=None: queue.pop(0) if queue else real(n))


def test_writes_land_complete_with_the_usual_mode(tmp_path):
    path = tmp_path / "sub" / "a.txt"
    atomic_write_text(str(path), "héllo\n")
    assert path.read_text(encoding="utf-8") == "héllo\n"
    with atomic_open(str(tmp_path / "b.bin"), "wb") as fh:
        fh.write(b"\x00\x01")
    atomic_write(str(tmp_path / "c"), lambda tmp: open(tmp, "w").close())
    assert sorted(os.listdir(tmp_path)) == ["b.bin", "c", "sub"]
    umask = os.umask(0)
    os.umask(umask)
    assert (path.stat().st_mode & 0o777) == 0o666 & ~umask


@pytest.mark.parametrize("how", ["atomic_open", "atomic_write"])
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, how):
    path = tmp_path / "out.lst"
    path.write_text("old\n")
    with pytest.raises(OSError, match="disk full"):
        if how == "atomic_open":
            with atomic_open(str(path)) as fh:
                fh.write("new, half written")
                raise OSError("disk full")
        else:
            def write(tmp):
                with open(tmp, "w") as fh:
                    fh.write("new, half written")
                raise OSError("disk full")
            atomic_write(str(path), write)
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["out.lst"]


def test_atomic_open_only_writes_new_files(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(str(tmp_path / "x"), "a"):
            pass


def test_a_taken_temporary_name_is_never_written_through(tmp_path, monkeypatch):
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    planted = tmp_path / ".out.txt.deadbeef.tmp"
    planted.symlink_to(victim)  # what a fixed or guessable temporary name would follow
    _tokens(monkeypatch, "deadbeef")
    atomic_write_text(str(tmp_path / "out.txt"), "new\n")
    assert victim.read_text() == "keep me\n" and planted.is_symlink()
    assert (tmp_path / "out.txt").read_text() == "new\n"
    assert sorted(os.listdir(tmp_path)) == sorted([planted.name, "out.txt", "victim"])


def test_two_writers_of_one_target_get_their_own_temporaries(tmp_path):
    path = str(tmp_path / "t.txt")
    with atomic_open(path) as first:
        with atomic_open(path) as second:
            assert first.name != second.name
            first.write("first\n")
            second.write("second\n")
        assert open(path).read() == "second\n"
    assert open(path).read() == "first\n"  # the last rename wins; neither file is mixed
    assert os.listdir(tmp_path) == ["t.txt"]


def test_create_exclusive_draws_again_and_cleans_up_on_a_clash(tmp_path, monkeypatch):
    (tmp_path / "b.aaaaaaaa").write_text("someone else's\n")
    _tokens(monkeypatch, "aaaaaaaa", "bbbbbbbb")
    token, paths = create_exclusive(
        lambda t: [str(tmp_path / ("a." + t)), str(tmp_path / ("b." + t))])
    assert token == "bbbbbbbb" and paths == [str(tmp_path / "a.bbbbbbbb"),
                                              str(tmp_path / "b.bbbbbbbb")]
    # a.aaaaaaaa was made before b.aaaaaaaa clashed: removed again
    assert sorted(os.listdir(tmp_path)) == ["a.bbbbbbbb", "b.aaaaaaaa", "b.bbbbbbbb"]
    assert (tmp_path / "b.aaaaaaaa").read_text() == "someone else's\n"
    assert all(os.path.getsize(p) == 0 for p in paths)


def test_create_exclusive_gives_up_after_its_attempts(tmp_path, monkeypatch):
    (tmp_path / "x.cccccccc").write_text("")
    monkeypatch.setattr(secrets, "token_hex", lambda n=None: "cccccccc")
    with pytest.raises(FileExistsError, match="no free temporary name"):
        create_exclusive(lambda t: [str(tmp_path / ("x." + t))], attempts=3)


def test_replace_all_removes_the_marker_first_and_renames_it_last(tmp_path, monkeypatch):
    for name in ("set.idx", "set.rec", "new.idx", "new.rec"):
        (tmp_path / name).write_text(name)
    marker = str(tmp_path / "set.rec")
    seen = []
    real = os.replace

    def replace(src, dst):
        seen.append((os.path.basename(dst), os.path.exists(marker)))
        real(src, dst)
    monkeypatch.setattr(fileio.os, "replace", replace)
    replace_all([(str(tmp_path / "new.idx"), str(tmp_path / "set.idx")),
                 (str(tmp_path / "new.rec"), marker)])
    # the old .rec never sits next to the new .idx
    assert seen == [("set.idx", False), ("set.rec", False)]
    assert (tmp_path / "set.idx").read_text() == "new.idx"
    assert (tmp_path / "set.rec").read_text() == "new.rec"
    assert sorted(os.listdir(tmp_path)) == ["set.idx", "set.rec"]
