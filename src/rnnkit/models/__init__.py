"""Models built from rnnkit layers."""

from rnnkit.models.sequential import Sequential

__all__ = ["Sequential"]
