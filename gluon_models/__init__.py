"""gluon-models: structured and second-order CNN modules for MXNet 1.9 Gluon.

Importing the package loads the native operator library once (see :mod:`gluon_models.ops`).
"""
from . import ops

ops.load()

__version__ = "0.1.0"

from . import nn  # noqa: E402
from .model_zoo import get_model, list_models, model_info  # noqa: E402

__all__ = ["ops", "nn", "get_model", "list_models", "model_info"]
