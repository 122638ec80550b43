"""Activation streaming throughput: `stream_activations` against the forward passes it is built on.

All rows run in one process on the same token windows of the held-out stdlib split:
    stream_activations        corpus -> tokenizer -> windows -> forward to the hook (what users run)
    tokenize + window only    the same pipeline without the model (the CPU-side cost of streaming)
    forward, stop at hook     `SubjectModel.activations` on pre-built batches (skips the later layers)
    forward, full logits      the bare model on pre-built batches (what a naive harvest would run)
Each row is timed over the whole token budget after one warm-up batch; the table gives tokens/s and
each row's time relative to the full forward pass.

    python -m evals.bench_streaming [--tokens 131072] [--batch 64] [--device cpu] [--threads N]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from sae.corpus import open_corpus, select_split
from sae.streaming import stream_activations, token_batches
from sae.subject.models import BUILTIN_HOOK, SubjectModel, load_subject


def heldout_docs():
    return select_split(open_corpus("stdlib"), "heldout")


def timed(run: Callable[[], int], device: torch.device) -> tuple[float, int]:
    """(seconds, tokens) of one call of `run`, which returns how many tokens it processed."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    tokens = run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, tokens


def bench(subject: SubjectModel, hook: str, max_tokens: int, batch: int) -> list[tuple[str, float, int]]:
    device = subject.device
    batches = [t for _, t in token_batches(subject, heldout_docs(), batch_size=batch, max_tokens=max_tokens)]

    def streaming() -> int:
        n = 0
        for item in stream_activations(subject, heldout_docs(), hook, batch_size=batch, max_tokens=max_tokens):
            n += item.tokens.numel()
        return n

    def tokenize_only() -> int:
        return sum(t.numel() for _, t in token_batches(subject, heldout_docs(), batch_size=batch, max_tokens=max_tokens))

    @torch.inference_mode()
    def stop_at_hook() -> int:
        for tokens in batches:
            subject.activations(tokens, hook)
        return sum(t.numel() for t in batches)

    @torch.inference_mode()
    def full_forward() -> int:
        for tokens in batches:
            subject.logits(tokens)
        return sum(t.numel() for t in batches)

    with torch.inference_mode():  # warm-up: first-call allocations and kernel selection
        subject.logits(batches[0])
        subject.activations(batches[0], hook)
    rows = []
    for name, run in (("stream_activations", streaming), ("tokenize + window only", tokenize_only),
                      ("forward, stop at hook", stop_at_hook), ("forward, full logits", full_forward)):
        secs, tokens = timed(run, device)
        rows.append((name, secs, tokens))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=131_072)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--subject", default="builtin")
    parser.add_argument("--hook", default=BUILTIN_HOOK)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    subject = load_subject(args.subject, device=args.device)
    rows = bench(subject, args.hook, args.tokens, args.batch)
    full = next(secs for name, secs, _ in rows if name == "forward, full logits")
    print(f"subject {subject.name}, hook {args.hook}, device {subject.device}, "
          f"torch threads {torch.get_num_threads()}, batch {args.batch} windows of {subject.n_ctx} tokens")
    print(f"{'':24}{'tokens':>9}{'seconds':>9}{'tokens/s':>11}{'time / full fwd':>17}")
    for name, secs, tokens in rows:
        print(f"{name:24}{tokens:9d}{secs:9.2f}{tokens / secs:11.0f}{secs / full:17.2f}")
    stream = rows[0][1]
    stop = next(secs for name, secs, _ in rows if name == "forward, stop at hook")
    print(f"stream_activations vs full forward: {full / stream:.2f}x the throughput; "
          f"vs forward stopping at the hook: {stop / stream:.2f}x")


if __name__ == "__main__":
    main()
