"""The model registry: registering a model is part of defining it.

``@register_model(family=..., options=...)`` on a builder function registers it under the
function's name; ``options`` is the variant's row of its family's spec table (every keyword the
builder accepts, with its default). :func:`get_model` builds by name, :func:`list_models` lists
names (fnmatch filter, natural sort), :func:`model_info` says where a name comes from and what
it accepts.

A family also declares, here and nowhere else, what the shared machinery needs to know about
it (:func:`register_family`): the seed scripts' command-line flags that choose its networks,
the optimizer rules of its authors' training scripts and the data pipeline they used. The
training code and the command lines read those hooks; they never name a family.
"""
import dataclasses
import difflib
import fnmatch
import inspect
import re
import sys
from typing import Callable, Dict, Optional, Tuple

__all__ = ["register_model", "register_seed_network", "seed_network", "seed_networks", "register_family",
           "families", "family_of", "data_defaults", "optimizer_rules", "weight_map",
           "train_defaults",
           "get_model",
           "list_models", "model_info", "accepted_options", "Family"]

_REGISTRY = {}  # name -> (builder, family, input_size, options or None)


def register_model(family, input_size=224, options=None):
    """Decorator: register ``fn`` under ``fn.__name__`` in ``family``.

    ``input_size`` is the side of the square input the model is defined for (224 for ImageNet,
    32 for CIFAR). ``options`` maps every keyword the builder accepts to its default (the
    variant's spec-table row); without it they are read from the builder's signature.
    """
    def wrap(fn):
        name = fn.__name__.lower()
        if name in _REGISTRY or name in _SEED_NETWORKS:
            where = _REGISTRY[name][0].__module__ if name in _REGISTRY else "a seed alias"
            raise ValueError("model %r is registered twice (%s and %s)"
                             % (name, where, fn.__module__))
        _REGISTRY[name] = (fn, family, input_size, None if options is None else dict(options))
        mod = sys.modules[fn.__module__]
        if hasattr(mod, "__all__") and fn.__name__ not in mod.__all__:
            mod.__all__.append(fn.__name__)
        return fn
    return wrap


# ---- families ---------------------------------------------------------------------------------

@dataclasses.dataclass
class Family:
    """What a family declares for the shared machinery (see :func:`register_family`)."""
    name: str
    cifar_aug: Dict[str, str] = dataclasses.field(default_factory=dict)
    imagenet_norm: Optional[str] = None
    model_flags: Dict[str, Tuple[dict, Optional[str]]] = dataclasses.field(default_factory=dict)
    train_flags: Dict[str, dict] = dataclasses.field(default_factory=dict)
    optimizer_rules: Optional[Callable] = None
    weight_maps: Dict[str, object] = dataclasses.field(default_factory=dict)
    train_defaults: Dict[str, dict] = dataclasses.field(default_factory=dict)


_FAMILIES = {}


def register_family(name, cifar_aug=None, imagenet_norm=None, model_flags=None,
                    train_flags=None, optimizer_rules=None, aug_presets=None,
                    imagenet_norms=None, weight_maps=None, train_defaults=None):
    """Declare a family's hooks into the shared machinery.

    Parameters
    ----------
    name : str
        The family, as given to :func:`register_model`.
    cifar_aug : dict, optional
        32x32 dataset name -> augmentation preset its authors used there
        (:data:`gluon_models.data.presets.AUG_PRESETS`); the default of ``train_cifar.py``.
    imagenet_norm : str, optional
        ImageNet normalisation preset (:data:`gluon_models.data.imagenet.NORMS`) of the family.
    model_flags : dict, optional
        The seed scripts' model flags: argparse destination -> ``(add_argument keywords,
        option)``, where ``option`` is the builder option the flag sets on the family's
        registered models, or None when only its seed ``--network`` aliases translate it
        (their options functions). Flags default to None (= not given); two families may
        declare the same flag with the same type.
    train_flags : dict, optional
        The family's training flags: argparse destination -> add_argument keywords.
    optimizer_rules : callable, optional
        ``optimizer_rules(args) -> list`` of optimizer rules
        (:class:`gluon_models.training.rules.OptimizerRule`) the parsed ``args`` ask for;
        empty when none of the family's training flags is given.
    aug_presets : dict, optional
        The family's own 32x32 augmentation presets, name -> ``AugPreset``
        (:func:`gluon_models.data.presets.register_aug_preset`).
    imagenet_norms : dict, optional
        The family's own ImageNet normalisations, name -> ``Norm``
        (:func:`gluon_models.data.imagenet.register_norm`).
    weight_maps : dict, optional
        Model name pattern (fnmatch) -> :class:`~gluon_models.model_zoo.weight_map.WeightMap`
        from the names of its networks' PyTorch state dicts (the authors' or torchvision's)
        to ours, for ``tools/convert_weights.py``; the first matching pattern applies.
    train_defaults : dict, optional
        Model name pattern (fnmatch) -> ``{argparse destination: value}``: the training
        options its authors used for those networks (e.g. ``batch_size``, ``num_epochs``,
        ``lr``, ``lr_step_epochs``, ``lr_factor``, ``optimizer``, ``mom``, ``wd``), the
        defaults of every training command line (``train_cifar.py``, ``train_imagenet.py``)
        for them; options given on the command line always win. The first matching pattern
        applies (:func:`train_defaults`); a destination the command line does not have is a
        usage error.
    """
    from ..data.imagenet import register_norm  # data imports nothing of the model zoo
    from ..data.presets import register_aug_preset
    if name in _FAMILIES:
        raise ValueError("family %r is registered twice" % name)
    for preset, settings in (aug_presets or {}).items():
        register_aug_preset(preset, settings)
    for norm, settings in (imagenet_norms or {}).items():
        register_norm(norm, settings)
    _FAMILIES[name] = Family(name, dict(cifar_aug or {}), imagenet_norm,
                             dict(model_flags or {}), dict(train_flags or {}), optimizer_rules,
                             dict(weight_maps or {}), _check_train_defaults(name, train_defaults))
    return _FAMILIES[name]


def _check_train_defaults(family, table):
    table = dict(table or {})
    for pattern, values in table.items():
        if not isinstance(values, dict) or not all(isinstance(k, str) and k.isidentifier()
                                                   for k in values):
            raise ValueError("family %r: train_defaults[%r] must map option names "
                             "(argparse destinations) to values, got %r"
                             % (family, pattern, values))
    return table


def families():
    """The registered :class:`Family` declarations, in registration order."""
    return list(_FAMILIES.values())


def family_of(name):
    """The family name of model ``name`` (a registered name or a seed ``--network`` value)."""
    return _lookup(name)[1]


def data_defaults(name):
    """``{'cifar_aug': {dataset: preset}, 'imagenet_norm': preset or None}`` of the family of
    model ``name`` (a registered name or a seed ``--network`` value)."""
    fam = _FAMILIES.get(family_of(name))
    return {"cifar_aug": dict(fam.cifar_aug) if fam else {},
            "imagenet_norm": fam.imagenet_norm if fam else None}


def train_defaults(name):
    """``{argparse destination: value}``: the training defaults the family of model ``name``
    (a registered name or a seed ``--network`` value) declares for it (the first matching
    pattern of its ``train_defaults``; empty when it declares none)."""
    fam = _FAMILIES.get(family_of(name))
    for pattern, values in (fam.train_defaults if fam else {}).items():
        if fnmatch.fnmatch(str(name).lower(), pattern):
            return dict(values)
    return {}


def optimizer_rules(args):
    """Every optimizer rule the parsed training ``args`` ask for, over all families (a
    family's rule refuses a network it does not apply to when the optimizer is made)."""
    rules = []
    for fam in _FAMILIES.values():
        if fam.optimizer_rules is not None:
            rules.extend(fam.optimizer_rules(args))
    return rules


def weight_map(name):
    """The :class:`~gluon_models.model_zoo.weight_map.WeightMap` of model ``name`` (declared
    by its family), or ``ValueError`` listing the models that have one."""
    fam = _FAMILIES.get(family_of(name))
    for pattern, mapping in (fam.weight_maps if fam else {}).items():
        if fnmatch.fnmatch(str(name).lower(), pattern):
            return mapping
    known = [m for f in _FAMILIES.values() for m in list_models(family=f.name)
             if any(fnmatch.fnmatch(m, p) for p in f.weight_maps)]
    raise ValueError("model %r has no PyTorch weight map; models with one: %s"
                     % (name, ", ".join(known) or "none"))


# ---- seed --network aliases -------------------------------------------------------------------

_SEED_NETWORKS = {}  # the seeds' --network values -> (builder, family, input_size, options_fn)


def register_seed_network(seed_name, target, options, family=None, input_size=None):
    """Accept a seed script's ``--network`` value as another name of a network.

    ``target`` is a registered model name or a builder function (e.g. a family's generic
    builder such as ``preact_resnet_cifar(depth, fbn, ...)``, which is not a registered model
    because its defaults would duplicate a named variant). ``options(**flags)`` turns the seed
    flags it names as keyword parameters (destinations of the families' model flags, each None
    when not given) into builder keywords; keywords whose value is None are dropped (the
    builder's default applies). The alias is the same network everywhere: ``get_model(alias)``
    applies ``options()`` exactly as the command line does.
    """
    key = str(seed_name).lower()
    if key in _SEED_NETWORKS or key in _REGISTRY:
        raise ValueError("seed network name %r is already taken" % seed_name)
    if callable(target):
        if family is None:
            raise ValueError("seed network %r: a builder function needs its family" % seed_name)
        _SEED_NETWORKS[key] = (target, family, input_size or 224, options)
    else:
        fn, fam, size, _ = _REGISTRY[str(target).lower()]
        _SEED_NETWORKS[key] = (fn, fam, size, options)


def seed_networks():
    """The seed scripts' ``--network`` values, sorted."""
    return sorted(_SEED_NETWORKS)


def seed_network(name):
    """``options_fn`` of a seed ``--network`` value, else None."""
    entry = _SEED_NETWORKS.get(str(name).lower())
    return None if entry is None else entry[3]


def _alias_options(options_fn, flags=None):
    return {k: v for k, v in options_fn(**(flags or {})).items() if v is not None}


# ---- lookup -----------------------------------------------------------------------------------

def _natural_key(name):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def list_models(filter="*", family=None):  # pylint: disable=redefined-builtin
    """Registered names matching the fnmatch pattern ``filter`` (and ``family``), sorted
    naturally (``resnet18`` before ``resnet101``). Seed aliases are not listed."""
    names = [n for n, (_, fam, _, _) in _REGISTRY.items()
             if fnmatch.fnmatch(n, filter.lower()) and (family is None or fam == family)]
    return sorted(names, key=_natural_key)


def _signature_options(fn):
    params = inspect.signature(fn).parameters
    return {k: p.default for k, p in params.items()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def model_info(name):
    """``{'name', 'family', 'builder', 'options', 'input_size'}`` of a registered model or a
    seed alias; ``options`` maps each keyword it accepts to its default (for an alias: the
    builder's defaults with the alias's own options applied)."""
    fn, family, input_size, options = _lookup(name)
    options = dict(_signature_options(fn) if options is None else options)
    alias = _SEED_NETWORKS.get(str(name).lower())
    if alias is not None:
        options.update(_alias_options(alias[3]))
    return {"name": str(name).lower(), "family": family, "builder": fn, "options": options,
            "input_size": input_size}


def _lookup(name):
    key = str(name).lower()
    if key in _REGISTRY:
        return _REGISTRY[key]
    if key in _SEED_NETWORKS:
        fn, family, size, _ = _SEED_NETWORKS[key]
        # an alias of a registered variant accepts exactly that variant's options
        table = next((t for f, _, _, t in _REGISTRY.values() if f is fn), None)
        return fn, family, size, table
    close = difflib.get_close_matches(key, list(_REGISTRY) + list(_SEED_NETWORKS), n=5)
    hint = ("did you mean: %s" % ", ".join(close)) if close else \
           ("registered: %s" % ", ".join(list_models()))
    raise ValueError("unknown model %r; %s" % (name, hint))


def accepted_options(name):
    """The keywords :func:`get_model` accepts for ``name``, or None when its builder takes
    any keyword (``**kwargs`` and no spec table)."""
    fn, _, _, table = _lookup(name)
    if table is not None:
        return list(table)
    params = inspect.signature(fn).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return None
    return [k for k, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


def get_model(name, **options):
    """Build the registered model (or seed ``--network`` alias) ``name``.

    Parameters
    ----------
    name : str
        A name from :func:`list_models` or a seed alias (case-insensitive).
    **options
        Builder options (see :func:`model_info`): every model takes ``classes`` and ``impl``
        ("native" or "stock"); networks of the ``features -> representation -> output`` shape
        also ``representation`` and ``freeze``; plus its family's options.
    """
    fn = _lookup(name)[0]
    alias = _SEED_NETWORKS.get(str(name).lower())
    if alias is not None:
        options = dict(_alias_options(alias[3]), **options)
    accepted = accepted_options(name)
    unknown = sorted(k for k in options if accepted is not None and k not in accepted)
    if unknown:
        raise TypeError("model %r has no option(s) %s; its options: %s"
                        % (name, ", ".join(unknown), ", ".join(accepted)))
    return fn(**options)
