"""A recurrent layer's checks of its inputs raise RnnkitError (a ValueError): the command line turns
them into one line, exit 2, instead of a traceback reported as a bug (issue 22's audit)."""

from __future__ import annotations

import pytest
import torch

from rnnkit.errors import RnnkitError
from rnnkit.layers.recurrent import GRU, LSTM


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: GRU(4)(torch.randn(2, 3)), "input must be 3-D (batch, time, features), got shape (2, 3)"),
        (lambda: GRU(4, input_size=5)(torch.randn(2, 3, 6)), "input features must equal input_size=5, got 6"),
        (lambda: GRU(4)(torch.randn(2, 3, 5), mask=torch.ones(2, 3)), "mask must be a bool tensor"),
        (lambda: GRU(4)(torch.randn(2, 3, 5), mask=torch.ones(2, 4).bool()), "mask must have the input's"),
        (lambda: LSTM(4)(torch.randn(2, 3, 5), initial_state=torch.zeros(2, 4)), "initial_state must hold 2"),
        (lambda: GRU(4)(torch.randn(2, 3, 5), initial_state=torch.zeros(3, 4)), "initial_state tensors must have"),
    ],
)
def test_a_recurrent_layers_input_checks_raise_rnnkit_errors(call, message):
    with pytest.raises(RnnkitError) as raised:
        call()
    assert message in str(raised.value)
    assert isinstance(raised.value, ValueError)  # still a ValueError, as before
