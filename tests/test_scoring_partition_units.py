"""The pieces of scoring per partition that need no trained model: drift counted in pieces, the partition count."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from earlysignal.config import config_from_dict


def test_the_drift_of_a_cohort_counted_in_pieces_equals_its_drift_at_once():
    from earlysignal.modeling.drift import DriftCounts, build_reference, drift_report

    rng = np.random.default_rng(3)
    training = pd.DataFrame({"count": rng.poisson(2, 4000).astype(float),
                             "trend": np.where(rng.random(4000) < 0.4, np.nan, rng.normal(size=4000))})
    reference = build_reference(training, ["count", "trend"], rng.random(4000), months=rng.integers(1, 4, 4000),
                                short_history=["trend"])
    now = pd.DataFrame({"count": np.where(rng.random(3000) < 0.2, np.nan, rng.poisson(3, 3000)),
                        "trend": np.where(rng.random(3000) < 0.7, np.nan, rng.normal(0.5, size=3000))})
    score = rng.random(3000)
    at_once = drift_report(reference, now, score, 0.1, month=2)
    counts = DriftCounts(reference, month=2)
    for lo, hi in ((0, 1000), (1000, 1000), (1000, 2999), (2999, 3000)):
        counts.add(now.iloc[lo:hi], score[lo:hi])
    assert counts.report(0.1) == at_once
    assert at_once["features_over_warn"] and at_once["feature_null_share"]["count"]["now"] > 0.1



@pytest.mark.parametrize("build", [{"partitions": 0}, {"memory_budget_gb": 0.0}])
def test_the_scoring_partition_count_follows_the_budget_and_the_events(build):
    from earlysignal.config import load_config
    from earlysignal.errors import ConfigError
    from earlysignal.scoring import BYTES_PER_SCORED_EVENT, scoring_partition_count

    raw = load_config(None).model_dump(mode="json")

    def count(n_residents, n_events, **section):
        raw["build"].update({"partitions": None, "memory_budget_gb": None, **section})
        return scoring_partition_count(config_from_dict(raw), n_residents, n_events)

    assert count(300_000, 5_000_000) == 1  # no budget: one partition (scoring never reaches here without one)
    assert count(300_000, 5_000_000, partitions=7, memory_budget_gb=0.6) == 7  # a fixed count wins
    one_as_of = count(300_000, 0, memory_budget_gb=0.6)
    # Scoring builds one as_of: the build alone of 300k residents ever fits about one 0.6 GB partition ...
    assert one_as_of <= 2
    # ... the events are what add partitions: 1 GiB of them (at BYTES_PER_SCORED_EVENT each) is two more at 0.5 GiB.
    events = 1024**3 // BYTES_PER_SCORED_EVENT
    assert count(300_000, events, memory_budget_gb=0.5) - count(300_000, 0, memory_budget_gb=0.5) == 2
    assert count(300_000, 5_000_000, memory_budget_gb=0.3) > count(300_000, 5_000_000, memory_budget_gb=0.6)
    with pytest.raises(ConfigError):
        count(300_000, 5_000_000, **build)


def test_the_scoring_partition_count_leaves_room_for_what_the_process_already_holds():
    from earlysignal.config import load_config
    from earlysignal.scoring import MIN_PARTITION_SHARE, scoring_partition_count

    raw = load_config(None).model_dump(mode="json")
    raw["build"].update({"partitions": None, "memory_budget_gb": 1.0})
    config = config_from_dict(raw)
    alone = scoring_partition_count(config, 300_000, 5_000_000)
    # Half the budget already held: partitions get half as much each, so about twice as many.
    half = scoring_partition_count(config, 300_000, 5_000_000, held_bytes=1024**3 // 2)
    assert 2 * (alone - 1) < half <= 2 * alone and half > alone
    # Holding the whole budget or more: each partition gets the floor share, never zero or a negative room.
    floor = scoring_partition_count(config, 300_000, 5_000_000, held_bytes=1024**3)
    assert floor == scoring_partition_count(config, 300_000, 5_000_000, held_bytes=5 * 1024**3)
    share = round(1 / MIN_PARTITION_SHARE)
    assert share * (alone - 1) < floor <= share * alone and floor > half

