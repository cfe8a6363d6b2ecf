"""Next-word prediction: windows, the bigram baseline, and the "donald trump" / "donald duck"
case where the GRU uses context that a bigram counter cannot."""

from __future__ import annotations

import pytest
import torch

from rnnkit.corpora import donald
from rnnkit.models.language import BigramModel, next_word_accuracy, next_word_model, next_word_windows, predict_next
from rnnkit.data.text import Vocabulary
from rnnkit.training import Trainer


def test_windows_golden():
    vocab = Vocabulary([["a", "b", "c", "d"]])  # a=2, b=3, c=4, d=5
    x, y = next_word_windows([["a", "b", "c", "d"], ["d", "a"]], vocab, sequence_length=2)
    assert x.tolist() == [[0, 2], [2, 3], [3, 4], [0, 5]]
    assert y.tolist() == [3, 4, 5, 2]


def test_windows_bad_sequence_length():
    with pytest.raises(ValueError, match="sequence_length must be a positive integer, got 0"):
        next_word_windows([["a", "b"]], Vocabulary([["a", "b"]]), 0)


def test_windows_need_two_words():
    with pytest.raises(ValueError, match="sentences must hold at least one sentence of two or more words"):
        next_word_windows([["a"]], Vocabulary([["a"]]), 3)


def test_bigram_golden():
    # after id 2: id 3 twice, id 4 once -> 3; after id 4: only 2
    x = torch.tensor([[0, 2], [1, 2], [0, 2], [3, 4]])
    y = torch.tensor([3, 3, 4, 2])
    bigram = BigramModel(5).fit(x, y)
    assert bigram.counts[2].tolist() == [0, 0, 0, 2, 1]
    assert bigram(torch.tensor([[4, 2], [0, 4]])).argmax(-1).tolist() == [3, 2]
    assert next_word_accuracy(bigram, x, y) == 0.75


def test_bigram_bad_vocab_size():
    with pytest.raises(ValueError, match="vocab_size must be a positive integer, got 0"):
        BigramModel(0)


def test_next_word_model_bad_layer():
    with pytest.raises(ValueError, match=r"layer must be one of \['SimpleRNN', 'LSTM', 'GRU'\], got 'gru'"):
        next_word_model(10, layer="gru")


def test_predict_next_empty_context():
    with pytest.raises(ValueError, match="context must hold at least one word, got none"):
        predict_next(next_word_model(5), Vocabulary([["a"]]), "")


def test_accuracy_after_unseen_id():
    with pytest.raises(ValueError, match="next_word_accuracy has no window to score: none ends in id 7"):
        next_word_accuracy(BigramModel(9), torch.tensor([[1, 2]]), torch.tensor([3]), after=7)


def test_rnn_uses_context_that_a_bigram_cannot(seed):
    """After "donald" on held-out sentences: the GRU picks "trump" or "duck" from the opening
    words ≥ 90% of the time (measured 100%); the bigram counter, which sees only "donald",
    cannot beat the majority share (measured: both 50%)."""
    train_sentences = donald.sentences(300, seed=0)
    seen = {tuple(s) for s in train_sentences}
    held_out = [s for s in donald.sentences(200, seed=1) if tuple(s) not in seen]
    vocab = Vocabulary(train_sentences)
    x, y = next_word_windows(train_sentences, vocab, sequence_length=10)
    x_test, y_test = next_word_windows(held_out, vocab, sequence_length=10)
    after = vocab.index("donald")
    answers = y_test[x_test[:, -1] == after]
    majority = max(float((answers == vocab.index(w)).double().mean()) for w in ("trump", "duck"))
    assert len(answers) > 100 and majority <= 0.6

    bigram = BigramModel(len(vocab)).fit(x, y)
    assert next_word_accuracy(bigram, x_test, y_test, after=after) <= majority

    model = next_word_model(len(vocab), units=32)
    Trainer(loss="cross_entropy", epochs=20, batch_size=64, learning_rate=1e-2, progress=False, seed=0).fit(
        model, (x, y)
    )
    assert next_word_accuracy(model, x_test, y_test, after=after) >= 0.9
    assert predict_next(model, vocab, "in the cartoon once again donald") == "duck"
    assert predict_next(model, vocab, "the president said that once again donald") == "trump"
