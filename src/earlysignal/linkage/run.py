"""`earlysignal link`: ingested person/address records -> linked histories in the data contract.

Inputs are what `earlysignal ingest` writes (docs/ingest-and-link.md). Outputs: residents, residency,
events, outcomes, manifest.json (read by `earlysignal validate`), person_links.parquet,
link_changes.parquet (when a previous run is given) and link_quality.json. Names, addresses, NHS
numbers, UPNs and UPRNs stay in memory: every ID written is a keyed hash or a source record ID.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from earlysignal.atomic import write_json, write_parquet
from earlysignal.config import LinkageSection, ProjectConfig, config_to_dict
from earlysignal.errors import ConfigError, ContractError
from earlysignal.fingerprint import file_sha256, stable_hash
from earlysignal.linkage import addresses as addr
from earlysignal.linkage import histories as hist
from earlysignal.linkage import quality as qual
from earlysignal.linkage.link_times import UNDATED, linked_days
from earlysignal.linkage.people import link_people, standardise
from earlysignal.linkage.records import RecordStore, remove_stale_spills
from earlysignal.linkage.secret import keyed_id, load_secret
from earlysignal.linkage.truth import MIN_RECORDS_COVERED, GroundTruthChoice, find_ground_truth

PERSON_COLUMNS = (
    "source", "record_id", "source_person_id", "first_name", "middle_name", "last_name", "birth_date", "sex",
    "postcode", "address_text", "uprn", "nhs_number", "upn", "seen_date", "seen_until",
)
ADDRESS_COLUMNS = ("source", "record_id", "address_text", "postcode", "uprn")
# The person-record fields linkage reads: records equal on all of them are linked once.
PROFILE_COLUMNS = ("source", "source_person_id", "first_name", "middle_name", "last_name", "birth_date", "sex",
                   "postcode", "matched_uprn", "nhs_number", "upn")
GAZETTEER_COLUMNS = ("uprn", "address_text", "postcode")
EVENT_COLUMNS = ("event_id", "source", "person_record_id", "address_record_id", "event_type", "event_time", "known_at")
OUTCOME_COLUMNS = ("source", "person_record_id", "outcome_type", "outcome_time", "known_at")
OUTPUT_FILES = ("residents.parquet", "residency.parquet", "events.parquet", "outcomes.parquet", "person_links.parquet",
                "link_quality.json", "link_model.json", "manifest.json")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinkSummary:
    """What one link run wrote: its ID, the output folder, and headline figures."""

    link_run_id: str
    out_dir: Path
    residents: int
    records: int
    quality: dict[str, Any]


def _read(path: Path, required: tuple[str, ...], optional: bool = False) -> pd.DataFrame | None:
    if not path.exists():
        if optional:
            return None
        raise ContractError(f"{path} is missing; run `earlysignal ingest` first (docs/ingest-and-link.md)")
    frame = pd.read_parquet(path)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ContractError(f"{path}: missing column(s) {missing}; the ingest-link interface needs {list(required)}")
    return frame


def _check_codes(section: LinkageSection, config: ProjectConfig) -> None:
    """Linkage code maps must land on values the data dictionary declares (when it declares any)."""
    from earlysignal.dictionary import dictionary_for

    dictionary = dictionary_for(config)
    for key, mapping, table, column in (
        ("linkage.sex_codes", section.sex_codes, dictionary.residents, "sex"),
        ("linkage.ethnicity_codes", section.ethnicity_codes, dictionary.residents, "ethnicity"),
        ("linkage.tenure_codes", section.tenure_codes, dictionary.residency, "tenure"),
    ):
        allowed = table[column].values if column in table else ()
        bad = {k: v for k, v in mapping.items() if allowed and v not in allowed}
        if bad:
            raise ConfigError(f"{key} maps to values outside data dictionary {column} values {list(allowed)}: {bad}")
    tenures = dictionary.residency["tenure"].values if "tenure" in dictionary.residency else ()
    if section.default_tenure is None:
        raise ConfigError(
            "linkage.default_tenure is not set: name the tenure (one of the data dictionary's values "
            f"{list(tenures)}) given to addresses the housing stock list does not hold"
        )
    if tenures and section.default_tenure not in tenures:
        raise ConfigError(f"linkage.default_tenure must be one of {list(tenures)}, got {section.default_tenure!r}")


def _record_key(frame: pd.DataFrame, record_column: str = "record_id") -> pd.Series:
    return frame["source"].astype(str) + "|" + frame[record_column].astype(str)


def _address_ids(matches: pd.DataFrame, secret: bytes) -> pd.Series:
    """Keyed address IDs: from the UPRN when matched, else from the address tokens (null when none)."""
    keys = np.where(matches["matched_uprn"].notna(), "uprn:" + matches["matched_uprn"].astype(str),
                    np.where(matches["address_key"].notna(), "text:" + matches["address_key"].astype(str), None))
    cache = {k: keyed_id(secret, "A", k) for k in pd.unique(keys[pd.notna(keys)])}
    return pd.Series([cache.get(k) if k is not None else None for k in keys], index=matches.index, dtype="object")


def _stable_ids(
    record_keys: pd.Series, clusters: np.ndarray, previous: pd.DataFrame | None, secret: bytes, run_id: str
) -> tuple[pd.Series, pd.Series, pd.DataFrame]:
    """Resident ID and change label per record, and the change table against the previous run.

    `previous` is the previous run's person links (source, record_id, resident_id); see
    `_stable_ids_counted` for the rule.
    """
    if previous is None:
        return _stable_ids_counted(record_keys, clusters, None, None, secret, run_id)
    at = pd.Series(np.arange(len(record_keys)), index=record_keys.to_numpy())
    prev = pd.DataFrame({"idx": _record_key(previous).map(at), "prev": previous["resident_id"].to_numpy()})
    counts = prev.dropna().astype({"idx": "int64"}).groupby(["idx", "prev"]).size().rename("n").reset_index()
    return _stable_ids_counted(record_keys, clusters, counts, set(previous["resident_id"]), secret, run_id)


def _stable_ids_counted(
    record_keys: pd.Series, clusters: np.ndarray, previous_counts: pd.DataFrame | None,
    previous_ids: set[str] | None, secret: bytes, run_id: str,
) -> tuple[pd.Series, pd.Series, pd.DataFrame]:
    """Resident ID and change label per row, and the change table against the previous run.

    Rows are kept records (`record_keys` the smallest key of the records each stands for);
    `previous_counts` (idx = row position, prev = previous resident ID, n = records) says how many of
    a row's records the previous run gave each ID; `previous_ids` is every ID the previous run used.
    A new cluster's ID is the keyed hash of its smallest record key. With a previous run, each previous
    resident ID stays with the cluster holding most of its records (ties: the smaller cluster anchor);
    a cluster home to several previous IDs keeps the one with most records and the others are
    `merged` into it; other clusters holding some of a previous ID's records are `split` from it; a
    previous ID with no record in this run is `gone` (resident_id null).
    """
    frame = pd.DataFrame({"key": record_keys.to_numpy(), "cluster": clusters})
    anchor = frame.groupby("cluster")["key"].min()
    frame["anchor"] = frame["cluster"].map(anchor)
    provisional = {a: keyed_id(secret, "R", "record:" + a) for a in anchor.to_numpy()}
    if previous_counts is None:
        ids = frame["anchor"].map(provisional)
        return ids, pd.Series("new", index=frame.index), pd.DataFrame(
            columns=["previous_resident_id", "resident_id", "change"])
    counts = (previous_counts.assign(anchor=frame["anchor"].to_numpy()[previous_counts["idx"].to_numpy(dtype=np.int64)])
              .groupby(["prev", "anchor"])["n"].sum().reset_index())
    home = counts.sort_values(["prev", "n", "anchor"], ascending=[True, False, True]).drop_duplicates("prev")
    ranked = home.sort_values(["anchor", "n", "prev"], ascending=[True, False, True])
    first_in_cluster = ~ranked["anchor"].duplicated()
    keeper = ranked[first_in_cluster].set_index("anchor")["prev"]
    homed = ranked.groupby("anchor").size()
    cluster_id = keeper.to_dict()
    change = pd.Series(np.where(homed > 1, "merged", "kept"), index=homed.index).to_dict()
    merged = ranked[~first_in_cluster]
    changes = [
        pd.DataFrame({"previous_resident_id": keeper.to_numpy(), "resident_id": keeper.to_numpy(), "change": "kept"}),
        pd.DataFrame({"previous_resident_id": merged["prev"].to_numpy(),
                      "resident_id": merged["anchor"].map(keeper).to_numpy(), "change": "merged"}),
    ]
    fresh = [a for a in anchor.to_numpy() if a not in cluster_id]
    taken = set(keeper.to_numpy()) | set(previous_ids or ())
    for anchor_key in fresh:
        new_id = provisional[anchor_key]
        if new_id in taken:
            new_id = keyed_id(secret, "R", f"record:{anchor_key}|run:{run_id}")
        cluster_id[anchor_key] = new_id
        change[anchor_key] = "new"
    # Clusters holding some records of a previous resident who lives on elsewhere were split from it.
    homes = home.set_index("prev")["anchor"]
    away = counts[counts["prev"].map(homes) != counts["anchor"]]
    changes.append(pd.DataFrame({"previous_resident_id": away["prev"].to_numpy(),
                                 "resident_id": away["anchor"].map(cluster_id).to_numpy(), "change": "split"}))
    for anchor_key in away["anchor"]:
        if change[anchor_key] == "new":
            change[anchor_key] = "split"
    for anchor_key in away["prev"].map(homes):
        if change[anchor_key] == "kept":
            change[anchor_key] = "split"
    # A previous ID none of whose records is in this run (an extract that lost or renumbered them, or
    # holds only the month's new rows) would otherwise vanish without a trace.
    gone = sorted(set(previous_ids or ()) - set(counts["prev"]))
    changes.append(pd.DataFrame({"previous_resident_id": gone, "resident_id": [None] * len(gone), "change": "gone"},
                                dtype=object))
    ids = frame["anchor"].map(cluster_id)
    labels = frame["anchor"].map(change)
    table = pd.concat(changes, ignore_index=True).drop_duplicates()
    return ids, labels, table.sort_values(["change", "previous_resident_id", "resident_id"]).reset_index(drop=True)


def _kept_linked_days(people: pd.DataFrame, profile: np.ndarray, result: Any, record_keys: pd.Series,
                      standard: pd.DataFrame) -> np.ndarray:
    """Per kept record, the day its resident could first hold it (datetime64[D]; NaT when none of the records
    involved carries a date): the day a chain of known links joined it to its cluster's anchor, and not before
    the resident's records by then held a sex. See linkage/link_times.py.

    Nodes are the records Splink compared (identical records share one, as they share their links); a node
    is known from its earliest record's known day (`first_known`). The anchor is the earliest-known node with
    a birth date (ties: smallest record key): the contract holds no resident without one, so records known
    before any of the person's dated records could not have been anyone's in it (a council-tax holder whose
    birth date arrives with a later school record enters the contract then).
    """
    rep = result.representative[profile]
    nodes, node_of = np.unique(rep, return_inverse=True)
    known = pd.to_datetime(people["first_known"]).to_numpy().astype("datetime64[D]")
    days = np.where(np.isnat(known), np.iinfo(np.int64).max, known.astype(np.int64))
    node_known = np.full(len(nodes), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(node_known, node_of, days)
    node_known[node_known == np.iinfo(np.int64).max] = UNDATED
    node_key = pd.Series(record_keys.to_numpy()).groupby(node_of).min().reindex(range(len(nodes))).to_numpy()
    rank = np.empty(len(nodes), dtype=np.int64)
    rank[np.argsort(node_key, kind="stable")] = np.arange(len(nodes))
    cluster = pd.factorize(result.clusters.set_index("unique_id")["cluster_id"].reindex(nodes).to_numpy())[0]
    edges = result.edges
    left = np.searchsorted(nodes, edges["unique_id_l"].to_numpy(dtype=np.int64))
    right = np.searchsorted(nodes, edges["unique_id_r"].to_numpy(dtype=np.int64))
    dated = standard["birth_date"].reindex(nodes).notna().to_numpy()
    node_linked = linked_days(node_known, rank, cluster, left, right, can_anchor=dated)
    # The first day the anchor's records held a sex too (the other attribute the contract needs).
    with_sex = standard["sex"].reindex(nodes).notna().to_numpy()
    sexed = pd.Series(np.where(with_sex, node_linked, np.iinfo(np.int64).max)).groupby(cluster).transform("min").to_numpy()
    sexed = np.where(sexed == np.iinfo(np.int64).max, UNDATED, sexed)
    linked = np.maximum(node_linked, sexed)[node_of]
    return np.where(linked == UNDATED, np.datetime64("NaT"), linked.astype("datetime64[D]"))


def _map_codes(values: pd.Series, codes: dict[str, Any]) -> pd.Series:
    # A dict lookup per row through pandas' vectorised map (a Python lambda per row cost seconds at 250k).
    return values.astype("string").astype("object").map(codes).astype("object")


def run_link(
    ingested: str | Path,
    out_dir: str | Path,
    config: ProjectConfig,
    previous: str | Path | None = None,
    ground_truth: str | Path | None = None,
) -> LinkSummary:
    """Link ingested records into the data contract in `out_dir` (see module docstring).

    `previous` is an earlier link run's output folder; its person_links keep residents' IDs stable.
    `ground_truth` (synthetic worlds) overrides linkage.ground_truth: the true person per record
    (linkage/truth.py says where a configured one is looked for; link_quality.json's
    `ground_truth_used` says which file was used, or why none).
    Raises ContractError for missing inputs or columns (or a --ground-truth that does not exist or
    names under 99% of the records), ConfigError for bad linkage codes, SecretError
    when no linkage secret is set.
    """
    ingested, out_dir = Path(ingested), Path(out_dir)
    section = config.linkage
    if ground_truth is not None:
        # A path given on the command line is relative to where the user runs the command (only the
        # config's linkage.ground_truth is relative to --ingested); checked before the long link run.
        ground_truth = Path(ground_truth).absolute()
        if not ground_truth.is_file():
            raise ContractError(f"--ground-truth {ground_truth} does not exist (a path relative to the current "
                                "folder, e.g. <synth dir>/ground_truth/raw_records.parquet)")
    _check_codes(section, config)
    secret = load_secret(section)
    people_path = ingested / "person_records.parquet"
    _check_parquet(people_path, PERSON_COLUMNS)
    _check_parquet(ingested / "events.parquet", EVENT_COLUMNS)
    removed = remove_stale_spills(ingested)
    if removed:
        logger.warning("removed %d spill folder(s) left in %s by a link that did not finish", removed, ingested)
    # Chosen before linking, so a --ground-truth that does not exist stops the run at once.
    truth = find_ground_truth(ingested, section.ground_truth, config.data.dir, ground_truth)
    start, cpu_start = time.perf_counter(), time.process_time()
    with RecordStore(people_path, section.records_memory_limit) as store:
        grouped = (time.perf_counter() - start, time.process_time() - cpu_start)
        return _run_link(store, ingested, out_dir, config, secret, previous, truth, grouped)


def _check_parquet(path: Path, required: tuple[str, ...]) -> None:
    if not path.exists():
        raise ContractError(f"{path} is missing; run `earlysignal ingest` first (docs/ingest-and-link.md)")
    present = set(pq.ParquetFile(path).schema_arrow.names)
    missing = [c for c in required if c not in present]
    if missing:
        raise ContractError(f"{path}: missing column(s) {missing}; the ingest-link interface needs {list(required)}")


def _run_link(
    store: RecordStore, ingested: Path, out_dir: Path, config: ProjectConfig, secret: bytes,
    previous: str | Path | None, choice: GroundTruthChoice, grouped: tuple[float, float],
) -> LinkSummary:
    section = config.linkage
    # Wall and CPU seconds per stage; CPU counts every thread (DuckDB's too) and is the figure that does
    # not depend on what else the machine is running. `group_records` is RecordStore's grouping of repeats.
    seconds: dict[str, float] = {"group_records": grouped[0]}
    cpu_seconds: dict[str, float] = {"group_records": grouped[1]}
    start, cpu_start = time.perf_counter(), time.process_time()
    # One row per group of identical records (records.py); `weight` is how many records each stands for.
    people = store.kept
    weight = people["n_records"].to_numpy(dtype=np.int64)
    total_records = int(weight.sum())
    address_records = _read(ingested / "address_records.parquet", ADDRESS_COLUMNS, optional=True)
    if address_records is None:
        address_records = pd.DataFrame({c: pd.Series(dtype="object") for c in ADDRESS_COLUMNS})
    gazetteer = _read(ingested / "gazetteer.parquet", GAZETTEER_COLUMNS)
    manifest_path = ingested / "manifest.json"
    if not manifest_path.exists():
        raise ContractError(f"{manifest_path} is missing; expected the ingest manifest with extract_date")
    ingest_manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if "extract_date" not in ingest_manifest:
        raise ContractError(f"{manifest_path}: key extract_date is missing; expected YYYY-MM-DD")
    extract_date = dt.date.fromisoformat(str(ingest_manifest["extract_date"]))
    if people.empty:
        raise ContractError(f"{ingested / 'person_records.parquet'} has no rows; nothing to link")
    previous_path = None
    if previous is not None:
        previous_path = Path(previous) / "person_links.parquet"
        _check_parquet(previous_path, ("source", "record_id", "resident_id"))
    inputs = {name: file_sha256(ingested / name) for name in sorted(p.name for p in ingested.glob("*.parquet"))}
    run_id = stable_hash({
        "inputs": inputs, "linkage": config_to_dict(config)["linkage"], "seed": config.project.seed,
        "previous": None if previous_path is None else file_sha256(previous_path),
    })[:16]
    seconds["read"] = time.perf_counter() - start
    cpu_seconds["read"] = time.process_time() - cpu_start

    # Addresses: every person and address record gets an address_id (keyed) where it has any address.
    start, cpu_start = time.perf_counter(), time.process_time()
    both = pd.concat(
        [people[list(ADDRESS_COLUMNS)].assign(kind="person"), address_records[list(ADDRESS_COLUMNS)].assign(kind="address")],
        ignore_index=True,
    )
    matches = addr.match_addresses(both, gazetteer)
    del both
    address_id = _address_ids(matches, secret)
    people["address_id"] = address_id.iloc[: len(people)].to_numpy()
    people["matched_uprn"] = matches["matched_uprn"].iloc[: len(people)].to_numpy()
    address_records = address_records.assign(address_id=address_id.iloc[len(people):].to_numpy())
    tenure_by_uprn = addr.gazetteer_tenure(gazetteer, section.tenure_codes, section.default_tenure)
    tenure_by_address = {
        keyed_id(secret, "A", "uprn:" + str(u)): t for u, t in tenure_by_uprn.items() if not pd.isna(u)
    }
    address_quality = {
        "person_records": addr.match_rates(matches["match_rule"].iloc[: len(people)], weight),
        "address_records": addr.match_rates(matches["match_rule"].iloc[len(people):]),
    }
    del matches, address_id
    seconds["addresses"] = time.perf_counter() - start
    cpu_seconds["addresses"] = time.process_time() - cpu_start

    # People: Splink. Records repeating every linkage field (a pupil's monthly rows) are standardised
    # and linked once, through their first occurrence.
    start, cpu_start = time.perf_counter(), time.process_time()
    hashed = pd.util.hash_pandas_object(people[[c for c in PROFILE_COLUMNS if c in people]], index=False)
    profile, _ = pd.factorize(hashed.to_numpy())
    first_rows = pd.Series(np.arange(len(people))).groupby(profile, sort=True).first().to_numpy()
    standard = standardise(people.iloc[first_rows].reset_index(drop=True), section.sex_codes)
    seconds["standardise"] = time.perf_counter() - start
    cpu_seconds["standardise"] = time.process_time() - cpu_start
    result = link_people(standard, section, seed=config.project.seed, spill_parent=ingested)
    seconds.update({f"splink_{k}": v for k, v in result.seconds.items()})
    cpu_seconds.update({f"splink_{k}": v for k, v in result.cpu_seconds.items()})

    start, cpu_start = time.perf_counter(), time.process_time()
    cluster_by_uid = result.clusters.set_index("unique_id")["cluster_id"]
    distinct_clusters = cluster_by_uid.reindex(standard["unique_id"]).to_numpy()
    clusters = distinct_clusters[profile]
    # A group's kept record is its smallest record ID, so the smallest key of a cluster is a kept record's.
    record_keys = _record_key(people)
    previous_counts, previous_ids = None, None
    if previous_path is not None:
        previous_counts = store.counts_by_kept(previous_path, "resident_id").rename(
            columns={"kept_idx": "idx", "value": "prev"})
        previous_ids = store.distinct_values(previous_path, "resident_id")
    resident_id, change, change_table = _stable_ids_counted(
        record_keys, clusters, previous_counts, previous_ids, secret, run_id)
    people["resident_id"] = resident_id.to_numpy()
    # When each record joined its resident: its events, outcomes and residency count from then on.
    linking_start, linking_cpu = time.perf_counter(), time.process_time()
    kept_linked = _kept_linked_days(people, profile, result, record_keys, standard)
    seconds["link_times"] = time.perf_counter() - linking_start
    cpu_seconds["link_times"] = time.process_time() - linking_cpu
    # A record's match probability: its strongest link inside its cluster (null when it stands alone).
    edges = result.edges
    best = pd.concat([edges[["unique_id_l", "match_probability"]].rename(columns={"unique_id_l": "uid"}),
                      edges[["unique_id_r", "match_probability"]].rename(columns={"unique_id_r": "uid"})])
    same = distinct_clusters[best["uid"].to_numpy()] == distinct_clusters[
        pd.concat([edges["unique_id_r"], edges["unique_id_l"]]).to_numpy()]
    best = best[same].groupby("uid")["match_probability"].max()
    # Records Splink saw through an identical representative share its links; a repeat of a record
    # (another record of its group, or of its profile) is certain to be the same person as it.
    rep = result.representative[profile]
    repeated = pd.Series(rep).duplicated(keep=False).to_numpy() | (weight > 1)
    record_best = best.reindex(rep).to_numpy()
    record_best = np.where(repeated, 1.0, record_best)
    per_kept_links = pd.DataFrame({
        "resident_id": people["resident_id"].astype("object").to_numpy(),
        "match_probability": record_best.astype("float64"),
        "cluster_change": change.astype("object").to_numpy(),
        "linked": kept_linked,
    })

    # Residents: attributes by the most-frequent-non-null-latest-on-ties rule (counting records).
    people["_seen"] = pd.to_datetime(people["last_seen"])
    people["_birth"] = standard["birth_date"].to_numpy()[profile]
    people["_sex"] = standard["sex"].to_numpy()[profile]
    people["_ethnicity"] = (
        _map_codes(people[section.ethnicity_column], section.ethnicity_codes) if section.ethnicity_column in people else None
    )
    people["_disability"] = (
        _map_codes(people[section.disability_column], section.disability_codes) if section.disability_column in people else None
    )
    ids = pd.Index(pd.unique(people["resident_id"]), name="resident_id")
    residents = pd.DataFrame(index=ids)
    for column, source in (("birth_date", "_birth"), ("sex", "_sex"), ("ethnicity", "_ethnicity"), ("disability", "_disability")):
        residents[column] = hist.most_frequent_latest(people, "resident_id", source, "_seen", "n_records").reindex(ids)
    usable = residents["birth_date"].notna() & residents["sex"].notna()
    dropped_residents = residents.index[~usable]
    residents = residents[usable].reset_index()
    residents["birth_date"] = pd.to_datetime(residents["birth_date"]).astype("datetime64[s]").dt.date
    residents["disability"] = residents["disability"].astype("boolean")
    residents = residents.sort_values("resident_id").reset_index(drop=True)

    # Integer codes (in ID sort order) stand for resident and address IDs inside DuckDB.
    resident_names = residents["resident_id"].tolist()
    resident_code = pd.Index(resident_names).get_indexer(people["resident_id"])
    address_names = np.sort(pd.unique(np.concatenate([
        people["address_id"].dropna().to_numpy(dtype=object),
        address_records["address_id"].dropna().to_numpy(dtype=object)]))).tolist()
    address_index = pd.Index(address_names)
    person_address_code = address_index.get_indexer(people["address_id"].astype("object").where(people["address_id"].notna(), None))

    # Residency and households, from every record's dated observation.
    daily = store.daily_observations(resident_code, person_address_code, tuple(section.ongoing_record_sources),
                                     extract_date, linked=kept_linked)
    spells = hist.spells_from_daily(daily, section.residency_lapse_days, pd.Timestamp(extract_date))
    del daily
    spells["resident_id"] = np.asarray(resident_names, dtype=object)[spells["resident_id"].to_numpy(dtype=np.int64)] \
        if len(spells) else pd.Series(dtype="object")
    spells["address_id"] = np.asarray(address_names, dtype=object)[spells["address_id"].to_numpy(dtype=np.int64)] \
        if len(spells) else pd.Series(dtype="object")
    spells["household_id"] = hist.household_ids(spells, secret).to_numpy()
    spells["tenure"] = hist.spell_tenure(spells["address_id"], tenure_by_address, section.default_tenure)
    residency = spells[["resident_id", "household_id", "address_id", "start_date", "end_date", "tenure"]].copy()
    residency["start_date"] = pd.to_datetime(residency["start_date"]).dt.date
    residency["end_date"] = pd.to_datetime(residency["end_date"]).dt.date
    residency = residency.sort_values(["resident_id", "start_date"]).reset_index(drop=True)
    lived_in = np.zeros(len(address_names), dtype=bool)
    lived_in[address_index.get_indexer(pd.unique(residency["address_id"]))] = True

    # Events (written by DuckDB straight to the output folder's temporary file) and outcomes.
    out_dir.mkdir(parents=True, exist_ok=True)
    kept_codes = pd.DataFrame({"res": resident_code.astype(np.int64), "addr": person_address_code.astype(np.int64),
                               "linked": kept_linked})
    address_codes = pd.DataFrame({
        "source": address_records["source"].astype(str).to_numpy(),
        "record_id": address_records["record_id"].astype(str).to_numpy(),
        "addr": address_index.get_indexer(address_records["address_id"].astype("object")).astype(np.int64),
    })
    event_counts = store.link_events(ingested / "events.parquet", kept_codes, address_codes, resident_names,
                                     address_names, lived_in, tuple(section.address_events_sources),
                                     out_dir / "events.parquet")
    outcomes_path = ingested / "outcomes.parquet"
    if outcomes_path.exists():
        _check_parquet(outcomes_path, OUTCOME_COLUMNS)
        outcomes = store.map_outcomes(outcomes_path)
    else:
        outcomes = pd.DataFrame({c: pd.Series(dtype="object") for c in OUTCOME_COLUMNS}).assign(kept_idx=pd.Series(dtype="int64"))
    kept_idx = outcomes["kept_idx"].to_numpy(dtype=np.int64)
    out_code = np.where(kept_idx >= 0, resident_code[np.maximum(kept_idx, 0)] if len(resident_code) else -1, -1)
    keep_outcome = pd.Series(out_code >= 0, index=outcomes.index)
    resident_array = np.asarray(resident_names, dtype=object)
    # An outcome is known to be the resident's once its record was linked to them (link_times.py).
    own_known = pd.to_datetime(outcomes["known_at"]).astype("datetime64[us]")
    outcome_linked = pd.Series(kept_linked[np.maximum(kept_idx, 0)] if len(kept_linked) else
                               np.full(len(kept_idx), np.datetime64("NaT"), dtype="datetime64[D]"),
                               index=outcomes.index).astype("datetime64[us]").where(out_code >= 0)
    outcome_known = own_known.where(~(outcome_linked > own_known), outcome_linked)
    linked_outcomes = pd.DataFrame({
        "resident_id": resident_array[out_code[keep_outcome.to_numpy()]].astype(str) if keep_outcome.any() else pd.Series(dtype="str").to_numpy(),
        "outcome_type": outcomes.loc[keep_outcome, "outcome_type"].astype(str).to_numpy(),
        "outcome_time": pd.to_datetime(outcomes.loc[keep_outcome, "outcome_time"]).astype("datetime64[us]").to_numpy(),
        "known_at": outcome_known[keep_outcome].to_numpy(),
        "end_time": (pd.to_datetime(outcomes.loc[keep_outcome, "end_time"]).astype("datetime64[us]").to_numpy()
                     if "end_time" in outcomes else pd.NaT),
    })
    seconds["histories"] = time.perf_counter() - start
    cpu_seconds["histories"] = time.process_time() - cpu_start

    # Quality, counting records (each kept row stands for `weight` records).
    start, cpu_start = time.perf_counter(), time.process_time()
    cluster_series = pd.Series(clusters)
    cluster_records = pd.Series(weight).groupby(clusters).sum()
    cluster_sizes = cluster_series.map(cluster_records)
    sources_per_cluster = pd.DataFrame({"c": clusters, "s": people["source"].to_numpy()}).groupby("c")["s"].nunique()
    multi_source = (cluster_series.map(sources_per_cluster) > 1).to_numpy()
    linked = (cluster_sizes > 1).to_numpy()
    # Records of residents without a birth date or a sex cannot enter the contract (counted per source).
    record_dropped = people["resident_id"].isin(dropped_residents).to_numpy()
    per_source = {}
    for source, idx in people.groupby("source").indices.items():
        w = weight[idx]
        per_source[str(source)] = {
            "records": int(w.sum()),
            "linked_share": round(float((linked[idx] * w).sum() / w.sum()), 4),
            "linked_to_other_source_share": round(float((multi_source[idx] * w).sum() / w.sum()), 4),
            "dropped_records": int((record_dropped[idx] * w).sum()),
            "dropped_share": round(float((record_dropped[idx] * w).sum() / w.sum()), 4),
        }
    size_counts = cluster_records.value_counts().sort_index()
    resident_attrs = people[["resident_id"]].merge(
        residents[["resident_id", "sex", "ethnicity", "birth_date"]], on="resident_id", how="left")
    last_spell = residency.sort_values("start_date").drop_duplicates("resident_id", keep="last").set_index("resident_id")["tenure"]
    min_cell, round_to = config.audit.min_cell, config.audit.round_to
    later = store.linked_later(resident_code, kept_linked)
    unlinked = pd.Series(~linked)
    by_group = {
        "sex": qual.suppressed_rates(unlinked, resident_attrs["sex"], min_cell, round_to, weight),
        "ethnicity": qual.suppressed_rates(unlinked, resident_attrs["ethnicity"], min_cell, round_to, weight),
        "age_band": qual.suppressed_rates(unlinked, qual.age_band(resident_attrs["birth_date"], extract_date), min_cell,
                                          round_to, weight),
        "tenure": qual.suppressed_rates(unlinked, resident_attrs["resident_id"].map(last_spell), min_cell, round_to, weight),
    }
    dropped_set = set(dropped_residents)
    quality: dict[str, Any] = {
        "link_run_id": run_id,
        "records": total_records,
        "records_collapsed": total_records - int(len(people)),
        "residents": int(len(residents)),
        "clusters": int(len(pd.unique(clusters))),
        "threshold": section.threshold,
        "prior_match_probability": result.prior,
        "pairs_compared": result.pairs_compared,
        "distinct_records_compared": result.distinct_records,
        "per_source": per_source,
        "cluster_sizes": {str(int(k)): int(v) for k, v in size_counts.items()},
        "match_weights": result.parameters,
        # A previous run's parameters used instead of training (linkage.trained_model), else null.
        "trained_model": None if section.trained_model is None else str(section.trained_model),
        # Disagreement levels whose trained weight was floored (docs/adr/0022-disagreement-penalty-floor.md).
        "max_disagreement_penalty": section.max_disagreement_penalty,
        "disagreement_weights_floored": result.floored,
        "addresses": address_quality,
        "unlinked_by_group": by_group,
        "dropped": {
            "residents_without_birth_date_or_sex": int(len(dropped_residents)),
            "records_of_dropped_residents": int(weight[people["resident_id"].isin(dropped_set).to_numpy()].sum()),
            "events_without_resident_or_address": event_counts["orphan"] - event_counts["unplaced_address_events"],
            "address_events_where_no_resident_lived": event_counts["unplaced_address_events"],
            "outcomes_without_resident": int((~keep_outcome).sum()),
        },
        "small_count_rule": {"min_cell": min_cell, "round_to": round_to},
        # Records joined to their resident only after they were known, through a record known later
        # (docs/adr/0023-links-known-in-time.md): what they bring counts from the joining day.
        "linked_in_time": {
            "records_linked_after_known": later["records"],
            "residents_with_such_records": later["residents"],
            "events_known_later_by_linkage": event_counts["known_later_by_linkage"],
            "outcomes_known_later_by_linkage": int((outcome_known[keep_outcome] > own_known[keep_outcome]).sum()),
        },
    }
    if previous_path is not None:
        quality["changes_since_previous"] = {str(k): int(v) for k, v in change_table["change"].value_counts().sort_index().items()}
        # New clusters hold no previous ID, so link_changes (one row per previous ID) cannot list them.
        quality["changes_since_previous"]["new"] = int(resident_id[change.eq("new").to_numpy()].nunique())
    if choice.path is not None:
        truth_path = choice.path
        person = qual.ground_truth_person_column(truth_path)
        counts = store.counts_by_kept(truth_path, person)
        covered = int(counts["n"].sum()) / total_records
        if covered < MIN_RECORDS_COVERED and choice.origin == "--ground-truth":
            raise ContractError(
                f"--ground-truth {truth_path} names only {covered:.1%} of the {total_records:,} person records in "
                f"{ingested}: it describes another world's extracts; give the ground truth of the borough these "
                "records were ingested from")
        if covered < MIN_RECORDS_COVERED:
            # Found by looking (linkage.ground_truth), not named: another world's truth gives no figures.
            logger.warning("ground truth %s names only %.1f%% of the person records; accuracy not measured",
                           truth_path, covered * 100)
            quality["ground_truth_used"] = (
                f"not used: {truth_path} (from {choice.origin}) names only {covered:.1%} of these person records, so "
                "it describes another world's extracts")
        else:
            quality["ground_truth_used"] = choice.describe()
            kept_at = counts["kept_idx"].to_numpy(dtype=np.int64)
            true_counts = pd.DataFrame({"c": clusters[kept_at], "t": counts["value"].to_numpy(),
                                        "n": counts["n"].to_numpy(dtype=np.int64)})
            quality["ground_truth"] = qual.pairwise_accuracy_counted(true_counts)
            quality["ground_truth"]["per_source"] = qual.pairwise_accuracy_by_source(
                true_counts["c"], true_counts["t"], pd.Series(people["source"].to_numpy()[kept_at]), true_counts["n"])
            quality["ground_truth"]["records_covered"] = round(covered, 4)
            if "planted_disagreement" in pq.ParquetFile(truth_path).schema_arrow.names:
                # Synthetic worlds: records planted to disagree on sex, NHS number or UPN (ADR 0022).
                planted = store.counts_by_kept(truth_path, "planted_disagreement").rename(columns={"kept_idx": "k"})
                quality["ground_truth"]["planted_disagreements"] = qual.planted_disagreements(
                    true_counts.assign(k=kept_at), planted, min_cell, round_to)
    else:
        quality["ground_truth_used"] = choice.describe()
    if section.clerical_review is not None:
        review_path = Path(section.clerical_review)
        if not review_path.exists():
            raise ContractError(f"linkage.clerical_review {review_path} does not exist")
        reviewed = pd.read_parquet(review_path) if review_path.suffix == ".parquet" else pd.read_csv(review_path)
        wanted = pd.concat([
            reviewed[["source_l", "record_id_l"]].set_axis(["source", "record_id"], axis=1),
            reviewed[["source_r", "record_id_r"]].set_axis(["source", "record_id"], axis=1),
        ]).astype(str).drop_duplicates().reset_index(drop=True)
        at = store.kept_of(wanted)
        known = at >= 0
        cluster_of = pd.Series(clusters[at[known]], index=_record_key(wanted[known]).to_numpy())
        quality["clerical_review"] = qual.clerical_accuracy(reviewed, cluster_of)
    seconds["quality"] = time.perf_counter() - start
    cpu_seconds["quality"] = time.process_time() - cpu_start

    # Write the rest atomically (events.parquet is already in place).
    start, cpu_start = time.perf_counter(), time.process_time()
    write_parquet(residents, out_dir / "residents.parquet")
    write_parquet(residency, out_dir / "residency.parquet")
    write_parquet(linked_outcomes, out_dir / "outcomes.parquet")
    store.write_person_links(per_kept_links, run_id, out_dir / "person_links.parquet")
    if previous_path is not None:
        write_parquet(change_table, out_dir / "link_changes.parquet")
    seconds["write"] = time.perf_counter() - start
    cpu_seconds["write"] = time.process_time() - cpu_start
    quality["seconds"] = {k: round(v, 2) for k, v in seconds.items()}
    quality["cpu_seconds"] = {k: round(v, 2) for k, v in cpu_seconds.items()}
    write_json(quality, out_dir / "link_quality.json")
    write_json(result.model, out_dir / "link_model.json")
    manifest = {
        "extract_date": extract_date.isoformat(),
        "sources": sorted(event_counts["sources"] | set(people["source"].astype(str))),
        "row_counts": {"residents": len(residents), "residency": len(residency), "events": event_counts["rows"],
                       "outcomes": len(linked_outcomes)},
        "link_run_id": run_id,
        "ingest": {k: v for k, v in ingest_manifest.items() if k != "extract_date"},
    }
    write_json(manifest, out_dir / "manifest.json")
    return LinkSummary(run_id, out_dir, len(residents), total_records, quality)
