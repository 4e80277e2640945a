"""Person linkage with Splink 5 on DuckDB: standardise, train (prior, u by sampling, m by EM), predict, cluster.

Splink does the linking; this module only prepares the standard person schema, turns the
`linkage:` config into Splink settings and reads back clusters, pair counts and the trained
m/u parameters. Names and identifiers stay inside the DuckDB connection and are never written.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from earlysignal.config import LinkageComparison, LinkageSection
from earlysignal.errors import EarlySignalError
from earlysignal.linkage.folding import UNDECOMPOSED
from earlysignal.linkage.records import spill_folder

# The standard person schema Splink sees (derived in `standardise`); config may use any of these.
SCHEMA_COLUMNS: tuple[str, ...] = (
    "first_name", "middle_name", "last_name", "first_name_initial", "birth_date", "birth_year",
    "postcode", "uprn", "nhs_number", "upn", "source_person_key", "sex", "full_name",
)


class LinkageError(EarlySignalError):
    """The linkage config or the person records cannot be used as they are."""


# Latin letters Unicode does not decompose (ø, ł, ß...): the same table folds addresses (folding.py).
_UNDECOMPOSED = UNDECOMPOSED


def _clean_name(values: pd.Series) -> pd.Series:
    # Accents are folded to their base letter ("ë" -> "e"), not dropped: one system keeps an accented name where
    # another (ASCII-only, or typed without accents) has it plain, and both must compare as the same name.
    out = values.astype("string").str.lower().str.translate(_UNDECOMPOSED).str.normalize("NFKD")
    out = out.str.replace(r"[^a-z]", "", regex=True)
    return out.where(out.str.len() > 0)


def _clean_id(values: pd.Series) -> pd.Series:
    out = values.astype("string").str.upper().str.replace(r"[^A-Z0-9]", "", regex=True)
    return out.where(out.str.len() > 0)


def standardise(records: pd.DataFrame, sex_codes: dict[str, str]) -> pd.DataFrame:
    """Person records -> the standard person schema, one row per record, same order.

    Columns: unique_id (int64 row number), source_dataset, and SCHEMA_COLUMNS. Names are lower-case
    letters only (accents folded: "é" -> "e"); postcodes "AB1 2CD"; NHS numbers and UPNs upper-case alphanumerics; sex through
    `sex_codes` (unmapped codes become null so they neither help nor hurt a match).
    """
    out = pd.DataFrame({"unique_id": range(len(records)), "source_dataset": records["source"].astype("string").values})
    for name in ("first_name", "middle_name", "last_name"):
        out[name] = _clean_name(records[name]).values if name in records else pd.NA
    out["first_name_initial"] = out["first_name"].str.slice(0, 1)
    # Forename + surname, for the term frequency of the whole name (common names say less).
    out["full_name"] = (out["first_name"] + " " + out["last_name"]).astype("string")
    birth = pd.to_datetime(records["birth_date"], errors="coerce")
    out["birth_date"] = birth.dt.date.values
    out["birth_year"] = birth.dt.year.astype("Int64").values
    pc = records["postcode"].astype("string").str.upper().str.replace(r"[^A-Z0-9]", "", regex=True)
    pc = pc.where(pc.str.len() >= 5)
    out["postcode"] = (pc.str.slice(0, -3) + " " + pc.str.slice(-3)).values
    # The UPRN the address matcher gave the record (run.py), else the record's own.
    uprn = records["matched_uprn"] if "matched_uprn" in records else records.get("uprn")
    out["uprn"] = _clean_id(uprn).values if uprn is not None else pd.NA
    out["nhs_number"] = _clean_id(records["nhs_number"]).values if "nhs_number" in records else pd.NA
    out["upn"] = _clean_id(records["upn"]).values if "upn" in records else pd.NA
    spid = records["source_person_id"].astype("string")
    out["source_person_key"] = (records["source"].astype("string") + ":" + spid).where(spid.notna()).values
    out["sex"] = records["sex"].astype("object").map(lambda v: sex_codes.get(str(v)) if not pd.isna(v) else None).values
    return out


def _block_sql(rule: tuple[str, ...] | str) -> str:
    if isinstance(rule, str):
        return rule
    for column in rule:
        if column not in SCHEMA_COLUMNS:
            raise LinkageError(
                f"linkage blocking rule {list(rule)} names column {column!r}; use columns of the standard "
                f"person schema {list(SCHEMA_COLUMNS)}"
            )
    return " AND ".join(f'l."{c}" = r."{c}"' for c in rule)


def _comparison(spec: LinkageComparison) -> Any:
    import splink.comparison_library as cl

    for column in (spec.column, spec.forename, spec.surname):
        if column is not None and column not in SCHEMA_COLUMNS:
            raise LinkageError(
                f"linkage.comparisons: column {column!r} is not in the standard person schema {list(SCHEMA_COLUMNS)}"
            )
    if spec.kind == "forename_surname":
        # Splink adjusts the single-name levels by term frequency itself; the concatenated column adds
        # the adjustment to the exact full-name level.
        comparison = cl.ForenameSurnameComparison(
            spec.forename, spec.surname, forename_surname_concat_col_name="full_name" if spec.term_frequency else None
        )
    elif spec.kind == "name":
        comparison = cl.NameComparison(spec.column)
    elif spec.kind == "date_of_birth":
        comparison = cl.DateOfBirthComparison(spec.column, input_is_string=False)
    elif spec.kind == "postcode":
        comparison = cl.PostcodeComparison(spec.column)
    else:
        comparison = cl.ExactMatch(spec.column)
    if spec.term_frequency and spec.kind != "forename_surname":
        comparison = comparison.configure(term_frequency_adjustments=True)
    return comparison


def floor_disagreement_weights(comparisons: Sequence[Any], columns: Sequence[str], max_penalty: float) -> list[dict[str, Any]]:
    """Raise the m probability of the "else" (disagreement) level of each Splink comparison on `columns`, in
    place, so that its match weight log2(m/u) is at least -`max_penalty` bits; the comparison's other
    non-null levels' m probabilities are scaled down so they still sum to one with it.

    `comparisons`: trained Splink `Comparison` objects (levels with `m_probability` / `u_probability`, as
    Splink reads them: a level EM never observed counts at Splink's small default). Levels already above
    the floor, or without a u, are left alone. Returns one dict per level changed: comparison, level, and m
    and match weight (bits) as trained and as used.
    """
    changed: list[dict[str, Any]] = []
    for comparison in comparisons:
        name = comparison.output_column_name
        if name not in columns:
            continue
        levels = [lv for lv in comparison.comparison_levels if not lv.is_null_level]
        for level in levels:
            u, m = level.u_probability, level.m_probability
            if level.sql_condition.strip().upper() != "ELSE" or u is None or u <= 0:
                continue
            m = 0.0 if m is None else float(m)
            floor = float(u) * 2.0 ** (-max_penalty)
            if m >= floor:
                continue
            others = [lv for lv in levels if lv is not level and lv.m_probability is not None]
            rest = sum(float(lv.m_probability) for lv in others)
            trained_weight = round(math.log2(m / u), 2) if m > 0 else None
            level.m_probability = floor
            if rest > 0:
                # The levels stay a probability distribution over what a true match's pair shows.
                for lv in others:
                    lv.m_probability = float(lv.m_probability) * (1.0 - floor) / rest
            changed.append({"comparison": name, "level": level.label_for_charts, "m_probability_trained": m,
                            "m_probability_used": floor, "match_weight_trained": trained_weight,
                            "match_weight_used": round(-float(max_penalty), 2)})
    return changed


def model_parameters(linker: Any) -> dict[str, Any]:
    """The prior and every non-null comparison level's m and u as the linker predicts with them.

    Splink's own model JSON leaves out levels training never observed (it predicts with a small default
    for them), so a reload from it would not reproduce the weights; these are the values used.
    """
    settings = linker._settings_obj
    return {
        "probability_two_random_records_match": float(settings._probability_two_random_records_match),
        "comparisons": [
            {"comparison": c.output_column_name,
             "levels": [{"level": lv.label_for_charts, "m_probability": lv.m_probability,
                         "u_probability": lv.u_probability}
                        for lv in c.comparison_levels if not lv.is_null_level]}
            for c in settings.comparisons
        ],
    }


def read_model_parameters(path: Path) -> dict[str, Any]:
    """A link run's `link_model.json` (`model_parameters`). Raises LinkageError when missing or not one."""
    import json

    path = Path(path)
    if not path.is_file():
        raise LinkageError(f"linkage.trained_model {path} does not exist; give a link output's link_model.json")
    model = json.loads(path.read_text(encoding="utf-8"))
    if "comparisons" not in model or "probability_two_random_records_match" not in model:
        raise LinkageError(f"linkage.trained_model {path} is not a link_model.json (keys comparisons and "
                           "probability_two_random_records_match are needed)")
    return model


def set_model_parameters(linker: Any, model: dict[str, Any]) -> None:
    """Give the linker the prior and m/u of `model` (`model_parameters`) instead of training.

    Raises LinkageError when the model's comparisons or levels differ from linkage.comparisons.
    """
    settings = linker._settings_obj
    given = {c["comparison"]: c["levels"] for c in model["comparisons"]}
    for comparison in settings.comparisons:
        levels = [lv for lv in comparison.comparison_levels if not lv.is_null_level]
        stored = given.get(comparison.output_column_name)
        if stored is None or [s["level"] for s in stored] != [lv.label_for_charts for lv in levels]:
            raise LinkageError(
                f"linkage.trained_model: comparison {comparison.output_column_name!r} has levels "
                f"{[lv.label_for_charts for lv in levels]} here but {None if stored is None else [s['level'] for s in stored]} "
                "in the trained model; it was trained with other linkage.comparisons")
        for level, values in zip(levels, stored):
            level.m_probability = values["m_probability"]
            level.u_probability = values["u_probability"]
    settings._probability_two_random_records_match = float(model["probability_two_random_records_match"])


@dataclass
class LinkResult:
    """Clusters and diagnostics of one Splink run.

    clusters: unique_id -> cluster_id (one row per record); edges: within-cluster pairs at or above the
    threshold (unique_id_l, unique_id_r, match_probability); parameters: m/u per comparison level.
    """

    clusters: pd.DataFrame
    edges: pd.DataFrame
    pairs_compared: int
    parameters: list[dict[str, Any]]
    prior: float
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # per stage, all threads
    distinct_records: int = 0  # records Splink compared after collapsing identical ones
    representative: np.ndarray | None = None  # per record, the unique_id of the identical record Splink saw
    # Disagreement levels whose trained weight was floored (linkage.max_disagreement_penalty).
    floored: list[dict[str, Any]] = field(default_factory=list)
    # The parameters predictions used (`model_parameters`), for linkage.trained_model in a later run.
    model: dict[str, Any] = field(default_factory=dict)


def link_people(people: pd.DataFrame, section: LinkageSection, seed: int, spill_parent: Path | None = None) -> LinkResult:
    """Run Splink `link_and_dedupe` over the standardised people (one table per source).

    Trains the prior from `deterministic_rules`, u by random sampling (seeded), m by EM on each
    `em_blocking_rules`, floors the disagreement weights of `disagreement_penalty_columns` at
    -`max_disagreement_penalty` bits (`floor_disagreement_weights`), predicts over `blocking_rules` and
    clusters at `threshold`. Raises LinkageError for config naming unknown columns.
    """
    if section.max_disagreement_penalty is not None:
        compared = {c.column for c in section.comparisons if c.column is not None}
        missing = sorted(set(section.disagreement_penalty_columns) - compared)
        if missing:
            raise LinkageError(
                f"linkage.disagreement_penalty_columns names {missing}, which no linkage.comparisons entry compares; "
                "add a comparison on each or remove them from the list"
            )
    from splink import DuckDBAPI, Linker, SettingsCreator

    seconds: dict[str, float] = {}
    cpu_seconds: dict[str, float] = {}  # CPU of every thread (DuckDB's too): the machine-independent figure
    start, cpu_start = time.perf_counter(), time.process_time()
    # Records identical in every linkage field (a pupil's monthly attendance rows) are one Splink row:
    # repeats would otherwise pose as random pairs when u is sampled and swamp EM.
    profile_columns = ["source_dataset", *SCHEMA_COLUMNS]
    keys = people[profile_columns].astype("string").fillna("\x00")
    representative = people["unique_id"].groupby([keys[c] for c in profile_columns], sort=False).transform("min")
    people = people[people["unique_id"].to_numpy() == representative.to_numpy()]
    # DuckDB spills to disk beyond its memory limit; the spill holds names, so it goes to a private
    # folder beside the ingested records (records.spill_folder), never beside the outputs.
    spill = spill_folder(spill_parent)
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    con.execute(f"SET memory_limit = '{section.duckdb_memory_limit}'")
    con.execute(f"SET temp_directory = '{spill.name}'")
    db_api = DuckDBAPI(con)
    tables = []
    for source, frame in people.groupby("source_dataset", sort=True):
        tables.append(db_api.register(frame.reset_index(drop=True), table_name=f"people_{len(tables)}"))
    settings = SettingsCreator(
        link_type="link_and_dedupe",
        comparisons=[_comparison(c) for c in section.comparisons],
        blocking_rules_to_generate_predictions=[_block_sql(r) for r in section.blocking_rules],
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
    )
    linker = Linker(tables if len(tables) > 1 else tables[0], settings, log_level=logging.ERROR)
    seconds["prepare"] = time.perf_counter() - start
    cpu_seconds["prepare"] = time.process_time() - cpu_start

    start, cpu_start = time.perf_counter(), time.process_time()
    floored: list[dict[str, Any]] = []
    if section.trained_model is not None:
        # A previous run's parameters as used (floored already): the same pair gets the same weight.
        set_model_parameters(linker, read_model_parameters(section.trained_model))
    else:
        linker.training.estimate_probability_two_random_records_match(
            [_block_sql(r) for r in section.deterministic_rules], recall=section.deterministic_recall
        )
        linker.training.estimate_u_using_random_sampling(max_pairs=section.u_max_pairs, seed=seed)
        for rule in section.em_blocking_rules:
            linker.training.estimate_parameters_using_expectation_maximisation(_block_sql(rule))
    if section.max_disagreement_penalty is not None and section.trained_model is None:
        # EM learns that a true match never disagrees on sex or an identifier when these data never showed
        # one doing so. The trained levels are floored where they are: a round trip through the settings
        # dict (save_model_to_json -> Linker) would reload every level Splink marks "not observed" at its
        # untrained default m instead of the small value it predicts with.
        floored = floor_disagreement_weights(linker._settings_obj.comparisons, section.disagreement_penalty_columns,
                                             section.max_disagreement_penalty)
    used_parameters = model_parameters(linker)
    seconds["train"] = time.perf_counter() - start
    cpu_seconds["train"] = time.process_time() - cpu_start

    start, cpu_start = time.perf_counter(), time.process_time()
    predictions = linker.inference.predict(threshold_match_probability=None, warning_mode="never")
    name = predictions.physical_name
    pairs_compared = int(con.sql(f"SELECT count(*) FROM {name}").fetchall()[0][0])
    seconds["predict"] = time.perf_counter() - start
    cpu_seconds["predict"] = time.process_time() - cpu_start

    start, cpu_start = time.perf_counter(), time.process_time()
    clustered = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=section.threshold
    )
    clusters = con.sql(
        f"SELECT CAST(unique_id AS BIGINT) AS unique_id, cluster_id FROM {clustered.physical_name}"
    ).df()
    edges = con.sql(
        f"SELECT CAST(unique_id_l AS BIGINT) AS unique_id_l, CAST(unique_id_r AS BIGINT) AS unique_id_r, "
        f"match_probability FROM {name} WHERE match_probability >= {float(section.threshold)!r}"
    ).df()
    seconds["cluster"] = time.perf_counter() - start
    cpu_seconds["cluster"] = time.process_time() - cpu_start

    model = linker.misc.save_model_to_json(out_path=None)
    parameters = []
    for comparison in model.get("comparisons", []):
        for level in comparison.get("comparison_levels", []):
            if level.get("is_null_level"):
                continue
            parameters.append(
                {
                    "comparison": comparison.get("output_column_name"),
                    "level": level.get("label_for_charts"),
                    "m_probability": level.get("m_probability"),
                    "u_probability": level.get("u_probability"),
                    "tf_adjustment": bool(level.get("tf_adjustment_column")),
                }
            )
    floored_levels = {(f["comparison"], f["level"]): f for f in floored}
    for parameter in parameters:
        hit = floored_levels.get((parameter["comparison"], parameter["level"]))
        if hit is not None:
            parameter["m_probability_trained"] = hit["m_probability_trained"]
    prior = float(model.get("probability_two_random_records_match", float("nan")))
    con.close()
    spill.cleanup()
    # Every record joins its representative's cluster.
    cluster_of = clusters.set_index("unique_id")["cluster_id"]
    clusters = pd.DataFrame({"unique_id": np.arange(len(representative), dtype=np.int64),
                             "cluster_id": cluster_of.reindex(representative.to_numpy()).to_numpy()})
    return LinkResult(clusters, edges, pairs_compared, parameters, prior, seconds, cpu_seconds, int(len(cluster_of)),
                      representative.to_numpy(dtype=np.int64), floored, used_parameters)
