"""Logging set-up for the command-line tools (the library itself only uses getLogger)."""
import logging
import os
import sys

__all__ = ["configure_logging"]


def configure_logging(log_file=None, rank=None, level=logging.INFO):
    """Log to stderr and optionally ``log_file`` in MXNet's line format
    (``'%(asctime)-15s %(message)s'``), with ``Node[rank]`` under distributed training."""
    fmt = "%(asctime)-15s " + ("Node[%d] " % rank if rank is not None else "") + "%(message)s"
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_file:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
    for h in handlers:
        h.setFormatter(logging.Formatter(fmt))
        root.addHandler(h)
    root.setLevel(level)
    return root
