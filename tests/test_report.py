"""report.html: its numbers are the run's, it references nothing outside itself, and a real browser shows it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from helpers import chromium, tiny_config, write_jena_csv
from rnnkit.cli import main
from rnnkit.tasks import parse_config
from rnnkit.experiment import describe_windows, run_experiment


def quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A one-step run (two models) and a multi-step run, on the same synthetic hourly series."""
    tmp = tmp_path_factory.mktemp("report")
    csv = write_jena_csv(tmp / "hourly.csv")
    models = [
        {"name": "GRU(4)", "layers": [{"type": "GRU", "units": 4}, {"type": "Dense", "units": 1}]},
        {"name": "LSTM(3)", "layers": [{"type": "LSTM", "units": 3}, {"type": "Dense", "units": 1}]},
    ]
    one = parse_config(tiny_config(csv, models=models))
    run_experiment(one, tmp / "one", log=quiet)
    multi = parse_config(
        tiny_config(
            csv,
            windows={"sequence_length": 24, "horizon": 1, "target_length": 4},
            baselines=["persistence", "mean"],
            models=[{"name": "GRU direct", "layers": [{"type": "GRU", "units": 4}, {"type": "Dense", "units": 4}]}],
        )
    )
    run_experiment(multi, tmp / "multi", log=quiet)
    return tmp, csv


def page(run: Path) -> str:
    return (run / "report.html").read_text(encoding="utf-8")


def test_every_run_writes_its_report_with_the_runs_numbers(runs):
    tmp, _ = runs
    text = page(tmp / "one")
    metrics = json.loads((tmp / "one" / "metrics.json").read_text())
    best = metrics["best"]
    # the scores table: each model's row holds its own MAE val and test, 3 decimals
    for name, m in metrics["models"].items():
        label = re.escape(name + (" (best by validation)" if name == best else ""))
        row = re.search(rf"<tr[^>]*><td>{label}</td>(.*?)</tr>", text)
        assert row, name
        cells = re.findall(r"<td>(.*?)</td>", row.group(1))
        assert cells[2] == f"{m['mae_val']:.3f}" and cells[3] == f"{m['mae_test']:.3f}", (name, cells)
        assert cells[5] == f"{100 * m['skill_test']:+.1f}%"
        assert cells[6] == f"{m['train_seconds']:.1f}"  # seconds as the console prints them
    assert f"<tr class='best'><td>{best} (best by validation)</td>" in text
    # the exact config as TOML, folded: it reads back to the run's config
    block = re.search(
        r"<section id='config'><h2>Config</h2><details><summary>.*?</summary><pre>(.*?)</pre></details>", text, re.S
    ).group(1)
    import html
    import tomllib

    from rnnkit.config import parse_schema
    from rnnkit.experiment import load_run

    assert parse_schema(tomllib.loads(html.unescape(block))) == load_run(tmp / "one")[0]
    # the parameter formulas of both models
    assert "3·(4·2 + 4·4 + 2·4)" in text and "4·(3·2 + 3·3 + 3)" in text
    # learning curves and one forecast week at least, as inline SVG
    assert text.count("<svg") >= 2 and "Test targets of the week from" in text


def test_window_rows_and_times_are_those_of_rnnkit_windows(runs):
    tmp, _ = runs
    from rnnkit.experiment import load_run

    config, _, _ = load_run(tmp / "one")
    described = describe_windows(config)
    # "window 1: inputs 2020-01-01 02:00 to 2020-01-02 01:00 (24 rows), target 2020-01-02 07:00" in training
    first, last, target = re.search(
        r"window 1: inputs (\S+ \S+) to (\S+ \S+) \(24 rows\), target (\S+ \S+)", described
    ).groups()
    assert (
        f"<td>training</td><td>1</td><td>1–24</td><td>{first}</td><td>{last}</td><td>30</td><td>{target}</td>"
        in page(tmp / "one")
    )


def test_multistep_report_draws_the_error_per_step(runs):
    tmp, _ = runs
    text = page(tmp / "multi")
    assert "Error per forecast step (test)" in text
    assert text.count("<svg") >= 3


def test_the_page_is_self_contained(runs):
    tmp, _ = runs
    for run in ("one", "multi"):
        text = page(tmp / run)
        assert "<script" not in text and "<link" not in text and "@import" not in text
        # every src is a data: URL; every href a link inside the page or to a file of the run folder
        sources = re.findall(r"src\s*=\s*['\"]([^'\"]*)", text)
        assert all(r.startswith("data:") for r in sources), sources
        refs = re.findall(r"href\s*=\s*['\"]([^'\"]*)", text)
        files = [r for r in refs if not r.startswith("#")]
        assert refs and all((tmp / run / r).is_file() and ":" not in r and ".." not in r for r in files), files
        assert "url(" not in text.replace("url(#", "")  # SVG clip paths refer to ids inside the page


def test_report_command_and_its_bad_input(runs, tmp_path, capsys):
    tmp, _ = runs
    out = tmp_path / "page.html"
    assert main(["report", str(tmp / "one"), "--output", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"report: {out}"
    # the same page apart from where its links start: the report is a function of the run folder
    files = re.compile(r"<section id='files'>.*?</section>", re.S)
    assert files.sub("", out.read_text()) == files.sub("", page(tmp / "one"))

    def one_line_error(argv, fragment):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and fragment in err, err

    one_line_error(["report", str(tmp_path / "nothing")], "run folder not found")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    for name in ("config.json", "scaler.json"):
        shutil.copy(tmp / "one" / name, unfinished / name)
    one_line_error(["report", str(unfinished)], "has not finished")
    one_line_error(["report", str(tmp / "one"), "--output", str(tmp_path / "no" / "r.html")], "does not exist")


def test_report_off_from_the_config(runs, tmp_path):
    _, csv = runs
    config = parse_config({**tiny_config(csv, training={"epochs": 1}), "output": {"report": False}})
    run_experiment(config, tmp_path / "run", log=quiet)
    assert (tmp_path / "run" / "metrics.json").is_file() and not (tmp_path / "run" / "report.html").exists()


# --- a real browser --------------------------------------------------------------------------------


def browse(page_path: Path, screenshot: Path) -> list[str]:
    """Load a page in headless Chromium with the network cut off; returns its console messages."""
    done = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--window-size=1200,2600",
            "--hide-scrollbars",
            f"--screenshot={screenshot}",
            page_path.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert screenshot.is_file(), done.stderr[-2000:]
    return [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


def colour_share(png: Path, rgb: tuple[int, int, int]) -> float:
    import matplotlib.image

    pixels = (matplotlib.image.imread(str(png))[..., :3] * 255).round().astype(int)
    return float((np.abs(pixels - np.array(rgb)).max(-1) <= 6).mean())


def test_console_messages_are_caught(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><script>console.error('report-test-marker')</script></body></html>")
    messages = browse(bad, tmp_path / "bad.png")
    assert any("report-test-marker" in m for m in messages), messages


def test_chromium_loads_the_report_without_console_messages_and_shows_table_and_plots(runs, tmp_path):
    tmp, _ = runs
    shot = tmp_path / "report.png"
    assert browse(tmp / "one" / "report.html", shot) == []
    # the best model's row (#e7f5e9), the scores' header cells (#f3f5f7) and matplotlib's first line colour
    # (#1f77b4, the learning curves and forecasts) are on screen
    assert colour_share(shot, (0xE7, 0xF5, 0xE9)) > 1e-4
    assert colour_share(shot, (0xF3, 0xF5, 0xF7)) > 1e-3
    assert colour_share(shot, (0x1F, 0x77, 0xB4)) > 1e-4


def test_published_numbers_sit_beside_the_runs_rows():
    from types import SimpleNamespace

    from rnnkit.report import scores_section

    rows = [
        SimpleNamespace(model="LSTM(16)", run_as="LSTM", mae_val=None, mae_test=2.55),
        SimpleNamespace(model="GRU(16)", run_as=None, mae_val=[3.55, 3.58], mae_test=None),
    ]
    config = SimpleNamespace(published=SimpleNamespace(source="Chollet 2021", rows=rows))
    metrics = {
        "units": "degC",
        "best": "LSTM",
        "models": {
            "LSTM": {
                "kind": "model",
                "params": 10,
                "mae_val": 2.5,
                "mae_test": 2.6,
                "rmse_test": 3.0,
                "skill_test": 0.01,
                "train_seconds": 1.0,
            }
        },
    }
    text = scores_section(config, metrics)
    assert (
        "<tr class='best'><td>LSTM (best by validation)</td><td>model</td><td>10</td><td>2.500</td><td>2.600</td>"
    ) in text
    assert (
        "<tr class='published'><td>LSTM(16) [1]</td><td>published</td><td></td>"
        "<td>–</td><td>2.55</td><td>–</td><td>–</td><td>compare: LSTM</td></tr>"
    ) in text
    assert "<td>GRU(16) [1]</td><td>published</td><td></td><td>3.55–3.58</td><td>–</td>" in text
    assert text.count("Chollet 2021") == 1 and "Published numbers: [1] Chollet 2021." in text


def test_chosen_weeks_and_a_bad_week(runs, tmp_path, capsys):
    tmp, csv = runs
    from rnnkit.tasks import load_config

    config = parse_config({**tiny_config(csv, training={"epochs": 1}), "output": {"report_weeks": ["2020-02-05"]}})
    run_experiment(config, tmp_path / "run", log=quiet)
    text = page(tmp_path / "run")
    assert "the week from 2020-02-05" in text and "the week from 2020-02-03" not in text
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[windows]\nsequence_length = 4\n[output]\nreport_weeks = ["next tuesday"]\n')
    with pytest.raises(Exception, match="next tuesday"):
        load_config(bad)
    capsys.readouterr()  # the run's progress lines (a line per epoch off a terminal)
    assert main(["windows", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "report_weeks" in err and "next tuesday" in err, err


# --- the report for a reader (issue 20, part 8) ------------------------------------------------------


def test_each_published_source_appears_once_and_each_row_names_its_own():
    from types import SimpleNamespace

    from rnnkit.demo import demo_config
    from rnnkit.report import scores_section

    config = demo_config()
    text = scores_section(config, {"units": "degC", "models": {}})
    chollet, course = config.published.source, config.published.rows[-1].source
    assert course.startswith("course notebook 05a") and "Chollet" in chollet and "course" not in chollet
    assert text.count(chollet) == 1 and text.count(course) == 1
    assert f"Published numbers: [1] {chollet}; [2] {course}." in text
    assert "<td>course 05a GRU(16) [2]</td>" in text and "<td>persistence [1]</td>" in text
    assert text.count("[1]</td>") == 4 and text.count("[2]</td>") == 1
    # the console names the other source on its row too
    from rnnkit.published import notes

    lines = notes(config.published.model_dump(mode="json"))
    assert lines[0] == f"published (degC): {chollet}"
    assert [line for line in lines if course in line] == [next(line for line in lines if "course 05a" in line)]
    one = SimpleNamespace(published=SimpleNamespace(source="S", rows=[SimpleNamespace(model="m", mae_test=1.0)]))
    assert "Published numbers: [1] S." in scores_section(one, {"units": "degC", "models": {}})


def test_learning_curves_are_wide_with_the_legend_below_and_the_first_epoch_off_the_scale():
    from rnnkit.plots import history_figure

    long = "recipe: GRU(64, dropout 0.1, recurrent_dropout 0.1), LR halved on plateaus"
    histories = {
        name: [{"epoch": e, "loss": 0.2 + k / e**2, "val_loss": 0.25 + k / e**2} for e in range(1, 11)]
        for name, k in ((long, 3.0), ("LSTM(16)", 0.3), ("GRU(16)", 0.2))
    }
    fig = history_figure(histories)
    fig.canvas.draw()
    ax = fig.axes[0]
    axes, legend = ax.get_window_extent(), ax.get_legend().get_window_extent()
    assert axes.width / fig.dpi * 96 > 600  # CSS pixels, > the 450 px of before
    assert legend.width <= axes.width and legend.y1 < axes.y0  # below the axes, not beside them
    low, high = ax.get_ylim()
    later = [r[key] for h in histories.values() for r in h[1:] for key in ("loss", "val_loss")]
    assert low <= min(later) and max(later) <= high < 0.2 + 3.0  # epoch 1 (3.2) is off the scale ...
    assert any(t.get_text() == "epoch 1 off the scale (up to 3.25)" for t in ax.texts)  # ... and says so
    flat = history_figure({"a": [{"epoch": e, "loss": 1.0 - 0.01 * e} for e in range(1, 6)]})
    assert flat.axes[0].get_ylim()[1] > 0.99 and not flat.axes[0].texts  # nothing squashed: nothing clipped
    two = history_figure(
        {
            "a": [{"epoch": 1, "loss": 5.0}, {"epoch": 2, "loss": 0.3}],
            "b": [{"epoch": 1, "loss": 4.0}, {"epoch": 2, "loss": 0.2}],
        }
    )
    assert two.axes[0].get_ylim()[1] > 5.0  # two epochs: clipping the first would leave single points


def test_curves_svg_is_wider_than_450_px(runs):
    tmp, _ = runs
    svg = re.search(r"<section id='curves'>.*?<svg[^>]*width=\"([\d.]+)pt\"", page(tmp / "one"), re.S)
    assert float(svg.group(1)) * 96 / 72 > 600


def test_persistence_winning_a_week_gets_a_sentence_and_errors_by_hour_and_month(runs):
    tmp, _ = runs
    from rnnkit.report import persistence_wins

    text = page(tmp / "one")
    metrics = json.loads((tmp / "one" / "metrics.json").read_text())
    weeks = re.findall(
        r"Test targets of the week from (\S+) \(\d+ windows\): (\S+) MAE ([\d.]+), persistence MAE "
        r"([\d.]+)</figcaption></figure>(<p class='note'>Persistence wins this week[^<]*</p>)?",
        text,
    )
    assert weeks
    for _, name, model, base, sentence in weeks:
        assert bool(sentence) == (float(base) < float(model))
        if sentence:
            assert f"MAE {base} against {model} for {name}." in sentence
    line = persistence_wins(
        "GRU", 2.35, 1.77, {"models": {"GRU": {"mae_test": 2.5, "skill_test": -0.04}, "persistence": {"mae_test": 2.4}}}
    )
    assert line.endswith("(skill -4.0%): persistence wins on the whole test split too.")
    # by hour of day: 24 columns of the best model's and persistence's test MAE; each hour's windows add up
    hours = re.search(
        r"Test error by the target's hour of day</h3><div class='wide'><table><thead><tr><th></th>(.*?)</tr></thead>"
        r"<tbody>(.*?)</tbody>",
        text,
        re.S,
    )
    assert re.findall(r"<th>(\d\d)</th>", hours.group(1)) == [f"{h:02d}" for h in range(24)]
    counts = re.search(r"<td>test windows</td>(.*?)</tr>", hours.group(2)).group(1)
    assert sum(int(c.replace(",", "")) for c in re.findall(r"<td>([\d,]+)</td>", counts)) == metrics["windows"]["test"]
    assert "<td>best model MAE</td>" in hours.group(2)
    assert f"The best model by validation ({metrics['best']}) against persistence" in text
    assert "The test targets fall on" not in text  # every hour has its targets: no sentence on few hours


def test_course_05a_test_targets_fall_on_hours_09_and_11_of_the_record_read_by_position(tmp_path):
    """Course 05a's windows start every 24 hourly rows, read by position (gaps = "ignore"): every target is
    row 24 i + 119 of the record, so its test targets keep one time of day, 09:10, until the record's missing
    rows move it to 11:20. The report's hours are those rows' own timestamps (counted here from the file),
    not a bug; a sentence under the table says why only two hours show."""
    import collections
    import tomllib

    from rnnkit.datasets import jena_climate

    root = Path(__file__).resolve().parents[1]
    raw = tomllib.loads((root / "configs" / "course_05a.toml").read_text(encoding="utf-8"))
    raw["models"] = [m for m in raw["models"] if m["name"] == "GRU(16)"]  # one model, one epoch: the windows matter
    raw["training"]["epochs"] = 1
    del raw["published"]  # its rows name the models left out
    out = tmp_path / "run"
    run_experiment(parse_config(raw), out, log=quiet)
    record = jena_climate(source="record", step=6, how="position").index  # the rows as the config reads them
    windows = (len(record) - 96 - 24) // 24 + 1
    test = json.loads((out / "metrics.json").read_text())["windows"]["test"]
    targets = record[np.arange(windows - test, windows) * 24 + 95 + 24]  # last input row + horizon 24
    assert collections.Counter(targets.hour) == {9: 520, 11: 64} and str(targets[-1]) == "2016-12-31 11:20:00"
    text = page(out)
    hours = re.search(
        r"Test error by the target's hour of day</h3>.*?<thead><tr><th></th>(.*?)</tr></thead>"
        r".*?<td>test windows</td>(.*?)</tr>",
        text,
        re.S,
    )
    assert re.findall(r"<th>(\d\d)</th>", hours.group(1)) == ["09", "11"]
    assert re.findall(r"<td>([\d,]+)</td>", hours.group(2)) == ["520", "64"]
    assert "The test targets fall on 2 of the 24 hours only (09, 11): they lie 1 day apart" in text


def test_the_data_section_in_words_and_links_to_the_runs_files(runs):
    tmp, _ = runs
    from rnnkit.report import data_in_words

    text = page(tmp / "one")
    assert "embedded_record" not in text and "file_resolution" not in text
    assert "Read hourly.csv, whose rows are 1 h apart; the run uses every row." in text
    assert data_in_words({"files": ["a.csv", "b.csv"], "file_resolution": "10 min", "resolution": "1 h"}) == (
        "Read a.csv, b.csv, whose rows are 10 min apart; the run uses one row every 1 h."
    )
    links = re.findall(
        r"<li><a href='([^']+)'>\1</a></li>", re.search(r"<section id='files'>(.*?)</section>", text, re.S).group(1)
    )
    assert {"config.json", "metrics.json", "scaler.json", "history.csv", "models/gru_4/model.safetensors"} <= set(links)
    assert all((tmp / "one" / link).is_file() for link in links) and "report.html" not in links


def file_links(page_path: Path) -> dict[str, Path]:
    """The files section's links: shown name -> the file each leads to from the page's folder."""
    from urllib.parse import unquote

    section = re.search(r"<section id='files'>(.*?)</section>", page_path.read_text(encoding="utf-8"), re.S).group(1)
    return {
        name: page_path.parent / unquote(href) for href, name in re.findall(r"<a href='([^']+)'>([^<]+)</a>", section)
    }


def test_the_links_to_the_runs_files_hold_when_the_folder_moves_and_from_a_page_written_elsewhere(runs, tmp_path):
    tmp, _ = runs
    moved = tmp_path / "somewhere" / "else" / "one"  # the run folder moved, the page inside it
    shutil.copytree(tmp / "one", moved)
    links = file_links(moved / "report.html")
    assert {"config.json", "metrics.json", "models/gru_4/model.safetensors"} <= set(links)
    assert all(path.is_file() and path.resolve().is_relative_to(moved.resolve()) for path in links.values()), links
    # a page written to another folder leads back into the run folder, relative to itself
    away = tmp_path / "pages" / "deeper"
    away.mkdir(parents=True)
    assert main(["report", str(moved), "--output", str(away / "page.html")]) == 0
    text = (away / "page.html").read_text()
    assert "href='../../somewhere/else/one/config.json'" in text and str(tmp_path) not in text
    elsewhere = file_links(away / "page.html")
    assert set(elsewhere) == set(links)
    assert all(elsewhere[n].resolve() == links[n].resolve() for n in links)
    # and still hold once the page's folder and the run move together
    (tmp_path / "all").mkdir()
    for name in ("pages", "somewhere"):
        shutil.move(str(tmp_path / name), str(tmp_path / "all" / name))
    again = file_links(tmp_path / "all" / "pages" / "deeper" / "page.html")
    assert set(again) == set(links)
    assert all(path.is_file() for path in again.values()), again
