"""Does testing hypotheses beat writing once? Planted units with known rules on the built-in model.

Each planted unit is harvested like a real one; then each method writes an explanation with the same
budget of subject-model calls: the baselines (one_shot, top_quantile, best_of_k, revision; see
autointerp.agent.baselines) and the offline agent. Every explanation is scored on a held-out probe
set generated from the unit's true rule, the offline simulator reading only the text. Two reference
rows: `truth` is the true rule written by the same renderer (what the simulator's language can carry
at best), and `agent_rule` executes the agent's final rule directly (what its text would score if the
simulator read every phrase right).

    python -m evals.agent_benchmark [--units 50] [--budget 40] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from autointerp.agent.baselines import BASELINES, extra_windows
from autointerp.agent.counterfactuals import HELDOUT_SNIPPETS, SnippetTokens
from autointerp.agent.evaluate import (
    SOLVED,
    ProbeScore,
    planted_probe_set,
    score_rule,
    score_text,
)
from autointerp.agent.offline_driver import OfflineAgentConfig, OfflineDriver
from autointerp.agent.planted import (
    FAMILIES,
    generate_planted,
    harvest_planted,
    sample_stats,
)
from autointerp.agent.probes import CorpusWindows, Prober, planted_unit
from autointerp.agent.render import render
from autointerp.explainers.offline import OfflineExplainer
from sae.harvest import HarvestConfig
from sae.subject.models import BUILTIN_HOOK, load_subject

METHODS = [*BASELINES, "agent"]
REFERENCES = ["truth", "agent_rule"]


def run(units: int, seed: int, budget: int, harvest_tokens: int, n_probes: int) -> dict:
    started = time.perf_counter()
    subject = load_subject("builtin")
    planted = generate_planted(sample_stats(subject), units, seed)
    cfg = HarvestConfig(n_tokens=harvest_tokens, hard_negative_tokens=harvest_tokens, seed=seed)
    harvests = harvest_planted(subject, BUILTIN_HOOK, planted, cfg)
    agent_corpus = CorpusWindows(subject, offset=0)
    eval_corpus = CorpusWindows(subject, offset=3)  # every 7th window from the 3rd: none the agent reads
    vocab = agent_corpus.vocab
    heldout = SnippetTokens(subject.tokenizer, HELDOUT_SNIPPETS)
    driver = OfflineDriver.for_subject(subject, agent_corpus, OfflineAgentConfig(budget=budget))
    rows = []
    for unit, harvest in zip(planted, harvests):
        probes = planted_probe_set(unit, eval_corpus, heldout, vocab, n_probes, seed)
        initial = OfflineExplainer().explain_now(harvest).text
        unit_fn = planted_unit(unit, vocab)
        extra = extra_windows(initial, agent_corpus, Prober(subject, BUILTIN_HOOK, unit_fn, vocab, budget))
        texts = {name: method(harvest, extra) for name, method in BASELINES.items()}
        trace = driver.run(harvest, initial, Prober(subject, BUILTIN_HOOK, unit_fn, vocab, budget))
        texts["agent"] = trace.final
        texts["truth"] = render(unit.rule)
        scores = {name: score_text(text, probes, vocab) for name, text in texts.items()}
        scores["agent_rule"] = score_rule(trace.hypothesis, probes, vocab) if trace.hypothesis else scores["agent"]
        rows.append({"unit": unit.index, "family": unit.family, "variant": unit.variant, "texts": texts,
                     "scores": {k: v.model_dump() for k, v in scores.items()}, "agent_calls": trace.calls})  # fmt: skip
    return {
        "planted": {m: _summary([r for r in rows], m) for m in METHODS + REFERENCES},
        "families": {f: {m: _summary([r for r in rows if r["family"] == f], m) for m in METHODS + REFERENCES} for f in FAMILIES},
        "settings": {"units": units, "seed": seed, "budget": budget, "harvest_tokens": harvest_tokens, "probes": n_probes},
        "seconds": round(time.perf_counter() - started, 1),
        "units": rows,
    }  # fmt: skip


def _summary(rows: list[dict], method: str) -> dict:
    scores = [ProbeScore(**r["scores"][method]) for r in rows]
    if not scores:
        return {"n": 0}
    return {
        "n": len(scores),
        "solved_fraction": round(sum(s.balanced_accuracy >= SOLVED for s in scores) / len(scores), 3),
        "balanced_accuracy": round(statistics.mean(s.balanced_accuracy for s in scores), 3),
        "correlation": round(statistics.mean(s.correlation for s in scores), 3),
    }


def print_table(result: dict) -> None:
    cols = METHODS + REFERENCES
    print(f"planted units: solved fraction (balanced accuracy >= {SOLVED}) / mean held-out correlation")
    print(f"{'family':<14}{'n':>4}  " + "".join(f"{c:>17}" for c in cols))
    for family, per in [*result["families"].items(), ("overall", result["planted"])]:
        n = per["agent"].get("n", 0)
        if not n:
            continue
        cells = "".join(f"{per[c]['solved_fraction']:>10.2f} / {per[c]['correlation']:4.2f}" for c in cols)
        print(f"{family:<14}{n:>4}  {cells}")
    s = result["settings"]
    print(f"\nbudget {s['budget']} subject-model calls per unit and method; {s['probes']} held-out probes per unit; "
          f"{result['seconds']} s")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=40, help="subject-model calls per unit and method")
    parser.add_argument("--harvest-tokens", type=int, default=100_000)
    parser.add_argument("--probes", type=int, default=40, help="held-out probes per unit")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(argv)
    result = run(args.units, args.seed, args.budget, args.harvest_tokens, args.probes)
    if args.json:
        json.dump({k: v for k, v in result.items() if k != "units"}, sys.stdout)
        print()
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
