"""A realistic hand-made catalog for exporter and comparison tests: no model, no store, no LLM.

Each unit gets stats with a histogram, top / quantile / random examples split into explain and score
halves, an explanation, and simulation / detection / fuzzing scores (some failed). Features list the
neurons they are made of and the tokens they promote; features score higher than neurons on average.
"""

from __future__ import annotations

import random

from autointerp.records import (
    ActivationExample,
    CatalogEntry,
    Explanation,
    NeuronWeight,
    Score,
    TokenWeight,
    UnitHarvest,
    UnitKind,
    UnitStats,
)

VOCAB = [
    " the",
    " cat",
    " sat",
    " on",
    " mat",
    "\n",
    "    ",
    "def",
    " foo",
    "(",
    ")",
    ":",
    " return",
    " 42",
    ".",
    ",",
    " and",
    "\t",
    " import",
    " os",
    "  ",
    "é",
    "日本",
]
SOURCE = "builtin/blocks.0.mlp.act/sae-64"
EXPLAINER = "offline-ngram"


def _example(
    rng: random.Random, window_id: int, trigger: str, peak: float, split, sampling, quantile=None, length: int = 16
) -> ActivationExample:
    tokens = [rng.choice(VOCAB) for _ in range(length)]
    activations = [0.0] * length
    if peak > 0:
        at = rng.randrange(length)
        tokens[at] = trigger
        activations[at] = round(peak, 4)
        if at + 1 < length:
            activations[at + 1] = round(peak * 0.3, 4)
    return ActivationExample(
        window_id=window_id, tokens=tokens, activations=activations, split=split, sampling=sampling, quantile=quantile
    )


def make_unit(
    kind: UnitKind,
    index: int,
    rng: random.Random,
    *,
    score_mean: float,
    n_neurons: int,
    trigger: str | None = None,
    explanation: str | None = None,
    source: str = SOURCE,
    window_id_start: int = 0,
    fail_detection: bool = False,
) -> CatalogEntry:
    trigger = trigger if trigger is not None else rng.choice(VOCAB)
    max_act = round(rng.uniform(2.0, 9.0), 3)
    examples: list[ActivationExample] = []
    wid = window_id_start
    for split in ("explain", "score"):
        for k in range(4):
            examples.append(_example(rng, wid, trigger, max_act * (1 - 0.15 * k), split, "top"))
            wid += 1
        for q in range(2):
            examples.append(_example(rng, wid, trigger, max_act * (0.2 + 0.3 * q), split, "quantile", q))
            wid += 1
        examples.append(_example(rng, wid, trigger, 0.0, split, "random"))
        wid += 1
    tokens_seen = 100_000
    active = rng.randint(1, 5000)
    stats = UnitStats(
        tokens_seen=tokens_seen,
        active_count=active,
        density=active / tokens_seen,
        max_activation=max_act,
        mean_activation=round(max_act * active / tokens_seen / 3, 6),
        mean_active_activation=round(max_act / 3, 4),
        histogram_edges=[round(10 ** (-2 + 0.5 * i), 4) for i in range(7)],
        histogram_counts=[rng.randint(0, 400) for _ in range(6)],
    )
    harvest = UnitHarvest(
        kind=kind,
        index=index,
        stats=stats,
        examples=examples,
        promoted_tokens=[TokenWeight(token=t, weight=round(rng.uniform(0.5, 2), 3)) for t in rng.sample(VOCAB, 4)],
        suppressed_tokens=[TokenWeight(token=t, weight=-round(rng.uniform(0.5, 2), 3)) for t in rng.sample(VOCAB, 3)],
        top_neurons=[
            NeuronWeight(neuron=n, weight=round(rng.uniform(-1, 1), 3))
            for n in rng.sample(range(n_neurons), min(3, n_neurons))
        ]
        if kind == "feature"
        else [],
    )
    settings = f"h-{kind}-{index}"
    text = explanation if explanation is not None else f"the token {trigger!r} in code or prose"
    expl = Explanation(unit_kind=kind, unit_index=index, text=text, explainer=EXPLAINER, settings_hash=settings)
    scores = []
    for scorer, spread in (("simulation", 0.15), ("detection", 0.1), ("fuzzing", 0.1)):
        failed = scorer == "detection" and fail_detection
        value = None if failed else round(min(1.0, max(-1.0, rng.gauss(score_mean, spread))), 4)
        scores.append(
            Score(
                unit_kind=kind,
                unit_index=index,
                explanation_settings_hash=settings,
                scorer=scorer,
                simulator="offline",
                value=value,
                failed=failed,
                error="simulator returned no numbers" if failed else None,
                parts={} if failed else {"top": value, "random": 0.1},
            )
        )
    return CatalogEntry(source=source, harvest=harvest, explanations=[expl], scores=scores)


def make_catalog(n_neurons: int = 6, n_features: int = 10, seed: int = 0) -> list[CatalogEntry]:
    """Neurons score around 0.3 and features around 0.6 under every scorer; one detection score fails per kind."""
    rng = random.Random(seed)
    entries = []
    for i in range(n_neurons):
        entries.append(
            make_unit(
                "neuron", i, rng, score_mean=0.3, n_neurons=n_neurons, window_id_start=100 * i, fail_detection=(i == 0)
            )
        )
    for i in range(n_features):
        entries.append(
            make_unit(
                "feature",
                i,
                rng,
                score_mean=0.6,
                n_neurons=n_neurons,
                window_id_start=10_000 + 100 * i,
                fail_detection=(i == 0),
            )
        )
    return entries
