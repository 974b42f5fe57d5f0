#!/usr/bin/env python
"""Convert SVHN cropped digits (train/extra/test_32x32.mat) to .rec/.idx/.lst records."""
import argparse
import logging
import sys

from gluon_models.data import (DataFormatError, add_convert_args, convert_options_from_args,
                               convert_svhn, default_data_dir)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("source", help="directory holding train_32x32.mat, test_32x32.mat "
                                       "(and extra_32x32.mat)")
    parser.add_argument("--out-dir", default=None, help="default: %s" % default_data_dir("svhn"))
    parser.add_argument("--extra", choices=["merge", "separate", "skip"], default="merge",
                        help="extra_32x32.mat: append to train (IGC: 604,388 images), write "
                             "extra.rec, or ignore")
    add_convert_args(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)-15s %(message)s")
    logging.info("arguments: %s", vars(args))
    try:
        convert_svhn(args.source, args.out_dir, extra=args.extra, **convert_options_from_args(args))
    except (DataFormatError, FileNotFoundError) as e:
        sys.exit("error: %s" % e)


if __name__ == "__main__":
    main()
