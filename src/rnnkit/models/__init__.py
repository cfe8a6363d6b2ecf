"""Models built from rnnkit layers: ``Sequential`` and the model families by shape.

- ``sequential``: :class:`Sequential` (+ ``summary`` with the parameter formulas);
- ``forecasters``: the next K rows from one window (direct, autoregressive, seq2seq; ``Clock``);
- ``generators``: one-to-many generation (``OneToMany``, ``CharRNN``, ``generate``);
- ``language``: next-word prediction (``next_word_model``, the ``BigramModel`` baseline);
- ``taggers``: a tag per token (``tagging_model``, the ``MajorityTagPerWord`` baseline);
- ``ensemble``: the mean of several trained models as one model (``Ensemble``);
- ``series_embedding``: a learned vector per series as an input (``SeriesEmbedding``, many series);
- ``wrapper``: ``Wrapper``, the base of a model around one inner model (penalty, state and config pass through).

Their baselines on series live in :mod:`rnnkit.baselines`; their config path in :mod:`rnnkit.tasks`.
"""

from rnnkit.models import ensemble, forecasters, generators, language, series_embedding, taggers, wrapper
from rnnkit.models.sequential import Sequential

__all__ = ["Sequential", "ensemble", "forecasters", "generators", "language", "series_embedding", "taggers", "wrapper"]
