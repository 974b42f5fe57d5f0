"""torch_sgd (momentum in PyTorch's form) and the log lr schedule, against numpy references
of PyTorch's SGD and of the fast MPN-COV scripts' schedule."""
import mxnet as mx
import numpy as np
import pytest

import gluon_models.training.fit  # noqa: F401  (registers torch_sgd)
from gluon_models.training.schedules import make_lr_scheduler


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_torch_sgd_follows_pytorch_across_an_lr_step(momentum):
    """PyTorch: buf = m * buf + (g + wd * w); w -= lr * buf, the lr dropping 10x after 6 of
    12 updates; MXNet's sgd keeps lr inside its velocity and differs after the step."""
    sched = make_lr_scheduler(0.1, 3, 4, kind="step", lr_steps=[2])
    opt = mx.optimizer.create("torch_sgd", learning_rate=0.1, momentum=momentum, wd=0.01,
                              rescale_grad=0.5, lr_scheduler=sched, clip_gradient=2.0)
    opt.set_lr_mult({0: 3.0})
    update = mx.optimizer.get_updater(opt)
    rng = np.random.RandomState(0)
    w = mx.nd.array(rng.randn(5))
    ref, buf = w.asnumpy().astype(np.float64), np.zeros(5)
    for n in range(1, 13):
        g = rng.randn(5) * 3
        update(0, mx.nd.array(g), w)
        lr = 3.0 * 0.1 * (0.1 if n > 6 else 1.0)
        d = np.clip(0.5 * g, -2, 2) + 0.01 * ref
        buf = momentum * buf + d if momentum else d
        ref = ref - lr * buf
    np.testing.assert_allclose(w.asnumpy(), ref, rtol=1e-5, atol=1e-6)
    if momentum:
        _mxnet_sgd_agrees_before_the_step_only(momentum)


def _mxnet_sgd_agrees_before_the_step_only(momentum):
    def make(name):
        return mx.optimizer.get_updater(mx.optimizer.create(
            name, learning_rate=0.1, momentum=momentum, wd=0.01,
            lr_scheduler=make_lr_scheduler(0.1, 3, 4, kind="step", lr_steps=[2])))
    sgd, torch = make("sgd"), make("torch_sgd")
    rng = np.random.RandomState(0)
    a = mx.nd.array(rng.randn(5))
    b = a.copy()
    for n in range(1, 13):
        g = mx.nd.array(rng.randn(5))
        sgd(0, g, a)
        torch(0, g, b)
        if n == 6:  # constant lr so far: the same trajectory
            np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(a.asnumpy(), b.asnumpy(), rtol=1e-3, atol=1e-4)


def test_log_schedule():
    s = make_lr_scheduler(0.5, epoch_size=4, num_epochs=5, kind="log", log_range=(-1, -3))
    want = np.logspace(-1, -3, 5)
    got = [s(n) for n in range(1, 21)]
    np.testing.assert_allclose(got, np.repeat(want, 4), rtol=1e-12)
    assert s(1000) == pytest.approx(1e-3)  # past the end: the last epoch's
    with pytest.raises(ValueError, match="two exponents"):
        make_lr_scheduler(0.5, 4, 5, kind="log", log_range=(-1,))
