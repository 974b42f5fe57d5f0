"""The GM-SOP head (gated mixture of second-order pooling): a numpy float64 reference of the
whole head written here from the paper's / authors' code's definitions on fixed inputs, the
top-K tie rules and the whole-batch random fallback, the gate noise in training only (Gluon
hybridized and Module), dense = routed mixtures, and the balance loss (value, finite
differences, and the trainer's effective scaling)."""
import numpy as np
import pytest
import mxnet as mx
from mxnet import autograd

from gluon_models.nn.gmsop import (GatedMixture, GateBranch, balance_loss, importance_cv2,
                                   masked_softmax, topk_mask)
from gluon_models.training import training_symbol

C, N, K, S, B, CLASSES = 6, 5, 3, 4, 4, 7
ARANGE = mx.nd.arange(N)


# ---- numpy references ------------------------------------------------------------------------

def ref_conv1x1(x, w):
    return np.einsum("oc,bchw->bohw", w.reshape(w.shape[0], -1), x)


def ref_bn(x, gamma, beta, mean, var, eps=1e-5, axis=1):
    shape = [1] * x.ndim
    shape[axis] = -1
    r = lambda a: a.reshape(shape)  # noqa: E731
    return (x - r(mean)) / np.sqrt(r(var) + eps) * r(gamma) + r(beta)


def ref_sr_sop(x, iters=3, eps=1e-8):
    """Covariance (1/M, centred), trace normalisation with the guard, coupled Newton-Schulz
    (T - 1 full steps, then Y only), sqrt(trace) compensation, the upper triangle read column
    by column: (0,0), (0,1), (1,1), (0,2), ..."""
    b, c = x.shape[:2]
    f = x.reshape(b, c, -1)
    m = f.shape[2]
    f = f - f.mean(axis=2, keepdims=True)
    out = []
    for fb in f:
        cov = fb @ fb.T / m
        t = np.trace(cov) + eps
        y, z, eye = cov / t, np.eye(c), np.eye(c)
        for _ in range(iters - 1):
            p = 0.5 * (3 * eye - z @ y)
            y, z = y @ p, p @ z
        y = 0.5 * y @ (3 * eye - z @ y)
        s = np.sqrt(t) * y
        out.append([s[i, j] for j in range(c) for i in range(j + 1)])
    return np.array(out)


def ref_topk(h, k):
    """Keep entries above the K-th largest; among those equal to it the lowest indices."""
    mask = np.zeros_like(h)
    for b, row in enumerate(h):
        order = sorted(range(len(row)), key=lambda i: (-row[i], i))
        mask[b, order[:k]] = 1
    return mask


def ref_gates(h, mask):
    e = np.where(mask > 0, np.exp(h - h.max(axis=1, keepdims=True)), 0.0)
    return e / e.sum(axis=1, keepdims=True)


def ref_cv2(g):
    imp = g.sum(axis=0)
    return imp.var(ddof=1) / imp.mean() ** 2


def params_of(block):
    return {k[len(block.prefix):]: p for k, p in block.collect_params().items()}


def randomize(block, rng):
    """Random values in every parameter (BN statistics positive) so no term hides."""
    for name, p in params_of(block).items():
        if name.endswith(("triu", "index")):
            continue  # constants (triangle, component index)
        if name.endswith(("running_var", "gamma")):
            v = rng.uniform(0.5, 1.5, p.shape)
        elif name.endswith("gate_weight") or name.endswith("noise_weight"):
            v = rng.normal(0, 1, p.shape)
        else:
            v = rng.normal(0, 0.5, p.shape)
        p.set_data(mx.nd.array(v, dtype=p.dtype))


def head(pool="sop", **kw):
    widths = (8, 4) if pool == "sop" else (8,)
    net = GatedMixture(C, CLASSES, num_components=N, top_k=K, pool=pool, gate_widths=(8, 4),
                       component_widths=widths, prefix="gm_", **kw)
    net.initialize()
    return net


def ref_head(net, x, pool="sop"):
    """The head in inference mode (running BN statistics, no dropout, no noise) in float64;
    returns the intermediate values too."""
    p = {k: v.data().asnumpy().astype(np.float64) for k, v in params_of(net).items()}
    h = x
    for i in range(2):
        h = ref_conv1x1(h, p["gate_conv%d_conv_weight" % i])
        h = np.maximum(ref_bn(h, *(p["gate_conv%d_bn_%s" % (i, s)] for s in
                                   ("gamma", "beta", "running_mean", "running_var"))), 0)
    v = ref_sr_sop(h) if pool == "sop" else h.mean(axis=(2, 3))
    logits = v @ p["gate_gate_weight"]
    mask = ref_topk(logits, K)
    g = ref_gates(logits, mask)
    ws = [p[k] for k in sorted(p) if k.startswith("component_weight")]
    z = []
    for i in range(N):
        c = x
        for w in ws:
            d = w.shape[0] // N
            c = np.maximum(ref_conv1x1(c, w[i * d:(i + 1) * d]), 0)
        z.append(ref_sr_sop(c) if pool == "sop" else c.mean(axis=(2, 3)))
    z = np.stack(z, axis=1)  # (B, N, Dc)
    y = np.einsum("bn,bnd->bd", g, z)
    fused = ref_bn(y, p["bn_gamma"], p["bn_beta"], p["bn_running_mean"], p["bn_running_var"])
    scores = fused @ p["fc_weight"].T + p["fc_bias"]
    return dict(v=v, logits=logits, mask=mask, gates=g, z=z, mixture=y, scores=scores)


# ---- the head against the reference ----------------------------------------------------------

@pytest.mark.parametrize("pool,routing", [("sop", "dense"), ("sop", "routed"),
                                          ("gap", "dense"), ("gap", "routed")])
def test_head_matches_numpy_reference(pool, routing):
    rng = np.random.RandomState(1)
    net = head(pool, routing=routing)
    randomize(net, rng)
    x = rng.uniform(0, 1, (B, C, S, S))
    ref = ref_head(net, x, pool)
    xn = mx.nd.array(x)
    g, logits, mask = (a.asnumpy() for a in net.gate(xn))
    np.testing.assert_allclose(logits, ref["logits"], rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(mask, ref["mask"])
    np.testing.assert_allclose(g, ref["gates"], rtol=1e-4, atol=1e-6)
    mix = net.components(xn, mx.nd.array(ref["gates"])).asnumpy()
    np.testing.assert_allclose(mix, ref["mixture"], rtol=1e-4, atol=1e-4)
    z_dim = 10 if pool == "sop" else 8  # 4 channels: 10 = 4 * 5 / 2
    assert net.components.output_dim == z_dim == ref["z"].shape[2]
    for hybrid in (False, True):
        if hybrid:
            net.hybridize()
        np.testing.assert_allclose(net(xn).asnumpy(), ref["scores"], rtol=1e-4, atol=1e-4)


def test_sop_vector_order_is_column_major_triangle():
    """The components' SOP vector in the spec's order: mixing one-hot gates returns the
    selected component's vector, and it equals extracttrian(lower=True) of the root."""
    rng = np.random.RandomState(2)
    net = head("sop")
    randomize(net, rng)
    x = rng.uniform(0, 1, (B, C, S, S))
    ref = ref_head(net, x)
    onehot = np.zeros((B, N))
    onehot[np.arange(B), [0, 2, 4, 1]] = 1
    mix = net.components(mx.nd.array(x), mx.nd.array(onehot)).asnumpy()
    np.testing.assert_allclose(mix, ref["z"][np.arange(B), [0, 2, 4, 1]], rtol=1e-4, atol=1e-5)
    full = np.zeros((4, 4))
    full[np.triu_indices(4)] = np.arange(10)  # index of each (i, j), i <= j, in column order
    assert [full[i, j] for j in range(4) for i in range(j + 1)] != list(range(10))
    sym = np.array([[1., 2, 4, 7], [2, 3, 5, 8], [4, 5, 6, 9], [7, 8, 9, 10]])
    lower = mx.nd.linalg.extracttrian(mx.nd.array(sym), lower=True).asnumpy()
    assert list(lower) == [sym[i, j] for j in range(4) for i in range(j + 1)]


# ---- selection -------------------------------------------------------------------------------

def test_topk_mask_ties_keep_the_lowest_indices():
    h = np.array([[1., 1, 1, 1, 1, 1],       # all tied: the first three
                  [0, 2, 1, 2, 1, 1],         # 2, 2 above, then the first 1 (index 2)
                  [5, 4, 3, 2, 1, 0],
                  [0, 0, 3, 0, 3, 3],
                  [-1, -1, -2, -1, -1, 7]])
    for k in (1, 3, 5):
        got = topk_mask(mx.nd, mx.nd.array(h), k, mx.nd.arange(6)).asnumpy()
        np.testing.assert_array_equal(got, ref_topk(h, k))
        assert (got.sum(axis=1) == k).all()
    # a larger random row set with many ties (integers) against the reference
    rng = np.random.RandomState(3)
    h = rng.randint(0, 4, (50, 16)).astype(np.float32)
    got = topk_mask(mx.nd, mx.nd.array(h), 8, mx.nd.arange(16)).asnumpy()
    np.testing.assert_array_equal(got, ref_topk(h, 8))


def gate_only(noise="per_sample", k=K):
    gate = GateBranch(C, N, k, (8, 4), pool="gap", noise=noise, prefix="g_")
    gate.initialize()
    return gate


def test_whole_batch_tie_fallback_is_random_in_training_only():
    gate = gate_only()
    tied = mx.nd.array(np.tile([[0.5, 0.5, 0.5, 0.5, 0.5]], (64, 1)))
    train, infer = mx.nd.array([1.0]), mx.nd.array([0.0])
    g, _, mask = (a.asnumpy() for a in gate._gates(mx.nd, tied, infer, ARANGE))
    np.testing.assert_array_equal(mask, np.tile([[1, 1, 1, 0, 0]], (64, 1)))
    g, _, mask = (a.asnumpy() for a in gate._gates(mx.nd, tied, train, ARANGE))
    assert (mask.sum(axis=1) == K).all()
    assert len({tuple(m) for m in mask}) > 3  # per-sample random subsets
    assert 0.3 < mask[:, 4].mean() < 0.9 and 0.3 < mask[:, 0].mean() < 0.9  # uniform: 0.6
    np.testing.assert_allclose(g, mask / K, rtol=1e-6)  # softmax of equal logits
    # one sample not degenerate (its K-th largest above its minimum): the rule does not apply
    partial = tied.asnumpy()
    partial[5] = [3, 2, 2, 1, 0]
    for flag in (train, infer):
        mask = gate._gates(mx.nd, mx.nd.array(partial), flag, ARANGE)[2].asnumpy()
        np.testing.assert_array_equal(mask, ref_topk(partial, K))
    # a sample whose ties sit above its minimum does not count as degenerate either
    above = np.tile([[2., 2, 2, 2, 0]], (8, 1))
    mask = gate._gates(mx.nd, mx.nd.array(above), train, ARANGE)[2].asnumpy()
    np.testing.assert_array_equal(mask, ref_topk(above, K))
    # fallback="always": the authors' layer, random at inference too
    always = GateBranch(C, N, K, (8, 4), pool="gap", fallback="always", prefix="a_")
    masks = [always._gates(mx.nd, tied, infer, ARANGE)[2].asnumpy() for _ in range(2)]
    assert (masks[0].sum(axis=1) == K).all() and not np.array_equal(masks[0], masks[1])
    # ... and the default's selection on every batch that is not degenerate in every sample
    for flag in (train, infer):
        mask = always._gates(mx.nd, mx.nd.array(partial), flag, ARANGE)[2].asnumpy()
        np.testing.assert_array_equal(mask, ref_topk(partial, K))
    # K = N: everything is selected, never random
    full = gate_only(k=N)
    assert (full._gates(mx.nd, tied, train, ARANGE)[2].asnumpy() == 1).all()


def test_masked_softmax_gradient_restricted_to_selection():
    h = mx.nd.array([[0.3, -1.0, 2.0, 0.5], [1.0, 1.0, 1.0, 1.0]], dtype="float64")
    mask = mx.nd.array([[1, 0, 1, 1], [0, 1, 1, 0]], dtype="float64")
    dg = np.array([[0.5, 2.0, -1.0, 0.25], [1.0, -2.0, 3.0, 4.0]])
    h.attach_grad()
    with autograd.record():
        g = masked_softmax(mx.nd, h, mask)
    g.backward(mx.nd.array(dg, dtype="float64"))
    gn = g.asnumpy()
    np.testing.assert_allclose(gn, ref_gates(h.asnumpy(), mask.asnumpy()), rtol=1e-12)
    expect = gn * (dg - (gn * dg).sum(axis=1, keepdims=True))  # the spec's Jacobian
    np.testing.assert_allclose(h.grad.asnumpy(), expect, rtol=1e-10, atol=1e-14)
    assert (h.grad.asnumpy()[mask.asnumpy() == 0] == 0).all()


# ---- noise and train / inference -------------------------------------------------------------

@pytest.mark.parametrize("noise", ["per_sample", "per_entry"])
def test_gate_noise_in_training_only_hybridized(noise):
    gate = GateBranch(C, N, K, (8,), pool="gap", noise=noise, prefix="g_")
    gate.initialize()
    randomize(gate, np.random.RandomState(4))
    gate.hybridize()
    x = mx.nd.random.uniform(0, 1, (B, C, S, S))
    p = {k: v.data().asnumpy().astype(np.float64) for k, v in params_of(gate).items()}

    def v_of(train):
        h = ref_conv1x1(x.asnumpy().astype(np.float64), p["conv0_conv_weight"])
        if train:
            stats = (h.mean(axis=(0, 2, 3)), h.var(axis=(0, 2, 3)))
        else:
            stats = (p["conv0_bn_running_mean"], p["conv0_bn_running_var"])
        return np.maximum(ref_bn(h, p["conv0_bn_gamma"], p["conv0_bn_beta"], *stats),
                          0).mean(axis=(2, 3))

    infer = gate(x)[1].asnumpy()
    np.testing.assert_allclose(infer, v_of(False) @ p["gate_weight"],
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(gate(x)[1].asnumpy(), infer)  # no noise: deterministic
    with autograd.train_mode():
        draws = [gate(x)[1].asnumpy() for _ in range(2)]
    v = v_of(True)
    clean = v @ p["gate_weight"]
    spread = np.log1p(np.exp(v @ p["noise_weight"]))
    gammas = [(d - clean) / spread for d in draws]
    assert not np.allclose(gammas[0], gammas[1])  # a fresh draw per pass
    for gamma in gammas:
        if noise == "per_sample":  # one N(0, 1) per sample, shared by the components
            np.testing.assert_allclose(gamma, gamma[:, :1].repeat(N, 1), rtol=1e-3, atol=1e-3)
        else:
            assert np.abs(gamma - gamma[:, :1]).max() > 1e-2


def test_gate_noise_in_training_only_module():
    gate = GateBranch(C, N, K, (8,), pool="gap", prefix="g_")
    gate.initialize()
    randomize(gate, np.random.RandomState(5))
    sym = mx.sym.Group(list(gate(mx.sym.var("data"))))
    mod = mx.mod.Module(sym, data_names=["data"], label_names=None)
    mod.bind(data_shapes=[("data", (B, C, S, S))], for_training=True)
    args = {k: v.data() for k, v in gate.collect_params().items() if "running" not in k}
    aux = {k: v.data() for k, v in gate.collect_params().items() if "running" in k}
    mod.set_params(args, aux)
    x = mx.io.DataBatch([mx.nd.random.uniform(0, 1, (B, C, S, S))])
    outs = []
    for train in (False, False, True, True):
        mod.forward(x, is_train=train)
        outs.append(mod.get_outputs()[1].asnumpy())
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_allclose(outs[0], gate(x.data[0])[1].asnumpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(outs[2], outs[3])  # noisy, a fresh draw per pass


# ---- dense = routed --------------------------------------------------------------------------

@pytest.mark.parametrize("pool", ["sop", "gap"])
def test_dense_equals_routed_forward_and_backward(pool):
    grads = {}
    for routing in ("dense", "routed"):
        net = head(pool, routing=routing, noise="none", dropout=0.0)
        randomize(net, np.random.RandomState(6))
        net.hybridize()
        x = mx.nd.array(np.random.RandomState(7).uniform(0, 1, (B, C, S, S)))
        x.attach_grad()
        with autograd.record():
            y = net(x)
        y.backward(mx.nd.array(np.random.RandomState(8).normal(0, 1, y.shape)))
        grads[routing] = dict({k: p.grad().asnumpy() for k, p in params_of(net).items()
                               if p.grad_req != "null"}, x=x.grad.asnumpy(), y=y.asnumpy())
    d, r = grads["dense"], grads["routed"]
    assert set(d) == set(r)
    for k in d:
        scale = max(float(np.abs(d[k]).max()), 1e-6)
        np.testing.assert_allclose(r[k], d[k], rtol=0, atol=2e-5 * scale, err_msg=k)
    # unselected components get no gradient: a component nobody selected has zero rows
    assert np.abs(d["component_weight0"]).sum() > 0


# ---- balance loss ----------------------------------------------------------------------------

def test_importance_cv2_value_and_finite_differences():
    rng = np.random.RandomState(9)
    g = rng.uniform(0, 1, (6, N))
    g /= g.sum(axis=1, keepdims=True)
    gn = mx.nd.array(g, dtype="float64")
    gn.attach_grad()
    with autograd.record():
        cv2 = importance_cv2(mx.nd, gn)
    cv2.backward()
    assert cv2.shape == (1,)
    np.testing.assert_allclose(cv2.asscalar(), ref_cv2(g), rtol=1e-12)
    fd = np.zeros_like(g)
    for idx in np.ndindex(*g.shape):
        e = np.zeros_like(g)
        e[idx] = 1e-6
        fd[idx] = (ref_cv2(g + e) - ref_cv2(g - e)) / 2e-6
    np.testing.assert_allclose(gn.grad.asnumpy(), fd, rtol=1e-6, atol=1e-9)
    # the spec's closed form: 2 imp_i / ((N-1) m^2) - 2 (1/(N-1) + CV^2/N) / m, every sample
    imp, m, c2 = g.sum(0), g.sum(0).mean(), ref_cv2(g)
    closed = 2 * imp / ((N - 1) * m ** 2) - 2 * (1 / (N - 1) + c2 / N) / m
    np.testing.assert_allclose(gn.grad.asnumpy(), np.tile(closed, (6, 1)), rtol=1e-10)


def test_balance_loss_declares_the_effective_per_sample_weight():
    """Value CV^2 in every entry; the trainer's weight * d mean_b(loss_b) = (100 / B) d CV^2
    with the batch's own B (J = (sum CE + 100 CV^2) / B)."""
    for b in (6, 3):  # a smaller last batch too
        g = np.random.RandomState(b).uniform(0.1, 1, (b, N))
        gn = mx.nd.array(g, dtype="float64")
        gn.attach_grad()
        with autograd.record():
            spec = balance_loss(mx.nd, gn)
            objective = spec.weight * spec.loss.mean()
        objective.backward()
        assert spec.per_sample and spec.weight == 100 and spec.loss.shape == (b,)
        np.testing.assert_allclose(spec.loss.asnumpy(), ref_cv2(g), rtol=1e-12)
        cv = mx.nd.array(g, dtype="float64")
        cv.attach_grad()
        with autograd.record():
            c2 = importance_cv2(mx.nd, cv)
        c2.backward()
        np.testing.assert_allclose(gn.grad.asnumpy(), 100.0 / b * cv.grad.asnumpy(),
                                   rtol=1e-12)


def test_module_trains_the_balance_loss_with_the_authors_scaling():
    """Module gradients of the training symbol (softmax summed over the batch + the extra
    loss) equal autograd of sum_b CE_b + 100 CV^2 (the trainer divides both by B)."""
    net = head("gap", noise="none", dropout=0.0)
    randomize(net, np.random.RandomState(10))
    x = mx.nd.array(np.random.RandomState(11).uniform(0, 1, (B, C, S, S)))
    label = mx.nd.array([0, 3, 6, 2])
    sym = training_symbol(net)
    assert sym.list_outputs() == ["softmax_output", "extra_loss0_output"]
    mod = mx.mod.Module(sym, data_names=["data"], label_names=["softmax_label"])
    mod.bind(data_shapes=[("data", x.shape)], label_shapes=[("softmax_label", (B,))])
    params = {k: v.data() for k, v in net.collect_params().items()}
    mod.set_params({k: v for k, v in params.items() if k in sym.list_arguments()},
                   {k: v for k, v in params.items() if k in sym.list_auxiliary_states()})
    mod.forward_backward(mx.io.DataBatch([x], [label]))
    _, args = mod.get_params()
    module_grads = dict(zip(mod._exec_group.param_names, mod._exec_group.grad_arrays))
    with autograd.record():
        scores, gates = net._scores(x)
        ce = mx.gluon.loss.SoftmaxCrossEntropyLoss()(scores, label).sum()
        total = ce + 100 * importance_cv2(mx.nd, gates)
    total.backward()
    np.testing.assert_allclose(mod.get_outputs()[1].asnumpy(),
                               importance_cv2(mx.nd, gates).asnumpy().repeat(B), rtol=1e-5)
    for k, p in net.collect_params().items():
        if p.grad_req == "null" or "running" in k:
            continue
        got = module_grads[k][0].asnumpy()
        scale = max(float(np.abs(p.grad().asnumpy()).max()), 1e-8)
        np.testing.assert_allclose(got, p.grad().asnumpy(), rtol=0, atol=1e-4 * scale,
                                   err_msg=k)


# ---- arguments -------------------------------------------------------------------------------

@pytest.mark.parametrize("kw,match", [
    (dict(top_k=6), "top_k"), (dict(num_components=1, top_k=1), "num_components"),
    (dict(pool="max"), "pool"), (dict(noise="gauss"), "noise"), (dict(routing="sparse"),
                                                                   "routing"),
    (dict(dropout=1.0), "dropout"), (dict(fallback="never"), "fallback"),
    (dict(gate_widths=()), "gate_widths"), (dict(balance_weight=-1.0), "balance_weight"),
    (dict(component_widths=(8, 0)), "component_widths"), (dict(impl="cuda"), "impl")])
def test_bad_arguments_are_named(kw, match):
    args = dict(num_components=N, top_k=K)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        GatedMixture(C, CLASSES, **args)
