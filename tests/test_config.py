"""The project config: defaults load, errors name the YAML key and the bad value."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from earlysignal.config import (
    config_from_dict,
    load_config,
    packaged_config_path,
    window_days,
)
from earlysignal.errors import ConfigError
from earlysignal.windows import WindowLength, window_length

REPO_CONFIG = Path(__file__).resolve().parents[1] / "conf" / "borough.yaml"


def _raw() -> dict:
    return yaml.safe_load(REPO_CONFIG.read_text(encoding="utf-8"))


def test_default_config_loads_with_quarterly_grid():
    config = load_config(REPO_CONFIG)
    dates = config.as_of_dates()
    assert dates[0] == dt.date(2019, 1, 1)
    assert dates[1] == dt.date(2019, 4, 1)
    assert dates[-1] == dt.date(2025, 10, 1)
    assert len(dates) == 28


def test_packaged_config_is_identical_to_repository_config():
    assert packaged_config_path().read_bytes() == REPO_CONFIG.read_bytes()


def test_error_names_key_and_bad_value():
    raw = _raw()
    raw["label"]["horizon_months"] = -6
    with pytest.raises(ConfigError) as caught:
        config_from_dict(raw, source="borough.yaml")
    message = str(caught.value)
    assert "label.horizon_months" in message
    assert "-6" in message


def test_error_from_a_check_across_sections_does_not_echo_the_whole_config():
    raw = _raw()
    raw["audit"]["protected"] = ["sex", "race"]  # not declared by the synthetic borough's dictionary
    with pytest.raises(ConfigError) as caught:
        config_from_dict(raw, source="borough.yaml")
    message = str(caught.value)
    assert "audit.protected names attributes the data dictionary does not declare" in message
    assert "['race']" in message
    assert "(got {" not in message and "governance" not in message  # the config is not dumped after it
    assert len(message) < 600


def test_unknown_key_is_refused_by_name():
    raw = _raw()
    raw["cohort"]["max_agee"] = 17
    with pytest.raises(ConfigError, match=r"cohort\.max_agee"):
        config_from_dict(raw)


def test_label_outcome_must_be_a_contract_outcome_type():
    raw = _raw()
    raw["label"]["outcome_types"] = ["child_protection_plann"]
    with pytest.raises(ConfigError, match="child_protection_plann"):
        config_from_dict(raw)


def test_bad_window_is_refused_with_family_key():
    raw = _raw()
    raw["features"]["families"][0]["windows"] = ["12w"]
    with pytest.raises(ConfigError) as caught:
        config_from_dict(raw)
    assert "features.families.0.windows" in str(caught.value)
    assert "12w" in str(caught.value)


def test_constant_missing_rule_needs_a_value():
    raw = _raw()
    raw["features"]["families"][0]["missing"] = {"days_since_last": {"rule": "constant"}}
    with pytest.raises(ConfigError, match="needs a value"):
        config_from_dict(raw)


def test_missing_config_file_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="--config"):
        load_config(tmp_path / "nope.yaml")


def test_invalid_yaml_is_a_config_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("temporal: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


@pytest.mark.parametrize(
    ("window", "length"),
    [("30d", WindowLength("d", 30)), ("6m", WindowLength("m", 6)), ("12m", WindowLength("m", 12)),
     ("1y", WindowLength("m", 12)), ("3y", WindowLength("m", 36)), ("all", None)],
)
def test_day_windows_are_fixed_lengths_and_month_and_year_windows_are_calendar_months(window, length):
    assert window_length(window) == length


def test_only_day_windows_have_a_length_in_days():
    assert window_days("90d") == 90
    assert window_days("all") is None
    with pytest.raises(ValueError, match="calendar months"):
        window_days("3m")


@pytest.mark.parametrize("window", ["0m", "12", "12w", "1.5y", "m"])
def test_malformed_window_is_refused_with_the_accepted_forms(window):
    with pytest.raises(ConfigError, match="90d \\(days\\), 3m \\(calendar months\\)|longer than zero"):
        config_from_dict({"features": {"families": [{"name": "f", "source": "police", "windows": [window]}]}})


def test_month_grid_clamps_nothing_and_steps_by_frequency():
    raw = _raw()
    raw["temporal"] = {"first_as_of": "2020-11-01", "last_as_of": "2021-05-01", "frequency_months": 2}
    config = config_from_dict(raw)
    assert config.as_of_dates() == [
        dt.date(2020, 11, 1),
        dt.date(2021, 1, 1),
        dt.date(2021, 3, 1),
        dt.date(2021, 5, 1),
    ]
