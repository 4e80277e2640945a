"""Peak memory of `earlysignal monitor` and `earlysignal release --shipped` with and without a memory budget
(not run by CI).

    flock /work/helpers/bigbench.lock nice -n 10 .venv/bin/python benchmarks/bench_bounded_monitor_release.py \
        --whole whole.yaml --budget budget.yaml --model models:/earlysignal-cpp/1 --scores scores/ \
        --audit audit-home/audit.json --out /work/data/monitorship/bench

The two configs must differ only in their `build` section (the budget one sets build.memory_budget_gb or
build.partitions). Each command runs in its own process under `/usr/bin/time -v`; the script prints wall time,
CPU time (user + system), peak RSS and the 1-minute load average before each, then checks that monitor.json
and release.json (its `generated_at` aside) are the same with and without the budget. The setup (a borough, a
shipped and approved model, past lists scored on the borough) is the caller's: docs/performance.md, "Monitor
and transfer evaluation inside the budget", says how the figures there were made.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path


def timed(command: list[str], log: Path) -> dict[str, float]:
    """Run `command` under /usr/bin/time -v; its wall, CPU and peak RSS (GB, 1024^3 bytes)."""
    load = os.getloadavg()[0]
    result = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True)
    log.write_text(result.stdout + result.stderr, encoding="utf-8")
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}); see {log}")

    def field(name: str) -> str:
        return re.search(rf"{re.escape(name)}: (.+)", result.stderr).group(1).strip()

    parts = [float(p) for p in field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")]
    wall = sum(p * 60**i for i, p in enumerate(reversed(parts)))
    cpu = float(field("User time (seconds)")) + float(field("System time (seconds)"))
    rss = int(field("Maximum resident set size (kbytes)")) * 1024 / 1024**3
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "peak_rss_gb": round(rss, 2), "load": round(load, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--whole", type=Path, required=True, help="config without a build section")
    parser.add_argument("--budget", type=Path, required=True, help="the same config with build.memory_budget_gb")
    parser.add_argument("--model", required=True, help="the shipped, approved model (models:/NAME/N)")
    parser.add_argument("--scores", type=Path, required=True, help="folder of past lists for monitor")
    parser.add_argument("--audit", type=Path, default=None, help="audit.json for monitor's promise")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    cli = str(Path(sys.executable).with_name("earlysignal"))
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    figures = {}
    for name, config in (("whole", args.whole), ("budget", args.budget)):
        # Each run its own release register: the budget release read with the whole one would not compare.
        os.environ["EARLYSIGNAL_RELEASE_REGISTER"] = str(args.out / f"register-{name}")
        monitor = [cli, "monitor", "--config", str(config), "--scores", str(args.scores),
                   "--out", str(args.out / f"monitor-{name}")]
        if args.audit is not None:
            monitor += ["--audit", str(args.audit)]
        figures[f"monitor {name}"] = timed(monitor, args.out / f"monitor-{name}.log")
        print(f"monitor {name}: {figures[f'monitor {name}']}", flush=True)
        release = [cli, "release", "--shipped", "--model", args.model, "--config", str(config),
                   "--out", str(args.out / f"release-{name}")]
        figures[f"release --shipped {name}"] = timed(release, args.out / f"release-{name}.log")
        print(f"release --shipped {name}: {figures[f'release --shipped {name}']}", flush=True)
    monitors = [json.loads((args.out / f"monitor-{n}" / "monitor.json").read_text()) for n in ("whole", "budget")]
    releases = [json.loads((args.out / f"release-{n}" / "release.json").read_text()) for n in ("whole", "budget")]
    for release in releases:
        release.pop("generated_at")
    same = {"monitor.json": monitors[0] == monitors[1], "release.json": releases[0] == releases[1]}
    print(f"identical with and without the budget: {same}")
    (args.out / "figures.json").write_text(json.dumps({"figures": figures, "identical": same}, indent=1))
    if not all(same.values()):
        sys.exit("the outputs differ with the budget")


if __name__ == "__main__":
    main()
