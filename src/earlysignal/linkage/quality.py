"""Link quality for the board: linked shares, cluster sizes, weights, pairwise accuracy, unlinked rate by group."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

AGE_BANDS: tuple[tuple[int, int | None, str], ...] = (
    (0, 4, "0-4"), (5, 10, "5-10"), (11, 15, "11-15"), (16, 17, "16-17"), (18, 24, "18-24"),
    (25, 44, "25-44"), (45, 64, "45-64"), (65, None, "65+"),
)


def _pairs(counts: pd.Series) -> int:
    n = counts.to_numpy(dtype=np.int64)
    return int((n * (n - 1) // 2).sum())


def pairwise_accuracy(predicted: pd.Series, truth: pd.Series) -> dict[str, float | int]:
    """Pairwise precision, recall and F1 of a clustering against true entity labels (aligned Series).

    A pair counts as predicted when both records share a cluster and as true when they share an entity.
    Also `persons` (true entities), `persons_split` (entities whose records fall in several clusters) and
    `clusters_mixed` (clusters holding records of several entities).
    """
    frame = pd.DataFrame({"c": predicted.to_numpy(), "t": truth.to_numpy()}).dropna()
    tp = _pairs(frame.groupby(["c", "t"]).size())
    pred = _pairs(frame.groupby("c").size())
    true = _pairs(frame.groupby("t").size())
    precision = tp / pred if pred else float("nan")
    recall = tp / true if true else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if pred and true and (precision + recall) else float("nan")
    return {"records": int(len(frame)), "true_pairs": true, "predicted_pairs": pred, "true_positive_pairs": tp,
            "precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            **_entity_counts(frame[["c", "t"]].drop_duplicates())}


def _entity_counts(cells: pd.DataFrame) -> dict[str, int]:
    """Person-level errors from the distinct (cluster c, true entity t) cells.

    Pairwise figures are dominated by people with many records (a pupil's monthly census rows), so a
    person left in two pieces, or two people in one cluster, barely moves them; these counts do not.
    """
    per_entity = cells.groupby("t")["c"].nunique()
    per_cluster = cells.groupby("c")["t"].nunique()
    return {"persons": int(len(per_entity)), "persons_split": int((per_entity > 1).sum()),
            "clusters_mixed": int((per_cluster > 1).sum())}


def pairwise_accuracy_counted(counts: pd.DataFrame) -> dict[str, float | int]:
    """Pairwise precision, recall and F1 from record counts per (cluster c, true entity t): columns c, t, n.

    Equal to `pairwise_accuracy` over the records the counts stand for (each count is that many records).
    """
    frame = counts.dropna(subset=["c", "t"])
    tp = _pairs(frame.groupby(["c", "t"])["n"].sum())
    pred = _pairs(frame.groupby("c")["n"].sum())
    true = _pairs(frame.groupby("t")["n"].sum())
    precision = tp / pred if pred else float("nan")
    recall = tp / true if true else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if pred and true and (precision + recall) else float("nan")
    return {"records": int(frame["n"].sum()), "true_pairs": true, "predicted_pairs": pred, "true_positive_pairs": tp,
            "precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            **_entity_counts(frame.loc[frame["n"] > 0, ["c", "t"]].drop_duplicates())}


def _pairs_touching(group: np.ndarray, flagged: np.ndarray, weights: np.ndarray | None = None) -> int:
    """Pairs within each group (integer codes) with at least one flagged record: C(n,2) - C(n-k,2).

    `weights`: how many records each row stands for (default one each).
    """
    w = np.ones(len(group), dtype=np.float64) if weights is None else np.asarray(weights, dtype=np.float64)
    n = np.rint(np.bincount(group, weights=w)).astype(np.int64)
    other = n - np.rint(np.bincount(group, weights=flagged * w, minlength=len(n))).astype(np.int64)
    return int((n * (n - 1) // 2 - other * (other - 1) // 2).sum())


def pairwise_accuracy_by_source(predicted: pd.Series, truth: pd.Series, source: pd.Series,
                                weights: pd.Series | np.ndarray | None = None) -> dict[str, dict[str, Any]]:
    """Pairwise precision, recall and F1 per source, over the pairs with at least one record of that source.

    Aligned Series of cluster, true entity and source per record; records without a true entity are left
    out. A source's recall is the share of its true pairs (to any source, itself included) that were linked.
    `weights`: how many records each row stands for (default one each).
    """
    frame = pd.DataFrame({"c": predicted.to_numpy(), "t": truth.to_numpy(), "src": source.astype(str).to_numpy(),
                          "w": np.ones(len(predicted)) if weights is None else np.asarray(weights, dtype=np.float64)})
    frame = frame.dropna(subset=["c", "t"])
    w = frame["w"].to_numpy(dtype=np.float64)
    # Integer codes once, so each source costs three bincounts rather than three groupbys.
    cluster = pd.factorize(frame["c"])[0]
    entity = pd.factorize(frame["t"])[0]
    both = pd.factorize(pd.Series(cluster.astype(np.int64) * (int(entity.max(initial=0)) + 1) + entity))[0]
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(pd.unique(frame["src"])):
        flagged = (frame["src"] == name).to_numpy(dtype=np.float64)
        tp, pred, true = (_pairs_touching(both, flagged, w), _pairs_touching(cluster, flagged, w),
                          _pairs_touching(entity, flagged, w))
        precision = tp / pred if pred else float("nan")
        recall = tp / true if true else float("nan")
        f1 = 2 * precision * recall / (precision + recall) if pred and true and (precision + recall) else float("nan")
        out[str(name)] = {"records": int(round((flagged * w).sum())), "true_pairs": true, "predicted_pairs": pred,
                          "true_positive_pairs": tp, "precision": round(precision, 4), "recall": round(recall, 4),
                          "f1": round(f1, 4)}
    return out


def clerical_accuracy(reviewed: pd.DataFrame, cluster_of: pd.Series) -> dict[str, float | int]:
    """Precision/recall from clerically reviewed pairs (source_l, record_id_l, source_r, record_id_r, is_match).

    `cluster_of` is indexed by "source|record_id". Pairs naming unknown records are counted and skipped.
    """
    left = (reviewed["source_l"].astype(str) + "|" + reviewed["record_id_l"].astype(str)).map(cluster_of)
    right = (reviewed["source_r"].astype(str) + "|" + reviewed["record_id_r"].astype(str)).map(cluster_of)
    known = left.notna() & right.notna()
    linked = (left == right)[known]
    truth = reviewed["is_match"].astype(bool)[known]
    tp = int((linked & truth).sum())
    precision = tp / int(linked.sum()) if linked.any() else float("nan")
    recall = tp / int(truth.sum()) if truth.any() else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if linked.any() and truth.any() and (precision + recall) else float("nan")
    return {"pairs_reviewed": int(len(reviewed)), "pairs_unknown_records": int((~known).sum()),
            "precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def age_band(birth_date: pd.Series, on: dt.date) -> pd.Series:
    """Age band on a date from birth dates (nulls stay null)."""
    birth = pd.to_datetime(birth_date)
    ref = pd.Timestamp(on)
    age = ref.year - birth.dt.year - ((birth.dt.month > ref.month) | ((birth.dt.month == ref.month) & (birth.dt.day > ref.day))).astype(int)
    out = pd.Series(pd.NA, index=birth_date.index, dtype="object")
    for low, high, label in AGE_BANDS:
        mask = (age >= low) if high is None else ((age >= low) & (age <= high))
        out[mask.fillna(False)] = label
    return out


def suppressed_rates(unlinked: pd.Series, groups: pd.Series, min_cell: int, round_to: int,
                     weights: pd.Series | np.ndarray | None = None) -> list[dict[str, Any]]:
    """Unlinked rate per group: counts under `min_cell` suppressed, others rounded to `round_to`,
    the rate recomputed from the rounded counts. `weights`: records each row stands for (default 1)."""
    frame = pd.DataFrame({"u": unlinked.astype(bool).to_numpy(), "g": groups.astype("object").fillna("unknown").to_numpy(),
                          "w": np.ones(len(unlinked), dtype=np.int64) if weights is None else np.asarray(weights, dtype=np.int64)})
    rows = []
    for group, part in frame.groupby("g", sort=True):
        records, failed = int(part["w"].sum()), int(part["w"][part["u"]].sum())
        if records < min_cell:
            rows.append({"group": str(group), "records": None, "unlinked": None, "unlinked_rate": None, "suppressed": True})
            continue
        r_records = int(round_to * round(records / round_to))
        r_failed = None if failed < min_cell else int(round_to * round(failed / round_to))
        rate = round(r_failed / r_records, 3) if r_failed is not None and r_records else None
        rows.append({"group": str(group), "records": r_records, "unlinked": r_failed, "unlinked_rate": rate,
                     "suppressed": r_failed is None})
    return rows


def ground_truth_person_column(path: Path) -> str:
    """The person column of a ground-truth file (person_id, else resident_id); ContractError if absent."""
    import pyarrow.parquet as pq

    names = set(pq.ParquetFile(path).schema_arrow.names)
    person = "person_id" if "person_id" in names else "resident_id"
    missing = {"source", "record_id", person} - names
    if missing:
        from earlysignal.errors import ContractError

        raise ContractError(
            f"{path}: missing column(s) {sorted(missing)}; expected source, record_id and person_id (or resident_id)"
        )
    return person


def read_ground_truth(path: Path) -> pd.DataFrame | None:
    """The true person per record (source, record_id, person_id), or None when the file is absent.

    The person column may be called person_id or resident_id (the synthetic borough's
    ground_truth/raw_records.parquet); rows without a person (address-only records) are dropped.
    """
    if not path.exists():
        return None
    truth = pd.read_parquet(path)
    person = "person_id" if "person_id" in truth.columns else "resident_id"
    missing = {"source", "record_id", person} - set(truth.columns)
    if missing:
        from earlysignal.errors import ContractError

        raise ContractError(
            f"{path}: missing column(s) {sorted(missing)}; expected source, record_id and person_id (or resident_id)"
        )
    truth = truth[["source", "record_id", person]].rename(columns={person: "person_id"}).dropna()
    return truth.drop_duplicates(["source", "record_id"])


def planted_disagreements(true_counts: pd.DataFrame, planted: pd.DataFrame, min_cell: int,
                          round_to: int) -> dict[str, Any]:
    """How records planted to disagree on sex, NHS number or UPN (synthetic ground truth) fared in linkage.

    `true_counts`: one row per kept record: k (kept index), c (cluster), t (true person), n (records);
    `planted`: k, value (the planted fields, ";"-joined, e.g. "sex" or "nhs_number;upn"), n (records).
    A record is *separated* when its cluster is not the one holding most of its true person's records
    (ties: the smallest cluster). Returns `by_field`: per planted field, and "none" (records with no
    planted disagreement) for comparison, records / separated / separated_rate with counts under
    `min_cell` suppressed and the rest rounded to `round_to` (as the unlinked-by-group tables);
    `pairwise`: precision and recall over the pairs with at least one planted record; `persons` and
    `persons_split`: people with a planted record, and those of them left in several clusters
    (suppressed and rounded the same way).
    """
    frame = true_counts.dropna(subset=["c", "t"])
    per_cell = frame.groupby(["t", "c"], sort=True)["n"].sum().reset_index()
    # The person's main cluster: most records, ties to the smallest cluster ID (sorted above).
    main = per_cell.sort_values(["t", "n"], ascending=[True, False], kind="stable").drop_duplicates("t").set_index("t")["c"]
    separated = (frame["c"].to_numpy() != frame["t"].map(main).to_numpy())
    label = planted.groupby("k")["value"].first()
    fields = frame["k"].map(label)
    rows = frame.assign(field=fields.fillna("none").astype(str), separated=separated)
    rows = rows.assign(field=rows["field"].str.split(";")).explode("field")
    table = suppressed_rates(rows["separated"], rows["field"], min_cell, round_to, rows["n"].to_numpy(dtype=np.int64))
    by_field = [{"group": r["group"], "records": r["records"], "separated": r["unlinked"],
                 "separated_rate": r["unlinked_rate"], "suppressed": r["suppressed"]} for r in table]
    flagged = fields.notna().to_numpy(dtype=np.float64)
    w = frame["n"].to_numpy(dtype=np.float64)
    cluster = pd.factorize(frame["c"])[0]
    entity = pd.factorize(frame["t"])[0]
    both = pd.factorize(pd.Series(cluster.astype(np.int64) * (int(entity.max(initial=0)) + 1) + entity))[0]
    tp, pred, true = (_pairs_touching(both, flagged, w), _pairs_touching(cluster, flagged, w),
                      _pairs_touching(entity, flagged, w))
    people = frame.loc[fields.notna().to_numpy(), "t"].unique()
    clusters_per_person = per_cell.groupby("t")["c"].nunique().reindex(people)

    def rounded(count: int) -> int | None:
        return None if count < min_cell else int(round_to * round(count / round_to))

    return {
        "by_field": by_field,
        "pairwise": {"true_pairs": rounded(true), "precision": round(tp / pred, 4) if pred else None,
                     "recall": round(tp / true, 4) if true else None},
        "persons": rounded(int(len(people))),
        "persons_split": rounded(int((clusters_per_person > 1).sum())),
        "separated_means": "not in the cluster holding most of the true person's records",
    }
