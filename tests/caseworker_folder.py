"""The tiny journey world written to disk with a score folder beside it, as `score` leaves one, so
`journey` and `explain` run end to end without training a model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml
from contract_fixtures import write_borough
from journey_world import AS_OF, RESIDENT, world

from earlysignal.config import ProjectConfig, config_from_dict
from earlysignal.journey import ReasonFeature
from earlysignal.windows import WindowLength

REPO = Path(__file__).resolve().parents[1]

REASON_FEATURES = {
    "address__housing_repairs__door_replacement__count__365d": ReasonFeature(
        "address__housing_repairs__door_replacement__count__365d", "housing_repairs", ("door_replacement",),
        "address", WindowLength("d", 365), "count", "{value} door replacements at home in the last 12 months"),
    "household__police__domestic_incident__count__365d": ReasonFeature(
        "household__police__domestic_incident__count__365d", "police", ("domestic_incident",), "household", WindowLength("d", 365),
        "count", "{value} domestic incidents reported to police in the household in the last 12 months"),
    "static__age": ReasonFeature("static__age", "residents", (), "static", None, "age", "aged {value}"),
}
REASON_TEXTS = [
    "2 door replacements at home in the last 12 months",
    "3 domestic incidents reported to police in the household in the last 12 months",
    "aged 12",
]


@dataclass
class CaseworkerFolder:
    data_dir: Path
    scores_dir: Path
    config: ProjectConfig
    config_path: Path
    access_log: Path


def caseworker_folder(root: Path, challenge_contact: str = "") -> CaseworkerFolder:
    """data/ (the journey world), scores/ (ranked list, reasons, summary) and a config pointing at both."""
    tables = world()
    data_dir = write_borough(root / "data", {k: getattr(tables, k) for k in ("residents", "residency", "events", "outcomes")})
    scores = root / "scores"
    scores.mkdir()
    ranked = pd.DataFrame({
        "resident_id": ["res-next", RESIDENT, "res-little"],
        "as_of": [pd.Timestamp(AS_OF)] * 3,
        "score": [0.41, 0.33, 0.02],
        "rank": [1, 2, 3],
        "percentile": [100.0, 66.67, 33.33],
        "flagged": [True, True, False],
        "reason_1": ["1 domestic incident reported to police in the household in the last 12 months", REASON_TEXTS[0], ""],
        "reason_2": ["", REASON_TEXTS[1], ""],
        "reason_3": ["", REASON_TEXTS[2], ""],
        "contribution_1": [0.5, 0.9, None],
        "contribution_2": [None, 0.4, None],
        "contribution_3": [None, 0.1, None],
    })
    ranked.to_parquet(scores / "ranked.parquet", index=False)
    reasons = pd.DataFrame({
        "resident_id": ["res-next", RESIDENT, RESIDENT, RESIDENT],
        "reason": [1, 1, 2, 3],
        "feature": ["household__police__domestic_incident__count__365d", *REASON_FEATURES],
        "text": [ranked["reason_1"][0], *REASON_TEXTS],
        "contribution": [0.5, 0.9, 0.4, 0.1],
    })
    reasons.to_parquet(scores / "reasons.parquet", index=False)
    # The model reads repairs at the address and police in the household; not school, not A&E.
    model = {
        "features": {name: f.as_record() for name, f in REASON_FEATURES.items()},
        "sources": ["housing_repairs", "police"],
        "wording": {"sources": {"housing_repairs": "repairs", "police": "police call-outs"},
                    "events": {"housing_repairs/door_replacement": "door replacement",
                               "police/domestic_incident": "domestic incident reported to police"},
                    "outcomes": {"s47_enquiry": "section 47 enquiry"}},
    }
    (scores / "model_features.json").write_text(json.dumps(model), encoding="utf-8")
    pd.DataFrame({"resident_id": ["res-mum"], "as_of": [pd.Timestamp(AS_OF)],
                  "reason": ["older than the cohort's maximum age (17)"]}).to_parquet(scores / "unscored.parquet", index=False)
    summary = {"model_uri": "models:/journey-test-model/1", "model_name": "journey-test-model", "model_version": "1",
               "approval_checked": False, "as_of": AS_OF.isoformat(), "data_dir": str(data_dir), "spec_hash": "abc",
               "counts": {"scored": 3, "flagged": 2, "unscored": 1}}
    (scores / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    raw = yaml.safe_load((REPO / "conf" / "borough.yaml").read_text(encoding="utf-8"))
    raw["data"]["dir"] = str(data_dir)
    raw["governance"]["challenge_contact"] = challenge_contact
    raw["caseworker"] = {"access_log": str(root / "access" / "log.jsonl")}
    config_path = root / "config.yaml"
    config_path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return CaseworkerFolder(data_dir, scores, config_from_dict(raw), config_path, root / "access" / "log.jsonl")
