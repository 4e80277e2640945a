"""`earlysignal monitor`: how the past lists turned out and whether the board's switch-off criteria hold.

monitor_document() is a pure function of what was read of the data (monitor/inputs.py), the past lists, the
audit's promise and the config; build_monitor() gives it a borough held whole; run_monitor() reads the data
(whole, or per partition when build.memory_budget_gb or build.partitions is set), writes monitor.json and
monitor.html atomically and logs aggregates to MLflow.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from earlysignal.atomic import write_json, write_text
from earlysignal.audit.assemble import calibration_curve
from earlysignal.audit.suppression import round_count
from earlysignal.config import ProjectConfig
from earlysignal.errors import EarlySignalError
from earlysignal.features.cohort import add_months
from earlysignal.features.spec import feature_definitions
from earlysignal.monitor.criteria import NOT_EVALUABLE, evaluate_criteria, worst
from earlysignal.monitor.disclosure import ListCounts, publish_list_metrics, publish_response
from earlysignal.monitor.past_lists import PastList, find_past_lists
from earlysignal.monitor.inputs import MonitorInputs, inputs_from_data, inputs_per_partition
from earlysignal.monitor.realised import list_performance
from earlysignal.monitor.sources import (
    feature_psi_by_source,
    month_start,
    source_volume_drift_of_counts,
    windowed_sources_of_features,
)

SCHEMA_VERSION = 1
PROMISED_METRICS = ("precision_at_capacity", "recall_at_capacity", "roc_auc")


@dataclass
class MonitorResult:
    """What a monitoring run wrote."""

    out_dir: Path
    json_path: Path
    html_path: Path
    document: dict[str, Any]
    run_id: str | None
    partitions: int | None = None  # how many partitions the data was read in (None: read whole)


def _count(value: int, config: ProjectConfig) -> int | None:
    """A count as published: None under the small-cell threshold, else rounded (docs/audit.md)."""
    if 0 < value < config.audit.min_cell:
        return None
    return round_count(value, config.audit.round_to)


def training_period(audit: dict[str, Any] | None) -> tuple[dt.date, dt.date] | None:
    """First and last as_of dates the audited (final) model learnt from, from audit.json's temporal plan."""
    for row in ((audit or {}).get("performance") or {}).get("temporal_plan") or []:
        if row.get("split") == "final model" and row.get("trained_from") and row.get("trained_to"):
            return dt.date.fromisoformat(str(row["trained_from"])), dt.date.fromisoformat(str(row["trained_to"]))
    return None


def monitoring_periods(
    config: ProjectConfig, lists: list[PastList], known_by: dt.date, trained: tuple[dt.date, dt.date] | None = None
) -> dict[str, dt.date]:
    """Reference and recent periods ([start, end) of whole months) for the source drift comparison.

    The reference is, in order of precedence: monitoring.reference_start/end; the audited model's training
    as_of dates; temporal.first_as_of up to the earliest list (or up to the recent months).
    """
    settings = config.monitoring
    recent_end = month_start(known_by)
    recent_start = add_months(recent_end, -settings.recent_months)
    default_start, default_end = trained or (config.temporal.first_as_of, lists[0].as_of if lists else recent_start)
    reference_start = settings.reference_start or default_start
    reference_end = settings.reference_end or default_end
    reference_end = min(month_start(reference_end), recent_start)
    reference_start = month_start(reference_start)
    if reference_start >= reference_end:
        raise EarlySignalError(
            f"monitoring reference period is empty ({reference_start} to {reference_end}): set "
            "monitoring.reference_start / monitoring.reference_end in the config to months before "
            f"the recent months ({recent_start} to {recent_end})"
        )
    return {"reference_start": reference_start, "reference_end": reference_end,
            "recent_start": recent_start, "recent_end": recent_end}


def _evaluate_list(
    item: PastList,
    labels: pd.arrays.IntegerArray | None,
    share: dict[str, Any] | None,
    config: ProjectConfig,
    seed: int,
) -> tuple[dict[str, Any], pd.DataFrame | None, ListCounts | None]:
    """One list's entry with its exact metrics, its calibration rows and the exact counts behind them, from its
    realised labels (None: horizon open) and its response share (None: no response setting or window open)."""
    label = config.label
    ids = item.ranked["resident_id"].tolist()
    k = item.capacity_k
    entry: dict[str, Any] = {
        "as_of": item.as_of.isoformat(),
        "list": item.path.name,
        "model_version": item.summary.get("model_version"),
        "capacity_k": k,
        "scored": _count(len(ids), config),
        "horizon_end": label.window_end(item.as_of).isoformat(),
        "labels_known": labels is not None,
        "score_psi": (item.summary.get("drift") or {}).get("score_psi"),
        "max_feature_psi": (item.summary.get("drift") or {}).get("max_feature_psi"),
    }
    calibration_rows = None
    counts = None
    if labels is None:
        entry.update({m: {"value": None, "ci_low": None, "ci_high": None} for m in PROMISED_METRICS})
        entry.update({"base_rate": None, "positives": None, "flagged_positives": None,
                      "censored": None, "flagged_censored": None})
    else:
        entry.update(list_performance(item.ranked, labels, k, config.monitoring.bootstrap, seed))
        flagged = item.ranked["flagged"].to_numpy(dtype=bool)
        # Censored: follow-up ended inside the window without the outcome (moved away, died); neither
        # a realised positive nor a realised negative, so left out of every figure and counted here.
        censored = np.asarray(labels.isna())
        known = np.asarray(labels.fillna(0), dtype=np.int8)
        counts = ListCounts(known=int((~censored).sum()), positives=int(known.sum()),
                            flagged_known=int((flagged & ~censored).sum()),
                            flagged_positives=int(known[flagged].sum()))
        entry["censored"] = _count(int(censored.sum()), config)
        entry["flagged_censored"] = _count(int(censored[flagged].sum()), config)
        calibration_rows = pd.DataFrame({"score": item.ranked["score"].to_numpy(dtype=float)[~censored],
                                         "label": known[~censored]})
    entry["response"] = None
    if config.monitoring.response is not None:
        entry["response"] = publish_response(share, config.audit.min_cell, config.audit.round_to)
    return entry, calibration_rows, counts


def _promise(audit: dict[str, Any] | None, audit_path: Path | None) -> dict[str, Any] | None:
    if audit is None:
        return None
    headline = (audit.get("summary") or {}).get("headline") or {}
    promise = {m: headline.get(m) for m in PROMISED_METRICS if isinstance(headline.get(m), dict)}
    model = audit.get("model") or {}
    promise["audit"] = str(audit_path) if audit_path else None
    promise["model_version"] = str(model.get("version")) if model.get("version") is not None else None
    return promise


def build_monitor(
    config: ProjectConfig,
    data: Any,
    lists: list[PastList],
    audit: dict[str, Any] | None,
    known_by: dt.date,
    audit_path: Path | None = None,
) -> dict[str, Any]:
    """The monitoring document (aggregates only, no resident-level rows) for the lists at known_by, from a
    borough held whole (LinkedData or any object with residents, residency, events, outcomes, extract_date)."""
    periods = monitoring_periods(config, lists, known_by, training_period(audit))
    inputs = inputs_from_data(config, data, lists, known_by, (periods["recent_start"], periods["recent_end"]))
    return monitor_document(config, inputs, lists, audit, known_by, audit_path)


def monitor_document(
    config: ProjectConfig,
    inputs: MonitorInputs,
    lists: list[PastList],
    audit: dict[str, Any] | None,
    known_by: dt.date,
    audit_path: Path | None = None,
) -> dict[str, Any]:
    """The monitoring document from what was read of the data (monitor/inputs.py: labels, response shares
    and event volumes, gathered whole or per partition); the same inputs give the same document."""
    seed = config.project.seed
    entries, calibration_frames, list_counts = [], [], []
    for index, item in enumerate(lists):
        entry, rows, counts = _evaluate_list(item, inputs.labels[index], inputs.responses[index], config,
                                             seed + index)
        entries.append(entry)
        list_counts.append(counts)
        if rows is not None:
            calibration_frames.append(rows)
    calibration = []
    if calibration_frames:
        calibration = calibration_curve(pd.concat(calibration_frames, ignore_index=True),
                                        min_cell=config.audit.min_cell, round_to=config.audit.round_to)
        for point in calibration:
            point["n"] = round_count(point["n"], config.audit.round_to)

    periods = monitoring_periods(config, lists, known_by, training_period(audit))
    sources = list(dict.fromkeys(f.source for f in config.features.families))
    drift = source_volume_drift_of_counts(
        inputs.volumes, sources,
        (periods["reference_start"], periods["reference_end"]),
        (periods["recent_start"], periods["recent_end"]),
        known_by,
        config.monitoring.volume_alpha,
    )
    for item in drift:
        item["monthly"] = {m: _count(c, config) for m, c in item["monthly"].items()}
    # Whole-record features drift with the length of the record, not the source: not judged here.
    source_of = windowed_sources_of_features(feature_definitions(config))
    latest_psi = None
    for item in reversed(lists):
        feature_psi = (item.summary.get("drift") or {}).get("feature_psi")
        if feature_psi:
            latest_psi = feature_psi_by_source(feature_psi, source_of)
            break
    for item in drift:
        item["latest_feature_psi"] = latest_psi.get(item["source"]) if latest_psi else None

    promise = _promise(audit, audit_path)
    # The criteria read the exact figures; the document publishes them under the small-number rules.
    criteria = evaluate_criteria(config.monitoring.switch_off, entries, promise, drift, latest_psi)
    entries = [entry if counts is None else
               publish_list_metrics(entry, counts, config.audit.min_cell, config.audit.round_to)
               for entry, counts in zip(entries, list_counts, strict=True)]
    evaluable = [c["status"] for c in criteria if c["status"] != NOT_EVALUABLE]
    return {
        "schema": SCHEMA_VERSION,
        "model_name": config.model.name,
        "known_by": known_by.isoformat(),
        "extract_date": inputs.extract_date.isoformat(),
        "label": {"name": config.label.name, "outcome_types": list(config.label.outcome_types),
                  "horizon_months": config.label.horizon_months, "horizon": config.label.horizon_text,
                  "censoring": config.label.censoring.model_dump(mode="json")},
        "promise": promise,
        "lists": entries,
        "calibration": calibration,
        "response": config.monitoring.response.model_dump(mode="json") if config.monitoring.response else None,
        "sources": {"periods": {k: v.isoformat() for k, v in periods.items()}, "per_source": drift},
        "criteria": criteria,
        "overall": worst(evaluable) if evaluable else NOT_EVALUABLE,
        "small_numbers": {"min_cell": config.audit.min_cell, "round_to": config.audit.round_to},
    }


def _read_audit(config: ProjectConfig, lists: list[PastList], audit_path: Path | None) -> tuple[dict[str, Any] | None, Path | None]:
    from earlysignal.audit import default_output_dir

    path = audit_path or config.monitoring.audit
    if path is None and lists:
        latest = lists[-1].summary
        if latest.get("model_name") and latest.get("model_version"):
            candidate = default_output_dir(str(latest["model_name"]), str(latest["model_version"])) / "audit.json"
            path = candidate if candidate.exists() else None
    if path is None:
        return None, None
    path = Path(path)
    if path.is_dir():
        path = path / "audit.json"
    if not path.exists():
        raise EarlySignalError(f"audit file {path} does not exist; pass --audit PATH/audit.json or run `earlysignal audit`")
    try:
        return json.loads(path.read_text(encoding="utf-8")), path
    except ValueError as error:
        raise EarlySignalError(f"{path} is not valid JSON ({error}); re-run `earlysignal audit`") from None


def default_out_dir(config: ProjectConfig, known_by: dt.date) -> Path:
    """reports/monitor/<model.name>-<known_by>/"""
    return Path("reports") / "monitor" / f"{config.model.name}-{known_by.isoformat()}"


def run_monitor(
    config: ProjectConfig,
    data_dir: str | Path | None = None,
    scores_dir: str | Path | None = None,
    audit_path: str | Path | None = None,
    out: str | Path | None = None,
    known_by: dt.date | None = None,
    *,
    log_to_mlflow: bool = True,
) -> MonitorResult:
    """Monitor every past list under scores_dir against the data in data_dir; write monitor.json/html.

    known_by defaults to the data's extract date; a later date is refused (outcomes after the extract
    are not in the data, so their labels would read as 0).
    """
    from earlysignal import contract
    from earlysignal.report.monitor_render import render_monitor_html

    data_dir = Path(data_dir) if data_dir is not None else Path(config.data.dir)
    bounded = _bounded(config)
    with contextlib.ExitStack() as stack:
        if bounded:
            work_parent = Path(out).parent if out is not None else Path("reports") / "monitor"
            data = stack.enter_context(_loaded_per_partition(config, data_dir, work_parent))
        else:
            data = contract.load_linked_data(data_dir, config, write_quarantine=False)
        known_by = known_by or data.extract_date
        if known_by > data.extract_date:
            raise EarlySignalError(
                f"--as-of {known_by} is after the data's extract date {data.extract_date}: outcomes after it are not "
                "in the data, so labels would read as 0; monitor at or before the extract date"
            )
        lists = find_past_lists(scores_dir if scores_dir is not None else config.monitoring.scores_dir)
        # A list scored on the monitoring date itself is known then (made from records before it): its outcome
        # waits, its drift is live.
        lists = [item for item in lists if item.as_of <= known_by]
        audit, used_audit = _read_audit(config, lists, Path(audit_path) if audit_path is not None else None)
        periods = monitoring_periods(config, lists, known_by, training_period(audit))
        recent = (periods["recent_start"], periods["recent_end"])
        gather = inputs_per_partition if bounded else inputs_from_data
        inputs = gather(config, data, lists, known_by, recent)
        partitions = data.partitions if bounded else None
        del data
    document = monitor_document(config, inputs, lists, audit, known_by, used_audit)
    out_dir = Path(out) if out is not None else default_out_dir(config, known_by)
    json_path = write_json(document, out_dir / "monitor.json")
    html_path = write_text(render_monitor_html(document), out_dir / "monitor.html")
    run_id = _log_monitor_run(config, document, html_path) if log_to_mlflow else None
    return MonitorResult(out_dir, json_path, html_path, document, run_id, partitions)


def _bounded(config: ProjectConfig) -> bool:
    """Whether the config asks for bounded memory (build.memory_budget_gb or build.partitions)."""
    build = config.build
    return build.memory_budget_gb is not None or build.partitions is not None


@contextlib.contextmanager
def _loaded_per_partition(config: ProjectConfig, data_dir: Path, work_parent: Path) -> Iterator[Any]:
    """The contract run over `data_dir` with every table written per partition (contract/streaming.py: the same
    checks and accepted rows as load_linked_data, no quarantine files written, as monitor never writes them)
    into a temporary folder under `work_parent`, removed on exit. The partition count is the feature build's
    (build.partitions, else from build.memory_budget_gb); monitoring holds far less per partition than a build."""
    from earlysignal.contract.streaming import load_partitioned_data
    from earlysignal.features.partition import _chosen_partitions, assign_partitions, household_components

    def assign(residents: pd.DataFrame, residency: pd.DataFrame) -> tuple[np.ndarray, int]:
        count = _chosen_partitions(config, len(residents), list(config.as_of_dates()), None)
        components = household_components(residents, residency)
        return assign_partitions(components, np.ones(components.size), count), count

    work_parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".monitor-partitions-", dir=work_parent) as work:
        yield load_partitioned_data(data_dir, config, work, assign, write_quarantine=False)


STATUS_CODES = {"green": 0, "amber": 1, "red": 2}


def _log_monitor_run(config: ProjectConfig, document: dict[str, Any], html_path: Path) -> str:
    """Aggregates only: statuses, per-list metrics and per-source drops; no resident-level rows."""
    import mlflow

    from earlysignal.modeling.run_logging import start_tracking
    from earlysignal.tracking import configure_tracking

    configure_tracking()
    start_tracking(config)
    with mlflow.start_run(run_name=f"monitor {document['known_by']}") as run:
        mlflow.set_tags({"earlysignal.stage": "monitor", "overall": document["overall"]})
        mlflow.log_params({"known_by": document["known_by"], "lists": len(document["lists"])})
        metrics: dict[str, float] = {}
        if document["overall"] in STATUS_CODES:
            metrics["overall_status"] = STATUS_CODES[document["overall"]]
        for criterion in document["criteria"]:
            if criterion["status"] in STATUS_CODES:
                metrics[f"status_{criterion['name']}"] = STATUS_CODES[criterion["status"]]
        for source in document["sources"]["per_source"]:
            if source["drop"] is not None:
                metrics[f"volume_drop_{source['source']}"] = float(source["drop"])
        mlflow.log_metrics(metrics)
        for step, entry in enumerate(e for e in document["lists"] if e["labels_known"]):
            for metric in PROMISED_METRICS:
                value = entry[metric]["value"]
                if value is not None and np.isfinite(value):
                    mlflow.log_metric(f"realised_{metric}", float(value), step=step)
        mlflow.log_dict(document, "monitor/monitor.json")
        mlflow.log_artifact(str(html_path), "monitor")
        return run.info.run_id
