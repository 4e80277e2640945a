"""Write the synthetic borough in the shared data contract, plus its ground truth, byte-for-byte reproducibly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from earlysignal.atomic import atomic_path, write_json
from earlysignal.synth.timeline import OPEN

US_PER_DAY = 86_400_000_000

RESIDENTS_SCHEMA = pa.schema(
    [
        ("resident_id", pa.string()),
        ("birth_date", pa.date32()),
        ("death_date", pa.date32()),
        ("sex", pa.string()),
        ("ethnicity", pa.string()),
        ("disability", pa.bool_()),
    ]
)
RESIDENCY_SCHEMA = pa.schema(
    [
        ("resident_id", pa.string()),
        ("household_id", pa.string()),
        ("address_id", pa.string()),
        ("start_date", pa.date32()),
        ("end_date", pa.date32()),
        ("tenure", pa.string()),
    ]
)
EVENTS_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("resident_id", pa.string()),
        ("address_id", pa.string()),
        ("source", pa.string()),
        ("event_type", pa.string()),
        ("event_time", pa.timestamp("us")),
        ("known_at", pa.timestamp("us")),
        ("value", pa.float64()),
    ]
)
OUTCOMES_SCHEMA = pa.schema(
    [
        ("resident_id", pa.string()),
        ("outcome_type", pa.string()),
        ("outcome_time", pa.timestamp("us")),
        ("known_at", pa.timestamp("us")),
        ("end_time", pa.timestamp("us")),
    ]
)


def id_strings(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """Zero-padded IDs such as R00001234, built in Arrow's C++ kernels (fast for tens of millions)."""
    digits = pc.utf8_lpad(pc.cast(pa.array(np.asarray(numbers, dtype=np.int64)), pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(pa.scalar(prefix), digits, "")


def take_strings(lookup: pa.Array, index: np.ndarray) -> pa.Array:
    """lookup[index] with null where index < 0."""
    index = np.asarray(index, dtype=np.int64)
    return lookup.take(pa.array(np.where(index < 0, 0, index), mask=index < 0))


def take_categories(names: tuple[str, ...] | list[str], codes: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """Category names for integer codes (plain strings, not dictionary-encoded, per the contract)."""
    codes = np.asarray(codes, dtype=np.int64)
    mask = null if null is not None else None
    return pa.array(list(names), pa.string()).take(pa.array(codes, mask=mask))


def dates(days: np.ndarray, open_is_null: bool = False) -> pa.Array:
    """date32 from day numbers; OPEN (or beyond) becomes null when asked."""
    days = np.asarray(days, dtype=np.int64)
    mask = days >= OPEN if open_is_null else None
    return pa.array(np.where(days >= OPEN, 0, days).astype(np.int32), pa.date32(), mask=mask)


def timestamps(us: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """timestamp[us] (naive) from microseconds since the epoch."""
    return pa.array(np.asarray(us, dtype=np.int64), pa.timestamp("us"), mask=null)


def write_table(table: pa.Table, target: Path) -> None:
    """Parquet, zstd, atomically; pyarrow writes no wall-clock metadata, so bytes depend only on content."""
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp, compression="zstd", row_group_size=1_000_000)


def write_manifest(target: Path, manifest: dict[str, Any]) -> None:
    """manifest.json with sorted keys."""
    write_json(manifest, target)
