"""Shared test setup: quiet MXNet, deterministic seeds per test."""
import os
import random

import numpy as np
import pytest

os.environ.setdefault("MXNET_SUBGRAPH_VERBOSE", "0")

import mxnet as mx  # noqa: E402

import gluon_models  # noqa: E402,F401  (loads the operator library once)


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    np.random.seed(0)
    mx.random.seed(0)
    yield


@pytest.fixture(scope="session")
def readme_model_table():
    """The generated README model table, built once per session (it summarises every
    registered network, the 1001-layer ones included)."""
    from gluon_models.utils.model_table import model_table
    return model_table()
