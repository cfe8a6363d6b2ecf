"""``task = "seq2seq"``: the next K rows by an encoder-decoder, the decoder fed its own predictions.

The model is :class:`rnnkit.models.forecasters.Seq2SeqForecaster`: an encoder reads the window; its final
state starts a decoder that unrolls K steps, fed its previous prediction of the target (at the
first step the last observed value) and the clock columns of the row it predicts. It trains on
the run's windows (the target's K steps), free-running, and is scored like every multi-step model
of :mod:`rnnkit.tasks.forecasters`.

Example config: ``configs/seq2seq.toml``.
"""

from __future__ import annotations

from torch import nn

from rnnkit.models.forecasters import Seq2SeqForecaster
from rnnkit.tasks.forecasters import Forecaster


class Seq2Seq(Forecaster):
    """``task = "seq2seq"``: :class:`Seq2SeqForecaster` models (encoder and decoder of one layer kind)."""

    name = "seq2seq"
    forecaster = Seq2SeqForecaster
    reads_known_future = True  # windows.known_future: the decoder's inputs at each step

    def make(self, layer: str, units: int, residual: bool) -> nn.Module:
        F = len(self.prepared.features)
        return Seq2SeqForecaster(
            F,
            self.prepared.target_length,
            self.prepared.target_index,
            units=units,
            layer=layer,
            clock=self.clock(),
            residual=residual,
            known_future=len(self.config.windows.known_future),
        )

    def describe_model(self, model: nn.Module) -> str:
        assert isinstance(model, Seq2SeqForecaster)  # built by make()
        clock = len(model.clock.indices) if model.clock is not None else 0
        return (
            f"encoder {model.layer}({model.units}) reads {model.features} features a row; decoder "
            f"{model.layer}({model.units}) unrolls {model.target_length} steps, fed its previous forecast"
            + (f" and {clock} clock columns" if clock else "")
            + (f" and {model.known_future} known-future columns of its step" if model.known_future else "")
            + (", each step the change from the one before" if model.residual else "")
        )


TASK = Seq2Seq
