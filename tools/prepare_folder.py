#!/usr/bin/env python
"""Convert a train/val image dataset (ImageFolder train/ + val/, CUB-200-2011, FGVC-Aircraft,
Stanford Cars) to OUT/train.* and OUT/val.* records with one class index (OUT/classes.txt)."""
import argparse
import logging
import os
import sys

from gluon_models.data import DataFormatError
from gluon_models.data.finegrained import LAYOUTS, convert_folder_dataset, detect_layout
from gluon_models.data.folder import IMAGE_EXTS, add_image_args, image_options_from_args


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("root", help="the dataset's folder")
    parser.add_argument("out_dir", help="where train.*, val.* and classes.txt go")
    parser.add_argument("--layout", choices=LAYOUTS, default=None,
                        help="the dataset's layout; detected from its files when not given")
    parser.add_argument("--splits", nargs="+", choices=["train", "val"], default=["train", "val"])
    parser.add_argument("--no-shuffle", dest="shuffle", action="store_false",
                        help="keep the training list in listing order (else it is shuffled "
                             "with seed 100)")
    parser.add_argument("--overwrite", action="store_true",
                        help="rewrite splits whose records exist (else they are kept)")
    group = parser.add_argument_group("ImageFolder layout")
    group.add_argument("--train-folder", default="train")
    group.add_argument("--val-folder", default="val")
    group.add_argument("--exts", nargs="+", default=list(IMAGE_EXTS))
    add_image_args(parser, num_workers_default=min(4, os.cpu_count() or 1), pack_label=False)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)-15s %(message)s")
    logging.info("arguments: %s", vars(args))
    options = image_options_from_args(args)
    options.pop("pack_label")  # one label per image
    try:
        layout = args.layout or detect_layout(args.root, train=args.train_folder)
        layout_options = dict(exts=args.exts, train=args.train_folder, val=args.val_folder) \
            if layout == "imagefolder" else {}
        convert_folder_dataset(args.root, args.out_dir, layout=layout, splits=args.splits,
                               shuffle=args.shuffle, overwrite=args.overwrite, **options,
                               **layout_options)
    except (DataFormatError, FileNotFoundError, ValueError, RuntimeError) as e:
        sys.exit("error: %s" % e)
    except KeyboardInterrupt:
        sys.exit("interrupted (run again with --resume to continue)")


if __name__ == "__main__":
    main()
