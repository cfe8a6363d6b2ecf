"""Metrics in data units: golden values, skill, accuracy, confusion matrix, score of a baseline."""

from __future__ import annotations

import math

import pytest
import torch

from rnnkit.baselines import Persistence
from rnnkit.errors import RnnkitError
from rnnkit.training import metrics


def test_mae_rmse_golden():
    assert metrics.mae([1.0, 2.0, 3.0], [2.0, 2.0, 1.0]) == pytest.approx(1.0)
    assert metrics.rmse([0.0, 0.0], [3.0, 4.0]) == pytest.approx(math.sqrt(12.5))


def test_skill_is_relative_improvement_over_persistence():
    assert metrics.skill(2.39, 2.62) == pytest.approx(1 - 2.39 / 2.62)
    assert metrics.skill(2.62, 2.62) == 0.0


def test_skill_needs_positive_persistence_mae():
    with pytest.raises(ValueError, match="mae_persistence must be > 0, got 0.0"):
        metrics.skill(1.0, 0.0)


def test_units_by_scale_offset_or_inverse():
    scaled = torch.tensor([[0.0], [1.0], [-1.0]])
    assert metrics.to_units(scaled, scale=8.0, offset=9.0).flatten().tolist() == [9.0, 17.0, 1.0]
    assert metrics.to_units(scaled, inverse=lambda t: t * 2 + 1).flatten().tolist() == [1.0, 3.0, -1.0]
    with pytest.raises(ValueError, match="give either inverse or scale/offset, got both"):
        metrics.to_units(scaled, inverse=lambda t: t, scale=1.0)


def test_regression_metrics_in_data_units_with_skill():
    truth = torch.tensor([[0.0], [1.0], [2.0]])
    model = torch.tensor([[0.5], [1.0], [2.0]])
    pers = torch.tensor([[1.0], [0.0], [1.0]])
    out = metrics.regression_metrics(truth, model, persistence=pers, scale=10.0, offset=5.0)
    assert out["mae"] == pytest.approx(5 / 3)  # |0.5|·10 / 3
    assert out["rmse"] == pytest.approx(math.sqrt(25 / 3))
    assert out["skill"] == pytest.approx(1 - (5 / 3) / 10)  # persistence MAE: (1+1+1)·10/3


def test_accuracy_from_labels_and_from_logits():
    assert metrics.accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == 0.75
    logits = torch.tensor([[3.0, 0.0], [0.0, 3.0], [1.0, 0.0]])
    assert metrics.accuracy(torch.tensor([0, 1, 1]), logits) == pytest.approx(2 / 3)


def test_confusion_matrix_golden():
    cm = metrics.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2])
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    cm4 = metrics.confusion_matrix([0, 1], torch.tensor([[2.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 5.0]]), num_classes=4)
    assert cm4[0, 0] == 1 and cm4[1, 3] == 1 and cm4.sum() == 2


def test_confusion_matrix_arguments():
    with pytest.raises(ValueError, match="num_classes must be a positive integer, got 0"):
        metrics.confusion_matrix([0], [0], num_classes=0)
    with pytest.raises(RnnkitError, match=r"labels must be in \[0, 2\)"):
        metrics.confusion_matrix([0, 3], [0, 1], num_classes=2)
    with pytest.raises(RnnkitError, match="same number of labels, got 3 and 2"):
        metrics.confusion_matrix([0, 1, 1], [0, 1])


def test_score_scores_a_baseline_like_a_model():
    # windows of a toy series 0, 1, 4, 9, 16 (scaled), 2 rows each, target the next row
    s = torch.tensor([0.0, 1.0, 4.0, 9.0, 16.0])
    x = torch.stack([s[0:2], s[1:3], s[2:4]])[:, :, None]
    y = s[2:5][:, None]
    out = metrics.score(Persistence(0), (x, y), persistence=Persistence(0), scale=0.5, offset=3.0)
    # persistence errors: 4−1, 9−4, 16−9 = 3, 5, 7, times 0.5
    assert out["mae"] == pytest.approx(2.5)
    assert out["rmse"] == pytest.approx(0.5 * math.sqrt((9 + 25 + 49) / 3))
    assert out["skill"] == 0.0
