"""Distributed training through MXNet's parameter server on loopback: tools/launch.py starts a
scheduler, 1 server and 2 workers running tools/train_cifar.py with dist_sync."""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from gluon_models.data import ensure_digits
from gluon_models.training.runner import rank_params_file
from gluon_models.utils.checkpoint import read_params

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(REPO, "tools")


def _launch(tmp_path, train_args, timeout=120):
    """Run the launcher in its own session; on a hang, kill it all and fail."""
    cmd = [sys.executable, os.path.join(TOOLS, "launch.py"), "-n", "2", "-s", "1",
           sys.executable, os.path.join(TOOLS, "train_cifar.py")] + train_args
    proc = subprocess.Popen(cmd, cwd=str(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env=dict(os.environ, MXNET_SUBGRAPH_VERBOSE="0"))
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # the launcher then stops the processes it started
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("the distributed job hung")
    return proc.returncode, out


def test_dist_sync_workers_end_with_identical_weights(tmp_path):
    data = str(tmp_path / "digits")
    ensure_digits(data)  # once, before the two workers read it
    prefix, dump = str(tmp_path / "ck" / "net"), str(tmp_path / "final")
    rc, out = _launch(tmp_path, [
        "--network", "plain_igc", "--depth", "5", "--primary-partition", "4",
        "--secondary-partition", "2", "--dataset", "digits", "--data-dir", data,
        "--batch-size", "32", "--num-epochs", "2", "--lr", "0.05", "--kv-store", "dist_sync",
        "--model-prefix", prefix, "--save-rank-params", dump, "--disp-batches", "5",
        "--log-file", str(tmp_path / "train.log")])
    assert rc == 0, out[-3000:]
    log = (tmp_path / "train.log").read_text()
    for rank in (0, 1):
        assert "Node[%d] Epoch[1] Validation-accuracy=" % rank in log
        assert "Node[%d] Saved the final parameters of rank %d" % (rank, rank) in log
    assert 'Node[0] Saved checkpoint to "%s-0002.params"' % prefix in log
    assert "Node[1] Saved checkpoint" not in log  # rank 0 alone writes checkpoints
    (arg0, aux0, _), (arg1, aux1, _) = (read_params(rank_params_file(dump, r)) for r in (0, 1))
    ckpt, ckpt_aux, _ = read_params("%s-0002.params" % prefix)
    first, _, _ = read_params("%s-0001.params" % prefix)
    assert sorted(arg0) == sorted(arg1) == sorted(ckpt) and len(arg0) > 10
    for name in arg0:  # the servers hold one copy of the weights: bit-identical on all ranks
        np.testing.assert_array_equal(arg0[name].asnumpy(), arg1[name].asnumpy(), err_msg=name)
        np.testing.assert_array_equal(arg0[name].asnumpy(), ckpt[name].asnumpy(), err_msg=name)
    assert any(not np.array_equal(first[n].asnumpy(), ckpt[n].asnumpy()) for n in ckpt)
    # BatchNorm statistics are not synchronised: each worker's follow its own shard
    assert sorted(aux0) == sorted(aux1) == sorted(ckpt_aux)
    for name in aux0:
        np.testing.assert_array_equal(aux0[name].asnumpy(), ckpt_aux[name].asnumpy())
    assert any(not np.array_equal(aux0[n].asnumpy(), aux1[n].asnumpy()) for n in aux0)
    assert not os.path.exists("%s-0002.states" % prefix)  # states live on the servers


def test_a_failing_worker_stops_the_job(tmp_path):
    rc, out = _launch(tmp_path, ["--dataset", "cifar10", "--data-dir", str(tmp_path / "none"),
                                 "--kv-store", "dist_sync"], timeout=90)
    assert rc == 1, out[-3000:]
    assert "prepare_cifar.py" in out and "stopping the job" in out
