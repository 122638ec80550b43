"""Sparse autoencoders over MLP activations, in SAELens's parameter layout.

    x_c  = x - b_dec                                   x: [batch, d_in]
    pre  = x_c @ W_enc + b_enc                          W_enc: [d_in, d_sae], pre: [batch, d_sae]
    f    = act(pre)                                     the features (sparse)
    x̂    = f @ W_dec + b_dec                           W_dec: [d_sae, d_in], rows unit-norm in training

act depends on the architecture:
    relu_l1   f = ReLU(pre), sparsity from an L1 penalty (Anthropic, "Towards Monosemanticity" 2023)
    topk      f = ReLU of the k largest entries of pre per token, zero elsewhere (Gao et al. 2024)
    batchtopk training keeps the k * batch largest entries over the whole batch; at inference a
              learned global threshold replaces the batch (Bussmann et al. 2024)
    jumprelu  f = ReLU(pre) * (pre > threshold) per feature, as SAELens (loaded from it; not trained here)

Sparse codes are passed around as `SparseCode` (flat row/column/value triples in row order), so
decoding costs batch * L0 * d_in instead of batch * d_sae * d_in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field, model_validator
from torch import nn

Architecture = Literal["relu_l1", "topk", "batchtopk", "jumprelu"]


def check_k(architecture: Architecture, k: int, d_sae: int) -> None:
    """A top-k SAE cannot keep more features per token than it has."""
    if architecture in ("topk", "batchtopk") and k > d_sae:
        raise ValueError(f"k ({k}) must be at most d_sae ({d_sae})")


class SAEConfig(BaseModel):
    architecture: Architecture = "topk"
    d_in: int = Field(gt=0)
    d_sae: int = Field(gt=0)
    k: int = Field(32, ge=1)  # topk / batchtopk: active features per token
    # Metadata carried into SAELens's cfg.json
    model_name: str = "builtin"
    hook_name: str = "blocks.0.mlp.act"
    context_size: int = 64
    dataset_path: str = "stdlib"
    extra: dict = Field(default_factory=dict)

    @model_validator(mode="after")
    def _k_fits(self) -> SAEConfig:
        check_k(self.architecture, self.k, self.d_sae)
        return self


@dataclass
class SparseCode:
    """Active features of a batch: entry i is (row rows[i], feature cols[i], value vals[i])."""

    rows: torch.Tensor  # [nnz] int64, non-decreasing
    cols: torch.Tensor  # [nnz] int64
    vals: torch.Tensor  # [nnz] float
    batch: int
    d_sae: int

    def offsets(self) -> torch.Tensor:
        """Start of each row's entries, as `F.embedding_bag` wants them."""
        counts = torch.bincount(self.rows, minlength=self.batch)
        return torch.cumsum(counts, 0) - counts

    def to_dense(self) -> torch.Tensor:
        dense = torch.zeros(self.batch, self.d_sae, dtype=self.vals.dtype, device=self.vals.device)
        dense[self.rows, self.cols] = self.vals
        return dense


class _SelectedPreactivations(torch.autograd.Function):
    """pre[rows, cols] for a chosen set of entries, with a sparse backward.

    Forward is the one dense product the encoder cannot avoid; backward touches only the chosen
    entries. With G the upstream gradient scattered to (rows, cols) and zero elsewhere:
        dW_enc = (x - b_dec)ᵀ · G      as a sparse-dense product, not a dense [d_in, batch, d_sae] one
        db_enc = Σ_rows G
        db_dec = -W_enc · db_enc       (x itself never needs a gradient)
    """

    @staticmethod
    def forward(ctx, x, W_enc, b_enc, b_dec, rows, cols, pre):  # noqa: ANN001 (autograd signature)
        # `pre` is (x - b_dec) @ W_enc + b_enc, already computed (without grad) to choose rows/cols
        ctx.save_for_backward(x - b_dec, W_enc, rows, cols)
        return pre[rows, cols]

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001
        x_c, W_enc, rows, cols = ctx.saved_tensors
        d_in, d_sae = W_enc.shape
        g_t = torch.sparse_coo_tensor(
            torch.stack([cols, rows]), grad, (d_sae, x_c.shape[0]), check_invariants=False
        )
        grad_W = torch.sparse.mm(g_t, x_c).t().contiguous()  # [d_in, d_sae]
        grad_b_enc = torch.zeros(d_sae, dtype=grad.dtype, device=grad.device).index_add_(0, cols, grad)
        grad_b_dec = -(W_enc @ grad_b_enc)
        return None, grad_W, grad_b_enc, grad_b_dec, None, None, None


class SparseAutoencoder(nn.Module):
    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d_in, d_sae = cfg.d_in, cfg.d_sae
        W_dec = torch.randn(d_sae, d_in)
        W_dec /= W_dec.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(W_dec)
        self.W_enc = nn.Parameter(W_dec.t().clone())  # encoder starts as the decoder's transpose
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.b_dec = nn.Parameter(torch.zeros(d_in))
        # batchtopk's inference threshold and jumprelu's per-feature thresholds
        self.register_buffer("threshold", torch.zeros(d_sae if cfg.architecture == "jumprelu" else 1))

    # --- encoding ---------------------------------------------------------------------------------

    def preactivations(self, x: torch.Tensor) -> torch.Tensor:
        """[batch, d_in] -> [batch, d_sae]."""
        return torch.addmm(self.b_enc, x - self.b_dec, self.W_enc)

    def select(self, pre: torch.Tensor, training: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(rows, cols) of the active entries of `pre` [batch, d_sae], in row order."""
        arch = self.cfg.architecture
        if arch == "topk" or (arch == "batchtopk" and training):
            if arch == "topk":
                vals, cols = pre.topk(self.cfg.k, dim=1, sorted=False)
                rows = torch.arange(pre.shape[0], device=pre.device).repeat_interleave(self.cfg.k)
                cols, vals = cols.reshape(-1), vals.reshape(-1)
            else:
                vals, flat = pre.reshape(-1).topk(self.cfg.k * pre.shape[0], sorted=False)
                flat = flat.sort().values
                rows, cols = flat // pre.shape[1], flat % pre.shape[1]
                vals = pre[rows, cols]
            keep = vals > 0
            return rows[keep], cols[keep]
        if arch == "batchtopk":
            mask = pre > self.threshold
        elif arch == "jumprelu":
            mask = (pre > self.threshold[None, :]) & (pre > 0)
        else:
            mask = pre > 0
        return mask.nonzero(as_tuple=True)

    def encode_sparse(self, x: torch.Tensor) -> SparseCode:
        """Active features without building the dense [batch, d_sae] result (inference)."""
        with torch.no_grad():
            pre = self.preactivations(x)
            rows, cols = self.select(pre)
            return SparseCode(rows, cols, pre[rows, cols], x.shape[0], self.cfg.d_sae)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Dense features [..., d_sae] (as SAELens's encode)."""
        shape = x.shape
        code = self.encode_sparse(x.reshape(-1, shape[-1]))
        return code.to_dense().reshape(*shape[:-1], self.cfg.d_sae)

    # --- decoding ---------------------------------------------------------------------------------

    def decode_sparse(self, code: SparseCode) -> torch.Tensor:
        """x̂ = f @ W_dec + b_dec, reading only the active rows of W_dec."""
        out = F.embedding_bag(
            code.cols, self.W_dec, code.offsets(), mode="sum", per_sample_weights=code.vals
        )
        return out + self.b_dec

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        return f @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction of x [..., d_in]."""
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        return self.decode_sparse(self.encode_sparse(flat)).reshape(shape)

    # --- training-time encoding with gradients --------------------------------------------------------

    def encode_for_training(
        self, x: torch.Tensor, extra: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None
    ) -> tuple[SparseCode, SparseCode | None]:
        """(code, extra code) with gradients on the codes' values, from one dense product.

        `extra` adds a second selection that shares that product (e.g. AuxK's top-k among dead
        latents): a function of the detached pre-activations [batch, d_sae] returning (rows, cols).
        """
        with torch.no_grad():
            pre = self.preactivations(x)
            rows, cols = self.select(pre, training=True)
            n_main = rows.numel()
            if extra is not None:
                extra_rows, extra_cols = extra(pre)
                rows, cols = torch.cat([rows, extra_rows]), torch.cat([cols, extra_cols])
        vals = _SelectedPreactivations.apply(x, self.W_enc, self.b_enc, self.b_dec, rows, cols, pre)
        b, d = x.shape[0], self.cfg.d_sae
        main = SparseCode(rows[:n_main], cols[:n_main], vals[:n_main], b, d)
        aux = SparseCode(rows[n_main:], cols[n_main:], vals[n_main:], b, d) if extra is not None else None
        return main, aux

    # --- decoder geometry -------------------------------------------------------------------------

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8)

    @torch.no_grad()
    def remove_parallel_decoder_grad(self) -> None:
        """Drop the gradient component along each (unit) decoder row, so steps rotate, not rescale."""
        if self.W_dec.grad is None:
            return
        parallel = (self.W_dec.grad * self.W_dec).sum(dim=1, keepdim=True)
        self.W_dec.grad -= parallel * self.W_dec
