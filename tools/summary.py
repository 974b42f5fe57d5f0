#!/usr/bin/env python
"""Learnable parameters and multiply-adds (batch 1) of a registered network."""
import argparse

from gluon_models.model_zoo import add_model_args
from gluon_models.model_zoo.cli import check_model_args
from gluon_models.utils import format_summary, model_summary
from gluon_models.utils.argtypes import positive_int


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_args(parser)
    parser.add_argument("--input-size", type=positive_int, default=None,
                        help="side of the square 3-channel input; %(default)s: the model's")
    parser.add_argument("--per-layer", action="store_true", help="list every layer")
    args = parser.parse_args()
    options = check_model_args(parser, args)
    size = args.input_size
    result = model_summary(args.model, None if size is None else (3, size, size),
                           **options)
    print("Model: %s" % args.model)
    print(format_summary(result, per_layer=args.per_layer))


if __name__ == "__main__":
    main()
