"""tools/finetune.py (the fast MPN-COV seed's main.py and fine-tuning scripts) end to end on a
small generated ImageFolder converted with tools/prepare_folder.py: two-stage fine-tuning,
exact resume, the classifier's lr / wd rule and the schedules, multi-crop evaluation, and
the benchmarks' preprocessing against OpenCV."""
import os
import runpy
import sys

import cv2
import mxnet as mx
import numpy as np
import pytest

from gluon_models.data.benchmarks import BenchmarkIter, transform
from gluon_models.model_zoo import get_model
from gluon_models.training.evaluation import CropAverage
from gluon_models.training.finetune import (build_network, classifier_rule, finetune,
                                            parse_finetune_args)
from gluon_models.training.fit import make_optimizer
from gluon_models.training.runner import fit_config
from gluon_models.utils.checkpoint import load_checkpoint
from tests.data.image_folders import make_class_tree

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIZE = 32


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    rng = np.random.RandomState(0)
    make_class_tree(str(root / "imgs" / "train"), rng, per_class=6, bad=False)
    make_class_tree(str(root / "imgs" / "val"), rng, per_class=3, bad=False)
    old = sys.argv
    sys.argv = ["prepare_folder.py", str(root / "imgs"), str(root / "recs")]
    try:
        runpy.run_path(os.path.join(REPO, "tools", "prepare_folder.py"), run_name="__main__")
    finally:
        sys.argv = old
    return str(root / "recs")


def _args(records, prefix, *extra, model="resnet18"):
    return parse_finetune_args(
        ["--model", model, "--classes", "3", "--data-dir", records, "--benchmark", "CUB",
         "--data-shape", str(SIZE), "--batch-size", "4", "--lr", "0.01",
         "--preprocess-threads", "1", "--model-prefix", prefix, *extra])


def _checkpoint(prefix, epoch, model="resnet18"):
    """Structural name -> numpy array of a checkpoint of ``model`` (3 classes)."""
    net = get_model(model, classes=3)
    _, arg, aux, _ = load_checkpoint(prefix, epoch)
    by_name = dict(arg, **aux)
    return {k: by_name[p.name].asnumpy()
            for k, p in net._collect_params_with_prefix().items()}


def _weights(params):
    return {k: v for k, v in params.items() if "running" not in k}


def test_two_stage(records, tmp_path):
    # the starting weights: a resnet18 of ours saved with save_parameters
    start = get_model("resnet18", classes=3)
    start.initialize(mx.init.Xavier())
    start(mx.nd.zeros((1, 3, SIZE, SIZE)))
    pretrained = str(tmp_path / "start.params")
    start.save_parameters(pretrained)
    first = {k: p.data().asnumpy() for k, p in start._collect_params_with_prefix().items()}
    prefix = str(tmp_path / "two" / "r18")
    net, results = finetune(_args(records, prefix, "--pretrained", pretrained, "--epochs", "2",
                                  "--two-stage", "1"))
    stage1, stage2 = _checkpoint(prefix, 1), _checkpoint(prefix, 2)
    features = [k for k in _weights(first) if k.startswith("features.")]
    assert len(features) == 60
    for k in features:  # stage 1: every feature weight bit-identical to the pretrained one
        np.testing.assert_array_equal(stage1[k], first[k], err_msg=k)
    for k in ("output.weight", "output.bias"):  # a new classifier, trained in stage 1
        assert not np.array_equal(stage1[k], stage2[k])
    changed = [k for k in features if not np.array_equal(stage2[k], stage1[k])]
    assert len(changed) == len(features)  # stage 2 trains every layer
    assert set(results) == {"multi_crop", "one_crop"}
    assert all(np.isfinite(v) for r in results.values() for v in r.values())
    # --evaluate reads the last checkpoint and reproduces the final evaluation
    _, again = finetune(_args(records, prefix, "--epochs", "2", "--evaluate"))
    for kind in results:
        for name, value in results[kind].items():
            assert again[kind][name] == pytest.approx(value, rel=1e-6), (kind, name)


def test_resume_equals_uninterrupted_run(records, tmp_path):
    whole, parts = str(tmp_path / "whole" / "r18"), str(tmp_path / "parts" / "r18")
    common = ["--lr-params", "1"]  # a step at epoch 1: the resumed run crosses it
    small = "igc_resnet_cifar"  # any registered network: a small one keeps the test fast
    finetune(_args(records, whole, "--epochs", "2", *common, model=small))
    finetune(_args(records, parts, "--epochs", "1", *common, model=small))
    finetune(_args(records, parts, "--epochs", "2", "--resume", *common, model=small))
    a, b = _checkpoint(whole, 2, small), _checkpoint(parts, 2, small)
    first = _checkpoint(parts, 1, small)
    assert any(not np.array_equal(a[k], first[k]) for k in a)  # epoch 2 did train
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_classifier_lr_and_schedules(records, tmp_path):
    args = _args(records, str(tmp_path / "x"), "--classifier-factor", "7", "--epochs", "4",
                 "--lr-params", "2", "5")
    net = build_network(args)
    opt = make_optimizer(fit_config(args), net, 1.0, epoch_size=3)
    params = net._collect_params_with_prefix()
    for key, p in params.items():
        if p.grad_req == "null":
            continue
        want = 7.0 if key.startswith("output.") else 1.0
        assert opt.lr_mult.get(p.name, 1.0) == want, key
        assert opt.wd_mult.get(p.name, 1.0) == 1.0, key
    # step: epoch e (updates 3e+1 .. 3e+3) at lr * 0.1^(listed epochs <= e); 5 >= epochs: never
    lrs = [opt.lr_scheduler(n) for n in range(1, 13)]
    np.testing.assert_allclose(lrs, [0.01] * 6 + [0.001] * 6, rtol=1e-12)
    # log: lr = logspace(-2, -3, epochs)[e], whatever --lr says
    args = _args(records, str(tmp_path / "y"), "--epochs", "3", "--lr-method", "log",
                 "--lr-params", "-2", "-3")
    opt = make_optimizer(fit_config(args), net, 1.0, epoch_size=2)
    np.testing.assert_allclose([opt.lr_scheduler(n) for n in range(1, 7)],
                               np.repeat([1e-2, 10 ** -2.5, 1e-3], 2), rtol=1e-12)
    assert opt.momentum == 0.9 and type(opt).__name__ == "TorchSGD"
    # pretrained plain VGG: no weight decay on the classifier (the seed's rule)
    classifier_rule(net, "vgg16", 1000, pretrained=True)
    assert net.output.weight.wd_mult == 0 and net.output.weight.lr_mult == 1000
    assert all(p.wd_mult == 1 for k, p in params.items() if k.startswith("features."))
    classifier_rule(net, "mpncov_vgg16_bn", 20, pretrained=True)
    assert net.output.weight.wd_mult == 1


def test_two_crop_evaluation_is_the_mean_of_the_single_crop_logits(records):
    net = get_model("resnet18", classes=3)
    net.initialize(mx.init.Xavier())
    val = BenchmarkIter(os.path.join(records, "val.rec"), "CUB", 4, SIZE, "val")
    multi = BenchmarkIter(os.path.join(records, "val.rec"), "CUB", 4, SIZE, "multi")
    crops = CropAverage(net, average="logits")
    n = 0
    for one, two in zip(val, multi):
        x, stack = one.data[0], two.data[0]
        assert stack.shape == (4, 2, 3, SIZE, SIZE)
        np.testing.assert_array_equal(stack[:, 0].asnumpy(), x.asnumpy())  # the centre crop
        np.testing.assert_array_equal(stack[:, 1].asnumpy(), x.asnumpy()[..., ::-1])  # flip
        logits = (net(x).asnumpy() + net(mx.nd.flip(x, axis=3)).asnumpy()) / 2
        want = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        np.testing.assert_allclose(crops(stack).asnumpy(), want, rtol=1e-5, atol=1e-6)
        assert one.pad == two.pad
        n += 4 - one.pad
    assert n == 9


@pytest.mark.parametrize("benchmark", ["CUB", "Aircraft", "Cars", "ImageNet"])
def test_benchmark_preprocessing(benchmark):
    rng = np.random.RandomState(1)
    h, w, n = 45, 70, 32
    rgb = rng.randint(0, 256, (h, w, 3)).astype(np.uint8)
    img = mx.nd.array(rgb, dtype=np.uint8)

    def resize(a, width, height):
        return cv2.resize(a, (width, height), interpolation=cv2.INTER_LINEAR)

    def centre(a, s):
        y, x = (a.shape[0] - s) // 2, (a.shape[1] - s) // 2
        return a[y:y + s, x:x + s]
    if benchmark == "CUB":  # shorter side n, centre n
        base = centre(resize(rgb, int(w * n / h), n), n)  # the long side truncated
    elif benchmark == "Aircraft":  # n*512/448 square, centre n
        m = int(round(n * 512 / 448))
        base = centre(resize(rgb, m, m), n)
    elif benchmark == "Cars":  # n square
        base = resize(rgb, n, n)
    else:  # shorter side n*256/224, centre n
        s = int(round(n * 256 / 224))
        base = centre(resize(rgb, int(w * s / h), s), n)
    mean = np.array([0.485, 0.456, 0.406]) * 255
    std = np.array([0.229, 0.224, 0.225]) * 255

    def norm(a):
        return ((a - mean) / std).transpose(2, 0, 1)
    val = transform(benchmark, img, n, "val").asnumpy()
    assert val.shape == (1, 3, n, n)
    np.testing.assert_allclose(val[0], norm(base), atol=2 / 58.0)  # resize rounding
    multi = transform(benchmark, img, n, "multi").asnumpy()
    assert multi.shape == ((10 if benchmark == "ImageNet" else 2), 3, n, n)
    np.testing.assert_array_equal(multi[0], val[0])
    mirror = multi[5] if benchmark == "ImageNet" else multi[1]
    np.testing.assert_array_equal(mirror, val[0][..., ::-1])
    flips = 0
    for seed in range(8):
        t = transform(benchmark, img, n, "train", np.random.RandomState(seed)).asnumpy()[0]
        assert t.shape == (3, n, n)
        if benchmark != "ImageNet":  # no random crop, only flips
            flipped = np.array_equal(t, val[0][..., ::-1])
            assert flipped or np.array_equal(t, val[0])
            flips += flipped
    if benchmark != "ImageNet":
        assert 0 < flips < 8


def test_training_draws_follow_seed_and_epoch(records):
    rec = os.path.join(records, "train.rec")

    def epoch_data(epoch, workers):
        it = BenchmarkIter(rec, "ImageNet", 5, SIZE, "train", seed=3, epoch=epoch,
                           num_workers=workers)
        return [(b.data[0].asnumpy(), b.label[0].asnumpy(), b.pad) for b in it]
    a, b, c = epoch_data(1, 1), epoch_data(1, 3), epoch_data(2, 1)
    assert [x[2] for x in a] == [0, 0, 0, 2]  # 18 records, batches of 5
    for (xa, ya, _), (xb, yb, _) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a[0][0], c[0][0])
    labels = np.concatenate([y[:5 - p] for _, y, p in a])
    assert sorted(labels.tolist()) == [0] * 6 + [1] * 6 + [2] * 6  # each record once


def test_command_line_errors(records, tmp_path, capsys):
    base = ["--model", "resnet18", "--data-dir", records, "--benchmark", "CUB"]
    for extra, message in ((["--two-stage", "2"], "--two-stage needs --model-prefix"),
                           (["--lr-method", "log"], "needs --lr-params"),
                           (["--benchmark", "Birds"], "benchmark must be one of"),
                           (["--representation", "fisher"], "expected one of GAvP"),
                           (["--resume"], "--model-prefix")):
        with pytest.raises(SystemExit) as err:
            parse_finetune_args(base + extra)
        assert err.value.code == 2
        assert message in capsys.readouterr().err


def test_defaults_are_finetune_sh(records):
    """finetune.sh: mpncov_resnet50 + MPNCOV, batch 10, lr 1.2e-3 constant (its step at
    epoch 100 of 100 never acts), classifier factor 5, wd 1e-4 (the script's 1e-3 is never
    passed), momentum 0.9 in PyTorch's form, 448-pixel CUB crops."""
    args = parse_finetune_args(["--data-dir", records, "--benchmark", "CUB"])
    assert (args.model, args.batch_size, args.lr, args.classifier_factor, args.wd, args.mom,
            args.num_epochs, args.lr_schedule, args.lr_step_epochs, args.optimizer,
            args.data_shape) == ("mpncov_resnet50", 10, 1.2e-3, 5.0, 1e-4, 0.9, 100, "step",
                                 [100.0], "torch_sgd", 448)
    assert get_model(args.model).representation.__class__.__name__ == "ISqrtCov"


def test_tool_reports_errors(records, tmp_path):
    old = sys.argv
    sys.argv = ["finetune.py", "--model", "resnet18", "--data-dir", records, "--benchmark",
                "CUB", "--model-prefix", str(tmp_path / "none"), "--evaluate"]
    try:
        with pytest.raises(SystemExit) as err:
            runpy.run_path(os.path.join(REPO, "tools", "finetune.py"), run_name="__main__")
    finally:
        sys.argv = old
    assert "no checkpoint" in str(err.value) and "none" in str(err.value)


def test_mpncov_preset_without_reduction_when_pretrained(records):
    """The seed's MPNCOV preset: no dimension reduction on a pretrained backbone."""
    from gluon_models.training.finetune import _options
    base = ["--data-dir", records, "--benchmark", "CUB", "--representation", "MPNCOV"]
    args = parse_finetune_args(base + ["--model", "vgg16", "--pretrained", "v.params"])
    assert _options(args)["reduced_dim"] == 0
    assert get_model("vgg16", **_options(args)).representation.output_dim == 131328
    args = parse_finetune_args(base + ["--model", "vgg16"])
    assert "reduced_dim" not in _options(args)  # from scratch: the model's 256
    args = parse_finetune_args(base + ["--model", "vgg16", "--pretrained", "v.params",
                                       "--model-opt", "reduced_dim=128"])
    assert _options(args)["reduced_dim"] == 128
    args = parse_finetune_args(base + ["--model", "resnet50", "--pretrained", "r.params"])
    with pytest.raises(ValueError, match="senseless"):
        get_model("resnet50", **_options(args))
    args = parse_finetune_args(base + ["--pretrained", "m.params"])  # mpncov_resnet50
    assert "reduced_dim" not in _options(args)


def test_pretrained_vgg_gets_one_classifier_layer(records):
    """The seed's Newmodel with --pretrained: VGG + B-CNN gets Linear(262144, classes), its
    fc6/fc7 dropped (two_stage_finetune.sh: 52,429,000 classifier parameters at 200)."""
    from gluon_models.training.finetune import _options
    base = ["--data-dir", records, "--benchmark", "CUB", "--model", "vgg16", "--classes", "200",
            "--representation", "BCNN"]
    net = get_model("vgg16", **_options(parse_finetune_args(base + ["--pretrained", "v"])))
    shapes = [p.shape for p in net.output.collect_params().values()]
    assert shapes == [(200, 262144), (200,)]
    net = get_model("vgg16", **_options(parse_finetune_args(base)))  # from scratch: 3 layers
    assert len(list(net.output.collect_params().values())) == 6
    with pytest.raises(ValueError, match="pretrained_head=True and no representation"):
        get_model("vgg16", pretrained_head=True)


def test_imagenet_ten_crops_average_their_logits(records):
    mx.random.seed(5)
    net = get_model("resnet18", classes=3)
    net.initialize(mx.init.Xavier())
    multi = BenchmarkIter(os.path.join(records, "val.rec"), "ImageNet", 5, SIZE, "multi")
    batch = next(iter(multi))
    stack = batch.data[0]
    assert stack.shape == (5, 10, 3, SIZE, SIZE)
    logits = np.stack([net(stack[:, k]).asnumpy() for k in range(10)], axis=1).mean(axis=1)
    want = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    got = CropAverage(net, average="logits")(stack).asnumpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    probs = CropAverage(net)(stack).asnumpy()  # the other rule (tools/evaluate.py) differs
    assert not np.allclose(probs, got, rtol=1e-4)


def test_trained_module_applies_the_classifier_factor_and_the_step(records, tmp_path):
    """In the trainer's own optimizer after 2 epochs with a step at epoch 1: classifier
    parameters at lr * 0.1 * factor, the others at lr * 0.1."""
    from gluon_models.data.benchmarks import benchmark_iters
    from gluon_models.training.fit import fit
    args = _args(records, str(tmp_path / "m"), "--epochs", "2", "--lr-params", "1",
                 "--classifier-factor", "4", model="igc_resnet_cifar")
    net = build_network(args)
    make_train, _, _ = benchmark_iters(records, "CUB", 4, SIZE)
    mod = fit(net, make_train, None, fit_config(args), classes=3)
    opt = mod._optimizer
    assert opt.num_update == 10  # 2 epochs of 5 batches
    output = {p.name for p in net.output.collect_params().values()}
    seen = set()
    for index, name in opt.idx2name.items():
        want = 0.01 * 0.1 * (4 if name in output else 1)
        assert opt._get_lr(index) == pytest.approx(want, rel=1e-9), name
        seen.add(name in output)
    assert seen == {True, False}
