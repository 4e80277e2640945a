"""Benchmark: people whose records disagree on sex, NHS number or UPN, linked with and without the floor.

Two boroughs from one seed: `planted` (the synthetic extracts as written now, with planted disagreements,
synth/identity_noise.py) and `clean` (DisagreementRates.none(): the extracts as written before, where no
person's records ever disagree on those fields). Each is ingested once, then linked (docs/adr/0022):

    clean-trained, clean-floored-P       the clean world: EM's weights as trained; floored at P bits
    planted-trained, planted-floored-P   the planted world, the same
    overconfident-trained                the planted world predicted with the disagreement weights set to
                                         --overconfident (default: those measured on issue 10's trial
                                         borough, sex -42, NHS number -416, UPN -26 bits), as EM gives when
                                         it has never seen a disagreement; the other levels as trained
    overconfident-floored-P              the same, then floored at P bits

for each P of --penalties (default 10 and 6). Prints one line per run and keeps results.json in --work.
Not run by CI.

    .venv/bin/python benchmarks/bench_disagreements.py --work /tmp/bench_disagree --residents 50000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WORLDS = ("clean", "planted", "overconfident")
ISSUE_10_WEIGHTS = "sex=-42,nhs_number=-416,upn=-26"


def _borough(folder: Path, planted: bool, residents: int, years: int, seed: int) -> None:
    from earlysignal.config import load_config, packaged_config_path
    from earlysignal.synth import generate_borough
    from earlysignal.synth.identity_noise import DisagreementRates
    from earlysignal.synth.raw_extracts import write_raw_extracts

    if (folder / "raw" / "manifest.json").exists():
        return
    settings = load_config(packaged_config_path()).synth.model_copy(
        update={"residents": residents, "years": years, "seed": seed})
    generate_borough(folder, settings)
    write_raw_extracts(folder, settings.seed, None if planted else DisagreementRates.none())


def _ingest(borough: Path, ingested: Path) -> None:
    from earlysignal.dictionary import load_dictionary, packaged_dictionary_path
    from earlysignal.ingest import ingest

    if (ingested / "manifest.json").exists():
        return
    dictionary = load_dictionary(packaged_dictionary_path())
    ingest(borough / "raw", ingested, sorted((REPO / "conf" / "sources").glob("*.yaml")),
           dictionary.event_types_by_source(), tuple(dictionary.outcomes))


def _forced(weights: dict[str, float]):
    """floor_disagreement_weights, after setting each named comparison's disagreement weight (bits)."""
    from earlysignal.linkage import people

    original = people.floor_disagreement_weights

    def wrapper(comparisons, columns, max_penalty):  # type: ignore[no-untyped-def]
        for comparison in comparisons:
            bits = weights.get(comparison.output_column_name)
            for level in comparison.comparison_levels:
                if bits is not None and not level.is_null_level and level.sql_condition.strip().upper() == "ELSE":
                    level.m_probability = float(level.u_probability) * 2.0 ** bits
        return original(comparisons, columns, max_penalty)

    return wrapper


def _link(ingested: Path, borough: Path, out: Path, penalty: float | None, forced: dict[str, float] | None) -> dict[str, Any]:
    from earlysignal.config import load_config, packaged_config_path
    from earlysignal.linkage import people
    from earlysignal.linkage.run import run_link

    config = load_config(packaged_config_path())
    # With forced weights, "as trained" is a floor no weight reaches, so the forced weights are what predicts.
    section = config.linkage.model_copy(update={"max_disagreement_penalty": penalty if forced is None or penalty
                                                else 10_000.0})
    config = config.model_copy(update={"linkage": section})
    original = people.floor_disagreement_weights
    if forced is not None:
        people.floor_disagreement_weights = _forced(forced)
    try:
        start, cpu = time.perf_counter(), time.process_time()
        summary = run_link(ingested, out, config, ground_truth=borough / "ground_truth" / "raw_records.parquet")
    finally:
        people.floor_disagreement_weights = original
    quality = summary.quality
    return {"wall_s": round(time.perf_counter() - start, 1), "cpu_s": round(time.process_time() - cpu, 1),
            "weights": {w["comparison"]: w for w in quality["disagreement_weights_floored"]},
            "trained": {(w["comparison"], w["level"]): (w["m_probability"], w["u_probability"])
                        for w in quality["match_weights"] if w["comparison"] in section.disagreement_penalty_columns},
            "truth": {k: quality["ground_truth"][k] for k in ("precision", "recall", "f1", "persons", "persons_split",
                                                                "clusters_mixed")},
            "planted": quality["ground_truth"].get("planted_disagreements")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--residents", type=int, default=50_000)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--work", type=Path, default=Path("data/bench/disagreements"))
    parser.add_argument("--worlds", nargs="*", choices=WORLDS, default=list(WORLDS))
    parser.add_argument("--penalties", nargs="*", type=float, default=[10.0, 6.0])
    parser.add_argument("--overconfident", default=ISSUE_10_WEIGHTS,
                        help="comparison=bits,... set on the trained model of the overconfident runs")
    args = parser.parse_args()
    os.environ.setdefault("EARLYSIGNAL_LINK_SECRET", "bench-" + "0" * 40)
    saved = args.work / "results.json"
    results: dict[str, Any] = json.loads(saved.read_text()) if saved.exists() else {}
    forced_weights = {k: float(v) for k, v in (item.split("=") for item in args.overconfident.split(","))}
    for world in args.worlds:
        data = "clean" if world == "clean" else "planted"
        _borough(args.work / data, data == "planted", args.residents, args.years, args.seed)
        _ingest(args.work / data, args.work / data / "ingested")
        forced = forced_weights if world == "overconfident" else None
        for penalty in (None, *args.penalties):
            variant = f"{world}-trained" if penalty is None else f"{world}-floored-{penalty:g}"
            out = _link(args.work / data / "ingested", args.work / data, args.work / "linked" / variant, penalty, forced)
            out["trained"] = {f"{c} / {lv}": mu for (c, lv), mu in out["trained"].items()}
            results[variant] = out
            saved.write_text(json.dumps(results, indent=1))
            t, p = out["truth"], out["planted"] or {}
            print(f"{variant}: P {t['precision']} R {t['recall']} persons split {t['persons_split']} of {t['persons']}; "
                  f"planted: pairwise P {(p.get('pairwise') or {}).get('precision')} "
                  f"R {(p.get('pairwise') or {}).get('recall')}, persons split "
                  f"{p.get('persons_split')} of {p.get('persons')}; separated by field "
                  f"{[(r['group'], r['separated'], r['records']) for r in p.get('by_field', [])]}; "
                  f"floored {[(k, v['match_weight_trained']) for k, v in out['weights'].items()]}; "
                  f"{out['wall_s']} s wall, {out['cpu_s']} s CPU", flush=True)
    print(f"results: {saved}", file=sys.stderr)


if __name__ == "__main__":
    main()
