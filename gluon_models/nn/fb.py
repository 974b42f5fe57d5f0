"""Factorized Bilinear (FB) layer (Li, Wang, Liu, Hou, ICCV 2017, arXiv:1611.05709).

An FB unit adds low-rank pairwise interactions to a linear unit. For every patch ``x`` and
output channel ``o`` (spec fbn.md section 1)::

    FB(x)_o = b_lin[o] + w_o . x                                     linear 1x1 convolution
            + b_fb[o] + sum_f m_f^2 [ (v_{o,f} . x)^2 - sum_d v_{o,f,d}^2 x_d^2 ]   FB term

The quadratic term (every pair d != e counted twice, no 1/2, no diagonal) is the native
``FMConvolution3`` / ``FMConvolution1`` operator or, with ``impl="stock"``, its twin built
from two stock Convolutions (spec 1.5), which gives the same outputs and gradients and
exports without the operator library. As in the authors' heads (spec 1.3, 4.5) the linear
path is an ordinary convolution with its own bias, added to the FB term: both biases are
kept so parameter counts and names match the original checkpoints.

DropFactor (spec 2) scales factor ``f`` by ``m_f^2``, one mask per forward call shared by the
batch, positions, channels and groups. Extension operators cannot see train/inference mode,
so the mask is made here from the package's one train-mode probe,
:func:`~gluon_models.nn.basic.train_mode_dropout` (``F.Dropout``, which follows autograd's
training flag and Module's ``is_train``), and enters the operator as an input::

    d = train_mode_dropout(ones(F), p)   # training: Bernoulli(1-p) / (1-p); inference: 1
    "consistent": m = sqrt(d)            # inference m = 1 = the training expectation of m^2
    "authors":    m = sqrt(1-p) * d      # inference m = sqrt(1-p), the original evaluation

Both modes train identically (m_f^2 is 0 or 1/(1-p)); they differ only at inference, where
the authors' code scales the FB term by 1-p (spec 2.3). ``p = 0`` gives m = 1 in both.
"""
import math

from mxnet.gluon import nn

from ..utils.summary import register_macs
from .basic import check_impl, check_int, check_positive_int, he_normal, is_graph_input, \
    train_mode_dropout

__all__ = ["FactorizedBilinear", "FBConv2D", "FBHead", "fb_quadratic", "dropfactor_mask",
           "fb_parameters", "DROPFACTOR_MODES", "FB_OPS"]

DROPFACTOR_MODES = ("consistent", "authors")
FB_OPS = (1, 3)


def _fb_macs(attrs, in_shapes, out_shapes):
    """Multiply-adds of ``FMConvolution1/3`` for :func:`gluon_models.utils.summary`: with the
    weight ``(O, F, C/G, kh, kw)``, ``out_elems * (F + 1) * (C/G) * kh * kw``, the F
    projections plus the diagonal correction (spec fbn.md 1.5), i.e. exactly the two
    Convolutions of the stock twin."""
    weight = in_shapes[1]  # computed, e.g. identity(weight), so its shape is inferred
    return math.prod(out_shapes[0]) * (weight[1] + 1) * math.prod(weight[2:])


for _op in FB_OPS:
    register_macs("FMConvolution%d" % _op, _fb_macs)


def _pair(value, name, minimum=1):
    """``(h, w)`` of an int or a pair of ints, each >= ``minimum``; ValueError naming ``name``
    otherwise. A string (``"(3,,3)"``, ``"3"``) is refused here rather than split into
    characters or handed to the operator as an attribute to parse."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        items = value
    elif isinstance(value, (str, bytes)) or isinstance(value, (list, tuple)):
        raise ValueError("%s must be an int or a pair of ints, got %r" % (name, value))
    else:
        items = (value, value)
    try:
        return tuple(check_int(name, v, minimum) for v in items)
    except ValueError:
        raise ValueError("%s must be an int >= %d or a pair of them, got %r"
                         % (name, minimum, value)) from None


def dropfactor_mask(F, ones, p, mode="consistent"):
    """The DropFactor mask ``m`` (shape of ``ones``, i.e. ``(num_factor,)``).

    Training (autograd recording in train mode, or Module ``is_train=True``): ``m_f`` is 0 with
    probability ``p`` and ``sqrt(1 / (1 - p))`` otherwise, drawn once per call. Inference:
    1 (``"consistent"``) or ``sqrt(1 - p)`` (``"authors"``). ``p = 0`` gives ones.
    """
    if mode not in DROPFACTOR_MODES:
        raise ValueError("dropfactor_mode must be one of %s, got %r" % (DROPFACTOR_MODES, mode))
    if p == 0:
        return ones
    d = train_mode_dropout(F, ones, p)
    if mode == "consistent":
        return F.sqrt(d)
    return d * math.sqrt(1.0 - p)


def fb_quadratic(F, x, weight, bias, mask, kernel, num_filter, num_factor, stride=(1, 1),
                 pad=(0, 0), dilate=(1, 1), num_group=1, impl="native", op=3,
                 legacy_data_grad=False, workspace=512, fold_mask=True):
    """The FB quadratic term ``bias[o] + sum_f m_f^2 [(v.x)^2 - sum_d v_d^2 x_d^2]``.

    ``weight`` is ``(num_filter, num_factor, C / num_group, kh, kw)``, ``bias`` ``(num_filter,)``
    or None, ``mask`` ``(num_factor,)`` (no gradient flows into it). ``impl="native"`` runs
    ``FMConvolution<op>``; ``impl="stock"`` computes (spec 1.5), with ``Mw = mask * weight``::

        Z = Convolution(x, Mw.reshape(O*F, C/G, kh, kw), num_group=G)
        q = sum_f Z.reshape(N, O, F, OH*OW)^2 .reshape(N, O, OH, OW)
            - Convolution(x^2, sum_f Mw^2, num_group=G)

    MXNet cannot infer a weight shape backwards through ``mask * weight``, so for a graph
    built before the weight shape is known (Gluon deferred initialisation) pass
    ``fold_mask=False``: the mask then scales ``Z`` instead (``Conv(x, m W) = m Conv(x, W)``),
    which is the same value but costs one more pass over ``Z``.
    """
    check_impl(impl)
    geometry = dict(kernel=tuple(kernel), stride=tuple(stride), pad=tuple(pad),
                    dilate=tuple(dilate), num_group=num_group)
    mask = F.BlockGrad(mask)  # a constant of the pass, as in the authors' operator
    if impl == "native":
        if op not in FB_OPS:
            raise ValueError("op must be one of %s, got %r" % (FB_OPS, op))
        # Extension operators overwrite their input gradients (they are not told `req`);
        # stock identities in front keep grad_req='add' working (platform.md section 2).
        if is_graph_input(F, x):
            x = F.identity(x)
        inputs = [x, F.identity(weight)]
        if bias is not None:
            inputs.append(F.identity(bias))
        inputs.append(mask)
        fmconv = F.FMConvolution1 if op == 1 else F.FMConvolution3
        return fmconv(*inputs, num_filter=num_filter, num_factor=num_factor,
                      no_bias=bias is None, workspace=workspace,
                      legacy_data_grad=bool(legacy_data_grad), **geometry)
    if legacy_data_grad:
        raise ValueError("legacy_data_grad needs impl='native' (the stock twin differentiates "
                         "exactly)")
    # explicit reshape sizes only (no MXNet-only codes such as -3/-4), so the twin exports to
    # ONNX: the F projections of output o are the channels o*F .. o*F+F-1 of Z, summed over
    # F on (N, O, F, OH*OW) and given back the (N, O, OH, OW) shape of the diagonal term
    kh, kw = geometry["kernel"]
    rows = (num_filter * num_factor, -1, kh, kw)
    split = (0, num_filter, num_factor, -1)
    if fold_mask:
        mw = F.broadcast_mul(weight, F.reshape(mask, shape=(1, -1, 1, 1, 1)))
        z = F.Convolution(x, F.reshape(mw, shape=rows), num_filter=num_filter * num_factor,
                          no_bias=True, **geometry)
        q = F.sum(F.square(F.reshape(z, shape=split)), axis=2)
        mw2 = F.square(mw)
    else:
        m2 = F.square(mask)
        z = F.Convolution(x, F.reshape(weight, shape=rows),
                          num_filter=num_filter * num_factor, no_bias=True, **geometry)
        q = F.sum(F.broadcast_mul(F.square(F.reshape(z, shape=split)),
                                  F.reshape(m2, shape=(1, 1, -1, 1))), axis=2)
        mw2 = F.broadcast_mul(F.square(weight), F.reshape(m2, shape=(1, -1, 1, 1, 1)))
    diag = F.Convolution(F.square(x), F.sum(mw2, axis=1), num_filter=num_filter, no_bias=True,
                         **geometry)
    y = F.reshape_like(q, diag) - diag
    if bias is not None:
        y = F.broadcast_add(y, F.reshape(bias, shape=(1, -1, 1, 1)))
    return y


class FBConv2D(nn.HybridBlock):
    """The FB quadratic term with its bias and DropFactor, as a convolution-like block.

    Parameters ``weight`` ``(channels, num_factor, in_channels / groups, kh, kw)`` and
    ``bias`` ``(channels,)``, initialised like the authors' (spec 1.7): Xavier gaussian,
    ``factor_type='in'``, magnitude 2 (``std = sqrt(2 / (num_factor * C/G * kh * kw))``),
    bias 0. See :class:`FactorizedBilinear` for the arguments.
    """

    def __init__(self, channels, num_factor, kernel_size=1, strides=1, padding=0, dilation=1,
                 groups=1, use_bias=True, in_channels=0, p=0.5, dropfactor_mode="consistent",
                 impl="native", op=3, legacy_data_grad=False, workspace=512,
                 weight_initializer=None, bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self._kernel = _pair(kernel_size, "kernel_size")
        self._stride = _pair(strides, "strides")
        self._pad = _pair(padding, "padding", minimum=0)
        self._dilate = _pair(dilation, "dilation")
        channels = check_positive_int("channels", channels)
        num_factor = check_positive_int("num_factor", num_factor)
        groups = check_positive_int("groups", groups)
        in_channels = check_int("in_channels", in_channels, 0)  # 0: deferred
        workspace = check_int("workspace", workspace, 0)
        if workspace > 4096:  # the operators' own range for it
            raise ValueError("workspace must be at most 4096 (MB), got %r" % (workspace,))
        if channels % groups or in_channels % groups:
            raise ValueError("channels=%d and in_channels=%d must be divisible by groups=%d"
                             % (channels, in_channels, groups))
        if not 0 <= p < 1:
            raise ValueError("p (the DropFactor drop rate) must be in [0, 1), got %r" % (p,))
        if dropfactor_mode not in DROPFACTOR_MODES:
            raise ValueError("dropfactor_mode must be one of %s, got %r"
                             % (DROPFACTOR_MODES, dropfactor_mode))
        self.impl = check_impl(impl)
        if op not in FB_OPS:
            raise ValueError("op must be one of %s, got %r" % (FB_OPS, op))
        if legacy_data_grad and impl != "native":
            raise ValueError("legacy_data_grad needs impl='native'")
        self._channels, self._num_factor, self._groups = channels, num_factor, groups
        self._p, self._mode, self._op = float(p), dropfactor_mode, op
        self._legacy, self._workspace = bool(legacy_data_grad), int(workspace)
        with self.name_scope():
            self.weight = self.params.get(
                "weight", shape=(channels, num_factor, in_channels // groups) + self._kernel,
                init=weight_initializer if weight_initializer is not None else he_normal(),
                allow_deferred_init=True)
            self.bias = self.params.get("bias", shape=(channels,), init=bias_initializer,
                                        allow_deferred_init=True) if use_bias else None

    def hybrid_forward(self, F, x, weight, bias=None):
        # ones(num_factor) with the weight's dtype and context, and no gradient path.
        ones = F.ones_like(F.reshape(F.BlockGrad(F.slice(
            weight, begin=(0, 0, 0, 0, 0), end=(1, None, 1, 1, 1))), shape=(-1,)))
        mask = dropfactor_mask(F, ones, self._p, self._mode)
        # the stock twin folds the mask into the weight unless this graph must infer it
        fold = all(self.weight.shape)
        return fb_quadratic(F, x, weight, bias, mask, self._kernel, self._channels,
                            self._num_factor, self._stride, self._pad, self._dilate,
                            self._groups, self.impl, self._op, self._legacy, self._workspace,
                            fold_mask=fold)

    def __repr__(self):
        return ("%s(%s -> %d, num_factor=%d, kernel=%s, stride=%s, pad=%s, dilate=%s, groups=%d, "
                "p=%g, dropfactor_mode=%s, impl=%s, op=%d)"
                % (self.__class__.__name__, self.weight.shape[2] * self._groups or None,
                   self._channels, self._num_factor, self._kernel, self._stride, self._pad,
                   self._dilate, self._groups, self._p, self._mode, self.impl, self._op))


class FactorizedBilinear(nn.HybridBlock):
    """FB layer: the FB quadratic term plus the companion linear convolution (spec 1.3, 4).

    ``y = FBConv2D(x) + Conv2D(x)``, both with the same geometry and ``channels`` outputs. In
    the authors' networks it replaces the classifier: a 1x1 FB layer with ``channels =
    classes`` on the last (tanh) feature map, followed by global average pooling. Children
    are named like the authors' parameters (spec 4.5): ``bilinear`` (``<fb_prefix>weight``
    ``(channels, num_factor, in_channels/groups, kh, kw)``, ``<fb_prefix>bias``) and
    ``linear`` (``<linear_prefix>weight`` ``(channels, in_channels/groups, kh, kw)``,
    ``<linear_prefix>bias``), e.g. ``fb_prefix="bilinear1_", linear_prefix="fc_"`` for the
    ImageNet ResNets. Parameters: ``channels * num_factor * C/G * kh * kw + channels`` (FB)
    plus ``channels * C/G * kh * kw + channels`` (linear).

    Parameters
    ----------
    channels : int
        Output channels ``O`` (``num_filter``).
    num_factor : int
        Factors ``F`` per output channel (the authors use 20 on CIFAR, 50 or 20 on ImageNet).
    in_channels : int
        Input channels ``C``; 0 defers the parameter shapes to the first forward pass.
    kernel_size, strides, padding, dilation : int or (int, int)
        Convolution geometry of both paths (the authors use 1x1).
    groups : int
        Channel groups (``C`` and ``O`` divisible by it); the mask is shared by all groups.
    use_bias : bool
        Bias of the FB term (the authors keep it).
    linear : bool
        Include the linear convolution (False: the FB term alone).
    linear_bias : bool
        Bias of the linear convolution.
    p : float
        DropFactor drop rate in [0, 1) (the authors' ``p``/``--fmconv-drop``, 0.5).
    dropfactor_mode : {"consistent", "authors"}
        Inference mask 1 (default; equals the training expectation) or ``sqrt(1 - p)``
        (reproduces the authors' evaluation, which scales the FB term by ``1 - p``).
    impl : {"native", "stock"}
        Native operator or the stock-op twin (same outputs and gradients).
    op : {1, 3}
        Native operator: 3 = ``FMConvolution3`` (fast), 1 = ``FMConvolution1`` (temporary
        memory bounded by ``workspace``).
    legacy_data_grad : bool
        Native only: use the authors' (wrong) input gradient, for training-dynamics parity.
    workspace : int
        Temporary memory limit of the native operator in MB (original default 512).
    fb_prefix, linear_prefix : str
        Prefixes of the two children's parameters.
    """

    def __init__(self, channels, num_factor, in_channels=0, kernel_size=1, strides=1,
                 padding=0, dilation=1, groups=1, use_bias=True, linear=True, linear_bias=True,
                 p=0.5, dropfactor_mode="consistent", impl="native", op=3,
                 legacy_data_grad=False, workspace=512, fb_prefix="bilinear_",
                 linear_prefix="fc_", **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.bilinear = FBConv2D(channels, num_factor, kernel_size, strides, padding,
                                     dilation, groups, use_bias, in_channels, p,
                                     dropfactor_mode, impl, op, legacy_data_grad, workspace,
                                     prefix=fb_prefix)
            b = self.bilinear  # its checked geometry: plain ints, which Conv2D's attributes need
            self.linear = nn.Conv2D(channels, b._kernel, b._stride, b._pad, b._dilate, groups,
                                    use_bias=linear_bias, in_channels=in_channels,
                                    weight_initializer=he_normal(),
                                    prefix=linear_prefix) if linear else None

    def hybrid_forward(self, F, x):
        y = self.bilinear(x)
        if self.linear is not None:
            y = y + self.linear(x)
        return y


class FBHead(nn.HybridBlock):
    """The FBN classifier as a representation (spec 4): ``Flatten(pool(FB(x)))`` on the final
    (tanh) feature map, giving the class scores (``output_dim = classes``, ``logits = True``:
    a network needs no further classifier after it).

    ``FB`` is a 1 x 1 :class:`FactorizedBilinear` with ``classes`` outputs: the FB quadratic
    term (parameters ``<fb_prefix>weight`` ``(classes, num_factor, C, 1, 1)`` and
    ``<fb_prefix>bias``) plus the linear convolution (``<linear_prefix>weight``
    ``(classes, C, 1, 1)``, ``<linear_prefix>bias``); ``pool`` is average pooling, global or
    (as the authors' symbols write it) a fixed ``pool_size`` window with stride ``strides``.

    Parameters
    ----------
    in_channels, classes : int
        Channels of the feature map; outputs.
    num_factor, p, dropfactor_mode, impl, op
        The FB layer's options (:class:`FactorizedBilinear`).
    pool_size, strides : int
        Fixed pooling window, or None for global average pooling.
    fb_prefix, linear_prefix, pool_prefix, flatten_prefix : str
        Prefixes of the children (the authors' names).
    """

    logits = True

    def __init__(self, in_channels, classes, num_factor=20, p=0.5, dropfactor_mode="consistent",
                 impl="native", op=3, pool_size=None, strides=1, fb_prefix="bilinear_",
                 linear_prefix="fc_", pool_prefix="global_pool_", flatten_prefix="flatten1_",
                 **kwargs):
        super().__init__(**kwargs)
        self.output_dim = int(classes)
        with self.name_scope():
            self.fb = FactorizedBilinear(classes, num_factor, in_channels, p=p,
                                         dropfactor_mode=dropfactor_mode, impl=impl, op=op,
                                         fb_prefix=fb_prefix, linear_prefix=linear_prefix,
                                         prefix="")
            self.pool = nn.GlobalAvgPool2D(prefix=pool_prefix) if pool_size is None else \
                nn.AvgPool2D(pool_size, strides, prefix=pool_prefix)
            self.flatten = nn.Flatten(prefix=flatten_prefix)

    def hybrid_forward(self, F, x):
        return self.flatten(self.pool(self.fb(x)))


def fb_parameters(block):
    """The parameters of every FB quadratic term (:class:`FBConv2D`) inside ``block``, in
    order: the ones the authors' ``--fmconv`` learning-rate rule selects by the name prefix
    ``bilinear`` (spec 5.1; the linear companion convolution is not among them)."""
    found, stack = [], [block]
    while stack:
        b = stack.pop()
        if isinstance(b, FBConv2D):
            found.extend(b.params.values())
        stack.extend(reversed(list(b._children.values())))
    return found
