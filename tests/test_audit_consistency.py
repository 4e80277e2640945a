"""The audit report never contradicts itself: what it says about inputs, empty tables and drivers follows
from the model it describes."""

from __future__ import annotations

import html as html_lib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from earlysignal.audit import build_audit
from earlysignal.config import load_config
from earlysignal.report import render_audit_html

REPO = Path(__file__).resolve().parents[1]

AGE = {"name": "static__age", "family": "static", "source": "residents", "event_type": "", "scope": "static",
       "window": "", "aggregate": "age", "description": "aged {value}"}
RECENT = {"name": "address__repairs__all__count__6m", "family": "repairs", "source": "repairs", "event_type": "all",
          "scope": "address", "window": "6m", "aggregate": "count",
          "description": "{value} repairs at home in the last 6 months"}
LONG = {**RECENT, "name": "address__repairs__all__count__3y", "window": "3y",
        "description": "{value} repairs at home in the last 3 years"}
SIZE = {"name": "static__household_size", "family": "static", "source": "residency", "event_type": "",
        "scope": "static", "window": "", "aggregate": "household_size", "description": "{value} people in the household"}


def _frame(n: int = 2000, seed: int = 0, *, female_share: float = 0.5, flagged_top: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "resident_id": [f"R{i:05d}" for i in range(n)],
            "as_of": pd.Timestamp("2025-01-01"),
            "split": "split_1",
            "label": (rng.random(n) < 0.1).astype("int8"),
            "score": rng.random(n),
            "attr__sex": np.where(rng.random(n) < female_share, "Female", "Male"),
            "attr__ethnicity": rng.choice(["White", "Black"], n),
            "attr__age_band": rng.choice(["0-4", "5-10"], n),
            "attr__disability": rng.choice(["Yes", "No"], n),
        }
    )
    frame["rank"] = frame["score"].rank(ascending=False, method="first").astype(int)
    frame["flagged"] = frame["rank"] <= flagged_top
    return frame


def _audit(frame: pd.DataFrame, records: list[dict], sample: pd.DataFrame, contributions: np.ndarray) -> tuple[dict, str]:
    audit = build_audit(
        config=load_config(REPO / "conf" / "borough.yaml"),
        model={"name": "m", "version": "1", "run_id": "run"},
        predictions=frame,
        metrics={"summary": {}, "splits": [], "success_criterion": {"metric": "precision_at_capacity", "threshold": 0.65}},
        feature_metadata={"feature_columns": [r["name"] for r in records], "features": records},
        explain_sample=sample,
        contributions=contributions,
        approval=None,
    )
    return audit, html_lib.unescape(render_audit_html(audit))


def _card(audit: dict, title: str) -> str:
    return next(item["text"] for item in audit["model_card"] if item["title"] == title)


@pytest.fixture(scope="module")
def with_age() -> tuple[dict, str]:
    """A model using age, household size and two windows of repairs that point opposite ways."""
    frame = _frame()
    rng = np.random.default_rng(1)
    recent = rng.integers(0, 4, len(frame)).astype(float)
    long = recent + rng.integers(0, 6, len(frame))
    sample = frame.assign(static__age=rng.integers(0, 11, len(frame)).astype(float),
                          static__household_size=rng.integers(1, 6, len(frame)).astype(float),
                          **{RECENT["name"]: recent, LONG["name"]: long})
    contributions = np.column_stack([sample["static__age"] * 0.1, sample["static__household_size"] * 0.05,
                                     0.3 * recent, -0.2 * long, np.zeros(len(frame))])
    return _audit(frame, [AGE, SIZE, RECENT, LONG], sample, contributions)


@pytest.fixture(scope="module")
def without_protected() -> tuple[dict, str]:
    """A model on two windows of repairs pointing the same way, and no protected input."""
    frame = _frame(4000, flagged_top=800)
    rng = np.random.default_rng(3)
    recent = rng.integers(0, 4, len(frame)).astype(float)
    long = recent + rng.integers(0, 6, len(frame))
    sample = frame.assign(**{RECENT["name"]: recent, LONG["name"]: long})
    return _audit(frame, [RECENT, LONG], sample, np.column_stack([0.3 * recent, 0.2 * long, np.zeros(len(frame))]))


def test_a_model_using_age_never_says_protected_characteristics_are_not_inputs(with_age) -> None:
    audit, html = with_age
    sentence = (
        "Protected characteristics are model inputs: age band (through static__age). Inputs declared to stand "
        "in for one: static__household_size (age, and household composition standing in for pregnancy and "
        "maternity and marital status). Other inputs may still act as proxies (see the proxy check)."
    )
    assert audit["data"]["protected_inputs_sentence"] == sentence
    assert _card(audit, "Factors").endswith(". " + sentence)
    assert sentence in html
    assert "not model inputs" not in html and "even though it is not an input" not in html
    # The proxy check says age is the characteristic itself, not a hidden proxy for it.
    assert "it is this characteristic (a model input)" in html


def test_a_model_without_protected_inputs_says_so_from_its_feature_list(without_protected) -> None:
    audit, html = without_protected
    sentence = (
        "No protected characteristic (sex, ethnicity, age band, disability) is a model input. "
        "Other inputs may still act as proxies (see the proxy check)."
    )
    assert audit["data"]["protected_inputs_sentence"] == sentence
    assert sentence in html


def test_an_empty_disparity_table_is_replaced_by_the_reason_it_is_empty() -> None:
    # 2,000 residents of whom 6 are women: women are suppressed, and men with them (or 2,000 - men = women).
    frame = _frame()
    frame["attr__sex"] = "Male"
    frame.loc[:5, "attr__sex"] = "Female"
    sample = frame.assign(**{RECENT["name"]: 1.0})
    audit, html = _audit(frame, [RECENT], sample, np.column_stack([np.zeros(len(frame)), np.zeros(len(frame))]))
    sex = next(b for b in audit["fairness"]["characteristics"] if b["key"] == "sex")
    note = (
        "No disparity ratio for sex: the reference group (Male) is hidden to protect a smaller suppressed group "
        "(fewer than 10 people or escalations), so no group can be compared with it."
    )
    assert sex["ratio_note"] == note
    assert note in html
    assert "<summary>Disparity ratios vs Male</summary>" not in html
    # A characteristic with groups to compare keeps its table.
    ethnicity = next(b for b in audit["fairness"]["characteristics"] if b["key"] == "ethnicity")
    assert ethnicity["ratio_note"] is None
    assert f"<summary>Disparity ratios vs {ethnicity['reference']}</summary>" in html


def test_no_finding_when_nothing_could_be_assessed_says_nothing_could_be_flagged() -> None:
    # 300 residents with 5 flagged: every rate behind a ratio rests on fewer than 10 events.
    frame = _frame(300, flagged_top=5)
    sample = frame.assign(**{RECENT["name"]: 1.0})
    audit, html = _audit(frame, [RECENT], sample, np.column_stack([np.zeros(len(frame)), np.zeros(len(frame))]))
    note = (
        "No finding, but none could have been: no group was large enough to compare with its reference after "
        "small-number suppression (at least 10 people, 10 escalations and 10 events behind each rate), so this "
        "report cannot show whether the list treats groups alike."
    )
    assert audit["fairness"]["findings"] == []
    assert audit["summary"]["findings_note"] == note
    assert html.count(note) == 2  # the board's summary and the Fairness section
    assert "No disparity was flagged" not in html


def test_no_finding_among_assessed_ratios_says_how_many_were_assessed(without_protected) -> None:
    audit, html = without_protected
    assert audit["fairness"]["findings"] == []
    assessed = sum(
        1 for block in audit["fairness"]["characteristics"] for g in block.get("groups", [])
        for r in g["ratios"].values() if r["assessable"] and r["low"] is not None
    )
    assert assessed > 0
    note = (
        f"No disparity was flagged: every ratio that could be assessed ({assessed}) is inside the 0.8–1.25 band or "
        "its interval includes equality. Suppressed groups could not be assessed (see Small numbers)."
    )
    assert audit["summary"]["findings_note"] == note
    assert html.count(note) == 2


def test_related_drivers_pointing_opposite_ways_get_a_one_line_explanation(with_age) -> None:
    audit, html = with_age
    directions = {i["feature"]: i["direction"] for i in audit["drivers"]["importance"]}
    assert directions[RECENT["name"]] == "higher values raise the score"
    assert directions[LONG["name"]] == "higher values lower the score"
    line = (
        "'repairs at home in the last 6 months' raises the score while 'repairs at home in the last 3 years' "
        "lowers it: the model reads the two together, so for the same number over the last 3 years, more of them "
        "in the last 6 months raises the score; older history counts for less than recent history, and neither "
        "means these events protect anyone."
    )
    # Age and household size point the same way as each other and are not related: no line for them.
    assert [pair["text"] for pair in audit["drivers"]["opposing"]] == [line]
    assert line in html


def test_related_drivers_pointing_the_same_way_need_no_explanation(without_protected) -> None:
    audit, html = without_protected
    assert audit["drivers"]["opposing"] == []
    assert "Related drivers pointing opposite ways" not in html


def _variant(name: str, necessary: bool, kind: str = "source") -> dict:
    interval = {"value": 0.01, "ci_low": -0.01, "ci_high": 0.03}
    return {"kind": kind, "name": name, "why": "", "n_features": 4, "necessary": necessary, "seconds": 1.0,
            "contribution": {"precision_at_capacity": interval, "roc_auc": interval},
            "fairness": {"findings": 0, "gone": [], "new": []}}


def test_the_data_section_and_the_necessity_table_read_as_one_account(without_protected) -> None:
    import copy

    from earlysignal.audit.consistency import necessity_notes

    audit = copy.deepcopy(without_protected[0])
    audit["data"]["sources"] = ["police", "repairs", "residency", "residents", "school"]
    audit["necessity"] = {
        "rule": "necessary: the interval lies above 0", "bootstrap": {"resamples": 10}, "seconds_total": 5.0,
        "full": {"metrics": {"precision_at_capacity": 0.3, "roc_auc": 0.7}, "fairness_findings": 2},
        "variants": [_variant("repairs", True), _variant("school", False), _variant("benefits", False)],
        "not_shown_necessary": ["school", "benefits"],
    }
    sentence, notes = necessity_notes(audit)
    assert sentence == (
        "Of these, school is not shown to be necessary (see 'Necessity of each source'): the model did as well "
        "without it on the same test dates."
    )
    assert notes == [
        "Necessity was not measured for police: the necessity run did not leave it out, so this report cannot say "
        "whether this model needs it.",
        "The necessity run left out benefits, which this model does not use: it was made for another feature set; "
        "re-run `earlysignal necessity` for this model version.",
        "The necessity run's full model, retrained for the comparison, has 2 fairness finding(s) where this audit of "
        "the registered model has 0: the necessity table compares retrained models with each other, not with the "
        "registered model.",
    ]
    audit["data"]["necessity_sentence"], audit["necessity_notes"] = sentence, notes
    html = html_lib.unescape(render_audit_html(audit))
    assert sentence in html and all(note in html for note in notes)


def test_link_quality_counts_are_rounded_and_small_bands_withheld_like_every_count() -> None:
    from earlysignal.audit.linkage import linkage_section

    section = linkage_section(
        {"quality": {"records": 37404, "residents": 4154, "cluster_sizes": {"1": 2399, "2": 1754, "80": 1},
                     "per_source": {"ae": {"records": 6036, "linked_share": 0.8671}}}},
        min_cell=10, round_to=5,
    )
    assert (section["records"], section["residents"]) == (37405, 4155)
    assert section["per_source"] == [{"source": "ae", "records": 6035, "linked_share": 0.8671, "dropped_records": None,
                                      "dropped_share": None, "truth_precision": None, "truth_recall": None}]
    assert section["cluster_sizes"] == [
        {"size": "1", "clusters": 2400, "share": 2400 / 4155},
        {"size": "2", "clusters": 1755, "share": 1755 / 4155},
        {"size": "51+", "clusters": None, "share": None},
    ]


def test_linkage_section_counts_clusters_left_out_and_people_split_or_mixed(without_protected) -> None:
    import copy

    from earlysignal.audit.linkage import linkage_section

    # Month 2 of a 3,000-resident trial: 8,457 clusters, of which 5,546 entered the contract as residents.
    truth = {"precision": 0.9694, "recall": 0.9923, "f1": 0.9807, "persons": 6627, "persons_split": 146,
             "clusters_mixed": 95}
    section = linkage_section({"quality": {"records": 91370, "residents": 5546, "clusters": 8457, "ground_truth": truth,
                                           "cluster_sizes": {"1": 3363, "2": 763, "3": 508, "40": 3823}}})
    assert (section["clusters"], section["residents"]) == (8455, 5545)
    assert [row["clusters"] for row in section["cluster_sizes"]] == [3365, 765, 510, 3825]
    audit = copy.deepcopy(without_protected[0])
    audit["data"]["linkage"] = section
    html = html_lib.unescape(render_audit_html(audit))
    assert ("counts every cluster of records the link found: 8455, the 5545 residents and about 2910 clusters "
            "left out because none of their records gives a birth date or a sex") in html
    assert "<th>Records per cluster</th><th>Clusters</th>" in html and "Records per resident" not in html
    assert ("Pairs weigh people with many records most, so per person: 146 of 6627 people are split over several "
            "clusters and 95 clusters hold records of several people.") in html


def test_audit_shows_a_floored_disagreement_weight_beside_its_trained_value(without_protected) -> None:
    import copy

    from earlysignal.audit.linkage import linkage_section

    weights = [{"comparison": "sex", "level": "Exact match on sex", "m_probability": 0.9995, "u_probability": 0.5},
               {"comparison": "sex", "level": "All other comparisons", "m_probability": 0.5 / 1024,
                "u_probability": 0.5, "m_probability_trained": 0.5 / 2**46}]
    section = linkage_section({"quality": {"match_weights": weights, "max_disagreement_penalty": 10.0}})
    assert [(w["weight"], w["floored"], w["trained_weight"]) for w in section["match_weights"]] == [
        (1.0, False, None), (-10.0, True, -46.0)]
    audit = copy.deepcopy(without_protected[0])
    audit["data"]["linkage"] = section
    html = html_lib.unescape(render_audit_html(audit))
    assert "-10.00 (floored; trained -46.00)" in html
    assert "A disagreement on sex counts at most 10.0 bits against a match" in html


def test_related_drivers_of_different_aggregates_pointing_opposite_ways_share_one_line() -> None:
    from earlysignal.audit.consistency import opposing_drivers

    # The demo's school absence: months with absence lower the score while sessions missed raise it.
    months = {"name": "household__school__absence__count__3y", "family": "school", "source": "school",
              "event_type": "absence", "scope": "household", "window": "3y", "aggregate": "count",
              "description": "N months with school absence in the household in the last 3 years"}
    sessions = {**months, "name": "household__school__absence__sum__3y", "aggregate": "sum",
                "description": "N school sessions missed in the household in the last 3 years"}
    since = {**months, "name": "household__school__absence__days_since_last__all", "aggregate": "days_since_last",
             "window": "all", "description": "N days since the last month with school absence in the household"}
    importance = [
        {"feature": months["name"], "direction": "higher values lower the score", "description": months["description"]},
        {"feature": sessions["name"], "direction": "higher values raise the score", "description": sessions["description"]},
        {"feature": since["name"], "direction": "higher values lower the score", "description": since["description"]},
    ]
    assert opposing_drivers(importance, [months, sessions, since]) == [{
        "raises": [sessions["name"]],
        "lowers": [months["name"]],
        "text": (
            "'school sessions missed in the household in the last 3 years' raises the score while 'months with "
            "school absence in the household in the last 3 years' lowers it: the model reads them together, so "
            "for the same number of months with school absence in the household in the last 3 years, more school "
            "sessions missed in the household in the last 3 years raises the score; the pull down is that "
            "comparison, not a sign that these events protect anyone."
        ),
    }]


def test_a_group_hidden_only_in_a_data_table_is_listed_under_small_numbers() -> None:
    # 408 women among 2,000 test rows, but only 8 of them in the 200-row explanation sample.
    frame = _frame()
    frame["attr__sex"] = "Male"
    frame.loc[list(range(8)) + list(range(1000, 1400)), "attr__sex"] = "Female"
    sample = frame.head(200).assign(**{RECENT["name"]: 1.0})
    audit, html = _audit(frame, [RECENT], sample, np.column_stack([np.zeros(200), np.zeros(200)]))
    sex = next(b for b in audit["fairness"]["characteristics"] if b["key"] == "sex")
    # In the fairness table only the women's 9 flagged who escalated are small (a withheld precision, which the
    # other tables would pin down): their row is a secondary suppression (audit.differencing), the men's is shown.
    assert [g["suppressed"] for g in sex["groups"]] == ["secondary", None]
    assert [row for row in audit["small_numbers"]["suppressed"] if row["characteristic"] == "sex"
            and row["table"] == "Records by group"] == [
        {"characteristic": "sex", "group": "Female", "reason": "sample", "table": "Records by group"},
        {"characteristic": "sex", "group": "Male", "reason": "sample", "table": "Records by group"},
    ]
    assert "No group needed suppression." not in html
    assert ("<td>Records by group</td><td>sex</td><td>Female</td><td>fewer than 10 in the explanation sample, or "
            "hidden to protect such a group</td>") in html


def test_a_residents_own_days_since_pointing_against_the_households_gets_a_line_of_its_own() -> None:
    from earlysignal.audit.consistency import opposing_drivers

    # The trial borough's A&E injuries: the household's days since lowers the score, the child's own raises it.
    household = {"name": "household__ae__injury_attendance__days_since_last__all", "family": "ae", "source": "ae",
                 "event_type": "injury_attendance", "scope": "household", "window": "all",
                 "aggregate": "days_since_last",
                 "description": "N days since the last A&E attendance for injury in the household"}
    own = {**household, "name": "resident__ae__injury_attendance__days_since_last__all", "scope": "resident",
           "description": "N days since the last A&E attendance for injury"}
    count = {**household, "name": "household__ae__injury_attendance__count__365d", "aggregate": "count",
             "window": "365d", "description": "N A&E attendances for injury in the household in the last 12 months"}
    importance = [
        {"feature": household["name"], "direction": "higher values lower the score",
         "description": household["description"]},
        {"feature": own["name"], "direction": "higher values raise the score", "description": own["description"]},
        {"feature": count["name"], "direction": "higher values raise the score", "description": count["description"]},
    ]
    assert opposing_drivers(importance, [household, own, count]) == [{
        "raises": [own["name"]],
        "lowers": [household["name"]],
        "text": (
            "'days since the last A&E attendance for injury' raises the score while 'days since the last A&E "
            "attendance for injury in the household' lowers it: the model reads them together, so for the same days "
            "since the last A&E attendance for injury in the household, more days since the last A&E attendance for "
            "injury raises the score; the push up is that comparison, not a sign that a longer time since the event "
            "is itself a concern."
        ),
    }]


def test_the_model_card_and_limitations_state_the_as_of_dates_the_model_learnt_from_not_the_matrix_range() -> None:
    # The trial borough: the matrix runs 2019-01-01..2025-10-01, but no model learnt from before 2020-04-01 (too
    # little history) and 2025-10-01's label is not yet known, so neither end was trained or tested on.
    split_plan = {
        "splits": [{"name": "split_1", "fit": ["2020-04-01", "2023-10-01"], "calibration": ["2024-01-01"],
                    "validation": ["2024-04-01"], "test": ["2025-01-01"]}],
        "final": {"name": "final", "is_final": True, "fit": ["2021-07-01", "2025-01-01"],
                  "calibration": ["2025-04-01"], "validation": ["2025-07-01"], "test": []},
    }
    audit = build_audit(
        config=load_config(REPO / "conf" / "borough.yaml"),
        model={"name": "m", "version": "1", "run_id": "run"},
        predictions=_frame(),
        metrics={"summary": {}, "splits": [], "split_plan": split_plan,
                 "success_criterion": {"metric": "precision_at_capacity", "threshold": 0.65}},
        feature_metadata={"feature_columns": [RECENT["name"]], "features": [RECENT],
                          "as_of_dates": ["2019-01-01", "2025-01-01", "2025-10-01"], "extract_date": "2026-01-01"},
        explain_sample=_frame().assign(**{RECENT["name"]: 1.0}),
        contributions=np.zeros((2000, 2)),
        approval=None,
    )
    assert audit["data"]["period"] == {
        "first_as_of": "2019-01-01", "last_as_of": "2025-10-01", "extract_date": "2026-01-01",
        "trained_from": "2020-04-01", "trained_to": "2025-07-01", "tested_from": "2025-01-01",
        "tested_to": "2025-01-01",
    }
    assert "as-of dates 2020-04-01 to 2025-07-01; extract date 2026-01-01." in _card(audit, "Training data")
    assert audit["limitations"][1].startswith(
        "The model was trained on as-of dates from 2020-04-01 to 2025-07-01 and tested on 2025-01-01 "
        "with data extracted on 2026-01-01;"
    )
    html = html_lib.unescape(render_audit_html(audit))
    assert ("Prevalence is blank where the label is not yet known (its horizon passes the extract date) or where "
            "between 1 and 9 residents escalated (small numbers).") in html
