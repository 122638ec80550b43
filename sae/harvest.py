"""Harvest: one streaming pass that gathers, for every neuron and SAE feature, what the explain
and score stages need (statistics and example windows), at memory fixed by the settings alone.

Windows are assigned to the explain or the score split by a hash of their stream index, so no
window serves both. Document-separator (BOS) positions count as activation 0: they are not text.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict
from tqdm import tqdm

from sae.autoencoder import SparseAutoencoder
from sae.corpus import Split, open_corpus, select_split
from sae.harvest_state import HIST_EDGES_LOG10, HarvestState, WindowSlots
from sae.logit_effects import logit_effects
from sae.records import ActivationExample, ExampleSplit, NeuronWeight, TokenWeight, UnitHarvest, UnitKind, UnitStats
from sae.streaming import context_length, stream_activations
from sae.subject.models import SubjectModel


class HarvestConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error, not a default

    corpus: str = "stdlib"
    corpus_split: Split = "heldout"  # the SAE trains on "train"; harvesting on unseen text is cleaner
    n_tokens: int = 500_000
    context: int = 64
    batch_size: int = 64
    n_top: int = 40  # explain split: top windows by max activation
    n_top_score: int = 20  # score split
    reservoir: int = 50  # uniform sample of firing windows per split, for quantile examples
    n_quantiles: int = 10
    per_quantile_explain: int = 2
    per_quantile_score: int = 1
    n_random: int = 20  # uniformly random windows per split (shared by all units)
    n_silent: int = 10  # windows where the unit is silent (or least active), per split
    example_length: int | None = 32  # tokens kept per example (None: the whole window)
    score_fraction: float = 0.5
    n_logit_tokens: int = 10
    n_top_neurons: int = 8
    seed: int = 0


def window_in_score_split(window_ids: torch.Tensor, score_fraction: float, seed: int) -> torch.Tensor:
    """A fixed pseudo-random assignment of windows to splits (a multiplicative hash of the index)."""
    h = (window_ids * 2654435761 + seed * 97531) % (2**32)
    return h.double() / 2**32 < score_fraction


class KindHarvester:
    """Running harvest for one unit kind; `update` takes a batch [W, ctx, U] of activations."""

    def __init__(self, units: int, cfg: HarvestConfig, ctx: int, device: torch.device) -> None:
        self.cfg = cfg
        self.state = HarvestState.empty(units, ctx, device, cfg.n_top, cfg.n_top_score, cfg.reservoir, cfg.n_silent)
        self.random = {
            "explain": WindowSlots.empty(units, cfg.n_random, ctx, device),
            "score": WindowSlots.empty(units, cfg.n_random, ctx, device),
        }

    def merge(self, other: "KindHarvester") -> None:
        """Fold in the harvester of another shard of the corpus (window ids must not overlap)."""
        self.state.merge(other.state)
        for split in ("explain", "score"):
            self.random[split].merge_slots(other.random[split])

    def update(
        self, acts: torch.Tensor, tokens: torch.Tensor, window_ids: torch.Tensor, is_score: torch.Tensor,
        generator: torch.Generator,
    ) -> None:
        """acts [W, ctx, U] (separators already zeroed), tokens [W, ctx], window_ids [W], is_score [W]."""
        n_windows, ctx, units = acts.shape
        self.state.stats.update(acts.reshape(-1, units))
        window_max = acts.amax(dim=1).t()  # [U, W]
        fires = window_max > 0
        ids = window_ids[None, :].expand(units, -1)

        def fetch(unit: torch.Tensor, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return tokens[window], acts[window, :, unit]

        unit_priority = -torch.rand(units, n_windows, generator=generator, device=acts.device)
        window_priority = -torch.rand(n_windows, generator=generator, device=acts.device)[None].expand(units, -1)
        neg_inf = torch.tensor(-torch.inf, device=acts.device)
        for split_name, in_split in (("explain", ~is_score), ("score", is_score)):
            slots = getattr(self.state, split_name)
            ok = in_split[None, :]
            slots.top.merge(torch.where(ok & fires, window_max, neg_inf), ids, fetch)
            slots.reservoir.merge(torch.where(ok & fires, unit_priority, neg_inf), ids, fetch)
            # silent windows rank first, uniformly at random (keys in (0, 1]); then the least active
            quiet = torch.where(fires, -window_max, -unit_priority)
            slots.low.merge(torch.where(ok, quiet, neg_inf), ids, fetch)
            self.random[split_name].merge(torch.where(ok, window_priority, neg_inf), ids, fetch)


def harvest(
    subject: SubjectModel, hook: str, sae: SparseAutoencoder | None, cfg: HarvestConfig
) -> dict[UnitKind, KindHarvester]:
    """One pass over `cfg.n_tokens` tokens; neurons always, features when an SAE is given."""
    device = subject.device
    ctx = context_length(subject, cfg.context)
    width = subject.hook_width(hook)
    kinds: dict[UnitKind, KindHarvester] = {"neuron": KindHarvester(width, cfg, ctx, device)}
    if sae is not None:
        kinds["feature"] = KindHarvester(sae.cfg.d_sae, cfg, ctx, device)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    docs = select_split(open_corpus(cfg.corpus), cfg.corpus_split)
    stream = stream_activations(subject, docs, hook, batch_size=cfg.batch_size, ctx=ctx, max_tokens=cfg.n_tokens)
    with tqdm(total=cfg.n_tokens // ctx * ctx, desc="harvest", unit="tok", unit_scale=True) as bar:
        for item in stream:
            n_windows = item.tokens.shape[0]
            window_ids = torch.arange(item.first_window, item.first_window + n_windows, device=device)
            is_score = window_in_score_split(window_ids, cfg.score_fraction, cfg.seed)
            text = (item.tokens != subject.tokenizer.bos_id)[..., None]  # [W, ctx, 1]
            neurons = item.activations * text
            kinds["neuron"].update(neurons, item.tokens, window_ids, is_score, generator)
            if sae is not None:
                with torch.no_grad():
                    feats = sae.encode(neurons.reshape(-1, width)).reshape(n_windows, ctx, -1) * text
                kinds["feature"].update(feats, item.tokens, window_ids, is_score, generator)
            bar.update(item.tokens.numel())
    return kinds


# --- turning the state into records ---------------------------------------------------------------


def _stats(h: KindHarvester, unit: int) -> UnitStats:
    s = h.state.stats
    seen = int(s.tokens_seen)
    active = int(s.active[unit])
    total = float(s.total[unit])
    edges = (10 ** HIST_EDGES_LOG10).tolist()
    return UnitStats(
        tokens_seen=seen,
        active_count=active,
        density=active / max(1, seen),
        max_activation=max(0.0, float(s.max[unit])),
        mean_activation=total / max(1, seen),
        mean_active_activation=total / active if active else 0.0,
        histogram_edges=[round(e, 6) for e in edges],
        histogram_counts=s.hist[unit].tolist(),
    )


def example_slice(acts: torch.Tensor, sampling: str, length: int | None) -> slice:
    """Which part of a window an example keeps: around the peak (most of the room before it, as
    the model reads left to right) for top and quantile examples; the end of the window, where
    each token has the most context, for random and silent ones."""
    n = acts.shape[0]
    if length is None or length >= n:
        return slice(0, n)
    if sampling in ("top", "quantile"):
        after = max(1, length // 4)
        start = min(max(0, int(acts.argmax()) + after + 1 - length), n - length)
    else:
        start = n - length
    return slice(start, start + length)


def _examples(
    slots: WindowSlots, unit: int, order: list[int], split: ExampleSplit, sampling: str,
    strings: list[str], length: int | None, quantiles: list[int | None] | None = None,
) -> list[ActivationExample]:
    out = []
    ids = slots.window_id[unit]
    for pos, slot in enumerate(order):
        if int(ids[slot]) < 0:
            continue
        acts = slots.acts[unit, slot]
        part = example_slice(acts, sampling, length)
        out.append(
            ActivationExample(
                window_id=int(ids[slot]),
                start=part.start,
                tokens=[strings[t] for t in slots.tokens[unit, slot, part].tolist()],
                activations=[round(a, 4) for a in acts[part].tolist()],
                split=split,
                sampling=sampling,  # type: ignore[arg-type]
                quantile=quantiles[pos] if quantiles else None,
            )
        )
    return out


def _quantile_order(slots: WindowSlots, unit: int, n_quantiles: int, per_quantile: int) -> tuple[list[int], list[int | None]]:
    """Reservoir slots sorted by window max, cut into equal-count bands, `per_quantile` from each."""
    valid = (slots.window_id[unit] >= 0).nonzero().squeeze(1)
    if len(valid) == 0:
        return [], []
    maxima = slots.acts[unit, valid].amax(dim=1)
    ranked = valid[maxima.argsort()].tolist()
    bands = np.array_split(np.arange(len(ranked)), min(n_quantiles, len(ranked)))
    order, quantile = [], []
    for q, band in enumerate(bands):
        # evenly spaced within the band: deterministic and spread over the band's range
        picks = np.linspace(0, len(band) - 1, num=min(per_quantile, len(band))).round().astype(int)
        for p in picks:
            order.append(ranked[band[p]])
            quantile.append(q)
    return order, quantile


def _split_examples(
    h: KindHarvester, unit: int, split: ExampleSplit, per_quantile: int, strings: list[str]
) -> list[ActivationExample]:
    slots = getattr(h.state, split)
    top_order = slots.top.key[unit].argsort(descending=True).tolist()
    q_order, q_labels = _quantile_order(slots.reservoir, unit, h.cfg.n_quantiles, per_quantile)
    every = list(range(h.random[split].key.shape[1]))
    low_order = slots.low.key[unit].argsort(descending=True).tolist()
    length = h.cfg.example_length
    examples = (
        _examples(slots.top, unit, top_order, split, "top", strings, length)
        + _examples(slots.reservoir, unit, q_order, split, "quantile", strings, length, q_labels)
        + _examples(h.random[split], unit, every, split, "random", strings, length)
        + _examples(slots.low, unit, low_order, split, "silent", strings, length)
    )
    seen: set[int] = set()
    unique = []
    for ex in examples:  # a window chosen twice keeps its first (most specific) sampling
        if ex.window_id not in seen:
            seen.add(ex.window_id)
            unique.append(ex)
    return unique


def unit_records(
    kind: UnitKind,
    h: KindHarvester,
    subject: SubjectModel,
    hook: str,
    sae: SparseAutoencoder | None = None,
    units: list[int] | None = None,
) -> Iterator[UnitHarvest]:
    """UnitHarvest records for the chosen units (all by default), in index order."""
    cfg = h.cfg
    strings = subject.tokenizer.token_strings(range(subject.tokenizer.vocab_size))
    n_units = h.state.stats.active.shape[0]
    units = list(range(n_units)) if units is None else units
    if kind == "feature" and sae is not None:
        directions = sae.W_dec.detach()
    else:
        directions = torch.eye(n_units, device=subject.device)
    effects: torch.Tensor | None = None
    for position, unit in enumerate(units):
        if position % 256 == 0:  # logit effects of the next 256 units in one product
            effects = logit_effects(subject, hook, directions[units[position : position + 256]])
        promoted = suppressed = []
        if effects is not None:
            effect = effects[position % 256]
            top = effect.topk(cfg.n_logit_tokens)
            bottom = (-effect).topk(cfg.n_logit_tokens)
            promoted = [TokenWeight(token=strings[i], weight=round(float(v), 4)) for v, i in zip(*top)]
            suppressed = [TokenWeight(token=strings[i], weight=round(-float(v), 4)) for v, i in zip(*bottom)]
        neurons = []
        if kind == "feature" and sae is not None:
            weights = sae.W_dec[unit].detach()
            picked = weights.abs().topk(min(cfg.n_top_neurons, len(weights))).indices
            neurons = [NeuronWeight(neuron=int(i), weight=round(float(weights[i]), 4)) for i in picked]
        yield UnitHarvest(
            kind=kind,
            index=unit,
            stats=_stats(h, unit),
            examples=_split_examples(h, unit, "explain", cfg.per_quantile_explain, strings)
            + _split_examples(h, unit, "score", cfg.per_quantile_score, strings),
            promoted_tokens=promoted,
            suppressed_tokens=suppressed,
            top_neurons=neurons,
        )
