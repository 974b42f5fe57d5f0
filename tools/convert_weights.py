#!/usr/bin/env python
"""Convert PyTorch weights (the authors' released `.pth` / `.pth.tar` files, torchvision's
backbones) into a Gluon parameter file of a registered network:

    python tools/convert_weights.py --model NAME [--classes N] SRC.pth OUT.params

then `get_model(NAME, classes=N).load_parameters(OUT.params)`. Both PyTorch formats (zip,
PyTorch >= 1.6; legacy, <= 1.5) are read without PyTorch and without running code from the
file; a training checkpoint's `state_dict` and DataParallel `module.` names are accepted.
Prints every tensor's mapping and shape, then the counts.
"""
import argparse
import sys

from gluon_models.model_zoo.weight_map import WeightMapError, convert
from gluon_models.utils.argtypes import positive_int
from gluon_models.utils.safe_pickle import PickleFormatError


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True,
                        help="registered network whose weight map reads SRC (e.g. "
                             "mpncov_resnet50, resnet50, vgg16_bn, densenet121)")
    parser.add_argument("--classes", type=positive_int, default=1000,
                        help="classes of the network (default 1000, ImageNet)")
    parser.add_argument("--new-classifier", action="store_true",
                        help="allow classifier tensors of another shape (fine-tuning to other "
                             "classes): the network's freshly initialised classifier is written "
                             "instead")
    parser.add_argument("src", help="PyTorch state dict or training checkpoint")
    parser.add_argument("out", help="Gluon parameter file to write")
    args = parser.parse_args(argv)
    try:
        conversion = convert(args.model, args.src, args.out, classes=args.classes,
                             new_classifier=args.new_classifier)
    except (WeightMapError, PickleFormatError, ValueError) as e:
        sys.exit("error: %s" % e)
    print(conversion.summary())
    print("wrote %s (%d parameters) for get_model(%r, classes=%d)"
          % (args.out, len(conversion.arrays), args.model, args.classes))


if __name__ == "__main__":
    main()
