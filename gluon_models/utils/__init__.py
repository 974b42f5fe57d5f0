"""Utilities: export / import of networks (MXNet files, ONNX), their parameter and
multiply-add summary, training logs and their curves, network drawings."""
from .export import (build_and_export, build_model, default_input_shape, export_model,
                     export_onnx, load_checkpoint_params, load_exported,
                     load_training_checkpoint)
from .summary import (LayerRow, Summary, format_summary, model_summary, register_macs,
                      summary)

__all__ = ["build_and_export", "build_model", "default_input_shape", "export_model",
           "export_onnx", "load_checkpoint_params", "load_exported", "load_training_checkpoint", "LayerRow",
           "Summary", "format_summary", "model_summary", "register_macs", "summary"]
