#!/usr/bin/env python
"""Convert CIFAR-10 / CIFAR-100 (python version) to train/test .rec/.idx/.lst records."""
import argparse
import logging
import os
import sys

from gluon_models.data import (DataFormatError, add_convert_args, convert_cifar,
                               convert_options_from_args, default_data_root)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("source", help="cifar-10-batches-py/ or cifar-100-python/, a directory "
                                       "holding it or its .tar.gz, or the .tar.gz itself")
    parser.add_argument("--dataset", choices=["cifar10", "cifar100"], default=None,
                        help="default: from the folder or archive name")
    parser.add_argument("--out-dir", default=None,
                        help="default: %s" % os.path.join(default_data_root(), "<dataset>"))
    parser.add_argument("--label", choices=["fine", "coarse", "both"], default="fine",
                        help="CIFAR-100 labels (both: two labels per record)")
    add_convert_args(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)-15s %(message)s")
    logging.info("arguments: %s", vars(args))
    try:
        convert_cifar(args.source, args.out_dir, dataset=args.dataset, label=args.label,
                      **convert_options_from_args(args))
    except (DataFormatError, FileNotFoundError) as e:
        sys.exit("error: %s" % e)


if __name__ == "__main__":
    main()
