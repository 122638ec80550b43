"""The same pipeline on a Hugging Face model with a user's SAELens-layout SAE: a tiny random GPT-2
from a local folder stands in for GPT-2 small, hooked at `transformer.h.1.mlp.act`."""

from __future__ import annotations

import json

import torch

from autointerp.pipeline import LabelSpec, RunConfig, SAESpec, SubjectSpec, UnitSelection, run_pipeline
from sae.autoencoder import SAEConfig, SparseAutoencoder
from sae.harvest import HarvestConfig
from sae.saelens_format import save_sae

HOOK = "transformer.h.1.mlp.act"


def test_hf_model_with_a_loaded_sae(gpt2_dir, tmp_path):
    torch.manual_seed(0)
    sae = SparseAutoencoder(SAEConfig(d_in=128, d_sae=96, k=8, model_name=str(gpt2_dir), hook_name=HOOK))
    save_sae(sae, tmp_path / "user_sae")
    cfg = RunConfig(
        out=str(tmp_path / "run"),
        subject=SubjectSpec(model=str(gpt2_dir), hook=HOOK),
        sae=SAESpec(path=str(tmp_path / "user_sae"), eval_tokens=2048),
        harvest=HarvestConfig(n_tokens=4096, n_top=6, n_top_score=4, reservoir=6, n_random=4, n_silent=3),
        units=UnitSelection(mode="first", n=5),
        label=LabelSpec(scorers=["simulation"]),
    )
    summary = run_pipeline(cfg)
    assert summary.source == f"{gpt2_dir}/{HOOK}/topk-96"
    assert summary.explain.written == 10
    metrics = json.loads((tmp_path / "run" / "sae_metrics.json").read_text())
    assert metrics["d_sae"] == 96 and metrics["tokens"] > 0
    lines = [json.loads(line) for line in (tmp_path / "run" / "catalog.jsonl").read_text().splitlines()]
    feature = next(line for line in lines if line["kind"] == "feature")
    assert feature["promoted_tokens"], "logit effects go through GPT-2's Conv1D c_proj and lm_head"
