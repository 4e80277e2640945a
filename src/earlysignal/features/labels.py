"""Labels: did a labelled outcome start in [as_of, as_of + horizon)? Unknown (null) when the
window passes the extract date, never 0."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from earlysignal.config import ProjectConfig
from earlysignal.engines.base import Engine
from earlysignal.features.cohort import AsOfGrid, Cohort
from earlysignal.features.sql import label_positives_sql


def build_labels(
    engine: Engine, config: ProjectConfig, grid: AsOfGrid, cohort: Cohort, n_residents: int, extract_date: dt.date
) -> pd.arrays.IntegerArray:
    """A nullable Int8 label per cohort row: 1, 0, or <NA> where as_of + horizon > extract_date."""
    table = engine.run(label_positives_sql(engine.dialect, outcome_types=config.label.outcome_types))
    positive_keys = table.column("r_idx").to_numpy().astype(np.int64) * grid.size + table.column(
        "j"
    ).to_numpy().astype(np.int64)
    row_keys = cohort.r_idx * grid.size + cohort.j
    values = np.isin(row_keys, positive_keys).astype(np.int8)
    unknown_j = np.array([end > extract_date for end in grid.horizon_ends], dtype=bool)
    mask = unknown_j[cohort.j]
    values[mask] = 0
    return pd.arrays.IntegerArray(values, mask)
