"""Which drift reference a monthly list should be compared with: an experiment on a trained borough.

Builds the model's features at the 1st of every month over a reference span (default: the model's training
as_of dates up to --reference-end), scores them with the model, and makes three references from them:

- `overall`: every quarterly-grid as_of in the span pooled (what a month without its own bins fell back to);
- `nearest`: per calendar month of the grid only, a month off the grid compared with the nearest grid month;
- `monthly`: the grid months from the grid rows, the others from the 1st of each such month over the span
  (modeling/drift.py `OffGridRows`, `off_grid_as_of_dates`);
- `last-year`: the same with the off-grid months from the span's last year only (one as_of a month).

Then every month of --year is built, scored and compared with each reference; prints the number of features
over scoring.drift_warn_psi and the largest. Run from the borough's folder (config, data, mlruns):

    python benchmarks/drift_reference_by_month.py --model models:/earlysignal-cpp/1 --reference-end 2024-12-01 --year 2025
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from earlysignal.config import load_config
from earlysignal.features.builder import build_feature_matrix, load_data
from earlysignal.modeling.artifacts import load_scoring_model
from earlysignal.modeling.drift import OffGridRows, build_reference, drift_report, off_grid_as_of_dates


def _firsts(start: dt.date, end: dt.date) -> list[dt.date]:
    out, day = [], dt.date(start.year, start.month, 1)
    while day <= end:
        out.append(day)
        day = dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return out


def _nearest(reference: dict[str, Any], month: int) -> int:
    """The calendar month of reference["by_month"] nearest to `month` (circular; a tie goes to the one before)."""
    have = [int(m) for m in reference["by_month"]]
    return min(have, key=lambda m: (min((m - month) % 12, (month - m) % 12), (month - m) % 12))


def _scored(config: Any, data: Any, model: Any, dates: list[dt.date]) -> tuple[pd.DataFrame, np.ndarray]:
    frame = build_feature_matrix(config, data, as_of_dates=dates, with_labels=False).frame
    frame = frame[["as_of", *model.feature_columns]].reset_index(drop=True)
    score = model.calibrator.predict(model.raw_margin(frame))
    return frame, np.asarray(score)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None)
    parser.add_argument("--model", required=True)
    parser.add_argument("--reference-end", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--year", type=int, required=True)
    args = parser.parse_args()
    config = load_config(args.config)
    model = load_scoring_model(args.model)
    grid = [dt.date.fromisoformat(d) for d in model.model_info["training_as_of"]]
    grid = [d for d in grid if d <= args.reference_end]
    short = (model.feature_metadata.get("windows_before_data_start") or {}).keys()
    data = load_data(config)
    frames, scores = [], []
    for year in range(grid[0].year, args.reference_end.year + 1):
        dates = [d for d in _firsts(grid[0], args.reference_end) if d.year == year]
        frame, score = _scored(config, data, model, dates)
        frames.append(frame)
        scores.append(score)
    frame = pd.concat(frames, ignore_index=True)
    score = np.concatenate(scores)
    day = frame["as_of"].to_numpy().astype("datetime64[D]")
    month = day.astype("datetime64[M]").astype(int) % 12 + 1
    on_grid = np.isin(day, np.array(grid, dtype="datetime64[D]"))
    columns = list(model.feature_columns)
    g = frame.loc[on_grid].reset_index(drop=True)

    def off_grid(last_years: int | None) -> OffGridRows:
        rows = np.isin(day, np.array(off_grid_as_of_dates(grid, last_years), dtype="datetime64[D]"))
        return OffGridRows(frame.loc[rows].reset_index(drop=True), score[rows], month[rows])

    references = {
        "overall": build_reference(g, columns, score[on_grid], short_history=short),
        "nearest": build_reference(g, columns, score[on_grid], months=month[on_grid], short_history=short),
        "monthly": build_reference(g, columns, score[on_grid], months=month[on_grid], short_history=short,
                                   off_grid=off_grid(None)),
        "last-year": build_reference(g, columns, score[on_grid], months=month[on_grid], short_history=short,
                                     off_grid=off_grid(1)),
    }
    warn = config.scoring.drift_warn_psi
    print(f"reference span {grid[0]} to {args.reference_end}: grid months {sorted(set(d.month for d in grid))}, "
          f"{int(on_grid.sum()):,} grid rows, {len(frame):,} monthly rows; warn PSI {warn}")
    print("| as_of | reference | compared with | score PSI | features over warn | largest |")
    print("|---|---|---|---|---|---|")
    for as_of in _firsts(dt.date(args.year, 1, 1), dt.date(args.year, 12, 1)):
        now, now_score = _scored(config, data, model, [as_of])
        for name, reference in references.items():
            month_of = _nearest(reference, as_of.month) if name == "nearest" else as_of.month
            report = drift_report(reference, now, now_score, warn, month=month_of)
            over = report["features_over_warn"]
            top = ", ".join(f"{c} {report['feature_psi'][c]:.2f}" for c in over[:2])
            print(f"| {as_of} | {name} | {report['reference']} | {report['score_psi']:.3f} | {len(over)} | {top} |",
                  flush=True)


if __name__ == "__main__":
    main()
