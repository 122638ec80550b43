"""The whole job, stage after stage, as plain function calls:

    subject model -> SAE (train or load, then evaluate) -> harvest neurons and features into the
    catalog store -> explain -> simulate and score -> compare neurons vs features -> export

Every stage first looks at what is already on disk under the run's folder and skips what is
finished with the same settings, so a killed run resumes and a repeated one redoes nothing.
`RunConfig` is what a TOML/YAML run file holds; each stage only receives its own part of it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, field_validator, model_validator

from autointerp.agent.trace_store import attach_traces
from autointerp.analysis.family import add_splitting, attach_family
from autointerp.compare import explainer_label, write_report
from autointerp.controls import (
    CONTROLS_DB,
    ControlSpec,
    density_matched_k,
    random_direction_sae,
    random_init_subject,
    shuffled_explanations,
    shuffled_hash,
    top_k_per_token,
)
from autointerp.errors import UserError, describe_validation_error
from autointerp.explainers import Explainer
from autointerp.explainers.llm import (
    LLMExplainer,
    LLMExplainerConfig,
    llm_explainer_settings_hash,
)
from autointerp.explainers.offline import OfflineExplainer, OfflineExplainerConfig, offline_explainer_settings_hash
from autointerp.export import export_catalog
from autointerp.labeling import StageReport, UnitKey, explain_units, score_units
from autointerp.llm.budget import Budget, BudgetExceeded
from autointerp.llm.factory import make_llm_client
from autointerp.llm.redact import safe_url
from autointerp.local_workers import default_processes
from autointerp.query.imports.labels import IMPORTED_PREFIX, imported_settings_hash
from autointerp.records import CatalogEntry, UnitKind
from autointerp.scoring import ScorerName
from autointerp.simulators.base import Simulator
from autointerp.simulators.llm import LLMSimulator, LLMSimulatorConfig
from autointerp.simulators.offline import OfflineSimulator
from autointerp.store import CatalogStore, open_store
from autointerp.validity import slim_entry
from autointerp.validity_report import build_report
from sae.autoencoder import SparseAutoencoder
from sae.files import check_output_folder, check_sae_outputs, read_json_object
from sae.harvest import (
    HarvestConfig,
    KindHarvester,
    UnitFunction,
    column_subset,
    corpus_part,
    default_units,
    harvest_units,
    hook_neurons,
    kept_windows,
    sae_features,
    unit_records,
)
from sae.harvest_checkpoint import HarvestCheckpoint
from sae.memory import release_freed_memory
from sae.metrics import evaluate_sae, plot_sae_density
from sae.saelens_format import CFG_FILE, load_sae
from sae.subject.models import (
    BUILTIN_HOOK,
    SubjectModel,
    check_device,
    check_dtype,
    check_model_path,
    load_subject,
)
from sae.training import SAETrainConfig, train_sae

CATALOG_DB = "catalog.db"
SAE_DIR = "sae"
MINIMAL_CONFIG = 'out = "my_run"  [units] mode = "first"  n = 20'


class SubjectSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error, not a default

    model: str = "builtin"  # "builtin", a built-in-layout folder, or an HF model name/path
    hook: str = BUILTIN_HOOK
    device: str = "cpu"  # cpu, cuda, cuda:N or mps
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"  # float32 only for the built-in model

    @model_validator(mode="after")
    def _known_device_and_dtype(self) -> SubjectSpec:
        try:
            check_device(self.device)
            check_dtype(self.model, self.dtype)
            check_model_path(self.model)
        except UserError as err:
            raise ValueError(str(err)) from None
        return self


class SAESpec(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error, not a default

    path: str | None = None  # a SAELens-layout folder to load; None trains one into OUT/sae
    train: SAETrainConfig = SAETrainConfig()
    eval_tokens: int = Field(100_000, gt=0)

    @field_validator("path")
    @classmethod
    def _sae_folder(cls, path: str | None) -> str | None:
        if path is not None and not (Path(path) / CFG_FILE).is_file():
            raise ValueError(f"{path} is not a SAELens-layout SAE folder (no {CFG_FILE})")
        return path


class UnitSelection(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error, not a default

    kinds: list[UnitKind] = ["neuron", "feature"]
    mode: Literal["all", "first", "random", "list"] = "all"
    n: int | None = Field(None, ge=1)  # for first / random: per kind
    indices: dict[str, list[int]] = Field(default_factory=dict)  # for list: {"feature": [1, 5]}
    seed: int = 0

    @model_validator(mode="after")
    def _n_for_first_and_random(self) -> UnitSelection:
        if self.mode in ("first", "random") and self.n is None:
            raise ValueError(f"mode {self.mode!r} needs n, the number of units per kind")
        return self


class LabelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error, not a default

    explainer: str = "offline"  # offline, openai:MODEL, anthropic:MODEL, openai-compatible:MODEL
    simulator: str = "offline"
    base_url: str | None = None  # for openai-compatible servers (vLLM, llama.cpp, Ollama)
    explainer_base_url: str | None = None  # the explainer's own server (default: base_url)
    simulator_base_url: str | None = None  # the simulator's own server (default: base_url)
    explainer_key_env: str | None = None  # env variable with the explainer's key (default: the provider's)
    simulator_key_env: str | None = None
    scorers: list[ScorerName] = Field(default=["simulation", "detection", "fuzzing"], min_length=1)
    max_cost: float | None = Field(
        None, ge=0
    )  # USD for the whole catalog (earlier runs count); stops cleanly when reached
    concurrency: int = Field(8, ge=1)
    processes: int = Field(0, ge=0)  # worker processes for the offline explainer/simulator; 0: one per CPU
    timeout: float = Field(60.0, gt=0)
    max_attempts: int = Field(5, ge=1)  # per LLM request, retries included
    prices: str | None = None  # a .json/.toml price table overriding the built-in one
    # excerpts per LLM simulation request; 1 (one per call) keeps scores comparable with published ones
    simulation_examples_per_call: int = Field(1, ge=1)

    @field_serializer("base_url", "explainer_base_url", "simulator_base_url")
    def _without_credentials(self, url: str | None) -> str | None:
        return safe_url(url)  # recorded run configs must not carry a URL's user:password


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error, not a default

    out: str = "autointerp_run"
    corpus: str = "stdlib"
    subject: SubjectSpec = SubjectSpec()
    sae: SAESpec = SAESpec()
    harvest: HarvestConfig = HarvestConfig()
    units: UnitSelection = UnitSelection()
    label: LabelSpec = LabelSpec()
    controls: ControlSpec = ControlSpec(run=[])  # the demo turns them all on
    export: bool = True  # False: report.json/md only (no JSONL, Neuronpedia or HTML catalog)
    harvest_selected_only: bool = False  # harvest only the units `units` picks: faster, but the catalog holds only them

    @model_validator(mode="after")
    def _one_corpus(self) -> RunConfig:
        """The top-level corpus feeds every stage; a nested one that says otherwise would be ignored."""
        for where, nested in (("sae.train", self.sae.train), ("harvest", self.harvest)):
            if "corpus" in nested.model_fields_set and nested.corpus != self.corpus:
                raise ValueError(
                    f"{where}.corpus is {nested.corpus!r} but corpus is {self.corpus!r}: "
                    "set the corpus once, at the top level"
                )
        return self


class RunSummary(BaseModel):
    out: str
    source: str
    stage_seconds: dict[str, float] = Field(default_factory=dict)
    sae_metrics: dict | None = None
    explain: StageReport | None = None
    score: StageReport | None = None
    report_path: str | None = None
    html_path: str | None = None
    stopped_by_budget: str | None = None


def load_run_config(path: Path) -> RunConfig:
    """A TOML or YAML run file, validated; every mistake is reported with its field path."""
    if not path.exists():
        raise UserError(f"run config {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            raise UserError(f"run config {path} must end in .toml, .yaml or .yml")
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 (tomllib and yaml raise their own parse errors)
        raise UserError(f"cannot parse {path}: {err}") from None
    if not data:  # nothing set would silently run the whole default job into ./autointerp_run
        raise UserError(f"{path} sets nothing; a minimal run config is: {MINIMAL_CONFIG} (see configs/)")
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a table of settings, got a {type(data).__name__}")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        raise UserError(f"{path}: {describe_validation_error(err)}") from None


# --- stage 1: the SAE -------------------------------------------------------------------------------


def prepare_sae(
    subject: SubjectModel, hook: str, spec: SAESpec, corpus: str, out: Path
) -> tuple[SparseAutoencoder, Path, dict]:
    """Load the configured SAE, or train one into OUT/sae (resuming a killed training); evaluate it
    once (metrics.json and density.png beside it) unless that was done already. A finished SAE
    trained with other settings is an error, never silently reused."""
    width = subject.hook_width(hook)
    if spec.path:
        folder = Path(spec.path)
        metrics_file = out / "sae_metrics.json"
        made_with = {"sae_path": str(folder.resolve()), "eval_tokens": spec.eval_tokens}
    else:
        folder = out / SAE_DIR
        train_cfg = spec.train.model_copy(update={"corpus": corpus})
        done = folder / "training.json"
        check_sae_outputs(folder)
        if not (folder / CFG_FILE).exists():
            train_sae(subject, hook, train_cfg, folder)
        elif done.exists() and read_json_object(done).get("train_config") != train_cfg.model_dump():
            raise UserError(f"{folder} holds an SAE trained with other settings; use a new --out or delete it")
        metrics_file = folder / "metrics.json"
        made_with = {"eval_tokens": spec.eval_tokens}
    sae = load_sae(folder, width, device=str(subject.device))
    if sae.cfg.hook_name != hook:
        print(f"note: the SAE in {folder} was made for hook {sae.cfg.hook_name!r}; using it at {hook!r}")
    metrics = read_json_object(metrics_file) if metrics_file.exists() else {}
    if metrics.get("made_with") != made_with:
        result, density = evaluate_sae(subject, sae, hook, corpus=corpus, max_tokens=spec.eval_tokens)
        metrics = {**result.model_dump(), "made_with": made_with}
        metrics_file.write_text(json.dumps(metrics, indent=2))
        plot_sae_density(density, metrics_file.parent / "density.png", title=f"SAE {sae.cfg.d_sae} features")
    return sae, folder, metrics


# --- stage 2: harvest -------------------------------------------------------------------------------


def source_name(subject: SubjectSpec, sae: SparseAutoencoder | None) -> str:
    """Which model, hook and SAE a unit belongs to, e.g. `builtin/blocks.0.mlp.act/topk-4096`."""
    suffix = f"/{sae.cfg.architecture}-{sae.cfg.d_sae}" if sae is not None else ""
    return f"{subject.model}/{subject.hook}{suffix}"


def harvest_into_store(
    store: CatalogStore,
    source: str,
    subject: SubjectModel,
    hook: str,
    sae: SparseAutoencoder | None,
    cfg: HarvestConfig,
    described: dict,
    units: dict[UnitKind, UnitFunction] | None = None,
    keep: dict[UnitKind, list[int]] | None = None,
) -> bool:
    """Harvest every unit into the store unless this source was fully harvested with the same
    settings; returns whether it ran. `units` replaces the default unit kinds (neurons, and the
    SAE's features) for controls, and `keep` harvests only those indices of a kind (the units a
    control will label)."""
    wanted = harvest_settings(described, cfg, keep)
    if is_harvested(store, source, wanted):
        return False
    checkpoint = harvest_checkpoint(store, source, wanted)
    kinds = harvest_units(subject, hook, cfg, harvested_units(sae, units, keep), checkpoint)
    write_harvest(store, source, kinds, subject, hook, sae, wanted, keep)
    checkpoint.remove()
    return True


def harvest_settings(described: dict, cfg: HarvestConfig, keep: dict[UnitKind, list[int]] | None = None) -> dict:
    """What a source records about its harvest, and what a rerun must match."""
    return {
        **described,
        "harvest": cfg.model_dump(),
        **({"kept": {k: len(v) for k, v in keep.items()}} if keep else {}),
    }


def is_harvested(store: CatalogStore, source: str, wanted: dict) -> bool:
    """Whether the source was fully harvested with these settings. One harvested with other
    settings is an error: its explanations and scores describe those examples, and mixing them
    would mislabel units."""
    if source not in store.sources():
        return False
    done = store.source_config(source)
    if not done.get("harvest_complete"):
        return False
    if {k: done.get(k) for k in wanted} == wanted:
        return True
    changed = sorted(k for k in wanted if done.get(k) != wanted[k])
    raise UserError(
        f"{store.path} already holds {source!r} harvested with other {', '.join(changed)} settings; "
        "use a new output folder / database"
    )


def harvested_units(
    sae: SparseAutoencoder | None,
    units: dict[UnitKind, UnitFunction] | None = None,
    keep: dict[UnitKind, list[int]] | None = None,
) -> dict[UnitKind, UnitFunction]:
    units = units or default_units(sae)
    if keep is None:
        return units
    return {kind: column_subset(fn, keep[kind]) for kind, fn in units.items() if kind in keep}


def write_harvest(
    store: CatalogStore,
    source: str,
    kinds: dict[UnitKind, KindHarvester],
    subject: SubjectModel,
    hook: str,
    sae: SparseAutoencoder | None,
    wanted: dict,
    keep: dict[UnitKind, list[int]] | None = None,
) -> None:
    windows = kept_windows(subject, list(kinds.values())) if kinds else None  # one corpus pass for every kind
    for kind, state in kinds.items():
        records = unit_records(kind, state, subject, hook, sae, indices=(keep or {}).get(kind), windows=windows)
        store.put_units(source, records)
    store.put_source(source, {**wanted, "harvest_complete": True})


def harvest_checkpoint(store: CatalogStore, source: str, wanted: dict) -> HarvestCheckpoint:
    """The harvest's running state, saved next to the catalog, one file per source."""
    digest = hashlib.sha1(source.encode()).hexdigest()[:12]
    return HarvestCheckpoint(
        store.path.with_name(f"{store.path.name}.harvest-{digest}.pt"), {"source": source, **wanted}
    )


def random_sample(indices: list[int], n: int, seed: int, kind: UnitKind) -> list[int]:
    """A seeded sample of n of the indices (all when there are no more), sorted."""
    return indices if n >= len(indices) else sorted(random.Random(f"{seed}:{kind}").sample(indices, n))


def select_units(store: CatalogStore, source: str, selection: UnitSelection) -> list[UnitKey]:
    """The units to label: all, the first N, a seeded random N, or a list, per kind."""
    stored = store.unit_keys(source)
    chosen = choose_units({kind: sorted(i for k, i in stored if k == kind) for kind in selection.kinds}, selection)
    if not chosen:
        raise UserError(f"the unit selection {selection.model_dump()} picks no unit of {source}")
    return chosen


def choose_units(available: dict[UnitKind, list[int]], selection: UnitSelection) -> list[UnitKey]:
    """`selection` applied to the sorted indices available per kind."""
    chosen: list[UnitKey] = []
    for kind in selection.kinds:
        indices = available.get(kind, [])
        if selection.mode == "first":
            indices = indices[: selection.n]
        elif selection.mode == "random" and selection.n is not None:
            indices = random_sample(indices, selection.n, selection.seed, kind)
        elif selection.mode == "list":
            wanted = selection.indices.get(kind, [])
            missing = sorted(set(wanted) - set(indices))
            if missing:
                raise UserError(f"{kind} units {missing[:10]} are not in the catalog (it has {len(indices)})")
            indices = list(wanted)
        chosen.extend((kind, i) for i in indices)
    return chosen


# --- stage 3 and 4: explain and score ---------------------------------------------------------------


def _llm_client(role: str, spec: LabelSpec, store: CatalogStore, budget: Budget | None, run_id: str):
    """The client of the explainer or the simulator (`role`), each with its own server and key."""
    return make_llm_client(
        getattr(spec, role),
        ledger=store.ledger,
        base_url=getattr(spec, f"{role}_base_url") or spec.base_url,
        concurrency=spec.concurrency,
        timeout=spec.timeout,
        budget=budget,
        max_attempts=spec.max_attempts,
        prices=spec.prices,
        run_id=run_id,
        api_key_env=getattr(spec, f"{role}_key_env"),
    )


def make_explainer(spec: LabelSpec, store: CatalogStore, budget: Budget | None, run_id: str) -> Explainer:
    if spec.explainer == "offline":
        return OfflineExplainer()
    return LLMExplainer(_llm_client("explainer", spec, store, budget, run_id))


def make_simulator(spec: LabelSpec, store: CatalogStore, budget: Budget | None, run_id: str) -> Simulator:
    if spec.simulator == "offline":
        return OfflineSimulator()
    config = LLMSimulatorConfig(simulation_examples_per_call=spec.simulation_examples_per_call)
    return LLMSimulator(_llm_client("simulator", spec, store, budget, run_id), config)


def make_budget(spec: LabelSpec, store: CatalogStore) -> Budget | None:
    """`max_cost` covers the whole catalog: what earlier runs spent on it counts."""
    return None if spec.max_cost is None else Budget(spec.max_cost, spent_usd=store.ledger.total_cost())


def local_processes(spec: LabelSpec) -> int:
    return spec.processes or default_processes()


def explain_stage(
    store: CatalogStore, source: str, units: list[UnitKey], explainer: Explainer, spec: LabelSpec
) -> StageReport:
    return asyncio.run(
        explain_units(store, source, units, explainer, concurrency=spec.concurrency, processes=local_processes(spec))
    )


def warn_language_mismatch(spec: LabelSpec) -> None:
    """LLM prose scored by the offline simulator is only as good as its language's parse of it."""
    if spec.explainer != "offline" and spec.simulator == "offline":
        print(
            "warning: the offline simulator reads its own explanation language (autointerp/language.py); "
            f"{spec.explainer}'s prose is scored only as far as that language parses it "
            "(parse_coverage in each score and in the report)",
            file=sys.stderr,
        )


def explanation_settings_hash(spec: LabelSpec) -> str:
    """Which explanations `spec.explainer` writes, known without building a client (or a key)."""
    if spec.explainer == "offline":
        return offline_explainer_settings_hash(OfflineExplainerConfig())
    if spec.explainer.startswith(IMPORTED_PREFIX):  # labels brought in by `autointerp import`
        return imported_settings_hash(spec.explainer)
    return llm_explainer_settings_hash(spec.explainer, LLMExplainerConfig())


def score_stage(
    store: CatalogStore,
    source: str,
    units: list[UnitKey],
    explanations_hash: str,
    simulator: Simulator,
    spec: LabelSpec,
) -> StageReport:
    """Score the explanations with settings hash `explanations_hash`, with every scorer of `spec`."""
    return asyncio.run(
        score_units(
            store,
            source,
            units,
            explanation_settings_hash=explanations_hash,
            scorers=spec.scorers,
            simulator=simulator,
            concurrency=spec.concurrency,
            processes=local_processes(spec),
        )
    )


def label_units(
    store: CatalogStore,
    source: str,
    units: list[UnitKey],
    explainer: Explainer,
    simulator: Simulator,
    spec: LabelSpec,
) -> tuple[StageReport, StageReport | None, str | None]:
    """Explain, then score, the chosen units; a spent budget ends labelling with work kept."""
    try:
        explained = explain_stage(store, source, units, explainer, spec)
    except BudgetExceeded as err:
        return StageReport(stage="explain", units=len(units)), None, str(err)
    try:
        scored = score_stage(store, source, units, explainer.settings_hash, simulator, spec)
    except BudgetExceeded as err:
        return explained, None, str(err)
    return explained, scored, None


# --- controls ---------------------------------------------------------------------------------------


def run_controls(
    cfg: RunConfig,
    out: Path,
    main_store: CatalogStore,
    source: str,
    subject: SubjectModel,
    sae: SparseAutoencoder | None,
    sae_metrics: dict,
    explainer: Explainer,
    simulator: Simulator,
) -> Path | None:
    """Harvest, explain and score each control of `cfg.controls` into OUT/controls.db, with the
    run's own explainer, simulator and scorers; returns the file (None when no control runs).
    Like every stage it skips what is already done, so a re-run costs nothing."""
    spec = cfg.controls
    if not spec.run:
        return None
    hook = cfg.subject.hook
    store = open_store(out / CONTROLS_DB)
    harvest_cfg = corpus_part(
        cfg.harvest.model_copy(update={"corpus": cfg.corpus, "n_tokens": spec.harvest_tokens}),
        None if cfg.sae.path else cfg.corpus,
    )
    for name in spec.run:
        control = f"control:{name}"
        print(f"control {name}")
        started = time.time()
        if name == "shuffled":
            _shuffled_control(store, control, main_store, source, explainer, simulator, cfg)
            print(f"control {name}: {time.time() - started:.0f} s")
            continue
        if sae is None and name != "random_model":
            print(f"  skipped: {name} needs an SAE")
            continue
        described = {"control": name, "subject": cfg.subject.model_dump(), "seed": spec.seed}

        def sample(kind: UnitKind, width: int) -> list[int]:  # the units select_units will pick below
            return random_sample(list(range(width)), spec.n_units, spec.seed, kind)

        if name == "density_matched_neurons":
            assert sae is not None
            width = subject.hook_width(hook)
            k = density_matched_k(width, sae.cfg.d_sae, float(sae_metrics.get("l0") or sae.cfg.k))
            harvest_into_store(
                store,
                control,
                subject,
                hook,
                None,
                harvest_cfg,
                {**described, "k": k},
                {"neuron": top_k_per_token(k)},
                keep={"neuron": sample("neuron", width)},
            )
            kinds: list[UnitKind] = ["neuron"]
        elif name == "random_directions":
            assert sae is not None
            directions = random_direction_sae(sae, spec.seed)
            harvest_into_store(
                store,
                control,
                subject,
                hook,
                directions,
                harvest_cfg,
                described,
                {"feature": sae_features(directions)},
                keep={"feature": sample("feature", directions.cfg.d_sae)},
            )
            kinds = ["feature"]
        else:  # random_model
            random_subject = random_init_subject(subject, spec.seed)
            tokens = spec.random_model_sae_tokens or cfg.sae.train.total_tokens
            sae_spec = cfg.sae.model_copy(
                update={"path": None, "train": cfg.sae.train.model_copy(update={"total_tokens": tokens})}
            )
            random_sae, folder, _ = prepare_sae(random_subject, hook, sae_spec, cfg.corpus, out / "controls" / name)
            width = random_subject.hook_width(hook)
            harvest_into_store(
                store,
                control,
                random_subject,
                hook,
                random_sae,
                harvest_cfg,
                {**described, "sae": str(folder), "sae_tokens": tokens},
                {"neuron": hook_neurons, "feature": sae_features(random_sae)},
                keep={"neuron": sample("neuron", width), "feature": sample("feature", random_sae.cfg.d_sae)},
            )
            kinds = ["neuron", "feature"]
        chosen = select_units(store, control, UnitSelection(kinds=kinds, mode="random", n=spec.n_units, seed=spec.seed))
        label_units(store, control, chosen, explainer, simulator, cfg.label)
        release_freed_memory()
        print(f"control {name}: {time.time() - started:.0f} s")
    store.close()
    return out / CONTROLS_DB


def _shuffled_control(
    store: CatalogStore,
    control: str,
    main_store: CatalogStore,
    source: str,
    explainer: Explainer,
    simulator: Simulator,
    cfg: RunConfig,
) -> None:
    """A sample of the run's units, each scored with another same-kind unit's explanation."""
    spec = cfg.controls
    usable = {
        (e.unit_kind, e.unit_index): e
        for e in main_store.explanations(source)
        if e.settings_hash == explainer.settings_hash and not e.failed and e.text.strip()
    }
    chosen: list[UnitKey] = []
    for kind in ("neuron", "feature"):
        keys = sorted(key for key in usable if key[0] == kind)
        chosen += sorted(random.Random(f"{spec.seed}:{kind}").sample(keys, min(spec.n_units, len(keys))))
    if control not in store.sources():
        harvests = (main_store.get_unit(source, kind, index) for kind, index in chosen)
        store.put_units(control, (h for h in harvests if h is not None))
        store.put_source(control, {"control": "shuffled", "from": source, "harvest_complete": True})
    store.put_explanations(control, shuffled_explanations([usable[key] for key in chosen], spec.seed))
    score_stage(store, control, chosen, shuffled_hash(explainer.settings_hash, spec.seed), simulator, cfg.label)


# --- the whole run ------------------------------------------------------------------------------


def run_pipeline(cfg: RunConfig) -> RunSummary:
    out = check_output_folder(Path(cfg.out))
    if not cfg.sae.path:
        check_sae_outputs(out / SAE_DIR)  # a damaged file of an earlier run: stop before any work
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    clock = time.time()

    def lap(name: str) -> None:
        """End a stage: its time, and the memory it freed handed back so the next peak starts low."""
        nonlocal clock
        timings[name] = round(time.time() - clock, 1)
        release_freed_memory()
        clock = time.time()

    store = open_store(out / CATALOG_DB)
    recorded = cfg.model_dump(mode="json")  # base URLs without credentials (LabelSpec's serializer)
    run_id = store.new_run("run", recorded)  # each run keeps its own record; earlier ones stay
    # Clients first: a missing key or bad backend fails now, not after SAE training and harvest.
    budget = make_budget(cfg.label, store)
    explainer = make_explainer(cfg.label, store, budget, run_id)
    simulator = make_simulator(cfg.label, store, budget, run_id)
    subject = load_subject(cfg.subject.model, device=cfg.subject.device, dtype=cfg.subject.dtype)
    hook = cfg.subject.hook
    sae, sae_folder, metrics = prepare_sae(subject, hook, cfg.sae, cfg.corpus, out)
    lap("sae")
    source = source_name(cfg.subject, sae)
    described = {"subject": cfg.subject.model_dump(), "sae": str(sae_folder), "corpus": cfg.corpus}
    # the held-out part of a corpus the SAE is trained on here, all of a user's corpus otherwise
    trained_on = None if cfg.sae.path else cfg.corpus
    harvest_cfg = corpus_part(cfg.harvest.model_copy(update={"corpus": cfg.corpus}), trained_on)
    keep = None
    if cfg.harvest_selected_only:
        widths: dict[UnitKind, int] = {
            "neuron": subject.hook_width(hook),
            **({"feature": sae.cfg.d_sae} if sae is not None else {}),
        }
        chosen = choose_units({kind: list(range(width)) for kind, width in widths.items()}, cfg.units)
        keep = {kind: [i for k, i in chosen if k == kind] for kind in cfg.units.kinds if kind in widths}
    harvest_into_store(store, source, subject, hook, sae, harvest_cfg, described, keep=keep)
    lap("harvest")
    units = select_units(store, source, cfg.units)
    warn_language_mismatch(cfg.label)
    explained, scored, stopped = label_units(store, source, units, explainer, simulator, cfg.label)
    lap("explain+score")
    controls_db = (
        None if stopped else run_controls(cfg, out, store, source, subject, sae, metrics, explainer, simulator)
    )
    lap("controls")
    summary = RunSummary(
        out=str(out), source=source, sae_metrics=metrics, explain=explained, score=scored, stopped_by_budget=stopped
    )
    # The catalog shows the labelled units (all of them when nothing is labelled yet). The report
    # reads slim entries; the exporters stream the whole units again, one at a time, with the
    # traces of any agent run on them.
    entries = [slim_entry(e) for e in store.catalog_entries(source)]
    entries = [e for e in entries if e.explanations] or entries
    shown = {(e.harvest.kind, e.harvest.index) for e in entries}

    def whole_entries() -> Iterator[CatalogEntry]:
        units = (e for e in store.catalog_entries(source) if (e.harvest.kind, e.harvest.index) in shown)
        return attach_family(attach_traces(units, store.path), store)

    this_run = explainer_label(explainer.name, explainer.model, explainer.prompt_version)
    try:
        report = add_splitting(build_report(entries, cfg.label.scorers[0], this_run, controls_db, out), store)
    except UserError as err:
        report = None
        print(f"no comparison yet: {err}")
    if cfg.export:
        paths = export_catalog(
            entries,
            out,
            full_entries=whole_entries,
            report=report,
            scorer=cfg.label.scorers[0],
            explainer=this_run if report else None,
        )
    else:
        paths = {"report": write_report(report, out)} if report else {}
    lap("compare+export")
    summary.stage_seconds = timings
    summary.report_path = str(paths.get("report")) if paths.get("report") else None
    summary.html_path = str(paths["html"]) if "html" in paths else None
    store.set_run_status(run_id, "stopped: budget" if stopped else "done")
    (out / "run_summary.json").write_text(summary.model_dump_json(indent=2))
    store.close()
    return summary
