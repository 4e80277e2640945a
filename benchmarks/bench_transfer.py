"""Transfer evaluation across three synthetic boroughs, released and pooled (not run by CI).

    nice -n 10 .venv/bin/python benchmarks/bench_transfer.py --residents 20000 --out /tmp/transfer

Three boroughs with different seeds and recording practice (docs/federation.md):
  Northgate  seed 7, recorded as the world is;
  Riverside  seed 8, Black residents' police, social care and early help contacts over-recorded x3;
  Eastmarsh  seed 9, police records cut to a fifth from 2023-01-01 (a data-sharing feed that thinned).
Each borough trains its own model and releases it (home bundle). Northgate's model is audited,
approved and shipped to Riverside and Eastmarsh, which evaluate it on the same test rows as their own
model (`release --shipped --home-model`) and release a transfer bundle. All five bundles are signed
by each borough's output checker and pooled. Prints the transfer table (shipped model beside the
receiving borough's own model) and the wall time, CPU time and peak RSS of the whole run.
Label: a children's social care referral within 12 months (enough escalations per borough at this size).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import time
from pathlib import Path

BOROUGHS = {
    "Northgate": {"seed": 7, "recording_bias": [], "recording_change": []},
    "Riverside": {"seed": 8, "recording_bias": [{"attribute": "ethnicity", "group": "Black", "factor": 3.0}],
                  "recording_change": []},
    "Eastmarsh": {"seed": 9, "recording_bias": [],
                  "recording_change": [{"source": "police", "factor": 0.2, "start": "2023-01-01"}]},
}


def borough_config(root: Path, name: str, residents: int, checkers: list[dict], approvers: list[dict]):
    from earlysignal.config import config_from_dict, load_config

    raw = load_config(Path(__file__).resolve().parents[1] / "conf" / "borough.yaml").model_dump(mode="json")
    settings = BOROUGHS[name]
    raw["data"]["dir"] = str(root / name.lower())
    raw["synth"].update(residents=residents, years=9, seed=settings["seed"],
                        recording_bias=settings["recording_bias"], recording_change=settings["recording_change"])
    raw["label"].update(name="csc_referral_12m", outcome_types=["csc_referral"], horizon_months=12)
    raw["temporal"].update(first_as_of="2022-01-01", last_as_of="2025-01-01")
    raw["model"].update(name=f"es-{name.lower()}")
    raw["training"].update(history_years=1.5, n_test_splits=2)
    raw["approval"].update(approvers=approvers, trust_demo_key=False)
    raw["release"] = {"borough": name, "checkers": checkers}
    return config_from_dict(raw, source=f"transfer benchmark ({name})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--residents", type=int, default=20_000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    root = args.out.resolve()
    root.mkdir(parents=True, exist_ok=True)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    os.environ["EARLYSIGNAL_APPROVAL_STORE"] = str(root / "approval")
    # A fresh release register per run: a rerun's bundles must not be read with the last run's.
    shutil.rmtree(root / "release-register", ignore_errors=True)
    os.environ["EARLYSIGNAL_RELEASE_REGISTER"] = str(root / "release-register")

    from earlysignal.approval import approve_model
    from earlysignal.audit import run_audit
    from earlysignal.federation.pool import run_pool
    from earlysignal.federation.release import run_release
    from earlysignal.ledger import generate_key_pair
    from earlysignal.modeling.train import train_model
    from earlysignal.synth.borough import generate_borough

    started, cpu_started = time.perf_counter(), time.process_time()
    keys = root / "keys"
    checker_keys, checkers = {}, []
    for name in BOROUGHS:
        if not (keys / f"{name.lower()}-output-checker.key").exists():
            generate_key_pair(f"{name} output checker", keys)
        checker_keys[name] = keys / f"{name.lower()}-output-checker.key"
        checkers.append({"name": f"{name} output checker", "role": "Output checker",
                         "public_key": str(keys / f"{name.lower()}-output-checker.pub")})
    if not (keys / "northgate-dcs.key").exists():
        generate_key_pair("Northgate DCS", keys)
    approvers = [{"name": "Northgate DCS", "role": "DCS", "public_key": str(keys / "northgate-dcs.pub")}]
    configs = {n: borough_config(root, n, args.residents, checkers, approvers) for n in BOROUGHS}
    timings: dict[str, float] = {}
    models = {}
    for name, config in configs.items():
        t = time.perf_counter()
        if not (Path(config.data.dir) / "manifest.json").exists():
            generate_borough(config.data.dir, config.synth)
        timings[f"synth {name}"] = time.perf_counter() - t
        t = time.perf_counter()
        models[name] = train_model(config)
        timings[f"train {name}"] = time.perf_counter() - t
    home = configs["Northgate"]
    audit = run_audit(models["Northgate"].model_uri, config=home, out_dir=root / "audit-northgate", log_to_mlflow=False)
    approve_model(models["Northgate"].model_name, models["Northgate"].model_version, audit.html_path,
                  keys / "northgate-dcs.key", home)
    bundles = []
    for name, config in configs.items():
        t = time.perf_counter()
        folder, _ = run_release(config, models[name].model_uri, out_dir=root / "bundles" / f"{name.lower()}-own",
                                key_path=checker_keys[name])
        bundles.append(folder)
        timings[f"release own {name}"] = time.perf_counter() - t
        if name != "Northgate":
            t = time.perf_counter()
            folder, _ = run_release(config, models["Northgate"].model_uri, shipped=True,
                                    home_model_uri=models[name].model_uri,
                                    out_dir=root / "bundles" / f"{name.lower()}-northgate-model",
                                    key_path=checker_keys[name])
            bundles.append(folder)
            timings[f"release shipped {name}"] = time.perf_counter() - t
    t = time.perf_counter()
    html_path, _, document = run_pool(bundles, home, root / "pool")
    timings["pool"] = time.perf_counter() - t
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result = {
        "residents_per_borough": args.residents,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "cpu_seconds": round(time.process_time() - cpu_started, 1),
        "peak_rss_gb": round(usage.ru_maxrss / 1024 / 1024, 2),
        "load_average": os.getloadavg(),
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "timings": {k: round(v, 1) for k, v in timings.items()},
        "bundles": [{"borough": b["borough"], "kind": b["kind"], "n": b["n"], "positives": b["positives"],
                     **{m: b["summary"][m] for m in b["summary"]}} for b in document["bundles"]],
        "transfer": [
            {"borough": t["borough"], "trained_in": t["trained_in"],
             **{m["metric"]: {"shipped": m["shipped"], "own_model": m["own_model"], "at_home": m["at_home"],
                              "loss_vs_own_model": m["loss_vs_own_model"], "loss_vs_home": m["loss_vs_home"]}
                for m in t["metrics"]}}
            for t in document["transfer"]
        ],
        "pooled_own_models": {m: v["pooled"] and {k: v["pooled"][k] for k in ("value", "ci_low", "ci_high", "i2", "tau2")}
                              for m, v in document["sets"][0]["metrics"].items()},
        "report": str(html_path),
    }
    print(json.dumps(result, indent=2, default=float))
    (root / "result.json").write_text(json.dumps(result, indent=2, default=float))


if __name__ == "__main__":
    main()
