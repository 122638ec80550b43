"""How good is an SAE? Sparsity, reconstruction, and what its reconstruction does to the model.

    l0              mean number of active features per token
    fvu             Σ‖x - x̂‖² / Σ‖x - x̄‖²  (fraction of variance unexplained)
    dead_fraction   features that never fire on the evaluation tokens
    dense_fraction  features that fire on more than 10% of them
    loss_recovered  (CE_zero - CE_sae) / (CE_zero - CE_clean), where CE_sae splices x̂ into the
                    forward pass in place of the activations and CE_zero splices zeros (SAELens's
                    "CE loss score")
Document-separator (BOS) positions are left as they are in every variant and excluded from the
statistics, as they are excluded from training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel

from sae.autoencoder import SparseAutoencoder
from sae.corpus import open_corpus, select_split
from sae.streaming import token_batches
from sae.subject.models import SubjectModel


class SAEMetrics(BaseModel):
    l0: float
    fvu: float
    dead_fraction: float
    dense_fraction: float
    loss_recovered: float
    ce_clean: float
    ce_zero_ablation: float
    ce_with_reconstruction: float
    tokens: int
    d_sae: int


def _next_token_loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), tokens[:, 1:].flatten(), reduction="sum")


@torch.no_grad()
def evaluate_sae(
    subject: SubjectModel,
    sae: SparseAutoencoder,
    hook: str,
    corpus: str = "stdlib",
    max_tokens: int = 100_000,
    batch_size: int = 64,
    ctx: int | None = None,
) -> tuple[SAEMetrics, np.ndarray]:
    """Metrics on the held-out split, and each feature's firing density [d_sae]."""
    fires = torch.zeros(sae.cfg.d_sae, dtype=torch.long, device=subject.device)
    n_tokens = n_active = 0
    sq_err = 0.0
    sum_x = torch.zeros(sae.cfg.d_in, device=subject.device)
    sum_sq_x = 0.0
    ce = {"clean": 0.0, "zero": 0.0, "sae": 0.0}
    n_predicted = 0
    docs = select_split(open_corpus(corpus), "heldout")
    for _, tokens in token_batches(subject, docs, batch_size=batch_size, ctx=ctx, max_tokens=max_tokens):
        keep = (tokens != subject.tokenizer.bos_id)[..., None]  # [batch, seq, 1]
        clean_logits, acts = subject.run_with_hook(tokens, hook)
        acts = acts.float()
        flat = acts.reshape(-1, acts.shape[-1])[keep.reshape(-1)]
        code = sae.encode_sparse(flat)
        recon = sae.decode_sparse(code)
        fires += torch.bincount(code.cols, minlength=sae.cfg.d_sae)
        n_active += code.rows.numel()
        n_tokens += flat.shape[0]
        sq_err += float((recon - flat).pow(2).sum())
        sum_x += flat.sum(0)
        sum_sq_x += float(flat.pow(2).sum())

        spliced = acts.clone()
        spliced[keep.expand_as(acts)] = recon.reshape(-1).to(spliced.dtype)
        sae_logits, _ = subject.run_with_hook(tokens, hook, replace=spliced)
        zero_logits, _ = subject.run_with_hook(tokens, hook, replace=acts * ~keep)
        ce["clean"] += float(_next_token_loss(clean_logits, tokens))
        ce["sae"] += float(_next_token_loss(sae_logits, tokens))
        ce["zero"] += float(_next_token_loss(zero_logits, tokens))
        n_predicted += tokens[:, 1:].numel()
    total_var = sum_sq_x - float(sum_x.pow(2).sum()) / n_tokens
    ce = {k: v / n_predicted for k, v in ce.items()}
    density = (fires.float() / n_tokens).cpu().numpy()
    metrics = SAEMetrics(
        l0=n_active / n_tokens,
        fvu=sq_err / total_var,
        dead_fraction=float((density == 0).mean()),
        dense_fraction=float((density > 0.1).mean()),
        loss_recovered=(ce["zero"] - ce["sae"]) / (ce["zero"] - ce["clean"]),
        ce_clean=ce["clean"],
        ce_zero_ablation=ce["zero"],
        ce_with_reconstruction=ce["sae"],
        tokens=n_tokens,
        d_sae=sae.cfg.d_sae,
    )
    return metrics, density


def plot_sae_density(density: np.ndarray, path: Path, title: str = "Feature density") -> None:
    """log10 firing-density histogram (the paper's view of dead, rare and dense features).

    Built on `Figure` with an Agg canvas, never pyplot (as autointerp/plots.py): no display, no global state.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    alive = density[density > 0]
    fig = Figure(figsize=(6, 3.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    if len(alive):
        ax.hist(np.log10(alive), bins=60, color="#3b6ea8")
    ax.axvline(-1, color="#b33", linestyle="--", linewidth=1, label="dense (10%)")
    ax.set_xlabel("log10(fraction of tokens on which the feature fires)")
    ax.set_ylabel("features")
    ax.set_title(f"{title} — {int((density == 0).sum())} dead of {len(density)}")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
