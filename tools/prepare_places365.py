#!/usr/bin/env python
"""Convert Places365-Standard (its file lists and image folders) to train/val records of
100x100 images (bicubic, aspect ratio not kept: GM-SOP's preprocessing), via the im2rec
machinery of tools/prepare_folder.py."""
import argparse
import logging
import os
import sys

from gluon_models.data import DataFormatError, default_data_root
from gluon_models.data.finegrained import convert_folder_dataset

BICUBIC = 2  # OpenCV's INTER_CUBIC (see gluon_models.data.folder.INTER_METHODS)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("root", help="the Places365-Standard folder: places365_train_standard.txt, "
                                     "places365_val.txt, categories_places365.txt (or "
                                     "filelist_places365-standard/), data_256/, val_256/")
    parser.add_argument("--out-dir", default=os.path.join(default_data_root(), "places365"))
    parser.add_argument("--size", type=int, default=100, help="side of the square images")
    parser.add_argument("--splits", nargs="+", choices=["train", "val"], default=["train", "val"])
    parser.add_argument("--encoding", choices=[".jpg", ".png"], default=".jpg")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality (or PNG level)")
    parser.add_argument("--num-workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted conversion")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--strict", action="store_true",
                        help="an unreadable image is an error (default: skipped and listed)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)-15s %(message)s")
    logging.info("arguments: %s", vars(args))
    try:
        convert_folder_dataset(args.root, args.out_dir, layout="places365", splits=args.splits,
                               resize=args.size, square=True, inter_method=BICUBIC,
                               quality=args.quality, encoding=args.encoding,
                               num_workers=args.num_workers, strict=args.strict,
                               resume=args.resume, overwrite=args.overwrite,
                               progress=not args.no_progress)
    except (DataFormatError, FileNotFoundError, ValueError) as e:
        sys.exit("error: %s" % e)
    except KeyboardInterrupt:
        sys.exit("interrupted (run again with --resume to continue)")


if __name__ == "__main__":
    main()
