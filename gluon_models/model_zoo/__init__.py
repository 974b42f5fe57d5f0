"""Model zoo: one module per family, all registered in :mod:`.registry`."""
from .registry import get_model, list_models, model_info, register_model
from . import igc  # noqa: F401  (registers the IGC family)

__all__ = ["get_model", "list_models", "model_info", "register_model"]
