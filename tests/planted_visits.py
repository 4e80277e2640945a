"""Events at an address where their resident never lived (a call-out at a relative's, a visit), planted in a
synthetic borough. The contract accepts them; a partitioned load stores each in its resident's partition and
again in its address's when that is another one, so a per-partition stage that drops either copy, or counts
both, gives figures that differ from the whole borough's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


def plant_visits(
    folder: Path,
    n: int,
    seed: int,
    extra: pd.DataFrame | None = None,
    living_at: pd.Timestamp | None = None,
    source: str | None = None,
) -> int:
    """Copy n random events with a resident to a random address where that resident never lived (plus the rows
    of `extra`: resident_id, source, event_type, event_time, known_at, placed the same way) into folder's
    events.parquet, updating manifest.json's row count. With `living_at`, the addresses are those someone lived
    at on that day and the copies happen 60 days before it (recorded a day later), so the residents there see
    them in their address features. With `source`, only that source's events are copied (at most as many as it
has). Returns how many were planted."""
    events = pd.read_parquet(folder / "events.parquet")
    residency = pd.read_parquet(folder / "residency.parquet", columns=["resident_id", "address_id"])
    rng = np.random.default_rng(seed)
    lived = set(zip(residency["resident_id"].astype(str), residency["address_id"].astype(str), strict=True))
    addresses = residency["address_id"].astype(str).unique()
    pool = events.loc[events["resident_id"].notna() & ((events["source"] == source) if source else True)]
    base = pool.sample(min(n, len(pool)), random_state=seed).drop(columns=["address_id"])
    if living_at is not None:
        spells = pd.read_parquet(folder / "residency.parquet", columns=["address_id", "start_date", "end_date"])
        start, end = pd.to_datetime(spells["start_date"]), pd.to_datetime(spells["end_date"])
        covering = (start <= living_at) & (end.isna() | (end > living_at))
        addresses = spells.loc[covering, "address_id"].astype(str).unique()
        base = base.assign(event_time=living_at - pd.Timedelta(days=60), known_at=living_at - pd.Timedelta(days=59))
    planted = pd.concat([base, extra] if extra is not None else [base], ignore_index=True)
    planted["address_id"] = rng.choice(addresses, len(planted))
    planted = planted[[(str(r), a) not in lived for r, a in zip(planted["resident_id"], planted["address_id"],
                                                                strict=True)]]
    planted = planted.assign(event_id=[f"VISIT{i:05d}" for i in range(len(planted))])
    events = pd.concat([events, planted[events.columns].astype(events.dtypes.to_dict())], ignore_index=True)
    events.to_parquet(folder / "events.parquet", index=False)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["row_counts"]["events"] = len(events)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return len(planted)
