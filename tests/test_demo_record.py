"""`rnnkit demo`: Chollet's protocol on the embedded record, whatever RNNKIT_DATA_DIR holds."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit.datasets.jena import EMBEDDED_JENA
from rnnkit.demo import demo_config
from rnnkit.tasks.regression import make_baselines
from rnnkit.tasks.series import load_frame, prepare
from rnnkit.training import predict


def test_the_demo_reads_the_record_even_with_station_exports_in_the_data_dir(monkeypatch, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "mpi_roof_2024.csv").write_text("not read\n", encoding="ascii")  # as the Makefile's folder holds
    monkeypatch.setenv("RNNKIT_DATA_DIR", str(folder))
    config = demo_config()
    prepared = prepare(config, load_frame(config))
    assert prepared.frame.attrs["files"] == [str(EMBEDDED_JENA)] and len(prepared.frame) == 70_092
    assert (config.windows.sequence_length, config.windows.horizon, config.data.split) == (120, 24, [0.5, 0.25, 0.25])
    persistence = make_baselines(config, prepared)["persistence"]
    for part, book in (("val", 2.44), ("test", 2.62)):
        w = prepared.windows[part]
        mae = np.abs(prepared.to_units(predict(persistence, w.x, 4096)) - prepared.to_units(w.y)).mean()
        assert mae == pytest.approx(book, abs=0.01)
    published = {r.run_as: (r.mae_val, r.mae_test) for r in config.published.rows if r.run_as}
    assert published == {"persistence": (2.44, 2.62), "LSTM(16)": (None, 2.55)}
    names = [m.name for m in config.models]
    assert [n.split("(")[0] for n in names[:3]] == ["SimpleRNN", "LSTM", "GRU"] and names[3].startswith("recipe")


def test_the_doctors_demo_shapes_are_the_demos(monkeypatch, tmp_path):
    """`make`'s set-up measures auto's verdicts for the demo's calls (rnnkit.doctor.measure_demo_classes)
    from these shapes: the demo's windows, its training batches and its evaluation batches."""
    from rnnkit import doctor

    monkeypatch.setenv("RNNKIT_DATA_DIR", str(tmp_path))
    config = demo_config()
    prepared = prepare(config, load_frame(config))
    train, val, test = (prepared.windows[part].x for part in ("train", "val", "test"))
    assert train.shape == (34_903, config.windows.sequence_length, doctor.DEMO_FEATURES)
    batch = config.training.batch_size
    assert doctor.DEMO_TRAINING_BATCHES == (batch, len(train) % batch) == (256, 87)
    # validation loss at the training batch size (17,380 = 67 x 256 + 228), scores at 1024 (16 x 1024 + 996):
    # the last batches fall in the same power-of-two classes as the full ones
    assert len(val) == len(test) == 17_380 and doctor.DEMO_INFERENCE_BATCHES == (batch, 1024)
