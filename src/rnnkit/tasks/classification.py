"""Many-to-one sequence classification: a config with ``task = "classification"`` becomes a run.

The data path is the regression one (split in time, scale on the training part, cut into
windows); what changes is the target. Each window gets a class label read from the
*unscaled* target at its target row: with ``[classification] threshold = t`` the label is
``target > t`` (data units), else the target column holds integer labels. The models end
in ``Dense(classes)`` (logits), train with cross-entropy, weighted per class when
``class_weight = "balanced"`` (weight ``n / (classes · n_c)`` from the training labels, so
that a rare class weighs as much in total as a common one), and are scored with accuracy,
balanced accuracy, precision / recall / F1 of class 1 and the confusion matrix, next to two
baselines scored by the same code: ``same_as_now`` (the label of the last input row) and
``majority`` (always the commonest training class; for rain: "never").

``metrics.json`` of a classification run::

    {"task": "classification", "models": {name: {params, kind, train_seconds,
      accuracy_val, balanced_accuracy_val, precision_val, recall_val, f1_val, confusion_matrix_val,
      ... the same with _test}}, "classes", "label", "class_balance", "class_weight", "best", ...}

``best`` is the trained model with the highest validation balanced accuracy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from rnnkit import baselines as bl
from rnnkit.config import ClassificationConfig, ExperimentConfig, ModelConfig, TrainingConfig, build_layer
from rnnkit.data import Windows
from rnnkit.errors import RnnkitError
from rnnkit.models import Sequential
from rnnkit.results import best_model, format_table, seconds
from rnnkit.tasks.base import (
    Task,
    check_baselines,
    default_loss_and_baselines,
    refuse_residual_and_stateful,
    require_loss,
)
from rnnkit.tasks.series import (
    PART_NAMES,
    PARTS,
    Prepared,
    data_counts,
    data_used,
    describe_prepared,
    describe_windows,
    load_frame,
    new_windows,
    prepare,
    require_windows,
    window_summaries,
    with_data_paths,
)
from rnnkit.training import classification_metrics, predict
from rnnkit.training.losses import balanced_class_weight

SCORED = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "confusion_matrix")


class LabelledWindows:
    """Windows with a class label each: ``batch(indices)`` gives ``(x, labels)`` for the Trainer.

    Args:
        windows: the :class:`rnnkit.data.Windows` of one part (inputs are gathered from them).
        labels: ``(len(windows),)`` int64 class labels.

    Example:
        >>> data = LabelledWindows(windows, torch.tensor([0, 1, 0]))  # doctest: +SKIP
        >>> Trainer(loss="cross_entropy").fit(model, data)  # doctest: +SKIP
    """

    def __init__(self, windows: Windows, labels: torch.Tensor) -> None:
        if labels.shape != (len(windows),):
            raise RnnkitError(f"labels must have shape ({len(windows)},), one per window, got {tuple(labels.shape)}")
        self.windows = windows
        self.labels = labels.long()

    def __len__(self) -> int:
        return len(self.windows)

    def batch(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        x, _ = self.windows.batch(indices)
        return x, self.labels[torch.as_tensor(indices)].reshape(-1)


# --- labels ---------------------------------------------------------------------------------------


def target_values(prepared: Prepared, part: str) -> np.ndarray:
    """The target column of ``part`` in data units (unscaled), row for row as its windows index it."""
    column = prepared.frame[prepared.target]
    return np.concatenate([column.reindex(piece.index).to_numpy(np.float64) for piece in prepared.parts[part]])


def values_to_labels(values: np.ndarray, threshold: float | None, where: str) -> np.ndarray:
    """``values > threshold`` as 0/1, or the values themselves when they are integer labels >= 0."""
    if threshold is not None:
        return (values > threshold).astype(np.int64)
    bad = values[(values != np.round(values)) | (values < 0)]
    if bad.size:
        raise RnnkitError(
            f"{where}: the target holds {bad[0]!r}, not an integer label >= 0; "
            f"set classification.threshold to make labels from a measured value"
        )
    return values.astype(np.int64)


def window_labels(prepared: Prepared) -> tuple[dict[str, torch.Tensor], int]:
    """The class label of every window of each part, from the unscaled target; and the number of classes."""
    settings = prepared.config.classification
    assert settings is not None  # the config fills it in for task = "classification"
    labels = {}
    for part in PARTS:
        values = target_values(prepared, part)[prepared.windows[part].target_rows.numpy()]
        labels[part] = torch.from_numpy(values_to_labels(values, settings.threshold, f"{PART_NAMES[part]} part"))
    classes = settings.classes or (2 if settings.threshold is not None else max(2, int(labels["train"].max()) + 1))
    for part in PARTS:
        if len(labels[part]) and int(labels[part].max()) >= classes:
            raise RnnkitError(
                f"the {PART_NAMES[part]} part holds label {int(labels[part].max())}, but "
                f"classification.classes is {classes} (labels 0 to {classes - 1})"
            )
    return labels, classes


def label_text(config: ExperimentConfig) -> str:
    """What class 1 means, e.g. ``"raining (s) > 0 at the target row"``."""
    settings = config.classification
    if settings is not None and settings.threshold is not None:
        return f"{config.data.target} > {settings.threshold:g} at the target row ({config.windows.horizon} rows ahead)"
    return f"the integer label in {config.data.target} at the target row ({config.windows.horizon} rows ahead)"


# --- models and baselines -------------------------------------------------------------------------


def build_classifier(spec: ModelConfig, prepared: Prepared, classes: int) -> nn.Module:
    """The model of ``spec``; its last layer must give ``classes`` logits per window."""
    try:
        net = Sequential(*[build_layer(s) for s in spec.layers], input_shape=prepared.input_shape)
    except ValueError as e:
        raise RnnkitError(f"model '{spec.name}': {e}") from None
    out = tuple(net.output_shapes[-1])
    if out != (classes,):
        raise RnnkitError(
            f"model '{spec.name}' outputs shape {out} per example; {classes} classes need "
            f"({classes},) logits: end with Dense({classes}) and no activation"
        )
    return net


def classification_baselines(prepared: Prepared, labels: dict[str, torch.Tensor], classes: int) -> dict[str, nn.Module]:
    """The baselines of the config: ``same_as_now`` and ``majority``, as models."""
    config = prepared.config
    settings = config.classification
    assert settings is not None
    out: dict[str, nn.Module] = {}
    for name in config.baselines:
        if name == "same_as_now":
            if settings.threshold is not None:
                # The threshold goes through the scaler's own formula (float64, then float32 like
                # the windows), so a value equal to it in data units stays equal after scaling.
                scaled = float(
                    np.float32(prepared.scaler.transform_column(np.float64(settings.threshold), prepared.target))
                )
                out[name] = bl.SameAsNow(prepared.target_index, classes, threshold=scaled)
            else:
                out[name] = bl.SameAsNow(prepared.target_index, classes, scale=prepared.scale, offset=prepared.offset)
        elif name == "majority":
            out[name] = bl.MajorityClass.fit(labels["train"], classes)
    return out


def score_classifier(model: nn.Module, data: LabelledWindows, classes: int) -> dict[str, Any]:
    """:func:`rnnkit.training.classification_metrics` of a model (or baseline) on labelled windows."""
    logits = predict(model, data, 1024)
    return classification_metrics(data.labels, logits, classes, positive=1 if classes == 2 else None)


def class_weight_of(config: ExperimentConfig, train_labels: torch.Tensor, classes: int) -> list[float] | None:
    """The per-class loss weights of the config (``None`` for ``class_weight = "none"``)."""
    settings = config.classification
    if settings is None or settings.class_weight == "none":
        return None
    if len(torch.unique(train_labels)) < 2:
        raise RnnkitError(f"the training part holds only class {int(train_labels[0])}: nothing to classify")
    return balanced_class_weight(train_labels, classes).tolist()


def describe_balance(
    config: ExperimentConfig, labels: dict[str, torch.Tensor], classes: int, weight: list[float] | None
) -> str:
    """One line per part: how many windows fall in each class."""
    lines = [f"classes: {classes}; class 1 = {label_text(config)}"]
    for part in PARTS:
        counts = torch.bincount(labels[part], minlength=classes).tolist()
        n = max(1, sum(counts))
        shares = ", ".join(f"class {c}: {k:,} ({100 * k / n:.1f}%)" for c, k in enumerate(counts))
        lines.append(f"  {PART_NAMES[part]:<10} {shares}")
    if weight is not None:
        lines.append("  loss weights (balanced): " + ", ".join(f"class {c}: {w:.3f}" for c, w in enumerate(weight)))
    return "\n".join(lines)


def classification_document(
    config: ExperimentConfig,
    prepared: Prepared,
    labels: dict[str, torch.Tensor],
    classes: int,
    weight: list[float] | None,
    results: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """The content of ``metrics.json`` for a classification run."""
    models = {name: {k: v for k, v in r.items() if k != "epochs_run"} for name, r in results.items()}
    return {
        "task": "classification",
        "models": models,
        "target": config.data.target,
        "label": label_text(config),
        "classes": classes,
        "class_balance": {part: torch.bincount(labels[part], minlength=classes).tolist() for part in PARTS},
        "class_weight": weight,
        "best": best_model(models, "balanced_accuracy_val"),
        "config": config.name,
        **data_counts(prepared),
    }


def classification_table(metrics: dict[str, Any]) -> str:
    """The comparison table of a classification run: accuracy, balanced accuracy, F1, confusion matrix (test)."""
    rows = []
    for name, m in metrics["models"].items():
        cm = m["confusion_matrix_test"]
        rows.append(
            {
                "model": name,
                "params": m["params"],
                "bal. acc. val": m["balanced_accuracy_val"],
                "accuracy test": m["accuracy_test"],
                "bal. acc. test": m["balanced_accuracy_test"],
                "precision test": m["precision_test"],
                "recall test": m["recall_test"],
                "F1 test": m["f1_test"],
                "confusion test [[tn fp] [fn tp]]" if len(cm) == 2 else "confusion test (rows: true)": str(cm),
                "seconds": seconds(m["train_seconds"]),
            }
        )
    table = format_table(rows)
    balance = metrics.get("class_balance", {}).get("test")
    note = f"class 1 = {metrics.get('label', '?')}"
    if balance:
        note += f"; test windows per class {balance} ({100 * balance[-1] / max(1, sum(balance)):.1f}% class {len(balance) - 1})"
    return f"{table}\n{note}"


# --- the task ---------------------------------------------------------------------------------------


class Classification(Task):
    """``task = "classification"``: a class label per window, logits, cross-entropy, balanced accuracy."""

    name = "classification"
    best_key, lowest = "balanced_accuracy_val", False
    own_table = True
    settings_key = "classification"
    # the label of the last input row; the training majority
    baseline_names = ("same_as_now", "majority")

    @classmethod
    def check_config(cls, config: ExperimentConfig) -> None:
        """Windows labelled whole (one label each, one step ahead), logits and cross-entropy, its two baselines."""
        require_windows(config)
        if config.classification is None:
            config.classification = ClassificationConfig()
        default_loss_and_baselines(config, "cross_entropy", cls.baseline_names)
        w = config.windows
        if w.return_sequences:
            raise ValueError(
                "windows.return_sequences: a label per step is task = 'tagging'; task = 'classification' "
                "labels whole windows, got return_sequences = true"
            )
        if w.target_length > 1:
            raise ValueError(
                f"windows.target_length: a forecast of several steps needs task = 'regression', "
                f"got target_length = {w.target_length} with task = 'classification'"
            )
        require_loss(config, "cross_entropy")
        check_baselines(config, cls.baseline_names)
        refuse_residual_and_stateful(config)

    def prepare(self, data_paths: list[str] | None = None) -> None:
        self.config = with_data_paths(self.config, data_paths)
        self.prepared = prepare(self.config, load_frame(self.config))
        self.scaler = self.prepared.scaler
        self.labels, self.classes = window_labels(self.prepared)
        self.data = {part: LabelledWindows(self.prepared.windows[part], self.labels[part]) for part in PARTS}
        self.weight = class_weight_of(self.config, self.labels["train"], self.classes)

    def data_used(self) -> dict[str, Any] | None:
        return data_used(self.prepared.frame)

    def describe(self) -> str:
        return "\n".join(
            [describe_prepared(self.prepared), describe_balance(self.config, self.labels, self.classes, self.weight)]
        )

    def check_same_data(self, scaler: Any, run: str | Path) -> None:
        mine = self.prepared.scaler
        if not np.allclose(mine.mean, scaler.mean) or not np.allclose(mine.std, scaler.std):
            raise RnnkitError(f"the data found now differ from the data of the run {run} (other training statistics)")

    def baselines(self) -> dict[str, nn.Module]:
        return classification_baselines(self.prepared, self.labels, self.classes)

    def build(self, spec: ModelConfig) -> nn.Module:
        return build_classifier(spec, self.prepared, self.classes)

    def train_data(self, training: TrainingConfig) -> tuple[Any, Any]:
        return self.data["train"], self.data["val"]

    def trainer_options(self) -> dict[str, Any]:
        return {"class_weight": self.weight}

    def metadata(self, spec: ModelConfig) -> dict[str, Any]:
        p = self.prepared
        return {
            "name": spec.name,
            "task": "classification",
            "classes": self.classes,
            "label": label_text(self.config),
            "features": p.features,
            "target": p.target,
            "input_shape": list(p.input_shape),
            "windows": self.config.windows.model_dump(),
        }

    def score(self, model: nn.Module, training: TrainingConfig | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for part in ("val", "test"):
            m = score_classifier(model, self.data[part], self.classes)
            out.update({f"{key}_{part}": m[key] for key in SCORED})
        return out

    def summary(self, result: dict[str, Any]) -> str:
        return (
            f"balanced accuracy val {result['balanced_accuracy_val']:.3f}, "
            f"test {result['balanced_accuracy_test']:.3f}; F1 test {result['f1_test']:.3f}"
        )

    @property
    def loss_name(self) -> str:
        return "cross-entropy" + (" (class-weighted)" if self.weight is not None else "")

    def document(self, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return classification_document(self.config, self.prepared, self.labels, self.classes, self.weight, results)

    @classmethod
    def table(cls, metrics: dict[str, Any]) -> str:
        return classification_table(metrics)

    @classmethod
    def best_line(cls, name: str, scores: dict[str, Any]) -> str:
        return (
            f"\nbest by validation balanced accuracy: {name} (test: balanced accuracy "
            f"{scores['balanced_accuracy_test']:.3f}, F1 {scores['f1_test']:.3f})"
        )

    def predict_table(
        self,
        run: str | Path,
        scaler: Any,
        name: str,
        model: nn.Module,
        description: dict[str, Any],
        data_paths: list[str],
    ) -> pd.DataFrame:
        """One row per window: the predicted class and the probability of each class."""
        frame, windows = new_windows(self.config, scaler, name, description, data_paths)
        last = frame.index[windows.last_rows.numpy()]
        step = pd.Series(frame.index).diff().median()
        probabilities = torch.softmax(predict(model, windows.x, 1024).double(), dim=-1).numpy()  # (windows, classes)
        table = pd.DataFrame(
            {
                "last_input_time": last,
                "target_time": last + self.config.windows.horizon * step,
                "predicted class": probabilities.argmax(1),
            }
        )
        for c in range(probabilities.shape[1]):
            table[f"P(class {c})"] = probabilities[:, c]
        return table

    def summaries(self, features: int | None = None) -> str:
        return window_summaries(self.config, self.specs(), features)

    def describe_windows(self, data_paths: list[str] | None = None) -> str:
        return describe_windows(self.config, data_paths)


TASK = Classification
