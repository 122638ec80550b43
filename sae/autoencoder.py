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
RESCORE_MARGIN = 16  # bf16 encoder: candidates kept beyond the k-th, in case fp32 orders them otherwise
BF16_CLOSE = 2.0**-6  # relative distance from the k-th value within which bf16 rounding may misorder


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


def _row_dots(a: torch.Tensor, b: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """a[rows[i]] · b[cols[i]] for every i (rows non-decreasing), without gathering rows of either.

    These are the gradients, with respect to the weights w, of the bags Σ_i w_i·b[cols[i]] grouped
    by row, against a; `F.embedding_bag` computes them fused, ten times faster than gathering.
    """
    counts = torch.bincount(rows, minlength=a.shape[0])
    with torch.enable_grad():
        w = torch.zeros(rows.numel(), dtype=a.dtype, device=a.device, requires_grad=True)
        bags = F.embedding_bag(cols, b.detach(), torch.cumsum(counts, 0) - counts, mode="sum", per_sample_weights=w)
        return torch.autograd.grad(bags, w, a)[0]


class _SelectedPreactivations(torch.autograd.Function):
    """pre[rows, cols] for a chosen set of entries, with a sparse backward.

    The values come in already computed (without grad, from the one dense product the encoder
    cannot avoid); backward touches only the chosen entries. With G the upstream gradient
    scattered to (rows, cols) and zero elsewhere:
        dW_encᵀ = Gᵀ · (x - b_dec)     a sparse-dense product, made as [d_sae, d_in], the layout
                                       W_enc is stored in, so no transposing copy follows
        db_enc = Σ_rows G
        db_dec = -W_enc · db_enc       (x itself never needs a gradient)
    """

    @staticmethod
    def forward(ctx, x, W_enc, b_enc, b_dec, rows, cols, vals):
        ctx.save_for_backward(x - b_dec, W_enc, rows, cols)
        return vals

    @staticmethod
    def backward(ctx, grad):
        x_c, W_enc, rows, cols = ctx.saved_tensors
        d_sae = W_enc.shape[1]
        g_t = torch.sparse_coo_tensor(torch.stack([cols, rows]), grad, (d_sae, x_c.shape[0]), check_invariants=False)
        grad_W = torch.sparse.mm(g_t, x_c).t()  # [d_in, d_sae] with W_enc's (transposed) strides
        grad_b_enc = torch.zeros(d_sae, dtype=grad.dtype, device=grad.device).index_add_(0, cols, grad)
        grad_b_dec = -(W_enc @ grad_b_enc)
        return None, grad_W, grad_b_enc, grad_b_dec, None, None, None


class _DecoderWeightGrad(torch.autograd.Function):
    """Identity on a sparse decode f @ W_dec that gives W_dec its gradient as one sparse product.

    `F.embedding_bag`'s own weight gradient sorts the batch's B·k indices on every backward; with
    G the code as a sparse [d_sae, batch] matrix (the entries' values), dW_dec = G · dx̂ instead.
    """

    @staticmethod
    def forward(ctx, decoded, W_dec, rows, cols, vals):
        ctx.save_for_backward(rows, cols, vals)
        ctx.shape = (W_dec.shape[0], decoded.shape[0])
        return decoded

    @staticmethod
    def backward(ctx, grad):
        rows, cols, vals = ctx.saved_tensors
        g_t = torch.sparse_coo_tensor(torch.stack([cols, rows]), vals, ctx.shape, check_invariants=False)
        return grad, torch.sparse.mm(g_t, grad), None, None, None


class SparseAutoencoder(nn.Module):
    threshold: torch.Tensor  # a registered buffer (declared so the type checker sees a tensor)

    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d_in, d_sae = cfg.d_in, cfg.d_sae
        W_dec = torch.randn(d_sae, d_in)
        W_dec /= W_dec.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(W_dec)
        # The encoder starts as the decoder's transpose. It is [d_in, d_sae] as SAELens has it, but
        # stored d_in-fastest (as nn.Linear stores its weight), so that the sparse backward writes
        # its gradient, and Adam its moments, in place without a transposing copy.
        self.W_enc = nn.Parameter(W_dec.clone().t())
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
        rows, cols = mask.nonzero(as_tuple=True)
        return rows, cols

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

    def decode_sparse(self, code: SparseCode, bias: bool = True) -> torch.Tensor:
        """x̂ = f @ W_dec + b_dec (or f @ W_dec alone), reading only the active rows of W_dec."""
        out = F.embedding_bag(code.cols, self.W_dec.detach(), code.offsets(), mode="sum", per_sample_weights=code.vals)
        out = _DecoderWeightGrad.apply(out, self.W_dec, code.rows, code.cols, code.vals.detach())
        return out + self.b_dec if bias else out

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        return f @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction of x [..., d_in]."""
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        return self.decode_sparse(self.encode_sparse(flat)).reshape(shape)

    # --- training-time encoding with gradients --------------------------------------------------------

    def encode_for_training(
        self,
        x: torch.Tensor,
        extra: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
        bf16: bool = False,
    ) -> tuple[SparseCode, SparseCode | None]:
        """(code, extra code) with gradients on the codes' values, from one dense product.

        `extra` adds a second selection that shares that product (e.g. AuxK's top-k among dead
        latents): a function of the detached pre-activations [batch, d_sae] returning (rows, cols).
        `bf16` (topk only) runs that product in bfloat16; see `_topk_bf16`.
        """
        with torch.no_grad():
            if bf16:
                pre, rows, cols, vals = self._topk_bf16(x)
            else:
                pre = self.preactivations(x)
                rows, cols = self.select(pre, training=True)
                vals = pre[rows, cols]
            n_main = rows.numel()
            if extra is not None:
                extra_rows, extra_cols = extra(pre)
                rows, cols = torch.cat([rows, extra_rows]), torch.cat([cols, extra_cols])
                vals = torch.cat([vals, pre[extra_rows, extra_cols].to(vals.dtype)])
        vals = _SelectedPreactivations.apply(x, self.W_enc, self.b_enc, self.b_dec, rows, cols, vals)
        b, d = x.shape[0], self.cfg.d_sae
        main = SparseCode(rows[:n_main], cols[:n_main], vals[:n_main], b, d)
        aux = SparseCode(rows[n_main:], cols[n_main:], vals[n_main:], b, d) if extra is not None else None
        return main, aux

    def _topk_bf16(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """TopK selection from a bfloat16 encoder product: (pre in bf16, rows, cols, values).

        bf16 keeps 8 significant bits, so values near a row's k-th may be tied or misordered.
        Among the row's k + RESCORE_MARGIN largest, those within BF16_CLOSE of the k-th are
        recomputed in fp32 (a few dot products per row) and the top k taken again, so the set is
        fp32's; a row whose close values run past its candidates is redone whole in fp32.
        Values away from the k-th keep their bf16 value.
        """
        k = self.cfg.k
        x_c = x - self.b_dec
        pre = torch.addmm(self.b_enc.bfloat16(), x_c.bfloat16(), self.W_enc.bfloat16())
        top, cand = pre.topk(k + RESCORE_MARGIN, dim=1)
        top = top.to(x.dtype)
        kth = top[:, k - 1 : k]
        close = (top - kth).abs() <= BF16_CLOSE * kth.abs()
        r, j = close.nonzero(as_tuple=True)
        c = cand[r, j]
        top[r, j] = _row_dots(x_c, self.W_enc.t(), r, c) + self.b_enc[c]
        short = close[:, -1].nonzero().squeeze(1)
        if short.numel():
            top[short], cand[short] = torch.addmm(self.b_enc, x_c[short], self.W_enc).topk(k + RESCORE_MARGIN, dim=1)
        vals, pick = top.topk(k, dim=1, sorted=False)
        rows = torch.arange(x.shape[0], device=x.device).repeat_interleave(k)
        vals, cols = vals.reshape(-1), cand.gather(1, pick).reshape(-1)
        keep = vals > 0
        return pre, rows[keep], cols[keep], vals[keep]

    # --- decoder geometry -------------------------------------------------------------------------

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8))

    @torch.no_grad()
    def remove_parallel_decoder_grad(self) -> None:
        """Drop the gradient component along each (unit) decoder row, so steps rotate, not rescale."""
        if self.W_dec.grad is None:
            return
        parallel = (self.W_dec.grad * self.W_dec).sum(dim=1, keepdim=True)
        self.W_dec.grad.addcmul_(parallel, self.W_dec, value=-1)
