"""How much held-out text the score split shares with the explain split, per split rule.

Over the demo's harvest windows, every run of `--run` tokens in a score-split window is looked up
among the runs of the explain-split windows. A high share means the simulator is tested on text the
explainer has already seen (the standard library repeats boilerplate and near-identical codec
tables). Compared: protocol 1's split by window index and protocol 2's split by content (MinHash of
16-token runs, see sae.harvest). Tokenising only; no model runs.

    python -m evals.split_overlap [--tokens 400000] [--run 16]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from sae.corpus import open_corpus, select_split
from sae.harvest import HarvestConfig, in_score_split
from sae.subject.models import load_subject
from sae.windows import token_windows


def run_keys(windows: np.ndarray, run: int) -> np.ndarray:
    """Every run of `run` consecutive tokens of each window, as a hashable row of bytes."""
    runs = np.lib.stride_tricks.sliding_window_view(windows, run, axis=1)  # [W, R, run]
    return np.ascontiguousarray(runs.reshape(-1, run)).view(np.dtype((np.void, 8 * run))).ravel()


def shared_fraction(windows: np.ndarray, is_score: np.ndarray, run: int) -> float:
    """Share of the score split's runs that also occur in the explain split."""
    explain = set(run_keys(windows[~is_score], run).tolist())
    score = run_keys(windows[is_score], run)
    return float(np.mean([key in explain for key in score.tolist()]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=400_000, help="held-out tokens, as the demo harvests")
    parser.add_argument("--run", type=int, default=16, help="length of the token runs compared")
    args = parser.parse_args()
    subject = load_subject("builtin")
    cfg = HarvestConfig(n_tokens=args.tokens)
    docs = select_split(open_corpus(cfg.corpus), cfg.corpus_split)
    windows = []
    for window in token_windows(docs, subject.tokenizer, cfg.context):
        windows.append(window)
        if len(windows) * cfg.context >= args.tokens:
            break
    stacked = np.stack(windows)
    tokens, ids = torch.from_numpy(stacked), torch.arange(len(windows))
    print(f"{len(windows)} windows of {cfg.context} tokens; runs of {args.run} tokens")
    for rule in ("index", "content"):
        is_score = in_score_split(tokens, ids, cfg.model_copy(update={"split_by": rule})).numpy()
        share = shared_fraction(stacked, is_score, args.run)
        print(
            f"split by {rule:<8} score share {is_score.mean():.3f}; score-split runs also in the explain split: {share:.1%}"
        )


if __name__ == "__main__":
    main()
