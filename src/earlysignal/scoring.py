"""Score a cohort with an approved model: a ranked list with reasons, an unscored list, drift.

The features are rebuilt with the spec the model was trained on (from the model's artefacts),
never the current config's, so training and serving cannot drift apart silently. Nobody drops
out silently either: everyone living in the borough at as_of who is not scored is listed with
the reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from earlysignal.atomic import write_csv, write_json, write_parquet
from earlysignal.caselist import write_case_list
from earlysignal.config import ProjectConfig
from earlysignal.console import console
from earlysignal.dates import check_as_of_in_range
from earlysignal.errors import ContractError, EarlySignalError
from earlysignal.explain import top_reasons
from earlysignal.modeling import metrics as M
from earlysignal.modeling.drift import DriftCounts

RANKED_COLUMNS = [
    "resident_id", "as_of", "score", "rank", "percentile", "flagged",
    "reason_1", "reason_2", "reason_3", "contribution_1", "contribution_2", "contribution_3",
    "approval_status",
]


@dataclass
class ScoringResult:
    """What a scoring run wrote, and the lists themselves."""

    out_dir: Path
    ranked_parquet: Path
    ranked_csv: Path
    unscored_parquet: Path
    unscored_csv: Path
    summary_json: Path
    summary: dict[str, Any]
    ranked: pd.DataFrame = field(repr=False)
    unscored: pd.DataFrame = field(repr=False)


def default_out_dir(config: ProjectConfig, as_of: dt.date) -> Path:
    """reports/scores/<model.name>-<as_of>/"""
    return Path("reports") / "scores" / f"{config.model.name}-{as_of.isoformat()}"


def _required_sources(spec_config: ProjectConfig) -> set[str]:
    return {family.source for family in spec_config.features.families}


def check_sources(spec_config: ProjectConfig, data: Any, data_dir: Path) -> None:
    """Raise if the data lacks a source the model's feature spec needs."""
    present = set(data.events["source"].dropna().unique().tolist()) if len(data.events) else set()
    _check_source_set(spec_config, present, data.manifest, data_dir)


def _undeclared_sources(spec_config: ProjectConfig, manifest: dict[str, Any] | None) -> set[str]:
    """The sources the spec needs that manifest.json's 'sources' does not list (only these need events)."""
    return _required_sources(spec_config) - set((manifest or {}).get("sources", []) or [])


def _check_source_set(spec_config: ProjectConfig, present: set[str], manifest: dict[str, Any] | None,
                      data_dir: Path) -> None:
    missing = sorted(_undeclared_sources(spec_config, manifest) - present)
    if missing:
        raise ContractError(
            f"{data_dir}: the model's feature spec needs source(s) {missing}, which this data does not have "
            "(no events, not listed in manifest.json 'sources'); supply those extracts or retrain without them"
        )


def _age_years(birth: pd.Series, as_of: dt.date) -> pd.Series:
    born = pd.to_datetime(birth)
    years = as_of.year - born.dt.year
    before_birthday = (born.dt.month > as_of.month) | ((born.dt.month == as_of.month) & (born.dt.day > as_of.day))
    return years - before_birthday.astype(int)


FOLLOW_UP_ENDED = "follow-up ended"


def unscored_residents(data: Any, scored_ids: set[str], as_of: dt.date, spec_config: ProjectConfig) -> pd.DataFrame:
    """Everyone in the population at as_of who is not in the scored cohort, with the reason why.

    The population is everyone living in the area at as_of (the residency table) or, when the data
    has no residency table, every resident, quarantined ones included; scored + unscored = population.
    Columns: resident_id, as_of, reason.
    """
    has_residency = len(data.residency) > 0
    frame = unscored_living(data, scored_ids, as_of, spec_config, has_residency=has_residency)
    return with_quarantined(frame, data, scored_ids, as_of, has_residency=has_residency)


def unscored_living(
    data: Any, scored_ids: set[str], as_of: dt.date, spec_config: ProjectConfig, *, has_residency: bool
) -> pd.DataFrame:
    """unscored_residents without the quarantined residents, in no particular order: everyone `data`'s
    residency (or, when the borough has no residency table, `has_residency` False: its residents) puts in
    the area at as_of who is not in `scored_ids`, with the reason. Every row depends on the resident's own
    records only, so the lists of disjoint sets of residents (partitions) add up to the whole borough's.
    Columns: resident_id, as_of, reason."""
    from earlysignal.features.cohort import entry_columns
    from earlysignal.features.labels import follow_up_ended_ids

    ts = pd.Timestamp(as_of)
    spells = data.residency
    if has_residency:
        start = pd.to_datetime(spells["start_date"])
        end = pd.to_datetime(spells["end_date"])
        living = spells.loc[(start <= ts) & (end.isna() | (end > ts)), "resident_id"].astype(str).unique()
    else:
        living = data.residents["resident_id"].astype(str).unique()
    residents = data.residents.assign(resident_id=data.residents["resident_id"].astype(str)).set_index("resident_id")
    ids = pd.Index(living).difference(pd.Index(sorted(scored_ids)))
    frame = pd.DataFrame({"resident_id": ids.astype(str)})
    known = frame["resident_id"].isin(residents.index)
    reason = pd.Series("not in the cohort at as_of (see the cohort rules in docs/features.md)", index=frame.index)
    if known.any():
        rows = residents.reindex(frame["resident_id"])
        nat = pd.Series(pd.NaT, index=rows.index, dtype="datetime64[us]")
        age = _age_years(rows["birth_date"] if "birth_date" in rows.columns else nat, as_of).to_numpy()
        death = pd.to_datetime(rows["death_date"] if "death_date" in rows.columns else nat).to_numpy()
        cohort = spec_config.cohort
        open_state = _open_outcome_ids(data, ts, cohort.exclude_open_outcomes)
        in_open = frame["resident_id"].isin(open_state).to_numpy()
        end_column = spec_config.label.censoring.end_column
        ended = frame["resident_id"].isin(follow_up_ended_ids(spec_config, data.residents, as_of)).to_numpy()
        entry = entry_columns(spec_config)
        no_entry = not_entered = not_recorded = np.zeros(len(frame), dtype=bool)
        entry_reasons = ["", "", ""]
        if entry is not None:
            entry_column, known_from = entry
            # Whole days, as the cohort SQL compares them (CAST AS DATE).
            entered_on = pd.to_datetime(rows[entry_column], format="ISO8601").dt.normalize().to_numpy()
            no_entry = pd.isna(entered_on)
            not_entered = ~no_entry & (entered_on > np.datetime64(ts))
            if known_from is not None:
                recorded = pd.to_datetime(rows[known_from], format="ISO8601").dt.normalize().to_numpy()
                not_recorded = pd.isna(recorded) | (recorded >= np.datetime64(ts))
            entry_reasons = [
                f"no entry date ({entry_column} is empty; see cohort.entry_column)",
                f"not yet entered at as_of ({entry_column} after as_of)",
                f"entry not recorded before as_of ({known_from} on or after as_of or empty)",
            ]
        reasons = np.select(
            [
                ~known.to_numpy(),
                ~pd.isna(death) & (death <= np.datetime64(ts)),
                ended,
                no_entry,
                not_entered,
                not_recorded,
                age < (cohort.min_age if cohort.min_age is not None else -np.inf),
                age > (cohort.max_age if cohort.max_age is not None else np.inf),
                in_open,
            ],
            [
                "no resident record for this residency spell",
                "died before as_of",
                f"{FOLLOW_UP_ENDED} ({end_column} on or before as_of; see label.censoring.end_column)",
                *entry_reasons,
                f"younger than the cohort's minimum age ({cohort.min_age})",
                f"older than the cohort's maximum age ({cohort.max_age})",
                f"already in the outcome state at as_of ({', '.join(cohort.exclude_open_outcomes)} open)",
            ],
            default=reason.iloc[0] if len(reason) else "",
        )
        reason = pd.Series(reasons, index=frame.index)
    frame["as_of"] = ts
    frame["reason"] = reason.astype(str)
    return frame


def with_quarantined(
    frame: pd.DataFrame, data: Any, scored_ids: set[str], as_of: dt.date, *, has_residency: bool
) -> pd.DataFrame:
    """unscored_living's `frame` (the whole borough's) with the quarantined residents living here at as_of
    added (data.quarantined_residents: as many as the contract quarantined, a small table), sorted by
    resident_id."""
    quarantined = quarantined_living(data, pd.Timestamp(as_of), everyone=not has_residency)
    # A quarantined spell beside an accepted one (a duplicated move) leaves the resident listed once, where they are.
    quarantined = quarantined[~quarantined["resident_id"].isin(set(frame["resident_id"]) | set(scored_ids))]
    frame = pd.concat([frame, quarantined], ignore_index=True)
    return frame.sort_values("resident_id", kind="stable").reset_index(drop=True)


QUARANTINED_PREFIX = "quarantined by the data contract: "


def quarantined_living(data: Any, ts: pd.Timestamp, *, everyone: bool = False) -> pd.DataFrame:
    """Residents the data contract quarantined whose residency spell covers as_of (every quarantined
    resident when `everyone`: data without a residency table), with the contract's reason."""
    people = getattr(data, "quarantined_residents", None)
    if people is None or people.empty:
        return pd.DataFrame({"resident_id": pd.Series(dtype="str"), "as_of": pd.Series(dtype="datetime64[us]"),
                             "reason": pd.Series(dtype="str")})
    start, end = pd.to_datetime(people["start_date"]), pd.to_datetime(people["end_date"])
    covering = (start <= ts) & (end.isna() | (end > ts))
    living = people[covering | everyone].drop_duplicates("resident_id")
    return pd.DataFrame({"resident_id": living["resident_id"].astype(str).to_numpy(), "as_of": ts,
                         "reason": (QUARANTINED_PREFIX + living["reason"].astype(str)).to_numpy()})


def _open_outcome_ids(data: Any, ts: pd.Timestamp, outcome_types: tuple[str, ...]) -> set[str]:
    if not outcome_types or data.outcomes is None or data.outcomes.empty:
        return set()
    o = data.outcomes
    # As the cohort does: an outcome counts from when it was known (recorded), not only when it began.
    started = (pd.to_datetime(o["outcome_time"]) < ts) & (pd.to_datetime(o["known_at"]) < ts)
    end = pd.to_datetime(o["end_time"])
    open_now = o["outcome_type"].isin(outcome_types) & started & (end.isna() | (end > ts))
    return set(o.loc[open_now, "resident_id"].astype(str))


UNAPPROVED = "UNAPPROVED"


def approval_label(approval: Any) -> str:
    """'approved', 'demo-approved' (the synthetic demo's key) or 'UNAPPROVED' (--allow-unapproved)."""
    if approval is None:
        return UNAPPROVED
    return "demo-approved" if approval.demo else "approved"


def output_name(name: str, approval: Any) -> str:
    """ranked.csv, or ranked-UNAPPROVED.csv when the scores did not pass the approval gate."""
    if approval is not None:
        return name
    stem, _, suffix = name.partition(".")
    return f"{stem}-{UNAPPROVED}.{suffix}"


def _manifest_start(manifest: dict[str, Any] | None) -> dt.date | None:
    """manifest.json's window_start, None when it has none."""
    from earlysignal.dates import parse_date

    manifest = manifest or {}
    if manifest.get("window_start") is None:
        return None
    return parse_date(manifest["window_start"], "manifest.json: key window_start")


def data_start(data: Any) -> dt.date | None:
    """When the data's records start: manifest window_start, else the earliest event date."""
    start = _manifest_start(data.manifest)
    if start is not None:
        return start
    if data.events is None or data.events.empty:
        return None
    column = "event_time" if "event_time" in data.events.columns else "known_at"
    earliest = pd.to_datetime(data.events[column]).min()
    return None if pd.isna(earliest) else earliest.date()


def _events_digest(data: Any, want_sources: bool, want_start: bool) -> tuple[set[str], dt.date | None]:
    """(the accepted events' distinct sources, their earliest event_time (else known_at) as a date) from the
    per-partition event files of a StreamedData, read one record batch at a time: what check_sources and
    data_start take from the whole events table, without holding it. Reads nothing for what is not wanted."""
    import pyarrow as pa

    from earlysignal.contract.reading import to_pandas
    from earlysignal.contract.streaming import EVENTS_PART

    sources: set[str] = set()
    earliest: pd.Timestamp | None = None
    if not (want_sources or want_start):
        return sources, None
    names = data.events_schema.names
    column = "event_time" if "event_time" in names else "known_at"
    wanted = [c for c, want in (("source", want_sources), (column, want_start)) if want and c in names]
    for partition in range(data.partitions):
        path = Path(data.events_dir) / EVENTS_PART.format(partition)
        if not path.exists():
            continue
        with pa.OSFile(str(path)) as source, pa.ipc.open_stream(source) as reader:
            for batch in reader:
                part = to_pandas(pa.Table.from_batches([batch]).select(wanted))
                if "source" in wanted:
                    sources.update(part["source"].dropna().unique().tolist())
                if column in wanted and len(part):
                    first = pd.to_datetime(part[column]).min()
                    if not pd.isna(first) and (earliest is None or first < earliest):
                        earliest = first
    return sources, (earliest.date() if earliest is not None else None)


def rank_cohort(
    frame: pd.DataFrame, score: np.ndarray, margin: np.ndarray, k: int
) -> pd.DataFrame:
    """resident_id, as_of, score, rank, percentile, flagged: rank by score, then margin, then resident_id."""
    ids = frame["resident_id"].astype(str).to_numpy()
    rank = M.ranks(score, ids, tiebreak=margin)
    n = len(rank)
    out = pd.DataFrame(
        {
            "resident_id": ids,
            "as_of": frame["as_of"].to_numpy(),
            "score": score,
            "rank": rank,
            # Share of the cohort ranked at or below this resident: 100 for the top of the list.
            "percentile": np.round(100.0 * (n - rank + 1) / max(n, 1), 2),
            "flagged": rank <= k,
        },
        index=frame.index,
    )
    return out


def score_cohort(
    config: ProjectConfig,
    as_of: dt.date,
    model_uri: str | None = None,
    data_dir: str | Path | None = None,
    out: str | Path | None = None,
    allow_unapproved: bool = False,
    *,
    progress: Callable[[str], None] | None = None,
    log_to_mlflow: bool = True,
    config_path: str | Path | None = None,
    on_partition: Callable[[int, int], None] | None = None,
) -> ScoringResult:
    """Score everyone in the cohort at as_of with a registered model; write the lists and a summary.

    Without allow_unapproved the version must pass every check of `require_approved`; with it,
    every file written is marked UNAPPROVED (file name and `approval_status` column). `config_path` is the
    config file the caller loaded (None: the default one); the case list's journey commands name it.
    With `build.memory_budget_gb` or `build.partitions` set the data is read, and the cohort built and
    scored, one partition at a time (`score_partitions`); the outputs are the same as without.
    `on_partition(done, total)` is called as each partition is scored (a progress bar). Raises
    ApprovalError, ContractError or EarlySignalError (as_of outside the data, missing sources).
    """
    from earlysignal.tracking import quiet_downloads

    with quiet_downloads():
        return _score_cohort(config, as_of, model_uri, data_dir, out, allow_unapproved, progress=progress,
                             log_to_mlflow=log_to_mlflow, config_path=config_path, on_partition=on_partition)


REASON_COLUMNS = ["reason_1", "reason_2", "reason_3", "contribution_1", "contribution_2", "contribution_3"]


@dataclass
class ScoredRows:
    """What scoring keeps of a cohort's feature rows once they are scored: everything the outputs need.

    `rows`: resident_id, as_of, score, margin, reason_1..3, contribution_1..3, one row per scored resident in
    the whole build's row order (resident_id); `reasons`: reason_features of those rows (resident_id, reason,
    feature, text, contribution: up to 3 rows per resident); `drift`: the bin counts drift_report needs;
    `unscored`: the unscored list (quarantined residents included). Small next to the feature frame (233
    floats a row) and the contributions matrix, which are held for one partition at a time."""

    rows: pd.DataFrame
    reasons: pd.DataFrame
    drift: DriftCounts
    unscored: pd.DataFrame
    partitions: int | None = None  # None: the data was loaded whole
    held_bytes: int | None = None  # the process's resident set when the partitions were chosen


def score_rows(model: Any, frame: pd.DataFrame, metadata: dict[str, Any]) -> tuple[pd.DataFrame, np.ndarray]:
    """Score a rebuilt feature frame (one as_of): (resident_id, as_of, score, margin, reason_1..3,
    contribution_1..3 per row, index as `frame`'s; the contributions matrix [rows, features + 1], log-odds).
    Rows are independent: scoring a frame in pieces gives the pieces of the whole frame's result."""
    margin = model.raw_margin(frame)
    score = model.calibrator.predict(margin)
    contributions = model.contributions(frame)
    reasons = top_reasons(contributions, frame, model.feature_columns, metadata)
    rows = pd.DataFrame({"resident_id": frame["resident_id"].astype(str).to_numpy(),
                         "as_of": frame["as_of"].to_numpy(), "score": score, "margin": margin}, index=frame.index)
    return pd.concat([rows, reasons], axis=1), contributions


def _cohort_frame(spec_config: ProjectConfig, data: Any, as_of: dt.date, model: Any) -> pd.DataFrame:
    """The model's features rebuilt for `data`'s residents at as_of, without those whose follow-up has ended.
    Raises EarlySignalError when a model column is missing."""
    from earlysignal import features

    fm = features.build_feature_matrix(spec_config, data, as_of_dates=[as_of], with_labels=False)
    frame = fm.frame.reset_index(drop=True)
    del fm
    # Follow-up that has ended (label.censoring.end_column on or before as_of) is nobody's to act on:
    # such a person is listed as unscored, not ranked.
    ended = features.follow_up_ended_ids(spec_config, data.residents, as_of)
    if ended:
        frame = frame.loc[~frame["resident_id"].astype(str).isin(ended)].reset_index(drop=True)
    missing = [c for c in model.feature_columns if c not in frame.columns]
    if missing:
        raise EarlySignalError(f"the rebuilt features lack {len(missing)} of the model's columns, e.g. {missing[:3]}")
    return frame


def _score_batch(
    model: Any, frame: pd.DataFrame, metadata: dict[str, Any], drift: DriftCounts
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score `frame`, add it to `drift`, trace its reasons: (rows, reasons) as ScoredRows keeps them."""
    from earlysignal.caselist import reason_features

    rows, contributions = score_rows(model, frame, metadata)
    drift.add(frame, rows["score"].to_numpy())
    reasons = reason_features(rows, contributions, frame, model.feature_columns, metadata)
    return rows, reasons


def score_whole(
    spec_config: ProjectConfig, model: Any, as_of: dt.date, data_dir: Path,
    say: Callable[[str], None],
) -> ScoredRows:
    """Load the borough whole through the data contract, rebuild its cohort at as_of and score it."""
    from earlysignal import contract

    say("loading data")
    # Scoring only reads: quarantine files are the validate and features stages' job.
    data = contract.load_linked_data(data_dir, spec_config, write_quarantine=False)
    check_sources(spec_config, data, data_dir)
    check_as_of_in_range(as_of, data_start(data), data.extract_date, data_dir)
    say("building features")
    frame = _cohort_frame(spec_config, data, as_of, model)
    say("scoring and reasons")
    drift = DriftCounts(model.drift_reference, month=as_of.month)
    rows, reasons = _score_batch(model, frame, model.feature_metadata, drift)
    unscored = unscored_residents(data, set(rows["resident_id"]), as_of, spec_config)
    return ScoredRows(rows, reasons, drift, unscored)


def scoring_partition_count(config: ProjectConfig, n_residents: int, n_events: int, held_bytes: int = 0) -> int:
    """Partitions for scoring one as_of: build.partitions when set, else enough for each partition's build
    (features/partition.py estimated_build_bytes, one as_of) and its share of the events
    (`n_events` x BYTES_PER_SCORED_EVENT) to fit what is left of build.memory_budget_gb once the process
    holds `held_bytes` (its resident set when the partitions are chosen: libraries, the model, the loader's
    ID index), and at least MIN_PARTITION_SHARE of the budget. Raises ConfigError for a non-positive budget
    or count."""
    import math

    from earlysignal.errors import ConfigError
    from earlysignal.features.partition import estimated_build_bytes
    from earlysignal.features.spec import feature_definitions

    build = config.build
    if build.partitions is not None:
        if build.partitions < 1:
            raise ConfigError(f"build.partitions must be at least 1, got {build.partitions}")
        return int(build.partitions)
    if build.memory_budget_gb is None:
        return 1
    if build.memory_budget_gb <= 0:
        raise ConfigError(f"build.memory_budget_gb must be positive, got {build.memory_budget_gb}")
    needed = estimated_build_bytes(n_residents, 1, len(feature_definitions(config))) + n_events * BYTES_PER_SCORED_EVENT
    budget = build.memory_budget_gb * 1024**3
    # The budget is the process's: what it already holds is not a partition's to use. The share's floor keeps
    # the count finite when the process alone is near or over the budget (the run then says so).
    available = max(budget - held_bytes, budget * MIN_PARTITION_SHARE)
    return max(1, math.ceil(needed / available))


# The least share of build.memory_budget_gb one partition is given when the process already holds most of it
# (at 120,000 residents the libraries, the model and the loader's ID index hold ~0.5 GB before any partition).
MIN_PARTITION_SHARE = 0.1


def resident_set_bytes() -> int:
    """This process's resident set size now (bytes, psutil)."""
    import psutil

    return int(psutil.Process().memory_info().rss)


# What one accepted event costs while its partition is built and scored, the build included: the pandas frame
# read back from the partition's file and the feature builder's working copies. Measured on the 120,000-resident
# borough: one partition (4.39M events, 286,596 residents ever) took 0.82 GB above what the process held before
# it, two partitions 0.40-0.45 GB each: ~190 bytes an event (docs/performance.md, "Scoring per partition,
# measured"). The build's own estimate (estimated_build_bytes, every resident a cohort row) is added on top.
BYTES_PER_SCORED_EVENT = 200


# Rows of the events file the contract checks at a time while scoring per partition: a quarter of what
# `features` uses. Scoring holds the model and MLflow beside the loading, and with a million rows a batch the
# loading was its peak (120k borough: 0.82 GB loading against 0.66 GB building and scoring 8 partitions; with
# 250,000 rows 0.65 GB, no slower in single runs; 100,000 rows lowered it no further). docs/performance.md.
SCORING_BATCH_ROWS = 250_000


def _events_rows(data_dir: Path) -> int:
    """Rows of the events file (Parquet: from its footer, nothing read); 0 for CSV or an unreadable file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from earlysignal.contract.reading import table_path

    try:
        path = table_path(data_dir, "events")
        return int(pq.ParquetFile(path).metadata.num_rows) if path.suffix == ".parquet" else 0
    except (pa.ArrowException, OSError, EarlySignalError):
        return 0


def score_partitions(
    spec_config: ProjectConfig, model: Any, as_of: dt.date, data_dir: Path, work: Path,
    say: Callable[[str], None], on_partition: Callable[[int, int], None] | None = None,
) -> ScoredRows:
    """Score the borough one partition at a time (the partitions of features/partition.py: households and
    addresses kept whole, so each partition's rows equal the whole build's): the data contract writes every
    table's accepted rows per partition into a temporary folder `work` (removed at the end), then each
    partition's residents are built at as_of, scored, their reasons traced and their unscored residents
    listed; only ScoredRows' small tables are kept across partitions. The result equals score_whole's."""
    from earlysignal.features.partition import PartitionData, loaded_per_partition
    from earlysignal.contract.streaming import EVENTS_PART

    say("loading data per partition")
    metadata = model.feature_metadata
    n_events = _events_rows(data_dir)
    held: dict[str, int] = {}  # the process's resident set when the partitions are chosen
    # Scoring lists what the contract quarantined instead of refusing the data (as score_whole does).
    with loaded_per_partition(spec_config, data_dir, work, [as_of], None, False, SCORING_BATCH_ROWS,
                              count=lambda n: scoring_partition_count(spec_config, n, n_events,
                                                                      held.setdefault("bytes", resident_set_bytes())),
                              require_usable_data=False) as data:
        manifest = data.manifest or {}
        sources, earliest = _events_digest(data, want_sources=bool(_undeclared_sources(spec_config, manifest)),
                                           want_start=manifest.get("window_start") is None)
        _check_source_set(spec_config, sources, manifest, data_dir)
        start = _manifest_start(manifest) or earliest
        check_as_of_in_range(as_of, start, data.extract_date, data_dir)
        residency = data.report.tables.get("residency")
        has_residency = residency is not None and residency.accepted > 0
        drift = DriftCounts(model.drift_reference, month=as_of.month)
        rows: list[pd.DataFrame] = []
        reasons: list[pd.DataFrame] = []
        unscored: list[pd.DataFrame] = []
        total = data.partitions
        for partition in range(total):
            say(f"partition {partition + 1} of {total}")
            subset = PartitionData.from_streamed(data, partition)
            scored: set[str] = set()
            if len(subset.residents):
                frame = _cohort_frame(spec_config, subset, as_of, model)
                part_rows, part_reasons = _score_batch(model, frame, metadata, drift)
                del frame
                rows.append(part_rows)
                reasons.append(part_reasons)
                scored = set(part_rows["resident_id"])
            unscored.append(unscored_living(subset, scored, as_of, spec_config, has_residency=has_residency))
            del subset
            (data.events_dir / EVENTS_PART.format(partition)).unlink(missing_ok=True)
            if on_partition is not None:
                on_partition(partition + 1, total)
        # Partition -1: the spells and outcomes of no accepted resident (the contract quarantines such rows, so
        # it is normally empty); nobody there is scored, but a spell there would still be someone living here.
        orphans = PartitionData(residents=data.residents_of(-1), residency=data.residency_of(-1),
                                events=pd.DataFrame(), outcomes=data.outcomes_of(-1), extract_date=data.extract_date)
        if len(orphans.residency) or len(orphans.residents):
            unscored.append(unscored_living(orphans, set(), as_of, spec_config, has_residency=has_residency))
        if not rows:
            raise EarlySignalError(f"{data_dir}: no accepted resident to score (every partition is empty)")
        say("ranking")
        all_rows = _concat_nonempty(rows).sort_values("resident_id", kind="stable").reset_index(drop=True)
        listed = _concat_nonempty(unscored)
        whole_unscored = with_quarantined(listed, data, set(all_rows["resident_id"]), as_of,
                                          has_residency=has_residency)
    _say_if_over_budget(spec_config, held.get("bytes"), total)
    return ScoredRows(all_rows, _concat_nonempty(reasons), drift, whole_unscored, partitions=total,
                      held_bytes=held.get("bytes"))


def _say_if_over_budget(config: ProjectConfig, held_bytes: int | None, partitions: int) -> None:
    """Warn when the process alone held most of build.memory_budget_gb before any partition was built."""
    budget_gb = config.build.memory_budget_gb
    if budget_gb is None or held_bytes is None or held_bytes < (1 - MIN_PARTITION_SHARE) * budget_gb * 1024**3:
        return
    console.print(
        f"[yellow]This process held {held_bytes / 1024**3:.2f} GB (libraries, the model, the data's ID index) before "
        f"any partition was built, against build.memory_budget_gb {budget_gb}: the budget cannot be met here; each of "
        f"the {partitions} partitions was given {MIN_PARTITION_SHARE:.0%} of it.[/yellow]",
        highlight=False,
    )


def _concat_nonempty(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """pd.concat of the frames with rows (an empty one would change the dtypes); the first frame when none has."""
    kept = [f for f in frames if len(f)]
    if not kept:
        return frames[0].iloc[0:0].reset_index(drop=True) if frames else pd.DataFrame()
    return pd.concat(kept, ignore_index=True) if len(kept) > 1 else kept[0].reset_index(drop=True)


def _per_partition(config: ProjectConfig) -> bool:
    build = getattr(config, "build", None)
    return build is not None and (build.memory_budget_gb is not None or build.partitions is not None)


def _score_cohort(
    config: ProjectConfig,
    as_of: dt.date,
    model_uri: str | None,
    data_dir: str | Path | None,
    out: str | Path | None,
    allow_unapproved: bool,
    *,
    progress: Callable[[str], None] | None,
    log_to_mlflow: bool,
    config_path: str | Path | None = None,
    on_partition: Callable[[int, int], None] | None = None,
) -> ScoringResult:
    from earlysignal import features
    from earlysignal.approval import require_approved
    from earlysignal.modeling.artifacts import load_scoring_model
    from earlysignal.modeling.registry import resolve_model_version
    from earlysignal.tracking import configure_tracking

    say = progress or (lambda message: None)
    configure_tracking()
    model_uri = model_uri or f"models:/{config.model.name}@champion"
    say("checking approval")
    approval = None
    if allow_unapproved:
        console.print(f"[yellow]Scoring with {model_uri} WITHOUT checking approval (--allow-unapproved).[/yellow]")
    else:
        approval = require_approved(model_uri, config)
        if approval.demo:
            console.print(f"[bold yellow]{model_uri} carries a DEMO approval (synthetic data only).[/bold yellow]")
    status = approval_label(approval)
    # Score exactly the version whose approval was verified, not whatever the alias points to a moment later.
    version = resolve_model_version(
        model_uri if approval is None else f"models:/{approval.model_name}/{approval.model_version}"
    )
    pinned = f"models:/{version.name}/{version.version}"
    say("loading model")
    model = load_scoring_model(pinned)
    metadata = model.feature_metadata
    spec = metadata.get("spec")
    if not spec:
        raise EarlySignalError(f"{pinned} carries no feature spec in its artefacts; retrain it with `earlysignal train`")
    spec_config = features.config_with_spec(config, spec)
    current_hash = features.spec_hash(config)
    spec_note = "same as the current config"
    if current_hash != metadata.get("spec_hash"):
        spec_note = "differs from the current config; the model's own spec was used"
        console.print(
            "[yellow]The current config's feature spec differs from the one this model was trained with; "
            "scoring with the model's spec.[/yellow]"
        )
    data_dir = Path(data_dir) if data_dir is not None else Path(config.data.dir)
    out_dir = Path(out) if out is not None else default_out_dir(config, as_of)
    if _per_partition(config):
        # The accepted rows wait per partition beside the output folder, removed at the end.
        scored = score_partitions(spec_config, model, as_of, data_dir, out_dir, say, on_partition)
    else:
        scored = score_whole(spec_config, model, as_of, data_dir, say)
    rows = scored.rows
    score = rows["score"].to_numpy()
    k = M.capacity_k(len(rows), config.capacity)
    ranked = rank_cohort(rows, score, rows["margin"].to_numpy(), k)
    ranked = pd.concat([ranked, rows[REASON_COLUMNS]], axis=1).assign(approval_status=status)[RANKED_COLUMNS]
    ranked = ranked.sort_values("rank", kind="stable").reset_index(drop=True)
    unscored = scored.unscored
    n_quarantined = int(unscored["reason"].str.startswith(QUARANTINED_PREFIX).sum())
    n_ended = int(unscored["reason"].str.startswith(FOLLOW_UP_ENDED).sum())
    if n_ended:
        console.print(
            f"[yellow]{n_ended:,} resident(s) not scored because their follow-up had ended by {as_of} "
            f"(label.censoring.end_column {spec_config.label.censoring.end_column}); they are listed in "
            "unscored.csv with the reason.[/yellow]"
        )
    if n_quarantined:
        console.print(
            f"[yellow]{n_quarantined:,} resident(s) living here at {as_of} were quarantined by the data contract and "
            "could not be scored; they are listed in unscored.csv with the reason.[/yellow]"
        )
    drift = scored.drift.report(config.scoring.drift_warn_psi, warn_null_share=config.scoring.drift_warn_null_share)

    # Every file says whether its scores passed the approval gate: a column, and the file name.
    unscored["approval_status"] = status
    paths = {
        "ranked_parquet": write_parquet(ranked, out_dir / output_name("ranked.parquet", approval)),
        "ranked_csv": write_csv(ranked, out_dir / output_name("ranked.csv", approval)),
        "unscored_parquet": write_parquet(unscored, out_dir / output_name("unscored.parquet", approval)),
        "unscored_csv": write_csv(unscored, out_dir / output_name("unscored.csv", approval)),
    }
    summary = {
        "model_uri": pinned,
        "model_name": version.name,
        "model_version": str(version.version),
        "requested_model_uri": model_uri,
        "approval_checked": not allow_unapproved,
        "approval_status": status,
        "approval": approval.as_dict() if approval is not None else None,
        "as_of": as_of.isoformat(),
        "data_dir": str(data_dir),
        "config_path": str(config_path) if config_path is not None else None,
        "spec_hash": metadata.get("spec_hash"),
        "spec": spec_note,
        "capacity_k": k,
        "counts": {
            "scored": int(len(ranked)),
            "flagged": int(ranked["flagged"].sum()),
            "unscored": int(len(unscored)),
            "unscored_quarantined": n_quarantined,
            "unscored_follow_up_ended": n_ended,
            "unscored_by_reason": {str(r): int(c) for r, c in unscored["reason"].value_counts().sort_index().items()},
        },
        "score": {
            "mean": float(np.mean(score)) if len(score) else None,
            "flagged_min": float(ranked.loc[ranked["flagged"], "score"].min()) if k else None,
        },
        "drift": drift,
        "contributions_scale": "log-odds of the uncalibrated model (LightGBM pred_contrib)",
        "outputs": {key: str(path) for key, path in paths.items()},
    }
    if scored.partitions is not None:
        summary["partitions"] = scored.partitions  # read and scored in this many partitions (build section)
        if scored.held_bytes is not None:
            summary["held_gb_when_partitioned"] = round(scored.held_bytes / 1024**3, 3)
    case_list = write_case_list(out_dir, ranked, None, None, model.feature_columns, metadata,
                                spec_config, config, summary, reasons=scored.reasons)
    summary["outputs"].update({key: str(path) for key, path in case_list.items()})
    paths["summary_json"] = write_json(summary, out_dir / output_name("summary.json", approval))
    _report_drift(drift, paths["summary_json"])
    if log_to_mlflow:
        _log_score_run(config, summary, out_dir)
    return ScoringResult(out_dir, paths["ranked_parquet"], paths["ranked_csv"], paths["unscored_parquet"],
                         paths["unscored_csv"], paths["summary_json"], summary, ranked, unscored)


def _report_drift(drift: dict[str, Any], summary_json: Path | None = None) -> None:
    from earlysignal.console import CONSOLE_LIST_LIMIT, and_more

    if drift["score_over_warn"]:
        console.print(f"[bold yellow]Score drift: PSI {drift['score_psi']:.3f} > {drift['warn_psi']}[/bold yellow]")
    if drift["features_over_warn"]:
        drifted = drift["features_over_warn"]
        top = ", ".join(f"{c} ({drift['feature_psi'][c]:.2f})" for c in drifted[:CONSOLE_LIST_LIMIT])
        more = and_more(len(drifted), CONSOLE_LIST_LIMIT, summary_json)
        console.print(
            f"[bold yellow]{len(drifted)} feature(s) drifted beyond PSI {drift['warn_psi']} (compared with "
            f"{drift['reference']}): {top}" + (f"\n{more}" if more else "") + "[/bold yellow]",
            highlight=False,
        )
    moved = drift.get("features_null_share_changed") or []
    if moved:
        shares = drift["feature_null_share"]
        top = ", ".join(f"{c} ({shares[c]['reference']:.0%} missing in training, {shares[c]['now']:.0%} now)"
                        for c in moved[:CONSOLE_LIST_LIMIT])
        more = and_more(len(moved), CONSOLE_LIST_LIMIT, summary_json)
        console.print(
            f"[bold yellow]{len(moved)} feature(s) are missing far more or less often than in training (a value "
            f"recorded less often, or a measure with nothing to average): {top}"
            + (f"\n{more}" if more else "") + "[/bold yellow]",
            highlight=False,
        )


def _log_score_run(config: ProjectConfig, summary: dict[str, Any], out_dir: Path) -> None:
    """Counts, drift and the output path only: resident-level lists stay out of MLflow."""
    import mlflow

    from earlysignal.modeling.run_logging import start_tracking

    start_tracking(config)
    with mlflow.start_run(run_name=f"score {summary['as_of']}"):
        mlflow.set_tags({"earlysignal.stage": "score", "model_uri": summary["model_uri"],
                         "output_path": str(out_dir.resolve())})
        mlflow.log_params({"as_of": summary["as_of"], "model_version": summary["model_version"],
                           "approval_checked": str(summary["approval_checked"])})
        counts = summary["counts"]
        mlflow.log_metrics({
            "scored": counts["scored"], "flagged": counts["flagged"], "unscored": counts["unscored"],
            "score_psi": summary["drift"]["score_psi"], "max_feature_psi": summary["drift"]["max_feature_psi"],
            "features_over_warn": len(summary["drift"]["features_over_warn"]),
        })
        mlflow.log_dict({"drift": summary["drift"], "counts": counts, "spec": summary["spec"]}, "score/summary.json")
