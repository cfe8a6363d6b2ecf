"""The main job, `rnnkit demo`: Chollet's Jena protocol on the 2009-2016 record, beside the published numbers.

Defaults only, and offline: the record is the one embedded in rnnkit (every 6th ten-minute row,
hourly; the 10-minute file is preferred where present), read by position as Chollet's generator
reads it. His protocol: rows split 50/25/25 in time, 120 hourly steps in, the temperature 24 h
after the last input, inputs scaled with training statistics only. Windows start every hour (his
start every 10 minutes). The baselines, SimpleRNN, LSTM and GRU models and the project's recipe
(``examples/jena_recipe_sweep.py`` measured it, on validation only): every model predicts the change
from the last input (residual target) from the 14 columns plus the wind vector and the time of
day and year; the model with the best validation MAE is the one reported; test is never used
for a choice.
"""

from __future__ import annotations

from rnnkit.config import ExperimentConfig
from rnnkit.tasks import parse_config

# The demo, like train and backtest, trains on as many threads as there are idle CPUs
# (rnnkit.training.threads.use_threads_for_load), unless the user chose (--threads, OMP_NUM_THREADS).
# Two threads that wait for each other at every time step were far slower on a busy machine when
# waiting threads spun (SimpleRNN(16), 8 epochs: 615 s with 2 threads against 36 s with 1 on this
# 2-core machine at load ~10); rnnkit now makes them sleep (OMP_WAIT_POLICY=PASSIVE), and a CPU
# another process holds is not counted.

DEMO: dict = {
    "name": "demo",
    "description": "Chollet's Jena protocol (24 h ahead, 120 hourly steps in, 50/25/25) on the embedded "
    "2009-2016 record: baselines, SimpleRNN, LSTM, GRU and rnnkit's recipe, beside the book",
    "data": {
        "dataset": "jena",
        "source": "record",  # the 2009-2016 record, never the station exports in RNNKIT_DATA_DIR
        "target": "T (degC)",
        "derived": ["wind", "time"],
        "step": 6,  # hourly rows
        "gaps": "ignore",  # rows by position, as Chollet's generator: persistence gives his 2.44 / 2.62
        "split": [0.5, 0.25, 0.25],
        "split_per_segment": False,
    },
    "windows": {"sequence_length": 120, "horizon": 24, "residual": True},
    "training": {
        "optimizer": "adam",
        "learning_rate": 1e-3,
        "loss": "mae",
        "batch_size": 256,
        "epochs": 12,
        "early_stopping_patience": 3,
        "restore_best": True,
        "seed": 0,
    },
    "baselines": ["persistence", "seasonal_persistence", "mean", "linear"],
    "models": [
        {"name": "SimpleRNN(16)", "layers": [{"type": "SimpleRNN", "units": 16}, {"type": "Dense", "units": 1}]},
        {"name": "LSTM(16)", "layers": [{"type": "LSTM", "units": 16}, {"type": "Dense", "units": 1}]},
        {"name": "GRU(16)", "layers": [{"type": "GRU", "units": 16}, {"type": "Dense", "units": 1}]},
        # The recipe: the best on validation of examples/jena_recipe_sweep.py (seeds 0-2, README "Beating the book").
        # Halving the learning rate after an epoch without improvement gave 2.158 against 2.176 (validation).
        {
            "name": "recipe: GRU(64, dropout 0.1, recurrent_dropout 0.1), LR halved on plateaus",
            "layers": [
                {
                    "type": "GRU",
                    "units": 64,
                    "dropout": 0.1,
                    "recurrent_dropout": 0.1,
                    "recurrent_dropout_mode": "batch",
                },
                {"type": "Dense", "units": 1},
            ],
            "training": {"epochs": 20, "early_stopping_patience": 4, "lr_plateau_patience": 1},
        },
    ],
    "published": {
        "source": "Chollet, Deep Learning with Python, 2nd ed., ch. 10 (raw 14 columns, T itself as the target, "
        "windows every 10 minutes)",
        "rows": [
            {"model": "persistence", "run_as": "persistence", "mae_val": 2.44, "mae_test": 2.62},
            {"model": "LSTM(16)", "run_as": "LSTM(16)", "mae_test": 2.55},
            {"model": "LSTM(32, recurrent_dropout 0.25) + Dropout(0.5), 50 epochs", "mae_val": 2.27, "mae_test": 2.45},
            {
                "model": "2 x GRU(32, recurrent_dropout 0.5) + Dropout(0.5), 50 epochs (the book's best)",
                "mae_test": 2.39,
            },
            {
                "model": "course 05a GRU(16)",
                "mae_val": [3.55, 3.58],
                "mae_test": [3.40, 3.50],
                "source": "course notebook 05a (04b-rnns), sara-nl/ML_Erasmus, R keras, last epoch; another protocol "
                "(96 h in, windows every 24 h)",
            },
        ],
    },
}


def demo_config() -> ExperimentConfig:
    """The demo's config, validated like any other."""
    return parse_config(DEMO, source="demo config")
