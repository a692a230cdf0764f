"""Progress bars and step timing shared by the training pipeline and the models."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager

from tqdm.auto import tqdm

# Off by default so the service and library callers print nothing; train.py turns it on.
_enabled = False


def set_progress(enabled: bool) -> None:
    """Turn tqdm progress bars on or off for the whole process (e.g. ``--quiet``)."""
    global _enabled
    _enabled = enabled


def progress_enabled() -> bool:
    """Return whether progress bars are on."""
    return _enabled


def progress(iterable=None, **kwargs):
    """Wrap ``iterable`` in a tqdm bar unless progress bars are turned off."""
    kwargs.setdefault("leave", False)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, disable=not _enabled, **kwargs)


@contextmanager
def timed_step(logger: logging.Logger, description: str):
    """Log ``description`` with the elapsed seconds when the block ends.

    The block may add counts to the log line by setting ``info["detail"]``.
    """
    info = {"detail": "", "seconds": 0.0}
    start = time.perf_counter()
    yield info
    info["seconds"] = time.perf_counter() - start
    detail = f": {info['detail']}" if info["detail"] else ""
    logger.info("%s%s (%.2f s)", description, detail, info["seconds"])
