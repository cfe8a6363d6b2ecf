"""Sequence data: windows, chronological splits, scaling, stateful stream batches, text ids (no file I/O)."""

from rnnkit.data._series import segments
from rnnkit.data.scaling import Standardizer
from rnnkit.data.splits import split, split_per_segment
from rnnkit.data.streams import StreamBatches, stream_batches
from rnnkit.data.text import Vocabulary, pad_sequences
from rnnkit.data.windows import Windows, make_windows

__all__ = ["Standardizer", "StreamBatches", "Vocabulary", "Windows", "make_windows", "pad_sequences", "segments", "split",
           "split_per_segment", "stream_batches"]
