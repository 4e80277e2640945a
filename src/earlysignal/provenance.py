"""Where linked data came from: the ingest code lists' hash and the link run, carried downstream.

`earlysignal link` writes both into the linked folder's manifest.json (`link_run_id`,
`ingest.code_lists_sha256`, `ingest.code_lists`) and its link quality into link_quality.json. Every
later artefact (feature sidecar, MLflow run tags, audit.json) records the same two values, so an
audit can name the exact code lists and linkage behind a model. Data that was not linked by
`earlysignal link` (e.g. the synthetic borough's true linkage) has neither, and gets None.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def linkage_provenance(data_dir: str | Path) -> dict[str, Any] | None:
    """{'link_run_id', 'code_lists_sha256', 'code_lists': {source: {version, sha256}}, 'quality'} of a linked DIR.

    From DIR/manifest.json, and 'quality' from DIR/link_quality.json (None when absent).

    None when the manifest is absent, unreadable, or carries no link run (data not made by `link`).
    """
    path = Path(data_dir) / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or not manifest.get("link_run_id"):
        return None
    ingest = manifest.get("ingest") or {}
    code_lists = {
        source: {"version": entry.get("version"), "sha256": entry.get("sha256")}
        for source, entry in sorted((ingest.get("code_lists") or {}).items())
        if isinstance(entry, dict)
    }
    quality: dict[str, Any] | None = None
    try:
        # Aggregates only (suppressed and rounded by `link`): safe to carry into the sidecar and the audit.
        quality = json.loads((Path(data_dir) / "link_quality.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        quality = None
    return {
        "link_run_id": str(manifest["link_run_id"]),
        "code_lists_sha256": ingest.get("code_lists_sha256"),
        "code_lists": code_lists,
        "quality": quality,
    }


def provenance_tags(provenance: dict[str, Any] | None) -> dict[str, str]:
    """MLflow run tags for a linkage provenance (empty when the data was not linked by `earlysignal link`)."""
    if not provenance:
        return {}
    return {
        "link_run_id": str(provenance["link_run_id"]),
        "code_lists_sha256": str(provenance.get("code_lists_sha256") or "not recorded"),
    }
