"""The cost of linkage error: the same model trained on linked-by-us data and on the true linkage (not run by CI).

    .venv/bin/python benchmarks/bench_linkage_cost.py --work /tmp/linkcost               # demo size (config's synth)
    .venv/bin/python benchmarks/bench_linkage_cost.py --work /tmp/linkcost --residents 12000 --years 5

One synthetic world (generate_borough + write_raw_extracts, reused when --work already holds it):
  truth   the borough's contract tables as synth writes them (the true person/household linkage)
  linked  raw extracts -> `ingest` -> `link` (Splink) -> the contract tables in WORK/borough/linked
Both get the same config, feature spec, label, split plan and seed; the script builds each one's
feature matrix, trains, and prints one JSON line: test ROC AUC, average precision and precision at
capacity (mean over the rolling-origin test dates, with bootstrap intervals), link precision/recall,
residents, and seconds per stage. Each model's own test rows differ (the linked cohort holds people
the truth does not, and misses others), so `like_for_like` also scores both models on the truth's
test rows and labels: each true person is stood for by the linked resident holding most of their
records (earlysignal.linkage.cost); a true row the linked model did not score counts as unflagged.
Figures go in docs/performance.md ("The cost of linkage error").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for the borough, matrices and MLflow store")
    parser.add_argument("--config", type=Path, default=None, help="project config (default: the packaged borough.yaml)")
    parser.add_argument("--residents", type=int, default=None)
    parser.add_argument("--years", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--reuse-linked", action="store_true",
                        help="reuse WORK/borough/linked when link_quality.json is there (e.g. WORK/borough -> a demo's data dir)")
    args = parser.parse_args()

    from earlysignal.config import SynthSection, load_config
    from earlysignal.demo import _existing_borough_matches, _ingest_and_link
    from earlysignal.features import build_or_reuse_feature_matrix
    from earlysignal.modeling.train import train_model
    from earlysignal.synth import generate_borough
    from earlysignal.synth.raw_extracts import write_raw_extracts

    config = load_config(args.config)
    overrides = {k: v for k, v in {"residents": args.residents, "years": args.years, "seed": args.seed}.items()
                 if v is not None}
    synth = SynthSection.model_validate({**config.synth.model_dump(), **overrides})
    work = args.work.resolve()
    borough = work / "borough"
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    seconds: dict[str, float] = {}

    class _Timed:
        def __init__(self, name: str) -> None:
            self.name = name

        def __enter__(self) -> None:
            self.started = time.perf_counter()

        def __exit__(self, *exc: object) -> None:
            seconds[self.name] = round(time.perf_counter() - self.started, 1)

    with _Timed("synth"):
        if not (_existing_borough_matches(borough, synth) and (borough / "raw" / "manifest.json").is_file()):
            summary = generate_borough(borough, synth)
            write_raw_extracts(summary.out_dir, synth.seed)
    if args.reuse_linked and (borough / "linked" / "link_quality.json").is_file():
        linked_dir = borough / "linked"
        quality = json.loads((linked_dir / "link_quality.json").read_text(encoding="utf-8"))
    else:
        linked_dir, quality = _ingest_and_link(config.model_copy(update={"synth": synth}), borough, _Timed)

    results: dict[str, dict[str, object]] = {}
    predictions: dict[str, object] = {}
    for name, data_dir in (("truth", borough), ("linked", linked_dir)):
        with _Timed(f"features_{name}"):
            matrix, _ = build_or_reuse_feature_matrix(config, data_dir=data_dir, out=work / f"matrix-{name}.parquet")
        with _Timed(f"train_{name}"):
            trained = train_model(config, data_dir=data_dir, matrix=matrix)
        model = trained.metrics["summary"]["model"]
        predictions[name] = trained.test_predictions
        # How much the escalation model itself uses the door-replacement features (total gain share, best rank).
        booster = trained.model.booster
        gain = dict(zip(booster.feature_name(), booster.feature_importance("gain"))) if booster is not None else {}
        ranked = sorted(gain, key=lambda f: -gain[f])
        door = [f for f in ranked if "door_replacement" in f]
        total = sum(gain.values()) or 1.0
        door_use = {"features": len(door), "gain_share": round(sum(gain[f] for f in door) / total, 4),
                    "best_rank": ranked.index(door[0]) + 1 if door else None, "of": len(ranked),
                    "top_features": ranked[:5]}
        results[name] = {
            "rows": len(matrix.frame),
            "positives": int(matrix.frame["label"].fillna(0).sum()) if "label" in matrix.frame else None,
            **{m: model[m] for m in ("roc_auc", "average_precision", "precision_at_capacity") if m in model},
            "door_replacement_use": door_use,
        }
    auc = {name: results[name]["roc_auc"]["value"] for name in results}  # type: ignore[index]
    import pandas as pd

    from earlysignal.linkage.cost import like_for_like, linked_resident_of_true_person
    from earlysignal.modeling.metrics import capacity_k

    links = pd.read_parquet(linked_dir / "person_links.parquet", columns=["source", "record_id", "resident_id"])
    truth = pd.read_parquet(borough / "ground_truth" / "raw_records.parquet", columns=["source", "record_id", "resident_id"])
    linked_of_true = linked_resident_of_true_person(links, truth.rename(columns={"resident_id": "true_id"}))
    same_rows = like_for_like(predictions["truth"], predictions["linked"], linked_of_true,  # type: ignore[arg-type]
                              lambda n: capacity_k(n, config.capacity), seed=config.project.seed)
    print(json.dumps({
        "residents": synth.residents, "years": synth.years, "seed": synth.seed,
        "label": config.label.name,
        "auc_truth": auc["truth"], "auc_linked": auc["linked"], "auc_cost": round(auc["truth"] - auc["linked"], 4),
        "results": results,
        "like_for_like": same_rows,
        "link": {k: quality.get(k) for k in ("ground_truth", "records", "residents", "threshold")},
        "seconds": seconds,
        "machine": f"{platform.machine()} {os.cpu_count()} cores", "load": os.getloadavg(),
    }, default=str))


if __name__ == "__main__":
    main()
