"""How much of a release bundle is withheld: the share of its figures shown and withheld, per section.

A figure is a number a board reads in `release.json`: per test date and over all dates, precision and recall at
capacity, AUC and their intervals, escalations and prevalence; the flagged outcomes' shares; each calibration
band's observed rate; each fairness group's rates, counts and ratios (with intervals). Shown: a number; withheld:
null where the bundle withholds it (small numbers, or complementary suppression, ADR 0024). Labels, flags, dates,
sizes nobody withholds (cohort, k, n per date) and reasons are not figures. docs/federation.md, "How small a
borough can be".

    python benchmarks/release_withheld.py reports/release/*/release.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

_PER_DATE = ("positives", "base_rate", "precision_at_capacity", "recall_at_capacity", "roc_auc")
_SUMMARY = ("precision_at_capacity", "recall_at_capacity", "roc_auc")
_GROUP = ("auc", "calibration_ratio", "fnr", "fpr", "mean_score", "positives", "precision", "prevalence", "recall",
          "selection_rate", "flagged")


def _count(values: list[Any]) -> tuple[int, int]:
    """(shown, withheld) of a list of figures."""
    return sum(v is not None for v in values), sum(v is None for v in values)


def figures(release: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """(shown, withheld) per section of one release.json."""
    out: dict[str, tuple[int, int]] = {}
    performance = release["performance"]
    summary = performance["summary"]
    out["headline (summary over dates)"] = _count(
        [summary[m].get(part) for m in _SUMMARY for part in ("value", "ci_low", "ci_high")]
    )
    out["per test date"] = _count([row.get(m) for row in performance["per_as_of"] for m in _PER_DATE])
    out["flagged outcomes"] = _count(
        [row.get(m) for row in release.get("flagged_outcomes", []) for m in ("escalated_share", "missed_share")]
    )
    out["calibration bands"] = _count([band.get("observed") for band in release.get("calibration", [])])
    group_values, ratio_values = [], []
    for table in release["fairness"]["characteristics"]:
        for group in table["groups"]:
            group_values += [group.get(m) for m in _GROUP]
            for ratio in (group.get("ratios") or {}).values():
                ratio_values += [ratio.get("ratio"), ratio.get("low"), ratio.get("high")]
    out["fairness groups"] = _count(group_values)
    out["fairness ratios"] = _count(ratio_values)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundles", nargs="+", type=Path, help="release.json files")
    args = parser.parse_args()
    for path in args.bundles:
        release = json.loads(path.read_text(encoding="utf-8"))
        sections = figures(release)
        shown = sum(s for s, _ in sections.values())
        withheld = sum(w for _, w in sections.values())
        per_date = release["performance"]["per_as_of"]
        escalations = release["performance"].get("positives")
        print(f"## {release['borough']} ({path}): {len(per_date)} test dates, cohort {release['performance']['n']:,} "
              f"rows, escalations {escalations}")
        print(f"withheld {withheld} of {shown + withheld} figures ({withheld / max(shown + withheld, 1):.0%})")
        for name, (s, w) in sections.items():
            print(f"  {name}: {w} of {s + w} withheld")


if __name__ == "__main__":
    main()
