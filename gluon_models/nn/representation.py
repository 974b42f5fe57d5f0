"""Global image representations: what turns a feature map ``(B, C, H, W)`` into the vector a
classifier reads.

Every representation block takes ``in_channels`` and exposes ``output_dim`` (the length of the
``(B, output_dim)`` output it returns), so a network's classifier is sized when the network is
built. First-order pooling lives here; the second-order ones (iSQRT-COV, B-CNN, CBP; Li et al.,
"Towards Faster Training of Global Covariance Pooling Networks by Iterative Matrix Square Root
Normalization", CVPR 2018, https://github.com/jiangtaoxie/fast-MPN-COV) join them.
"""
from mxnet.gluon import nn

__all__ = ["GAvP"]


class GAvP(nn.HybridBlock):
    """Global average pooling, flattened: ``(B, C, H, W) -> (B, C)``; no parameters.

    Parameters
    ----------
    in_channels : int
        Input channels ``C`` (= ``output_dim``).
    pool_size : int, optional
        A fixed ``pool_size x pool_size`` average window instead of the global one, as some
        seeds' symbols write it (e.g. 7 x 7 stride 1 on the 7 x 7 map of a 224-pixel ImageNet
        network, 8 x 8 on the 8 x 8 map of a CIFAR one): the same numbers on the input size
        the network is defined for, and the authors' symbol layer for layer. The window must
        then cover the whole map, so the output is one value per channel.
    strides : int
        Stride of the fixed window.
    pool_prefix, flatten_prefix : str
        Prefixes of the two children (op names in the exported symbol).
    """

    def __init__(self, in_channels, pool_size=None, strides=1, pool_prefix="pool_",
                 flatten_prefix="flatten_", **kwargs):
        super().__init__(**kwargs)
        self.output_dim = int(in_channels)
        with self.name_scope():
            self.pool = nn.GlobalAvgPool2D(prefix=pool_prefix) if pool_size is None else \
                nn.AvgPool2D(pool_size, strides, prefix=pool_prefix)
            self.flatten = nn.Flatten(prefix=flatten_prefix)

    def hybrid_forward(self, F, x):
        return self.flatten(self.pool(x))
