"""Every registered network: forward, gradients, eager == hybridized == exported == stock."""
import numpy as np
import pytest
import mxnet as mx
from mxnet import autograd, gluon

import gluon_models
from gluon_models.model_zoo import registry

# Left out of the registry-wide tests, each with its reason; a smaller network of the same
# builder is covered.
EXCLUDED = {
    "resnet1001_cifar": "1001 layers: at initialisation its outputs overflow in inference mode "
                        "(333 residual sums through BatchNorms with fresh statistics), and it "
                        "is the slowest to trace; builder covered by resnet164_cifar and SMALL",
    "resnet1001_fbn_cifar": "as resnet1001_cifar; covered by resnet164_fbn_cifar",
    "resnet1001_ibn_a_mx_cifar": "as resnet1001_cifar; covered by resnet164_ibn_a_mx_cifar",
}
NAMES = [n for n in gluon_models.list_models() if n not in EXCLUDED]
# The generic builders (functions, not registered: their defaults are named variants) at a
# small FB configuration, by seed alias.
SMALL = {"resnet-small-fmconv": dict(depth=11), "resnet-fmconv": dict(depth=18)}
# 224-pixel networks run at full size only in the slow set; the default set runs their
# small-input twins: the same features and head at 64 x 64 with the authors' fixed pooling
# window made global (7 x 7 needs the 224-pixel map), which covers every layer's code.
TWIN_SIZE = 64
# The fast MPN-COV family's gluoncv ImageNet backbones (5 M to 170 M parameters; tracing and
# exporting each takes seconds to minutes on a shared CPU) run here only in the slow set;
# tests/model_zoo/test_mpncov.py covers their builders, each named network's export and
# forwards at 64 pixels by default.
SLOW_ONLY = {n: "gluoncv ImageNet backbone of the fast MPN-COV family; see test_mpncov.py"
             for n in gluon_models.list_models(family="mpncov")}
# The IBN-Net families: one network per builder and block kind runs in the default set (its
# 64-pixel twin); the deeper ones of the same builders only in the slow set.
IBN_DEFAULT = {"resnet18_ibn_a", "resnet50_ibn_a", "resnet50_ibn_b", "resnext50_ibn_a",
               "se_resnet50_ibn_a", "se_resnet50", "densenet121_ibn_a", "resnet50_ibn_a_mx",
               "resnext50_ibn_a_mx", "resnext50_ibn_b_mx", "resnext50_ibn_a_w_d_mx",
               "resnet164_ibn_a_mx_cifar"}
SLOW_ONLY.update({n: "deeper IBN-Net network of a builder covered by %s" % sorted(IBN_DEFAULT)
                  for f in ("ibn", "ibn_mx") for n in gluon_models.list_models(family=f)
                  if n not in IBN_DEFAULT and n != "resnet1001_ibn_a_mx_cifar"})
# No small twin: AlexNet / VGG with their own head read a fixed 6 x 6 / 7 x 7 pooled map (the
# head's width fixes the input size), and Inception v3 needs at least 75 pixels.
FULL_SIZE_ONLY = {n for n in SLOW_ONLY if n == "inception_v3" or
                  gluon_models.model_info(n)["options"].get("representation", "gavp") is None}


# representations without a pooling window (no option pool_size)
GLOBAL = ("isqrtcov", "bcnn", "cbp")


def _cases(name):
    full = gluon_models.model_info(name)["input_size"]
    if full in (32, TWIN_SIZE) and name not in SLOW_ONLY:  # small networks: no twin
        return [(name, full)]
    sizes = [full] if name in FULL_SIZE_ONLY else [TWIN_SIZE, full]
    if full in (32, TWIN_SIZE) and name in SLOW_ONLY:
        return [pytest.param(name, full, marks=pytest.mark.slow)]
    return [pytest.param(name, s, marks=pytest.mark.slow) if s == full or name in SLOW_ONLY
            else (name, s) for s in sizes]


ALL = [case for n in NAMES + list(SMALL) for case in _cases(n)]


def input_shape(name, size):
    # two images in the twins: at 64 pixels Inception-BN's last maps are 2 x 2, where a 3 x 3
    # pooling makes every position equal and one image's BatchNorm has nothing to normalise
    return (1, 3, size, size) if size == 224 else (2, 3, size, size)


# Dropout off: the native IBN layers draw their train-mode flag from the same random stream
# (nn.basic.train_mode_flag), so the head's dropout masks of the two implementations differ.
NO_DROPOUT = {n: dict(dropout=0.0) for n in gluon_models.list_models("*_w_d_mx")}


def options(name, size, **kw):
    opts = dict(SMALL.get(name, {}), **NO_DROPOUT.get(name, {}), **kw)
    info = gluon_models.model_info(name)
    # a twin's pooling window (average pooling, the FB head's, also behind seed aliases) is
    # made global; the second-order representations are global already and take no window
    if size != info["input_size"] and info["options"].get("representation") not in GLOBAL:
        opts["representation_options"] = {"pool_size": None}
    return opts


def assert_close(actual, expected, tol=1e-4):
    """Equal to ``tol`` relative to the output's scale: fresh BatchNorm statistics make single
    logits near zero, whose element-wise relative error says nothing (MKLDNN's fused kernels
    round differently from the unfused path)."""
    np.testing.assert_allclose(actual, expected, rtol=0,
                               atol=tol * float(np.abs(expected).max()))


def build(name, size, impl="native", classes=7):
    net = gluon_models.get_model(name, **options(name, size, classes=classes, impl=impl))
    net.initialize(mx.init.Xavier())
    return net


@pytest.mark.parametrize("name,size", ALL)
def test_paths_agree(name, size, tmp_path):
    """Eager, hybridized and the stock twin (loading the export): same output."""
    x = mx.nd.random.uniform(-1, 1, input_shape(name, size))
    net = build(name, size)
    eager = net(x).asnumpy()
    assert eager.shape == (x.shape[0], 7) and np.isfinite(eager).all()

    net.hybridize()
    assert_close(net(x).asnumpy(), eager)
    # SymbolBlock.imports and Module on the export: test_execution_paths.py (calibrated BN)
    net.export(str(tmp_path / name))
    stock = gluon_models.get_model(name, **options(name, size, classes=7, impl="stock"))
    stock.collect_params().load(str(tmp_path / (name + "-0000.params")), allow_missing=False,
                                ignore_extra=False)
    stock.hybridize()
    assert_close(stock(x).asnumpy(), eager)
    sym_json = (tmp_path / (name + "-symbol.json")).read_text()
    # IGC: the permutation, or the secondary conv with the permutations folded in
    assert ('"Reorder"' in sym_json or '"IGCSecondary"' in sym_json) == ("igc" in name)
    assert ('"FMConvolution' in sym_json) == ("fbn" in name or "fmconv" in name)


def finish_deferred_init(net, x):
    """gluoncv backbones leave their input channels to the first forward, whose initialisation
    draws random numbers: run it before seeding, or the two nets' dropout masks differ."""
    try:
        for p in net.collect_params().values():
            p.data()
    except gluon.parameter.DeferredInitializationError:
        net(x)


# Families whose native operator and stock twin compute with different arithmetic in layers
# as deep as the whole network (the IBN layers): in float32 on the small twins (batch
# statistics over 2 x 2 ... 4 x 4 maps) the two rounding paths diverge by ~2 % in the early
# layers' gradients, as far as float32 itself is from float64; compared in float64. IGC: the
# native networks merge the primary convolutions' groups and fold the permutations into the
# secondary one (other summation orders than the twin's oneDNN convolutions), which the plain
# 38-layer CIFAR net amplifies to ~2 % in float32.
FLOAT64_FAMILIES = ("ibn", "ibn_mx", "igc")


@pytest.mark.parametrize("name,size", ALL)
def test_every_parameter_gets_a_gradient_native_equals_stock(name, size):
    dtype = "float64" if gluon_models.model_info(name)["family"] in FLOAT64_FAMILIES \
        else "float32"
    x = mx.nd.random.uniform(-1, 1, input_shape(name, size)).astype(dtype)
    grads = []
    for impl in ("native", "stock"):
        net = build(name, size, impl)
        net.cast(dtype)
        if grads:  # same weights as the native net
            for (_, p), (_, q) in zip(sorted(first.collect_params().items()),
                                      sorted(net.collect_params().items())):
                q.set_data(p.data())
        else:
            first = net
        net.hybridize()
        finish_deferred_init(net, x)
        mx.random.seed(1)  # the same training-mode random draws (DropFactor masks) in both
        with autograd.record():
            loss = (net(x) ** 2).mean()
        loss.backward()
        params = {k[len(net.prefix):]: p for k, p in net.collect_params().items()
                  if p.grad_req != "null"}
        norms = {k: float(mx.nd.norm(p.grad()).asscalar()) for k, p in params.items()}
        assert all(v > 0 for v in norms.values()), [k for k, v in norms.items() if v == 0]
        grads.append({k: p.grad().asnumpy() for k, p in params.items()})
    # float32 rounding of two equal graphs accumulates over 100+ layers, and a convolution
    # bias in front of a training-mode BatchNorm (FBN's CIFAR nets) has a true gradient of 0,
    # i.e. rounding noise: absolute tolerance relative to the network's largest gradient
    atol = 1e-6 + 1e-5 * max(float(np.abs(g).max()) for g in grads[0].values())
    for k in grads[0]:
        np.testing.assert_allclose(grads[0][k], grads[1][k], rtol=1e-4, atol=atol, err_msg=k)


def test_exclusions_name_registered_models():
    assert set(EXCLUDED) <= set(gluon_models.list_models())
    assert FULL_SIZE_ONLY <= set(SLOW_ONLY) <= set(gluon_models.list_models())


def test_registry_lookup_and_listing():
    assert gluon_models.list_models("igc_resnet18_*") == [
        "igc_resnet18_l4m32", "igc_resnet18_l16m16", "igc_resnet18_l100m2"]  # natural order
    assert gluon_models.list_models("resnet1*_cifar", family="fbn") == [
        "resnet164_cifar", "resnet164_fbn_cifar", "resnet1001_cifar", "resnet1001_fbn_cifar"]
    families = {gluon_models.model_info(n)["family"] for n in gluon_models.list_models()}
    assert families == {"igc", "fbn", "mpncov", "gmsop", "ibn", "ibn_mx"}
    assert sorted(sum((gluon_models.list_models(family=f) for f in families), [])) == \
        sorted(gluon_models.list_models())
    assert gluon_models.list_models(family="no-such-family") == []
    net = gluon_models.get_model("IGC_Plain_CIFAR", depth=8, classes=3)  # case-insensitive
    assert net.classes == 3 and net.output.weight.shape == (3, 192)
    info = gluon_models.model_info("igc_plain_cifar")
    assert info["family"] == "igc" and info["options"]["primary"] == 24
    assert info["options"]["representation"] == "gavp"


def test_registry_errors():
    with pytest.raises(ValueError, match="did you mean: .*igc_resnet18_l4m32"):
        gluon_models.get_model("igc_resnet18_l4m3")
    with pytest.raises(TypeError, match="no option\\(s\\) width"):
        gluon_models.get_model("igc_plain_cifar", width=3)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_model("igc")(gluon_models.model_info("resnet18_w64")["builder"])
