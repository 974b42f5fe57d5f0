#!/usr/bin/env python
"""Export a registered network to `PREFIX-symbol.json` + `PREFIX-0000.params`.

Weights come from a Gluon `.params` file (`--params`), from a Module/export checkpoint
(`--checkpoint PREFIX --epoch N`) or, with neither, from the initialiser. Re-exporting a
native checkpoint with `--impl stock` gives a symbol that loads without the operator library.
"""
import argparse
import logging

from gluon_models.model_zoo import add_model_args
from gluon_models.model_zoo.cli import check_model_args
from gluon_models.utils import build_and_export
from gluon_models.utils.argtypes import file_prefix, non_negative_int, positive_int


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_args(parser)
    weights = parser.add_argument_group("Weights").add_mutually_exclusive_group()
    weights.add_argument("--params", metavar="FILE", help="Gluon save_parameters file")
    weights.add_argument("--checkpoint", metavar="PREFIX",
                         help="Module/export checkpoint prefix (PREFIX-NNNN.params)")
    parser.add_argument("--epoch", type=non_negative_int, default=0, help="epoch of --checkpoint")
    parser.add_argument("--input-size", type=positive_int, default=None,
                        help="side of the square 3-channel input; %(default)s: the model's")
    parser.add_argument("--output", metavar="PREFIX", type=file_prefix, required=True,
                        help="output prefix")
    args = parser.parse_args()
    options = check_model_args(parser, args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.info("arguments: %s", vars(args))
    size = args.input_size
    files = build_and_export(
        args.model, args.output, input_shape=None if size is None else (3, size, size),
        params=args.params,
        checkpoint=None if args.checkpoint is None else (args.checkpoint, args.epoch),
        **options)
    print("\n".join(files))


if __name__ == "__main__":
    main()
