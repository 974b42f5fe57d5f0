#!/usr/bin/env python
"""Train a network on CIFAR-10/100, SVHN or the embedded digits (32x32 RecordIO) with the
Module trainer. The seeds' options are accepted, e.g. the IGC README command:

    python tools/train_cifar.py --network plain_igc --depth 38 --primary-partition 24 \\
        --secondary-partition 2 --batch-size 64 --dataset cifar10 --data-dir DIR

Without --data-dir the embedded digits are used (prepared on first use).
"""
import sys

from gluon_models.training.runner import parse_cifar_args, train_cifar


def main(argv=None):
    try:
        train_cifar(parse_cifar_args(argv))
    except (ValueError, FileNotFoundError) as err:
        sys.exit("train_cifar.py: error: %s" % err)


if __name__ == "__main__":
    main()
