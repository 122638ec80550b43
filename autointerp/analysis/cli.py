"""The `autointerp analyze` group; each analysis registers its own subcommand."""

from __future__ import annotations

import argparse


def add_analyze_commands(sub: argparse._SubParsersAction) -> None:
    from autointerp.analysis.universality import add_universality_command

    analyze = sub.add_parser("analyze", help="compare units across SAEs and models (universality)")
    ssub = analyze.add_subparsers(dest="analyze_command", required=True)
    add_universality_command(ssub)
