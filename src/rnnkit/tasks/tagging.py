"""``task = "tagging"``: a tag per token of tagged sentences, through the config.

The models, the data encoding and the majority-per-word baseline are library pieces
(:mod:`rnnkit.models.taggers`); this module reads the corpus a config names, builds its layer specs
and scores the taggers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from rnnkit.config import ExperimentConfig, ModelConfig, TaggingConfig, TrainingConfig, build_layer, fill_placeholders
from rnnkit.errors import RnnkitError
from rnnkit.models import Sequential
from rnnkit.models.taggers import MajorityTagPerWord, TaggingData, tag_accuracy, tagging_dataset
from rnnkit.results import best_model, format_table, seconds
from rnnkit.tasks.base import (
    Task,
    check_baselines,
    default_loss_and_baselines,
    refuse_residual_and_stateful,
    require_loss,
)

# --- task = "tagging" through the config ---------------------------------------------------------
# A config with task = "tagging" names the corpus ([data] dataset = "teddy", [tagging] sentences,
# seed; data.split) and models as layers. In the layer specs, input_dim = "vocabulary" (Embedding)
# and units = "tags" (Dense) stand for the sizes known once the corpus is read:
#
#     [[models]]
#     name = "Bidirectional GRU"
#     layers = [{type = "Embedding", input_dim = "vocabulary", output_dim = 16, mask_zero = true},
#               {type = "Bidirectional", layer = {type = "GRU", units = 16, return_sequences = true}},
#               {type = "Dense", units = "tags"}]
#
# metrics.json: {"task": "tagging", "models": {name: {params, kind, train_seconds, epochs_run,
#   token_accuracy_val, ambiguous_accuracy_val, token_accuracy_test, ambiguous_accuracy_test}},
#   "tags", "vocabulary", "sentences", "tokens", "ambiguous", "best", "config"}; token accuracy
# counts real tokens only, ambiguous accuracy only the corpus's ambiguous words ("teddy", ...).
# "best" is the trained model with the highest validation token accuracy.

TAGGING_PARTS = ("train", "val", "test")


class TaggingCorpus(NamedTuple):
    """The parts of a tagging config's corpus, encoded with the training vocabulary."""

    parts: dict[str, TaggingData]
    ambiguous: tuple[str, ...]  # the words whose tag only the context decides


def tagging_corpus(config: ExperimentConfig) -> TaggingCorpus:
    """Draw ``config.tagging.sentences`` sentences and split them in order by ``config.data.split``."""
    from rnnkit.corpora import teddy

    settings = config.tagging
    sentences = teddy.sentences(settings.sentences, seed=settings.seed)
    n = len(sentences)
    n_train = round(config.data.split[0] * n)
    n_val = round(config.data.split[1] * n)
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, n)}
    empty = [p for p, (a, b) in bounds.items() if b <= a]
    if empty:
        raise RnnkitError(
            f"tagging.sentences: {n} sentences split by data.split {config.data.split} leave the "
            f"{', '.join(empty)} part empty; give more sentences"
        )
    train = tagging_dataset(sentences[:n_train], tag_names=teddy.TAGS)
    parts = {"train": train}
    for part in ("val", "test"):
        a, b = bounds[part]
        parts[part] = tagging_dataset(sentences[a:b], vocab=train.vocab, tag_names=teddy.TAGS)
    return TaggingCorpus(parts, teddy.AMBIGUOUS)


def build_tagger(spec: ModelConfig, corpus: TaggingCorpus) -> Sequential:
    """The model of a config's layer specs, with ``"vocabulary"`` and ``"tags"`` filled in and checked."""

    train = corpus.parts["train"]
    sizes = {"vocabulary": len(train.vocab), "tags": len(train.tag_names)}
    specs = [fill_placeholders(s, sizes) for s in spec.layers]
    if specs[0].get("type") != "Embedding":
        raise RnnkitError(
            f"model '{spec.name}': task = 'tagging' reads token ids, so its first layer must be "
            f'Embedding (input_dim = "vocabulary", mask_zero = true), got {specs[0].get("type")}'
        )
    input_dim = specs[0].get("input_dim")
    if isinstance(input_dim, int) and input_dim < sizes["vocabulary"]:
        raise RnnkitError(
            f"model '{spec.name}': Embedding input_dim must be >= the vocabulary size "
            f'{sizes["vocabulary"]}, got {input_dim} (or write input_dim = "vocabulary")'
        )
    steps = train.ids.shape[1]
    try:
        net = Sequential(*[build_layer(s) for s in specs], input_shape=(steps,))
    except ValueError as e:
        raise RnnkitError(f"model '{spec.name}': {e}") from None
    out = tuple(net.output_shapes[-1])
    if out != (steps, sizes["tags"]):
        raise RnnkitError(
            f"model '{spec.name}' outputs shape {out} per sentence of {steps} tokens; a tag per token "
            f"needs ({steps}, {sizes['tags']}) logits: give the last recurrent layer return_sequences "
            f'= true and end with Dense(units = "tags")'
        )
    return net


def tagging_scores(model: nn.Module, corpus: TaggingCorpus) -> dict[str, float]:
    """Token accuracy (real tokens) and accuracy on the ambiguous words, on the validation and test parts."""
    out = {}
    for part in ("val", "test"):
        data = corpus.parts[part]
        out[f"token_accuracy_{part}"] = tag_accuracy(model, data)
        out[f"ambiguous_accuracy_{part}"] = tag_accuracy(model, data, tokens=corpus.ambiguous)
    return out


def tagging_document(config: ExperimentConfig, corpus: TaggingCorpus, results: dict[str, dict]) -> dict[str, Any]:
    """The content of ``metrics.json`` for a tagging run."""
    train = corpus.parts["train"]
    return {
        "task": "tagging",
        "models": results,
        "tags": list(train.tag_names),
        "vocabulary": len(train.vocab),
        "sentences": {p: int(corpus.parts[p].ids.shape[0]) for p in TAGGING_PARTS},
        "tokens": {p: int(corpus.parts[p].mask.sum()) for p in TAGGING_PARTS},
        "ambiguous": list(corpus.ambiguous),
        "best": best_model(results, "token_accuracy_val"),
        "config": config.name,
    }


def describe_corpus(corpus: TaggingCorpus) -> str:
    """Sentences, tokens and ambiguous words of each part, and the tags."""
    train = corpus.parts["train"]
    names = {"train": "training", "val": "validation", "test": "test"}
    lines = [
        f"corpus: {len(train.vocab)} words in the training vocabulary; tags {list(train.tag_names)}; "
        f"a tag per token (horizon 0)"
    ]
    for part in TAGGING_PARTS:
        data = corpus.parts[part]
        ids = torch.tensor([data.vocab.index(t) for t in corpus.ambiguous], dtype=torch.long)
        ambiguous = int((torch.isin(data.ids, ids) & data.mask).sum())
        lines.append(
            f"  {names[part]:<10} {data.ids.shape[0]:>5,} sentences, {int(data.mask.sum()):>6,} tokens, "
            f"{ambiguous:,} ambiguous"
        )
    return "\n".join(lines)


def tagging_table(metrics: dict[str, Any]) -> str:
    """The comparison table of a tagging run: token accuracy and accuracy on the ambiguous words."""
    rows = [
        {
            "model": name,
            "params": m["params"],
            "token acc. val": m["token_accuracy_val"],
            "ambiguous acc. val": m["ambiguous_accuracy_val"],
            "token acc. test": m["token_accuracy_test"],
            "ambiguous acc. test": m["ambiguous_accuracy_test"],
            "seconds": seconds(m["train_seconds"]),
        }
        for name, m in metrics["models"].items()
    ]
    return f"{format_table(rows)}\nambiguous words (the next word decides their tag): {', '.join(metrics.get('ambiguous', []))}"


class Tagging(Task):
    """``task = "tagging"``: the taggers of the config and the majority-per-word baseline on its corpus."""

    name = "tagging"
    scaled = False  # token ids: nothing to scale
    best_key, lowest = "token_accuracy_val", False
    own_table = True
    settings_key = "tagging"
    baseline_names = ("majority_per_word",)  # each word's commonest training tag: the best without context
    fills_placeholders = True  # input_dim = "vocabulary", units = "tags"

    @classmethod
    def check_config(cls, config: ExperimentConfig) -> None:
        """Whole sentences of a tagged corpus (no [windows]), logits and cross-entropy, the per-word baseline."""
        if config.data.dataset != "teddy":
            raise ValueError(
                f"data.dataset must be 'teddy' (a tagged corpus) when task = 'tagging', got {config.data.dataset!r}"
            )
        if config.windows is not None:
            raise ValueError(
                "windows: task = 'tagging' tags every token of whole sentences (horizon 0) and takes "
                "no [windows] table, got one"
            )
        if config.tagging is None:
            config.tagging = TaggingConfig()
        default_loss_and_baselines(config, "cross_entropy", cls.baseline_names)
        require_loss(config, "cross_entropy")
        check_baselines(config, cls.baseline_names)
        refuse_residual_and_stateful(config)

    @classmethod
    def check_absent(cls, config: ExperimentConfig) -> None:
        super().check_absent(config)
        if config.data.dataset == "teddy":
            raise ValueError(
                f"data.dataset 'teddy' is a tagged corpus: it needs task = 'tagging', got task = {config.task!r}"
            )

    def prepare(self, data_paths: list[str] | None = None) -> None:
        self.corpus = tagging_corpus(self.config)

    def describe(self) -> str:
        return describe_corpus(self.corpus)

    def baselines(self) -> dict[str, nn.Module]:
        chosen: dict[str, nn.Module] = {}
        if "majority_per_word" in self.config.baselines:
            chosen["majority_per_word"] = MajorityTagPerWord.fit(self.corpus.parts["train"])
        return chosen

    def build(self, spec: ModelConfig) -> nn.Module:
        return build_tagger(spec, self.corpus)

    def train_data(self, training: TrainingConfig) -> tuple[Any, Any]:
        train, val = self.corpus.parts["train"], self.corpus.parts["val"]
        return (train.ids, train.tags), (val.ids, val.tags)

    def metadata(self, spec: ModelConfig) -> dict[str, Any]:
        train = self.corpus.parts["train"]
        return {"name": spec.name, "task": "tagging", "vocabulary": train.vocab.tokens, "tags": list(train.tag_names)}

    def score(self, model: nn.Module, training: TrainingConfig | None = None) -> dict[str, Any]:
        return tagging_scores(model, self.corpus)

    def summary(self, result: dict[str, Any]) -> str:
        return (
            f"token accuracy val {result['token_accuracy_val']:.3f}, ambiguous words val "
            f"{result['ambiguous_accuracy_val']:.3f}"
        )

    @property
    def loss_name(self) -> str:
        return "cross-entropy per token"

    def document(self, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return tagging_document(self.config, self.corpus, results)

    @classmethod
    def table(cls, metrics: dict[str, Any]) -> str:
        return tagging_table(metrics)

    @classmethod
    def best_line(cls, name: str, scores: dict[str, Any]) -> str:
        return (
            f"\nbest by validation token accuracy: {name} (test: token accuracy "
            f"{scores['token_accuracy_test']:.3f}, ambiguous words {scores['ambiguous_accuracy_test']:.3f})"
        )

    def predict_table(
        self,
        run: str | Path,
        scaler: Any,
        name: str,
        model: nn.Module,
        description: dict[str, Any],
        data_paths: list[str],
    ) -> Any:
        raise RnnkitError(
            f"{run} is a tagging run: its models tag sentences, not a series file "
            f"(use rnnkit.models.taggers.predict_tags on token ids)"
        )

    def summaries(self, features: int | None = None) -> str:
        """The summary table of every model, with the corpus's sizes filled in."""
        corpus = tagging_corpus(self.config)
        train = corpus.parts["train"]
        blocks = [
            f"{self.config.name}: token ids, vocabulary {len(train.vocab)}, {len(train.tag_names)} tags, "
            f"longest training sentence {train.ids.shape[1]} tokens"
        ]
        for spec in self.config.models:
            blocks += [f"\n{spec.name}", build_tagger(spec, corpus).summary()]
        return "\n".join(blocks)

    def describe_windows(self, data_paths: list[str] | None = None) -> str:
        raise RnnkitError(f"task = {self.name!r} has no windows: it tags every token of whole sentences")


TASK = Tagging
