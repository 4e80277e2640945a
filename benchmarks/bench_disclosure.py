"""What complementary suppression costs a release: build_release with and without close_differencing.

Two test dates of N residents each (tests/test_release_bundle.evaluation_rows: a weak second date, a 2%
'Mixed' group), k = 5% of N, the repository config (sex, ethnicity, age band, disability, sex + ethnicity).
Reports the median of REPEATS builds, the rounds taken and what was withheld.

    python benchmarks/bench_disclosure.py [N ...]
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

REPEATS = 3


def main(sizes: list[int]) -> None:
    from test_release_bundle import evaluation_rows

    import earlysignal.audit.fairness as fairness_module
    import earlysignal.federation.bundle as bundle_module
    from earlysignal.audit.differencing import attack_release
    from earlysignal.config import load_config

    base = load_config(REPO / "conf" / "borough.yaml")
    for n in sizes:
        config = base.model_copy(update={
            "capacity": base.capacity.model_copy(update={"k": n // 20, "top_percent": None}),
            "training": base.training.model_copy(update={"bootstrap": 20}),
            "audit": base.audit.model_copy(update={"bootstrap": 20}),
        })
        rows = evaluation_rows(seed=0)
        if n != 2000:
            import pandas as pd
            rows = pd.concat([evaluation_rows(seed=s) for s in range(max(1, n // 2000))], ignore_index=True)
        timings = {}
        for label, protect in (("without", False), ("with", True)):
            saved = (bundle_module.close_differencing, fairness_module.protect_group_tables)
            if not protect:
                bundle_module.close_differencing = lambda document, *args: document
                fairness_module.protect_group_tables = lambda tables, *args: tables
            try:
                times = []
                for _ in range(REPEATS):
                    start = time.perf_counter()
                    release = bundle_module.build_release(rows, config=config, borough="B", model={"name": "m"})
                    times.append(time.perf_counter() - start)
            finally:
                bundle_module.close_differencing, fairness_module.protect_group_tables = saved
            timings[label] = (statistics.median(times), release)
        hidden = lambda r: sum(g.get("suppressed") is not None for b in r["fairness"]["characteristics"]  # noqa: E731
                               for g in b.get("groups", []))
        before, after = timings["without"][1], timings["with"][1]
        leaks_before = sum(b.worked_back for b in attack_release(before))
        print(f"rows {len(rows):>7}  build without {timings['without'][0]:.2f}s  with {timings['with'][0]:.2f}s  "
              f"groups hidden {hidden(before)} -> {hidden(after)}  counts worked back before {leaks_before}, "
              f"after {sum(b.worked_back for b in attack_release(after))}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [2000, 8000])
