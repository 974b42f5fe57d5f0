"""The model arguments shared by every command line: ``--model``, ``--model-opt``, ``--impl``,
``--classes``, and the seed flags the families declare.

A tool calls :func:`add_model_args` on its parser and builds the network with
``get_model(args.model, **model_options_from_args(args))``; options are the builder's own
keywords (see ``model_info(name)['options']``), so no tool branches on the model name.
"""
import argparse
import ast
import inspect

from ..nn.basic import IMPLS
from ..utils.argtypes import positive_int
from .registry import accepted_options, families, model_info, seed_network, seed_networks

__all__ = ["add_model_args", "model_options_from_args", "parse_model_opt", "check_model_args"]


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


def _model_flags():
    """dest -> (add_argument keywords, {family: option}, help) over every registered family."""
    flags = {}
    for fam in families():
        for dest, (kwargs, option) in fam.model_flags.items():
            kw, owners, helps = flags.setdefault(dest, (dict(kwargs), {}, []))
            if kw.get("type") != kwargs.get("type"):
                raise ValueError("families declare the flag %s with different types"
                                 % _flag(dest))
            owners[fam.name] = option
            helps.append("%s: %s" % (fam.name.upper(), kwargs.get("help", "")))
    return {dest: (kw, owners, "; ".join(helps)) for dest, (kw, owners, helps) in flags.items()}


def add_model_args(parser, default_model=None, required=None):
    """Add the "Model" argument group to ``parser`` and return it: ``--model``, ``--model-opt``,
    ``--impl``, ``--classes`` and the seed scripts' model flags every family declares
    (:func:`~gluon_models.model_zoo.registry.register_family`).

    ``--model`` is required unless ``default_model`` is given or ``required=False``.
    """
    group = parser.add_argument_group("Model", "which registered network to build")
    group.add_argument("--model", "--network", dest="model", default=default_model,
                       required=default_model is None if required is None else required,
                       help="registered model name (gluon_models.list_models()) or a seed "
                            "script's --network value (%s)" % ", ".join(seed_networks()))
    group.add_argument("--model-opt", dest="model_opts", metavar="KEY=VALUE",
                       action="append", default=[], type=parse_model_opt,
                       help="builder option, repeatable, e.g. --model-opt depth=20")
    group.add_argument("--impl", choices=IMPLS, default="native",
                       help="native operators, or their stock-MXNet twins (export anywhere)")
    group.add_argument("--classes", "--num-classes", dest="classes", type=positive_int,
                       default=None,
                       help="number of classes; %(default)s: the model's")
    for dest, (kwargs, _, text) in _model_flags().items():
        group.add_argument(_flag(dest), dest=dest, default=None, **dict(kwargs, help=text))
    return group


def _flag(name):
    return "--" + name.replace("_", "-")


def model_options_from_args(args):
    """The builder keywords selected by the arguments of :func:`add_model_args`."""
    options = {}
    declared = _model_flags()
    flags = {k: getattr(args, k, None) for k in declared}
    seed = seed_network(args.model)
    if seed is not None:  # a seed's --network value: its flags map onto the builder's options
        takes = inspect.signature(seed).parameters
        for flag, value in flags.items():
            if value is not None and flag not in takes:
                raise ValueError("%s does not apply to --network %s (it takes: %s)"
                                 % (_flag(flag), args.model,
                                    ", ".join(_flag(f) for f in takes) or "no seed flags"))
        options.update((k, v) for k, v in seed(**{f: flags[f] for f in takes}).items()
                       if v is not None)
    else:
        info = model_info(args.model)
        for flag, value in flags.items():
            if value is None:
                continue
            key = declared[flag][1].get(info["family"])
            if key not in info["options"]:
                raise ValueError("%s does not apply to model %s (its options: %s)"
                                 % (_flag(flag), args.model, ", ".join(info["options"])))
            options[key] = value
    accepted = accepted_options(args.model)
    for key, value in args.model_opts:
        if accepted is not None and key not in accepted:
            raise ValueError("--model-opt %s: model %s has no option %r; its options: %s"
                             % (key, args.model, key, ", ".join(sorted(accepted))))
        if key in options:
            raise ValueError("--model-opt %s is given twice" % key)
        if key in ("impl", "classes"):
            raise ValueError("use --%s, not --model-opt %s=..." % (key, key))
        options[key] = value
    options["impl"] = args.impl
    if args.classes is not None:
        options["classes"] = args.classes
    return options


def check_model_args(parser, args):
    """Validate the model arguments of parsed ``args`` as part of parsing: an unknown
    ``--model``, a ``--model-opt`` key the model lacks or a seed flag that does not apply
    becomes ``parser.error`` (usage, the message, exit status 2) instead of a traceback from
    the builder after the tool has started. Returns the builder options (None without a
    ``--model``)."""
    if getattr(args, "model", None) is None:
        return None
    try:
        return model_options_from_args(args)
    except ValueError as err:
        parser.error(str(err))
