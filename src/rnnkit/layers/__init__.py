"""rnnkit layers (PyTorch modules with Keras semantics) and their (de)serialisation.

``serialize(layer)`` gives ``{"class_name": "GRU", "config": {...}}``, JSON-serialisable;
``deserialize`` rebuilds the layer (fresh weights) from it. Nested layers (Bidirectional's
``layer``) are serialised the same way inside the config.
"""

from __future__ import annotations

from typing import Any

from rnnkit.errors import RnnkitError
from rnnkit.layers import activations, regularizers
from rnnkit.layers.base import Layer
from rnnkit.layers.bidirectional import Bidirectional
from rnnkit.layers.core import Dense, Dropout, Embedding, Flatten
from rnnkit.layers.kernel import use_kernel
from rnnkit.layers.recurrent import GRU, LSTM, SimpleRNN

LAYER_CLASSES: dict[str, type[Layer]] = {
    cls.__name__: cls for cls in (Dense, Dropout, Embedding, Flatten, SimpleRNN, LSTM, GRU, Bidirectional)
}


def serialize(layer: Layer) -> dict[str, Any]:
    """``{"class_name": ..., "config": layer.get_config()}`` for a registered layer."""
    name = type(layer).__name__
    if LAYER_CLASSES.get(name) is not type(layer):
        raise RnnkitError(f"serialize: layer must be one of {sorted(LAYER_CLASSES)}, got {type(layer).__name__}")
    return {"class_name": name, "config": layer.get_config()}


def deserialize(spec: dict[str, Any]) -> Layer:
    """Rebuild a layer from ``serialize(layer)``'s output (new weights, same configuration)."""
    if not isinstance(spec, dict) or set(spec) != {"class_name", "config"}:
        raise RnnkitError(f"deserialize: spec must be a dict with keys 'class_name' and 'config', got {spec!r}")
    name, config = spec["class_name"], spec["config"]
    if name not in LAYER_CLASSES:
        raise RnnkitError(f"deserialize: class_name must be one of {sorted(LAYER_CLASSES)}, got {name!r}")
    if not isinstance(config, dict):
        raise RnnkitError(f"deserialize: config of {name} must be a dict, got {config!r}")
    try:
        return LAYER_CLASSES[name](**config)
    except TypeError as e:  # an unknown or missing argument in a hand-written config
        raise RnnkitError(f"deserialize: bad config for {name}: {e}") from None


__all__ = [
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "SimpleRNN",
    "LSTM",
    "GRU",
    "Bidirectional",
    "Layer",
    "activations",
    "regularizers",
    "serialize",
    "deserialize",
    "LAYER_CLASSES",
    "use_kernel",
]
