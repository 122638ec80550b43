"""The ways of writing an explanation once that the agent must beat, each given the same budget of
subject-model calls: the budget buys corpus windows (half holding a token the harvest's explanation
quotes, half any), run through the unit, that each method uses in its own way.

- one_shot: the offline explainer on the top examples (the extra windows that fire join them);
- top_quantile: on all the explain examples (top, quantile, random, silent, hard negatives) and
  the extra windows;
- best_of_k: k explainer settings, the one whose text the simulator scores best on the windows;
- revision: the harvest's explanation, rewritten once from the examples plus the windows on which
  its text predicted firing wrongly.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from autointerp.agent.probes import CorpusWindows, Prober
from autointerp.agent.render import read_clauses
from autointerp.explainers.offline import OfflineExplainer, OfflineExplainerConfig
from autointerp.records import ActivationExample, Sampling, UnitHarvest
from autointerp.simulators.offline import OfflineSimulator

EVERY: tuple[Sampling, ...] = ("top", "quantile", "random", "silent", "hard_negative")
BEST_OF_K_CONFIGS = [
    OfflineExplainerConfig(),
    OfflineExplainerConfig(use_context=False),
    OfflineExplainerConfig(min_relative_strength=0.3),
    OfflineExplainerConfig(min_support=3),
]


def extra_windows(
    explanation: str, corpus: CorpusWindows, prober: Prober, threshold: float = 0.0
) -> list[ActivationExample]:
    """The budget spent on corpus windows, as explain-split examples: "quantile" where the unit
    fires (above `threshold`), "random" where it does not."""
    quoted = [c.token for c in read_clauses(explanation, corpus.vocab)]
    pattern = "|".join(re.escape(t) for t in quoted[:4]) or r"\w"
    half = prober.remaining // 2
    rows = corpus.search(pattern, half)
    rows += [r for r in corpus.search(r"\w", prober.remaining) if r not in rows][: prober.remaining - len(rows)]
    acts = prober.run(rows, "corpus window for a baseline") if rows else []
    return [
        ActivationExample(
            window_id=-1 - i, tokens=[corpus.vocab.strings[t] for t in row], activations=values, split="explain",
            sampling="quantile" if max(values) > threshold else "random",
        )
        for i, (row, values) in enumerate(zip(rows, acts))
    ]  # fmt: skip


def _with(harvest: UnitHarvest, extra: list[ActivationExample], samplings: tuple[Sampling, ...]) -> UnitHarvest:
    kept = [e for e in harvest.examples_for("explain") if e.sampling in samplings]
    return harvest.model_copy(update={"examples": kept + extra})


def one_shot(harvest: UnitHarvest, extra: list[ActivationExample]) -> str:
    top = [e.model_copy(update={"sampling": "top"}) for e in extra if e.sampling == "quantile"]
    return OfflineExplainer().explain_now(_with(harvest, top, ("top",))).text


def top_quantile(harvest: UnitHarvest, extra: list[ActivationExample]) -> str:
    return OfflineExplainer().explain_now(_with(harvest, extra, EVERY)).text


def best_of_k(harvest: UnitHarvest, extra: list[ActivationExample]) -> str:
    full = _with(harvest, [], EVERY)
    texts = [OfflineExplainer(cfg).explain_now(full).text for cfg in BEST_OF_K_CONFIGS]
    return max(texts, key=lambda t: _agreement(t, extra))


def revision(harvest: UnitHarvest, extra: list[ActivationExample]) -> str:
    full = _with(harvest, [], EVERY)
    first = OfflineExplainer().explain_now(full).text
    simulator = OfflineSimulator()
    wrong = [e for e in extra if _fires(simulator, first, e) != (e.sampling == "quantile")]
    return OfflineExplainer().explain_now(_with(full, wrong, EVERY)).text


def _agreement(text: str, examples: list[ActivationExample]) -> float:
    """How many windows the text gets right (fires or not), the simulator reading it."""
    simulator = OfflineSimulator()
    return sum(_fires(simulator, text, e) == (e.sampling == "quantile") for e in examples)


def _fires(simulator: OfflineSimulator, text: str, example: ActivationExample) -> bool:
    return max(simulator.predict(text, example.tokens), default=0.0) > 0


BASELINES: dict[str, Callable[[UnitHarvest, list[ActivationExample]], str]] = {
    "one_shot": one_shot,
    "top_quantile": top_quantile,
    "best_of_k": best_of_k,
    "revision": revision,
}
