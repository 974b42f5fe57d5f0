#!/usr/bin/env python
"""Train a network on CIFAR-10/100, SVHN or the embedded digits (32x32 RecordIO) with the
Module trainer. The seeds' options are accepted, e.g. the IGC README command:

    python tools/train_cifar.py --network plain_igc --depth 38 --primary-partition 24 \\
        --secondary-partition 2 --batch-size 64 --dataset cifar10 --data-dir DIR

and the FBN run.sh command (ResNet-164-FBN on CIFAR-100; on CIFAR the FBN networks default to
the authors' data preset `--aug fbn`, mean subtraction and white padding):

    python tools/train_cifar.py --network resnet-small-fmconv --res-module-num 18 \\
        --fmconv-slowstart 3 --fmconv-drop 0.5 --fmconv-factor 20 --lr 0.1 --lr-step 100,150 \\
        --num-epoches 200 --batch-size 128 --wd 1e-4 --clip-gradient 10 --dataset cifar100 \\
        --data-dir DIR --model-prefix model/resnet164_fbn

Without --data-dir the embedded digits are used (prepared on first use).
"""
import sys

from gluon_models.training.logs import configure_logging
from gluon_models.training.runner import parse_cifar_args, train_cifar


def main(argv=None):
    try:
        train_cifar(parse_cifar_args(argv), setup_logging=configure_logging)
    except (ValueError, FileNotFoundError) as err:
        sys.exit("train_cifar.py: error: %s" % err)


if __name__ == "__main__":
    main()
