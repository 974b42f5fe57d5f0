"""PyTorch checkpoints read without PyTorch: the files PyTorch itself wrote (tests/data/torch,
written by PyTorch 2.13 in both formats), files of the tests' own writer (views, shared
storages, CUDA storages, training checkpoints), and untrusted or broken files refused."""
import collections
import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from gluon_models.utils import safe_pickle
from gluon_models.utils.torch_checkpoint import (TorchCheckpointError, load_state_dict,
                                                 read_torch_file, strip_data_parallel)
from tests.utils.torch_files import View, torch_bytes, write_torch_file

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "torch")


def _expected():
    with np.load(os.path.join(DATA, "expected_state_dict.npz")) as npz:
        return collections.OrderedDict((k, npz[k]) for k in npz.files)


@pytest.mark.parametrize("name", ["state_dict_zip.pth", "state_dict_legacy.pth"])
def test_pytorch_written_state_dicts(name):
    expected = _expected()
    got = load_state_dict(os.path.join(DATA, name))
    assert list(got) == list(expected)
    for key, want in expected.items():
        assert got[key].dtype == want.dtype, key
        assert got[key].shape == want.shape, key
        np.testing.assert_array_equal(got[key], want, err_msg=key)
        assert got[key].flags.c_contiguous
    # every dtype of the fixture, a non-contiguous view and a view at a storage offset
    assert {str(v.dtype) for v in got.values()} == {"float32", "float16", "float64", "int64"}
    assert got["bn1.num_batches_tracked"].shape == ()
    # fc.weight (transposed view) and fc.bias (offset 8) share one storage in the file
    np.testing.assert_array_equal(got["fc.bias"], expected["fc.bias"])


@pytest.mark.parametrize("name", ["checkpoint_zip.pth.tar", "checkpoint_legacy.pth.tar"])
def test_pytorch_written_training_checkpoints(name):
    expected = _expected()
    path = os.path.join(DATA, name)
    raw = read_torch_file(path)
    assert raw["epoch"] == 3 and raw["arch"] == "mpncovresnet50"
    assert raw["best_prec1"] == 12.5
    assert raw["optimizer"]["param_groups"][0]["params"] == [0, 1, 2]
    assert list(raw["state_dict"]) == ["features.module.conv1.weight", "fc.weight", "fc.bias"]
    sd = load_state_dict(path)
    assert list(sd) == ["features.conv1.weight", "fc.weight", "fc.bias"]  # DataParallel off
    np.testing.assert_array_equal(sd["features.conv1.weight"], expected["conv1.weight"])
    np.testing.assert_array_equal(sd["fc.weight"], expected["fc.weight"])
    np.testing.assert_array_equal(sd["fc.bias"], expected["fc.bias"])


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("cuda", [False, True])
def test_writer_files_views_and_shared_storages(tmp_path, legacy, cuda):
    rng = np.random.RandomState(0)
    base = rng.randn(4, 6).astype(np.float32)
    sd = collections.OrderedDict([
        ("module.a", base),
        ("module.at", View("module.a", 0, (6, 4), (1, 6))),     # transposed view
        ("module.row", View("module.a", 7, (5,), (1,))),        # storage offset
        ("module.bcast", View("module.a", 2, (3, 2), (0, 1))),  # stride 0
        ("module.h", rng.randn(2, 3).astype(np.float16)),
        ("module.d", rng.randn(3).astype(np.float64)),
        ("module.n", np.array(7, dtype=np.int64)),
        ("module.empty", np.zeros((0, 3), np.float32)),
    ])
    path = write_torch_file(str(tmp_path / "w.pth"), sd, legacy, cuda)
    got = load_state_dict(path)
    assert list(got) == ["a", "at", "row", "bcast", "h", "d", "n", "empty"]
    np.testing.assert_array_equal(got["a"], base)
    np.testing.assert_array_equal(got["at"], base.T)
    np.testing.assert_array_equal(got["row"], base.reshape(-1)[7:12])
    np.testing.assert_array_equal(got["bcast"], np.stack([base.reshape(-1)[2:4]] * 3))
    np.testing.assert_array_equal(got["h"], sd["module.h"])
    np.testing.assert_array_equal(got["d"], sd["module.d"])
    assert got["n"].dtype == np.int64 and got["n"] == 7
    assert got["empty"].shape == (0, 3)


def test_strip_data_parallel():
    assert strip_data_parallel("module.conv1.weight") == "conv1.weight"
    assert strip_data_parallel("features.module.0.weight") == "features.0.weight"
    assert strip_data_parallel("module.module") == "module"  # a parameter named module stays


def test_view_past_its_storage_refused(tmp_path):
    sd = collections.OrderedDict([("a", np.arange(6, dtype=np.float32)),
                                  ("b", View("a", 4, (3,), (1,)))])
    path = write_torch_file(str(tmp_path / "oob.pth"), sd)
    with pytest.raises(TorchCheckpointError, match="oob.pth.*reaches past its storage"):
        read_torch_file(path)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch %s" % _Exploit.marker,))


@pytest.mark.parametrize("legacy", [False, True])
def test_malicious_pickle_refused(tmp_path, legacy):
    _Exploit.marker = str(tmp_path / "pwned")
    payload = pickle.dumps({"conv1.weight": _Exploit()}, protocol=2)
    path = tmp_path / "evil.pth"
    if legacy:
        good = torch_bytes({"x": np.zeros(1, np.float32)}, legacy=True)
        head = io.BytesIO(good)
        for _ in range(3):  # magic, protocol, system information
            pickle.load(head)
        path.write_bytes(good[:head.tell()] + payload + pickle.dumps([], protocol=2))
    else:
        with zipfile.ZipFile(str(path), "w") as archive:
            archive.writestr("evil/data.pkl", payload)
    with pytest.raises(safe_pickle.UnsafePickleError) as err:
        read_torch_file(str(path))
    assert str(path) in str(err.value) and "system" in str(err.value)
    assert not os.path.exists(_Exploit.marker)


def test_other_classes_refused(tmp_path):
    """Only what a checkpoint needs is admitted: e.g. not argparse.Namespace."""
    import argparse
    path = tmp_path / "ns.pth"
    with zipfile.ZipFile(str(path), "w") as archive:
        archive.writestr("a/data.pkl", pickle.dumps({"args": argparse.Namespace(lr=1)}, 2))
    with pytest.raises(safe_pickle.UnsafePickleError, match="ns.pth.*argparse.Namespace"):
        read_torch_file(str(path))


@pytest.mark.parametrize("name", ["state_dict_zip.pth", "state_dict_legacy.pth",
                                  "checkpoint_legacy.pth.tar"])
@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.97])
def test_truncated_files_name_the_file(tmp_path, name, fraction):
    data = open(os.path.join(DATA, name), "rb").read()
    path = tmp_path / ("cut_" + name)
    path.write_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(safe_pickle.PickleFormatError, match=str(path).replace(".", r"\.")):
        load_state_dict(str(path))


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "text.pth"
    path.write_bytes(b"hello, this is not a checkpoint")
    with pytest.raises(safe_pickle.PickleFormatError, match="text.pth"):
        load_state_dict(str(path))
    with pytest.raises(TorchCheckpointError, match="missing.pth.*cannot read"):
        load_state_dict(str(tmp_path / "missing.pth"))
    path = write_torch_file(str(tmp_path / "list.pth"), {"a": 1})
    with pytest.raises(TorchCheckpointError, match="list.pth.*entry 'a' is a int"):
        load_state_dict(path)
