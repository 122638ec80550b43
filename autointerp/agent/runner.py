"""The agent over a catalog: planting ground-truth units into it, and running a driver on stored
units, writing each final explanation (as an ordinary explanation, so it is scored and exported like
any other) and its trace."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field
from tqdm import tqdm

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
    driver: str = DRIVER_NAME  # offline (an LLM driver is not built yet)
    budget: int = Field(40, ge=1)  # subject-model calls per unit
    device: str = "cpu"


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


def run_agent(store: CatalogStore, source: str, units: list[UnitKey], spec: AgentSpec) -> AgentReport:
    """Run the driver on each unit (skipping units already traced with the same driver and budget)."""
    if spec.driver != DRIVER_NAME:
        raise UserError(f"driver {spec.driver!r} is not available; use --driver offline")
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
    agent_config = OfflineAgentConfig(budget=spec.budget)
    driver = OfflineDriver.for_subject(subject, corpus, agent_config)
    explainer = OfflineExplainer()
    label = f"agent-{spec.driver}"
    hashed = settings_hash({"explainer": label, "params": agent_config.model_dump()})
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
