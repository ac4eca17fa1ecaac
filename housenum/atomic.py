"""Write files whole or not at all: to a temporary name in the same folder, renamed when complete.

Every step's outputs (archives, HDF5 files, JSON, CSV, charts, models) go through here, so an
interrupted run never leaves a half-written file under its final name, and a rerun can trust whatever
it finds there. The temporary name is hidden (`.<name>.<pid>.<random>.tmp<suffix>`), lives beside the
target (same file system, so `os.replace` is atomic) and is removed if writing fails. Not
`tempfile.mkstemp`: its 0600 mode would stick to the renamed file; these follow the umask.
"""

from __future__ import annotations

import json
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


def temporary_name(path: Path | str, suffix: str = ".tmp") -> Path:
    """A fresh hidden name beside `path`; `suffix` ends it (some writers choose the format by it)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{suffix}")


@contextmanager
def atomic_path(path: Path | str, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path`, on failure it is removed.

    `suffix` lets writers that pick the format from the extension (matplotlib, Keras) see the real
    one, e.g. `atomic_path("model.keras", suffix=".keras")`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: Path | str, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: Path | str, obj: Any, **dump_args: Any) -> Path:
    """JSON with a trailing newline; numpy scalars become floats. Defaults: indent 2, sorted keys."""
    dump_args.setdefault("indent", 2)
    dump_args.setdefault("sort_keys", True)
    return write_text(path, json.dumps(obj, default=float, **dump_args) + "\n")
