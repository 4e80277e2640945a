"""The board's switch-off criteria (config `monitoring.switch_off`), each evaluated green, amber or red."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from earlysignal.config import SwitchOffCriterion

GREEN, AMBER, RED, NOT_EVALUABLE = "green", "amber", "red", "not evaluable"
_ORDER = {NOT_EVALUABLE: -1, GREEN: 0, AMBER: 1, RED: 2}


def worst(statuses: Sequence[str]) -> str:
    """The most severe status; 'not evaluable' only when nothing could be evaluated."""
    return max(statuses, key=lambda s: _ORDER[s], default=NOT_EVALUABLE)


def _banded(value: float | None, amber: float | None, red: float) -> str:
    if value is None:
        return NOT_EVALUABLE
    if value > red:
        return RED
    if amber is not None and value > amber:
        return AMBER
    return GREEN


def _below_promise(criterion: SwitchOffCriterion, metric: str, lists: Sequence[dict[str, Any]],
                   promise: dict[str, Any] | None) -> dict[str, Any]:
    bound = None
    if promise and isinstance(promise.get(metric), dict):
        entry = promise[metric]
        bound = entry.get("ci_low") if entry.get("ci_low") is not None else entry.get("value")
    evaluated = [item for item in lists if item["labels_known"] and item[metric]["value"] is not None]
    version = (promise or {}).get("model_version")
    if version is not None:
        # The audit promised this version's performance; lists made by other versions are not held to it.
        evaluated = [item for item in evaluated if item.get("model_version") in (None, version)]
    if bound is None or not evaluated:
        if promise is None:
            why = "no audit to compare with (pass --audit or set monitoring.audit)"
        elif bound is None:
            # An audit that found too few escalations withholds its headline figure (docs/audit.md).
            why = (f"the audit published no {metric.replace('_', ' ')} to compare with (withheld under the "
                   "small-number rules: too few escalations in its test data)")
        else:
            why = "no list's label horizon has closed yet"
        return {"status": NOT_EVALUABLE, "detail": why, "bound": bound, "streak": 0, "evaluated_lists": len(evaluated)}
    streak = 0
    for item in reversed(evaluated):
        if item[metric]["value"] < bound:
            streak += 1
        else:
            break
    status = RED if streak >= criterion.consecutive else (AMBER if streak else GREEN)
    words = metric.replace("_", " ")
    detail = (f"{streak} latest list(s) in a row with {words} below the audit's lower bound {bound:.3f} "
              f"(red at {criterion.consecutive}); {len(evaluated)} list(s) evaluated")
    return {"status": status, "detail": detail, "bound": bound, "streak": streak, "evaluated_lists": len(evaluated)}


def _volume(criterion: SwitchOffCriterion, sources: Sequence[dict[str, Any]]) -> dict[str, Any]:
    per_source = {}
    for item in sources:
        status = _banded(item["drop"], criterion.amber, criterion.red)  # type: ignore[arg-type]
        if status in (AMBER, RED) and not item["significant"]:
            status = GREEN  # a drop this size happens by chance in a source this small
        if item["silent_months"]:
            status = RED
        per_source[item["source"]] = status
    flagged = sorted(s for s, v in per_source.items() if v in (AMBER, RED))
    detail = (f"volume drop above {criterion.red:.0%} or a silent month is red, above "
              f"{(criterion.amber or criterion.red):.0%} amber (drops that chance explains, p >= alpha, stay green); "
              + (f"flagged: {', '.join(f'{s} ({per_source[s]})' for s in flagged)}" if flagged else "no source flagged"))
    return {"status": worst(list(per_source.values())), "detail": detail, "per_source": per_source}


def _psi(criterion: SwitchOffCriterion, latest_psi: dict[str, float] | None, sources: Sequence[str]) -> dict[str, Any]:
    if latest_psi is None:
        return {"status": NOT_EVALUABLE, "detail": "no scored list with a drift summary", "per_source": {}}
    per_source = {s: _banded(latest_psi.get(s), criterion.amber, criterion.red) for s in sources if s in latest_psi}  # type: ignore[arg-type]
    flagged = sorted(s for s, v in per_source.items() if v in (AMBER, RED))
    detail = (f"largest PSI of a source's windowed features in the latest list (features over the whole record "
              f"grow with its length and are not judged); above {criterion.red} red"
              + (f", above {criterion.amber} amber" if criterion.amber is not None else "")
              + (f"; flagged: {', '.join(f'{s} ({latest_psi[s]:.2f})' for s in flagged)}" if flagged else "; no source flagged"))
    return {"status": worst(list(per_source.values())), "detail": detail, "per_source": per_source}


def evaluate_criteria(
    criteria: Sequence[SwitchOffCriterion],
    lists: Sequence[dict[str, Any]],
    promise: dict[str, Any] | None,
    sources: Sequence[dict[str, Any]],
    latest_psi: dict[str, float] | None,
) -> list[dict[str, Any]]:
    """One entry per criterion: name, kind, the board's text, status and what it was based on."""
    out = []
    for criterion in criteria:
        if criterion.kind == "precision_below_promise":
            result = _below_promise(criterion, "precision_at_capacity", lists, promise)
        elif criterion.kind == "recall_below_promise":
            result = _below_promise(criterion, "recall_at_capacity", lists, promise)
        elif criterion.kind == "source_volume_drop":
            result = _volume(criterion, sources)
        else:
            result = _psi(criterion, latest_psi, [s["source"] for s in sources])
        out.append({"name": criterion.name, "kind": criterion.kind, "text": criterion.text, **result})
    return out
