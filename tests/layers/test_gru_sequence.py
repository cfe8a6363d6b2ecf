"""GRUSequenceWithRecurrentMask (layers/gru_sequence.py) against the cell's step loop; gradcheck."""

from __future__ import annotations

import pytest
import torch

from rnnkit.layers.cells import GRUCell
from rnnkit.layers.gru_sequence import GRUSequenceWithRecurrentMask


@pytest.mark.parametrize("steps", [1, 4])
@pytest.mark.parametrize("use_bias", [True, False])
def test_gru_masked_sequence_matches_cell_loop_and_gradcheck(seed, use_bias, steps):
    cell = GRUCell(2, 3, use_bias=use_bias).double()
    xp = torch.randn(steps, 2, 9, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    kernel = torch.randn(3, 9, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(9, dtype=torch.float64, requires_grad=True) if use_bias else None
    mask = torch.tensor([[2.0, 0.0, 2.0], [0.0, 2.0, 2.0]], dtype=torch.float64)
    if use_bias:
        cell.bias_hh.data = bias.detach().clone()
    state, outputs = (h0,), []
    for t in range(steps):
        h, state = cell.step(xp[t], state, kernel, mask)
        outputs.append(h)
    hs = GRUSequenceWithRecurrentMask.apply(xp, h0, kernel, bias, mask)
    torch.testing.assert_close(hs, torch.stack(outputs), atol=1e-12, rtol=0)
    inputs = (xp, h0, kernel) + ((bias,) if use_bias else ())
    run = (
        (lambda x, h, k, b: GRUSequenceWithRecurrentMask.apply(x, h, k, b, mask))
        if use_bias
        else (lambda x, h, k: GRUSequenceWithRecurrentMask.apply(x, h, k, None, mask))
    )
    assert torch.autograd.gradcheck(run, inputs)
