"""The donald corpus: the context decides the word after "donald"; the word before it does not."""

from __future__ import annotations

import pytest

from rnnkit.corpora import donald


def test_context_decides_the_answer():
    for words in donald.sentences(300, seed=0):
        i = words.index("donald")
        opening = " ".join(words[:i])
        political = any(opening.startswith(c) for c in donald.POLITICS)
        cartoon = any(opening.startswith(c) for c in donald.CARTOON)
        assert political != cartoon
        assert words[i + 1] == ("trump" if political else "duck")


def test_word_before_donald_carries_no_hint():
    answers: dict[str, set[str]] = {}
    for words in donald.sentences(400, seed=0):
        i = words.index("donald")
        answers.setdefault(words[i - 1], set()).add(words[i + 1])
    # the shared middle words precede both answers; only the no-middle case ends the context
    shared = [w.split()[-1] for w in donald.MIDDLE if w]
    assert all(answers[w] == {"trump", "duck"} for w in shared)


def test_seed_repeats():
    assert donald.sentences(4, seed=1) == donald.sentences(4, seed=1)


def test_bad_n():
    with pytest.raises(ValueError, match="n must be a positive integer, got -1"):
        donald.sentences(-1)
