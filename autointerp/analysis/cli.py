"""The `autointerp analyze` commands: questions asked across several SAEs or models (imports stay lazy)."""

from __future__ import annotations

import argparse
import json


def cmd_splitting(args: argparse.Namespace) -> None:
    from autointerp.analysis.family import splitting_rows
    from autointerp.analysis.splitting import SplittingConfig, analyze_splitting
    from autointerp.cli import _open_catalog

    cfg = SplittingConfig(saes=args.saes, model=args.model, corpus=args.corpus, tokens=args.tokens, device=args.device)
    store = _open_catalog(args.db) if args.db else None
    result = analyze_splitting(cfg, store, progress=not args.json)
    if args.json:
        print(json.dumps(result.model_dump(mode="json", exclude={"links"}), indent=2))
        return
    print(
        f"{len(result.links)} links from {result.sizes[-1]} features at {result.hook} on {result.tokens} held-out tokens"
    )
    for row in splitting_rows(result.levels):
        print(" | ".join(row))
    if store is not None:
        print(f"links written to {args.db} (table unit_links)")


def cmd_universality(args: argparse.Namespace) -> None:
    from pathlib import Path

    from autointerp.analysis.universality import load_pair, report_text, universality
    from autointerp.errors import UserError

    if args.tokens < 1:
        raise UserError(f"--tokens must be positive, got {args.tokens}")
    set_a, set_b = load_pair(Path(args.saes[0]), Path(args.saes[1]), args.model_a, args.model_b, args.device)
    result = universality(set_a, set_b, tokens=args.tokens, corpus=args.corpus, progress=not args.json)
    print(json.dumps(result.model_dump(), indent=2) if args.json else report_text(result))


def add_analyze_commands(sub: argparse._SubParsersAction) -> None:
    analyze = sub.add_parser(
        "analyze", help="compare units across SAEs and models: feature splitting across sizes, universality"
    )
    asub = analyze.add_subparsers(dest="analyze_command", required=True)

    split = asub.add_parser(
        "splitting", help="each feature of the largest SAE and its nearest feature in each smaller one"
    )
    split.add_argument(
        "--saes", nargs="+", required=True, metavar="DIR", help="SAE folders of several sizes on one hook"
    )
    split.add_argument("--model", default="builtin", help="the subject model the SAEs read")
    split.add_argument("--tokens", type=int, default=200_000, help="held-out tokens for the activation correlations")
    split.add_argument("--corpus", default="stdlib")
    split.add_argument("--device", default="cpu")
    split.add_argument("--db", default=None, help="a catalog whose sources are these SAEs: store the links there")
    split.add_argument("--json", action="store_true", help="print one JSON object (the summary, not every link)")
    split.set_defaults(func=cmd_splitting)

    univ = asub.add_parser("universality", help="do two SAEs (or two models' SAEs) find the same features?")
    univ.add_argument("--saes", nargs=2, required=True, metavar=("A", "B"), help="two SAELens-layout SAE folders")
    univ.add_argument("--model-a", default=None, help="A's subject model (default: the model A's cfg.json names)")
    univ.add_argument("--model-b", default=None, help="B's subject model (default: the model B's cfg.json names)")
    univ.add_argument("--tokens", type=int, default=100_000, help="held-out tokens to correlate on")
    univ.add_argument("--corpus", default="stdlib")
    univ.add_argument("--device", default="cpu")
    univ.add_argument("--json", action="store_true", help="print one JSON object")
    univ.set_defaults(func=cmd_universality)
