"""Replication: the demo's headline numbers across SAE seeds and harvest seeds, with the controls.

For each SAE seed an SAE is trained exactly as the demo trains one (only its seed differs); for
each harvest seed that SAE's units are harvested again (the content split, the random, reservoir
and hard-negative samples all follow the seed). Every run labels all neurons and a seeded sample of
features with the offline explainer and simulator under the scoring protocol, and the first
harvest of each SAE also runs the shuffled, density-matched and random-direction controls (with
--random-model also the random-init model, which trains one more SAE, for the first SAE seed).
The table gives, for every headline number, its mean, standard deviation, minimum and maximum over
the runs, so a reader sees how much of a difference is seed noise.

    python -m evals.validity [--out runs/validity] [--sae-seeds 0,1,2] [--harvest-seeds 0,1]
        [--sae-tokens 1500000] [--harvest-tokens 200000] [--features 512] [--random-model] [--json]

Each run folder is resumable like the demo's: re-running the command redoes nothing finished.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from autointerp.controls import ControlSpec
from autointerp.demo import DEMO_SAE
from autointerp.pipeline import (
    LabelSpec,
    RunConfig,
    SAESpec,
    UnitSelection,
    run_pipeline,
)
from sae.harvest import HarvestConfig


def run_config(out: Path, sae_seed: int, harvest_seed: int, first_harvest: Path, args: argparse.Namespace) -> RunConfig:
    controls: list = []
    if harvest_seed == args.harvest_seeds[0]:
        controls = ["shuffled", "density_matched_neurons", "random_directions"]
        if args.random_model and sae_seed == args.sae_seeds[0]:
            controls.append("random_model")
    sae = SAESpec(
        train=DEMO_SAE.model_copy(update={"seed": sae_seed, "total_tokens": args.sae_tokens}), eval_tokens=50_000
    )
    if out != first_harvest:  # later harvests of the same SAE load it
        sae = SAESpec(path=str(first_harvest / "sae"), eval_tokens=50_000)
    return RunConfig(
        out=str(out),
        sae=sae,
        harvest=HarvestConfig(
            n_tokens=args.harvest_tokens, hard_negative_tokens=args.harvest_tokens // 2, seed=harvest_seed
        ),
        units=UnitSelection(mode="random", n=args.features, seed=harvest_seed),
        label=LabelSpec(explainer="offline", simulator="offline", scorers=["simulation", "detection", "fuzzing"]),
        controls=ControlSpec(run=controls, n_units=256, harvest_tokens=args.harvest_tokens // 2, seed=sae_seed),
        export=False,
        harvest_selected_only=True,  # the same units as a full harvest would label, in a fraction of the time
    )


def headline(report: dict, sae_metrics: dict) -> dict[str, float]:
    """The numbers whose spread the table shows, by name."""
    row: dict[str, float] = {}
    for scorer, c in report["by_scorer"].items():
        row[f"{scorer}: neurons median"] = c["neurons"]["median"]
        row[f"{scorer}: features median"] = c["features"]["median"]
        row[f"{scorer}: features - neurons"] = c["median_difference"]["value"]
        row[f"{scorer}: P(feature > neuron)"] = c["prob_feature_higher"]
    for kind in ("neuron", "feature"):
        for stratum in ("top", "quantile", "random"):
            part = report["strata"].get(kind, {}).get("simulation", {}).get(stratum)
            if part:
                row[f"simulation {stratum} only: {kind}s median"] = part["median"]
        ceiling = report["ceiling"].get(kind, {}).get("ceiling")
        if ceiling:
            row[f"lookup ceiling: {kind}s median"] = ceiling["median"]
    for name, kinds in report["controls"].items():
        for kind, scorers in kinds.items():
            if "simulation" in scorers:
                row[f"control {name}: {kind}s simulation median"] = scorers["simulation"]["median"]
    row["SAE FVU"] = sae_metrics.get("fvu", float("nan"))
    row["SAE loss recovered"] = sae_metrics.get("loss_recovered", float("nan"))
    return row


def spread_table(rows: list[dict[str, float]]) -> list[tuple[str, int, float, float, float, float]]:
    """(metric, runs, mean, sd, min, max) for every metric any run reported."""
    names = list(dict.fromkeys(name for row in rows for name in row))
    table = []
    for name in names:
        values = [row[name] for row in rows if name in row]
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        table.append((name, len(values), statistics.fmean(values), sd, min(values), max(values)))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/validity", help="folder for the run folders and validity.json")
    parser.add_argument("--sae-seeds", default="0,1,2", help="comma list of SAE training seeds")
    parser.add_argument("--harvest-seeds", default="0,1", help="comma list of harvest seeds")
    parser.add_argument(
        "--sae-tokens", type=int, default=DEMO_SAE.total_tokens, help="SAE training tokens (the demo's)"
    )
    parser.add_argument("--harvest-tokens", type=int, default=200_000, help="held-out tokens per harvest")
    parser.add_argument("--features", type=int, default=512, help="features labelled per run (all neurons are)")
    parser.add_argument(
        "--random-model", action="store_true", help="add the random-init model control (trains one more SAE)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    args.sae_seeds = [int(s) for s in args.sae_seeds.split(",")]
    args.harvest_seeds = [int(s) for s in args.harvest_seeds.split(",")]
    root = Path(args.out)
    rows, runs = [], []
    started = time.time()
    for sae_seed in args.sae_seeds:
        first = root / f"sae{sae_seed}_harvest{args.harvest_seeds[0]}"
        for harvest_seed in args.harvest_seeds:
            out = root / f"sae{sae_seed}_harvest{harvest_seed}"
            summary = run_pipeline(run_config(out, sae_seed, harvest_seed, first, args))
            report = json.loads((out / "report.json").read_text())
            rows.append(headline(report, summary.sae_metrics or {}))
            runs.append({"sae_seed": sae_seed, "harvest_seed": harvest_seed, "seconds": summary.stage_seconds})
    table = spread_table(rows)
    result = {
        "runs": runs,
        "minutes": round((time.time() - started) / 60, 1),
        "table": [dict(zip(("metric", "runs", "mean", "sd", "min", "max"), row)) for row in table],
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "validity.json").write_text(json.dumps(result, indent=2))
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"{len(rows)} runs ({len(args.sae_seeds)} SAE seeds x {len(args.harvest_seeds)} harvest seeds) in {result['minutes']} min"
    )
    print(f"{'metric':<48} {'runs':>4} {'mean':>8} {'sd':>7} {'min':>8} {'max':>8}")
    for name, n, mean, sd, low, high in table:
        print(f"{name:<48} {n:>4} {mean:>8.3f} {sd:>7.3f} {low:>8.3f} {high:>8.3f}")


if __name__ == "__main__":
    main()
