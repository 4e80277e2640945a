"""What a release evaluates: a borough's own model on its test rows, or a shipped model on this borough's data.

Home: the registered model's test predictions from the local evaluation store (the rows its audit
reads). Transfer: a model trained in another borough arrives as its registered artefact with its signed
approval; here it must pass the approval gate (`require_approved`, against this borough's config,
which lists the origin borough's approvers), then it scores this borough's residents at this borough's
test dates with the feature spec it was trained with. This borough's data never leaves: only the
release bundle built from these rows does.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from earlysignal.config import ProjectConfig
from earlysignal.errors import ApprovalError, EarlySignalError
from earlysignal.federation.bundle import BundleError

# The parts of the feature spec that must agree for a shipped model's figures to mean the same thing here.
COMPARABLE_SPEC = ("label", "cohort")


@dataclass
class Evaluation:
    """Evaluation rows (resident-level: they stay in the borough) and what the release says about the model."""

    frame: pd.DataFrame = field(repr=False)
    model: dict[str, Any]
    feature_metadata: dict[str, Any] = field(repr=False)
    approval: dict[str, Any] | None


def _approval_doc(record: Any) -> dict[str, Any] | None:
    if record is None:
        return None
    return {key: getattr(record, key) for key in
            ("status", "approver", "role", "approved_at", "model_sha256", "report_sha256", "ledger_seq", "demo")}


def _trained_in(run_config: ProjectConfig | None, fallback: str) -> str:
    return (run_config.release.borough if run_config is not None else "") or fallback


def home_evaluation(model_uri: str, config: ProjectConfig) -> Evaluation:
    """A borough's own registered model, evaluated on the test rows its training logged (the audit's rows).

    Raises EarlySignalError when the model, its run or its evaluation data cannot be read.
    """
    from earlysignal.approval import approval_status, model_artifact_sha256
    from earlysignal.modeling.artifacts import load_training_artifacts

    artifacts = load_training_artifacts(model_uri)
    if not artifacts.metrics.get("evaluated", True):
        raise BundleError(f"{model_uri} was not evaluated (no test split); there is nothing to release")
    record = approval_status(artifacts.model_name, artifacts.model_version, config)
    metadata = artifacts.feature_metadata
    model = {
        "name": artifacts.model_name,
        "version": artifacts.model_version,
        "run_id": artifacts.run_id,
        "model_sha256": model_artifact_sha256((artifacts.model_name, artifacts.model_version)),
        "spec_hash": metadata.get("spec_hash"),
        "data_fingerprint": metadata.get("data_fingerprint"),
        "trained_in": _trained_in(artifacts.config, config.release.borough),
    }
    return Evaluation(artifacts.test_predictions, model, metadata, _approval_doc(record))


def default_test_dates(config: ProjectConfig, extract_date: dt.date) -> list[dt.date]:
    """The test as-of dates this borough's own training would use: the temporal plan over the config's
    as-of dates whose label window has closed by the extract date."""
    from earlysignal.timesplits import plan_from_config

    labelled = [d for d in config.as_of_dates() if config.label.window_end(d) <= extract_date]
    plan = plan_from_config(config, labelled)
    return sorted({d for split in plan.splits for d in split.test})


def _check_comparable(spec: dict[str, Any], config: ProjectConfig, model_uri: str) -> None:
    from earlysignal.features.spec import spec_dict

    here = spec_dict(config)
    for section in COMPARABLE_SPEC:
        if spec.get(section) != here.get(section):
            raise BundleError(
                f"{model_uri} was trained with a different {section} definition from this borough's config "
                f"({section}: {spec.get(section)!r} there, {here.get(section)!r} here); a transfer evaluation "
                "compares like with like only when both are the same. Align the config's "
                f"{section} section with the shipped model's"
            )


def home_test_rows(model_uri: str) -> pd.DataFrame:
    """resident_id, as_of, label of the labelled test rows a borough's own model logged, one per (resident,
    as_of). Reads no approval: the own model's approval lives in the borough's own ledger, not in the copy
    of the shipped model's home ledger a transfer evaluation is configured with. Raises BundleError when
    the model was not evaluated, EarlySignalError when its run cannot be read."""
    from earlysignal.modeling.artifacts import load_training_artifacts

    artifacts = load_training_artifacts(model_uri)
    if not artifacts.metrics.get("evaluated", True):
        raise BundleError(f"{model_uri} was not evaluated (no test split); it has no test rows to compare on")
    frame = artifacts.test_predictions
    return frame.loc[frame["label"].notna(), ["resident_id", "as_of", "label"]]


def transfer_evaluation(
    model_uri: str,
    config: ProjectConfig,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    as_of_dates: Sequence[dt.date] | None = None,
    home_model_uri: str | None = None,
    trained_in: str | None = None,
) -> Evaluation:
    """A shipped model evaluated on this borough's data, inside the borough.

    The model must pass `require_approved` under `config`. Rows: the test rows of this borough's own
    model (`home_model_uri`, so both are scored on the same residents), else `as_of_dates`, else this
    config's temporal test dates; labels from this borough's data. The list is cut at this borough's
    capacity per date. Raises ApprovalError, BundleError (different label or cohort, no labelled rows)
    or EarlySignalError (data).
    """
    from earlysignal import contract, features
    from earlysignal.approval import require_approved
    from earlysignal.modeling import metrics as M
    from earlysignal.modeling.artifacts import load_scoring_model
    from earlysignal.scoring import check_sources

    try:
        approval = require_approved(model_uri, config)
    except ApprovalError as error:
        if not str(error).startswith("approver-set check failed"):
            raise
        # The receiving borough's own approvers in the same list is the usual cause.
        raise ApprovalError(
            f"{error}. A shipped model's approval is checked against its home board's approvers as pinned in "
            "the copy of its ledger: give the transfer evaluation a config of its own whose approval.approvers "
            "lists exactly the home board's approvers and whose approval.store is that copy (docs/federation.md, "
            "'Transfer evaluation')"
        ) from None
    pinned = f"models:/{approval.model_name}/{approval.model_version}"
    model = load_scoring_model(pinned)
    metadata = model.feature_metadata
    spec = metadata.get("spec")
    if not spec:
        raise BundleError(f"{pinned} carries no feature spec in its artefacts; it cannot be evaluated elsewhere")
    _check_comparable(spec, config, pinned)
    spec_config = features.config_with_spec(config, spec)
    folder = Path(data_dir) if data_dir is not None else Path(config.data.dir)
    home_rows = home_test_rows(home_model_uri) if home_model_uri is not None else None

    def test_dates(extract_date: dt.date) -> list[dt.date]:
        if home_rows is not None:
            dates = sorted({pd.Timestamp(d).date() for d in home_rows["as_of"].unique()})
        elif as_of_dates:
            dates = sorted(as_of_dates)
        else:
            dates = default_test_dates(config, extract_date)
        if not dates:
            raise BundleError(f"no test as-of date has a closed label window before the extract date {extract_date} "
                              f"in {folder}; pass --as-of dates")
        return dates

    if _bounded(config):
        out, feature_metadata = _scored_per_partition(model, spec_config, folder, test_dates, home_rows)
    else:
        data = contract.load_linked_data(folder, spec_config, write_quarantine=False)
        check_sources(spec_config, data, folder)
        dates = test_dates(data.extract_date)
        matrix = features.build_feature_matrix(spec_config, data, as_of_dates=dates, with_labels=True)
        del data
        out = _scored_rows(model, matrix.frame, home_rows)
        feature_metadata = matrix.metadata
        del matrix
    if home_rows is not None and len(out) != len(home_rows):
        raise BundleError(
            f"the shipped model could be scored on {len(out):,} of the {len(home_rows):,} test rows of "
            f"{home_model_uri}; the data in {folder} is not the data that model was evaluated on"
        )
    if out.empty:
        raise BundleError(f"no resident in {folder} has a known label at "
                          f"{feature_metadata.get('as_of_dates')}")
    out["flagged"] = False
    for _, index in out.groupby("as_of").indices.items():
        part = out.iloc[index]
        k = M.capacity_k(len(part), config.capacity)
        rank = M.ranks(part["score"].to_numpy(), part["resident_id"].astype(str).to_numpy(),
                       tiebreak=part["margin"].to_numpy())
        out.iloc[index, out.columns.get_loc("flagged")] = rank <= k
    origin = trained_in or _origin_borough(pinned) or f"the borough that trained {approval.model_name}"
    return Evaluation(
        out,
        {
            "name": approval.model_name,
            "version": approval.model_version,
            "run_id": None,
            "model_sha256": approval.model_sha256,
            "spec_hash": metadata.get("spec_hash"),
            "data_fingerprint": feature_metadata.get("data_fingerprint"),
            "trained_in": origin,
        },
        feature_metadata,
        _approval_doc(approval),
    )


def _bounded(config: ProjectConfig) -> bool:
    """Whether the config asks for bounded memory (build.memory_budget_gb or build.partitions)."""
    return config.build.memory_budget_gb is not None or config.build.partitions is not None


def _scored_rows(model: Any, frame: pd.DataFrame, home_rows: pd.DataFrame | None) -> pd.DataFrame:
    """The labelled rows of a feature matrix frame (those of `home_rows` only, when given) scored by the shipped
    model: resident_id, as_of, label (int), the attr__ columns, score (calibrated) and margin (raw), in the
    frame's order. Raises BundleError when the frame lacks one of the model's feature columns."""
    frame = frame.loc[frame["label"].notna()].reset_index(drop=True)
    if home_rows is not None:
        keys = home_rows.assign(resident_id=home_rows["resident_id"].astype(str),
                                as_of=pd.to_datetime(home_rows["as_of"]))
        frame = frame.assign(resident_id=frame["resident_id"].astype(str)).merge(
            keys[["resident_id", "as_of"]], on=["resident_id", "as_of"], how="inner")
    missing = [c for c in model.feature_columns if c not in frame.columns]
    if missing:
        raise BundleError(f"the features built here lack {len(missing)} of the model's columns, e.g. {missing[:3]}")
    margin = model.raw_margin(frame) if len(frame) else np.zeros(0)
    out = frame[["resident_id", "as_of", "label", *[c for c in frame.columns if c.startswith("attr__")]]].copy()
    out["label"] = out["label"].astype(int)
    out["score"] = model.calibrator.predict(margin) if len(frame) else np.zeros(0)
    out["margin"] = margin
    return out


def _scored_per_partition(
    model: Any,
    spec_config: ProjectConfig,
    folder: Path,
    test_dates: Callable[[dt.date], list[dt.date]],
    home_rows: pd.DataFrame | None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """_scored_rows over the whole borough, built and scored one partition at a time (contract/streaming.py
    validates the folder and writes every table per partition, households and addresses whole, into a
    temporary folder; features/partition.py's count from build.partitions or build.memory_budget_gb at the
    test dates) in the system's temporary folder (TMPDIR). Held at once: one partition's tables and feature matrix, and the scored rows so far (a
    dozen columns per labelled test row, no feature). Returns the rows in the whole build's order (as_of,
    resident_id) and the matrix metadata summed over partitions, as a whole build gives them."""
    import shutil
    import tempfile
    import time

    from earlysignal.contract.reading import _manifest_extract_date, read_manifest
    from earlysignal.contract.schemas import MANIFEST_NAME
    from earlysignal.contract.streaming import EVENTS_PART, load_partitioned_data
    from earlysignal.features.builder import build_feature_matrix
    from earlysignal.features.partition import (
        PartitionData,
        PartTotals,
        _chosen_partitions,
        assign_partitions,
        household_components,
    )
    from earlysignal.scoring import check_sources

    started = time.perf_counter()
    dates = test_dates(_manifest_extract_date(read_manifest(folder), folder / MANIFEST_NAME))

    def assign(residents: pd.DataFrame, residency: pd.DataFrame) -> tuple[np.ndarray, int]:
        count = _chosen_partitions(spec_config, len(residents), dates, None)
        components = household_components(residents, residency)
        return assign_partitions(components, np.ones(components.size), count), count

    # The system's temporary folder (TMPDIR): the borough's data folder may be read-only.
    work = Path(tempfile.mkdtemp(prefix="earlysignal-transfer-"))
    try:
        data = load_partitioned_data(folder, spec_config, work, assign, write_quarantine=False)
        check_sources(spec_config, SimpleNamespace(events=pd.DataFrame({"source": sorted(data.event_sources)}),
                                                   manifest=data.manifest), folder)
        parts: list[pd.DataFrame] = []
        totals = PartTotals()
        for partition in range(data.partitions):
            subset = PartitionData.from_streamed(data, partition)
            (data.events_dir / EVENTS_PART.format(partition)).unlink(missing_ok=True)
            if len(subset.residents) == 0:
                continue
            matrix = build_feature_matrix(spec_config, subset, as_of_dates=dates, with_labels=True)
            del subset
            if len(matrix.frame):
                totals.add(matrix.metadata, matrix.frame)
                parts.append(_scored_rows(model, matrix.frame, home_rows))
            del matrix
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if totals.metadata is None:
        raise BundleError(f"no resident in {folder} is in the cohort at {[d.isoformat() for d in dates]}")
    out = pd.concat(parts, ignore_index=True)
    order = np.lexsort((out["resident_id"].to_numpy(dtype=object).astype(str), out["as_of"].to_numpy()))
    return out.iloc[order].reset_index(drop=True), totals.finish(data.partitions, True, started)


def _origin_borough(pinned: str) -> str | None:
    """release.borough of the config the model was trained with, when its training run is readable here."""
    from earlysignal.modeling.artifacts import _download
    from earlysignal.modeling.registry import resolve_model_version

    try:
        import json

        from earlysignal.config import config_from_dict

        run_id = resolve_model_version(pinned).run_id
        raw = json.loads(_download(run_id, "config/config.json").read_text(encoding="utf-8"))
        return config_from_dict(raw, source=f"config of run {run_id}").release.borough or None
    except (EarlySignalError, OSError, ValueError, KeyError):
        # The run lives in the origin borough's tracking store and was not shipped: the caller names it.
        return None

