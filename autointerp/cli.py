"""The `autointerp` command line: one entry point, one subcommand per stage.

Each subcommand parses its options and calls the stage's plain function; nothing here computes.
Mistakes a user can make end as one `error:` line and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from autointerp.errors import UserError


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2))


# --- subject -------------------------------------------------------------------------------------


def cmd_subject_train(args: argparse.Namespace) -> None:
    from sae.subject.training import SubjectTrainConfig, train_subject

    cfg = SubjectTrainConfig(corpus=args.corpus, steps=args.steps, seed=args.seed)
    meta = train_subject(cfg, Path(args.out))
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


# --- entry point ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autointerp", description="Explain and score MLP neurons and SAE features of a language model."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_subject_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished work is saved; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
