"""What `monitor` reads of a borough's data, gathered from the whole borough or one partition at a time.

build_monitor needs three things of the accepted linked histories, and nothing else:

* each past list's realised labels: its residents' residency spells, outcomes and residents rows
  (features.labels.resident_label_timing, which works resident by resident);
* each list's response share: which of its flagged residents had an event of the response source;
* the events counted per source, event type, month and reporting lag (monitor.sources.VolumeCounts) for
  the volume drift.

`inputs_from_data` takes them from LinkedData (the borough in memory, as `load_linked_data` gives it).
`inputs_per_partition` takes them from the contract's partitions (contract/streaming.py: the same checks, the
same accepted rows, written per partition keeping households and addresses whole): labels one partition's
residents at a time, the events one stored batch at a time. An event at an address is stored in its
resident's partition and again in its address's when that is another one (a feature build reads it from
both sides); here each accepted event is counted once, in the partition that owns it: its resident's, or its
address's when it has no resident (the contract accepts an event's resident only if it is an accepted
resident, and every accepted resident is in exactly one partition).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from earlysignal.config import ProjectConfig
from earlysignal.monitor.past_lists import PastList
from earlysignal.monitor.realised import realised_labels, responded_ids, share_of_flagged
from earlysignal.monitor.sources import VolumeCounts, lag_thresholds

EVENT_COLUMNS = ["resident_id", "source", "event_type", "event_time", "known_at"]


@dataclasses.dataclass
class MonitorInputs:
    """What build_monitor reads of the data, per list in the lists' order.

    labels: realised labels per list (None while its horizon is open); responses: the unpublished response
    share per list (None without a response setting or while its window is open); volumes: the events
    known before the monitoring date, counted for the volume drift."""

    extract_date: dt.date
    labels: list[pd.arrays.IntegerArray | None]
    responses: list[dict[str, Any] | None]
    volumes: VolumeCounts


def _response_open(config: ProjectConfig, item: PastList, known_by: dt.date) -> bool:
    response = config.monitoring.response
    return response is None or item.as_of + dt.timedelta(days=response.within_days) > known_by


def _flagged_ids(item: PastList) -> list[str]:
    return item.ranked.loc[item.ranked["flagged"].astype(bool), "resident_id"].tolist()


def _known(events: pd.DataFrame, known_by: dt.date) -> pd.DataFrame:
    # Point in time: a record the council only knew of at or after the monitoring date does not count.
    return events.loc[pd.to_datetime(events["known_at"]) < pd.Timestamp(known_by)]


def inputs_from_data(
    config: ProjectConfig, data: Any, lists: Sequence[PastList], known_by: dt.date, recent: tuple[dt.date, dt.date]
) -> MonitorInputs:
    """MonitorInputs from a borough held whole (residents, residency, events, outcomes, extract_date)."""
    labels = [realised_labels(config, data, item.ranked["resident_id"].tolist(), item.as_of, known_by)
              for item in lists]
    response = config.monitoring.response
    responses: list[dict[str, Any] | None] = []
    for item in lists:
        if _response_open(config, item, known_by):
            responses.append(None)
            continue
        assert response is not None
        hit = responded_ids(data.events, item.as_of, response.source, response.event_types, response.within_days,
                            known_by)
        responses.append(share_of_flagged(_flagged_ids(item), hit))
    volumes = VolumeCounts.of(_known(data.events, known_by), lag_thresholds(recent, known_by))
    return MonitorInputs(data.extract_date, labels, responses, volumes)


def inputs_per_partition(
    config: ProjectConfig, streamed: Any, lists: Sequence[PastList], known_by: dt.date, recent: tuple[dt.date, dt.date]
) -> MonitorInputs:
    """MonitorInputs from contract/streaming.py's StreamedData, one partition at a time: what is held is one
    partition's residents, spells and outcomes, one stored batch of its events, the lists themselves and
    per list a label timing per resident and the flagged residents who had a response. The result equals
    inputs_from_data's on the same folder, count for count."""
    from earlysignal.contract.streaming import iter_events_part
    from earlysignal.features.labels import LabelTiming, resident_label_timing

    thresholds = lag_thresholds(recent, known_by)
    extract = streamed.extract_date
    closed = [config.label.window_end(item.as_of) <= known_by for item in lists]
    ids = [item.ranked["resident_id"].astype(str).to_numpy(dtype=object) for item in lists]
    timings = [
        LabelTiming(window_end=np.full(len(i), np.datetime64("NaT"), dtype="datetime64[D]"),
                    known_at=np.full(len(i), np.datetime64("NaT"), dtype="datetime64[us]"),
                    censored=np.zeros(len(i), dtype=bool))
        for i in ids
    ]
    placed = [np.zeros(len(i), dtype=bool) for i in ids]
    response = config.monitoring.response
    wanted = [None if _response_open(config, item, known_by) else set(_flagged_ids(item)) for item in lists]
    responded: list[set[str]] = [set() for _ in lists]
    volume_parts: list[VolumeCounts] = []

    def label_rows(residents: pd.DataFrame, residency: pd.DataFrame, outcomes: pd.DataFrame, member: Any) -> None:
        for n, item in enumerate(lists):
            if not closed[n]:
                continue
            rows = np.flatnonzero(member(ids[n]) & ~placed[n])
            if rows.size == 0:
                continue
            timing = resident_label_timing(config, residents, residency, outcomes, list(ids[n][rows]), item.as_of,
                                           extract)
            timings[n].window_end[rows] = timing.window_end
            timings[n].known_at[rows] = timing.known_at
            timings[n].censored[rows] = timing.censored
            placed[n][rows] = True

    for partition in range(streamed.partitions):
        residents = streamed.residents_of(partition)
        own = pd.Index(residents["resident_id"].astype(str).unique())
        label_rows(residents, streamed.residency_of(partition), streamed.outcomes_of(partition),
                   lambda values, own=own: own.get_indexer(values) >= 0)
        del residents
        for events in iter_events_part(streamed.events_dir, partition, EVENT_COLUMNS):
            resident = events["resident_id"]
            # Counted once: in the resident's partition, or (no resident) in the address's, the only one it is in.
            # (a hash lookup on object values: pandas' isin on Arrow text walks the values in Python)
            ours = own.get_indexer(resident.to_numpy(dtype=object, na_value=None)) >= 0
            mine = events.loc[resident.isna().to_numpy() | ours]
            known = _known(mine, known_by)
            volume_parts.append(VolumeCounts.of(known, thresholds))
            if response is not None:
                for n, item in enumerate(lists):
                    if wanted[n] is not None:
                        hit = responded_ids(mine, item.as_of, response.source, response.event_types,
                                            response.within_days, known_by)
                        responded[n] |= hit & wanted[n]
            del events, mine, known
        # Keep what was counted small: fold the partition's batches together.
        volume_parts = [VolumeCounts.total(volume_parts, thresholds)]
    # Residents of a list who are not accepted residents here have no rows: their timing from empty tables.
    empty = streamed.residents_of(0).iloc[:0] if streamed.partitions else pd.DataFrame({"resident_id": []})
    label_rows(empty, streamed.residency_of(0).iloc[:0], streamed.outcomes_of(0).iloc[:0],
               lambda values: np.ones(len(values), dtype=bool))
    labels = [timings[n].at(known_by, extract) if closed[n] else None for n in range(len(lists))]
    responses = [None if wanted[n] is None else share_of_flagged(_flagged_ids(item), responded[n])
                 for n, item in enumerate(lists)]
    return MonitorInputs(extract, labels, responses, VolumeCounts.total(volume_parts, thresholds))
