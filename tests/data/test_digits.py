"""The embedded digits: fixed stratified split, 10 classes, table statistics."""
import os

import numpy as np

from gluon_models.data import DATASETS, convert_digits, digits_images, digits_split, read_lst

from .formats import read_records


def test_split_is_fixed_stratified_and_complete():
    images, labels = digits_images()
    assert images.shape == (1797, 32, 32, 3) and images.dtype == np.uint8
    assert np.array_equal(images[..., 0], images[..., 2])  # gray replicated to 3 channels
    assert images.max() == 255 and images.min() == 0
    train, test = digits_split(labels)
    assert (len(train), len(test)) == (1437, 360) == (DATASETS["digits"].num_train,
                                                      DATASETS["digits"].num_test)
    assert not set(train) & set(test) and len(set(train) | set(test)) == 1797
    per_class = np.bincount(labels[test], minlength=10)
    assert per_class.min() >= 35 and per_class.max() <= 37  # 360 in proportion to class sizes
    again = digits_split(labels)
    assert np.array_equal(again[1], test)


def test_table_statistics_match_the_training_images():
    images, labels = digits_images()
    train, _ = digits_split(labels)
    x = images[train].astype(np.float64)
    info = DATASETS["digits"]
    np.testing.assert_allclose(x.mean(axis=(0, 1, 2)), info.mean_rgb, atol=1e-3)
    np.testing.assert_allclose(x.std(axis=(0, 1, 2)), info.std_rgb, atol=1e-3)


def test_convert_digits(tmp_path):
    res = convert_digits(str(tmp_path), num_workers=2, progress=False)
    assert res["train"].count == 1437 and res["test"].count == 360
    images, labels = digits_images()
    _, test = digits_split(labels)
    records = read_records(os.path.join(str(tmp_path), "test"))
    assert sorted({int(h.label) for h, _ in records}) == list(range(10))
    for (h, img), i in zip(records, test):
        assert h.label == labels[i]
        np.testing.assert_array_equal(img, images[i])
    lst = read_lst(os.path.join(str(tmp_path), "test.lst"))
    assert lst[0][2] == "sklearn_digits/%04d.png" % test[0]


def _bilinear_1d(n_in, n_out):
    """Weights (n_out, n_in) of half-pixel-centred linear interpolation, edges clamped."""
    w = np.zeros((n_out, n_in))
    for o in range(n_out):
        src = min(max((o + 0.5) * n_in / n_out - 0.5, 0.0), n_in - 1.0)
        lo = int(np.floor(src))
        hi = min(lo + 1, n_in - 1)
        w[o, lo] += 1 - (src - lo)
        w[o, hi] += src - lo
    return w


def test_documented_pipeline_and_pinned_split():
    from sklearn.datasets import load_digits
    images, labels = digits_images()
    w = _bilinear_1d(8, 32)
    raw = load_digits().images * 255.0 / 16.0
    expect = np.einsum("oi,nij,pj->nop", w, raw, w)  # bilinear, as documented
    assert np.abs(images[..., 1].astype(np.float64) - expect).max() <= 1.0
    _, test = digits_split(labels)
    assert list(test[:10]) == [3, 7, 13, 19, 36, 38, 43, 48, 53, 55]  # RandomState(0), fixed
    assert int(test.sum()) == 313341
