"""The markdown table of `model_selection.py` results (docs/modeling.md), one row per world and variant.

    .venv/bin/python benchmarks/model_selection_table.py /work/data/model-sel/run1-*.json
"""

from __future__ import annotations

import json
import re
import sys


def cell(entry: list[float], digits: int) -> str:
    value, low, high = entry
    return f"{value:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def signed(entry: list[float], digits: int) -> str:
    value, low, high = entry
    return f"{value:+.{digits}f} ({low:+.{digits}f} to {high:+.{digits}f})"


def main() -> None:
    print("| world | label | variant | val. positives | model AUC | logistic AUC | AUC diff | model AP | logistic AP "
          "| AP diff | model lift | logistic lift | lift diff |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for path in sys.argv[1:]:
        report = json.load(open(path))
        world = re.search(r"s(\d+)", report["matrix"].split("/")[-2]).group(0)
        for name, v in report["variants"].items():
            s = v["summary"]
            print(f"| {world} | {report['label']} | {name} | {sum(v['validation_positives'])} "
                  f"| {cell(s['model']['roc_auc'], 3)} | {cell(s['logistic']['roc_auc'], 3)} | {signed(s['diff']['roc_auc'], 3)} "
                  f"| {cell(s['model']['average_precision'], 3)} | {cell(s['logistic']['average_precision'], 3)} "
                  f"| {signed(s['diff']['average_precision'], 3)} "
                  f"| {cell(s['model']['lift_at_capacity'], 1)} | {cell(s['logistic']['lift_at_capacity'], 1)} "
                  f"| {signed(s['diff']['lift_at_capacity'], 1)} |")


if __name__ == "__main__":
    main()
