"""The course's "Donald Trump" / "Donald Duck" case as a next-word corpus.

Each sentence opens with a political or a cartoon context, then neutral words, then
"donald" and the word that the context calls for: "trump" or "duck". The neutral words
and the endings are shared, so the word right before "donald" says nothing: a bigram
counter is left with the majority answer, while a model that carries the context across
the neutral words gets it right.
"""

from __future__ import annotations

import random

from rnnkit.errors import RnnkitError

POLITICS = (
    "the president said that",
    "at the white house",
    "during the election campaign",
    "the senate voted and",
    "the republican candidate",
    "reporters at the press conference saw",
    "in the presidential debate",
)
CARTOON = (
    "in the cartoon",
    "the disney film showed how",
    "the children watched how",
    "on the comic page",
    "at the theme park",
    "mickey mouse said that",
    "in the animated short",
)
MIDDLE = ("", "yesterday", "once again", "as usual", "to everyone's surprise", "that morning", "after a long pause")
ENDINGS = ("smiled", "waved at the crowd", "spoke loudly", "walked away", "got angry", "laughed", "made a speech")
ANSWERS = {"politics": "trump", "cartoon": "duck"}


def sentences(n: int = 400, seed: int = 0) -> list[list[str]]:
    """``n`` token lists, half political ("... donald trump ..."), half cartoon ("... donald duck ...").

    Args:
        n: number of sentences (default 400).
        seed: the generator's seed (default 0).

    Example::

        sentences(1, seed=2)   # [['in', 'the', 'animated', 'short', 'donald', 'duck', 'smiled']]
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise RnnkitError(f"n must be a positive integer, got {n!r}")
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        topic = "politics" if rng.random() < 0.5 else "cartoon"
        context = rng.choice(POLITICS if topic == "politics" else CARTOON)
        words = f"{context} {rng.choice(MIDDLE)} donald {ANSWERS[topic]} {rng.choice(ENDINGS)}"
        out.append(words.split())
    return out
