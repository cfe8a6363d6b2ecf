"""Vocabulary and pad_sequences: golden ids, padding on either side, bad arguments."""

from __future__ import annotations

import pytest
import torch

from rnnkit.data.text import PAD, UNK, Vocabulary, pad_sequences


def test_vocabulary_ids_by_count_then_alphabet():
    vocab = Vocabulary([["b", "a", "c"], ["c", "b"], ["c"]])
    assert vocab.tokens == [PAD, UNK, "c", "b", "a"]
    assert vocab.encode(["a", "c", "zebra"]) == [4, 2, 1]
    assert vocab.decode([4, 0, 2]) == ["a", "c"]
    assert len(vocab) == 5 and "c" in vocab and "zebra" not in vocab


def test_vocabulary_min_count():
    assert Vocabulary([["a", "b", "a"]], min_count=2).tokens == [PAD, UNK, "a"]


def test_vocabulary_bad_min_count():
    with pytest.raises(ValueError, match="min_count must be a positive integer, got 0"):
        Vocabulary([["a"]], min_count=0)


def test_vocabulary_decode_out_of_range():
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 3\) \(the vocabulary size\), got 7"):
        Vocabulary([["a"]]).decode([7])


def test_pad_sequences_post_and_pre():
    assert torch.equal(pad_sequences([[5, 6, 7], [8]]), torch.tensor([[5, 6, 7], [8, 0, 0]]))
    assert torch.equal(pad_sequences([[5, 6, 7], [8]], padding="pre"), torch.tensor([[5, 6, 7], [0, 0, 8]]))
    assert torch.equal(pad_sequences([[5]], length=3), torch.tensor([[5, 0, 0]]))


def test_pad_sequences_bad_padding():
    with pytest.raises(ValueError, match=r"padding must be one of \['post', 'pre'\], got 'left'"):
        pad_sequences([[1]], padding="left")


def test_pad_sequences_length_shorter_than_longest():
    with pytest.raises(ValueError, match=r"length must be an integer >= the longest sequence \(3\), got 2"):
        pad_sequences([[1, 2, 3]], length=2)


def test_pad_sequences_empty_sequence():
    with pytest.raises(
        ValueError, match=r"sequences must be a non-empty list of non-empty id lists, got lengths \[2, 0\]"
    ):
        pad_sequences([[1, 2], []])
