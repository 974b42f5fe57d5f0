#!/usr/bin/env python
"""Draw a registered network with graphviz (mx.viz.plot_network), each node labelled with its
output shape:

    python tools/plot_network.py --model igc_plain_cifar --model-opt depth=8 --output net.png

Needs graphviz's `dot` program (`make graphviz` installs it).
"""
import argparse
import sys

from gluon_models.model_zoo import add_model_args, get_model
from gluon_models.model_zoo.cli import check_model_args
from gluon_models.utils.argtypes import positive_int
from gluon_models.utils.export import default_input_shape
from gluon_models.utils.graph import DotNotFound, plot_network


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(parser)
    parser.add_argument("--input-size", type=positive_int, default=None,
                        help="side of the square 3-channel input; default: the model's")
    parser.add_argument("--output", required=True, help="file to write: .png, .pdf or .svg")
    parser.add_argument("--title", default=None, help="graph title")
    args = parser.parse_args(argv)
    options = check_model_args(parser, args)
    try:
        net = get_model(args.model, **options)
        shape = (3, args.input_size, args.input_size) if args.input_size else \
            default_input_shape(args.model)
        print(plot_network(net, args.output, shape, args.title))
    except (ValueError, DotNotFound) as err:
        sys.exit("plot_network.py: error: %s" % err)


if __name__ == "__main__":
    main()
