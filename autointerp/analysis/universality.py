"""Universality: do two SAEs (two seeds on one model, or one SAE on each of two models) find the same features?

"Towards Monosemanticity" runs the same text through two models trained from different seeds and, for each
feature of one, takes its largest activation correlation with any feature of the other: the median of these
is 0.72 for features and 0.46 for the models' neurons. Here the same is measured on one held-out token stream:
each unit's best match in the other set (both directions), the median with a bootstrap 95% CI, and the
fraction of units whose best match is a near twin (above 0.9). Two SAEs on one model are also compared by
decoder cosine. A unit that never varies on the tokens (a dead feature) has no correlation: it is left out
of the median and counted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel

from autointerp.errors import UserError
from sae.corpus import open_corpus, select_split
from sae.saelens_format import load_sae
from sae.subject.models import BUILTIN_NAME, SubjectModel, builtin_model_dir, load_subject
from sae.unit_matching import UnitSet, best_cosines, check_same_tokenizer, correlate

TWIN_THRESHOLD = 0.9
PAPER = {"features": 0.72, "neurons": 0.46}  # median max correlation across two models, different seeds
N_RESAMPLES = 1000


class MatchSummary(BaseModel):
    """For each unit of one set, its best match in the other: how close, over the units that have one."""

    label: str  # e.g. "features A->B, activation correlation"
    n_units: int
    n_dead: int  # no correlation on these tokens (never varied): excluded from the rest
    median: float | None
    median_ci95: tuple[float, float] | None
    fraction_twins: float | None  # best match above TWIN_THRESHOLD


class UniversalityResult(BaseModel):
    sae_a: str
    sae_b: str
    model_a: str
    model_b: str
    hook: str
    d_sae: int
    corpus: str
    tokens: int
    same_model: bool
    features: list[MatchSummary]  # activation correlation, A->B then B->A
    decoder_cosine: list[MatchSummary]  # same model only
    neurons: list[MatchSummary]  # different models only

    def rows(self) -> list[MatchSummary]:
        return [*self.features, *self.neurons, *self.decoder_cosine]


def median_ci95(values: np.ndarray, key: str) -> tuple[float, float]:
    """Bootstrap 95% CI of the median over units, seeded by `key` so a table re-prints the same CIs."""
    rng = np.random.default_rng(list(key.encode()))
    medians = np.median(values[rng.integers(0, len(values), size=(N_RESAMPLES, len(values)))], axis=1)
    low, high = np.percentile(medians, [2.5, 97.5])
    return float(low), float(high)


def summarize_matches(best: torch.Tensor, label: str) -> MatchSummary:
    """Median, bootstrap CI and twin fraction of best-match values; NaN (dead units) excluded and counted."""
    values = best[~torch.isnan(best)].double().numpy()
    live = len(values) > 0
    return MatchSummary(
        label=label,
        n_units=len(best),
        n_dead=len(best) - len(values),
        median=float(np.median(values)) if live else None,
        median_ci95=median_ci95(values, label) if live else None,
        fraction_twins=float((values > TWIN_THRESHOLD).mean()) if live else None,
    )


def _model_key(name: str) -> str:
    """One spelling per model, so two SAEs on the same model share one loaded copy."""
    path = builtin_model_dir() if name == BUILTIN_NAME else Path(name).expanduser()
    return str(path.resolve()) if path.exists() else name


def load_pair(
    sae_a: Path, sae_b: Path, model_a: str | None = None, model_b: str | None = None, device: str = "cpu"
) -> tuple[UnitSet, UnitSet]:
    """Both SAEs with their subject models (the ones their cfg.json name unless given), checked comparable."""
    probes = [load_sae(sae_a), load_sae(sae_b)]
    a, b = (p.cfg for p in probes)
    if a.hook_name != b.hook_name:
        raise UserError(f"{sae_a} reads hook {a.hook_name!r} but {sae_b} reads {b.hook_name!r}; compare one hook")
    if (a.d_in, a.d_sae) != (b.d_in, b.d_sae):
        raise UserError(
            f"{sae_a} maps {a.d_in} -> {a.d_sae} but {sae_b} maps {b.d_in} -> {b.d_sae}; universality compares "
            "dictionaries of one size on hooks of one width (SAEs of several sizes: `analyze splitting`)"
        )
    names = [model_a or a.model_name, model_b or b.model_name]
    subjects: dict[str, SubjectModel] = {}
    sets = []
    for folder, name, flag in ((sae_a, names[0], "--model-a"), (sae_b, names[1], "--model-b")):
        if name == "unknown":
            raise UserError(f"{folder}/cfg.json names no subject model; pass {flag}")
        key = _model_key(name)
        if key not in subjects:
            subjects[key] = load_subject(name, device=device)
        subject = subjects[key]
        sets.append(
            UnitSet(str(folder), subject, a.hook_name, load_sae(folder, subject.hook_width(a.hook_name), device))
        )
    check_same_tokenizer(sets)
    return sets[0], sets[1]


def universality(
    set_a: UnitSet, set_b: UnitSet, *, tokens: int, corpus: str = "stdlib", batch_size: int = 32, progress: bool = True
) -> UniversalityResult:
    """Features of A vs B on `tokens` held-out tokens of `corpus`; neurons too when the models differ."""
    same_model = set_a.subject is set_b.subject
    sets = [set_a, set_b]
    pairs = [(0, 1)]
    if not same_model:
        sets += [UnitSet("neurons A", set_a.subject, set_a.hook), UnitSet("neurons B", set_b.subject, set_b.hook)]
        pairs.append((2, 3))
    docs = select_split(open_corpus(corpus), "heldout")
    acc = correlate(sets, pairs, docs, max_tokens=tokens, batch_size=batch_size, progress=progress)

    def both_ways(pair: tuple[int, int], kind: str) -> list[MatchSummary]:
        forward, backward = acc[pair], acc[pair].swapped()
        return [
            summarize_matches(forward.best_matches()[1], f"{kind} A->B, activation correlation"),
            summarize_matches(backward.best_matches()[1], f"{kind} B->A, activation correlation"),
        ]

    cosines = []
    if same_model:
        dirs_a, dirs_b = set_a.directions(), set_b.directions()
        cosines = [
            summarize_matches(best_cosines(dirs_a, dirs_b)[1], "features A->B, decoder cosine"),
            summarize_matches(best_cosines(dirs_b, dirs_a)[1], "features B->A, decoder cosine"),
        ]
    assert set_a.sae is not None
    return UniversalityResult(
        sae_a=set_a.name,
        sae_b=set_b.name,
        model_a=set_a.subject.name,
        model_b=set_b.subject.name,
        hook=set_a.hook,
        d_sae=set_a.sae.cfg.d_sae,
        corpus=corpus,
        tokens=acc[(0, 1)].tokens,
        same_model=same_model,
        features=both_ways((0, 1), "features"),
        decoder_cosine=cosines,
        neurons=both_ways((2, 3), "neurons") if not same_model else [],
    )


def format_value(summary: MatchSummary) -> str:
    if summary.median is None or summary.median_ci95 is None:
        return "-"
    low, high = summary.median_ci95
    return f"{summary.median:.3f} [{low:.3f}, {high:.3f}]"


def format_table(rows: list[tuple[str, MatchSummary, float | None]]) -> str:
    """A markdown table: one row per (label, summary, the paper's figure or None)."""
    lines = [
        f"| units | median best match [95% CI] | fraction > {TWIN_THRESHOLD} | dead excluded | paper |",
        "|---|---|---|---|---|",
    ]
    for label, s, paper in rows:
        twins = "-" if s.fraction_twins is None else f"{s.fraction_twins:.3f}"
        lines.append(
            f"| {label} | {format_value(s)} | {twins} | {s.n_dead} of {s.n_units} | "
            f"{'-' if paper is None else f'{paper:.2f}'} |"
        )
    return "\n".join(lines)


def report_text(result: UniversalityResult) -> str:
    """What the command prints: both SAEs and models, then one table row per comparison."""
    across = not result.same_model  # the paper's figures are across models
    rows = [(s.label, s, PAPER["features"] if across else None) for s in result.features]
    rows += [(s.label, s, PAPER["neurons"]) for s in result.neurons]
    rows += [(s.label, s, None) for s in result.decoder_cosine]
    return (
        f"A: {result.sae_a} on {result.model_a}\nB: {result.sae_b} on {result.model_b}\n"
        f"{result.hook}, {result.d_sae} features, {result.tokens} held-out tokens of {result.corpus}\n\n"
        f"{format_table(rows)}\n\n"
        'paper: "Towards Monosemanticity", median max activation correlation across two models (seeds)'
    )
