"""Shared plumbing for the thin top-level scripts: argument parsing and one-line failures."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from housenum.errors import HousenumError


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows each option's default and keeps the docstring's example commands as written. A help text
    that states its default itself, or an option without one, gets no "(default: ...)" added."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default is None or action.default is False or "default" in text:
            return text
        return super()._get_help_string(action)


def make_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser whose description is the script's docstring (the commands to copy)."""
    return argparse.ArgumentParser(description=doc, formatter_class=HelpFormatter, allow_abbrev=False)


def run(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> None:
    """Run a script's main(); turn expected failures into 'error: ...' on one line and exit status 1.

    Ctrl-C exits 130 with a one-line note: every step writes to temporary names and renames only when
    complete (partial downloads stay as <archive>.part to be resumed; training resumes from its last
    checkpoint), so nothing half-written is ever taken for finished work.
    """
    try:
        status = main(argv)
    except HousenumError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        sys.exit(1)
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted: completed work is kept; run the same command again to continue", file=sys.stderr)
        sys.exit(130)
    sys.exit(status or 0)


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {value}")
    return value


# The schedule flags shared by training and the layer sweep: (flag, TrainConfig field, type, help).
SCHEDULE_FLAGS = (
    ("--batch-size", "batch_size", positive_int, "global batch size"),
    ("--learning-rate", "learning_rate", float, "initial learning rate"),
    ("--decay-rate", "decay_rate", float, "exponential decay factor"),
    ("--decay-steps", "decay_steps", positive_int, "steps per decay factor"),
    ("--l2", "l2", float, "L2 penalty beta on all kernels"),
    ("--eval-every", "eval_every", positive_int, "validation (and sweep test) accuracy every N steps"),
    ("--seed", "seed", int, "seed of weights, dropout and data order"),
)


def add_schedule_flags(group, defaults, steps_default: int) -> None:
    """--steps, the SCHEDULE_FLAGS with `defaults` (a TrainConfig) as their defaults, and --max-train."""
    group.add_argument("--steps", type=positive_int, default=steps_default, help="training steps")
    for flag, name, kind, text in SCHEDULE_FLAGS:
        group.add_argument(flag, type=kind, default=getattr(defaults, name), help=text)
    group.add_argument("--max-train", type=int, default=0, help="use only the first N training rows (0: all)")


def schedule_from_args(args, base):
    """`base` (a TrainConfig) with --steps and the SCHEDULE_FLAGS applied."""
    import dataclasses

    return dataclasses.replace(base, steps=args.steps,
                               **{name: getattr(args, name) for _, name, _, _ in SCHEDULE_FLAGS})
