"""One-to-many generation: a 24-hour temperature curve from one vector, and text from one character.

1. From the current conditions (one row: T, p, rh, wind, time of day) a GRU decoder
   generates the next 24 hourly temperatures; scored in °C on the test part against
   repeating the current temperature and the mean daily curve.
2. A character-level GRU trained on a short weather diary continues a seed character,
   greedily and sampled (seeded).

    RNNKIT_DATA_DIR=../shared/data python examples/generate_sequences.py
"""

from __future__ import annotations

import pandas as pd
import torch

from rnnkit.corpora import weather_text
from rnnkit.models.generators import CharRNN, generate, text_windows
from rnnkit.training import Trainer
from weather_studies import curve_generation_comparison  # examples/weather_studies.py


def main() -> None:
    torch.set_num_threads(1)
    table = curve_generation_comparison(log=print)
    with pd.option_context("display.width", 200, "display.precision", 3, "display.max_columns", 20):
        print(table)

    torch.manual_seed(0)
    model = CharRNN(weather_text.VOCABULARY, embedding_dim=16, units=96)
    trainer = Trainer(loss="cross_entropy", learning_rate=5e-3, epochs=20, batch_size=32, progress=False)
    history = trainer.fit(model, text_windows(weather_text.TEXT, model, 64, shift=4))
    print(f"\nchar GRU on the weather diary ({len(weather_text.TEXT)} characters): loss {history['loss'][-1]:.3f}")
    print("greedy     :", repr(generate(model, "t", 160)))
    print("sampled 0.5:", repr(generate(model, "t", 160, temperature=0.5, seed=1)))


if __name__ == "__main__":
    main()
