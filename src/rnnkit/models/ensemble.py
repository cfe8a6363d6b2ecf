"""An ensemble: the mean forecast of several trained models (seeds or architectures), as one model.

``Ensemble([m_1, ..., m_M])(x) = (m_1(x) + ... + m_M(x)) / M``: every member reads the same window and
gives an output of the same shape. In a config, a model with ``members = [names]`` (models listed
before it) is one: it trains nothing, and is saved, read back, scored and predicted like any other
model (``model.json`` holds each member's class and config; the weights file holds each member's under
``members.<i>.``).

Example:
    >>> import torch
    >>> a, b = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    >>> x = torch.randn(4, 2)
    >>> torch.allclose(Ensemble([a, b])(x), (a(x) + b(x)) / 2)
    True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from rnnkit.errors import RnnkitError


class Ensemble(nn.Module):
    """The mean of its members' outputs.

    Args:
        members: two or more modules ``(batch, ...) -> (batch, *output)``, all of one output shape.
        names: default None: the members' names (the run's model names), recorded in the config.
    """

    def __init__(self, members: Sequence[nn.Module], names: Sequence[str] | None = None) -> None:
        super().__init__()
        if len(members) < 2:
            raise RnnkitError(f"an ensemble needs at least two members, got {len(members)}")
        if names is not None and len(names) != len(members):
            raise RnnkitError(f"names must name every member: {len(members)} members, got {len(names)} names")
        self.members = nn.ModuleList(members)
        self.names = list(names) if names is not None else [f"member {i}" for i in range(len(members))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [member(x) for member in self.members]
        shapes = {tuple(o.shape) for o in outputs}
        if len(shapes) > 1:
            raise RnnkitError(f"the ensemble's members give outputs of different shapes: {sorted(shapes)}")
        return torch.stack(outputs).mean(dim=0)

    @property
    def input_shape(self) -> Any:
        return getattr(self.members[0], "input_shape", None)

    def get_config(self) -> dict[str, Any]:
        """Each member as ``model.json`` describes a model: its class and its own config."""
        members = []
        for member in self.members:
            get_config = getattr(member, "get_config", None)
            if not callable(get_config):
                raise RnnkitError(f"the ensemble's member {type(member).__name__} has no config to save")
            members.append({"class": f"{type(member).__module__}.{type(member).__qualname__}", "config": get_config()})
        return {"names": self.names, "members": members}

    @classmethod
    def from_config(cls, config: dict[str, Any], rebuild: Callable[[dict[str, Any]], nn.Module]) -> Ensemble:
        """An ensemble with fresh weights; ``rebuild`` makes a member from its ``{"class", "config"}``
        (a run's task rebuilds its own wrappers; ``rk.load_model`` its allow-list)."""
        members = config.get("members")
        if not isinstance(members, list) or not all(isinstance(m, dict) for m in members):
            raise RnnkitError("an ensemble's config must list its members, each with its class and config")
        return cls([rebuild(m) for m in members], config.get("names"))


__all__ = ["Ensemble"]
