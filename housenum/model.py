"""The networks: conv + LRN + max-pool blocks, a fully connected stack, and the reading heads.

`ModelConfig.arch` selects the trunk: "seed" (the study's), "goodfellow" (Goodfellow et al. 2014's eight
5x5 conv layers, pooling stride alternating 2 and 1) or "ctc" (a sequence reader, built in housenum.ctc).
The first two share the fully connected stack and the heads below.

Outputs are logits. For SVHN (`task="sequence"`) the model returns a dict with
`length` (batch, max_digits + 1) and `digits` (batch, max_digits, 10): the study's six softmax heads,
with the five digit heads computed by one layer whose output is split per position, so the number of
heads follows `max_digits` instead of five hand-written copies. For notMNIST (`task="single"`) it returns
`{"class": (batch, num_classes)}`.
"""

from __future__ import annotations

import contextlib

from housenum import quiet_tf  # noqa: F401  (first: imports TensorFlow without its banner)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from housenum.config import ModelConfig  # noqa: E402
from housenum.errors import HousenumError  # noqa: E402


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
    autodiff's extra passes (`bench/bench_train.py --part lrn` times the three).

    Under mixed precision the window sums and powers run in float32 (a float16 sum of squares overflows
    past 65,504, and bfloat16 keeps under three significant digits of n^-beta); the output returns in x's dtype."""
    if x.dtype in (tf.float16, tf.bfloat16):
        return tf.cast(local_response_norm(tf.cast(x, tf.float32), depth_radius, bias, alpha, beta), x.dtype)
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


@keras.saving.register_keras_serializable(package="housenum")
class RandomCentreCrop(keras.layers.Layer):
    """A `size` x `size` window of each image: at a random place per image in training, the centre one at
    inference. Keras's RandomCrop draws one place per batch and resizes the whole image at inference, which
    is not Goodfellow et al.'s centre crop. The seed generator's state is a model variable, so a resumed
    run draws the same crops."""

    def __init__(self, size: int, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.size, self.seed = size, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=False):
        h, w = x.shape[1], x.shape[2]
        if not training:
            top, left = (h - self.size) // 2, (w - self.size) // 2
            return x[:, top:top + self.size, left:left + self.size, :]
        n = tf.shape(x)[0]
        top = keras.random.randint((n, 1), 0, h - self.size + 1, seed=self.seed_generator)
        left = keras.random.randint((n, 1), 0, w - self.size + 1, seed=self.seed_generator)
        steps = tf.range(self.size)[None, :]
        x = tf.gather(x, top + steps, axis=1, batch_dims=1)  # (n, size, w, c)
        return tf.gather(x, left + steps, axis=2, batch_dims=1)  # (n, size, size, c)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size, self.size, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "size": self.size, "seed": self.seed}


def standardize_each(x: tf.Tensor) -> tf.Tensor:
    """Per-image standardisation in the graph, as `housenum.photo.standardize` does it to a crop: zero mean,
    unit variance; a flat image becomes all zeros."""
    mean, var = tf.nn.moments(x, axes=(1, 2, 3), keepdims=True)
    std = tf.sqrt(var)
    return (x - mean) / tf.where(std > 1e-6, std, tf.ones_like(std))


@keras.saving.register_keras_serializable(package="housenum")
class RandomLighting(keras.layers.Layer):
    """Training only: light each standardised crop anew, then standardise it again, as `housenum.photo`
    standardises a photo's crop. Per-image standardisation removes a photo's overall brightness and
    contrast, not light that changes across the number, which real photos have and a drawn one lacks.

    Per image, on the crop rescaled to [0, 1]: a random gamma (2 ** u, u uniform in +-strength), a smooth
    light falling across the crop in a random direction (brightness ratio up to e ** (2.8 strength) from
    corner to corner), and a hard shadow on one side of a random line (darkened by up to
    0.6 strength). At inference the input passes through unchanged. The seed generator's state is a model
    variable, so a resumed run draws the same light."""

    def __init__(self, strength: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.strength, self.seed = strength, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=False):
        if not training or not self.strength:
            return x
        s = self.strength
        n, h, w = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]

        def draw(lo, hi):
            return keras.random.uniform((n, 1, 1, 1), lo, hi, seed=self.seed_generator, dtype=x.dtype)

        lo = tf.reduce_min(x, axis=(1, 2, 3), keepdims=True)
        hi = tf.reduce_max(x, axis=(1, 2, 3), keepdims=True)
        u = (x - lo) / tf.maximum(hi - lo, 1e-6)
        u = tf.pow(u, tf.pow(tf.constant(2.0, x.dtype), draw(-s, s)))
        ys = tf.cast(tf.linspace(-1.0, 1.0, h), x.dtype)[None, :, None, None]
        xs = tf.cast(tf.linspace(-1.0, 1.0, w), x.dtype)[None, None, :, None]
        angle = draw(0.0, 6.283185307179586)
        along = tf.cos(angle) * xs + tf.sin(angle) * ys  # -1.41..1.41 across the crop
        u = u * tf.exp(s * draw(0.0, 1.0) * along)
        edge = angle + draw(0.5, 2.6)  # the shadow's edge crosses the light's direction at a random angle
        cut = tf.cos(edge) * xs + tf.sin(edge) * ys - draw(-0.8, 0.8)
        u = u * (1.0 - 0.6 * s * draw(0.0, 1.0) * tf.cast(cut > 0, x.dtype))
        return standardize_each(u)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "strength": self.strength, "seed": self.seed}


@keras.saving.register_keras_serializable(package="housenum")
class Smooth(keras.layers.Layer):
    """At inference as in training: blur each standardised crop with a fixed Gaussian of `sigma` pixels (edges
    mirrored, as scipy.ndimage.gaussian_filter does), then standardise it again.

    Why: a reader trained with random shift and zoom only ever sees crops resampled by bilinear interpolation,
    which softens them; the crops it reads are not resampled, so they are sharper than anything it learned
    from. A small blur in front closes part of that gap on synthetic crops (four readers of the shipped recipe:
    90.7 % of the validation crops as they are, 91.3 % at sigma 0.6) but not on whole or real photos, which are
    soft already (README, Results). `housenum.ensemble` chooses sigma on validation data. sigma 0 passes the
    input through."""

    MAX_SIGMA = 3.0  # pixels: beyond it a 32-pixel crop is blurred past reading

    def __init__(self, sigma: float, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= sigma <= self.MAX_SIGMA:
            raise HousenumError(f"smoothing sigma must be in [0, {self.MAX_SIGMA:g}] pixels, got {sigma}")
        self.sigma = float(sigma)

    def call(self, x):
        if not self.sigma:
            return x
        r = max(1, int(4 * self.sigma + 0.5))  # scipy's radius: truncate at 4 sigma
        taps = np.exp(-0.5 * (np.arange(-r, r + 1) / self.sigma) ** 2)
        taps = (taps / taps.sum()).astype(np.float32)
        channels = x.shape[-1]
        across = tf.constant(np.tile(taps.reshape(1, -1, 1, 1), (1, 1, channels, 1)), x.dtype)
        down = tf.constant(np.tile(taps.reshape(-1, 1, 1, 1), (1, 1, channels, 1)), x.dtype)
        x = tf.pad(x, [[0, 0], [r, r], [r, r], [0, 0]], mode="SYMMETRIC")
        x = tf.nn.depthwise_conv2d(x, across, [1, 1, 1, 1], "VALID")
        return standardize_each(tf.nn.depthwise_conv2d(x, down, [1, 1, 1, 1], "VALID"))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "sigma": self.sigma}


def conv_unit(x, depth: int, cfg: ModelConfig, suffix: str, init):
    """conv -> (batch norm ->) ReLU, named conv<suffix> / bn<suffix> / relu<suffix>."""
    x = keras.layers.Conv2D(
        depth, cfg.patch, padding="same", activation=None if cfg.batch_norm else "relu",
        kernel_initializer=init(), use_bias=not cfg.batch_norm, name=f"conv{suffix}",
    )(x)
    if cfg.batch_norm:
        x = keras.layers.BatchNormalization(name=f"bn{suffix}")(x)
        x = keras.layers.ReLU(name=f"relu{suffix}")(x)
    return x


def input_layers(cfg: ModelConfig):
    """The input and the training-only augmentation every architecture shares: (inputs, x)."""
    inputs = keras.Input(cfg.input_shape, name="image")
    x = inputs
    if cfg.augment:
        # training only (Keras random layers pass inputs through when training=False); the seed
        # generator's state is a model variable, so resumed runs draw the same shifts
        x = keras.layers.RandomTranslation(cfg.augment, cfg.augment, fill_mode="nearest", name="shift")(x)
    if cfg.augment_zoom:
        # one factor for both axes: the number keeps its aspect ratio, only its framing changes
        x = keras.layers.RandomZoom((-cfg.augment_zoom, cfg.augment_zoom), fill_mode="nearest", name="zoom")(x)
    if cfg.augment_rotate:
        x = keras.layers.RandomRotation(cfg.augment_rotate / 360.0, fill_mode="nearest", name="rotate")(x)
    if cfg.augment_lighting:
        x = RandomLighting(cfg.augment_lighting, name="lighting")(x)
    if cfg.crop:
        x = RandomCentreCrop(cfg.crop, name="crop")(x)
    return inputs, x


# The output layers' dtype in every precision: logits, softmax and loss in float32, as Keras's mixed
# precision guide advises (half-precision logits round the loss and its gradients), and a model's outputs
# are float32 whatever it computed in.
OUTPUT_DTYPE = "float32"


@contextlib.contextmanager
def precision_policy(precision: str = "float32"):
    """Layers built inside compute in `precision` (a Keras dtype policy: "float32", "mixed_float16",
    "mixed_bfloat16"; weights stay float32). Keras reads the policy from one global, so it is restored
    afterwards: models built later in the same process keep float32."""
    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)


def build_model(cfg: ModelConfig, name: str = "house_number_reader", precision: str = "float32") -> keras.Model:
    """Build the network described by `cfg` (validated first), computing in `precision` (see
    `precision_policy`; the outputs are float32 logits in all). Layers are named so the sweep, plots and
    prediction can address them: conv1.., lrn1.., pool1.., fc1.., drop1.., length, digits / class."""
    cfg.validate()
    with precision_policy(precision):
        if cfg.arch == "ctc":
            from housenum.ctc import build_ctc_model  # its specifics live in one module

            return build_ctc_model(cfg, name)
        init = keras.initializers.GlorotUniform  # Xavier, as the study
        inputs, x = input_layers(cfg)
        if cfg.arch == "goodfellow":
            x = _goodfellow_trunk(x, cfg, init)
        else:
            x = _seed_trunk(x, cfg, init)
        return keras.Model(inputs, _fc_and_heads(x, cfg, init), name=name)


def float32_copy(model: keras.Model, cfg: ModelConfig) -> keras.Model:
    """`model` itself when it computes in float32; otherwise the same network built in float32 holding
    the same variables (weights, batch-norm statistics, seed states: all float32 or integer under mixed
    precision too). What is exported and scored, so a saved model reads photos in float32 everywhere."""
    if model.dtype_policy.name == "float32":
        return model
    copy = build_model(cfg, model.name)
    if len(copy.variables) != len(model.variables):
        raise ValueError(f"float32 copy of {model.name} has {len(copy.variables)} variables, not {len(model.variables)}")
    for mine, theirs in zip(copy.variables, model.variables):
        mine.assign(theirs)
    return copy


def _seed_trunk(x, cfg: ModelConfig, init):
    """The study's blocks: conv (x convs_per_block) + LRN (or batch norm) + 2x2 max-pool, stride 2."""
    for i, depth in enumerate(cfg.conv_depths, start=1):
        for j in range(cfg.convs_per_block):
            x = conv_unit(x, depth, cfg, f"{i}" if cfg.convs_per_block == 1 else f"{i}_{j + 1}", init)
        if not cfg.batch_norm:
            x = LocalResponseNorm(cfg.lrn_radius, cfg.lrn_bias, cfg.lrn_alpha, cfg.lrn_beta, name=f"lrn{i}")(x)
        # SAME pooling: identical to VALID on 32x32 input, and takes 28x28 letters to 14, 7, 4
        x = keras.layers.MaxPooling2D(2, strides=2, padding="same", name=f"pool{i}")(x)
    return x


def _goodfellow_trunk(x, cfg: ModelConfig, init):
    """Goodfellow et al. 2014: every conv layer is followed by normalisation, a 2x2 max-pool whose stride
    alternates 2, 1, 2, 1.. (half the layers keep the size: eight layers without shrinking 54 px to
    nothing) and dropout, as they drop out every hidden layer."""
    for i, depth in enumerate(cfg.conv_depths, start=1):
        x = conv_unit(x, depth, cfg, f"{i}", init)
        if not cfg.batch_norm:
            x = LocalResponseNorm(cfg.lrn_radius, cfg.lrn_bias, cfg.lrn_alpha, cfg.lrn_beta, name=f"lrn{i}")(x)
        x = keras.layers.MaxPooling2D(2, strides=2 if i % 2 else 1, padding="same", name=f"pool{i}")(x)
        if cfg.keep_prob < 1.0:
            x = keras.layers.Dropout(1.0 - cfg.keep_prob, name=f"conv_drop{i}")(x)
    return x


@keras.saving.register_keras_serializable(package="housenum")
class MeanProbability(keras.layers.Layer):
    """Logits of the mean of several softmaxes: log(mean_k softmax(logits_k)), over the last axis, or of their
    weighted mean, log(sum_k w_k softmax(logits_k)), with `member_weights` (positive, summing to 1). Several readers'
    heads combined this way decode, and give confidences, as one reader's do."""

    def __init__(self, member_weights=None, **kwargs):
        super().__init__(**kwargs)
        self.member_weights = None if member_weights is None else [float(w) for w in member_weights]

    def call(self, logits):
        stacked = tf.stack([tf.nn.log_softmax(tf.cast(x, tf.float32), axis=-1) for x in logits])
        if self.member_weights is None:
            return tf.reduce_logsumexp(stacked, axis=0) - tf.math.log(float(len(logits)))
        log_w = tf.math.log(tf.constant(self.member_weights, tf.float32))
        return tf.reduce_logsumexp(stacked + tf.reshape(log_w, [-1] + [1] * (len(stacked.shape) - 1)), axis=0)

    def get_config(self):
        return {**super().get_config(), "member_weights": self.member_weights}

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]


def _fc_and_heads(x, cfg: ModelConfig, init) -> dict:
    """Flatten, the fully connected stack with dropout, and the heads: one class head for letters, or
    the length head and max_digits digit heads (one layer, split per position) for numbers."""
    x = keras.layers.Flatten(name="flatten")(x)
    for i, units in enumerate(cfg.fc_units, start=1):
        x = keras.layers.Dense(units, activation="relu", kernel_initializer=init(), name=f"fc{i}")(x)
        if cfg.keep_prob < 1.0:
            x = keras.layers.Dropout(1.0 - cfg.keep_prob, name=f"drop{i}")(x)
    out = OUTPUT_DTYPE
    if cfg.task == "single":
        outputs = {"class": keras.layers.Dense(cfg.num_classes, kernel_initializer=init(), name="class", dtype=out)(x)}
    else:
        length = keras.layers.Dense(cfg.max_digits + 1, kernel_initializer=init(), name="length", dtype=out)(x)
        digits = keras.layers.Dense(cfg.max_digits * cfg.num_classes, kernel_initializer=init(), name="digits",
                                    dtype=out)(x)
        digits = keras.layers.Reshape((cfg.max_digits, cfg.num_classes), name="digit_heads", dtype=out)(digits)
        outputs = {"length": length, "digits": digits}
    return outputs


def kernel_weights(model: keras.Model) -> list:
    """The weights the L2 penalty applies to: every kernel, no biases or normalisation parameters."""
    return [v for v in model.trainable_variables if v.path.endswith("kernel")]


def count_params(model: keras.Model) -> int:
    return int(sum(int(tf.size(v)) for v in model.trainable_variables))


def forward_flops(model: keras.Model) -> int:
    """FLOPs of one image's forward pass (inference) through the layers that hold the arithmetic: 2 per
    multiply-add of every Conv2D, Dense (at every position it is applied to: per column in the ctc reader)
    and GRU (three gates' input and recurrent kernels at every time step; both directions of a
    Bidirectional). Normalisation, pooling, activations, biases and the loss are left out (a few per cent).

    Counted from the layers' shapes rather than by TensorFlow's graph profiler: tf.compat.v1.profiler on
    the frozen inference graph counts only the Conv2D ops of these Keras 3 networks, none of the dense
    layers' MatMuls, and would count a loop's body once."""
    macs = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            macs += _positions(layer.output.shape[1:-1]) * kh * kw * cin * cout
        elif isinstance(layer, keras.layers.Dense):
            macs += _positions(layer.output.shape[1:-1]) * layer.kernel.shape[0] * layer.kernel.shape[1]
        elif isinstance(layer, (keras.layers.GRU, keras.layers.Bidirectional)):
            steps = layer.input.shape[1]
            grus = [layer.forward_layer, layer.backward_layer] if isinstance(layer, keras.layers.Bidirectional) else [layer]
            for gru in grus:
                if not isinstance(gru, keras.layers.GRU):
                    raise ValueError(f"forward_flops counts GRUs only, got {type(gru).__name__} in {layer.name}")
                cell = gru.cell
                macs += steps * (cell.kernel.shape[0] + cell.recurrent_kernel.shape[0]) * cell.kernel.shape[1]
        elif isinstance(layer, keras.layers.RNN) or (layer.weights and not isinstance(layer, _UNCOUNTED)):
            raise ValueError(f"forward_flops cannot count layer {layer.name} ({type(layer).__name__})")
    return 2 * macs


# layers with weights whose arithmetic forward_flops leaves out (per-element scaling)
_UNCOUNTED = (keras.layers.BatchNormalization,)


def _positions(shape) -> int:
    """How many times a layer applies its kernel: the product of its output's spatial (or time) sizes."""
    n = 1
    for d in shape:
        n *= int(d)
    return n
