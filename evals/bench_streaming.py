"""Activation streaming throughput: `stream_activations` against the forward passes it is built on.

All rows run in one process on the same token windows of the held-out stdlib split:
    stream_activations        corpus -> tokenizer -> windows -> forward to the hook (what users run)
    tokenize + window only    the same pipeline without the model (the CPU-side cost of streaming)
    open corpus, first batch  the fixed start-up part of the above (listing the corpus, first documents)
    forward, stop at hook     `SubjectModel.activations` on pre-built batches (skips the later layers)
    forward, full logits      the bare model on pre-built batches (what a naive harvest would run)
Each row is timed over the whole token budget after one warm-up batch, `--repeats` times in turn,
and the fastest run counts (the least disturbed by other work on the machine); the table gives
tokens/s and each row's time relative to the full forward pass, by wall clock and by this process's
CPU time (the steadier of the two on a machine shared with other jobs).

    python -m evals.bench_streaming [--tokens 65536] [--repeats 3] [--batch 64] [--device cpu] [--threads N]
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


def timed(run: Callable[[], int], device: torch.device) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, tokens) of one call of `run`, which returns its token count."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start, cpu_start = time.perf_counter(), time.process_time()
    tokens = run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, time.process_time() - cpu_start, tokens


def bench(
    subject: SubjectModel, hook: str, max_tokens: int, batch: int, repeats: int
) -> list[tuple[str, float, float, int]]:
    """(row name, best wall seconds, best CPU seconds, tokens) per row."""
    device = subject.device
    batches = [t for _, t in token_batches(subject, heldout_docs(), batch_size=batch, max_tokens=max_tokens)]

    def streaming() -> int:
        n = 0
        for item in stream_activations(subject, heldout_docs(), hook, batch_size=batch, max_tokens=max_tokens):
            n += item.tokens.numel()
        return n

    def windows():
        return token_batches(subject, heldout_docs(), batch_size=batch, max_tokens=max_tokens)

    def tokenize_only() -> int:
        return sum(t.numel() for _, t in windows())

    def first_batch() -> int:
        return next(windows())[1].numel()

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
    runs = (
        ("stream_activations", streaming),
        ("tokenize + window only", tokenize_only),
        ("open corpus, first batch", first_batch),
        ("forward, stop at hook", stop_at_hook),
        ("forward, full logits", full_forward),
    )
    best: dict[str, tuple[float, float, int]] = {}
    for _ in range(repeats):  # interleaved, so a burst of outside load hits every row alike
        for name, run in runs:
            wall, cpu, tokens = timed(run, device)
            old = best.get(name, (wall, cpu, tokens))
            best[name] = (min(wall, old[0]), min(cpu, old[1]), tokens)
    return [(name, *best[name]) for name, _ in runs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=65_536)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--subject", default="builtin")
    parser.add_argument("--hook", default=BUILTIN_HOOK)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    subject = load_subject(args.subject, device=args.device)
    rows = bench(subject, args.hook, args.tokens, args.batch, args.repeats)
    by_name = {name: (wall, cpu) for name, wall, cpu, _ in rows}
    full_wall, full_cpu = by_name["forward, full logits"]
    print(
        f"subject {subject.name}, hook {args.hook}, device {subject.device}, "
        f"torch threads {torch.get_num_threads()}, batch {args.batch} windows of {subject.n_ctx} tokens, "
        f"best of {args.repeats}"
    )
    print(f"{'':26}{'tokens':>8}{'wall s':>8}{'tokens/s':>10}{'cpu s':>8}{'wall / full':>13}{'cpu / full':>12}")
    for name, wall, cpu, tokens in rows:
        print(
            f"{name:26}{tokens:8d}{wall:8.2f}{tokens / wall:10.0f}{cpu:8.2f}"
            f"{wall / full_wall:13.2f}{cpu / full_cpu:12.2f}"
        )
    for clock, col in (("wall", 0), ("cpu", 1)):
        stream, stop, full = (
            by_name[n][col] for n in ("stream_activations", "forward, stop at hook", "forward, full logits")
        )
        print(
            f"{clock:>4}: stream_activations has {full / stream:.2f}x the throughput of the full forward "
            f"and {stop / stream:.2f}x that of the forward stopping at the hook"
        )


if __name__ == "__main__":
    main()
