"""Datasets: the Jena climate weather data, SILSO's sunspots, text files (the only modules that read files or download)."""

from rnnkit.data._series import segments
from rnnkit.datasets.describe import DataReport, describe, load
from rnnkit.datasets.jena import jena_climate, read_jena_file
from rnnkit.datasets.sunspots import read_silso_file, sunspots
from rnnkit.datasets.text import read_corpus, read_prompts

__all__ = [
    "DataReport",
    "describe",
    "jena_climate",
    "load",
    "read_corpus",
    "read_jena_file",
    "read_prompts",
    "read_silso_file",
    "segments",
    "sunspots",
]
