"""Nothing withheld in a release can be worked back by differencing its tables (audit/differencing.py).

The attacker knows how the tables add up (dates to the total, groups to everyone, intersections to
their attributes, flagged to the places on the lists) and solves for each withheld count's range;
a count is worked back when it is pinned more tightly than 1 to min_cell - 1.
"""

from __future__ import annotations

import copy
import re

import pandas as pd
import pytest
from test_release_bundle import _with_few_escalations, evaluation_rows

from earlysignal.audit.suppression import round_count
from earlysignal.config import load_config
from earlysignal.federation.bundle import BundleError, build_release, write_bundle
from earlysignal.audit.differencing import attack_release, worked_back

from test_release_bundle import REPO

MIN_CELL = 10


@pytest.fixture(scope="module")
def config():
    base = load_config(REPO / "conf" / "borough.yaml")
    return base.model_copy(update={
        "capacity": base.capacity.model_copy(update={"k": 100, "top_percent": None}),
        "training": base.training.model_copy(update={"bootstrap": 20}),
        "audit": base.audit.model_copy(update={"bootstrap": 20}),
    })


def _truth(rows: pd.DataFrame, name: str) -> int | None:
    """The exact count an attack target names (None for the attack's own helper unknowns)."""
    dated = re.match(r"(\d{4}-\d\d-\d\d) (.*)", name)
    if dated:
        part = rows[rows["as_of"] == pd.Timestamp(dated.group(1))]
        y, f = part["label"].astype(bool), part["flagged"]
        return {"flagged who escalated": int((y & f).sum()), "escalations missed": int((y & ~f).sum()),
                "escalations": int(y.sum()), "residents": len(part)}.get(dated.group(2))
    group = re.match(r"(.*)=(.*) (n|positives|flagged|tp|missed)$", name)
    if group:
        attributes = group.group(1).split(" + ")
        labels = rows[[f"attr__{a}" for a in attributes]].astype(str).agg(" + ".join, axis=1)
        part = rows[labels == group.group(2)]
        y, f = part["label"].astype(bool), part["flagged"]
        return {"n": len(part), "positives": int(y.sum()), "flagged": int(f.sum()), "tp": int((y & f).sum()),
                "missed": int((y & ~f).sum())}[group.group(3)]
    return None


def _two_dates(found_second: int | None) -> dict:
    """A release of two dates of 2,000 with k = 100: the first finds 59 (shown as 60), the second a handful
    (withheld); the total over both dates is shown rounded. Nothing else."""
    total = 59 + (found_second or 0)
    rounded = lambda v: round_count(v, 5)  # noqa: E731
    return {
        "small_numbers": {"min_cell": MIN_CELL, "round_to": 5},
        "performance": {
            "n": 4000, "positives": 300,
            "per_as_of": [
                {"as_of": "2024-10-01", "n": 2000, "positives": 150, "k": 100, "precision_at_capacity": 0.6,
                 "recall_at_capacity": 60 / 150, "withheld": {}},
                {"as_of": "2025-01-01", "n": 2000, "positives": 150, "k": 100, "precision_at_capacity": None,
                 "recall_at_capacity": None, "withheld": {"precision_at_capacity": "small"}},
            ],
            "summary": {"precision_at_capacity": {"value": rounded(total) / 200},
                        "recall_at_capacity": {"value": rounded(total) / 300}},
        },
    }


def test_the_attack_pins_a_dates_withheld_number_found_from_the_total_less_the_date_shown() -> None:
    # 59 + 2 = 61 is shown as 60 of 200: the second date found 60 - 60 +- 4, i.e. 1 to 4 (not 1 to 9).
    leaks = worked_back(_two_dates(2))
    assert [(b.name, b.low, b.high) for b in leaks] == [("2025-01-01 flagged who escalated", 1, 4)]
    # 59 + 5 = 64 is shown as 65: 1 to 9 remain possible, and the attack says nothing.
    assert worked_back(_two_dates(5)) == []


def test_a_release_a_count_can_be_worked_back_from_is_never_written(tmp_path, config) -> None:
    document = _two_dates(2)
    with pytest.raises(BundleError, match="can be worked back by differencing"):
        write_bundle(document, tmp_path / "bundle", config)
    assert not (tmp_path / "bundle" / "release.json").exists()


WORLDS = {
    "a weak second date and a small group (seed 0)": lambda: evaluation_rows(seed=0),
    "a weak second date and a small group (seed 1)": lambda: evaluation_rows(seed=1),
    "a handful of escalations at one date": lambda: _with_few_escalations(evaluation_rows(), "2025-01-01", 3),
    "a handful at every date": lambda: _with_few_escalations(
        _with_few_escalations(evaluation_rows(), "2025-01-01", 3), "2024-10-01", 8),
}


@pytest.mark.parametrize("world", sorted(WORLDS))
def test_no_withheld_count_can_be_worked_back_from_a_release(world: str, config) -> None:
    rows = WORLDS[world]()
    release = build_release(rows, config=config, borough="Northgate", model={"name": "es", "version": "3"})
    bounds = attack_release(release)
    assert bounds  # there was something withheld to attack
    for bound in bounds:
        truth = _truth(rows, bound.name)
        # The attack is sound (the truth is always inside what it works out) ...
        assert truth is None or bound.low <= truth <= bound.high, (bound, truth)
        # ... and pins nothing more tightly than "1 to min_cell - 1".
        assert not bound.worked_back, bound


def test_complementary_suppression_keeps_the_figures_it_does_not_need(config) -> None:
    """The protection is aimed: the summary over dates stays when another date's count is withheld instead,
    and the single characteristic with no small group keeps every group and ratio."""
    release = build_release(evaluation_rows(seed=0), config=config, borough="Northgate",
                            model={"name": "es", "version": "3"})
    assert release["performance"]["summary"]["precision_at_capacity"]["value"] is not None
    sex = next(b for b in release["fairness"]["characteristics"] if b["key"] == "sex")
    assert all(g["suppressed"] is None and g["n"] is not None for g in sex["groups"])
    assert any(g["ratios"] for g in sex["groups"])
    again = build_release(evaluation_rows(seed=0), config=config, borough="Northgate",
                          model={"name": "es", "version": "3"})
    strip = lambda d: {k: v for k, v in copy.deepcopy(d).items() if k not in ("generated_at", "code")}  # noqa: E731
    assert strip(again) == strip(release)  # deterministic


def test_a_second_release_cannot_undo_the_first_ones_complementary_suppression(config) -> None:
    rows = evaluation_rows(seed=0)
    first = build_release(rows, config=config, borough="Northgate", model={"name": "es", "version": "3"})
    assert first["performance"]["per_as_of"][0]["precision_at_capacity"] is None  # the complement
    # A later release over the first test date alone shows that date's number found, and the first release's
    # total over both dates less it pins the second date's handful.
    only_first_date = rows[rows["as_of"] == pd.Timestamp("2024-10-01")]
    naive = build_release(only_first_date, config=config, borough="Northgate", model={"name": "es", "version": "3"})
    assert naive["performance"]["per_as_of"][0]["precision_at_capacity"] is not None
    from earlysignal.audit.differencing import attack_releases

    assert "2025-01-01 flagged who escalated" in [b.name for b in attack_releases([first, naive]) if b.worked_back]
    # Told of the first release (release.earlier), the second withholds what the first withheld at that date.
    second = build_release(only_first_date, config=config, borough="Northgate",
                           model={"name": "es", "version": "3"}, earlier=[first])
    assert second["performance"]["per_as_of"][0]["precision_at_capacity"] is None
    assert [b for b in attack_releases([first, second]) if b.worked_back] == []


def test_the_headline_interval_goes_when_the_false_alarms_over_the_dates_are_a_handful(config) -> None:
    """ADR 0015's rule for the pooled summary, in the bundle: 96 of 100 flagged escalate at each date, so the
    flagged who did not are 4 + 4: the precision stays (from rounded counts), its interval (which would describe
    the 8) goes."""
    rows = evaluation_rows(weak_second_date=False)
    for as_of, part in rows.groupby("as_of"):
        flagged = part.index[part["flagged"]]
        rows.loc[flagged, "label"] = 1
        rows.loc[flagged[:4], "label"] = 0
    release = build_release(rows, config=config, borough="Northgate", model={"name": "es", "version": "3"})
    summary = release["performance"]["summary"]["precision_at_capacity"]
    assert summary["value"] is not None and summary["ci_low"] is None and summary["ci_high"] is None


def test_a_cluster_band_withheld_beside_one_other_band_is_protected_by_withholding_that_one() -> None:
    from earlysignal.audit.differencing import close_differencing

    # 100 singletons and 2 clusters of 51+: the share (100 over 100) gives the total of 98-102 clusters, and
    # 98-102 singletons leave 1 to 4 for the withheld band.
    document = {"small_numbers": {"min_cell": MIN_CELL, "round_to": 5}, "linkage": {"cluster_sizes": [
        {"size": "1", "clusters": 100, "share": 100 / 100}, {"size": "51+", "clusters": None, "share": None}]}}
    assert [(b.name, b.low, b.high) for b in worked_back(document)] == [("clusters of size 51+", 1, 4)]
    closed = close_differencing(document)
    assert closed["linkage"]["cluster_sizes"][0]["clusters"] is None and worked_back(closed) == []
    # Four shown bands beside the withheld one (the link-quality example): the rounding of each leaves 1-9 open.
    from earlysignal.audit.linkage import linkage_section
    from earlysignal.federation.bundle import released_linkage
    from test_report_browser import LINK_QUALITY

    shown = released_linkage(linkage_section({"link_run_id": "L1", "quality": LINK_QUALITY}), MIN_CELL, 5)
    example = {"small_numbers": {"min_cell": MIN_CELL, "round_to": 5}, "linkage": shown}
    assert attack_release(example) and worked_back(example) == []


def _one_date_release(hidden: str, model: str) -> dict:
    """One borough, one test date, ethnicity in three groups: Black is small (primary); the complement that hides
    it is Asian in one release and White in the other (two models over the same test rows, e.g. home and
    transfer bundles, need not choose alike)."""
    shown = {"White": (2000, 40, 60), "Asian": (400, 10, 20)}
    groups = []
    for group in ("White", "Black", "Asian"):
        if group in ("Black", hidden):
            groups.append({"group": group, "n": None, "positives": None, "flagged": None,
                           "suppressed": "primary" if group == "Black" else "secondary"})
        else:
            n, positives, flagged = shown[group]
            groups.append({"group": group, "n": n, "positives": positives, "flagged": flagged, "precision": 0.5,
                           "recall": None, "suppressed": None})
    return {"borough": "B", "small_numbers": {"min_cell": MIN_CELL, "round_to": 5}, "model": {"model_sha256": model},
            "performance": {"n": 2700, "positives": 60, "summary": {}, "per_as_of": [
                {"as_of": "2025-01-01", "n": 2700, "positives": 60, "k": 100, "precision_at_capacity": 0.4,
                 "recall_at_capacity": 40 / 60, "withheld": {}}]},
            "fairness": {"characteristics": [{"key": "ethnicity", "attributes": ["ethnicity"], "groups": groups}]}}


def test_two_releases_over_the_same_test_rows_share_their_groups_counts() -> None:
    """Each release alone leaves Black's escalations 0-9; a reader holding both takes Asian from one and White
    from the other: 58-62 less 38-42 less 10-12 leaves 5-9. The attack read the groups of two releases as
    different unknowns and missed it (only the dates' counts were shared)."""
    from earlysignal.audit.differencing import attack_releases

    first, second = _one_date_release("Asian", "a" * 64), _one_date_release("White", "b" * 64)

    def black(releases: list[dict]) -> set[tuple[int, int]]:
        return {(b.low, b.high) for b in attack_releases(releases) if b.name == "ethnicity=Black positives"}

    assert black([first]) == black([second]) == {(0, 9)}
    assert black([first, second]) == {(5, 9)}


def test_an_earlier_releases_own_leak_does_not_excuse_the_same_named_count_of_a_new_release() -> None:
    """What earlier releases give away on their own cannot be taken back, and is not held against a new release;
    but a count of the new release with the same name (the same date's number found, under another model) is
    another unknown. Matched by name alone, the new release's own leak was excused and it would have been written."""
    from earlysignal.audit.differencing import close_differencing, new_leaks

    earlier = {**_two_dates(2), "borough": "B", "model": {"model_sha256": "a" * 64}}
    later = {**_two_dates(2), "borough": "B", "model": {"model_sha256": "b" * 64}}
    assert [b.name for b in worked_back(earlier)] == ["2025-01-01 flagged who escalated"]
    leaks = new_leaks(later, earlier=[earlier])
    assert [(b.name, b.low, b.high) for b in leaks] == [("2025-01-01 flagged who escalated", 1, 4)]
    closed = close_differencing(later, earlier=[earlier])
    assert new_leaks(closed, earlier=[earlier]) == []
