"""Reading a batch of prepared inputs with a model: logits, scores, readings and their confidence.

Training's evaluation and `predict_real_images.py` both read through here, so a model is scored
exactly as it later reads a user's photos; nothing here trains.
"""

from __future__ import annotations

from housenum import quiet_tf  # noqa: F401  (first: imports TensorFlow without its banner)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from housenum import metrics as M  # noqa: E402
from housenum.config import MAX_DIGITS  # noqa: E402


def predict_logits(model: keras.Model, images: np.ndarray, batch: int = 1000) -> dict[str, np.ndarray]:
    """Logits for every image, inference mode (dropout off, batch-norm moving averages)."""
    fn = _inference_fn(model)
    parts: dict[str, list] = {}
    for start in range(0, len(images), batch):
        out = fn(tf.constant(images[start:start + batch], tf.float32))
        for k, v in out.items():
            parts.setdefault(k, []).append(v.numpy())
    if not parts:
        return {k: np.zeros((0,) + tuple(o.shape[1:]), np.float32) for k, o in model.output.items()}
    return {k: np.concatenate(v) for k, v in parts.items()}


def _inference_fn(model):
    """One traced inference function per model, for any batch size."""
    fn = getattr(model, "_housenum_infer", None)
    if fn is None:
        spec = tf.TensorSpec((None,) + tuple(model.input.shape[1:]), tf.float32)
        fn = tf.function(lambda x: model(x, training=False), input_signature=[spec])
        model._housenum_infer = fn
    return fn


def evaluate(model: keras.Model, images: np.ndarray, labels: np.ndarray, batch: int = 1000) -> dict:
    """The metrics of `housenum.metrics` for these images: sequence metrics for numbers, class accuracy
    for letters."""
    out = predict_logits(model, images, batch)
    if "class" in out:
        return M.class_metrics(out["class"], labels)
    return M.reading_metrics(*decode_readings(out), labels)


def decode_readings(out: dict[str, np.ndarray], max_digits: int = MAX_DIGITS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(length, digits, confidence) from any number reader's logits: the one place the architectures'
    outputs are told apart (CTC's per-column logits, or the length + digit heads)."""
    from housenum import ctc

    if ctc.OUTPUT in out:
        return ctc.greedy_decode(out[ctc.OUTPUT], max_digits)
    return M.decode(out["length"], out["digits"])


def headline(m: dict) -> float:
    """The one number a run is judged by: whole-sequence accuracy (or class accuracy for letters)."""
    return m["sequence_accuracy"] if "sequence_accuracy" in m else m["accuracy"]


def read_numbers(model: keras.Model, images: np.ndarray, batch: int = 64) -> tuple[list[str], np.ndarray]:
    """The number each input shows ("" when the model reads length 0) and the probability the model
    gives to that whole reading."""
    out = predict_logits(model, images, batch)
    length, digits, conf = decode_readings(out)
    return [M.reading_to_text(n, d) for n, d in zip(length, digits)], conf
