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


@keras.saving.register_keras_serializable(package="housenum")
class LocalResponseNorm(keras.layers.Layer):
    """tf.nn.local_response_normalization as a layer (Keras 3 has none built in)."""

    def __init__(self, depth_radius=5, bias=1.0, alpha=0.1, beta=0.75, **kwargs):
        super().__init__(**kwargs)
        self.depth_radius, self.bias, self.alpha, self.beta = depth_radius, bias, alpha, beta

    def call(self, x):
        return tf.nn.local_response_normalization(
            x, depth_radius=self.depth_radius, bias=self.bias, alpha=self.alpha, beta=self.beta
        )

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
