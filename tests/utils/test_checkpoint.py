"""Checkpoint files are untrusted: optimizer states go through the restricted unpickler, and
every file is checked against the checksum file written with it."""
import hashlib
import logging
import os
import pickle

import mxnet as mx
import numpy as np
import pytest

from gluon_models.training import FitConfig, fit, load_checkpoint
from gluon_models.utils.checkpoint import read_params

from ..training import synthetic as S


def _cfg(**kw):
    return FitConfig(**dict(S.CFG, **kw))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A two-epoch run: checkpoints m-0001 and m-0002 (each test works on a copy)."""
    folder = tmp_path_factory.mktemp("ckpt")
    fit(S.make_net(), S.make_train, None, _cfg(num_epochs=2, model_prefix=str(folder / "m")))
    return {f: (folder / f).read_bytes() for f in os.listdir(folder)}


@pytest.fixture
def ckpt(trained, tmp_path):
    for name, data in trained.items():
        (tmp_path / name).write_bytes(data)
    return str(tmp_path / "m")


def _resume(prefix, **kw):
    return fit(S.make_net(seed=11), S.make_train, None,
               _cfg(num_epochs=2, model_prefix=prefix, load_epoch=1, **kw))


def _rewrite_with_checksum(path, data):
    """Replace a checkpoint file and update its checksum line, as an attacker who controls
    the folder can: the checksum guards against corruption, not against forgery."""
    with open(path, "wb") as f:
        f.write(data)
    sums = path.rsplit(".", 1)[0] + ".sha256"
    if not os.path.exists(sums):
        return
    lines = [line for line in open(sums).read().splitlines()
             if not line.endswith("  " + os.path.basename(path))]
    lines.append("%s  %s" % (hashlib.sha256(data).hexdigest(), os.path.basename(path)))
    with open(sums, "w") as f:
        f.write("\n".join(lines) + "\n")


class _OpensAFile:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):  # loading this with pickle.loads creates the file
        return (open, (self.path, "w"))


def test_a_malicious_states_file_is_refused_not_run(ckpt, tmp_path):
    marker = str(tmp_path / "ran")
    evil = pickle.dumps({0: _OpensAFile(marker)})
    _rewrite_with_checksum(ckpt + "-0001.states", evil)
    with pytest.raises(ValueError, match=r"m-0001\.states: refers to io\.open"):
        _resume(ckpt)
    assert not os.path.exists(marker)


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[:len(b) // 2], "truncated"),
    (lambda b: b"", "truncated"),
    (lambda b: b"\x89PNG\r\n\x1a\n not a pickle", "not a readable MXNet optimizer-states"),
    (lambda b: pickle.dumps([1, 2]), "holds a list"),
])
def test_broken_states_are_errors_naming_the_file(ckpt, damage, message):
    path = ckpt + "-0001.states"
    _rewrite_with_checksum(path, damage(open(path, "rb").read()))
    with pytest.raises(ValueError, match=r"m-0001\.states.*" + message):
        _resume(ckpt)


def test_states_of_another_network_are_named(ckpt):
    # states saved by MXNet itself for a network with other shapes
    opt = mx.optimizer.create("sgd", momentum=0.9)
    updater = mx.optimizer.get_updater(opt)
    w = mx.nd.ones((5, 7))
    updater(0, mx.nd.ones((5, 7)), w)
    _rewrite_with_checksum(ckpt + "-0001.states", updater.get_states())
    with pytest.raises(ValueError, match=r"m-0001\.states: the state of parameter \S+ has "
                                         r"shape \(5, 7\).*another network"):
        _resume(ckpt)


@pytest.mark.parametrize("optimizer, dtype, momentum", [
    ("sgd", "float32", 0.9), ("sgd", "float32", 0.0), ("nag", "float32", 0.9),
    ("sgd", "float16", 0.9), ("nag", "float16", 0.9), ("sgd", "float16", 0.0)])
def test_every_state_mxnet_writes_loads_through_the_allow_list(optimizer, dtype, momentum):
    from gluon_models.utils import safe_pickle
    # what Updater.get_states pickles for sgd/nag, multi-precision (float16 weights) included
    opt = mx.optimizer.create(optimizer, learning_rate=0.1, momentum=momentum,
                              multi_precision=dtype == "float16")
    updater = mx.optimizer.get_updater(opt)
    for i in range(2):
        updater(i, mx.nd.ones((2, 3), dtype=dtype), mx.nd.ones((2, 3), dtype=dtype) * (i + 2))
    loaded = safe_pickle.load(updater.get_states(), "x.states",
                              safe_pickle.MXNET_OPTIMIZER_STATES)
    assert sorted(loaded) == sorted(updater.states)
    for key, state in updater.states.items():
        want = state if isinstance(state, tuple) else (state,)
        got = loaded[key] if isinstance(loaded[key], tuple) else (loaded[key],)
        assert len(got) == len(want)
        for a, b in zip(got, want):
            assert (a is None) == (b is None)
            if a is not None:
                assert a.dtype == b.dtype
                np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())


def test_an_ndarray_is_only_rebuilt_from_its_bytes():
    from gluon_models.utils import safe_pickle
    # NDArray(handle) would take any number as a C pointer (and free it later)
    class _Handle:
        def __reduce__(self):
            return (mx.nd.NDArray, (12345,))
    with pytest.raises(safe_pickle.PickleFormatError,
                       match="x.states.*handle"):
        safe_pickle.load(pickle.dumps({0: _Handle()}), "x.states",
                         safe_pickle.MXNET_OPTIMIZER_STATES)


def test_checksum_file_is_sha256sum_format(ckpt):
    lines = open(ckpt + "-0002.sha256").read().splitlines()
    folder = os.path.dirname(ckpt)
    names = []
    for line in lines:
        digest, name = line.split("  ")
        names.append(name)
        with open(os.path.join(folder, name), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == digest
    assert sorted(names) == ["m-0002.params", "m-0002.states", "m-symbol.json"]


def _flip_byte(path):
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0x01
    open(path, "wb").write(bytes(data))


@pytest.mark.parametrize("damage", ["flip", "append", "truncate"])
def test_corrupted_params_are_errors_naming_the_file(ckpt, damage):
    path = ckpt + "-0001.params"
    if damage == "flip":
        _flip_byte(path)  # inside an array's data: mx.nd.load takes it silently
    elif damage == "append":
        open(path, "ab").write(b"garbage" * 10)  # ignored by mx.nd.load
    else:
        data = open(path, "rb").read()
        open(path, "wb").write(data[:len(data) // 2])
    with pytest.raises(ValueError, match=r"m-0001\.params is corrupted"):
        load_checkpoint(ckpt, 1)
    with pytest.raises(ValueError, match=r"m-0001\.params is corrupted"):
        read_params(path)
    with pytest.raises(ValueError, match=r"m-0001\.params is corrupted"):
        _resume(ckpt)


def test_corrupted_states_and_symbol_are_named(ckpt):
    _flip_byte(ckpt + "-0001.states")
    with pytest.raises(ValueError, match=r"m-0001\.states is corrupted"):
        _resume(ckpt)
    sym = ckpt + "-symbol.json"
    open(sym, "a").write(" ")
    with pytest.raises(ValueError, match=r"m-symbol\.json is corrupted"):
        load_checkpoint(ckpt, 2)


def test_checkpoints_without_checksum_load_with_a_warning(ckpt, caplog):
    for epoch in (1, 2):
        os.remove("%s-%04d.sha256" % (ckpt, epoch))
    with caplog.at_level(logging.WARNING):
        _, arg, _, states = load_checkpoint(ckpt, 1)
    assert arg and states == ckpt + "-0001.states"
    assert "m-0001.params has no checksum file" in caplog.text
    _resume(ckpt)  # a resume works too (the states go through the restricted unpickler)
    # a checkpoint written by plain MXNet
    sym, arg, aux = mx.model.load_checkpoint(ckpt, 2)
    mx.model.save_checkpoint(ckpt + "-plain", 3, sym, arg, aux)
    assert load_checkpoint(ckpt + "-plain", 3)[1].keys() == arg.keys()


def test_a_states_file_not_in_the_checksum_file_is_not_used(ckpt, caplog):
    # a checkpoint written without states (dist kvstore) next to a leftover states file
    lines = [line for line in open(ckpt + "-0001.sha256").read().splitlines()
             if not line.endswith(".states")]
    open(ckpt + "-0001.sha256", "w").write("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING):
        assert load_checkpoint(ckpt, 1)[3] is None
    assert "m-0001.states is not listed" in caplog.text
