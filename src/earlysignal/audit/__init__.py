"""The governance audit: fairness by group and intersection with intervals, small-number
suppression, proxy checks and global importance, rendered as the board's report.

`run_audit` is the stage; `build_audit` computes the document from in-memory inputs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from earlysignal.audit.assemble import build_audit
from earlysignal.config import ProjectConfig

__all__ = ["AuditResult", "build_audit", "default_output_dir", "load_audit", "run_audit"]


@dataclass(frozen=True)
class AuditResult:
    """Where the report went and what it says."""

    html_path: Path
    json_path: Path
    model_name: str
    model_version: str
    run_id: str
    audit: dict[str, Any]

    @property
    def findings(self) -> list[dict[str, Any]]:
        """The flagged fairness findings."""
        return list(self.audit["fairness"]["findings"])


def default_output_dir(model_name: str, model_version: str) -> Path:
    """reports/audit/<model>-v<version>/."""
    return Path("reports") / "audit" / f"{model_name}-v{model_version}"


def run_audit(
    model_uri: str,
    config: ProjectConfig | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    *,
    log_to_mlflow: bool = True,
) -> AuditResult:
    """Audit a registered model version: write audit.html and audit.json, and log both to its MLflow run.

    The training run's own config defines the label, cohort and capacity; `config`, when given,
    supplies the audit settings and governance record (they may be updated after training).
    """
    from earlysignal.approval import approval_status, protected_report_paths, record_audit_report
    from earlysignal.atomic import write_json, write_text
    from earlysignal.config import load_config
    from earlysignal.modeling.artifacts import load_scoring_model, load_training_artifacts
    from earlysignal.report.render import render_audit_html
    from earlysignal.tracking import configure_tracking

    configure_tracking()
    # Approvals are checked against today's approvers and ledger, never the training run's copy.
    approval_config = config if config is not None else load_config()
    artifacts = load_training_artifacts(model_uri)
    model = load_scoring_model(artifacts.model_uri)
    sample = artifacts.explain_sample
    contributions = model.contributions(sample) if len(sample) else None
    metadata = artifacts.feature_metadata
    audit = build_audit(
        config=artifacts.config,
        model={
            "name": artifacts.model_name,
            "version": artifacts.model_version,
            "uri": artifacts.model_uri,
            "run_id": artifacts.run_id,
            "spec_hash": metadata.get("spec_hash"),
            "data_fingerprint": metadata.get("data_fingerprint"),
        },
        predictions=artifacts.test_predictions,
        metrics=artifacts.metrics,
        feature_metadata=metadata,
        explain_sample=sample,
        contributions=contributions,
        approval=approval_status(artifacts.model_name, artifacts.model_version, approval_config),
        audit_config=config,
    )
    folder = Path(out_dir) if out_dir is not None else default_output_dir(artifacts.model_name, artifacts.model_version)
    if (folder / "necessity.json").exists():  # written by `earlysignal necessity --model` for this version
        audit["necessity"] = json.loads((folder / "necessity.json").read_text(encoding="utf-8"))
        from earlysignal.audit.consistency import necessity_notes

        # The Data section's sources and the necessity table must read as one account.
        audit["data"]["necessity_sentence"], audit["necessity_notes"] = necessity_notes(audit)
    html = render_audit_html(audit)
    # A report someone approved is never overwritten; it stays as it was read (and in the archive).
    html_target, json_target = protected_report_paths(approval_config, folder, html)
    html_path = write_text(html, html_target)
    json_path = write_json(audit, json_target)
    record_audit_report(approval_config, artifacts.model_name, artifacts.model_version, html_path, json_path)
    if log_to_mlflow:
        from mlflow import MlflowClient

        client = MlflowClient()
        client.log_artifact(artifacts.run_id, str(html_path), artifact_path="audit")
        client.log_artifact(artifacts.run_id, str(json_path), artifact_path="audit")
    return AuditResult(html_path, json_path, artifacts.model_name, artifacts.model_version, artifacts.run_id, audit)


def load_audit(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an audit.json back."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
