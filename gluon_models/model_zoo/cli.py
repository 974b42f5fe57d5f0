"""The model arguments shared by every command line: ``--model``, ``--model-opt``, ``--impl``,
``--classes``.

A tool calls :func:`add_model_args` on its parser and builds the network with
``get_model(args.model, **model_options_from_args(args))``; options are the builder's own
keywords (see ``model_info(name)['options']``), so no tool branches on the model name.
"""
import argparse
import ast
import inspect

from ..nn.basic import IMPLS
from .registry import model_info, seed_network

__all__ = ["add_model_args", "model_options_from_args", "parse_model_opt"]


def parse_model_opt(text):
    """``"key=value"`` -> ``(key, value)``; the value is a Python literal when it parses as
    one (``8``, ``0.5``, ``True``, ``(2, 2)``; also ``true``/``false``), else the string."""
    key, sep, raw = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError("expected KEY=VALUE with a keyword as KEY, got %r"
                                         % text)
    raw = raw.strip()
    if raw.lower() in ("true", "false"):
        return key, raw.lower() == "true"
    try:
        return key, ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return key, raw


def add_model_args(parser, default_model=None, required=None):
    """Add the "Model" argument group to ``parser`` and return it.

    ``--model`` is required unless ``default_model`` is given or ``required=False``.
    """
    group = parser.add_argument_group("Model", "which registered network to build")
    group.add_argument("--model", "--network", dest="model", default=default_model,
                       required=default_model is None if required is None else required,
                       help="registered model name (gluon_models.list_models()) or a seed "
                            "script's --network value (e.g. plain_igc, resnet_igc, "
                            "resnet-small-fmconv, inception-bn-fmconv)")
    group.add_argument("--model-opt", dest="model_opts", metavar="KEY=VALUE",
                       action="append", default=[], type=parse_model_opt,
                       help="builder option, repeatable, e.g. --model-opt depth=20")
    group.add_argument("--impl", choices=IMPLS, default="native",
                       help="native operators, or their stock-MXNet twins (export anywhere)")
    group.add_argument("--classes", "--num-classes", dest="classes", type=int, default=None,
                       help="number of classes; %(default)s: the model's")
    group.add_argument("--depth", type=int, default=None,
                       help="network depth (seed flag; FBN ImageNet ResNet 18 ... 269)")
    group.add_argument("--primary-partition", type=int, default=None,
                       help="IGC primary partitions L, or a regular network's width")
    group.add_argument("--secondary-partition", type=int, default=None,
                       help="IGC secondary partitions M")
    group.add_argument("--res-module-num", type=int, default=None,
                       help="FBN CIFAR ResNet: units per stage n (depth 9n + 2; 18 -> 164, "
                            "111 -> 1001); seed networks resnet-small[-fmconv]")
    group.add_argument("--fmconv-factor", type=int, default=None,
                       help="FB layer: factors per output (num_factor); %(default)s: the "
                            "model's (CIFAR 20, ImageNet ResNet 50, Inception-BN 20)")
    group.add_argument("--fmconv-drop", type=float, default=None,
                       help="FB layer: DropFactor drop rate p; %(default)s: the model's (0.5)")
    return group


# Seed flag (argparse dest) -> builder option it sets on a registered model; None: only the
# seed networks take it (their options functions translate it).
_SEED_FLAGS = {"depth": "depth", "primary_partition": "primary",
               "secondary_partition": "secondary", "res_module_num": None,
               "fmconv_factor": "num_factor", "fmconv_drop": "p"}


def _flag(name):
    return "--" + name.replace("_", "-")


def model_options_from_args(args):
    """The builder keywords selected by the arguments of :func:`add_model_args`."""
    options = {}
    flags = {k: getattr(args, k, None) for k in _SEED_FLAGS}
    seed = seed_network(args.model)
    if seed is not None:  # a seed's --network value: its flags map onto the builder's options
        takes = inspect.signature(seed[1]).parameters
        for flag, value in flags.items():
            if value is not None and flag not in takes:
                raise ValueError("%s does not apply to --network %s (it takes: %s)"
                                 % (_flag(flag), args.model,
                                    ", ".join(_flag(f) for f in takes) or "no seed flags"))
        options.update((k, v) for k, v in seed[1](**{f: flags[f] for f in takes}).items()
                       if v is not None)
    else:
        accepted = model_info(args.model)["options"]
        for flag, key in _SEED_FLAGS.items():
            if flags[flag] is None:
                continue
            if key not in accepted:
                raise ValueError("%s does not apply to model %s (its options: %s)"
                                 % (_flag(flag), args.model, ", ".join(accepted)))
            options[key] = flags[flag]
    for key, value in args.model_opts:
        if key in options:
            raise ValueError("--model-opt %s is given twice" % key)
        if key in ("impl", "classes"):
            raise ValueError("use --%s, not --model-opt %s=..." % (key, key))
        options[key] = value
    options["impl"] = args.impl
    if args.classes is not None:
        options["classes"] = args.classes
    return options
