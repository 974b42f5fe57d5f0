"""Gated mixture of second-order pooling (GM-SOP): Z. Wang, B. Gao, J. Xie, W. Zuo, P. Li,
"Global Gated Mixture of Second-order Pooling for Improving Deep Convolutional Neural
Networks", NeurIPS 2018; authors' code https://github.com/ZilinGao/GM-SOP (MatConvNet).

The head reads a backbone's last feature map ``X`` (B, C, S, S):

* a gating branch (1 x 1 conv + BN + ReLU stack, then global average pooling or SR-SOP) gives
  ``v`` (B, Dg) and the gate logits ``H = v Wg + gamma * softplus(v Wn)``, with one N(0, 1)
  draw ``gamma`` per sample shared by all components, in training only (the authors'
  ``H_x`` layer; ``noise="per_entry"``: one draw per (sample, component), the sparsely-gated
  mixture-of-experts formula; ``noise="none"``: no noise);
* the K largest logits of each sample are selected (ties: the lowest component indices; when
  in *every* sample of a training batch the K-th largest logit equals the smallest, the
  selection is a uniformly random K-subset per sample, as the authors' ``gating`` layer does
  while ``Wg`` / ``Wn`` are still constant), and a softmax over the selected logits gives the
  gate weights ``G`` (B, N), 0 elsewhere; the selection is a constant of the pass;
* N components, each its own 1 x 1 conv + ReLU stack (no bias, no BN) and the same pooling:
  SR-SOP (iSQRT-COV with 3 Newton-Schulz steps, trace guard 1e-8, the upper triangle read
  column by column: the parametric SOP) or global average pooling;
* ``y = sum_i G[:, i] Z_i``, then BatchNorm (momentum 0.7), dropout and the classifier.

The mixture is computed densely (every component on every sample, summed with the zero-padded
``G``) or routed (each sample's K selected components only, their weights gathered per
sample): the same outputs and gradients, since no component mixes samples.

The balance loss (:func:`importance_cv2`) is the squared coefficient of variation of the
components' importance ``imp_i = sum_b G[b, i]`` (N - 1 variance); the authors add
``100 * CV^2`` to the *summed* cross-entropy and divide every gradient by the batch size.
"""
import mxnet as mx
from mxnet.gluon import nn

from ..training.heads import ExtraLoss
from .basic import ConvBNAct, check_impl, check_int, relu, train_mode_flag
from .representation import ISqrtCov

__all__ = ["GatedMixture", "GateBranch", "MixtureComponents", "topk_mask", "masked_softmax",
           "importance_cv2", "balance_loss", "NOISES", "ROUTINGS", "POOLS", "FALLBACKS"]

NOISES = ("per_sample", "per_entry", "none")
FALLBACKS = ("training", "always")
ROUTINGS = ("dense", "routed")
POOLS = ("sop", "gap")
BALANCE_WEIGHT = 100.0  # the authors' weight on CV^2, added to the summed cross-entropy
_SOP = dict(iter_num=3, order="column", eps=1e-8)  # SR-SOP of every GM-SOP configuration
_BN = dict(momentum=0.7, epsilon=1e-5)  # running <- 0.7 running + 0.3 batch (MatConvNet)


def _msra_in():
    """N(0, sqrt(2 / fan_in)): MatConvNet's "improved Xavier" of the authors' init files."""
    return mx.init.MSRAPrelu(factor_type="in", slope=0.0)


def topk_mask(F, scores, k, index):
    """``(B, N)`` 0/1 mask of the ``k`` largest entries of each row of ``scores``, ties going
    to the lowest column indices; ``index`` is ``0 .. N - 1`` (``(N,)``, the scores' dtype).

    Exact and independent of any sort's stability: entry ``i`` is selected when fewer than
    ``k`` entries come before it, an entry ``j`` coming before ``i`` when it is larger, or
    equal with ``j < i``. No gradient flows through the mask.
    """
    scores = F.BlockGrad(scores)
    col = F.expand_dims(scores, axis=1)   # [b, 0, j]
    row = F.expand_dims(scores, axis=2)   # [b, i, 0]
    lower = F.broadcast_lesser(F.reshape(index, shape=(1, 1, -1)),
                               F.reshape(index, shape=(1, -1, 1)))  # [0, i, j] = j < i
    before = F.broadcast_greater(col, row) + F.broadcast_mul(F.broadcast_equal(col, row), lower)
    return F.BlockGrad(F.sum(before, axis=2) < k)


def masked_softmax(F, logits, mask):
    """Softmax of each row of ``logits`` over its entries where ``mask`` is 1; exactly 0
    elsewhere (rows of the result sum to 1). The gradient is the softmax Jacobian restricted
    to the selected entries; unselected logits get none."""
    very_negative = F.ones_like(logits) * -1e30
    return F.softmax(F.where(mask, logits, very_negative), axis=1) * mask


def importance_cv2(F, gates):
    """``(1,)``: the squared coefficient of variation of the importance ``imp_i = sum_b
    gates[b, i]`` over the N components, with the N - 1 variance (MATLAB's ``std``)."""
    imp = F.sum(gates, axis=0)
    mean = F.mean(imp)
    dev = F.broadcast_sub(imp, mean)
    num = F.sum(F.ones_like(imp))
    return F.sum(dev * dev) / (num - 1) / (mean * mean)


def balance_loss(F, gates, weight=BALANCE_WEIGHT):
    """The balance loss as an :class:`~gluon_models.training.ExtraLoss` of the trainer.

    The authors' step follows ``(sum_b CE_b + w CV^2) / B = mean_b CE_b + (w / B) CV^2`` with
    ``B`` the size of the current batch (a smaller last batch too). Declared per sample
    (``(B,)``, weight ``w``), each entry's value is ``CV^2`` and its gradient ``d CV^2 / B``:
    the trainer's ``w * d mean_b(loss_b)`` is then exactly ``(w / B) d CV^2``, and the logged
    loss is ``CV^2``.
    """
    cv2 = importance_cv2(F, gates)
    ones = F.BlockGrad(F.ones_like(F.slice_axis(gates, axis=1, begin=0, end=1)))  # (B, 1)
    batch = F.sum(ones)
    fixed = F.BlockGrad(cv2)
    per_sample = F.broadcast_add(fixed, F.broadcast_div(cv2 - fixed, batch))
    return ExtraLoss(F.reshape(F.broadcast_mul(ones, per_sample), shape=(-1,)), weight, True)


def _index_constant(block, num):
    """The constant ``0 .. num - 1`` of ``block`` (a parameter, so that it has the block's
    dtype after ``cast``; graph ops such as ``arange_like`` break partial shape inference)."""
    return block.params.get_constant("index", mx.nd.arange(num))


def _check_widths(name, widths):
    try:
        widths = tuple(widths)
    except TypeError:
        raise ValueError("%s must be a sequence of channel counts, got %r"
                         % (name, widths)) from None
    if not widths:
        raise ValueError("%s must name at least one 1 x 1 convolution" % name)
    return tuple(check_int(name, w) for w in widths)


def _make_pool(pool, channels, impl, prefix):
    """``(block or None, output dimension)`` of the pooling ``pool`` on ``channels``."""
    if pool == "sop":
        block = ISqrtCov(channels, impl=impl, prefix=prefix, **_SOP)
        return block, block.output_dim
    return None, channels


class GateBranch(nn.HybridBlock):
    """The gating branch: ``X -> (G, H, mask)``, the gate weights (B, N), the logits and
    the selection (see the module docstring)."""

    def __init__(self, in_channels, num_components, top_k, widths, pool="sop", noise="per_sample",
                 impl="native", fallback="training", **kwargs):
        super().__init__(**kwargs)
        self.num, self.top_k, self.noise = num_components, top_k, noise
        self.fallback = fallback
        with self.name_scope():
            self.convs = nn.HybridSequential(prefix="")
            c = in_channels
            for i, w in enumerate(widths):
                self.convs.add(ConvBNAct(c, w, 1, norm_kwargs=_BN, prefix="conv%d_" % i))
                self.convs[-1].conv.weight.init = _msra_in()
                c = w
            self.pool, self.dim = _make_pool(pool, c, impl, "pool_")
            init = mx.init.Constant(1.0 / self.dim)
            self.gate_weight = self.params.get("gate_weight", shape=(self.dim, num_components),
                                               init=init)
            self.noise_weight = None if noise == "none" else self.params.get(
                "noise_weight", shape=(self.dim, num_components), init=init)
            self.index = _index_constant(self, num_components)

    def hybrid_forward(self, F, x, gate_weight, index, noise_weight=None):
        x = self.convs(x)
        v = self.pool(x) if self.pool is not None else F.mean(x, axis=(2, 3))
        clean = F.dot(v, gate_weight)
        flag = train_mode_flag(F, clean)  # 1 in training, 0 in inference
        if self.noise == "none":
            logits = clean
        else:
            like = clean if self.noise == "per_entry" else \
                F.slice_axis(clean, axis=1, begin=0, end=1)
            gamma = F.broadcast_mul(flag, F.random.normal_like(F.BlockGrad(like)))
            spread = F.Activation(F.dot(v, noise_weight), act_type="softrelu")
            logits = clean + F.broadcast_mul(gamma, spread)
        return self._gates(F, logits, flag, index)

    def _gates(self, F, logits, flag, index):
        """``(G, H, mask)`` of the logits ``H``: top-K with the whole-batch fallback."""
        k, n = self.top_k, self.num
        scores = logits
        if k < n:
            held = F.BlockGrad(logits)
            # the K-th largest equals the minimum <=> fewer than K entries exceed the minimum
            above = F.sum(F.broadcast_greater(held, F.min(held, axis=1, keepdims=True)), axis=1)
            tied = F.min(above < k)  # (1,): 1 when every sample of the batch is degenerate
            # by default in training only: at inference the selection stays a function of
            # the input (fallback="always": also at inference, as the authors' layer)
            fallback = F.broadcast_mul(tied, flag) if self.fallback == "training" else tied
            noise = F.random.normal_like(held)
            use = F.broadcast_like(F.reshape(fallback, shape=(1, 1)), held)
            scores = F.where(use, noise, held)
        mask = topk_mask(F, scores, k, index)
        return masked_softmax(F, logits, mask), logits, mask


class MixtureComponents(nn.HybridBlock):
    """The N components and their mixture: ``(X, G) -> y = sum_i G[:, i] Z_i(X)``, (B, Dc).

    Component ``i``'s convolutions are rows ``i * d : (i + 1) * d`` of the stacked weights
    ``weight<j>`` (the first conv of all components is one convolution of ``X``, the next ones
    grouped by component). ``routing="dense"`` evaluates all N components on every sample;
    ``"routed"`` only the K selected of each sample (its weights gathered per sample, batched
    products): the same outputs and gradients.
    """

    def __init__(self, in_channels, num_components, top_k, widths, pool="sop", routing="dense",
                 impl="native", **kwargs):
        super().__init__(**kwargs)
        self.num, self.top_k, self.widths, self.routing = num_components, top_k, widths, routing
        self.weights = []
        with self.name_scope():
            c = in_channels
            for j, w in enumerate(widths):
                param = self.params.get("weight%d" % j, shape=(num_components * w, c, 1, 1),
                                        init=_msra_in())
                setattr(self, "weight%d" % j, param)
                self.weights.append("weight%d" % j)
                c = w
            self.pool, self.output_dim = _make_pool(pool, c, impl, "pool_")
            # the routed form's component numbers (the dense one has no use for them)
            self.index = _index_constant(self, num_components) if routing == "routed" else None

    def _pooled(self, F, h):
        return self.pool(h) if self.pool is not None else F.mean(h, axis=(2, 3))

    def hybrid_forward(self, F, x, gates, index=None, **weights):
        ws = [weights[name] for name in self.weights]
        if self.routing == "dense":
            return self._dense(F, x, gates, ws)
        return self._routed(F, x, gates, ws, index)

    def _dense(self, F, x, gates, ws):
        n = self.num
        h = x
        for j, (w, width) in enumerate(zip(ws, self.widths)):
            h = relu(F, F.Convolution(h, w, kernel=(1, 1), num_filter=n * width, no_bias=True,
                                     num_group=1 if j == 0 else n))
        h = F.reshape(h, shape=(-1, self.widths[-1], 0, 0))  # (B * N, d, S, S), sample-major
        z = F.reshape(self._pooled(F, h), shape=(-1, n, self.output_dim))  # (B, N, Dc)
        return F.reshape(F.batch_dot(F.expand_dims(gates, axis=1), z), shape=(0, -1))

    def _routed(self, F, x, gates, ws, idx):
        n, k = self.num, self.top_k
        # slot s of sample b: its s-th selected component in index order (selected entries
        # have weights > 0; an underflown 0 weight leaves a slot on component 0 with weight
        # 0: the same sum, and the softmax Jacobian gives that entry no gradient either way)
        chosen = F.BlockGrad(gates > 0)                                      # (B, N)
        before = F.broadcast_lesser(F.reshape(idx, shape=(n, 1)),
                                    F.reshape(idx, shape=(1, n)))           # [j, i] = j < i
        slot = F.dot(chosen, before)                                         # (B, N)
        slots = F.reshape(F.slice_axis(idx, axis=0, begin=0, end=k), shape=(1, k, 1))
        pick = F.BlockGrad(F.broadcast_mul(
            F.broadcast_equal(F.expand_dims(slot, axis=1), slots),
            F.expand_dims(chosen, axis=1)))                                  # (B, K, N)
        index = F.sum(F.broadcast_mul(pick, F.reshape(idx, shape=(1, 1, n))), axis=2)
        flat = F.reshape(index, shape=(-1,))
        h = F.reshape(x, shape=(0, 0, -1))  # (B, C, M)
        h = F.reshape(F.broadcast_axis(F.expand_dims(h, axis=1), axis=1, size=k),
                      shape=(-3, 0, 0))  # (B * K, C, M)
        for w, width in zip(ws, self.widths):
            taken = F.take(F.reshape(w, shape=(n, -1)), flat)  # (B * K, d * c)
            h = relu(F, F.batch_dot(F.reshape(taken, shape=(0, width, -1)), h))
        if self.pool is not None:  # positions (M, 1): the same covariance as (S, S)
            z = self.pool(F.reshape(h, shape=(0, 0, -1, 1)))
        else:
            z = F.mean(h, axis=2)
        z = F.reshape(z, shape=(-4, -1, k, 0))  # (B, K, Dc)
        weights = F.batch_dot(pick, F.expand_dims(gates, axis=2))  # (B, K, 1)
        return F.reshape(F.batch_dot(weights, z, transpose_a=True), shape=(0, -1))


class GatedMixture(nn.HybridBlock):
    """The GM-SOP / GM-GAP head: ``X (B, C, S, S) -> class scores (B, classes)``.

    Parameters
    ----------
    in_channels : int
        Channels ``C`` of the backbone's map.
    classes : int
        Number of classes.
    num_components, top_k : int
        N components, K selected per sample (the paper's 16 and 8).
    pool : {"sop", "gap"}
        SR-SOP (GM-SOP; the last width of each branch is the covariance size) or global
        average pooling (GM-GAP), in the gating branch and every component.
    gate_widths, component_widths : sequence of int
        Output channels of the 1 x 1 convolutions of the gating branch (each with BN + ReLU)
        and of each component (each with ReLU); default: ``(min(2C, 512), 128)`` in both for
        SOP, and ``(min(2C, 512), 128)`` / ``(512,)`` for GAP (the ResNet-18 configurations'
        rule).
    dropout : float
        Dropout before the classifier (0.2; 0.4 for WRN-36-2 GM-SOP).
    noise : {"per_sample", "per_entry", "none"}
        Training noise of the gate logits (see the module docstring); "none" has no ``Wn``.
    routing : {"dense", "routed"}
        How the mixture is computed (:class:`MixtureComponents`).
    fallback : {"training", "always"}
        When the whole-batch random selection applies: in training only (default), or also at
        inference, as the authors' gating layer (which has no train/test distinction). The
        two give the same selection on every batch that is not degenerate in every sample,
        i.e. on any network whose ``Wg`` columns differ, which one training step already
        makes them; they differ only on an untrained (constant-``Wg``) network, where
        "always" makes inference random. The default stays "training" because the seed's
        resolution of this case (spec gmsop.md, section 10, A4) asks for the rule for the first
        training iterations ("Wg and Wn start constant") and says nothing of inference,
        while a deterministic inference keeps an untrained network's eager, hybridized and
        exported outputs equal (the registry-wide export checks run untrained networks).
    balance_weight : float
        ``w`` of the balance loss (:func:`balance_loss`).
    impl : {"native", "stock"}
        iSQRT-COV implementation of the SR-SOP poolings.

    Children: ``gate`` (:class:`GateBranch`), ``components`` (:class:`MixtureComponents`),
    ``bn``, ``dropout``, ``fc``. ``output_dim = classes`` and ``logits = True`` (the head
    gives the class scores, for :class:`~gluon_models.model_zoo.compose.Classifier`).
    """

    logits = True

    def __init__(self, in_channels, classes, num_components=16, top_k=8, pool="sop",
                 gate_widths=None, component_widths=None, dropout=0.2, noise="per_sample",
                 routing="dense", balance_weight=BALANCE_WEIGHT, impl="native",
                 fallback="training", **kwargs):
        super().__init__(**kwargs)
        in_channels = check_int("in_channels", in_channels)
        num = check_int("num_components", num_components, 2)  # a CV needs two components
        top_k = check_int("top_k", top_k)
        if top_k > num:
            raise ValueError("top_k must be <= num_components (%d), got %d" % (num, top_k))
        if pool not in POOLS:
            raise ValueError("pool must be one of %s, got %r" % (POOLS, pool))
        if noise not in NOISES:
            raise ValueError("noise must be one of %s, got %r" % (NOISES, noise))
        if fallback not in FALLBACKS:
            raise ValueError("fallback must be one of %s, got %r" % (FALLBACKS, fallback))
        if routing not in ROUTINGS:
            raise ValueError("routing must be one of %s, got %r" % (ROUTINGS, routing))
        if not (isinstance(balance_weight, (int, float)) and 0 <= balance_weight < float("inf")):
            raise ValueError("balance_weight must be a finite number >= 0, got %r"
                             % (balance_weight,))
        if not 0 <= dropout < 1:
            raise ValueError("dropout must be in [0, 1), got %r" % (dropout,))
        impl = check_impl(impl)
        first = min(2 * in_channels, 512)
        if gate_widths is None:
            gate_widths = (first, 128)
        if component_widths is None:
            component_widths = (first, 128) if pool == "sop" else (512,)
        gate_widths = _check_widths("gate_widths", gate_widths)
        component_widths = _check_widths("component_widths", component_widths)
        self.output_dim, self.balance_weight = check_int("classes", classes), float(balance_weight)
        with self.name_scope():
            self.gate = GateBranch(in_channels, num, top_k, gate_widths, pool, noise, impl,
                                   fallback, prefix="gate_")
            self.components = MixtureComponents(in_channels, num, top_k, component_widths,
                                                pool, routing, impl, prefix="component_")
            dim = self.components.output_dim
            self.bn = nn.BatchNorm(in_channels=dim, prefix="bn_", **_BN)
            self.dropout = nn.Dropout(dropout, prefix="dropout_")
            self.fc = nn.Dense(classes, in_units=dim, weight_initializer=_msra_in(),
                               prefix="fc_")

    def _scores(self, x):
        gates = self.gate(x)[0]
        z = self.components(x, gates)
        # BatchNorm of the (B, D) mixture as (B, D, 1, 1): MXNet 1.9.1's MKLDNN BatchNorm on a
        # 2-D input crashes (segfault) in Module inference after another network's MKLDNN
        # BatchNorm primitives were cached in the process; the 4-D form is the same numbers.
        z = self._flat(self.bn(self._4d(z)))
        return self.fc(self.dropout(z)), gates

    @staticmethod
    def _4d(z):
        return z.reshape((0, 0, 1, 1))

    @staticmethod
    def _flat(z):
        return z.reshape((0, -1))

    def hybrid_forward(self, F, x):
        return self._scores(x)[0]

    def extra_losses(self, F, x):
        """``(scores, [balance loss])`` for the trainer (:func:`balance_loss`)."""
        scores, gates = self._scores(x)
        return scores, [balance_loss(F, gates, self.balance_weight)]

