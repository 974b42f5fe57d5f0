"""One shape for every classifier: ``features -> representation -> output``.

:class:`Classifier` is the network of every family: ``features`` (a backbone cut at its last
feature map), ``representation`` (what turns the map into a vector: global average pooling,
an FB head, a second-order pooling, ...) and ``output`` (the classifier). A representation is
chosen by name from a registry that families extend (:func:`register_representation`), so any
head goes onto any backbone: ``get_model(name, representation=..., classes=...)``.

Backbones gluoncv already has are reused through :func:`gluoncv_features`, which cuts them at
the last feature map (gluoncv's own ``.features`` end in pooling, pooling + flatten, dropout or
dense layers depending on the network, and ResNetV1b has none) inside the caller's name scope,
so parameter names do not depend on how many gluoncv networks the process built before.
:func:`load_parts` loads a parameter file into some children only (fine-tuning: the features
of a trained network, a new classifier), through an optional name map.
"""
import fnmatch
import inspect

import mxnet as mx
from mxnet.gluon import nn
from mxnet.gluon.contrib.nn import Identity

from ..nn.basic import fc_uniform
from ..nn.representation import GAvP, MaxPoolFlatten

__all__ = ["Classifier", "register_representation", "representations", "make_representation",
           "gluoncv_features", "GLUONCV_BACKBONES", "freeze_features", "load_parts",
           "feature_channels"]

_REPRESENTATIONS = {}


def register_representation(name, factory):
    """Make ``factory(in_channels, classes, **options)`` the representation ``name``.

    The block it returns exposes ``output_dim``; a representation that already produces the
    class scores (the FB head) also sets ``logits = True``, and the network's ``output`` is
    then the identity.
    """
    if name in _REPRESENTATIONS:
        raise ValueError("representation %r is registered twice" % name)
    _REPRESENTATIONS[name] = factory


def representations():
    """Names of the registered representations."""
    return sorted(_REPRESENTATIONS)


def make_representation(name, in_channels, classes, **options):
    """Build the registered representation ``name`` for ``in_channels`` input channels."""
    if name not in _REPRESENTATIONS:
        raise ValueError("unknown representation %r; registered: %s"
                         % (name, ", ".join(representations())))
    return _REPRESENTATIONS[name](in_channels, classes, **options)


def _keywords(name):
    """The keywords the representation ``name``'s factory names explicitly."""
    factory = _REPRESENTATIONS.get(name)
    if factory is None:
        return ()
    params = inspect.signature(factory).parameters
    return [k for k, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


register_representation("gavp", lambda in_channels, classes, **kw: GAvP(in_channels, **kw))
# a fixed max-pooling window read by a flattening head (AlexNet's / VGG's last pooling)
register_representation("maxpool",
                        lambda in_channels, classes, **kw: MaxPoolFlatten(in_channels, **kw))


def _dense(in_units, classes, prefix="fc_", weight_initializer=None):
    return nn.Dense(classes, in_units=in_units, prefix=prefix,
                    weight_initializer=weight_initializer or fc_uniform())


class Classifier(nn.HybridBlock):
    """``output(representation(features(x)))`` with the three children of those names.

    Parameters
    ----------
    features : callable
        ``features() -> (block, channels)``: the backbone up to its last feature map and that
        map's channels. It is called inside this block's name scope, so every parameter name
        starts with this block's prefix.
    classes : int
        Number of classes.
    representation : str or None
        A registered representation (:func:`representations`; ``"gavp"``: global average
        pooling), or None to feed the features to ``output`` as they are.
    representation_options : dict or callable, optional
        Keywords of the representation, or a function returning them, called after
        ``features`` (a family whose head takes the trunk's layer names).
    output : callable, optional
        ``output(in_units, classes) -> block``; default: a Dense layer (``fc_``, the seeds'
        uniform fan-in initialisation). Ignored when the representation gives the logits.
    freeze : int
        Freeze (``grad_req='null'``) the parameters of the first ``freeze`` children of
        ``features``.
    impl : {"native", "stock"}, optional
        The network's operator implementation, handed to a representation that takes an
        ``impl`` keyword (unless its options set one).
    """

    def __init__(self, features, classes, representation="gavp", representation_options=None,
                 output=None, freeze=0, impl=None, **kwargs):
        super().__init__(**kwargs)
        if int(classes) != classes or classes < 1:
            raise ValueError("classes must be a positive integer, got %r" % (classes,))
        self.classes = int(classes)
        with self.name_scope():
            self.features, self.feature_channels = features()
            self._identity_representation = representation is None
            if representation is None:
                self.representation = Identity(prefix="representation_")
                dim, logits = self.feature_channels, False
            else:
                if callable(representation_options):
                    representation_options = representation_options()
                options = dict(representation_options or {})
                if impl is not None and "impl" in _keywords(representation):
                    options.setdefault("impl", impl)
                self.representation = make_representation(
                    representation, self.feature_channels, self.classes, **options)
                dim = self.representation.output_dim
                logits = getattr(self.representation, "logits", False)
            self._logits = bool(logits)
            if logits:
                if dim != self.classes:
                    raise ValueError("representation %r gives %d scores for %d classes"
                                     % (representation, dim, self.classes))
                self.output = Identity(prefix="output_")
            else:
                self.output = (output or _dense)(dim, self.classes)
        freeze_features(self, freeze)

    def hybrid_forward(self, F, x):
        return self.output(self.representation(self.features(x)))

    def extra_losses(self, F, data):
        """``(scores, [extra losses])`` for the trainer (:func:`~gluon_models.training.
        training_symbol`): the representation's own extra losses (e.g. the balance loss of a
        gated mixture) when it declares ``extra_losses(F, x)``, else none."""
        # identity children are skipped: called on its own, a hybridized Identity with
        # static_alloc breaks MXNet 1.9.1's backward (a cached graph without operators)
        x = self.features(data)
        if hasattr(self.representation, "extra_losses"):
            y, extra = self.representation.extra_losses(F, x)
        else:
            y, extra = (x if self._identity_representation else self.representation(x)), []
        return (y if self._logits else self.output(y)), list(extra)


def freeze_features(net, k):
    """``grad_req='null'`` on the parameters of the first ``k`` children of ``net.features``
    (every child counts, parameter-free ones too, as the fast MPN-COV scripts count them)."""
    children = list(net.features._children.values())
    if int(k) != k or not 0 <= k <= len(children):
        raise ValueError("freeze must be an integer in [0, %d] (the children of features), "
                         "got %r" % (len(children), k))
    for child in children[:int(k)]:
        child.collect_params().setattr("grad_req", "null")


def feature_channels(block, input_size):
    """Channels of ``block``'s output for a ``(1, 3, input_size, input_size)`` input."""
    _, out, _ = block(mx.sym.var("data")).infer_shape(data=(1, 3, input_size, input_size))
    return out[0][1]


# ---- gluoncv backbones ----------------------------------------------------------------------

def _stages_v1b(net):
    return [net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3,
            net.layer4]


# name pattern -> (how many trailing children of gluoncv's `.features` to drop, or the
# function listing the children for networks without `.features`; input size of the
# backbone). Each cut leaves the last feature map: ResNet v1 / SE / ResNeXt drop the global
# pooling; DenseNet the 7 x 7 pooling and Flatten (keeping the final BN + ReLU); Inception v3
# the 8 x 8 pooling and dropout; VGG its two Dense + Dropout pairs and pool5, AlexNet those,
# its Flatten and its last max pooling (the split of the fast MPN-COV code: the last pooling
# belongs to the representation).
GLUONCV_BACKBONES = {
    "resnet*_v1b": (_stages_v1b, 224),
    "resnet*_v1": (1, 224),
    "se_resnet*_v1": (1, 224),
    "resnext*": (1, 224),
    "se_resnext*": (1, 224),
    "densenet*": (2, 224),
    "inceptionv3": (2, 299),
    "vgg*": (5, 224),
    "alexnet": (6, 224),
}


def _backbone_rule(name):
    for pattern, rule in GLUONCV_BACKBONES.items():
        if fnmatch.fnmatch(name, pattern):
            return rule
    raise ValueError("gluoncv backbone %r has no cut point here; supported: %s"
                     % (name, ", ".join(GLUONCV_BACKBONES)))


def _set_stride_one(block):
    """Stride 1 on every strided convolution / pooling inside ``block``."""
    for child in [block] + _descendants(block):
        kw = getattr(child, "_kwargs", None)
        if kw and "stride" in kw and tuple(kw["stride"]) != (1,) * len(kw["stride"]):
            kw["stride"] = (1,) * len(kw["stride"])


def _descendants(block):
    out = []
    for child in block._children.values():
        out.append(child)
        out.extend(_descendants(child))
    return out


def gluoncv_features(name, last_stride=2, **kwargs):
    """``(features, channels)`` of gluoncv's network ``name`` (e.g. ``resnet50_v1b``,
    ``vgg16_bn``, ``densenet121``, ``inceptionv3``, ``se_resnext50_32x4d``) cut at its last
    feature map; call it inside a name scope (e.g. the ``features`` callable of
    :class:`Classifier`). ``last_stride=1`` removes the stride of the last stage (ResNet
    families: its first block), doubling the final map (fast MPN-COV's ResNets).
    ``kwargs`` go to gluoncv's builder (e.g. ``norm_kwargs``)."""
    from gluoncv.model_zoo import get_model as gluoncv_model
    rule, size = _backbone_rule(name)
    net = gluoncv_model(name, pretrained=False, **kwargs)
    children = rule(net) if callable(rule) else list(net.features._children.values())[:-rule]
    features = nn.HybridSequential(prefix="")
    features.add(*children)
    if last_stride not in (1, 2):
        raise ValueError("last_stride must be 1 or 2, got %r" % (last_stride,))
    if last_stride == 1:
        if not (callable(rule) or name.startswith(("resnet", "se_res", "resnext"))):
            raise ValueError("last_stride=1 applies to the ResNet families, not %r" % name)
        last = children[-1]
        _set_stride_one(last[0] if isinstance(last, nn.HybridSequential) else last)
    return features, feature_channels(features, size)


# ---- partial weight loading -----------------------------------------------------------------

def _file_entries(filename):
    loaded = mx.nd.load(filename)
    if not isinstance(loaded, dict):
        raise ValueError("%s holds unnamed arrays, not a parameter file" % filename)
    # Module checkpoints say arg:/aux:; Gluon files do not.
    return {k.split(":", 1)[1] if k.startswith(("arg:", "aux:")) else k: v
            for k, v in loaded.items()}


def load_parts(net, filename, parts=("features",), name_map=None, ctx=None):
    """Load the parameters of the children ``parts`` of ``net`` from ``filename``.

    The file is a Gluon parameter file (``save_parameters``: structural names such as
    ``features.0.weight``; ``collect_params().save`` or an export: full names) or a Module
    checkpoint (``arg:``/``aux:`` names). Entries are matched to ``net``'s parameters by
    structural or full name, after ``name_map`` (a dict or a function from a file name to a
    name of ``net``, or None to skip the entry). Every parameter of ``parts`` must be found
    with its shape; other entries of the file (e.g. the old classifier) are ignored. Returns
    the names loaded. Errors list every missing or mis-shaped parameter.
    """
    entries = _file_entries(filename)
    if name_map is not None:
        mapped = {}
        for key, value in entries.items():
            new = name_map(key) if callable(name_map) else name_map.get(key, key)
            if new is not None:
                mapped[new] = value
        entries = mapped
    structural = net._collect_params_with_prefix()
    wanted = {}
    for part in parts:
        if part not in net._children:
            raise ValueError("%s has no child %r (children: %s)"
                             % (net.name, part, ", ".join(net._children)))
        for key, param in structural.items():
            if key.startswith(part + "."):
                wanted[key] = param
    missing, misshaped, loaded = [], [], []
    for key, param in wanted.items():
        src = entries.get(key, entries.get(param.name))
        if src is None:
            missing.append("%s (%s)" % (key, param.name))
        elif len(src.shape) != len(param.shape) or any(
                d and d != e for d, e in zip(param.shape, src.shape)):  # 0: not known yet
            misshaped.append("%s: file %s, network %s" % (param.name, src.shape, param.shape))
        else:
            loaded.append((param, src))
    if missing or misshaped:
        raise ValueError("%s does not fit %s of %s: missing %s; mis-shaped %s"
                         % (filename, "/".join(parts), net.name, missing or "none",
                            misshaped or "none"))
    for param, src in loaded:
        if param._data is None:  # not initialised yet: the file initialises it
            param._load_init(src, ctx or [mx.cpu()])
        else:
            param.set_data(src)
    return [p.name for p, _ in loaded]
