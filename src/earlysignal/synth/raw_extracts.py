"""Raw departmental extracts of the synthetic borough: what each service's own system would export.

Built from the borough already written in the data contract (residents, residency, events, outcomes and
ground truth), so the raw files describe the same world: every raw record comes from a true person,
household, address, event or outcome, recorded the way that system records it. Systems have their own
record IDs and no shared person ID; names carry nicknames, spelling variants, typos, married-name
changes and swapped first/last names; dates of birth carry typos, day/month swaps and the 1900-01-01
placeholder; addresses are text in each system's format with a UPRN only where that system holds one.
Repairs are job rows with SOR-style codes, trades, priorities and operatives' free text, including the
confounders a real council has (sanctuary works for known victims, voids, planned works, communal door
entry, cancelled jobs). The truth behind every raw record goes to `ground_truth/raw_records.parquet` and
`ground_truth/addresses.parquet` only. See docs/synthetic-borough.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from earlysignal.atomic import write_csv, write_json, write_parquet
from earlysignal.synth import names as N
from earlysignal.synth.identity_noise import DisagreementRates, IdentityNoise, planted_label

RAW_DIR = "raw"
# What a builder yields per raw file: (file name, the raw rows, the truth behind each row).
Extracts = Iterator[tuple[str, pd.DataFrame, pd.DataFrame]]
PLACEHOLDER_BIRTH = "1900-01-01"
ETHNICITY_ORDER = ("White", "Asian", "Black", "Mixed", "Other")
# Raw ethnicity codes per system family, per true group (several codes each: systems record detail).
DFE_ETHNICITY = {"White": ("WBRI", "WIRI", "WOTH"), "Asian": ("AIND", "APKN", "ABAN"), "Black": ("BAFR", "BCRB"),
                 "Mixed": ("MWBC", "MWBA", "MWAS"), "Other": ("OOTH", "OTUR"), None: ("REFU", "NOBT")}
NHS_ETHNICITY = {"White": ("A", "B", "C"), "Asian": ("H", "J", "K"), "Black": ("M", "N"),
                 "Mixed": ("D", "E", "F"), "Other": ("S",), None: ("Z", "99")}


@dataclass(frozen=True)
class Style:
    """How one system records people: noise rates (per person registered, or per record) and formats."""

    nickname: float = 0.03
    spelling: float = 0.04
    typo: float = 0.02
    swap: float = 0.005
    maiden: float = 0.1
    dob_typo: float = 0.005
    dob_swap: float = 0.005
    dob_placeholder: float = 0.0
    dob_missing: float = 0.0
    postcode_missing: float = 0.02
    per_record: bool = False  # no person register: every record is keyed afresh (police, A&E)
    address: str = "lines"
    date_format: str = "%d/%m/%Y"
    upper: bool = False


STYLES: dict[str, Style] = {
    "school": Style(nickname=0.01, spelling=0.02, typo=0.01, swap=0.002, maiden=0.0, date_format="%Y-%m-%d"),
    "police": Style(nickname=0.15, spelling=0.08, typo=0.05, swap=0.03, maiden=0.2, dob_typo=0.03,
                    dob_swap=0.03, dob_placeholder=0.02, dob_missing=0.03, postcode_missing=0.15, per_record=True,
                    address="police", upper=True),
    "social_care": Style(nickname=0.05, spelling=0.04, typo=0.02, swap=0.01, maiden=0.15, dob_swap=0.01,
                         dob_placeholder=0.01),
    "early_help": Style(nickname=0.08, spelling=0.05, typo=0.03, swap=0.01, maiden=0.15, dob_placeholder=0.02,
                        dob_missing=0.02, postcode_missing=0.05),
    "homelessness": Style(nickname=0.05, spelling=0.04, typo=0.03, swap=0.01, maiden=0.3, dob_placeholder=0.01),
    "council_tax": Style(nickname=0.10, spelling=0.03, typo=0.02, swap=0.01, maiden=0.25, dob_missing=1.0,
                         address="ctax", upper=True),
    "benefits": Style(nickname=0.02, spelling=0.03, typo=0.01, swap=0.005, maiden=0.2, dob_swap=0.003,
                      date_format="%Y-%m-%d"),
    "ae": Style(per_record=True, dob_typo=0.01, dob_swap=0.005, postcode_missing=0.05, address="none",
                date_format="%Y-%m-%d"),
}


def write_raw_extracts(out_dir: Path, seed: int, disagreements: DisagreementRates | None = None) -> dict[str, int]:
    """Write `<out_dir>/raw/` from the borough in `out_dir`; returns rows written per raw file.

    Reads residents, residency, events, outcomes and ground_truth/ (as written by `generate_borough`);
    writes raw CSVs, the `addressbase` gazetteer, and ground_truth/raw_records.parquet (source,
    record_id -> resident, household, address, true event or outcome), ground_truth/addresses.parquet
    (address_id -> UPRN) and ground_truth/identities.parquet (true names, birth dates, NHS numbers, UPNs).
    `disagreements`: the planted sex / NHS-number / UPN disagreements (identity_noise.py; default
    DisagreementRates()); each changed record is flagged in raw_records.parquet's `planted_disagreement`.
    Deterministic in `seed` and the borough.
    """
    out_dir = Path(out_dir)
    streams = np.random.SeedSequence([seed, 20261]).spawn(6)
    rng_addr, rng_people, rng_noise, rng_repairs, rng_ids = (np.random.default_rng(s) for s in streams[:5])
    residents = pd.read_parquet(out_dir / "residents.parquet")
    residency = pd.read_parquet(out_dir / "residency.parquet")
    events = pd.read_parquet(out_dir / "events.parquet")
    outcomes = pd.read_parquet(out_dir / "outcomes.parquet")
    truth_people = pd.read_parquet(out_dir / "ground_truth" / "people.parquet")
    borough = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))

    book, blocks = _address_book(rng_addr, residency)
    people = _identities(rng_people, residents, residency, truth_people)
    raw = out_dir / RAW_DIR
    counts: dict[str, int] = {}
    truth_rows: list[pd.DataFrame] = []

    def emit(source: str, name: str, frame: pd.DataFrame, truth: pd.DataFrame) -> None:
        write_csv(frame, raw / source / f"{name}.csv")
        counts[f"{source}/{name}"] = len(frame)
        truth = truth.assign(source=source, file=f"{source}/{name}.csv")
        truth_rows.append(truth)

    gazetteer = _gazetteer(book, blocks)
    write_csv(gazetteer, raw / "addressbase" / "addressbase.csv")
    counts["addressbase/addressbase"] = len(gazetteer)

    events = _with_home(events, residency)
    # Planted disagreements draw from a stream of their own, so every other value stays as it was.
    rng_identity = np.random.default_rng(np.random.SeedSequence([seed, 20261, 22]))
    school = events[events["source"] == "school"]
    noise = IdentityNoise(rng_identity, people, school.groupby("resident_id")["event_time"].min(),
                          pd.Timestamp(borough["window_start"]), pd.Timestamp(borough["extract_date"]),
                          disagreements if disagreements is not None else DisagreementRates())
    ctx = _Context(book, blocks, people, rng_noise, rng_ids, noise)
    for source, builder in (
        ("school", _school), ("police", _police), ("social_care", _social_care), ("early_help", _early_help),
        ("homelessness", _homelessness), ("council_tax", _council_tax), ("benefits", _benefits), ("ae", _ae),
        ("fire", _fire), ("asb", _asb),
    ):
        for name, frame, truth in builder(ctx, events, outcomes, residency):
            emit(source, name, frame, truth)
    for name, frame, truth in _repairs(ctx, rng_repairs, events, residency):
        emit("housing_repairs", name, frame, truth)

    columns = ["source", "file", "record_id", "resident_id", "household_id", "address_id", "event_id", "truth"]
    truth_all = pd.concat([t.reindex(columns=[*columns, "known_at", "planted_disagreement"]) for t in truth_rows],
                          ignore_index=True)
    for col in [*columns, "planted_disagreement"]:
        truth_all[col] = truth_all[col].astype("string")
    truth_all["known_at"] = pd.to_datetime(truth_all["known_at"]).astype("datetime64[us]")
    write_parquet(truth_all, out_dir / "ground_truth" / "raw_records.parquet")
    identities = people.reset_index()[["resident_id", "first_name", "middle_name", "last_name", "maiden_name",
                                       "birth_date", "sex", "nhs_number", "upn"]]
    write_parquet(identities, out_dir / "ground_truth" / "identities.parquet")
    write_json({"extract_date": borough["extract_date"], "window_start": borough["window_start"],
                "files": counts, "generator": {"name": "earlysignal.synth.raw_extracts", "seed": seed}},
               raw / "manifest.json")
    write_parquet(book[["address_id", "uprn", "parent_uprn", "postcode", "tenure"]].assign(
        uprn=lambda f: f["uprn"].astype("string"), parent_uprn=lambda f: f["parent_uprn"].astype("string")),
        out_dir / "ground_truth" / "addresses.parquet")
    return counts


# --------------------------------------------------------------------------------------------
# Places
# --------------------------------------------------------------------------------------------


def _address_book(rng: np.random.Generator, residency: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per address: UPRN, block (parent) UPRN, flat, number, building, street, postcode, tenure."""
    first = residency.sort_values(["address_id", "start_date"]).drop_duplicates("address_id")
    book = first[["address_id", "tenure"]].sort_values("address_id").reset_index(drop=True)
    n = len(book)
    social = book["tenure"].isin(["council", "housing_association"]).to_numpy()
    streets = [f"{w} {t}" for w in N.STREET_WORDS for t in N.STREET_TYPES]
    streets = [streets[i] for i in rng.permutation(len(streets))[: max(20, min(len(streets), n // 40 + 1))]]
    street = rng.integers(0, len(streets), n)
    flat = np.full(n, "", dtype=object)
    building = np.full(n, "", dtype=object)
    number = rng.integers(1, 220, n)
    block_key = np.full(n, -1)
    # Social housing: flats in named blocks of ~30; private: houses, or converted flats A/B/C.
    idx = np.flatnonzero(social)
    n_blocks = max(1, len(idx) // 30)
    block_of = rng.integers(0, n_blocks, len(idx))
    block_names = [f"{N.STREET_WORDS[int(rng.integers(0, len(N.STREET_WORDS)))]} "
                   f"{N.BLOCK_TYPES[int(rng.integers(0, len(N.BLOCK_TYPES)))]}" for _ in range(n_blocks)]
    block_street = rng.integers(0, len(streets), n_blocks)
    block_number = rng.integers(1, 220, n_blocks)
    order = np.lexsort((idx, block_of))
    flat_no = np.zeros(len(idx), dtype=np.int64)
    counts: dict[int, int] = {}
    for k in order:
        counts[int(block_of[k])] = counts.get(int(block_of[k]), 0) + 1
        flat_no[k] = counts[int(block_of[k])]
    flat[idx] = [str(v) for v in flat_no]
    building[idx] = [block_names[b] for b in block_of]
    street[idx] = block_street[block_of]
    number[idx] = block_number[block_of]
    block_key[idx] = block_of
    private = np.flatnonzero(~social)
    converted = private[rng.random(len(private)) < 0.35]
    flat[converted] = np.array(list("ABC"))[rng.integers(0, 3, len(converted))]
    book["flat"] = flat
    book["building"] = building
    book["number"] = number
    book["street"] = [streets[s] for s in street]
    # A postcode covers a stretch of ~20 numbers of one street.
    pc_key = street * 1000 + number // 20
    uniq, inv = np.unique(pc_key, return_inverse=True)
    outward = np.array(N.OUTWARD_CODES)[rng.integers(0, len(N.OUTWARD_CODES), len(uniq))]
    letters = np.array(list("ABDEFGHJLNPQRSTUWXYZ"))
    inward = [f"{rng.integers(1, 10)}{letters[rng.integers(0, 20)]}{letters[rng.integers(0, 20)]}"
              for _ in range(len(uniq))]
    book["postcode"] = [f"{outward[i]} {inward[i]}" for i in inv]
    uprns = 5000000000 + rng.permutation(n + n_blocks + 1000)[: n + n_blocks] * 37 + 11
    book["uprn"] = uprns[:n].astype(np.int64)
    block_uprn = uprns[n:].astype(np.int64)
    book["parent_uprn"] = pd.array(np.where(block_key >= 0, block_uprn[np.maximum(block_key, 0)], 0), "Int64")
    book.loc[block_key < 0, "parent_uprn"] = pd.NA
    book["block"] = block_key
    book["property_ref"] = [f"PR{v:07d}" for v in rng.permutation(n) + 1]
    blocks = pd.DataFrame({
        "block": np.arange(n_blocks), "uprn": block_uprn, "building": block_names,
        "street": [streets[s] for s in block_street], "number": block_number,
        "property_ref": [f"BL{v:05d}" for v in np.arange(1, n_blocks + 1)],
    })
    pcs = book[book["block"] >= 0].drop_duplicates("block").set_index("block")["postcode"]
    blocks["postcode"] = blocks["block"].map(pcs).fillna("")
    return book, blocks


def _gazetteer(book: pd.DataFrame, blocks: pd.DataFrame) -> pd.DataFrame:
    """The addressbase extract: dwellings and block shells, canonical upper-case text, stock tenure."""
    text = [_format_address(r, "gazetteer") for r in book.itertuples()]
    housing = book["tenure"].map({"council": "COUNCIL", "housing_association": "HOUSING ASSOCIATION"})
    dwellings = pd.DataFrame({
        "UPRN": book["uprn"].astype(str),
        "PARENT_UPRN": book["parent_uprn"].astype("string"),
        "ADDRESS": text,
        "POSTCODE": book["postcode"],
        "CLASS": np.where(book["flat"] != "", "RD06", "RD04"),
        "HOUSING_STOCK_TENURE": housing,
    })
    shells = pd.DataFrame({
        "UPRN": blocks["uprn"].astype(str),
        "PARENT_UPRN": pd.array([pd.NA] * len(blocks), "string"),
        "ADDRESS": [f"{b.building}, {b.number} {b.street}".upper() for b in blocks.itertuples()],
        "POSTCODE": blocks["postcode"],
        "CLASS": "PP",
        "HOUSING_STOCK_TENURE": pd.NA,
    })
    return pd.concat([dwellings, shells], ignore_index=True).sort_values("UPRN").reset_index(drop=True)


def _abbreviate(text: str) -> str:
    words = text.split(" ")
    return " ".join(N.ABBREVIATIONS.get(w, w) for w in words)


def _format_address(r: object, style: str, variant: float = 0.0) -> str:
    """Address text as one system writes it; `variant` in [0, 1) picks a flat-numbering variant."""
    flat, building, street = r.flat, r.building, r.street  # type: ignore[attr-defined]
    number = int(r.number)  # type: ignore[attr-defined]
    if style == "gazetteer":
        if building:
            return f"FLAT {flat}, {building}, {number} {street}".upper()
        if flat:
            return f"FLAT {flat}, {number} {street}".upper()
        return f"{number} {street}".upper()
    if building:
        if variant < 0.4:
            head = f"Flat {flat}, {building}"
        elif variant < 0.8:
            head = f"{flat} {building}"
        else:
            head = f"Flat {flat} {building}, {number}"
        line = f"{head}, {street}"
    elif flat:
        line = f"Flat {flat}, {number} {street}" if variant < 0.5 else f"{number}{flat} {street}"
    else:
        line = f"{number} {street}"
    if style == "police":
        return _abbreviate(line).upper()
    if style == "ctax":
        return (line + ", London").upper()
    if style == "housing":
        return line.replace("Flat ", "") if variant < 0.5 else line
    return line + ", London"


# --------------------------------------------------------------------------------------------
# People
# --------------------------------------------------------------------------------------------


def _identities(rng: np.random.Generator, residents: pd.DataFrame, residency: pd.DataFrame,
                truth_people: pd.DataFrame) -> pd.DataFrame:
    """True names, sex, ethnicity, NHS number and UPN per resident (indexed by resident_id)."""
    people = residents[["resident_id", "birth_date", "sex"]].merge(
        truth_people[["resident_id", "ethnicity"]], on="resident_id", how="left").set_index("resident_id")
    recorded = residents.set_index("resident_id")["ethnicity"]
    people["ethnicity_recorded"] = recorded
    group = people["ethnicity"].map({g: i for i, g in enumerate(ETHNICITY_ORDER)}).fillna(0).astype(int).to_numpy()
    female = (people["sex"] == "F").to_numpy()
    n = len(people)
    u = rng.random(n)
    first = [(N.FEMALE_NAMES if f else N.MALE_NAMES)[g][int(x * len((N.FEMALE_NAMES if f else N.MALE_NAMES)[g]))]
             for f, g, x in zip(female, group, u, strict=True)]
    people["first_name"] = first
    has_middle = rng.random(n) < 0.3
    middle = rng.integers(0, len(N.MIDDLE_NAMES), n)
    people["middle_name"] = [N.MIDDLE_NAMES[m] if h else "" for h, m in zip(has_middle, middle, strict=True)]
    # Family surname: each person takes the surname of their first household's first member.
    first_home = residency.sort_values(["resident_id", "start_date"]).drop_duplicates("resident_id")
    home_of = first_home.set_index("resident_id")["household_id"].reindex(people.index)
    head = first_home.sort_values(["household_id", "start_date", "resident_id"]).drop_duplicates("household_id")
    head_group = pd.Series(group, index=people.index).reindex(head["resident_id"]).to_numpy()
    su = rng.random(len(head))
    family = {h: N.SURNAMES[g][int(x * len(N.SURNAMES[g]))]
              for h, g, x in zip(head["household_id"], head_group, su, strict=True)}
    own = [N.SURNAMES[g][int(x * len(N.SURNAMES[g]))] for g, x in zip(group, rng.random(n), strict=True)]
    people["last_name"] = [family.get(h, o) if isinstance(h, str) else o for h, o in zip(home_of, own, strict=True)]
    age_2020 = (pd.Timestamp("2020-01-01") - pd.to_datetime(people["birth_date"])).dt.days / 365.25
    married = female & (age_2020.to_numpy() > 22) & (rng.random(n) < 0.35)
    people["maiden_name"] = np.where(married, own, "")
    people.loc[people["maiden_name"] == people["last_name"], "maiden_name"] = ""
    people["nhs_number"] = _nhs_numbers(rng, n)
    people["upn"] = [f"{'ABCDEFGHJKLMNPQRTUVWXYZ'[int(a)]}202{b:09d}" for a, b in
                     zip(rng.integers(0, 23, n), rng.permutation(n) * 7919 % 10**9, strict=True)]
    return people


def _nhs_numbers(rng: np.random.Generator, n: int) -> list[str]:
    """Ten-digit NHS numbers with a valid modulus-11 check digit, all distinct."""
    out: list[str] = []
    seen: set[str] = set()
    weights = np.arange(10, 1, -1)
    while len(out) < n:
        digits = rng.integers(0, 10, (n, 9))
        digits[:, 0] = rng.integers(4, 10, n)
        check = 11 - (digits @ weights) % 11
        check = np.where(check == 11, 0, check)
        for row, c in zip(digits, check, strict=True):
            if c == 10:
                continue
            s = "".join(map(str, row)) + str(int(c))
            if s not in seen:
                seen.add(s)
                out.append(s)
                if len(out) == n:
                    break
    return out


def _with_home(events: pd.DataFrame, residency: pd.DataFrame) -> pd.DataFrame:
    """Events with `home` (address_id of the person, or of the event) and `household_id` at event time."""
    con = duckdb.connect()
    con.register("e", events)
    con.register("r", residency)
    frame = con.execute(
        """
        select e.*, coalesce(e.address_id, r.address_id) as home, r.household_id
        from e left join r on e.resident_id = r.resident_id and cast(e.event_time as date) >= r.start_date
            and (r.end_date is null or cast(e.event_time as date) < r.end_date)
        order by e.event_id
        """
    ).df()
    con.close()
    frame = frame.drop_duplicates("event_id").reset_index(drop=True)
    # A person event with no spell covering it (a monthly record of a pupil who moved in that month)
    # takes the person's spell starting nearest in time.
    lost = frame["home"].isna() & frame["resident_id"].notna()
    if lost.any():
        left = frame.loc[lost, ["resident_id", "event_time"]].reset_index()
        left["day"] = left["event_time"].astype("datetime64[us]").dt.normalize()
        right = residency[["resident_id", "start_date", "address_id", "household_id"]].copy()
        right["day"] = pd.to_datetime(right["start_date"]).astype("datetime64[us]")
        near = pd.merge_asof(left.sort_values("day"), right.sort_values("day"), on="day", by="resident_id",
                             direction="nearest").set_index("index")
        frame.loc[near.index, "home"] = near["address_id"]
        frame.loc[near.index, "household_id"] = near["household_id"]
    return frame.drop_duplicates("event_id").reset_index(drop=True)


class _Context:
    """Shared state for the builders: address book, identities, noise and ID streams."""

    def __init__(self, book: pd.DataFrame, blocks: pd.DataFrame, people: pd.DataFrame, rng: np.random.Generator,
                 rng_ids: np.random.Generator, noise: IdentityNoise) -> None:
        self.book = book.set_index("address_id")
        self.position = pd.Series(np.arange(len(self.book), dtype=float), index=self.book.index)
        self._cache: dict[str, np.ndarray] = {}
        self.blocks = blocks
        self.people = people
        self.rng = rng
        self.rng_ids = rng_ids
        self.noise = noise

    def ids(self, prefix: str, n: int, width: int = 8) -> list[str]:
        """Distinct system record IDs in a shuffled order."""
        numbers = self.rng_ids.permutation(n) + 1 + int(self.rng_ids.integers(1000, 90000))
        return [f"{prefix}{v:0{width}d}" for v in numbers]

    def persons(self, source: str, resident_ids: pd.Series, homes: pd.Series) -> pd.DataFrame:
        """Person fields as `source` records them, one row per record (index aligned with the inputs)."""
        style = STYLES[source]
        rng = self.rng
        rid = resident_ids.to_numpy()
        if style.per_record:
            keys = np.arange(len(rid))
            who = rid
        else:
            who, keys = np.unique(rid, return_inverse=True)
        base = self.people.reindex(who)
        m = len(who)
        first = base["first_name"].to_numpy(dtype=object).copy()
        last = base["last_name"].to_numpy(dtype=object).copy()
        middle = base["middle_name"].to_numpy(dtype=object).copy()
        maiden = base["maiden_name"].to_numpy(dtype=object)
        u = rng.random((m, 10))
        for i in np.flatnonzero(u[:, 0] < style.nickname):
            first[i] = N.informal(rng, first[i])
        for i in np.flatnonzero(u[:, 1] < style.spelling):
            first[i] = N.respell(rng, first[i])
        for i in np.flatnonzero(u[:, 2] < style.spelling):
            last[i] = N.respell(rng, last[i])
        for i in np.flatnonzero((u[:, 3] < style.maiden) & (maiden != "")):
            last[i] = maiden[i]
        for i in np.flatnonzero(u[:, 4] < style.typo):
            if u[i, 9] < 0.5:
                first[i] = N.typo(rng, first[i])
            else:
                last[i] = N.typo(rng, last[i])
        swap = u[:, 5] < style.swap
        first[swap], last[swap] = last[swap], first[swap].copy()
        dob = pd.to_datetime(base["birth_date"]).to_numpy(dtype="datetime64[D]")
        dob_text = _noisy_dates(rng, dob, u[:, 6], u[:, 7], style)
        dob_text = np.where(u[:, 8] < style.dob_placeholder, "1900-01-01", dob_text).astype(object)
        dob_text[rng.random(m) < style.dob_missing] = ""
        shown = np.array([_reformat(d, style.date_format) for d in dob_text], dtype=object)
        out = pd.DataFrame({
            "first_name": first[keys], "middle_name": middle[keys], "last_name": last[keys],
            "birth_date": shown[keys],
            "sex": base["sex"].to_numpy()[keys], "ethnicity": base["ethnicity_recorded"].to_numpy()[keys],
            "nhs_number": base["nhs_number"].to_numpy()[keys], "upn": base["upn"].to_numpy()[keys],
        }, index=resident_ids.index)
        if style.upper:
            for col in ("first_name", "middle_name", "last_name"):
                out[col] = out[col].str.upper()
        address = self.addresses(style.address, homes)
        return pd.concat([out, address], axis=1)

    def addresses(self, style: str, homes: pd.Series) -> pd.DataFrame:
        """Address text and postcode of each address_id in `style` (missing postcodes at the style's rate)."""
        position = self.position.reindex(homes.to_numpy()).to_numpy()
        known = ~np.isnan(position)
        index = np.where(known, position, 0).astype(np.int64)
        variant = self.rng.random(len(homes))
        if style == "none":
            text = np.full(len(homes), "", dtype=object)
        else:
            table = self._variants(style)
            choice = (variant >= 0.4).astype(np.int64) + (variant >= 0.8)
            text = table[index, choice]
            text[~known] = ""
        book = self.book
        postcode = np.where(known, book["postcode"].to_numpy(dtype=object)[index], "").astype(object)
        rate = {"police": 0.15, "none": 0.05}.get(style, 0.02)
        postcode[self.rng.random(len(homes)) < rate] = ""
        if style == "police":
            postcode = np.where(variant < 0.5, [p.replace(" ", "") for p in postcode], postcode).astype(object)
        uprn = pd.array(np.where(known, book["uprn"].to_numpy()[index], 0), dtype="Int64")
        uprn[~known] = pd.NA
        prop = np.where(known, book["property_ref"].to_numpy(dtype=object)[index], None)
        return pd.DataFrame({"address": text, "postcode": postcode, "uprn": uprn, "property_ref": prop},
                            index=homes.index)

    def _variants(self, style: str) -> np.ndarray:
        """Every address written three ways in `style` (columns: flat-numbering variants), cached."""
        if style not in self._cache:
            rows = list(self.book.itertuples())
            self._cache[style] = np.array([[_format_address(r, style, v) for v in (0.2, 0.6, 0.9)] for r in rows],
                                          dtype=object).reshape(len(rows), 3)
        return self._cache[style]


def _noisy_dates(rng: np.random.Generator, dob: np.ndarray, u_typo: np.ndarray, u_swap: np.ndarray,
                 style: Style) -> np.ndarray:
    """ISO dates of birth with keying errors: a changed day or year digit, or day and month swapped."""
    text = np.datetime_as_string(dob, unit="D").astype(object)
    for i in np.flatnonzero(u_typo < style.dob_typo):
        y, mth, d = text[i].split("-")
        if rng.random() < 0.5:
            d = f"{min(28, max(1, int(d) + int(rng.choice([-1, 1, 10, -10])) )):02d}"
        else:
            y = str(int(y) + int(rng.choice([-1, 1, -10])))
        text[i] = f"{y}-{mth}-{d}"
    for i in np.flatnonzero(u_swap < style.dob_swap):
        y, mth, d = text[i].split("-")
        if int(d) <= 12 and d != mth:
            text[i] = f"{y}-{d}-{mth}"
    return text


def _reformat(iso: str, fmt: str) -> str:
    """An ISO date written in `fmt` (%Y, %m, %d only), textually: a keyed-in impossible date such as
    29 February of a non-leap year stays as the system holds it."""
    if not iso:
        return ""
    y, m, d = iso.split("-")
    return fmt.replace("%Y", y).replace("%m", m).replace("%d", d)


def _date_text(values: pd.Series, fmt: str) -> pd.Series:
    return pd.to_datetime(values).dt.strftime(fmt)


def _truth(record_ids: list[str] | pd.Series, frame: pd.DataFrame, truth: pd.Series | str,
           planted: np.ndarray | None = None) -> pd.DataFrame:
    return pd.DataFrame({
        "record_id": list(record_ids),
        "resident_id": frame.get("resident_id"),
        "household_id": frame.get("household_id"),
        "address_id": frame.get("home", frame.get("address_id")),
        "event_id": frame.get("event_id"),
        "truth": truth if isinstance(truth, str) else truth.to_numpy(),
        # When the council's systems really knew the true event or outcome (tests check ingest's rules).
        "known_at": frame["known_at"].to_numpy() if "known_at" in frame else None,
        # Which identifying fields of this record were planted to disagree with the true ones (identity_noise.py).
        "planted_disagreement": planted,
    })


def _pick(events: pd.DataFrame, source: str) -> pd.DataFrame:
    return events[events["source"] == source].reset_index(drop=True)


def _outcome_home(outcomes: pd.DataFrame, residency: pd.DataFrame) -> pd.DataFrame:
    frame = outcomes.reset_index(drop=True).assign(event_time=outcomes["outcome_time"].to_numpy(),
                                                   event_id=None, address_id=None)
    frame["event_id"] = [f"O{i:08d}" for i in range(len(frame))]
    homed = _with_home(frame, residency)
    return homed


# --------------------------------------------------------------------------------------------
# Person-bearing sources
# --------------------------------------------------------------------------------------------


def _school(ctx: _Context, events: pd.DataFrame, outcomes: pd.DataFrame, residency: pd.DataFrame) -> Extracts:
    ev = _pick(events, "school")
    attendance = ev[ev["event_type"] == "absence"].reset_index(drop=True)
    p = ctx.persons("school", attendance["resident_id"], attendance["home"])
    sex, sex_changed = ctx.noise.sex("school", p["sex"], attendance["resident_id"], attendance["event_time"])
    upn, upn_changed = ctx.noise.upn("school", p["upn"], attendance["resident_id"], attendance["event_time"])
    ethnic = _codes(ctx.rng, DFE_ETHNICITY, p["ethnicity"])
    ids = ctx.ids("ATT", len(attendance), 9)
    frame = pd.DataFrame({
        "AttendanceRecordID": ids, "UPN": upn, "LegalForename": p["first_name"],
        "MiddleNames": p["middle_name"], "LegalSurname": p["last_name"], "DOB": p["birth_date"],
        "Gender": sex, "Ethnicity": ethnic, "AddressLine1": p["address"], "Postcode": p["postcode"],
        "Month": attendance["event_time"].dt.strftime("%Y-%m"),
        "SessionsPossible": 40, "SessionsMissed": attendance["value"].astype(int),
    })
    yield "attendance", frame, _truth(ids, attendance, "school/absence", planted_label(sex=sex_changed, upn=upn_changed))
    exc = ev[ev["event_type"] != "absence"].reset_index(drop=True)
    p = ctx.persons("school", exc["resident_id"], exc["home"])
    sex, sex_changed = ctx.noise.sex("school", p["sex"], exc["resident_id"], exc["event_time"])
    upn, upn_changed = ctx.noise.upn("school", p["upn"], exc["resident_id"], exc["event_time"])
    ids = ctx.ids("EXC", len(exc), 7)
    kind = np.where(exc["event_type"] == "permanent_exclusion", "PERM", "FIXD")
    frame = pd.DataFrame({
        "ExclusionID": ids, "UPN": upn, "LegalForename": p["first_name"], "LegalSurname": p["last_name"],
        "DOB": p["birth_date"], "Gender": sex, "AddressLine1": p["address"], "Postcode": p["postcode"],
        "Category": kind, "StartDate": exc["event_time"].dt.strftime("%Y-%m-%d"),
        "DateEntered": exc["known_at"].dt.strftime("%Y-%m-%d"),
        "Reason": ctx.rng.choice(["PA", "VA", "DB", "DM", "BU"], len(exc)),
    })
    yield "exclusions", frame, _truth(ids, exc, "school/" + exc["event_type"],
                                      planted_label(sex=sex_changed, upn=upn_changed))


def _codes(rng: np.random.Generator, table: dict, groups: pd.Series) -> np.ndarray:
    """A raw code per record for each true group (null group: the system's 'not obtained' codes)."""
    out = np.empty(len(groups), dtype=object)
    values = groups.to_numpy(dtype=object)
    missing = pd.isna(groups).to_numpy()
    draws = rng.random(len(groups))
    for group, options in table.items():
        hit = missing if group is None else (values == group) & ~missing
        out[hit] = np.asarray(options, dtype=object)[(draws[hit] * len(options)).astype(np.int64)]
    return out


def _police(ctx: _Context, events: pd.DataFrame, outcomes: pd.DataFrame, residency: pd.DataFrame) -> Extracts:
    ev = _pick(events, "police")
    p = ctx.persons("police", ev["resident_id"], ev["home"])
    sex, sex_changed = ctx.noise.sex("police", p["sex"], ev["resident_id"], ev["event_time"])
    category = np.select(
        [ev["event_type"] == "domestic_incident", ev["event_type"] == "missing_person"],
        [ctx.rng.choice(["DA", "DOM", "DV-NON-CRIME"], len(ev)), np.full(len(ev), "MISPER")],
        ctx.rng.choice(["CONCERN", "DISTURBANCE", "ASB-PERSONAL", "WELFARE"], len(ev)),
    )
    risk = np.where(ev["event_type"] == "domestic_incident",
                    ctx.rng.choice(["STANDARD", "MEDIUM", "HIGH"], len(ev), p=[0.6, 0.3, 0.1]), "")
    ids = ctx.ids("MET/", len(ev), 8)
    frame = pd.DataFrame({
        "PoliceRef": ids, "IncidentDateTime": ev["event_time"].dt.strftime("%d/%m/%Y %H:%M"),
        "NotifiedDate": ev["known_at"].dt.strftime("%d/%m/%Y"), "IncidentCategory": category, "DASHRisk": risk,
        "Forename": p["first_name"], "Surname": p["last_name"], "DOB": p["birth_date"],
        "Sex": sex.map({"F": "Female", "M": "Male"}), "Address": p["address"], "Postcode": p["postcode"],
    })
    yield "notifications", frame, _truth(ids, ev, "police/" + ev["event_type"], planted_label(sex=sex_changed))


def _social_care(ctx: _Context, events: pd.DataFrame, outcomes: pd.DataFrame, residency: pd.DataFrame) -> Extracts:
    ev = _pick(events, "social_care")
    care = outcomes[outcomes["outcome_type"].isin(
        ["csc_referral", "s47_enquiry", "child_protection_plan", "adult_safeguarding_concern"])]
    oc = _outcome_home(care, residency)
    everyone = pd.Index(sorted(set(ev["resident_id"]) | set(oc["resident_id"])))
    person_id = dict(zip(everyone, ctx.ids("", len(everyone), 7), strict=True))
    rng = ctx.rng
    p = ctx.persons("social_care", ev["resident_id"], ev["home"])
    sex, sex_changed = ctx.noise.sex("social_care", p["sex"], ev["resident_id"], ev["event_time"])
    restricted = rng.random(len(ev)) < 0.01
    ids = ctx.ids("C", len(ev), 8)
    frame = pd.DataFrame({
        "contact_id": ids, "mosaic_person_id": ev["resident_id"].map(person_id),
        "first_name": p["first_name"], "last_name": p["last_name"], "date_of_birth": p["birth_date"],
        "gender": sex, "ethnicity": _codes(rng, DFE_ETHNICITY, p["ethnicity"]),
        "nhs_number": np.where(rng.random(len(ev)) < 0.6, p["nhs_number"], ""),
        "upn": np.where(rng.random(len(ev)) < 0.3, p["upn"], ""),
        "address": p["address"], "postcode": p["postcode"],
        "contact_date": ev["event_time"].dt.strftime("%d/%m/%Y"), "date_recorded": ev["known_at"].dt.strftime("%d/%m/%Y"),
        "contact_source": rng.choice(["4", "5A", "6", "1A", "3B"], len(ev)),
        "restricted": np.where(restricted, "Y", "N"),
    })
    nhs, nhs_changed = ctx.noise.nhs_number("social_care", frame["nhs_number"], ev["resident_id"], per_record=False)
    upn, upn_changed = ctx.noise.upn("social_care", frame["upn"], ev["resident_id"], ev["event_time"])
    frame["nhs_number"], frame["upn"] = nhs.to_numpy(), upn.to_numpy()
    yield "contacts", frame, _truth(ids, ev, pd.Series(np.where(restricted, "restricted", "social_care/contact")),
                                    planted_label(sex=sex_changed, nhs_number=nhs_changed, upn=upn_changed))
    p = ctx.persons("social_care", oc["resident_id"], oc["home"])
    sex, sex_changed = ctx.noise.sex("social_care", p["sex"], oc["resident_id"], oc["outcome_time"])
    step = oc["outcome_type"].map({"csc_referral": "REF", "s47_enquiry": "S47", "child_protection_plan": "CPP",
                                   "adult_safeguarding_concern": "ASC"})
    ids = ctx.ids("EP", len(oc), 8)
    frame = pd.DataFrame({
        "episode_id": ids, "mosaic_person_id": oc["resident_id"].map(person_id),
        "first_name": p["first_name"], "last_name": p["last_name"], "date_of_birth": p["birth_date"],
        "gender": sex, "nhs_number": np.where(rng.random(len(oc)) < 0.6, p["nhs_number"], ""),
        "address": p["address"], "postcode": p["postcode"], "step": step,
        "start_date": oc["outcome_time"].dt.strftime("%d/%m/%Y"),
        "end_date": oc["end_time"].dt.strftime("%d/%m/%Y").fillna(""),
        "date_recorded": oc["known_at"].dt.strftime("%d/%m/%Y"),
    })
    nhs, nhs_changed = ctx.noise.nhs_number("social_care", frame["nhs_number"], oc["resident_id"], per_record=False)
    frame["nhs_number"] = nhs.to_numpy()
    yield "episodes", frame, _truth(ids, oc.assign(event_id=None), "outcome/" + oc["outcome_type"],
                                    planted_label(sex=sex_changed, nhs_number=nhs_changed))


def _early_help(ctx: _Context, events: pd.DataFrame, outcomes: pd.DataFrame, residency: pd.DataFrame) -> Extracts:
    ev = _pick(events, "early_help")
    who = pd.Index(sorted(set(ev["resident_id"])))
    pid = dict(zip(who, ctx.ids("EH", len(who), 6), strict=True))
    p = ctx.persons("early_help", ev["resident_id"], ev["home"])
    ids = ctx.ids("EHC", len(ev), 7)
    frame = pd.DataFrame({
        "ContactRef": ids, "PersonRef": ev["resident_id"].map(pid), "Forename": p["first_name"],
        "Surname": p["last_name"], "DOB": p["birth_date"], "Address": p["address"], "Postcode": p["postcode"],
        "ContactDate": ev["event_time"].dt.strftime("%d/%m/%Y"), "Recorded": ev["known_at"].dt.strftime("%d/%m/%Y"),
        "Outcome": ctx.rng.choice(["EH-ASSESS", "SIGNPOST", "NFA"], len(ev)),
    })
    yield "contacts", frame, _truth(ids, ev, "early_help/contact")


def _homelessness(ctx: _Context, events: pd.DataFrame, outcomes: pd.DataFrame, residency: pd.DataFrame) -> Extracts:
    ev = _pick(events, "homelessness")
    p = ctx.persons("homelessness", ev["resident_id"], ev["home"])
    ids = ctx.ids("HC", len(ev), 7)
    frame = pd.DataFrame({
        "CaseID": ids, "ApplicantForename": p["first_name"], "ApplicantSurname": p["last_name"],
        "ApplicantDOB": p["birth_date"], "LastSettledAddress": p["address"], "Postcode": p["postcode"],
        "ApproachDate": ev["event_time"].dt.strftime("%d/%m/%Y"), "DateEntered": ev["known_at"].dt.strftime("%d/%m/%Y"),
        "ReasonLossOfHome": ctx.rng.choice(["DA", "END_AST", "FAMILY_EVICT", "ARREARS", "OTHER"], len(ev)),
    })
    yield "approaches", frame, _truth(ids, ev, "homelessness/approach")
    oc = _outcome_home(outcomes[outcomes["outcome_type"] == "homelessness_acceptance"], residency)
    p = ctx.persons("homelessness", oc["resident_id"], oc["home"])
    ids = ctx.ids("HD", len(oc), 7)
    frame = pd.DataFrame({
        "DecisionID": ids, "ApplicantForename": p["first_name"], "ApplicantSurname": p["last_name"],
        "ApplicantDOB": p["birth_date"], "Address": p["address"], "Postcode": p["postcode"],
        "Decision": "MAIN_DUTY_ACCEPTED", "DecisionDate": oc["outcome_time"].dt.strftime("%d/%m/%Y"),
        "DateEntered": oc["known_at"].dt.strftime("%d/%m/%Y"),
    })
    yield "decisions", frame, _truth(ids, oc.assign(event_id=None), "outcome/homelessness_acceptance")


def _council_tax(ctx: _Context, events: pd.DataFrame, outcomes: pd.DataFrame, residency: pd.DataFrame) -> Extracts:
    rng = ctx.rng
    birth = ctx.people["birth_date"]
    spells = residency.assign(birth=residency["resident_id"].map(birth))
    # One liable-party row per adult spell at an address (from the 18th birthday if later).
    adult_at = pd.to_datetime(spells["birth"]) + pd.DateOffset(years=18)
    spells["start"] = np.maximum(pd.to_datetime(spells["start_date"]), adult_at)
    extract_day = pd.Timestamp(events["known_at"].max()).normalize() + pd.Timedelta(days=1)
    ends = pd.to_datetime(spells["end_date"]).fillna(pd.Timestamp("2100-01-01"))
    spells = spells[(ends > spells["start"]) & (spells["start"] < extract_day)]
    spells = spells.reset_index(drop=True)
    accounts = spells["household_id"].unique()
    account = dict(zip(accounts, ctx.ids("CT", len(accounts), 8), strict=True))
    party = dict(zip(spells["resident_id"].unique(), ctx.ids("PTY", spells["resident_id"].nunique(), 7),
                     strict=True))
    home = spells["address_id"].rename("home")
    p = ctx.persons("council_tax", spells["resident_id"], home)
    sex, sex_changed = ctx.noise.sex("council_tax", p["sex"], spells["resident_id"], spells["start"])
    ids = ctx.ids("LP", len(spells), 8)
    titles = np.where(sex == "F", rng.choice(["MS", "MRS", "MISS"], len(spells)), "MR")
    frame = pd.DataFrame({
        "LIABLE_PARTY_ID": ids, "ACCOUNT_REF": spells["household_id"].map(account),
        "PARTY_REF": spells["resident_id"].map(party), "TITLE": titles, "FORENAME": p["first_name"],
        "SURNAME": p["last_name"], "PROPERTY_ADDRESS": p["address"], "POSTCODE": p["postcode"],
        "UPRN": p["uprn"].astype(str), "LIABLE_FROM": spells["start"].dt.strftime("%d-%b-%Y").str.upper(),
        "LIABLE_TO": pd.to_datetime(spells["end_date"]).dt.strftime("%d-%b-%Y").str.upper().fillna(""),
    })
    yield "liable_parties", frame, _truth(ids, spells.assign(home=home), "party", planted_label(sex=sex_changed))
    ev = _pick(events, "council_tax")
    p = ctx.persons("council_tax", ev["resident_id"], ev["home"])
    stage = np.select([ev["event_type"] == "arrears_reminder", ev["event_type"] == "summons"],
                      [rng.choice(["R1", "R2", "FN"], len(ev)), np.full(len(ev), "SUM")], "LO")
    ids = ctx.ids("RA", len(ev), 8)
    frame = pd.DataFrame({
        "RECOVERY_ID": ids, "ACCOUNT_REF": ev["household_id"].map(account).fillna(""),
        "PARTY_REF": ev["resident_id"].map(party).fillna(""), "FORENAME": p["first_name"],
        "SURNAME": p["last_name"], "PROPERTY_ADDRESS": p["address"], "POSTCODE": p["postcode"],
        "UPRN": p["uprn"].astype(str), "STAGE": stage, "STAGE_DATE": ev["event_time"].dt.strftime("%d-%b-%Y").str.upper(),
        "POSTED": ev["known_at"].dt.strftime("%d-%b-%Y").str.upper(), "BALANCE": ev["value"].round(2),
    })
    yield "recovery", frame, _truth(ids, ev, "council_tax/" + ev["event_type"])


def _benefits(ctx: _Context, events: pd.DataFrame, outcomes: pd.DataFrame, residency: pd.DataFrame) -> Extracts:
    ev = _pick(events, "benefits")
    who = pd.Index(sorted(set(ev["resident_id"])))
    claim = dict(zip(who, ctx.ids("HB", len(who), 7), strict=True))
    p = ctx.persons("benefits", ev["resident_id"], ev["home"])
    code = ev["event_type"].map({"claim_start": "NEWCLM", "change_of_circumstances": "COC", "sanction": "SANC"})
    ids = ctx.ids("BE", len(ev), 8)
    frame = pd.DataFrame({
        "event_ref": ids, "claim_ref": ev["resident_id"].map(claim), "claimant_forename": p["first_name"],
        "claimant_surname": p["last_name"], "claimant_dob": p["birth_date"], "address": p["address"],
        "postcode": p["postcode"], "uprn": p["uprn"].astype(str), "event_code": code,
        "effective_date": ev["event_time"].dt.strftime("%Y-%m-%d"), "processed_date": ev["known_at"].dt.strftime("%Y-%m-%d"),
    })
    yield "claim_events", frame, _truth(ids, ev, "benefits/" + ev["event_type"])


INJURY_SNOMED = ("125605004", "283385000", "58124008", "110030002", "262525000")
OTHER_SNOMED = ("233604007", "195967001", "22298006", "68566005", "29857009", "44054006", "161891005")


def _ae(ctx: _Context, events: pd.DataFrame, outcomes: pd.DataFrame, residency: pd.DataFrame) -> Extracts:
    ev = _pick(events, "ae")
    p = ctx.persons("ae", ev["resident_id"], ev["home"])
    sex, sex_changed = ctx.noise.sex("ae", p["sex"], ev["resident_id"], ev["event_time"])
    rng = ctx.rng
    injury = (ev["event_type"] == "injury_attendance").to_numpy()
    dx = np.where(injury, rng.choice(INJURY_SNOMED, len(ev)), rng.choice(OTHER_SNOMED, len(ev)))
    ids = ctx.ids("ECDS", len(ev), 9)
    frame = pd.DataFrame({
        "AttendanceIdentifier": ids,
        "NHSNumber": np.where(rng.random(len(ev)) < 0.95, p["nhs_number"], ""),
        "PersonBirthDate": p["birth_date"], "PersonStatedGenderCode": sex.map({"M": "1", "F": "2"}),
        "EthnicCategory": _codes(rng, NHS_ETHNICITY, p["ethnicity"]), "Postcode": p["postcode"],
        "ArrivalDateTime": ev["event_time"].dt.strftime("%Y-%m-%dT%H:%M:%S"), "DiagnosisSNOMED": dx,
        # The day the record reached the council under the data-sharing agreement (1-2 months later).
        "SubmissionDate": ev["known_at"].dt.strftime("%Y-%m-%d"),
    })
    nhs, nhs_changed = ctx.noise.nhs_number("ae", frame["NHSNumber"], ev["resident_id"], per_record=True)
    frame["NHSNumber"] = nhs.to_numpy()
    yield "ecds", frame, _truth(ids, ev, "ae/" + ev["event_type"], planted_label(sex=sex_changed, nhs_number=nhs_changed))


# --------------------------------------------------------------------------------------------
# Address-only sources
# --------------------------------------------------------------------------------------------


def _fire(ctx: _Context, events: pd.DataFrame, outcomes: pd.DataFrame, residency: pd.DataFrame) -> Extracts:
    ev = _pick(events, "fire")
    a = ctx.addresses("lines", ev["home"])
    ids = ctx.ids("IRS", len(ev), 7)
    frame = pd.DataFrame({
        "IncidentNumber": ids, "IncidentDate": ev["event_time"].dt.strftime("%d/%m/%Y"),
        "PropertyAddress": a["address"], "Postcode": a["postcode"], "UPRN": a["uprn"].astype(str),
        "IncidentType": ctx.rng.choice(["PRIMARY_DWELLING", "SECONDARY", "AFA_DWELLING", "SPECIAL_SERVICE"], len(ev)),
        # The day the fire service's record reached the council.
        "DateReceived": ev["known_at"].dt.strftime("%d/%m/%Y"),
    })
    yield "incidents", frame, _truth(ids, ev, "fire/fire_callout")


def _asb(ctx: _Context, events: pd.DataFrame, outcomes: pd.DataFrame, residency: pd.DataFrame) -> Extracts:
    ev = _pick(events, "asb")
    a = ctx.addresses("police", ev["home"])
    ids = ctx.ids("ASB", len(ev), 6)
    frame = pd.DataFrame({
        # The case is logged the day it is reported, which is when the council knows of it.
        "CaseRef": ids, "ReportDate": ev["known_at"].dt.strftime("%d/%m/%Y"), "Location": a["address"],
        "Postcode": a["postcode"], "Category": ctx.rng.choice(["NOISE", "NUISANCE", "VERBAL", "VANDALISM"], len(ev)),
    })
    yield "reports", frame, _truth(ids, ev, "asb/asb_report")


# Repairs: (SOR code, trade, canonical description) per true event type; `None` code = a catch-all code
# with only free text, as when an operative raises a quoted or miscellaneous job.
SOR: dict[str, tuple[tuple[str, str, str], ...]] = {
    "door_replacement": (("CP300101", "CP", "RENEW FRONT ENTRANCE DOOR COMPLETE"),
                         ("CP300105", "CP", "RENEW FLAT ENTRANCE DOOR FD30 FIRE DOOR"),
                         ("CP300110", "CP", "RENEW DOOR FRAME AND DOOR AFTER FORCED ENTRY")),
    "lock_change": (("CP310101", "CP", "RENEW EURO CYLINDER LOCK"), ("CP310105", "CP", "CHANGE LOCK TO FRONT DOOR")),
    "window_repair": (("CP200101", "CP", "RENEW WINDOW PANE"), ("CP200120", "CP", "EASE AND ADJUST WINDOW"),
                      ("GL200200", "MU", "REGLAZE BROKEN WINDOW")),
    "damp_mould": (("MU500101", "MU", "MOULD WASH AND TREAT"), ("MU500110", "MU", "INSPECT DAMP AND REPORT")),
    "general_repair": (("PL100101", "PL", "REPAIR LEAK TO WASTE PIPE"), ("PL100220", "PL", "RENEW TAP WASHER"),
                       ("EL400101", "EL", "REPAIR SOCKET OUTLET"), ("EL400150", "EL", "RENEW LIGHT FITTING"),
                       ("CP300500", "CP", "EASE AND ADJUST INTERNAL DOOR"), ("CP310300", "CP", "RENEW KITCHEN UNIT DOOR"),
                       ("MW700101", "MW", "REPAIR METAL BALUSTRADE"), ("PL100500", "PL", "CLEAR BLOCKED SINK"),
                       ("MU100200", "MU", "REPAIR FLOOR COVERING")),
}
MISC_CODE = ("MU999901", "MU", "")
FREE_TEXT: dict[str, tuple[str, ...]] = {
    "door_replacement": ("RENEW FRONT ENTRANCE DOOR - FORCED ENTRY", "front door kicked in, needs replacing",
                         "Board up after forced entry then renew front door", "FRONT DR DAMAGED - REPLACE",
                         "Replace flat entrance door, frame split", "new front door req - police forced entry"),
    "lock_change": ("CHANGE LOCKS", "lock change - keys lost", "Renew front door lock, tenant locked out",
                    "change cylinder urgent", "LOCKS CHANGED AT TENANTS REQUEST"),
    "window_repair": ("window wont close", "Reglaze bedroom window", "BROKEN WINDOW LIVING ROOM"),
    "damp_mould": ("black mould in bathroom", "DAMP TO BEDROOM WALL", "condensation & mould, treat"),
    "general_repair": ("leak under sink", "no hot water", "Toilet not flushing", "socket sparking",
                       "ceiling light not working", "kitchen cupboard door hanging off", "bath panel loose"),
}
VAGUE_TEXT = ("attend and make safe", "AS PER INSPECTION", "see notes", "tenant to advise on arrival")
SANCTUARY_SOR = (("SAN00101", "MU", "SANCTUARY SCHEME - TARGET HARDENING"),
                 ("SAN00102", "CP", "SANCTUARY - FIT DOOR GUARD AND ADDITIONAL LOCKS"))
SANCTUARY_TEXT = ("Sanctuary scheme: strengthen front door, fit door chain & extra locks",
                  "TARGET HARDENING - CHANGE LOCKS AND FIT DOOR VIEWER", "sanctuary works - reinforce front door frame",
                  "Fit London bar and hinge bolts to front door (sanctuary)")
DE_SOR = (("DE100101", "DE", "REPAIR DOOR ENTRY HANDSET"), ("DE100120", "DE", "COMMUNAL ENTRANCE DOOR - ADJUST CLOSER"),
          ("DE100150", "DE", "RENEW DOOR ENTRY PANEL"))
DE_TEXT = ("door entry not working", "COMMUNAL FRONT DOOR WILL NOT CLOSE", "entryphone buzzer broken, block door")
VOID_TEXT = ("VOID - RENEW FRONT DOOR LOCK", "VOID CLEARANCE AND CLEAN", "void: replace front entrance door",
             "VOID - ELECTRICAL TEST", "VOID - GAS SAFETY CHECK")
PLANNED_TEXT = ("PLANNED PROGRAMME - FRONT ENTRANCE DOOR REPLACEMENT (FIRE SAFETY)", "Kitchen replacement programme",
                "Window replacement programme", "Planned: bathroom refurbishment")
PRIORITY = {"door_replacement": ("1", "2"), "lock_change": ("1", "2", "3"), "window_repair": ("3", "4", "5"),
            "damp_mould": ("4", "5"), "general_repair": ("2", "3", "4", "5", "5", "5")}


def _repairs(ctx: _Context, rng: np.random.Generator, events: pd.DataFrame, residency: pd.DataFrame) -> Extracts:
    """Repair job rows: the true repairs, sanctuary works after a known incident, voids, planned works,
    communal door-entry jobs and cancelled duplicates."""
    ev = _pick(events, "housing_repairs")
    kinds: list[pd.DataFrame] = []
    # True repairs: a coded SOR line most of the time, otherwise a miscellaneous code with free text.
    n = len(ev)
    misc = rng.random(n) < np.where(ev["event_type"].isin(["door_replacement", "lock_change"]), 0.45, 0.15)
    code, trade, text = [], [], []
    for t, m in zip(ev["event_type"], misc, strict=True):
        if m:
            code.append(MISC_CODE[0])
            trade.append(rng.choice(["MU", "CP"]))
            # Some operatives write nothing a rule can use: these show up as unmapped phrases.
            vague = rng.random() < 0.04
            text.append(VAGUE_TEXT[int(rng.integers(0, len(VAGUE_TEXT)))] if vague
                        else FREE_TEXT[t][int(rng.integers(0, len(FREE_TEXT[t])))])
        else:
            c, tr, d = SOR[t][int(rng.integers(0, len(SOR[t])))]
            code.append(c)
            trade.append(tr)
            text.append(d if rng.random() < 0.6 else FREE_TEXT[t][int(rng.integers(0, len(FREE_TEXT[t])))])
    # A job is raised when the tenant reports the repair, which is when the council knows of it.
    kinds.append(pd.DataFrame({
        "home": ev["home"], "time": ev["known_at"].dt.floor("D"), "code": code, "trade": trade, "text": text,
        "priority": [PRIORITY[t][int(rng.integers(0, len(PRIORITY[t])))] for t in ev["event_type"]],
        "status": "COMPLETED", "truth": "housing_repairs/" + ev["event_type"], "event_id": ev["event_id"],
        "household_id": None, "known_at": ev["known_at"],
    }))
    social = set(ctx.book.index[ctx.book["tenure"].isin(["council", "housing_association"])])
    # Sanctuary works: after a police domestic incident at a social home, the landlord hardens the home.
    da = events[(events["source"] == "police") & (events["event_type"] == "domestic_incident")
                & events["home"].isin(social)].drop_duplicates("home")
    da = da[rng.random(len(da)) < 0.5]
    m = len(da)
    from_code = rng.random(m) < 0.6
    pick = rng.integers(0, 2, m)
    kinds.append(pd.DataFrame({
        "home": da["home"].to_numpy(),
        "time": (da["known_at"] + pd.to_timedelta(rng.integers(3, 45, m), unit="D")).to_numpy(),
        "code": np.where(from_code, [SANCTUARY_SOR[i][0] for i in pick], MISC_CODE[0]),
        "trade": np.where(from_code, [SANCTUARY_SOR[i][1] for i in pick], "MU"),
        "text": np.where(from_code, [SANCTUARY_SOR[i][2] for i in pick],
                         rng.choice(SANCTUARY_TEXT, m)),
        "priority": rng.choice(["2", "3"], m), "status": "COMPLETED", "truth": "sanctuary_works",
        "event_id": None, "household_id": da["household_id"].to_numpy(),
    }))
    start, end = events["event_time"].min(), events["event_time"].max()
    # Voids: works while a social home stands empty between tenancies.
    spells = residency[residency["address_id"].isin(social)].sort_values(["address_id", "start_date"])
    nxt = spells.groupby("address_id")["start_date"].shift(-1)
    gap = spells.assign(next_start=nxt).dropna(subset=["next_start", "end_date"])
    gap = gap[(pd.to_datetime(gap["end_date"]) >= start) & (pd.to_datetime(gap["next_start"]) > pd.to_datetime(gap["end_date"]))]
    v = len(gap)
    kinds.append(pd.DataFrame({
        "home": gap["address_id"].to_numpy(),
        "time": (pd.to_datetime(gap["end_date"]) + pd.to_timedelta(rng.integers(1, 10, v), unit="D")).to_numpy(),
        "code": rng.choice(["VO100101", "VO100200", MISC_CODE[0]], v), "trade": rng.choice(["MU", "CP", "EL"], v),
        "text": rng.choice(VOID_TEXT, v), "priority": rng.choice(["V15", "V30"], v), "status": "COMPLETED",
        "truth": "void", "event_id": None, "household_id": None,
    }))
    # Planned works and communal door entry: drawn per home / block over the window.
    years = max((end - start).days / 365.25, 0.1)
    homes = np.array(sorted(social), dtype=object)
    k = rng.poisson(0.08 * years, len(homes))
    ph = np.repeat(homes, k)
    pt = start + pd.to_timedelta(rng.random(len(ph)) * (end - start).days, unit="D")
    kinds.append(pd.DataFrame({
        "home": ph, "time": pt.floor("D"), "code": rng.choice(["PP900101", "PP900200"], len(ph)),
        "trade": rng.choice(["CP", "MU"], len(ph)), "text": rng.choice(PLANNED_TEXT, len(ph)), "priority": "9",
        "status": "COMPLETED", "truth": "planned", "event_id": None, "household_id": None,
    }))
    blocks = ctx.blocks
    kb = rng.poisson(1.5 * years, len(blocks))
    bb = np.repeat(blocks["block"].to_numpy(), kb)
    bt = start + pd.to_timedelta(rng.random(len(bb)) * (end - start).days, unit="D")
    de_pick = rng.integers(0, len(DE_SOR), len(bb))
    kinds.append(pd.DataFrame({
        "home": [f"BLOCK:{b}" for b in bb], "time": bt.floor("D"),
        "code": [DE_SOR[i][0] for i in de_pick], "trade": "DE",
        "text": np.where(rng.random(len(bb)) < 0.5, [DE_SOR[i][2] for i in de_pick], rng.choice(DE_TEXT, len(bb))),
        "priority": rng.choice(["2", "3", "5"], len(bb)), "status": "COMPLETED", "truth": "communal_door_entry",
        "event_id": None, "household_id": None,
    }))
    jobs = pd.concat(kinds, ignore_index=True)
    # Cancelled duplicates: a job raised twice, the second cancelled.
    dup = jobs[(jobs["truth"].str.startswith("housing_repairs/")) & (rng.random(len(jobs)) < 0.03)].copy()
    dup["status"] = "CANCELLED"
    dup["truth"] = "cancelled"
    dup["event_id"] = None
    dup["known_at"] = pd.NaT
    jobs = pd.concat([jobs, dup], ignore_index=True)
    jobs["time"] = pd.to_datetime(jobs["time"])
    jobs = jobs.sort_values(["time", "home"], kind="stable").reset_index(drop=True)
    # Operatives write in upper, lower and sentence case.
    case = rng.random(len(jobs))
    jobs["text"] = np.where(case < 0.3, jobs["text"].str.upper(), np.where(case < 0.5, jobs["text"].str.lower(),
                                                                            jobs["text"]))
    is_block = jobs["home"].str.startswith("BLOCK:")
    dwelling = ctx.addresses("housing", jobs["home"].where(~is_block, None))
    bl = blocks.set_index("block")
    block_no = jobs.loc[is_block, "home"].str.slice(6).astype(int)
    address = dwelling["address"].to_numpy(dtype=object)
    postcode = dwelling["postcode"].to_numpy(dtype=object)
    uprn = dwelling["uprn"].astype("Int64").astype(str).replace("<NA>", "").to_numpy(dtype=object)
    prop = dwelling["property_ref"].to_numpy(dtype=object)
    bidx = np.flatnonzero(is_block.to_numpy())
    address[bidx] = [f"{bl.at[b, 'building']}, {bl.at[b, 'number']} {bl.at[b, 'street']} (COMMUNAL)" for b in block_no]
    postcode[bidx] = [bl.at[b, "postcode"] for b in block_no]
    uprn[bidx] = [str(bl.at[b, "uprn"]) for b in block_no]
    prop[bidx] = [bl.at[b, "property_ref"] for b in block_no]
    # About one job in eight has no UPRN on the property record (new-build, data-migration gaps).
    uprn[rng.random(len(jobs)) < 0.12] = ""
    completed = jobs["time"] + pd.to_timedelta(rng.integers(0, 30, len(jobs)), unit="D")
    ids = ctx.ids("JOB", len(jobs), 8)
    frame = pd.DataFrame({
        "job_ref": ids, "property_ref": prop, "address": address, "postcode": postcode, "uprn": uprn,
        "sor_code": jobs["code"], "trade_code": jobs["trade"], "priority": jobs["priority"],
        "status": jobs["status"], "raised_date": jobs["time"].dt.strftime("%d/%m/%Y"),
        "completed_date": np.where(jobs["status"] == "CANCELLED", "", completed.dt.strftime("%d/%m/%Y")),
        "description": jobs["text"],
    })
    truth = pd.DataFrame({"record_id": ids, "resident_id": None, "household_id": jobs["household_id"],
                          "address_id": jobs["home"].where(~is_block, None), "event_id": jobs["event_id"],
                          "truth": jobs["truth"], "known_at": jobs["known_at"]})
    yield "jobs", frame, truth
