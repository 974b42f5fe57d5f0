"""One recorded training pass of a Gluon block and the comparison of two blocks' passes: the
shape shared by the tests that check a fast path against its reference layers or network
(outputs, the input gradient, every parameter's gradient and the running statistics)."""
import numpy as np
import mxnet as mx
from mxnet import autograd


def copy_params(src, dst):
    """Give ``dst`` the parameter values of ``src``; both must have the same parameter names."""
    theirs = dst.collect_params()
    assert sorted(src.collect_params()) == sorted(theirs), "the blocks' parameters differ"
    for name, p in src.collect_params().items():
        theirs[name].set_data(p.data())


def recorded_pass(block, x, dy):
    """Forward ``x`` under autograd, backward ``dy`` (NDArrays; ``x`` is copied) and return
    numpy arrays: [output, input gradient] + for each parameter in name order its gradient, or
    its value where it takes none (running statistics: the pass updates them)."""
    xi = x.copy()
    xi.attach_grad()
    with autograd.record():
        y = block(xi)
    y.backward(dy)
    mx.nd.waitall()  # native BatchNorms update their running statistics in backward
    return [y.asnumpy(), xi.grad.asnumpy()] + [
        p.grad().asnumpy() if p.grad_req != "null" else p.data().asnumpy()
        for _, p in sorted(block.collect_params().items())]


def assert_same_pass(got, want, rel):
    """Every array of two recorded_pass results agrees with the expected one to ``rel``, elementwise
    and relative to the expected array's largest magnitude."""
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_allclose(a, b, rtol=rel, atol=rel * np.abs(b).max(),
                                   err_msg=f"array {i} of the pass")
