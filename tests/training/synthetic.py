"""A small learnable image problem for trainer tests (importable by subprocesses)."""
import numpy as np
import mxnet as mx

import gluon_models

CLASSES, N_TRAIN, N_VAL, BATCH = 4, 160, 40, 16


def dataset(n, seed):
    rng = np.random.RandomState(seed)
    labels = rng.randint(0, CLASSES, n)
    patterns = np.random.RandomState(123).uniform(-1, 1, (CLASSES, 3, 8, 8))
    x = patterns[labels].repeat(4, axis=2).repeat(4, axis=3)
    x = x + rng.normal(0, 0.5, x.shape)
    return x.astype("float32"), labels.astype("float32")


TRAIN, VAL = dataset(N_TRAIN, 1), dataset(N_VAL, 2)


def make_train(epoch):
    # shuffle comes from np.random, which fit() seeds from (seed, epoch)
    return mx.io.NDArrayIter(TRAIN[0], TRAIN[1], BATCH, shuffle=True, last_batch_handle="pad",
                             label_name="softmax_label")


def make_val():
    return mx.io.NDArrayIter(VAL[0], VAL[1], BATCH, shuffle=False, last_batch_handle="pad",
                             label_name="softmax_label")


def make_net(seed=7):
    mx.random.seed(seed)
    net = gluon_models.get_model("igc_resnet_cifar", depth=8, primary=4, secondary=2,
                                 classes=CLASSES)
    net.initialize()
    return net


CFG = dict(lr=0.1, lr_step_epochs=[2], disp_batches=2, kv_store="local",
           seed=3)
