"""The teddy corpus: tags follow the next word, the left context carries no hint, seeds repeat."""

from __future__ import annotations

from collections import Counter

import pytest

from rnnkit.corpora import teddy


def test_tags_follow_the_next_word():
    for sentence in teddy.sentences(300, seed=0):
        words = [w for w, _ in sentence]
        names = [i for i, w in enumerate(words) if w in teddy.AMBIGUOUS]
        assert len(names) == 1
        i = names[0]
        person = words[i + 1] in teddy.SURNAMES
        assert person or words[i + 1] in teddy.THINGS
        expected = ["PERSON" if person and j in (i, i + 1) else "O" for j in range(len(words))]
        assert [g for _, g in sentence] == expected


def test_left_context_is_the_same_for_both_tags():
    # every left template occurs before persons and before things: the left side cannot tell
    seen: dict[str, set[str]] = {}
    tags = Counter()
    for sentence in teddy.sentences(400, seed=0):
        words = [w for w, _ in sentence]
        i = next(j for j, w in enumerate(words) if w in teddy.AMBIGUOUS)
        seen.setdefault(" ".join(words[:i]), set()).add(sentence[i][1])
        tags[sentence[i][1]] += 1
    assert set(seen) == set(teddy.LEFT)
    assert all(v == {"O", "PERSON"} for v in seen.values())
    assert 0.4 <= tags["PERSON"] / 400 <= 0.6


def test_seed_repeats():
    assert teddy.sentences(5, seed=3) == teddy.sentences(5, seed=3)
    assert teddy.sentences(5, seed=3) != teddy.sentences(5, seed=4)


def test_bad_n():
    with pytest.raises(ValueError, match="n must be a positive integer, got 0"):
        teddy.sentences(0)
