"""Tagging: padded ids/tags, the ignored padding in the loss, and the right-context task where a
Bidirectional tagger beats the same tagger run forwards only."""

from __future__ import annotations

import math

import pytest
import torch

from rnnkit.corpora import teddy
from rnnkit.models.taggers import IGNORE_INDEX, tag_accuracy, tagging_dataset, tagging_model
from rnnkit.data.text import Vocabulary
from rnnkit.training import Trainer
from rnnkit.training.losses import get_loss


def test_tagging_dataset_golden():
    data = tagging_dataset([[("teddy", "PERSON"), ("roosevelt", "PERSON")], [("bears", "O")]])
    assert data.vocab.tokens == ["<pad>", "<unk>", "bears", "roosevelt", "teddy"]
    assert torch.equal(data.ids, torch.tensor([[4, 3], [2, 0]]))
    assert torch.equal(data.tags, torch.tensor([[1, 1], [0, IGNORE_INDEX]]))
    assert torch.equal(data.mask, torch.tensor([[True, True], [True, False]]))
    assert data.tag_names == ("O", "PERSON")


def test_tagging_dataset_reuses_a_vocabulary():
    vocab = Vocabulary([["teddy", "bears"]])
    data = tagging_dataset([[("teddy", "O"), ("zebra", "O")]], vocab=vocab, tag_names=teddy.TAGS)
    assert data.ids.tolist() == [[vocab.index("teddy"), 1]]


def test_tagging_dataset_unknown_tag():
    with pytest.raises(ValueError, match=r"tags must be among tag_names \['O', 'PERSON'\], got \['LOC'\]"):
        tagging_dataset([[("paris", "LOC")]], tag_names=teddy.TAGS)


def test_tagging_dataset_empty_sentence():
    with pytest.raises(ValueError, match=r"sentences must be a non-empty list of non-empty \(token, tag\) lists"):
        tagging_dataset([[("a", "O")], []])


def test_tagging_model_bad_layer():
    with pytest.raises(ValueError, match=r"layer must be one of \['SimpleRNN', 'LSTM', 'GRU'\], got 'RNN'"):
        tagging_model(10, 2, layer="RNN")


def test_cross_entropy_leaves_padded_steps_out():
    # two real steps with equal logits (loss log 2 each); the padded step is badly wrong but ignored
    logits = torch.tensor([[[0.0, 0.0], [0.0, 0.0], [50.0, -50.0]]])
    tags = torch.tensor([[0, 1, IGNORE_INDEX]])
    assert math.isclose(float(get_loss("cross_entropy")(logits, tags)), math.log(2), rel_tol=1e-6)


def test_tagger_ignores_padding(seed):
    model = tagging_model(20, 2, units=4)
    ids = torch.tensor([[5, 6, 7, 0, 0], [5, 6, 7, 8, 9]])
    torch.testing.assert_close(model(ids)[0, :3], model(ids[:1, :3])[0], atol=1e-6, rtol=0)


def test_tag_accuracy_needs_a_token():
    data = tagging_dataset([[("a", "O")]])
    with pytest.raises(ValueError, match="tag_accuracy has no token to score: tokens matched no real step"):
        tag_accuracy(tagging_model(len(data.vocab), 1), data, tokens=["teddy"])


def test_bidirectional_beats_forwards_only_on_right_context(seed):
    """On held-out sentences, the ambiguous first names ("teddy" in "teddy roosevelt" / "teddy
    bears") are tagged right by the Bidirectional GRU ≥ 95% of the time (measured 100%), while
    the same GRU run forwards only, which cannot see the next word, stays near chance, ≤ 65%
    (measured 49.5%) although it tags ≥ 90% of all tokens right (measured 92.3%)."""
    train_sentences = teddy.sentences(300, seed=0)
    seen = {tuple(s) for s in train_sentences}
    held_out = [s for s in teddy.sentences(300, seed=1) if tuple(s) not in seen]
    assert len(held_out) > 250
    train = tagging_dataset(train_sentences, tag_names=teddy.TAGS)
    test = tagging_dataset(held_out, vocab=train.vocab, tag_names=teddy.TAGS)
    accuracy = {}
    for bidirectional in (True, False):
        model = tagging_model(len(train.vocab), len(teddy.TAGS), units=16, bidirectional=bidirectional)
        trainer = Trainer(loss="cross_entropy", epochs=20, batch_size=32, learning_rate=1e-2, progress=False, seed=0)
        trainer.fit(model, (train.ids, train.tags))
        accuracy[bidirectional] = (tag_accuracy(model, test, tokens=teddy.AMBIGUOUS), tag_accuracy(model, test))
    assert accuracy[True][0] >= 0.95
    assert accuracy[False][0] <= 0.65
    assert accuracy[True][0] - accuracy[False][0] >= 0.3
    assert accuracy[False][1] >= 0.9
