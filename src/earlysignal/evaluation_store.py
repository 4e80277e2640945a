"""The local evaluation store: resident-level evaluation data kept beside the project, never in MLflow.

A training run's test predictions (scores with labels and protected characteristics) and its
explanation sample (features with labels) are resident-level sensitive data. They live in
`<store>/<run_id>/` on the council's own disk, with a retention period; MLflow holds only
aggregates, the model, and `evaluation/store.json`: the files' SHA-256 hashes and expiry, so the
audit can prove it reads exactly what training wrote.

Where the store is: `evaluation.dir` in the config when set (relative to the working directory);
otherwise an `evaluation/` folder beside the local MLflow store (next to `mlflow.db` for a SQLite
tracking URI, `./evaluation/` for anything else). The folder is git-ignored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from earlysignal.atomic import write_json, write_parquet
from earlysignal.errors import EarlySignalError

MANIFEST = "manifest.json"
DEFAULT_ROOT = Path("evaluation")


class EvaluationStoreError(EarlySignalError):
    """Evaluation data is missing, expired or does not match the hash its training run recorded."""


def store_root(configured: str | os.PathLike[str] | None = None, tracking_uri: str | None = None) -> Path:
    """The store folder: the configured one, else `evaluation/` beside a local SQLite tracking store, else ./evaluation."""
    if configured:
        return Path(configured)
    uri = tracking_uri if tracking_uri is not None else os.environ.get("MLFLOW_TRACKING_URI", "")
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).parent / "evaluation"
    return DEFAULT_ROOT


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def write_evaluation(
    root: str | os.PathLike[str],
    run_id: str,
    frames: dict[str, pd.DataFrame],
    retention_days: int,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Write frames as `<root>/<run_id>/<name>.parquet` with a manifest; return the manifest (hashes, expiry).

    The manifest holds no resident-level data and is what MLflow records.
    """
    folder = Path(root) / run_id
    created = now or _now()
    files = {}
    for name, frame in frames.items():
        path = write_parquet(frame, folder / f"{name}.parquet")
        files[name] = {"file": path.name, "sha256": _sha256(path), "rows": int(len(frame))}
    manifest = {
        "run_id": run_id,
        "root": str(Path(root).resolve()),
        "created_at": created.isoformat().replace("+00:00", "Z"),
        "retention_days": int(retention_days),
        "expires_at": (created + dt.timedelta(days=retention_days)).isoformat().replace("+00:00", "Z"),
        "files": files,
    }
    write_json(manifest, folder / MANIFEST)
    return manifest


def _parse(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def read_evaluation(
    manifest: dict[str, Any], root: str | os.PathLike[str] | None = None, now: dt.datetime | None = None
) -> dict[str, pd.DataFrame]:
    """The frames a manifest names, after checking expiry and each file's SHA-256 against the manifest.

    root: where to look (default: the root recorded in the manifest). Raises EvaluationStoreError.
    """
    run_id = manifest["run_id"]
    folder = Path(root or manifest["root"]) / run_id
    expires = _parse(manifest["expires_at"])
    if (now or _now()) >= expires:
        raise EvaluationStoreError(
            f"the evaluation data of run {run_id} expired on {manifest['expires_at']} (evaluation.retention_days "
            f"{manifest['retention_days']}); it is no longer used. Purge it with `earlysignal evaluation-purge` "
            "and retrain to audit again"
        )
    out = {}
    for name, entry in manifest["files"].items():
        path = folder / entry["file"]
        if not path.exists():
            raise EvaluationStoreError(
                f"the evaluation data of run {run_id} is not in the evaluation store: {path} is missing "
                "(purged, or the store is elsewhere: set evaluation.dir in the config). Retrain to audit again"
            )
        actual = _sha256(path)
        if actual != entry["sha256"]:
            raise EvaluationStoreError(
                f"{path} does not match the SHA-256 its training run recorded in MLflow "
                f"(expected {entry['sha256'][:12]}…, found {actual[:12]}…): it was changed after training; "
                "retrain to audit again"
            )
        out[name] = pd.read_parquet(path)
    return out


@dataclass(frozen=True)
class PurgeResult:
    """What a purge removed and kept."""

    purged: list[str]
    kept: list[str]


def purge_expired(root: str | os.PathLike[str], now: dt.datetime | None = None, dry_run: bool = False) -> PurgeResult:
    """Delete every run folder in the store whose retention has passed (or whose manifest is unreadable)."""
    root = Path(root)
    purged, kept = [], []
    if not root.is_dir():
        return PurgeResult([], [])
    moment = now or _now()
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
            expired = moment >= _parse(manifest["expires_at"])
        except (OSError, ValueError, KeyError):
            # Data without a readable expiry cannot be shown to be within retention: remove it.
            expired = True
        if expired:
            purged.append(folder.name)
            if not dry_run:
                shutil.rmtree(folder)
        else:
            kept.append(folder.name)
    return PurgeResult(purged, kept)
