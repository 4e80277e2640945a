"""Atomic file output: write to a temporary file beside the target, then rename.

A reader never sees a half-written file, and a crash leaves the previous file intact.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto the target on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates files readable by the owner only; give the result the usual permissions.
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_parquet(frame: pd.DataFrame, target: str | os.PathLike[str]) -> Path:
    """Write a DataFrame as Parquet atomically (no index, zstd-compressed)."""
    with atomic_path(target) as tmp:
        frame.to_parquet(tmp, index=False, compression="zstd")
    return Path(target)


def write_csv(frame: pd.DataFrame, target: str | os.PathLike[str]) -> Path:
    """Write a DataFrame as UTF-8 CSV atomically."""
    with atomic_path(target) as tmp:
        frame.to_csv(tmp, index=False)
    return Path(target)


def write_text(text: str, target: str | os.PathLike[str]) -> Path:
    """Write text (UTF-8) atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_json(obj: Any, target: str | os.PathLike[str]) -> Path:
    """Write JSON atomically, keys sorted so the same object gives the same bytes."""
    return write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", target)


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str], name: str) -> Iterator[None]:
    """Hold an exclusive lock on `folder`/`name` (created with the folder if missing) for the block: one writer at
    a time appends to a chained file (the approval ledger, the release register). Blocks until it is free."""
    import fcntl

    Path(folder).mkdir(parents=True, exist_ok=True)
    with open(Path(folder) / name, "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
