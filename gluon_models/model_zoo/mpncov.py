"""Fast MPN-COV: global covariance pooling by iterative matrix square root normalization
(P. Li, J. Xie, Q. Wang, Z. Gao, "Towards Faster Training of Global Covariance Pooling Networks
by Iterative Matrix Square Root Normalization", CVPR 2018, https://arxiv.org/abs/1712.01034;
authors' code https://github.com/jiangtaoxie/fast-MPN-COV).

This module registers the representations the authors' repository offers besides average
pooling, so any backbone takes them with ``get_model(name, representation=...)``:

* ``isqrtcov``: iSQRT-COV (:class:`~gluon_models.nn.ISqrtCov`; options ``reduced_dim``,
  ``iter_num``, ``sqrt``, ``vectorize``);
* ``bcnn``: bilinear pooling (:class:`~gluon_models.nn.BCNN`; ``vectorize``, ``eps``);
* ``cbp``: compact bilinear pooling (:class:`~gluon_models.nn.CBP`; ``proj_dim``, ``seed``).

The MPN-COV networks themselves come later.
"""
from ..nn.representation import BCNN, CBP, ISqrtCov
from .compose import register_representation


# The factory does not name ``impl`` yet: networks default to impl="native", which ISqrtCov
# does not have until its C++ operator exists; naming it then hands the network's choice on.
def _isqrtcov(in_channels, classes, **options):
    return ISqrtCov(in_channels, **options)


def _bcnn(in_channels, classes, **options):
    return BCNN(in_channels, **options)


def _cbp(in_channels, classes, **options):
    return CBP(in_channels, **options)


register_representation("isqrtcov", _isqrtcov)
register_representation("bcnn", _bcnn)
register_representation("cbp", _cbp)
