"""A resident's explanation: what was used, the band and reasons, the model and its approval, how to
challenge, in plain words, and nobody else's data."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from journey_world import AS_OF, OTHERS, RESIDENT, world

from earlysignal.config import config_from_dict, config_to_dict, load_config
from earlysignal.explanation import NOT_PROVIDED, build_explanation, render_html, render_markdown

RANKED = pd.DataFrame({
    "resident_id": ["res-other-top", RESIDENT, "res-next"],
    "rank": [1, 2, 3],
    "score": [0.4, 0.3, 0.01],
    "percentile": [100.0, 66.67, 33.33],
    "flagged": [True, True, False],
    "reason_1": ["x", "2 door replacements at home in the last 12 months", ""],
    "reason_2": ["y", "3 domestic incidents reported to police in the household in the last 12 months", ""],
    "reason_3": ["z", "", ""],
})
SUMMARY = {"model_name": "earlysignal-cpp", "model_version": "7", "approval_checked": True,
           "counts": {"scored": 3, "flagged": 2, "unscored": 0}}
APPROVAL = {"status": "approved", "approver": "Jo Bloggs, Director of Children's Services",
            "approved_at": "2024-11-20T10:00:00+00:00", "revoked_by": None, "revoked_at": None}


def _config(challenge: str = ""):
    raw = config_to_dict(load_config("conf/borough.yaml"))
    raw["governance"]["challenge_contact"] = challenge
    return config_from_dict(raw)


def _doc(challenge: str = "", approval=APPROVAL, resident: str = RESIDENT):
    return build_explanation(_config(challenge), world(), resident, AS_OF, RANKED, SUMMARY, approval)


def test_explanation_counts_the_records_used_by_source_and_who_they_are_about():
    records = _doc()["records"]
    assert records["total"] == 13
    rows = {r["source"]: (r["about_you"], r["about_household"], r["about_home"], r["first"], r["last"])
            for r in records["by_source"]}
    assert rows == {
        # Labels are the data dictionary's source labels.
        "Housing repairs": (0, 0, 5, "May 2012", "March 2024"),
        "Police": (0, 3, 1, "February 2013", "October 2024"),
        "School": (3, 0, 0, "May 2024", "November 2024"),
        "A&E": (0, 1, 0, "December 2024", "December 2024"),
    }
    assert records["others"] == [{"role": "adult A", "records": 3}, {"role": "child A", "records": 1}]
    assert records["years"] == [2012, 2013, 2023, 2024]


def test_explanation_gives_the_band_reasons_model_and_approval():
    doc = _doc()
    assert doc["scored"] == {"rank": 2, "of": 3, "flagged": True, "band": "flagged for review", "reasons": [
        "2 door replacements at home in the last 12 months",
        "3 domestic incidents reported to police in the household in the last 12 months",
    ]}
    text = render_markdown(doc)
    assert "approved for use by Jo Bloggs, Director of Children's Services on 2024-11-20" in text
    assert "version 7 of the model earlysignal-cpp" in text
    assert "the chance of a child protection plan within 6 months" in text
    assert "never replaces, professional judgement" in text


def test_no_other_residents_id_or_any_address_or_event_id_appears():
    doc = _doc(challenge="Data Protection Officer, dpo@example.gov.uk")
    for text in (render_markdown(doc), render_html(doc)):
        for other in (*OTHERS, "res-other-top"):
            assert other not in text
        assert not re.search(r"\bA[12]\b|\bH[012]\b|\bE\d\d\b", text)
        assert "adult A in your household: 3 records" in text


def test_challenge_contact_is_shown_or_said_loudly_to_be_missing():
    assert "Data Protection Officer, dpo@example.gov.uk" in render_markdown(_doc("Data Protection Officer, dpo@example.gov.uk"))
    doc = _doc("")
    assert doc["challenge_contact"] == NOT_PROVIDED
    assert f"**{NOT_PROVIDED}**" in render_markdown(doc)
    assert '<span class="missing">NOT PROVIDED</span>' in render_html(doc)


@pytest.mark.parametrize(
    ("approval", "checked", "sentence"),
    [
        (None, True, "NOT PROVIDED: no approval record could be found for it."),
        (None, False, "NOT APPROVED: this list was made for testing without an approval check."),
        ({**APPROVAL, "status": "revoked", "revoked_by": "Board chair", "revoked_at": "2024-12-01T09:00:00+00:00"},
         True, "That approval was later withdrawn by Board chair on 2024-12-01."),
        ({"status": "unverified", "error": "ledger entry 3 was deleted", "approver": "", "approved_at": "",
          "revoked_by": None, "revoked_at": None},
         True, "NOT PROVIDED: its approval record failed its checks (ledger entry 3 was deleted)."),
    ],
)
def test_a_missing_or_withdrawn_approval_is_stated(approval, checked, sentence):
    doc = build_explanation(_config(), world(), RESIDENT, AS_OF, RANKED, {**SUMMARY, "approval_checked": checked}, approval)
    assert sentence in render_markdown(doc)


def test_a_resident_not_scored_is_told_why():
    doc = build_explanation(_config(), world(), "res-mum", AS_OF, RANKED, SUMMARY, APPROVAL,
                            unscored_reason="older than the cohort's maximum age (17)")
    assert doc["scored"] is None
    assert "You were not scored on this date (older than the cohort's maximum age (17))." in render_markdown(doc)


def test_own_earlier_outcomes_are_listed_but_a_siblings_are_not():
    doc = _doc()
    assert doc["own_outcomes"] == [{"label": "a section 47 child protection enquiry", "month": "March 2022"}]
    assert "referral to children's social care" not in render_markdown(doc)


def test_with_the_models_features_only_the_records_it_reads_are_counted():
    from caseworker_folder import REASON_FEATURES

    from earlysignal.caselist import ModelFeatures
    from earlysignal.wording import Wording

    model = ModelFeatures(dict(REASON_FEATURES), ["housing_repairs", "police"],
                          Wording({"housing_repairs": "repairs", "police": "police call-outs"}))
    doc = build_explanation(_config(), world(), RESIDENT, AS_OF, RANKED, SUMMARY, APPROVAL, model_features=model)
    records = doc["records"]
    assert records["total"] == 5
    assert [(r["source"], r["about_you"], r["about_household"], r["about_home"]) for r in records["by_source"]] == [
        ("Repairs", 0, 0, 2), ("Police call-outs", 0, 3, 0)
    ]


def test_records_about_the_home_from_before_the_resident_moved_in_are_said_to_be_about_earlier_occupants():
    doc = _doc()
    # res-child moved into A1 in January 2015; a door replacement (2012) and a call-out to the previous
    # tenant (2013) are records about the home that are not about this family.
    assert doc["home_before_you"] == {"total": 2, "first": "May 2012", "moved_in": "January 2015", "by_source": [
        {"source": "Housing repairs", "records": 1}, {"source": "Police", "records": 1}]}
    text = render_markdown(doc)
    assert ("2 of the records about your home are from before you lived there (from May 2012 until you moved in, "
            "in January 2015)") in text
    assert "By service: Housing repairs 1, Police 1." in text
    assert 'id="home-before-you">2 of the records about your home' in render_html(doc)
    assert "res-before" not in text


def test_moving_in_is_the_start_of_the_unbroken_stay_at_the_address():
    from earlysignal.explanation import moved_in
    from earlysignal.journey import household_at

    data = world()
    household = household_at(data, RESIDENT, AS_OF)
    spells = data.residency
    split = pd.concat([spells[spells["resident_id"] != RESIDENT], pd.DataFrame({
        "resident_id": [RESIDENT, RESIDENT], "household_id": ["H1", "H1"], "address_id": ["A1", "A1"],
        "start_date": pd.to_datetime(["2015-01-01", "2019-03-01"]).astype("datetime64[us]"),
        "end_date": pd.to_datetime(["2019-03-01", None]).astype("datetime64[us]"),
        "tenure": ["council", "council"]})], ignore_index=True)
    assert moved_in(split, household, AS_OF) == pd.Timestamp("2015-01-01")  # one stay in two spells
    gap = split.copy()
    gap.loc[(gap["resident_id"] == RESIDENT) & (gap["start_date"] == pd.Timestamp("2019-03-01")), "start_date"] = (
        pd.Timestamp("2020-06-01"))
    assert moved_in(gap, household, AS_OF) == pd.Timestamp("2020-06-01")  # left in 2019, came back in 2020
