"""Give person and address records a UPRN from the council's gazetteer, without Splink.

Matching runs in order and the first hit wins: (1) the record's own UPRN when the gazetteer has it;
(2) the address's bag of tokens plus postcode; (3) the bag of tokens alone; (4) the house and flat
numbers plus postcode. A key that points at more than one gazetteer address is ambiguous and never
used. The bag of tokens (accents folded as in names, upper case, abbreviations expanded, "12C" split into "12 C", the words
FLAT/APARTMENT/UNIT dropped, sorted, duplicates removed) makes "Flat 3, 12 High St" and
"12 High Street Flat 3" one key. Unmatched addresses keep a keyed hash of their tokens, so people at
the same unmatched address still share a household.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from earlysignal.linkage.folding import fold_accents

# Common English street-address abbreviations (a property of the language, not of one borough).
_ABBREVIATIONS = {
    "RD": "ROAD", "ST": "STREET", "AVE": "AVENUE", "AV": "AVENUE", "LN": "LANE", "CT": "COURT",
    "CL": "CLOSE", "DR": "DRIVE", "GDNS": "GARDENS", "GRN": "GREEN", "PL": "PLACE", "SQ": "SQUARE",
    "TER": "TERRACE", "TERR": "TERRACE", "CRES": "CRESCENT", "HSE": "HOUSE", "APT": "FLAT",
    "APARTMENT": "FLAT", "FLT": "FLAT", "RM": "ROOM", "WY": "WAY", "PK": "PARK", "EST": "ESTATE",
}
_DROP = {"FLAT", "UNIT", "THE", "ROOM"}
_SPLIT_NUMBER_LETTER = re.compile(r"(\d)([A-Z])\b")
_NON_ALNUM = re.compile(r"[^A-Z0-9]+")
_POSTCODE_IN_TEXT = re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}\b")


def normalise_postcode(values: pd.Series) -> pd.Series:
    """Upper case, no spaces ("e1 6an" -> "E16AN"); empty strings become null."""
    out = values.astype("string").str.upper().str.replace(r"[^A-Z0-9]", "", regex=True)
    return out.where(out.str.len() > 0)


def address_tokens(text: str | None) -> tuple[str, ...]:
    """Sorted distinct tokens of an address, abbreviations expanded, flat words dropped."""
    if text is None or pd.isna(text):
        return ()
    # Accents folded as names are ("Église" = "Eglise"); unfolded, "É" would split a word in two.
    upper = _POSTCODE_IN_TEXT.sub(" ", fold_accents(str(text)).upper())
    upper = _SPLIT_NUMBER_LETTER.sub(r"\1 \2", upper)
    tokens = {_ABBREVIATIONS.get(t, t) for t in _NON_ALNUM.split(upper) if t}
    return tuple(sorted(tokens - _DROP))


def _partition(tokens: list[tuple[str, ...]]) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """Per address, its unit tokens and its word tokens, each in token order. Units are house/flat numbers
    and single letters (flat B, 12C): they identify a dwelling, words do not.

    Split once per address: every key and candidate score below reads these (at 250k residents this
    runs over a million addresses, so the split is not repeated per use)."""
    nums = [tuple(t for t in ts if t[0].isdigit() or len(t) == 1) for ts in tokens]
    words = [tuple(t for t in ts if not (t[0].isdigit() or len(t) == 1)) for ts in tokens]
    return nums, words


def _keys_from(tokens: list[tuple[str, ...]], nums: list[tuple[str, ...]], postcode: pd.Series,
               index: pd.Index) -> pd.DataFrame:
    """Match keys from address tokens (and their unit tokens): bag + postcode, bag, numbers + postcode."""
    bag = pd.Series([" ".join(t) if t else None for t in tokens], index=index, dtype="object")
    numbers = pd.Series([" ".join(n) or None for n in nums], index=index, dtype="object")
    pc = pd.Series(normalise_postcode(postcode).astype("object").to_numpy(), index=index)
    has_pc = pc.notna()
    return pd.DataFrame(
        {
            "bag_pc": (bag + "|" + pc).where(bag.notna() & has_pc),
            "bag": bag,
            "num_pc": (numbers + "|" + pc).where(numbers.notna() & has_pc),
        },
        index=index,
    )


KEY_ORDER: tuple[str, ...] = ("uprn", "bag_pc", "bag", "num_pc", "pc_tokens", "tokens")


def _best_candidate(rows: pd.DataFrame, candidates: pd.DataFrame, on: list[str], min_words: int) -> pd.Series:
    """Among gazetteer candidates sharing `on` with a record (record columns rid, on, nums, words;
    candidate columns on, nums_g, set_g, uprn), the one holding all of the record's numbers that shares the
    most words with it (then the fewest extra numbers); at least `min_words` shared words; unique best only.
    `nums` / `words` are a record's number and word tokens, `nums_g` / `set_g` a candidate's numbers and
    all its tokens (frozensets built once per address: scoring millions of pairs is set arithmetic only)."""
    if rows.empty:
        return pd.Series(dtype="string")
    pairs = rows.merge(candidates, on=on)
    if pairs.empty:
        return pd.Series(dtype="string")
    scores = np.fromiter(
        ((len(words & theirs) * 100 - len(their_n - mine_n)) if mine_n and mine_n <= their_n else -1
         for mine_n, words, their_n, theirs in zip(pairs["nums"].tolist(), pairs["words"].tolist(),
                                                   pairs["nums_g"].tolist(), pairs["set_g"].tolist())),
        dtype=np.int64, count=len(pairs))
    pairs["score"] = scores
    pairs = pairs[pairs["score"] >= max(min_words * 100 - 99, 1)]
    best = pairs.groupby("rid")["score"].transform("max")
    top = pairs[pairs["score"] == best]
    unique = top.groupby("rid")["uprn"].transform("nunique") == 1
    return top[unique].drop_duplicates("rid").set_index("rid")["uprn"].astype("string")


def _split_tokens(nums: list[tuple[str, ...]], words: list[tuple[str, ...]]
                  ) -> tuple[list[frozenset[str]], list[frozenset[str]]]:
    """Per address, its number tokens and its word tokens (as frozensets)."""
    return [frozenset(n) for n in nums], [frozenset(w) for w in words]


def match_addresses(records: pd.DataFrame, gazetteer: pd.DataFrame) -> pd.DataFrame:
    """UPRN for each record, matching each distinct (address_text, postcode, uprn) once; see _match."""
    columns = ["address_text", "postcode", "uprn"]
    keys = records[columns].astype("string").fillna("\x00")
    first = keys.groupby(columns, sort=False).ngroup()
    distinct = records.loc[~first.duplicated().to_numpy(), columns]
    result = _match(distinct.set_index(first[~first.duplicated()].to_numpy()), gazetteer)
    return result.reindex(first.to_numpy()).set_index(records.index)


def _match(records: pd.DataFrame, gazetteer: pd.DataFrame) -> pd.DataFrame:
    """UPRN for each record (columns address_text, postcode, uprn).

    Returns a frame on records' index with `matched_uprn` (string or null), `match_rule` (one of
    KEY_ORDER or "unmatched") and `address_key` (the token bag + postcode, for unmatched ones).
    """
    gaz = gazetteer.reset_index(drop=True)
    gaz_uprn = gaz["uprn"].astype("string")
    gaz_tokens_list = [address_tokens(t) for t in gaz["address_text"].astype("object").tolist()]
    gaz_unit_tokens, gaz_word_tokens = _partition(gaz_tokens_list)
    gkeys = _keys_from(gaz_tokens_list, gaz_unit_tokens, gaz["postcode"], gaz.index)
    matched = pd.Series(pd.NA, index=records.index, dtype="string")
    rule = pd.Series("unmatched", index=records.index, dtype="object")
    address_key = pd.Series(None, index=records.index, dtype="object")
    own = records["uprn"].astype("string")
    hit = own.notna() & own.isin(set(gaz_uprn.dropna()))
    matched[hit] = own[hit]
    rule[hit] = "uprn"
    rest = records.loc[~hit.to_numpy()]
    if rest.empty:
        return pd.DataFrame({"matched_uprn": matched, "match_rule": rule, "address_key": address_key})
    # Only records without a known UPRN are tokenised: most of a big borough's records have one.
    tokens = [address_tokens(t) for t in rest["address_text"].astype("object").tolist()]
    unit_tokens, word_tokens = _partition(tokens)
    rkeys = _keys_from(tokens, unit_tokens, rest["postcode"], rest.index)
    for key in KEY_ORDER[1:-2]:
        table = pd.DataFrame({"k": gkeys[key], "uprn": gaz_uprn}).dropna()
        counts = table.groupby("k")["uprn"].nunique()
        unique = table[table["k"].isin(counts.index[counts == 1])].drop_duplicates("k").set_index("k")["uprn"]
        todo = matched[rest.index].isna() & rkeys[key].notna()
        found = rkeys.loc[todo, key].map(unique)
        found = found[found.notna()]
        matched[found.index] = found.astype("string")
        rule[found.index] = key
    first_unit = pd.Series([n[0] if n else None for n in unit_tokens], index=rest.index, dtype="object")
    # The longest word of three letters or more (ties: the alphabetically last), as (length, word) tuples.
    longest_word = pd.Series(
        [max(((len(w), w) for w in ws if len(w) >= 3), default=(0, None))[1] for ws in word_tokens],
        index=rest.index, dtype="object")
    nums, words = _split_tokens(unit_tokens, word_tokens)
    rows = pd.DataFrame({"pc": normalise_postcode(rest["postcode"]).astype("object"), "unit": first_unit,
                         "word": longest_word, "nums": nums, "words": words}, index=rest.index)
    gaz_nums, gaz_words = _split_tokens(gaz_unit_tokens, gaz_word_tokens)
    gaz_rows = pd.DataFrame({"pc": normalise_postcode(gaz["postcode"]).astype("object"),
                             "set_g": [n | w for n, w in zip(gaz_nums, gaz_words)], "nums_g": gaz_nums,
                             "uprn": gaz_uprn, "unit": [sorted(n) for n in gaz_nums],
                             "word": [sorted(t for t in w if len(t) >= 3) for w in gaz_words]})
    gaz_rows = gaz_rows.dropna(subset=["uprn"]).explode("unit").dropna(subset=["unit"])
    # Within the postcode: candidates hold the record's first house/flat number (a cheap, lossless block,
    # since a candidate must hold all the record's numbers).
    todo = matched[rest.index].isna() & rows["pc"].notna() & rows["unit"].notna()
    found = _best_candidate(rows.loc[todo, ["pc", "unit", "nums", "words"]].reset_index(names="rid"),
                            gaz_rows.dropna(subset=["pc"])[["pc", "unit", "nums_g", "set_g", "uprn"]], ["pc", "unit"],
                            min_words=1)
    matched[found.index] = found
    rule[found.index] = "pc_tokens"
    # No postcode (or a wrong one): candidates hold the record's first number and its longest word.
    todo = matched[rest.index].isna() & rows["unit"].notna() & rows["word"].notna()
    by_word = gaz_rows.explode("word").dropna(subset=["word"])[["unit", "word", "nums_g", "set_g", "uprn"]]
    found = _best_candidate(rows.loc[todo, ["unit", "word", "nums", "words"]].reset_index(names="rid"), by_word,
                            ["unit", "word"], min_words=2)
    matched[found.index] = found
    rule[found.index] = "tokens"
    address_key[rest.index] = rkeys["bag_pc"].where(rkeys["bag_pc"].notna(), rkeys["bag"])
    return pd.DataFrame({"matched_uprn": matched, "match_rule": rule, "address_key": address_key})


def match_rates(rules: pd.Series, weights: pd.Series | np.ndarray | None = None) -> dict[str, float | int]:
    """Counts per rule and the matched share (records with any address text, postcode or UPRN).

    `weights`: how many records each row stands for (default one each).
    """
    if weights is None:
        weights = np.ones(len(rules), dtype=np.int64)
    by_rule = pd.Series(np.asarray(weights, dtype=np.int64), index=rules.index).groupby(rules.to_numpy()).sum()
    counts = {str(k): int(v) for k, v in by_rule.sort_index().items()}
    total = int(np.asarray(weights).sum())
    matched = total - counts.get("unmatched", 0)
    return {"records": total, "matched": matched, "match_rate": round(matched / total, 4) if total else float("nan"),
            "by_rule": counts}


def gazetteer_tenure(gazetteer: pd.DataFrame, codes: dict[str, str], default: str) -> pd.Series:
    """Contract tenure per gazetteer UPRN: `codes` maps the gazetteer's tenure; others get `default`."""
    uprn = gazetteer["uprn"].astype("string")
    if "tenure" in gazetteer.columns:
        raw = gazetteer["tenure"].astype("object")
        mapped = raw.map(lambda v: codes.get(str(v), codes.get(str(v).strip().lower())) if not pd.isna(v) else None)
    else:
        mapped = pd.Series([None] * len(gazetteer), dtype="object")
    values = np.where(pd.isna(mapped), default, mapped)
    return pd.Series(values, index=uprn.values, dtype="object")
