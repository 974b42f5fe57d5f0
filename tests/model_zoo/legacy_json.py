"""Writes symbol files in MXNet's legacy v0.8 JSON form (per-node ``param``, 2-element input
entries, ``backward_source_id``), the form of the IGC authors' published ImageNet symbols.

The graphs are generated here from the published structure (spec igc.md 2.2-2.3), with the
authors' op names, independently of gluon_models' builders, so that tests can hold our
networks against them.
"""
import json


class LegacyGraph:
    def __init__(self):
        self.nodes, self.arg_nodes = [], []

    def _add(self, op, name, inputs, param):
        self.nodes.append({"op": op, "param": {k: str(v) for k, v in param.items()},
                           "name": name, "inputs": [[i, 0] for i in inputs],
                           "backward_source_id": -1})
        return len(self.nodes) - 1

    def var(self, name):
        idx = self._add("null", name, [], {})
        self.arg_nodes.append(idx)
        return idx

    def conv(self, name, x, kernel, stride, pad, filters, groups):
        w = self.var(name + "_weight")
        return self._add("Convolution", name, [x, w], {
            "cudnn_off": "False", "cudnn_tune": "off", "dilate": "(1,1)",
            "kernel": "(%d,%d)" % (kernel, kernel), "no_bias": "True", "num_filter": filters,
            "num_group": groups, "pad": "(%d,%d)" % (pad, pad),
            "stride": "(%d,%d)" % (stride, stride), "workspace": 1024})

    def bn(self, name, x):
        g, b = self.var(name + "_gamma"), self.var(name + "_beta")
        return self._add("BatchNorm", name, [x, g, b], {
            "eps": "2e-005", "fix_gamma": "False", "momentum": "0.9",
            "use_global_stats": "False"})

    def relu(self, name, x):
        return self._add("Activation", name, [x], {"act_type": "relu"})

    def reorder(self, name, x, factor):
        return self._add("Reorder", name, [x], {"branch_factor": factor, "workspace": 1024})

    def to_json(self, head):
        return json.dumps({"nodes": self.nodes, "arg_nodes": self.arg_nodes,
                           "heads": [[head, 0]]}, indent=2)


def resnet18_json(stem, widths, primary=None, secondary=None, classes=1000):
    """Published ResNet-18 (primary None) or IGC ResNet-18 symbol as legacy JSON text.

    ``primary``/``secondary``: per-stage group counts of the IGC layers.
    """
    g = LegacyGraph()
    x = g.var("data")
    # the published ResNets name the stem conv `g0` and projections `proj`; the IGC models
    # `g0_conv` and `proj_conv` (spec igc.md 2.2, 2.3)
    stem_conv, proj_conv = ("g0", "_proj") if primary is None else ("g0_conv", "_proj_conv")
    x = g.relu("g0_relu", g.bn("g0_bn", g.conv(stem_conv, x, 7, 2, 3, stem, 1)))
    x = g._add("Pooling", "g0_pool", [x], {"global_pool": "False", "kernel": "(3,3)",
                                          "pad": "(1,1)", "pool_type": "max", "stride": "(2,2)"})
    in_c, plus = stem, 0
    for s, width in enumerate(widths):
        for i in range(2):
            stride = 2 if s > 0 and i == 0 else 1
            name = "g%d_b%d" % (s + 1, i + 1)
            h, c = x, in_c
            for j in (1, 2):
                lname = "%s_conv%d" % (name, j)
                st = stride if j == 1 else 1
                if primary is None:
                    h = g.bn(lname + "_bn", g.conv(lname, h, 3, st, 1, width, 1))
                else:
                    h = g.conv(lname + "_conv1", h, 3, st, 1, width, primary[s])
                    h = g.reorder(lname + "_reorder1", h, primary[s])
                    h = g.conv(lname + "_conv2", h, 1, 1, 0, width, secondary[s])
                    h = g.reorder(lname + "_reorder2", h, secondary[s])
                    h = g.bn(lname + "_bn", h)
                if j == 1:
                    h = g.relu(lname + "_relu", h)
                c = width
            shortcut = x
            if in_c != width:
                groups = 1 if primary is None else primary[s]
                shortcut = g.bn(name + "_proj_bn",
                                g.conv(name + proj_conv, x, 1, stride, 0, width, groups))
            x = g._add("_Plus", "_plus%d" % plus, [shortcut, h], {})
            plus += 1
            x = g.relu(name + "_relu", x)
            in_c = width
    x = g._add("Pooling", "global_pool", [x], {"global_pool": "False", "kernel": "(7,7)",
                                              "pool_type": "avg", "stride": "(1,1)"})
    x = g._add("Flatten", "flatten", [x], {})
    w, b = g.var("fc_score_weight"), g.var("fc_score_bias")
    x = g._add("FullyConnected", "fc_score", [x, w, b], {"no_bias": "False",
                                                         "num_hidden": classes})
    label = g.var("softmax_label")
    x = g._add("SoftmaxOutput", "softmax", [x, label], {"grad_scale": "1"})
    return g.to_json(x)


# The published models (spec igc.md 2.2-2.3 tables)
PUBLISHED = {
    "resnet18_w64": dict(stem=64, widths=[64, 128, 256, 512]),
    "resnet18_w69": dict(stem=69, widths=[69, 138, 276, 552]),
    "igc_resnet18_l4m32": dict(stem=128, widths=[128, 256, 512, 1024], primary=[4] * 4,
                               secondary=[32, 64, 128, 256]),
    "igc_resnet18_l16m16": dict(stem=256, widths=[256, 512, 1024, 2048], primary=[16] * 4,
                                secondary=[16, 32, 64, 128]),
    "igc_resnet18_l100m2": dict(stem=100, widths=[200, 400, 800, 1600],
                                primary=[100, 200, 400, 800], secondary=[2] * 4),
}
