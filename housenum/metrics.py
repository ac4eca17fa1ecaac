"""How readings are scored. Pure numpy, so training, the sweep, benchmarks and tests share one definition.

Labels are int arrays (N, 1 + max_digits): `[length, d1, .., d_max]` with `BLANK` (10) past the length.
A reading counts as right only when the length and every digit within it are right (whole-sequence
accuracy, as the study and Goodfellow et al. 2014 score).
"""

from __future__ import annotations

import numpy as np

from housenum.config import BLANK


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    z = logits - logits.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def decode(length_logits: np.ndarray, digit_logits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Most likely reading per image.

    Returns (length (N,), digits (N, max_digits) with BLANK past the length, confidence (N,)), where the
    confidence is P(length) * prod over the read positions of P(digit): the probability the model gives
    to the whole reading, which is what abstaining below a threshold needs.
    """
    p_len = softmax(length_logits)
    p_dig = softmax(digit_logits)
    length = p_len.argmax(axis=1)
    digits = p_dig.argmax(axis=2)
    positions = np.arange(digits.shape[1])[None, :]
    used = positions < length[:, None]
    digits = np.where(used, digits, BLANK)
    conf = p_len[np.arange(len(length)), length] * np.prod(np.where(used, p_dig.max(axis=2), 1.0), axis=1)
    return length, digits, conf


def reading_to_text(length: int, digits: np.ndarray) -> str:
    return "".join(str(int(d)) for d in digits[: int(length)])


def labels_to_text(labels: np.ndarray) -> list[str]:
    return [reading_to_text(row[0], row[1:]) for row in labels]


def sequence_correct(length: np.ndarray, digits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Boolean (N,): length right and every digit inside the true length right."""
    true_len = labels[:, 0]
    true_digits = labels[:, 1:]
    positions = np.arange(true_digits.shape[1])[None, :]
    inside = positions < true_len[:, None]
    digits_ok = np.all((digits == true_digits) | ~inside, axis=1)
    return (length == true_len) & digits_ok


def _answered(correct: np.ndarray, confidence: np.ndarray, target: float) -> tuple[np.ndarray, int]:
    """Readings most confident first, and how many of the first may be answered keeping accuracy >= target."""
    order = np.argsort(-confidence, kind="stable")
    running = np.cumsum(correct[order]) / np.arange(1, len(correct) + 1)
    ok = np.nonzero(running >= target)[0]
    return order, int(ok[-1] + 1) if len(ok) else 0


def coverage_at_accuracy(correct: np.ndarray, confidence: np.ndarray, target: float = 0.98) -> float:
    """Largest share of images the model may answer, most confident first, keeping accuracy >= target.

    Goodfellow et al. 2014 report coverage at 98 % accuracy: the model abstains on the rest.
    """
    if len(correct) == 0:
        return 0.0
    return _answered(correct, confidence, target)[1] / len(correct)


def threshold_at_accuracy(correct: np.ndarray, confidence: np.ndarray, target: float = 0.98) -> float:
    """The lowest confidence at which answering (and abstaining below) keeps accuracy >= target on these
    readings: the threshold a reader chooses on validation data. 1.0 (answer nothing below certainty)
    when no prefix reaches the target."""
    order, k = _answered(correct, confidence, target) if len(correct) else (None, 0)
    return float(confidence[order[k - 1]]) if k else 1.0


def sequence_metrics(length_logits: np.ndarray, digit_logits: np.ndarray, labels: np.ndarray) -> dict:
    """Whole-sequence, length and per-digit accuracy and coverage at 98 % accuracy, as plain floats."""
    return reading_metrics(*decode(length_logits, digit_logits), labels)


def reading_metrics(length: np.ndarray, digits: np.ndarray, conf: np.ndarray, labels: np.ndarray) -> dict:
    """`sequence_metrics` of decoded readings (the triple `decode` returns, from any reader). A digit array
    wider than the labels' (a sequence reader may read more than max_digits) is cut to the labels' width:
    such a reading's length already differs from every label's, so it counts as wrong either way."""
    width = labels.shape[1] - 1
    if digits.shape[1] < width:
        digits = np.pad(digits, ((0, 0), (0, width - digits.shape[1])), constant_values=BLANK)
    digits = digits[:, :width]
    correct = sequence_correct(length, digits, labels)
    true_len = labels[:, 0]
    true_digits = labels[:, 1:]
    inside = np.arange(true_digits.shape[1])[None, :] < true_len[:, None]
    n_digits = int(inside.sum())
    per_position = {}
    for i in range(true_digits.shape[1]):
        mask = inside[:, i]
        if mask.any():
            per_position[f"digit{i + 1}"] = float((digits[mask, i] == true_digits[mask, i]).mean())
    # whole-sequence accuracy of the numbers of each true length: long numbers are few, so the overall
    # figure hides how a reader does on them
    by_length = {str(n): {"n": int((true_len == n).sum()), "sequence_accuracy": float(correct[true_len == n].mean())}
                 for n in np.unique(true_len).tolist()}
    return {
        "n": int(len(labels)),
        "sequence_accuracy": float(correct.mean()) if len(labels) else 0.0,
        "length_accuracy": float((length == true_len).mean()) if len(labels) else 0.0,
        # share of true digits read right at their own position
        "digit_accuracy": float(((digits == true_digits) & inside).sum() / n_digits) if n_digits else 0.0,
        "per_position_accuracy": per_position,
        "by_length": by_length,
        "coverage_at_98": coverage_at_accuracy(correct, conf, 0.98),
        "threshold_at_98": threshold_at_accuracy(correct, conf, 0.98),
    }


def class_metrics(logits: np.ndarray, labels: np.ndarray) -> dict:
    """Single-head accuracy (notMNIST letters)."""
    pred = logits.argmax(axis=1)
    return {"n": int(len(labels)), "accuracy": float((pred == labels).mean()) if len(labels) else 0.0}
