"""Harvest against brute force: the dense activations of ~10k tokens are small enough to hold in the
test, so every statistic and every kept window is checked against them. Also: the explain/score
split, the example samplings, merging two shards, and a state whose size does not grow."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, fields

import numpy as np
import pytest
import torch

from sae.autoencoder import SAEConfig, SparseAutoencoder
from sae.corpus import open_corpus, select_split
from sae.errors import UserError
from sae.harvest import (
    HarvestConfig,
    KindHarvester,
    column_subset,
    content_in_score_split,
    corpus_part,
    default_units,
    harvest,
    harvest_units,
    hook_neurons,
    in_score_split,
    sae_features,
    unit_records,
    window_in_score_split,
    window_part,
    window_starts,
)
from sae.harvest_checkpoint import HarvestCheckpoint
from sae.harvest_state import (
    HIST_EDGES_LOG10,
    NOT_COUNTED,
    UnitStatsState,
    WindowSlots,
    _carried,
    _fixed_point,
    log_bin,
)
from sae.logit_effects import logit_effects
from sae.streaming import token_batches
from sae.subject.models import BUILTIN_HOOK, SubjectModel
from sae.window_tokens import read_windows
from sae.windows import token_windows

N_TOKENS = 64 * 160
CFG = HarvestConfig(
    n_tokens=N_TOKENS,
    batch_size=32,
    n_top=5,
    n_top_score=4,
    reservoir=6,
    n_quantiles=3,
    per_quantile_explain=1,
    per_quantile_score=1,
    n_random=4,
    n_silent=3,
    example_length=None,
    seed=0,
)


@dataclass
class Dense:
    """Brute force: every window's tokens and activations, batch by batch as the harvest sees them."""

    tokens: torch.Tensor  # [W, ctx]
    acts: dict[str, torch.Tensor]  # kind -> [W, ctx, U], separators zeroed
    batches: list[tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]]  # (window ids, tokens, acts)

    @property
    def window_ids(self) -> torch.Tensor:
        return torch.arange(self.tokens.shape[0])

    @property
    def is_score(self) -> torch.Tensor:
        return in_score_split(self.tokens, self.window_ids, CFG)


def tiny_sae() -> SparseAutoencoder:
    torch.manual_seed(0)
    sae = SparseAutoencoder(SAEConfig(architecture="topk", d_in=512, d_sae=64, k=4))
    with torch.no_grad():  # a spread of densities: some features rare, some common
        sae.b_enc.copy_(torch.linspace(-0.3, 0.1, 64))
    return sae.eval()


@pytest.fixture(scope="module")
def sae() -> SparseAutoencoder:
    return tiny_sae()


@pytest.fixture(scope="module")
def harvested(subject: SubjectModel, sae: SparseAutoencoder) -> dict[str, KindHarvester]:
    return harvest(subject, BUILTIN_HOOK, sae, CFG)


@pytest.fixture(scope="module")
@torch.no_grad()
def dense(subject: SubjectModel, sae: SparseAutoencoder) -> Dense:
    docs = select_split(open_corpus(CFG.corpus), CFG.corpus_split)
    batches = []
    for first, tokens in token_batches(subject, docs, batch_size=CFG.batch_size, max_tokens=N_TOKENS):
        text = (tokens != subject.tokenizer.bos_id)[..., None]
        neurons = subject.activations(tokens, BUILTIN_HOOK) * text
        feats = sae.encode(neurons.reshape(-1, 512)).reshape(*tokens.shape, -1) * text
        ids = torch.arange(first, first + tokens.shape[0])
        batches.append((ids, tokens, {"neuron": neurons, "feature": feats}))
    tokens = torch.cat([b[1] for b in batches])
    acts = {kind: torch.cat([b[2][kind] for b in batches]) for kind in ("neuron", "feature")}
    return Dense(tokens, acts, batches)


KINDS = ["neuron", "feature"]


# --- statistics and kept windows against brute force ------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_stats_match_brute_force(harvested, dense: Dense, kind: str) -> None:
    stats = harvested[kind].state.stats
    acts = dense.acts[kind].reshape(-1, dense.acts[kind].shape[-1])  # [tokens, U]
    assert int(stats.tokens_seen) == acts.shape[0] == N_TOKENS
    assert torch.equal(stats.active, (acts > 0).sum(0))
    assert torch.equal(stats.max, acts.amax(0))
    # each batch is summed in float32, batches are added in float64
    torch.testing.assert_close(stats.totals(), acts.double().sum(0), rtol=1e-5, atol=1e-4)
    tok, unit = (acts > 0).nonzero(as_tuple=True)
    bins = (torch.bucketize(acts[tok, unit].log10(), HIST_EDGES_LOG10) - 1).clamp(0, len(HIST_EDGES_LOG10) - 2)
    expected_hist = torch.zeros_like(stats.hist)
    expected_hist.index_put_((unit, bins), torch.ones_like(bins), accumulate=True)
    assert torch.equal(stats.hist, expected_hist)
    density = (acts > 0).float().mean(0)
    assert ((density > 0) & (density < 1)).any(), "the test needs units that fire on some tokens only"


def _expected_top(window_max: torch.Tensor, in_split: torch.Tensor, n: int) -> tuple[list[float], set[int]]:
    """(the n largest window maxima among firing windows of the split, the ids sure to be among them)."""
    candidates = torch.where(in_split & (window_max > 0), window_max, -torch.inf)
    values, ids = candidates.sort(descending=True, stable=True)
    values, ids = values[:n], ids[:n]
    kept = values > -torch.inf
    values, ids = values[kept], ids[kept]
    # windows tied with the last kept one may be swapped for each other: only the rest are certain
    sure = {int(i) for v, i in zip(values, ids) if len(values) < n or v > values[-1]}
    return values.tolist(), sure


@pytest.mark.parametrize("kind", KINDS)
def test_top_windows_match_brute_force(harvested, dense: Dense, kind: str) -> None:
    h = harvested[kind]
    window_max = dense.acts[kind].amax(dim=1)  # [W, U]
    checked = 0
    for split, in_split, n in (("explain", ~dense.is_score, CFG.n_top), ("score", dense.is_score, CFG.n_top_score)):
        top: WindowSlots = getattr(h.state, split).top
        for unit in range(window_max.shape[1]):
            values, sure = _expected_top(window_max[:, unit], in_split, n)
            kept = top.window_id[unit] >= 0
            got = top.key[unit][kept].sort(descending=True).values.tolist()
            assert got == values, (split, unit)
            ids = top.window_id[unit][kept]
            assert sure <= set(ids.tolist())
            # each kept window carries its own activations
            assert torch.equal(top.acts[unit][kept], dense.acts[kind][ids, :, unit])
            checked += len(ids)
    assert checked > 0


def test_window_tokens_are_read_again_by_id(dense: Dense, subject: SubjectModel) -> None:
    """Slots keep window ids only; the tokens come from the corpus again, the same as the harvest read."""
    ids = torch.tensor([[5, -1, 0], [dense.tokens.shape[0] - 1, 5, 77]])
    windows = read_windows(subject, CFG.corpus, CFG.corpus_split, 64, ids)
    assert windows.ids.tolist() == [0, 5, 77, dense.tokens.shape[0] - 1]
    got = windows.of(ids)
    assert got.shape == (2, 3, 64) and got.dtype == torch.int32
    assert torch.equal(got[ids >= 0].long(), dense.tokens[ids[ids >= 0]])
    assert not got[0, 1].any()  # an empty slot's -1: zeros
    with pytest.raises(UserError, match="no longer holds window 100000000"):
        read_windows(subject, CFG.corpus, CFG.corpus_split, 64, torch.tensor([3, 10**8]))


def test_records_have_exact_windows_in_disjoint_splits(harvested, dense: Dense, subject: SubjectModel, sae) -> None:
    strings = subject.tokenizer.token_strings(range(subject.tokenizer.vocab_size))
    records = list(unit_records("feature", harvested["feature"], subject, BUILTIN_HOOK, sae))
    records += list(unit_records("neuron", harvested["neuron"], subject, BUILTIN_HOOK, units=[0, 5, 17, 300]))
    samplings = set()
    for rec in records:
        acts = dense.acts[rec.kind][..., rec.index]  # [W, ctx]
        explain = {e.window_id for e in rec.examples_for("explain")}
        score = {e.window_id for e in rec.examples_for("score")}
        assert not explain & score
        for ex in rec.examples:
            samplings.add(ex.sampling)
            assert bool(dense.is_score[ex.window_id]) == (ex.split == "score")
            assert ex.start == 0 and ex.tokens == [strings[t] for t in dense.tokens[ex.window_id].tolist()]
            assert ex.activations == pytest.approx(acts[ex.window_id].tolist(), abs=1e-4)
            if ex.sampling in ("top", "quantile"):
                assert ex.max_activation > 0, "top and quantile examples come from firing windows"
        for split in ("explain", "score"):
            tops = [e.max_activation for e in rec.examples_for(split, "top")]
            assert tops == sorted(tops, reverse=True)
        assert rec.stats.active_count == int((acts > 0).sum())
    assert samplings == {"top", "quantile", "random", "silent", "hard_negative"}


@pytest.mark.parametrize("kind", KINDS)
def test_low_windows_are_silent_when_the_unit_is_silent_enough(harvested, dense: Dense, kind: str) -> None:
    h = harvested[kind]
    window_max = dense.acts[kind].amax(dim=1)
    checked_silent = checked_least = 0
    for split, in_split in (("explain", ~dense.is_score), ("score", dense.is_score)):
        low: WindowSlots = getattr(h.state, split).low
        for unit in range(window_max.shape[1]):
            maxima = window_max[in_split, unit]
            ids = low.window_id[unit][low.window_id[unit] >= 0]
            assert len(ids) == min(CFG.n_silent, len(maxima))
            kept_max = window_max[ids, unit]
            if (maxima <= 0).sum() >= CFG.n_silent:
                assert (kept_max <= 0).all(), (split, unit)
                checked_silent += 1
            else:  # every silent window, then the least active ones
                expected = maxima.clamp_min(0).sort().values[: CFG.n_silent]
                assert torch.equal(kept_max.clamp_min(0).sort().values, expected), (split, unit)
                checked_least += 1
            assert all(bool(in_split[i]) for i in ids)
    assert checked_silent > 0 and (kind == "feature" or checked_least > 0)


@pytest.mark.parametrize("kind", KINDS)
def test_quantile_reservoir_holds_firing_windows_of_its_split(harvested, dense: Dense, kind: str) -> None:
    h = harvested[kind]
    window_max = dense.acts[kind].amax(dim=1)
    for split, in_split in (("explain", ~dense.is_score), ("score", dense.is_score)):
        reservoir: WindowSlots = getattr(h.state, split).reservoir
        for unit in range(window_max.shape[1]):
            ids = reservoir.window_id[unit][reservoir.window_id[unit] >= 0]
            firing = int(((window_max[:, unit] > 0) & in_split).sum())
            assert len(ids) == min(CFG.reservoir, firing)
            assert len(set(ids.tolist())) == len(ids)
            assert (window_max[ids, unit] > 0).all() and in_split[ids].all()


def test_random_windows_are_the_same_for_every_unit(harvested, dense: Dense) -> None:
    for kind in KINDS:
        for split, in_split in (("explain", ~dense.is_score), ("score", dense.is_score)):
            ids = harvested[kind].random[split].window_id.sort(dim=1).values
            assert (ids == ids[0]).all() and (ids[0] >= 0).all()
            assert in_split[ids[0]].all() and len(set(ids[0].tolist())) == CFG.n_random


def test_examples_are_cut_around_the_peak(harvested, subject: SubjectModel, sae) -> None:
    short = copy.copy(harvested["feature"])
    short.cfg = CFG.model_copy(update={"example_length": 16})
    records = unit_records("feature", short, subject, BUILTIN_HOOK, sae)
    rec = next(r for r in records if r.examples_for("explain", "top"))
    full = next(unit_records("feature", harvested["feature"], subject, BUILTIN_HOOK, sae, units=[rec.index]))
    whole = {e.window_id: e for e in full.examples}
    for ex in rec.examples:
        assert len(ex.tokens) == len(ex.activations) == 16
        window = whole[ex.window_id]
        assert ex.tokens == window.tokens[ex.start : ex.start + 16]
        if ex.sampling in ("top", "quantile"):
            assert ex.max_activation == window.max_activation, "the peak is inside the kept part"
        else:
            assert ex.start == 64 - 16
    part = window_part(64, 10, "top", 16, None)
    assert part.stop - part.start == 16 and part.start <= 10 < part.stop
    assert window_part(64, 10, "random", None, None) == slice(0, 64)


# --- merging shards, and a state of fixed size ------------------------------------------------------


MERGE_UNITS = 128  # the first 128 neurons (and all 64 features) keep the shard tests quick


def _run(batches, kind: str, generator: torch.Generator) -> KindHarvester:
    h = KindHarvester(min(MERGE_UNITS, batches[0][2][kind].shape[-1]), CFG, 64, torch.device("cpu"))
    for ids, tokens, acts in batches:
        split = in_score_split(tokens, ids, CFG)
        h.update(acts[kind][..., :MERGE_UNITS], ids, split, generator)
    return h


def _state_tensors(h: KindHarvester) -> dict[str, torch.Tensor]:
    out = {f"stats.{f.name}": getattr(h.state.stats, f.name) for f in fields(h.state.stats)}
    for split in ("explain", "score"):
        for slot_field in fields(getattr(h.state, split)):
            slots = getattr(getattr(h.state, split), slot_field.name)
            for f in fields(slots):
                out[f"{split}.{slot_field.name}.{f.name}"] = getattr(slots, f.name)
        for f in fields(h.random[split]):
            out[f"random.{split}.{f.name}"] = getattr(h.random[split], f.name)
    return out


def _same_slots(a: WindowSlots, b: WindowSlots, dense_acts: torch.Tensor) -> None:
    """The same kept keys and windows per unit (in any slot order). Windows tied at the last kept
    key may differ between the two; they must still carry their own activations."""
    key_a, key_b = a.key.sort(dim=1, descending=True).values, b.key.sort(dim=1, descending=True).values
    assert torch.equal(key_a, key_b)
    boundary = key_a[:, -1:]
    sure_a = torch.where(a.key > boundary, a.window_id, -2).sort(dim=1).values
    sure_b = torch.where(b.key > boundary, b.window_id, -2).sort(dim=1).values
    assert torch.equal(sure_a, sure_b)
    per_unit = dense_acts.permute(2, 0, 1)  # [U, W, ctx]
    for slots in (a, b):
        valid = slots.window_id >= 0
        assert torch.equal(valid, slots.key > -torch.inf)
        units = torch.arange(len(valid))[:, None].expand_as(valid)
        assert torch.equal(slots.acts[valid], per_unit[units[valid], slots.window_id[valid]])


@pytest.mark.parametrize("kind", KINDS)
def test_merging_two_halves_equals_one_pass(dense: Dense, kind: str) -> None:
    half = len(dense.batches) // 2
    one_pass = _run(dense.batches, kind, torch.Generator().manual_seed(7))
    # the two shards draw the same random priorities as the single pass did (one generator, same order)
    shared = torch.Generator().manual_seed(7)
    first = _run(dense.batches[:half], kind, shared)
    second = _run(dense.batches[half:], kind, shared)
    first.merge(second)
    stats, expected = first.state.stats, one_pass.state.stats
    for name in ("tokens_seen", "active", "max", "hist", "total"):
        assert torch.equal(getattr(stats, name), getattr(expected, name)), name
    assert torch.equal(stats.total, expected.total)  # fixed point: exact in any order
    acts = dense.acts[kind][..., :MERGE_UNITS]
    for split in ("explain", "score"):
        for slot_field in fields(getattr(one_pass.state, split)):
            _same_slots(
                getattr(getattr(first.state, split), slot_field.name),
                getattr(getattr(one_pass.state, split), slot_field.name),
                acts,
            )
        _same_slots(first.random[split], one_pass.random[split], acts)


def test_state_size_does_not_grow_with_tokens(dense: Dense) -> None:
    generator = torch.Generator().manual_seed(0)
    h = _run(dense.batches[:1], "neuron", generator)
    after_first = {name: (t.shape, t.dtype) for name, t in _state_tensors(h).items()}
    assert int(h.state.stats.tokens_seen) == 32 * 64
    for ids, tokens, acts in dense.batches[1:]:
        split = in_score_split(tokens, ids, CFG)
        h.update(acts["neuron"][..., :MERGE_UNITS], ids, split, generator)
    assert int(h.state.stats.tokens_seen) == N_TOKENS
    assert {name: (t.shape, t.dtype) for name, t in _state_tensors(h).items()} == after_first
    state_bytes = sum(t.numel() * t.element_size() for t in _state_tensors(h).values())
    fresh = KindHarvester(MERGE_UNITS, CFG, 64, torch.device("cpu"))
    assert state_bytes == sum(t.numel() * t.element_size() for t in _state_tensors(fresh).values())


@torch.no_grad()
def test_logit_effects_of_the_builtin_model(harvested, subject: SubjectModel) -> None:
    """A neuron's direct effect: its fc_out column, scaled by ln_f's gain, through the unembedding."""
    model = subject.model
    effects = logit_effects(subject, BUILTIN_HOOK, torch.eye(512)[[3, 40]])
    expected = (model.blocks[0].mlp.fc_out.weight[:, [3, 40]].t() * model.ln_f.weight) @ model.unembed.weight.t()
    torch.testing.assert_close(effects, expected)
    rec = next(unit_records("neuron", harvested["neuron"], subject, BUILTIN_HOOK, units=[40]))
    strings = subject.tokenizer.token_strings(range(subject.tokenizer.vocab_size))
    top = expected[1].topk(CFG.n_logit_tokens).indices.tolist()
    assert [t.token for t in rec.promoted_tokens] == [strings[i] for i in top]
    assert rec.promoted_tokens[0].weight >= rec.promoted_tokens[-1].weight > rec.suppressed_tokens[0].weight


# --- the content split and hard negatives -----------------------------------------------------------


def test_identical_windows_share_a_split_and_near_duplicates_mostly_do() -> None:
    torch.manual_seed(0)
    base = torch.randint(0, 4000, (400, 64))
    same = content_in_score_split(torch.cat([base, base]), 0.5, 0, 16)
    assert torch.equal(same[:400], same[400:])
    assert 0.4 < same[:400].float().mean() < 0.6  # still about half the windows score
    edited = base.clone()
    edited[:, 60:] = torch.randint(0, 4000, (400, 4))  # the last 4 tokens differ: 45 of 49 runs shared
    agree = (content_in_score_split(base, 0.5, 0, 16) == content_in_score_split(edited, 0.5, 0, 16)).float().mean()
    assert agree > 0.85
    by_index = window_in_score_split(torch.arange(800), 0.5, 0)
    assert (by_index[:400] == by_index[400:]).float().mean() < 0.7  # v1's index hash ignores content


def test_hard_negatives_hold_a_trigger_where_the_unit_is_quiet(harvested, dense: Dense, subject: SubjectModel) -> None:
    h = harvested["feature"]
    unit_max = dense.acts["feature"].amax(dim=(0, 1))
    checked = 0
    for split in ("explain", "score"):
        slots = h.hard[split]
        for unit in range(slots.key.shape[0]):
            triggers = set(h.triggers[unit].tolist()) - {-1}
            for slot in (slots.window_id[unit] >= 0).nonzero().squeeze(1).tolist():
                window = int(slots.window_id[unit, slot])
                assert bool(dense.is_score[window]) == (split == "score")
                assert triggers & set(dense.tokens[window].tolist())
                assert dense.acts["feature"][window, :, unit].max() < CFG.quiet_fraction * unit_max[unit]
                checked += 1
    assert checked > 20
    # triggers are the peak tokens of each unit's explain-split top windows
    top = h.state.explain.top
    for unit in range(8):
        kept = (top.window_id[unit] >= 0).nonzero().squeeze(1)
        peaks = {int(dense.tokens[top.window_id[unit, s], top.acts[unit, s].argmax()]) for s in kept.tolist()}
        assert set(h.triggers[unit].tolist()) - {-1} <= peaks
    records = {r.index: r for r in unit_records("feature", h, subject, BUILTIN_HOOK)}
    hard = [e for r in records.values() for e in r.examples if e.sampling == "hard_negative"]
    assert hard and all(max(e.activations) < CFG.quiet_fraction * float(unit_max.max()) + 1e-6 for e in hard)


def test_harvest_units_takes_any_unit_function(subject: SubjectModel) -> None:
    """A unit computed from the tokens alone (fires 2.0 on the token "(") is harvested like any other."""
    (the,) = subject.tokenizer.encode_batch(["("])[0]
    cfg = CFG.model_copy(update={"n_tokens": 64 * 32, "n_hard_negative": 0})

    def planted(tokens: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
        return (tokens == the).float()[..., None] * 2.0

    h = harvest_units(subject, BUILTIN_HOOK, cfg, {"feature": planted})["feature"]
    (record,) = unit_records("feature", h, subject, BUILTIN_HOOK)
    assert record.promoted_tokens == []  # no direction at the hook: no logit effects
    top = record.examples_for("explain", "top")
    assert top and all(e.tokens[e.activations.index(max(e.activations))] == "(" for e in top)


def test_a_column_subset_harvests_those_units_under_their_own_indices(subject: SubjectModel, sae) -> None:
    """A control labelling a sample harvests only it: the same statistics, top windows, logit effects
    and top neurons as the full harvest gives those units, filed under their real indices."""
    cfg = CFG.model_copy(update={"n_tokens": 64 * 64, "n_hard_negative": 0})
    kept = {"feature": [3, 40, 7], "neuron": [300, 5]}
    full = harvest_units(subject, BUILTIN_HOOK, cfg, {"feature": sae_features(sae), "neuron": hook_neurons})
    part = harvest_units(
        subject, BUILTIN_HOOK, cfg,
        {"feature": column_subset(sae_features(sae), kept["feature"]), "neuron": column_subset(hook_neurons, kept["neuron"])},
    )  # fmt: skip
    for kind, indices in kept.items():
        whole = {r.index: r for r in unit_records(kind, full[kind], subject, BUILTIN_HOOK, sae, units=indices)}
        records = list(unit_records(kind, part[kind], subject, BUILTIN_HOOK, sae, indices=indices))
        assert [r.index for r in records] == indices
        for record in records:
            reference = whole[record.index]
            # the same sums, added in another order: equal to float32 rounding
            means = ("mean_activation", "mean_active_activation")
            assert record.stats.model_dump(exclude=set(means)) == reference.stats.model_dump(exclude=set(means))
            for mean in means:
                assert getattr(record.stats, mean) == pytest.approx(getattr(reference.stats, mean), rel=1e-5)
            assert record.promoted_tokens == reference.promoted_tokens
            assert record.top_neurons == reference.top_neurons
            assert record.examples_for("explain", "top") == reference.examples_for("explain", "top")


# --- checkpoint and resume ---------------------------------------------------------------------------


class Killed(Exception):
    """Stands for the process dying in the middle of a harvest."""


def dying(units: dict, after: int) -> dict:
    """The same unit functions, the neurons' failing at batch `after` + 1 (counting both passes)."""
    calls = []

    def neurons(tokens: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        if len(calls) > after:
            raise Killed
        return units["neuron"](tokens, acts)

    return {**units, "neuron": neurons}


@pytest.mark.parametrize("killed_after", [3, 7], ids=["first pass", "hard-negative pass"])
def test_killed_and_resumed_harvest_gives_the_uninterrupted_records(
    harvested, subject: SubjectModel, sae, tmp_path, killed_after: int
) -> None:
    """5 batches per pass (10 in all), a checkpoint every batch: killed, then rerun from the checkpoint."""
    units = default_units(sae)
    checkpoint = HarvestCheckpoint(tmp_path / "harvest.pt", {"harvest": CFG.model_dump()}, every_tokens=2048)
    with pytest.raises(Killed):
        harvest_units(subject, BUILTIN_HOOK, CFG, dying(units, killed_after), checkpoint)
    saved = torch.load(checkpoint.path, weights_only=False)
    assert (saved["phase"], saved["windows"]) == (("harvest", 96) if killed_after == 3 else ("hard negatives", 64))
    # it fails if the rerun reads one batch more than the 10 - killed_after it has left
    resumed = harvest_units(subject, BUILTIN_HOOK, CFG, dying(units, 10 - killed_after), checkpoint)
    for kind in KINDS:
        again = list(unit_records(kind, resumed[kind], subject, BUILTIN_HOOK, sae))
        assert again == list(unit_records(kind, harvested[kind], subject, BUILTIN_HOOK, sae)), kind


def test_a_checkpoint_of_another_harvest_is_ignored(subject: SubjectModel, tmp_path, caplog) -> None:
    cfg = CFG.model_copy(update={"n_tokens": 4096, "n_hard_negative": 0})  # two batches: a save after the first
    ours = HarvestCheckpoint(tmp_path / "harvest.pt", {"harvest": cfg.model_dump()}, every_tokens=1024)
    fresh = harvest_units(subject, BUILTIN_HOOK, cfg, {"neuron": hook_neurons})
    HarvestCheckpoint(ours.path, {"harvest": "other"}).save({"kinds": {}, "phase": "harvest", "windows": 32})
    with caplog.at_level("WARNING", logger="sae.harvest"):
        got = harvest_units(subject, BUILTIN_HOOK, cfg, {"neuron": hook_neurons}, ours)
    assert "written by another harvest" in caplog.text
    assert torch.equal(got["neuron"].state.stats.max, fresh["neuron"].state.stats.max)
    assert torch.load(ours.path, weights_only=False)["key"] == ours.key, "overwritten by this harvest"


# --- which part of a corpus is harvested ------------------------------------------------------------


def test_the_held_out_split_is_for_corpora_an_sae_was_trained_on_here(tmp_path) -> None:
    user = str(tmp_path / "mine.txt")
    assert corpus_part(HarvestConfig(), None).corpus_split == "heldout", "the built-in corpus"
    assert corpus_part(HarvestConfig(corpus=user), user).corpus_split == "heldout", "the SAE trained on it here"
    assert corpus_part(HarvestConfig(corpus=user), None).corpus_split == "all", "a loaded SAE, or neurons only"
    assert corpus_part(HarvestConfig(corpus=user, corpus_split="train"), None).corpus_split == "train", "as asked"


def test_a_one_document_corpus_is_harvested_whole_and_a_shortfall_is_reported(
    subject: SubjectModel, tmp_path, caplog
) -> None:
    """One document (which the held-out split would drop), 1,000 words: all of it, and a warning."""
    path = tmp_path / "one.txt"
    path.write_text(" ".join(f"word{i % 50}" for i in range(1000)), encoding="utf-8")
    cfg = corpus_part(HarvestConfig(corpus=str(path), n_tokens=1_000_000, n_hard_negative=0), None)
    with caplog.at_level("WARNING", logger="sae.harvest"):
        kinds = harvest_units(subject, BUILTIN_HOOK, cfg, {"neuron": hook_neurons})
    windows = len(list(token_windows(open_corpus(str(path)), subject.tokenizer, 64)))
    assert windows > 10
    assert int(kinds["neuron"].state.stats.tokens_seen) == windows * 64
    assert f"holds {windows * 64} tokens" in caplog.text and "fewer than the 1000000 asked for" in caplog.text


def test_bookkeeping_beside_the_model_gives_the_same_harvest(subject: SubjectModel, sae: SparseAutoencoder) -> None:
    """On a CPU model with several threads each batch's bookkeeping runs on a worker thread, beside
    the model's next batch; on one thread it runs in line. The harvests are identical."""
    threads = torch.get_num_threads()
    cfg = CFG.model_copy(update={"n_tokens": 64 * 96, "hard_negative_tokens": 64 * 70})
    try:
        torch.set_num_threads(1)
        inline = harvest(subject, BUILTIN_HOOK, sae, cfg)
        torch.set_num_threads(2)
        beside = harvest(subject, BUILTIN_HOOK, sae, cfg)
    finally:
        torch.set_num_threads(threads)
    for kind in KINDS:
        for a, b in zip(inline[kind].tensors(), beside[kind].tensors(), strict=True):
            assert torch.equal(a, b)


def test_activation_totals_are_the_same_in_any_order() -> None:
    """Batch sums are added in fixed point: one process and two shards, adding in different orders,
    keep equal totals (float64 sums differ in their last bits), as close to the exact sum as the
    limbs allow."""
    generator = torch.Generator().manual_seed(0)
    batch_sums = torch.randn(40, 6, generator=generator, dtype=torch.float64) * torch.logspace(
        -8, 6, 6, dtype=torch.float64
    )
    batch_sums[0, 0] = 1e-30  # far below the finest limb: rounds to 0 there, in every order

    def added(order: list[int]) -> torch.Tensor:
        total = torch.zeros(6, 2, dtype=torch.long)
        for i in order:
            total = _carried(total + _fixed_point(batch_sums[i]))
        return total

    forward, backward = added(list(range(40))), added(list(range(39, -1, -1)))
    halves = _carried(added(list(range(0, 40, 2))) + added(list(range(1, 40, 2))))
    assert torch.equal(forward, backward) and torch.equal(forward, halves)
    assert bool((forward[:, 1] >= 0).all() and (forward[:, 1] < 2**52).all())
    state = UnitStatsState.empty(6, torch.device("cpu"))
    state.total = forward
    # each batch sum is cut at 2^-72, the total rounded once: close to the correctly rounded exact sum
    exact = torch.tensor([math.fsum(column) for column in batch_sums.t().tolist()], dtype=torch.float64)
    assert bool(((state.totals() - exact).abs() <= 40 * 2.0**-72 + exact.abs() * 2.0**-52).all())


def test_histogram_bins_match_bucketize_at_the_edges() -> None:
    """`log_bin` finds bins from a float's bits; at and within a few ulps of every edge, far outside
    the range, and for values that are not positive, it must agree with bucketize over log10."""
    edges = (10 ** HIST_EDGES_LOG10.double()).float()
    bits = edges.view(torch.int32)
    near = torch.cat([(bits + step).view(torch.float32) for step in range(-4, 5)])
    special = [0.0, -0.0, -1.0, -float("inf"), float("nan"), 1e-45, 1e-38, 1e-30, 1e-5, 0.5, 1.0, 1e4, 1e30, 3.4e38]
    values = torch.cat([near, torch.tensor(special + [float("inf")]), torch.rand(5000) * 50, torch.randn(5000)])
    counted = (torch.bucketize(values.log10(), HIST_EDGES_LOG10) - 1).clamp(0, NOT_COUNTED - 1)
    expected = torch.where(values > 0, counted, NOT_COUNTED)
    assert torch.equal(log_bin(values).long(), expected)
    assert torch.equal(log_bin(values[:10000].view(100, 100)).view(-1), log_bin(values[:10000]))


@pytest.mark.parametrize("kind", KINDS)
def test_triggers_are_the_most_frequent_peak_tokens_lowest_id_first(
    harvested, dense: Dense, subject: SubjectModel, kind: str
) -> None:
    h = copy.deepcopy(harvested[kind])
    top = h.state.explain.top
    h.triggers.fill_(-1)
    h.choose_triggers(read_windows(subject, CFG.corpus, CFG.corpus_split, 64, top.window_id))
    for unit in range(top.window_id.shape[0]):
        filled = top.window_id[unit] >= 0
        tokens = dense.tokens[top.window_id[unit][filled]]
        peaks = tokens.gather(1, top.acts[unit][filled].argmax(dim=1, keepdim=True)).squeeze(1)
        counts: dict[int, int] = {}
        for token in peaks.tolist():
            counts[token] = counts.get(token, 0) + 1
        expected = sorted(counts, key=lambda t: (-counts[t], t))[: h.triggers.shape[1]]
        expected += [-1] * (h.triggers.shape[1] - len(expected))
        assert h.triggers[unit].tolist() == expected


@pytest.mark.parametrize("sampling", ["top", "quantile", "random", "silent", "hard_negative"])
@pytest.mark.parametrize("length", [None, 8, 16, 64, 80])
def test_window_starts_are_window_part_for_every_row(sampling: str, length: int | None) -> None:
    generator = torch.Generator().manual_seed(3)
    tokens = torch.randint(0, 30, (200, 64), generator=generator).numpy()
    peaks = torch.randint(0, 64, (200,), generator=generator).numpy()
    triggers = {3, 17}
    quiet = tokens[:20]
    quiet[np.isin(quiet, list(triggers))] = 4  # some windows hold no trigger: their focus is the end
    span = 64 if length is None or length >= 64 else length
    starts = window_starts(tokens, peaks, sampling, span, triggers)
    for i, start in enumerate(starts.tolist()):
        focus = next((j for j, t in enumerate(tokens[i].tolist()) if t in triggers), None)
        part = window_part(64, int(peaks[i]), sampling, length, focus)
        assert (start, start + span) == (part.start, part.stop)
