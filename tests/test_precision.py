"""Mixed precision and XLA (TrainConfig.precision, jit_compile): training, export in float32, resume across
precisions, the float16 fallback and loss scaling, one-line errors; and forward FLOPs by hand count."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from housenum import config as C  # noqa: E402
from housenum import train as T  # noqa: E402
from housenum.errors import HousenumError  # noqa: E402
from housenum.model import build_model, forward_flops, local_response_norm  # noqa: E402
from housenum.predict import Reader  # noqa: E402
from housenum.train import Trainer, TrainingError  # noqa: E402
from tests.helpers import random_data, tiny_config  # noqa: E402


def one_line(exc) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_a_mixed_bfloat16_run_trains_exports_float32_and_reads_through_the_prediction_path(tmp_path):
    data = random_data(n_train=100, n_eval=20)
    trainer = Trainer(tiny_config(6, precision="mixed_bfloat16"), data, tmp_path / "bf16")
    result = trainer.fit()
    assert result["steps"] == 6 and np.isfinite([r["loss"] for r in trainer.runlog.history]).all()
    assert trainer.model.dtype_policy.name == "mixed_bfloat16"
    assert trainer.model.get_layer("conv1").compute_dtype == "bfloat16"
    out = trainer.model(data.test[0][:2], training=False)
    assert out["length"].dtype == tf.float32 and out["digits"].dtype == tf.float32  # heads compute in float32
    assert keras.mixed_precision.global_policy().name == "float32"  # restored for other models
    assert json.loads((tmp_path / "bf16" / "model.json").read_text())["config"]["train"]["precision"] == "mixed_bfloat16"

    reader = Reader(tmp_path / "bf16")  # the normal prediction path
    assert reader.model.dtype_policy.name == "float32"
    assert {layer.dtype_policy.name for layer in reader.model.layers} == {"float32"}
    texts, conf = reader.read_arrays(data.test[0])
    assert len(texts) == len(data.test[0]) and np.isfinite(conf).all() and ((conf >= 0) & (conf <= 1)).all()
    # the exported float32 copy holds the trained weights: it reads as the bfloat16 model does, to rounding
    bf16 = trainer.model(data.test[0], training=False)["length"].numpy()
    f32 = reader.model(data.test[0], training=False)["length"].numpy()
    np.testing.assert_allclose(f32, bf16, atol=0.05 * np.abs(bf16).max())


def test_an_xla_compiled_step_trains(tmp_path):
    result = Trainer(tiny_config(4, jit_compile=True, every=4), random_data(n_train=100, n_eval=20), tmp_path / "x").fit()
    assert result["steps"] == 4 and np.isfinite(result["valid"]["sequence_accuracy"])


def test_xla_refuses_layers_it_cannot_compile_on_one_line(tmp_path):
    cfg = tiny_config(4, jit_compile=True)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, augment=0.1))
    with pytest.raises(TrainingError) as exc:
        Trainer(cfg, random_data(n_train=100, n_eval=20), tmp_path / "x").fit()
    assert "XLA cannot compile layer(s) shift" in one_line(exc)


def test_bad_precision_is_a_one_line_error():
    with pytest.raises(HousenumError) as exc:
        C.TrainConfig(precision="float16").validate()
    assert one_line(exc) == "precision must be one of float32, mixed_float16, mixed_bfloat16, got 'float16'"
    with pytest.raises(HousenumError, match="jit_compile must be true or false"):
        C.TrainConfig(jit_compile="yes").validate()
    with pytest.raises(HousenumError, match="precision must be one of"):  # a checkpoint's or model.json's config
        C.RunConfig.from_dict({"train": {"precision": "fp8"}}).validate()


def test_the_gpu_preset_is_goodfellow_in_mixed_float16_with_xla_and_falls_back_without_a_gpu():
    gpu, base = C.preset("gpu").validate(), C.goodfellow()
    assert gpu.model == base.model and gpu.data == base.data
    assert (gpu.train.precision, gpu.train.jit_compile, gpu.train.steps) == ("mixed_float16", True, C.GPU_STEPS)
    # the decay stretched with the steps: the rate ends where goodfellow()'s does
    assert gpu.train.decay_steps / gpu.train.steps == pytest.approx(base.train.decay_steps / base.train.steps, rel=1e-3)
    said = []
    cpu = T.fall_back_without_gpu(gpu, said.append, gpus=[])
    assert cpu.train.precision == "float32" and cpu.train.jit_compile and cpu.model == gpu.model
    assert len(said) == 1 and "no GPU visible: training in float32 instead of mixed_float16" in said[0]
    assert T.fall_back_without_gpu(gpu, said.append, gpus=["GPU:0"]) is gpu and len(said) == 1
    bf16 = dataclasses.replace(gpu, train=dataclasses.replace(gpu.train, precision="mixed_bfloat16"))
    assert T.fall_back_without_gpu(bf16, said.append, gpus=[]) is bf16  # bfloat16 runs on CPUs: kept


def test_a_skipped_float16_step_still_counts_as_a_step():
    opt = T.make_optimizer(dataclasses.replace(C.TrainConfig(), precision="mixed_float16", learning_rate=0.1))
    assert isinstance(opt, keras.optimizers.LossScaleOptimizer)
    w = keras.Variable(np.ones(3, np.float32))
    opt.build([w])
    scale = float(opt.dynamic_scale.numpy())
    opt.apply_gradients([(tf.constant([np.inf, 0.0, 0.0]), w)])  # overflowed: skipped, the scale halves
    assert int(opt.iterations.numpy()) == 1 and float(opt.dynamic_scale.numpy()) == scale / 2
    np.testing.assert_array_equal(w.numpy(), np.ones(3))
    opt.apply_gradients([(tf.constant([scale / 2, 0.0, 0.0]), w)])  # the gradient 1, scaled by the loss scale
    assert int(opt.iterations.numpy()) == 2
    np.testing.assert_allclose(w.numpy(), [0.9, 1.0, 1.0], rtol=1e-4)  # lr 0.1 x 0.98 ** (1 / 1000)


@pytest.mark.parametrize("first,then", [("float32", "mixed_float16"), ("mixed_float16", "mixed_bfloat16")])
def test_a_run_resumes_in_another_precision(tmp_path, monkeypatch, first, then):
    """Weights and optimiser state are float32 in every precision: a run begun in mixed_float16 on a GPU
    goes on in float32 or bfloat16 elsewhere, and back (float16 forced here: this CPU has no GPU)."""
    monkeypatch.setattr(T, "fall_back_without_gpu", lambda cfg, log, gpus=None: cfg)
    data = random_data(n_train=100, n_eval=20)
    Trainer(tiny_config(6, precision=first), data, tmp_path / "r").fit()
    said = []
    resumed = Trainer(tiny_config(12, precision=then), data, tmp_path / "r", log=said.append)
    result = resumed.fit()
    assert result["steps"] == 12
    assert any("resumed" in m and "step 6" in m and f"trained in {first}" in m and f"this session in {then}" in m
               for m in said), said
    assert json.loads((tmp_path / "r" / "config.json").read_text())["train"]["precision"] == then


def test_lrn_under_mixed_precision_computes_in_float32_and_returns_the_input_dtype():
    rng = np.random.default_rng(0)
    x32 = tf.constant(np.abs(rng.standard_normal((2, 3, 3, 16))) * 300, tf.float32)  # squares past float16's max
    for dtype in (tf.float16, tf.bfloat16):
        x = tf.cast(x32, dtype)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = local_response_norm(x, 5, 1.0, 0.1, 0.75)
        g = tape.gradient(y, x)
        assert y.dtype == dtype and g.dtype == dtype
        assert np.isfinite(y.numpy().astype(np.float32)).all() and np.isfinite(g.numpy().astype(np.float32)).all()
        want = local_response_norm(tf.cast(x, tf.float32), 5, 1.0, 0.1, 0.75).numpy()
        np.testing.assert_allclose(y.numpy().astype(np.float32), want, rtol=1e-2, atol=1e-3)


def test_forward_flops_equal_the_hand_count():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)  # 8*8 positions x 3*3*1*4
    x = keras.layers.BatchNormalization()(x)  # not counted
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Reshape((4, 16))(x)  # 4 time steps of 16 features
    x = keras.layers.Dense(6)(x)  # at each of the 4 steps: 16 x 6
    x = keras.layers.Bidirectional(keras.layers.GRU(5, return_sequences=True))(x)  # 2 x 4 x (6 + 5) x 15
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(3)(x)  # 40 x 3
    model = keras.Model(inputs, out)
    macs = 8 * 8 * 3 * 3 * 1 * 4 + 4 * 16 * 6 + 2 * 4 * (6 + 5) * 3 * 5 + 40 * 3
    assert forward_flops(model) == 2 * macs
    # the study's network: 3 conv + 5 dense layers, 4,597,632 multiply-adds (27.6 M training FLOPs x 1/3)
    seed = build_model(C.ModelConfig())
    convs = 32 * 32 * 4 * 4 * 1 * 16 + 16 * 16 * 4 * 4 * 16 * 32 + 8 * 8 * 4 * 4 * 32 * 64
    dense = 1024 * 128 + 128 * 64 + 64 * 16 + 16 * 6 + 16 * 50
    assert forward_flops(seed) == 2 * (convs + dense) == 9_195_264


def test_the_flags_override_the_presets_settings():
    import train_and_test_svhn_data as script

    data_cfg = dataclasses.replace(C.DataConfig(), image_size=64)
    gpu = script.config_from_args(script.parse_args(["--preset", "gpu"]), data_cfg).train
    assert (gpu.precision, gpu.jit_compile) == ("mixed_float16", True)
    cpu = script.config_from_args(script.parse_args(["--preset", "gpu", "--no-xla", "--precision", "float32"]),
                                  data_cfg).train
    assert (cpu.precision, cpu.jit_compile, cpu.steps) == ("float32", False, C.GPU_STEPS)
    seed = script.config_from_args(script.parse_args(["--precision", "mixed_bfloat16", "--xla"]), C.DataConfig()).train
    assert (seed.precision, seed.jit_compile) == ("mixed_bfloat16", True)
    assert script.parse_args([]).precision == "float32" and not script.parse_args([]).xla
