"""Hashes that tie every artefact to exactly what made it."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def stable_hash(obj: Any) -> str:
    """SHA-256 of an object's canonical JSON form (keys sorted), as hex."""
    payload = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def file_sha256(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def directory_sha256(root: str | os.PathLike[str], exclude: tuple[str, ...] = ()) -> str:
    """SHA-256 over every file below a folder (relative path and content), in sorted order."""
    root = Path(root)
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        if any(relative == e or relative.startswith(e.rstrip("/") + "/") for e in exclude):
            continue
        digest.update(relative.encode("utf-8") + b"\0")
        digest.update(file_sha256(path).encode("ascii"))
    return digest.hexdigest()


def python_sources_sha256(root: str | os.PathLike[str], parts: tuple[str, ...]) -> str:
    """SHA-256 over the `.py` files of `parts` (files or folders relative to `root`): each file's relative
    path and content, in sorted order. Bytecode caches and other files are left out, so the hash moves
    only when source changes. A part that does not exist contributes its name only."""
    root = Path(root)
    files: set[Path] = set()
    for part in parts:
        path = root / part
        if path.is_dir():
            files.update(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)
        elif path.is_file() and path.suffix == ".py":
            files.add(path)
    digest = hashlib.sha256()
    digest.update("\0".join(sorted(parts)).encode("utf-8") + b"\0\0")
    for path in sorted(files):
        digest.update(path.relative_to(root).as_posix().encode("utf-8") + b"\0")
        digest.update(file_sha256(path).encode("ascii"))
    return digest.hexdigest()
