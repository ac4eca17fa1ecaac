"""LocalResponseNorm: the band-matrix formulation equals tf.nn.local_response_normalization in values and
gradients, and the layer survives a Keras save/load."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from housenum.config import ModelConfig  # noqa: E402
from housenum.model import LocalResponseNorm, build_model, local_response_norm, lrn_band  # noqa: E402

# float32: the two sum the window in different orders, so they agree to rounding, not bit for bit
RTOL, ATOL = 2e-5, 2e-6


def _values_and_grads(fn, x, g, **kw):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x, **kw)
    return y.numpy(), tape.gradient(y, x, output_gradients=g).numpy()


@pytest.mark.parametrize("channels", [1, 3, 16, 40])  # smaller and larger than the widest window (11)
@pytest.mark.parametrize("depth_radius,bias,alpha,beta", [
    (5, 1.0, 0.1, 0.75),  # the study's settings
    (2, 1.0, 1e-4, 0.75),  # AlexNet-like
    (0, 2.0, 0.5, 0.75),  # window of one channel
    (1, 1.0, 0.3, 0.5),  # beta 0.5: the rsqrt branch
    (3, 0.5, 0.2, 1.3),  # any other beta: the general pow branch
    (7, 1.0, 0.05, 0.0),  # beta 0: the identity
])
def test_matches_tf_lrn_in_values_and_gradients(channels, depth_radius, bias, alpha, beta):
    rng = np.random.default_rng(channels * 100 + depth_radius)
    # ReLU-like inputs as in the network, plus negatives (LRN squares them) and large values (n >> 1)
    x = rng.standard_normal((4, 5, 6, channels)) * rng.choice([0.1, 1.0, 8.0], channels)
    x = tf.constant(x, tf.float32)
    g = tf.constant(rng.standard_normal(x.shape).astype(np.float32))
    kw = dict(depth_radius=depth_radius, bias=bias, alpha=alpha, beta=beta)
    want_y, want_dx = _values_and_grads(tf.nn.local_response_normalization, x, g, **kw)
    got_y, got_dx = _values_and_grads(local_response_norm, x, g, **kw)
    np.testing.assert_allclose(got_y, want_y, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(got_dx, want_dx, rtol=RTOL, atol=ATOL)


def test_gradient_matches_finite_differences():
    # independent of TensorFlow's LRN gradient: central differences in float64 of the layer's own formula
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 1, 2, 7)) * 2
    g = rng.standard_normal(x.shape)
    kw = dict(depth_radius=2, bias=1.0, alpha=0.3, beta=0.75)
    _, dx = _values_and_grads(local_response_norm, tf.constant(x, tf.float32), tf.constant(g, tf.float32), **kw)
    eps, num = 1e-6, np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += eps
        down[i] -= eps
        f_up = np.sum(g * local_response_norm(tf.constant(up), **kw).numpy())
        f_down = np.sum(g * local_response_norm(tf.constant(down), **kw).numpy())
        num[i] = (f_up - f_down) / (2 * eps)
    np.testing.assert_allclose(dx, num, rtol=1e-4, atol=1e-5)


def test_band_matrix_is_the_clipped_window():
    band = lrn_band(6, 2).numpy()
    assert band[0].tolist() == [1, 1, 1, 0, 0, 0]  # clipped at the first channel
    assert band[3].tolist() == [0, 1, 1, 1, 1, 1]
    np.testing.assert_array_equal(band, band.T)


def test_works_on_unknown_batch_and_spatial_sizes():
    fn = tf.function(lambda x: local_response_norm(x, 5, 1.0, 0.1, 0.75),
                     input_signature=[tf.TensorSpec((None, None, None, 16), tf.float32)])
    for shape in [(1, 3, 3, 16), (7, 2, 9, 16)]:
        x = tf.constant(np.random.default_rng(len(shape)).standard_normal(shape).astype(np.float32))
        np.testing.assert_allclose(fn(x).numpy(), tf.nn.local_response_normalization(x, 5, 1.0, 0.1, 0.75).numpy(),
                                   rtol=RTOL, atol=ATOL)


def test_layer_round_trips_through_keras_save_and_load(tmp_path):
    layer = LocalResponseNorm(3, 2.0, 0.2, 0.5, name="lrn_x")
    assert LocalResponseNorm.from_config(layer.get_config()).get_config() == layer.get_config()
    model = build_model(ModelConfig())
    x = tf.constant(np.random.default_rng(2).standard_normal((3, 32, 32, 1)).astype(np.float32))
    want = model(x, training=False)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    lrn = loaded.get_layer("lrn1")
    assert isinstance(lrn, LocalResponseNorm)
    assert (lrn.depth_radius, lrn.bias, lrn.alpha, lrn.beta) == (5, 1.0, 0.1, 0.75)
    got = loaded(x, training=False)
    for k in want:
        np.testing.assert_array_equal(got[k].numpy(), want[k].numpy())
