"""The explain stage and the score stage, over many units of one source.

Both stages work the same way: list the units, drop those already done with the same settings hash,
then let a fixed number of workers take units one by one (the LLM client bounds the requests in
flight on top of that). Each result is written to the store the moment it exists, so killing the
process loses only the units in flight, and a re-run picks up exactly what is missing. A unit whose
LLM call or reply fails is written as a failed row (and retried by the next run); a spent budget or
a refused key stops the stage: in-flight units finish, nothing new starts, and the error is raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from tqdm import tqdm

from autointerp.errors import UserError
from autointerp.explainers import Explainer, ExplainerError
from autointerp.llm.client import close_clients
from autointerp.llm.errors import LLMCallError
from autointerp.local_workers import explain_chunk, in_processes, load_unit, runs_locally, score_chunk
from autointerp.records import Explanation, Score, UnitHarvest, UnitKind
from autointerp.scoring import SCORER_CONFIGS, SCORERS, ScorerConfig, ScorerName
from autointerp.scoring.common import score_settings_hash
from autointerp.simulators.base import Simulator
from autointerp.store import CatalogStore
from autointerp.store.leases import new_owner

UnitKey = tuple[UnitKind, int]


class StageReport(BaseModel):
    """What one run of a stage did."""

    stage: str  # "explain" or "score"
    units: int = 0  # units asked for
    skipped: int = 0  # already done with the same settings: untouched
    elsewhere: int = 0  # being labelled by another process (it holds the unit's lease): left to it
    written: int = 0  # successful results written now (explanations, or scores over all scorers)
    failed: int = 0  # failure rows written now
    not_explained: int = 0  # score stage: units without a usable explanation of the asked settings
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def count(self, result: Explanation | Score) -> None:
        if result.failed:
            self.failed += 1
        else:
            self.written += 1
        self.prompt_tokens += result.prompt_tokens
        self.completion_tokens += result.completion_tokens
        self.cost_usd += result.cost_usd


# ---- explain -----------------------------------------------------------------------------------


async def explain_units(
    store: CatalogStore,
    source: str,
    units: Iterable[UnitKey] | None,
    explainer: Explainer,
    *,
    concurrency: int = 8,
    processes: int = 1,
    progress: bool = True,
) -> StageReport:
    """Explain every unit of `units` (all units of `source` when None) that has no usable explanation
    with `explainer.settings_hash` yet. Raises BudgetExceeded / other UserErrors after in-flight units
    are finished and saved. A local explainer runs in `processes` worker processes."""
    report, todo = explain_todo(store, source, units, explainer)
    label = f"explain ({explainer.name})"
    if processes > 1 and runs_locally(explainer):
        shared = (str(store.path), source, explainer)
        for explanations in in_processes(
            explain_chunk, shared, todo, processes=processes, label=label, progress=progress
        ):
            store.put_explanations(source, explanations)
            for explanation in explanations:
                report.count(explanation)
        return report

    leases = UnitLeases(store, source, f"explain:{explainer.settings_hash}")

    async def explain_one(key: UnitKey) -> None:
        if not leases.take(key):
            report.elsewhere += 1
            return
        try:
            await explain_unit(store, source, key, explainer, report)
        finally:
            leases.release(key)

    try:
        await _run_workers(todo, explain_one, concurrency, progress, label)
    finally:
        await close_clients(explainer)  # this event loop's connections: asyncio.run ends it next
    return report


def explain_todo(
    store: CatalogStore, source: str, units: Iterable[UnitKey] | None, explainer: Explainer
) -> tuple[StageReport, list[UnitKey]]:
    """The stage's report so far and the units without a usable explanation of these settings."""
    keys = _unit_keys(store, source, units)
    report = StageReport(stage="explain", units=len(keys))
    usable = {
        (e.unit_kind, e.unit_index)
        for e in store.explanations(source)
        if e.settings_hash == explainer.settings_hash and is_usable(e)
    }
    todo = [k for k in keys if k not in usable]
    report.skipped = len(keys) - len(todo)
    return report, todo


async def explain_unit(
    store: CatalogStore, source: str, key: UnitKey, explainer: Explainer, report: StageReport
) -> None:
    """Explain one unit and write its explanation, or its failure row, unless it was done meanwhile."""
    done = store.explanations(source, *key)
    if any(e.settings_hash == explainer.settings_hash and is_usable(e) for e in done):
        report.skipped += 1  # another process finished it since this one listed its work
        return
    harvest = load_unit(store, source, key)
    try:
        explanation = await explainer.explain(harvest)
    except (ExplainerError, LLMCallError) as exc:
        explanation = failed_explanation(harvest, explainer, exc)
    store.put_explanation(source, explanation)
    report.count(explanation)


def is_usable(explanation: Explanation) -> bool:
    """Failed or empty explanations are never scored and are retried by the next explain run."""
    return not explanation.failed and bool(explanation.text.strip())


def failed_explanation(harvest: UnitHarvest, explainer: Explainer, exc: Exception) -> Explanation:
    usage = getattr(exc, "usage", None)
    return Explanation(
        unit_kind=harvest.kind,
        unit_index=harvest.index,
        text="",
        explainer=explainer.name,
        model=getattr(explainer, "model", None),
        prompt_version=getattr(explainer, "prompt_version", None),
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
        cost_usd=usage.cost_usd if usage else 0.0,
        raw_response=getattr(exc, "raw_response", None),
        settings_hash=explainer.settings_hash,
        failed=True,
        error=str(exc),
    )


# ---- score -------------------------------------------------------------------------------------


@dataclass
class ScoreWork:
    """What one score stage has to do: the units and their missing scorers, and how to score them."""

    store: CatalogStore
    source: str
    explanation_settings_hash: str
    simulator: Simulator
    configs: dict[ScorerName, ScorerConfig]
    hashes: dict[ScorerName, str]  # scorer -> settings hash of its scores
    explanations: dict[UnitKey, Explanation]  # the usable explanations being scored
    report: StageReport
    todo: list[tuple[UnitKey, list[ScorerName]]]


def score_work(
    store: CatalogStore,
    source: str,
    units: Iterable[UnitKey] | None,
    *,
    explanation_settings_hash: str,
    scorers: Sequence[ScorerName],
    simulator: Simulator,
    scorer_configs: dict[ScorerName, ScorerConfig] | None = None,
) -> ScoreWork:
    """List the units with a usable explanation of `explanation_settings_hash` and the scorers each
    still lacks; units without such an explanation count in `not_explained`."""
    configs = {name: (scorer_configs or {}).get(name) or SCORER_CONFIGS[name]() for name in scorers}
    hashes = {name: score_settings_hash(configs[name], simulator) for name in scorers}
    keys = _unit_keys(store, source, units)
    report = StageReport(stage="score", units=len(keys))
    explanations = {
        (e.unit_kind, e.unit_index): e
        for e in store.explanations(source)
        if e.settings_hash == explanation_settings_hash and is_usable(e)
    }
    todo: list[tuple[UnitKey, list[ScorerName]]] = []
    for key in keys:
        explanation = explanations.get(key)
        if explanation is None:
            report.not_explained += 1
            continue
        missing = [
            name
            for name in scorers
            if not store.has_score(source, key[0], key[1], name, explanation_settings_hash, hashes[name])
        ]
        if missing:
            todo.append((key, missing))
        else:
            report.skipped += 1
    return ScoreWork(store, source, explanation_settings_hash, simulator, configs, hashes, explanations, report, todo)


async def score_units(
    store: CatalogStore,
    source: str,
    units: Iterable[UnitKey] | None,
    *,
    explanation_settings_hash: str,
    scorers: Sequence[ScorerName],
    simulator: Simulator,
    scorer_configs: dict[ScorerName, ScorerConfig] | None = None,
    concurrency: int = 8,
    processes: int = 1,
    progress: bool = True,
) -> StageReport:
    """Score each unit's explanation (the one made with `explanation_settings_hash`) under every
    scorer in `scorers` not yet done with the same scorer and simulator settings. Units without a
    usable explanation are counted in `not_explained` and left alone. A local simulator runs in
    `processes` worker processes."""
    work = score_work(
        store,
        source,
        units,
        explanation_settings_hash=explanation_settings_hash,
        scorers=scorers,
        simulator=simulator,
        scorer_configs=scorer_configs,
    )
    report = work.report
    label = f"score ({simulator.name})"
    if processes > 1 and runs_locally(simulator):
        shared = (str(store.path), source, simulator, {name: SCORERS[name] for name in scorers}, work.configs)
        items = [(key, names, work.explanations[key]) for key, names in work.todo]
        for per_unit in in_processes(score_chunk, shared, items, processes=processes, label=label, progress=progress):
            scores = [score for unit_scores in per_unit for score in unit_scores]
            store.put_scores(source, scores)
            for score in scores:
                report.count(score)
        return report

    task = f"score:{explanation_settings_hash}:{','.join(sorted(work.hashes.values()))}"
    leases = UnitLeases(store, source, task)

    async def score_one(item: tuple[UnitKey, list[ScorerName]]) -> None:
        key, names = item
        if not leases.take(key):
            report.elsewhere += 1
            return
        try:
            await score_unit(work, key, names)
        finally:
            leases.release(key)

    try:
        await _run_workers(work.todo, score_one, concurrency, progress, label)
    finally:
        await close_clients(simulator)
    return report


async def score_unit(work: ScoreWork, key: UnitKey, names: list[ScorerName]) -> None:
    """Score one unit under `names` (less those done meanwhile), writing each score as it exists."""
    store, source, kind, index = work.store, work.source, key[0], key[1]
    names = [
        n for n in names if not store.has_score(source, kind, index, n, work.explanation_settings_hash, work.hashes[n])
    ]
    if not names:
        work.report.skipped += 1  # another process finished it since this one listed its work
        return
    harvest = load_unit(store, source, key)
    explanation = work.explanations[key]

    async def run(name: ScorerName) -> None:
        score = await SCORERS[name](harvest, explanation, work.simulator, work.configs[name])
        store.put_score(source, score)
        work.report.count(score)

    # Let every scorer of the unit finish (and save) before an error of one of them stops the stage.
    outcomes = await asyncio.gather(*(run(name) for name in names), return_exceptions=True)
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    if errors:
        raise errors[0]


# ---- shared ------------------------------------------------------------------------------------


class UnitLeases:
    """This process's leases on the units of one task, so that a second labeler on the same catalog
    takes other units instead of paying for the same ones (the local worker pool is not leased:
    a repeat there costs CPU, not money)."""

    def __init__(self, store: CatalogStore, source: str, task: str) -> None:
        self.store, self.source, self.task, self.owner = store, source, task, new_owner()

    def take(self, key: UnitKey) -> bool:
        return self.store.take_lease(self.source, self.task, key[0], key[1], self.owner)

    def release(self, key: UnitKey) -> None:
        self.store.release_lease(self.source, self.task, key[0], key[1], self.owner)


def _unit_keys(store: CatalogStore, source: str, units: Iterable[UnitKey] | None) -> list[UnitKey]:
    stored = store.unit_keys(source)
    if units is None:
        return stored
    wanted = list(dict.fromkeys(units))  # keep order, drop repeats
    known = set(stored)
    missing = [k for k in wanted if k not in known]
    if missing:
        shown = ", ".join(f"{kind}:{index}" for kind, index in missing[:5])
        raise UserError(f"source {source!r} has no unit(s) {shown}{' ...' if len(missing) > 5 else ''}")
    return wanted


async def _run_workers(
    items: Sequence[Any],
    work: Callable[[Any], Awaitable[None]],
    concurrency: int,
    progress: bool,
    label: str,
) -> None:
    """`concurrency` workers take items in order. The first exception stops new work; the workers
    finish what they hold, then it is raised."""
    pending = iter(items)
    stop: list[BaseException] = []
    bar = tqdm(total=len(items), desc=label, unit="unit", disable=not progress or not items)

    async def worker() -> None:
        for item in pending:  # one shared iterator: each item goes to exactly one worker
            if stop:
                return
            try:
                await work(item)
            except Exception as exc:  # noqa: BLE001 (re-raised below, once the others finish)
                stop.append(exc)
                return
            bar.update(1)

    try:
        await asyncio.gather(*(worker() for _ in range(min(concurrency, max(len(items), 1)))))
    finally:
        bar.close()
    if stop:
        raise stop[0]
