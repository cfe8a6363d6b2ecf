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
``configs/teddy_tagging.toml``), :mod:`rnnkit.tasks.tagging` trains the models given as layers, with
``input_dim = "vocabulary"`` and ``units = "tags"`` filled in from the corpus, and scores them
next to :class:`MajorityTagPerWord` (each word's commonest training tag).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import torch
from torch import nn

from rnnkit.data.text import Vocabulary, pad_sequences
from rnnkit.errors import RnnkitError
from rnnkit.layers.bidirectional import Bidirectional
from rnnkit.layers.core import Dense, Embedding
from rnnkit.layers.recurrent import recurrent_layer_class
from rnnkit.models.sequential import Sequential

IGNORE_INDEX = -100


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
        raise RnnkitError("sentences must be a non-empty list of non-empty (token, tag) lists")
    tokens = [[t for t, _ in s] for s in sentences]
    labels = [[g for _, g in s] for s in sentences]
    if vocab is None:
        vocab = Vocabulary(tokens)
    names = tuple(sorted({g for row in labels for g in row})) if tag_names is None else tuple(tag_names)
    index = {g: i for i, g in enumerate(names)}
    unknown = sorted({g for row in labels for g in row} - set(index))
    if unknown:
        raise RnnkitError(f"tags must be among tag_names {list(names)}, got {unknown}")
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
    layer: str = "GRU",
    bidirectional: bool = True,
) -> Sequential:
    """``Embedding(mask_zero=True)`` → [Bidirectional] recurrent layer per step → ``Dense(num_tags)`` logits.

    Args:
        vocab_size: ``len(vocab)``.
        num_tags: number of tags.
        embedding_dim: default 16. units: default 16. layer: ``"SimpleRNN"``, ``"LSTM"`` or
            ``"GRU"`` (default). bidirectional: default True; False runs the same layer forwards only.

    Shapes: ids (batch, time) -> logits (batch, time, num_tags).

    Example::

        model = tagging_model(100, 2, bidirectional=False)
        model(torch.tensor([[5, 6, 0]])).shape   # (1, 3, 2)
    """
    # every layer built now (input_size given), so an optimizer made before the first call sees all weights
    recurrent = recurrent_layer_class(layer)(units, return_sequences=True, input_size=embedding_dim)
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
        raise RnnkitError("tag_accuracy has no token to score: tokens matched no real step")
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

    table: torch.Tensor  # buffer (vocab_size,) int64

    def __init__(self, table: torch.Tensor, num_tags: int) -> None:
        super().__init__()
        if isinstance(num_tags, bool) or not isinstance(num_tags, int) or num_tags < 1:
            raise RnnkitError(f"num_tags must be a positive integer, got {num_tags!r}")
        table = torch.as_tensor(table).long().reshape(-1)
        if table.numel() and (int(table.min()) < 0 or int(table.max()) >= num_tags):
            raise RnnkitError(f"table must hold tag indices in [0, {num_tags}), got values outside it")
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
