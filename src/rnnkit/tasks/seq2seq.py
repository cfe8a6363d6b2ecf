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

    def make(self, layer: str, units: int, residual: bool) -> nn.Module:
        L, F = self.prepared.input_shape
        return Seq2SeqForecaster(F, self.prepared.target_length, self.prepared.target_index, units=units, layer=layer,
                                 clock=self.clock(), residual=residual)

    def describe_model(self, model: nn.Module) -> str:
        clock = len(model.clock.indices) if model.clock is not None else 0
        return (f"encoder {model.layer}({model.units}) reads {model.features} features a row; decoder "
                f"{model.layer}({model.units}) unrolls {model.target_length} steps, fed its previous forecast"
                + (f" and {clock} clock columns" if clock else "")
                + (", each step the change from the one before" if model.residual else ""))


TASK = Seq2Seq
