"""The labelled rows' features left on disk and read a batch at a time (docs/adr/0025-training-reads-what-it-needs.md).

When memory is bounded (`build.memory_budget_gb` or `build.partitions`) and the feature matrix is on disk, training
never holds every labelled row's features: each task (a test split, the final model) reads only its own rows, one
batch of a part file (or of the single file) at a time, and test rows are scored a batch at a time. Rows come back
in the order asked for, with the values the whole array would hold, so LightGBM sees the same rows in the same
order either way. This module also estimates what a task will hold, so that training can refuse before it fits
rather than pass the budget.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Rows decoded at once from a file: 8,192 rows x 233 float32 features are 7.6 MB, whatever the borough's size.
READ_BATCH_ROWS = 8_192
# A batch is held three times while it is read (Arrow's decoded batch, the rows taken from it, their NumPy copy).
READ_BATCH_COPIES = 3
BYTES_PER_VALUE = 4  # float32 features

# What LightGBM holds while it bins and fits a float32 array of rows, per byte of that array, on top of it (its bin
# sample as doubles, the binned copy, the histograms). Measured with benchmarks/bench_train_bounded.py `factors` on the
# 150,000-resident borough (233 features, 7 leaves): 0.61, 0.09 and 0.60 for 20,000, 60,000 and 120,000 rows
# (docs/performance.md, "Training reads what it needs"); the largest, with a margin.
LIGHTGBM_DATASET_FACTOR = 0.7

# The logistic baseline's working copies per byte of its float32 rows, on top of them: a float64 copy, the imputer's
# missing-indicator columns, the scaler and L-BFGS. Measured the same way: 4.8, 7.0 and 8.1 for 20,000, 60,000 and
# 120,000 rows (more rows, more columns with a missing value, more indicator columns); the largest, with a margin.
LOGISTIC_FACTOR = 8.5


@dataclass
class FeatureRows:
    """The features of the labelled rows of a matrix on disk, read by row position on demand.

    files: the matrix's part files in order (or its one file); starts: the first row of each file in the
    files' concatenated order, then the total (shape (len(files) + 1,)); position: for each labelled row (in
    the whole build's (as_of, resident_id) order), its row in the files' concatenated order (shape (n,)).
    `rows[index]` gives the features of labelled rows `index` as float32 (len(index), features), like the
    whole array's `X[index]`. `progress` is told each file as it is read."""

    files: list[Path]
    starts: np.ndarray
    position: np.ndarray
    feature_columns: list[str]
    batch_rows: int = READ_BATCH_ROWS
    progress: Callable[[str], None] | None = field(default=None, repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.position), len(self.feature_columns))

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        return self.read(np.asarray(index))[0]

    def read(self, *indexes: np.ndarray, columns: list[str] | None = None) -> tuple[np.ndarray, ...]:
        """The features of several row sets (labelled row positions, any order, repeats allowed) in one pass
        over the files: a float32 array (len(index), features) per set; only `columns` (in that order) when
        given, and only they are decoded."""
        width = len(columns if columns is not None else self.feature_columns)
        out = tuple(np.empty((len(index), width), dtype=np.float32) for index in indexes)
        for owner, slots, block in self._blocks(indexes, columns):
            for number in np.unique(owner):
                mine = owner == number
                out[number][slots[mine]] = block[mine]
        return out

    def batches(self, index: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(slots, rows) for the labelled rows `index`, a file batch at a time: rows (float32, (m, features)) are
        those of index[slots]. Every slot comes once; only one batch's rows are held at a time."""
        for _, slots, block in self._blocks((np.asarray(index),)):
            yield slots, block

    def _blocks(
        self, indexes: tuple[np.ndarray, ...], columns: list[str] | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(owner set, slot in that set, rows) per file batch holding any wanted row, in file order."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = list(columns if columns is not None else self.feature_columns)
        wanted = np.concatenate([self.position[np.asarray(ix, dtype=np.int64)] for ix in indexes])
        owner = np.concatenate([np.full(len(ix), n, dtype=np.int64) for n, ix in enumerate(indexes)])
        slot = np.concatenate([np.arange(len(ix), dtype=np.int64) for ix in indexes])
        order = np.argsort(wanted, kind="stable")
        wanted, owner, slot = wanted[order], owner[order], slot[order]
        for number, path in enumerate(self.files):
            first, last = np.searchsorted(wanted, self.starts[number : number + 2])
            if first == last:
                continue  # no wanted row in this file: it is not opened
            if self.progress is not None:
                self.progress(f"file {number + 1} of {len(self.files)}")
            offset = int(self.starts[number])
            reader = pq.ParquetFile(path)
            for batch in reader.iter_batches(batch_size=self.batch_rows, columns=columns, use_threads=False):
                a, b = np.searchsorted(wanted, [offset, offset + batch.num_rows])
                if a < b:
                    taken = batch.take(pa.array(wanted[a:b] - offset))
                    block = np.empty((b - a, len(columns)), dtype=np.float32)
                    for j, column in enumerate(taken.columns):
                        block[:, j] = column.to_numpy(zero_copy_only=False)
                    del taken
                    yield owner[a:b], slot[a:b], block
                offset += batch.num_rows
                del batch
            reader.close()
        release_memory()


def release_memory() -> None:
    """Hand memory freed after reading and fitting back to the system: Arrow's allocator and glibc's malloc keep
    freed pages for reuse, so they would stay in the process's resident set (0.12 GB after reading the
    150,000-resident borough's light columns) and count against build.memory_budget_gb."""
    import ctypes
    import ctypes.util

    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    name = ctypes.util.find_library("c")
    if name and "libc.so" in name:  # glibc: malloc_trim(0) returns the heap's free pages
        try:
            ctypes.CDLL(name).malloc_trim(0)
        except (OSError, AttributeError):
            pass


def rows_bytes(rows: int, n_features: int) -> int:
    """Bytes of `rows` rows of float32 features."""
    return int(rows) * int(n_features) * BYTES_PER_VALUE


def sampled_rows(positives: int, negatives: int, fraction: float) -> int:
    """Rows kept by negative sampling (modeling.train.negative_sample) of a slice: every positive and
    round(fraction x negatives) negatives, at least one."""
    if fraction >= 1:
        return positives + negatives
    return positives + (max(1, int(round(fraction * negatives))) if negatives else 0)


@dataclass(frozen=True)
class TaskRows:
    """How many rows one training task reads (a test split or the final model), for its memory estimate.

    fit_positives / fit_negatives: the fit slice before negative sampling; validation, calibration: their
    slices (all rows of their as_of dates); logistic_positives / logistic_negatives: the logistic baseline's
    subsample before sampling (0 for the final model); test: rows scored a batch at a time."""

    name: str
    fit_positives: int
    fit_negatives: int
    validation: int
    calibration: int
    logistic_positives: int = 0
    logistic_negatives: int = 0
    test: int = 0

    def fit_rows(self, fraction: float) -> int:
        return sampled_rows(self.fit_positives, self.fit_negatives, fraction)

    def logistic_rows(self, fraction: float) -> int:
        """The logistic baseline's rows after negative sampling (0 for the final model)."""
        if not self.logistic_positives + self.logistic_negatives:
            return 0
        return sampled_rows(self.logistic_positives, self.logistic_negatives, fraction)

    def stages(self, fraction: float, n_features: int) -> dict[str, int]:
        """Estimated bytes held at each of the task's reads: the fit and validation rows with LightGBM's
        datasets; the calibration and logistic rows with the baseline's copies; one batch of test rows."""
        logistic = self.logistic_rows(fraction)
        reading = rows_bytes(READ_BATCH_ROWS, n_features) * READ_BATCH_COPIES
        return {
            "fit and validation": reading + int(rows_bytes(self.fit_rows(fraction) + self.validation, n_features)
                                                * (1 + LIGHTGBM_DATASET_FACTOR)),
            "calibration and logistic baseline": reading + int(
                rows_bytes(self.calibration, n_features) + rows_bytes(logistic, n_features) * (1 + LOGISTIC_FACTOR)
            ),
            "test": reading,
        }

    def bytes(self, fraction: float, n_features: int) -> int:
        """The most the task holds at once (bytes), estimated: the largest of its stages."""
        return max(self.stages(fraction, n_features).values())

    def largest_fraction(self, available: float, n_features: int) -> float | None:
        """The largest negative sample fraction (three decimals, rounded down) whose estimate fits `available`
        bytes; None when even the smallest does not (the validation and calibration slices alone are too big)."""
        if self.bytes(1.0, n_features) <= available:
            return 1.0
        if self.bytes(0.001, n_features) > available:
            return None
        low, high = 1, 1000  # in thousandths: low fits, high does not
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if self.bytes(middle / 1000, n_features) <= available else (low, middle)
        return low / 1000


__all__ = ["FeatureRows", "READ_BATCH_ROWS", "TaskRows", "release_memory", "rows_bytes", "sampled_rows"]
