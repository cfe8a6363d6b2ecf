"""A short weather diary written for rnnkit: a character corpus for one-to-many text generation.

``TEXT`` holds plain lower-case sentences about the weather at a station on a roof, with
repeated phrasing (the way a diary repeats itself), so a small character-level GRU learns
its words in a minute on a CPU. ``VOCABULARY`` lists its characters, sorted.

Example::

    from rnnkit.corpora import weather_text
    model = CharRNN(weather_text.VOCABULARY)
"""

from __future__ import annotations

TEXT = """\
monday. the morning is cold and clear. the wind comes from the west and the sky is blue.
at noon the sun is warm on the roof and the temperature rises to twelve degrees.
in the evening the clouds come in from the west and the wind turns to the south.
tuesday. the morning is grey and wet. rain falls on the roof and the wind is weak.
at noon the rain stops and the sky is grey. the temperature stays at eight degrees.
in the evening the sky clears and the air is cold and still.
wednesday. the morning is cold and foggy. the fog lies on the river and the wind is still.
at noon the fog lifts and the sun is warm on the roof. the temperature rises to ten degrees.
in the evening the wind comes from the east and the sky is clear.
thursday. the morning is clear and cold. frost lies on the roof and the wind is weak.
at noon the sun is warm and the temperature rises to eleven degrees.
in the evening the clouds come in from the west and the rain begins.
friday. the morning is wet and windy. rain falls on the roof and the wind is strong from the west.
at noon the rain stops and the wind turns to the north. the temperature stays at seven degrees.
in the evening the sky clears and the stars come out over the river.
saturday. the morning is cold and clear. the wind is weak and the sky is blue.
at noon the sun is warm on the roof and the temperature rises to thirteen degrees.
in the evening the air is still and the sky is clear.
sunday. the morning is grey and still. the clouds lie low over the river.
at noon the clouds break and the sun is warm on the roof. the temperature rises to twelve degrees.
in the evening the wind comes from the west and the clouds come in again.
"""

VOCABULARY = "".join(sorted(set(TEXT)))
