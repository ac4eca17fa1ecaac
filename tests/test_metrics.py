"""Scoring: whole-sequence accuracy counts a reading only if the length and every digit are right."""

import numpy as np
import pytest

from housenum import metrics as M


def logits_for(readings, max_digits=5):
    """Logits that read exactly the given strings, with confidence rising with `strength`."""
    n = len(readings)
    length = np.full((n, max_digits + 1), -10.0)
    digits = np.full((n, max_digits, 10), -10.0)
    for i, text in enumerate(readings):
        length[i, len(text)] = 10.0
        for j, ch in enumerate(text):
            digits[i, j, int(ch)] = 10.0
    return length, digits


def labels_for(texts, max_digits=5):
    y = np.full((len(texts), 1 + max_digits), 10, np.int32)
    for i, t in enumerate(texts):
        y[i, 0] = len(t)
        y[i, 1:1 + len(t)] = [int(c) for c in t]
    return y


def test_whole_sequence_needs_length_and_every_digit():
    truth = labels_for(["2165", "17", "5", "90"])
    read = logits_for(["2165", "171", "6", "90"])  # right, extra digit, wrong digit, right
    m = M.sequence_metrics(*read, truth)
    assert m["sequence_accuracy"] == pytest.approx(0.5)
    assert m["length_accuracy"] == pytest.approx(0.75)
    # true digits read right at their position: 4 + 2 + 0 + 2 of 9
    assert m["digit_accuracy"] == pytest.approx(8 / 9)
    assert m["per_position_accuracy"]["digit1"] == pytest.approx(3 / 4)
    # by true length: "5" misread (0 of 1), "17" misread and "90" right (1 of 2), "2165" right
    assert m["by_length"] == {"1": {"n": 1, "sequence_accuracy": 0.0}, "2": {"n": 2, "sequence_accuracy": 0.5},
                              "4": {"n": 1, "sequence_accuracy": 1.0}}


def test_digits_past_the_predicted_length_do_not_matter():
    truth = labels_for(["42"])
    length, digits = logits_for(["42"])
    digits[0, 2:, :] = np.random.default_rng(0).normal(size=(3, 10)) * 50  # garbage past the length
    assert M.sequence_metrics(length, digits, truth)["sequence_accuracy"] == 1.0


def test_decode_text_and_confidence():
    length, digits = logits_for(["305"])
    n, d, conf = M.decode(length, digits)
    assert M.reading_to_text(n[0], d[0]) == "305"
    assert 0.99 < conf[0] <= 1.0
    assert d[0, 3] == 10  # blank past the length


def test_coverage_at_accuracy():
    correct = np.array([1, 1, 1, 1, 0, 1, 0, 0, 1, 0], bool)
    conf = np.linspace(1, 0.1, 10)  # already sorted, most confident first
    assert M.coverage_at_accuracy(correct, conf, 1.0) == pytest.approx(0.4)
    assert M.coverage_at_accuracy(correct, conf, 0.8) == pytest.approx(0.6)  # 5 of 6 = 0.83
    assert M.coverage_at_accuracy(correct, conf, 0.0) == pytest.approx(1.0)
    assert M.coverage_at_accuracy(np.zeros(3, bool), np.ones(3), 0.98) == 0.0


def test_threshold_at_accuracy_is_where_coverage_ends():
    from housenum.metrics import coverage_at_accuracy, threshold_at_accuracy

    rng = np.random.default_rng(0)
    conf = rng.random(500)
    correct = rng.random(500) < conf  # more confident, more often right
    t = threshold_at_accuracy(correct, conf, 0.9)
    answered = conf >= t
    assert correct[answered].mean() >= 0.9
    assert answered.mean() == pytest.approx(coverage_at_accuracy(correct, conf, 0.9))
    assert threshold_at_accuracy(np.zeros(5, bool), np.linspace(0, 1, 5), 0.98) == 1.0
