"""Training the built-in subject model (and its tokenizer) from scratch on the stdlib corpus.

Plain next-token prediction with AdamW, linear warmup then cosine decay, on random 64-token slices
of the training split. Deterministic under a seed on the same machine and thread count.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict
from safetensors.torch import save_file
from tqdm import tqdm

from sae.corpus import open_corpus, select_split
from sae.subject.tiny_transformer import TinyTransformer, TinyTransformerConfig
from sae.tokenizer import train_bpe
from sae.windows import tokenize_all


class SubjectTrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error, not a default

    corpus: str = "stdlib"
    vocab_size: int = 4096
    steps: int = 3500
    batch_size: int = 64
    lr: float = 3e-3
    warmup_steps: int = 200
    min_lr_fraction: float = 0.05
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    model: TinyTransformerConfig = TinyTransformerConfig()


def lr_at(step: int, cfg: SubjectTrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    floor = cfg.lr * cfg.min_lr_fraction
    return floor + 0.5 * (cfg.lr - floor) * (1 + math.cos(math.pi * min(1.0, progress)))


def random_batch(ids: np.ndarray, batch: int, ctx: int, rng: np.random.Generator) -> torch.Tensor:
    starts = rng.integers(0, len(ids) - ctx, size=batch)
    return torch.from_numpy(np.stack([ids[s : s + ctx] for s in starts]))


def train_subject(cfg: SubjectTrainConfig, out_dir: Path) -> dict:
    """Train tokenizer + model, save `tokenizer.json`, `model.safetensors`, `config.json` to out_dir."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    out_dir.mkdir(parents=True, exist_ok=True)

    tokenizer = train_bpe(select_split(open_corpus(cfg.corpus), "train"), cfg.vocab_size)
    tokenizer.save(out_dir / "tokenizer.json")
    train_ids = tokenize_all(select_split(open_corpus(cfg.corpus), "train"), tokenizer)

    model_cfg = cfg.model.model_copy(update={"vocab_size": tokenizer.vocab_size})
    model = TinyTransformer(model_cfg)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.95),
    )
    start = time.time()
    bar = tqdm(range(cfg.steps), desc="subject model", unit="step")
    ema = None
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        batch = random_batch(train_ids, cfg.batch_size, model_cfg.n_ctx + 1, rng)
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{ema:.3f}")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out_dir / "model.safetensors"))
    meta = {
        "model": model_cfg.model_dump(),
        "training": cfg.model_dump(exclude={"model"}),
        "train_tokens_seen": cfg.steps * cfg.batch_size * model_cfg.n_ctx,
        "train_seconds": round(time.time() - start, 1),
        "final_train_loss_ema": ema,
        "torch_threads": torch.get_num_threads(),
    }
    (out_dir / "config.json").write_text(json.dumps(meta, indent=2))
    return meta
