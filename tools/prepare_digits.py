#!/usr/bin/env python
"""Write scikit-learn's digits as 32x32 train (1437) / test (360) .rec/.idx/.lst records."""
import argparse
import logging

from gluon_models.data import (add_convert_args, convert_digits, convert_options_from_args,
                               default_data_dir)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out-dir", default=None, help="default: %s" % default_data_dir("digits"))
    add_convert_args(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)-15s %(message)s")
    logging.info("arguments: %s", vars(args))
    convert_digits(args.out_dir, **convert_options_from_args(args))


if __name__ == "__main__":
    main()
