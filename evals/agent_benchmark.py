"""Does testing hypotheses beat writing once? Planted units with known rules on the built-in model.

Each planted unit is harvested like a real one; then each method writes an explanation with the same
budget of subject-model calls: the baselines (one_shot, top_quantile, best_of_k, revision; see
autointerp.agent.baselines) and the offline agent. Every explanation is scored on a held-out probe
set generated from the unit's true rule, the offline simulator reading only the text. Two reference
rows: `truth` is the true rule written by the same renderer (what the simulator's language can carry
at best), and `agent_rule` executes the agent's final rule directly (what its text would score if the
simulator read every phrase right).

With `--real DB` it also runs on real units of a catalog (a copy of it is opened; the file is not
written): N neurons and N features drawn with the seed, the one-shot baseline against the agent at
equal budget, each explanation judged on probes generated from itself (its tokens where it says the
unit fires, near-misses where it says not), the unit's own activations the truth; the paired
difference (agent minus one-shot) comes with a bootstrap 95% interval.

    python -m evals.agent_benchmark [--units 50] [--budget 40] [--json] [--real DB --real-units 200]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from autointerp.agent.baselines import BASELINES, extra_windows
from autointerp.agent.counterfactuals import HELDOUT_SNIPPETS, SnippetTokens
from autointerp.agent.evaluate import (
    SOLVED,
    ProbeScore,
    explanation_probes,
    planted_probe_set,
    score_at_targets,
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
from autointerp.agent.probes import (
    CorpusWindows,
    Prober,
    feature_unit,
    neuron_unit,
    planted_unit,
)
from autointerp.agent.render import read_clauses, render
from autointerp.agent.rules import Hypothesis, Vocab
from autointerp.errors import UserError
from autointerp.explainers.offline import OfflineExplainer
from autointerp.store import open_store
from sae.harvest import HarvestConfig
from sae.saelens_format import load_sae
from sae.subject.models import BUILTIN_HOOK, load_subject
from sae.torch_threads import one_torch_thread

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


def run_real(db: str, per_kind: int, seed: int, budget: int) -> dict:
    started = time.perf_counter()
    folder = tempfile.mkdtemp()
    copy = Path(folder) / "catalog.db"
    with sqlite3.connect(db) as src, sqlite3.connect(copy) as dst:  # a consistent copy, WAL included
        src.backup(dst)
    store = open_store(copy)
    source = next((s for s in store.sources() if store.source_config(s).get("sae")), None)
    if source is None:
        raise UserError(f"{db} has no source with an SAE (neurons and features)")
    config = store.source_config(source)
    subject = load_subject(config["subject"]["model"])
    hook = config["subject"]["hook"]
    sae = load_sae(Path(config["sae"]), subject.hook_width(hook))
    agent_corpus = CorpusWindows(subject, offset=0)
    eval_corpus = CorpusWindows(subject, offset=3)
    vocab = agent_corpus.vocab
    heldout = SnippetTokens(subject.tokenizer, HELDOUT_SNIPPETS)
    driver = OfflineDriver.for_subject(subject, agent_corpus, OfflineAgentConfig(budget=budget))
    rows = []
    for kind in ("neuron", "feature"):
        alive = [i for k, i in store.unit_keys(source, kind) if k == kind]
        for index in sorted(random.Random(f"{seed}:{kind}").sample(alive, min(per_kind, len(alive)))):
            harvest = store.get_unit(source, kind, index)
            if harvest is None or harvest.stats.max_activation <= 0:
                continue
            unit = neuron_unit(index) if kind == "neuron" else feature_unit(sae, index)
            top = max((a for e in harvest.examples_for("explain") for a in e.activations), default=0.0)
            threshold = OfflineAgentConfig().fire_fraction * top
            initial = OfflineExplainer().explain_now(harvest).text
            extra = extra_windows(initial, agent_corpus, Prober(subject, hook, unit, vocab, budget), threshold)
            texts = {"one_shot": BASELINES["one_shot"](harvest, extra)}
            texts["agent"] = driver.run(harvest, initial, Prober(subject, hook, unit, vocab, budget)).final
            scores = {}
            for name, text in texts.items():
                probes = explanation_probes(
                    read_rule(text, vocab), eval_corpus, heldout, vocab, f"{seed}:{kind}:{index}"
                )
                if not probes:
                    scores[name] = ProbeScore(balanced_accuracy=0.5, correlation=0.0)
                    continue
                acts = Prober(subject, hook, unit, vocab, len(probes)).activations([p.tokens for p in probes])
                actual = [a[p.target] for a, p in zip(acts, probes)]
                scores[name] = score_at_targets(text, probes, actual, threshold, vocab)
            rows.append(
                {"kind": kind, "unit": index, "texts": texts, "scores": {k: v.model_dump() for k, v in scores.items()}}
            )
    store.close()
    return {
        kind: {
            metric: _paired([r for r in rows if r["kind"] == kind], metric)
            for metric in ("balanced_accuracy", "correlation")
        }
        for kind in ("neuron", "feature")
    } | {"seconds": round(time.perf_counter() - started, 1)}


def read_rule(text: str, vocab: Vocab) -> Hypothesis:
    return Hypothesis(clauses=read_clauses(text, vocab))


def _paired(rows: list[dict], metric: str) -> dict:
    """Means of both methods and the agent-minus-one-shot difference with a bootstrap 95% interval."""
    if not rows:
        return {"n": 0}
    agent = np.array([r["scores"]["agent"][metric] for r in rows])
    base = np.array([r["scores"]["one_shot"][metric] for r in rows])
    diff = agent - base
    rng = np.random.default_rng(0)
    boots = diff[rng.integers(0, len(diff), size=(2000, len(diff)))].mean(axis=1)
    return {
        "n": len(rows), "one_shot": round(float(base.mean()), 3), "agent": round(float(agent.mean()), 3),
        "difference": round(float(diff.mean()), 3),
        "ci95": [round(float(np.quantile(boots, 0.025)), 3), round(float(np.quantile(boots, 0.975)), 3)],
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


def print_real(result: dict) -> None:
    print("\nreal units: each explanation on probes generated from itself (agent minus one-shot, bootstrap 95% CI)")
    for kind in ("neuron", "feature"):
        for metric, r in result[kind].items():
            if r.get("n"):
                print(f"{kind:<8} {metric:<18} n={r['n']:<4} one_shot {r['one_shot']:.3f}  agent {r['agent']:.3f}  "
                      f"difference {r['difference']:+.3f} [{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}]")  # fmt: skip
    print(f"{result['seconds']} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=40, help="subject-model calls per unit and method")
    parser.add_argument("--harvest-tokens", type=int, default=100_000)
    parser.add_argument("--probes", type=int, default=40, help="held-out probes per unit")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--real", default=None, metavar="DB", help="also real units of this catalog (read only)")
    parser.add_argument("--real-units", type=int, default=200, help="neurons and features each, for --real")
    args = parser.parse_args(argv)
    try:
        with one_torch_thread():  # probes are single short sequences: more threads cost more than they give
            result = run(args.units, args.seed, args.budget, args.harvest_tokens, args.probes)
            if args.real:
                if not Path(args.real).exists():
                    raise UserError(f"no catalog database at {args.real}")
                result["real"] = run_real(args.real, args.real_units, args.seed, args.budget)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        json.dump({k: v for k, v in result.items() if k != "units"}, sys.stdout)
        print()
        return 0
    print_table(result)
    if args.real:
        print_real(result["real"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
