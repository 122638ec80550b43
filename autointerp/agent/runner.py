"""The agent over a catalog: planting ground-truth units into it, and running a driver on stored
units, writing each final explanation (as an ordinary explanation, so it is scored and exported like
any other) and its trace."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import BaseModel, Field, field_validator
from tqdm import tqdm

from autointerp.agent.llm_driver import LLM_PROVIDERS, LLMAgentConfig, LLMDriver
from autointerp.agent.offline_driver import (
    DRIVER_NAME,
    OfflineAgentConfig,
    OfflineDriver,
)
from autointerp.agent.planted import (
    PlantedUnit,
    generate_planted,
    harvest_planted,
    planted_source,
    sample_stats,
)
from autointerp.agent.probes import (
    CorpusWindows,
    Prober,
    UnitActivations,
    feature_unit,
    neuron_unit,
    planted_unit,
)
from autointerp.agent.rules import Vocab
from autointerp.agent.trace import AgentTrace
from autointerp.agent.trace_store import TraceStore
from autointerp.errors import UserError
from autointerp.explainers.offline import EXPLAINER_NAME, OfflineExplainer
from autointerp.labeling import UnitKey
from autointerp.llm.budget import Budget, BudgetExceeded
from autointerp.llm.client import closing
from autointerp.llm.errors import LLMCallError
from autointerp.llm.factory import make_llm_client
from autointerp.llm.redact import safe_url
from autointerp.records import Explanation, UnitHarvest, UnitKind
from autointerp.settings_hash import settings_hash
from autointerp.store import CatalogStore
from sae.harvest import HarvestConfig
from sae.saelens_format import load_sae
from sae.subject.models import BUILTIN_HOOK, SubjectModel, load_subject


class AgentSpec(BaseModel):
    driver: str = DRIVER_NAME  # offline, openai:MODEL, anthropic:MODEL or openai-compatible:MODEL
    budget: int = Field(40, ge=1)  # subject-model calls per unit
    device: str = "cpu"
    base_url: str | None = None  # LLM drivers: an OpenAI-compatible server, or a local test server
    max_rounds: int = Field(12, ge=1)  # LLM drivers: model turns per unit
    # LLM drivers: USD for the whole catalog (earlier runs' LLM spend counts, as for `autointerp run`)
    max_cost: float | None = Field(None, ge=0)
    concurrency: int = Field(4, ge=1)  # LLM drivers: conversations in flight (their tools take turns)
    timeout: float = Field(60.0, gt=0)  # LLM drivers: seconds per request

    @field_validator("driver")
    @classmethod
    def _known_driver(cls, driver: str) -> str:
        provider, _, model = driver.partition(":")
        if driver != DRIVER_NAME and (provider not in LLM_PROVIDERS or not model):
            raise ValueError(
                f"driver {driver!r}: use offline, openai:MODEL, anthropic:MODEL or openai-compatible:MODEL"
            )
        return driver


class AgentReport(BaseModel):
    source: str
    done: int = 0
    skipped: int = 0  # already traced with the same driver and budget
    calls: int = 0
    revised: int = 0  # units whose final explanation differs from the one the agent started from
    failed: list[str] = Field(default_factory=list)  # "kind index: error" of units whose LLM call failed
    cost_usd: float = 0.0  # LLM spend of this run (replies read from the cache cost nothing)
    stopped: str | None = None  # why the run stopped before every unit was done (the budget)


def plant(store: CatalogStore, n_units: int, seed: int, cfg: HarvestConfig, device: str = "cpu") -> str:
    """Harvest `n_units` planted units of `seed` into their own source (kind "feature"); returns its name."""
    subject = load_subject("builtin", device=device)
    source = planted_source(subject, BUILTIN_HOOK, seed)
    if source in store.sources() and store.source_config(source).get("harvest_complete"):
        return source
    units = generate_planted(sample_stats(subject, cfg.corpus), n_units, seed)
    store.put_units(source, harvest_planted(subject, BUILTIN_HOOK, units, cfg))
    store.put_source(source, {
        "subject": {"model": "builtin", "hook": BUILTIN_HOOK, "device": device}, "sae": None, "corpus": cfg.corpus,
        "harvest": cfg.model_dump(), "planted": [u.model_dump() for u in units], "harvest_complete": True,
    })  # fmt: skip
    return source


def _unit_activations(
    config: dict, kind: UnitKind, index: int, subject: SubjectModel, hook: str, vocab: Vocab, sae_cache: dict
) -> UnitActivations:
    if "planted" in config:
        units = [PlantedUnit.model_validate(u) for u in config["planted"]]
        return planted_unit(units[index], vocab)
    if kind == "neuron":
        return neuron_unit(index)
    if not config.get("sae"):
        raise UserError("this source has features but names no SAE folder to recompute them from")
    if "sae" not in sae_cache:
        sae_cache["sae"] = load_sae(Path(config["sae"]), subject.hook_width(hook), device=str(subject.device))
    return feature_unit(sae_cache["sae"], index)


def _llm_driver(spec: AgentSpec, store: CatalogStore, corpus: CorpusWindows) -> tuple[LLMDriver, dict, str]:
    """The LLM driver `spec` names, on a client sharing the catalog's cache and call log under one
    budget for the whole run; its settings (for the settings hash) and the run id."""
    config = LLMAgentConfig(max_rounds=spec.max_rounds)
    run_id = store.new_run("agent", spec.model_dump() | {"base_url": safe_url(spec.base_url)})  # no credential
    budget = None if spec.max_cost is None else Budget(spec.max_cost, spent_usd=store.ledger.total_cost())
    client = make_llm_client(spec.driver, ledger=store.ledger, base_url=spec.base_url, concurrency=spec.concurrency,
                             timeout=spec.timeout, budget=budget, run_id=run_id)  # fmt: skip
    settings = {"model": spec.driver, **config.model_dump(), "budget": spec.budget}
    return LLMDriver(client, config, corpus), settings, run_id


class _Units:
    """What running a driver on one unit needs from the catalog, and where its result goes."""

    def __init__(self, store: CatalogStore, source: str, spec: AgentSpec) -> None:
        self.store, self.source, self.spec = store, source, spec
        self.config = store.source_config(source)
        subject_spec = self.config.get("subject", {})
        self.subject = load_subject(subject_spec.get("model", "builtin"), device=spec.device)
        self.hook = subject_spec.get("hook", BUILTIN_HOOK)
        self.corpus = CorpusWindows(self.subject, corpus=self.config.get("corpus", "stdlib"))
        self.traces = TraceStore(store.path)
        self.explainer = OfflineExplainer()
        self.sae_cache: dict = {}

    def start(self, kind: UnitKind, index: int) -> tuple[UnitHarvest, str, Prober]:
        """The unit's harvest, the explanation the agent starts from, and a prober with the budget."""
        harvest = self.store.get_unit(self.source, kind, index)
        if harvest is None:
            raise UserError(f"{kind} {index} is not in source {self.source!r}")
        stored = [
            e
            for e in self.store.explanations(self.source, kind, index)
            if e.explainer == EXPLAINER_NAME and not e.failed
        ]
        initial = stored[0].text if stored else self.explainer.explain_now(harvest).text
        unit = _unit_activations(self.config, kind, index, self.subject, self.hook, self.corpus.vocab, self.sae_cache)
        return harvest, initial, Prober(self.subject, self.hook, unit, self.corpus.vocab, self.spec.budget)

    def keep(self, trace: AgentTrace, label: str, hashed: str, report: AgentReport) -> None:
        """Store the trace and its final explanation (an ordinary explanation, scored and exported
        like any other)."""
        self.traces.put(self.source, trace)
        self.store.put_explanation(self.source, Explanation(
            unit_kind=trace.unit_kind, unit_index=trace.unit_index, text=trace.final, explainer=label,
            settings_hash=hashed, meta={"initial": trace.initial, "calls": trace.calls, "revisions": len(trace.revisions)},
        ))  # fmt: skip
        report.done += 1
        report.calls += trace.calls
        report.revised += trace.final != trace.initial


def run_agent(store: CatalogStore, source: str, units: list[UnitKey], spec: AgentSpec) -> AgentReport:
    """Run the driver on each unit (skipping units already traced with the same driver and budget).
    An LLM run stops cleanly when its budget is spent: finished units are kept, and the replies of
    an unfinished conversation stay cached for the next run."""
    traces = TraceStore(store.path)
    report = AgentReport(source=source)
    todo = [(k, i) for k, i in units if not traces.has(source, k, i, spec.driver, spec.budget)]
    traces.close()
    report.skipped = len(units) - len(todo)
    if not todo:
        return report
    work = _Units(store, source, spec)
    label = f"agent-{spec.driver}"
    try:
        if spec.driver == DRIVER_NAME:
            offline = OfflineAgentConfig(budget=spec.budget)
            driver = OfflineDriver.for_subject(work.subject, work.corpus, offline)
            hashed = settings_hash({"explainer": label, "params": offline.model_dump()})
            for kind, index in tqdm(todo, desc="agent", unit="unit"):
                work.keep(driver.run(*work.start(kind, index)), label, hashed, report)
        else:
            llm, settings, run_id = _llm_driver(spec, store, work.corpus)
            hashed = settings_hash({"explainer": label, "params": settings})
            asyncio.run(closing(_run_llm(llm, work, todo, label, hashed, report), llm))
            report.cost_usd = round(store.ledger.total_cost(run_id), 6)
            store.set_run_status(run_id, "stopped: budget" if report.stopped else "done")
    finally:
        work.traces.close()
    return report


async def _run_llm(
    driver: LLMDriver, work: _Units, todo: list[UnitKey], label: str, hashed: str, report: AgentReport
) -> None:
    """Up to `concurrency` conversations at once; a failed call fails its unit, a spent budget (or a
    refused key) stops them all."""
    slots = asyncio.Semaphore(work.spec.concurrency)
    progress = tqdm(total=len(todo), desc="agent", unit="unit")

    async def one(kind: UnitKind, index: int) -> None:
        async with slots:
            try:
                trace = await driver.run(*work.start(kind, index))
            except LLMCallError as err:
                report.failed.append(f"{kind} {index}: {err}")
            else:
                work.keep(trace, label, hashed, report)
            progress.update()

    try:
        async with asyncio.TaskGroup() as group:
            for kind, index in todo:
                group.create_task(one(kind, index))
    except* BudgetExceeded as spent:
        report.stopped = str(spent.exceptions[0])
    except* UserError as fatal:
        raise fatal.exceptions[0] from None
    finally:
        progress.close()
