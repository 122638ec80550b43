"""The `inspect`, `search` and `import` subcommands: option parsing and printing only."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from autointerp.errors import UserError

TOOLS = ("neuron-explainer", "delphi", "neuronpedia")  # the importers of autointerp/query/imports/run.py


def _store_and_source(args: argparse.Namespace):
    from autointerp.cli import _open_catalog, _pick_source

    store = _open_catalog(args.db)
    return store, _pick_source(store, args.source)


def _kinds(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    if not kinds or any(k not in ("neuron", "feature") for k in kinds):
        raise UserError(f"--kinds takes neuron, feature or both comma-separated, got {text!r}")
    return kinds


def cmd_inspect(args: argparse.Namespace) -> None:
    from autointerp.query.inspect import Inspector

    if args.top < 1:
        raise UserError(f"--top must be at least 1, got {args.top}")
    kinds = _kinds(args.kinds)
    store, source = _store_and_source(args)
    inspector = Inspector(store, source, sae=args.sae, device=args.device)
    # "-": one text per line of stdin, each answered as it comes, with the model loaded once
    texts = (line.rstrip("\n") for line in sys.stdin) if args.text == "-" else iter([args.text])
    for text in texts:
        if not text.strip():
            continue
        rows = inspector.inspect(text, top=args.top, kinds=kinds, explainer=args.explainer)
        if args.json:  # one JSON list per text: a JSON Lines stream when reading stdin
            print(json.dumps([row.model_dump() for row in rows]), flush=True)
            continue
        for row in rows:
            print(f"{row.position:>3} {row.token!r}")
            for unit in row.units:
                share = f" ({unit.fraction_of_max:.0%} of max)" if unit.fraction_of_max is not None else ""
                label = unit.explanation if unit.explanation is not None else "(no explanation)"
                print(f"      {unit.kind:<7} {unit.index:>6} {unit.activation:>8.3f}{share}  {label}")
        print(flush=True)


def cmd_search(args: argparse.Namespace) -> None:
    from autointerp.cli import _open_catalog
    from autointerp.query.search import search_explanations

    store = _open_catalog(args.db)
    if args.kind is not None:
        _kinds(args.kind)
    hits = search_explanations(store, args.query, limit=args.limit, source=args.source, kind=args.kind)
    if args.json:
        print(json.dumps([hit.model_dump() for hit in hits], indent=1))
        return
    if not hits:
        print(f"no explanation matches {args.query!r}", file=sys.stderr)
    for hit in hits:
        print(f"{hit.score:7.3f}  {hit.kind}:{hit.index:<6} [{hit.explainer}] {hit.text}")


def cmd_import(args: argparse.Namespace) -> None:
    from autointerp.cli import _open_catalog, _pick_source
    from autointerp.query.imports.run import import_labels

    store = _open_catalog(args.db)
    # Neuronpedia records name their sources; NeuronRecords may make a new one
    named = args.tool == "neuronpedia" or (args.tool == "neuron-explainer" and args.source)
    source = args.source if named else _pick_source(store, args.source)
    if args.kind is not None:
        _kinds(args.kind)
    reports = import_labels(
        store, args.tool, Path(args.path), source=source, kind=args.kind, layer=args.layer, module=args.module
    )
    for report in reports:
        made = f"{report.units} units and " if report.units else ""
        missing = f"; {len(report.not_in_catalog)} labelled units are not in it" if report.not_in_catalog else ""
        print(f"imported {made}{report.imported} explanations into {report.source!r}{missing}")
    explainer = next((r.explainer for r in reports if r.explainer), None)
    if explainer:
        print(f"score them with: autointerp score --db {args.db} --explainer {explainer}")


def add_query_commands(sub: argparse._SubParsersAction) -> None:
    inspect = sub.add_parser("inspect", help="the units most active on each token of a text, with their explanations")
    inspect.add_argument("db", help="the catalog database")
    inspect.add_argument(
        "text", help="the text to run through the catalog's subject model; '-' reads one text per line of stdin"
    )
    inspect.add_argument("--source", default=None)
    inspect.add_argument("--top", type=int, default=5, help="units of each kind per token")
    inspect.add_argument("--kinds", default="neuron,feature", help="unit kinds, comma-separated")
    inspect.add_argument("--explainer", default=None, help="show only this explainer's (or model's) explanations")
    inspect.add_argument("--sae", default=None, help="the SAE folder, if not where the catalog recorded it")
    inspect.add_argument("--device", default=None, help="default: the device the catalog was harvested on")
    inspect.add_argument("--json", action="store_true", help="print a JSON list per text, one object per token")
    inspect.set_defaults(func=cmd_inspect)

    search = sub.add_parser("search", help="explanations matching words, ranked by bm25 (SQLite FTS5)")
    search.add_argument("db", help="the catalog database")
    search.add_argument("query", help="words to look for (any of them; more and rarer matches rank first)")
    search.add_argument("--source", default=None)
    search.add_argument("--kind", default=None, help="neuron or feature (default: both)")
    search.add_argument("--limit", type=int, default=20)
    search.add_argument("--json", action="store_true", help="print a JSON list of hits")
    search.set_defaults(func=cmd_search)

    imp = sub.add_parser("import", help="store explanations written by another tool, to score them like ours")
    imp.add_argument("tool", choices=TOOLS)  # the importers load only when one runs
    imp.add_argument("path", help="the tool's file or folder")
    imp.add_argument("--db", required=True, help="the catalog database")
    imp.add_argument("--source", default=None, help="the source the labelled units belong to")
    imp.add_argument(
        "--kind", default=None, help="neuron or feature (default: neuron-explainer neuron, delphi feature)"
    )
    imp.add_argument("--layer", type=int, default=None, help="neuron-explainer: the layer whose neurons to import")
    imp.add_argument("--module", default=None, help="delphi: the module whose latents to import")
    imp.set_defaults(func=cmd_import)
