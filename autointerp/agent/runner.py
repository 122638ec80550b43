"""The agent over a catalog: planting ground-truth units into it, and running a driver on stored
units, writing each final explanation (as an ordinary explanation, so it is scored and exported like
any other) and its trace."""

from __future__ import annotations

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
from autointerp.agent.trace_store import TraceStore
from autointerp.errors import UserError
from autointerp.explainers.offline import EXPLAINER_NAME, OfflineExplainer
from autointerp.labeling import UnitKey
from autointerp.records import Explanation, UnitKind
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
    max_cost: float | None = None  # LLM drivers: USD per unit

    @field_validator("driver")
    @classmethod
    def _known_driver(cls, driver: str) -> str:
        provider, _, model = driver.partition(":")
        if driver != DRIVER_NAME and (provider not in LLM_PROVIDERS or not model):
            raise ValueError(f"driver {driver!r}: use offline, openai:MODEL, anthropic:MODEL or openai-compatible:MODEL")
        return driver


class AgentReport(BaseModel):
    source: str
    done: int = 0
    skipped: int = 0  # already traced with the same driver and budget
    calls: int = 0
    revised: int = 0  # units whose final explanation differs from the one the agent started from


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


def _unit_activations(config: dict, kind: UnitKind, index: int, subject: SubjectModel, hook: str, vocab: Vocab, sae_cache: dict) -> UnitActivations:
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


def _driver(
    spec: AgentSpec, subject: SubjectModel, corpus: CorpusWindows, db_path: str
) -> tuple[OfflineDriver | LLMDriver, dict]:
    """The driver `spec` names, and its settings (they enter the explanation's settings hash)."""
    if spec.driver == DRIVER_NAME:
        offline = OfflineAgentConfig(budget=spec.budget)
        return OfflineDriver.for_subject(subject, corpus, offline), offline.model_dump()
    llm = LLMAgentConfig(model=spec.driver, base_url=spec.base_url, max_rounds=spec.max_rounds, max_cost=spec.max_cost)
    return LLMDriver(llm, corpus, db_path), {**llm.model_dump(exclude={"base_url"}), "budget": spec.budget}


def run_agent(store: CatalogStore, source: str, units: list[UnitKey], spec: AgentSpec) -> AgentReport:
    """Run the driver on each unit (skipping units already traced with the same driver and budget)."""
    traces = TraceStore(store.path)
    report = AgentReport(source=source)
    todo = [(k, i) for k, i in units if not traces.has(source, k, i, spec.driver, spec.budget)]
    report.skipped = len(units) - len(todo)
    if not todo:
        return report
    config = store.source_config(source)
    subject_spec = config.get("subject", {})
    subject = load_subject(subject_spec.get("model", "builtin"), device=spec.device)
    hook = subject_spec.get("hook", BUILTIN_HOOK)
    corpus = CorpusWindows(subject, corpus=config.get("corpus", "stdlib"))
    driver, settings = _driver(spec, subject, corpus, str(store.path))
    explainer = OfflineExplainer()
    label = f"agent-{spec.driver}"
    hashed = settings_hash({"explainer": label, "params": settings})
    sae_cache: dict = {}
    for kind, index in tqdm(todo, desc="agent", unit="unit"):
        harvest = store.get_unit(source, kind, index)
        if harvest is None:
            raise UserError(f"{kind} {index} is not in source {source!r}")
        stored = [e for e in store.explanations(source, kind, index) if e.explainer == EXPLAINER_NAME and not e.failed]
        initial = stored[0].text if stored else explainer.explain_now(harvest).text
        unit = _unit_activations(config, kind, index, subject, hook, corpus.vocab, sae_cache)
        trace = driver.run(harvest, initial, Prober(subject, hook, unit, corpus.vocab, spec.budget))
        traces.put(source, trace)
        store.put_explanation(source, Explanation(
            unit_kind=kind, unit_index=index, text=trace.final, explainer=label, settings_hash=hashed,
            meta={"initial": initial, "calls": trace.calls, "revisions": len(trace.revisions)},
        ))  # fmt: skip
        report.done += 1
        report.calls += trace.calls
        report.revised += trace.final != initial
    traces.close()
    return report
