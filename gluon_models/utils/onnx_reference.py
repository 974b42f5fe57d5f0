"""Run an ``.onnx`` file in pure numpy: ``onnx.reference.ReferenceEvaluator`` with two of its
operators replaced.

The reference evaluator of ``onnx`` (1.14) is the ONNX specification written in numpy, so it
checks an exported network without a GPU or an inference runtime (onnxruntime's wheels want a
newer numpy than mxnet 1.9.1 allows). Two of its operators are replaced here:

* ``Conv`` loops over output positions in Python, about a minute for an 8-layer CIFAR
  network; :class:`Conv` computes the same 2-D convolution as one batched matrix product per
  kernel offset (groups, strides, dilations and explicit pads; ``auto_pad`` and other ranks
  fall back to the reference code).
* ``BatchNormalization`` of opsets 9-13 blends the batch's own statistics into the running
  ones whenever ``momentum`` is set, and the schema's default sets it (0.9) when absent, so
  every inference-graph BatchNorm is computed as a training one. The specification's
  inference output, ``scale * (x - mean) / sqrt(var + epsilon) + bias``, is
  :class:`BatchNormalization` (a node in training mode, opset >= 14, is refused).

``tests/utils/test_onnx.py`` holds both to the reference operators / the specification.
"""
import numpy as np

__all__ = ["Conv", "BatchNormalization", "reference_session", "run_onnx"]


def _reference_ops():
    from onnx.reference.op_run import OpRun
    from onnx.reference.ops.op_conv import Conv as ReferenceConv

    class Conv(OpRun):  # noqa: D401  (the ONNX operator's name)
        """ONNX ``Conv`` (2-D, NCHW): ``sum`` over kernel offsets of ``W[:, :, i, j] @
        X[:, :, i*dh + s*y, j*dw + s*x]``, per group."""

        op_domain = ""

        def _run(self, X, W, B=None, auto_pad=None, dilations=None, group=None,
                 kernel_shape=None, pads=None, strides=None):
            if X.ndim != 4 or auto_pad not in (None, "NOTSET", b"NOTSET"):
                return ReferenceConv._run(self, X, W, B, auto_pad, dilations, group,
                                          kernel_shape, pads, strides)
            n, c, h, w = X.shape
            o, cg, kh, kw = W.shape
            g = int(group or 1)
            dh, dw = dilations or (1, 1)
            sh, sw = strides or (1, 1)
            top, left, bottom, right = pads or (0, 0, 0, 0)
            if c != cg * g or o % g:
                raise ValueError("Conv: input channels %d, weight %s, group %d do not fit"
                                 % (c, W.shape, g))
            xp = np.pad(X, ((0, 0), (0, 0), (top, bottom), (left, right)))
            oh = (h + top + bottom - (dh * (kh - 1) + 1)) // sh + 1
            ow = (w + left + right - (dw * (kw - 1) + 1)) // sw + 1
            wg = W.reshape(g, o // g, cg, kh, kw)
            out = np.zeros((n, g, o // g, oh * ow), dtype=np.result_type(X, W))
            for i in range(kh):
                for j in range(kw):
                    patch = xp[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh,
                               j * dw:j * dw + sw * (ow - 1) + 1:sw]
                    out += np.matmul(wg[:, :, :, i, j], patch.reshape(n, g, cg, oh * ow))
            out = out.reshape(n, o, oh, ow)
            if B is not None:
                out += B.reshape(1, -1, 1, 1)
            return (out.astype(X.dtype),)

    class BatchNormalization(OpRun):
        """ONNX ``BatchNormalization`` in inference mode (the running statistics)."""

        op_domain = ""

        def _run(self, x, scale, bias, mean, var, epsilon=1e-5, training_mode=0, **_):
            if training_mode:
                raise NotImplementedError("BatchNormalization with training_mode=1")
            shape = (1, -1) + (1,) * (x.ndim - 2)
            y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + epsilon)
            return ((y * scale.reshape(shape) + bias.reshape(shape)).astype(x.dtype),)

    return [Conv, BatchNormalization]


def __getattr__(name):  # built on first use: onnx is an optional dependency
    ops = {"Conv": 0, "BatchNormalization": 1}
    if name in ops:
        return _reference_ops()[ops[name]]
    raise AttributeError(name)


def reference_session(model):
    """A ``ReferenceEvaluator`` for ``model`` (path or ``ModelProto``) with :class:`Conv` and
    :class:`BatchNormalization`."""
    from onnx.reference import ReferenceEvaluator
    return ReferenceEvaluator(model, new_ops=_reference_ops())


def run_onnx(model, data):
    """The first output of ``model`` (path or ``ModelProto``) for the input array ``data``
    (fed to its first graph input), computed by :func:`reference_session`."""
    session = reference_session(model)
    return session.run(None, {session.input_names[0]: np.asarray(data)})[0]
