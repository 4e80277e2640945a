"""A partitioned `earlysignal features` stopped by a real signal: SIGTERM cleans up as Ctrl-C does (no folder of
part files, no per-partition rows left beside the matrix); what a SIGKILL leaves is removed by the next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from earlysignal.config import config_to_dict
from earlysignal.features.matrix import remove_stale_temporaries
from features_borough import every_aggregate_config, random_borough, write_folder

# Runs the real command in its own process, held inside the second partition's build (after the first part file is
# written) until the test sends it a signal; `ready` says it got there.
_HELD_BUILD = """
import pathlib, sys, time
import earlysignal.features.builder as builder
from earlysignal.cli import app

ready, config, out = sys.argv[1:4]
real = builder.build_feature_matrix
calls = []

def held(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
        pathlib.Path(ready).write_text("holding")
        time.sleep(120)
    return real(*args, **kwargs)

builder.build_feature_matrix = held
app(["features", "--config", config, "--out", out], prog_name="earlysignal")
"""


@pytest.fixture
def held_build(tmp_path: Path):
    folder = write_folder(random_borough(seed=3, households=30, events_per_resident=15), tmp_path / "borough")
    raw = config_to_dict(every_aggregate_config(temporal__first_as_of="2023-01-01"))
    raw["data"] = {"dir": str(folder)}
    raw["build"] = {"partitions": 4}
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(raw))
    out = tmp_path / "m.parquet"
    ready = tmp_path / "ready"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen([sys.executable, "-c", _HELD_BUILD, str(ready), str(config), str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 120
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the build never reached its second partition: {process.communicate()[0]!r}")
        time.sleep(0.05)
    yield process, out, config
    if process.poll() is None:
        process.kill()
        process.wait()


def _temporaries(out: Path) -> dict[str, list[str]]:
    return {p.name: sorted(c.name for c in p.iterdir()) for p in out.parent.glob(out.name + ".*tmp") if p.is_dir()}


def test_sigterm_removes_the_part_files_and_the_per_partition_rows_as_ctrl_c_does(held_build):
    process, out, _ = held_build
    before = _temporaries(out)
    assert set(before) == {"m.parquet.tmp", "m.parquet.events.tmp"} and before["m.parquet.tmp"] == ["part-00000.parquet"]
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=60)[0].decode()
    assert process.returncode == 128 + signal.SIGTERM, output
    assert _temporaries(out) == {} and not out.exists()


def test_sigint_removes_them_too(held_build):
    process, out, _ = held_build
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=60)
    assert process.returncode != 0
    assert _temporaries(out) == {} and not out.exists()


def test_what_a_sigkill_leaves_is_removed_by_the_next_run(held_build):
    from typer.testing import CliRunner

    from earlysignal.cli import app

    process, out, config = held_build
    process.kill()
    process.wait()
    left = _temporaries(out)
    assert set(left) == {"m.parquet.tmp", "m.parquet.events.tmp"}
    assert sorted(p.name for p in remove_stale_temporaries(out)) == ["m.parquet.events.tmp", "m.parquet.tmp"]
    assert _temporaries(out) == {}
    # And the command itself does it before building: leave them again, then run it.
    for name in left:
        (out.parent / name).mkdir()
        (out.parent / name / "part-00000.parquet").write_bytes(b"left by a killed run")
    result = CliRunner().invoke(app, ["features", "--config", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert _temporaries(out) == {} and out.is_dir()
