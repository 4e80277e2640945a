"""What a real council's extracts do differently from the synthetic ones: accented names, rule names
carried to the linked events, encodings (docs/ingest-and-link.md)."""

from __future__ import annotations

import pandas as pd

from earlysignal.linkage.people import standardise


def _records(first: list[str], last: list[str]) -> pd.DataFrame:
    n = len(first)
    return pd.DataFrame({
        "source": ["police"] * n, "record_id": [str(i) for i in range(n)], "source_person_id": [None] * n,
        "first_name": first, "middle_name": [None] * n, "last_name": last, "birth_date": ["2001-02-03"] * n,
        "sex": ["F"] * n, "postcode": ["N19 5DJ"] * n, "uprn": [None] * n,
    })


def test_accented_names_standardise_to_the_same_letters_as_their_unaccented_spelling() -> None:
    records = _records(["Zoë", "José", "Chloé", "Łukasz", "Søren"], ["Brontë", "Núñez", "O'Brien", "Straße", "Ærø"])
    out = standardise(records, {"F": "F"})
    assert out["first_name"].tolist() == ["zoe", "jose", "chloe", "lukasz", "soren"]
    assert out["last_name"].tolist() == ["bronte", "nunez", "obrien", "strasse", "aero"]
    assert out["full_name"].tolist()[0] == "zoe bronte"
