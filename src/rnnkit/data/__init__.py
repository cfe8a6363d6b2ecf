"""Sequence data: windows, chronological splits, scaling, stateful stream batches, text ids (no file I/O)."""

from typing import TYPE_CHECKING

from rnnkit._lazy import lazy_names as _lazy_names

# The names load on first use (PEP 562): the data readers use ``segments`` without importing torch,
# so that ``rnnkit data`` starts without it (issue 20, part 6).
_NAMES = {
    "segments": "rnnkit.data._series",
    "Standardizer": "rnnkit.data.scaling",
    "split": "rnnkit.data.splits",
    "split_per_segment": "rnnkit.data.splits",
    "StreamBatches": "rnnkit.data.streams",
    "stream_batches": "rnnkit.data.streams",
    "Vocabulary": "rnnkit.data.text",
    "pad_sequences": "rnnkit.data.text",
    "Windows": "rnnkit.data.windows",
    "make_windows": "rnnkit.data.windows",
}

if TYPE_CHECKING:
    from rnnkit.data._series import segments
    from rnnkit.data.scaling import Standardizer
    from rnnkit.data.splits import split, split_per_segment
    from rnnkit.data.streams import StreamBatches, stream_batches
    from rnnkit.data.text import Vocabulary, pad_sequences
    from rnnkit.data.windows import Windows, make_windows


__getattr__, __dir__ = _lazy_names("rnnkit.data", _NAMES, globals())

__all__ = [
    "Standardizer",
    "StreamBatches",
    "Vocabulary",
    "Windows",
    "make_windows",
    "pad_sequences",
    "segments",
    "split",
    "split_per_segment",
    "stream_batches",
]
