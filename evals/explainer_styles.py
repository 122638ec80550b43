"""Concept-level English vs exact-token tables: the offline explainer with and without token classes.

On a finished run's catalog, every unit (or an evenly spaced sample per kind) is explained twice on the
same explain split, by the default explainer and by the same search limited to exact tokens
(`use_classes=False`), and both are scored by simulation on the same held-out examples with the offline
simulator. Prints, per kind: the median score of each, the share of explanations that name a token
class (and a class or any context such as "after X"), how often the word budget binds, and the mean
parse coverage. Reads the catalog only; copy it first if a run may be writing to it.

    python -m evals.explainer_styles CATALOG.db [--per-kind N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from dataclasses import dataclass, field

from autointerp.explainers.offline import OfflineExplainer, OfflineExplainerConfig
from autointerp.language import ClassOf, parse
from autointerp.records import Explanation, UnitHarvest
from autointerp.scoring import score_simulation
from autointerp.simulators.offline import OfflineSimulator
from autointerp.store import open_store


@dataclass
class Tally:
    scores: list[float] = field(default_factory=list)
    classes: int = 0
    class_or_context: int = 0
    binding: int = 0
    coverage: list[float] = field(default_factory=list)
    units: int = 0

    def add(self, harvest: UnitHarvest, explanation: Explanation, simulator: OfflineSimulator) -> None:
        score = asyncio.run(score_simulation(harvest, explanation, simulator))
        if score.value is not None:
            self.scores.append(score.value)
        items = parse(explanation.text).items
        self.units += 1
        self.classes += any(
            isinstance(i.target, ClassOf) or any(isinstance(c.target, ClassOf) for c in i.conditions) for i in items
        )
        self.class_or_context += any(isinstance(i.target, ClassOf) or i.conditions for i in items)
        self.binding += bool(explanation.meta.get("binding"))
        self.coverage.append(simulator.parse_coverage(explanation.text))

    def line(self, name: str) -> str:
        n = max(self.units, 1)
        median = statistics.median(self.scores) if self.scores else float("nan")
        return (
            f"  {name:9s} median simulation {median:.3f} over {len(self.scores)} scored; "
            f"names a class {self.classes / n:.0%}, a class or context {self.class_or_context / n:.0%}; "
            f"budget binds {self.binding / n:.0%}; mean coverage {statistics.fmean(self.coverage or [0]):.2f}"
        )


def sample(keys: list[int], per_kind: int | None) -> list[int]:
    if per_kind is None or per_kind >= len(keys):
        return keys
    step = len(keys) / per_kind
    return [keys[int(i * step)] for i in range(per_kind)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("catalog")
    parser.add_argument("--per-kind", type=int, default=None, help="evenly spaced units per kind (default: all)")
    args = parser.parse_args(argv)
    styles = {
        "classes": OfflineExplainer(),
        "exact": OfflineExplainer(OfflineExplainerConfig(use_classes=False)),
    }
    simulator = OfflineSimulator()
    store = open_store(args.catalog)
    for source in store.sources():
        print(source)
        for kind in ("neuron", "feature"):
            indices = sample([i for _, i in store.unit_keys(source, kind)], args.per_kind)
            if not indices:
                continue
            tallies = {name: Tally() for name in styles}
            for index in indices:
                harvest = store.get_unit(source, kind, index)
                if harvest is None:
                    continue
                for name, explainer in styles.items():
                    tallies[name].add(harvest, explainer.explain_now(harvest), simulator)
            print(f" {kind}s ({len(indices)})")
            for name, tally in tallies.items():
                print(tally.line(name))
            paired = [a - b for a, b in zip(tallies["classes"].scores, tallies["exact"].scores)]
            if paired and len(tallies["classes"].scores) == len(tallies["exact"].scores):
                print(f"  median of paired differences (classes - exact): {statistics.median(paired):+.3f}")


if __name__ == "__main__":
    main()
