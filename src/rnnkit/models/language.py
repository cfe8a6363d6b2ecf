"""Next-word prediction: windows of token ids, an ``Embedding`` + recurrent model, a bigram baseline.

Each position of each sentence gives one example: the up to ``sequence_length`` words
before it (left-padded with id 0, which ``Embedding(mask_zero=True)`` masks out) and the
word itself as the target class. The model is many-to-one: ``Embedding`` → GRU/LSTM →
``Dense(vocab)`` logits, trained with the ``Trainer``'s ``cross_entropy``.
``BigramModel`` is the baseline, a model too: it counts which word follows which and
predicts from the last word alone.

Example::

    from rnnkit.corpora import donald
    sentences = donald.sentences(400)
    vocab = Vocabulary(sentences)
    x, y = next_word_windows(sentences, vocab, sequence_length=10)
    model = next_word_model(len(vocab))
    Trainer(loss="cross_entropy", epochs=10).fit(model, (x, y))
    predict_next(model, vocab, "in the cartoon once again donald")   # 'duck'
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rnnkit.data.text import Vocabulary, pad_sequences
from rnnkit.errors import RnnkitError, check_positive_int
from rnnkit.layers.core import Dense, Embedding
from rnnkit.layers.recurrent import recurrent_layer_class
from rnnkit.models.sequential import Sequential


def next_word_windows(
    sentences: Sequence[Sequence[str]], vocab: Vocabulary, sequence_length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One example per word after the first: (x (examples, sequence_length) int64 ids, y (examples,) int64).

    Word i of a sentence gives x = words max(0, i − sequence_length) … i − 1, left-padded
    with 0, and y = word i. Windows never cross sentences.

    Example (sequence_length 2, ids a=2, b=3, c=4)::

        sentence a b c  ->  x [[0, 2], [2, 3]],  y [3, 4]
    """
    sequence_length = check_positive_int("sequence_length", sequence_length)
    contexts, targets = [], []
    for sentence in sentences:
        ids = vocab.encode(sentence)
        for i in range(1, len(ids)):
            contexts.append(ids[max(0, i - sequence_length) : i])
            targets.append(ids[i])
    if not contexts:
        raise RnnkitError("sentences must hold at least one sentence of two or more words")
    return pad_sequences(contexts, length=sequence_length, padding="pre"), torch.tensor(targets, dtype=torch.long)


def next_word_model(vocab_size: int, *, embedding_dim: int = 16, units: int = 32, layer: str = "GRU") -> Sequential:
    """``Embedding(vocab_size, embedding_dim, mask_zero=True)`` → ``layer(units)`` → ``Dense(vocab_size)`` logits.

    Shapes: ids (batch, time), left-padded with 0 -> logits (batch, vocab_size).

    Example::

        model = next_word_model(50, units=8)
        model(torch.tensor([[0, 0, 7, 9]])).shape   # (1, 50)
    """
    # every layer built now (input_size given), so an optimizer made before the first call sees all weights
    return Sequential(
        Embedding(vocab_size, embedding_dim, mask_zero=True),
        recurrent_layer_class(layer)(units, input_size=embedding_dim),
        Dense(vocab_size, input_size=units),
    )


def predict_next(
    model: nn.Module, vocab: Vocabulary, context: str | Sequence[str], sequence_length: int | None = None
) -> str:
    """The most likely next word after ``context`` (a string of words or a token list).

    ``sequence_length``: keep only the last that many words (default None: all).
    """
    words = context.split() if isinstance(context, str) else list(context)
    if not words:
        raise RnnkitError("context must hold at least one word, got none")
    if sequence_length is not None:
        words = words[-check_positive_int("sequence_length", sequence_length) :]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(torch.tensor([vocab.encode(words)], dtype=torch.long))
    finally:
        model.train(was_training)
    return vocab.tokens[int(logits[0].argmax())]


class BigramModel(nn.Module):
    """Baseline: the next word is the one that most often followed the last word in training.

    ``fit(x, y)`` counts the pairs (last id of each window, target); ``forward(x)`` returns
    log(count + 1e-3) of every word after x's last id: logits (batch, vocab_size), so it is
    scored like any model. Ties go to the smaller id.

    Example::

        bigram = BigramModel(len(vocab)).fit(x, y)
        bigram(x_test).argmax(-1)
    """

    counts: torch.Tensor  # buffer (vocab_size, vocab_size): counts[a, b] of b after a

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.vocab_size = check_positive_int("vocab_size", vocab_size)
        self.register_buffer("counts", torch.zeros(self.vocab_size, self.vocab_size))

    def fit(self, x: torch.Tensor, y: torch.Tensor) -> BigramModel:
        """Count (x[:, -1], y) pairs; x (examples, time) left-padded ids, y (examples,)."""
        self.counts.zero_()
        self.counts.index_put_((x[:, -1], y), torch.ones(len(y)), accumulate=True)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.counts[x[:, -1]] + 1e-3).log()


def next_word_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, after: int | None = None) -> float:
    """Share of windows whose most likely next word is y; with ``after`` (an id), only windows ending in it."""
    chosen = torch.ones(len(y), dtype=torch.bool) if after is None else x[:, -1] == after
    if not bool(chosen.any()):
        raise RnnkitError(f"next_word_accuracy has no window to score: none ends in id {after}")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            predicted = model(x[chosen]).argmax(-1)
    finally:
        model.train(was_training)
    return float((predicted == y[chosen]).double().mean())
