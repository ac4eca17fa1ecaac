"""The network: conv + LRN + max-pool blocks, a fully connected stack, and the reading heads.

Outputs are logits. For SVHN (`task="sequence"`) the model returns a dict with
`length` (batch, max_digits + 1) and `digits` (batch, max_digits, 10): the study's six softmax heads,
with the five digit heads computed by one layer whose output is split per position, so the number of
heads follows `max_digits` instead of five hand-written copies. For notMNIST (`task="single"`) it returns
`{"class": (batch, num_classes)}`.
"""

from __future__ import annotations

from housenum import quiet_tf  # noqa: F401  (first: imports TensorFlow without its banner)

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from housenum.config import ModelConfig  # noqa: E402


def lrn_band(channels: int, depth_radius: int, dtype=tf.float32) -> tf.Tensor:
    """(C, C) matrix with B[i, j] = 1 where |i - j| <= depth_radius: `x**2 @ B` is LRN's window sum over
    channels, clipped at the edges exactly as tf.nn.local_response_normalization clips it."""
    i = tf.range(channels)
    return tf.cast(tf.abs(i[:, None] - i[None, :]) <= depth_radius, dtype)


def _neg_power(n: tf.Tensor, beta: float) -> tf.Tensor:
    """n ** -beta; the study's beta 0.75 as rsqrt(n) * sqrt(rsqrt(n)), much cheaper than pow on CPU."""
    if beta == 0.75:
        r = tf.math.rsqrt(n)
        return r * tf.sqrt(r)
    if beta == 0.5:
        return tf.math.rsqrt(n)
    return tf.pow(n, -beta)


def local_response_norm(x: tf.Tensor, depth_radius: int, bias: float, alpha: float, beta: float) -> tf.Tensor:
    """Same values and gradients as tf.nn.local_response_normalization (NHWC, window over the last axis),
    computed as matrix products with a constant band matrix. TensorFlow's own LRN kernel and its gradient
    are a plain loop on CPU and cost more than half of the seed network's training step; the matrix
    products run in oneDNN's GEMM, and the hand-written gradient reuses the forward's n^-beta instead of
    autodiff's extra passes (`bench/bench_train.py --part lrn` times the three)."""
    channels = x.shape[-1]
    band = lrn_band(channels, depth_radius, x.dtype)  # symmetric, so B^T = B in the gradient

    @tf.custom_gradient
    def lrn(x):
        flat = tf.reshape(x, (-1, channels))
        n = bias + alpha * tf.matmul(tf.square(flat), band)
        scale = _neg_power(n, beta)
        out = flat * scale

        def grad(g):
            g = tf.reshape(g, (-1, channels))
            # dL/dx_i = g_i n_i^-beta - 2 alpha beta x_i sum_j B_ij g_j x_j n_j^(-beta-1)
            inner = tf.matmul(g * out / n, band)  # out / n = x n^(-beta-1)
            return tf.reshape(g * scale - (2.0 * alpha * beta) * flat * inner, tf.shape(x))

        return tf.reshape(out, tf.shape(x)), grad

    return lrn(x)


@keras.saving.register_keras_serializable(package="housenum")
class LocalResponseNorm(keras.layers.Layer):
    """tf.nn.local_response_normalization as a layer (Keras 3 has none built in), computed by
    `local_response_norm` (same values and gradients, several times faster on CPU)."""

    def __init__(self, depth_radius=5, bias=1.0, alpha=0.1, beta=0.75, **kwargs):
        super().__init__(**kwargs)
        self.depth_radius, self.bias, self.alpha, self.beta = depth_radius, bias, alpha, beta

    def call(self, x):
        return local_response_norm(x, self.depth_radius, self.bias, self.alpha, self.beta)

    def get_config(self):
        return {
            **super().get_config(),
            "depth_radius": self.depth_radius,
            "bias": self.bias,
            "alpha": self.alpha,
            "beta": self.beta,
        }


def build_model(cfg: ModelConfig, name: str = "house_number_reader") -> keras.Model:
    """Build the network described by `cfg` (validated first). Layers are named so the sweep, plots and
    prediction can address them: conv1.., lrn1.., pool1.., fc1.., drop1.., length, digits / class."""
    cfg.validate()
    init = keras.initializers.GlorotUniform  # Xavier, as the study
    inputs = keras.Input((cfg.image_size, cfg.image_size, cfg.channels), name="image")
    x = inputs
    if cfg.augment:
        # training only (Keras random layers pass inputs through when training=False); the seed
        # generator's state is a model variable, so resumed runs draw the same shifts
        x = keras.layers.RandomTranslation(cfg.augment, cfg.augment, fill_mode="nearest", name="shift")(x)
    if cfg.augment_zoom:
        # one factor for both axes: the number keeps its aspect ratio, only its framing changes
        x = keras.layers.RandomZoom((-cfg.augment_zoom, cfg.augment_zoom), fill_mode="nearest", name="zoom")(x)
    for i, depth in enumerate(cfg.conv_depths, start=1):
        for j in range(cfg.convs_per_block):
            suffix = f"{i}" if cfg.convs_per_block == 1 else f"{i}_{j + 1}"
            x = keras.layers.Conv2D(
                depth, cfg.patch, padding="same", activation=None if cfg.batch_norm else "relu",
                kernel_initializer=init(), use_bias=not cfg.batch_norm, name=f"conv{suffix}",
            )(x)
            if cfg.batch_norm:
                x = keras.layers.BatchNormalization(name=f"bn{suffix}")(x)
                x = keras.layers.ReLU(name=f"relu{suffix}")(x)
        if not cfg.batch_norm:
            x = LocalResponseNorm(cfg.lrn_radius, cfg.lrn_bias, cfg.lrn_alpha, cfg.lrn_beta, name=f"lrn{i}")(x)
        # SAME pooling: identical to VALID on 32x32 input, and takes 28x28 letters to 14, 7, 4
        x = keras.layers.MaxPooling2D(2, strides=2, padding="same", name=f"pool{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for i, units in enumerate(cfg.fc_units, start=1):
        x = keras.layers.Dense(units, activation="relu", kernel_initializer=init(), name=f"fc{i}")(x)
        if cfg.keep_prob < 1.0:
            x = keras.layers.Dropout(1.0 - cfg.keep_prob, name=f"drop{i}")(x)
    if cfg.task == "single":
        outputs = {"class": keras.layers.Dense(cfg.num_classes, kernel_initializer=init(), name="class")(x)}
    else:
        length = keras.layers.Dense(cfg.max_digits + 1, kernel_initializer=init(), name="length")(x)
        digits = keras.layers.Dense(cfg.max_digits * cfg.num_classes, kernel_initializer=init(), name="digits")(x)
        digits = keras.layers.Reshape((cfg.max_digits, cfg.num_classes), name="digit_heads")(digits)
        outputs = {"length": length, "digits": digits}
    return keras.Model(inputs, outputs, name=name)


def kernel_weights(model: keras.Model) -> list:
    """The weights the L2 penalty applies to: every kernel, no biases or normalisation parameters."""
    return [v for v in model.trainable_variables if v.path.endswith("kernel")]


def count_params(model: keras.Model) -> int:
    return int(sum(int(tf.size(v)) for v in model.trainable_variables))
