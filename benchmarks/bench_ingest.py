"""Benchmark: `earlysignal ingest` on the raw extracts of a synthetic borough.

Generates (once, into --work) a borough and its raw extracts (`synth --raw`), then ingests them with
the repository's conf/sources mappings, each run in a fresh child process (so peak memory is that run's
own ru_maxrss). Prints the time to write the raw extracts, every ingest run's wall time, the median, the
peak RSS, the rows read and the output row counts. Not run by CI.

    .venv/bin/python benchmarks/bench_ingest.py                               # 250k residents, 10 years, 3 runs
    .venv/bin/python benchmarks/bench_ingest.py --residents 50000 --repeat 1  # the demo size
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

MAKE = """
import json, resource, sys, time
from pathlib import Path
from earlysignal.config import SynthSection
from earlysignal.synth import generate_borough
from earlysignal.synth.raw_extracts import write_raw_extracts
residents, years, seed, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
t0 = time.perf_counter()
generate_borough(out, SynthSection(residents=residents, years=years, seed=seed))
t1 = time.perf_counter()
counts = write_raw_extracts(out, seed)
t2 = time.perf_counter()
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"synth_s": t1 - t0, "raw_s": t2 - t1, "peak_rss_mb": peak_mb, "raw_rows": sum(counts.values())}))
"""

INGEST = """
import json, resource, sys, time
from pathlib import Path
from earlysignal.dictionary import load_dictionary, packaged_dictionary_path
DICTIONARY = load_dictionary(packaged_dictionary_path())
EVENT_VOCABULARY, OUTCOME_TYPES = DICTIONARY.event_types_by_source(), tuple(DICTIONARY.outcomes)
from earlysignal.ingest import ingest
raw, out = Path(sys.argv[1]), Path(sys.argv[2])
mappings = sorted(Path("conf/sources").glob("*.yaml"))
start = time.perf_counter()
summary = ingest(raw, out, mappings, EVENT_VOCABULARY, OUTCOME_TYPES)
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024,
                  "read": sum(r.read for r in summary.reports.values()), "rows": summary.row_counts}))
"""


def _child(code: str, *args: str) -> dict:
    result = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True, cwd=REPO)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1])


def main() -> None:
    """Parse arguments, run the benchmark, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--residents", type=int, default=250_000)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None, help="Folder for the borough (default: a temporary one).")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, load {os.getloadavg()}")
    if (work / "borough" / "raw" / "manifest.json").exists():
        print(f"reusing the borough and raw extracts in {work / 'borough'}")
    else:
        made = _child(MAKE, str(args.residents), str(args.years), str(args.seed), str(work / "borough"))
        print(f"synth {made['synth_s']:.1f}s, raw extracts {made['raw_s']:.1f}s ({made['raw_rows']:,} rows), "
              f"peak RSS {made['peak_rss_mb']:.0f} MB")
    runs = []
    for i in range(args.repeat):
        started = time.perf_counter()
        run = _child(INGEST, str(work / "borough" / "raw"), str(work / f"ingested_{i}"))
        run["process_s"] = time.perf_counter() - started
        runs.append(run)
        print(f"ingest run {i + 1}: {run['wall_s']:.1f}s wall, {run['cpu_s']:.1f}s CPU "
              f"({run['process_s']:.1f}s wall with start-up), "
              f"peak RSS {run['peak_rss_mb']:.0f} MB, {run['read']:,} rows read")
    print(f"median ingest {statistics.median(r['wall_s'] for r in runs):.1f}s; max peak RSS "
          f"{max(r['peak_rss_mb'] for r in runs):.0f} MB; outputs {runs[-1]['rows']}; load after {os.getloadavg()}")


if __name__ == "__main__":
    main()
