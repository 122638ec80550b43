"""A dictionary-size sweep: train one SAE per size with otherwise equal settings, evaluate each."""

from __future__ import annotations

import json
from pathlib import Path

from sae.metrics import evaluate_sae, plot_sae_density
from sae.saelens_format import load_sae
from sae.subject.models import SubjectModel
from sae.training import SAETrainConfig, train_sae


def sweep_sizes(
    subject: SubjectModel, hook: str, base: SAETrainConfig, sizes: list[int], out_dir: Path, eval_tokens: int
) -> list[dict]:
    """Train (or resume) `out_dir/<arch>-<size>` for each size; returns one row per size."""
    # validated (k <= d_sae, d_sae > 0) for every size before the first one trains
    configs = [SAETrainConfig.model_validate({**base.model_dump(), "d_sae": size}) for size in sizes]
    rows = []
    for size, cfg in zip(sizes, configs, strict=True):
        folder = out_dir / f"{cfg.architecture}-{size}"
        summary = train_sae(subject, hook, cfg, folder)
        sae = load_sae(folder, subject.hook_width(hook), device=str(subject.device))
        metrics, density = evaluate_sae(subject, sae, hook, corpus=cfg.corpus, max_tokens=eval_tokens)
        plot_sae_density(density, folder / "density.png", title=f"{cfg.architecture} {size}")
        (folder / "metrics.json").write_text(metrics.model_dump_json(indent=2))
        rows.append({"d_sae": size, "train_seconds": summary["seconds_this_run"], **metrics.model_dump()})
        (out_dir / "sweep.json").write_text(json.dumps(rows, indent=2))
    return rows
