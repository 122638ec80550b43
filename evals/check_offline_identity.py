"""Check that two versions of the offline explainer and simulator give byte-identical records, and
time them: explanations and the three scores of a spread of units of a catalog, written as JSON lines.

Run it once per code version (PYTHONPATH picks the version) and compare the files:

    PYTHONPATH=/path/to/old python evals/check_offline_identity.py CATALOG --out old.jsonl
    PYTHONPATH=. python evals/check_offline_identity.py CATALOG --out new.jsonl --compare old.jsonl

Each unit is also scored with the next unit's explanation (a shuffled explanation, as the control
does), so the simulator reads more than each unit's own text. CPU seconds per unit are printed per
stage (`time.process_time`, this process only).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import autointerp
from autointerp.explainers.offline import OfflineExplainer
from autointerp.records import Explanation, UnitHarvest, UnitKind
from autointerp.scoring import SCORER_CONFIGS, SCORERS
from autointerp.simulators.offline import OfflineSimulator
from autointerp.store import CatalogStore


def spread_units(store: CatalogStore, source: str, count: int) -> list[tuple[UnitKind, int]]:
    """About `count` unit keys, every kind in proportion to its size, evenly spaced within it."""
    keys = store.unit_keys(source)
    step = max(1, len(keys) // count)
    return [(kind, index) for kind, index in keys[::step]]


async def score_all(harvests: list[UnitHarvest], explanations: list[Explanation]) -> list[str]:
    simulator = OfflineSimulator()
    configs = {name: config() for name, config in SCORER_CONFIGS.items()}
    lines = []
    for k, harvest in enumerate(harvests):
        for explanation in (explanations[k], explanations[(k + 1) % len(explanations)]):
            for name, scorer in SCORERS.items():
                score = await scorer(harvest, explanation, simulator, configs[name])
                lines.append(score.model_dump_json())
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("catalog")
    parser.add_argument("--units", type=int, default=300)
    parser.add_argument("--out", required=True, help="JSON lines: every explanation, then every score")
    parser.add_argument("--compare", help="an earlier --out file that must be identical")
    args = parser.parse_args()

    store = CatalogStore(args.catalog)
    source = store.sources()[0]
    harvests = [store.get_unit(source, kind, index) for kind, index in spread_units(store, source, args.units)]
    units = [h for h in harvests if h is not None]
    explainer = OfflineExplainer()

    start = time.process_time()
    explanations = [explainer.explain_now(h) for h in units]
    explain_s = time.process_time() - start
    start = time.process_time()
    score_lines = asyncio.run(score_all(units, explanations))
    score_s = time.process_time() - start

    lines = [e.model_dump_json() for e in explanations] + score_lines
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(
        json.dumps(
            {
                "code": str(Path(autointerp.__file__).parent),
                "units": len(units),
                "explain_ms_per_unit": round(1000 * explain_s / len(units), 2),
                "score_ms_per_unit": round(1000 * score_s / len(units), 2),  # 2 explanations x 3 scorers
            }
        )
    )
    if args.compare:
        old = Path(args.compare).read_text().splitlines()
        differing = [i for i, (a, b) in enumerate(zip(old, lines)) if a != b]
        if len(old) != len(lines) or differing:
            print(f"DIFFERENT: {len(differing)} of {len(lines)} records, lengths {len(old)} vs {len(lines)}")
            sys.exit(1)
        print(f"identical: {len(lines)} records")


if __name__ == "__main__":
    main()
