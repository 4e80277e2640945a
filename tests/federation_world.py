"""Three tiny synthetic boroughs for the release, pool and transfer tests, built once per session.

Camden-like "Northgate" trains a model, audits it and its director approves it; the model is shipped
with its approval to "Riverside" (Black residents' police, social care and early help contacts
over-recorded three times) and "Eastmarsh" (police records cut to a fifth from 2023), which evaluate
it on their own data. Each borough's output checker signs its bundle off. One MLflow registry stands
for the registry the model was shipped into; each borough's data stays in its own folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from audit_world import REPO, tracking_at

from earlysignal.config import ProjectConfig, config_from_dict, load_config

RESIDENTS = 2500
BOROUGHS = {
    "Northgate": {"seed": 7, "recording_bias": [], "recording_change": []},
    "Riverside": {"seed": 8, "recording_bias": [{"attribute": "ethnicity", "group": "Black", "factor": 3.0}],
                  "recording_change": []},
    "Eastmarsh": {"seed": 9, "recording_bias": [],
                  "recording_change": [{"source": "police", "factor": 0.2, "start": "2023-01-01"}]},
}
_CACHE: dict[str, FederationWorld] = {}


@dataclass(frozen=True)
class FederationWorld:
    """Three boroughs, one shipped and approved model, and each borough's signed release bundle."""

    root: Path
    tracking_uri: str
    configs: dict[str, ProjectConfig]
    model_uri: str
    bundles: dict[str, Path]
    checker_keys: dict[str, Path]
    approver_key: Path


def borough_config(root: Path, name: str, checkers: list[dict], approvers: list[dict]) -> ProjectConfig:
    """The repository config shrunk for a test borough: tiny world, referral label, small model."""
    raw = load_config(REPO / "conf" / "borough.yaml").model_dump(mode="json")
    settings = BOROUGHS[name]
    raw["data"]["dir"] = str(root / name.lower())
    raw["synth"].update(residents=RESIDENTS, years=9, seed=settings["seed"],
                        recording_bias=settings["recording_bias"], recording_change=settings["recording_change"])
    raw["label"].update(name="csc_referral_12m", outcome_types=["csc_referral"], horizon_months=12)
    raw["temporal"].update(first_as_of="2022-01-01", last_as_of="2025-01-01")
    raw["model"].update(name=f"es-{name.lower()}", n_estimators=40, learning_rate=0.1, num_leaves=15,
                        min_child_samples=20, feature_fraction=1.0, bagging_fraction=1.0, bagging_freq=0,
                        lambda_l2=0.0, early_stopping_rounds=10)
    raw["training"].update(bootstrap=20, history_years=1.5, n_test_splits=2)
    raw["capacity"].update(k=None, top_percent=20)
    raw["audit"].update(bootstrap=50)
    raw["approval"].update(approvers=approvers, trust_demo_key=False)
    raw["release"] = {"borough": name, "checkers": checkers}
    return config_from_dict(raw, source=f"federation test config ({name})")


def federation_world(base: Path) -> FederationWorld:
    """Synthesise three boroughs, train and approve Northgate's model, release it at home and in the others."""
    if str(base) in _CACHE:
        return _CACHE[str(base)]
    from earlysignal.approval import approve_model
    from earlysignal.audit import run_audit
    from earlysignal.federation.release import run_release
    from earlysignal.ledger import generate_key_pair
    from earlysignal.modeling.train import train_model
    from earlysignal.synth.borough import generate_borough

    root = base / "federation-world"
    root.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    keys = root / "keys"
    checker_keys, checkers = {}, []
    for name in BOROUGHS:
        private, public = generate_key_pair(f"{name} output checker", keys)
        checker_keys[name] = private
        checkers.append({"name": f"{name} output checker", "role": "Output checker", "public_key": str(public)})
    approver_key, approver_pub = generate_key_pair("Northgate DCS", keys)
    approvers = [{"name": "Northgate DCS", "role": "Director of Children's Services", "public_key": str(approver_pub)}]
    configs = {name: borough_config(root, name, checkers, approvers) for name in BOROUGHS}
    bundles = {}
    # The world's own release register: its bundles are not read with other tests' releases of these boroughs.
    with tracking_at(uri), pytest.MonkeyPatch.context() as patch:
        patch.setenv("EARLYSIGNAL_RELEASE_REGISTER", str(root / "release-register"))
        for config in configs.values():
            generate_borough(config.data.dir, config.synth)
        home = configs["Northgate"]
        trained = train_model(home)
        audit = run_audit(trained.model_uri, config=home, out_dir=root / "audit-northgate", log_to_mlflow=False)
        approve_model(trained.model_name, trained.model_version, audit.html_path, approver_key, home)
        for name, config in configs.items():
            folder, _ = run_release(
                config, trained.model_uri, out_dir=root / "bundles" / name.lower(), shipped=name != "Northgate",
                key_path=checker_keys[name],
            )
            bundles[name] = folder
    world = FederationWorld(root, uri, configs, trained.model_uri, bundles, checker_keys, approver_key)
    _CACHE[str(base)] = world
    return world
