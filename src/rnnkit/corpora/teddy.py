"""The course's "Teddy Roosevelt" / "Teddy bears" case as a tagging corpus.

Every sentence holds one of the ambiguous first names (``AMBIGUOUS``). Followed by a surname
it names a person, and both words are tagged ``PERSON``; followed by a thing ("teddy bears",
"franklin stoves") every word is ``O``. The words before the name come from the same
templates in both cases, so a model that reads only leftwards is at chance on the name
itself; the next word decides.
"""

from __future__ import annotations

import random

from rnnkit.errors import RnnkitError

TAGS = ("O", "PERSON")
AMBIGUOUS = ("teddy", "franklin", "victoria", "georgia", "jordan", "florence", "chelsea", "austin")
SURNAMES = ("roosevelt", "smith", "jones", "brown", "miller", "clark", "lewis", "walker", "hall", "young")
THINGS = ("bears", "stoves", "sponges", "peaches", "rivers", "paintings", "flowers", "boots", "buns", "maps")
LEFT = (
    "yesterday i met",
    "we talked about",
    "the children loved",
    "everyone saw",
    "she wrote about",
    "they photographed",
    "nobody mentioned",
    "look at",
    "my sister liked",
    "the paper praised",
    "i remember",
    "",
)
RIGHT = (
    "at the fair",
    "in the old photo",
    "last summer",
    "again",
    "",
    "near the river",
    "on television",
    "with great care",
    "every day",
)


def sentences(n: int = 400, seed: int = 0) -> list[list[tuple[str, str]]]:
    """``n`` tagged sentences, each a list of ``(token, tag)`` with tag in ``TAGS``; half name a person.

    Args:
        n: number of sentences (default 400).
        seed: the generator's seed (default 0); the same seed gives the same sentences.

    Example::

        sentences(2, seed=1)[0]
        # [('we', 'O'), ('talked', 'O'), ('about', 'O'), ('franklin', 'PERSON'), ('miller', 'PERSON'),
        #  ('with', 'O'), ('great', 'O'), ('care', 'O')]
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise RnnkitError(f"n must be a positive integer, got {n!r}")
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        person = rng.random() < 0.5
        name = rng.choice(AMBIGUOUS)
        second = rng.choice(SURNAMES if person else THINGS)
        tag = "PERSON" if person else "O"
        left, right = rng.choice(LEFT).split(), rng.choice(RIGHT).split()
        out.append([(w, "O") for w in left] + [(name, tag), (second, tag)] + [(w, "O") for w in right])
    return out
