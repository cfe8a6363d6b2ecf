"""Names every docstring example may use without importing them (pytest --doctest-modules)."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    import rnnkit as rk
    from rnnkit import layers
    from rnnkit.models import Sequential

    doctest_namespace.update(np=np, pd=pd, torch=torch, nn=nn, rk=rk, layers=layers, Sequential=Sequential)
