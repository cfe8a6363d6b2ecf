"""Learning curves and prediction plots: real PNG files with the data drawn in them."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from rnnkit.plots import plot_history, plot_predictions
from rnnkit.training import History

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def colored_pixels(path) -> int:
    """Pixels that are neither white nor grey/black: the coloured lines of the plot."""
    img = mpimg.imread(path)[:, :, :3]
    spread = img.max(axis=2) - img.min(axis=2)  # 0 for white, black and greys
    return int((spread > 0.2).sum())


def test_plot_history_writes_a_png_with_the_curves(tmp_path):
    h = History([{"epoch": e, "loss": 1 / e, "val_loss": 1.2 / e} for e in range(1, 6)])
    path = plot_history(h, tmp_path / "curves.png")
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert colored_pixels(path) > 200
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]  # no temp file left


def test_plot_history_of_several_models_draws_more(tmp_path):
    one = pd.DataFrame({"epoch": [1, 2, 3], "loss": [1.0, 0.5, 0.4], "val_loss": [1.1, 0.7, 0.6]})
    two = [
        {"epoch": 1, "loss": 0.9, "val_loss": 0.2},
        {"epoch": 2, "loss": 0.3, "val_loss": 1.0},
        {"epoch": 3, "loss": 0.1, "val_loss": 0.1},
    ]
    a = plot_history({"GRU": one}, tmp_path / "a.png")
    b = plot_history({"GRU": one, "LSTM": two}, tmp_path / "b.png")
    assert colored_pixels(b) > colored_pixels(a) > 0


def test_plot_history_input_is_checked(tmp_path):
    with pytest.raises(ValueError, match="history must hold at least one epoch, got none"):
        plot_history(History(), tmp_path / "x.png")
    with pytest.raises(
        ValueError, match="history must be a History, a list of per-epoch dicts or a DataFrame, got int"
    ):
        plot_history(3, tmp_path / "x.png")


def test_plot_predictions_draws_truth_models_and_persistence(tmp_path):
    times = pd.date_range("2020-01-01", periods=48, freq="h")
    truth = 10 + 5 * np.sin(np.arange(48) / 4)
    path = plot_predictions(
        times, truth, {"GRU": truth + 0.5}, tmp_path / "pred.png", persistence=np.roll(truth, 1), units="T (degC)"
    )
    assert path.read_bytes()[:8] == PNG_MAGIC
    without = plot_predictions(times, truth, {}, tmp_path / "truth_only.png")
    # truth and persistence are black/grey: the GRU line alone adds the colour
    assert colored_pixels(path) > 200
    assert colored_pixels(without) == 0


def test_plot_predictions_lengths_must_match(tmp_path):
    with pytest.raises(ValueError, match=r"predictions\['GRU'\] must have 3 values like truth, got 2"):
        plot_predictions([0, 1, 2], [1.0, 2.0, 3.0], {"GRU": [1.0, 2.0]}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="times and truth must have the same length, got 2 and 3"):
        plot_predictions([0, 1], [1.0, 2.0, 3.0], {}, tmp_path / "x.png")
