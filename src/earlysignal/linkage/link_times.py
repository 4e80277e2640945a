"""When each linked record became part of its resident: the earliest date a chain of known links joined it.

Splink's pairwise match weight of two records depends only on those two records (given the trained
parameters; term-frequency adjustments aside), so a pair's link was knowable once both records were:
its *edge date* is the later of the two records' known dates. Clusters are connected components of the
pairs at or above the threshold, and a cluster at an earlier date is a component of the edges known by
then. Each cluster has an *anchor*, its earliest-known record among those that may anchor it (link: those
carrying a birth date, which the contract needs; ties: the smaller record key), and every
record's *linked date* is the earliest date at which known edges join it to the anchor: the minimax
(bottleneck) path value from the anchor, found by joining the cluster's edges in date order with a
union-find (docs/adr/0023-links-known-in-time.md). Everything the record brings to the resident (events,
outcomes, residency) is known from the later of its own known date and its linked date.
"""

from __future__ import annotations

import numpy as np

# Days since 1970-01-01 (int64) stand for dates; a node with no known date is known from the start.
UNDATED = np.iinfo(np.int64).min
_START = -1_000_000  # a day before any record (year -768), standing for UNDATED inside


def linked_days(node_known: np.ndarray, anchor_rank: np.ndarray, cluster: np.ndarray,
                left: np.ndarray, right: np.ndarray, can_anchor: np.ndarray | None = None) -> np.ndarray:
    """Per node, the first day known edges join it to its cluster's anchor (days since 1970-01-01, int64).

    `node_known`: per node, the day it was first known (int64 days; `UNDATED` for a node without any
    date, taken as known from the start). `anchor_rank`: per node, its tie-break order (smaller wins among
    nodes known on the same day). `cluster`: per node, its cluster (any hashable ints). `left` / `right`:
    the node positions of every edge at or above the threshold (within clusters). `can_anchor`: nodes
    preferred as anchors (default: all). The anchor of a cluster is its node with the smallest
    (not `can_anchor`, `node_known`, `anchor_rank`); the anchor's day is its own known day.
    Every node of a connected cluster gets a day at or after its own known day. Raises ValueError when an
    edge joins two clusters.
    """
    n = len(node_known)
    node_known = np.asarray(node_known, dtype=np.int64)
    # A finite stand-in keeps the day arithmetic (and scipy's float weights) exact.
    node_known = np.where(node_known == UNDATED, _START, node_known)
    cluster = np.asarray(cluster)
    left, right = np.asarray(left, dtype=np.int64), np.asarray(right, dtype=np.int64)
    if len(left) and (cluster[left] != cluster[right]).any():
        raise ValueError("an edge joins two clusters: edges must be the within-cluster pairs at the threshold")
    # The anchor per cluster: smallest known day, then smallest rank.
    preferred = np.ones(n, dtype=bool) if can_anchor is None else np.asarray(can_anchor, dtype=bool)
    order = np.lexsort((np.asarray(anchor_rank), node_known, ~preferred, cluster))
    first = np.ones(n, dtype=bool)
    first[1:] = cluster[order][1:] != cluster[order][:-1]
    is_anchor = np.zeros(n, dtype=bool)
    is_anchor[order[first]] = True
    linked = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    linked[is_anchor] = node_known[is_anchor]
    if len(left):
        _join_in_day_order(n, node_known, is_anchor, left, right, linked)
    return np.where(linked == _START, UNDATED, linked)


def _join_in_day_order(n: int, node_known: np.ndarray, is_anchor: np.ndarray, left: np.ndarray, right: np.ndarray,
                       linked: np.ndarray) -> None:
    day = np.maximum(node_known[left], node_known[right])
    # Only a minimum spanning forest can carry a bottleneck path; scipy finds it in C, leaving few
    # edges for the Python union-find (demo borough: at most 237,343, nodes less clusters, of up to 520,182).
    left, right, day = _spanning_forest(n, left, right, day)
    by_day = np.lexsort((right, left, day))
    parent = np.arange(n, dtype=np.int64)
    members: dict[int, list[int]] = {}
    has_anchor = is_anchor.copy()

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    for i in by_day:
        a, b = find(int(left[i])), find(int(right[i]))
        if a == b:
            continue
        ma, mb = members.get(a, [a]), members.get(b, [b])
        if has_anchor[a] != has_anchor[b]:
            # The anchor's set absorbs the other: its nodes are joined to the anchor on this day.
            joined = mb if has_anchor[a] else ma
            linked[joined] = day[i]
        if len(ma) < len(mb):
            a, b, ma, mb = b, a, mb, ma
        parent[b] = a
        ma.extend(mb)
        members[a] = ma
        members.pop(b, None)
        has_anchor[a] = has_anchor[a] or has_anchor[b]


def _spanning_forest(n: int, left: np.ndarray, right: np.ndarray, day: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The edges of a minimum spanning forest by day (bottleneck paths are unchanged: any one will do)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import minimum_spanning_tree

    # csgraph reads a zero as "no edge" and keeps the smallest of repeated entries only after summing
    # them, so weights are made positive and repeated pairs reduced to their earliest day first.
    lo, hi = np.minimum(left, right), np.maximum(left, right)
    key = lo * n + hi
    order = np.lexsort((day, key))
    keep = np.ones(len(order), dtype=bool)
    keep[1:] = key[order][1:] != key[order][:-1]
    lo, hi, day = lo[order][keep], hi[order][keep], day[order][keep]
    base = int(day.min()) - 1
    tree = minimum_spanning_tree(coo_matrix(((day - base).astype(np.float64), (lo, hi)), shape=(n, n)).tocsr()).tocoo()
    return tree.row.astype(np.int64), tree.col.astype(np.int64), tree.data.astype(np.int64) + base
