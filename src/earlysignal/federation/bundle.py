"""The release bundle: one borough's evaluation as checked aggregates, hashed and signed by a named checker.

A bundle is a folder that may leave the borough:

- `release.json`: aggregates only (metrics at capacity with intervals, calibration table, fairness by
  group, data coverage, link quality, model and code versions and hashes). Every count is rounded to
  `audit.round_to` or withheld when small (1 to `audit.min_cell` - 1), and every rate is recomputed
  from the rounded counts (earlysignal.audit.disclosure, the audit's own rules), so nothing suppressed
  can be worked back.
- `manifest.json`: the SHA-256 of every other file of the bundle.
- `signature.json`: the output checker's Ed25519 signature over the manifest's SHA-256, with their
  name, role and key id. The checker's key is made with `earlysignal keys` and must be listed in
  `release.checkers`; `pool` accepts only bundles whose signer is in its own `release.checkers`.

An unsigned bundle, a file added, removed or edited after signing, or a signature by a key the pool
does not trust is refused with a message naming the check that failed.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from earlysignal.audit.disclosure import is_small, published_count, published_figure, published_rate
from earlysignal.config import CapacitySection, ProjectConfig
from earlysignal.errors import EarlySignalError
from earlysignal.audit.differencing import close_differencing

RELEASE_SCHEMA = 1
RELEASE_JSON = "release.json"
MANIFEST_JSON = "manifest.json"
SIGNATURE_JSON = "signature.json"
BUNDLE_FILES = (RELEASE_JSON, MANIFEST_JSON, SIGNATURE_JSON)
KIND_HOME = "home"
KIND_TRANSFER = "transfer"
# Signatures cover this prefix, so an approval-ledger signature can never pass as a release sign-off.
_SIGNING_DOMAIN = b"earlysignal-release-bundle-v1\n"
# Whole numbers in release.json that are settings or identifiers, not counts of people.
# Settings and identifiers, not counts of people: an approval's position in the ledger, the number of
# feature columns.
NOT_COUNTS = frozenset({"schema", "min_cell", "round_to", "bootstrap", "resamples", "seed", "horizon_months",
                        "top_percent", "ledger_seq", "features"})
HEADLINE_METRICS = ("precision_at_capacity", "recall_at_capacity", "roc_auc")
REQUIRED_COLUMNS = ("resident_id", "as_of", "label", "score", "flagged")


class BundleError(EarlySignalError):
    """A release bundle cannot be written, signed or accepted (unsigned, altered, untrusted, not disclosure-safe)."""


def _now_utc() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------------- aggregates


def _per_date_lists(frame: pd.DataFrame, capacity: CapacitySection) -> list[tuple[str, Any]]:
    from earlysignal.modeling import metrics as M

    lists = []
    for as_of, part in frame.groupby("as_of", sort=True):
        k = M.capacity_k(len(part), capacity)
        tiebreak = part["margin"].to_numpy(dtype=float) if "margin" in part.columns else None
        ranked = M.RankedList.build(
            part["label"].to_numpy(dtype=float), part["score"].to_numpy(dtype=float),
            part["resident_id"].astype(str).to_numpy(), k, tiebreak=tiebreak,
        )
        lists.append((pd.Timestamp(as_of).date().isoformat(), ranked))
    return lists


ESCALATIONS_WITHHELD = ("the date's escalations are a small number (1 to min_cell - 1): they are withheld, and so is "
                        "every figure over them (an AUC over a few escalations shows where they sit in the ranking)")
NON_ESCALATIONS_WITHHELD = ("the date's residents who did not escalate are a small number (1 to min_cell - 1): an "
                            "AUC over them would show where those few residents sit in the ranking")
FOUND_WITHHELD = "the number of flagged residents who escalated is a small number (1 to min_cell - 1)"
AUC_OVER_SHOWN_DATES = ("the mean over the test dates whose AUC is shown (over_as_of); dates whose AUC is withheld "
                        "(withheld_as_of) are left out of the figure and its interval, or it would give theirs back")
AUC_NO_DATE_SHOWN = "no test date's AUC is shown (small numbers), so there is no overall AUC"


def withheld_reasons(n: int, positives: int, values: dict[str, float], k: int, min_cell: int) -> dict[str, str]:
    """Which of one test date's headline figures are withheld, and why: {metric: reason}, {} when none.

    n: residents evaluated at the date; positives: those who escalated; values: the exact metrics
    (precision_at_capacity, roc_auc); k: places on the list. AUC is withheld when either class is a
    small count; precision and recall when the escalations or the number found are small.
    """
    out: dict[str, str] = {}
    if is_small(positives, min_cell):
        out.update(dict.fromkeys(("precision_at_capacity", "recall_at_capacity", "roc_auc"), ESCALATIONS_WITHHELD))
        return out
    if is_small(n - positives, min_cell):
        out["roc_auc"] = NON_ESCALATIONS_WITHHELD
    precision = values.get("precision_at_capacity")
    if precision is not None and np.isfinite(precision) and k and is_small(round(precision * k, 6), min_cell):
        out.update(dict.fromkeys(("precision_at_capacity", "recall_at_capacity"), FOUND_WITHHELD))
    return out


def headline_metrics(
    frame: pd.DataFrame, capacity: CapacitySection, *, bootstrap: int, seed: int, min_cell: int, round_to: int
) -> dict[str, Any]:
    """Precision and recall at capacity and AUC over the test dates, per date and overall, as published.

    frame: one row per (resident, test as_of) with label (0/1) and score (and margin, the tie-break).
    Overall precision = escalations found in the lists / places on the lists and recall = found /
    escalations, both summed over dates and computed from rounded counts; AUC is the mean over the
    dates whose AUC is shown. A date's AUC is withheld when its escalations (or non-escalations) are
    1 to min_cell - 1; each date says what it withholds and why (`withheld`). Intervals are 95%
    percentile intervals over `bootstrap` resamples of residents within each date, rounded to 2
    decimals, and withheld with the figure when the number found is small.
    """
    from earlysignal.audit.assemble import published_split
    from earlysignal.modeling.metrics import interval

    lists = _per_date_lists(frame, capacity)
    per_date, found, places, positives, aucs = [], [], [], [], []
    # Dates whose AUC is shown; a withheld one is left out of the overall mean and its resamples too, or
    # the mean times the number of dates minus the shown ones would give it back.
    auc_shown: list[bool] = []
    for as_of, ranked in lists:
        values = ranked.metrics()
        k = ranked.k
        reasons = withheld_reasons(len(ranked.y), int(ranked.y.sum()), values, k, min_cell)
        auc_shown.append("roc_auc" not in reasons)
        split = {
            "split": as_of, "test_as_of": as_of, "n": len(ranked.y), "positives": int(ranked.y.sum()), "k": k,
            "scorers": {"model": {m: {"value": None if not np.isfinite(values[m]) else float(values[m])}
                                  for m in HEADLINE_METRICS}},
        }
        shown = published_split(split, min_cell, round_to)
        model = shown["scorers"]["model"]
        per_date.append({
            "as_of": as_of, "n": shown["n"], "positives": shown["positives"], "k": k,
            "base_rate": shown["base_rate"],
            "precision_at_capacity": model["precision_at_capacity"]["value"],
            "recall_at_capacity": model["recall_at_capacity"]["value"],
            "roc_auc": None if "roc_auc" in reasons else published_figure(values["roc_auc"]),
            "withheld": reasons,
        })
        found.append(values["precision_at_capacity"] * k if k else 0.0)
        places.append(k)
        positives.append(float(ranked.y.sum()))
        aucs.append(values["roc_auc"] if auc_shown[-1] else np.nan)
    total_found, total_places, total_positives = float(np.sum(found)), int(np.sum(places)), float(np.sum(positives))
    replicates = {m: np.full(bootstrap, np.nan) for m in HEADLINE_METRICS}
    rng = np.random.default_rng(seed)
    for b in range(bootstrap):
        b_found = b_pos = 0.0
        b_auc = []
        for (_, ranked), shown in zip(lists, auc_shown, strict=True):
            n = len(ranked.y)
            weights = np.bincount(rng.integers(0, n, n), minlength=n).astype(float)
            values = ranked.metrics(weights)
            b_found += values["precision_at_capacity"] * ranked.k if ranked.k else 0.0
            # ranked.y is in list order; weights are per original row: reorder before weighting labels.
            b_pos += float((weights[ranked.order] * ranked.y).sum())
            b_auc.append(values["roc_auc"] if shown else np.nan)
        replicates["precision_at_capacity"][b] = b_found / total_places if total_places else np.nan
        replicates["recall_at_capacity"][b] = b_found / b_pos if b_pos else np.nan
        replicates["roc_auc"][b] = float(np.nanmean(b_auc)) if np.isfinite(b_auc).any() else np.nan
    small_found = is_small(round(total_found, 6), min_cell)
    # As the audit's pooled summary (docs/adr/0015): an interval resampled from the exact rows describes every
    # cell behind it, so it is kept only when none of the totals (found, false alarms, missed) is small.
    small_total = small_found or any(is_small(round(c, 6), min_cell) for c in
                                     (total_places - total_found, total_positives - total_found))
    point = {
        "precision_at_capacity": published_rate(round(total_found, 6), total_places, min_cell, round_to),
        "recall_at_capacity": published_rate(round(total_found, 6), total_positives, min_cell, round_to),
        "roc_auc": published_figure(float(np.nanmean(aucs))) if np.isfinite(aucs).any() else None,
    }
    summary = {}
    for metric in HEADLINE_METRICS:
        low, high = interval(replicates[metric]) if bootstrap else (None, None)
        # An interval around a withheld figure would describe the count it hides.
        hidden = point[metric] is None or (small_total and metric != "roc_auc")
        summary[metric] = {
            "value": point[metric],
            "ci_low": None if hidden else published_figure(low),
            "ci_high": None if hidden else published_figure(high),
        }
    dates = [as_of for as_of, _ in lists]
    left_out = [as_of for as_of, shown in zip(dates, auc_shown, strict=True) if not shown]
    summary["roc_auc"]["over_as_of"] = [as_of for as_of in dates if as_of not in left_out]
    summary["roc_auc"]["withheld_as_of"] = left_out
    summary["roc_auc"]["withheld"] = (
        None if summary["roc_auc"]["value"] is not None and not left_out else
        (AUC_OVER_SHOWN_DATES if summary["roc_auc"]["value"] is not None else AUC_NO_DATE_SHOWN))
    return {
        "per_as_of": per_date,
        "summary": summary,
        "n": published_count(len(frame), min_cell, round_to),
        "positives": published_count(int(frame["label"].sum()), min_cell, round_to),
        "bootstrap": {"resamples": bootstrap, "seed": seed, "level": 0.95,
                      "unit": "residents resampled within each test as_of"},
    }


def released_linkage(section: dict[str, Any] | None, min_cell: int, round_to: int) -> dict[str, Any] | None:
    """The audit's linkage section with every count rounded or withheld and shares from rounded counts.

    Cluster counts per size band, records, residents and pairs compared are counts of people or
    records; the unlinked-by-group table is already suppressed and rounded by `earlysignal link`.
    Ground-truth and clerical-review figures keep their rates (2 decimals) and lose their counts.
    """
    if not section:
        return None
    clusters = section.get("cluster_sizes") or []
    total = sum(int(row.get("clusters") or 0) for row in clusters)
    rates = ("precision", "recall", "f1")

    def figures(block: dict[str, Any] | None) -> dict[str, Any] | None:
        if not block:
            return None
        return {key: published_figure(block.get(key)) for key in rates if key in block}

    return {
        "link_run_id": section.get("link_run_id"),
        "code_lists_sha256": section.get("code_lists_sha256"),
        "threshold": section.get("threshold"),
        "records": published_count(section.get("records"), min_cell, round_to),
        "residents": published_count(section.get("residents"), min_cell, round_to),
        "per_source": [_released_source(row, min_cell, round_to) for row in section.get("per_source") or []],
        "cluster_sizes": [
            {"size": row.get("size"), "clusters": published_count(row.get("clusters"), min_cell, round_to),
             "share": published_rate(row.get("clusters"), total, min_cell, round_to)}
            for row in clusters
        ],
        "ground_truth": figures(section.get("ground_truth")),
        "clerical_review": figures(section.get("clerical_review")),
        "unlinked_by_group": section.get("unlinked_by_group") or [],
    }


def _released_source(row: dict[str, Any], min_cell: int, round_to: int) -> dict[str, Any]:
    """One source's link figures: record counts rounded or withheld, shares recomputed from rounded counts."""
    records = row.get("records")
    out: dict[str, Any] = {"source": row.get("source"), "records": published_count(records, min_cell, round_to)}
    for key, value in row.items():
        if key.endswith("_share") and isinstance(value, (int, float)) and isinstance(records, (int, float)):
            out[key] = published_rate(round(float(value) * float(records)), records, min_cell, round_to)
    return out


def data_coverage(frame: pd.DataFrame, feature_metadata: dict[str, Any], protected: Sequence[str],
                  min_cell: int, round_to: int) -> dict[str, Any]:
    """Who was evaluated: cohort and escalations per test date (rounded), sources, period, and the share
    of the evaluated rows whose protected characteristics are not recorded (from rounded counts)."""
    from earlysignal.audit.assemble import missingness

    per_date = []
    for as_of, part in frame.groupby("as_of", sort=True):
        per_date.append({
            "as_of": pd.Timestamp(as_of).date().isoformat(),
            "cohort": published_count(len(part), min_cell, round_to),
            "escalations": published_count(int(part["label"].sum()), min_cell, round_to),
            "prevalence": published_rate(int(part["label"].sum()), len(part), min_cell, round_to),
        })
    records = feature_metadata.get("features") or []
    attributes = missingness(frame, [], protected, min_cell, round_to)["attributes"]
    return {
        "test_as_of": per_date,
        "sources": sorted({str(f.get("source")) for f in records if f.get("source")}),
        "features": len(feature_metadata.get("feature_columns") or []),
        "extract_date": feature_metadata.get("extract_date"),
        "not_recorded": attributes,
    }


def code_versions() -> dict[str, Any]:
    """Early Signal's version, the git commit of the installed source (not of the folder `release` runs
    in), the SHA-256 of the package's source files, and the versions of the packages a model uses."""
    import importlib.metadata

    from earlysignal.modeling.train import package_versions

    try:
        version = importlib.metadata.version("earlysignal")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return {"earlysignal": version, "git_commit": source_commit(), "source_sha256": source_sha256(),
            "packages": package_versions()}


def _package_dir() -> Path:
    import earlysignal

    return Path(earlysignal.__file__).resolve().parent


def source_commit() -> str:
    """The git commit the installed earlysignal package's files are tracked at; 'unknown' when the package
    is not in a git checkout (an installed wheel). Asked of the package's folder: a borough's working
    folder may be another repository or none."""
    import subprocess

    folder = _package_dir()
    try:
        subprocess.run(["git", "-C", str(folder), "ls-files", "--error-unmatch", "__init__.py"],
                       capture_output=True, text=True, timeout=10, check=True)
        result = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() or "unknown"


def source_sha256() -> str:
    """SHA-256 over the earlysignal package's files (relative path and content, compiled files left out):
    equal in two boroughs exactly when they run the same code, installed from a wheel or a checkout."""
    import hashlib

    from earlysignal.fingerprint import file_sha256

    root = _package_dir()
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                       and p.suffix not in (".pyc", ".pyo")):
        digest.update(path.relative_to(root).as_posix().encode("utf-8") + b"\0")
        digest.update(file_sha256(path).encode("ascii"))
    return digest.hexdigest()


def evaluation_frame(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """The rows a release evaluates: known labels only, with the columns it needs (BundleError naming them)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise BundleError(f"{where} lacks column(s) {missing}; a release needs {list(REQUIRED_COLUMNS)}")
    out = frame.loc[frame["label"].notna()].copy()
    if out.empty:
        raise BundleError(f"{where} has no rows with a known label: nothing to release")
    out["label"] = out["label"].astype(int)
    out["flagged"] = out["flagged"].astype(bool)
    return out.reset_index(drop=True)


def build_release(
    frame: pd.DataFrame,
    *,
    config: ProjectConfig,
    borough: str,
    model: dict[str, Any],
    kind: str = KIND_HOME,
    feature_metadata: dict[str, Any] | None = None,
    approval: dict[str, Any] | None = None,
    earlier: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The release document (release.json) from one borough's evaluation rows; aggregates only.

    frame: one row per (resident, test as_of): resident_id, as_of, label, score, flagged (margin and
    attr__* columns when present). config: the evaluating borough's (capacity, audit settings, label
    words). model: name, version, run_id, model_sha256, spec_hash, trained_in. kind: 'home' (the
    borough's own model) or 'transfer' (a model trained elsewhere). earlier: the borough's earlier
    release.json documents (the release register's and `release.earlier`'s; federation.register.earlier_for),
    read with this one by the differencing attack.
    Complementary suppressions are added until no withheld count can be worked back
    (audit.differencing). Raises BundleError on bad input or when that cannot be reached.
    """
    from earlysignal.audit.assemble import calibration_curve, flagged_outcomes, outcome_labels, outcome_phrase
    from earlysignal.audit.fairness import audit_fairness_for
    from earlysignal.audit.linkage import linkage_section

    if kind not in (KIND_HOME, KIND_TRANSFER):
        raise BundleError(f"release kind must be {KIND_HOME!r} or {KIND_TRANSFER!r}, not {kind!r}")
    if not borough.strip():
        raise BundleError("a release needs the borough's name: set release.borough in the config or pass --borough")
    metadata = feature_metadata or {}
    rows = evaluation_frame(frame, "the evaluation rows")
    settings = config.audit
    what, when = outcome_phrase(config.label.outcome_types, config.label.horizon_text, outcome_labels(config))
    fairness = audit_fairness_for(config, rows)
    document = {
        "schema": RELEASE_SCHEMA,
        "kind": kind,
        "borough": borough.strip(),
        "trained_in": str(model.get("trained_in") or borough).strip(),
        "generated_at": _now_utc(),
        "label": {"name": config.label.name, "outcome_types": list(config.label.outcome_types),
                  "horizon": config.label.horizon_text, "words": f"{what} {when}"},
        "capacity": {"k": config.capacity.k, "top_percent": config.capacity.top_percent},
        "model": {key: model.get(key) for key in
                  ("name", "version", "run_id", "model_sha256", "spec_hash", "data_fingerprint", "trained_in")},
        "approval": approval,
        "code": code_versions(),
        "performance": headline_metrics(rows, config.capacity, bootstrap=config.training.bootstrap,
                                        seed=config.project.seed, min_cell=settings.min_cell,
                                        round_to=settings.round_to),
        "flagged_outcomes": flagged_outcomes(rows, settings.round_to, settings.min_cell),
        "calibration": calibration_curve(rows, min_cell=settings.min_cell, round_to=settings.round_to),
        "fairness": fairness,
        "coverage": data_coverage(rows, metadata, settings.protected, settings.min_cell, settings.round_to),
        "linkage": released_linkage(linkage_section(metadata.get("linkage")), settings.min_cell, settings.round_to),
        "small_numbers": {"min_cell": settings.min_cell, "round_to": settings.round_to,
                          "rule": "counts of 1 to min_cell - 1 withheld, the rest rounded to round_to; "
                                  "every rate computed from the rounded counts; further figures withheld "
                                  "(complementary suppression) until no withheld count can be worked back "
                                  "by differencing the tables"},
    }
    try:
        return close_differencing(document, _not_recorded_groups(config), earlier)
    except ValueError as error:
        raise BundleError(f"the release cannot be made disclosure-safe: {error}; raise audit.min_cell or "
                          "leave out the characteristic whose groups are smallest (audit.protected)") from None


def _not_recorded_groups(config: ProjectConfig) -> list[str]:
    """The group words that mean 'not recorded' (the audit's and the data dictionary's)."""
    from earlysignal.audit.groups import NOT_RECORDED
    from earlysignal.dictionary import dictionary_for

    return sorted({NOT_RECORDED, dictionary_for(config).not_recorded.group})


# ------------------------------------------------------------------------------ disclosure check


def small_counts(document: Any, min_cell: int, path: str = "") -> list[str]:
    """Where a document holds a whole number from 1 to min_cell - 1 that is a count (settings excepted).

    Returns JSON paths such as 'performance.per_as_of[0].positives'; [] when the document is safe.
    """
    found: list[str] = []
    if isinstance(document, dict):
        for key, value in document.items():
            if key in NOT_COUNTS:
                continue
            found.extend(small_counts(value, min_cell, f"{path}.{key}" if path else str(key)))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found.extend(small_counts(value, min_cell, f"{path}[{index}]"))
    elif isinstance(document, int) and not isinstance(document, bool) and 0 < document < min_cell:
        found.append(path)
    return found


def _refuse_worked_back(release: dict[str, Any], what_now: str, earlier: Sequence[dict[str, Any]] = (),
                        not_recorded_groups: Sequence[str] = ("Not recorded",)) -> None:
    """BundleError when the differencing attack (audit.differencing) pins a withheld count, reading the release
    with the borough's `earlier` releases (what those give away on their own is theirs, not this one's)."""
    from earlysignal.audit.differencing import new_leaks

    leaks = new_leaks(release, not_recorded_groups, earlier)
    if leaks:
        named = "; ".join(f"{b.name} ({b.where}) to {b.low}-{b.high}" for b in leaks[:3])
        read = f" read with {len(earlier)} earlier release(s) of this borough" if earlier else ""
        raise BundleError(f"disclosure check failed: {len(leaks)} withheld count(s) can be worked back by differencing "
                          f"the release's tables{read}: {named}; rebuild it with `earlysignal release` (which adds "
                          f"complementary suppressions), {what_now}")


# ----------------------------------------------------------------------------- files and signing


def _sha256(path: Path) -> str:
    from earlysignal.fingerprint import file_sha256

    return file_sha256(path)


def _home_model(release: dict[str, Any]) -> str | None:
    """The model's name for a home release (its earlier releases under another borough name count), else None."""
    return (release.get("model") or {}).get("name") if release.get("kind") == KIND_HOME else None


def _canonical(obj: Any) -> bytes:
    from earlysignal.ledger import canonical

    return canonical(obj)


def release_bytes(release: dict[str, Any]) -> bytes:
    """release.json's bytes as write_bundle writes them (sorted keys, indented): what the register hashes."""
    text = json.dumps(release, indent=2, sort_keys=True, allow_nan=False, default=str)
    return (json.dumps(json.loads(text), indent=2, sort_keys=True, default=str) + "\n").encode("utf-8")


def write_bundle(release: dict[str, Any], out_dir: str | os.PathLike[str], config: ProjectConfig) -> Path:
    """Write release.json and manifest.json into out_dir (atomically) and register it; returns the folder.

    Refuses (BundleError) a document holding a small count, or one in which the differencing attack pins a
    withheld count when it is read with this borough's earlier releases: every one in the release register
    (`release.register_dir`) and those `release.earlier` lists, whatever the folder. A registered or listed
    bundle that is missing or altered is an error too, and so is a home release of a model the register holds
    home releases of under another borough name only (a renamed borough; register.check_home_borough). The
    release is registered (a copy of release.json) before its folder is written. Any earlier signature.json is removed: a new release needs a new sign-off.
    """
    from earlysignal.atomic import write_json, write_text
    from earlysignal.federation.register import (
        EVENT_WRITTEN, ReleaseRegister, check_home_borough, earlier_for, register_dir)

    min_cell = int(release.get("small_numbers", {}).get("min_cell", 10))
    unsafe = small_counts(release, min_cell)
    if unsafe:
        raise BundleError(f"the release holds counts under {min_cell} at {unsafe[:5]}; it cannot leave the borough")
    check_home_borough(config, release)
    content = release_bytes(release)
    earlier = earlier_for(config, release.get("borough"), exclude=hashlib.sha256(content).hexdigest(),
                          model=_home_model(release))
    _refuse_worked_back(release, "it cannot leave the borough", earlier.documents, _not_recorded_groups(config))
    folder = Path(out_dir)
    # Everything in the folder leaves the borough with the bundle: nothing but the bundle may be in it.
    others = sorted(p.name for p in folder.iterdir() if p.name not in BUNDLE_FILES) if folder.is_dir() else []
    if others:
        raise BundleError(f"bundle folder {folder} holds other files {others[:5]}; write the bundle into an empty "
                          "(or its own earlier) bundle folder, since everything in it leaves the borough")
    ReleaseRegister(register_dir(config)).record(folder, content, EVENT_WRITTEN)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SIGNATURE_JSON).unlink(missing_ok=True)
    path = write_text(content.decode("utf-8"), folder / RELEASE_JSON)
    write_json({"schema": RELEASE_SCHEMA, "files": {RELEASE_JSON: _sha256(path)}}, folder / MANIFEST_JSON)
    return folder


def _check_files(folder: Path) -> dict[str, Any]:
    """The manifest, after checking that the folder holds exactly its files and each hashes as listed."""
    manifest_path = folder / MANIFEST_JSON
    if not folder.is_dir():
        raise BundleError(f"bundle {folder} is not a folder; a release bundle is the folder `earlysignal release` wrote")
    if not manifest_path.is_file():
        raise BundleError(f"manifest check failed: {manifest_path} is missing; re-run `earlysignal release`")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        listed = dict(manifest["files"])
    except (ValueError, KeyError, TypeError):
        raise BundleError(f"manifest check failed: {manifest_path} is not a valid bundle manifest") from None
    present = {p.name for p in folder.iterdir()} - {MANIFEST_JSON, SIGNATURE_JSON}
    if present != set(listed):
        extra, missing = sorted(present - set(listed)), sorted(set(listed) - present)
        raise BundleError(
            f"manifest check failed: bundle {folder} has files the manifest does not list {extra} or lacks "
            f"files it lists {missing}; the bundle was altered after it was written"
        )
    for name, digest in sorted(listed.items()):
        actual = _sha256(folder / name)
        if actual != digest:
            raise BundleError(
                f"manifest check failed: {folder / name} hashes to {actual[:12]}, not {str(digest)[:12]} as listed; "
                "it was edited after the release was written"
            )
    if RELEASE_JSON not in listed:
        raise BundleError(f"manifest check failed: bundle {folder} has no {RELEASE_JSON}")
    return manifest


def _signed_fields(folder: Path, release: dict[str, Any], checker: str, role: str, at: str, kid: str) -> dict[str, Any]:
    return {
        "manifest_sha256": _sha256(folder / MANIFEST_JSON),
        "borough": release.get("borough"),
        "kind": release.get("kind"),
        "checker": checker,
        "role": role,
        "at": at,
        "key_id": kid,
    }


def configured_checkers(config: ProjectConfig) -> list[Any]:
    """The output checkers whose sign-off counts: `release.checkers` (name, role, Ed25519 public key)."""
    from earlysignal.ledger import Approver, parse_public_key

    return [
        Approver(entry.name, entry.role, parse_public_key(entry.public_key, f"release.checkers[{index}].public_key"))
        for index, entry in enumerate(config.release.checkers)
    ]


def sign_bundle(
    bundle: str | os.PathLike[str], key_path: str | os.PathLike[str], config: ProjectConfig,
    checker: str | None = None,
) -> dict[str, Any]:
    """Sign a written bundle off as its output checker; returns signature.json's content.

    Checks the files against the manifest and that release.json holds no small count before signing.
    The key must belong to a person listed in `release.checkers`; `checker`, when given, must be their
    configured name. Raises BundleError otherwise.
    """
    from earlysignal.atomic import write_json
    from earlysignal.ledger import key_id, load_private_key

    folder = Path(bundle)
    _check_files(folder)
    release = json.loads((folder / RELEASE_JSON).read_text(encoding="utf-8"))
    min_cell = int(release.get("small_numbers", {}).get("min_cell", 10))
    unsafe = small_counts(release, min_cell)
    if unsafe:
        raise BundleError(f"disclosure check failed: {folder / RELEASE_JSON} holds counts under {min_cell} at "
                          f"{unsafe[:5]}; do not sign it")
    from earlysignal.federation.register import (
        EVENT_SIGNED, ReleaseRegister, check_home_borough, earlier_for, register_dir)

    check_home_borough(config, release)
    content = (folder / RELEASE_JSON).read_bytes()
    earlier = earlier_for(config, release.get("borough"), exclude=hashlib.sha256(content).hexdigest(),
                          model=_home_model(release))
    _refuse_worked_back(release, "do not sign it", earlier.documents, _not_recorded_groups(config))
    private_key = load_private_key(key_path)
    wanted = key_id(private_key.public_key())
    signer = next((c for c in configured_checkers(config) if c.key_id == wanted), None)
    if signer is None:
        raise BundleError(
            f"the key {key_path} (key id {wanted[:16]}...) is not listed in release.checkers in the config; only "
            "a configured output checker can sign a release off. Add its public key line (the .pub file) to "
            "release.checkers with the person's name and role"
        )
    if checker is not None and checker.strip() != signer.name:
        raise BundleError(f"--checker {checker!r} does not match the owner of key {key_path}: release.checkers "
                          f"lists it as {signer.name!r}")
    # Signed means it may leave: a bundle written under another register (or none) is registered here now.
    ReleaseRegister(register_dir(config)).record(folder, content, EVENT_SIGNED)
    fields = _signed_fields(folder, release, signer.name, signer.role, _now_utc(), wanted)
    signature = private_key.sign(_SIGNING_DOMAIN + _canonical(fields))
    document = {**fields, "signature": base64.b64encode(signature).decode("ascii")}
    write_json(document, folder / SIGNATURE_JSON)
    return document


def verify_bundle(bundle: str | os.PathLike[str], config: ProjectConfig) -> dict[str, Any]:
    """The release document of a bundle, after every check; BundleError naming the check that failed.

    Checks: the bundle is signed; it holds exactly the manifest's files and each hashes as listed; the
    signature is valid over the manifest's hash, borough, kind, checker and time; the signing key is in
    this config's `release.checkers`; release.json holds no small count.
    """
    from cryptography.exceptions import InvalidSignature

    folder = Path(bundle)
    signature_path = folder / SIGNATURE_JSON
    if folder.is_dir() and not signature_path.is_file():
        raise BundleError(
            f"signature check failed: bundle {folder} is not signed off; its output checker signs it with "
            "`earlysignal release-sign BUNDLE --key PATH` after reading it"
        )
    _check_files(folder)
    release = json.loads((folder / RELEASE_JSON).read_text(encoding="utf-8"))
    try:
        signed = json.loads(signature_path.read_text(encoding="utf-8"))
        signature = base64.b64decode(str(signed["signature"]), validate=True)
    except (ValueError, KeyError, TypeError):
        raise BundleError(f"signature check failed: {signature_path} is not a valid signature file") from None
    trusted = configured_checkers(config)
    if not trusted:
        raise BundleError("signature check failed: release.checkers in the config is empty; list the output "
                          "checkers whose sign-off the pool accepts (name, role, public key)")
    signer = next((c for c in trusted if c.key_id == signed.get("key_id")), None)
    if signer is None:
        raise BundleError(
            f"signature check failed: bundle {folder} is signed by key {str(signed.get('key_id'))[:16]}..., which "
            "is not listed in release.checkers in this config; only listed output checkers' sign-off counts"
        )
    fields = _signed_fields(folder, release, str(signed.get("checker")), str(signed.get("role")),
                            str(signed.get("at")), str(signed.get("key_id")))
    try:
        signer.public_key.verify(signature, _SIGNING_DOMAIN + _canonical(fields))
    except InvalidSignature:
        raise BundleError(
            f"signature check failed: bundle {folder}'s signature by {signer.name} does not match its content; "
            "the bundle or its signature file was altered after sign-off"
        ) from None
    min_cell = int(release.get("small_numbers", {}).get("min_cell", 10))
    unsafe = small_counts(release, min_cell)
    if unsafe:
        raise BundleError(f"disclosure check failed: {folder / RELEASE_JSON} holds counts under {min_cell} at {unsafe[:5]}")
    return {**release, "signed_off": {"checker": signer.name, "role": signer.role, "at": signed.get("at"),
                                      "key_id": signer.key_id}}


def bundle_paths(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Bundle folders from the command line (a release.json path stands for its folder), in the order given."""
    out = []
    for raw in paths:
        path = Path(raw)
        out.append(path.parent if path.name == RELEASE_JSON else path)
    return out


def digest_of(document: dict[str, Any]) -> str:
    """SHA-256 of a document's canonical JSON (what the pool report cites for each bundle)."""
    return hashlib.sha256(_canonical(document)).hexdigest()
