"""The audit's linkage section: how well the records were joined up, read from the link output.

Everything here comes from link_quality.json as `earlysignal link` wrote it (carried in the feature
sidecar under `linkage`); the unlinked-by-group table is already suppressed and rounded there with
the audit's `min_cell` and `round_to`.
"""

from __future__ import annotations

import math
from typing import Any

# Cluster sizes (records per cluster: residents and the clusters left out) shown to the board in these bands.
CLUSTER_BANDS: tuple[tuple[int, int | None], ...] = ((1, 1), (2, 2), (3, 5), (6, 10), (11, 20), (21, 50), (51, None))
GROUP_ORDER = ("sex", "ethnicity", "age_band", "tenure")


def _band(size: int) -> str:
    for low, high in CLUSTER_BANDS:
        if size >= low and (high is None or size <= high):
            return str(low) if low == high else f"{low}+" if high is None else f"{low}-{high}"
    return str(size)


def linkage_section(linkage: dict[str, Any] | None, min_cell: int = 10, round_to: int = 5) -> dict[str, Any] | None:
    """The audit.json `data.linkage` block from a feature sidecar's `linkage` entry; None when not linked by us.

    Returns link_run_id, code-list hashes, threshold, per-source linked and dropped shares (with the source's
    pairwise precision and recall against ground truth when known), clusters (every cluster the link
    found, residents and those left out) and clusters per size band (share of clusters), match weights (m, u, log2 m/u per comparison level), ground truth and
    clerical-review precision/recall/F1 when present, and unlinked rates by group.

    Counts of records and residents are rounded to round_to like every count in the report, and a
    cluster-size band of 1 to min_cell - 1 residents shows no count or share (small numbers).
    """
    from earlysignal.audit.disclosure import published_count, published_rate

    if not linkage:
        return None
    quality = linkage.get("quality") or {}
    sizes = {int(k): int(v) for k, v in (quality.get("cluster_sizes") or {}).items()}
    total = sum(sizes.values())
    bands: dict[str, int] = {}
    for size, count in sorted(sizes.items()):
        bands[_band(size)] = bands.get(_band(size), 0) + count
    weights = []
    for level in quality.get("match_weights") or []:
        m, u = level.get("m_probability"), level.get("u_probability")
        weight = math.log2(m / u) if m and u and m > 0 and u > 0 else None
        trained = level.get("m_probability_trained")
        trained_weight = math.log2(trained / u) if trained and u and trained > 0 and u > 0 else None
        weights.append({"comparison": level.get("comparison"), "level": level.get("level"),
                        "m": m, "u": u, "weight": None if weight is None else round(weight, 2),
                        # Set only where linkage.max_disagreement_penalty floored the trained weight (ADR 0022).
                        "floored": "m_probability_trained" in level,
                        "trained_weight": None if trained_weight is None else round(trained_weight, 2)})
    groups = quality.get("unlinked_by_group") or {}
    return {
        "link_run_id": linkage.get("link_run_id"),
        "code_lists_sha256": linkage.get("code_lists_sha256"),
        "code_lists": linkage.get("code_lists") or {},
        "threshold": quality.get("threshold"),
        "prior_match_probability": quality.get("prior_match_probability"),
        "records": None if quality.get("records") is None else published_count(quality["records"], min_cell, round_to),
        "residents": (None if quality.get("residents") is None
                      else published_count(quality["residents"], min_cell, round_to)),
        # Clusters include those left out for want of a birth date or sex, so can outnumber residents.
        "clusters": (None if quality.get("clusters") is None
                     else published_count(quality["clusters"], min_cell, round_to)),
        "pairs_compared": quality.get("pairs_compared"),
        "per_source": [
            # Link runs before the per-source dropped share and accuracy existed leave them None. Counts are
            # rounded (None when small) like every count in the report.
            {"source": s, "dropped_records": None, "dropped_share": None, **v,
             **{k: published_count(v[k], min_cell, round_to) for k in ("records", "dropped_records")
                if v.get(k) is not None},
             **{f"truth_{k}": ((quality.get("ground_truth") or {}).get("per_source") or {}).get(s, {}).get(k)
                for k in ("precision", "recall")}}
            for s, v in sorted((quality.get("per_source") or {}).items())
        ],
        "cluster_sizes": [{"size": band, "clusters": published_count(n, min_cell, round_to),
                           "share": published_rate(n, total, min_cell, round_to)}
                          for band, n in bands.items()],
        "match_weights": weights,
        "max_disagreement_penalty": quality.get("max_disagreement_penalty"),
        "ground_truth": quality.get("ground_truth"),
        "clerical_review": quality.get("clerical_review"),
        "unlinked_by_group": [
            {"characteristic": name, **row}
            for name in [*GROUP_ORDER, *sorted(set(groups) - set(GROUP_ORDER))]
            for row in groups.get(name, [])
        ],
    }
