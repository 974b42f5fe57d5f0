"""Learning-rate schedules: closed-form values, and the same values after a resume."""
import math

import pytest
import mxnet as mx

from gluon_models.training import make_lr_scheduler


def lrs(sched, updates):
    return [sched(u) for u in updates]


def test_multistep_closed_form():
    # lr 0.1, steps at epochs 2 and 3, 10 updates per epoch: x0.1 once the count exceeds 20, 30
    s = make_lr_scheduler(0.1, 10, 4, "step", [2, 3])
    assert lrs(s, [1, 20, 21, 30, 31, 40]) == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_warmup_is_fbn_slow_start():
    # spec fbn.md 5.4 example: lr 0.1, slowstart 3 epochs, fm_scale 0.1, E = 390, steps 100,150
    s = make_lr_scheduler(0.1, 390, 200, "step", [100, 150], warmup_epochs=3, warmup_begin_lr=0.01)
    assert s(0) == pytest.approx(0.01)
    assert s(585) == pytest.approx(0.055)
    assert s(1170) == pytest.approx(0.1)
    assert s(39000) == pytest.approx(0.1)
    assert s(39001) == pytest.approx(0.01)
    assert s(58501) == pytest.approx(0.001)


def test_cosine_endpoints():
    s = make_lr_scheduler(0.2, 10, 5, "cosine")
    assert s(0) == pytest.approx(0.2)
    assert s(25) == pytest.approx(0.1)
    assert s(50) == pytest.approx(0.0, abs=1e-9)


def test_resumed_scheduler_matches():
    # a fresh scheduler asked at a late update (as after resume) gives the continuous value
    a = make_lr_scheduler(0.1, 10, 6, "step", [2, 4])
    seq = lrs(a, range(1, 61))
    b = make_lr_scheduler(0.1, 10, 6, "step", [2, 4])
    assert lrs(b, range(31, 61)) == pytest.approx(seq[30:])


def test_constant_and_errors():
    assert make_lr_scheduler(0.1, 10, 3, "constant") is None
    s = make_lr_scheduler(0.1, 10, 3, "step", [])
    assert lrs(s, [1, 30]) == pytest.approx([0.1, 0.1])
    with pytest.raises(ValueError, match="lr schedule must be one of"):
        make_lr_scheduler(0.1, 10, 3, "poly")
    with pytest.raises(ValueError, match="after the warm-up"):
        make_lr_scheduler(0.1, 10, 3, "step", [1], warmup_epochs=2)
