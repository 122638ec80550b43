"""Which output tokens a unit promotes or suppresses: its direction through the MLP's output
projection and the unembedding (the paper's "bless, forbid, damn, -zilla" view).

    effect = ((d @ W_outᵀ) ⊙ γ_final) @ W_Uᵀ          d: [n, width], effect: [n, vocab]

This is the direct path only (later layers and the final LayerNorm's centring are ignored), which
is exact up to scale for a one-layer model like the built-in one.
"""

from __future__ import annotations

import torch
from torch import nn

from sae.subject.models import SubjectModel

_OUTPUT_PROJECTIONS = ("fc_out", "c_proj", "down_proj", "dense_4h_to_h", "fc2")


def _output_projection(subject: SubjectModel, hook: str) -> torch.Tensor | None:
    """The MLP's output weight as [d_model, width], found next to the hooked activation."""
    parent_path = hook.rsplit(".", 1)[0] if "." in hook else ""
    parent = subject.model.get_submodule(parent_path) if parent_path else subject.model
    for name in _OUTPUT_PROJECTIONS:
        proj = getattr(parent, name, None)
        if proj is None or not hasattr(proj, "weight"):
            continue
        weight = proj.weight.detach()
        if isinstance(proj, nn.Linear):
            return weight  # [out=d_model, in=width]
        return weight.t()  # GPT-2's Conv1D stores [in, out]
    return None


def _unembedding(subject: SubjectModel) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    model = subject.model
    head = getattr(model, "unembed", None)
    output_embeddings = getattr(model, "get_output_embeddings", None)
    if head is None and output_embeddings is not None:
        head = output_embeddings()
    if head is None:
        return None
    final_norm = getattr(model, "ln_f", None)
    if final_norm is None:
        base = getattr(model, "transformer", None) or getattr(model, "model", None)
        final_norm = getattr(base, "ln_f", None) or getattr(base, "norm", None)
    gamma = getattr(final_norm, "weight", None)
    return head.weight.detach(), (gamma.detach() if gamma is not None else None)


@torch.no_grad()
def logit_effects(subject: SubjectModel, hook: str, directions: torch.Tensor) -> torch.Tensor | None:
    """[n, vocab] direct logit effect of each activation-space direction, or None if unknown."""
    w_out = _output_projection(subject, hook)
    unembed = _unembedding(subject)
    if w_out is None or unembed is None or w_out.shape[1] != directions.shape[1]:
        return None
    w_u, gamma = unembed
    resid = directions.to(w_out.dtype) @ w_out.t()  # [n, d_model]
    if gamma is not None:
        resid = resid * gamma
    return (resid @ w_u.t()).float()
