"""Published figures of registered models, each with its source, for the README model table
(``tools/model_table.py``) and the tests that hold our counts against them.

``REFERENCE[name]`` holds the keys that have a published value:

* ``label``: the model's name in its source;
* ``params_m``: parameters in millions as reported in the paper / README table;
* ``flops_g``: multiply-adds in 10^9 as reported (conv + fc, one image);
* ``top1_err``: reported top-1 test error, %;
* ``exact_params``: exact learnable-parameter count of the authors' own network definition;
* ``source``: key of :data:`SOURCES`.
"""

__all__ = ["REFERENCE", "SOURCES", "reference"]

SOURCES = {
    "igc-imagenet": (
        "IGCNets (Zhang et al., ICCV 2017, arXiv 1707.02725), authors' README table "
        "(visualize/paper/ImagenetResults.png; spec igc.md 4.1): #Params, FLOPs and top-1 "
        "test error of the ResNet-18 family at 224 x 224. Exact counts: all learnable "
        "arguments (conv weights, BN gamma/beta, fc weight/bias) of the authors' published "
        "symbols ResNet18-w64/-w69, IGC-L4M32/-L16M16/-L100M2; the README #Params column "
        "does not follow from those symbols by any simple counting rule (spec igc.md 4.1)."),
    "igc-cifar": (
        "IGCNets authors' README command `plain_igc`, depth 38, L = 24, M = 2 on CIFAR-10: "
        "their utility.cal_params prints 0.3172M (log quoted in the authors' issue tracker; "
        "spec igc.md 2.1); 317,242 learnable parameters by the rule of plain_igc.py."),
}

REFERENCE = {
    "resnet18_w64": dict(label="ResNet (C = 64)", params_m=11.151, flops_g=1.8,
                         top1_err=31.06, exact_params=11689512, source="igc-imagenet"),
    "resnet18_w69": dict(label="ResNet (C = 69)", params_m=11.333, flops_g=2.1,
                         top1_err=30.58, exact_params=13542457, source="igc-imagenet"),
    "igc_resnet18_l4m32": dict(label="IGC-L4M32+Ident.", params_m=11.205, flops_g=1.9,
                               top1_err=30.77, exact_params=12251240, source="igc-imagenet"),
    "igc_resnet18_l16m16": dict(label="IGC-L16M16+Ident.", params_m=11.329, flops_g=2.2,
                                top1_err=29.40, exact_params=13528296, source="igc-imagenet"),
    "igc_resnet18_l100m2": dict(label="IGC-L100M2+Ident.", params_m=8.61, flops_g=1.3,
                                top1_err=26.95, exact_params=8637900, source="igc-imagenet"),
    "igc_plain_cifar": dict(label="IGC-L24M2, depth 38", params_m=0.3172,
                            exact_params=317242, source="igc-cifar"),
}


def reference(name):
    """The published figures of registered model ``name`` (see module doc), or ``{}``."""
    return dict(REFERENCE.get(str(name).lower(), {}))
