"""Matching the units of one set to another's: decoder cosine, and activation correlation on shared tokens.

Feature splitting (SAEs of several sizes on one hook) and universality (two subject models, or two SAE
runs) both ask, for every unit a of set A, which unit b of set B behaves most like it, and how closely.

Activation correlation over the same N tokens, from running sums (never the [N, n_a] activations whole):

    corr(a, b) = (N Σ a·b - Σa Σb) / sqrt((N Σa² - (Σa)²) (N Σb² - (Σb)²))

Σ a·b for all pairs is Aᵀ B, [n_a, n_b]; an SAE's codes are sparse (k of d_sae per token), so Aᵀ B costs
nnz(A) · n_b multiply-adds per batch through a sparse product instead of N · n_a · n_b. A unit that never
varies on the tokens (a dead feature) has no correlation: its best match is reported as NaN.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch

from sae.autoencoder import SparseAutoencoder, SparseCode
from sae.corpus import Document
from sae.errors import UserError
from sae.streaming import context_length, token_batches
from sae.subject.models import SubjectModel

Activations = torch.Tensor | SparseCode  # [tokens, units] dense, or an SAE's sparse code of the same


@dataclass
class UnitSet:
    """The units of one model at one hook: its neurons (sae None) or an SAE's features."""

    name: str
    subject: SubjectModel
    hook: str
    sae: SparseAutoencoder | None = None

    @property
    def size(self) -> int:
        return self.sae.cfg.d_sae if self.sae is not None else self.subject.hook_width(self.hook)

    def directions(self) -> torch.Tensor:
        """Each unit's direction in the hook's space, [n_units, d_in], unit-normed (neurons: the basis)."""
        if self.sae is None:
            return torch.eye(self.size)
        w = self.sae.W_dec.detach().float().cpu()
        return w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)


def best_cosines(a: torch.Tensor, b: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row of a [n_a, d], the row of b [n_b, d] with the largest cosine: (index [n_a], cosine [n_a])."""
    a = a / a.norm(dim=1, keepdim=True).clamp_min(1e-12)
    b = b / b.norm(dim=1, keepdim=True).clamp_min(1e-12)
    values, indices = [], []
    for start in range(0, a.shape[0], chunk):
        best = (a[start : start + chunk] @ b.T).max(dim=1)
        values.append(best.values)
        indices.append(best.indices)
    return torch.cat(indices), torch.cat(values)


def _dense(acts: Activations) -> torch.Tensor:
    return acts.to_dense() if isinstance(acts, SparseCode) else acts


def _sums(acts: Activations, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Σa and Σa² per unit, in float64."""
    if isinstance(acts, SparseCode):
        vals = acts.vals.double()
        total = torch.zeros(size, dtype=torch.float64, device=vals.device).index_add_(0, acts.cols, vals)
        squares = torch.zeros(size, dtype=torch.float64, device=vals.device).index_add_(0, acts.cols, vals * vals)
        return total, squares
    x = acts.double()
    return x.sum(0), (x * x).sum(0)


def _per_token(code: SparseCode) -> int | None:
    """k when every token has exactly k entries (a TopK code), else None."""
    k = code.rows.numel() // max(1, code.batch)
    counts = torch.bincount(code.rows, minlength=code.batch)
    return k if k > 0 and bool((counts == k).all()) else None


def _add_topk_cross(cross: torch.Tensor, a: SparseCode, b: SparseCode, k_a: int, k_b: int) -> None:
    """cross += Aᵀ B for two codes with k_a and k_b entries per token: only the k_a · k_b pairs active on
    the same token are added (a thousand for two k=32 SAEs), 4x faster than the sparse-dense product."""
    cols = a.cols.cpu().view(-1, k_a, 1) * cross.shape[1] + b.cols.cpu().view(-1, 1, k_b)
    products = a.vals.cpu().double().view(-1, k_a, 1) * b.vals.cpu().double().view(-1, 1, k_b)
    cross.view(-1).index_add_(0, cols.reshape(-1), products.reshape(-1))


def _cross(a: Activations, b: Activations) -> torch.Tensor:
    """Aᵀ B [n_a, n_b] for one batch, sparse where a side is sparse."""
    if isinstance(a, SparseCode):
        at = torch.sparse_coo_tensor(
            torch.stack([a.cols, a.rows]), a.vals.float(), (a.d_sae, a.batch), check_invariants=False
        )
        return torch.sparse.mm(at, _dense(b).float())
    if isinstance(b, SparseCode):
        return _cross(b, a).T
    return a.float().T @ b.float()


class CorrelationAccumulator:
    """Running sums for the correlation of every unit of A with every unit of B on the same tokens."""

    def __init__(self, n_a: int, n_b: int) -> None:
        self.tokens = 0
        self.sum_a = torch.zeros(n_a, dtype=torch.float64)
        self.sq_a = torch.zeros(n_a, dtype=torch.float64)
        self.sum_b = torch.zeros(n_b, dtype=torch.float64)
        self.sq_b = torch.zeros(n_b, dtype=torch.float64)
        self.cross = torch.zeros(n_a, n_b, dtype=torch.float64)

    def update(self, a: Activations, b: Activations) -> None:
        """Add one batch: a [tokens, n_a] and b [tokens, n_b], row t of each from the same token."""
        rows = a.batch if isinstance(a, SparseCode) else a.shape[0]
        self.tokens += rows
        for total, squares, acts in ((self.sum_a, self.sq_a, a), (self.sum_b, self.sq_b, b)):
            s, q = _sums(acts, total.shape[0])
            total += s.cpu()
            squares += q.cpu()
        k_a, k_b = (_per_token(x) if isinstance(x, SparseCode) else None for x in (a, b))
        if isinstance(a, SparseCode) and isinstance(b, SparseCode) and k_a and k_b:
            _add_topk_cross(self.cross, a, b, k_a, k_b)
        else:
            self.cross.add_(_cross(a, b).cpu())  # float32 product into float64 sums, no float64 copy

    def swapped(self) -> CorrelationAccumulator:
        """The same sums seen from B's side (B's units against A's), sharing memory: no second pass."""
        other = CorrelationAccumulator.__new__(CorrelationAccumulator)
        other.tokens = self.tokens
        other.sum_a, other.sq_a, other.sum_b, other.sq_b = self.sum_b, self.sq_b, self.sum_a, self.sq_a
        other.cross = self.cross.T
        return other

    def correlations(self, rows: slice = slice(None)) -> torch.Tensor:
        """corr(a, b) for A's units in `rows` against all of B, [rows, n_b]; NaN where a unit is constant."""
        return self._corr(self.sum_a[rows, None], self.sq_a[rows, None], self.cross[rows], self.sum_b, self.sq_b)

    def at(self, index: torch.Tensor) -> torch.Tensor:
        """corr(a, index[a]) for every unit a of A, one chosen unit of B each: [n_a], NaN as in `correlations`."""
        index = index.long()
        cross = self.cross[torch.arange(index.shape[0]), index]
        return self._corr(self.sum_a, self.sq_a, cross, self.sum_b[index], self.sq_b[index]).float()

    def _corr(
        self, sum_a: torch.Tensor, sq_a: torch.Tensor, cross: torch.Tensor, sum_b: torch.Tensor, sq_b: torch.Tensor
    ) -> torch.Tensor:
        """The module's formula on broadcastable running sums."""
        n = float(self.tokens)
        cov = n * cross - sum_a * sum_b
        denom = torch.sqrt((n * sq_a - sum_a**2).clamp_min(0) * (n * sq_b - sum_b**2).clamp_min(0))
        corr = cov / denom
        corr[denom <= 1e-12 * n * n] = float("nan")
        return corr

    def best_matches(self, chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
        """For each unit of A, B's most correlated unit: (index [n_a], correlation [n_a], NaN if none)."""
        values, indices = [], []
        for start in range(0, self.sum_a.shape[0], chunk):
            corr = self.correlations(slice(start, start + chunk))
            filled = torch.nan_to_num(corr, nan=-2.0)
            best = filled.max(dim=1)
            values.append(torch.where(best.values < -1.5, float("nan"), best.values))
            indices.append(best.indices)
        return torch.cat(indices), torch.cat(values).float()


def check_same_tokenizer(sets: Iterable[UnitSet]) -> None:
    """Correlation needs the same token stream on both sides: refuse subjects whose vocabularies differ."""
    sets = list(sets)
    first = sets[0].subject.tokenizer
    reference = first.token_strings(range(first.vocab_size))
    for unit_set in sets[1:]:
        tok = unit_set.subject.tokenizer
        if tok is first:
            continue
        if tok.vocab_size != first.vocab_size or tok.token_strings(range(tok.vocab_size)) != reference:
            raise UserError(
                f"{unit_set.name} and {sets[0].name} use different tokenizers; activation correlation "
                "needs both models to read the same tokens"
            )


def _activations_per_set(sets: list[UnitSet], tokens: torch.Tensor) -> Iterator[Activations]:
    """Each set's activations on one batch of windows, running each (subject, hook) forward once."""
    cache: dict[tuple[int, str], torch.Tensor] = {}
    for unit_set in sets:
        key = (id(unit_set.subject), unit_set.hook)
        if key not in cache:
            acts = unit_set.subject.activations(tokens.to(unit_set.subject.device), unit_set.hook)
            cache[key] = acts.reshape(-1, acts.shape[-1]).float()
        x = cache[key]
        yield x if unit_set.sae is None else unit_set.sae.encode_sparse(x.to(unit_set.sae.W_dec.device))


def correlate(
    sets: list[UnitSet],
    pairs: list[tuple[int, int]],
    docs: Iterable[Document],
    *,
    max_tokens: int,
    batch_size: int = 32,
    progress: bool = True,
) -> dict[tuple[int, int], CorrelationAccumulator]:
    """Stream `max_tokens` tokens of `docs` through every set once; one accumulator per (i, j) in `pairs`."""
    check_same_tokenizer(sets)
    accumulators = {(i, j): CorrelationAccumulator(sets[i].size, sets[j].size) for i, j in pairs}
    batches = token_batches(sets[0].subject, docs, batch_size=batch_size, max_tokens=max_tokens)
    if progress:
        from tqdm import tqdm

        batches = tqdm(
            batches, total=max(1, max_tokens // (batch_size * context_length(sets[0].subject, None))), desc="correlate"
        )
    with torch.no_grad():
        for _, tokens in batches:
            acts = list(_activations_per_set(sets, tokens))
            for (i, j), acc in accumulators.items():
                acc.update(acts[i], acts[j])
    return accumulators
