"""Words to integer ids and back: a ``Vocabulary`` and ``pad_sequences`` for batches of sentences.

Id 0 is reserved for padding (``Embedding(..., mask_zero=True)`` turns it into the mask that
the recurrent layers skip) and id 1 for words not in the vocabulary.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import torch

from rnnkit.errors import RnnkitError

PAD = "<pad>"
UNK = "<unk>"
PADDINGS = ("post", "pre")


class Vocabulary:
    """A token ↔ id map: id 0 is ``<pad>``, id 1 ``<unk>``, then the tokens by falling count
    (ties alphabetically, so the ids do not depend on the order of the sentences).

    Args:
        sentences: token lists to count.
        min_count: keep tokens seen at least this often (default 1).

    Example::

        vocab = Vocabulary([["teddy", "bears"], ["teddy", "roosevelt"]])
        vocab.encode(["teddy", "bears", "zebra"])   # [2, 3, 1]
        len(vocab)                                  # 5
    """

    def __init__(self, sentences: Iterable[Sequence[str]], min_count: int = 1) -> None:
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise RnnkitError(f"min_count must be a positive integer, got {min_count!r}")
        counts = Counter(token for sentence in sentences for token in sentence)
        kept = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
        self.tokens: list[str] = [PAD, UNK] + [t for t in kept if t not in (PAD, UNK)]
        self._ids = {t: i for i, t in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self._ids

    def index(self, token: str) -> int:
        """The id of ``token`` (1, ``<unk>``, when unknown)."""
        return self._ids.get(token, 1)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Token list -> id list; unknown tokens become 1 (``<unk>``)."""
        return [self.index(t) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Id list -> token list; padding (0) is dropped."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.tokens):
                raise RnnkitError(f"ids must lie in [0, {len(self.tokens)}) (the vocabulary size), got {i}")
            if i:
                out.append(self.tokens[i])
        return out


def pad_sequences(sequences: Sequence[Sequence[int]], length: int | None = None, padding: str = "post") -> torch.Tensor:
    """Id lists of different lengths -> one (batch, length) int64 tensor, padded with 0.

    Args:
        sequences: id lists, each at least one id long.
        length: default None (the longest); longer lists are an error, never cut silently.
        padding: ``"post"`` (default, pad at the end: right padding) or ``"pre"`` (at the start).

    Example::

        pad_sequences([[5, 6, 7], [8]])                   # [[5, 6, 7], [8, 0, 0]]
        pad_sequences([[5, 6, 7], [8]], padding="pre")    # [[5, 6, 7], [0, 0, 8]]
    """
    if padding not in PADDINGS:
        raise RnnkitError(f"padding must be one of {list(PADDINGS)}, got {padding!r}")
    lengths = [len(s) for s in sequences]
    if not lengths or min(lengths) == 0:
        raise RnnkitError(f"sequences must be a non-empty list of non-empty id lists, got lengths {lengths[:10]}")
    longest = max(lengths)
    if length is None:
        length = longest
    elif isinstance(length, bool) or not isinstance(length, int) or length < longest:
        raise RnnkitError(f"length must be an integer >= the longest sequence ({longest}), got {length!r}")
    out = torch.zeros(len(sequences), length, dtype=torch.long)
    for row, s in enumerate(sequences):
        ids = torch.as_tensor(list(s), dtype=torch.long)
        if padding == "post":
            out[row, : len(s)] = ids
        else:
            out[row, length - len(s) :] = ids
    return out
