"""Utilities: export / import of networks and their parameter and multiply-add summary."""
from .export import (build_and_export, default_input_shape, export_model,
                     load_checkpoint_params, load_exported)
from .summary import LayerRow, Summary, format_summary, model_summary, summary

__all__ = ["build_and_export", "default_input_shape", "export_model", "load_checkpoint_params",
           "load_exported", "LayerRow", "Summary", "format_summary", "model_summary", "summary"]
