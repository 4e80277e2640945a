"""The ranked lists `score` wrote: one folder per list holding ranked.parquet and summary.json."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from earlysignal.errors import EarlySignalError


@dataclass(frozen=True)
class PastList:
    """One past ranked list: where it is, its as_of, what `score` recorded, and the list itself."""

    path: Path
    as_of: dt.date
    summary: dict[str, Any]
    ranked: pd.DataFrame = field(repr=False)

    @property
    def capacity_k(self) -> int:
        return int(self.summary.get("capacity_k", int(self.ranked["flagged"].sum())))


def find_past_lists(scores_dir: str | Path) -> list[PastList]:
    """Every list under scores_dir (folders with summary.json and ranked.parquet), oldest as_of first.

    Lists scored with --allow-unapproved (summary-UNAPPROVED.json, ranked-UNAPPROVED.parquet) are found
    too; their summary says so (`approval_checked` false), and the report shows it.
    Raises EarlySignalError when a folder has a summary but its list cannot be read.
    """
    root = Path(scores_dir)
    if not root.is_dir():
        return []
    found: list[PastList] = []
    summaries = sorted([*root.glob("*/summary.json"), *root.glob("*/summary-UNAPPROVED.json")])
    for summary_path in summaries:
        folder = summary_path.parent
        ranked_path = folder / summary_path.name.replace("summary", "ranked").replace(".json", ".parquet")
        try:
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
            as_of = dt.date.fromisoformat(str(summary["as_of"]))
        except (OSError, ValueError, KeyError) as error:
            raise EarlySignalError(
                f"{summary_path}: not a summary written by `earlysignal score` ({error}); move it out of {root}"
            ) from None
        if not ranked_path.exists():
            raise EarlySignalError(
                f"{folder}: {summary_path.name} but no {ranked_path.name}; re-run `earlysignal score` or remove the folder"
            )
        ranked = pd.read_parquet(ranked_path, columns=["resident_id", "score", "rank", "flagged"])
        ranked["resident_id"] = ranked["resident_id"].astype(str)
        found.append(PastList(folder, as_of, summary, ranked))
    # Two lists for one as_of (e.g. two model versions) both stay; order by as_of, then folder name.
    return sorted(found, key=lambda item: (item.as_of, item.path.name))
