"""Model zoo: one module per family, all registered in :mod:`.registry`."""
from .registry import get_model, list_models, model_info, register_model
from .cli import add_model_args, model_options_from_args
from . import igc  # noqa: F401  (registers the IGC family)
from . import fbn  # noqa: F401  (registers the FBN family)
from . import mpncov  # noqa: F401  (registers the fast MPN-COV representations)
from . import ibn  # noqa: F401  (registers the IBN-Net families)
from . import gmsop  # noqa: F401  (registers the GM-SOP family and its representations)

__all__ = ["get_model", "list_models", "model_info", "register_model", "add_model_args",
           "model_options_from_args"]
