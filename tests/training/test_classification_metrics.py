"""Classification metrics, class-weighted cross-entropy and the Trainer's class_weight, against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from rnnkit.training import Trainer, classification_metrics
from rnnkit.training.losses import balanced_class_weight, check_class_weight, cross_entropy


# --- metrics ---------------------------------------------------------------------------------------


def test_binary_metrics_equal_hand_counts():
    # true:  0 0 0 0 0 0 1 1 1 1;  predicted: 0 0 0 0 1 1 1 1 1 0
    # tn = 4, fp = 2, fn = 1, tp = 3
    y_true = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]
    y_pred = [0, 0, 0, 0, 1, 1, 1, 1, 1, 0]
    m = classification_metrics(y_true, y_pred)
    assert m["confusion_matrix"] == [[4, 2], [1, 3]]
    assert m["support"] == [6, 4]
    assert m["accuracy"] == pytest.approx(7 / 10)
    assert m["balanced_accuracy"] == pytest.approx((4 / 6 + 3 / 4) / 2)
    assert m["precision"] == pytest.approx(3 / 5)
    assert m["recall"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(2 * (3 / 5) * (3 / 4) / (3 / 5 + 3 / 4))


def test_logits_are_reduced_by_argmax():
    logits = torch.tensor([[2.0, -1.0], [0.1, 0.3], [0.0, 5.0], [1.0, 0.0]])  # predicted 0, 1, 1, 0
    m = classification_metrics([0, 0, 1, 1], logits)
    assert m["confusion_matrix"] == [[1, 1], [1, 1]]
    assert m["accuracy"] == 0.5


def test_never_predicting_the_positive_class_gives_zero_precision_and_f1():
    m = classification_metrics([0, 0, 0, 1], [0, 0, 0, 0])
    assert (m["accuracy"], m["balanced_accuracy"], m["precision"], m["recall"], m["f1"]) == (0.75, 0.5, 0.0, 0.0, 0.0)


def test_three_classes_macro_averages():
    # true 0 0 1 1 2 2, predicted 0 1 1 1 2 0
    m = classification_metrics([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], num_classes=3, positive=None)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    recalls, precisions = [1 / 2, 1.0, 1 / 2], [1 / 2, 2 / 3, 1.0]
    f1s = [2 * p * r / (p + r) for p, r in zip(precisions, recalls)]
    assert m["balanced_accuracy"] == pytest.approx(sum(recalls) / 3)
    assert m["precision"] == pytest.approx(sum(precisions) / 3)
    assert m["f1"] == pytest.approx(sum(f1s) / 3)


def test_balanced_accuracy_leaves_out_classes_absent_from_the_truth():
    m = classification_metrics([0, 0, 0], [0, 1, 0], num_classes=2)
    assert m["balanced_accuracy"] == pytest.approx(2 / 3)  # class 1 has no true example


def test_positive_out_of_range_is_rejected():
    with pytest.raises(ValueError, match=r"positive must be a class in \[0, 2\) or None, got 2"):
        classification_metrics([0, 1], [0, 1], positive=2)


def test_no_labels_are_rejected():
    with pytest.raises(ValueError, match="num_classes must be a positive integer, got 0"):
        classification_metrics([], [])


# --- class weights -----------------------------------------------------------------------------------


def test_balanced_class_weight_is_n_over_classes_times_count():
    w = balanced_class_weight(torch.tensor([0, 0, 0, 0, 0, 0, 1, 1]), 2)
    assert w.tolist() == pytest.approx([8 / (2 * 6), 8 / (2 * 2)])
    assert balanced_class_weight([0, 0, 2], 3).tolist() == pytest.approx(
        [3 / (3 * 2), 0.0, 3 / (3 * 1)]
    )  # class 1 absent


def test_balanced_class_weight_rejects_labels_outside_the_classes():
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\), got values from 0 to 2"):
        balanced_class_weight([0, 2], 2)


def test_balanced_class_weight_rejects_one_class():
    with pytest.raises(ValueError, match="classes must be an integer >= 2, got 1"):
        balanced_class_weight([0, 0], 1)


def test_weighted_cross_entropy_equals_hand_computed_value():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    target = torch.tensor([0, 1, 1])
    per = [math.log(1 + math.exp(-2)), math.log(1 + math.exp(-1)), math.log(2)]
    assert float(cross_entropy(logits, target)) == pytest.approx(sum(per) / 3, rel=1e-6)
    # Keras's class_weight: weighted sum over the plain count (not over the sum of weights).
    weighted = (1 * per[0] + 3 * per[1] + 3 * per[2]) / 3
    assert float(cross_entropy(logits, target, class_weight=[1.0, 3.0])) == pytest.approx(weighted, rel=1e-6)


def test_weighted_cross_entropy_per_time_step():
    logits = torch.tensor([[[0.0, 0.0], [3.0, 0.0]]])  # (batch 1, time 2, classes 2)
    target = torch.tensor([[1, 0]])
    expected = (2.0 * math.log(2) + 0.5 * math.log(1 + math.exp(-3))) / 2
    assert float(cross_entropy(logits, target, class_weight=[0.5, 2.0])) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "weight, message",
    [
        ([1.0, -1.0], r"class_weight must hold finite numbers >= 0, not all 0, got \[1.0, -1.0\]"),
        ([0.0, 0.0], r"class_weight must hold finite numbers >= 0, not all 0, got \[0.0, 0.0\]"),
        ([1.0, float("nan")], r"class_weight must hold finite numbers >= 0, not all 0, got \[1.0, nan\]"),
        ([2.0], r"class_weight must be a list of at least 2 numbers, one per class, got \[2.0\]"),
        ("ab", r"class_weight must be a list of numbers, one per class, got 'ab'"),
    ],
)
def test_invalid_class_weight(weight, message):
    with pytest.raises(ValueError, match=message):
        check_class_weight(weight)


def test_class_weight_must_match_the_logits():
    with pytest.raises(ValueError, match=r"class_weight must hold one number per class \(2 classes\), got 3"):
        cross_entropy(torch.zeros(2, 2), torch.tensor([0, 1]), class_weight=[1.0, 1.0, 1.0])


# --- the Trainer -------------------------------------------------------------------------------------


def test_trainer_evaluates_the_weighted_loss_and_records_the_weights():
    model = torch.nn.Identity()  # the inputs are the logits
    x = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y = torch.tensor([0, 1, 1])
    trainer = Trainer(loss="cross_entropy", class_weight=[1.0, 3.0])
    per = [math.log(1 + math.exp(-2)), math.log(1 + math.exp(-1)), math.log(2)]
    result = trainer.evaluate(model, (x, y))
    assert result["loss"] == pytest.approx((per[0] + 3 * per[1] + 3 * per[2]) / 3, rel=1e-6)
    assert result["accuracy"] == pytest.approx(2 / 3)  # [1, 1] ties: argmax picks class 0
    assert trainer.settings()["class_weight"] == [1.0, 3.0]


def test_trainer_refuses_class_weight_with_a_regression_loss():
    with pytest.raises(ValueError, match="class_weight needs loss='cross_entropy', got loss='mse'"):
        Trainer(loss="mse", class_weight=[1.0, 2.0])


def test_balanced_weights_raise_the_recall_of_the_rare_class(seed):
    # 10% positives, shifted by one standard deviation: an unweighted classifier mostly says "0".
    n, n_pos = 1000, 100
    x = torch.cat([torch.randn(n - n_pos, 1), torch.randn(n_pos, 1) + 1.0])
    y = torch.cat([torch.zeros(n - n_pos), torch.ones(n_pos)]).long()
    recalls = {}
    for name, weight in (("none", None), ("balanced", balanced_class_weight(y, 2))):
        torch.manual_seed(0)
        model = torch.nn.Linear(1, 2)
        Trainer(
            loss="cross_entropy", class_weight=weight, learning_rate=0.05, epochs=20, batch_size=100, progress=False
        ).fit(model, (x, y))
        with torch.no_grad():
            recalls[name] = classification_metrics(y, model(x))["recall"]
    # Balanced weights move the decision point to about x = 0.5 (recall ≈ 0.7); none keeps it near x = 2.7.
    assert recalls["none"] < 0.2
    assert recalls["balanced"] > 0.6
