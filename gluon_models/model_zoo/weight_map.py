"""PyTorch weights into our networks: one name mapping per network layout, one converter.

A :class:`WeightMap` translates the names of a PyTorch state dict (``layer1.0.conv1.weight``)
into the structural parameter names of one of our networks (``features.4.0.conv1.weight``,
what ``save_parameters`` / ``load_parameters`` use). It is a list of rules on the module path
(the name without its last component), the first full match winning; the last component is
translated generically: ``weight`` / ``bias`` of a BatchNorm are Gluon's ``gamma`` / ``beta``
(decided by which of the two the network has), ``running_mean`` / ``running_var`` keep their
names, and ``num_batches_tracked`` (a counter PyTorch >= 0.4 keeps) is dropped. A PyTorch
module whose tensors are parameters of one of our modules under a name prefix (the IN and BN
halves ``bn1.IN`` / ``bn1.BN`` of the authors' IBN, our :class:`~gluon_models.nn.IBN`'s
``in_gamma`` / ``bn_gamma``) maps to a path ending in that prefix, ``...bn1.in_``.

A family declares the maps of its networks next to them, through the registry
(``register_family(..., weight_maps={model pattern: map})``); the layouts of the torchvision
networks that gluoncv's backbones share (:data:`TORCHVISION_RESNET`, :data:`TORCHVISION_VGG`,
:data:`TORCHVISION_ALEXNET`, :data:`TORCHVISION_DENSENET`, :data:`TORCHVISION_INCEPTION_V3`)
are defined here once for every family that builds on those backbones. :func:`convert` reads a checkpoint
(:mod:`gluon_models.utils.torch_checkpoint`), maps every tensor, checks that every parameter
of the network gets one of its shape and that no tensor is left over, and writes a Gluon
parameter file.
"""
import collections
import dataclasses
import re
from typing import List, Tuple

import numpy as np

__all__ = ["WeightMap", "WeightMapError", "Conversion", "map_state_dict", "convert",
           "TORCHVISION_RESNET", "TORCHVISION_VGG", "TORCHVISION_ALEXNET",
           "TORCHVISION_DENSENET", "TORCHVISION_INCEPTION_V3"]

# PyTorch's parameter / buffer name -> the candidates among Gluon's, in order
_LEAF_NAMES = {"weight": ("weight", "gamma"), "bias": ("bias", "beta"),
               "running_mean": ("running_mean",), "running_var": ("running_var",)}
_DROPPED_LEAVES = ("num_batches_tracked",)
# the child of our Classifier holding the classifier (see Classifier in compose.py)
_CLASSIFIER = "output."


class WeightMapError(ValueError):
    """A state dict that does not fit a network; the message lists every problem."""


class WeightMap:
    """PyTorch module paths -> our networks' module paths.

    Parameters
    ----------
    rules : sequence of (pattern, replacement)
        ``pattern`` is a regular expression matched against the whole module path
        (``re.fullmatch``); ``replacement`` a template (``\\1`` for groups, as ``re.sub``) or
        a function ``match -> path``. The first matching rule applies. A path whose last
        component ends in ``_`` is a name prefix inside a module: ``weight`` of a module
        mapped to ``bn1.in_`` is ``bn1.in_weight`` or ``bn1.in_gamma``; a leaf the prefixed
        names lack falls back to the module's own (an IBN's ``running_mean`` /
        ``running_var`` belong to its BN half but carry no prefix).
    ignore : sequence of str
        Patterns of module paths whose tensors the network has no use for (e.g. an auxiliary
        head it drops); they are reported, not converted.
    """

    def __init__(self, rules, ignore=()):
        self.rules = [(re.compile(p), r) for p, r in rules]
        self.ignore = [re.compile(p) for p in ignore]

    @classmethod
    def renames(cls, table, ignore=()):
        """A map renaming module path prefixes: ``{"conv1": "features.0", "fc": "output"}``
        maps ``conv1`` and ``conv1.<anything>``."""
        return cls([(re.escape(old) + r"(\..+)?", _prefix(new)) for old, new in table.items()],
                   ignore)

    def then(self, other):
        """This map's rules, then ``other``'s (a network that adds modules to a layout)."""
        out = WeightMap([])
        out.rules = self.rules + other.rules
        out.ignore = self.ignore + other.ignore
        return out

    def module(self, path):
        """Our module path for PyTorch's ``path``, ``""`` when ignored, None when no rule
        matches."""
        if any(p.fullmatch(path) for p in self.ignore):
            return ""
        for pattern, replacement in self.rules:
            match = pattern.fullmatch(path)
            if match:
                return replacement(match) if callable(replacement) else match.expand(
                    replacement)  # a function may return None: no such module
        return None


def _prefix(new):
    return lambda m: new + (m.group(1) or "")


# ---- torchvision layouts of gluoncv's backbones (as cut by compose.gluoncv_features) ----------

# ResNet (gluoncv resnet*_v1b = torchvision's): conv1, bn1, relu, maxpool, layer1..4 are
# children 0..7 of `features`; blocks and their downsample have torchvision's names.
TORCHVISION_RESNET = WeightMap.renames(dict(
    conv1="features.0", bn1="features.1", layer1="features.4", layer2="features.5",
    layer3="features.6", layer4="features.7", fc="output"))

# VGG: the same indices in `features` (pool5 has no parameters); classifier 0/3/6 = our
# head's fc6/fc7/fc8 at the same positions.
TORCHVISION_VGG = WeightMap.renames(dict(features="features", classifier="output"))

# AlexNet: gluoncv's convolutions carry their ReLU and pooling is separate, so the
# convolutions sit at 0, 2, 4, 5, 6 instead of torchvision's 0, 3, 6, 8, 10; the head
# (Dropout, fc6, ReLU, Dropout, fc7, ReLU, fc8) has torchvision's positions.
TORCHVISION_ALEXNET = WeightMap.renames(
    {"features.0": "features.0", "features.3": "features.2", "features.6": "features.4",
     "features.8": "features.5", "features.10": "features.6", "classifier": "output"})


def _densenet_layer(m):
    # denseblock<b>.denselayer<j>.<norm1|conv1|norm2|conv2>: gluoncv's block b is child
    # 2b + 2 of features, layer j its child j - 1, whose branch (child 1) is BN, ReLU, conv,
    # BN, ReLU, conv. torchvision's released files say norm.1 for norm1 (old module names).
    part = m.group(3).replace(".", "")
    return "features.%d.%d.1.%d" % (2 * int(m.group(1)) + 2, int(m.group(2)) - 1,
                                    {"norm1": 0, "conv1": 2, "norm2": 3, "conv2": 5}[part])


def _densenet_transition(m):
    return "features.%d.%d" % (2 * int(m.group(1)) + 3, {"norm": 0, "conv": 2}[m.group(2)])


# DenseNet-BC: conv0, norm0 (then ReLU, max pooling), blocks and transitions alternating,
# norm5 at child 11; classifier = our fc.
TORCHVISION_DENSENET = WeightMap([
    (r"features\.conv0", "features.0"), (r"features\.norm0", "features.1"),
    (r"features\.denseblock(\d)\.denselayer(\d+)\.(norm\.?1|conv\.?1|norm\.?2|conv\.?2)",
     _densenet_layer),
    (r"features\.transition(\d)\.(norm|conv)", _densenet_transition),
    (r"features\.norm5", "features.11"), (r"classifier", "output")])


# Inception v3: torchvision's BasicConv2d X (X.conv, X.bn) is gluoncv's block (conv, BN,
# ReLU) at X's position: the stem's blocks are children 0, 1, 2, 4, 5 of features (3 and 6
# are max poolings), Mixed_5b ... Mixed_7c children 7 ... 17, each a concurrent of branches
# whose blocks sit at the paths below (the pooling branches start with their pooling).
_INCEPTION_STEM = {"Conv2d_1a_3x3": 0, "Conv2d_2a_3x3": 1, "Conv2d_2b_3x3": 2,
                   "Conv2d_3b_1x1": 4, "Conv2d_4a_3x3": 5}
_INCEPTION_MIXED = {"5b": 7, "5c": 8, "5d": 9, "6a": 10, "6b": 11, "6c": 12, "6d": 13,
                    "6e": 14, "7a": 15, "7b": 16, "7c": 17}
_INCEPTION_A = {"branch1x1": "0.0", "branch5x5_1": "1.0", "branch5x5_2": "1.1",
                "branch3x3dbl_1": "2.0", "branch3x3dbl_2": "2.1", "branch3x3dbl_3": "2.2",
                "branch_pool": "3.1"}
_INCEPTION_BRANCHES = {
    "5": _INCEPTION_A,
    "6a": {"branch3x3": "0.0", "branch3x3dbl_1": "1.0", "branch3x3dbl_2": "1.1",
           "branch3x3dbl_3": "1.2"},
    "6": dict({"branch1x1": "0.0", "branch_pool": "3.1"},
              **{"branch7x7_%d" % i: "1.%d" % (i - 1) for i in (1, 2, 3)},
              **{"branch7x7dbl_%d" % i: "2.%d" % (i - 1) for i in (1, 2, 3, 4, 5)}),
    "7a": dict({"branch3x3_1": "0.0", "branch3x3_2": "0.1"},
               **{"branch7x7x3_%d" % i: "1.%d" % (i - 1) for i in (1, 2, 3, 4)}),
    "7": {"branch1x1": "0.0", "branch3x3_1": "1.0.0", "branch3x3_2a": "1.1.0.0",
          "branch3x3_2b": "1.1.1.0", "branch3x3dbl_1": "2.0.0", "branch3x3dbl_2": "2.0.1",
          "branch3x3dbl_3a": "2.1.0.0", "branch3x3dbl_3b": "2.1.1.0", "branch_pool": "3.1"},
}


def _inception_stem(m):
    if m.group(1) not in _INCEPTION_STEM:
        return None
    return "features.%d.%d" % (_INCEPTION_STEM[m.group(1)], {"conv": 0, "bn": 1}[m.group(2)])


def _inception_mixed(m):
    block = m.group(1)
    branches = _INCEPTION_BRANCHES.get(block) or _INCEPTION_BRANCHES.get(block[0], {})
    if block not in _INCEPTION_MIXED or m.group(2) not in branches:
        return None
    return "features.%d.%s.%d" % (_INCEPTION_MIXED[block], branches[m.group(2)],
                                  {"conv": 0, "bn": 1}[m.group(3)])


TORCHVISION_INCEPTION_V3 = WeightMap([
    (r"(Conv2d_\w+)\.(conv|bn)", _inception_stem),
    (r"Mixed_(\w+)\.(\w+)\.(conv|bn)", _inception_mixed), (r"fc", "output")],
    ignore=[r"AuxLogits\..*"])  # the auxiliary head the network drops


# ---- the converter ----------------------------------------------------------------------------

@dataclasses.dataclass
class Conversion:
    """What :func:`map_state_dict` did: ``mapped`` (PyTorch name, our name, shape),
    ``ignored`` PyTorch names (counters, modules the map ignores, classifier tensors replaced
    by a new classifier), ``kept`` our parameters the file does not set (constants, the new
    classifier), and ``arrays`` our name -> float32 array."""
    mapped: List[Tuple[str, str, tuple]]
    ignored: List[str]
    kept: List[str]
    arrays: "collections.OrderedDict"

    def summary(self):
        lines = ["%-50s -> %-50s %s" % (src, dst, "x".join(map(str, shape)) or "scalar")
                 for src, dst, shape in self.mapped]
        lines.append("mapped %d tensors (%d values); ignored %d (%s); kept %d of the network's "
                     "own (%s)" % (len(self.mapped),
                                   sum(int(np.prod(s, dtype=np.int64)) for _, _, s in self.mapped),
                                   len(self.ignored), ", ".join(self.ignored) or "none",
                                   len(self.kept), ", ".join(self.kept) or "none"))
        return "\n".join(lines)


def _our_leaf(module, leaf, params):
    candidates = _LEAF_NAMES.get(leaf, (leaf,))
    if module.endswith("_"):  # a name prefix inside a module (see WeightMap)
        owner, _, prefix = module.rpartition(".")
        for candidate in candidates:
            if "%s.%s%s" % (owner, prefix, candidate) in params:
                return "%s.%s%s" % (owner, prefix, candidate)
        module = owner
    for candidate in candidates:
        if (module + "." + candidate) in params:
            return module + "." + candidate
    return module + "." + leaf


def map_state_dict(state_dict, weight_map, params, new_classifier=False, source="state dict"):
    """Map ``state_dict`` (name -> numpy array) onto ``params`` (structural name -> Gluon
    ``Parameter`` with known shapes) through ``weight_map``.

    Every parameter must receive a tensor of its shape, except constants (kept) and, with
    ``new_classifier``, classifier parameters (under ``output.``) whose tensor has another
    shape (fine-tuning to other classes: the network's fresh classifier is kept). Any other
    missing, unexpected or mis-shaped tensor is a :class:`WeightMapError` listing them all.
    """
    import mxnet as mx
    mapped, ignored, arrays = [], [], collections.OrderedDict()
    unexpected, misshaped, twice, wrong = [], [], [], set()
    for key, value in state_dict.items():
        module, _, leaf = key.rpartition(".")
        if leaf in _DROPPED_LEAVES:
            ignored.append(key)
            continue
        ours = weight_map.module(module) if module else None
        if ours == "":
            ignored.append(key)
            continue
        name = None if ours is None else _our_leaf(ours, leaf, params)
        if name is None or name not in params:
            unexpected.append(key if name is None else "%s (as %s)" % (key, name))
            continue
        want = tuple(params[name].shape)
        if tuple(value.shape) != want:
            if new_classifier and name.startswith(_CLASSIFIER):
                ignored.append(key)
                continue
            misshaped.append("%s -> %s: file %s, network %s" % (key, name, value.shape, want))
            wrong.add(name)
            continue
        if name in arrays:
            twice.append("%s (again from %s)" % (name, key))
            continue
        arrays[name] = np.asarray(value, dtype=np.float32)
        mapped.append((key, name, tuple(value.shape)))
    kept, missing = [], []
    for name, param in params.items():
        if name in arrays or name in wrong:
            continue
        if isinstance(param, mx.gluon.parameter.Constant):
            arrays[name] = param.value.asnumpy()
            kept.append(name)
        elif new_classifier and name.startswith(_CLASSIFIER):
            kept.append(name)
        else:
            missing.append("%s %s" % (name, tuple(param.shape)))
    problems = [(what, items) for what, items in (
        ("missing (no tensor for)", missing), ("unexpected", unexpected),
        ("mis-shaped", misshaped), ("set twice", twice)) if items]
    if problems:
        hint = (" (for other classes, allow a new classifier)"
                if any(n.split(" -> ")[1].startswith(_CLASSIFIER)
                       for n in misshaped if " -> " in n) and not new_classifier else "")
        raise WeightMapError("%s does not fit the network%s: %s" % (source, hint, "; ".join(
            "%d %s: %s" % (len(items), what, ", ".join(items)) for what, items in problems)))
    return Conversion(mapped, ignored, kept, arrays)


def convert(model, src, out=None, classes=1000, new_classifier=False, **options):
    """Convert the PyTorch file ``src`` (state dict or training checkpoint, either format)
    into parameters of ``get_model(model, classes=classes, **options)``, written to ``out``
    (a Gluon parameter file for ``load_parameters``) when given.

    Returns the :class:`Conversion`. Raises ``ValueError`` when ``model`` has no weight map,
    :class:`WeightMapError` when the file does not fit (see :func:`map_state_dict`), and the
    checkpoint reader's errors for an unreadable or untrusted file.
    """
    import mxnet as mx
    from ..utils.fileio import atomic_write
    from ..utils.torch_checkpoint import load_state_dict
    from .registry import get_model, model_info, weight_map
    mapping = weight_map(model)
    state_dict = load_state_dict(src)
    net = get_model(model, classes=classes, **options)
    size = model_info(model)["input_size"]
    net.infer_shape(mx.nd.zeros((1, 3, size, size)))
    params = net._collect_params_with_prefix()
    if new_classifier:  # the network's own initialisation of the classifier it keeps
        net.output.collect_params().initialize()
    conversion = map_state_dict(state_dict, mapping, params, new_classifier, source=str(src))
    if new_classifier:
        for name in conversion.kept:
            if name.startswith(_CLASSIFIER):
                conversion.arrays[name] = params[name].data().asnumpy()
    if out is not None:
        ordered = {name: mx.nd.array(conversion.arrays[name], dtype=params[name].dtype)
                   for name in params}
        atomic_write(out, lambda tmp: mx.nd.save(tmp, ordered))
    return conversion
