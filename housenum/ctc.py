"""The sequence reader (`ModelConfig.arch == "ctc"`): everything CTC-specific lives here.

The network reads the crop as columns, left to right: conv blocks (the seed network's conv units) pool the
height away and the width only by 2 per block except the last, so a 96 px wide crop becomes 24 columns;
a bidirectional GRU reads the columns and a dense layer gives per-column logits over the ten digits plus
the CTC blank (`ctc_logits`, (batch, columns, 11), blank last).

Training: `ctc_loss`, tf.nn.ctc_loss of the label's digits (the first `length` of `[length, d1..]`).
Reading: `greedy_decode` takes the most likely class per column, merges repeats, drops blanks, and gives
the probability of that best path as the confidence (a lower bound on the reading's probability, which
sums over every path that collapses to it). It returns the same (length, digits, confidence) triple as
`housenum.metrics.decode`, so whole-sequence accuracy, coverage at 98 % and the abstain threshold apply
unchanged. Nothing counts digits: a reading may be longer than `max_digits` (up to one digit per column).
"""

from __future__ import annotations

from housenum import quiet_tf  # noqa: F401  (first: imports TensorFlow without its banner)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from housenum.config import BLANK, ModelConfig  # noqa: E402
from housenum.errors import HousenumError  # noqa: E402

OUTPUT = "ctc_logits"  # the output key the training loss and inference dispatch on
CTC_BLANK = 10  # class index of the CTC blank: digits 0..9 keep their own index, as in the labels


def columns(cfg: ModelConfig) -> int:
    """Columns the network reads: the width halved (SAME pooling) by every conv block but the last."""
    width = cfg.input_shape[1]
    for _ in range(len(cfg.conv_depths) - 1):
        width = (width + 1) // 2
    return width


def build_ctc_model(cfg: ModelConfig, name: str = "house_number_reader") -> keras.Model:
    """conv blocks -> columns -> (dense per column ->) bidirectional GRU -> per-column logits."""
    from housenum.model import OUTPUT_DTYPE, LocalResponseNorm, conv_unit, input_layers

    # a max_digits number of repeated digits ("11111") needs a blank between each pair: with fewer
    # columns its CTC loss is infinite and training stops
    if columns(cfg) < 2 * cfg.max_digits - 1:
        raise HousenumError(
            f"the ctc reader sees {columns(cfg)} columns in {cfg.input_shape[1]} px width, fewer than the "
            f"{2 * cfg.max_digits - 1} a {cfg.max_digits}-digit number may need; use a wider input (--image-width)"
        )

    init = keras.initializers.GlorotUniform
    inputs, x = input_layers(cfg)
    last = len(cfg.conv_depths)
    for i, depth in enumerate(cfg.conv_depths, start=1):
        for j in range(cfg.convs_per_block):
            x = conv_unit(x, depth, cfg, f"{i}" if cfg.convs_per_block == 1 else f"{i}_{j + 1}", init)
        if not cfg.batch_norm:
            x = LocalResponseNorm(cfg.lrn_radius, cfg.lrn_bias, cfg.lrn_alpha, cfg.lrn_beta, name=f"lrn{i}")(x)
        # the last block keeps the width: more columns than digits leaves room for the blanks CTC needs
        # between repeated digits ("11" needs three columns)
        x = keras.layers.MaxPooling2D((2, 1 if i == last else 2), padding="same", name=f"pool{i}")(x)
    _, h, w, c = x.shape
    x = keras.layers.Permute((2, 1, 3), name="columns")(x)  # (batch, width, height, channels)
    x = keras.layers.Reshape((w, h * c), name="column_features")(x)
    for i, units in enumerate(cfg.fc_units, start=1):
        x = keras.layers.Dense(units, activation="relu", kernel_initializer=init(), name=f"fc{i}")(x)
    x = keras.layers.Bidirectional(keras.layers.GRU(cfg.seq_units, return_sequences=True), name="sequence")(x)
    if cfg.keep_prob < 1.0:
        x = keras.layers.Dropout(1.0 - cfg.keep_prob, name="drop")(x)
    logits = keras.layers.Dense(cfg.num_classes + 1, kernel_initializer=init(), name=OUTPUT, dtype=OUTPUT_DTYPE)(x)
    return keras.Model(inputs, {OUTPUT: logits}, name=name)


def ctc_loss(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Per-example negative log-likelihood of the label's digits. labels: (batch, 1 + max_digits) as
    everywhere, `[length, d1..]`; positions past the length are ignored by label_length."""
    logits = tf.cast(logits, tf.float32)
    n, columns = tf.shape(logits)[0], tf.shape(logits)[1]
    return tf.nn.ctc_loss(
        labels=labels[:, 1:], logits=logits, label_length=labels[:, 0],
        logit_length=tf.fill([n], columns), logits_time_major=False, blank_index=CTC_BLANK,
    )


def greedy_decode(logits: np.ndarray, max_digits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best-path decoding of (N, columns, 11) logits.

    Returns (length (N,), digits (N, max(max_digits, longest reading)) with BLANK past each length,
    confidence (N,) = the probability of the best path: the product over columns of the top class's
    probability). Readings longer than `max_digits` keep all their digits and their true length: the digit
    array widens to the longest reading in the batch, never truncates.
    """
    logits = np.asarray(logits, np.float64)
    z = logits - logits.max(axis=2, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=2, keepdims=True))
    best = log_p.argmax(axis=2)
    conf = np.exp(log_p.max(axis=2).sum(axis=1))
    # a column starts a digit when it is not blank and differs from the column before it
    prev = np.concatenate([np.full((len(best), 1), CTC_BLANK), best[:, :-1]], axis=1)
    starts = (best != CTC_BLANK) & (best != prev)
    length = starts.sum(axis=1).astype(np.int64)
    width = max(max_digits, int(length.max()) if len(length) else 0)
    digits = np.full((len(best), width), BLANK, np.int64)
    rows, cols = np.nonzero(starts)
    # position of each started digit within its row: the running count of starts before it
    position = np.cumsum(starts, axis=1)[rows, cols] - 1
    digits[rows, position] = best[rows, cols]
    return length, digits, conf
