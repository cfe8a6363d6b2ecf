"""task = "generation" through the config: a character model on the weather diary against unigram and bigram
baselines (their scores by hand), the model saved with its architecture and rebuilt from model.json to the
same logits, generation from prompts equal to a greedy loop written here, train / evaluate / predict at the
command line, refused settings in one line."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import torch

from rnnkit.cli import main
from rnnkit.tasks import load_config, parse_config
from rnnkit.corpora import weather_text
from rnnkit.errors import RnnkitError
from rnnkit.experiment import evaluate_run, metrics_table, predict_file, run_experiment
from rnnkit.io import load_weights, read_model_json, save_model
from rnnkit.runs import load_trained
from rnnkit.tasks import task_for
from rnnkit.tasks.generation import split_text

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
quiet = {"progress": False, "log": lambda _: None}


def _raw(**overrides) -> dict:
    raw = {
        "name": "gen",
        "task": "generation",
        "baselines": ["unigram", "bigram"],
        "data": {"dataset": "weather_text", "split": [0.7, 0.15, 0.15]},
        "windows": {"sequence_length": 32, "shift": 8},
        "generation": {"length": 20, "embedding_dim": 4},
        "training": {"epochs": 2, "batch_size": 32, "learning_rate": 1e-2, "seed": 0},
        "models": [{"name": "char GRU", "layers": [{"type": "GRU", "units": 8}]}],
    }
    for key, value in overrides.items():
        raw[key] = {**raw[key], **value} if isinstance(value, dict) else value
    return raw


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("generation")
    metrics = run_experiment(parse_config(_raw()), folder / "run", **quiet)
    return folder / "run", metrics


def test_baselines_score_the_parts_as_counted_by_hand(run):
    _, metrics = run
    parts = split_text(weather_text.TEXT, [0.7, 0.15, 0.15])
    alphabet = weather_text.VOCABULARY
    V = len(alphabet)
    counts = Counter(parts["train"])
    pairs = Counter(zip(parts["train"], parts["train"][1:]))
    after = Counter(parts["train"][:-1])
    for part in ("val", "test"):
        text = parts[part]
        unigram = -sum(math.log((counts[b] + 1) / (len(parts["train"]) + V)) for b in text[1:]) / (len(text) - 1)
        bigram = -sum(math.log((pairs[(a, b)] + 1) / (after[a] + V)) for a, b in zip(text, text[1:])) / (len(text) - 1)
        assert metrics["models"]["unigram"][f"loss_{part}"] == pytest.approx(unigram, rel=1e-5)
        assert metrics["models"]["bigram"][f"loss_{part}"] == pytest.approx(bigram, rel=1e-5)
        assert metrics["models"]["bigram"][f"perplexity_{part}"] == pytest.approx(math.exp(bigram), rel=1e-5)
        # accuracy of the bigram: the commonest follower (ties: the first in the alphabet) is right
        best = {a: max(alphabet, key=lambda b: (pairs[(a, b)], -alphabet.index(b))) for a in alphabet}
        right = sum(best[a] == b for a, b in zip(text, text[1:])) / (len(text) - 1)
        assert metrics["models"]["bigram"][f"accuracy_{part}"] == pytest.approx(right)
    assert metrics["models"]["unigram"]["params"] == V and metrics["models"]["bigram"]["params"] == V * V


def test_metrics_document_and_table(run):
    folder, metrics = run
    assert metrics["task"] == "generation" and metrics["corpus"] == "weather_text"
    assert metrics["vocabulary"] == len(weather_text.VOCABULARY)
    assert sum(metrics["characters"].values()) == len(weather_text.TEXT)
    assert metrics["windows"]["train"] == (metrics["characters"]["train"] - 33) // 8 + 1
    assert metrics["best"] == "char GRU"
    gru = metrics["models"]["char GRU"]
    assert set(gru) == {
        "params",
        "loss_val",
        "loss_test",
        "perplexity_val",
        "perplexity_test",
        "accuracy_val",
        "accuracy_test",
        "train_seconds",
        "kind",
    }
    assert gru["perplexity_test"] == pytest.approx(math.exp(gru["loss_test"]))
    V = len(weather_text.VOCABULARY)
    assert gru["params"] == V * 4 + 3 * (8 * 4 + 8 * 8 + 2 * 8) + (8 * V + V)  # Embedding, GRU, Dense
    header = metrics_table(metrics).splitlines()[0]
    assert "loss val (nats/char)" in header and "perplexity test" in header
    assert json.loads((folder / "metrics.json").read_text()) == metrics


def test_evaluate_rebuilds_the_model_from_model_json_and_scores_the_same(run):
    folder, metrics = run
    description = json.loads((folder / "models" / "char_gru" / "model.json").read_text())
    assert description["class"].endswith(".CharRNN")
    assert description["config"] == {
        "vocabulary": weather_text.VOCABULARY,
        "embedding_dim": 4,
        "units": 8,
        "layer": "GRU",
    }
    again = evaluate_run(folder)
    for name, scores in metrics["models"].items():
        for key, value in scores.items():
            if key != "train_seconds":
                assert again["models"][name][key] == value, (name, key)


def test_a_saved_model_rebuilt_from_model_json_gives_the_same_logits(tmp_path):
    config = parse_config(_raw())
    t = task_for(config)
    t.prepare()
    torch.manual_seed(1)
    model = t.build(config.models[0])
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    ids = t.ids("test")[None]
    save_model(model, tmp_path / "model", metadata=t.metadata(config.models[0]))
    rebuilt = t.rebuild(read_model_json(tmp_path / "model"))
    load_weights(tmp_path / "model.safetensors", rebuilt)
    model.eval()
    rebuilt.eval()
    assert torch.equal(rebuilt(ids), model(ids))


def test_predict_continues_each_prompt_as_a_greedy_loop_written_here(run, tmp_path):
    """The generated text equals a loop that reads the whole text so far and appends its most likely next
    character (no state carried: each step from scratch), 20 times."""
    folder, _ = run
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("monday. the \n\nat noon\n")
    table = predict_file(folder, [str(prompts)])
    assert list(table.columns) == ["prompt", "generated"]
    assert table["prompt"].tolist() == ["monday. the ", "at noon"]
    _, model, _ = load_trained(folder)
    for prompt, generated in zip(table["prompt"], table["generated"]):
        text = prompt
        with torch.no_grad():
            for _ in range(20):
                logits = model(model.encode(text)[None])[0, -1]
                text += model.vocabulary[int(logits.argmax())]
        assert generated == text[len(prompt) :]
        assert len(generated) == 20


def test_predict_refuses_characters_outside_the_alphabet(run, tmp_path):
    folder, _ = run
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Monday!\n")
    with pytest.raises(
        RnnkitError,
        match=r"the prompt 'Monday!' holds characters the model 'char GRU' does not "
        r"know: \['!', 'M'\]",
    ):
        predict_file(folder, [str(prompts)])


def test_sampled_generation_repeats_with_the_seed(tmp_path):
    raw = _raw(generation={"length": 30, "embedding_dim": 4, "temperature": 1.0, "seed": 5}, training={"epochs": 1})
    folder = tmp_path / "run"
    run_experiment(parse_config(raw), folder, **quiet)
    prompts = tmp_path / "p.txt"
    prompts.write_text("the \n")
    first, second = predict_file(folder, [str(prompts)]), predict_file(folder, [str(prompts)])
    assert first.equals(second)
    assert set(first["generated"][0]) <= set(weather_text.VOCABULARY) and len(first["generated"][0]) == 30


def test_cli_train_evaluate_predict_summary_windows(tmp_path, capsys):
    config = tmp_path / "g.toml"
    config.write_text(
        'name = "g"\ntask = "generation"\nbaselines = ["unigram", "bigram"]\n[data]\ndataset = "weather_text"\n'
        "[windows]\nsequence_length = 32\nshift = 16\n[generation]\nlength = 12\n[training]\nepochs = 1\n"
        '[[models]]\nname = "char GRU"\nlayers = [{type = "GRU", units = 8}]\n'
    )
    out = tmp_path / "run"
    assert main(["train", str(config), "--output", str(out), "--quiet"]) == 0
    trained = capsys.readouterr().out
    assert "best by validation loss: char GRU" in trained
    report = (out / "report.html").read_text()
    assert "loss val (nats/char)" in report and "Embedding(25, 16)" in report  # the task's table and summary
    assert main(["evaluate", str(out)]) == 0
    evaluated = capsys.readouterr().out
    row = next(line for line in evaluated.splitlines() if line.strip().startswith("char GRU"))
    assert row in trained
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("the wind\n")
    assert main(["predict", str(out), "--data", str(prompts), "--output", str(tmp_path / "g.csv")]) == 0
    table = pd.read_csv(tmp_path / "g.csv", keep_default_na=False)
    assert table["prompt"].tolist() == ["the wind"] and len(table["generated"][0]) == 12
    assert main(["summary", str(config)]) == 0
    assert "GRU(8, return_sequences)" in capsys.readouterr().out
    assert main(["windows", str(config)]) == 0
    assert "training window 0: reads 'monday. the morning is cold and '" in capsys.readouterr().out
    assert main(["predict", str(out), "--data", str(tmp_path / "missing.txt")]) == 2
    assert "prompts file not found" in capsys.readouterr().err
    assert main(["export", str(out), "--onnx"]) == 2  # issue 22: says the kind cannot be exported, and why
    err = capsys.readouterr().err
    assert "a generation run's models cannot be exported as ONNX: they generate text one character at a time" in err
    assert err.count("\n") == 1


def test_shipped_config_is_valid():
    config = load_config(CONFIGS / "generation.toml")
    assert config.task == "generation" and config.data.dataset == "weather_text"
    assert config.training.loss == "cross_entropy"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"data": {"dataset": "jena"}},
            "data.dataset must be a character corpus ('weather_text', 'text') with task = 'generation'",
        ),
        ({"windows": {"horizon": 2}}, "windows: task = 'generation' reads sequence_length characters"),
        (
            {"models": [{"name": "m", "layers": [{"type": "GRU", "units": 4}, {"type": "Dense", "units": 3}]}]},
            "models[0].layers: task = 'generation' builds Embedding -> the recurrent layer -> Dense(vocabulary)",
        ),
        (
            {"generation": {"temperature": -1.0}},
            "generation: 'temperature': Input should be greater than or equal to 0",
        ),
        ({"generation": {"lenght": 3}}, "unknown key 'lenght' (did you mean 'length'?)"),
        ({"baselines": ["persistence"]}, "baselines for task = 'generation' must be among ['unigram', 'bigram']"),
        ({"training": {"loss": "mae"}}, "training.loss must be 'cross_entropy' when task = 'generation'"),
    ],
)
def test_invalid_generation_settings_are_one_line_naming_the_key(change, message):
    with pytest.raises(RnnkitError) as info:
        parse_config(_raw(**change))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"task": "regression", "generation": {"length": 3}}, "generation: settings need task = 'generation'"),
        (
            {"task": "regression", "data": {"dataset": "weather_text"}},
            "data.dataset 'weather_text' is a character corpus",
        ),
    ],
)
def test_generation_settings_under_another_task_are_refused(raw, message):
    base = {"windows": {"sequence_length": 8}, "models": [{"name": "m", "layers": [{"type": "Dense", "units": 1}]}]}
    with pytest.raises(RnnkitError, match=message):
        parse_config({**base, **raw})


# --- your own text file: data.dataset = "text" ----------------------------------------------------------


def test_a_text_file_is_a_corpus_its_alphabet_and_parts_from_the_file(tmp_path):
    text = "the cat sat on the mat.\nthe dog sat on the log.\n" * 20  # 960 characters, CRLF-free
    corpus = tmp_path / "pets.txt"
    corpus.write_bytes(text.replace("\n", "\r\n").encode())  # Windows newlines are read as \n
    raw = _raw(
        data={"dataset": "text", "paths": [str(corpus)], "split": [0.7, 0.15, 0.15]},
        windows={"sequence_length": 16, "shift": 8},
        training={"epochs": 1},
    )
    metrics = run_experiment(parse_config(raw), tmp_path / "run", **quiet)
    assert metrics["vocabulary"] == len(set(text)) and sum(metrics["characters"].values()) == len(text)
    parts = split_text(text, [0.7, 0.15, 0.15])
    counts = Counter(parts["train"])
    alphabet = "".join(sorted(set(text)))
    unigram = -sum(math.log((counts[c] + 1) / (len(parts["train"]) + len(alphabet))) for c in parts["test"][1:])
    assert metrics["models"]["unigram"]["loss_test"] == pytest.approx(unigram / (len(parts["test"]) - 1), rel=1e-5)
    _, model, _ = load_trained(tmp_path / "run")
    assert model.vocabulary == alphabet
    again = evaluate_run(tmp_path / "run")  # reads the file again (config.json names it)
    assert again["models"]["char GRU"]["loss_test"] == metrics["models"]["char GRU"]["loss_test"]
    corpus.write_text(text + "ZEBRA")  # another alphabet now: refused, not scored with shifted ids
    with pytest.raises(RnnkitError, match="the corpus read now has another alphabet than the model's"):
        evaluate_run(tmp_path / "run")


def test_cli_train_on_a_text_file_given_with_data(tmp_path, capsys):
    corpus = tmp_path / "abc.txt"
    corpus.write_text("abcabcabd\n" * 30)
    config = tmp_path / "g.toml"
    config.write_text(
        'name = "g"\ntask = "generation"\n[data]\ndataset = "text"\n[windows]\nsequence_length = 12\n'
        "shift = 6\n[generation]\nlength = 5\n[training]\nepochs = 1\n"
        '[[models]]\nname = "m"\nlayers = [{type = "GRU", units = 4}]\n'
    )
    assert main(["train", str(config), "--output", str(tmp_path / "none"), "--quiet"]) == 2
    assert "data.dataset 'text' trains on text files: give data.paths" in capsys.readouterr().err
    assert main(["train", str(config), "--data", str(corpus), "--output", str(tmp_path / "run"), "--quiet"]) == 0
    assert "(files: abc.txt)" in capsys.readouterr().out
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["data"]["paths"] == [str(corpus.resolve())]
    assert main(["train", str(config), "--data", str(tmp_path / "missing.txt"), "--output", str(tmp_path / "r2")]) == 2
    assert "text file not found" in capsys.readouterr().err


def test_weather_text_reads_no_file():
    with pytest.raises(RnnkitError, match="data.dataset 'weather_text' is rnnkit's own corpus: it reads no file"):
        task_for(parse_config(_raw(data={"paths": ["x.txt"]}))).prepare()
