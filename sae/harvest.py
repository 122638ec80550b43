"""Harvest: a streaming pass that gathers, for every neuron and SAE feature, what the explain
and score stages need (statistics and example windows), at memory fixed by the settings alone.

Windows are assigned to the explain or the score split by their content: the smallest hash of their
`shingle`-token runs (a one-permutation MinHash). Windows that share most of their runs (the
standard library's near-identical codec tables, licence headers) therefore land on the same side,
so the score split does not re-test what the explainer saw. No window serves both splits.

A second, shorter pass collects hard negatives: windows that hold one of the unit's trigger tokens
(the tokens at the peaks of its explain-split top windows) while the unit stays below a tenth of its
maximum there. They test whether an explanation knows when its trigger does *not* fire the unit.
Document-separator (BOS) positions count as activation 0: they are not text. That pass reads the
first pass's windows again: the first pass keeps the sparse kinds' activations of those windows (see
sae.harvest_replay), so only the dense ones (neurons, a forward pass to the hook) are computed twice.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm

from sae.autoencoder import SparseAutoencoder, SparseCode
from sae.corpus import Split, open_corpus, select_split
from sae.distributed import SINGLE, Shard
from sae.harvest_checkpoint import HarvestCheckpoint, log
from sae.harvest_replay import HardPassCache
from sae.harvest_shards import merge_into_first, share_first_pass
from sae.harvest_state import (
    HIST_EDGES_LOG10,
    Fetch,
    FetchWindows,
    HarvestState,
    SplitSlots,
    UnitStatsState,
    WindowSlots,
)
from sae.logit_effects import logit_effects
from sae.records import (
    ActivationExample,
    ExampleSplit,
    NeuronWeight,
    Sampling,
    TokenWeight,
    UnitHarvest,
    UnitKind,
    UnitStats,
)
from sae.streaming import ActivationBatch, context_length, stream_activations
from sae.subject.models import SubjectModel
from sae.torch_threads import Bookkeeper, one_torch_thread
from sae.unit_acts import Activations, DenseActs, SparseActs
from sae.window_tokens import WindowTokens, read_windows


class HarvestConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error, not a default

    corpus: str = "stdlib"
    corpus_split: Split = "heldout"  # the SAE trains on "train"; harvesting on unseen text is cleaner
    n_tokens: int = Field(500_000, gt=0)
    context: int = Field(64, ge=2)
    batch_size: int = Field(64, ge=1)
    n_top: int = Field(40, ge=1)  # explain split: top windows by max activation
    n_top_score: int = Field(20, ge=0)  # score split
    reservoir: int = Field(50, ge=0)  # uniform sample of firing windows per split, for quantile examples
    n_quantiles: int = Field(10, ge=1)
    per_quantile_explain: int = Field(2, ge=0)
    per_quantile_score: int = Field(1, ge=0)
    n_random: int = Field(20, ge=0)  # uniformly random windows per split (shared by all units)
    n_silent: int = Field(10, ge=0)  # windows where the unit is silent (or least active), per split
    n_hard_negative: int = Field(10, ge=0)  # trigger present, unit quiet; per split (0: no second pass)
    hard_negative_tokens: int | None = Field(200_000, gt=0)  # tokens the hard-negative pass reads (None: n_tokens)
    n_triggers: int = Field(3, ge=1)  # distinct peak tokens per unit that define its hard negatives
    quiet_fraction: float = Field(0.1, gt=0, le=1)  # "quiet": window max below this x the unit's max
    split_by: Literal["content", "index"] = "content"  # near-duplicates together, or v1's index hash
    shingle: int = Field(16, ge=1)  # run length of the content hash
    example_length: int | None = Field(32, ge=1)  # tokens kept per example (None: the whole window)
    score_fraction: float = Field(0.5, ge=0, le=1)
    n_logit_tokens: int = Field(10, ge=0)
    n_top_neurons: int = Field(8, ge=0)
    seed: int = 0


def corpus_part(cfg: HarvestConfig, sae_trained_on: str | None) -> HarvestConfig:
    """The split to harvest when the user did not choose one: the held-out documents of the built-in
    corpus, and of a corpus the SAE was trained on in this run (so features are read on text they
    were not fitted to); all of any other corpus, which is the user's and has no SAE fitted to it."""
    if "corpus_split" in cfg.model_fields_set or cfg.corpus in ("stdlib", sae_trained_on):
        return cfg
    return cfg.model_copy(update={"corpus_split": "all"})


# (tokens [W, ctx], hook activations [W, ctx, d]) -> unit activations [W, ctx, U], or a sparse code
# of the W * ctx positions (rows) and U units (columns), which the harvest keeps sparse throughout
UnitFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor | SparseCode]
UnitActs = dict[UnitKind, Activations]  # each kind's activations of one batch [W, ctx, U]

_MASK32 = 2**32 - 1
SPLITS: tuple[ExampleSplit, ExampleSplit] = ("explain", "score")


def window_in_score_split(window_ids: torch.Tensor, score_fraction: float, seed: int) -> torch.Tensor:
    """A fixed pseudo-random assignment of windows to splits (a multiplicative hash of the index)."""
    h = (window_ids * 2654435761 + seed * 97531) % (2**32)
    return h.double() / 2**32 < score_fraction


def content_in_score_split(tokens: torch.Tensor, score_fraction: float, seed: int, shingle: int) -> torch.Tensor:
    """tokens [W, ctx] -> [W] bool. The split follows the minimum hash over each window's runs of
    `shingle` tokens, so two windows sharing a fraction J of their runs agree with probability >= J
    (and identical windows always agree)."""
    n = min(shingle, tokens.shape[1])
    runs = tokens.long().unfold(1, n, 1)  # [W, R, n]
    h = torch.full(runs.shape[:2], seed * 97531 + 17, dtype=torch.long, device=tokens.device)
    for i in range(n):  # a polynomial hash kept in 32 bits, so products never overflow int64
        h = ((h * 1000003) ^ runs[..., i]) & _MASK32
    smallest = ((h * 2654435761) & _MASK32).amin(dim=1)  # small by construction: mix before comparing
    for _ in range(2):
        smallest = (((smallest >> 16) ^ smallest) * 0x45D9F3B) & _MASK32
    smallest = (smallest >> 16) ^ smallest
    return smallest.double() / 2**32 < score_fraction


def in_score_split(tokens: torch.Tensor, window_ids: torch.Tensor, cfg: HarvestConfig) -> torch.Tensor:
    if cfg.split_by == "index":
        return window_in_score_split(window_ids, cfg.score_fraction, cfg.seed)
    return content_in_score_split(tokens, cfg.score_fraction, cfg.seed, cfg.shingle)


class KindHarvester:
    """Running harvest for one unit kind; `update` takes a batch [W, ctx, U] of activations (dense,
    or a kind's sparse entries)."""

    def __init__(self, units: int, cfg: HarvestConfig, ctx: int, device: torch.device) -> None:
        self.cfg = cfg
        self.state = HarvestState.empty(units, ctx, device, cfg.n_top, cfg.n_top_score, cfg.reservoir, cfg.n_silent)
        self.random = {
            "explain": WindowSlots.empty(units, cfg.n_random, ctx, device),
            "score": WindowSlots.empty(units, cfg.n_random, ctx, device),
        }
        self.hard = {
            "explain": WindowSlots.empty(units, cfg.n_hard_negative, ctx, device),
            "score": WindowSlots.empty(units, cfg.n_hard_negative, ctx, device),
        }
        self.triggers = torch.full((units, cfg.n_triggers), -1, dtype=torch.long, device=device)

    def slot_sets(self) -> list[WindowSlots]:
        """Every set of kept windows, in a fixed order."""
        slots = [getattr(getattr(self.state, split), f.name) for split in SPLITS for f in fields(SplitSlots)]
        return [*slots, *(self.random[s] for s in SPLITS), *(self.hard[s] for s in SPLITS)]

    def tensors(self) -> list[torch.Tensor]:
        """Every tensor of the state, in a fixed order: what travels between processes."""
        parts: list[UnitStatsState | WindowSlots] = [self.state.stats, *self.slot_sets()]
        return [getattr(part, f.name) for part in parts for f in fields(part)] + [self.triggers]

    def window_ids(self) -> torch.Tensor:
        """Every slot's window id (-1 in empty slots), flattened: the windows whose tokens records show."""
        return torch.cat([s.window_id.view(-1) for s in self.slot_sets()])

    def merge(self, other: KindHarvester) -> None:
        """Fold in the harvester of another shard of the corpus (window ids must not overlap)."""
        self.state.merge(other.state)
        for split in ("explain", "score"):
            self.random[split].merge_slots(other.random[split])
            self.hard[split].merge_slots(other.hard[split])

    def update(
        self,
        batch: Activations | torch.Tensor,
        window_ids: torch.Tensor,
        is_score: torch.Tensor,
        generator: torch.Generator,
    ) -> None:
        """batch [W, ctx, U] (separators already zeroed), window_ids [W], is_score [W]."""
        acts = as_activations(batch)
        n_windows, units, device = acts.n_windows, acts.units, window_ids.device
        self.state.stats.update(acts)
        unit_priority = -torch.rand(units, n_windows, generator=generator, device=device)
        window_priority = -torch.rand(n_windows, generator=generator, device=device)  # the same for every unit
        neg_inf = torch.tensor(-torch.inf, device=device)
        for split_name, columns in _split_columns(is_score):
            # each split sees its own windows only: the others could never win its slots
            slots = getattr(self.state, split_name)
            window_max = acts.window_max.index_select(1, columns)  # [U, w]
            fires = window_max > 0
            ids = window_ids[columns][None, :].expand(units, -1)
            fetch = _fetcher(acts, columns)
            priority = unit_priority.index_select(1, columns)
            slots.top.merge(torch.where(fires, window_max, neg_inf), ids, fetch)
            slots.reservoir.merge(torch.where(fires, priority, neg_inf), ids, fetch)
            # silent windows rank first, uniformly at random (keys in (0, 1]); then the least active
            slots.low.merge(torch.where(fires, -window_max, -priority), ids, fetch)
            windows = _window_fetcher(acts, columns)
            self.random[split_name].merge_shared(window_priority[columns], window_ids[columns], windows)

    def choose_triggers(self, windows: WindowTokens) -> None:
        """Each unit's `n_triggers` most frequent peak tokens over its explain-split top windows
        (ties: the lowest token id first), for all units at once; `windows` holds those windows'
        tokens."""
        top = self.state.explain.top
        tokens = windows.of(top.window_id)  # [U, K, ctx]
        peaks = tokens.gather(2, top.acts.argmax(dim=2, keepdim=True)).squeeze(2).long()  # [U, K]
        peaks = torch.where(top.window_id >= 0, peaks, -1)
        units, k = peaks.shape
        span = int(peaks.max()) + 2  # token ids (and -1, empty) fit in [0, span) after + 1
        unit_of = torch.arange(units, device=peaks.device)[:, None]
        pairs, counts = torch.unique(unit_of * span + peaks + 1, return_counts=True)  # sorted by unit, then token
        unit, token = pairs.div(span, rounding_mode="floor"), pairs % span - 1
        # each unit's distinct tokens laid out in a row, scored by count first and then by low id
        starts = torch.searchsorted(unit, torch.arange(units, device=peaks.device))
        column = torch.arange(len(pairs), device=peaks.device) - starts[unit]
        score = torch.full((units, k), -1, dtype=torch.long, device=peaks.device)
        low_id_first = span - 2 - token  # in [0, span): larger for lower ids
        score[unit, column] = torch.where(token >= 0, counts * span + low_id_first, -1)
        best = score.topk(min(self.triggers.shape[1], k), dim=1).values
        chosen = torch.where(best >= 0, span - 2 - best % span, -1)
        self.triggers = torch.full_like(self.triggers, -1)
        self.triggers[:, : chosen.shape[1]] = chosen

    def update_hard(
        self,
        batch: Activations | torch.Tensor,
        tokens: torch.Tensor,
        window_ids: torch.Tensor,
        is_score: torch.Tensor,
        generator: torch.Generator,
        vocab_size: int,
    ) -> None:
        """Second pass: keep a uniform sample of windows holding a trigger where the unit stays quiet."""
        if self.cfg.n_hard_negative == 0:
            return
        acts = as_activations(batch)
        n_windows, units, device = acts.n_windows, acts.units, tokens.device
        # which windows hold each token, then each unit's few triggers looked up in it ([U, n, W]
        # rather than [U, W, ctx]); the extra row, never held, stands for "no trigger"
        held = torch.zeros(vocab_size + 1, n_windows, dtype=torch.bool, device=device)
        held[tokens.long(), torch.arange(n_windows, device=device)[:, None]] = True
        held[vocab_size] = False
        trigger_rows = torch.where(self.triggers >= 0, self.triggers, vocab_size).view(-1)
        holds = held.index_select(0, trigger_rows).view(units, -1, n_windows).any(dim=1)  # [U, W]
        unit_max = self.state.stats.max.clamp(min=0)[:, None]
        quiet = acts.window_max < self.cfg.quiet_fraction * unit_max
        candidate = holds & quiet & (unit_max > 0)
        priority = -torch.rand(units, n_windows, generator=generator, device=device)
        neg_inf = torch.tensor(-torch.inf, device=device)
        for split_name, columns in _split_columns(is_score):
            ids = window_ids[columns][None, :].expand(units, -1)
            key = torch.where(candidate.index_select(1, columns), priority.index_select(1, columns), neg_inf)
            self.hard[split_name].merge(key, ids, _fetcher(acts, columns))


def as_activations(acts: Activations | torch.Tensor) -> Activations:
    return DenseActs(acts) if isinstance(acts, torch.Tensor) else acts


def _split_columns(is_score: torch.Tensor) -> list[tuple[ExampleSplit, torch.Tensor]]:
    """Each split's windows of the batch, as column indices."""
    return [(name, in_split.nonzero().squeeze(1)) for name, in_split in zip(SPLITS, (~is_score, is_score))]


def _fetcher(acts: Activations, columns: torch.Tensor) -> Fetch:
    """The activations of chosen (unit, candidate) pairs; candidate c is the batch's window columns[c]."""
    return lambda unit, candidate: acts.rows(unit, columns[candidate])


def _window_fetcher(acts: Activations, columns: torch.Tensor) -> FetchWindows:
    """Every unit's activations over chosen windows (as `_fetcher`)."""
    return lambda candidate: acts.windows(columns[candidate])


def harvest(
    subject: SubjectModel, hook: str, sae: SparseAutoencoder | None, cfg: HarvestConfig
) -> dict[UnitKind, KindHarvester]:
    """Neurons always, features when an SAE is given (see `harvest_units`)."""
    return harvest_units(subject, hook, cfg, default_units(sae))


def default_units(sae: SparseAutoencoder | None) -> dict[UnitKind, UnitFunction]:
    """The hook's neurons, and the SAE's features when there is one."""
    units: dict[UnitKind, UnitFunction] = {"neuron": hook_neurons}
    if sae is not None:
        units["feature"] = sae_features(sae)
    return units


def hook_neurons(tokens: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
    """The hook's own units: each neuron as it is."""
    return acts


def sae_features(sae: SparseAutoencoder) -> UnitFunction:
    """The SAE's features, as its sparse code: never [W, ctx, d_sae] dense."""

    def encode(tokens: torch.Tensor, acts: torch.Tensor) -> SparseCode:
        return sae.encode_sparse(acts.reshape(-1, acts.shape[-1]))

    return encode


def column_subset(units: UnitFunction, columns: list[int]) -> UnitFunction:
    """The same units, keeping only `columns` (in that order): a control that labels a sample of a
    dictionary computes all of it (a TopK needs every column) but keeps the books on the sample only."""
    kept = torch.tensor(columns, dtype=torch.long)

    def subset(tokens: torch.Tensor, acts: torch.Tensor) -> torch.Tensor | SparseCode:
        out = units(tokens, acts)
        if isinstance(out, SparseCode):
            position = torch.full((out.d_sae,), -1, dtype=torch.long, device=out.cols.device)
            position[kept.to(out.cols.device)] = torch.arange(len(kept), device=out.cols.device)
            new = position[out.cols]
            keep = new >= 0
            return SparseCode(out.rows[keep], new[keep], out.vals[keep], out.batch, len(kept))
        return out[..., kept.to(out.device)]

    return subset


def harvest_units(
    subject: SubjectModel,
    hook: str,
    cfg: HarvestConfig,
    units: dict[UnitKind, UnitFunction],
    checkpoint: HarvestCheckpoint | None = None,
    shard: Shard = SINGLE,
) -> dict[UnitKind, KindHarvester]:
    """One pass over `cfg.n_tokens` tokens for statistics and examples, then (when
    `cfg.n_hard_negative` > 0) a pass over `cfg.hard_negative_tokens` for hard negatives. Each unit
    function maps the hook's activations (and the tokens) to that kind's unit activations. With a
    `checkpoint`, the state is saved as it goes and a rerun continues from the last save, ending
    with the state an uninterrupted harvest has.

    With a `shard` of several processes (see sae.distributed), each reads its own batches and rank
    0 returns the merged harvest, the same one process reading every batch returns; the other
    processes' return values are partial. Random draws are seeded per batch, so they do not depend
    on which process reads the batch."""
    if checkpoint and shard.world > 1:
        raise ValueError("a sharded harvest keeps no checkpoint")
    ctx = context_length(subject, cfg.context)
    kinds: dict[UnitKind, KindHarvester] = {}
    phase, skip = "harvest", 0
    saved = checkpoint.load(subject.device) if checkpoint else None
    if saved is not None:
        kinds, phase, skip = saved["kinds"], saved["phase"], saved["windows"]

    def new(n_units: int) -> KindHarvester:
        return KindHarvester(n_units, cfg, ctx, subject.device)

    def save_if_due(phase: str, first_window: int, end: int, n_tokens: int) -> None:
        """Saves at each interval but not at the end of a phase: its end has a save of its own (the
        first pass) or is the end of the harvest (the hard-negative pass)."""
        last = end >= max(1, n_tokens // ctx)
        if checkpoint and not last and checkpoint.due(first_window * ctx, end * ctx):
            checkpoint.save({"kinds": kinds, "phase": phase, "windows": end})

    batches = functools.partial(unit_batches, subject, hook, cfg, shard=shard)
    n_hard = min(cfg.hard_negative_tokens or cfg.n_tokens, cfg.n_tokens)
    # a resumed first pass has not seen the windows before its restart: its hard pass recomputes
    kept = HardPassCache(max(1, n_hard // ctx)) if cfg.n_hard_negative and phase == "harvest" and not skip else None

    def record(first_window: int, tokens: torch.Tensor, window_ids: torch.Tensor, is_score: torch.Tensor,
               acts: UnitActs, generator: torch.Generator) -> None:  # fmt: skip
        for kind, unit_acts in acts.items():
            if kind not in kinds:
                kinds[kind] = new(unit_acts.units)
            kinds[kind].update(unit_acts, window_ids, is_score, generator)
        if kept:
            kept.add(first_window, tokens, window_ids, is_score, acts)

    if phase == "harvest":
        read = skip
        with Bookkeeper(background=overlap_bookkeeping(subject.device)) as books:
            for item, tokens, window_ids, is_score, acts, generator in batches(units, cfg.n_tokens, phase, skip):
                books.run(record, item.first_window, tokens, window_ids, is_score, acts, generator)
                read = item.first_window + item.tokens.shape[0]
                if checkpoint and checkpoint.due(item.first_window * ctx, read * ctx):
                    books.wait()
                save_if_due(phase, item.first_window, read, cfg.n_tokens)
        merge_into_first(kinds, new, shard)
        if shard.world == 1 and read < max(1, cfg.n_tokens // ctx):
            log.warning(
                "the corpus %r (%s) holds %d tokens in %d-token windows, fewer than the %d asked for: "
                "the harvest read them all",
                cfg.corpus,
                "all documents" if cfg.corpus_split == "all" else f"its {cfg.corpus_split} documents",
                read * ctx,
                ctx,
                cfg.n_tokens,
            )
        if cfg.n_hard_negative == 0:
            return kinds if shard.is_writer else {}
        if shard.is_writer:
            tops = torch.cat([h.state.explain.top.window_id.view(-1) for h in kinds.values()])
            windows = read_windows(subject, cfg.corpus, cfg.corpus_split, ctx, tops)
            for harvester in kinds.values():
                harvester.choose_triggers(windows)
        share_first_pass(kinds, new, shard)
        phase, skip = "hard negatives", 0
        if checkpoint:
            checkpoint.save({"kinds": kinds, "phase": phase, "windows": 0})
    vocab = subject.tokenizer.vocab_size

    def recompute(tokens: torch.Tensor, again: dict[UnitKind, UnitFunction]) -> UnitActs:
        return unit_activations(subject, tokens, subject.activations(tokens, hook).to(torch.float32), again)

    draws = functools.partial(batch_generator, cfg.seed)
    hard = hard_batches(batches, recompute, units, n_hard, skip, kept, draws)

    def record_hard(tokens: torch.Tensor, window_ids: torch.Tensor, is_score: torch.Tensor, acts: UnitActs,
                    generator: torch.Generator) -> None:  # fmt: skip
        for kind, unit_acts in acts.items():
            kinds[kind].update_hard(unit_acts, tokens, window_ids, is_score, generator, vocab)

    with Bookkeeper(background=overlap_bookkeeping(subject.device)) as books:
        for first_window, tokens, window_ids, is_score, acts, generator in hard:
            books.run(record_hard, tokens, window_ids, is_score, acts, generator)
            end = first_window + tokens.shape[0]
            if checkpoint and checkpoint.due(first_window * ctx, end * ctx):
                books.wait()
            save_if_due(phase, first_window, end, n_hard)
    merge_into_first(kinds, new, shard)
    return kinds if shard.is_writer else {}


def overlap_bookkeeping(device: torch.device) -> bool:
    """Whether the bookkeeping of one batch should run beside the model's next: on a CPU whose
    model has more than one thread (on one thread, the user asked for one core; on a GPU the
    bookkeeping is kernels in the model's own queue)."""
    return device.type == "cpu" and torch.get_num_threads() > 1


def hard_batches(
    batches: Callable,
    recompute: Callable[[torch.Tensor, dict[UnitKind, UnitFunction]], UnitActs],
    units: dict[UnitKind, UnitFunction],
    n_hard: int,
    skip: int,
    kept: HardPassCache | None,
    generator: Callable[[str, int, torch.device], torch.Generator],
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor, UnitActs, torch.Generator]]:
    """The hard-negative pass's batches (first window, tokens, window ids, is_score, {kind:
    activations}, generator). With `kept`, the kinds it holds come from it and the others are
    recomputed from its windows (`recompute(tokens, units)`), without reading the corpus again;
    without it, the pass reads the corpus and computes every kind."""
    phase = "hard negatives"
    cached = kept.kinds() if kept else set()
    if kept is None or not cached:
        for item, tokens, window_ids, is_score, acts, gen in batches(units, n_hard, phase, skip):
            yield item.first_window, tokens, window_ids, is_score, acts, gen
        return
    again = {kind: fn for kind, fn in units.items() if kind not in cached}
    for batch in kept.batches:
        fresh = recompute(batch.tokens, again) if again else {}
        acts = {kind: fresh[kind] if kind in again else kept.activations(batch, kind) for kind in units}
        gen = generator(phase, batch.first_window, batch.tokens.device)
        yield batch.first_window, batch.tokens, batch.window_ids, batch.is_score, acts, gen


def unit_activations(
    subject: SubjectModel, tokens: torch.Tensor, hook_acts: torch.Tensor, units: dict[UnitKind, UnitFunction]
) -> UnitActs:
    """Each kind's activations [W, ctx, U] for windows `tokens` [W, ctx] whose hook activations are
    `hook_acts`; separator (BOS) positions are zeroed, before and after: they are not text."""
    text = (tokens != subject.tokenizer.bos_id)[..., None]  # [W, ctx, 1]
    masked = hook_acts * text
    out: UnitActs = {}
    for kind, fn in units.items():
        acts = fn(tokens, masked)
        if isinstance(acts, SparseCode):
            with one_torch_thread():
                out[kind] = SparseActs.from_code(acts, tokens.shape[0], tokens.shape[1], text)
        else:
            out[kind] = DenseActs(acts * text)
    return out


def batch_generator(seed: int, phase: str, first_window: int, device: torch.device) -> torch.Generator:
    """The random draws of one batch: seeded by the harvest's seed, the pass and the batch's first
    window, so a batch draws the same numbers whichever process reads it, and after a resume."""
    mixed = (seed * 0x9E3779B97F4A7C15 + first_window * 2 + (phase != "harvest")) % 2**63
    return torch.Generator(device=device).manual_seed(mixed)


def unit_batches(
    subject: SubjectModel,
    hook: str,
    cfg: HarvestConfig,
    units: dict[UnitKind, UnitFunction],
    n_tokens: int,
    label: str,
    skip_windows: int = 0,
    shard: Shard = SINGLE,
) -> Iterator[tuple[ActivationBatch, torch.Tensor, torch.Tensor, torch.Tensor, UnitActs, torch.Generator]]:
    """(batch, tokens [W, ctx], window ids [W], is_score [W], {kind: unit activations [W, ctx, U]},
    the batch's generator), starting `skip_windows` into the stream; only the shard's batches."""
    device = subject.device
    ctx = context_length(subject, cfg.context)
    docs = select_split(open_corpus(cfg.corpus), cfg.corpus_split)
    remaining = max(1, n_tokens // ctx) - skip_windows  # (max_tokens counts from the skipped point)
    if remaining <= 0:
        return
    stream = stream_activations(
        subject,
        docs,
        hook,
        batch_size=cfg.batch_size,
        ctx=ctx,
        max_tokens=remaining * ctx,
        skip_windows=skip_windows,
        shard=shard,
    )
    total = n_tokens // ctx * ctx
    bar = tqdm(
        total=total,
        initial=skip_windows * ctx,
        desc=label,
        unit="tok",
        unit_scale=True,
        disable=not shard.is_writer,
    )
    with bar:
        for item in stream:
            n_windows = item.tokens.shape[0]
            window_ids = torch.arange(item.first_window, item.first_window + n_windows, device=device)
            is_score = in_score_split(item.tokens, window_ids, cfg)
            acts = unit_activations(subject, item.tokens, item.activations, units)
            generator = batch_generator(cfg.seed, label, item.first_window, device)
            yield item, item.tokens, window_ids, is_score, acts, generator
            bar.update(min(item.tokens.numel() * shard.world, total - bar.n))


# --- turning the state into records ---------------------------------------------------------------


def _stats(h: KindHarvester, unit: int, edges: list[float], total: float) -> UnitStats:
    s = h.state.stats
    seen = int(s.tokens_seen)
    active = int(s.active[unit])
    return UnitStats(
        tokens_seen=seen,
        active_count=active,
        density=active / max(1, seen),
        max_activation=max(0.0, float(s.max[unit])),
        mean_activation=total / max(1, seen),
        mean_active_activation=total / active if active else 0.0,
        histogram_edges=edges,
        histogram_counts=s.hist[unit].tolist(),
    )


def window_part(n: int, peak: int, sampling: str, length: int | None, focus: int | None) -> slice:
    """Which part of a window of n tokens an example keeps: around the `peak` (most of the room
    before it, as the model reads left to right) for top and quantile examples, around `focus` (the
    trigger token) for hard negatives; the end of the window, where each token has the most context,
    for random and silent ones."""
    if length is None or length >= n:
        return slice(0, n)
    if sampling in ("top", "quantile"):
        focus = peak
    elif sampling != "hard_negative":
        focus = None
    if focus is not None:
        after = max(1, length // 4)
        start = min(max(0, focus + after + 1 - length), n - length)
    else:
        start = n - length
    return slice(start, start + length)


def rounded(acts: torch.Tensor) -> np.ndarray:
    """`round(a, 4)` of every entry, in one array operation (float64).

    Exact for float32 (or narrower) input: a float32 times 1e4 needs at most 24 + 14 bits, so the
    float64 product is exact, rint rounds it half-to-even as `round` does, and the division is
    correctly rounded to the same nearest double that `round` returns."""
    return np.rint(acts.to(torch.float32).double().numpy() * 1e4) / 1e4


@dataclass
class SlotLists:
    """One set of slots for a chunk of units, as Python lists built with a few array operations
    per chunk (not per unit): each unit's window ids, its slots in example order, each slot's
    peak position, activations rounded to 4 decimals (see `rounded`) and tokens."""

    window_id: list[list[int]]  # [u][K]
    order: list[list[int]]  # [u][n] the slots to show, in order
    quantile: list[list[int]] | None  # [u][n] each shown slot's band (quantile samplings only)
    peak: np.ndarray  # [u, K]
    values: np.ndarray  # [u, K, ctx] float64
    tokens: np.ndarray  # [u, K, ctx]

    @classmethod
    def by_key(cls, slots: WindowSlots, units: torch.Tensor, windows: WindowTokens) -> SlotLists:
        """Largest key first (ties: lower window id, as `rank` orders them); empty slots dropped."""
        window_id = slots.window_id.index_select(0, units)
        order = slots.rank.index_select(0, units).argsort(dim=1, descending=True)
        filled = (window_id >= 0).sum(dim=1).tolist()  # empty slots rank last
        rows = [row[:n] for row, n in zip(order.tolist(), filled, strict=True)]
        return cls._build(slots, units, window_id, rows, None, windows)

    @classmethod
    def by_quantile(
        cls, slots: WindowSlots, units: torch.Tensor, n_quantiles: int, per_quantile: int, windows: WindowTokens
    ) -> SlotLists:
        """Slots sorted by window max (ties: lower window id), cut into equal-count bands,
        `per_quantile` from each (see `_band_picks`)."""
        window_id = slots.window_id.index_select(0, units)
        maxima = slots.acts.index_select(0, units).amax(dim=2)
        bits = maxima.contiguous().view(torch.int32)
        ordered = (bits ^ ((bits >> 31) & 0x7FFFFFFF)).long()  # order-preserving, as in `_ranking`
        key = torch.where(window_id >= 0, (ordered << 32) + window_id, torch.iinfo(torch.int64).max)
        ranked = key.argsort(dim=1).tolist()
        filled = (window_id >= 0).sum(dim=1).tolist()
        rows, bands = [], []
        for row, n in zip(ranked, filled, strict=True):
            picks = _band_picks(n, n_quantiles, per_quantile) if n else ()
            rows.append([row[p] for band in picks for p in band])
            bands.append([q for q, band in enumerate(picks) for _ in band])
        return cls._build(slots, units, window_id, rows, bands, windows)

    @classmethod
    def _build(
        cls,
        slots: WindowSlots,
        units: torch.Tensor,
        window_id: torch.Tensor,
        order: list[list[int]],
        quantile: list[list[int]] | None,
        windows: WindowTokens,
    ) -> SlotLists:
        acts = slots.acts.index_select(0, units).cpu()
        return cls(
            window_id=window_id.tolist(),
            order=order,
            quantile=quantile,
            peak=acts.argmax(dim=2).numpy(),
            values=rounded(acts),
            tokens=windows.of(window_id).cpu().numpy(),
        )

    def examples(
        self,
        row: int,
        split: ExampleSplit,
        sampling: Sampling,
        names: np.ndarray,
        length: int | None,
        triggers: set[int] | None = None,
    ) -> list[ActivationExample]:
        """The examples of the chunk's `row`-th unit; `names` [vocab] holds each token's string."""
        order = self.order[row]
        if not order:
            return []
        chosen = np.asarray(order)
        tokens = self.tokens[row, chosen]  # [m, ctx]
        n = tokens.shape[1]
        span = n if length is None or length >= n else length
        starts = window_starts(tokens, self.peak[row, chosen], sampling, span, triggers)
        columns = starts[:, None] + np.arange(span)
        kept_tokens = names[np.take_along_axis(tokens, columns, axis=1)].tolist()
        kept_values = np.take_along_axis(self.values[row, chosen], columns, axis=1).tolist()
        ids, bands, first = self.window_id[row], self.quantile[row] if self.quantile else None, starts.tolist()
        # model_construct: every field is built here from the state's own types; validating
        # ~700k examples of a demo harvest would cost more than building them
        return [
            ActivationExample.model_construct(
                window_id=ids[slot],
                start=first[i],
                tokens=kept_tokens[i],
                activations=kept_values[i],
                split=split,
                sampling=sampling,
                quantile=bands[i] if bands is not None else None,
            )
            for i, slot in enumerate(order)
        ]


def window_starts(
    tokens: np.ndarray, peaks: np.ndarray, sampling: str, length: int, triggers: set[int] | None
) -> np.ndarray:
    """`window_part(...).start` of every row of `tokens` [m, n] at once (peaks [m]; the focus of
    a hard negative is its first trigger token)."""
    m, n = tokens.shape
    if length >= n:
        return np.zeros(m, dtype=np.int64)
    last = n - length
    if sampling in ("top", "quantile"):
        focus: np.ndarray = peaks.astype(np.int64)
        has_focus: np.ndarray = np.ones(m, dtype=bool)
    elif sampling == "hard_negative" and triggers:
        hits = np.isin(tokens, list(triggers))
        focus, has_focus = hits.argmax(axis=1), np.asarray(hits.any(axis=1))
    else:
        return np.full(m, last, dtype=np.int64)
    at_focus = np.clip(focus + max(1, length // 4) + 1 - length, 0, last)
    return np.where(has_focus, at_focus, last)


@functools.cache
def _band_picks(n: int, n_quantiles: int, per_quantile: int) -> tuple[tuple[int, ...], ...]:
    """Positions 0..n-1 cut into equal-count bands, `per_quantile` evenly spaced from each band
    (deterministic and spread over the band's range); the same for every unit with n windows."""
    bands = np.array_split(np.arange(n), min(n_quantiles, n))
    return tuple(
        tuple(int(band[p]) for p in np.linspace(0, len(band) - 1, num=min(per_quantile, len(band))).round().astype(int))
        for band in bands
    )


SPLIT_SAMPLINGS: tuple[Sampling, ...] = ("top", "quantile", "random", "silent", "hard_negative")


def _chunk_lists(
    h: KindHarvester, units: torch.Tensor, windows: WindowTokens
) -> dict[tuple[ExampleSplit, Sampling], SlotLists]:
    """Every slot set of a chunk of units, in the order its examples are listed."""
    lists: dict[tuple[ExampleSplit, Sampling], SlotLists] = {}
    per_split = {"explain": h.cfg.per_quantile_explain, "score": h.cfg.per_quantile_score}
    quantiles = h.cfg.n_quantiles
    for split in SPLITS:
        slots: SplitSlots = getattr(h.state, split)
        per_quantile = per_split[split]
        lists[(split, "top")] = SlotLists.by_key(slots.top, units, windows)
        lists[(split, "quantile")] = SlotLists.by_quantile(slots.reservoir, units, quantiles, per_quantile, windows)
        lists[(split, "random")] = SlotLists.by_key(h.random[split], units, windows)
        lists[(split, "silent")] = SlotLists.by_key(slots.low, units, windows)
        lists[(split, "hard_negative")] = SlotLists.by_key(h.hard[split], units, windows)
    return lists


def _unit_examples(
    h: KindHarvester, lists: dict[tuple[ExampleSplit, Sampling], SlotLists], row: int, unit: int, names: np.ndarray
) -> list[ActivationExample]:
    """A unit's examples, split by split; a window chosen twice in a split keeps its first (most
    specific) sampling."""
    triggers = {t for t in h.triggers[unit].tolist() if t >= 0}
    out: list[ActivationExample] = []
    for split in SPLITS:
        seen: set[int] = set()
        for sampling in SPLIT_SAMPLINGS:
            found = lists[(split, sampling)].examples(
                row, split, sampling, names, h.cfg.example_length, triggers if sampling == "hard_negative" else None
            )
            for ex in found:
                if ex.window_id not in seen:
                    seen.add(ex.window_id)
                    out.append(ex)
    return out


def kept_windows(subject: SubjectModel, harvesters: list[KindHarvester]) -> WindowTokens:
    """The tokens of every window the harvesters keep (they share one corpus and settings), read from
    the corpus in one pass: a caller writing several kinds reads them once for all."""
    cfg = harvesters[0].cfg
    ids = torch.cat([h.window_ids() for h in harvesters])
    return read_windows(subject, cfg.corpus, cfg.corpus_split, context_length(subject, cfg.context), ids)


def unit_records(
    kind: UnitKind,
    h: KindHarvester,
    subject: SubjectModel,
    hook: str,
    sae: SparseAutoencoder | None = None,
    units: list[int] | None = None,
    directions: torch.Tensor | None = None,
    indices: list[int] | None = None,
    windows: WindowTokens | None = None,
) -> Iterator[UnitHarvest]:
    """UnitHarvest records for the chosen units (all by default), in index order. Logit effects
    come from each unit's direction at the hook: the SAE's decoder rows for features, the basis
    vectors for neurons, or `directions` [U, d] when given; units with none get no logit effects.
    When the harvest kept only some units (see `column_subset`), `indices[i]` is the real index
    of its i-th column: records, directions and top neurons use the real index. `windows` holds the
    kept windows' tokens (see `kept_windows`; read from the corpus when not given)."""
    cfg = h.cfg
    strings = subject.tokenizer.token_strings(range(subject.tokenizer.vocab_size))
    n_units = h.state.stats.active.shape[0]
    units = list(range(n_units)) if units is None else units
    real = list(range(n_units)) if indices is None else indices
    if directions is None and kind == "feature" and sae is not None:
        directions = sae.W_dec.detach()
    elif directions is None and kind == "neuron":
        directions = torch.eye(n_units if indices is None else subject.hook_width(hook), device=subject.device)
    effects: torch.Tensor | None = None
    edges = [round(e, 6) for e in (10**HIST_EDGES_LOG10).tolist()]
    totals = h.state.stats.totals().tolist()
    names = np.array(strings, dtype=object)
    windows = windows if windows is not None else kept_windows(subject, [h])
    lists: dict[tuple[ExampleSplit, Sampling], SlotLists] = {}
    for position, unit in enumerate(units):
        if position % 256 == 0:  # the next 256 units' slots, and logit effects, a few operations for all
            chunk = units[position : position + 256]
            with one_torch_thread():
                lists = _chunk_lists(h, torch.tensor(chunk, dtype=torch.long, device=h.triggers.device), windows)
            if directions is not None:
                effects = logit_effects(subject, hook, directions[[real[u] for u in chunk]])
        promoted = suppressed = []
        if effects is not None:
            effect = effects[position % 256]
            top = effect.topk(cfg.n_logit_tokens)
            bottom = (-effect).topk(cfg.n_logit_tokens)
            promoted = [TokenWeight(token=strings[i], weight=round(float(v), 4)) for v, i in zip(*top)]
            suppressed = [TokenWeight(token=strings[i], weight=round(-float(v), 4)) for v, i in zip(*bottom)]
        neurons = []
        if kind == "feature" and sae is not None:
            weights = sae.W_dec[real[unit]].detach()
            picked = weights.abs().topk(min(cfg.n_top_neurons, len(weights))).indices
            neurons = [NeuronWeight(neuron=int(i), weight=round(float(weights[i]), 4)) for i in picked]
        yield UnitHarvest(
            kind=kind,
            index=real[unit],
            stats=_stats(h, unit, edges, totals[unit]),
            examples=_unit_examples(h, lists, position % 256, unit, names),
            promoted_tokens=promoted,
            suppressed_tokens=suppressed,
            top_neurons=neurons,
        )
