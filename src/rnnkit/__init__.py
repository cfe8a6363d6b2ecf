"""rnnkit: recurrent neural networks for sequence modelling, with Keras semantics on PyTorch."""

from rnnkit import data, datasets, diagnostics, export, layers
from rnnkit.layers import regularizers
from rnnkit.models import Sequential

__version__ = "0.1.0"

__all__ = ["data", "datasets", "diagnostics", "export", "layers", "regularizers", "Sequential", "__version__"]
