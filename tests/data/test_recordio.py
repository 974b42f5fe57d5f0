"""The shared .lst/.rec/.idx writer: im2rec format, order, atomicity, errors, resuming."""
import os
import secrets
import struct
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import cv2
import mxnet as mx
import numpy as np
import pytest

from gluon_models.data import finegrained, recordio
from gluon_models.data.recordio import read_lst, record_files, write_lst, write_records

from .formats import random_images, read_records


def _items(images, labels):
    return [(i, labels[i], images[i]) for i in range(len(images))]


def test_lst_rec_idx_format_and_pixels(tmp_path):
    rng = np.random.RandomState(1)
    imgs = random_images(rng, 7)  # used as BGR
    prefix = str(tmp_path / "out" / "train")
    res = write_records(prefix, _items(imgs, [3, 0, 9, 1, 2, 2, 5]), progress=False)
    assert res.count == 7 and res.skipped == []
    assert sorted(os.listdir(tmp_path / "out")) == ["train.idx", "train.lst", "train.rec"]
    lines = open(prefix + ".lst").read().splitlines()
    assert lines[0] == "0\t3.000000\t0.png"  # im2rec: index \t %f label \t path
    assert [ln.split("\t")[0] for ln in lines] == [str(i) for i in range(7)]
    assert read_lst(prefix + ".lst")[2] == (2, (9.0,), "2.png")
    idx = [ln.split("\t") for ln in open(prefix + ".idx").read().splitlines()]
    assert [int(k) for k, _ in idx] == list(range(7)) and int(idx[0][1]) == 0
    for i, (header, img) in enumerate(read_records(prefix)):
        assert header.flag == 0 and header.id == i and header.id2 == 0
        assert header.label == [3, 0, 9, 1, 2, 2, 5][i]
        np.testing.assert_array_equal(img, imgs[i])  # PNG is lossless


def test_multi_label_flag_and_jpeg(tmp_path):
    rng = np.random.RandomState(2)
    imgs = random_images(rng, 3)
    prefix = str(tmp_path / "m")
    write_records(prefix, [(i, (i, 10 + i), imgs[i], "a/%d.jpg" % i) for i in range(3)],
                  encoding=".jpg", quality=90, progress=False)
    assert open(prefix + ".lst").readline() == "0\t0.000000\t10.000000\ta/0.jpg\n"
    rec = mx.recordio.MXIndexedRecordIO(prefix + ".idx", prefix + ".rec", "r")
    header, payload = mx.recordio.unpack(rec.read_idx(2))
    rec.close()
    assert header.flag == 2 and list(header.label) == [2.0, 12.0]
    assert payload[:2] == b"\xff\xd8"  # a JPEG stream
    decoded = cv2.imdecode(np.frombuffer(payload, np.uint8), 1)
    assert decoded.shape == (32, 32, 3)


def test_encoded_bytes_pass_through(tmp_path):
    ok, png = cv2.imencode(".png", np.full((5, 6, 3), 77, np.uint8))
    prefix = str(tmp_path / "p")
    write_records(prefix, [(4, 1, png.tobytes())], progress=False)
    rec = mx.recordio.MXIndexedRecordIO(prefix + ".idx", prefix + ".rec", "r")
    header, payload = mx.recordio.unpack(rec.read_idx(4))
    rec.close()
    assert payload == png.tobytes() and header.id == 4


def test_same_output_with_two_workers(tmp_path):
    rng = np.random.RandomState(3)
    imgs = random_images(rng, 300)
    labels = rng.randint(0, 10, 300)
    files = []
    for workers, backend in ((1, "process"), (2, "process"), (2, "thread"), (3, "thread")):
        prefix = str(tmp_path / ("w%d%s" % (workers, backend)))
        write_records(prefix, _items(imgs, labels), num_workers=workers, chunksize=16,
                      progress=False, backend=backend)
        files.append([open(p, "rb").read() for p in record_files(prefix)])
    # byte-identical .rec, .idx and .lst, records in index order
    assert files[0] == files[1] == files[2] == files[3]


@pytest.mark.parametrize("workers, backend", [(1, "process"), (2, "process"), (2, "thread")])
def test_interrupted_write_leaves_no_output(tmp_path, monkeypatch, workers, backend):
    rng = np.random.RandomState(4)
    imgs = random_images(rng, 100)
    real = recordio._encode_item
    calls = []

    def failing(index, *args):
        if index >= 37:
            raise RuntimeError("simulated crash")
        calls.append(index)
        return real(index, *args)

    monkeypatch.setattr(recordio, "_encode_item", failing)
    prefix = str(tmp_path / "train")
    with pytest.raises(RuntimeError, match="simulated crash"):
        write_records(prefix, _items(imgs, [0] * 100), num_workers=workers, chunksize=8,
                      progress=False, backend=backend)
    assert os.listdir(tmp_path) == []  # neither final names nor temporaries
    monkeypatch.setattr(recordio, "_encode_item", real)
    # A crash of the source iterator itself is handled the same way.

    def source():
        for i in range(50):
            if i == 20:
                raise OSError("source broke")
            yield i, 0, imgs[i]
    with pytest.raises(OSError, match="source broke"):
        write_records(prefix, source(), num_workers=workers, progress=False,
                      backend=backend)
    assert os.listdir(tmp_path) == []


def _plant_links(folder, names, victim):
    """Symlinks to ``victim`` at ``names``: a writer that writes through a fixed or guessable
    temporary name changes the victim (or renames the link into place)."""
    victim.write_text("keep me\n")
    for name in names:
        (folder / name).symlink_to(victim)


def test_small_files_never_use_a_fixed_temporary_name(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    lst, classes = out / "a.lst", out / "classes.txt"
    planted = ["a.lst.tmp", "a.lst.%d.tmp" % os.getpid(), "t.skipped.tmp", "classes.txt.tmp"]
    _plant_links(out, planted, tmp_path / "victim")
    write_lst(str(lst), [(0, 1, "x.png"), (1, (2, 3), "y.png")])
    imgs = random_images(np.random.RandomState(12), 3)
    imgs[:, 0, 0, 0] = [255, 0, 255]  # the second one "unreadable": a .skipped is written
    res = write_records(str(out / "t"), _items(imgs, [0, 1, 2]), progress=False,
                        transform=lambda im: None if im[0, 0, 0] == 0 else im)
    finegrained._write_classes(str(classes), ["cat", "dog"])
    assert (tmp_path / "victim").read_text() == "keep me\n"
    assert all((out / name).is_symlink() for name in planted)
    assert read_lst(str(lst)) == [(0, (1.0,), "x.png"), (1, (2.0, 3.0), "y.png")]
    assert res.count == 2 and open(str(out / "t.skipped")).read().startswith("1\t1.png\t")
    assert classes.read_text() == "0\tcat\n1\tdog\n"
    for name in ("a.lst", "t.skipped", "classes.txt", "t.rec", "t.idx", "t.lst"):
        assert not (out / name).is_symlink()
    assert sorted(os.listdir(out)) == sorted(planted + [
        "a.lst", "classes.txt", "t.idx", "t.lst", "t.rec", "t.skipped"])


def test_a_failed_small_write_leaves_nothing(tmp_path):
    def rows():
        yield 0, 1, "x.png"
        raise OSError("source broke")
    with pytest.raises(OSError, match="source broke"):
        write_lst(str(tmp_path / "a.lst"), rows())
    with pytest.raises(OSError, match="source broke"):
        finegrained._write_classes(str(tmp_path / "classes.txt"), (path for _, _, path in rows()))
    assert os.listdir(tmp_path) == []


def test_two_writers_of_one_prefix_do_not_collide(tmp_path):
    """Two conversions to the same place at once (e.g. started twice by mistake): each writes
    its own temporaries, both finish, and what is left is one complete output."""
    imgs = random_images(np.random.RandomState(13), 40)
    rows = [(i, i % 5, "%d.png" % i) for i in range(40)]
    both = threading.Barrier(2, timeout=60)

    def in_step(seq):  # both writers hold their temporaries open before either goes on
        for n, item in enumerate(seq):
            if n == 1:
                both.wait()
            yield item

    prefix = str(tmp_path / "t")
    with ThreadPoolExecutor(2) as pool:
        for job in [pool.submit(write_lst, prefix + ".x.lst", in_step(rows)) for _ in range(2)]:
            job.result()
        jobs = [pool.submit(write_records, prefix, in_step(_items(imgs, [r[1] for r in rows])),
                            progress=False, chunksize=1) for _ in range(2)]
        assert [job.result().count for job in jobs] == [40, 40]
    assert read_lst(prefix + ".x.lst") == [(i, (float(c),), p) for i, c, p in rows]
    assert [h.id for h, _ in read_records(prefix)] == list(range(40))
    assert sorted(os.listdir(tmp_path)) == ["t.idx", "t.lst", "t.rec", "t.x.lst"]


def test_a_new_partial_set_never_takes_over_existing_files(tmp_path, monkeypatch):
    """The writer's temporaries are created exclusively: when the drawn tag is taken (a
    leftover, another run), it draws again instead of truncating someone else's file."""
    taken = tmp_path / (".t.rec.%d-deadbeef.partial" % os.getpid())
    taken.write_bytes(b"another run's records")
    draws = ["deadbeef"]
    real = secrets.token_hex
    monkeypatch.setattr(secrets, "token_hex", lambda n=None: draws.pop() if draws else real(n))
    imgs = random_images(np.random.RandomState(14), 3)
    write_records(str(tmp_path / "t"), _items(imgs, [0, 1, 2]), progress=False)
    assert not draws and taken.read_bytes() == b"another run's records"
    assert [h.id for h, _ in read_records(str(tmp_path / "t"))] == [0, 1, 2]
    assert _partials(tmp_path) == [taken.name]


def test_leftover_partial_files_are_ignored(tmp_path, caplog):
    # What a killed run leaves behind: temporaries, never the final names.
    stale = tmp_path / ".train.rec.999-deadbeef.partial"
    stale.write_bytes(b"garbage")
    imgs = random_images(np.random.RandomState(5), 2)
    write_records(str(tmp_path / "train"), _items(imgs, [1, 2]), progress=False)
    assert [h.label for h, _ in read_records(str(tmp_path / "train"))] == [1, 2]
    assert "leftover" in caplog.text


def test_overwrites_existing_output(tmp_path):
    imgs = random_images(np.random.RandomState(6), 4)
    prefix = str(tmp_path / "t")
    write_records(prefix, _items(imgs, [1, 1, 1, 1]), progress=False)
    write_records(prefix, _items(imgs[:2], [5, 6]), progress=False)
    assert [h.label for h, _ in read_records(prefix)] == [5, 6]
    assert len(read_lst(prefix + ".lst")) == 2


def test_transform_none_skips_and_reports(tmp_path):
    imgs = random_images(np.random.RandomState(7), 4)
    res = write_records(str(tmp_path / "s"), _items(imgs, [0, 1, 2, 3]), progress=False,
                        transform=lambda im: None if im[0, 0, 0] == imgs[2][0, 0, 0] else im)
    assert res.count == 3 and [s[0] for s in res.skipped] == [2]
    assert [r[0] for r in read_lst(str(tmp_path / "s.lst"))] == [0, 1, 3]


def test_errors(tmp_path):
    img = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="appears twice"):
        write_records(str(tmp_path / "d"), [(1, 0, img), (1, 0, img)], progress=False)
    with pytest.raises(RuntimeError, match="record 3 .*uint8"):
        write_records(str(tmp_path / "d"), [(3, 0, img.astype(np.float32))], progress=False)
    with pytest.raises(ValueError, match="encoding"):
        write_records(str(tmp_path / "d"), [], encoding=".bmp")
    with pytest.raises(ValueError, match="quality"):
        write_records(str(tmp_path / "d"), [], encoding=".png", quality=95)
    with pytest.raises(ValueError, match="backend"):
        write_records(str(tmp_path / "d"), [], backend="fiber")
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------------------
# RecordIO framing and resuming an interrupted write

_MAGIC = struct.pack("<I", 0xCED7230A)


def test_framing_is_byte_identical_to_mxrecordio(tmp_path):
    # Payloads with the magic word at aligned and unaligned offsets, at the ends, repeated.
    rng = np.random.RandomState(8)
    payloads = [b"", b"a", b"abcd", _MAGIC, _MAGIC + b"xyz", b"abcd" + _MAGIC,
                b"ab" + _MAGIC + b"cd", _MAGIC + _MAGIC,
                b"abcd" + _MAGIC + b"efgh" + _MAGIC + b"ij"]
    for _ in range(40):
        b = bytearray(rng.randint(0, 256, rng.randint(24, 400)).astype(np.uint8).tobytes())
        for _ in range(rng.randint(0, 4)):
            p = rng.randint(0, len(b) - 3)
            b[p:p + 4] = _MAGIC
        payloads.append(bytes(b))
    path = str(tmp_path / "m.rec")
    writer = mx.recordio.MXRecordIO(path, "w")
    for p in payloads:
        writer.write(p)
    writer.close()
    assert b"".join(recordio.frame_record(p) for p in payloads) == open(path, "rb").read()


def test_scan_records_stops_at_a_cut_record(tmp_path):
    payloads = [mx.recordio.pack(mx.recordio.IRHeader(0, 1.0, 10 + i, 0),
                                 b"x" * (5 + 3 * i) + (_MAGIC if i == 2 else b""))
                for i in range(5)]
    framed = [recordio.frame_record(p) for p in payloads]
    path = str(tmp_path / "s.rec")
    open(path, "wb").write(b"".join(framed))
    spans = recordio.scan_records(path)
    assert [s.id for s in spans] == [10, 11, 12, 13, 14]
    ends = np.cumsum([len(f) for f in framed]).tolist()
    assert [s.end for s in spans] == ends and [s.offset for s in spans] == [0] + ends[:-1]
    for cut in (ends[2] - 1, ends[2] + 3, ends[2] + 9):  # inside record 3 (or its frame)
        open(path, "wb").write(b"".join(framed)[:cut])
        assert [s.id for s in recordio.scan_records(path)] == [10, 11, 12][:2 + (cut >= ends[2])]
    open(path, "wb").write(b"".join(framed)[:ends[1]] + b"\0" * 40)  # garbage after record 2
    assert [s.id for s in recordio.scan_records(path)] == [10, 11]


def _interrupt_at(n):
    """A transform that stops the run (as Ctrl-C does) at its n-th call."""
    calls = []

    def transform(image):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return None if image[0, 0, 0] < 20 else image  # the darkest images are "unreadable"
    return transform


def _partials(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".partial"))


@pytest.mark.parametrize("cut", ["clean", "mid_record", "mid_line"])
def test_resume_after_interrupt_is_byte_identical(tmp_path, cut):
    rng = np.random.RandomState(9)
    imgs = random_images(rng, 120)
    imgs[:, 0, 0, 0] = 255
    imgs[[5, 50, 90], 0, 0, 0] = 0  # skipped items before and after the interruption
    items = [(1000 + i, (i % 7, i % 3), imgs[i], "f/%d.png" % i) for i in range(120)]
    keep = _interrupt_at(10**9)
    ref = write_records(str(tmp_path / "ref" / "t"), items, transform=keep, skip_errors=True,
                        progress=False, chunksize=8)
    prefix = str(tmp_path / "out" / "t")
    with pytest.raises(KeyboardInterrupt):
        write_records(prefix, items, transform=_interrupt_at(70), skip_errors=True,
                      progress=False, chunksize=8)
    partial = _partials(tmp_path / "out")
    assert [p.split(".")[2] for p in partial] == ["idx", "lst", "meta", "rec", "skipped"]
    assert not os.path.exists(prefix + ".rec")
    rec_path = str(tmp_path / "out" / partial[3])
    if cut == "mid_record":  # as when the process dies with part of a record written
        size = os.path.getsize(rec_path)
        os.truncate(rec_path, size - 7)
    elif cut == "mid_line":
        idx_path = str(tmp_path / "out" / partial[0])
        os.truncate(idx_path, os.path.getsize(idx_path) - 3)
    res = write_records(prefix, items, transform=keep, skip_errors=True, progress=False,
                        chunksize=8, resume=True)
    assert 50 <= res.resumed < 70 and res.count == ref.count == 117
    assert [s[0] for s in res.skipped] == [1005, 1050, 1090]
    for a, b in zip(record_files(prefix), record_files(str(tmp_path / "ref" / "t"))):
        assert open(a, "rb").read() == open(b, "rb").read()
    assert open(prefix + ".skipped").read() == open(str(tmp_path / "ref" / "t.skipped")).read()
    assert _partials(tmp_path / "out") == []


def test_resume_needs_the_same_signature_and_an_unlocked_partial(tmp_path, caplog):
    imgs = random_images(np.random.RandomState(10), 30)
    imgs[:, 0, 0, 0] = 255  # none "unreadable"
    items = [(i, 0, imgs[i]) for i in range(30)]
    prefix = str(tmp_path / "t")
    with pytest.raises(KeyboardInterrupt):
        write_records(prefix, items, transform=_interrupt_at(20), progress=False, chunksize=4,
                      signature={"source": "a"})
    # Another signature: a fresh write, the partial set is left alone (and reported).
    res = write_records(prefix, items, progress=False, resume=True, signature={"source": "b"})
    assert res.resumed == 0 and res.count == 30 and "leftover" in caplog.text
    assert len(_partials(tmp_path)) == 5
    # A partial set locked by a live process is not touched either.
    meta = [p for p in _partials(tmp_path) if ".meta." in p][0]
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time; f = open(sys.argv[1], 'r+'); "
        "fcntl.lockf(f.fileno(), fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)"),
        str(tmp_path / meta)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        res = write_records(prefix, items, progress=False, resume=True, signature={"source": "a"})
        assert res.resumed == 0 and len(_partials(tmp_path)) == 5
    finally:
        holder.kill()
        holder.wait()
    res = write_records(prefix, items, progress=False, resume=True, signature={"source": "a"})
    assert res.resumed > 0 and res.count == 30 and _partials(tmp_path) == []


def test_errors_keep_partial_output_only_with_resume(tmp_path):
    imgs = random_images(np.random.RandomState(11), 20)

    def source(n_ok):
        for i in range(20):
            if i == n_ok:
                raise OSError("source broke")
            yield i, 0, imgs[i]
    prefix = str(tmp_path / "t")
    with pytest.raises(OSError):
        write_records(prefix, source(12), progress=False, chunksize=2, resume=True)
    assert len(_partials(tmp_path)) == 5
    res = write_records(prefix, source(99), progress=False, resume=True)
    assert res.resumed > 0 and res.count == 20
    assert [h.id for h, _ in read_records(prefix)] == list(range(20))
