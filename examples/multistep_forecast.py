"""Multi-step forecasting on the station weather: the next 24 hours from the last 5 days.

Direct, autoregressive and encoder-decoder (seq2seq) GRUs against "repeat the last day",
"repeat the last value" and "the mean daily change from now", scored in °C on the test part
(MAE overall and at 1, 6, 12 and 24 hours ahead). Runs in about 1-2 minutes on a CPU.

    RNNKIT_DATA_DIR=../shared/data python examples/multistep_forecast.py
"""

from __future__ import annotations

import pandas as pd
import torch

from weather_studies import multistep_comparison, weather_parts  # examples/weather_studies.py


def main() -> None:
    torch.set_num_threads(1)
    parts = weather_parts()
    sizes = {name: sum(len(p) for p in pieces) for name, pieces in parts.parts.items()}
    print(f"hourly rows per part: {sizes}")
    table = multistep_comparison(parts, log=print)
    with pd.option_context("display.width", 200, "display.precision", 3, "display.max_columns", 20):
        print(table)


if __name__ == "__main__":
    main()
