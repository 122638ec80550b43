"""Controls: what a score looks like when the thing being scored should not be interpretable, or
when a comparison is made fair on density. Each is built here as a plain object that the pipeline
harvests, explains and scores exactly like the real units (see `pipeline.run_controls`).

    shuffled                 each unit scored with another unit's explanation (same kind): the null,
                             which should sit near 0 for simulation and 0.5 for detection/fuzzing
    random_model             the subject model re-initialised (same architecture and tokenizer), an
                             SAE trained on it the same way: do "features" of a model that learned
                             nothing score well? (Heap et al. 2026 say such scores often do)
    density_matched_neurons  each token keeps only its k most active neurons, k chosen so neurons
                             fire on as many tokens as the SAE's features do on average
    random_directions        a dictionary of random unit directions with a TopK encoder = decoderᵀ,
                             the trained SAE's b_dec and k: sparsity alone, without learning
"""

from __future__ import annotations

import copy
import random
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from autointerp.errors import UserError
from autointerp.records import Explanation
from autointerp.settings_hash import settings_hash
from sae.autoencoder import SparseAutoencoder
from sae.harvest import UnitFunction
from sae.subject.models import BUILTIN_NAME, SubjectModel
from sae.subject.tiny_transformer import TinyTransformer, init_weights

ControlName = Literal["shuffled", "random_model", "density_matched_neurons", "random_directions"]
CONTROL_NAMES: tuple[ControlName, ...] = ("shuffled", "random_model", "density_matched_neurons", "random_directions")
CONTROLS_DB = "controls.db"
SHUFFLED_EXPLAINER = "control:shuffled"


class ControlSpec(BaseModel):
    """Which controls a run adds to its report, and how large they are."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error, not a default

    run: list[ControlName] = Field(default_factory=lambda: list(CONTROL_NAMES))
    n_units: int = Field(512, ge=2)  # units scored per kind and control (a seeded random sample)
    harvest_tokens: int = Field(200_000, gt=0)  # tokens each control's harvest reads
    random_model_sae_tokens: int | None = Field(None, gt=0)  # None: as many as the main SAE
    seed: int = 0


def density_matched_k(width: int, d_sae: int, l0: float) -> int:
    """Neurons kept per token so their mean density equals the features' (L0 / d_sae)."""
    return max(1, round(width * l0 / d_sae))


def top_k_per_token(k: int) -> UnitFunction:
    """Neurons with all but each token's k largest activations set to 0."""

    def units(tokens: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
        values, indices = acts.topk(k, dim=-1)
        return torch.zeros_like(acts).scatter_(-1, indices, values.clamp(min=0))

    return units


def random_direction_sae(sae: SparseAutoencoder, seed: int) -> SparseAutoencoder:
    """Same shape, k and b_dec as `sae`; decoder rows drawn uniformly on the sphere, W_enc = W_decᵀ,
    b_enc = 0, always TopK (so the control is as sparse as a TopK SAE of that k)."""
    cfg = sae.cfg.model_copy(
        update={"architecture": "topk", "extra": {**sae.cfg.extra, "control": "random_directions"}}
    )
    control = SparseAutoencoder(cfg).to(sae.W_dec.device)
    generator = torch.Generator().manual_seed(seed)
    directions = torch.randn(cfg.d_sae, cfg.d_in, generator=generator)
    directions /= directions.norm(dim=1, keepdim=True)
    with torch.no_grad():
        control.W_dec.copy_(directions)
        control.W_enc.copy_(directions.t())
        control.b_enc.zero_()
        control.b_dec.copy_(sae.b_dec.detach())
    return control.eval()


def random_init_subject(subject: SubjectModel, seed: int) -> SubjectModel:
    """The built-in model with the weights it had before training (same initialisation scheme)."""
    if not isinstance(subject.model, TinyTransformer):
        raise UserError(
            "the random_model control re-initialises the built-in subject model only; "
            "leave it out of the controls for other models"
        )
    model = copy.deepcopy(subject.model)
    torch.manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            module.reset_parameters()
    model.apply(init_weights)
    return SubjectModel(
        name=f"{BUILTIN_NAME}-random-init-{seed}", model=model.eval(), tokenizer=subject.tokenizer,
        n_ctx=subject.n_ctx, logits_fn=subject.logits_fn,
    )  # fmt: skip


def shuffled_explanations(explanations: list[Explanation], seed: int) -> list[Explanation]:
    """Each unit gets the explanation of another unit of its kind (a seeded derangement)."""
    out: list[Explanation] = []
    for kind in ("neuron", "feature"):
        group = sorted((e for e in explanations if e.unit_kind == kind), key=lambda e: e.unit_index)
        if len(group) < 2:
            continue
        order = list(range(len(group)))
        random.Random(f"{seed}:{kind}").shuffle(order)
        donors = order[1:] + order[:1]  # a cycle through a random order: nobody keeps their own
        for position, donor in zip(order, donors):
            unit, source = group[position], group[donor]
            out.append(
                unit.model_copy(
                    update={
                        "text": source.text,
                        "explainer": SHUFFLED_EXPLAINER,
                        "settings_hash": shuffled_hash(unit.settings_hash, seed),
                        "meta": {"from_unit": source.unit_index},
                        "raw_response": None,
                    }
                )
            )
    return out


def shuffled_hash(explanation_hash: str, seed: int) -> str:
    return settings_hash({"control": "shuffled", "explanations": explanation_hash, "seed": seed})
