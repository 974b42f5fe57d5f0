#!/usr/bin/env python
"""Export a registered network to `PREFIX-symbol.json` + `PREFIX-0000.params`, or with
`--format onnx` its stock twin to `PREFIX.onnx`.

Weights come from a Gluon `.params` file (`--params`), from a Module/export checkpoint
(`--checkpoint PREFIX --epoch N`) or, with neither, from the initialiser. Re-exporting a
native checkpoint with `--impl stock` gives a symbol that loads without the operator library.
An ONNX export is always the stock twin (native operators cannot leave MXNet), at the ONNX
opset `--opset`, with a fixed batch axis (`--batch-size`) or a free one (`--dynamic-batch`);
a layer without an ONNX form makes it stop with a message naming the layer.
"""
import argparse
import logging

from gluon_models.model_zoo import add_model_args
from gluon_models.model_zoo.cli import check_model_args
from gluon_models.utils import build_and_export, export_onnx
from gluon_models.utils.argtypes import file_prefix, non_negative_int, positive_int
from gluon_models.utils.export import ONNX_OPSET, ONNX_OPSETS


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_args(parser)
    parser.set_defaults(impl=None)  # by format: native for MXNet files, stock for ONNX
    weights = parser.add_argument_group("Weights").add_mutually_exclusive_group()
    weights.add_argument("--params", metavar="FILE", help="Gluon save_parameters file")
    weights.add_argument("--checkpoint", metavar="PREFIX",
                         help="Module/export checkpoint prefix (PREFIX-NNNN.params)")
    parser.add_argument("--epoch", type=non_negative_int, default=0, help="epoch of --checkpoint")
    parser.add_argument("--input-size", type=positive_int, default=None,
                        help="side of the square 3-channel input; %(default)s: the model's")
    parser.add_argument("--output", metavar="PREFIX", type=file_prefix, required=True,
                        help="output prefix")
    fmt = parser.add_argument_group("Format")
    fmt.add_argument("--format", choices=("mxnet", "onnx"), default="mxnet",
                     help="MXNet symbol + params (impl default native), or PREFIX.onnx of "
                          "the stock twin")
    fmt.add_argument("--opset", type=int, choices=ONNX_OPSETS, default=ONNX_OPSET,
                     help="ONNX opset (--format onnx)")
    fmt.add_argument("--batch-size", type=positive_int, default=1,
                     help="fixed batch axis of the ONNX input")
    fmt.add_argument("--dynamic-batch", action="store_true",
                     help="free batch axis of the ONNX input and output")
    args = parser.parse_args()
    options = check_model_args(parser, args)
    if args.format == "onnx":
        if options["impl"] not in (None, "stock"):
            parser.error("--format onnx always exports the stock twin (native operators "
                         "cannot leave MXNet); drop --impl %s" % options["impl"])
        options["impl"] = "stock"
    else:
        if args.dynamic_batch or args.batch_size != 1 or args.opset != ONNX_OPSET:
            parser.error("--opset, --batch-size and --dynamic-batch apply to --format onnx")
        options["impl"] = options["impl"] or "native"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.info("arguments: %s", vars(args))
    size = args.input_size
    input_shape = None if size is None else (3, size, size)
    checkpoint = None if args.checkpoint is None else (args.checkpoint, args.epoch)
    try:
        if args.format == "onnx":
            files = [export_onnx(args.model, args.output + ".onnx", input_shape,
                                 batch_size=args.batch_size, dynamic_batch=args.dynamic_batch,
                                 opset=args.opset, params=args.params, checkpoint=checkpoint,
                                 **options)]
        else:
            files = build_and_export(args.model, args.output, input_shape=input_shape,
                                     params=args.params, checkpoint=checkpoint, **options)
    except (ValueError, ImportError) as err:
        parser.exit(1, "%s: error: %s\n" % (parser.prog, err))
    print("\n".join(files))


if __name__ == "__main__":
    main()
