"""The scoring protocol's strata and the controls, pinned on planted units whose truth is known:
a context rule that only hard negatives expose, a shuffled-explanation null near zero, neurons
matched to the features' density, a random-direction dictionary, the token-lookup ceiling of a
lexical vs a random unit, and CIs that stay honest for scores on a grid."""

from __future__ import annotations

import asyncio
import random
import statistics
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from autointerp.controls import (
    SHUFFLED_EXPLAINER,
    density_matched_k,
    random_direction_sae,
    random_init_subject,
    shuffled_explanations,
    top_k_per_token,
)
from autointerp.errors import UserError
from autointerp.explainers import OfflineExplainer
from autointerp.records import ActivationExample, CatalogEntry, ExampleScore, Score, UnitHarvest
from autointerp.scoring import SCORER_CONFIGS, SCORERS, score_simulation
from autointerp.scoring.ceiling import lookup_ceiling
from autointerp.scoring.fuzzing import FuzzingScorerConfig, score_fuzzing
from autointerp.simulators import OfflineSimulator
from autointerp.testing.planted import FILLER, PlantedUnit, planted_harvest, planted_units
from autointerp.validity import example_draws, slim_entry, summarize
from autointerp.validity_report import build_report
from sae.autoencoder import SAEConfig, SparseAutoencoder
from sae.subject.models import SubjectModel

GATED = PlantedUnit(index=7, triggers={" river": 5.0}, context={" river": " the"})


def with_hard_negatives(harvest: UnitHarvest, token: str, n: int = 8, seed: int = 0) -> UnitHarvest:
    """Add, to both splits, windows holding `token` right after a filler word other than " the"
    (the gated unit's context), where it therefore stays silent."""
    rng = random.Random(seed)
    examples = list(harvest.examples)
    for split in ("explain", "score"):
        for i in range(n):
            tokens = [rng.choice([f for f in FILLER if f not in (" the", token)]) for _ in range(24)]
            tokens[12] = token
            examples.append(
                ActivationExample(
                    window_id=9_000_000 + i + (100 if split == "score" else 0), tokens=tokens,
                    activations=[0.0] * 24, split=split, sampling="hard_negative",
                )
            )  # fmt: skip
    return harvest.model_copy(update={"examples": examples})


def test_hard_negatives_expose_an_explanation_that_ignores_the_context() -> None:
    harvest = with_hard_negatives(planted_harvest(GATED), " river")
    right = OfflineExplainer().explain_now(harvest)
    token_only = right.model_copy(update={"text": 'fires on " river"'})
    detect = SCORERS["detection"]
    good = asyncio.run(detect(harvest, right, OfflineSimulator()))
    bad = asyncio.run(detect(harvest, token_only, OfflineSimulator()))
    assert {d.sampling for d in good.details} >= {"top", "quantile", "hard_negative"}
    assert bad.parts["hard_negative"] == 0.0  # it says " river" fires everywhere
    assert good.parts["hard_negative"] >= 0.75 > bad.parts["hard_negative"]
    assert good.value > bad.value
    simulated = asyncio.run(score_simulation(harvest, right, OfflineSimulator()))
    assert simulated.parts["hard_negative"] is None  # silent windows: a correlation is undefined there
    assert simulated.parts["top"] > 0.8 and simulated.parts["bills"] is not None


def test_shuffled_explanations_score_near_zero_and_nobody_keeps_their_own() -> None:
    units = [PlantedUnit(index=i, triggers={w: 5.0}) for i, w in enumerate(FILLER[30:50])]
    harvests = {u.index: planted_harvest(u) for u in units}
    explanations = [OfflineExplainer().explain_now(h) for h in harvests.values()]
    shuffled = shuffled_explanations(explanations, seed=3)
    assert len(shuffled) == len(units)
    own = {e.unit_index: e.text for e in explanations}
    assert all(s.text != own[s.unit_index] and s.meta["from_unit"] != s.unit_index for s in shuffled)
    assert {s.explainer for s in shuffled} == {SHUFFLED_EXPLAINER}
    assert len({s.settings_hash for s in shuffled}) == 1 and shuffled[0].settings_hash != explanations[0].settings_hash
    real = [asyncio.run(score_simulation(harvests[e.unit_index], e, OfflineSimulator())).value for e in explanations]
    null = [asyncio.run(score_simulation(harvests[s.unit_index], s, OfflineSimulator())).value for s in shuffled]
    assert statistics.median(real) > 0.8
    assert abs(statistics.median(null)) <= 0.05


def test_density_matched_neurons_keep_k_per_token() -> None:
    acts = torch.relu(torch.randn(3, 16, 512)) + 0.01  # every neuron positive: top-k decides alone
    kept = top_k_per_token(4)(torch.zeros(3, 16, dtype=torch.long), acts)
    assert ((kept > 0).sum(-1) == 4).all()
    assert torch.equal(kept[kept > 0], acts[kept > 0])
    assert kept.max(-1).values.equal(acts.max(-1).values)
    assert density_matched_k(512, 4096, 32.0) == 4 and density_matched_k(512, 65536, 8.0) == 1


def test_random_direction_dictionary_is_sparse_unit_norm_and_untrained() -> None:
    trained = SparseAutoencoder(SAEConfig(architecture="topk", d_in=64, d_sae=256, k=8))
    with torch.no_grad():
        trained.b_dec.copy_(torch.randn(64))
    control = random_direction_sae(trained, seed=1)
    torch.testing.assert_close(control.W_dec.norm(dim=1), torch.ones(256))
    assert torch.equal(control.W_enc, control.W_dec.t()) and torch.equal(control.b_dec, trained.b_dec)
    assert not torch.allclose(control.W_dec, trained.W_dec) and control.cfg.k == 8
    codes = control.encode(torch.randn(32, 64))
    assert ((codes > 0).sum(-1) <= 8).all() and (codes > 0).any()
    again = random_direction_sae(trained, seed=1)
    assert torch.equal(again.W_dec, control.W_dec)


def test_random_init_subject_has_the_architecture_but_not_the_weights(subject: SubjectModel) -> None:
    random_model = random_init_subject(subject, seed=0)
    trained = dict(subject.model.named_parameters())
    for name, param in random_model.model.named_parameters():
        assert param.shape == trained[name].shape
    assert not torch.allclose(random_model.model.state_dict()["embed.weight"], trained["embed.weight"])
    tokens = torch.randint(0, 4000, (2, 16))
    assert (
        random_model.activations(tokens, "blocks.0.mlp.act").shape
        == subject.activations(tokens, "blocks.0.mlp.act").shape
    )
    with pytest.raises(UserError, match="built-in"):
        random_init_subject(SubjectModel("gpt2", torch.nn.Linear(2, 2), subject.tokenizer, 64, subject.logits_fn), 0)


def test_lookup_ceiling_separates_a_lexical_unit_from_noise() -> None:
    lexical = planted_harvest(planted_units(3)[0])
    assert lookup_ceiling(lexical)["all"] > 0.9
    rng = random.Random(0)
    noisy = lexical.model_copy(deep=True)
    for example in noisy.examples:  # activations no longer follow the tokens
        example.activations = [rng.choice([0.0, 0.0, 0.0, 3.0]) for _ in example.tokens]
    assert abs(lookup_ceiling(noisy)["all"]) < 0.3


def test_fuzzing_marks_one_token_per_window_for_dense_and_sparse_units() -> None:
    class Recording(OfflineSimulator):
        seen: ClassVar[list] = []

        async def fuzz(self, explanation, examples):
            Recording.seen.extend(examples)
            return await super().fuzz(explanation, examples)

    for unit in (
        PlantedUnit(index=1, triggers={" river": 5.0}, noise_rate=0.9),
        PlantedUnit(index=2, triggers={" river": 5.0}),
    ):
        harvest = planted_harvest(unit)
        explanation = OfflineExplainer().explain_now(harvest)
        Recording.seen = []
        score = asyncio.run(score_fuzzing(harvest, explanation, Recording()))
        assert not score.failed and {len(e.highlighted) for e in Recording.seen} == {1}
        v1 = asyncio.run(score_fuzzing(harvest, explanation, Recording(), FuzzingScorerConfig(protocol=1)))
        assert v1.settings_hash != score.settings_hash


def test_grid_valued_scores_get_a_ci_from_their_examples() -> None:
    scores = []
    for unit in range(40):  # every unit answers 9 of 10 right: the value sits on a 0.05 grid
        details = [ExampleScore(window_id=i, sampling="top", predicted=1.0, actual=1.0, correct=True) for i in range(5)]
        details += [
            ExampleScore(window_id=5 + i, sampling="random", predicted=float(i == 0), actual=0.0, correct=i != 0)
            for i in range(5)
        ]
        scores.append(Score(unit_kind="feature", unit_index=unit, explanation_settings_hash="e", scorer="detection",
                            simulator="offline", value=0.9, details=details))  # fmt: skip
    values = [s.value for s in scores]
    units_only = summarize(values, "grid")
    assert units_only.mean_ci95 == (0.9, 0.9)
    two_level = summarize(values, "grid", draws=np.stack([example_draws(s) for s in scores]))
    low, high = two_level.mean_ci95
    assert low < 0.9 - 0.005 and high > 0.9 - 0.02 and high - low > 0.01


def scored_catalog() -> list[CatalogEntry]:
    """Planted units, half filed as neurons and half as features, explained and scored offline."""
    explainer, simulator = OfflineExplainer(), OfflineSimulator()
    entries = []
    for i, unit in enumerate(planted_units(16)):
        harvest = planted_harvest(unit).model_copy(update={"kind": "neuron" if i % 2 else "feature", "index": i})
        explanation = explainer.explain_now(harvest)
        scores = [
            asyncio.run(SCORERS[name](harvest, explanation, simulator, SCORER_CONFIGS[name]()))
            for name in ("simulation", "detection", "fuzzing")
        ]
        entries.append(CatalogEntry(source="planted", harvest=harvest, explanations=[explanation], scores=scores))
    return entries


def test_slim_entries_give_the_report_full_entries_give(tmp_path: Path) -> None:
    """The report read from slim entries (no examples, no per-example details: what a streamed export
    keeps in memory) is the report read from the whole units."""
    entries = scored_catalog()
    full = build_report(entries, "simulation", None, None, tmp_path / "full")
    slim = build_report([slim_entry(e) for e in entries], "simulation", None, None, tmp_path / "slim")
    assert slim.model_dump() == full.model_dump()
    assert slim.ceiling and slim.uncertainty and full.protocol_version == 2
