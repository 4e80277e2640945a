"""The audit report's fixed wording speaks about the configured data, not the synthetic borough's children."""

from __future__ import annotations

import re
from pathlib import Path

from earlysignal.audit.assemble import _limitations, _model_card
from earlysignal.config import load_config

ROOT = Path(__file__).resolve().parents[1]
MODEL = {"name": "m", "version": 1, "run_id": "r"}
CRITERION = {"metric": "roc_auc", "threshold": 0.7}


def _ethics(config) -> str:
    card = _model_card(config, MODEL, {}, CRITERION)
    return next(item["text"] for item in card if item["title"] == "Ethical considerations")


def test_model_card_of_a_resident_only_model_says_nothing_of_household_features_or_children() -> None:
    config = load_config(ROOT / "examples" / "pbcseq" / "config.yaml")  # one scope: resident
    ethics = _ethics(config)
    assert "household" not in ethics and "address" not in ethics
    words = " ".join([ethics, *_limitations(config, {})])
    assert re.search(r"\bchild(ren)?\b", words) is None
    assert "people who were harmed but never reached services count as negatives" in words


def test_model_card_of_a_model_with_household_features_warns_they_attach_others_histories() -> None:
    config = load_config(ROOT / "conf" / "borough.yaml")  # household and address scopes
    assert "household- and address-level features attach others' histories to a person" in _ethics(config)


def test_audit_names_the_cohort_entry_by_its_dictionary_label_not_its_column_name(tmp_path) -> None:
    from earlysignal.audit.assemble import cohort_words

    config = load_config(ROOT / "examples" / "pbcseq" / "config.yaml")
    raw = (ROOT / "examples" / "pbcseq" / "dictionary.yaml").read_text(encoding="utf-8")
    (tmp_path / "dictionary.yaml").write_text(
        raw.replace("follow_up_end: {kind: date,", "entered: {kind: date, label: date of study entry}\n  follow_up_end: {kind: date,"),
        encoding="utf-8")
    config = config.model_copy(update={
        "dictionary": str(tmp_path / "dictionary.yaml"),
        "cohort": config.cohort.model_copy(update={"entry_column": "entered"})})
    assert cohort_words(config) == "residents whose date of study entry had passed at each as-of date"
    limitations = " ".join(_limitations(config, {}))
    assert "(residents whose date of study entry had passed at each as-of date)" in limitations
