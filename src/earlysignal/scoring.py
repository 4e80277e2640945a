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
from earlysignal.modeling.drift import drift_report

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
    declared = set((data.manifest or {}).get("sources", []) or [])
    missing = sorted(_required_sources(spec_config) - present - declared)
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
    from earlysignal.features.cohort import entry_columns
    from earlysignal.features.labels import follow_up_ended_ids

    ts = pd.Timestamp(as_of)
    spells = data.residency
    has_residency = len(spells) > 0
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
    quarantined = quarantined_living(data, ts, everyone=not has_residency)
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


def data_start(data: Any) -> dt.date | None:
    """When the data's records start: manifest window_start, else the earliest event date."""
    from earlysignal.dates import parse_date

    manifest = data.manifest or {}
    if manifest.get("window_start") is not None:
        return parse_date(manifest["window_start"], "manifest.json: key window_start")
    if data.events is None or data.events.empty:
        return None
    column = "event_time" if "event_time" in data.events.columns else "known_at"
    earliest = pd.to_datetime(data.events[column]).min()
    return None if pd.isna(earliest) else earliest.date()


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
) -> ScoringResult:
    """Score everyone in the cohort at as_of with a registered model; write the lists and a summary.

    Without allow_unapproved the version must pass every check of `require_approved`; with it,
    every file written is marked UNAPPROVED (file name and `approval_status` column). `config_path` is the
    config file the caller loaded (None: the default one); the case list's journey commands name it. Raises
    ApprovalError, ContractError or EarlySignalError (as_of outside the data, missing sources).
    """
    from earlysignal.tracking import quiet_downloads

    with quiet_downloads():
        return _score_cohort(config, as_of, model_uri, data_dir, out, allow_unapproved, progress=progress,
                             log_to_mlflow=log_to_mlflow, config_path=config_path)


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
) -> ScoringResult:
    from earlysignal import contract, features
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
    say("loading data")
    # Scoring only reads: quarantine files are the validate and features stages' job.
    data = contract.load_linked_data(data_dir, spec_config, write_quarantine=False)
    check_sources(spec_config, data, data_dir)
    check_as_of_in_range(as_of, data_start(data), data.extract_date, data_dir)
    say("building features")
    fm = features.build_feature_matrix(spec_config, data, as_of_dates=[as_of], with_labels=False)
    frame = fm.frame.reset_index(drop=True)
    # Follow-up that has ended (label.censoring.end_column on or before as_of) is nobody's to act on:
    # such a person is listed as unscored, not ranked.
    ended = features.follow_up_ended_ids(spec_config, data.residents, as_of)
    if ended:
        frame = frame.loc[~frame["resident_id"].astype(str).isin(ended)].reset_index(drop=True)
    missing = [c for c in model.feature_columns if c not in frame.columns]
    if missing:
        raise EarlySignalError(f"the rebuilt features lack {len(missing)} of the model's columns, e.g. {missing[:3]}")
    say("scoring and reasons")
    margin = model.raw_margin(frame)
    score = model.calibrator.predict(margin)
    k = M.capacity_k(len(frame), config.capacity)
    ranked = rank_cohort(frame, score, margin, k)
    contributions = model.contributions(frame)
    reasons = top_reasons(contributions, frame, model.feature_columns, metadata)
    ranked = pd.concat([ranked, reasons], axis=1).assign(approval_status=status)[RANKED_COLUMNS]
    ranked = ranked.sort_values("rank", kind="stable").reset_index(drop=True)
    unscored = unscored_residents(data, set(ranked["resident_id"]), as_of, spec_config)
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
    drift = drift_report(model.drift_reference, frame, score, config.scoring.drift_warn_psi, month=as_of.month)

    # Every file says whether its scores passed the approval gate: a column, and the file name.
    unscored["approval_status"] = status
    out_dir = Path(out) if out is not None else default_out_dir(config, as_of)
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
    case_list = write_case_list(out_dir, ranked, frame, contributions, model.feature_columns, metadata,
                                spec_config, config, summary)
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
            f"[bold yellow]{len(drifted)} feature(s) drifted beyond PSI {drift['warn_psi']}: {top}"
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
