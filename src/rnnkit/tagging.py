"""Many-to-many tagging: one label per token (horizon 0), as in named-entity recognition.

A tagger is ``Embedding(mask_zero=True)`` → a recurrent layer with ``return_sequences`` (or
its ``Bidirectional`` wrapper) → ``Dense(tags)`` applied per step, trained with the
``Trainer``'s ``cross_entropy`` on logits (batch, time, tags). Padded steps carry the tag
``IGNORE_INDEX`` (−100), which the unweighted ``cross_entropy`` leaves out of the loss
(PyTorch's ``ignore_index`` default), and the mask from the embedding keeps the padding
out of the recurrent states, so a sentence's tags do not depend on how much it was padded.

Example::

    from rnnkit.corpora import teddy
    data = tagging_dataset(teddy.sentences(400), tag_names=teddy.TAGS)
    model = tagging_model(len(data.vocab), len(data.tag_names), units=16)
    Trainer(loss="cross_entropy", epochs=15).fit(model, (data.ids, data.tags))
    tag_accuracy(model, data, tokens=teddy.AMBIGUOUS)

Through a config (``task = "tagging"``, ``[data] dataset = "teddy"``, see
``configs/teddy_tagging.toml``), :func:`run_tagging` trains the models given as layers, with
``input_dim = "vocabulary"`` and ``units = "tags"`` filled in from the corpus, and scores them
next to :class:`MajorityTagPerWord` (each word's commonest training tag).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import nn

from rnnkit.layers.bidirectional import Bidirectional
from rnnkit.layers.core import Dense, Embedding
from rnnkit.layers.recurrent import GRU, LSTM, SimpleRNN
from rnnkit.models.sequential import Sequential
from rnnkit.runs import (
    baseline_results, best_model, finish_run, format_table, saved_model_results, start_run, train_models,
)
from rnnkit.text import Vocabulary, pad_sequences

if TYPE_CHECKING:
    from rnnkit.config import ExperimentConfig, ModelConfig

IGNORE_INDEX = -100
CELLS = {"SimpleRNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}


class TaggingData(NamedTuple):
    """Padded token ids and tags of tagged sentences.

    Fields: ``ids`` (batch, time) int64, 0 at padding; ``tags`` (batch, time) int64, indices
    into ``tag_names``, ``IGNORE_INDEX`` at padding; ``mask`` (batch, time) bool, True for
    real tokens; ``vocab`` the ``Vocabulary``; ``tag_names`` the tags in index order.
    """

    ids: torch.Tensor
    tags: torch.Tensor
    mask: torch.Tensor
    vocab: Vocabulary
    tag_names: tuple[str, ...]


def tagging_dataset(
    sentences: Sequence[Sequence[tuple[str, str]]],
    vocab: Vocabulary | None = None,
    tag_names: Sequence[str] | None = None,
) -> TaggingData:
    """Tagged sentences (lists of ``(token, tag)``) -> right-padded ids, tags and mask.

    Args:
        sentences: non-empty lists of ``(token, tag)`` pairs.
        vocab: default None: built from these sentences (pass the training set's to encode
            held-out sentences; unseen words become ``<unk>``).
        tag_names: default None: the tags seen, sorted.

    Example::

        data = tagging_dataset([[("teddy", "PERSON"), ("roosevelt", "PERSON")], [("bears", "O")]])
        data.ids    # [[4, 3], [2, 0]]   (ids by count, then alphabetically)
        data.tags   # [[1, 1], [0, -100]]   with tag_names ("O", "PERSON")
    """
    if not sentences or any(len(s) == 0 for s in sentences):
        raise ValueError("sentences must be a non-empty list of non-empty (token, tag) lists")
    tokens = [[t for t, _ in s] for s in sentences]
    labels = [[g for _, g in s] for s in sentences]
    if vocab is None:
        vocab = Vocabulary(tokens)
    names = tuple(sorted({g for row in labels for g in row})) if tag_names is None else tuple(tag_names)
    index = {g: i for i, g in enumerate(names)}
    unknown = sorted({g for row in labels for g in row} - set(index))
    if unknown:
        raise ValueError(f"tags must be among tag_names {list(names)}, got {unknown}")
    ids = pad_sequences([vocab.encode(t) for t in tokens])
    mask = ids != 0
    tags = torch.full(ids.shape, IGNORE_INDEX, dtype=torch.long)
    for row, labs in enumerate(labels):
        tags[row, : len(labs)] = torch.tensor([index[g] for g in labs])
    return TaggingData(ids, tags, mask, vocab, names)


def tagging_model(
    vocab_size: int,
    num_tags: int,
    *,
    embedding_dim: int = 16,
    units: int = 16,
    cell: str = "GRU",
    bidirectional: bool = True,
) -> Sequential:
    """``Embedding(mask_zero=True)`` → [Bidirectional] recurrent layer per step → ``Dense(num_tags)`` logits.

    Args:
        vocab_size: ``len(vocab)``.
        num_tags: number of tags.
        embedding_dim: default 16. units: default 16. cell: ``"SimpleRNN"``, ``"LSTM"`` or
            ``"GRU"`` (default). bidirectional: default True; False runs the same layer forwards only.

    Shapes: ids (batch, time) -> logits (batch, time, num_tags).

    Example::

        model = tagging_model(100, 2, bidirectional=False)
        model(torch.tensor([[5, 6, 0]])).shape   # (1, 3, 2)
    """
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {list(CELLS)}, got {cell!r}")
    # every layer built now (input_size given), so an optimizer made before the first call sees all weights
    recurrent = CELLS[cell](units, return_sequences=True, input_size=embedding_dim)
    return Sequential(
        Embedding(vocab_size, embedding_dim, mask_zero=True),
        Bidirectional(recurrent) if bidirectional else recurrent,
        Dense(num_tags, input_size=2 * units if bidirectional else units),
    )


def predict_tags(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """The most likely tag index for every step: (batch, time) int64 (padding included; ignore it)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(ids).argmax(-1)
    finally:
        model.train(was_training)


def tag_accuracy(model: nn.Module, data: TaggingData, tokens: Iterable[str] | None = None) -> float:
    """Share of real tokens whose predicted tag is right; with ``tokens``, only at those words.

    Example::

        tag_accuracy(model, test, tokens=teddy.AMBIGUOUS)   # accuracy on the ambiguous first names
    """
    chosen = data.mask.clone()
    if tokens is not None:
        ids = torch.tensor([data.vocab.index(t) for t in tokens if t in data.vocab], dtype=torch.long)
        chosen &= torch.isin(data.ids, ids)
    if not bool(chosen.any()):
        raise ValueError("tag_accuracy has no token to score: tokens matched no real step")
    predicted = predict_tags(model, data.ids)
    return float((predicted[chosen] == data.tags[chosen]).double().mean())


# --- the "majority tag per word" baseline -----------------------------------------------------------

class MajorityTagPerWord(nn.Module):
    """Each word's commonest training tag, whatever its context: the best a context-free tagger can do.

    A lookup table fit on training data: for every vocabulary id the tag it carried most often
    (ties: the smaller tag index); words never seen in training (and ``<unk>``) get the
    commonest tag overall. Like every baseline it is a model: ids (batch, time) -> scores
    (batch, time, num_tags), 1 for the chosen tag and 0 for the others, so that
    :func:`tag_accuracy` scores it like a tagger's logits.

    Args:
        table: (vocab_size,) int64, the tag index of each id.
        num_tags: number of tags.

    Example::

        train = tagging_dataset([[("teddy", "PERSON")], [("teddy", "O")], [("teddy", "PERSON")]])
        MajorityTagPerWord.fit(train)(train.ids).argmax(-1)   # [[1], [1], [1]]: teddy is PERSON 2 of 3 times
    """

    def __init__(self, table: torch.Tensor, num_tags: int) -> None:
        super().__init__()
        if isinstance(num_tags, bool) or not isinstance(num_tags, int) or num_tags < 1:
            raise ValueError(f"num_tags must be a positive integer, got {num_tags!r}")
        table = torch.as_tensor(table).long().reshape(-1)
        if table.numel() and (int(table.min()) < 0 or int(table.max()) >= num_tags):
            raise ValueError(f"table must hold tag indices in [0, {num_tags}), got values outside it")
        self.num_tags = num_tags
        self.register_buffer("table", table)

    @classmethod
    def fit(cls, data: TaggingData) -> MajorityTagPerWord:
        """Count (word, tag) pairs over the real tokens of ``data`` (padding left out)."""
        num_tags = len(data.tag_names)
        counts = torch.zeros(len(data.vocab), num_tags, dtype=torch.long)  # (vocab, tags)
        ones = torch.ones(int(data.mask.sum()), dtype=torch.long)
        counts.index_put_((data.ids[data.mask], data.tags[data.mask]), ones, accumulate=True)
        overall = int(counts.sum(0).argmax())  # argmax: the first (smallest) index among ties
        table = torch.where(counts.sum(1) > 0, counts.argmax(1), torch.full((len(data.vocab),), overall))
        return cls(table, num_tags)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        tags = self.table[ids.long().clamp(0, len(self.table) - 1)]  # ids beyond the table: never produced
        return torch.nn.functional.one_hot(tags, self.num_tags).float()  # (batch, time, tags)

    def get_config(self) -> dict:
        return {"table": self.table.tolist(), "num_tags": self.num_tags}


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
    from rnnkit.errors import RnnkitError

    settings = config.tagging
    sentences = teddy.sentences(settings.sentences, seed=settings.seed)
    n = len(sentences)
    n_train = round(config.data.split[0] * n)
    n_val = round(config.data.split[1] * n)
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, n)}
    empty = [p for p, (a, b) in bounds.items() if b <= a]
    if empty:
        raise RnnkitError(f"tagging.sentences: {n} sentences split by data.split {config.data.split} leave the "
                          f"{', '.join(empty)} part empty; give more sentences")
    train = tagging_dataset(sentences[:n_train], tag_names=teddy.TAGS)
    parts = {"train": train}
    for part in ("val", "test"):
        a, b = bounds[part]
        parts[part] = tagging_dataset(sentences[a:b], vocab=train.vocab, tag_names=teddy.TAGS)
    return TaggingCorpus(parts, teddy.AMBIGUOUS)


def build_tagger(spec: ModelConfig, corpus: TaggingCorpus) -> Sequential:
    """The model of a config's layer specs, with ``"vocabulary"`` and ``"tags"`` filled in and checked."""
    from rnnkit.config import build_layer, fill_placeholders
    from rnnkit.errors import RnnkitError

    train = corpus.parts["train"]
    sizes = {"vocabulary": len(train.vocab), "tags": len(train.tag_names)}
    specs = [fill_placeholders(s, sizes) for s in spec.layers]
    if specs[0].get("type") != "Embedding":
        raise RnnkitError(f"model '{spec.name}': task = 'tagging' reads token ids, so its first layer must be "
                          f"Embedding (input_dim = \"vocabulary\", mask_zero = true), got {specs[0].get('type')}")
    input_dim = specs[0].get("input_dim")
    if isinstance(input_dim, int) and input_dim < sizes["vocabulary"]:
        raise RnnkitError(f"model '{spec.name}': Embedding input_dim must be >= the vocabulary size "
                          f"{sizes['vocabulary']}, got {input_dim} (or write input_dim = \"vocabulary\")")
    steps = train.ids.shape[1]
    try:
        net = Sequential(*[build_layer(s) for s in specs], input_shape=(steps,))
    except ValueError as e:
        raise RnnkitError(f"model '{spec.name}': {e}") from None
    out = tuple(net.output_shapes[-1])
    if out != (steps, sizes["tags"]):
        raise RnnkitError(f"model '{spec.name}' outputs shape {out} per sentence of {steps} tokens; a tag per token "
                          f"needs ({steps}, {sizes['tags']}) logits: give the last recurrent layer return_sequences "
                          f"= true and end with Dense(units = \"tags\")")
    return net


def tagging_scores(model: nn.Module, corpus: TaggingCorpus) -> dict[str, float]:
    """Token accuracy (real tokens) and accuracy on the ambiguous words, on the validation and test parts."""
    out = {}
    for part in ("val", "test"):
        data = corpus.parts[part]
        out[f"token_accuracy_{part}"] = tag_accuracy(model, data)
        out[f"ambiguous_accuracy_{part}"] = tag_accuracy(model, data, tokens=corpus.ambiguous)
    return out


def run_tagging(config: ExperimentConfig, output: Any, *, epochs: int | None = None, resume: bool = False,
                progress: bool | None = None, log: Any = print) -> dict[str, Any]:
    """Train and score the taggers and the majority-per-word baseline of a ``task = "tagging"`` config.

    Called by :func:`rnnkit.experiment.run_experiment`; writes the run folder (config.json,
    metrics.json, history.csv, learning_curves.png, models/<slug>/) and returns the content
    of ``metrics.json`` (see the comment above :class:`TaggingCorpus`).
    """
    from rnnkit.errors import RnnkitError

    if config.task != "tagging":
        raise RnnkitError(f"run_tagging needs task = 'tagging', got {config.task!r}")
    corpus = tagging_corpus(config)
    out = start_run(output, config)
    log(describe_corpus(corpus))
    results = _baseline_results(config, corpus)
    train, val = corpus.parts["train"], corpus.parts["val"]
    trained = train_models(
        config, config.models, out, build=lambda spec: build_tagger(spec, corpus),
        data=lambda training: ((train.ids, train.tags), (val.ids, val.tags)),
        score=lambda model, training: tagging_scores(model, corpus),
        metadata=lambda spec: {"name": spec.name, "task": "tagging", "vocabulary": train.vocab.tokens,
                               "tags": list(train.tag_names)},
        summary=lambda r: (f"token accuracy val {r['token_accuracy_val']:.3f}, ambiguous words val "
                           f"{r['ambiguous_accuracy_val']:.3f}"),
        epochs=epochs, resume=resume, progress=progress, log=log)
    metrics = tagging_document(config, corpus, {**results, **trained.results})
    finish_run(out, metrics, trained.histories, loss_name="cross-entropy per token")
    return metrics


def _baseline_results(config: ExperimentConfig, corpus: TaggingCorpus) -> dict[str, dict]:
    """The majority-per-word baseline's result, when the config asks for it."""
    chosen = {}
    if "majority_per_word" in config.baselines:
        chosen["majority_per_word"] = MajorityTagPerWord.fit(corpus.parts["train"])
    return baseline_results(chosen, lambda model: tagging_scores(model, corpus))


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


def evaluate_tagging(config: ExperimentConfig, run: Any, stored: dict[str, Any]) -> dict[str, Any]:
    """Score the baseline and the saved taggers of a tagging run again (the corpus is drawn again from its seed)."""
    corpus = tagging_corpus(config)
    results = _baseline_results(config, corpus)
    results.update(saved_model_results(config, run, config.models, stored,
                                       lambda model, training: tagging_scores(model, corpus)))
    return tagging_document(config, corpus, results)


def describe_corpus(corpus: TaggingCorpus) -> str:
    """Sentences, tokens and ambiguous words of each part, and the tags."""
    train = corpus.parts["train"]
    names = {"train": "training", "val": "validation", "test": "test"}
    lines = [f"corpus: {len(train.vocab)} words in the training vocabulary; tags {list(train.tag_names)}; "
             f"a tag per token (horizon 0)"]
    for part in TAGGING_PARTS:
        data = corpus.parts[part]
        ids = torch.tensor([data.vocab.index(t) for t in corpus.ambiguous], dtype=torch.long)
        ambiguous = int((torch.isin(data.ids, ids) & data.mask).sum())
        lines.append(f"  {names[part]:<10} {data.ids.shape[0]:>5,} sentences, {int(data.mask.sum()):>6,} tokens, "
                     f"{ambiguous:,} ambiguous")
    return "\n".join(lines)


def tagging_table(metrics: dict[str, Any]) -> str:
    """The comparison table of a tagging run: token accuracy and accuracy on the ambiguous words."""
    rows = [{
        "model": name,
        "params": m["params"],
        "token acc. val": m["token_accuracy_val"],
        "ambiguous acc. val": m["ambiguous_accuracy_val"],
        "token acc. test": m["token_accuracy_test"],
        "ambiguous acc. test": m["ambiguous_accuracy_test"],
        "seconds": m["train_seconds"],
    } for name, m in metrics["models"].items()]
    return f"{format_table(rows)}\nambiguous words (the next word decides their tag): {', '.join(metrics.get('ambiguous', []))}"


def tagging_summaries(config: ExperimentConfig) -> str:
    """The summary table of every model of a tagging config, with the corpus's sizes filled in."""
    corpus = tagging_corpus(config)
    train = corpus.parts["train"]
    blocks = [f"{config.name}: token ids, vocabulary {len(train.vocab)}, {len(train.tag_names)} tags, "
              f"longest training sentence {train.ids.shape[1]} tokens"]
    for spec in config.models:
        blocks += [f"\n{spec.name}", build_tagger(spec, corpus).summary()]
    return "\n".join(blocks)
