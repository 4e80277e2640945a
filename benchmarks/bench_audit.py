"""Benchmark the audit at borough scale: build_audit (fairness, bootstrap, proxy check, importance)
and render_audit_html, on in-memory frames shaped like a borough's training run.

Shape: 4 test as-of dates x 50,000 children = 200,000 test prediction rows with the four protected
attributes; a 20,000-row explanation sample with 230 features and their SHAP contributions (the
training run's cap). MLflow I/O is left out: it is the same download whatever the audit does.

    .venv/bin/python benchmarks/bench_audit.py --repeat 3
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import numpy as np
import pandas as pd

from earlysignal.audit import build_audit
from earlysignal.config import load_config
from earlysignal.report import render_audit_html


def borough_frames(children: int, as_of_count: int, features: int, sample: int, seed: int = 1) -> dict:
    """Predictions, explanation sample, contributions and sidecar metadata shaped like a borough."""
    rng = np.random.default_rng(seed)
    n = children * as_of_count
    ethnicity = rng.choice(["White", "Asian", "Black", "Mixed", "Other", None], n, p=[0.45, 0.2, 0.15, 0.1, 0.05, 0.05])
    score = rng.beta(1, 30, n)
    label = (rng.random(n) < score * 1.2).astype("int8")
    as_of = np.repeat(pd.to_datetime([f"202{4 + i // 4}-{1 + 3 * (i % 4):02d}-01" for i in range(as_of_count)]), children)
    predictions = pd.DataFrame(
        {
            "resident_id": [f"R{i % children:08d}" for i in range(n)],
            "as_of": as_of,
            "split": np.repeat([f"split_{i + 1}" for i in range(as_of_count)], children),
            "label": label,
            "score": score,
        }
    )
    predictions["rank"] = predictions.groupby("as_of")["score"].rank(ascending=False, method="first").astype(int)
    predictions["flagged"] = predictions["rank"] <= 500
    predictions["attr__sex"] = rng.choice(["F", "M"], n)
    predictions["attr__ethnicity"] = pd.array(ethnicity, dtype="string")
    predictions["attr__disability"] = pd.array(rng.choice([True, False, None], n, p=[0.08, 0.88, 0.04]), dtype="boolean")
    predictions["attr__age_band"] = rng.choice(["0-4", "5-10", "11-15", "16-17"], n)
    columns = [f"f{j:03d}" for j in range(features)]
    rows = rng.choice(n, sample, replace=False)
    explain = predictions.iloc[rows].reset_index(drop=True)
    values = pd.DataFrame(rng.poisson(1.0, (sample, features)).astype(float), columns=columns)
    explain = pd.concat([explain, values], axis=1)
    contributions = rng.normal(0, 0.05, (sample, features + 1))
    metadata = {
        "feature_columns": columns,
        "features": [{"name": c, "description": f"N events of kind {c}: {{value}}", "source": "police"} for c in columns],
        "as_of_dates": sorted({str(d.date()) for d in as_of}),
        "rows_per_as_of": {str(d.date()): children for d in pd.unique(as_of)},
        "label_prevalence_per_as_of": {},
        "extract_date": "2026-01-01",
    }
    metrics = {"summary": {}, "splits": [], "success_criterion": {"metric": "precision_at_capacity", "threshold": 0.65}}
    return dict(predictions=predictions, explain_sample=explain, contributions=contributions,
                feature_metadata=metadata, metrics=metrics)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=50_000)
    parser.add_argument("--as-of", type=int, default=4)
    parser.add_argument("--features", type=int, default=230)
    parser.add_argument("--sample", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    config = load_config("conf/borough.yaml")
    frames = borough_frames(args.children, args.as_of, args.features, args.sample)
    build_times, render_times, cpu_times = [], [], []
    for _ in range(args.repeat):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        audit = build_audit(config=config, model={"name": "bench", "version": "1", "run_id": "bench"},
                            approval=None, **frames)
        wall1 = time.perf_counter()
        html = render_audit_html(audit)
        wall2 = time.perf_counter()
        build_times.append(wall1 - wall0)
        render_times.append(wall2 - wall1)
        cpu_times.append(time.process_time() - cpu0)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"rows {len(frames['predictions']):,}; sample {args.sample:,} x {args.features} features; "
          f"bootstrap {config.audit.bootstrap}; characteristics {len(config.audit.protected)} + "
          f"{len(config.audit.intersections)} intersections")
    print(f"build_audit median wall {statistics.median(build_times):.1f} s")
    print(f"render_audit_html median wall {statistics.median(render_times):.1f} s; report {len(html) / 1e6:.1f} MB")
    print(f"build + render median CPU {statistics.median(cpu_times):.1f} s; peak RSS {peak_gb:.2f} GB")


if __name__ == "__main__":
    main()
