"""`autointerp agent` and `autointerp plant`: the agent's subcommands (registered by autointerp.cli)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from autointerp.errors import UserError


def cmd_agent(args: argparse.Namespace) -> None:
    from autointerp.agent.runner import AgentSpec, run_agent
    from autointerp.cli import _open_catalog, _pick_source, _selection
    from autointerp.pipeline import select_units

    store = _open_catalog(args.db)
    source = _pick_source(store, args.source)
    spec = AgentSpec(driver=args.driver, budget=args.budget, device=args.device, base_url=args.base_url,
                     max_rounds=args.rounds, max_cost=args.max_cost, concurrency=args.concurrency)  # fmt: skip
    report = run_agent(store, source, select_units(store, source, _selection(args)), spec)
    print(json.dumps(report.model_dump(), indent=2))
    if report.stopped:
        print(f"stopped early: {report.stopped}", file=sys.stderr)
    if report.failed:
        raise UserError(
            f"{len(report.failed)} units failed (first: {report.failed[0]}); finished units are saved and the "
            "replies paid for are cached: run again to resume"
        )


def cmd_plant(args: argparse.Namespace) -> None:
    from autointerp.agent.runner import plant
    from autointerp.store import open_store
    from sae.harvest import HarvestConfig

    if args.units < 1:
        raise UserError("--units must be at least 1")
    Path(args.db).parent.mkdir(parents=True, exist_ok=True)
    cfg = HarvestConfig(n_tokens=args.tokens, hard_negative_tokens=args.tokens, seed=args.seed)
    source = plant(open_store(args.db), args.units, args.seed, cfg, args.device)
    print(f"planted units in source {source!r} of {args.db}")


def add_agent_commands(sub: argparse._SubParsersAction) -> None:
    agent = sub.add_parser("agent", help="test and revise explanations with probes through the subject model")
    agent.add_argument("--db", required=True, help="the catalog database")
    agent.add_argument("--source", default=None)
    agent.add_argument("--kinds", default="neuron,feature", help="comma-separated unit kinds")
    agent.add_argument("--units", default="first:10", help="all, first:N, random:N or list:I,J,...")
    agent.add_argument("--seed", type=int, default=0, help="for --units random:N")
    agent.add_argument("--budget", type=int, default=40, help="subject-model calls per unit")
    agent.add_argument(
        "--driver", default="offline", help="offline, openai:MODEL, anthropic:MODEL or openai-compatible:MODEL"
    )
    agent.add_argument("--base-url", default=None, help="LLM drivers: base URL of the server")
    agent.add_argument("--rounds", type=int, default=12, help="LLM drivers: model turns per unit")
    agent.add_argument(
        "--max-cost",
        type=float,
        default=None,
        help="LLM drivers: USD cap on the catalog's LLM spend (earlier runs count); stops cleanly",
    )
    agent.add_argument("--concurrency", type=int, default=4, help="LLM drivers: conversations in flight")
    agent.add_argument("--device", default="cpu")
    agent.set_defaults(func=cmd_agent)

    planted = sub.add_parser("plant", help="harvest planted units with known rules into their own source")
    planted.add_argument("--db", required=True, help="catalog database to write (created if missing)")
    planted.add_argument("--units", type=int, default=50)
    planted.add_argument("--seed", type=int, default=0)
    planted.add_argument("--tokens", type=int, default=100_000, help="harvest tokens")
    planted.add_argument("--device", default="cpu")
    planted.set_defaults(func=cmd_plant)
