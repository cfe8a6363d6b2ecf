"""The ablation behind the demo's recipe: Chollet's Jena protocol, variants x seeds, chosen on validation.

Chollet's protocol on the 2009-2016 record at hourly rows (the embedded file, or the 10-minute file
where present, every 6th row): 50/25/25 in time, 120 hourly steps in, the temperature 24 h after the
last input, inputs scaled with training statistics only. Each variant trains once per seed; the
script prints and appends to a JSON-lines file the validation and test MAE (degC) of each run,
and saves each run's validation and test predictions, so that seed ensembles (the mean of the
seeds' predictions) are scored too. Choices are made on validation only; test is reported.

    nice -n 10 python examples/jena_recipe_sweep.py VARIANT [VARIANT ...] --seeds 0 1 2 --out sweep/
    python examples/jena_recipe_sweep.py --list
    python examples/jena_recipe_sweep.py --ensemble VARIANT --out sweep/

"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from rnnkit.tasks import parse_config
from rnnkit.tasks.regression import Regression
from rnnkit.tasks.series import load_frame, prepare
from rnnkit.training import Trainer, predict

GRU = "GRU"
BASE = {
    "name": "sweep",
    "data": {
        "source": "record",
        "target": "T (degC)",
        "step": 6,
        "gaps": "ignore",
        "split": [0.5, 0.25, 0.25],
        "split_per_segment": False,
    },
    "windows": {"sequence_length": 120, "horizon": 24},
    "training": {
        "optimizer": "adam",
        "learning_rate": 1e-3,
        "loss": "mae",
        "batch_size": 256,
        "epochs": 12,
        "early_stopping_patience": 3,
        "restore_best": True,
    },
}


def _rnn(kind: str, units: int, **kw) -> list[dict]:
    return [{"type": kind, "units": units, **kw}, {"type": "Dense", "units": 1}]


_DROP = {"dropout": 0.1, "recurrent_dropout": 0.1, "recurrent_dropout_mode": "batch"}
# the recipe's data, window and training settings: residual target, wind and time features, <= 20 epochs
# with the learning rate halved on plateaus
_RECIPE = {
    "residual": True,
    "derived": ["wind", "time"],
    "epochs": 20,
    "early_stopping_patience": 4,
    "lr_plateau_patience": 1,
}
# name: (data/windows/training overrides, layers)
VARIANTS: dict[str, tuple[dict, list[dict]]] = {
    # the step-by-step ablation
    "gru32_plain": ({"residual": False, "derived": False}, _rnn(GRU, 32)),
    "gru32_residual": ({"residual": True, "derived": False}, _rnn(GRU, 32)),
    "gru32_res_wt": ({"residual": True, "derived": ["wind", "time"]}, _rnn(GRU, 32)),
    "gru64_res_wt_drop": ({"residual": True, "derived": ["wind", "time"]}, _rnn(GRU, 64, **_DROP)),
    "gru64_res_wt_drop_plateau": (
        _RECIPE,
        _rnn(GRU, 64, **_DROP),
    ),
    "gru64x2_res_wt_drop_plateau": (
        _RECIPE,
        [
            {"type": GRU, "units": 64, "return_sequences": True, **_DROP},
            {"type": GRU, "units": 64, **_DROP},
            {"type": "Dense", "units": 1},
        ],
    ),
    "gru64_res_wt_drop_plateau_L48": (
        {**_RECIPE, "sequence_length": 48},
        _rnn(GRU, 64, **_DROP),
    ),
    "gru64_res_wt_drop_plateau_L240": (
        {**_RECIPE, "sequence_length": 240},
        _rnn(GRU, 64, **_DROP),
    ),
    "gru128_res_wt_drop_plateau": (
        _RECIPE,
        _rnn(GRU, 128, **_DROP),
    ),
    "lstm64_res_wt_drop_plateau": (
        _RECIPE,
        _rnn("LSTM", 64, **_DROP),
    ),
    "gru64_res_wt_drop_plateau_mse": (
        {**_RECIPE, "loss": "mse"},
        _rnn(GRU, 64, **_DROP),
    ),
}
# Multi-horizon: the next 24 hours at once (Dense(24), residual per step); scored on the 24th hour only.
_MH = {"residual": True, "derived": ["wind", "time"], "horizon": 1, "target_length": 24}
VARIANTS["gru64_res_wt_drop_mh24"] = (_MH, [{"type": GRU, "units": 64, **_DROP}, {"type": "Dense", "units": 24}])
VARIANTS["gru32_res_wt_mh24"] = (_MH, [{"type": GRU, "units": 32}, {"type": "Dense", "units": 24}])
# Issue 19, part 5: what the last ablation left untried, each on top of the recipe.
# known-future inputs: the calendar of the target time (24 h after the last input) on every input row
CALENDAR = ["Day sin", "Day cos", "Year sin", "Year cos"]
VARIANTS["gru64_res_wt_drop_plateau_kf"] = ({**_RECIPE, "known_future": CALENDAR}, _rnn(GRU, 64, **_DROP))
# multi-horizon targets as an auxiliary loss: the next 24 hours (Dense(24)); the loss is the 24th hour's MAE
# plus AUX_WEIGHT times the mean MAE of hours 1-23 (validation loss too); scored on the 24th hour only
VARIANTS["gru64_res_wt_drop_plateau_aux"] = (
    {**_RECIPE, "horizon": 1, "target_length": 24, "aux_weight": 0.5},
    [{"type": GRU, "units": 64, **_DROP}, {"type": "Dense", "units": 24}],
)
DATA_KEYS = {"derived"}
WINDOW_KEYS = {"residual", "sequence_length", "horizon", "target_length", "known_future"}
SCRIPT_KEYS = {"aux_weight"}  # read by run(), not config keys


def auxiliary_mae(weight: float):
    """MAE of the last forecast step + ``weight`` x the mean MAE of the earlier steps: ``(batch, K[, 1])``."""

    def loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        error = (prediction.reshape(len(prediction), -1) - target.reshape(len(target), -1)).abs()  # (batch, K)
        return error[:, -1].mean() + weight * error[:, :-1].mean()

    return loss


def _last(values: torch.Tensor) -> torch.Tensor:
    """The 24-hours-ahead column of a multi-horizon output (unchanged for one target)."""
    values = values.reshape(len(values), -1)  # (n,), (n, 1), (n, K) or (n, K, 1) -> (n, K)
    return values[:, -1:]


def config_of(variant: str, seed: int):
    overrides, layers = VARIANTS[variant]
    raw = json.loads(json.dumps(BASE))
    for key, value in overrides.items():
        if key in SCRIPT_KEYS:
            continue
        part = "data" if key in DATA_KEYS else "windows" if key in WINDOW_KEYS else "training"
        raw[part][key] = value
    raw["training"]["seed"] = seed
    raw["name"] = variant
    raw["models"] = [{"name": variant, "layers": layers}]
    return parse_config(raw, source=variant)


def run(variant: str, seed: int, out: Path, frames: dict) -> dict:
    config = config_of(variant, seed)
    key = json.dumps([config.data.model_dump(mode="json"), config.windows.model_dump()])
    if key not in frames:
        frames[key] = prepare(config, load_frame(config))
    prepared = frames[key]
    task = Regression(config)
    task.prepared = prepared
    spec = config.models[0]
    trainer = Trainer(**config.training_for(spec).model_dump(), progress=False)
    aux = VARIANTS[variant][0].get("aux_weight")
    if aux is not None:
        trainer._loss_fn = auxiliary_mae(aux)  # the Trainer takes losses by name; this one lives in the script
    torch.manual_seed(seed)
    model = task.build(spec)
    started = time.perf_counter()
    history = trainer.fit(model, train=prepared.windows["train"], val=prepared.windows["val"])
    seconds = time.perf_counter() - started
    model.eval()
    result = {"variant": variant, "seed": seed, "epochs_run": len(history), "seconds": round(seconds, 1)}
    preds = {}
    for part in ("val", "test"):
        w = prepared.windows[part]
        p = prepared.to_units(_last(predict(model, w.x, 1024)))
        preds[part] = p
        result[f"mae_{part}"] = float(np.abs(p - prepared.to_units(_last(w.y))).mean())
    persistence = task.baselines()["persistence"]
    for part in ("val", "test"):
        w = prepared.windows[part]
        p = prepared.to_units(_last(predict(persistence, w.x, 1024)))
        result[f"persistence_{part}"] = float(np.abs(p - prepared.to_units(_last(w.y))).mean())
    np.savez(out / f"{variant}_seed{seed}.npz", **preds)
    with open(out / "results.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(result) + "\n")
    print(json.dumps(result), flush=True)
    return result


def ensemble(variant: str, out: Path) -> None:
    config = config_of(variant, 0)
    prepared = prepare(config, load_frame(config))
    files = sorted(out.glob(f"{variant}_seed*.npz"))
    for part in ("val", "test"):
        truth = prepared.to_units(_last(prepared.windows[part].y))
        mean = np.mean([np.load(f)[part] for f in files], axis=0)
        print(f"{variant}: ensemble of {len(files)} seeds, MAE {part} {np.abs(mean - truth).mean():.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("sweep"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ensemble", action="store_true", help="score the mean prediction of the saved seeds")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--data", help="an hourly record file to read instead of data.source = 'record'")
    args = parser.parse_args()
    if args.data:
        BASE["data"].pop("source")
        BASE["data"].update(paths=[str(Path(args.data).resolve())], step=1)
    if args.list:
        print("\n".join(VARIANTS))
        return
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    frames: dict = {}
    for variant in args.variants:
        if args.ensemble:
            ensemble(variant, args.out)
            continue
        for seed in args.seeds:
            run(variant, seed, args.out, frames)


if __name__ == "__main__":
    main()
