"""Shared plumbing for the thin top-level scripts: argument parsing and one-line failures."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from housenum.errors import HousenumError


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows each option's default and keeps the docstring's example commands as written."""


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
