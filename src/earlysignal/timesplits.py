"""The temporal split plan (rolling origin): which as_of dates train, validate, calibrate and test.

Every test as_of is scored by a model that saw only as_of dates whose label windows had closed
before it (``as_of + horizon <= test as_of``): the model could have been trained on the day it
is tested, with nothing from the future. See docs/modeling.md for the reasoning.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from earlysignal.config import ProjectConfig
from earlysignal.errors import EarlySignalError


class SplitPlanError(EarlySignalError):
    """The as_of grid cannot support the requested split plan (too few labelled dates)."""


def add_months(day: dt.date, months: int) -> dt.date:
    """Calendar months after (or before, if negative) a date; the day is clamped to the month's end."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class Split:
    """One rolling-origin split: fit, early-stopping validation, calibration and test as_of dates."""

    name: str
    test: tuple[dt.date, ...]
    fit: tuple[dt.date, ...]
    validation: tuple[dt.date, ...]
    calibration: tuple[dt.date, ...]
    is_final: bool = False

    @property
    def training_dates(self) -> tuple[dt.date, ...]:
        """Every as_of date the model of this split learns from (fit, validation and calibration)."""
        return tuple(sorted(self.fit + self.validation + self.calibration))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (ISO dates)."""
        out = asdict(self)
        for key in ("test", "fit", "validation", "calibration"):
            out[key] = [d.isoformat() for d in out[key]]
        return out


@dataclass(frozen=True)
class SplitPlan:
    """The test splits (oldest first) and the final model's training slices."""

    splits: tuple[Split, ...]
    final: Split
    horizon_months: int | float | None
    history_months: int
    labelled_dates: tuple[dt.date, ...] = field(default=())
    horizon_text: str = ""
    # as_of -> end of its label window; default: as_of + horizon_months calendar months.
    window_end: Callable[[dt.date], dt.date] | None = field(default=None, compare=False, repr=False)

    def end_of(self, day: dt.date) -> dt.date:
        """The end of the label window that starts at `day`."""
        if self.window_end is not None:
            return self.window_end(day)
        return add_months(day, int(self.horizon_months or 0))

    @property
    def horizon_words(self) -> str:
        """The label horizon in words, e.g. '6 months'."""
        return self.horizon_text or f"{self.horizon_months} months"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form of the whole plan."""
        return {
            "horizon_months": self.horizon_months,
            "horizon": self.horizon_words,
            "history_months": self.history_months,
            "labelled_dates": [d.isoformat() for d in self.labelled_dates],
            "splits": [s.to_dict() for s in self.splits],
            "final": self.final.to_dict(),
        }

    def check_no_leakage(self) -> None:
        """Raise if any training date's label window passes its split's first test date (a bug guard)."""
        for split in self.splits:
            first_test = min(split.test)
            for day in split.training_dates:
                if self.end_of(day) > first_test:
                    raise SplitPlanError(
                        f"split {split.name}: training as_of {day} has a label window ending after "
                        f"the test as_of {first_test}"
                    )


def unlabelled_dates_note(
    grid_dates: Iterable[dt.date],
    labelled_dates: Iterable[dt.date],
    window_end: Callable[[dt.date], dt.date],
    extract_date: dt.date,
    horizon_text: str = "",
    rows_per_as_of: dict[str, int] | None = None,
) -> str:
    """Why the as_of dates of the grid that have no labelled row have none, in words for an error
    message ('' when every date is labelled): a label window still open at the extract date (with
    the date it closes), nobody in the cohort, or every row censored."""
    labelled = set(labelled_dates)
    missing = sorted(set(grid_dates) - labelled)
    if not missing:
        return ""
    open_ = [d for d in missing if window_end(d) > extract_date]
    closed = [d for d in missing if window_end(d) <= extract_date]
    horizon = f" ({horizon_text})" if horizon_text else ""
    parts = []
    if open_:
        shown = ", ".join(f"{d} closes {window_end(d)}" for d in open_[:6]) + (" ..." if len(open_) > 6 else "")
        parts.append(
            f"{len(open_)} as_of date(s) have no labels because their label window{horizon} was still open at "
            f"the extract date {extract_date} ({shown}): wait for a later extract, or shorten label.horizon"
        )
    if closed:
        rows = rows_per_as_of or {}
        empty = [d for d in closed if rows.get(d.isoformat()) == 0]
        censored = [d for d in closed if d not in empty]
        if empty:
            parts.append(f"{len(empty)} as_of date(s) have nobody in the cohort ({', '.join(map(str, empty[:6]))})")
        if censored:
            parts.append(
                f"{len(censored)} as_of date(s) have no known label although the window closed "
                f"({', '.join(map(str, censored[:6]))}): every row's follow-up ended inside it (see label.censoring)"
            )
    return "; ".join(parts) + "."


def _training_slices(
    candidates: Sequence[dt.date], history_months: int, validation_count: int, calibration_count: int, name: str,
    note: str = "",
) -> tuple[tuple[dt.date, ...], tuple[dt.date, ...], tuple[dt.date, ...]]:
    """Split the eligible training dates into (fit, validation, calibration), newest slices last;
    `note` (why some dates have no labels) ends any error."""
    tail = f" {note}" if note else ""
    if not candidates:
        raise SplitPlanError(
            f"split {name}: no labelled as_of date has a label window closed before the test date.{tail}"
        )
    latest = max(candidates)
    earliest = add_months(latest, -history_months)
    window = sorted(d for d in candidates if d >= earliest)
    needed = validation_count + calibration_count + 1
    if len(window) < needed:
        raise SplitPlanError(
            f"split {name}: only {len(window)} labelled as_of date(s) in the {history_months}-month training "
            f"history, need at least {needed} (training.validation_as_of_count={validation_count}, "
            f"training.calibration_as_of_count={calibration_count}, plus one to fit on). Add as_of dates "
            f"(temporal.first_as_of), lengthen training.history_years or lower training.n_test_splits.{tail}"
        )
    # Validation is the newest slice (closest to the test date, so early stopping sees the most
    # test-like data); calibration is the slice just before it; the model fits on the rest.
    validation = tuple(window[-validation_count:])
    calibration = tuple(window[-(validation_count + calibration_count) : -validation_count])
    fit = tuple(window[: -(validation_count + calibration_count)])
    return fit, validation, calibration


def plan_splits(
    labelled_dates: Iterable[dt.date],
    *,
    horizon_months: int | float | None = None,
    history_years: float,
    n_test_splits: int,
    validation_as_of_count: int = 1,
    calibration_as_of_count: int = 1,
    window_end: Callable[[dt.date], dt.date] | None = None,
    horizon_text: str = "",
    unlabelled_note: str = "",
) -> SplitPlan:
    """Plan rolling-origin splits: the latest ``n_test_splits`` labelled as_of dates are the tests.

    For each test date T the training candidates are the labelled dates d with d + horizon <= T,
    restricted to ``history_years`` before the newest candidate. The final model uses every
    labelled date up to the newest (its own validation and calibration slices included).
    `unlabelled_note` (see `unlabelled_dates_note`) ends every too-few-dates SplitPlanError.
    """
    if window_end is None and horizon_months is None:
        raise SplitPlanError("plan_splits needs horizon_months or window_end")
    if n_test_splits < 0:
        raise SplitPlanError(f"training.n_test_splits must be 0 or more, got {n_test_splits}")
    months = int(horizon_months or 0)
    end_of = window_end or (lambda day: add_months(day, months))
    dates = sorted(set(labelled_dates))
    history_months = max(1, round(history_years * 12))
    if len(dates) < n_test_splits + 1:
        raise SplitPlanError(
            f"{len(dates)} labelled as_of date(s) cannot support training.n_test_splits={n_test_splits}"
            + (f". {unlabelled_note}" if unlabelled_note else "")
        )
    splits = []
    # n_test_splits 0: no test split, only the final model (dates[-0:] would be every date).
    for number, test_date in enumerate(dates[len(dates) - n_test_splits :], start=1):
        name = f"split_{number}"
        candidates = [d for d in dates if end_of(d) <= test_date]
        fit, validation, calibration = _training_slices(
            candidates, history_months, validation_as_of_count, calibration_as_of_count, name, unlabelled_note
        )
        splits.append(Split(name, (test_date,), fit, validation, calibration))
    fit, validation, calibration = _training_slices(
        dates, history_months, validation_as_of_count, calibration_as_of_count, "final", unlabelled_note
    )
    final = Split("final", (), fit, validation, calibration, is_final=True)
    plan = SplitPlan(
        tuple(splits), final, horizon_months, history_months, tuple(dates), horizon_text, window_end
    )
    plan.check_no_leakage()
    return plan


def plan_from_config(
    config: ProjectConfig,
    labelled_dates: Iterable[dt.date],
    *,
    grid_dates: Iterable[dt.date] = (),
    extract_date: dt.date | None = None,
    rows_per_as_of: dict[str, int] | None = None,
) -> SplitPlan:
    """The split plan for a config (training.* and label.horizon_months) over the labelled dates.

    Given the matrix's whole as_of grid and extract date, an error for too few labelled dates also
    says why the other dates have none (`unlabelled_dates_note`). Raises SplitPlanError."""
    t = config.training
    labelled_dates = list(labelled_dates)
    note = ""
    if extract_date is not None:
        note = unlabelled_dates_note(grid_dates, labelled_dates, config.label.window_end, extract_date,
                                     config.label.horizon_text, rows_per_as_of)
    return plan_splits(
        labelled_dates,
        horizon_months=config.label.horizon_months,
        window_end=config.label.window_end,
        horizon_text=config.label.horizon_text,
        history_years=t.history_years,
        n_test_splits=t.n_test_splits,
        validation_as_of_count=t.validation_as_of_count,
        calibration_as_of_count=t.calibration_as_of_count,
        unlabelled_note=note,
    )


def plan_table(plan: SplitPlan) -> Any:
    """A rich Table of the plan: one row per split, date ranges per role."""
    from rich.table import Table

    def span(days: Sequence[dt.date]) -> str:
        if not days:
            return "-"
        if len(days) == 1:
            return days[0].isoformat()
        return f"{min(days).isoformat()} .. {max(days).isoformat()} ({len(days)})"

    table = Table(title=f"Temporal split plan (label horizon {plan.horizon_words})")
    for column in ("split", "fit", "calibration", "validation (early stopping)", "test"):
        table.add_column(column)
    for split in (*plan.splits, plan.final):
        table.add_row(split.name, span(split.fit), span(split.calibration), span(split.validation), span(split.test))
    return table


def plan_figure(plan: SplitPlan) -> Any:
    """A Gantt-style matplotlib Figure: each split a row, each as_of a coloured cell by role."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    colours = {"fit": "#4c72b0", "calibration": "#dd8452", "validation": "#55a868", "test": "#c44e52"}
    rows = [*plan.splits, plan.final]
    fig, ax = plt.subplots(figsize=(10, 1 + 0.5 * len(rows)))
    width = 60  # days: a bar per as_of date, narrower than the quarterly spacing
    for y, split in enumerate(rows):
        for role, colour in colours.items():
            for day in getattr(split, role):
                ax.broken_barh([(mdates.date2num(day), width)], (y - 0.35, 0.7), color=colour)
    ax.set_yticks(range(len(rows)), [s.name for s in rows])
    ax.invert_yaxis()
    ax.xaxis_date()
    ax.set_title(f"Temporal split plan: label windows close before each test as_of (horizon {plan.horizon_words})")
    ax.legend(handles=[Patch(color=c, label=r) for r, c in colours.items()], loc="lower left", ncol=4, fontsize=8)
    fig.tight_layout()
    return fig


__all__ = [
    "Split",
    "SplitPlan",
    "SplitPlanError",
    "add_months",
    "plan_figure",
    "plan_from_config",
    "plan_splits",
    "plan_table",
]
