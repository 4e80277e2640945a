"""Abuse hidden from services (synth.disclosure, ADR 0019): households that never disclose are seen far
less by police, A&E and children's social care, while housing repairs and outcomes are unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pytest

from earlysignal.config import Disclosure, SynthSection, load_config
from earlysignal.errors import ConfigError
from earlysignal.synth import generate_borough
from earlysignal.synth.disclosure import disclosure_sources, hidden_households, thinning_factor

SETTINGS = SynthSection(residents=12_000, years=5, seed=7)  # as the synth_borough_small fixture
DA_BIT = np.uint8(1)


@pytest.fixture(scope="module")
def everyone_discloses(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """synth_borough_small's world with every household disclosing: the world before ADR 0019."""
    out = tmp_path_factory.mktemp("everyone_discloses")
    generate_borough(out, SETTINGS.model_copy(update={"disclosure": Disclosure(share=1.0)}))
    return out


def test_thinning_keeps_only_the_kept_share_of_what_abuse_adds_in_hidden_households() -> None:
    betas = (3.8, 0.2, 0.3, 0.7)
    masks = np.array([1, 1, 0, 1 | 4], dtype=np.uint8)
    hidden = np.array([True, False, True, True])
    factor = thinning_factor(betas, masks, hidden, kept=0.1)
    lift = np.exp(3.8)
    expected_hidden = (1 + 0.1 * (lift - 1)) / lift
    np.testing.assert_allclose(factor, [expected_hidden, 1.0, 1.0, expected_hidden])
    # kept 0: a hidden household's rate under abuse is exactly its rate without abuse.
    assert thinning_factor(betas, masks[:1], hidden[:1], kept=0.0)[0] * lift == pytest.approx(1.0)
    # A rate abuse does not raise is never thinned.
    np.testing.assert_array_equal(thinning_factor((0.0, 1.0, 0.0, 0.0), masks, hidden, kept=0.0), np.ones(4))
    np.testing.assert_array_equal(thinning_factor((-0.5, 1.0, 0.0, 0.0), masks, hidden, kept=0.0), np.ones(4))


def test_hidden_households_follow_the_configured_share_and_the_seed() -> None:
    hidden = hidden_households(42, 200_000, 0.2)
    assert hidden.mean() == pytest.approx(0.8, abs=0.005)
    np.testing.assert_array_equal(hidden, hidden_households(42, 200_000, 0.2))
    assert not hidden_households(42, 1000, 1.0).any()
    assert hidden_households(42, 1000, 0.0).all()


def test_the_default_world_hides_abuse_as_the_crime_survey_reports() -> None:
    shipped = load_config(Path("conf/borough.yaml")).synth.disclosure
    default = SynthSection().disclosure
    for setting in (shipped, default):
        assert (setting.share, setting.kept) == (0.2, 0.1)
        assert disclosure_sources(setting) == ("police", "ae", "social_care")


def test_everyone_disclosing_is_the_world_before_the_setting(everyone_discloses: Path, tmp_path: Path) -> None:
    # Keeping every abuse record in hidden households changes nothing either: the thinning is the only change.
    kept_all = tmp_path / "kept_all"
    generate_borough(kept_all, SETTINGS.model_copy(update={"disclosure": Disclosure(share=0.0, kept=1.0)}))
    for name in ("residents.parquet", "residency.parquet", "events.parquet", "outcomes.parquet"):
        assert (kept_all / name).read_bytes() == (everyone_discloses / name).read_bytes(), name
    manifest = json.loads((everyone_discloses / "manifest.json").read_text())
    assert "disclosure" not in manifest["generator"]  # a share-1 borough's manifest is the old one


def _per_household(folder: Path) -> dict[tuple[bool, str], float]:
    """Events per household-year of abuse, by (household discloses, event kind), at the household's
    address (police domestic incidents, door and lock jobs) or to its members (A&E injuries, social care)."""
    con = duckdb.connect()
    con.execute(f"""
        create view hh as select * from '{folder}/ground_truth/households.parquet';
        create view spells as
            select s.household_id, s.start_date, coalesce(s.end_date, date '2026-01-01') as end_date,
                   hh.address_id, hh.discloses
            from '{folder}/ground_truth/household_states.parquet' s join hh using (household_id)
            where s.state = 'domestic_abuse';
        create view res as select resident_id, household_id, start_date,
            coalesce(end_date, date '2026-01-01') as end_date from '{folder}/residency.parquet';
        create view ev as select * from '{folder}/events.parquet';
    """)
    years = dict(con.execute(
        "select discloses, sum(date_diff('day', start_date, end_date)) / 365.25 from spells group by 1"
    ).fetchall())
    at_address = con.execute("""
        select discloses, case when ev.source = 'police' then 'police' else 'door_or_lock' end, count(*)
        from spells join ev on ev.address_id = spells.address_id
             and ev.event_time >= spells.start_date and ev.event_time < spells.end_date
        where (ev.source = 'police' and ev.event_type = 'domestic_incident')
           or (ev.source = 'housing_repairs' and ev.event_type in ('door_replacement', 'lock_change'))
        group by 1, 2""").fetchall()
    to_members = con.execute("""
        select discloses, ev.source, count(*)
        from spells join res on res.household_id = spells.household_id
        join ev on ev.resident_id = res.resident_id
             and ev.event_time >= greatest(spells.start_date, res.start_date)
             and ev.event_time < least(spells.end_date, res.end_date)
        where (ev.source = 'ae' and ev.event_type = 'injury_attendance') or ev.source = 'social_care'
        group by 1, 2""").fetchall()
    return {(bool(d), kind): n / years[d] for d, kind, n in at_address + to_members}


def test_police_ae_and_social_care_see_far_less_of_hidden_abuse_while_repairs_see_it_all(
    synth_borough_small: Path, everyone_discloses: Path
) -> None:
    rates = _per_household(synth_borough_small)
    # Police domestic incidents: e^3.8 times the base under abuse, kept at (1 + 0.1 (e^3.8 - 1)) / e^3.8
    # = 0.12 in hidden households (split incidents: 0.5 -> 0.05).
    assert rates[(False, "police")] / rates[(True, "police")] == pytest.approx(0.12, abs=0.06)
    # A&E injuries (e^1.8: kept 0.25) and social care contacts (e^1.5: kept 0.30) keep more: what abuse does
    # not add stays. Social care contacts are few here (75 in disclosing households), hence the width.
    assert rates[(False, "ae")] / rates[(True, "ae")] == pytest.approx(0.25, abs=0.08)
    assert rates[(False, "social_care")] / rates[(True, "social_care")] == pytest.approx(0.30, abs=0.2)
    # Door and lock jobs do not depend on disclosure: the same rate, and the same events as when all disclose.
    assert rates[(False, "door_or_lock")] / rates[(True, "door_or_lock")] == pytest.approx(1.0, abs=0.25)
    con = duckdb.connect()
    # Event IDs number all events in time order, so compare everything else.
    doors = "select * exclude (event_id) from '{}/events.parquet' where source = 'housing_repairs' order by all"
    assert con.execute(doors.format(synth_borough_small)).fetchall() == con.execute(doors.format(everyone_discloses)).fetchall()


def test_outcomes_do_not_depend_on_disclosure(synth_borough_small: Path, everyone_discloses: Path) -> None:
    # A plan follows the harm the household's state causes, by whatever route it surfaces (ADR 0019).
    assert (synth_borough_small / "outcomes.parquet").read_bytes() == (everyone_discloses / "outcomes.parquet").read_bytes()
    hazards = json.loads((synth_borough_small / "ground_truth/hazards.json").read_text())
    assert hazards["disclosure"] == {"share": 0.2, "kept": 0.1, "sources": ["police", "ae", "social_care"]}


def test_ground_truth_records_which_households_disclose(synth_borough_small: Path) -> None:
    con = duckdb.connect()
    share, n = con.execute(
        f"select avg(discloses::int), count(*) from '{synth_borough_small}/ground_truth/households.parquet'"
    ).fetchone()
    assert n > 4000 and share == pytest.approx(0.2, abs=0.03)


def test_an_unknown_source_to_thin_is_refused_with_the_key(tmp_path: Path) -> None:
    bad = SETTINGS.model_copy(update={"disclosure": Disclosure(sources=("police", "gp"))})
    with pytest.raises(ConfigError, match=r"synth\.disclosure\.sources: unknown source\(s\) \['gp'\]"):
        generate_borough(tmp_path / "bad", bad)
    assert not (tmp_path / "bad").exists()
