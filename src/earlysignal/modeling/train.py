"""Temporal training: rolling-origin splits, LightGBM with early stopping, calibration, baselines,
metrics with bootstrap intervals, the pre-registered success criterion, and MLflow logging.

`train_model(config)` is the whole stage: it reads (or builds) the feature matrix, evaluates on
every test split, retrains the final model on all labelled history, logs everything to MLflow
and registers the model with the alias `candidate`.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import math
import os
import re
import subprocess
import tempfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from earlysignal.config import ProjectConfig, config_to_dict
from earlysignal.console import console
from earlysignal.errors import EarlySignalError
from earlysignal.modeling import metrics as M
from earlysignal.modeling.baselines import LogisticBaseline, OneFeatureRanker, PriorBaseline, choose_one_feature
from earlysignal.modeling.calibration import Calibrator
from earlysignal.modeling.drift import build_reference
from earlysignal.modeling import feature_rows as feature_rows_module
from earlysignal.modeling.feature_rows import FeatureRows, TaskRows, release_memory
from earlysignal.modeling.pyfunc_model import EarlySignalModel
from earlysignal.timesplits import Split, SplitPlan, plan_from_config, plan_table

SCORERS = ("model", "prior", "one_feature", "logistic", "oracle")
BASELINE_COLUMNS = {"prior": "score__prior", "one_feature": "score__one_feature", "logistic": "score__logistic"}
EXPLAIN_SAMPLE_MAX = 20_000
LOGISTIC_MAX_ROWS = 100_000  # logistic regression is a baseline; a seeded subsample bounds its cost
DRIFT_REFERENCE_MAX_ROWS = 200_000
PACKAGES = ("earlysignal", "lightgbm", "mlflow", "numpy", "pandas", "pyarrow", "scikit-learn", "shap", "duckdb")


class TrainingError(EarlySignalError):
    """The feature matrix cannot support training (no labels, one class, too few dates...)."""


@dataclass
class TrainingResult:
    """What a training run produced: the registered model and its evaluation."""

    run_id: str
    model_uri: str
    model_name: str
    model_version: str
    metrics: dict[str, Any]
    plan: SplitPlan
    criterion_met: bool | None
    test_predictions: pd.DataFrame = field(repr=False)
    model: EarlySignalModel = field(repr=False)


class SingleClassSliceError(TrainingError):
    """A slice of a split holds one label value only: that split cannot be fitted or evaluated."""


@dataclass
class _Labelled:
    """The labelled rows of the matrix as arrays, indexed by as_of date."""

    frame: pd.DataFrame  # resident_id, as_of, label, attr__* (no feature columns: X holds them)
    X: np.ndarray | FeatureRows  # FeatureRows: the features left on disk, read per task (bounded memory)
    y: np.ndarray
    day: np.ndarray  # datetime64[D]
    # Label timing (label_window_end, label_known_at, label_censored) when the matrix has it.
    timing: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    extract_date: dt.date | None = None
    usable: np.ndarray | None = None  # rows whose label is known in this view (None: all)

    def mask(self, dates: tuple[dt.date, ...]) -> np.ndarray:
        found = np.isin(self.day, np.array(dates, dtype="datetime64[D]"))
        return found if self.usable is None else found & self.usable

    def as_known_at(self, cut: dt.date) -> _Labelled:
        """The same rows with labels as they were known at `cut` (a split's test date): an outcome
        recorded on or after `cut` does not label a training row; rows whose label was unknown
        then (censored, nothing recorded yet) are left out. X is shared, not copied."""
        if self.timing is None or self.extract_date is None:
            return self
        from earlysignal.features.labels import label_at

        labels = label_at(*self.timing, cut=cut, extract_date=self.extract_date)
        known = ~np.asarray(labels.isna())
        return _Labelled(
            self.frame, self.X, np.asarray(labels.fillna(0)).astype(np.int8), self.day,
            self.timing, self.extract_date, known,
        )


# --------------------------------------------------------------------------- matrix input


def load_matrix(config: ProjectConfig, data_dir: Path | None = None, matrix: Any = None) -> Any:
    """The feature matrix: a given FeatureMatrix, one read from a path, or built/reused from data_dir."""
    if matrix is not None and hasattr(matrix, "frame"):
        return matrix
    from earlysignal import features

    if matrix is not None:
        path = Path(matrix)
        if not path.exists():
            raise TrainingError(f"feature matrix {path} does not exist; run `earlysignal features` first")
        return features.read_feature_matrix(path)
    built, status = features.build_or_reuse_feature_matrix(config, data_dir=data_dir)
    console.print(f"{features.matrix_status_words(status)}: {len(built.frame):,} rows x "
                  f"{len(built.feature_columns)} feature columns", highlight=False)
    return built


def _built_or_reused_lean(config: ProjectConfig, data_dir: Path, labelled_only: bool = False) -> Any:
    """The matrix of data_dir built or reused (as load_matrix), but a matrix on disk (reused, or built in
    partitions) is read lean (_read_lean_matrix, its labelled rows only with labelled_only): its feature
    columns one at a time, never as one frame."""
    from earlysignal import features

    built, status = features.build_or_reuse_feature_matrix(config, data_dir=data_dir, read_back=False)
    path = features.default_matrix_path(config, data_dir)
    fm = built if len(built.frame) else _read_lean_matrix(path, labelled_only=labelled_only)
    rows = "labelled rows" if labelled_only and isinstance(fm, _LeanMatrix) else "rows"
    console.print(f"{features.matrix_status_words(status)}: {len(fm.frame):,} {rows} x "
                  f"{len(fm.feature_columns)} feature columns", highlight=False)
    return fm


@dataclass
class _LeanMatrix:
    """A matrix on disk read for training without its feature columns in a frame: each feature column
    is read from the Parquet file(s) on its own, straight into the labelled array (at 250,000 residents the
    full frame is 1.6 GB that training never needs), or, when memory is bounded, each task's rows are read
    from the files as it needs them (FeatureRows)."""

    frame: pd.DataFrame  # every column but the features
    metadata: dict[str, Any]
    path: Path

    @property
    def feature_columns(self) -> list[str]:
        return list(self.metadata["feature_columns"])

    # A partitioned matrix (a folder of part files): its part files, else None (one file).
    parts: list[Path] | None = None
    # For each row of `frame`, its row in the files' concatenated order (the part files' rows, one file after
    # the other); None: the same order (one file, every row). Puts the rows in the whole build's (as_of,
    # resident_id) order, as read_partitioned_frame does.
    order: np.ndarray | None = None

    @property
    def files(self) -> list[Path]:
        return list(self.parts) if self.parts is not None else [self.path]

    def feature_values(self, column: str) -> np.ndarray:
        """One feature column, every row of `frame`, float32 with NaN for missing."""
        import pyarrow.parquet as pq

        if self.parts is not None:
            values = pq.read_table(self.parts, columns=[column]).column(0).to_numpy()
        else:
            if not hasattr(self, "_file"):
                self._file = pq.ParquetFile(self.path)
            values = self._file.read(columns=[column]).column(0).to_numpy()
        return np.asarray(values if self.order is None else values[self.order], dtype=np.float32)

    def feature_rows(self, rows: np.ndarray, progress: Callable[[str], None] | None = None) -> FeatureRows:
        """The features of `frame`'s rows `rows` (positions, shape (n,)) left in the files, read on demand."""
        import pyarrow.parquet as pq

        counts = [pq.ParquetFile(file).metadata.num_rows for file in self.files]
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        position = np.asarray(rows, dtype=np.int64) if self.order is None else self.order[rows].astype(np.int64)
        return FeatureRows(self.files, starts, position, self.feature_columns, feature_rows_module.READ_BATCH_ROWS,
                           progress)


def _read_lean_matrix(path: Path, labelled_only: bool = False) -> _LeanMatrix:
    """Read a matrix file, or a partitioned matrix's folder of part files, as _LeanMatrix (the same checks,
    row order and label type as read_feature_matrix). labelled_only: only the rows with a label (the rest
    are never held; when there is none, every row, so that the error can say why). The non-feature columns
    are read a file at a time. Raises EarlySignalError for missing columns or parts."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from earlysignal.features.matrix import read_feature_metadata

    metadata = read_feature_metadata(path)
    parts = sorted(path.glob("part-*.parquet")) if path.is_dir() else None
    if parts is not None and not parts:
        raise EarlySignalError(f"{path} holds no part files; rebuild the matrix with `earlysignal features`")
    names = pq.read_schema(parts[0] if parts else path).names
    missing = [c for c in metadata["feature_columns"] if c not in names]
    if missing:
        raise EarlySignalError(f"{path}: columns listed in the sidecar are missing: {missing[:5]}")
    features = set(metadata["feature_columns"])
    others = [c for c in names if c not in features]
    row_column = "__earlysignal_row"
    tables, start = [], 0
    for file in parts if parts is not None else [path]:
        table = pq.ParquetFile(file).read(columns=others, use_threads=False)
        table = table.append_column(row_column, pa.array(np.arange(start, start + table.num_rows, dtype=np.int64)))
        start += table.num_rows
        if labelled_only and "label" in others:
            table = table.filter(pc.is_valid(table["label"]))
            release_memory()  # the file's unlabelled rows
        tables.append(table)
    table = pa.concat_tables(tables)
    del tables
    if labelled_only and table.num_rows == 0:
        return _read_lean_matrix(path)
    if parts is not None and {"as_of", "resident_id"} <= set(others):
        # The whole build's order: (as_of, resident_id), resident IDs compared as text.
        ids = table["resident_id"]
        if not (pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type)):
            ids = pc.cast(ids, pa.large_string())
        keys = pa.table({"as_of": table["as_of"], "resident_id": ids})
        table = table.take(pc.sort_indices(keys, sort_keys=[("as_of", "ascending"), ("resident_id", "ascending")]))
        del ids, keys
    rows = table.column(row_column).to_numpy()
    frame = table.drop_columns([row_column]).to_pandas()
    del table
    order = None if np.array_equal(rows, np.arange(start)) else rows
    if "label" in frame.columns:
        frame["label"] = frame["label"].astype("Int8")
    release_memory()
    return _LeanMatrix(frame, metadata, path, parts, order)


def _shared_scratch() -> str | None:
    """Where the feature array is kept for the worker processes: shared memory when the system has it."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def _feature_array(shape: tuple[int, int], scratch: Path | None, name: str = "features.npy") -> np.ndarray:
    """An empty float32 array; memory-mapped as `scratch`/`name` when scratch is given, so worker processes
    map this one copy instead of each receiving (or joblib writing out) another."""
    if scratch is None:
        return np.empty(shape, dtype=np.float32)
    return np.lib.format.open_memmap(scratch / name, mode="w+", dtype=np.float32, shape=shape)


def _labelled_rows(
    matrix: Any, scratch: Path | None = None, *, on_disk: bool = False,
    progress: Callable[[str], None] | None = None,
) -> _Labelled:
    """The labelled rows of `matrix`: their light columns, and their features either as one float32 array
    (in `scratch` when given) or, with on_disk (a _LeanMatrix only), left in the matrix's files and read per
    task (FeatureRows; `progress` is told each file read). Raises TrainingError when no row is labelled."""
    frame = matrix.frame
    for column in ("resident_id", "as_of", "label"):
        if column not in frame.columns:
            raise TrainingError(f"feature matrix lacks the column {column!r}")
    has_label = frame["label"].notna().to_numpy()
    feature_columns = list(matrix.feature_columns)
    columns = [c for c in frame.columns if c not in set(feature_columns)]
    # Every row labelled (a matrix read with labelled_only): no copy of the frame.
    labelled = frame[columns] if has_label.all() else frame.loc[has_label, columns]
    if labelled.empty:
        raise TrainingError(empty_input_message(matrix))
    keep = ["resident_id", "as_of", "label", *[c for c in labelled.columns if c.startswith("attr__")]]
    if on_disk:
        X: np.ndarray | FeatureRows = matrix.feature_rows(np.flatnonzero(has_label), progress)
    else:
        # Filled column by column: one float32 copy of the labelled features, never a second frame of them.
        X = _feature_array((len(labelled), len(feature_columns)), scratch)
        read = getattr(matrix, "feature_values", None)
        for j, column in enumerate(feature_columns):
            values = read(column) if read else frame[column].to_numpy(dtype=np.float32, na_value=np.nan)
            X[:, j] = values[has_label]
    y = labelled["label"].astype("int8").to_numpy()
    day = labelled["as_of"].to_numpy().astype("datetime64[D]")
    light = labelled[keep].reset_index(drop=True)
    light["resident_id"] = light["resident_id"].astype(str)
    timing = None
    extract = matrix.metadata.get("extract_date")
    if all(c in labelled.columns for c in ("label_window_end", "label_known_at", "label_censored")) and extract:
        timing = (
            labelled["label_window_end"].to_numpy().astype("datetime64[D]"),
            labelled["label_known_at"].to_numpy().astype("datetime64[us]"),
            labelled["label_censored"].to_numpy(dtype=bool),
        )
    extract_date = dt.date.fromisoformat(extract) if extract else None
    return _Labelled(light, X, y, day, timing, extract_date)


def empty_input_message(matrix: Any) -> str:
    """Why a matrix has no labelled rows, in words: no cohort rows at all, windows past the extract
    date, censored follow-up, or labels not built; names the counts and what to change."""
    frame, meta = matrix.frame, matrix.metadata
    n = len(frame)
    if n == 0:
        return (
            "the feature matrix has 0 rows: nobody met the cohort rules at any as_of date "
            f"({len(meta.get('as_of_dates', []))} date(s) from temporal.first_as_of to temporal.last_as_of). "
            "Check the cohort section (age range, residency, recent-event and prior-outcome rules) "
            "against the data, and that the as_of dates fall inside the data's time span"
        )
    if not meta.get("label", {}).get("included", True):
        return f"the feature matrix has {n} rows but was built without labels (scoring matrix); rebuild it with labels"
    extract = meta.get("extract_date")
    open_windows = censored = 0
    if "label_window_end" in frame.columns and extract:
        open_windows = int((frame["label_window_end"].to_numpy().astype("datetime64[D]")
                            > np.datetime64(extract, "D")).sum())
        censored = int(frame["label_censored"].to_numpy(dtype=bool).sum()) if "label_censored" in frame.columns else 0
    parts = [f"the feature matrix has no labelled rows ({n} rows, none with a known label)"]
    if open_windows:
        parts.append(
            f"{open_windows} row(s) have label windows ({meta.get('label', {}).get('horizon', 'the horizon')}) "
            f"ending after the extract date {extract}: move temporal.last_as_of earlier or use a later extract"
        )
    if censored:
        parts.append(
            f"{censored} row(s) are censored (follow-up ended inside the window: moved away, died or "
            "label.censoring.end_column): see label.censoring"
        )
    return "; ".join(parts)


# --------------------------------------------------------------------------- fitting


def lightgbm_params(config: ProjectConfig) -> dict[str, Any]:
    """LightGBM parameters from the config; seeded, deterministic, fixed thread count."""
    m, seed = config.model, config.project.seed
    return {
        "objective": "binary",
        "metric": "binary_logloss",
        "learning_rate": m.learning_rate,
        "num_leaves": m.num_leaves,
        "min_child_samples": m.min_child_samples,
        "feature_fraction": m.feature_fraction,
        "bagging_fraction": m.bagging_fraction,
        "bagging_freq": m.bagging_freq,
        "lambda_l2": m.lambda_l2,
        "seed": seed,
        "bagging_seed": seed,
        "feature_fraction_seed": seed,
        "data_random_seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": config.training.num_threads,
        "verbose": -1,
    }


def negative_sample(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep every positive and a seeded `fraction` of negatives; weights undo the sampling.

    y: 0/1 labels, shape (n,). Returns (positions kept, ascending, shape (m,); float weights, shape (m,):
    1 for positives, n_negatives / n_negatives_kept for kept negatives, so weighted counts equal the
    full slice's). fraction 1.0 keeps every row with weight 1. Raises ValueError outside (0, 1].
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"training.negative_sample_fraction must be in (0, 1], got {fraction}")
    y = np.asarray(y)
    if fraction >= 1:
        return np.arange(len(y)), np.ones(len(y))
    negatives = np.flatnonzero(y == 0)
    n_keep = max(1, int(round(fraction * len(negatives)))) if len(negatives) else 0
    kept_negatives = np.random.default_rng(seed).choice(negatives, size=n_keep, replace=False)
    keep = np.sort(np.concatenate([np.flatnonzero(y != 0), kept_negatives]))
    # The realised ratio (not 1 / fraction) so the weighted negative count is exact.
    weight = np.where(y[keep] == 0, len(negatives) / max(n_keep, 1), 1.0)
    return keep, weight


@dataclass
class _FittedSplit:
    booster: lgb.Booster
    calibrator: Calibrator
    best_iteration: int
    fit_rows_used: int = 0  # rows the booster learnt from after negative sampling
    fit_rows: int = 0  # rows of the fit slice


@dataclass
class _SplitTask:
    """One independent fit (a test split or the final model), as positions into the labelled rows.

    y holds the labels as known for this split (shape (n,), int8); the slices hold only rows whose label
    was known then. test and baseline_train are None for the final model (nothing to evaluate)."""

    name: str
    y: np.ndarray
    fit: np.ndarray
    validation: np.ndarray
    calibration: np.ndarray
    test: np.ndarray | None = None
    baseline_train: np.ndarray | None = None


@dataclass
class _SplitOutcome:
    """What one task returns to the parent process: plain arrays and text, no live LightGBM handle."""

    name: str
    booster_text: str
    calibrator: dict[str, Any]
    best_iteration: int
    fit_rows: int
    fit_rows_used: int
    test_margin: np.ndarray | None = None
    test_score: np.ndarray | None = None
    logistic_score: np.ndarray | None = None
    one_feature_score: np.ndarray | None = None

    def fitted(self) -> _FittedSplit:
        return _FittedSplit(lgb.Booster(model_str=self.booster_text), Calibrator.from_dict(self.calibrator),
                            self.best_iteration, self.fit_rows_used, self.fit_rows)


def _check_slices(y: np.ndarray, split: Split, slices: dict[str, np.ndarray]) -> None:
    """Raise SingleClassSliceError when a slice (positions into y) holds one label value only."""
    for role, index in slices.items():
        if len(np.unique(y[index])) < 2:
            raise SingleClassSliceError(
                f"split {split.name}: the {role} slice ({len(index)} rows) has only one label value; "
                "use more as_of dates, a larger borough or a label with more positives"
            )


def _split_task(data: _Labelled, split: Split, with_test: bool) -> _SplitTask:
    """The task for one split of `data` (labels as known for it); raises SingleClassSliceError."""
    slices = {role: np.flatnonzero(data.mask(dates)) for role, dates in
              (("fit", split.fit), ("validation", split.validation), ("calibration", split.calibration))}
    _check_slices(data.y, split, slices)
    task = _SplitTask(split.name, data.y, slices["fit"], slices["validation"], slices["calibration"])
    if with_test:
        task.baseline_train = np.flatnonzero(data.mask(split.training_dates))
    return task


def _take(X: np.ndarray | FeatureRows, *indexes: np.ndarray) -> tuple[np.ndarray, ...]:
    """X[index] for each index (labelled row positions): from the array, or read from the matrix's files in
    one pass over them (FeatureRows)."""
    if isinstance(X, FeatureRows):
        return X.read(*indexes)
    return tuple(X[index] for index in indexes)


def _row_batches(X: np.ndarray | FeatureRows, index: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(slots, X[index[slots]]) batches that cover `index` once: one batch from the array, one file batch at a
    time from FeatureRows (only its rows held)."""
    if isinstance(X, FeatureRows):
        yield from X.batches(index)
    else:
        yield np.arange(len(index)), X[index]


def _quiet(message: str) -> None:
    """A progress callback that says nothing."""


def _run_task(
    X: np.ndarray | FeatureRows, task: _SplitTask, config: ProjectConfig, feature_names: list[str],
    one_feature: int | None = None, say: Callable[[str], None] = _quiet,
) -> _SplitOutcome:
    """Fit one task's booster and calibrator (and, with a test slice, fit the logistic baseline and score the
    test rows: margin, calibrated score, logistic score and, given its column number, the one-feature score).
    Reads the fit and validation rows, then the calibration and logistic rows, then the test rows a batch at a
    time, so that with FeatureRows no more than one of these is held at once. Runs in the parent or a worker
    process; BLAS is held to one thread so the result is the same in either (a different thread count changes
    floating-point sums) and threads do not spin-wait."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        booster, best, fit_rows_used = _boost(X, task, config, feature_names, say)
        evaluated = task.test is not None and task.baseline_train is not None
        logistic_index, logistic_weight = _logistic_rows(task, config) if evaluated else (None, None)
        wanted = [task.calibration] + ([logistic_index] if logistic_index is not None else [])
        say(f"{task.name}: reading {len(task.calibration):,} calibration"
            + (f" and {len(logistic_index):,} logistic baseline" if logistic_index is not None else "") + " rows")
        read = list(_take(X, *wanted))
        calibrator = _calibrated(booster, read.pop(0), task, config)
        outcome = _SplitOutcome(task.name, booster.model_to_string(), calibrator.to_dict(), best,
                                int(len(task.fit)), fit_rows_used)
        if evaluated:
            assert task.test is not None and logistic_index is not None
            logistic = LogisticBaseline(seed=config.project.seed, c=config.training.logistic_c).fit(
                read.pop(0), task.y[logistic_index], logistic_weight
            )
            say(f"{task.name}: scoring {len(task.test):,} test rows")
            _score_test(X, task.test, booster, calibrator, logistic, one_feature, outcome)
    return outcome


# OpenBLAS's matrix-vector kernel (the logistic baseline's X @ coef) works through a call's rows in blocks of 4 and
# treats the last rows (n mod 4) apart, in another order of sums: a row's score can then differ in its last bit with
# where it falls in a call. Scored a batch at a time, each batch is padded to whole blocks of LOGISTIC_BLOCK rows
# (a multiple of any such kernel's block) and the slice's own last n mod LOGISTIC_BLOCK rows are scored in one call,
# so every row is treated as in the one call on the whole slice (tests/test_training_bounded.py checks it).
LOGISTIC_BLOCK = 64


def _score_test(
    X: np.ndarray | FeatureRows, test: np.ndarray, booster: lgb.Booster, calibrator: Calibrator,
    logistic: LogisticBaseline, one_feature: int | None, outcome: _SplitOutcome,
) -> None:
    """Fill outcome's per-row test results (shape (len(test),), float64), a batch of rows at a time: the booster,
    the calibrator and the one-feature rule work row by row, and the logistic baseline is scored in whole blocks
    (LOGISTIC_BLOCK), so the batches' results are the whole slice's, bit for bit."""
    n = len(test)
    margin, score, logistic_score = np.empty(n), np.empty(n), np.empty(n)
    one = np.empty(n) if one_feature is not None else None
    head = n - n % LOGISTIC_BLOCK  # slots from here on are the whole slice's last rows
    last_slots, last_rows = [], []
    for slots, rows in _row_batches(X, test):
        margin[slots] = booster.predict(rows, raw_score=True)
        score[slots] = calibrator.predict(margin[slots])
        if len(slots) == n:  # the whole slice at once
            logistic_score[slots] = logistic.predict(rows)
        else:
            inside = slots < head
            logistic_score[slots[inside]] = _predict_in_blocks(logistic, rows[inside])
            last_slots.append(slots[~inside])
            last_rows.append(rows[~inside])
        if one is not None:
            one[slots] = OneFeatureRanker.predict_column(rows[:, one_feature])
    if last_slots:
        slots, rows = np.concatenate(last_slots), np.concatenate(last_rows)
        order = np.argsort(slots)
        if len(slots):
            logistic_score[slots[order]] = logistic.predict(rows[order])
    outcome.test_margin, outcome.test_score, outcome.logistic_score = margin, score, logistic_score
    outcome.one_feature_score = one


def _predict_in_blocks(logistic: LogisticBaseline, rows: np.ndarray) -> np.ndarray:
    """logistic.predict(rows) with the rows padded (copies of the first) to a whole number of LOGISTIC_BLOCK."""
    if not len(rows):
        return np.empty(0)
    pad = (-len(rows)) % LOGISTIC_BLOCK
    padded = np.concatenate([rows, np.repeat(rows[:1], pad, axis=0)]) if pad else rows
    return logistic.predict(padded)[: len(rows)]


def _logistic_rows(task: _SplitTask, config: ProjectConfig) -> tuple[np.ndarray, np.ndarray | None]:
    """The logistic baseline's training rows (positions, ascending) and weights (None: unweighted): a seeded
    subsample (at most LOGISTIC_MAX_ROWS) of the split's training dates, with the booster's negative sampling
    when that is on."""
    assert task.baseline_train is not None
    train_index = task.baseline_train
    sub = train_index[_subsample(len(train_index), LOGISTIC_MAX_ROWS, config.project.seed)]
    logistic_weight = None
    if config.training.negative_sample_fraction < 1:
        # The baseline was the largest fixed cost once the booster sampled: it gets the same sampling.
        keep, logistic_weight = negative_sample(
            task.y[sub], config.training.negative_sample_fraction,
            _split_seed(config.project.seed, f"{task.name}/logistic"),
        )
        sub = sub[keep]
    return sub, logistic_weight


def _logistic_scores(
    X: np.ndarray, task: _SplitTask, test_X: np.ndarray, config: ProjectConfig, feature_names: list[str]
) -> np.ndarray:
    """The logistic baseline's test probabilities (shape (len(test_X),)), fitted as train does."""
    sub, weight = _logistic_rows(task, config)
    logistic = LogisticBaseline(seed=config.project.seed, c=config.training.logistic_c).fit(X[sub], task.y[sub], weight)
    return logistic.predict(test_X)


def _run_tasks(
    X: np.ndarray, tasks: list[_SplitTask], config: ProjectConfig, feature_names: list[str],
    one_feature: int | None = None,
) -> list[_SplitOutcome]:
    """Run independent tasks, in `training.n_jobs` worker processes when that is above 1 (results are the
    same either way: every task is seeded and single-threaded). Returns outcomes in the tasks' order."""
    n_jobs = min(config.training.n_jobs, len(tasks))
    if n_jobs <= 1:
        return [_run_task(X, task, config, feature_names, one_feature) for task in tasks]
    from joblib import Parallel, delayed

    # Later splits learn from more rows and usually stop later: start the largest first so the two
    # workers finish together. X (read-only) reaches the workers as one memory-mapped file, not a copy each.
    order = sorted(range(len(tasks)), key=lambda i: -len(tasks[i].fit))
    done = Parallel(n_jobs=n_jobs, backend="loky", max_nbytes="1M", mmap_mode="r")(
        delayed(_run_task)(X, tasks[i], config, feature_names, one_feature) for i in order
    )
    outcomes: list[_SplitOutcome | None] = [None] * len(tasks)
    for i, outcome in zip(order, done, strict=True):
        outcomes[i] = outcome
    return [o for o in outcomes if o is not None]


def _said_with_files(say: Callable[[str], None], rows: FeatureRows) -> Callable[[str], None]:
    """`say`, and the files `rows` reads said beside the step that reads them ("model 2 of 5, split_2: reading
    52,075 fit and 33,549 validation rows (file 3 of 34)")."""
    step = [""]

    def said(message: str) -> None:
        step[0] = message
        say(message)

    rows.progress = lambda part: say(f"{step[0]} ({part})")
    return said


def _run_tasks_bounded(
    X: FeatureRows, tasks: list[_SplitTask], config: ProjectConfig, feature_names: list[str], one_feature: int,
    say: Callable[[str], None],
) -> dict[str, _SplitOutcome]:
    """Run the tasks one at a time in this process, each reading only its own rows from the matrix's files
    (bounded memory). With build.memory_budget_gb, the largest task is checked against the budget before
    any fit, and each task again before it reads its rows (raises TrainingError). Outcomes by task name."""
    sizes = {task.name: _task_rows(task, config) for task in tasks}
    every = list(sizes.values())
    budget_gb = config.build.memory_budget_gb
    _check_task_memory(every, every, config, len(feature_names), "before any model was fitted",
                       reserve=int(TRAIN_GROWTH_SHARE * budget_gb * 1024**3) if budget_gb else 0)
    outcomes = {}
    for number, task in enumerate(tasks, 1):
        when = f"after {number - 1} of {len(tasks)} models were fitted" if number > 1 else "before any model was fitted"
        _check_task_memory([sizes[task.name]], every, config, len(feature_names), when)

        def said(message: str, number: int = number) -> None:
            say(f"model {number} of {len(tasks)}, {message}")

        outcomes[task.name] = _run_task(X, task, config, feature_names, one_feature, said)
        release_memory()
    return outcomes


def _task_rows(task: _SplitTask, config: ProjectConfig) -> TaskRows:
    """The rows `task` reads, counted for its memory estimate (feature_rows.TaskRows)."""
    fit_y = task.y[task.fit]
    logistic_positives = logistic_negatives = 0
    if task.baseline_train is not None:
        sub = task.baseline_train[_subsample(len(task.baseline_train), LOGISTIC_MAX_ROWS, config.project.seed)]
        logistic_positives = int((task.y[sub] != 0).sum())
        logistic_negatives = len(sub) - logistic_positives
    return TaskRows(task.name, int((fit_y != 0).sum()), int((fit_y == 0).sum()), len(task.validation),
                    len(task.calibration), logistic_positives, logistic_negatives,
                    len(task.test) if task.test is not None else 0)


# What this process's resident set grows by while it fits the models one after another (what the allocator keeps of
# each model's reads and LightGBM's datasets, which the budget bounds), as a share of build.memory_budget_gb: 3.5 MiB
# over five models at 60,000 residents with a 0.5 budget (0.7%; fraction 0.1; docs/performance.md, "A newcomer's
# bounded training"); four times that, with a margin. The check before any fit keeps it free, so that a run that passes
# it (and the fraction its error names) passes each model's own check later.
TRAIN_GROWTH_SHARE = 0.03


def _check_task_memory(
    sizes: list[TaskRows], every: list[TaskRows], config: ProjectConfig, n_features: int, when: str,
    reserve: int = 0,
) -> None:
    """Raise TrainingError when the largest of the tasks `sizes` would not fit what build.memory_budget_gb leaves
    once this process holds its resident set now and `reserve` bytes more (at least MIN_PARTITION_SHARE of the
    budget, as scoring per partition gives). The error gives the numbers and the largest
    training.negative_sample_fraction with which every task of `every` would fit in a new run that holds up to
    TRAIN_GROWTH_SHARE of the budget more than this one (what the process holds varies from run to run), and the
    budget that would do with the same spare; the fraction is never lowered here (a sampling change is a recorded
    modelling decision)."""
    from earlysignal.scoring import MIN_PARTITION_SHARE, resident_set_bytes

    budget_gb = config.build.memory_budget_gb
    if budget_gb is None or not sizes:
        return
    fraction = config.training.negative_sample_fraction
    task = max(sizes, key=lambda t: t.bytes(fraction, n_features))
    need = task.bytes(fraction, n_features)
    held = resident_set_bytes()
    budget = budget_gb * 1024**3
    available = max(budget - held - reserve, budget * MIN_PARTITION_SHARE)
    if need <= available:
        return
    stages = task.stages(fraction, n_features)
    stage = max(stages, key=lambda k: stages[k])
    spare = int(TRAIN_GROWTH_SHARE * budget)
    named_for = max(available - spare, budget * MIN_PARTITION_SHARE)
    fractions = [t.largest_fraction(named_for, n_features) for t in every]
    largest = None if any(f is None for f in fractions) else min(f for f in fractions if f is not None)
    gb = 1024**3
    rows = (f"{task.fit_rows(fraction):,} fit rows (negative_sample_fraction {fraction}) and {task.validation:,} "
            f"validation rows x {n_features} float32 features, with LightGBM's working copies"
            if stage == "fit and validation" else
            f"{task.calibration:,} calibration rows and {task.logistic_rows(fraction):,} logistic baseline rows "
            f"(negative_sample_fraction {fraction}) x {n_features} float32 features, with the baseline's working "
            "copies")
    text = (f"training stopped {when}: {task.name} would hold about {need / gb:.2f} GB at its {stage} stage ({rows}"
            "), but "
            f"build.memory_budget_gb {budget_gb} leaves {available / gb:.2f} GB once this process holds "
            f"{held / gb:.2f} GB (libraries and the labelled rows' light columns)"
            + (f" and keeps {reserve / 1024**2:.0f} MiB for what it gains between models"
               if reserve and available < budget - held else "") + ". ")
    if budget - held - reserve < budget * MIN_PARTITION_SHARE:
        text += (f"This process alone holds about as much as the budget or more, so each model was given "
                 f"{MIN_PARTITION_SHARE:.0%} of it (as scoring gives each partition). ")
    if largest is not None and largest < fraction:
        text += (f"training.negative_sample_fraction {largest} or less would fit (now {fraction}; named with "
                 f"{spare / 1024**2:.0f} MiB to spare, as what this process holds varies from run to run); lowering "
                 "it is a modelling decision, recorded in MLflow and the report, so it is never done for you. ")
    else:
        text += ("No negative_sample_fraction fits: the validation and calibration slices (every row of their as_of "
                 "dates) with the rows decoded a batch at a time are too large alone. ")
    # The budget B that a new run passes with the same spare: held + need + (reserve + spare, each a share of B) <= B.
    enough = (held + need) / (1 - 2 * TRAIN_GROWTH_SHARE)
    text += f"Or raise build.memory_budget_gb to at least {math.ceil(enough / gb * 100) / 100:.2f} (docs/config.md, build)."
    raise TrainingError(text)


# LightGBM refuses these in feature names ("special JSON characters"); a dictionary's category codes
# (e.g. "US:NIH") become one-hot column names, so they can hold them.
_LIGHTGBM_SPECIAL = re.compile(r'[",:\[\]{}]')


def lightgbm_feature_names(names: list[str]) -> list[str]:
    """Matrix column names -> names LightGBM accepts, in the same order and still unique.

    JSON special characters (`" , : [ ] { }`) become `_`; a name that then collides gets `__<position>`.
    Only the booster's internal names change: the matrix, reasons and scores keep the column names,
    since the booster is always fed arrays in column order."""
    cleaned = [_LIGHTGBM_SPECIAL.sub("_", name) for name in names]
    counts = Counter(cleaned)
    return [name if counts[name] == 1 else f"{name}__{i}" for i, name in enumerate(cleaned)]


def _fit_calibrated_booster(
    data: _Labelled, split: Split, config: ProjectConfig, feature_names: list[str]
) -> _FittedSplit:
    """Fit one split's booster and calibrator in this process (raises SingleClassSliceError)."""
    return _fit_booster(data.X, _split_task(data, split, with_test=False), config, feature_names)


def _fit_booster(
    X: np.ndarray | FeatureRows, task: _SplitTask, config: ProjectConfig, feature_names: list[str]
) -> _FittedSplit:
    """The task's booster and its calibrator (fitted on the task's calibration rows)."""
    booster, best, fit_rows_used = _boost(X, task, config, feature_names)
    (calibration_X,) = _take(X, task.calibration)
    return _FittedSplit(booster, _calibrated(booster, calibration_X, task, config), best, fit_rows_used,
                        int(len(task.fit)))


def _fit_rows(task: _SplitTask, config: ProjectConfig) -> tuple[np.ndarray, np.ndarray | None]:
    """The booster's fit rows (positions, ascending) after negative sampling, and their weights (None when
    nothing was sampled, so the default fit is exactly the unsampled one)."""
    keep, weight = negative_sample(
        task.y[task.fit], config.training.negative_sample_fraction, _split_seed(config.project.seed, task.name)
    )
    return task.fit[keep], (weight if len(keep) < len(task.fit) else None)


def _boost(
    X: np.ndarray | FeatureRows, task: _SplitTask, config: ProjectConfig, feature_names: list[str],
    say: Callable[[str], None] = _quiet,
) -> tuple[lgb.Booster, int, int]:
    """The task's booster, early-stopped on its validation rows and trimmed to the best iteration:
    (booster, best iteration, fit rows used). Only the fit and validation rows are read."""
    params = lightgbm_params(config)
    fit_index, weight = _fit_rows(task, config)
    say(f"{task.name}: reading {len(fit_index):,} fit and {len(task.validation):,} validation rows")
    fit_X, valid_X = _take(X, fit_index, task.validation)
    train_set = lgb.Dataset(
        fit_X, task.y[fit_index], weight=weight,
        feature_name=lightgbm_feature_names(feature_names), free_raw_data=True,
        params={"verbose": -1},
    )
    valid_set = lgb.Dataset(valid_X, task.y[task.validation], reference=train_set)
    # The datasets hold the rows until LightGBM has binned them (free_raw_data), then let them go.
    del fit_X, valid_X
    say(f"{task.name}: fitting")
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=config.model.n_estimators,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(config.model.early_stopping_rounds, verbose=False)],
    )
    del train_set, valid_set
    best = int(booster.best_iteration or booster.current_iteration())
    # Round-trip through the text format (trimmed to the best iteration): the in-memory model is
    # then byte-for-byte the one that gets logged.
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    return booster, best, int(len(fit_index))


def _calibrated(booster: lgb.Booster, calibration_X: np.ndarray, task: _SplitTask, config: ProjectConfig) -> Calibrator:
    """The calibrator of the booster's margins on the task's calibration rows (their features given)."""
    return Calibrator(config.model.calibration).fit(
        booster.predict(calibration_X, raw_score=True), task.y[task.calibration]
    )


def _split_seed(seed: int, split_name: str) -> int:
    """A seed per split, stable across runs and Python processes (no salted hash())."""
    return int(seed) * 1_000_003 + zlib.crc32(split_name.encode())


# A model that gives this share of its training rows one and the same raw score cannot rank them.
DEGENERATE_MODAL_SHARE = 0.99


def degenerate_model_reason(booster: lgb.Booster, margin: np.ndarray) -> str | None:
    """Why a fitted booster cannot rank anyone (no split in any tree, or near-constant scores), else None.

    margin: the booster's raw scores on the rows it learnt from, shape (n,).
    """
    trees = booster.dump_model().get("tree_info", [])
    if not any(tree.get("num_leaves", 1) > 1 for tree in trees):
        return (
            f"the model has no splits ({len(trees)} tree(s), each a single leaf): every resident gets the same "
            "score. Typical cause: model.min_child_samples "
            "is larger than the data can support; lower it or use more as_of dates"
        )
    margin = np.asarray(margin, dtype=float)
    if len(margin):
        _, counts = np.unique(margin, return_counts=True)
        share = counts.max() / len(margin)
        if share >= DEGENERATE_MODAL_SHARE:
            return (
                f"the model's scores are near-constant: {share:.1%} of the residents it learnt from share one score, "
                "so it cannot rank them; lower model.min_child_samples or use more as_of dates"
            )
    return None


def _oracle_scores(
    data_dir: Path | None, frame: pd.DataFrame, config: ProjectConfig
) -> np.ndarray | None:
    """Oracle probabilities for test rows, when the data is a synthetic borough with ground truth."""
    if data_dir is None or not (Path(data_dir) / "ground_truth").is_dir():
        return None
    if not isinstance(config.label.horizon_months, int):
        # The synthetic world's oracle knows whole calendar months only.
        console.print(f"[yellow]No oracle comparison: it needs a whole-month horizon, not {config.label.horizon_text}[/yellow]")
        return None
    try:
        from earlysignal.synth import oracle_risk
    except ImportError:
        return None
    out = np.full(len(frame), np.nan)
    try:
        for as_of, index in frame.groupby("as_of").indices.items():
            out[index] = oracle_risk(
                Path(data_dir),
                frame["resident_id"].iloc[index].tolist(),
                pd.Timestamp(as_of).date(),
                config.label.horizon_months,
                list(config.label.outcome_types),
            )
    except EarlySignalError as error:
        # e.g. --matrix from one borough with data.dir pointing at another: no oracle, say why.
        console.print(f"[yellow]No oracle comparison: {error}[/yellow]")
        return None
    return out


# --------------------------------------------------------------------------- evaluation


def _ranked_lists(split_frame: pd.DataFrame, margin: np.ndarray, k: int) -> dict[str, M.RankedList]:
    y = split_frame["label"].to_numpy(dtype=float)
    ids = split_frame["resident_id"].to_numpy()
    lists = {
        "model": M.RankedList.build(y, split_frame["score"].to_numpy(), ids, k, tiebreak=margin),
        "prior": M.RankedList.build(y, split_frame["score__prior"].to_numpy(), ids, k),
        "one_feature": M.RankedList.build(y, split_frame["score__one_feature"].to_numpy(), ids, k, is_probability=False),
        "logistic": M.RankedList.build(y, split_frame["score__logistic"].to_numpy(), ids, k),
    }
    oracle = split_frame["oracle"].to_numpy(dtype=float)
    if np.isfinite(oracle).all():
        lists["oracle"] = M.RankedList.build(y, oracle, ids, k)
    return lists


def _with_interval(value: float, replicates: np.ndarray | None) -> dict[str, float | None]:
    low, high = M.interval(replicates) if replicates is not None else (None, None)
    return {"value": None if not np.isfinite(value) else float(value), "ci_low": low, "ci_high": high}


def _bootstrap_all(
    all_lists: list[dict[str, M.RankedList]], n_boot: int, seed: int, n_jobs: int
) -> list[dict[str, dict[str, np.ndarray]]]:
    """Bootstrap replicates per split (split number i resampled with seed * 1000 + i), in up to n_jobs
    worker processes: each split's resamples depend on its own seed only, so the result is the same."""
    if not n_boot:
        return [{} for _ in all_lists]
    seeds = [seed * 1000 + number for number in range(len(all_lists))]
    if min(n_jobs, len(all_lists)) <= 1:
        return [M.bootstrap_replicates(lists, n_boot, seed=s) for lists, s in zip(all_lists, seeds, strict=True)]
    from joblib import Parallel, delayed

    return Parallel(n_jobs=min(n_jobs, len(all_lists)), backend="loky")(
        delayed(M.bootstrap_replicates)(lists, n_boot, seed=s) for lists, s in zip(all_lists, seeds, strict=True)
    )


def evaluate_splits(
    predictions: pd.DataFrame,
    margins: dict[str, np.ndarray],
    config: ProjectConfig,
) -> dict[str, Any]:
    """Per-split and summary metrics (mean over splits) for the model, baselines and oracle, with CIs."""
    n_boot, seed = config.training.bootstrap, config.project.seed
    splits_out, point, boots = [], {}, {}
    groups = list(predictions.groupby("split", sort=False))
    ks = [M.capacity_k(len(part), config.capacity) for _, part in groups]
    all_lists = [_ranked_lists(part, margins[name], k) for (name, part), k in zip(groups, ks, strict=True)]
    all_reps = _bootstrap_all(all_lists, n_boot, seed, config.training.n_jobs)
    for number, (name, part) in enumerate(groups):
        k, lists, reps = ks[number], all_lists[number], all_reps[number]
        values = {s: r.metrics() for s, r in lists.items()}
        splits_out.append(
            {
                "split": name,
                "test_as_of": pd.Timestamp(part["as_of"].iloc[0]).date().isoformat(),
                "n": int(len(part)),
                "positives": int(part["label"].sum()),
                "base_rate": float(part["label"].mean()),
                "k": k,
                "scorers": {
                    s: {m: _with_interval(v, reps.get(s, {}).get(m)) for m, v in vals.items()}
                    for s, vals in values.items()
                },
            }
        )
        for s, vals in values.items():
            for m, v in vals.items():
                point.setdefault(s, {}).setdefault(m, []).append(v)
                if reps:
                    boots.setdefault(s, {}).setdefault(m, []).append(reps[s][m])
    summary = {}
    for s, per_metric in point.items():
        summary[s] = {}
        for m, values in per_metric.items():
            mean = float(np.mean(values)) if len(values) == len(splits_out) else float("nan")
            rep = np.mean(np.vstack(boots[s][m]), axis=0) if s in boots and len(boots[s][m]) == len(splits_out) else None
            summary[s][m] = _with_interval(mean, rep)
    ratios = {}
    if "oracle" in point:
        for metric in ("roc_auc", "precision_at_capacity", "average_precision"):
            model, oracle = summary["model"][metric]["value"], summary["oracle"][metric]["value"]
            rep = None
            if boots and len(boots["oracle"][metric]) == len(splits_out):
                # Paired resamples: the same residents in numerator and denominator.
                with np.errstate(divide="ignore", invalid="ignore"):
                    rep = np.mean(np.vstack(boots["model"][metric]), axis=0) / np.mean(
                        np.vstack(boots["oracle"][metric]), axis=0
                    )
            ratio = model / oracle if model is not None and oracle else float("nan")
            ratios[metric] = _with_interval(ratio, rep)
    return {"splits": splits_out, "summary": summary, "oracle_ratio": ratios or None,
            "model_minus_baseline": _model_minus_baselines(point, boots, len(splits_out))}


def _model_minus_baselines(
    point: dict[str, dict[str, list[float]]], boots: dict[str, dict[str, list[np.ndarray]]], n_splits: int
) -> dict[str, dict[str, dict[str, float | None]]]:
    """Model minus each fitted baseline (logistic, one_feature) per metric, mean over splits, with the interval
    of the paired bootstrap difference (the same resampled residents on both sides): an interval excluding 0
    says one ranks better; two overlapping per-scorer intervals say nothing on their own."""
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for baseline in ("logistic", "one_feature"):
        if baseline not in point or "model" not in point:
            continue
        out[baseline] = {}
        for metric in COMPARED_METRICS:
            model_values, base_values = point["model"].get(metric, []), point[baseline].get(metric, [])
            if len(model_values) != n_splits or len(base_values) != n_splits:
                continue
            rep = None
            if boots and len(boots["model"][metric]) == n_splits and len(boots[baseline][metric]) == n_splits:
                rep = np.mean(np.vstack(boots["model"][metric]), axis=0) - np.mean(np.vstack(boots[baseline][metric]), axis=0)
            out[baseline][metric] = _with_interval(float(np.mean(model_values) - np.mean(base_values)), rep)
    return out


# Metrics on which the model is compared with the baselines (ranking metrics: calibration is the model's own).
COMPARED_METRICS = ("roc_auc", "average_precision", "precision_at_capacity", "lift_at_capacity")


def _criterion(config: ProjectConfig, summary: dict[str, Any]) -> dict[str, Any]:
    crit = config.success_criterion
    entry = summary["model"].get(crit.metric, {})
    value = entry.get("value")
    met = None if value is None else bool(value >= crit.threshold)
    # Synthetic worlds only: what a perfect-knowledge model reaches on the same metric (the ceiling).
    oracle = summary.get("oracle", {}).get(crit.metric, {})
    return {
        "metric": crit.metric,
        "threshold": crit.threshold,
        "value": value,
        "ci_low": entry.get("ci_low"),
        "ci_high": entry.get("ci_high"),
        "met": met,
        "oracle_value": oracle.get("value"),
        "oracle_ci_low": oracle.get("ci_low"),
        "oracle_ci_high": oracle.get("ci_high"),
        "statement": (
            "not evaluable"
            if met is None
            else f"{'MET' if met else 'NOT MET'}: {crit.metric} = {value:.3f} "
            f"(pre-registered threshold {crit.threshold:.3f})"
        ),
    }


# --------------------------------------------------------------------------- the stage


def _git_commit() -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        )
        return result.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a model depends on."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _subsample(n: int, limit: int, seed: int) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def train_model(
    config: ProjectConfig,
    data_dir: str | Path | None = None,
    matrix: Any = None,
    *,
    progress: Callable[[str], None] | None = None,
    log_to_mlflow: bool = True,
) -> TrainingResult:
    """Train and evaluate on the temporal split plan, log to MLflow and register the `candidate` model."""
    if config.training.n_jobs <= 1:
        return _train_model(config, data_dir, matrix, progress, log_to_mlflow, None)
    # The feature array is shared with the worker processes through a file in a folder removed afterwards.
    with tempfile.TemporaryDirectory(prefix="earlysignal-train-", dir=_shared_scratch()) as scratch:
        return _train_model(config, data_dir, matrix, progress, log_to_mlflow, Path(scratch))


def _train_model(
    config: ProjectConfig,
    data_dir: str | Path | None,
    matrix: Any,
    progress: Callable[[str], None] | None,
    log_to_mlflow: bool,
    scratch: Path | None,
) -> TrainingResult:
    say = progress or (lambda message: None)
    data_dir = Path(data_dir) if data_dir is not None else Path(config.data.dir)
    say("feature matrix")
    # Bounded memory: only the labelled rows' light columns are read now, their features when a task needs them.
    bounded = config.build.bounded
    if matrix is not None and not hasattr(matrix, "frame") and Path(matrix).exists():
        fm = _read_lean_matrix(Path(matrix), labelled_only=bounded)
    elif matrix is None:
        fm = _built_or_reused_lean(config, data_dir, labelled_only=bounded)
    else:
        fm = load_matrix(config, data_dir if matrix is None else None, matrix)
    feature_columns = list(fm.feature_columns)
    if not feature_columns:
        raise TrainingError("the feature matrix has no feature columns")
    # A matrix given in memory keeps the whole path: its features are held already.
    bounded = bounded and isinstance(fm, _LeanMatrix)
    data = _labelled_rows(fm, scratch, on_disk=bounded)
    if isinstance(data.X, FeatureRows):
        say = _said_with_files(say, data.X)
    if not hasattr(matrix, "frame"):
        # The matrix was read here, so nobody else holds its frame: after X is built only its metadata is
        # used, and freeing the feature columns (1.6 GB at 250,000 residents) leaves room for the workers.
        fm.frame = fm.frame.iloc[:0]
    labelled_dates = sorted({pd.Timestamp(d).date() for d in np.unique(data.day)})
    meta = fm.metadata
    plan = plan_from_config(
        config, labelled_dates,
        grid_dates=[dt.date.fromisoformat(d) for d in meta.get("as_of_dates", [])],
        extract_date=dt.date.fromisoformat(meta["extract_date"]) if meta.get("extract_date") else None,
        rows_per_as_of=meta.get("rows_per_as_of"),
    )
    console.print(plan_table(plan))
    one_feature = choose_one_feature(feature_columns, config.training.one_feature_baseline)
    parts, margins, best_iterations, skipped, fit_rows = [], {}, {}, [], {}
    tasks: list[_SplitTask] = []
    for split in plan.splits:
        # Training labels as known on the test date: nothing recorded later may teach the model.
        known = data.as_known_at(min(split.test))
        test = data.mask(split.test)
        try:
            if len(np.unique(data.y[test])) < 2:
                raise SingleClassSliceError(
                    f"split {split.name}: the test slice ({int(test.sum())} rows) has only one label value"
                )
            task = _split_task(known, split, with_test=True)
        except SingleClassSliceError as error:
            console.print(f"[yellow]Skipped {split.name} (test as_of {min(split.test)}): {error}[/yellow]")
            skipped.append({"split": split.name, "test_as_of": min(split.test).isoformat(), "reason": str(error)})
            continue
        task.test = np.flatnonzero(test)
        tasks.append(task)
    # The final model is one more independent task: it runs beside the splits (raises when it cannot be fitted).
    tasks.append(_split_task(data, plan.final, with_test=False))
    one_index = feature_columns.index(one_feature)
    if bounded:
        outcomes = _run_tasks_bounded(data.X, tasks, config, feature_columns, one_index, say)
    else:
        say(f"fitting {len(tasks)} models ({', '.join(t.name for t in tasks)}) in "
            f"{min(config.training.n_jobs, len(tasks))} process(es)")
        outcomes = {o.name: o for o in _run_tasks(data.X, tasks, config, feature_columns, one_index)}
    for task in tasks[:-1]:
        outcome = outcomes[task.name]
        assert task.test is not None and outcome.test_margin is not None and task.baseline_train is not None
        best_iterations[task.name] = outcome.best_iteration
        fit_rows[task.name] = {"fit_rows": outcome.fit_rows, "rows_used": outcome.fit_rows_used}
        margin = outcome.test_margin
        part = data.frame.iloc[task.test].reset_index(drop=True)
        part.insert(2, "split", task.name)
        part["score"] = outcome.test_score
        # The booster's raw margin breaks ties between equal calibrated scores everywhere (list, metrics, audit).
        part["margin"] = margin
        # Baselines learn from every training date of the split (they need no early stopping).
        train_y = task.y[task.baseline_train]
        part["score__prior"] = PriorBaseline().fit(None, train_y).predict(part)
        part["score__one_feature"] = outcome.one_feature_score
        part["score__logistic"] = outcome.logistic_score
        say(f"{task.name}: oracle")
        oracle = _oracle_scores(data_dir, part, config)
        part["oracle"] = pd.array(oracle if oracle is not None else [None] * len(part), dtype="Float64")
        k = M.capacity_k(len(part), config.capacity)
        part["rank"] = M.ranks(part["score"].to_numpy(), part["resident_id"].to_numpy(), tiebreak=margin)
        part["flagged"] = part["rank"] <= k
        margins[task.name] = margin
        parts.append(part)
    column_order = [
        "resident_id", "as_of", "split", "label", "score", "margin", "score__prior", "score__one_feature",
        "score__logistic", "oracle", "rank", "flagged",
    ]
    if bounded:
        release_memory()  # what the oracle's ground truth took (synthetic boroughs)
    attr_columns = [c for c in data.frame.columns if c.startswith("attr__")]
    if parts:
        predictions = pd.concat(parts, ignore_index=True)
    else:
        predictions = _empty_predictions(data.frame, column_order)
    predictions["label"] = predictions["label"].astype("int8")
    predictions = predictions[column_order + attr_columns]

    say("metrics and bootstrap intervals")
    evaluated = bool(parts)
    if evaluated:
        evaluation = evaluate_splits(predictions, margins, config)
        criterion = _criterion(config, evaluation["summary"])
        if bounded:
            release_memory()  # the bootstrap's ranked lists and what was pickled for its workers
    else:
        evaluation = {"splits": [], "summary": {}, "oracle_ratio": None, "model_minus_baseline": {}}
        criterion = _not_evaluated_criterion(config, plan, skipped)
        console.print(f"[bold yellow]{criterion['statement']}[/bold yellow]")
    metrics_doc = {
        "evaluated": evaluated,
        "skipped_splits": skipped,
        "label": {
            "name": config.label.name,
            "outcome_types": list(config.label.outcome_types),
            "horizon_months": config.label.horizon_months,
            "horizon": config.label.horizon_text,
            "training_labels": "as known on each split's test date (label_known_at before it)",
        },
        "capacity": {"k": config.capacity.k, "top_percent": config.capacity.top_percent},
        "capacity_k_per_as_of": {s["test_as_of"]: s["k"] for s in evaluation["splits"]},
        "tie_handling": (
            "list order: score desc, then raw model margin desc (model only), then resident_id asc; metrics "
            "count rows equal in (score, margin) as ties (threshold metrics take their expected value)"
        ),
        "bootstrap": {"resamples": config.training.bootstrap, "seed": config.project.seed, "level": 0.95,
                      "unit": "residents resampled within each test as_of"},
        "one_feature_baseline": one_feature,
        "best_iteration_per_split": best_iterations,
        "sampling": _sampling_doc(config, fit_rows),
        "splits": evaluation["splits"],
        "summary": evaluation["summary"],
        "success_criterion": criterion,
        "below_chance": M.below_chance(evaluation["summary"]),
        "oracle_ratio": evaluation["oracle_ratio"],
        "model_minus_baseline": evaluation["model_minus_baseline"],
        "baseline_comparison": M.baseline_comparison(evaluation["model_minus_baseline"], criterion.get("metric")),
        "split_plan": plan.to_dict(),
    }

    final_fit = outcomes[plan.final.name].fitted()
    metrics_doc["sampling"]["fit_rows_per_split"]["final"] = {
        "fit_rows": final_fit.fit_rows, "rows_used": final_fit.fit_rows_used,
    }
    final_mask = data.mask(plan.final.training_dates)
    reference_index = np.flatnonzero(final_mask)[
        _subsample(int(final_mask.sum()), DRIFT_REFERENCE_MAX_ROWS, config.project.seed)
    ]
    say(f"drift reference ({len(reference_index):,} rows)")
    reference, reference_margin, input_example = _drift_reference(
        data.X, reference_index, feature_columns, final_fit,
        months=data.day[reference_index].astype("datetime64[M]").astype(int) % 12 + 1,
        short_history=(fm.metadata.get("windows_before_data_start") or {}).keys(), say=say,
    )
    model_info = {
        "label": metrics_doc["label"],
        "calibration": config.model.calibration,
        "best_iteration": final_fit.best_iteration,
        "training_as_of": [d.isoformat() for d in plan.final.training_dates],
        "spec_hash": fm.metadata.get("spec_hash"),
        "data_fingerprint": fm.metadata.get("data_fingerprint"),
        "seed": config.project.seed,
    }
    model = EarlySignalModel.from_parts(
        final_fit.booster,
        final_fit.calibrator,
        fm.metadata,
        reference,
        model_info,
    )
    explain_index = _explain_index(data, predictions, config)
    say(f"explanation sample ({len(explain_index):,} rows)")
    explain_sample = _explain_sample(fm, data, explain_index, _take(data.X, explain_index)[0], model)
    # On the drift reference's rows: every final training row when there are at most DRIFT_REFERENCE_MAX_ROWS,
    # else a seeded sample of them (scoring all ~900,000 at 250,000 residents took seconds for a share).
    degenerate = degenerate_model_reason(final_fit.booster, reference_margin)
    if degenerate:
        metrics_doc["not_registered"] = degenerate

    if not log_to_mlflow:
        if degenerate:
            raise TrainingError(f"the model was not registered as candidate: {degenerate}")
        return TrainingResult("", "", config.model.name, "", metrics_doc, plan, criterion["met"], predictions, model)
    say("logging to MLflow")
    from earlysignal.modeling.run_logging import log_training_run

    run_id, version = log_training_run(
        config=config,
        fm=fm,
        plan=plan,
        predictions=predictions,
        metrics_doc=metrics_doc,
        explain_sample=explain_sample,
        model=model,
        input_example=input_example,
        git_commit=_git_commit(),
        versions=package_versions(),
    )
    if degenerate:
        raise TrainingError(
            f"the model was not registered as candidate: {degenerate}. MLflow run {run_id} records this "
            "(tag earlysignal.not_registered)"
        )
    from earlysignal.modeling.registry import version_uri

    if evaluated:
        _print_summary(metrics_doc, config)
    return TrainingResult(
        run_id, version_uri(config.model.name, version), config.model.name, str(version),
        metrics_doc, plan, criterion["met"], predictions, model,
    )


def _sampling_doc(config: ProjectConfig, fit_rows: dict[str, dict[str, int]]) -> dict[str, Any]:
    """How the booster's fit rows were sampled (for metrics.json, MLflow and the report)."""
    fraction = config.training.negative_sample_fraction
    return {
        "negative_fraction": fraction,
        "method": (
            "all rows" if fraction >= 1 else
            "every positive and a seeded share of negatives of each fit slice; kept negatives weigh "
            "(negatives in the slice) / (negatives kept). Early stopping, calibration and evaluation use all rows"
        ),
        "seed": config.project.seed,
        "fit_rows_per_split": dict(fit_rows),
    }


def _empty_predictions(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """A zero-row predictions table with the usual columns (no split was evaluated)."""
    out = pd.DataFrame({c: pd.Series(dtype="float64") for c in columns})
    out["resident_id"] = pd.Series(dtype="str")
    out["as_of"] = pd.Series(dtype=frame["as_of"].dtype)
    out["split"] = pd.Series(dtype="str")
    out["label"] = pd.Series(dtype="int8")
    out["rank"] = pd.Series(dtype="int64")
    out["flagged"] = pd.Series(dtype="bool")
    for column in [c for c in frame.columns if c.startswith("attr__")]:
        out[column] = pd.Series(dtype="str")
    return out


def _not_evaluated_criterion(config: ProjectConfig, plan: SplitPlan, skipped: list[dict[str, str]]) -> dict[str, Any]:
    """The success criterion when no test split was evaluated: NOT EVALUATED, with the reason."""
    crit = config.success_criterion
    if not plan.splits:
        why = "training.n_test_splits is 0, so no test split was held out"
    else:
        why = f"every test split was skipped ({len(skipped)}: one label value in a slice)"
    return {
        "metric": crit.metric,
        "threshold": crit.threshold,
        "value": None,
        "ci_low": None,
        "ci_high": None,
        "met": None,
        "statement": f"NOT EVALUATED: {why}; only the final model was trained",
    }


# Feature columns of the drift reference's rows held at once when the features are read from the matrix's files:
# 200,000 rows x 24 columns are 18 MB (all 233 would be 178 MB).
REFERENCE_COLUMNS = 24


def _drift_reference(
    X: np.ndarray | FeatureRows, index: np.ndarray, feature_columns: list[str], fitted: _FittedSplit,
    months: np.ndarray, short_history: Any, say: Callable[[str], None] = _quiet,
) -> tuple[dict[str, Any], np.ndarray, pd.DataFrame]:
    """The drift reference of rows `index` (drift.build_reference, with the final model's calibrated scores and
    the rows' calendar months), the final booster's raw margins on them (shape (len(index),)) and the model's
    input example (their per-feature medians: one float64 row). From FeatureRows, margins are computed a batch
    of rows at a time and the features read REFERENCE_COLUMNS columns at a time: each feature's bins and median
    depend on its own values only, so the groups' results put together are the whole frame's."""
    if not isinstance(X, FeatureRows):
        frame = pd.DataFrame(X[index], columns=feature_columns)
        margin = fitted.booster.predict(X[index], raw_score=True)
        reference = build_reference(frame, feature_columns, fitted.calibrator.predict(margin), months=months,
                                    short_history=short_history)
        return reference, margin, frame.median().to_frame().T.astype("float64")
    margin = np.empty(len(index))
    for slots, rows in X.batches(index):
        margin[slots] = fitted.booster.predict(rows, raw_score=True)
    score = fitted.calibrator.predict(margin)
    reference: dict[str, Any] = {}
    medians = []
    for start in range(0, len(feature_columns), REFERENCE_COLUMNS):
        group = feature_columns[start : start + REFERENCE_COLUMNS]
        say(f"drift reference: features {start + 1}-{start + len(group)} of {len(feature_columns)}")
        (values,) = X.read(index, columns=group)
        frame = pd.DataFrame(values, columns=group, copy=False)
        part = build_reference(frame, group, score, months=months, short_history=short_history)
        medians.append(frame.median())
        del frame, values
        reference.setdefault("features", {}).update(part["features"])
        reference["score"] = part["score"]
        for month, bins in part.get("by_month", {}).items():
            merged = reference.setdefault("by_month", {}).setdefault(month, {"features": {}})
            merged["features"].update(bins["features"])
            merged["score"] = bins["score"]
    return reference, margin, pd.concat(medians).to_frame().T.astype("float64")


def _explain_index(data: _Labelled, predictions: pd.DataFrame, config: ProjectConfig) -> np.ndarray:
    """The explanation sample's rows (labelled positions, ascending): up to EXPLAIN_SAMPLE_MAX test rows."""
    test_dates = tuple(sorted({pd.Timestamp(d).date() for d in predictions["as_of"].unique()}))
    index = np.flatnonzero(data.mask(test_dates))
    return index[_subsample(len(index), EXPLAIN_SAMPLE_MAX, config.project.seed)]


def _explain_sample(
    fm: Any, data: _Labelled, index: np.ndarray, features_X: np.ndarray, model: EarlySignalModel
) -> pd.DataFrame:
    """The explanation sample: rows `index` with their features (features_X, float32 (len(index), features));
    score is the registered (final) model's."""
    features = pd.DataFrame(features_X, columns=list(fm.feature_columns))
    base = data.frame.iloc[index].reset_index(drop=True)
    out = pd.concat([base[["resident_id", "as_of", "label"]], features], axis=1)
    out["label"] = out["label"].astype("int8")
    out.insert(3, "score", model.predict_proba(features))
    for column in [c for c in base.columns if c.startswith("attr__")]:
        out[column] = base[column].to_numpy()
    return out.sort_values(["as_of", "resident_id"], kind="stable").reset_index(drop=True)


def metric_text(value: float) -> str:
    """A metric for the console: three decimals, or three significant figures under 0.01 (an ECE or Brier
    score at a 0.2% base rate is 0.0004 and would print as 0.000)."""
    if value == 0 or abs(value) >= 0.01:
        return f"{value:.3f}"
    return f"{value:.{2 - math.floor(math.log10(abs(value)))}f}"


def _print_summary(metrics_doc: dict[str, Any], config: ProjectConfig) -> None:
    from rich.table import Table

    summary = metrics_doc["summary"]
    table = Table(title="Test metrics, mean over splits (95% bootstrap interval)")
    # Never shrink the metric names ("precision_at_cap…"): the intervals beside them wrap instead.
    table.add_column("metric", no_wrap=True, min_width=max(len(m) for m in M.METRIC_NAMES))
    scorers = [s for s in SCORERS if s in summary]
    for s in scorers:
        table.add_column(s)
    for metric in M.METRIC_NAMES:
        cells = []
        for s in scorers:
            e = summary[s][metric]
            if e["value"] is None:
                cells.append("-")
            elif e["ci_low"] is None:
                cells.append(metric_text(e["value"]))
            else:
                cells.append(f"{metric_text(e['value'])} ({metric_text(e['ci_low'])}-{metric_text(e['ci_high'])})")
        table.add_row(metric, *cells)
    console.print(table)
    for warning in metrics_doc.get("below_chance") or []:
        console.print(f"[bold red]Warning: {warning['text']}[/bold red]")
    for comparison in metrics_doc.get("baseline_comparison") or []:
        if comparison["baseline"] == "logistic":
            colour = "green" if comparison["verdict"] == "model better" else "yellow"
            console.print(f"[{colour}]{comparison['text']}[/{colour}]", highlight=False)
    crit = metrics_doc["success_criterion"]
    colour = "green" if crit["met"] else "bold red"
    console.print(f"[{colour}]Pre-registered success criterion {crit['statement']}[/{colour}]")
    if crit.get("oracle_value") is not None:
        console.print(f"Ceiling in this synthetic world: the oracle reaches {crit['metric']} = {crit['oracle_value']:.3f}")
    if metrics_doc.get("oracle_ratio"):
        ratios = metrics_doc["oracle_ratio"]
        console.print(
            "Model / oracle (the synthetic world's perfect-knowledge score): "
            + ", ".join(f"{m} {e['value']:.2f}" for m, e in ratios.items() if e["value"] is not None)
        )


def config_json(config: ProjectConfig) -> dict[str, Any]:
    """The config as logged (config/config.json)."""
    return config_to_dict(config)


__all__ = ["SingleClassSliceError", "TrainingError", "TrainingResult", "evaluate_splits", "lightgbm_params", "load_matrix", "train_model"]
