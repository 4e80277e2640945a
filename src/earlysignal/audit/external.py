"""Audit scores from elsewhere (an incumbent vendor's tool, a manual list) with the same fairness audit.

A board comparing current practice with the model needs both audited the same way on the same
rows. `audit_scores_file` reads a CSV or Parquet file of (resident_id, as_of, score, label, and
flagged, or a capacity to flag the top of each as_of), joins each resident's protected
characteristics from the linked data as they stood at as_of, and runs `audit_fairness` with the
same small-number rules as the model's audit. Its report names whose scores it audits.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from earlysignal.audit.disclosure import is_small, published_count, published_figure, published_rate
from earlysignal.audit.fairness import audit_fairness_for
from earlysignal.audit.groups import NOT_RECORDED, characteristics
from earlysignal.config import CapacitySection, ProjectConfig
from earlysignal.errors import EarlySignalError
from earlysignal.modeling import metrics as M

REQUIRED_COLUMNS = ("resident_id", "as_of", "score", "label")
TRUE_WORDS = {"1", "true", "t", "yes", "y"}
FALSE_WORDS = {"0", "false", "f", "no", "n"}
SCHEMA_VERSION = 1


class ScoresFileError(EarlySignalError):
    """A scores file cannot be audited: missing columns, bad values, duplicates, unknown residents."""


@dataclass(frozen=True)
class ExternalAuditResult:
    """Where the external audit went and what it found."""

    html_path: Path
    json_path: Path
    audit: dict[str, Any]


def read_scores_file(path: str | Path) -> pd.DataFrame:
    """The file as a frame (CSV or Parquet by extension); a clear error when it cannot be read."""
    path = Path(path)
    if not path.exists():
        raise ScoresFileError(f"scores file {path} does not exist")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if path.suffix.lower() in (".csv", ".txt"):
            return pd.read_csv(path, dtype={"resident_id": "string"}, keep_default_na=True)
    except Exception as error:  # pandas and pyarrow raise many types for a broken file
        raise ScoresFileError(f"scores file {path} cannot be read: {error}") from None
    raise ScoresFileError(f"scores file {path}: use a .csv or .parquet file")


def _bad_rows(mask: np.ndarray | pd.Series) -> str:
    rows = np.flatnonzero(np.asarray(mask))
    # Data rows are numbered from 1 (a CSV's header is line 1, so data row r is line r + 1).
    return f"{len(rows)} row(s), e.g. data row(s) {', '.join(str(r + 1) for r in rows[:5])}"


def _flags(values: pd.Series, path: Path) -> np.ndarray:
    if pd.api.types.is_bool_dtype(values) and not values.isna().any():
        return values.to_numpy(dtype=bool)
    text = values.astype("string").str.strip().str.lower()
    bad = ~(text.isin(TRUE_WORDS) | text.isin(FALSE_WORDS)).fillna(False)
    if bad.any():
        raise ScoresFileError(
            f"{path}: column 'flagged' must be true/false, yes/no or 1/0; {_bad_rows(bad)} are not "
            f"(e.g. {values[bad].iloc[0]!r})"
        )
    return text.isin(TRUE_WORDS).to_numpy(dtype=bool)


def clean_scores(frame: pd.DataFrame, path: Path, capacity: CapacitySection | None, seed: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Typed rows (resident_id, as_of, score, label, flagged, rank) and counts of what was dropped.

    Rows with no label are dropped and counted; flagged comes from the file, else the top of each
    as_of at `capacity` by score, ties in score broken in a random order drawn from `seed`.
    Raises ScoresFileError for missing columns, bad values and duplicate (resident_id, as_of) rows.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ScoresFileError(
            f"{path} lacks column(s) {missing}; a scores file needs {list(REQUIRED_COLUMNS)} and 'flagged' "
            f"(or pass --capacity). Found: {list(frame.columns)}"
        )
    if "flagged" not in frame.columns and capacity is None:
        raise ScoresFileError(f"{path} has no 'flagged' column: pass --capacity K (how many are reviewed per as_of)")
    out = pd.DataFrame({"resident_id": frame["resident_id"].astype("string").str.strip()})
    if out["resident_id"].isna().any() or (out["resident_id"] == "").any():
        raise ScoresFileError(f"{path}: resident_id is empty in {_bad_rows(out['resident_id'].fillna('') == '')}")
    as_of = pd.to_datetime(frame["as_of"], errors="coerce", format="mixed")
    if as_of.isna().any():
        raise ScoresFileError(f"{path}: as_of is not a date (YYYY-MM-DD) in {_bad_rows(as_of.isna())}")
    out["as_of"] = as_of.dt.normalize()
    score = pd.to_numeric(frame["score"], errors="coerce")
    if (~np.isfinite(score.to_numpy(dtype=float))).any():
        raise ScoresFileError(f"{path}: score is missing or not a number in {_bad_rows(~np.isfinite(score.to_numpy(dtype=float)))}")
    out["score"] = score.astype(float)
    label = pd.to_numeric(frame["label"], errors="coerce")
    bad_label = label.notna() & ~label.isin([0, 1])
    if bad_label.any() or (frame["label"].notna() & label.isna()).any():
        raise ScoresFileError(f"{path}: label must be 0, 1 or empty (unknown); {_bad_rows(bad_label | (frame['label'].notna() & label.isna()))} are not")
    duplicated = out.duplicated(["resident_id", "as_of"], keep=False)
    if duplicated.any():
        first = out.loc[duplicated].iloc[0]
        raise ScoresFileError(
            f"{path}: {int(duplicated.sum())} rows repeat a (resident_id, as_of) pair, e.g. resident "
            f"{first['resident_id']} on {first['as_of'].date()}: keep one row per resident and date"
        )
    if "flagged" in frame.columns:
        out["flagged"] = _flags(frame["flagged"], path)
        source = "the file's flagged column"
    out["label"] = label
    unlabelled = int(out["label"].isna().sum())
    out = out.loc[out["label"].notna()].reset_index(drop=True)
    out["label"] = out["label"].astype(int)
    # Ties are broken by a seeded random order, so an unordered list gains nothing from id order.
    tiebreak = np.random.default_rng(seed).permutation(len(out)).astype(float)
    out["rank"] = 0
    for _, index in out.groupby("as_of").indices.items():
        out.loc[out.index[index], "rank"] = M.ranks(
            out["score"].to_numpy()[index], out["resident_id"].to_numpy()[index], tiebreak=tiebreak[index]
        )
    if "flagged" not in out.columns:
        k_per = out.groupby("as_of")["rank"].transform(lambda r: M.capacity_k(len(r), capacity))
        out["flagged"] = out["rank"] <= k_per
        source = f"the top {describe_capacity(capacity)} of each as_of by score (ties in a random order, seed {seed})"
    return out, {"unlabelled_rows": unlabelled, "flagged_from": source}


def describe_capacity(capacity: CapacitySection) -> str:
    """'100', '5%' or '100 or 5% (whichever is smaller)'."""
    parts = [str(capacity.k)] if capacity.k is not None else []
    if capacity.top_percent is not None:
        parts.append(f"{capacity.top_percent:g}%")
    return " or ".join(parts) + (" (whichever is smaller)" if len(parts) == 2 else "")


def _age_band(age: int) -> str:
    from earlysignal.features.spec import age_band

    return age_band(age)


def join_attributes(
    scores: pd.DataFrame, residents: pd.DataFrame, protected: tuple[str, ...], dictionary: Any = None
) -> tuple[pd.DataFrame, int]:
    """scores with attr__<name> per protected characteristic, as it stood at each row's as_of; rows of
    residents the data does not know are dropped and counted.

    `age_band` comes from birth_date at as_of; any other name is a residents column, mapped to its
    reporting groups by the data dictionary exactly as the feature matrix does (booleans as Yes/No,
    nulls as the dictionary's not-recorded group).
    """
    not_recorded = dictionary.not_recorded.group if dictionary is not None else NOT_RECORDED
    specs = dictionary.categorical_attributes() if dictionary is not None else {}
    people = residents.copy()
    people["resident_id"] = people["resident_id"].astype("string")
    people = people.drop_duplicates("resident_id").set_index("resident_id")
    known = scores["resident_id"].isin(people.index)
    unknown = int((~known).sum())
    frame = scores.loc[known].reset_index(drop=True)
    matched = people.reindex(frame["resident_id"])
    for attribute in protected:
        column = f"attr__{attribute}"
        if attribute == "age_band":
            if "birth_date" not in people.columns:
                continue
            birth = pd.Series(pd.to_datetime(matched["birth_date"]).to_numpy())
            as_of = pd.Series(frame["as_of"].to_numpy())
            before_birthday = (as_of.dt.month < birth.dt.month) | (
                (as_of.dt.month == birth.dt.month) & (as_of.dt.day < birth.dt.day)
            )
            ages = (as_of.dt.year - birth.dt.year - before_birthday.astype(int)).to_numpy(dtype=float)
            frame[column] = [not_recorded if np.isnan(a) else _age_band(int(a)) for a in ages]
        elif attribute in people.columns:
            spec = specs.get(attribute)
            groups = dict(spec.groups) if spec is not None and spec.kind != "boolean" else {}
            values = matched[attribute].to_numpy(dtype=object)
            frame[column] = [
                not_recorded if pd.isna(v)
                else ("Yes" if v is True or v is np.True_ else "No" if v is False or v is np.False_ else groups.get(v, str(v)))
                for v in values
            ]
    return frame, unknown


def _performance(frame: pd.DataFrame, min_cell: int, round_to: int) -> list[dict[str, Any]]:
    """Per as_of: cohort, flagged, precision and recall at the operating point, AUC (published as the audit does)."""
    out = []
    for as_of, part in frame.groupby("as_of", sort=True):
        flagged = part["flagged"].to_numpy(dtype=bool)
        y = part["label"].to_numpy(dtype=int)
        found, positives = int(y[flagged].sum()), int(y.sum())
        # Scores from elsewhere only rank (a balance, a points total): never treat them as probabilities.
        ranked = M.RankedList.build(
            y, part["score"].to_numpy(), part["resident_id"].to_numpy(), 0, is_probability=False
        )
        auc = ranked.metrics()["roc_auc"]
        out.append(
            {
                "as_of": pd.Timestamp(as_of).date().isoformat(),
                "cohort": published_count(len(part), min_cell, round_to),
                "positives": published_count(positives, min_cell, round_to),
                "flagged": published_count(int(flagged.sum()), min_cell, round_to),
                "precision": published_rate(found, int(flagged.sum()), min_cell, round_to),
                "recall": published_rate(found, positives, min_cell, round_to),
                # AUC over a handful of escalations (or non-escalations) shows where those residents rank.
                "auc": (published_figure(auc) if math.isfinite(auc) and not is_small(positives, min_cell)
                        and not is_small(len(part) - positives, min_cell) else None),
            }
        )
    return out


def build_external_audit(
    scores: pd.DataFrame,
    residents: pd.DataFrame,
    config: ProjectConfig,
    *,
    source_name: str,
    file_name: str,
    file_sha256: str,
    capacity: CapacitySection | None,
) -> dict[str, Any]:
    """The external audit document (JSON-ready): counts, performance per as_of, fairness by group."""
    settings = config.audit
    path = Path(file_name)
    from earlysignal.dictionary import dictionary_for

    cleaned, counts = clean_scores(scores, path, capacity, config.project.seed)
    frame, unknown = join_attributes(cleaned, residents, tuple(settings.protected), dictionary_for(config))
    if frame.empty:
        raise ScoresFileError(
            f"{path}: none of its {len(cleaned)} labelled rows is a resident of the data ({unknown} unknown "
            "resident_id(s)); check that the file uses the same pseudonymous ids as the linked data"
        )
    from earlysignal.audit.assemble import outcome_labels, outcome_phrase

    what, when = outcome_phrase(config.label.outcome_types, config.label.horizon_text, outcome_labels(config))
    fairness = audit_fairness_for(config, frame)
    from earlysignal.audit.consistency import findings_note

    # "No disparity" only when something could be assessed; otherwise say that nothing could be.
    fairness["findings_note"] = None if fairness["findings"] else findings_note(fairness, settings.min_cell)
    return {
        "schema": SCHEMA_VERSION,
        "kind": "external scores",
        "generated_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "source": {"name": source_name, "file": path.name, "sha256": file_sha256, "flagged_from": counts["flagged_from"]},
        "outcome": f"{what} {when}",
        "rows": {
            "read": published_count(len(scores), settings.min_cell, settings.round_to),
            "unlabelled_dropped": counts["unlabelled_rows"],
            "unknown_residents_dropped": unknown,
            "audited": published_count(len(frame), settings.min_cell, settings.round_to),
        },
        "performance": _performance(frame, settings.min_cell, settings.round_to),
        "fairness": fairness,
        "small_numbers": {"min_cell": settings.min_cell, "round_to": settings.round_to},
    }


def audit_scores_file(
    scores_path: str | Path,
    config: ProjectConfig,
    *,
    source_name: str,
    data_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    capacity: CapacitySection | None = None,
) -> ExternalAuditResult:
    """Audit a scores file against the residents of the linked data; write audit.json and audit.html."""
    from earlysignal.atomic import write_json, write_text
    from earlysignal.contract import load_linked_data
    from earlysignal.report.render import render_external_audit_html

    path = Path(scores_path)
    scores = read_scores_file(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    linked = load_linked_data(data_dir or config.data.dir, config=config, write_quarantine=False)
    audit = build_external_audit(
        scores, linked.residents, config, source_name=source_name, file_name=str(path), file_sha256=digest,
        capacity=capacity,
    )
    folder = Path(out_dir) if out_dir is not None else Path("reports") / "audit" / f"scores-{digest[:12]}"
    html_path = write_text(render_external_audit_html(audit), folder / "audit.html")
    json_path = write_json(audit, folder / "audit.json")
    return ExternalAuditResult(html_path, json_path, audit)
