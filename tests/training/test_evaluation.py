"""Evaluation of a classifier on ImageNet-style records: centre crop and ten crops against
numpy references, exact counts with a partial last batch, the three weight sources."""
import os

import cv2
import mxnet as mx
import numpy as np
import pytest

import gluon_models
from gluon_models.data.imagenet import imagenet_val_iter, resolve_norm
from gluon_models.training import FitConfig, fit
from gluon_models.training.evaluation import (CropAverage, TenCropData, evaluate_classifier,
                                              load_classifier)
from gluon_models.training.fit import evaluate
from gluon_models.utils import build_and_export

from ..data.imagenet_set import CLASSES, constant_photos, photos, write_rec

S, R = 32, 37  # crop, shorter side (default_val_resize(32))
MODEL = dict(depth=8, width=4, classes=10)  # labels 0..4; 10 outputs so top-5 is reported


class Recorder(mx.metric.EvalMetric):
    """Keeps every prediction row and label it is given."""

    def __init__(self):
        super().__init__("recorder")
        self.preds, self.labels = [], []

    def update(self, labels, preds):
        self.labels.append(labels[0].asnumpy())
        self.preds.append(preds[0].asnumpy())
        self.num_inst += len(self.labels[-1])

    def rows(self):
        return np.concatenate(self.preds), np.concatenate(self.labels)


def _net(seed=1):
    mx.random.seed(seed)
    net = gluon_models.get_model("resnet_cifar", **MODEL)
    net.initialize()
    return net


def _centre_then_ten(net, rec, batch):
    single, ten = Recorder(), Recorder()
    evaluate(net, imagenet_val_iter(rec, batch, S), single)
    evaluate(CropAverage(net), TenCropData(rec, batch, S), ten)
    return single, ten


def test_ten_crops_of_constant_images_equal_the_centre_crop(tmp_path):
    rng = np.random.RandomState(2)
    rec = write_rec(str(tmp_path / "c"), constant_photos(rng, 13), rng.randint(0, CLASSES, 13),
                    img_fmt=".png")
    single, ten = _centre_then_ten(_net(), rec, 4)  # batches 4, 4, 4, 1
    assert single.num_inst == ten.num_inst == 13
    (p1, y1), (p10, y10) = single.rows(), ten.rows()
    np.testing.assert_array_equal(y1, y10)
    np.testing.assert_allclose(p1, p10, atol=1e-6)
    assert len({tuple(np.round(p, 4)) for p in p1}) > 1  # the images do differ


def _reference_crops(img):
    """Shorter side to R (cv2 bilinear), then the centre and four corners, and mirrors."""
    h, w = img.shape[:2]
    nh, nw = (R, R * w // h) if h <= w else (R * h // w, R)
    r = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    cy, cx = (nh - S) // 2, (nw - S) // 2
    crops = [r[cy:cy + S, cx:cx + S], r[:S, :S], r[nh - S:, :S], r[:S, nw - S:],
             r[nh - S:, nw - S:]]
    return crops + [c[:, ::-1] for c in crops]


def test_ten_crops_against_numpy_and_centre_against_the_record_iterator(tmp_path):
    rng = np.random.RandomState(3)
    imgs, labels = photos(rng, 6), rng.randint(0, CLASSES, 6)
    rec = write_rec(str(tmp_path / "p"), imgs, labels, img_fmt=".png")
    net = _net()
    norm = resolve_norm("imagenet")  # the default
    mean, std = np.array(norm["mean_rgb"], np.float32), np.array(norm["std_rgb"], np.float32)
    expected = []
    for img in imgs:
        x = (np.stack(_reference_crops(img)).astype(np.float32) - mean) / std
        logits = net(mx.nd.array(x.transpose(0, 3, 1, 2))).asnumpy()
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        expected.append((e / e.sum(axis=1, keepdims=True)).mean(axis=0))
    single, ten = _centre_then_ten(net, rec, 4)
    np.testing.assert_allclose(ten.rows()[0], np.stack(expected), atol=1e-5)
    np.testing.assert_array_equal(ten.rows()[1], labels)
    # crop 0 of the stack is the C++ pipeline's centre crop: the two modes see the same image
    stack = next(iter(TenCropData(rec, 6, S))).data[0].asnumpy()
    centre = next(iter(imagenet_val_iter(rec, 6, S))).data[0].asnumpy()
    np.testing.assert_allclose(stack[:, 0], centre, atol=1e-4)
    assert not np.allclose(stack[:, 1], centre, atol=1e-2)  # a corner is elsewhere


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A training checkpoint (epoch 1) of resnet_cifar and a 13-image validation set."""
    d = tmp_path_factory.mktemp("ev")
    rng = np.random.RandomState(4)
    rec = write_rec(str(d / "val"), photos(rng, 13), rng.randint(0, CLASSES, 13))
    x = rng.uniform(-1, 1, (32, 3, S, S)).astype(np.float32)
    y = rng.randint(0, CLASSES, 32).astype(np.float32)

    def make_train(_epoch):
        return mx.io.NDArrayIter(x, y, 8, shuffle=True, label_name="softmax_label")
    prefix = str(d / "ckpt")
    fit(_net(), make_train, None, FitConfig(num_epochs=1, kv_store="local", model_prefix=prefix))
    return prefix, rec


def test_every_source_gives_the_same_exact_metrics(trained, tmp_path):
    prefix, rec = trained
    export = str(tmp_path / "export")
    build_and_export("resnet_cifar", export, checkpoint=(prefix, 1), **MODEL)
    registry = load_classifier(checkpoint=prefix, epoch=1, model="resnet_cifar", options=MODEL)
    registry.save_parameters(str(tmp_path / "net.params"))
    nets = {"checkpoint": load_classifier(checkpoint=prefix, epoch=1),
            "export": load_classifier(export=export),
            "registry+checkpoint": registry,
            "registry+params": load_classifier(model="resnet_cifar", options=MODEL,
                                               params=str(tmp_path / "net.params"))}
    for crops in (1, 10):
        results = {k: evaluate_classifier(n, rec, crops, batch_size=5, data_shape=S,
                                          preprocess_threads=1) for k, n in nets.items()}
        first = results["checkpoint"]
        assert first["samples"] == 13  # batches 5, 5, 3: the partial one counted exactly
        assert set(first) == {"accuracy", "top_k_accuracy_5", "cross-entropy", "samples"}
        for name, r in results.items():
            for key in first:
                assert r[key] == pytest.approx(first[key], abs=1e-6), (crops, name, key)


def test_source_errors(trained):
    prefix, _ = trained
    with pytest.raises(ValueError, match="nothing to evaluate"):
        load_classifier()
    with pytest.raises(ValueError, match="needs the model it belongs to"):
        load_classifier(params="x.params")
    with pytest.raises(ValueError, match="needs its weights"):
        load_classifier(model="resnet_cifar")
    with pytest.raises(ValueError, match="alone"):
        load_classifier(export=prefix, model="resnet_cifar")
    with pytest.raises(ValueError, match="crops must be one of"):
        evaluate_classifier(load_classifier(checkpoint=prefix, epoch=1), "x.rec", crops=5)
    with pytest.raises(FileNotFoundError, match="ckpt-0009.params"):
        load_classifier(checkpoint=prefix, epoch=9)
    export_like = os.path.join(os.path.dirname(prefix), "exp")
    build_and_export("resnet_cifar", export_like, checkpoint=(prefix, 1), **MODEL)
    with pytest.raises(ValueError, match="not a training checkpoint"):
        load_classifier(checkpoint=export_like, epoch=0)


def test_evaluation_normalises_as_the_model_family_trained():
    """tools/evaluate.py takes the family's normalisation by default (it once evaluated
    every network with IGC's statistics); --norm still overrides it."""
    from gluon_models.training.evaluation import parse_evaluate_args
    assert parse_evaluate_args(["--model", "resnet50_fbn"]).norm == "fbn"
    assert parse_evaluate_args(["--model", "igc_resnet18_l16m16"]).norm == "igc"
    assert parse_evaluate_args(["--export", "x"]).norm == "imagenet"
    assert parse_evaluate_args(["--model", "resnet50_fbn", "--norm", "raw"]).norm == "raw"
