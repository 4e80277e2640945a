"""The case list: what `score` writes for caseworkers beside ranked.csv.

- reasons.parquet: resident_id, reason (1..3), feature, text, contribution: which feature each
  reason on the ranked list came from, so a journey can highlight the events behind it;
- model_features.json: every feature of the model's own spec (source, event types, scope, window,
  aggregate), its sources in spec order and their labels, so a journey can say which records the
  model reads and an explanation can count exactly those;
- case_list.html: the ranked list as one self-contained page (score band, rank, reasons), each
  resident linking to their journey page (made, and its viewing logged, by `earlysignal journey`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from earlysignal.atomic import write_json, write_parquet, write_text
from earlysignal.errors import EarlySignalError
from earlysignal.explain import N_REASONS, reason_sentence
from earlysignal.journey import ReasonFeature
from earlysignal.wording import Wording

REASONS_FILE = "reasons.parquet"
MODEL_FEATURES_FILE = "model_features.json"
CASE_LIST_FILE = "case_list.html"
JOURNEY_DIR = "journeys"
UNAPPROVED = "UNAPPROVED"


def marked(name: str, approved: bool) -> str:
    """The file name as written: unchanged for an approved list, else with -UNAPPROVED before the
    extension (case_list-UNAPPROVED.html), so a list scored with --allow-unapproved says so in every
    file name."""
    if approved:
        return name
    stem, dot, suffix = name.partition(".")
    return f"{stem}-{UNAPPROVED}{dot}{suffix}"


def reason_features(
    ranked: pd.DataFrame,
    contributions: np.ndarray,
    values: pd.DataFrame,
    feature_columns: Sequence[str],
    feature_metadata: dict[str, Any],
) -> pd.DataFrame:
    """resident_id, reason, feature, text, contribution: the feature behind each non-empty reason.

    `values` and `contributions` (pred_contrib, rows x features + bias) are row-aligned with each
    other and hold a `resident_id` column; `ranked` has reason_i / contribution_i. A reason is
    matched to the feature whose contribution equals contribution_i and whose description renders to
    reason_i (failing that, the first feature whose description renders to reason_i), so the mapping
    follows whatever chose the reasons. Raises EarlySignalError
    when a reason matches no feature (the list and the model disagree).
    """
    columns = list(feature_columns)
    contrib = np.asarray(contributions, dtype=float)[:, : len(columns)]
    row_of = pd.Series(np.arange(len(values)), index=values["resident_id"].astype(str).to_numpy())
    by_name = {f["name"]: f for f in feature_metadata.get("features", [])}
    value_matrix = values[columns].to_numpy(dtype=float)
    records = []
    for i in range(1, N_REASONS + 1):
        text_col, contrib_col = f"reason_{i}", f"contribution_{i}"
        if text_col not in ranked.columns:
            continue
        present = ranked[text_col].fillna("").astype(str) != ""
        for rid, text, target in zip(
            ranked.loc[present, "resident_id"].astype(str),
            ranked.loc[present, text_col].astype(str),
            ranked.loc[present, contrib_col].astype(float),
            strict=True,
        ):
            r = int(row_of[rid])
            # The contribution pins the feature down; its rendered text confirms it (and decides when
            # the contribution was rounded on the way, or two features contributed exactly as much).
            candidates = [*np.flatnonzero(np.isclose(contrib[r], target, rtol=1e-9, atol=1e-12)), *range(len(columns))]
            match = next((j for j in candidates
                          if reason_sentence(by_name.get(columns[j], {"name": columns[j]}), value_matrix[r, j]) == text),
                         None)
            if match is None:
                raise EarlySignalError(
                    f"reason {i} of resident {rid} ({text!r}) matches no feature of the model; the ranked list and "
                    "the model disagree, so re-run `earlysignal score`"
                )
            records.append({"resident_id": rid, "reason": i, "feature": columns[match], "text": text,
                            "contribution": float(target)})
    frame = pd.DataFrame(records, columns=["resident_id", "reason", "feature", "text", "contribution"])
    return frame.sort_values(["resident_id", "reason"], kind="stable").reset_index(drop=True)


def score_band(flagged: bool, percentile: float, caseworker: Any) -> str:
    """The band a caseworker sees: the flagged band for the list's top k, else the first configured
    band whose min_percentile the resident's percentile reaches (bands sorted high to low)."""
    if flagged:
        return str(caseworker.flagged_band)
    for band in sorted(caseworker.bands, key=lambda b: -b.min_percentile):
        if percentile >= band.min_percentile:
            return str(band.label)
    return str(caseworker.bands[-1].label)  # unreachable: config requires a band at 0


def journey_filename(resident_id: str, approved: bool = True) -> str:
    """The journey page's file name inside the score folder's journeys/ (IDs are pseudonyms, not paths)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(resident_id))
    return f"{JOURNEY_DIR}/{marked(safe + '.html', approved)}"


def journey_command(resident_id: str, as_of: str, scores_dir: Path, config_path: str | None) -> str:
    """The `earlysignal journey` command line for one resident of a score folder, naming the folder and the
    config the list was scored with (so a copied command opens this list, not the default one)."""
    import shlex

    config = f" --config {shlex.quote(str(config_path))}" if config_path else ""
    return (f"earlysignal journey{config} --scores {shlex.quote(str(scores_dir))} "
            f"--resident {shlex.quote(str(resident_id))} --as-of {as_of}")


def write_case_list(
    out_dir: Path,
    ranked: pd.DataFrame,
    values: pd.DataFrame | None,
    contributions: np.ndarray | None,
    feature_columns: Sequence[str],
    feature_metadata: dict[str, Any],
    spec_config: Any,
    config: Any,
    summary: dict[str, Any],
    *,
    reasons: pd.DataFrame | None = None,
) -> dict[str, Path]:
    """Write reasons.parquet, model_features.json and case_list.html into out_dir; return their paths.

    reasons.parquet is reason_features() of every scored resident with a reason, so it needs the feature
    values and contributions of the whole cohort: pass them (`values`, `contributions`, row-aligned), or pass
    `reasons` already traced (reason_features of each partition, concatenated: scoring per partition), in
    which case `values` and `contributions` are not read. The page itself reads `ranked` only."""
    from earlysignal.report.journey import render_case_list
    from earlysignal.wording import wording_from_config

    if reasons is None:
        if values is None or contributions is None:
            raise ValueError("write_case_list needs either `reasons` or both `values` and `contributions`")
        reasons = reason_features(ranked, contributions, values, feature_columns, feature_metadata)
    else:
        reasons = reasons.sort_values(["resident_id", "reason"], kind="stable").reset_index(drop=True)
    approved = bool(summary.get("approval_checked"))
    rows = case_list_rows(ranked, config.caseworker, approved)
    for row in rows:
        row["command"] = journey_command(row["resident_id"], summary["as_of"], out_dir, summary.get("config_path"))
    wording = wording_from_config(spec_config)
    html = render_case_list(rows, summary, total=len(ranked), wording=wording)
    return {
        "reasons_parquet": write_parquet(reasons, out_dir / marked(REASONS_FILE, approved)),
        "model_features_json": write_json(model_features(spec_config), out_dir / marked(MODEL_FEATURES_FILE, approved)),
        "case_list_html": write_text(html, out_dir / marked(CASE_LIST_FILE, approved)),
    }


@dataclass(frozen=True)
class ModelFeatures:
    """What model_features.json holds: the spec's features by name, its sources in order, its wording."""

    features: dict[str, ReasonFeature]
    sources: list[str]
    labels: Wording

    def wording(self) -> Wording:
        """Labels as the model's spec words them."""
        return self.labels


def model_features(spec_config: Any) -> dict[str, Any]:
    """model_features.json's content for a config carrying the model's spec (imputation flags left out)."""
    from earlysignal.features.spec import feature_definitions
    from earlysignal.wording import wording_from_config

    definitions = [d for d in feature_definitions(spec_config) if not d.is_imputed_flag]
    sources = list(dict.fromkeys(f.source for f in spec_config.features.families))
    return {
        "features": {d.name: ReasonFeature.from_record(d).as_record() for d in definitions},
        "sources": sources,
        "wording": wording_from_config(spec_config).as_record(),
    }


def case_list_rows(ranked: pd.DataFrame, caseworker: Any, approved: bool = True) -> list[dict[str, Any]]:
    """The rows the page lists: everyone flagged, then the next ranks up to caseworker.case_list_rows."""
    ordered = ranked.sort_values("rank", kind="stable")
    limit = max(int(ordered["flagged"].sum()), int(caseworker.case_list_rows))
    rows = []
    for row in ordered.head(limit).itertuples(index=False):
        reasons = [getattr(row, f"reason_{i}") for i in range(1, N_REASONS + 1)]
        rows.append({
            "resident_id": str(row.resident_id),
            "rank": int(row.rank),
            "score": float(row.score),
            "percentile": float(row.percentile),
            "flagged": bool(row.flagged),
            "band": score_band(bool(row.flagged), float(row.percentile), caseworker),
            "reasons": [str(r) for r in reasons if isinstance(r, str) and r],
            "journey": journey_filename(str(row.resident_id), approved),
        })
    return rows


def _summary_path(scores_dir: Path) -> Path | None:
    for name in ("summary.json", marked("summary.json", False)):
        if (scores_dir / name).exists():
            return scores_dir / name
    return None


def score_file(scores_dir: Path, summary: dict[str, Any], key: str, name: str) -> Path | None:
    """A file of a score folder: the one summary.json's outputs name (by file name, so the folder can
    move), else the name marked as the list's approval says, else the plain name; None if none exists."""
    candidates = []
    if key in summary.get("outputs", {}):
        candidates.append(Path(summary["outputs"][key]).name)
    candidates += [marked(name, bool(summary.get("approval_checked"))), name]
    return next((scores_dir / c for c in candidates if (scores_dir / c).exists()), None)


def read_case_list_outputs(scores_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, ModelFeatures, dict[str, Any]]:
    """(ranked, reasons, the model's features, summary) from a score folder; clear errors when missing."""
    summary_path = _summary_path(scores_dir)
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path else {}
    files = {key: score_file(scores_dir, summary, key, name) for key, name in (
        ("ranked_parquet", "ranked.parquet"), ("reasons_parquet", REASONS_FILE),
        ("model_features_json", MODEL_FEATURES_FILE))}
    missing = [name for name, path in (("summary.json", summary_path), *((k, v) for k, v in files.items())) if path is None]
    if missing:
        raise EarlySignalError(
            f"{scores_dir}: no scored list with reasons here (missing {missing}); run "
            "`earlysignal score --as-of DATE` first, or pass --scores with the folder it wrote"
        )
    ranked = pd.read_parquet(files["ranked_parquet"])
    reasons = pd.read_parquet(files["reasons_parquet"])
    raw = json.loads(files["model_features_json"].read_text(encoding="utf-8"))
    try:
        model = ModelFeatures(
            features={name: ReasonFeature.from_record(record) for name, record in raw["features"].items()},
            sources=list(raw["sources"]),
            labels=Wording.from_record(raw["wording"]),
        )
    except (KeyError, TypeError, AttributeError) as error:
        raise EarlySignalError(
            f"{files['model_features_json']} is not as `score` writes it ({error!r}); re-run `earlysignal score`"
        ) from None
    return ranked, reasons, model, summary
