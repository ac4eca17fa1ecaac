"""Import TensorFlow and Keras without their start-up banner on stderr.

TensorFlow 2.21 prints oneDNN and CPU-feature notices from C++ before its logging is initialised, so
TF_CPP_MIN_LOG_LEVEL cannot silence them; they would break the scripts' promise of one clean line on
failure. The banner is written only during the first import, so stderr is pointed at /dev/null for
exactly that import. Import errors still surface as exceptions. HOUSENUM_TF_VERBOSE=1 keeps the banner.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _import_quietly() -> None:
    if "tensorflow" in sys.modules or os.environ.get("HOUSENUM_TF_VERBOSE") == "1":
        return
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # stderr replaced by an object without a descriptor
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    try:
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


_import_quietly()
