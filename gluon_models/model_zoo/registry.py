"""The model registry: registering a model is part of defining it.

``@register_model(family=...)`` on a builder function registers it under the function's
name. :func:`get_model` builds by name, :func:`list_models` lists names (fnmatch filter,
natural sort), :func:`model_info` says where a name comes from.
"""
import difflib
import fnmatch
import inspect
import re
import sys

__all__ = ["register_model", "register_seed_network", "seed_network", "register_data_defaults",
           "data_defaults", "get_model", "list_models", "model_info"]

_REGISTRY = {}  # name -> (builder, family, input_size)


def register_model(family, input_size=224):
    """Decorator: register ``fn`` under ``fn.__name__`` in ``family``; ``input_size`` is the
    side of the square input the model is defined for (224 for ImageNet, 32 for CIFAR)."""
    def wrap(fn):
        name = fn.__name__.lower()
        if name in _REGISTRY:
            raise ValueError("model %r is registered twice (%s and %s)"
                             % (name, _REGISTRY[name][0].__module__, fn.__module__))
        _REGISTRY[name] = (fn, family, input_size)
        mod = sys.modules[fn.__module__]
        if hasattr(mod, "__all__") and fn.__name__ not in mod.__all__:
            mod.__all__.append(fn.__name__)
        return fn
    return wrap


_SEED_NETWORKS = {}  # the seeds' --network values -> (model name, options from seed flags)


def register_seed_network(seed_name, model, options):
    """Accept a seed script's ``--network`` value as another name of ``model``.

    ``options(**flags)`` turns the seed flags it names as keyword parameters (``depth``,
    ``primary_partition``, ``secondary_partition``, ``res_module_num``, ``fmconv_factor``,
    ``fmconv_drop``: the destinations of :func:`~gluon_models.model_zoo.add_model_args`; each
    None when not given) into builder keywords of ``model``; keywords whose value is None are
    dropped (the builder's default applies). A flag it does not name does not apply to this
    network.
    """
    if seed_name in _SEED_NETWORKS or seed_name in _REGISTRY:
        raise ValueError("seed network name %r is already taken" % seed_name)
    _SEED_NETWORKS[seed_name] = (model, options)


def seed_network(name):
    """``(model, options_fn)`` for a seed ``--network`` value, else None."""
    return _SEED_NETWORKS.get(str(name))


_DATA_DEFAULTS = {}  # family -> data options its authors trained with


def register_data_defaults(family, cifar_aug=None, imagenet_norm=None):
    """The data pipeline a family's authors used, as defaults of the training tools.

    ``cifar_aug`` maps a 32x32 dataset name to the augmentation preset used on it
    (:data:`gluon_models.data.presets.AUG_PRESETS`; datasets not listed keep their own
    default); ``imagenet_norm`` is the ImageNet normalisation preset
    (:data:`gluon_models.data.imagenet.NORMS`).
    """
    if family in _DATA_DEFAULTS:
        raise ValueError("data defaults of family %r are registered twice" % family)
    _DATA_DEFAULTS[family] = {"cifar_aug": dict(cifar_aug or {}),
                              "imagenet_norm": imagenet_norm}


def data_defaults(name):
    """``{'cifar_aug': {dataset: preset}, 'imagenet_norm': preset or None}`` of the family of
    model ``name`` (a registered name or a seed ``--network`` value)."""
    family = _lookup(name)[1]
    d = _DATA_DEFAULTS.get(family, {})
    return {"cifar_aug": dict(d.get("cifar_aug", {})), "imagenet_norm": d.get("imagenet_norm")}


def _natural_key(name):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def list_models(filter="*", family=None):  # pylint: disable=redefined-builtin
    """Registered names matching the fnmatch pattern ``filter`` (and ``family``), sorted
    naturally (``resnet18`` before ``resnet101``)."""
    names = [n for n, (_, fam, _) in _REGISTRY.items()
             if fnmatch.fnmatch(n, filter.lower()) and (family is None or fam == family)]
    return sorted(names, key=_natural_key)


def model_info(name):
    """``{'name', 'family', 'builder', 'options', 'input_size'}`` of a registered model;
    ``options`` maps each keyword of the builder to its default."""
    fn, family, input_size = _lookup(name)
    params = inspect.signature(fn).parameters
    options = {k: p.default for k, p in params.items()
               if p.kind == p.KEYWORD_ONLY or p.kind == p.POSITIONAL_OR_KEYWORD}
    return {"name": name.lower(), "family": family, "builder": fn, "options": options,
            "input_size": input_size}


def _lookup(name):
    key = str(name).lower()
    if key not in _REGISTRY:
        close = difflib.get_close_matches(key, list(_REGISTRY), n=5)
        if key in _SEED_NETWORKS:
            return _REGISTRY[_SEED_NETWORKS[key][0]]
        hint = ("did you mean: %s" % ", ".join(close)) if close else \
               ("registered: %s" % ", ".join(list_models()))
        raise ValueError("unknown model %r; %s" % (name, hint))
    return _REGISTRY[key]


def get_model(name, **options):
    """Build the registered model ``name``.

    Parameters
    ----------
    name : str
        A name from :func:`list_models` (case-insensitive).
    **options
        Builder options: every model takes ``classes`` and ``impl`` ("native" or "stock"),
        plus its family's options (see :func:`model_info`).
    """
    fn = _lookup(name)[0]
    params = inspect.signature(fn).parameters
    unknown = [k for k in options if k not in params]
    if unknown and not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        raise TypeError("model %r has no option(s) %s; its options: %s"
                        % (name, ", ".join(unknown), ", ".join(params)))
    return fn(**options)
