#!/usr/bin/env python
"""Convert downsampled ImageNet (64x64, 32x32 or 16x16; train_data_batch_1..10 and val_data,
pickles or .npz) to train/val .rec/.idx/.lst records, streaming one file at a time."""
import argparse
import logging
import os
import sys

from gluon_models.data import (DataFormatError, add_convert_args, convert_imagenet64,
                               convert_options_from_args, default_data_root)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("source", help="folder holding train_data_batch_1..10 and val_data (or "
                                       "the release's subfolders, e.g. Imagenet64_train_part1/)")
    parser.add_argument("--side", type=int, choices=[64, 32, 16], default=64,
                        help="image size of the release")
    parser.add_argument("--out-dir", default=None,
                        help="default: %s" % os.path.join(default_data_root(), "imagenet<side>"))
    parser.add_argument("--splits", default="train,val", help="comma-separated: train, val")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted conversion (same files and options)")
    add_convert_args(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)-15s %(message)s")
    logging.info("arguments: %s", vars(args))
    try:
        convert_imagenet64(args.source, args.out_dir, side=args.side,
                           splits=[s.strip() for s in args.splits.split(",") if s.strip()],
                           resume=args.resume, **convert_options_from_args(args))
    except (DataFormatError, FileNotFoundError, ValueError) as e:
        sys.exit("error: %s" % e)


if __name__ == "__main__":
    main()
