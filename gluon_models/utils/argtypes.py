"""``type=`` functions for the command-line argument groups.

argparse calls a flag's ``type`` with the raw string and turns an
``argparse.ArgumentTypeError`` into ``usage: ...`` plus ``error: argument --flag: <message>``
and exit status 2. Checking ranges here, at parse time, keeps impossible values (a batch
size of 0 or -4, an lr of nan, 0 decoding threads, a checkpoint prefix that is a directory)
from reaching the trainer, where they end as a ZeroDivisionError, ``std::bad_alloc`` or a run
that trains to NaN. Every argument group (model, data, augmentation, training) uses these, so
one flag is checked alike in every tool.
"""
import argparse
import math
import os

__all__ = ["positive_int", "non_negative_int", "finite_float", "positive_float",
           "non_negative_float", "fraction", "file_prefix", "bounded_int"]


def _int(text):
    try:
        return int(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError("expected an integer, got %r" % (text,)) from None


def _float(text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError("expected a number, got %r" % (text,)) from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError("expected a finite number, got %r" % (text,))
    return value


def positive_int(text):
    """An integer >= 1 (batch sizes, epochs, threads, widths)."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("expected a positive integer, got %r" % (text,))
    return value


def non_negative_int(text):
    """An integer >= 0 (an epoch to load, where 0 means none; a seed; padding)."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("expected an integer >= 0, got %r" % (text,))
    return value


def bounded_int(low, high):
    """A type function accepting integers in ``[low, high]`` (e.g. a 0..255 grey level)."""
    def check(text):
        value = _int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError("expected an integer in [%d, %d], got %r"
                                             % (low, high, text))
        return value
    check.__name__ = "int_%d_to_%d" % (low, high)  # argparse names the type in some errors
    return check


def finite_float(text):
    """Any finite number (not nan, inf or -inf)."""
    return _float(text)


def positive_float(text):
    """A finite number > 0."""
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("expected a positive number, got %r" % (text,))
    return value


def non_negative_float(text):
    """A finite number >= 0 (learning rates, weight decay, warm-up length)."""
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("expected a number >= 0, got %r" % (text,))
    return value


def fraction(text):
    """A number in ``[0, 1)`` (momentum, a drop rate, label smoothing): 1 and above make no
    sense for any of them (momentum 1 never forgets a gradient, so the run diverges)."""
    value = _float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError("expected a number in [0, 1), got %r" % (text,))
    return value


def file_prefix(text):
    """A path prefix of files (``DIR/NAME`` writes ``DIR/NAME-0001.params``): a directory
    alone, ``dir/`` or an existing directory, would write hidden ``dir/-0001.params`` files
    or fail only when the first checkpoint is saved, after a whole epoch."""
    if not text or text.endswith(("/", os.sep)) or os.path.isdir(text):
        raise argparse.ArgumentTypeError(
            "expected a file prefix such as DIR/NAME (files DIR/NAME-0001.params, ...), got "
            "the directory %r" % (text,))
    return text
