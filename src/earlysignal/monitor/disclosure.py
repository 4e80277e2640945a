"""Small-number rules for the monitoring report: the audit's rules (docs/audit.md), applied per past list.

A past list is one small table: its flagged residents, the escalations among them and the ones it
missed. Published beside a rounded count, an exact rate undoes the rounding (a precision of 0.0217 on
a list of 100 flagged can only be 2 of 92), so every rate is rounded numerator over rounded
denominator and withheld when either count is small (1 to min_cell - 1); AUC is withheld when the
escalations or the non-escalations are few, and shown to two decimals otherwise; the bootstrap
intervals are kept only when no count behind them (flagged who escalated, flagged who did not,
missed escalations) is small, since an interval's width tells 1, 2 or 3 cases apart. The board's
switch-off criteria are evaluated on the exact figures before this is applied: a status is published,
the small count behind it is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from earlysignal.audit.disclosure import is_small, published_count, published_figure, published_rate


@dataclass(frozen=True)
class ListCounts:
    """Exact counts behind one past list's figures (never published as such).

    known: residents whose outcome is known (not censored); positives: escalations among them;
    flagged_known: flagged residents whose outcome is known; flagged_positives: escalations among them.
    """

    known: int
    positives: int
    flagged_known: int
    flagged_positives: int

    @property
    def missed(self) -> int:
        """Escalations the list did not flag."""
        return self.positives - self.flagged_positives

    @property
    def flagged_negatives(self) -> int:
        """Flagged residents who did not escalate."""
        return self.flagged_known - self.flagged_positives


def _withheld() -> dict[str, Any]:
    return {"value": None, "ci_low": None, "ci_high": None, "withheld": True}


def publish_list_metrics(entry: dict[str, Any], counts: ListCounts, min_cell: int, round_to: int) -> dict[str, Any]:
    """A copy of a closed list's entry with precision, recall, AUC, base rate and intervals as published.

    entry holds the exact {value, ci_low, ci_high} of precision_at_capacity, recall_at_capacity and
    roc_auc (list_performance); a withheld figure becomes {value: None, ..., withheld: True}.
    """
    out = dict(entry)
    small = [is_small(c, min_cell) for c in (counts.flagged_positives, counts.flagged_negatives, counts.missed)]
    keep_intervals = not any(small)
    rates = {
        "precision_at_capacity": published_rate(counts.flagged_positives, counts.flagged_known, min_cell, round_to),
        "recall_at_capacity": published_rate(counts.flagged_positives, counts.positives, min_cell, round_to),
    }
    for metric, value in rates.items():
        if value is None:
            out[metric] = _withheld()
        else:
            exact = entry[metric]
            out[metric] = {"value": value,
                           "ci_low": exact.get("ci_low") if keep_intervals else None,
                           "ci_high": exact.get("ci_high") if keep_intervals else None}
    negatives = counts.known - counts.positives
    auc = entry["roc_auc"]
    if auc.get("value") is None:
        out["roc_auc"] = {"value": None, "ci_low": None, "ci_high": None}  # undefined: no escalation, or no other
    elif is_small(counts.positives, min_cell) or is_small(negatives, min_cell):
        out["roc_auc"] = _withheld()
    else:
        out["roc_auc"] = {"value": published_figure(auc["value"]),
                          "ci_low": published_figure(auc.get("ci_low")) if keep_intervals else None,
                          "ci_high": published_figure(auc.get("ci_high")) if keep_intervals else None}
    out["base_rate"] = published_rate(counts.positives, counts.known, min_cell, round_to)
    out["positives"] = published_count(counts.positives, min_cell, round_to)
    out["flagged_positives"] = published_count(counts.flagged_positives, min_cell, round_to)
    return out


def publish_response(share: dict[str, Any] | None, min_cell: int, round_to: int) -> dict[str, Any] | None:
    """The response share as published: rounded responded over rounded flagged, None when either is small."""
    if share is None:
        return None
    return {"flagged": published_count(share["flagged"], min_cell, round_to),
            "responded": published_count(share["responded"], min_cell, round_to),
            "share": published_rate(share["responded"], share["flagged"], min_cell, round_to)}
