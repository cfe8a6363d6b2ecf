"""``task = "generation"``: one-to-many text generation, a character model trained on a corpus.

From one prompt, a sequence of any length: :class:`rnnkit.models.generators.CharRNN` (``Embedding``
→ one recurrent layer → ``Dense(vocabulary)``) learns the next character at every step of
``windows.sequence_length``-character windows of the corpus's training part (a window every
``windows.shift`` characters), and :func:`rnnkit.models.generators.generate` continues a prompt one
character at a time, each generated character read back.

A config names the corpus and the generation settings::

    task = "generation"
    baselines = ["unigram", "bigram"]

    [data]
    dataset = "weather_text"        # rnnkit.corpora.weather_text: a weather diary of 1,680 characters;
                                    # "text" with paths = ["my.txt"] (or --data): your own text files
    split = [0.7, 0.15, 0.15]       # train / validation / test, in order, by characters

    [windows]
    sequence_length = 64            # characters a training window reads (a target for each)
    shift = 4

    [generation]
    length = 160                    # characters generated for each prompt (rnnkit predict)
    temperature = 0.0               # 0: the most likely character; > 0: sampled (seeded)
    seed = 0
    embedding_dim = 16

    [[models]]
    name = "char GRU"
    layers = [{type = "GRU", units = 96}]   # the recurrent layer; Embedding and Dense are built around it

Scores, honestly comparable across models and baselines: each part is read as one sequence and
every character after the first is predicted from all those before it; ``loss`` is the mean
cross-entropy (nats per character), ``perplexity`` its exponential, ``accuracy`` the share of
characters that are the most likely one. Baselines are models scored the same way: ``unigram``
(the training text's character frequencies) and ``bigram`` (the next character from the current
one), both with add-one smoothing. ``best`` is the trained model with the lowest validation loss.

``rnnkit predict RUN --data PROMPTS.txt``: one prompt per line, a generated text for each.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from rnnkit.config import ExperimentConfig, ModelConfig, TrainingConfig, describe_validation_error
from rnnkit.errors import RnnkitError
from rnnkit.models.generators import CharBigram, CharRNN, CharUnigram, generate, text_windows
from rnnkit.results import best_model, format_table, read_trained, seconds
from rnnkit.tasks.base import (
    Task,
    check_baselines,
    check_one_recurrent_layer,
    default_loss_and_baselines,
    require_loss,
    stateful_anywhere,
)
from rnnkit.tasks.series import require_windows, with_data_paths

PARTS = ("train", "val", "test")
PART_NAMES = {"train": "training", "val": "validation", "test": "test"}
CORPORA = ("weather_text", "text")  # data.dataset values that are character corpora (text: data.paths' files)
BASELINES = ("unigram", "bigram")


class GenerationConfig(BaseModel):
    """``[generation]``: how ``rnnkit predict`` generates, and the models' embedding width."""

    model_config = ConfigDict(extra="forbid", strict=True)

    length: int = Field(200, ge=1)  # characters generated for each prompt
    temperature: float = Field(0.0, ge=0.0)  # 0: greedy; > 0: sampled from softmax(logits / temperature)
    seed: int = 0  # the sampling generator's seed (temperature > 0): the same prompts give the same texts
    embedding_dim: int = Field(16, ge=1)


def settings(config: ExperimentConfig) -> GenerationConfig:
    """The resolved ``[generation]`` table of a config (its defaults filled in by :meth:`Generation.check_config`)."""
    return GenerationConfig.model_validate(config.generation or {})


def corpus_text(config: ExperimentConfig) -> tuple[str, str]:
    """The text of a config's character corpus and its alphabet (every character it holds, sorted).

    ``data.dataset = "weather_text"``: rnnkit's weather diary; ``"text"``: the files of ``data.paths``,
    one after the other (:func:`rnnkit.datasets.read_corpus`).
    """
    data = config.data
    if data.dataset == "weather_text":
        from rnnkit.corpora import weather_text

        if data.paths:
            raise RnnkitError(
                "data.dataset 'weather_text' is rnnkit's own corpus: it reads no file; for a text file "
                "write data.dataset = 'text' with data.paths (or --data)"
            )
        return weather_text.TEXT, weather_text.VOCABULARY
    if data.dataset == "text":
        from rnnkit.datasets import read_corpus

        if not data.paths:
            raise RnnkitError(
                "data.dataset 'text' trains on text files: give data.paths = [\"file.txt\"] or --data FILE"
            )
        text = "".join(read_corpus(path) for path in data.paths)
        return text, "".join(sorted(set(text)))
    raise RnnkitError(f"data.dataset must be one of {list(CORPORA)} with task = 'generation', got {data.dataset!r}")


def split_text(text: str, fractions: list[float]) -> dict[str, str]:
    """The text cut in order into training, validation and test parts by ``fractions`` of its characters.

    Example:
        >>> split_text("abcdefghij", [0.6, 0.2, 0.2])
        {'train': 'abcdef', 'val': 'gh', 'test': 'ij'}
    """
    n = len(text)
    a = round(fractions[0] * n)
    b = a + round(fractions[1] * n)
    return {"train": text[:a], "val": text[a:b], "test": text[b:]}


def text_scores(model: nn.Module, ids: torch.Tensor) -> dict[str, float]:
    """Loss (nats per character), perplexity and accuracy of next-character prediction over one sequence.

    ``ids`` ``(n,)``: the model reads ``ids[:-1]`` as one sequence and predicts ``ids[1:]``.

    Example:
        >>> s = text_scores(CharUnigram.fit("ab", "ab"), torch.tensor([0, 1, 0]))   # p = 1/2 each
        >>> round(s["loss"], 4), round(s["perplexity"], 4)
        (0.6931, 2.0)
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(ids[None, :-1])[0].double()  # (n - 1, V)
    finally:
        model.train(was_training)
    target = ids[1:]
    loss = float(torch.nn.functional.cross_entropy(logits, target))
    return {
        "loss": loss,
        "perplexity": math.exp(loss),
        "accuracy": float((logits.argmax(-1) == target).double().mean()),
    }


class Generation(Task):
    """``task = "generation"``: character models on a corpus, against the unigram and bigram baselines."""

    name = "generation"
    scaled = False  # characters: nothing to scale
    best_key, lowest = "loss_val", True
    own_table = True
    settings_key = "generation"
    baseline_names = BASELINES

    @classmethod
    def check_config(cls, config: ExperimentConfig) -> None:
        """A character corpus, windows of sequence_length and shift only, one recurrent layer per model,
        cross-entropy, its baselines, the [generation] table (its defaults filled in)."""
        require_windows(config)
        default_loss_and_baselines(config, "cross_entropy", cls.baseline_names)
        require_loss(config, "cross_entropy")
        check_baselines(config, cls.baseline_names)
        if stateful_anywhere(config):
            raise ValueError("training.stateful: stateful training has no generation path yet, got true")
        try:
            config.generation = GenerationConfig.model_validate(config.generation or {}).model_dump()
        except ValidationError as e:
            raise ValueError(describe_validation_error(e, GenerationConfig, "generation")) from None
        if config.data.dataset not in CORPORA:
            raise ValueError(
                f"data.dataset must be a character corpus ({', '.join(repr(c) for c in CORPORA)}) with "
                f"task = 'generation', got {config.data.dataset!r}"
            )
        w = config.windows
        if w is not None:
            fixed = {"sampling_rate": 1, "horizon": 1, "target_length": 1, "return_sequences": False, "residual": False}
            changed = {k: getattr(w, k) for k, value in fixed.items() if getattr(w, k) != value}
            if changed:
                raise ValueError(
                    f"windows: task = 'generation' reads sequence_length characters (a window every "
                    f"shift) and learns the next character at every step; only sequence_length and "
                    f"shift apply, got {changed}"
                )
        check_one_recurrent_layer(
            config, "task = 'generation' builds Embedding -> the recurrent layer -> Dense(vocabulary)", 64
        )
        for i, model in enumerate(config.models):
            if model.residual:
                raise ValueError(
                    f"models[{i}].residual: task = 'generation' predicts characters, not a change, got true"
                )

    @classmethod
    def check_absent(cls, config: ExperimentConfig) -> None:
        """[generation] and the character corpora under any other task."""
        super().check_absent(config)
        if config.data.dataset in CORPORA:
            raise ValueError(
                f"data.dataset {config.data.dataset!r} is a character corpus: it needs "
                f"task = 'generation', got task = {config.task!r}"
            )

    # --- the data
    def prepare(self, data_paths: list[str] | None = None) -> None:
        self.config = with_data_paths(self.config, data_paths)  # config.json names the files read
        text, self.vocabulary = corpus_text(self.config)
        self.parts = split_text(text, self.config.data.split)
        empty = [PART_NAMES[p] for p in PARTS if len(self.parts[p]) < 2]
        if empty:
            raise RnnkitError(
                f"data.split {self.config.data.split} leaves the {', '.join(empty)} part of the "
                f"{len(text)}-character corpus under 2 characters"
            )
        self.encoder = CharRNN(self.vocabulary, 1, 1)  # its encode(): text -> ids over the corpus's alphabet

    def ids(self, part: str) -> torch.Tensor:
        return self.encoder.encode(self.parts[part])

    def describe(self) -> str:
        w = self.config.windows
        lines = [
            f"corpus: {self.config.data.dataset}, {sum(len(t) for t in self.parts.values()):,} characters, "
            f"alphabet of {len(self.vocabulary)}: {self.vocabulary!r}"
            + (
                f" (files: {', '.join(Path(p).name for p in self.config.data.paths)})" if self.config.data.paths else ""
            ),
            f"windows: sequence_length {w.sequence_length} characters, shift {w.shift}; the next character "
            f"at every step",
        ]
        for part in PARTS:
            text = self.parts[part]
            lines.append(
                f"  {PART_NAMES[part]:<10} {len(text):>7,} characters, {self.windows(part):>6,} windows, "
                f"from {text[:24]!r}"
            )
        return "\n".join(lines)

    def windows(self, part: str) -> int:
        w = self.config.windows
        return max(0, (len(self.parts[part]) - w.sequence_length - 1) // w.shift + 1)

    # --- the models
    def baselines(self) -> dict[str, nn.Module]:
        train = self.parts["train"]
        fitted = {"unigram": CharUnigram.fit(train, self.vocabulary), "bigram": CharBigram.fit(train, self.vocabulary)}
        return {name: fitted[name] for name in self.config.baselines}

    def build(self, spec: ModelConfig) -> nn.Module:
        layer = spec.layers[0]
        return CharRNN(
            self.vocabulary, settings(self.config).embedding_dim, units=int(layer["units"]), layer=str(layer["type"])
        )

    def rebuild(self, description: dict[str, Any]) -> nn.Module:
        config = description.get("config")
        cls = str(description.get("class", ""))
        if not isinstance(config, dict) or cls.rsplit(".", 1)[-1] != CharRNN.__name__:
            raise RnnkitError(f"cannot rebuild a model of class {cls} for task = 'generation' (its models are CharRNN)")
        try:
            return CharRNN.from_config(config)
        except (TypeError, ValueError) as e:
            raise RnnkitError(f"the model description of class {cls} does not build: {e}") from None

    def train_data(self, training: TrainingConfig) -> tuple[Any, Any]:
        """Next-character windows of the training and validation parts: x, y ``(windows, sequence_length)`` ids."""
        w = self.config.windows
        out = []
        for part in ("train", "val"):
            try:
                out.append(text_windows(self.parts[part], self.encoder, w.sequence_length, w.shift))
            except ValueError as e:
                raise RnnkitError(
                    f"windows.sequence_length: the {PART_NAMES[part]} part ({len(self.parts[part])} "
                    f"characters) yields no window: {e}"
                ) from None
        return out[0], out[1]

    def metadata(self, spec: ModelConfig) -> dict[str, Any]:
        return {
            "name": spec.name,
            "task": self.name,
            "corpus": self.config.data.dataset,
            "generation": settings(self.config).model_dump(),
        }

    # --- scores and documents
    def score(self, model: nn.Module, training: TrainingConfig | None = None) -> dict[str, Any]:
        if getattr(model, "vocabulary", self.vocabulary) != self.vocabulary:  # ids would mean other characters
            raise RnnkitError(
                f"the corpus read now has another alphabet than the model's: {self.vocabulary!r} "
                f"against {model.vocabulary!r} (the text files changed since the run)"
            )
        out: dict[str, Any] = {}
        for part in ("val", "test"):
            out.update({f"{k}_{part}": v for k, v in text_scores(model, self.ids(part)).items()})
        return out

    def summary(self, result: dict[str, Any]) -> str:
        return (
            f"loss val {result['loss_val']:.3f}, test {result['loss_test']:.3f} nats per character (perplexity "
            f"test {result['perplexity_test']:.2f}, accuracy {result['accuracy_test']:.3f})"
        )

    @property
    def loss_name(self) -> str:
        return "cross-entropy per character (nats)"

    def document(self, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
        kept = (
            "params",
            "loss_val",
            "loss_test",
            "perplexity_val",
            "perplexity_test",
            "accuracy_val",
            "accuracy_test",
            "train_seconds",
            "kind",
        )
        models = {name: {k: r[k] for k in kept if k in r} for name, r in results.items()}
        return {
            "task": self.name,
            "models": models,
            "corpus": self.config.data.dataset,
            "vocabulary": len(self.vocabulary),
            "characters": {part: len(self.parts[part]) for part in PARTS},
            "windows": {part: self.windows(part) for part in PARTS},
            "best": best_model(models, self.best_key, lowest=self.lowest),
            "config": self.config.name,
        }

    @classmethod
    def table(cls, metrics: dict[str, Any]) -> str:
        rows = [
            {
                "model": name,
                "params": m["params"],
                "loss val (nats/char)": m["loss_val"],
                "loss test (nats/char)": m["loss_test"],
                "perplexity test": m["perplexity_test"],
                "accuracy test": m["accuracy_test"],
                "seconds": seconds(m["train_seconds"]),
            }
            for name, m in metrics["models"].items()
        ]
        return format_table(rows)

    @classmethod
    def best_line(cls, name: str, scores: dict[str, Any]) -> str:
        return (
            f"\nbest by validation loss: {name} (test: {scores['loss_test']:.3f} nats per character, "
            f"perplexity {scores['perplexity_test']:.2f})"
        )

    # --- reading runs back
    def predict_table(
        self,
        run: str | Path,
        scaler: Any,
        name: str,
        model: nn.Module,
        description: dict[str, Any],
        data_paths: list[str],
    ) -> pd.DataFrame:
        """One row per prompt of the files (one prompt a line): the prompt and the text generated after it."""
        from rnnkit.datasets import read_prompts

        name, model, description = read_trained(run, self, name or None)
        assert isinstance(model, CharRNN)  # rebuild() makes CharRNN only
        g = settings(self.config)
        prompts = [p for path in data_paths for p in read_prompts(path)]
        rows = []
        for prompt in prompts:
            unknown = sorted(set(prompt) - set(model.vocabulary))
            if unknown:
                raise RnnkitError(
                    f"the prompt {prompt!r} holds characters the model {name!r} does not know: "
                    f"{unknown}; its alphabet is {model.vocabulary!r}"
                )
            text = generate(model, prompt, g.length, temperature=g.temperature, seed=g.seed)
            rows.append({"prompt": prompt, "generated": text})
        return pd.DataFrame(rows, columns=["prompt", "generated"])

    def summaries(self, features: int | None = None) -> str:
        self.prepare()
        g = settings(self.config)
        blocks = [
            f"{self.config.name}: character ids, alphabet of {len(self.vocabulary)}, windows of "
            f"{self.config.windows.sequence_length} characters"
        ]
        for spec in self.config.models:
            model = self.build(spec)
            params = sum(t.numel() for t in model.parameters())
            blocks.append(
                f"\n{spec.name}: Embedding({len(self.vocabulary)}, {g.embedding_dim}) -> "
                f"{model.layer}({model.units}, return_sequences) -> Dense({len(self.vocabulary)}) logits; "
                f"{params:,} parameters"
            )
        return "\n".join(blocks)

    def describe_windows(self, data_paths: list[str] | None = None) -> str:
        self.prepare(data_paths)
        x, y = text_windows(
            self.parts["train"], self.encoder, self.config.windows.sequence_length, self.config.windows.shift
        )
        lines = [self.describe()]
        for i in sorted({0, 1, len(x) - 1}):
            lines.append(
                f"  training window {i}: reads {self.encoder.decode(x[i])!r}\n"
                f"  {'':>{len(str(i)) + 18}}targets {self.encoder.decode(y[i])!r}"
            )
        return "\n".join(lines)


TASK = Generation
