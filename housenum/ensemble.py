"""Several trained number readers combined into one: the average of their probabilities, as one model.

Readers trained the same way from different starts (seed, data framing, steps) make different mistakes on
hard crops; averaging what they give each length and each digit reads more of them right than any one
(four readers of one recipe: 90.5 % of the 50,000 synthetic test crops against 87.96-88.20 % for each alone). The combination
is an ordinary Keras model: its outputs are the log of the members' mean softmax, so the decoding, the
abstain threshold, the whole-photo evaluation and `predict_real_images.py` use it as any other reader.
Its own abstain threshold is chosen anew on validation data (an average is less sure than its members).

    python -m housenum.ensemble results/a results/b results/c --data data/syn200k/svhn_32x32.h5 --out results/ensemble

`--weights int8` stores the fully connected layers' weights as 8-bit integers (Keras's quantization): the
four readers of one recipe in 6.6 MB instead of 20.9, reading as the float32 combination does (90.53 % of the 50,000
synthetic test crops against 90.55 %). `--weights int4`: 4.5 MB, 90.56 %, but its crops read at half the speed
(Keras unpacks the 4-bit weights on every call); the shipped reader of five is int4, since in int8 (9.1 MB) it
would not leave room for the finder within the 10 MB the project ships.

`--smooth auto` puts a small Gaussian blur in front of the members (`housenum.model.Smooth`), its width chosen
among SIGMAS on the validation split (0 when no blur reads more of it): readers trained with random shift and
zoom learned from resampled, softer crops than the ones they read. `--smooth S` fixes sigma at S pixels.

An ensemble given as a reader adds its members, each as it is stored (with its record in model.json), so a
shipped reader grows by a new member without its members' run folders:

    python -m housenum.ensemble models/reader results/reader_deep_s6 --data ... --out results/six --weights int4

`PATH:I,J` takes only members I and J (counting from 0, in model.json's order) of the ensemble at PATH.

`--member-weights fit` weighs the members instead of averaging them equally: the weights (positive, summing to
1) that make the validation split's true readings most likely under the mixture, so a stronger member counts
for more without anyone choosing by hand how much.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Sequence

from housenum.errors import HousenumError

_PICK = re.compile(r"^(?P<path>.+):(?P<pick>\d+(?:,\d+)*)$")  # an ensemble's members, by number: models/reader:0,4

HEADS = ("length", "digits")
WEIGHTS = ("float32", "int8", "int4")
MEMBER_WEIGHTS = ("equal", "fit")  # how --member-weights mixes the members
SIGMAS = (0.0, 0.3, 0.45, 0.6, 0.75, 0.9)  # what --smooth auto tries, in pixels


def combine(members: Sequence, name: str = "house_number_ensemble", smooth: float = 0.0,
            member_weights: Sequence[float] | None = None):
    """One model from trained readers of the same input and heads; each member keeps its weights. With
    `smooth` > 0 the input is blurred by a Gaussian of that sigma (pixels) before the members read it;
    `member_weights` (one per member, summing to 1) mixes their probabilities unequally."""
    import keras

    from housenum.model import MeanProbability, Smooth

    shapes = {tuple(m.inputs[0].shape[1:]) for m in members}
    if len(shapes) != 1:
        raise HousenumError(f"the readers take inputs of different shapes ({sorted(shapes)}); combine readers "
                            f"of one input size")
    for m in members:
        if set(m.output) != set(HEADS):
            raise HousenumError(f"{m.name} has outputs {sorted(m.output)}, not the length and digit heads: only "
                                f"length + digit readers combine (not CTC or letters models)")
    if member_weights is not None and len(member_weights) != len(members):
        raise HousenumError(f"{len(member_weights)} member weights for {len(members)} readers")
    image = keras.Input(shapes.pop(), name="image")
    seen = Smooth(smooth, name="smooth")(image) if smooth else image
    outs = [keras.Model(m.inputs, m.output, name=f"member{i}")(seen) for i, m in enumerate(members)]
    outputs = {h: MeanProbability(member_weights, name=h)([o[h] for o in outs]) for h in HEADS}
    return keras.Model(image, outputs, name=name)


def quantize_dense(model, mode: str = "int8") -> None:
    """The fully connected layers' weights as 8-bit ("int8", a scale per output unit) or 4-bit ("int4", a scale
    and zero point per 128 inputs) integers (Keras's quantization, which also quantizes their inputs to 8 bits
    on the fly): most of a reader's weights are in its first fully connected layer, so the file shrinks about
    three- or fivefold; the convolutions stay float32 (Keras quantizes no convolutions)."""
    import keras

    model.quantize(mode, filters=lambda layer: isinstance(layer, keras.layers.Dense)
                   and layer.quantization_mode is None)  # members taken from a quantized ensemble stay as stored


def fit_member_weights(outputs: Sequence[dict], labels) -> tuple[list[float], dict]:
    """The mixture weights (positive, summing to 1) under which `labels`' true readings are most likely,
    each head mixed as MeanProbability mixes it: the mean negative log-likelihood of the true length plus
    the true digits up to it, minimised over softmax-parametrised weights. `outputs`: each member's logits
    ({"length": (N, L+1), "digits": (N, L, 10)}) for the same images. Returns (weights, {"nll_equal",
    "nll_fit"})."""
    import numpy as np
    from scipy.optimize import minimize
    from scipy.special import log_softmax, logsumexp

    labels = np.asarray(labels)
    n = len(labels)
    length, digits = labels[:, 0], labels[:, 1:]
    inside = np.arange(digits.shape[1])[None, :] < length[:, None]
    safe = np.where(inside, digits, 0)
    # per member: log P(true length) (N,) and log P(true digit) at each position (N, L), 0 past the length
    ll_len = np.stack([log_softmax(o["length"], axis=-1)[np.arange(n), length] for o in outputs])
    ll_dig = np.stack([np.take_along_axis(log_softmax(o["digits"], axis=-1), safe[..., None], -1)[..., 0]
                       for o in outputs])

    def nll(theta):
        log_w = log_softmax(theta)
        per_len = logsumexp(ll_len + log_w[:, None], axis=0)
        per_dig = logsumexp(ll_dig + log_w[:, None, None], axis=0)
        return -float((per_len + np.where(inside, per_dig, 0.0).sum(axis=1)).mean())

    equal = np.zeros(len(outputs))
    best = minimize(nll, equal, method="L-BFGS-B")
    weights = np.exp(log_softmax(best.x))
    return [float(w) for w in weights], {"nll_equal": nll(equal), "nll_fit": float(best.fun)}


def build(member_paths: Sequence[Path | str], data_path: Path | str, out_dir: Path | str,
          weights: str = "float32", smooth: float | str = 0.0, member_weights: str = "equal", log=print) -> dict:
    """Combine the readers, score the combination on the data's validation and test splits, choose its
    abstain threshold on validation, and write out_dir/model.keras + model.json. `weights`: "float32",
    "int8" or "int4" (`quantize_dense`, for a file small enough to ship). `smooth`: the blur's sigma in
    pixels, or "auto" to choose it among SIGMAS on validation. `member_weights`: "equal" (the plain mean) or
    "fit" (`fit_member_weights` on validation). Returns the metrics."""
    from housenum.dataset import load_svhn
    from housenum.inference import evaluate
    from housenum.predict import Reader
    from housenum.train import export_model

    if weights not in WEIGHTS:
        raise HousenumError(f"weights: expected one of {', '.join(WEIGHTS)}, got {weights!r}")
    if member_weights not in MEMBER_WEIGHTS:
        raise HousenumError(f"member weights: expected one of {', '.join(MEMBER_WEIGHTS)}, got {member_weights!r}")
    out_dir = Path(out_dir)
    sources = [_source(p) for p in member_paths]
    readers = [Reader(p) for p, _ in sources]
    if any((out_dir / "model.keras").resolve() == r.path.resolve() for r in readers):
        raise HousenumError(f"{out_dir} holds one of the readers: write the ensemble to another folder")
    unpacked = [member for r, (_, pick) in zip(readers, sources)  # (model, its model.json record)
                for member in _unpack(r, weights, pick)]
    if len(unpacked) < 2:
        raise HousenumError("an ensemble needs at least two readers")
    data = load_svhn(data_path, splits=("valid", "test"))  # the members were trained: no train rows needed
    first = readers[0].config
    if (first.model.image_size, first.model.image_width) != (data.config.image_size, data.config.image_width):
        raise HousenumError(f"the readers take {first.model.image_size}-pixel inputs but {data_path} holds "
                            f"{data.config.image_size}-pixel crops")
    members_models = [model for model, _ in unpacked]
    tried = {}
    if smooth == "auto":
        for sigma in SIGMAS:  # in float32, before any quantization: the choice is about the input alone
            tried[sigma] = evaluate(combine(members_models, smooth=sigma), *data.valid)["sequence_accuracy"]
            log(f"smoothing sigma {sigma}: validation {tried[sigma]:.2%}")
        smooth = max(SIGMAS, key=lambda sigma: (tried[sigma], -sigma))  # ties: the least blur
    smooth = float(smooth)
    mix, fit = None, None
    if member_weights == "fit":  # before any new quantization, on the input the members will read
        from housenum.inference import predict_logits
        from housenum.model import Smooth

        seen = Smooth(smooth)(data.valid[0]).numpy() if smooth else data.valid[0]
        mix, fit = fit_member_weights([predict_logits(m, seen) for m in members_models], data.valid[1])
        log(f"member weights {', '.join(f'{w:.3f}' for w in mix)}: validation NLL {fit['nll_fit']:.4f} "
            f"(equal weights {fit['nll_equal']:.4f})")
    model = combine(members_models, smooth=smooth, member_weights=mix)
    if weights != "float32":
        quantize_dense(model, weights)
    out_dir.mkdir(parents=True, exist_ok=True)
    members = [record for _, record in unpacked]
    trained_on = list(dict.fromkeys(str(m["data"]) for m in members))  # what "trained on" says: the members' data
    result = {"data": "; ".join(trained_on), "steps": None, "exported_step": None, "best_valid_step": None,
              "valid": evaluate(model, *data.valid), "test": evaluate(model, *data.test)}
    export_model(model, first, out_dir, result, extra={"ensemble": {
        "members": members, "weights": weights, "scored_on": data.description, "smooth": smooth,
        "smooth_valid": {str(k): v for k, v in tried.items()} or None, "member_weights": mix,
        "member_weights_fit": fit}})
    for m in members:
        log(f"member {m['path']}: test {m['test']:.2%}" if m["test"] is not None else f"member {m['path']}")
    log(f"ensemble of {len(members)}{f', smoothing sigma {smooth}' if smooth else ''}: "
        f"test {result['test']['sequence_accuracy']:.2%}, coverage at 98 % "
        f"{result['test']['coverage_at_98']:.1%}, abstain threshold {result['valid']['threshold_at_98']:.3f} "
        f"(validation); wrote {out_dir / 'model.keras'}")
    return result


def _source(text) -> tuple[Path, list[int] | None]:
    """A reader argument as (path, the ensemble members picked by number, or None for all)."""
    match = _PICK.match(str(text))
    if match and not Path(text).exists():
        return Path(match["path"]), [int(i) for i in match["pick"].split(",")]
    return Path(text), None


def _unpack(reader, weights: str, pick: list[int] | None = None) -> list[tuple]:
    """The members a reader brings, as (model, record): itself, or an ensemble's members (those numbered in
    `pick`, or all) as it stores them. An ensemble's members keep their weights' precision and cannot be
    blurred apart from their ensemble, so one quantized otherwise than `weights` asks, or one that blurs its
    input, is refused. Its own member weights stay behind: the new ensemble mixes all its members as its
    --member-weights says."""
    ens = reader.meta.get("ensemble")
    if not ens:
        if pick is not None:
            raise HousenumError(f"{reader.path} is a single reader, not an ensemble: it has no members to pick")
        return [(reader.model, _member(reader))]
    stored = ens.get("weights", "float32")
    if stored != "float32" and stored != weights:
        raise HousenumError(f"{reader.path} holds {stored} readers: pass --weights {stored} to add to them (an "
                            f"ensemble's members keep the precision they were stored in)")
    if ens.get("smooth"):
        raise HousenumError(f"{reader.path} blurs its input before its members read it (sigma {ens['smooth']}): "
                            f"combine its members' run folders instead")
    records = ens.get("members") or []
    models = [layer for layer in reader.model.layers if layer.name.startswith("member")]
    if len(models) != len(records):
        raise HousenumError(f"{reader.path} has {len(models)} member networks but its model.json records "
                            f"{len(records)}: not an ensemble this module wrote")
    pick = range(len(models)) if pick is None else pick
    if len(set(pick)) != len(pick):
        raise HousenumError(f"{reader.path}: a member picked twice ({','.join(map(str, pick))}) would count double")
    if bad := [i for i in pick if i >= len(models)]:
        raise HousenumError(f"{reader.path} has members 0-{len(models) - 1}: no member {bad[0]}")
    import keras

    # each as a reader of one input (a member inside an ensemble takes a list of one)
    return [(keras.Model(models[i].inputs[0], models[i].output, name=models[i].name),
             {**records[i], "via": str(reader.path)}) for i in pick]


def _member(reader) -> dict:
    """What model.json records of one member: where it is, its seed and steps, its test score and data."""
    metrics = reader.meta.get("metrics") or {}
    return {"path": str(reader.path), "seed": reader.config.train.seed, "steps": metrics.get("steps"),
            "test": (metrics.get("test") or {}).get("sequence_accuracy"), "data": metrics.get("data")}


def _smooth_arg(text: str) -> float | str:
    """--smooth's value, checked before any reader or data is loaded: "auto" or a sigma Smooth accepts."""
    from housenum.model import Smooth

    if text == "auto":
        return text
    try:
        sigma = float(text)
    except ValueError:
        sigma = -1.0
    if not 0 <= sigma <= Smooth.MAX_SIGMA:
        raise HousenumError(f"--smooth: expected auto or a sigma in [0, {Smooth.MAX_SIGMA:g}] pixels, got {text!r}")
    return sigma


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("members", nargs="+", help="run folders or model.keras files of number readers; an ensemble "
                                              "adds its members (PATH:I,J only members I and J)")
    p.add_argument("--data", required=True, help="preprocessed HDF5 file whose validation split chooses the "
                                                 "abstain threshold and whose test split scores the ensemble")
    p.add_argument("--out", required=True, help="folder for model.keras and model.json")
    p.add_argument("--weights", choices=WEIGHTS, default="float32",
                   help="int8 / int4: the fully connected layers' weights as 8- or 4-bit integers, a file a "
                        "third / a fifth the size")
    p.add_argument("--smooth", default="0", metavar="SIGMA|auto",
                   help="blur the input by a Gaussian of SIGMA pixels before the readers read it; auto: the sigma "
                        f"among {', '.join(map(str, SIGMAS))} that reads most of the validation split (default: 0, none)")
    p.add_argument("--member-weights", choices=MEMBER_WEIGHTS, default="equal",
                   help="equal: the members' plain mean; fit: weights that make the validation split's true "
                        "readings most likely")
    args = p.parse_args(argv)
    if not Path(args.data).is_file():
        raise HousenumError(f"no preprocessed data at {args.data}")
    build(args.members, args.data, args.out, args.weights, smooth=_smooth_arg(args.smooth),
          member_weights=args.member_weights)
    return 0


if __name__ == "__main__":
    from housenum import cli

    cli.run(main, sys.argv[1:])
