"""The `autointerp` command line: one entry point, one subcommand per stage.

Each subcommand parses its options and calls the stage's plain function; nothing here computes.
Mistakes a user can make end as one `error:` line and exit status 2; anything unexpected ends as one
line naming the file that holds its trace, and exit status 1. Never a traceback on the terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from autointerp.agent.cli import add_agent_commands
from autointerp.analysis.cli import add_analyze_commands
from autointerp.controls import CONTROL_NAMES
from autointerp.errors import UserError, describe_validation_error
from autointerp.query.cli import add_query_commands
from sae.files import check_output_folder, check_sae_outputs


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2))


# --- subject -------------------------------------------------------------------------------------


def _subject_train_config(args: argparse.Namespace):
    from sae.subject.training import SubjectTrainConfig

    return SubjectTrainConfig(corpus=args.corpus, steps=args.steps, seed=args.seed)


def cmd_subject_train(args: argparse.Namespace) -> None:
    from sae.subject.training import train_subject

    cfg = _subject_train_config(args)
    meta = train_subject(cfg, check_output_folder(Path(args.out)))
    print(f"saved model and tokenizer to {args.out} ({meta['train_seconds']} s)")


def cmd_subject_eval(args: argparse.Namespace) -> None:
    from sae.subject.evaluate import evaluate_subject
    from sae.subject.models import load_subject

    subject = load_subject(args.model, device=args.device)
    result = evaluate_subject(subject, corpus=args.corpus, max_tokens=args.max_tokens)
    if args.json:
        _print_json(result.model_dump())
    else:
        for key, value in result.model_dump().items():
            print(f"{key:>14}: {value}")


def add_subject_commands(sub: argparse._SubParsersAction) -> None:
    subject = sub.add_parser("subject", help="train or evaluate the built-in subject model")
    ssub = subject.add_subparsers(dest="subject_command", required=True)

    train = ssub.add_parser("train", help="train the tokenizer and the one-layer model from scratch")
    train.add_argument("--out", default="subject_model", help="folder for model.safetensors, tokenizer.json")
    train.add_argument("--corpus", default="stdlib", help="stdlib, a folder, a .txt/.jsonl file or hf:NAME")
    train.add_argument("--steps", type=int, default=3500, help="optimizer steps of 64 x 64 tokens")
    train.add_argument("--seed", type=int, default=0)
    train.set_defaults(func=cmd_subject_train)

    ev = ssub.add_parser("eval", help="held-out loss against unigram and bigram baselines")
    ev.add_argument("--model", default="builtin", help="builtin, a model folder, or an HF model name/path")
    ev.add_argument("--corpus", default="stdlib")
    ev.add_argument("--max-tokens", type=int, default=500_000, help="held-out tokens to score")
    ev.add_argument("--device", default="cpu")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.set_defaults(func=cmd_subject_eval)


# --- sae -----------------------------------------------------------------------------------------


def _sae_train_config(args: argparse.Namespace):
    from sae.training import SAETrainConfig

    return SAETrainConfig(
        architecture=args.arch,
        d_sae=args.d_sae,
        k=args.k,
        l1_coefficient=args.l1,
        total_tokens=args.tokens,
        batch_size=args.batch_size,
        lr=args.lr,
        corpus=args.corpus,
        seed=args.seed,
        resample_steps=[int(s) for s in args.resample_steps.split(",") if s] if args.resample_steps else [],
    )


def cmd_sae_train(args: argparse.Namespace) -> None:
    from sae.distributed import process_group
    from sae.subject.models import load_subject
    from sae.training import train_sae

    cfg, out = _sae_train_config(args), check_output_folder(Path(args.out))
    check_sae_outputs(out)
    with process_group(args.device) as (shard, device):  # one process, or one of several under torchrun
        subject = load_subject(args.model, device=device)
        summary = train_sae(subject, args.hook, cfg, out, shard)
    if shard.is_writer:
        print(f"saved SAE to {args.out}: L0 {summary['final_l0']:.1f}, train FVU {summary['final_fvu']:.3f}")


def cmd_sae_eval(args: argparse.Namespace) -> None:
    from sae.metrics import evaluate_sae, plot_sae_density
    from sae.saelens_format import load_sae
    from sae.subject.models import load_subject

    subject = load_subject(args.model, device=args.device)
    folder = Path(args.path)
    probe = load_sae(folder, device=args.device)
    hook = args.hook or probe.cfg.hook_name
    sae = load_sae(folder, subject.hook_width(hook), device=args.device)
    metrics, density = evaluate_sae(subject, sae, hook, corpus=args.corpus, max_tokens=args.tokens)
    plot = Path(args.plot) if args.plot else folder / "density.png"
    plot_sae_density(density, plot, title=f"{sae.cfg.architecture} {sae.cfg.d_sae}")
    if args.json:
        _print_json(metrics.model_dump())
    else:
        for key, value in metrics.model_dump().items():
            print(f"{key:>24}: {value}")
        print(f"density histogram: {plot}")


def cmd_sae_sweep(args: argparse.Namespace) -> None:
    from sae.subject.models import load_subject
    from sae.sweep import sweep_sizes

    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        raise UserError(f"--sizes needs comma-separated integers, got {args.sizes!r}") from None
    cfg, out = _sae_train_config(args), check_output_folder(Path(args.out))
    subject = load_subject(args.model, device=args.device)
    rows = sweep_sizes(subject, args.hook, cfg, sizes, out, args.eval_tokens)
    print(f"{'d_sae':>7} {'L0':>6} {'FVU':>6} {'dead':>6} {'dense':>6} {'loss_rec':>8}")
    for r in rows:
        print(
            f"{r['d_sae']:>7} {r['l0']:>6.1f} {r['fvu']:>6.3f} {r['dead_fraction']:>6.3f} "
            f"{r['dense_fraction']:>6.3f} {r['loss_recovered']:>8.3f}"
        )


def _add_sae_training_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="builtin", help="builtin, a model folder, or an HF model name/path")
    p.add_argument("--hook", default="blocks.0.mlp.act", help="module path of the MLP activation")
    p.add_argument("--arch", default="topk", choices=["topk", "batchtopk", "relu_l1"])
    p.add_argument("--d-sae", type=int, default=4096, help="number of features")
    p.add_argument("--k", type=int, default=32, help="active features per token (topk, batchtopk)")
    p.add_argument(
        "--l1", type=float, default=0.1, help="L1 coefficient (relu_l1), on inputs scaled to unit mean squared norm"
    )
    p.add_argument("--resample-steps", default="", help="relu_l1: comma-separated steps to resample dead features")
    p.add_argument("--tokens", type=int, default=2_000_000, help="training tokens")
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--corpus", default="stdlib")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--seed", type=int, default=0)


def add_sae_commands(sub: argparse._SubParsersAction) -> None:
    sae = sub.add_parser("sae", help="train, evaluate and sweep sparse autoencoders")
    ssub = sae.add_subparsers(dest="sae_command", required=True)

    train = ssub.add_parser("train", help="train an SAE on streamed activations (resumes if --out has a checkpoint)")
    _add_sae_training_options(train)
    train.add_argument("--out", required=True, help="folder for the SAELens-layout SAE")
    train.set_defaults(func=cmd_sae_train, distributed=True)

    ev = ssub.add_parser("eval", help="L0, FVU, dead/dense fractions, loss recovered on held-out tokens")
    ev.add_argument("path", help="a SAELens-layout SAE folder")
    ev.add_argument("--model", default="builtin")
    ev.add_argument("--hook", default=None, help="defaults to the hook named in cfg.json")
    ev.add_argument("--corpus", default="stdlib")
    ev.add_argument("--tokens", type=int, default=100_000, help="held-out tokens to evaluate on")
    ev.add_argument("--device", default="cpu")
    ev.add_argument("--plot", default=None, help="PNG path for the density histogram (default PATH/density.png)")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.set_defaults(func=cmd_sae_eval)

    sweep = ssub.add_parser("sweep", help="train and evaluate one SAE per dictionary size")
    _add_sae_training_options(sweep)
    sweep.add_argument("--sizes", default="512,1024,2048,4096,8192,16384")
    sweep.add_argument("--out", required=True, help="folder that receives one SAE folder per size + sweep.json")
    sweep.add_argument("--eval-tokens", type=int, default=100_000)
    sweep.set_defaults(func=cmd_sae_sweep)


# --- the pipeline and its stages ----------------------------------------------------------------


def _print_summary(summary) -> None:
    print(f"catalog: {summary.out}/catalog.db   html: {summary.html_path}")
    if summary.sae_metrics:
        m = summary.sae_metrics
        print(
            f"SAE: L0 {m['l0']:.1f}, FVU {m['fvu']:.3f}, dead {m['dead_fraction']:.3f}, "
            f"loss recovered {m['loss_recovered']:.3f}"
        )
    if summary.report_path:
        report = json.loads(Path(summary.report_path).read_text())
        n, f = report["neurons"], report["features"]
        print(
            f"{report['scorer']} score medians: neurons {n['median']:.3f} {n['median_ci95']} (n={n['n']}), "
            f"features {f['median']:.3f} {f['median_ci95']} (n={f['n']}); "
            f"difference {report['median_difference']['value']:.3f} {report['median_difference']['ci95']}, "
            f"p={report['p_value']:.2g}"
        )
    if summary.stopped_by_budget:
        print(f"stopped early: {summary.stopped_by_budget}")
    print("stage seconds: " + ", ".join(f"{k} {v}" for k, v in summary.stage_seconds.items()))


def cmd_demo(args: argparse.Namespace) -> None:
    from autointerp.demo import demo_config
    from autointerp.pipeline import run_pipeline

    _print_summary(run_pipeline(demo_config(args.out, controls=_controls(args.controls))))


def _controls(text: str) -> list:
    """'all', 'none' or a comma list of control names, checked."""
    if text == "all":
        return list(CONTROL_NAMES)
    if text == "none":
        return []
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONTROL_NAMES]
    if unknown:
        raise UserError(f"unknown control(s) {unknown}; choose from {', '.join(CONTROL_NAMES)}, or all / none")
    return names


def cmd_run(args: argparse.Namespace) -> None:
    from autointerp.pipeline import load_run_config, run_pipeline

    cfg = load_run_config(Path(args.config))
    if args.out:
        cfg.out = args.out
    _print_summary(run_pipeline(cfg))


# Catalogs a command opened: closed when `main` returns, error or not, so no -wal/-shm files stay
# beside a catalog that a command only read (and a caller running `main` in-process leaks nothing).
_open_catalogs = contextlib.ExitStack()


def _open_catalog(db: str, *, create: bool = False):
    from autointerp.store import open_store

    if not create and not Path(db).exists():
        raise UserError(f"no catalog database at {db}")
    return _open_catalogs.enter_context(open_store(db))


def _pick_source(store, source: str | None) -> str:
    sources = store.sources()
    if source:
        store.source_config(source)  # fails clearly on an unknown name
        return source
    if len(sources) != 1:
        raise UserError(
            f"{store.path} holds {len(sources)} sources ({', '.join(sources) or 'none'}); pick one with --source"
        )
    return sources[0]


def _harvest_settings(args: argparse.Namespace):
    """The subject and the harvest settings that `harvest`'s options give."""
    from autointerp.pipeline import SubjectSpec
    from sae.harvest import HarvestConfig, corpus_part

    spec = SubjectSpec(model=args.model, hook=args.hook, device=args.device)
    cfg = HarvestConfig(corpus=args.corpus, n_tokens=args.tokens, n_top=args.top, seed=args.seed)
    return spec, corpus_part(cfg, None)


def cmd_harvest(args: argparse.Namespace) -> None:
    from autointerp.pipeline import harvest_into_store, source_name
    from autointerp.sharded_harvest import harvest_sharded
    from sae.distributed import process_group
    from sae.saelens_format import load_sae
    from sae.subject.models import load_subject

    spec, cfg = _harvest_settings(args)
    check_output_folder(Path(args.db).parent)
    with process_group(spec.device) as (shard, device):  # one process, or one of several under torchrun
        subject = load_subject(spec.model, device=device)
        sae = load_sae(Path(args.sae), subject.hook_width(spec.hook), device=device) if args.sae else None
        Path(args.db).parent.mkdir(parents=True, exist_ok=True)
        source = source_name(spec, sae)
        described = {"subject": spec.model_dump(), "sae": args.sae, "corpus": args.corpus}
        if shard.world > 1:
            ran = harvest_sharded(Path(args.db), source, subject, spec.hook, sae, cfg, described, shard)
        else:
            ran = harvest_into_store(
                _open_catalog(args.db, create=True), source, subject, spec.hook, sae, cfg, described
            )
    if shard.is_writer:
        processes = f" by {shard.world} processes" if shard.world > 1 else ""
        print(f"{'harvested' if ran else 'already harvested'} source {source!r} into {args.db}{processes}")


def _label_spec(args: argparse.Namespace):
    from autointerp.pipeline import LabelSpec

    # an option left unset (None) keeps the model's default, as does a setting the command lacks
    given = {name: getattr(args, name) for name in LabelSpec.model_fields if getattr(args, name, None) is not None}
    if "scorers" in given:
        given["scorers"] = given["scorers"].split(",")
    return LabelSpec(**given)  # a setting this command has no option for keeps the model's default


def _batch_settings(args: argparse.Namespace):
    from autointerp.batch_labeling import BatchSettings

    given = {name: getattr(args, name) for name in BatchSettings.model_fields if getattr(args, name) is not None}
    return BatchSettings(**given)  # an option left unset keeps the model's default


def _selection(args: argparse.Namespace):
    from autointerp.pipeline import UnitSelection

    kinds = args.kinds.split(",")
    if args.units == "all":
        return UnitSelection(kinds=kinds)
    mode, _, value = args.units.partition(":")
    if mode in ("first", "random") and value.isdigit():
        return UnitSelection(kinds=kinds, mode=mode, n=int(value), seed=args.seed)
    if mode == "list" and value:
        try:
            indices = [int(v) for v in value.split(",")]
        except ValueError:
            raise UserError(f"--units list: needs integers, got {value!r}") from None
        return UnitSelection(kinds=kinds, mode="list", indices={k: indices for k in kinds})
    raise UserError(f"--units must be all, first:N, random:N or list:I,J,..., got {args.units!r}")


def cmd_explain(args: argparse.Namespace) -> None:
    from autointerp.pipeline import (
        explain_stage,
        make_budget,
        make_explainer,
        select_units,
    )

    store = _open_catalog(args.db)
    source = _pick_source(store, args.source)
    spec = _label_spec(args)
    units = select_units(store, source, _selection(args))
    run_id = store.new_run("explain", {"source": source, "label": spec.model_dump(exclude={"base_url"})})
    explainer = make_explainer(spec, store, make_budget(spec, store), run_id)
    if args.batch:
        from autointerp.batch_labeling import explain_in_batches

        report = explain_in_batches(store, source, units, explainer, _batch_settings(args))
    else:
        report = explain_stage(store, source, units, explainer, spec)
    store.set_run_status(run_id, "done")
    _print_json(report.model_dump())


def _explainer_spec(explanation) -> str:
    """The --explainer value that names who wrote an explanation (the model for LLM explainers)."""
    from autointerp.explainers.offline import EXPLAINER_NAME as OFFLINE

    return explanation.model or ("offline" if explanation.explainer == OFFLINE else explanation.explainer)


def _pick_explainer(store, source: str, named: str | None) -> str:
    """Whose explanations `score` scores: the one named, else the only explainer that wrote usable
    explanations (offline when none did). Several and none named would score one of them silently,
    perhaps with a paid simulator, so that is an error listing them."""
    from collections import Counter

    from autointerp.labeling import is_usable

    if named is not None:
        return named
    found = Counter(_explainer_spec(e) for e in store.explanations(source) if is_usable(e))
    if len(found) > 1:
        listing = ", ".join(f"{name} ({count} units)" for name, count in sorted(found.items()))
        raise UserError(
            f"{store.path} holds explanations from {len(found)} explainers: {listing}; "
            "name the ones to score with --explainer"
        )
    return next(iter(found), "offline")


def cmd_score(args: argparse.Namespace) -> None:
    from autointerp.pipeline import (
        explanation_settings_hash,
        make_budget,
        make_simulator,
        score_stage,
        select_units,
        warn_language_mismatch,
    )

    store = _open_catalog(args.db)
    source = _pick_source(store, args.source)
    args.explainer = _pick_explainer(store, source, args.explainer)
    spec = _label_spec(args)
    units = select_units(store, source, _selection(args))
    found = sum(1 for e in store.explanations(source) if e.settings_hash == explanation_settings_hash(spec))
    print(f"scoring the explanations of {spec.explainer} ({found} in the catalog)", file=sys.stderr)
    warn_language_mismatch(spec)
    run_id = store.new_run("score", {"source": source, "label": spec.model_dump(exclude={"base_url"})})
    simulator = make_simulator(spec, store, make_budget(spec, store), run_id)
    # --explainer names whose explanations to score; no key for it is needed
    if args.batch:
        from autointerp.batch_labeling import score_in_batches

        report = score_in_batches(
            store,
            source,
            units,
            explanation_settings_hash=explanation_settings_hash(spec),
            scorers=spec.scorers,
            simulator=simulator,
            settings=_batch_settings(args),
        )
    else:
        report = score_stage(store, source, units, explanation_settings_hash(spec), simulator, spec)
    store.set_run_status(run_id, "done")
    _print_json(report.model_dump())


def cmd_compare(args: argparse.Namespace) -> None:
    from autointerp.compare import report_markdown, write_report
    from autointerp.controls import CONTROLS_DB
    from autointerp.validity import slim_entry
    from autointerp.validity_report import build_report

    store = _open_catalog(args.db)
    source = _pick_source(store, args.source)
    out = check_output_folder(Path(args.out) if args.out else Path(args.db).parent)
    entries = [slim_entry(e) for e in store.catalog_entries(source)]  # one unit's examples in memory at a time
    report = build_report(entries, args.scorer, args.explainer, Path(args.db).parent / CONTROLS_DB, out)
    path = write_report(report, out)
    print(report_markdown(report))
    print(f"written: {path}")


def cmd_export(args: argparse.Namespace) -> None:
    from autointerp.agent.trace_store import attach_traces
    from autointerp.controls import CONTROLS_DB
    from autointerp.export import export_catalog
    from autointerp.validity import slim_entry
    from autointerp.validity_report import build_report

    store = _open_catalog(args.db)
    source = _pick_source(store, args.source)
    out = check_output_folder(Path(args.out) if args.out else Path(args.db).parent)
    entries = [slim_entry(e) for e in store.catalog_entries(source)]  # one unit's examples in memory at a time
    try:  # the report with its validity sections; without scores the catalog says why instead
        report = build_report(entries, args.scorer, args.explainer, Path(args.db).parent / CONTROLS_DB, out)
    except UserError:
        report = None
    paths = export_catalog(
        entries,
        out,
        full_entries=lambda: attach_traces(store.catalog_entries(source), args.db),
        report=report,
        scorer=args.scorer,
        explainer=args.explainer,
    )
    for name, path in paths.items():
        print(f"{name:>12}: {path}")


def cmd_runs(args: argparse.Namespace) -> None:
    """What each run did and spent, from the catalog's run history and LLM call log: the answer to
    "where did the money go" after a paid labeling run, and to which calls failed and why."""
    store = _open_catalog(args.db)
    if args.calls is not None:
        if args.calls not in {run["run_id"] for run in store.runs()}:
            raise UserError(f"no run {args.calls!r} in {args.db}; `autointerp runs {args.db}` lists them")
        rows = store.ledger.llm_calls(args.calls)
        columns: tuple[str, ...] = ("time", "backend", "model", "status", "attempt", "http_status", "prompt_tokens",
                   "completion_tokens", "cost_usd", "error")  # fmt: skip
    else:
        calls: dict[str | None, tuple[int, float]] = {}
        for call in store.ledger.llm_calls():
            count, cost = calls.get(call["run_id"], (0, 0.0))
            calls[call["run_id"]] = (count + 1, cost + (call["cost_usd"] or 0.0))
        rows = [
            {**{k: run[k] for k in ("run_id", "command", "status", "started_at")},
             "llm_calls": calls.get(run["run_id"], (0, 0.0))[0],
             "cost_usd": round(calls.get(run["run_id"], (0, 0.0))[1], 6)}
            for run in store.runs()
        ]  # fmt: skip
        columns = ("run_id", "command", "status", "started_at", "llm_calls", "cost_usd")
    for row in rows:
        print(json.dumps({c: row[c] for c in columns}) if args.json else "  ".join(str(row[c]) for c in columns))
    if not args.json:
        print(f"{len(rows)} {'calls' if args.calls is not None else 'runs'}", file=sys.stderr)


def _add_label_options(p: argparse.ArgumentParser, explainer: bool, simulator: bool) -> None:
    p.add_argument("--db", required=True, help="the catalog database (catalog.db)")
    p.add_argument("--source", default=None, help="which source in the database (needed if several)")
    p.add_argument("--kinds", default="neuron,feature", help="unit kinds, comma-separated")
    p.add_argument("--units", default="all", help="all, first:N, random:N or list:I,J,...")
    p.add_argument("--seed", type=int, default=0, help="for --units random:N")
    if explainer:
        specs = "offline, openai:MODEL, anthropic:MODEL or openai-compatible:MODEL"
        scored = f"whose explanations to score: {specs} (default: the only explainer in the catalog)"
        p.add_argument("--explainer", default=None if simulator else "offline", help=scored if simulator else specs)
    if simulator:
        p.add_argument("--simulator", default="offline", help="offline or an LLM spec as for --explainer")
        p.add_argument("--scorers", default="simulation,detection,fuzzing", help="comma-separated")
        p.add_argument(
            "--simulation-examples-per-call",
            type=int,
            default=1,
            help="excerpts per LLM simulation request: N cuts requests N-fold; 1 keeps scores comparable",
        )
    p.add_argument("--base-url", default=None, help="base URL of the LLM server (OpenAI-compatible, a proxy)")
    role = "simulator" if simulator else "explainer"  # the one whose LLM this command calls
    p.add_argument(f"--{role}-base-url", default=None, help=f"the {role}'s own base URL (default: --base-url)")
    p.add_argument(f"--{role}-key-env", default=None, help=f"env variable holding the {role}'s API key")
    p.add_argument(
        "--max-cost",
        type=float,
        default=None,
        help="USD cap: each call reserves its worst-case cost first, so the cap is kept",
    )
    p.add_argument(
        "--prices", default=None, help="a .json/.toml price table: {model: {input, output}} USD per 1M tokens"
    )
    p.add_argument("--concurrency", type=int, default=8, help="LLM requests in flight")
    p.add_argument(
        "--processes",
        type=int,
        default=0,
        help="worker processes for the offline explainer/simulator (0: one per CPU; results do not depend on it)",
    )
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per LLM request")
    p.add_argument("--max-attempts", type=int, default=5, help="attempts per LLM request, retries included")
    p.add_argument(
        "--batch",
        action="store_true",
        help="send the LLM requests as provider batches (OpenAI, Anthropic: half price, answers within 24 h); "
        "run the same command again to resume waiting for them",
    )
    p.add_argument("--poll-interval", type=float, default=None, help="--batch: seconds between checks (default 60)")
    p.add_argument(
        "--max-wait", type=float, default=None, help="--batch: stop waiting after this many seconds (default: never)"
    )


def add_pipeline_commands(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="the whole job offline on the built-in model (resumable)")
    demo.add_argument("--out", default="demo_out", help="run folder (catalog.db, sae/, html/, report.*)")
    demo.add_argument(
        "--controls", default="all",
        help="controls to add to the report: 'all', 'none', or a comma list of " + ", ".join(CONTROL_NAMES),
    )  # fmt: skip
    demo.set_defaults(func=cmd_demo)

    run = sub.add_parser("run", help="the whole job from a TOML/YAML run config (resumable)")
    run.add_argument("config", help="a .toml or .yaml file (see configs/)")
    run.add_argument("--out", default=None, help="overrides the config's out folder")
    run.set_defaults(func=cmd_run)

    harvest = sub.add_parser("harvest", help="stream activations and store every unit's stats and examples")
    harvest.add_argument("--db", required=True, help="catalog database to write (created if missing)")
    harvest.add_argument("--model", default="builtin")
    harvest.add_argument("--hook", default="blocks.0.mlp.act")
    harvest.add_argument("--sae", default=None, help="a SAELens-layout SAE folder (features); neurons always")
    harvest.add_argument("--corpus", default="stdlib")
    harvest.add_argument("--tokens", type=int, default=500_000)
    harvest.add_argument("--top", type=int, default=40, help="top examples per unit (explain split)")
    harvest.add_argument("--device", default="cpu")
    harvest.add_argument("--seed", type=int, default=0)
    harvest.set_defaults(func=cmd_harvest, distributed=True)

    explain = sub.add_parser("explain", help="write an explanation for each selected unit")
    _add_label_options(explain, explainer=True, simulator=False)
    explain.set_defaults(func=cmd_explain)

    score = sub.add_parser("score", help="simulate and score the explanations of the selected units")
    _add_label_options(score, explainer=True, simulator=True)
    score.set_defaults(func=cmd_score)

    cmp_ = sub.add_parser("compare", help="neurons vs features: medians, bootstrap CIs, Mann-Whitney p, plot")
    cmp_.add_argument("db", help="the catalog database")
    cmp_.add_argument("--source", default=None)
    cmp_.add_argument("--scorer", default="simulation")
    cmp_.add_argument("--explainer", default=None, help="explanation label when several explainers ran")
    cmp_.add_argument("--out", default=None, help="folder for report.json/md (default: next to the db)")
    cmp_.set_defaults(func=cmd_compare)

    export = sub.add_parser("export", help="catalog.jsonl, Neuronpedia JSON, static HTML catalog")
    export.add_argument("db", help="the catalog database")
    export.add_argument("--source", default=None)
    export.add_argument("--scorer", default="simulation")
    export.add_argument("--explainer", default=None)
    export.add_argument("--out", default=None, help="output folder (default: next to the db)")
    export.set_defaults(func=cmd_export)

    runs = sub.add_parser("runs", help="the runs recorded in a catalog, with their LLM calls and spend")
    runs.add_argument("db", help="the catalog database")
    runs.add_argument("--calls", default=None, metavar="RUN_ID", help="print that run's LLM call log instead")
    runs.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    runs.set_defaults(func=cmd_runs)


# --- entry point ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autointerp", description="Explain and score MLP neurons and SAE features of a language model."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_subject_commands(sub)
    add_sae_commands(sub)
    add_pipeline_commands(sub)
    add_agent_commands(sub)
    add_query_commands(sub)
    add_analyze_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _check_launch(args)
        args.func(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ValidationError as err:  # an option value that the settings models refuse
        print(f"error: {describe_validation_error(err)}", file=sys.stderr)
        return 2
    except OSError as err:
        if err.filename is None:  # not about a path the user named: unexpected
            return _unexpected(err)
        print(f"error: {err.strerror or err}: {err.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished work is saved; run the same command again to resume", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 -- a bug: one line and a file to send, not a stack
        return _unexpected(err)
    finally:
        _open_catalogs.close()
    return 0


def _check_launch(args: argparse.Namespace) -> None:
    """Only `harvest` and `sae train` split their work over processes; any other command started
    by torchrun would run whole in every process, each writing the same files."""
    if os.environ.get("WORLD_SIZE", "1") != "1" and not getattr(args, "distributed", False):
        raise UserError(f"`{args.command}` runs in one process; under torchrun only harvest and sae train do")


def _unexpected(err: BaseException) -> int:
    """Log the full trace to a file in the temp dir and say in one line where it is."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    with tempfile.NamedTemporaryFile(
        "w", prefix=f"autointerp-crash-{stamp}-", suffix=".log", delete=False, encoding="utf-8"
    ) as log:
        log.write(f"autointerp {' '.join(sys.argv[1:])}\n")
        log.write("".join(traceback.format_exception(err)))
    first_line = next(iter(str(err).splitlines()), "")
    print(f"error: unexpected {type(err).__name__}: {first_line} (a bug; full trace in {log.name})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
