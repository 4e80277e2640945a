"""Where in the list the model and the logistic baseline differ: escalations found in the first n of each test
as_of, summed over splits, from the score files `model_selection.py` writes (not run by CI).

    .venv/bin/python benchmarks/model_selection_topk.py /work/data/model-sel/run1-*-current.npz
"""

from __future__ import annotations

import sys
from collections import defaultdict

import numpy as np

TOPS = (5, 10, 20, 50, 100, 200, 500, 1000)


def found(y: np.ndarray, score: np.ndarray, n: int) -> int:
    # Stable order on ties by position; the scores here are continuous, so ties are rare.
    return int(y[np.argsort(-score, kind="stable")[:n]].sum())


def main() -> None:
    for path in sys.argv[1:]:
        data = np.load(path)
        splits = sorted({key.split("__")[0] for key in data.files})
        totals: dict[str, list[int]] = defaultdict(lambda: [0] * len(TOPS))
        positives = 0
        for split in splits:
            y = data[f"{split}__y"].astype(int)
            positives += int(y.sum())
            for scorer in ("margin", "logistic"):
                for i, n in enumerate(TOPS):
                    totals[scorer][i] += found(y, data[f"{split}__{scorer}"], n)
        print(path, f"positives {positives} over {len(splits)} splits")
        print("  first n per as_of:", " ".join(f"{n:>5}" for n in TOPS))
        for scorer, label in (("margin", "model"), ("logistic", "logistic")):
            print(f"  {label:>17}:", " ".join(f"{v:>5}" for v in totals[scorer]))


if __name__ == "__main__":
    main()
