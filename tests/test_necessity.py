"""Necessity of each source: which columns each variant leaves out, paired contributions, the audit block."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from earlysignal.config import config_from_dict, load_config
from earlysignal.errors import ConfigError
from earlysignal.features.spec import feature_definitions
from earlysignal.modeling.necessity import feature_groups, paired_contribution
from earlysignal.modeling.train import _Labelled

REPO = Path(__file__).resolve().parents[1]


def _config(**necessity):
    raw = yaml.safe_load((REPO / "conf" / "borough.yaml").read_text(encoding="utf-8"))
    raw["necessity"].update(necessity)
    return config_from_dict(raw)


def test_leaving_out_a_source_removes_every_feature_built_from_it_at_every_scope() -> None:
    config = load_config(REPO / "conf" / "borough.yaml")
    columns = [d.name for d in feature_definitions(config)]
    groups = {g["name"]: g for g in feature_groups(config, columns)}
    assert list(groups)[:len(config.features.families)] == [f.source for f in config.features.families]
    police = groups["police"]["columns"]
    assert police == [c for c in columns if "__police__" in c]
    assert any(c.startswith("household__police__") for c in police)
    assert any(c.startswith("address__police__") for c in police)
    assert any(c.endswith("_imputed") for c in police)  # imputation flags go with their feature
    assert all(c not in police for c in columns if c.startswith("static__"))
    proxy = groups["age_and_family"]
    assert proxy["kind"] == "proxy_group"
    assert proxy["columns"] == ["static__age", "static__household_size", "static__household_children"]


def test_proxy_group_pattern_matching_no_feature_is_a_config_error() -> None:
    config = _config(proxy_groups=[{"name": "age", "features": ["static__age", "static__agee*"]}])
    columns = [d.name for d in feature_definitions(config)]
    with pytest.raises(ConfigError, match=r"necessity\.proxy_groups\.0\.features: 'static__agee\*' matches no feature"):
        feature_groups(config, columns)


def _predictions(rng: np.random.Generator, y: np.ndarray, signal: float) -> dict:
    margin = signal * y + rng.normal(size=len(y))
    return {"margin": margin, "score": 1 / (1 + np.exp(-margin))}


@pytest.fixture(scope="module")
def two_dates():
    rng = np.random.default_rng(0)
    n = 2000
    y = (rng.random(2 * n) < 0.1).astype(np.int8)
    frame = pd.DataFrame({"resident_id": [f"R{i:05d}" for i in range(2 * n)]})
    data = _Labelled(frame, np.zeros((2 * n, 1), dtype=np.float32), y, np.repeat(np.array(["2024-01-01", "2024-04-01"], dtype="datetime64[D]"), n))
    tests = [np.arange(2 * n) < n, np.arange(2 * n) >= n]
    strong = [{"test": t, **_predictions(rng, y[t], 2.0)} for t in tests]
    weak = [{"test": t, **_predictions(rng, y[t], 0.5)} for t in tests]
    return data, strong, weak


def test_a_variant_identical_to_the_full_model_contributes_exactly_zero(two_dates) -> None:
    data, strong, _ = two_dates
    config = _config(bootstrap=50)
    result = paired_contribution(data, strong, strong, config, 50)
    for metric in ("precision_at_capacity", "roc_auc"):
        assert result["contribution"][metric] == {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    assert result["necessary"] is False


def test_losing_signal_shows_as_a_positive_contribution_with_an_interval_above_zero(two_dates) -> None:
    data, strong, weak = two_dates
    config = _config(bootstrap=50)
    result = paired_contribution(data, strong, weak, config, 50)
    auc = result["contribution"]["roc_auc"]
    assert auc["ci_low"] > 0 and auc["ci_low"] <= auc["value"] <= auc["ci_high"]
    assert result["necessary"] is True
    assert result["without"]["roc_auc"] == pytest.approx(
        np.mean([paired_contribution(data, [w], [w], config, 0)["without"]["roc_auc"] for w in weak]))
