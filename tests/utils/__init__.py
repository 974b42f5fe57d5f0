"""Utilities: export / import and the parameter and multiply-add summary."""
