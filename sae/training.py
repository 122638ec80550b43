"""Training a sparse autoencoder on activations streamed from a subject model.

One loop for every architecture; what differs is the loss:
    topk / batchtopk   L = ‖x - x̂‖² / ‖x - x̄‖²  +  α · AuxK            (Gao et al. 2024)
    relu_l1            L = ‖x - x̂‖²  +  λ(t) · Σ_i f_i                  (decoder rows unit-norm)
AuxK reconstructs the main reconstruction's error from the `aux_k` largest pre-activations of
latents that have not fired for `dead_after_tokens` tokens, which pulls dead latents back to life.
relu_l1 instead resamples dead features from badly reconstructed inputs at set steps (Anthropic 2023).

Inputs are scaled by one constant so that E‖s·x‖² = 1; the scale is folded back into the saved
weights, so the saved SAE reads raw activations. Checkpoints are written every `checkpoint_every`
steps and a rerun with the same output folder resumes from the last one. A checkpoint holds all
that decides what comes next (the shuffling buffer's rows and generator, the stream position and
pass, every RNG state, the running averages), so a killed and resumed run ends with the same weights
as one never interrupted.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from tqdm import tqdm

from sae.activation_buffer import ShufflingBuffer
from sae.autoencoder import Architecture, SAEConfig, SparseAutoencoder, SparseCode, check_k
from sae.corpus import open_corpus, select_split
from sae.distributed import SINGLE, Shard, all_rows, all_sum, broadcast, count_all, first_decides
from sae.errors import UserError
from sae.saelens_format import save_sae
from sae.streaming import stream_activations
from sae.subject.models import SubjectModel

CHECKPOINT = "checkpoint.pt"
# 2: the buffer, RNG states, data pass and running averages travel with the checkpoint. A checkpoint
# without a format (1) resumes the old way, with a warning: its weights still save hours of training.
CHECKPOINT_FORMAT = 2

log = logging.getLogger("sae.training")


class SAETrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error, not a default

    architecture: Architecture = "topk"
    d_sae: int = Field(4096, gt=0)
    k: int = Field(32, ge=1)
    l1_coefficient: float = 0.1  # relu_l1 only, on inputs scaled to E‖x‖² = 1
    total_tokens: int = Field(2_000_000, gt=0)
    batch_size: int = Field(4096, ge=1)
    lr: float = Field(2e-3, gt=0)
    warmup_fraction: float = 0.02
    decay_fraction: float = 0.2  # linear decay to zero over the last part of training
    l1_warmup_fraction: float = 0.05
    grad_clip: float = 1.0
    aux_k: int = 256
    # The encoder's dense product in bfloat16 (topk only; fp32 weights, Adam and the chosen set):
    # "auto" uses it where the hardware multiplies bf16 natively (a GPU, or a CPU with AMX/AVX512-BF16).
    # Off by default: on the 2 shared AMX cores it measured no faster end to end (see the README).
    encoder_precision: Literal["auto", "float32", "bfloat16"] = "float32"
    aux_coefficient: float = 1 / 32
    dead_after_tokens: int = 250_000
    resample_steps: list[int] = []  # relu_l1: steps at which dead features are resampled
    buffer_tokens: int = 2**17
    subject_batch_size: int = 64
    context: int = 64
    corpus: str = "stdlib"
    checkpoint_every: int = Field(100, ge=1)
    seed: int = 0

    @model_validator(mode="after")
    def _k_fits(self) -> SAETrainConfig:
        check_k(self.architecture, self.k, self.d_sae)
        return self

    @property
    def steps(self) -> int:
        return max(1, self.total_tokens // self.batch_size)


def lr_factor(step: int, cfg: SAETrainConfig) -> float:
    warmup = max(1, int(cfg.warmup_fraction * cfg.steps))
    decay_start = int((1 - cfg.decay_fraction) * cfg.steps)
    if step < warmup:
        return (step + 1) / warmup
    if step >= decay_start:
        return max(0.0, (cfg.steps - step) / max(1, cfg.steps - decay_start))
    return 1.0


def geometric_median(points: torch.Tensor, iterations: int = 50) -> torch.Tensor:
    """Weiszfeld's algorithm: the point minimising the sum of distances to `points` [n, d]."""
    median = points.mean(dim=0)
    for _ in range(iterations):
        weights = 1.0 / (points - median).norm(dim=1).clamp_min(1e-8)
        median = (weights[:, None] * points).sum(dim=0) / weights.sum()
    return median


def dead_topk(pre: torch.Tensor, dead_cols: torch.Tensor, aux_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, cols) of the aux_k largest positive pre-activations [batch, d_sae] of each row among
    the dead columns, found in those columns alone rather than by a masked top-k over all of them."""
    k_aux = min(aux_k, dead_cols.numel())
    vals, idx = pre.index_select(1, dead_cols).topk(k_aux, dim=1, sorted=False)
    rows = torch.arange(pre.shape[0], device=pre.device).repeat_interleave(k_aux)
    keep = vals.reshape(-1) > 0
    return rows[keep], dead_cols[idx.reshape(-1)[keep]]


class GlobalBatch:
    """Means over the rows of the batch that all processes hold together (each holds as many).

    A loss is written as this process's rows' sum over the global row count, so the processes'
    losses add up to the loss of the whole batch and their gradients, summed, to its gradient.
    Constants of the loss (the batch variance, AuxK's normaliser) are summed over processes."""

    def __init__(self, x: torch.Tensor, shard: Shard) -> None:
        self.shard = shard
        self.rows = x.shape[0] * shard.world
        mean = self.total(x.sum(dim=0))
        self.variance = self.total((x - mean).pow(2).sum())

    def share(self, local_sum: torch.Tensor) -> torch.Tensor:
        """This process's part of a mean over all rows (keeps the gradient)."""
        return local_sum / self.rows

    def total(self, local_sum: torch.Tensor) -> torch.Tensor:
        """The mean over all rows of a constant (no gradient)."""
        return all_sum(local_sum.detach(), self.shard) / self.rows


def topk_loss(
    sae: SparseAutoencoder,
    x: torch.Tensor,
    dead: torch.Tensor,
    cfg: SAETrainConfig,
    bf16: bool = False,
    shard: Shard = SINGLE,
) -> tuple[torch.Tensor, SparseCode, torch.Tensor]:
    """(this process's share of the loss, its rows' code, the whole batch's FVU). AuxK as Gao et al.
    define it: ê = W_dec·z_aux, with no b_dec, is fitted to the main reconstruction's error
    e = x - x̂, so AuxK's gradient reaches b_dec through the encoder (z_aux reads x - b_dec) but
    not through the decoder."""
    batch = GlobalBatch(x, shard)
    dead_cols = dead.nonzero().squeeze(1)
    aux_select = (lambda pre: dead_topk(pre, dead_cols, cfg.aux_k)) if dead_cols.numel() else None
    code, aux_code = sae.encode_for_training(x, aux_select, bf16=bf16)
    recon = sae.decode_sparse(code)
    sq_err = (recon - x).pow(2).sum()
    loss = batch.share(sq_err) / batch.variance
    if aux_code is not None and count_all(aux_code.rows.numel(), shard, x.device) > 0:
        error = (x - recon).detach()
        aux_recon = sae.decode_sparse(aux_code, bias=False)
        aux = batch.share((aux_recon - error).pow(2).sum()) / batch.total(error.pow(2).sum()).clamp_min(1e-8)
        loss = loss + cfg.aux_coefficient * aux
    return loss, code, batch.total(sq_err) / batch.variance


def relu_l1_loss(
    sae: SparseAutoencoder, x: torch.Tensor, l1: float, shard: Shard = SINGLE
) -> tuple[torch.Tensor, SparseCode, torch.Tensor]:
    """(this process's share of the loss, its rows' code, the whole batch's FVU)."""
    batch = GlobalBatch(x, shard)
    f = torch.relu(sae.preactivations(x))
    recon = sae.decode(f)
    sq_err = (recon - x).pow(2).sum()
    loss = batch.share(sq_err) + l1 * batch.share(f.sum())
    rows, cols = (f > 0).nonzero(as_tuple=True)
    fvu = batch.total(sq_err) / batch.variance
    return loss, SparseCode(rows, cols, f[rows, cols].detach(), x.shape[0], sae.cfg.d_sae), fvu


@torch.no_grad()
def resample_dead(sae: SparseAutoencoder, opt: torch.optim.Adam, dead: torch.Tensor, x: torch.Tensor, seed: int) -> int:
    """Re-point dead features at inputs the SAE reconstructs worst (probability ∝ loss²)."""
    dead_idx = dead.nonzero().squeeze(1)
    if len(dead_idx) == 0:
        return 0
    losses = (sae(x) - x).pow(2).sum(dim=1)
    gen = torch.Generator().manual_seed(seed)
    pick = torch.multinomial(losses.pow(2).cpu() + 1e-12, len(dead_idx), replacement=True, generator=gen)
    directions = x[pick.to(x.device)] - sae.b_dec
    directions /= directions.norm(dim=1, keepdim=True).clamp_min(1e-8)
    alive = ~dead
    enc_norm = sae.W_enc[:, alive].norm(dim=0).mean() if alive.any() else torch.tensor(1.0)
    sae.W_dec[dead_idx] = directions
    sae.W_enc[:, dead_idx] = directions.t() * 0.2 * enc_norm
    sae.b_enc[dead_idx] = 0.0
    for param in (sae.W_dec, sae.W_enc, sae.b_enc):
        state = opt.state.get(param, {})
        for moment in ("exp_avg", "exp_avg_sq"):
            if moment in state:
                if param is sae.W_enc:
                    state[moment][:, dead_idx] = 0.0
                else:
                    state[moment][dead_idx] = 0.0
    return len(dead_idx)


def uses_bf16_encoder(cfg: SAETrainConfig, device: torch.device) -> bool:
    """Whether to run the encoder product in bf16: asked for, or "auto" on hardware made for it."""
    if cfg.encoder_precision != "float32" and cfg.architecture != "topk":
        if cfg.encoder_precision == "bfloat16":
            raise UserError(f"encoder_precision bfloat16 is for topk SAEs, not {cfg.architecture}")
        return False
    if cfg.encoder_precision != "auto":
        return cfg.encoder_precision == "bfloat16"
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    cpuinfo = Path("/proc/cpuinfo")
    flags = set(cpuinfo.read_text().split()) if device.type == "cpu" and cpuinfo.exists() else set()
    return bool(flags & {"amx_bf16", "avx512_bf16"})


def make_optimizer(sae: SparseAutoencoder, cfg: SAETrainConfig) -> torch.optim.Adam:
    """Adam with its fused kernel (on CPU it is several times faster than the per-tensor loops)."""
    return torch.optim.Adam(sae.parameters(), lr=cfg.lr, betas=(0.9, 0.999), fused=True)


def training_step(
    sae: SparseAutoencoder,
    opt: torch.optim.Adam,
    x: torch.Tensor,
    dead: torch.Tensor,
    cfg: SAETrainConfig,
    step: int,
    bf16: bool = False,
    shard: Shard = SINGLE,
) -> tuple[torch.Tensor, SparseCode, torch.Tensor]:
    """One optimizer step on a scaled batch x [batch, d_in] (this process's rows of it); returns
    (the whole batch's loss, this process's code, the whole batch's FVU). Processes sum their
    gradients before the step, so each takes the step one process would on the whole batch."""
    for group in opt.param_groups:
        group["lr"] = cfg.lr * lr_factor(step, cfg)
    if cfg.architecture == "relu_l1":
        l1 = cfg.l1_coefficient * min(1.0, step / max(1, cfg.l1_warmup_fraction * cfg.steps))
        loss, code, fvu = relu_l1_loss(sae, x, l1, shard)
    else:
        loss, code, fvu = topk_loss(sae, x, dead, cfg, bf16, shard)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    sum_gradients(sae, shard)
    sae.remove_parallel_decoder_grad()
    torch.nn.utils.clip_grad_norm_(sae.parameters(), cfg.grad_clip)
    opt.step()
    sae.normalize_decoder()
    return all_sum(loss.detach(), shard), code, fvu


def sum_gradients(sae: SparseAutoencoder, shard: Shard) -> None:
    """Replace each gradient by its sum over processes, in one flat all-reduce."""
    grads = [p.grad for p in sae.parameters() if p.grad is not None]
    if shard.world == 1 or not grads:
        return
    flat = all_sum(torch.cat([g.reshape(-1) for g in grads]), shard)
    for g, part in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
        g.copy_(part.view_as(g))


def _save_checkpoint(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)  # atomic: a kill leaves the old or the new checkpoint, never half of one


def _rng_states() -> dict:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def _restore_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])


def train_sae(subject: SubjectModel, hook: str, cfg: SAETrainConfig, out_dir: Path, shard: Shard = SINGLE) -> dict:
    """Train, save in SAELens layout under out_dir, and return a summary of the run.

    With a `shard` of several processes (torchrun), each reads its own batches of the activation
    stream and takes batch_size / world rows of every step's batch; gradients are summed, so every
    process holds the same weights, and rank 0 saves them. Each process checkpoints its own state."""
    local_batch = check_data_parallel(cfg, shard)
    torch.manual_seed(cfg.seed)
    device = subject.device
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # the dense encoder product is the hot spot
    out_dir.mkdir(parents=True, exist_ok=True)
    d_in = subject.hook_width(hook)
    sae_cfg = SAEConfig(
        architecture=cfg.architecture,
        d_in=d_in,
        d_sae=cfg.d_sae,
        k=cfg.k,
        model_name=subject.name,
        hook_name=hook,
        context_size=cfg.context,
        dataset_path=cfg.corpus,
    )
    sae = SparseAutoencoder(sae_cfg).to(device)
    opt = make_optimizer(sae, cfg)
    bf16 = uses_bf16_encoder(cfg, device)
    ckpt_path = out_dir / (CHECKPOINT if shard.world == 1 else f"checkpoint.rank{shard.rank}.pt")
    step, scale, data_pass = 0, None, 0
    l0_ema: float | None = None
    fvu_ema: float | None = None
    tokens_since_fired = torch.zeros(cfg.d_sae, dtype=torch.long, device=device)
    buffer = ShufflingBuffer(cfg.buffer_tokens, local_batch, seed=cfg.seed + shard.rank)
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if ckpt["config"] != cfg.model_dump() or ckpt.get("world", 1) != shard.world:
            raise UserError(f"{ckpt_path} was written with other settings; use a new --out or delete it")
        sae.load_state_dict(ckpt["sae"])
        opt.load_state_dict(ckpt["optimizer"])
        step, scale = ckpt["step"], ckpt["scale"]
        tokens_since_fired = ckpt["tokens_since_fired"].to(device)
        if ckpt.get("format") == CHECKPOINT_FORMAT:
            buffer.load_state_dict(ckpt["buffer"], device)
            data_pass, l0_ema, fvu_ema = ckpt["data_pass"], ckpt["l0_ema"], ckpt["fvu_ema"]
            _restore_rng_states(ckpt["rng"])
        else:
            log.warning(
                "%s predates resumable checkpoints: training continues from step %d with a fresh shuffling "
                "buffer, so the weights will differ slightly from an uninterrupted run",
                ckpt_path,
                step,
            )
            buffer = ShufflingBuffer(cfg.buffer_tokens, local_batch, seed=cfg.seed + step)
            buffer.windows_consumed = ckpt["windows_consumed"]
    check_same_step(step, shard, device)
    finished = out_dir / "training.json"
    done = first_decides(
        lambda: json.loads(finished.read_text()) if step >= cfg.steps and finished.exists() else None, shard
    )
    if done is not None:  # trained and saved already: nothing to do
        return done
    broadcast([*sae.parameters(), *sae.buffers()], shard)  # one starting point, whatever each process drew

    batches = _training_batches(subject, hook, cfg, buffer, data_pass, shard)
    started = time.time()
    bar = tqdm(
        total=cfg.steps,
        initial=step,
        desc=f"SAE {cfg.architecture} {cfg.d_sae}",
        unit="step",
        disable=not shard.is_writer,
    )
    while step < cfg.steps:
        data_pass, x = next(batches, (data_pass, None))
        if not every_process_has(x is not None, shard, device):
            break
        assert x is not None
        if scale is None:  # first batch: fix the input scale and start b_dec at the geometric median
            scale = float(1.0 / all_sum(x.pow(2).sum(), shard).div(x.shape[0] * shard.world).sqrt())
            with torch.no_grad():
                sae.b_dec.copy_(geometric_median(all_rows(x, shard)[:2048] * scale))
        x = x * scale
        dead = tokens_since_fired > cfg.dead_after_tokens
        loss, code, fvu_t = training_step(sae, opt, x, dead, cfg, step, bf16, shard)
        with torch.no_grad():
            fired = torch.zeros(cfg.d_sae, dtype=torch.int32, device=device)
            fired[code.cols] = 1
            fired_anywhere = all_sum(fired, shard) > 0
            tokens_since_fired = torch.where(fired_anywhere, 0, tokens_since_fired + x.shape[0] * shard.world)
            if cfg.architecture == "batchtopk":  # inference threshold: mean of the smallest kept value
                smallest = code.vals.min() if code.vals.numel() else sae.threshold[0]
                if step == 0:
                    sae.threshold.fill_(smallest)
                else:
                    sae.threshold.mul_(0.99).add_(0.01 * smallest)
            l0 = count_all(code.rows.numel(), shard, device) / (x.shape[0] * shard.world)
            fvu = float(fvu_t)
        if cfg.architecture == "relu_l1" and step in cfg.resample_steps:
            resample_dead(sae, opt, dead, all_rows(x, shard), cfg.seed + step)
        l0_ema = l0 if l0_ema is None else 0.95 * l0_ema + 0.05 * l0
        fvu_ema = fvu if fvu_ema is None else 0.95 * fvu_ema + 0.05 * fvu
        step += 1
        bar.update(1)
        bar.set_postfix(
            loss=f"{loss.item():.4f}",
            L0=f"{l0_ema:.1f}",
            fvu=f"{fvu_ema:.3f}",
            dead=f"{float(dead.float().mean()):.3f}",
        )
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            _save_checkpoint(
                ckpt_path,
                {
                    "format": CHECKPOINT_FORMAT,
                    "config": cfg.model_dump(),
                    "world": shard.world,
                    "sae": sae.state_dict(),
                    "optimizer": opt.state_dict(),
                    "step": step,
                    "scale": scale,
                    "tokens_since_fired": tokens_since_fired,
                    "buffer": buffer.state_dict(),
                    "data_pass": data_pass,
                    "l0_ema": l0_ema,
                    "fvu_ema": fvu_ema,
                    "rng": _rng_states(),
                },
            )
    bar.close()
    if step < cfg.steps:
        raise UserError(f"the corpus ran out after {step} of {cfg.steps} steps; lower --tokens")
    assert scale is not None  # cfg.steps >= 1, and the first step (or the checkpoint) sets it
    summary = {
        "steps": step,
        "tokens": step * cfg.batch_size,
        "seconds_this_run": round(time.time() - started, 1),
        "final_l0": l0_ema,
        "final_fvu": fvu_ema,
        "dead_fraction_train": float((tokens_since_fired > cfg.dead_after_tokens).float().mean()),
        "input_scale": scale,
        "train_config": cfg.model_dump(),
    }
    if shard.is_writer:
        save_sae(sae, out_dir, input_scale=scale, training=summary)
    return summary


def check_data_parallel(cfg: SAETrainConfig, shard: Shard) -> int:
    """The rows of each step's batch this process takes, once the settings allow splitting it."""
    if shard.world == 1:
        return cfg.batch_size
    if cfg.architecture == "batchtopk":
        raise UserError("batchtopk picks its k x batch activations over the whole batch; train it in one process")
    if cfg.batch_size % shard.world:
        raise UserError(f"the batch size {cfg.batch_size} must divide evenly among {shard.world} processes")
    return cfg.batch_size // shard.world


def check_same_step(step: int, shard: Shard, device: torch.device) -> None:
    steps = all_rows(torch.tensor([step], device=device), shard).tolist()
    if len(set(steps)) > 1:
        raise UserError(
            f"the processes' checkpoints are at different steps {steps} (one was killed while saving); "
            "delete the checkpoint.rank*.pt files to start again"
        )


def every_process_has(ok: bool, shard: Shard, device: torch.device) -> bool:
    """Whether every process has a batch for this step (the stream can run out unevenly)."""
    return count_all(int(ok), shard, device) == shard.world


def _training_batches(
    subject: SubjectModel, hook: str, cfg: SAETrainConfig, buffer: ShufflingBuffer, data_pass: int, shard: Shard
) -> Iterator[tuple[int, torch.Tensor]]:
    """(pass number, shuffled activation batch) from the training split, passing over it again if
    needed; the first pass read here starts where the buffer stopped reading."""
    skip = buffer.windows_consumed
    while True:
        docs = select_split(open_corpus(cfg.corpus), "train")
        stream = stream_activations(
            subject, docs, hook, batch_size=cfg.subject_batch_size, ctx=cfg.context, skip_windows=skip, shard=shard
        )
        produced = False
        for batch in buffer.batches(stream, subject.tokenizer.bos_id):
            produced = True
            yield data_pass, batch
        if not produced and not skip:  # (a resumed pass may have had nothing left to read)
            return
        data_pass, skip = data_pass + 1, 0
