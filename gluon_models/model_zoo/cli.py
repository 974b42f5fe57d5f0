"""The model arguments shared by every command line: ``--model``, ``--model-opt``, ``--impl``,
``--classes``.

A tool calls :func:`add_model_args` on its parser and builds the network with
``get_model(args.model, **model_options_from_args(args))``; options are the builder's own
keywords (see ``model_info(name)['options']``), so no tool branches on the model name.
"""
import argparse
import ast

from ..nn.basic import IMPLS

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


def add_model_args(parser, default_model=None):
    """Add the "Model" argument group to ``parser`` and return it.

    ``--model`` is required unless ``default_model`` is given.
    """
    group = parser.add_argument_group("Model", "which registered network to build")
    group.add_argument("--model", default=default_model, required=default_model is None,
                       help="registered model name (gluon_models.list_models())")
    group.add_argument("--model-opt", dest="model_opts", metavar="KEY=VALUE",
                       action="append", default=[], type=parse_model_opt,
                       help="builder option, repeatable, e.g. --model-opt depth=20")
    group.add_argument("--impl", choices=IMPLS, default="native",
                       help="native operators, or their stock-MXNet twins (export anywhere)")
    group.add_argument("--classes", type=int, default=None,
                       help="number of classes; %(default)s: the model's")
    return group


def model_options_from_args(args):
    """The builder keywords selected by the arguments of :func:`add_model_args`."""
    options = {}
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
