"""Settings as typed dataclasses, one per concern, each field defaulting to the study's value.

Presets are functions that derive settings instead of repeating them: `seed_network()` is the study's
network and schedule, `smoke()` a CPU run of a few seconds for tests, `improved()` our attempt to beat the
study on a CPU budget, `goodfellow()` Goodfellow et al. 2014's network, `gpu()` the same trained longer on
one GPU in mixed precision with XLA, and `ctc()` a sequence reader of numbers of any length
(`ModelConfig.arch` selects the network). The layer-sweep variants live in
`housenum.sweep`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from housenum.errors import HousenumError

MAX_DIGITS = 5  # the study reads numbers of 1..5 digits; longer ones are dropped in preprocessing
LONGEST = 12  # the most digits any number may have here: generated, kept by preprocessing (--max-digits)
NUM_DIGIT_CLASSES = 10  # digits 0..9 (SVHN stores 0 as label 10; preprocessing maps it to 0)
BLANK = 10  # label value for a digit position past the number's length ("blank")
ARCHS = ("seed", "goodfellow", "ctc")  # the networks ModelConfig.arch selects
# TrainConfig.precision: the Keras dtype policies a network may compute in (weights stay float32 in all)
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


@dataclass(frozen=True)
class DataConfig:
    """How SVHN photos become training arrays (see housenum.preprocess)."""

    image_size: int = 32  # study: 32x32 grayscale crops (the height when image_width is set)
    image_width: int | None = None  # crop width in pixels; None: square (image_size); the ctc reader's is wider
    margin: float = 0.3  # the digits' union box grows by 30 % (15 % a side) before cropping, as Goodfellow et al.
    max_digits: int = MAX_DIGITS  # numbers with more digits are dropped and counted
    valid_size: float = 5684  # rows held out of train for validation (study: 5,684); a value < 1 is a fraction
    use_extra: bool = True  # add the `extra` split to training when it is present
    seed: int = 0  # the validation split is drawn from this seed


@dataclass(frozen=True)
class ModelConfig:
    """The network. Defaults: the study's seed network (3 conv + LRN + max-pool, FC 128/64/16, 6 heads)."""

    # "seed": the study's network; "goodfellow": Goodfellow et al. 2014's deeper one (same heads); "ctc": a
    # left-to-right sequence reader trained with CTC (housenum.ctc), which reads numbers of any length
    arch: str = "seed"
    image_size: int = 32  # input is image_size x image_size x channels (image_size is the height when image_width is set)
    image_width: int | None = None  # input width; None: square
    channels: int = 1  # grayscale
    conv_depths: tuple[int, ...] = (16, 32, 64)  # one conv + LRN + 2x2 max-pool block per entry
    patch: int = 4  # conv kernel size (stride 1, SAME padding)
    lrn_radius: int = 5  # local response normalisation: tf.nn.local_response_normalization defaults
    lrn_bias: float = 1.0
    lrn_alpha: float = 0.1  # study: alpha 0.1
    lrn_beta: float = 0.75  # study: beta 0.75
    fc_units: tuple[int, ...] = (128, 64, 16)  # hidden fully connected ReLU layers
    keep_prob: float = 0.8  # dropout keep probability after each hidden FC layer (1.0 = no dropout)
    batch_norm: bool = False  # batch normalisation instead of LRN after each conv (not in the study)
    convs_per_block: int = 1  # conv layers before each pool (study: 1; VGG-style blocks use 2)
    augment: float = 0.0  # training-only random shift of up to this fraction of the side (0: off)
    # training-only random zoom in or out by up to this fraction (0: off): with the shift, a number framed
    # loosely or tightly (by a user, or by the finder's box) reads as well as a training crop
    augment_zoom: float = 0.0
    # training-only random rotation by up to this many degrees either way (0: off): the generator tilts its
    # numbers when it draws them, this tilts every training crop anew each time it is read
    augment_rotate: float = 0.0
    # training-only random lighting of this strength (0: off; at most 1): a random gamma, an uneven light across
    # the crop and a hard-edged shadow, then the crop standardised again (housenum.model.RandomLighting). Per-image
    # standardisation removes a photo's overall brightness and contrast, not light that varies across it
    augment_lighting: float = 0.0
    # training: a random crop x crop window of each input; inference: the centre one (0: off). Goodfellow
    # et al. crop 54x54 out of 64x64; inside the model, so data and prediction share one input size
    crop: int = 0
    seq_units: int = 128  # ctc: units per direction of the bidirectional GRU that reads the columns
    max_digits: int = MAX_DIGITS  # digit heads (the length head has max_digits + 1 classes); from the data
    num_classes: int = NUM_DIGIT_CLASSES  # classes per digit head
    task: str = "sequence"  # "sequence": length + digit heads (SVHN); "single": one class head (notMNIST)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of the network's input."""
        return self.image_size, self.image_width or self.image_size, self.channels

    def validate(self) -> None:
        if self.arch not in ARCHS:
            raise HousenumError(f"model arch must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        if self.arch != "seed" and self.task != "sequence":
            raise HousenumError(f"the {self.arch} network reads numbers only (task 'sequence'), got task {self.task!r}")
        if self.image_width is not None and self.image_width < 4:
            raise HousenumError(f"model image_width must be at least 4 (or None for square), got {self.image_width}")
        if self.crop and not 4 <= self.crop <= min(self.input_shape[:2]):
            raise HousenumError(f"crop must be 0 or a side between 4 and the input's {min(self.input_shape[:2])}, "
                                f"got {self.crop}")
        if self.seq_units < 1:
            raise HousenumError(f"seq_units must be positive, got {self.seq_units}")
        if self.task not in ("sequence", "single"):
            raise HousenumError(f"model task must be 'sequence' or 'single', got {self.task!r}")
        if self.image_size < 4 or self.channels < 1:
            raise HousenumError(f"model input must be at least 4x4x1, got {self.image_size}x{self.image_size}x{self.channels}")
        if not 0.0 < self.keep_prob <= 1.0:
            raise HousenumError(f"keep_prob must be in (0, 1], got {self.keep_prob}")
        if self.convs_per_block < 1 or not 0.0 <= self.augment < 0.5 or not 0.0 <= self.augment_zoom < 0.5:
            raise HousenumError(
                f"convs_per_block must be >= 1 and augment, augment_zoom in [0, 0.5); got {self.convs_per_block}, "
                f"{self.augment}, {self.augment_zoom}"
            )
        if not 0.0 <= self.augment_rotate <= 45.0 or not 0.0 <= self.augment_lighting <= 1.0:
            raise HousenumError(f"augment_rotate must be in [0, 45] degrees and augment_lighting in [0, 1]; got "
                                f"{self.augment_rotate}, {self.augment_lighting}")
        if any(d <= 0 for d in self.conv_depths + self.fc_units):
            raise HousenumError(f"layer sizes must be positive, got conv {self.conv_depths} fc {self.fc_units}")


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation. Defaults: the study's (SGD 0.05 decaying by 0.98, batch 100, L2 5e-4)."""

    # NOT the study's 100,000-200,000: 60,000 steps keep a default run of the seed network under an hour on a
    # 2-core CPU (about 37 min at 2,700 images/s), by when the decay has already cut the rate to 0.3x
    steps: int = 60000  # training steps (batches)
    batch_size: int = 100  # global batch, split evenly across replicas
    learning_rate: float = 0.05  # initial learning rate
    decay_rate: float = 0.98  # exponential decay: lr * decay_rate ** (step / decay_steps)
    decay_steps: int = 1000  # steps per decay_rate factor
    staircase: bool = False  # decay in steps rather than continuously
    optimizer: str = "sgd"  # "sgd" (study), "momentum" (0.9) or "adam"
    l2: float = 0.0005  # L2 penalty beta * sum(w^2)/2 over all kernels (tf.nn.l2_loss)
    eval_every: int = 500  # validation accuracy every this many steps
    checkpoint_every: int = 1000  # checkpoint every this many steps (an interrupted run loses at most this many)
    eval_batch: int = 1000  # batch for evaluation and prediction
    seed: int = 0  # weights, dropout and data order all derive from it
    # how fast, not what is learned (a run may resume under other values): layers compute in float16 or
    # bfloat16 with float32 weights and float32 logits and loss ("mixed_float16" scales the loss against
    # float16 underflow). float32 by default: float16 is emulated on a CPU, and bfloat16, though faster on
    # a CPU with AVX512-BF16, is untested for accuracy (README "Mixed precision and XLA")
    precision: str = "float32"
    jit_compile: bool = False  # XLA-compile the training step (fuses ops for a GPU; slower on our CPU)

    def validate(self) -> None:
        if self.optimizer not in ("sgd", "momentum", "adam"):
            raise HousenumError(f"optimizer must be sgd, momentum or adam, got {self.optimizer!r}")
        if self.precision not in PRECISIONS:
            raise HousenumError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not isinstance(self.jit_compile, bool):
            raise HousenumError(f"jit_compile must be true or false, got {self.jit_compile!r}")
        for name in ("steps", "batch_size", "decay_steps", "eval_every", "checkpoint_every", "eval_batch"):
            if getattr(self, name) <= 0:
                raise HousenumError(f"{name} must be positive, got {getattr(self, name)}")
        if self.learning_rate <= 0 or not 0 < self.decay_rate <= 1 or self.l2 < 0:
            raise HousenumError(
                f"need learning_rate > 0, 0 < decay_rate <= 1, l2 >= 0; got "
                f"{self.learning_rate}, {self.decay_rate}, {self.l2}"
            )


@dataclass(frozen=True)
class RunConfig:
    """Everything a training run needs to be rebuilt: stored beside every checkpoint and model."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def validate(self) -> "RunConfig":
        self.model.validate()
        self.train.validate()
        # the one place model and data sizes are compared: width None means square on both sides
        model_hw = self.model.input_shape[:2]
        data_hw = (self.data.image_size, self.data.image_width or self.data.image_size)
        if model_hw != data_hw:
            width = "" if self.model.image_width is None else f" --image-width {self.model.image_width}"
            raise HousenumError(
                f"the model takes {_hw(model_hw)} inputs but the data holds {_hw(data_hw)} images "
                f"(preprocess with --image-size {self.model.image_size}{width})"
            )
        if self.model.task == "sequence" and self.model.max_digits != self.data.max_digits:
            raise HousenumError(
                f"the model reads up to {self.model.max_digits} digits but the data's labels hold up to "
                f"{self.data.max_digits} (preprocessed with --max-digits {self.data.max_digits})"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        """The settings a checkpoint or model.json recorded (unknown keys are an error)."""
        return cls(
            model=build_settings(ModelConfig, d.get("model", {})),
            train=build_settings(TrainConfig, d.get("train", {})),
            data=build_settings(DataConfig, d.get("data", {})),
        )


def _hw(hw: tuple[int, int]) -> str:
    """32px for a square side, 32x96px (height x width) otherwise."""
    return f"{hw[0]}px" if hw[0] == hw[1] else f"{hw[0]}x{hw[1]}px (height x width)"


def build_settings(kind, values: dict[str, Any]):
    """`kind(**values)` for a settings dataclass, lists turned back into tuples; unknown keys are an error."""
    known = {f.name: f for f in dataclasses.fields(kind)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise HousenumError(f"unknown {kind.__name__} settings {unknown}; known: {sorted(known)}")
    cooked = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return kind(**cooked)


# ---------------------------------------------------------------------------------------------- presets
def seed_network() -> RunConfig:
    """The study's network and schedule, exactly."""
    return RunConfig()


def smoke(steps: int = 30) -> RunConfig:
    """A CPU run of a few seconds: the seed network, few steps, frequent evaluation and checkpoints."""
    base = seed_network()
    every = max(1, steps // 3)
    return dataclasses.replace(
        base, train=dataclasses.replace(base.train, steps=steps, eval_every=every, checkpoint_every=every)
    )


def improved() -> RunConfig:
    """The project's CPU-budget network, kept as it is beside `goodfellow()` and `ctc()`: our attempt to beat the study on a CPU budget: wider convs with batch norm, a wider FC stack,
    no 16-unit bottleneck, momentum SGD, and training crops shifted and zoomed at random (as Goodfellow
    et al. took random 54x54 crops of 64x64 ones), so that loosely framed numbers read too. Same data
    pipeline and heads, so results compare directly."""
    base = seed_network()
    return dataclasses.replace(
        base,
        model=dataclasses.replace(
            base.model, conv_depths=(32, 64, 128), patch=3, fc_units=(512, 256), batch_norm=True, keep_prob=0.7,
            augment=0.08, augment_zoom=0.2,
        ),
        train=dataclasses.replace(base.train, optimizer="momentum", learning_rate=0.02, decay_rate=0.9, l2=0.0001),
    )


def deep() -> RunConfig:
    """`improved()` with two 3x3 convolutions (each with batch norm) in every block instead of one: 1.48 M
    parameters against 1.29 M, about a third of improved's training speed on a CPU, and the network that
    learned most per step on our synthetic data (validation 86.3 % at 6,000 steps against 79.5-81.1 %; the
    shipped reader's fifth member). A wider improved (48/96/192 units) learned no faster: depth, not width."""
    base = improved()
    return dataclasses.replace(base, model=dataclasses.replace(base.model, convs_per_block=2))


def goodfellow() -> RunConfig:
    """Goodfellow et al. 2014's network: 8 conv layers of 48/64/128/160/192/192/192/192 units with 5x5
    kernels, 2x2 max pooling alternating stride 2 and 1, dropout on every hidden layer, two fully connected
    layers of 3,072 and the same length + digit heads; 64x64 inputs, random 54x54 crops in training and the
    centre one at test (preprocess with --image-size 64).

    Not as published: batch normalisation stands in for their subtractive normalisation (Keras has none)
    and plain ReLU for the first layer's maxout units; they trained asynchronous SGD on many machines,
    this is momentum SGD on one."""
    base = seed_network()
    return dataclasses.replace(
        base,
        model=dataclasses.replace(
            base.model, arch="goodfellow", image_size=64, crop=54, conv_depths=(48, 64, 128, 160, 192, 192, 192, 192),
            patch=5, fc_units=(3072, 3072), batch_norm=True, keep_prob=0.85,
        ),
        train=dataclasses.replace(base.train, optimizer="momentum", learning_rate=0.01, decay_rate=0.9),
        data=dataclasses.replace(base.data, image_size=64),
    )


GPU_STEPS = 200_000  # the study's longest schedule: about 87 epochs of train+extra (about 230,000 rows) at batch 100


def gpu() -> RunConfig:
    """`goodfellow()` for one GPU: layers in float16 with float32 weights and loss scaling
    (mixed_float16), the training step XLA-compiled, and GPU_STEPS steps instead of 60,000 with the decay
    stretched to match, so the rate ends where goodfellow()'s does. Train on train+extra at 64x64
    (preprocess with --image-size 64; extra is used by default). About 3.5 GFLOP of training per image
    (1.17 forward, `bench/bench_arch.py --sizes-only`): 200,000 steps of 100 images are 70 PFLOP,
    about 2 hours at an effective 10 TFLOP/s (arithmetic, not a measurement: no GPU was at hand).

    Without a GPU it still runs: the Trainer swaps mixed_float16 for float32 and says so on one line
    (float16 is emulated on a CPU, 0.18x float32's speed); add --no-xla there (XLA cost 2.5x on our CPU)."""
    base = goodfellow()
    stretch = GPU_STEPS / base.train.steps
    return dataclasses.replace(
        base,
        train=dataclasses.replace(base.train, steps=GPU_STEPS, decay_steps=round(base.train.decay_steps * stretch),
                                  precision="mixed_float16", jit_compile=True),
    )


def ctc() -> RunConfig:
    """A sequence reader: conv blocks read the crop as columns left to right, a bidirectional GRU reads the
    columns, and CTC over the ten digits trains it (housenum.ctc). Nothing in it counts digits, so it reads
    numbers longer than five (up to about one digit per 4 px of width). 32 px high, 96 wide: preprocess
    with --image-size 32 --image-width 96."""
    base = seed_network()
    return dataclasses.replace(
        base,
        model=dataclasses.replace(base.model, arch="ctc", image_width=96, conv_depths=(32, 64, 128), patch=3,
                                  fc_units=(), batch_norm=True, keep_prob=0.8),
        train=dataclasses.replace(base.train, optimizer="momentum", learning_rate=0.01, decay_rate=0.9, l2=0.0001),
        data=dataclasses.replace(base.data, image_width=96),
    )


PRESETS = {"seed": seed_network, "smoke": smoke, "improved": improved, "deep": deep, "goodfellow": goodfellow,
           "gpu": gpu, "ctc": ctc}


def preset(name: str) -> RunConfig:
    if name not in PRESETS:
        raise HousenumError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]()
