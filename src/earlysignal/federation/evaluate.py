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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    data = contract.load_linked_data(folder, spec_config, write_quarantine=False)
    check_sources(spec_config, data, folder)
    home_rows = None
    if home_model_uri is not None:
        home_rows = home_test_rows(home_model_uri)
        dates = sorted({pd.Timestamp(d).date() for d in home_rows["as_of"].unique()})
    elif as_of_dates:
        dates = sorted(as_of_dates)
    else:
        dates = default_test_dates(config, data.extract_date)
    if not dates:
        raise BundleError(f"no test as-of date has a closed label window before the extract date {data.extract_date} "
                          f"in {folder}; pass --as-of dates")
    matrix = features.build_feature_matrix(spec_config, data, as_of_dates=dates, with_labels=True)
    frame = matrix.frame.loc[matrix.frame["label"].notna()].reset_index(drop=True)
    if home_rows is not None:
        keys = home_rows.assign(resident_id=home_rows["resident_id"].astype(str),
                                as_of=pd.to_datetime(home_rows["as_of"]))
        frame = frame.assign(resident_id=frame["resident_id"].astype(str)).merge(
            keys[["resident_id", "as_of"]], on=["resident_id", "as_of"], how="inner")
        if len(frame) != len(keys):
            raise BundleError(
                f"the shipped model could be scored on {len(frame):,} of the {len(keys):,} test rows of "
                f"{home_model_uri}; the data in {folder} is not the data that model was evaluated on"
            )
    if frame.empty:
        raise BundleError(f"no resident in {folder} has a known label at {[d.isoformat() for d in dates]}")
    missing = [c for c in model.feature_columns if c not in frame.columns]
    if missing:
        raise BundleError(f"the features built here lack {len(missing)} of the model's columns, e.g. {missing[:3]}")
    margin = model.raw_margin(frame)
    out = frame[["resident_id", "as_of", "label", *[c for c in frame.columns if c.startswith("attr__")]]].copy()
    out["label"] = out["label"].astype(int)
    out["score"] = model.calibrator.predict(margin)
    out["margin"] = margin
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
            "data_fingerprint": matrix.metadata.get("data_fingerprint"),
            "trained_in": origin,
        },
        matrix.metadata,
        _approval_doc(approval),
    )


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

