"""Benchmark: validate a borough-sized data folder with `load_linked_data`.

Generates its own random, contract-valid borough (no dependency on the synthetic borough
generator), then times validation several times and prints the median wall time and the peak
memory of the process. Not run by CI.

    .venv/bin/python benchmarks/bench_contract.py                 # 250k residents, 20M events
    .venv/bin/python benchmarks/bench_contract.py --events 2000000 --repeat 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from earlysignal.contract import load_linked_data
from earlysignal.dictionary import load_dictionary, packaged_dictionary_path

# The synthetic borough's event types, from its data dictionary.
_DICTIONARY = load_dictionary(packaged_dictionary_path())
EVENT_VOCABULARY = {s: tuple(spec.event_types) for s, spec in _DICTIONARY.sources.items()}

EXTRACT_DATE = dt.date(2026, 1, 1)
YEARS = 10
# Which ids each source sets, as in the shared data contract.
SCOPES = {
    "housing_repairs": "address",
    "council_tax": "both",
    "benefits": "resident",
    "school": "resident",
    "police": "both",
    "fire": "address",
    "ae": "resident",
    "asb": "address",
    "homelessness": "resident",
    "early_help": "resident",
    "social_care": "resident",
}


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    text = np.char.add(prefix.encode(), np.char.zfill(numbers.astype(f"S{width}"), width))
    return pa.array(text).cast(pa.string())


def _micros(day: dt.date) -> int:
    return int(np.datetime64(day, "us").astype(np.int64))


def generate_borough(folder: Path, residents: int, events: int, seed: int = 0) -> None:
    """Write a random borough that passes every contract check into folder."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    end_us = _micros(EXTRACT_DATE)
    start_us = _micros(EXTRACT_DATE - dt.timedelta(days=365 * YEARS))
    day_us = 86_400_000_000

    resident_numbers = np.arange(residents)
    birth_days = rng.integers(-365 * 90, -365 * 0, residents) + (end_us // day_us)
    resident_table = pa.table(
        {
            "resident_id": _ids("R", resident_numbers, 7),
            "birth_date": pa.array(birth_days.astype(np.int32), pa.date32()),
            "death_date": pa.nulls(residents, pa.date32()),
            "sex": pa.array(np.where(rng.random(residents) < 0.5, "F", "M")),
            "ethnicity": pa.array(rng.choice(["White", "Asian", "Black", "Mixed", "Other"], residents)),
            "disability": pa.array(rng.random(residents) < 0.1),
        }
    )
    pq.write_table(resident_table, folder / "residents.parquet")

    # 1-4 back-to-back spells per resident (about 2.4 on average): never overlapping.
    spells_per = rng.choice([1, 2, 3, 4], residents, p=[0.3, 0.2, 0.3, 0.2])
    owner = np.repeat(resident_numbers, spells_per)
    n_spells = len(owner)
    first_of_resident = np.r_[True, owner[1:] != owner[:-1]]
    last_of_resident = np.r_[owner[1:] != owner[:-1], True]
    gaps = rng.integers(200, 1500, n_spells)
    gaps[first_of_resident] = rng.integers(0, 600, int(first_of_resident.sum()))
    group_offset = np.maximum.accumulate(np.where(first_of_resident, np.arange(n_spells), 0))
    cumulative = np.cumsum(gaps)
    starts = (start_us // day_us) - 2000 + cumulative - cumulative[group_offset] + gaps[group_offset]
    ends = np.r_[starts[1:], 0]
    open_spell = last_of_resident & (rng.random(n_spells) < 0.8)
    ends[last_of_resident] = starts[last_of_resident] + 400
    addresses = max(residents // 2, 1)
    address_numbers = rng.integers(0, addresses, n_spells)
    residency = pa.table(
        {
            "resident_id": _ids("R", owner, 7),
            "household_id": _ids("H", rng.integers(0, addresses, n_spells), 7),
            "address_id": _ids("A", address_numbers, 7),
            "start_date": pa.array(starts.astype(np.int32), pa.date32()),
            "end_date": pa.array(ends.astype(np.int32), pa.date32(), mask=open_spell),
            "tenure": pa.array(
                rng.choice(["council", "housing_association", "private_rented", "owner_occupied"], n_spells)
            ),
        }
    )
    pq.write_table(residency, folder / "residency.parquet")
    used_addresses = np.unique(address_numbers)

    pairs = [(source, event_type) for source, types in EVENT_VOCABULARY.items() for event_type in types]
    pair = rng.integers(0, len(pairs), events)
    pair_scope = np.array([SCOPES[source] for source, _ in pairs])[pair]
    event_time = rng.integers(start_us, end_us - 31 * day_us, events)
    known_at = event_time + rng.integers(0, 30 * day_us, events)
    value = np.where(rng.random(events) < 0.2, rng.gamma(2.0, 100.0, events), np.nan)
    event_table = pa.table(
        {
            "event_id": _ids("E", np.arange(events), 9),
            "resident_id": _ids("R", rng.integers(0, residents, events), 7),
            "address_id": _ids("A", used_addresses[rng.integers(0, len(used_addresses), events)], 7),
            "source": pa.array(np.array([s for s, _ in pairs])[pair]),
            "event_type": pa.array(np.array([t for _, t in pairs])[pair]),
            "event_time": pa.array(event_time, pa.timestamp("us")),
            "known_at": pa.array(known_at, pa.timestamp("us")),
            "value": pa.array(value, pa.float64(), from_pandas=True),
        }
    )
    # Null out the id a source does not set (resident-only or address-only sources).
    address_only = pa.array(pair_scope == "address")
    resident_only = pa.array(pair_scope == "resident")
    event_table = event_table.set_column(
        1, "resident_id", pc.if_else(address_only, pa.scalar(None, pa.string()), event_table.column("resident_id"))
    )
    event_table = event_table.set_column(
        2, "address_id", pc.if_else(resident_only, pa.scalar(None, pa.string()), event_table.column("address_id"))
    )
    pq.write_table(event_table, folder / "events.parquet")

    n_outcomes = max(residents // 10, 1)
    outcome_time = rng.integers(start_us, end_us - 31 * day_us, n_outcomes)
    outcome_types = rng.choice(
        ["csc_referral", "s47_enquiry", "child_protection_plan", "homelessness_acceptance", "adult_safeguarding_concern"],
        n_outcomes,
    )
    has_end = outcome_types == "child_protection_plan"
    outcomes = pa.table(
        {
            "resident_id": _ids("R", rng.integers(0, residents, n_outcomes), 7),
            "outcome_type": pa.array(outcome_types),
            "outcome_time": pa.array(outcome_time, pa.timestamp("us")),
            "known_at": pa.array(outcome_time + rng.integers(0, 7 * day_us, n_outcomes), pa.timestamp("us")),
            "end_time": pa.array(outcome_time + 300 * day_us, pa.timestamp("us"), mask=~has_end),
        }
    )
    pq.write_table(outcomes, folder / "outcomes.parquet")
    manifest = {
        "extract_date": EXTRACT_DATE.isoformat(),
        "sources": sorted(EVENT_VOCABULARY),
        "row_counts": {
            "residents": residents,
            "residency": n_spells,
            "events": events,
            "outcomes": n_outcomes,
        },
        "generator": {"name": "benchmarks/bench_contract.py", "seed": seed},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def corrupt_events(clean: Path, folder: Path, bad_rows: int, seed: int = 1) -> None:
    """Copy a borough, breaking bad_rows events: half known before they happened, half of unknown residents."""
    import shutil

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("residents", "residency", "outcomes"):
        shutil.copy(clean / f"{name}.parquet", folder / f"{name}.parquet")
    shutil.copy(clean / "manifest.json", folder / "manifest.json")
    events = pq.read_table(clean / "events.parquet")
    rows = rng.choice(events.num_rows, size=bad_rows, replace=False)
    early, unknown = rows[: bad_rows // 2], rows[bad_rows // 2 :]
    known_at = events.column("known_at").to_numpy().copy()
    known_at[early] = events.column("event_time").to_numpy()[early] - np.timedelta64(1, "D")
    resident = events.column("resident_id").to_pylist()
    for row in unknown:
        resident[row] = f"X{row}"
    events = events.set_column(6, "known_at", pa.array(known_at, pa.timestamp("us")))
    events = events.set_column(1, "resident_id", pa.array(resident, pa.string()))
    pq.write_table(events, folder / "events.parquet")


def main() -> None:
    """Generate (unless present) and validate a borough-sized folder; print medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=250_000)
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/earlysignal-bench-contract"))
    parser.add_argument(
        "--bad-rows", type=int, default=0, help="break this many events (measures filtering and quarantine writing)"
    )
    args = parser.parse_args()

    folder = args.folder / f"r{args.residents}-e{args.events}"
    if not (folder / "manifest.json").exists():
        started = time.perf_counter()
        generate_borough(folder, args.residents, args.events)
        print(f"generated {folder} in {time.perf_counter() - started:.1f} s")
    if args.bad_rows:
        clean, folder = folder, args.folder / f"r{args.residents}-e{args.events}-bad{args.bad_rows}"
        if not (folder / "manifest.json").exists():
            corrupt_events(clean, folder, args.bad_rows)

    read_times = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        for name in ("residents", "residency", "events", "outcomes"):
            pq.read_table(folder / f"{name}.parquet")
        read_times.append(time.perf_counter() - started)

    times, cpu_times = [], []
    load_before = os.getloadavg()[0]
    for _ in range(args.repeat):
        started, cpu_started = time.perf_counter(), time.process_time()
        linked = load_linked_data(folder, write_quarantine=bool(args.bad_rows))
        times.append(time.perf_counter() - started)
        cpu_times.append(time.process_time() - cpu_started)
    load_after = os.getloadavg()[0]
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    counts = linked.report.to_dict()["tables"]
    print(f"machine: {platform.machine()}, {platform.system()} {platform.release()}, python {platform.python_version()}")
    print(f"rows: {counts}")
    print(f"quarantined: {linked.report.total_quarantined} {linked.report.checks['events']}")
    print(f"read Parquet only: median {statistics.median(read_times):.2f} s over {args.repeat} runs")
    print(f"load_linked_data: median {statistics.median(times):.2f} s over {args.repeat} runs ({', '.join(f'{t:.2f}' for t in times)})")
    print(f"load_linked_data CPU time (user+sys, all threads): median {statistics.median(cpu_times):.2f} s")
    print(f"peak RSS of the process: {peak_gb:.1f} GB")
    print(f"machine load (1-min average) before/after: {load_before:.1f} / {load_after:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
