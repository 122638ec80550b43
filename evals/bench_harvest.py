"""Harvest cost: throughput against the bare forward pass, and peak memory at two corpus sizes.

Same process, same held-out windows: (1) the subject model's forward pass stopped at the hook
(the least any harvest must do), (2) that plus the SAE's encoder, (3) the full harvest of neurons
and features. Each is timed in wall seconds and in CPU seconds (all threads): with more than one
torch thread the harvest's bookkeeping runs on a worker thread beside the model's next batch, so
time and CPU ratios differ; `OMP_NUM_THREADS=1` measures one core, where they agree. Importing
`sae` sets OMP_WAIT_POLICY=PASSIVE unless the environment sets it (sae/__init__.py); the first line
printed names the policy in force. The four are
run in `--repeats` interleaved rounds and each row keeps its fastest. Peak memory
(max RSS) is measured in fresh subprocesses at two token counts to show it stays flat as the
corpus grows.

    python -m evals.bench_harvest --sae DEMO_OUT/sae [--tokens 100000]
    OMP_NUM_THREADS=1 python -m evals.bench_harvest --sae DEMO_OUT/sae
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from sae.corpus import open_corpus, select_split
from sae.harvest import HarvestConfig, harvest, overlap_bookkeeping
from sae.saelens_format import load_sae
from sae.streaming import stream_activations
from sae.subject.models import BUILTIN_HOOK, load_subject


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, every thread counted)."""
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu


def throughput(sae_dir: Path, tokens: int, repeats: int) -> None:
    subject = load_subject("builtin")
    sae = load_sae(sae_dir, subject.hook_width(BUILTIN_HOOK))
    docs = lambda: select_split(open_corpus("stdlib"), "heldout")

    def forward_only() -> None:
        for _ in stream_activations(subject, docs(), BUILTIN_HOOK, max_tokens=tokens):
            pass

    def forward_and_encode() -> None:
        for item in stream_activations(subject, docs(), BUILTIN_HOOK, max_tokens=tokens):
            sae.encode(item.activations)

    cfg = HarvestConfig(n_tokens=tokens)
    first_pass = cfg.model_copy(update={"n_hard_negative": 0})
    jobs = [
        ("forward to the hook", forward_only),
        ("+ SAE encoder", forward_and_encode),
        ("first pass only (no hard negatives)", lambda: harvest(subject, BUILTIN_HOOK, sae, first_pass)),
        ("full harvest (neurons+features)", lambda: harvest(subject, BUILTIN_HOOK, sae, cfg)),
    ]
    # rounds of all four, each row's fastest round kept: a shared machine's speed drifts over a
    # run, and interleaving exposes every row to the same drift
    rounds = [[timed(job) for _, job in jobs] for _ in range(repeats)]
    rows = [(name, min(r[i] for r in rounds)) for i, (name, _) in enumerate(jobs)]
    base = rows[0][1][0]
    print(
        f"torch threads {torch.get_num_threads()}, {tokens} tokens, {sae.cfg.d_sae} features + {sae.cfg.d_in} neurons,"
        f" fastest of {repeats} rounds"
        f" (bookkeeping {'beside the model, on a worker thread' if overlap_bookkeeping(subject.device) else 'in line'};"
        f" OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', 'unset')})"
    )
    print(f"{'':36}{'seconds':>9}{'CPU s':>8}{'tokens/s':>10}{'x forward':>10}")
    for name, (secs, cpu) in rows:
        print(f"{name:36}{secs:9.2f}{cpu:8.2f}{tokens / secs:10.0f}{secs / base:10.2f}")
    (enc, enc_cpu), (first, first_cpu), (full, full_cpu) = rows[1][1], rows[2][1], rows[3][1]
    print(
        f"full harvest / (forward + SAE encoder): {full / enc:.2f} in time, {full_cpu / enc_cpu:.2f} in CPU "
        f"(first pass alone {first / enc:.2f} / {first_cpu / enc_cpu:.2f}; the hard-negative pass reruns the "
        "forward, for the neurons)"
    )


def peak_memory(sae_dir: Path, tokens: int) -> float:
    """Max RSS (MB) of a fresh process that harvests `tokens` tokens."""
    code = (
        "import json,resource,sys;from pathlib import Path;"
        f"from {__package__}.bench_harvest import _harvest_only;"
        f"_harvest_only(Path({str(sae_dir)!r}),{tokens});"
        "print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _harvest_only(sae_dir: Path, tokens: int) -> None:
    subject = load_subject("builtin")
    sae = load_sae(sae_dir, subject.hook_width(BUILTIN_HOOK))
    harvest(subject, BUILTIN_HOOK, sae, HarvestConfig(n_tokens=tokens))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sae", required=True, help="a SAELens-layout SAE folder for the built-in model")
    parser.add_argument("--tokens", type=int, default=100_000)
    parser.add_argument(
        "--repeats", type=int, default=3, help="rounds of the four measurements; each row's fastest is kept"
    )
    parser.add_argument("--memory-tokens", default="50000,400000", help="two token counts for peak memory")
    args = parser.parse_args()
    throughput(Path(args.sae), args.tokens, args.repeats)
    sizes = [int(s) for s in args.memory_tokens.split(",")]
    peaks = {n: peak_memory(Path(args.sae), n) for n in sizes}
    print("peak RSS of a fresh harvest process: " + ", ".join(f"{n} tokens {mb:.0f} MB" for n, mb in peaks.items()))
    print(json.dumps({"peak_rss_mb": peaks}))


if __name__ == "__main__":
    main()
