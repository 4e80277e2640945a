"""Benchmark the partitioned (bounded-memory) feature build at several population sizes (not run by CI).

    .venv/bin/python benchmarks/bench_partitioned.py --residents 250000 1000000 --budget-gb 1.5
    .venv/bin/python benchmarks/bench_partitioned.py --residents 50000 --partitions 4 --engine spark

For each size a synthetic borough is generated once (cached under --cache), then one child process per
run loads it through the data contract and builds the matrix with `build_partitioned_feature_matrix`
into a temporary folder, so peak RSS (ru_maxrss) is that run's alone. By default the child uses
`build_partitioned_feature_matrix_from_folder` (events validated in batches and read back one partition at
a time); `--input whole` loads the contract's tables whole first, the earlier way. Printed per size: input
rows, partitions, wall and CPU time of loading (validation, events split per partition) and of the build,
RSS after loading and at peak; at the end the growth exponents b of total wall, CPU and peak RSS ~ N^b
fitted by least squares on log-log (needs two sizes). `--data-dir` measures existing borough folders.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _child(args: argparse.Namespace) -> None:
    from earlysignal.config import load_config
    from earlysignal.engines import get_engine

    import logging

    class _WithRss(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
            return f"{dt.datetime.now(dt.timezone.utc):%H:%M:%S} peak RSS {rss:.2f} GB  {record.getMessage()}"

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_WithRss())
    logging.getLogger("earlysignal.features.partition").addHandler(handler)
    logging.getLogger("earlysignal.features.partition").setLevel(logging.INFO)
    config = load_config(args.config)
    config = config.model_copy(update={"build": config.build.model_copy(
        update={"memory_budget_gb": args.budget_gb, "partitions": args.partitions, "engine": args.engine}
    )})
    started = time.perf_counter()
    cpu_start = os.times()
    loaded: dict[str, float] = {}

    def on_loaded(data) -> None:  # type: ignore[no-untyped-def]
        loaded["s"] = time.perf_counter() - started
        loaded["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        loaded["cpu"] = _cpu(cpu_start)
        loaded["residents"] = data.report.tables["residents"].accepted
        loaded["events"] = data.report.tables["events"].accepted

    Path(args.work).mkdir(parents=True, exist_ok=True)  # a fresh --work folder is made, not required
    with tempfile.TemporaryDirectory(dir=args.work) as folder, get_engine(args.engine) as engine:
        if args.input == "whole":
            from earlysignal.contract import load_linked_data
            from earlysignal.features.partition import build_partitioned_feature_matrix

            data = load_linked_data(args.data, config, write_quarantine=False)
            on_loaded(data)
            metadata = build_partitioned_feature_matrix(config, data, Path(folder) / "matrix.parquet", engine=engine)
        elif args.spark_tasks:
            from earlysignal.contract.streaming import StreamedData
            from earlysignal.features import spark_partitions

            # The load ends where the Spark job starts (on_loaded has no hook on this path).
            original = spark_partitions.build_partitioned_feature_matrix_on_spark

            def timed(config, data: StreamedData, *rest, **kw):  # type: ignore[no-untyped-def]
                on_loaded(data)
                return original(config, data, *rest, **kw)

            spark_partitions.build_partitioned_feature_matrix_on_spark = timed
            metadata = spark_partitions.build_partitioned_feature_matrix_from_folder_on_spark(
                config, args.data, Path(folder) / "matrix.parquet", engine.session, write_quarantine=False,
            )
        else:
            from earlysignal.features.partition import build_partitioned_feature_matrix_from_folder

            metadata = build_partitioned_feature_matrix_from_folder(
                config, args.data, Path(folder) / "matrix.parquet", engine=engine, write_quarantine=False,
                on_loaded=on_loaded,
            )
        total_s = time.perf_counter() - started
        on_disk = sum(p.stat().st_size for p in (Path(folder) / "matrix.parquet").glob("part-*"))
    total_cpu = _cpu(cpu_start)
    print("RESULT " + json.dumps({
        "residents": loaded["residents"],
        "events": loaded["events"],
        "rows": int(sum(metadata["partitions"]["rows_per_part"])),
        "feature_columns": len(metadata["feature_columns"]),
        "partitions": metadata["partitions"]["count"],
        "input": args.input,
        "load_s": loaded["s"],
        "load_cpu_s": loaded["cpu"],
        "build_s": total_s - loaded["s"],
        "build_cpu_s": total_cpu - loaded["cpu"],
        "total_s": total_s,
        "total_cpu_s": total_cpu,
        "rss_after_load_gb": loaded["rss"],
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        "parquet_gb": on_disk / 1e9,
        "engine": args.engine,
        "spark_tasks": args.spark_tasks,
        "stages_summed_over_partitions": metadata["timings"],
    }))


def _cpu(since: os.times_result) -> float:
    now = os.times()
    return (now.user - since.user) + (now.system - since.system)


def _borough(residents: int, seed: int, cache: str) -> Path:
    folder = Path(cache) / f"r{residents}-s{seed}"
    if not (folder / "manifest.json").exists():
        from earlysignal.config import SynthSection
        from earlysignal.synth.borough import generate_borough

        print(f"generating a {residents:,}-resident borough in {folder} ...", flush=True)
        started = time.perf_counter()
        generate_borough(folder, SynthSection(residents=residents, seed=seed))
        print(f"  generated in {time.perf_counter() - started:.0f} s", flush=True)
    return folder


def _exponent(sizes: list[float], values: list[float]) -> float:
    import numpy as np

    return float(np.polyfit(np.log(sizes), np.log(values), 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--residents", type=int, nargs="+", default=[250_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--budget-gb", type=float, default=1.5, help="build.memory_budget_gb for the partitioned build")
    parser.add_argument("--partitions", type=int, default=None, help="build.partitions (overrides the budget)")
    parser.add_argument("--engine", default="duckdb", choices=["duckdb", "spark"])
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "earlysignal-bench-features"))
    parser.add_argument("--config", default="conf/borough.yaml")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--input", default="per-partition", choices=["per-partition", "whole"],
                        help="per-partition: events validated in batches and read back per partition (default); "
                        "whole: the contract's tables loaded whole first (the earlier way)")
    parser.add_argument("--spark-tasks", action="store_true",
                        help="with --engine spark: each partition's build in a Spark task (build.spark_tasks)")
    parser.add_argument("--work", default=None, help="folder for the temporary matrix and event files")
    parser.add_argument("--data-dir", nargs="+", default=None,
                        help="existing borough folders to measure instead of generating (one per --residents)")
    parser.add_argument("--progress", default=None, help="file for the child's per-partition progress and errors")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    summary = []
    if args.data_dir and len(args.data_dir) != len(args.residents):
        parser.error("give one --data-dir per --residents")
    for number, residents in enumerate(args.residents):
        folder = Path(args.data_dir[number]) if args.data_dir else _borough(residents, args.seed, args.cache)
        results = []
        for run in range(args.runs):
            before = os.getloadavg()[0]
            command = [sys.executable, __file__, "--child", "--data", str(folder), "--config", args.config,
                       "--budget-gb", str(args.budget_gb), "--engine", args.engine, "--input", args.input]
            if args.work:
                command += ["--work", args.work]
            if args.partitions:
                command += ["--partitions", str(args.partitions)]
            if args.spark_tasks:
                command += ["--spark-tasks"]
            # The child's progress (one line per partition, with its peak RSS so far) goes to --progress.
            with open(args.progress or os.devnull, "a") as progress:
                child = subprocess.run(command, stdout=subprocess.PIPE, stderr=progress, text=True)
            if child.returncode != 0:
                sys.exit(f"the build of {folder} failed (exit {child.returncode}); see {args.progress or 'stderr (pass --progress FILE)'}")
            output = child.stdout
            result = json.loads(next(line for line in output.splitlines() if line.startswith("RESULT "))[7:])
            result["loadavg"] = [before, os.getloadavg()[0]]
            results.append(result)
            print(f"{residents:,} run {run + 1}: {json.dumps(result)}", flush=True)
        median = {key: statistics.median(r[key] for r in results)
                  for key in ("build_s", "build_cpu_s", "peak_rss_gb", "rss_after_load_gb", "load_s", "load_cpu_s",
                              "total_s", "total_cpu_s")}
        summary.append({"synth_residents": residents, **results[0], **median})
    report = {
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "budget_gb": args.budget_gb,
        "sizes": summary,
    }
    if len(summary) >= 2:
        sizes = [s["synth_residents"] for s in summary]
        # Load (validation and splitting the events) and build together: with events read per partition
        # the two are one pipeline.
        report["wall_exponent"] = _exponent(sizes, [s["total_s"] for s in summary])
        report["cpu_exponent"] = _exponent(sizes, [s["total_cpu_s"] for s in summary])
        report["peak_rss_exponent"] = _exponent(sizes, [s["peak_rss_gb"] for s in summary])
        report["build_rss_exponent"] = _exponent(
            sizes, [max(s["peak_rss_gb"] - s["rss_after_load_gb"], 0.01) for s in summary]
        )
    print("SUMMARY " + json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
