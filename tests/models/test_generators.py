"""One-to-many generation: known sequences reproduced, the loop checked by hand, seeded sampling."""

from __future__ import annotations

import math

import pytest
import torch

from rnnkit.corpora import weather_text
from rnnkit.models.forecasters import Clock
from rnnkit.models.generators import CharRNN, OneToMany, generate, text_windows
from rnnkit.training import Trainer


# --- known answers -------------------------------------------------------------------------------


def test_one_to_many_generates_a_sine_from_its_phase(seed):
    # Start vector (sin φ, cos φ) → sin(φ + 2πk/12), k = 1 … 12: the whole curve is fixed by the
    # start. Measured MAE 0.008 after 30 epochs; tolerance 0.03 (1.5% of the peak-to-peak 2).
    phases = torch.tensor(seed.uniform(0, 2 * math.pi, 400), dtype=torch.float32)
    starts = torch.stack([phases.sin(), phases.cos()], 1)
    k = torch.arange(1, 13)
    curves = torch.sin(phases[:, None] + 2 * math.pi * k / 12)[..., None]  # (400, 12, 1)
    model = OneToMany(2, target_length=12, units=16)
    Trainer(learning_rate=1e-2, epochs=30, batch_size=32, progress=False).fit(model, (starts[:300], curves[:300]))
    generated = generate(model, starts[300:], 12)
    assert generated.shape == (100, 12, 1)
    assert float((generated - curves[300:]).abs().mean()) < 0.03
    # One start vector alone gives (length, outputs).
    torch.testing.assert_close(generate(model, starts[300], 12), generated[0])


def test_char_rnn_learns_a_repeating_string_exactly(seed):
    # "hello world " needs context: after "l" comes "l", "o" or "d" depending on what came before.
    text = "hello world " * 40
    model = CharRNN("".join(sorted(set(text))), embedding_dim=8, units=32)
    Trainer(loss="cross_entropy", learning_rate=1e-2, epochs=12, batch_size=32, progress=False).fit(
        model, text_windows(text, model, 24, shift=3)
    )
    assert generate(model, "h", 35) == "ello world hello world hello world "
    assert generate(model, "wor", 10) == "ld hello w"


def test_char_rnn_learns_abc_exactly_from_one_seed_character(seed):
    model = CharRNN("abc", embedding_dim=4, units=8)
    Trainer(loss="cross_entropy", learning_rate=2e-2, epochs=10, batch_size=16, progress=False).fit(
        model, text_windows("abc" * 60, model, 12)
    )
    assert generate(model, "a", 11) == "bcabcabcabc"
    torch.testing.assert_close(generate(model, torch.tensor([[1], [2]]), 3), torch.tensor([[2, 0, 1], [0, 1, 2]]))


# --- the loop, by hand ---------------------------------------------------------------------------


def test_one_to_many_feeds_each_value_back():
    # A head that always adds 1: from a start temperature of 4, the values 5, 6, 7, ...
    model = OneToMany(3, target_length=5, units=4, target_index=1, clock=Clock([(0, 2, 24)]))
    with torch.no_grad():
        model.head.kernel.zero_()
        model.head.bias.fill_(1.0)
    start = torch.tensor([math.sin(0.1), 4.0, math.cos(0.1)])
    torch.testing.assert_close(generate(model, start, 6)[:, 0], torch.tensor([5.0, 6.0, 7.0, 8.0, 9.0, 10.0]))
    torch.testing.assert_close(model(start[None])[0, :, 0], torch.tensor([5.0, 6.0, 7.0, 8.0, 9.0]))


def _fixed_logits_model(probabilities: list[float]) -> CharRNN:
    # Zero kernel, bias = log p: every step's distribution is p, whatever came before.
    model = CharRNN("xyz", embedding_dim=2, units=2)
    with torch.no_grad():
        model.head.kernel.zero_()
        model.head.bias.copy_(torch.tensor(probabilities).log())
    return model


def test_sampling_follows_the_softmax_and_repeats_with_a_seed():
    model = _fixed_logits_model([0.5, 0.3, 0.2])
    starts = torch.zeros(4000, 1, dtype=torch.long)
    drawn = generate(model, starts, 2, temperature=1.0, seed=3)  # (4000, 2)
    shares = torch.bincount(drawn.flatten(), minlength=3).double() / drawn.numel()
    torch.testing.assert_close(shares, torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64), atol=0.02, rtol=0)
    assert torch.equal(drawn, generate(model, starts, 2, temperature=1.0, seed=3))
    assert not torch.equal(drawn, generate(model, starts, 2, temperature=1.0, seed=4))
    # Temperature 0.5 squares and renormalises: p² / Σp² = 25/38, 9/38, 4/38.
    cold = generate(model, starts, 2, temperature=0.5, seed=3)
    shares = torch.bincount(cold.flatten(), minlength=3).double() / cold.numel()
    torch.testing.assert_close(shares, torch.tensor([25, 9, 4], dtype=torch.float64) / 38, atol=0.02, rtol=0)
    assert generate(model, "y", 4) == "xxxx"  # greedy: the most likely character every time


def test_text_windows_and_codes():
    model = CharRNN(weather_text.VOCABULARY)
    assert model.decode(model.encode("the wind is weak.")) == "the wind is weak."
    x, y = text_windows("abcdef", CharRNN("abcdef"), 3, shift=2)
    assert x.tolist() == [[0, 1, 2], [2, 3, 4]]
    assert y.tolist() == [[1, 2, 3], [3, 4, 5]]
    assert len(weather_text.TEXT) > 1500 and set(weather_text.TEXT) == set(weather_text.VOCABULARY)


# --- invalid arguments ---------------------------------------------------------------------------


class _IdsOnly(torch.nn.Module):
    """A token model with begin and step but no text: no encode or decode."""

    discrete = True

    def begin(self, start):
        return start[:, -1], None

    def step(self, previous, state, k):
        return torch.zeros(previous.shape[0], 2), state


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: CharRNN("aab"), "vocabulary must be a non-empty string of distinct characters, got 'aab'"),
        (lambda: CharRNN("ab", units=0), "units must be a positive integer, got 0"),
        (lambda: CharRNN("ab").encode("abc"), "text holds characters outside the vocabulary: ['c']"),
        (
            lambda: text_windows("ab", CharRNN("ab"), 2),
            "text must hold at least sequence_length + 1 = 3 characters, got 2",
        ),
        (lambda: text_windows("abab", CharRNN("ab"), 2, shift=0), "shift must be a positive integer, got 0"),
        (lambda: OneToMany(3, target_length=0), "target_length must be a positive integer, got 0"),
        (lambda: OneToMany(3, outputs=2, target_index=0), "target_index must name outputs=2 columns, got 0"),
        (
            lambda: OneToMany(3, residual=True),
            "residual=True needs target_index (the start values to add changes to), got None",
        ),
        (lambda: OneToMany(3)(torch.zeros(2, 4)), "start must be (batch, 3) or (batch, 1, 3), got (2, 4)"),
        (lambda: OneToMany(3, target_index=True), "target_index must be column positions in [0, 3), got True"),
        (lambda: generate(CharRNN("ab"), "a", 0), "length must be a positive integer, got 0"),
        (
            lambda: generate(torch.nn.Linear(2, 1), torch.zeros(2), 3),
            "model must have begin(start) and step(previous, state, k) (OneToMany, CharRNN), got Linear",
        ),
        (
            lambda: generate(_IdsOnly(), "a", 3),
            "a text start needs a model with encode and decode (CharRNN), got _IdsOnly",
        ),
        (
            lambda: generate(CharRNN("ab"), "a", 3, temperature=-1.0),
            "temperature must be a finite number >= 0, got -1.0",
        ),
        (
            lambda: generate(OneToMany(2), torch.zeros(2), 3, temperature=0.5),
            "temperature applies to token models only (discrete=True), got 0.5 for OneToMany",
        ),
        (lambda: generate(CharRNN("ab"), "", 3), "start must hold at least one character, got ''"),
        (
            lambda: generate(CharRNN("ab"), torch.zeros(1, 1, 1, dtype=torch.long), 3),
            "start ids must be (s,) or (batch, s) with s >= 1, got shape (1, 1, 1)",
        ),
    ],
)
def test_invalid_arguments(call, message):
    with pytest.raises(ValueError) as info:
        call()
    assert message in str(info.value)
