"""Necessity of each source (UK GDPR data minimisation): retrain on the same temporal splits leaving out
one source at a time (every feature family of that source, at every scope, with its imputation flags)
and each config-declared protected-characteristic proxy group, and measure what each costs.

A variant's contribution is full model minus variant, on the same test rows and the same bootstrap
resamples (paired), averaged over the test splits as the training summary is. A source whose
contribution interval includes 0 for both precision at capacity and AUC is "not shown to be necessary";
of those, leaving it out "costs nothing" only when both intervals lie within necessity.negligible, else
there are too few escalations to tell (a wide interval is not evidence that the data is unneeded).
The fairness findings of every variant are recomputed, so the board sees whether leaving a source out
would remove or create a disparity.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from earlysignal.config import ProjectConfig
from earlysignal.dictionary import dictionary_for
from earlysignal.errors import ConfigError, EarlySignalError
from earlysignal.features.spec import feature_definitions
from earlysignal.modeling import metrics as M
from earlysignal.modeling.train import (
    _feature_array,
    _labelled_rows,
    _Labelled,
    _read_lean_matrix,
    _run_tasks,
    _shared_scratch,
    _split_task,
    load_matrix,
)
from earlysignal.timesplits import plan_from_config
from earlysignal.wording import wording_from_config

CONTRIBUTION_METRICS = ("precision_at_capacity", "roc_auc")
SCHEMA_VERSION = 1


@dataclass
class NecessityResult:
    """What a necessity run wrote."""

    json_path: Path
    html_path: Path
    document: dict[str, Any]


def feature_groups(config: ProjectConfig, feature_columns: Sequence[str]) -> list[dict[str, Any]]:
    """The variants to leave out: one per source the feature families use, then one per proxy group.

    Each: {kind: 'source'|'proxy_group', name, why, columns}. Raises ConfigError when a proxy group's
    pattern matches no feature column (a typo would otherwise leave nothing out, silently).
    """
    columns = list(feature_columns)
    source_of = {d.name: d.source for d in feature_definitions(config)}
    groups: list[dict[str, Any]] = []
    for source in dict.fromkeys(f.source for f in config.features.families):
        mine = [c for c in columns if source_of.get(c) == source]
        if mine:
            groups.append({"kind": "source", "name": source, "why": "", "columns": mine})
    for index, group in enumerate(config.necessity.proxy_groups):
        chosen: list[str] = []
        for pattern in group.features:
            hits = [c for c in columns if fnmatch.fnmatchcase(c, pattern)]
            if not hits:
                raise ConfigError(
                    f"necessity.proxy_groups.{index}.features: {pattern!r} matches no feature column of the matrix "
                    f"(e.g. {columns[:3]}); fix the name or pattern"
                )
            chosen.extend(c for c in hits if c not in chosen)
        groups.append({"kind": "proxy_group", "name": group.name, "why": group.why, "columns": chosen})
    return groups


def _subset(data: _Labelled, keep: np.ndarray, scratch: Path | None = None, name: str = "variant.npy") -> _Labelled:
    """The same rows with only the `keep` columns (label timing kept, so training labels stay as known on
    each test date). With `scratch`, the copy is a memory-mapped file `scratch`/`name` that worker
    processes map."""
    X = _feature_array((data.X.shape[0], int(keep.sum())), scratch, name)
    for j, column in enumerate(np.flatnonzero(keep)):
        X[:, j] = data.X[:, column]  # column by column: never a second temporary copy
    return dataclasses.replace(data, X=X)


def _test_predictions(data: _Labelled, plan: Any, config: ProjectConfig, names: list[str]) -> list[dict[str, Any]]:
    """Per split: test row mask, calibrated scores and raw margins of a model trained on these columns.

    Each split's model is fitted exactly as `train` fits it: on the labels known on the split's test date
    (ADR 0014), with the same negative sample, in `training.n_jobs` worker processes."""
    tasks = [_split_task(data.as_known_at(min(split.test)), split, with_test=False) for split in plan.splits]
    outcomes = _run_tasks(data.X, tasks, config, names)
    out = []
    for split, outcome in zip(plan.splits, outcomes, strict=True):
        fitted = outcome.fitted()
        test = data.mask(split.test)
        margin = fitted.booster.predict(data.X[test], raw_score=True)
        out.append({"split": split.name, "test": test, "margin": margin, "score": fitted.calibrator.predict(margin)})
    return out


def _with_interval(value: float, replicates: np.ndarray | None) -> dict[str, float | None]:
    low, high = M.interval(replicates) if replicates is not None else (None, None)
    return {"value": float(value) if np.isfinite(value) else None, "ci_low": low, "ci_high": high}


@dataclass(frozen=True)
class SplitPair:
    """One test split's rows scored by the full model and by a variant: what a paired contribution needs.

    y: [n] 0/1 labels; ids: [n] resident IDs; *_score: [n] calibrated probabilities; *_margin: [n] raw
    margins (the tie-break when ranking). Small (no feature columns), so splits of several worlds can be
    kept and pooled (`pooled_contribution`)."""

    y: np.ndarray
    ids: np.ndarray
    full_score: np.ndarray
    full_margin: np.ndarray
    variant_score: np.ndarray
    variant_margin: np.ndarray


def split_pairs(data: _Labelled, full: list[dict[str, Any]], variant: list[dict[str, Any]]) -> list[SplitPair]:
    """The test rows of each split (`_test_predictions`' output for the full model and a variant) as SplitPairs."""
    pairs = []
    for f, v in zip(full, variant, strict=True):
        pairs.append(SplitPair(
            y=data.y[f["test"]].astype(float), ids=data.frame.loc[f["test"], "resident_id"].to_numpy(),
            full_score=f["score"], full_margin=f["margin"], variant_score=v["score"], variant_margin=v["margin"],
        ))
    return pairs


def paired_contribution(
    data: _Labelled, full: list[dict[str, Any]], variant: list[dict[str, Any]], config: ProjectConfig, bootstrap: int
) -> dict[str, Any]:
    """Full minus variant per metric: point (mean over splits) and a paired 95% bootstrap interval, plus the
    variant's own metrics. Resamples are seeded per split, so every variant sees the same resamples."""
    return pooled_contribution(split_pairs(data, full, variant), config, bootstrap)


def pooled_contribution(pairs: Sequence[SplitPair], config: ProjectConfig, bootstrap: int) -> dict[str, Any]:
    """`paired_contribution` over any list of test splits, e.g. the splits of several independent synthetic
    worlds: the point is the mean over all splits of full minus variant, and each bootstrap replicate the mean
    over splits of that split's paired replicate (residents resampled within each split, independently per
    split, seeded by the split's place in the list), so the interval is the mean's. Returns the same dict as
    paired_contribution: contribution {metric: value, ci_low, ci_high}, without, necessary, verdict and
    flagged_escalations (escalations among the flagged, summed; for the small-number rules, never published)."""
    seed = config.project.seed
    diffs: dict[str, list[float]] = {m: [] for m in CONTRIBUTION_METRICS}
    own: dict[str, list[float]] = {m: [] for m in CONTRIBUTION_METRICS}
    reps: dict[str, list[np.ndarray]] = {m: [] for m in CONTRIBUTION_METRICS}
    found = {"full": 0.0, "variant": 0.0}
    for number, pair in enumerate(pairs):
        k = M.capacity_k(len(pair.y), config.capacity)
        lists = {
            "full": M.RankedList.build(pair.y, pair.full_score, pair.ids, k, tiebreak=pair.full_margin),
            "variant": M.RankedList.build(pair.y, pair.variant_score, pair.ids, k, tiebreak=pair.variant_margin),
        }
        point = {name: ranked.metrics() for name, ranked in lists.items()}
        for name in found:
            value = point[name]["precision_at_capacity"] * k
            found[name] += float(value) if np.isfinite(value) else 0.0
        boot = M.bootstrap_replicates(lists, bootstrap, seed=seed * 1000 + number) if bootstrap else {}
        for m in CONTRIBUTION_METRICS:
            diffs[m].append(point["full"][m] - point["variant"][m])
            own[m].append(point["variant"][m])
            if boot:
                reps[m].append(boot["full"][m] - boot["variant"][m])
    out: dict[str, Any] = {"contribution": {}, "without": {}}
    for m in CONTRIBUTION_METRICS:
        replicates = np.mean(np.vstack(reps[m]), axis=0) if reps[m] else None
        out["contribution"][m] = _with_interval(float(np.mean(diffs[m])), replicates)
        out["without"][m] = float(np.mean(own[m]))
    lows = [out["contribution"][m]["ci_low"] for m in CONTRIBUTION_METRICS]
    out["necessary"] = any(low is not None and low > 0 for low in lows)
    out["verdict"] = verdict(out["necessary"], out["contribution"], config.necessity.negligible.model_dump())
    out["flagged_escalations"] = found
    return out


def publish_precision(document: dict[str, Any], min_cell: int) -> dict[str, Any]:
    """The necessity document with precision at capacity withheld where it rests on a small count.

    A precision at capacity pooled over test dates of known size k gives away the escalations among the
    flagged (0.0125 over 4 dates of 100 is 5), and a difference of two such figures the escalations one
    model found that the other did not; so, as in the audit (docs/audit.md), when the full model's or a
    variant's flagged escalations are 1 to min_cell - 1, that row's precision figures and interval (or the
    full model's) are withheld (`withheld: true`). Verdicts were reached on the exact figures and stay.
    The exact counts (`flagged_escalations`) are removed.
    """
    from earlysignal.audit.disclosure import is_small

    out = dict(document)
    full = dict(document["full"])
    full_found = full.pop("flagged_escalations", None)
    full_small = full_found is not None and is_small(full_found, min_cell)
    if full_small:
        full = {**full, "metrics": {**full["metrics"], "precision_at_capacity": None}, "precision_withheld": True}
    out["full"] = full
    rows = []
    for row in document["variants"]:
        row = dict(row)
        found = row.pop("flagged_escalations", {})
        if full_small or is_small(found.get("variant"), min_cell):
            row["contribution"] = {**row["contribution"], "precision_at_capacity": {
                "value": None, "ci_low": None, "ci_high": None, "withheld": True}}
            row["without"] = {**row["without"], "precision_at_capacity": None}
        rows.append(row)
    out["variants"] = rows
    return out


NECESSARY, COSTS_NOTHING, UNDETERMINED = "necessary", "costs nothing", "undetermined"


def verdict(necessary: bool, contribution: dict[str, dict[str, Any]], negligible: dict[str, float]) -> str:
    """'necessary'; 'costs nothing' when every loss interval's upper end is within `negligible`
    ({metric: largest loss that counts as none}); else 'undetermined': not shown to be necessary, but
    the intervals are too wide to say that leaving the source out costs nothing."""
    if necessary:
        return NECESSARY
    highs = [contribution[m].get("ci_high") for m in CONTRIBUTION_METRICS]
    if all(h is not None and h <= negligible[m] for h, m in zip(highs, CONTRIBUTION_METRICS, strict=True)):
        return COSTS_NOTHING
    return UNDETERMINED


def _fairness_findings(data: _Labelled, predictions: list[dict[str, Any]], config: ProjectConfig) -> list[dict[str, Any]]:
    """The audit's fairness findings on a variant's test predictions (same settings as the audit)."""
    from earlysignal.audit.assemble import outcome_phrase
    from earlysignal.audit.fairness import audit_fairness
    from earlysignal.audit.groups import characteristics

    parts = []
    for p in predictions:
        part = data.frame.loc[p["test"]].copy()
        part["score"] = p["score"]
        k = M.capacity_k(len(part), config.capacity)
        rank = M.ranks(p["score"], part["resident_id"].to_numpy(), tiebreak=p["margin"])
        part["flagged"] = rank <= k
        part["label"] = data.y[p["test"]].astype(int)
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    settings = config.audit
    what, when = outcome_phrase(config.label.outcome_types, config.label.horizon_months)
    result = audit_fairness(
        frame,
        characteristics(settings.protected, settings.intersections),
        reference_groups=dict(settings.reference_groups),
        ratio_band=settings.ratio_band,
        bootstrap=config.necessity.fairness_bootstrap,
        group_words=dictionary_for(config).boolean_group_words(),
        min_cell=settings.min_cell,
        round_to=settings.round_to,
        seed=config.project.seed,
        outcome=f"{what} {when}",
    )
    return list(result["findings"])  # type: ignore[arg-type]


def _finding_key(finding: dict[str, Any]) -> str:
    return f"{finding['characteristic']}|{finding['group']}|{finding['metric']}"


def build_necessity(
    config: ProjectConfig,
    matrix: Any,
    *,
    only: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
    scratch: Path | None = None,
) -> dict[str, Any]:
    """The necessity document: per left-out source / proxy group, its contribution with paired intervals,
    the variant's metrics, fairness findings gained and lost, and run times (seconds).

    only: names of sources / proxy groups to evaluate (default all). Raises EarlySignalError for an
    unknown name. scratch: a folder for the feature arrays the worker processes map (None: in memory).
    """
    say = progress or (lambda message: None)
    started = time.perf_counter()
    feature_columns = list(matrix.feature_columns)
    data = _labelled_rows(matrix, scratch)
    labelled_dates = sorted({pd.Timestamp(d).date() for d in np.unique(data.day)})
    plan = plan_from_config(config, labelled_dates)
    groups = feature_groups(config, feature_columns)
    if only:
        unknown = sorted(set(only) - {g["name"] for g in groups})
        if unknown:
            raise EarlySignalError(
                f"--only {unknown}: not a source of the feature families or a necessity.proxy_groups name; "
                f"choose from {[g['name'] for g in groups]}"
            )
        groups = [g for g in groups if g["name"] in set(only)]
    bootstrap = config.necessity.bootstrap
    wording = wording_from_config(config)

    say("full model")
    t0 = time.perf_counter()
    full = _test_predictions(data, plan, config, feature_columns)
    full_findings = _fairness_findings(data, full, config)
    full_seconds = time.perf_counter() - t0
    full_keys = {_finding_key(f): f for f in full_findings}
    rows = []
    for group in groups:
        say(f"without {group['name']}")
        t0 = time.perf_counter()
        keep = np.array([c not in set(group["columns"]) for c in feature_columns])
        if not keep.any():
            raise EarlySignalError(f"leaving out {group['name']} leaves no feature columns to train on")
        names = [c for c, k in zip(feature_columns, keep, strict=True) if k]
        reduced = _subset(data, keep, scratch, f"variant-{len(rows)}.npy")
        variant = _test_predictions(reduced, plan, config, names)
        del reduced
        if scratch is not None:  # frees the variant's copy (shared memory) before the next one is made
            (scratch / f"variant-{len(rows)}.npy").unlink(missing_ok=True)
        entry = paired_contribution(data, full, variant, config, bootstrap)
        findings = {_finding_key(f): f for f in _fairness_findings(data, variant, config)}
        rows.append({
            "kind": group["kind"],
            "name": group["name"],
            "label": wording.source(group["name"]) if group["kind"] == "source" else group["name"],
            "why": group["why"],
            "n_features": len(group["columns"]),
            **entry,
            "fairness": {
                "findings": len(findings),
                "gone": [full_keys[k]["text"] for k in sorted(set(full_keys) - set(findings))],
                "new": [findings[k]["text"] for k in sorted(set(findings) - set(full_keys))],
            },
            "seconds": round(time.perf_counter() - t0, 1),
        })
    # Full-model metrics, for reading the contributions against.
    base_entry = paired_contribution(data, full, full, config, 0)
    base = base_entry["without"]
    document = {
        "schema": SCHEMA_VERSION,
        "label": config.label.name,
        "splits": [s.name for s in plan.splits],
        "test_as_of": [str(d) for s in plan.splits for d in s.test],
        "bootstrap": {"resamples": bootstrap, "seed": config.project.seed, "level": 0.95, "paired": True,
                      "unit": "residents resampled within each test as_of; the same resamples for every variant"},
        "full": {"metrics": base, "fairness_findings": len(full_findings), "seconds": round(full_seconds, 1),
                 "flagged_escalations": base_entry["flagged_escalations"]["full"]},
        "variants": rows,
        "not_shown_necessary": [r["name"] for r in rows if not r["necessary"]],
        # Of those: the ones whose whole loss interval is negligible, and the ones the data cannot decide.
        "costs_nothing": [r["name"] for r in rows if r["verdict"] == COSTS_NOTHING],
        "undetermined": [r["name"] for r in rows if r["verdict"] == UNDETERMINED],
        "negligible": config.necessity.negligible.model_dump(),
        "seconds_total": round(time.perf_counter() - started, 1),
        "rule": ("necessary: the 95% paired interval of the loss in precision at capacity or in AUC when the "
                 "source is left out lies above 0; otherwise not shown to be necessary, and of those, leaving it out "
                 "costs nothing when both intervals lie below the negligible losses (necessity.negligible), else "
                 "the data cannot tell"),
    }
    return publish_precision(document, config.audit.min_cell)


def run_necessity(
    config: ProjectConfig,
    data_dir: str | Path | None = None,
    matrix: Any = None,
    out_dir: str | Path | None = None,
    *,
    only: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> NecessityResult:
    """Build (or reuse) the feature matrix, run the necessity analysis, write necessity.json and .html.

    out_dir defaults to reports/necessity/<model.name>/; put it in an audit's folder
    (reports/audit/<model>-v<version>/) and `earlysignal audit` adds it to that report.
    """
    from earlysignal.atomic import write_json, write_text
    from earlysignal.report.necessity_render import render_necessity_html

    data_dir = Path(data_dir) if data_dir is not None else Path(config.data.dir)
    if matrix is not None and not hasattr(matrix, "frame") and Path(matrix).is_file():
        # As `train` reads it: feature columns one by one into the labelled array, never a frame of them.
        fm = _read_lean_matrix(Path(matrix))
    else:
        fm = load_matrix(config, data_dir if matrix is None else None, matrix)
    # The feature arrays live in a folder removed afterwards (shared memory when there is some).
    with tempfile.TemporaryDirectory(prefix="earlysignal-necessity-", dir=_shared_scratch()) as scratch:
        document = build_necessity(config, fm, only=only, progress=progress,
                                   scratch=Path(scratch) if config.training.n_jobs > 1 else None)
    folder = Path(out_dir) if out_dir is not None else Path("reports") / "necessity" / config.model.name
    json_path = write_json(document, folder / "necessity.json")
    html_path = write_text(render_necessity_html(document), folder / "necessity.html")
    return NecessityResult(json_path, html_path, document)
