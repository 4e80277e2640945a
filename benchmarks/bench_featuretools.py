"""Compare the feature builder with Featuretools 1.31 deep feature synthesis on a slice (not run by CI).

    # once: Featuretools in its own venv (pandas 3 breaks it; it is not a project dependency)
    python3 -m venv benchmarks/.venv-featuretools
    benchmarks/.venv-featuretools/bin/pip install -r benchmarks/requirements-featuretools.txt
    # then, from the project venv:
    .venv/bin/python benchmarks/bench_featuretools.py [--data DIR] [--residents 5000] [--runs 3]

Slice: the first --residents residents (by resident_id, any age, living in the borough) at 4
quarterly as_of dates, and their own resident-keyed events. Features: for every resident-keyed event type, the count in the
last 365 days and the days since the last event (whole history), i.e. resident scope.

Making the semantics identical:
- Featuretools has one time index per dataframe, so in the slice `event_time` is set to
  `known_at` for both tools (our rule `known_at < as_of and event_time < as_of` then reduces to
  Featuretools' single filter).
- Featuretools includes rows AT the cutoff by default; `include_cutoff_time=False` gives
  `time < cutoff` and `time >= cutoff - 365 days`, exactly our window.
- Featuretools' training window applies to every feature, so recency runs as a second
  `calculate_feature_matrix` call without a window (both calls are timed).
- Featuretools' TIME_SINCE_LAST is in seconds from the cutoff; our days_since_last counts calendar
  days from the event's date, i.e. ceil(seconds / 86400) at a midnight cutoff. The comparison
  converts Featuretools' seconds that way, and its missing counts (NaN) to 0.

The script runs our builder in this venv, Featuretools in the other venv (subprocess), exports
both to Parquet and compares them value by value.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AS_OF_DATES = ["2023-01-01", "2023-04-01", "2023-07-01", "2023-10-01"]
FT_PYTHON = Path(__file__).parent / ".venv-featuretools" / "bin" / "python"


def _featuretools_child(work: Path, runs: int) -> None:
    """Runs inside the Featuretools venv (pandas < 3); must not import earlysignal."""
    import featuretools as ft
    import numpy as np
    import pandas as pd

    events = pd.read_parquet(work / "events.parquet")
    cutoffs = pd.read_parquet(work / "cutoffs.parquet")
    kinds = sorted(events["kind"].unique())
    timings = []
    result = None
    for _ in range(runs):
        started = time.perf_counter()
        es = ft.EntitySet("slice")
        residents = pd.DataFrame({"resident_id": cutoffs["resident_id"].unique()})
        es.add_dataframe(dataframe_name="residents", dataframe=residents, index="resident_id")
        es.add_dataframe(
            dataframe_name="events",
            dataframe=events[["event_id", "resident_id", "kind", "time"]].copy(),
            index="event_id",
            time_index="time",
            logical_types={"kind": "Categorical"},
        )
        es.add_relationship("residents", "resident_id", "events", "resident_id")
        es.add_last_time_indexes()
        es.add_interesting_values(dataframe_name="events", values={"kind": kinds})
        definitions = ft.dfs(
            entityset=es,
            target_dataframe_name="residents",
            agg_primitives=["count", "time_since_last"],
            trans_primitives=[],
            where_primitives=["count", "time_since_last"],
            max_depth=1,
            features_only=True,
        )
        counts = [f for f in definitions if f.get_name().startswith("COUNT(events WHERE")]
        recency = [f for f in definitions if f.get_name().startswith("TIME_SINCE_LAST(events.time WHERE")]
        cutoff_frame = cutoffs.rename(columns={"as_of": "time"})[["resident_id", "time"]]
        windowed = ft.calculate_feature_matrix(
            counts, entityset=es, cutoff_time=cutoff_frame, training_window="365 days",
            include_cutoff_time=False, cutoff_time_in_index=True,
        )
        whole = ft.calculate_feature_matrix(
            recency, entityset=es, cutoff_time=cutoff_frame, include_cutoff_time=False, cutoff_time_in_index=True,
        )
        timings.append(time.perf_counter() - started)
        result = windowed.join(whole)
    assert result is not None
    out = result.reset_index().rename(columns={"time": "as_of"})
    renamed = {}
    for column in out.columns:
        if column.startswith("COUNT(events WHERE kind = "):
            kind = column.removeprefix("COUNT(events WHERE kind = ").removesuffix(")")
            source, event_type = kind.split(":")
            renamed[column] = f"resident__{source}__{event_type}__count__365d"
        elif column.startswith("TIME_SINCE_LAST(events.time WHERE kind = "):
            kind = column.removeprefix("TIME_SINCE_LAST(events.time WHERE kind = ").removesuffix(")")
            source, event_type = kind.split(":")
            renamed[column] = f"resident__{source}__{event_type}__days_since_last__all"
            out[column] = np.ceil(out[column].astype("float64") / 86400.0)
    out = out.rename(columns=renamed)
    for column in renamed.values():
        if "__count__" in column:
            out[column] = out[column].astype("float64").fillna(0.0)
    out["resident_id"] = out["resident_id"].astype(str)
    out.to_parquet(work / "featuretools.parquet", index=False)
    print("RESULT " + json.dumps({"times": timings, "features": len(renamed), "version": ft.__version__}))


def _slice(data_dir: Path, n_residents: int, work: Path):
    import pandas as pd

    from earlysignal.config import load_config
    from earlysignal.contract import load_linked_data
    from earlysignal.features import build_feature_matrix

    config = load_config("conf/borough.yaml")
    data = load_linked_data(data_dir, config, write_quarantine=False)
    as_of = [dt.date.fromisoformat(d) for d in AS_OF_DATES]
    spec_free = _slice_config(config, data)
    cohort = build_feature_matrix(spec_free, data, as_of_dates=as_of, with_labels=False).frame
    chosen = sorted(cohort["resident_id"].unique())[:n_residents]
    events = data.events
    events = events[events["resident_id"].isin(chosen)].copy()
    # One time index for both tools: the moment the council knew.
    events["event_time"] = events["known_at"]
    residents = data.residents[data.residents["resident_id"].isin(chosen)]
    residency = data.residency[data.residency["resident_id"].isin(chosen)]
    outcomes = data.outcomes[data.outcomes["resident_id"].isin(chosen)]
    sliced = type(data)(**{**data.__dict__, "residents": residents, "residency": residency,
                           "events": events, "outcomes": outcomes})
    # Only the event types the slice's residents have, as Featuretools' interesting values.
    spec_free = _slice_config(config, sliced)
    ft_events = pd.DataFrame({
        "event_id": events["event_id"].astype(str).to_numpy(),
        "resident_id": events["resident_id"].astype(str).to_numpy(),
        "kind": (events["source"].astype(str) + ":" + events["event_type"].astype(str)).to_numpy(),
        "time": events["known_at"].to_numpy(),
    })
    ft_events.to_parquet(work / "events.parquet", index=False)
    cutoffs = cohort[cohort["resident_id"].isin(chosen)][["resident_id", "as_of"]]
    cutoffs.assign(resident_id=cutoffs["resident_id"].astype(str)).to_parquet(work / "cutoffs.parquet", index=False)
    return spec_free, sliced, as_of, len(ft_events), len(cutoffs)


def _stage_timings(matrix) -> dict:
    return matrix.metadata["timings"]


def _slice_config(config, data):
    from earlysignal.config import config_from_dict, config_to_dict

    resident_sources = data.events[data.events["resident_id"].notna()][["source", "event_type"]].drop_duplicates()
    families = []
    for source, group in resident_sources.groupby("source"):
        families.append({
            "name": str(source), "source": str(source), "event_types": sorted(map(str, group["event_type"])),
            "scopes": ["resident"], "windows": ["365d"], "aggregates": ["count", "days_since_last"],
        })
    raw = config_to_dict(config)
    raw["features"] = {"static": [], "protected_as_features": [], "families": families}
    # Residents of every age, so that adults' event types (council tax, benefits) are in the slice too.
    raw["cohort"] = {**raw["cohort"], "min_age": 0, "max_age": 120}
    return config_from_dict(raw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="borough folder (default: generate a 20,000-resident synthetic borough)")
    parser.add_argument("--residents", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--featuretools-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.featuretools_child:
        _featuretools_child(Path(args.work), args.runs)
        return
    import numpy as np
    import pandas as pd

    from earlysignal.features import build_feature_matrix

    if not FT_PYTHON.exists():
        sys.exit(f"{FT_PYTHON} not found; create the Featuretools venv first (see the docstring)")
    data_dir = Path(args.data) if args.data else Path(tempfile.gettempdir()) / "earlysignal-bench-features" / "r20000-s42"
    if not (data_dir / "manifest.json").exists():
        from earlysignal.config import SynthSection
        from earlysignal.synth.borough import generate_borough

        generate_borough(data_dir, SynthSection(residents=20000, seed=42))
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        config, sliced, as_of, n_events, n_rows = _slice(data_dir, args.residents, work)
        ours_times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            ours = build_feature_matrix(config, sliced, as_of_dates=as_of, with_labels=False)
            ours_times.append(time.perf_counter() - started)
        ours.frame.to_parquet(work / "ours.parquet", index=False)
        load_before = os.getloadavg()[0]
        output = subprocess.run(
            [str(FT_PYTHON), __file__, "--featuretools-child", "--work", str(work), "--runs", str(args.runs)],
            check=True, capture_output=True, text=True,
        ).stdout
        ft_result = json.loads(next(line for line in output.splitlines() if line.startswith("RESULT "))[7:])
        theirs = pd.read_parquet(work / "featuretools.parquet")
        mine = pd.read_parquet(work / "ours.parquet")
    theirs["as_of"] = pd.to_datetime(theirs["as_of"]).astype("datetime64[us]")
    mine["as_of"] = pd.to_datetime(mine["as_of"]).astype("datetime64[us]")
    joined = mine.merge(theirs, on=["resident_id", "as_of"], how="outer", suffixes=("", "__ft"), indicator=True)
    unmatched_rows = int((joined["_merge"] != "both").sum())
    compared, differing = 0, {}
    for column in [c for c in theirs.columns if c.startswith("resident__")]:
        if column not in mine.columns:
            differing[column] = "missing from our matrix"
            continue
        a = joined[column].to_numpy(dtype=np.float64, na_value=np.nan)
        b = joined[column + "__ft"].to_numpy(dtype=np.float64, na_value=np.nan)
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        compared += 1
        if not same.all():
            differing[column] = int((~same).sum())
    ours_median = statistics.median(ours_times)
    ft_median = statistics.median(ft_result["times"])
    summary = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "slice": {"residents": args.residents, "as_of_dates": AS_OF_DATES, "rows": n_rows, "events": n_events},
        "features_compared": compared,
        "featuretools_features": ft_result["features"],
        "featuretools_version": ft_result["version"],
        "rows_only_in_one": unmatched_rows,
        "columns_that_differ": differing,
        "identical": unmatched_rows == 0 and not differing,
        "ours_median_s": round(ours_median, 3),
        "ours_stages_last_run": _stage_timings(ours),
        "featuretools_median_s": round(ft_median, 2),
        "speedup": round(ft_median / ours_median, 1),
        "runs": args.runs,
        "loadavg_1min": round(load_before, 1),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
