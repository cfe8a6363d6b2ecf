"""Keras 3 (torch backend) as the test oracle: its weights and outputs as numpy, and the comparison."""

from __future__ import annotations

import numpy as np
import torch

from rnnkit.layers import GRU, LSTM, SimpleRNN

# The recurrent layer kinds the parity tests run through: (Keras class name, rnnkit class, arguments).
KINDS = [
    ("SimpleRNN", SimpleRNN, {}),
    ("SimpleRNN", SimpleRNN, {"activation": "relu"}),
    ("LSTM", LSTM, {}),
    ("GRU", GRU, {}),
    ("GRU", GRU, {"reset_after": False}),
]
IDS = ["simple_tanh", "simple_relu", "lstm", "gru", "gru_reset_before"]


def as_numpy(t) -> np.ndarray:
    # Keras's torch backend returns torch tensors; its own numpy conversion warns under numpy 2.
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def keras_weights(layer) -> list[np.ndarray]:
    """``layer.get_weights()`` without Keras's numpy-2 DeprecationWarning (warnings are errors here)."""
    return [as_numpy(v.value) for v in layer.weights]


def as_list(y) -> list:
    """A layer's result as a list: the output alone, or the output and its states."""
    return list(y) if isinstance(y, (list, tuple)) else [y]


def assert_close(ours, theirs, atol: float = 1e-5) -> None:
    """Outputs (a tensor or a list of them, e.g. output and states) agree within ``atol``."""
    ours, theirs = as_list(ours), as_list(theirs)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(as_numpy(a), as_numpy(b), atol=atol, rtol=0)
