"""The approval gate: a named person approves one registered model version, after reading its audit.

Approval is recorded as tags on the registered model version (who, when, the SHA-256 of the
audit report they read and of the model's artefact files) and moves the `champion` alias to
it. Scoring calls `require_approved`, which refuses a model that was never approved, whose
approval was revoked, that is not the current champion, or whose files changed since approval.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from earlysignal.errors import ApprovalError
from earlysignal.fingerprint import directory_sha256, file_sha256

CHAMPION_ALIAS = "champion"
TAG_PREFIX = "approval."
STATUS_APPROVED = "approved"
STATUS_REVOKED = "revoked"

# The audit report names the model it describes in a meta tag, so approving version 3 with
# version 2's report is caught rather than recorded.
_REPORT_MODEL_META = re.compile(r'<meta\s+name="earlysignal-model"\s+content="([^"]*)"', re.IGNORECASE)

_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[A-Za-z0-9_\-]+))$")


@dataclass(frozen=True)
class ApprovalRecord:
    """What the registry says about one version's approval."""

    model_name: str
    model_version: str
    status: str  # "approved" or "revoked"
    approver: str
    approved_at: str  # ISO 8601, UTC
    report_sha256: str
    model_sha256: str
    note: str | None = None
    report_path: str | None = None
    revoked_by: str | None = None
    revoked_at: str | None = None
    revoke_reason: str | None = None
    # What the approver accepted, from the audit.json beside the report: "met" / "not met", and how
    # many fairness findings the report flagged. None when there was no audit.json to read.
    criterion: str | None = None
    findings: int | None = None

    @property
    def is_approved(self) -> bool:
        """True while the approval stands (not revoked)."""
        return self.status == STATUS_APPROVED

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON and reports."""
        return asdict(self)


def _client() -> Any:
    from mlflow import MlflowClient

    from earlysignal.tracking import configure_tracking

    # The project's one rule for where the registry is: MLFLOW_TRACKING_URI, else ./mlruns.
    configure_tracking()
    return MlflowClient()


def parse_model_uri(model_uri: str) -> tuple[str, str | None, str | None]:
    """Split models:/name/3 or models:/name@alias into (name, version, alias)."""
    match = _MODEL_URI.match(model_uri.strip())
    if not match:
        raise ApprovalError(
            f"model URI {model_uri!r} is not of the form models:/NAME/VERSION or models:/NAME@ALIAS"
        )
    return match.group("name"), match.group("version"), match.group("alias")


def resolve_model_version(model_uri: str) -> tuple[str, str]:
    """The (name, version) a models:/ URI points to now; an alias is looked up in the registry."""
    from mlflow.exceptions import MlflowException

    name, version, alias = parse_model_uri(model_uri)
    client = _client()
    try:
        if alias is not None:
            return name, str(client.get_model_version_by_alias(name, alias).version)
        client.get_model_version(name, version)
    except MlflowException as error:
        target = f"alias @{alias}" if alias is not None else f"version {version}"
        raise ApprovalError(
            f"model {name!r} has no {target} in the registry ({error.message.splitlines()[0]}); "
            "check the name and version with the MLflow UI or `mlflow models` and try again"
        ) from None
    return name, str(version)


def _get_version(name: str, version: str | int) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return _client().get_model_version(name, str(version))
    except MlflowException:
        raise ApprovalError(
            f"model {name!r} version {version} is not in the model registry; "
            "check the name and version (train registers new versions)"
        ) from None


def model_artifact_sha256(model: str | tuple[str, str | int]) -> str:
    """SHA-256 over the files of a registered model version (a models:/ URI or (name, version))."""
    import mlflow

    from earlysignal.tracking import configure_tracking

    configure_tracking()
    if isinstance(model, str):
        name, version = resolve_model_version(model)
    else:
        name, version = model[0], str(model[1])
        _get_version(name, version)
    with tempfile.TemporaryDirectory(prefix="earlysignal-approval-") as tmp:
        # Download into a fresh folder so a remote store and a local one hash the same way.
        local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=tmp)
        return directory_sha256(local)


def _now_utc() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def approve_model(
    name: str,
    version: str | int,
    approver: str,
    report_path: str | Path,
    note: str | None = None,
) -> ApprovalRecord:
    """Record a named person's approval of a model version (after its audit) and make it the champion."""
    version = str(version)
    if not approver or not approver.strip():
        raise ApprovalError("an approval needs the approver's name (--approver \"NAME\")")
    report = Path(report_path)
    if not report.is_file():
        raise ApprovalError(
            f"audit report {report} does not exist; run `earlysignal audit --model models:/{name}/{version}` "
            "and approve with the report it writes"
        )
    _get_version(name, version)
    head = report.read_bytes()[:20_000].decode("utf-8", errors="replace")
    named = _REPORT_MODEL_META.search(head)
    if named and named.group(1) != f"{name}/{version}":
        raise ApprovalError(
            f"audit report {report} describes model {named.group(1)}, not {name}/{version}; "
            f"approve with the report for {name} version {version}"
        )
    criterion, findings = _audit_summary(report, name, version)
    record = ApprovalRecord(
        model_name=name,
        model_version=version,
        status=STATUS_APPROVED,
        approver=approver.strip(),
        approved_at=_now_utc(),
        report_sha256=file_sha256(report),
        model_sha256=model_artifact_sha256((name, version)),
        note=note,
        report_path=str(report),
        criterion=criterion,
        findings=findings,
    )
    client = _client()
    # A fresh approval replaces any earlier revocation of this version.
    existing = client.get_model_version(name, version).tags
    for key in ("revoked_by", "revoked_at", "revoke_reason", "note", "criterion", "findings"):
        if TAG_PREFIX + key in existing:
            client.delete_model_version_tag(name, version, TAG_PREFIX + key)
    for key in ("approver", "approved_at", "report_sha256", "model_sha256", "note", "report_path", "criterion", "findings"):
        value = getattr(record, key)
        if value is not None:
            client.set_model_version_tag(name, version, TAG_PREFIX + key, str(value))
    client.set_model_version_tag(name, version, TAG_PREFIX + "status", STATUS_APPROVED)
    client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
    return record


def _audit_summary(report: Path, name: str, version: str) -> tuple[str | None, int | None]:
    """Criterion verdict and number of findings from the audit.json written beside the report, if any."""
    path = report.with_name("audit.json")
    if not path.is_file():
        return None, None
    try:
        audit = json.loads(path.read_text(encoding="utf-8"))
        model = audit["model"]
        if (str(model["name"]), str(model["version"])) != (name, version):
            return None, None
        met = audit["summary"]["criterion"].get("met")
        verdict = None if met is None else ("met" if met else "not met")
        return verdict, len(audit["fairness"]["findings"])
    except (ValueError, KeyError, TypeError):
        # A hand-edited or foreign audit.json says nothing reliable; the report hash is what counts.
        return None, None


def revoke_approval(name: str, version: str | int, by: str, reason: str) -> None:
    """Withdraw a version's approval: record who, when and why, and remove `champion` if it points there."""
    version = str(version)
    if not by or not by.strip():
        raise ApprovalError("a revocation needs the name of the person revoking (--by \"NAME\")")
    if not reason or not reason.strip():
        raise ApprovalError("a revocation needs a reason (--reason \"...\"), so the board can see why")
    if approval_status(name, version) is None:
        raise ApprovalError(f"model {name!r} version {version} has no approval to revoke")
    client = _client()
    client.set_model_version_tag(name, version, TAG_PREFIX + "status", STATUS_REVOKED)
    client.set_model_version_tag(name, version, TAG_PREFIX + "revoked_by", by.strip())
    client.set_model_version_tag(name, version, TAG_PREFIX + "revoked_at", _now_utc())
    client.set_model_version_tag(name, version, TAG_PREFIX + "revoke_reason", reason.strip())
    if _champion_version(name) == version:
        client.delete_registered_model_alias(name, CHAMPION_ALIAS)


def approval_status(name: str, version: str | int) -> ApprovalRecord | None:
    """The version's approval record from its registry tags, or None if it was never approved."""
    tags = _get_version(name, version).tags or {}
    status = tags.get(TAG_PREFIX + "status")
    if status is None:
        return None
    return ApprovalRecord(
        model_name=name,
        model_version=str(version),
        status=status,
        approver=tags.get(TAG_PREFIX + "approver", ""),
        approved_at=tags.get(TAG_PREFIX + "approved_at", ""),
        report_sha256=tags.get(TAG_PREFIX + "report_sha256", ""),
        model_sha256=tags.get(TAG_PREFIX + "model_sha256", ""),
        note=tags.get(TAG_PREFIX + "note"),
        report_path=tags.get(TAG_PREFIX + "report_path"),
        revoked_by=tags.get(TAG_PREFIX + "revoked_by"),
        revoked_at=tags.get(TAG_PREFIX + "revoked_at"),
        revoke_reason=tags.get(TAG_PREFIX + "revoke_reason"),
        criterion=tags.get(TAG_PREFIX + "criterion"),
        findings=int(tags[TAG_PREFIX + "findings"]) if TAG_PREFIX + "findings" in tags else None,
    )


def _champion_version(name: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(_client().get_model_version_by_alias(name, CHAMPION_ALIAS).version)
    except MlflowException:
        return None


def require_approved(model_uri: str) -> None:
    """Raise ApprovalError unless the URI's version is the approved, unrevoked, untampered champion."""
    name, version = resolve_model_version(model_uri)
    record = approval_status(name, version)
    approve_hint = (
        f'earlysignal approve --model {name} --version {version} --approver "NAME" --report PATH'
    )
    if record is None:
        raise ApprovalError(
            f"model {name} version {version} has not been approved for scoring. "
            f"Audit it (earlysignal audit --model models:/{name}/{version}), have the board read the report, "
            f"then approve it: {approve_hint}"
        )
    if not record.is_approved:
        raise ApprovalError(
            f"model {name} version {version} is not approved: its approval was revoked by {record.revoked_by} "
            f"at {record.revoked_at} ({record.revoke_reason}). "
            f"Score with an approved champion (models:/{name}@champion) or re-audit and approve again."
        )
    champion = _champion_version(name)
    if champion != version:
        current = f"version {champion}" if champion else "no version"
        raise ApprovalError(
            f"model {name} version {version} is not the approved champion ({current} holds the champion alias). "
            f"Score with models:/{name}@champion, or approve version {version}: {approve_hint}"
        )
    actual = model_artifact_sha256((name, version))
    if actual != record.model_sha256:
        raise ApprovalError(
            f"model {name} version {version} has changed since it was approved: its artefact files hash to "
            f"{actual[:12]}, not the approved {record.model_sha256[:12]}. Do not score with it; "
            "find out who changed the files, then re-register, re-audit and approve the model again."
        )
