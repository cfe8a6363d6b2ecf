"""A series' id as a model input: a learned vector per series, added to every step's features.

Many series trained by one model (``task = "many_series"``) share its weights; with
``data.id_embedding = k`` each series also gets k numbers of its own, learned with the rest,
so the model can tell a mountain station from a coastal one (or a shop from another) where
the inputs alone do not.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rnnkit.errors import RnnkitError
from rnnkit.models.wrapper import Wrapper


class SeriesEmbedding(Wrapper):
    """``model`` on the window's features plus the embedding of its series, the same at every step.

    Input ``x`` ``(batch, T, F + 1)``: the last column holds the window's series index (0 … series − 1,
    as a float, the same at every step); ``model`` reads ``(batch, T, F + dim)``: the F features, then
    the series' ``dim`` learned numbers.

    Args:
        model: the network, built for ``F + dim`` input features.
        series: the number of series (rows of the embedding table).
        dim: numbers per series (>= 1).

    Example:
        >>> m = SeriesEmbedding(torch.nn.Flatten(), series=3, dim=2)
        >>> x = torch.zeros(1, 4, 2); x[..., -1] = 2.0     # one feature, series 2
        >>> bool(torch.equal(m(x).reshape(4, 3)[:, 1:], m.embedding.weight[2].expand(4, 2)))
        True
    """

    def __init__(self, model: nn.Module, series: int, dim: int) -> None:
        if not isinstance(series, int) or series < 1 or not isinstance(dim, int) or dim < 1:
            raise RnnkitError(f"series and dim must be positive integers, got series={series!r}, dim={dim!r}")
        super().__init__(model)
        self.series, self.dim = series, dim
        self.embedding = nn.Embedding(series, dim)
        nn.init.uniform_(self.embedding.weight, -0.05, 0.05)  # Keras's Embedding initialiser

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = x[:, 0, -1].round().long()  # (batch,)
        vectors = self.embedding(ids)[:, None, :].expand(-1, x.shape[1], -1)  # (batch, T, dim)
        return self.model(torch.cat([x[..., :-1], vectors], dim=-1))

    def get_config(self) -> dict[str, Any]:
        return {"series": self.series, "dim": self.dim, "model": self.inner_config()}
