"""tools/im2rec.py and tools/prepare_folder.py on generated image folders, held against the
im2rec.py that ships with mxnet (run as a subprocess on the same files)."""
import logging
import os
import re
import runpy
import shutil
import subprocess
import sys

import cv2
import mxnet as mx
import numpy as np
import pytest

from gluon_models.data import DataFormatError, read_lst
from gluon_models.data.finegrained import convert_folder_dataset, read_folder_dataset
from gluon_models.data.folder import check_image_bytes, parse_im2rec_args

from .image_folders import (decode, make_aircraft, make_cars, make_class_tree, make_cub, read_raw,
                            smooth_image)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(REPO, "tools")
MX_IM2REC = os.path.join(os.path.dirname(mx.__file__), "tools", "im2rec.py")
BAD = {os.path.join("dog", "broken.jpg"), os.path.join("zebra", "fake.png")}


def _ours(monkeypatch, tool, *argv):
    monkeypatch.setattr(sys, "argv", [tool] + [str(a) for a in argv])
    runpy.run_path(os.path.join(TOOLS, tool), run_name="__main__")


def _theirs(*argv):
    """Start MXNet's shipped im2rec.py (it prints its progress on stdout)."""
    return subprocess.Popen([sys.executable, MX_IM2REC] + [str(a) for a in argv],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait(*procs):
    for p in procs:
        out = p.communicate(timeout=120)[0]
        assert p.returncode == 0, out


def _copy_list(src, folder):
    os.makedirs(folder)
    shutil.copy(src, os.path.join(folder, "data.lst"))
    return os.path.join(folder, "data")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """An image tree plus MXNet's outputs for it: lists (plain, and chunked with
    train/val/test ratios); re-encoded (--resize 40 --quality 80) and pass-through records of
    the whole list, with two processes (MXNet's single-process mode crashes on an unreadable
    image); re-encoded records of the good images alone, in its single-process mode."""
    base = tmp_path_factory.mktemp("im2rec")
    root = str(base / "images")
    good = make_class_tree(root, np.random.RandomState(0))
    mx_dir = str(base / "mxnet")
    os.makedirs(mx_dir)
    _wait(_theirs("--list", "--recursive", os.path.join(mx_dir, "data"), root),
          _theirs("--list", "--recursive", "--chunks", "2", "--train-ratio", "0.5",
                  "--test-ratio", "0.25", os.path.join(mx_dir, "split"), root))
    enc = _copy_list(os.path.join(mx_dir, "data.lst"), os.path.join(mx_dir, "enc"))
    passed = _copy_list(os.path.join(mx_dir, "data.lst"), os.path.join(mx_dir, "pass"))
    os.makedirs(os.path.join(mx_dir, "clean"))
    clean = os.path.join(mx_dir, "clean", "data")
    with open(clean + ".lst", "w") as f:
        f.writelines(line for line in open(enc + ".lst") if line.split("\t")[-1].strip()
                     not in BAD)
    _wait(_theirs("--resize", "40", "--quality", "80", "--num-thread", "2", enc, root),
          _theirs("--pass-through", "--num-thread", "2", passed, root),
          _theirs("--resize", "40", "--quality", "80", clean, root))
    return dict(base=base, root=root, good=good, mx=mx_dir, enc=enc, passed=passed,
                clean=clean)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


# ------------------------------------------------------------------------------------------
# Lists

def test_list_is_mxnets(tree, tmp_path, monkeypatch):
    _ours(monkeypatch, "im2rec.py", "--list", "--recursive", tmp_path / "data", tree["root"])
    assert _read(tmp_path / "data.lst") == _read(os.path.join(tree["mx"], "data.lst"))
    rows = read_lst(str(tmp_path / "data.lst"))
    # one label per class folder in sorted order; images and the bad files with image
    # extensions are listed, notes.txt is not; the order is shuffled; indices = walk order
    folder_label = {rel.split(os.sep)[0]: lab[0] for _, lab, rel in rows}
    assert folder_label == {"cat": 0.0, "dog": 1.0, "zebra": 2.0}
    assert sorted(rel for _, _, rel in rows) == sorted(set(tree["good"]) | BAD)
    assert [i for i, _, _ in rows] != sorted(i for i, _, _ in rows)
    assert sorted(rows)[0] == (0, (0.0,), os.path.join("cat", "000.jpg"))
    line = open(tmp_path / "data.lst").readline()
    index, label, path = line.rstrip("\n").split("\t")
    assert label == "%f" % float(label) and int(index) >= 0 and not os.path.isabs(path)


def test_list_chunks_ratios_and_no_shuffle(tree, tmp_path, monkeypatch):
    _ours(monkeypatch, "im2rec.py", "--list", "--recursive", "--chunks", "2", "--train-ratio",
          "0.5", "--test-ratio", "0.25", tmp_path / "split", tree["root"])
    names = sorted(f for f in os.listdir(tree["mx"]) if f.startswith("split"))
    assert names == sorted(os.listdir(tmp_path)) and len(names) == 6  # _0/_1 x train/val/test
    for name in names:
        assert _read(tmp_path / name) == _read(os.path.join(tree["mx"], name)), name
    _ours(monkeypatch, "im2rec.py", "--list", "--no-shuffle", tmp_path / "flat",
          os.path.join(tree["root"], "cat"), "--exts", "png")
    rows = read_lst(str(tmp_path / "flat.lst"))
    assert [r[0] for r in rows] == list(range(len(rows)))  # walk order, label 0, .png only
    assert {r[1] for r in rows} == {(0.0,)} and all(r[2].endswith(".png") for r in rows)


# ------------------------------------------------------------------------------------------
# Records: equal to MXNet's

def test_reencoded_records_are_mxnets(tree, tmp_path, monkeypatch, caplog):
    # The good images alone: the same files, byte for byte.
    prefix = _copy_list(tree["clean"] + ".lst", str(tmp_path / "clean"))
    _ours(monkeypatch, "im2rec.py", "--resize", "40", "--quality", "80", "--no-progress",
          prefix, tree["root"])
    for ext in (".rec", ".idx", ".lst"):  # (the list is left alone)
        assert _read(prefix + ext) == _read(tree["clean"] + ext)
    assert not os.path.exists(prefix + ".skipped")
    # The whole list, with two processes: the same records, less the bad files. (MXNet's
    # cv2.imread decodes the cut-off JPEG, grey where data is missing, and stores it.)
    prefix = _copy_list(os.path.join(tree["mx"], "data.lst"), str(tmp_path / "ours"))
    _ours(monkeypatch, "im2rec.py", "--resize", "40", "--quality", "80", "--num-thread", "2",
          "--no-progress", prefix, tree["root"])
    rows = {i: (lab, rel) for i, lab, rel in read_lst(prefix + ".lst")}
    records, theirs = read_raw(prefix), read_raw(tree["enc"])
    assert [rows[h.id][1] for h, _ in theirs if rows[h.id][1] in BAD] == \
        [os.path.join("dog", "broken.jpg")]
    assert [(tuple(h), p) for h, p in records] == \
        [(tuple(h), p) for h, p in theirs if rows[h.id][1] not in BAD]
    assert len(records) == len(tree["good"])
    for header, payload in records:
        lab, rel = rows[header.id]
        assert header.flag == 0 and header.id2 == 0 and header.label == lab[0]
        h, w = tree["good"][rel].shape[:2]
        size = (40, h * 40 // w) if h > w else (w * 40 // h, 40)
        assert decode(payload).shape[:2] == size[::-1]  # shorter side 40, im2rec's rounding
    skipped = [line.split("\t") for line in open(prefix + ".skipped").read().splitlines()]
    assert {s[1] for s in skipped} == BAD
    assert all(int(s[0]) in rows for s in skipped)
    assert "truncated JPEG" in caplog.text and caplog.text.count("skipped record") == 2


def test_pass_through_records_are_mxnets_minus_the_bad_files(tree, tmp_path, monkeypatch):
    prefix = _copy_list(os.path.join(tree["mx"], "data.lst"), str(tmp_path / "ours"))
    _ours(monkeypatch, "im2rec.py", "--pass-through", "--no-progress", prefix, tree["root"])
    ours, theirs = read_raw(prefix), read_raw(tree["passed"])
    rows = {i: rel for i, _, rel in read_lst(prefix + ".lst")}
    # MXNet stores the bad files' bytes as they are; they are all we leave out.
    assert [rows[h.id] for h, _ in theirs if rows[h.id] in BAD] != []
    kept = [(h, p) for h, p in theirs if rows[h.id] not in BAD]
    assert [(tuple(h), p) for h, p in ours] == [(tuple(h), p) for h, p in kept]
    for h, payload in ours:
        assert payload == _read(os.path.join(tree["root"], rows[h.id]))
    # record by record, the framing is the same as in MXNet's file
    rec = mx.recordio.MXIndexedRecordIO(tree["passed"] + ".idx", tree["passed"] + ".rec", "r")
    assert all(rec.read_idx(h.id) == mx.recordio.pack(h, p) for h, p in ours)
    rec.close()


# ------------------------------------------------------------------------------------------
# Records: round trips and options

def test_png_round_trip_labels_and_pixels(tree, tmp_path, monkeypatch):
    _ours(monkeypatch, "im2rec.py", "--list", "--recursive", "--no-shuffle", tmp_path / "rt",
          tree["root"])
    _ours(monkeypatch, "im2rec.py", "--encoding", ".png", "--num-thread", "2", "--backend",
          "process", "--no-progress", tmp_path / "rt", tree["root"])
    rows = {i: (lab, rel) for i, lab, rel in read_lst(str(tmp_path / "rt.lst"))}
    records = read_raw(str(tmp_path / "rt"))
    assert [h.id for h, _ in records] == [i for i in sorted(rows) if rows[i][1] not in BAD]
    for header, payload in records:
        lab, rel = rows[header.id]
        assert header.label == lab[0] == {"cat": 0, "dog": 1, "zebra": 2}[rel.split(os.sep)[0]]
        np.testing.assert_array_equal(decode(payload), tree["good"][rel])  # lossless


def test_resize_center_crop_quality_and_color(tree, tmp_path, monkeypatch):
    lst = str(tmp_path / "one.lst")
    portrait, landscape = os.path.join("cat", "001.png"), os.path.join("dog", "000.jpg")
    assert tree["good"][portrait].shape[:2] == (90, 60)
    assert tree["good"][landscape].shape[:2] == (37, 81)
    with open(lst, "w") as f:
        f.write("7\t1.000000\t%s\n8\t0.000000\t%s\n" % (portrait, landscape))

    def run(name, *opts):
        prefix = str(tmp_path / name)
        _ours(monkeypatch, "im2rec.py", "--no-progress", lst, tree["root"], prefix + ".rec",
              *opts)
        return read_raw(prefix)
    # shorter side exact, longer side long * N // short, aspect kept
    sizes = [decode(p).shape[:2] for _, p in run("r33", "resize=33")]
    assert sizes == [(90 * 33 // 60, 33), (33, 81 * 33 // 37)]
    sizes = [decode(p).shape[:2] for _, p in run("r100", "resize=100")]  # enlarges too
    assert sizes == [(90 * 100 // 60, 100), (100, 81 * 100 // 37)]
    crops = [decode(p).shape[:2] for _, p in run("c", "--center-crop")]
    assert crops == [(60, 60), (37, 37)]
    top = (90 - 60) // 2
    np.testing.assert_array_equal(decode(run("cp", "--center-crop", "encoding=.png")[0][1]),
                                  tree["good"][portrait][top:top + 60])
    lengths = {q: sum(len(p) for _, p in run("q%d" % q, "quality=%d" % q)) for q in (20, 60, 98)}
    assert lengths[20] < lengths[60] < lengths[98]
    grey = run("g", "color=0", "encoding=.png")
    assert decode(grey[0][1], -1).ndim == 2


def test_image_record_iter_reads_the_records(tree, tmp_path, monkeypatch):
    prefix = _copy_list(os.path.join(tree["mx"], "data.lst"), str(tmp_path / "it"))
    _ours(monkeypatch, "im2rec.py", "--resize", "36", "--num-thread", "2", "--no-progress",
          prefix, tree["root"])
    records = read_raw(prefix)
    it = mx.io.ImageRecordIter(path_imgrec=prefix + ".rec", path_imgidx=prefix + ".idx",
                               data_shape=(3, 32, 32), batch_size=4, shuffle=False,
                               preprocess_threads=1)  # first pass: batch.pad is exact
    data, labels = [], []
    for batch in it:
        n = 4 - batch.pad
        data.append(batch.data[0].asnumpy()[:n])
        labels.append(batch.label[0].asnumpy()[:n])
    data, labels = np.concatenate(data), np.concatenate(labels)
    assert labels.tolist() == [h.label for h, _ in records]
    # ImageRecordIter decodes to RGB and takes the centre crop: the same pixels
    img = decode(records[0][1])[:, :, ::-1]
    h, w = img.shape[:2]
    y, x = (h - 32) // 2, (w - 32) // 2
    np.testing.assert_array_equal(data[0].transpose(1, 2, 0), img[y:y + 32, x:x + 32])


def test_pack_label_multi_label_lists(tree, tmp_path, monkeypatch):
    lst = str(tmp_path / "multi.lst")
    rel = os.path.join("cat", "000.jpg")
    with open(lst, "w") as f:
        f.write("3\t1.000000\t4.500000\t%s\n" % rel)
    _ours(monkeypatch, "im2rec.py", "--pack-label", "--no-progress", tmp_path / "multi",
          tree["root"])
    (header, _), = read_raw(str(tmp_path / "multi"))
    assert header.flag == 2 and list(header.label) == [1.0, 4.5] and header.id == 3
    _ours(monkeypatch, "im2rec.py", "--no-progress", lst, tree["root"], tmp_path / "first.rec")
    (header, _), = read_raw(str(tmp_path / "first"))
    assert header.flag == 0 and header.label == 1.0  # without it, the first label


# ------------------------------------------------------------------------------------------
# Bad images, strict mode, the C++ form

def test_bad_images_are_detected_without_decoding():
    ok, jpg = cv2.imencode(".jpg", smooth_image(np.random.RandomState(1), 30, 40))
    ok, png = cv2.imencode(".png", smooth_image(np.random.RandomState(1), 30, 40))
    jpg, png = jpg.tobytes(), png.tobytes()
    assert check_image_bytes(jpg) is None and check_image_bytes(png) is None
    assert check_image_bytes(jpg + b"\0" * 10) is None  # trailing bytes are harmless
    assert "truncated JPEG" in check_image_bytes(jpg[:-2])
    assert "truncated PNG" in check_image_bytes(png[:len(png) // 2])
    assert check_image_bytes(b"") == "empty file"


def test_strict_makes_a_bad_image_fatal(tree, tmp_path, monkeypatch):
    prefix = _copy_list(os.path.join(tree["mx"], "data.lst"), str(tmp_path / "strict"))
    with pytest.raises(SystemExit, match=r"error: .*(broken\.jpg|fake\.png)"):
        _ours(monkeypatch, "im2rec.py", "--strict", "--no-progress", prefix, tree["root"])
    assert sorted(os.listdir(tmp_path / "strict")) == ["data.lst"]  # nothing half-written
    with pytest.raises(SystemExit, match="no .lst file"):
        _ours(monkeypatch, "im2rec.py", tmp_path / "nothing", tree["root"])


def test_key_value_form_equals_the_options(tree, tmp_path, monkeypatch, capsys):
    lst = os.path.join(tree["mx"], "data.lst")
    _ours(monkeypatch, "im2rec.py", "--no-progress", lst, tree["root"] + os.sep,
          tmp_path / "train_40_q90.rec", "resize=40", "quality=90", "num_thread=2")
    prefix = _copy_list(lst, str(tmp_path / "flags"))
    _ours(monkeypatch, "im2rec.py", "--resize", "40", "--quality", "90", "--no-progress",
          prefix, tree["root"])
    for ext in (".rec", ".idx", ".skipped"):
        assert _read(str(tmp_path / "train_40_q90") + ext) == _read(prefix + ext)
    args = parse_im2rec_args(["a.lst", "r", "o.rec", "encoding=.png", "unchanged=1",
                              "center_crop=1", "inter_method=9"])
    assert (args.encoding, args.quality, args.pass_through, args.center_crop,
            args.inter_method) == (".png", 3, True, False, 9)  # the C++ tool's rules
    for bad, message in (["a.lst", "r", "o.rec", "size=3"], "'size=3'"), \
            (["a.lst", "r", "o.rec", "resize=x"], "resize=x: expected an integer"), \
            (["a.lst", "r", "o.rec", "nsplit=2"], "nsplit/part are not supported"), \
            (["a", "r", "o.rec"], "'a' is not a .lst"):
        with pytest.raises(SystemExit):
            parse_im2rec_args(bad)
        assert message in capsys.readouterr().err


# ------------------------------------------------------------------------------------------
# Resuming a killed conversion

_KILL_AT = """
import os, runpy, signal, sys
from gluon_models.data import folder
real, calls = folder.ImageLoader.__call__, []
def dying(self, relpath):  # SIGKILL, no clean-up, at a fixed image (in-process encoding)
    calls.append(relpath)
    if len(calls) == int(os.environ["KILL_AT"]):
        os.kill(os.getpid(), signal.SIGKILL)
    return real(self, relpath)
folder.ImageLoader.__call__ = dying
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_resume_after_kill(tree, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    rows = read_lst(os.path.join(tree["mx"], "data.lst"))
    lst = str(tmp_path / "big.lst")
    with open(lst, "w") as f:  # 600 records (the files repeat), the bad ones among them
        for k in range(600):
            _, lab, rel = rows[k % len(rows)]
            f.write("%d\t%f\t%s\n" % (k, lab[0], rel))
    shutil.copy(lst, str(tmp_path / "ref.lst"))
    opts = ["--resize", "48", "--quality", "90", "--no-progress"]
    proc = subprocess.run([sys.executable, "-c", _KILL_AT, os.path.join(TOOLS, "im2rec.py")]
                          + opts + [str(tmp_path / "big"), tree["root"]],
                          env=dict(os.environ, KILL_AT="450"), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -9, proc.stderr
    assert not os.path.exists(tmp_path / "big.rec")
    partial = sorted(f for f in os.listdir(tmp_path) if f.endswith(".partial"))
    assert [f.split(".")[2] for f in partial] == ["idx", "meta", "rec", "skipped"]
    # Resumed with other workers: the output does not depend on them.
    _ours(monkeypatch, "im2rec.py", *opts, "--resume", "--num-thread", "2", tmp_path / "big",
          tree["root"])
    kept = int(re.search(r"kept its (\d+) complete records", caplog.text).group(1))
    bad = sum(rows[k % len(rows)][2] in BAD for k in range(448))
    assert kept == 448 - bad  # all but the chunk (32 images) being encoded when it died
    _ours(monkeypatch, "im2rec.py", *opts, tmp_path / "ref", tree["root"])
    for ext in (".rec", ".idx", ".skipped"):
        assert _read(str(tmp_path / "big") + ext) == _read(str(tmp_path / "ref") + ext)
    assert [h.id for h, _ in read_raw(str(tmp_path / "big"))] == \
        [k for k in range(600) if rows[k % len(rows)][2] not in BAD]
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".partial")]
    # Complete output: --resume leaves it as it is.
    before = os.path.getmtime(tmp_path / "big.rec")
    _ours(monkeypatch, "im2rec.py", *opts, "--resume", tmp_path / "big", tree["root"])
    assert os.path.getmtime(tmp_path / "big.rec") == before


# ------------------------------------------------------------------------------------------
# Train/val datasets with a shared class index

def _labels_and_paths(prefix):
    return sorted((i, lab[0], rel) for i, lab, rel in read_lst(prefix + ".lst"))


def test_cub_layout(tmp_path, monkeypatch):
    base, expected = make_cub(str(tmp_path / "src"), np.random.RandomState(2))
    out = tmp_path / "cub"
    _ours(monkeypatch, "prepare_folder.py", tmp_path / "src", out, "--resize", "32",
          "--num-thread", "2", "--no-progress")
    for split in ("train", "val"):
        got = _labels_and_paths(str(out / split))
        assert [(lab, rel) for _, lab, rel in got] == [(float(c), p) for p, c in expected[split]]
        by_id = {h.id: h.label for h, _ in read_raw(str(out / split))}
        assert by_id == {i: lab for i, lab, _ in got}
    assert open(out / "classes.txt").read().splitlines()[1] == "1\t002.Laysan_Albatross"
    # the training list is shuffled, the validation list is not
    assert [i for i, _, _ in read_lst(str(out / "train.lst"))] != list(range(6))
    assert [i for i, _, _ in read_lst(str(out / "val.lst"))] == list(range(3))


@pytest.mark.parametrize("damage, message", [
    ("missing", "metadata file not found: .*train_test_split.txt"),
    ("malformed", r"image_class_labels.txt line 2"),
    ("inconsistent", r"train_test_split.txt: no entry for image id 9"),
    ("bad_class", r"image_class_labels.txt: image 1 has class 7"),
])
def test_cub_metadata_errors_name_the_file(tmp_path, monkeypatch, damage, message):
    base, _ = make_cub(str(tmp_path / "src"), np.random.RandomState(3))
    path = {"missing": "train_test_split.txt", "malformed": "image_class_labels.txt",
            "inconsistent": "train_test_split.txt", "bad_class": "image_class_labels.txt"}[damage]
    path = os.path.join(base, path)
    lines = open(path).read().splitlines()
    if damage == "missing":
        os.remove(path)
    elif damage == "malformed":
        lines[1] = "2"
    elif damage == "inconsistent":
        lines = lines[:-1]
    else:
        lines[0] = "1 7"
    if damage != "missing":
        open(path, "w").write("\n".join(lines) + "\n")
    with pytest.raises((DataFormatError, FileNotFoundError), match=message):
        read_folder_dataset(str(tmp_path / "src"))
    with pytest.raises(SystemExit, match="error: .*" + message):
        _ours(monkeypatch, "prepare_folder.py", tmp_path / "src", tmp_path / "out")


def test_imagefolder_layout_shares_the_class_index(tmp_path, monkeypatch):
    rng = np.random.RandomState(4)
    make_class_tree(str(tmp_path / "src" / "train"), rng, ("ant", "bee", "cow"), 3, bad=False)
    make_class_tree(str(tmp_path / "src" / "val"), rng, ("bee", "cow"), 2)  # no "ant"
    _ours(monkeypatch, "prepare_folder.py", tmp_path / "src", tmp_path / "out", "--no-shuffle",
          "--encoding", ".png", "--no-progress")
    val = _labels_and_paths(str(tmp_path / "out" / "val"))
    assert {rel.split(os.sep)[1]: lab for _, lab, rel in val} == {"bee": 1.0, "cow": 2.0}
    assert {rel.split(os.sep)[1] for _, _, rel in val} == {"bee", "cow"}
    assert len(read_raw(str(tmp_path / "out" / "val"))) == 4  # the two bad files skipped
    skipped = open(tmp_path / "out" / "val.skipped").read()
    assert "broken.jpg" in skipped and "fake.png" in skipped
    train = _labels_and_paths(str(tmp_path / "out" / "train"))
    assert [lab for _, lab, _ in train] == [0.0] * 3 + [1.0] * 3 + [2.0] * 3
    assert open(tmp_path / "out" / "classes.txt").read() == "0\tant\n1\tbee\n2\tcow\n"
    # records that exist are kept unless --overwrite
    before = os.path.getmtime(tmp_path / "out" / "train.rec")
    convert_folder_dataset(str(tmp_path / "src"), str(tmp_path / "out"), progress=False)
    assert os.path.getmtime(tmp_path / "out" / "train.rec") == before
    os.makedirs(tmp_path / "src" / "val" / "yak")
    with pytest.raises(SystemExit, match=r"error: .*val: class folder\(s\) yak are not in"):
        _ours(monkeypatch, "prepare_folder.py", tmp_path / "src", tmp_path / "out2")


def test_aircraft_and_cars_layouts(tmp_path):
    rng = np.random.RandomState(5)
    for name, make in (("aircraft", make_aircraft), ("cars", make_cars)):
        root = str(tmp_path / name)
        os.makedirs(root)
        _, expected = make(root, rng)
        res = convert_folder_dataset(root, str(tmp_path / (name + "_out")), shuffle=False,
                                     progress=False)
        for split in ("train", "val"):
            assert res[split].count == len(expected[split]) and not res[split].skipped
            got = _labels_and_paths(str(tmp_path / (name + "_out") / split))
            assert [(rel, lab) for _, lab, rel in got] == \
                [(p, float(c)) for p, c in expected[split]], (name, split)
    classes = open(tmp_path / "aircraft_out" / "classes.txt").read().splitlines()
    assert classes[2:] == ["2\tCessna 172", "3\tF/A-18"]
    variants = os.path.join(str(tmp_path / "aircraft"), "fgvc-aircraft-2013b", "data",
                            "images_variant_test.txt")
    with open(variants, "a") as f:
        f.write("0099999 Concorde\n")
    with pytest.raises(DataFormatError, match="images_variant_test.txt line 5: variant "
                                              "'Concorde' is not in .*variants.txt"):
        read_folder_dataset(str(tmp_path / "aircraft"))
    with pytest.raises(FileNotFoundError, match="no known layout"):
        read_folder_dataset(str(tmp_path))
