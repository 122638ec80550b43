"""TopK SAE training throughput against fair baselines, in one process, with AuxK off and on.

Every contender trains a TopK SAE (d_in 512 -> d_sae 4096, k 32, batch 4096, fused Adam) on the
same batches of the built-in model's MLP activations, with a fixed set of columns marked dead
(0%: AuxK off; 1% and 10%: AuxK on, aux_k 256, as Gao et al.). Steps of all contenders are
interleaved batch by batch, so a busy machine slows them alike. The contenders:

    embedding_bag autograd   what one writes with care in a few lines: dense encoder product and
                             top-k, `F.embedding_bag` decoder, AuxK by a masked top-k, autograd for
                             the rest, and the same extras as ours (decoder-parallel gradient
                             removal, gradient clipping, unit-norm decoder rows)
    SAELens TopKTrainingSAE  `training_forward_pass` + backward + Adam      (pip install .[bench])
    sparsify SparseCoder     EleutherAI's forward (its embedding_bag or Triton decoder) + AuxK +
                             backward + its decoder extras + Adam            (pip install .[bench])
    autointerp               sae.training.training_step, fp32, and with the bf16 encoder product
                             where the hardware multiplies bf16 natively

Each step is also given as a multiple of one fp32 encoder product [batch, d_in] x [d_in, d_sae],
timed in the same rounds.

    python -m evals.bench_sae_training [--steps 6] [--dead 0,0.01,0.1] [--device cpu] [--threads N]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from sae.autoencoder import SAEConfig, SparseAutoencoder
from sae.corpus import open_corpus, select_split
from sae.streaming import stream_activations
from sae.subject.models import BUILTIN_HOOK, load_subject
from sae.training import (
    SAETrainConfig,
    make_optimizer,
    training_step,
    uses_bf16_encoder,
)

Step = Callable[[torch.Tensor], object]
AUX_K, AUX_COEFFICIENT = 256, 1 / 32
GEMM = "one fp32 encoder product"


def activation_batches(n_batches: int, batch: int) -> list[torch.Tensor]:
    subject = load_subject("builtin")
    rows, need = [], n_batches * batch
    for item in stream_activations(subject, select_split(open_corpus("stdlib"), "train"), BUILTIN_HOOK):
        keep = item.tokens.reshape(-1) != subject.tokenizer.bos_id
        rows.append(item.activations.reshape(-1, item.activations.shape[-1])[keep])
        if sum(len(r) for r in rows) >= need:
            break
    x = torch.cat(rows)[:need]
    x = x / x.pow(2).sum(1).mean().sqrt()
    return list(x.split(batch))


class EmbeddingBagTopK(torch.nn.Module):
    """The autograd baseline: dense encoder and top-k, sparse `embedding_bag` decoding."""

    def __init__(self, d_in: int, d_sae: int, k: int) -> None:
        super().__init__()
        self.k = k
        w = torch.randn(d_sae, d_in)
        w /= w.norm(dim=1, keepdim=True)
        self.W_dec = torch.nn.Parameter(w)
        self.W_enc = torch.nn.Parameter(w.t().clone())
        self.b_enc = torch.nn.Parameter(torch.zeros(d_sae))
        self.b_dec = torch.nn.Parameter(torch.zeros(d_in))

    def loss(self, x: torch.Tensor, dead: torch.Tensor) -> torch.Tensor:
        pre = torch.addmm(self.b_enc, x - self.b_dec, self.W_enc)
        vals, idx = pre.topk(self.k, dim=1, sorted=False)
        recon = F.embedding_bag(idx, self.W_dec, mode="sum", per_sample_weights=vals.relu()) + self.b_dec
        loss = (recon - x).pow(2).sum(1).mean() / (x - x.mean(0)).pow(2).sum(1).mean()
        n_dead = int(dead.sum())
        if n_dead:
            aux_vals, aux_idx = pre.masked_fill(~dead, -torch.inf).topk(min(AUX_K, n_dead), dim=1, sorted=False)
            e_hat = F.embedding_bag(aux_idx, self.W_dec, mode="sum", per_sample_weights=aux_vals.relu())
            error = (x - recon).detach()
            loss = loss + AUX_COEFFICIENT * (e_hat - error).pow(2).sum(1).mean() / error.pow(2).sum(1).mean()
        return loss


def embedding_bag_step(d_in: int, d_sae: int, k: int, dead: torch.Tensor, device: str) -> Step:
    model = EmbeddingBagTopK(d_in, d_sae, k).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)

    def step(x: torch.Tensor) -> None:
        loss = model.loss(x, dead)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            grad = model.W_dec.grad
            assert grad is not None  # loss.backward() has just filled it
            grad -= (grad * model.W_dec).sum(1, keepdim=True) * model.W_dec
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            model.W_dec.div_(model.W_dec.norm(dim=1, keepdim=True))

    return step


def our_step(d_in: int, d_sae: int, k: int, dead: torch.Tensor, device: str, bf16: bool) -> Step:
    cfg = SAETrainConfig(d_sae=d_sae, k=k, aux_k=AUX_K, aux_coefficient=AUX_COEFFICIENT, total_tokens=10**12)
    sae = SparseAutoencoder(SAEConfig(architecture="topk", d_in=d_in, d_sae=d_sae, k=k)).to(device)
    opt = make_optimizer(sae, cfg)
    counter = iter(range(1000, 10**9))  # past warm-up, before decay: the full learning rate
    return lambda x: training_step(sae, opt, x, dead, cfg, next(counter), bf16)


def saelens_step(d_in: int, d_sae: int, k: int, dead: torch.Tensor, device: str) -> Step | str:
    try:
        import sae_lens
        from sae_lens.saes.sae import TrainStepInput
        from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
    except ImportError:
        return "sae-lens is not installed (pip install -e .[bench])"
    cfg = TopKTrainingSAEConfig(
        d_in=d_in, d_sae=d_sae, k=k, aux_loss_coefficient=AUX_COEFFICIENT, dtype="float32", device=device
    )
    model = TopKTrainingSAE(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    counter = iter(range(10**9))

    def step(x: torch.Tensor) -> None:
        out = model.training_forward_pass(
            TrainStepInput(
                sae_in=x,
                coefficients={},
                dead_neuron_mask=dead,
                n_training_steps=next(counter),
                is_logging_step=False,
            )
        )
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()

    step.__name__ = f"SAELens {sae_lens.__version__} TopKTrainingSAE"
    return step


def sparsify_step(d_in: int, d_sae: int, k: int, dead: torch.Tensor, device: str) -> Step | str:
    try:
        from importlib.metadata import version

        from sparsify import SparseCoder, SparseCoderConfig
    except ImportError:
        return "eai-sparsify is not installed (pip install -e .[bench])"
    model = SparseCoder(d_in, SparseCoderConfig(num_latents=d_sae, k=k), device=device, dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)

    def step(x: torch.Tensor) -> None:
        out = model(x, dead_mask=dead if dead.any() else None)
        loss = out.fvu + AUX_COEFFICIENT * out.auxk_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        model.remove_gradient_parallel_to_decoder_directions()
        opt.step()
        model.set_decoder_norm_to_unit_norm()

    step.__name__ = f"sparsify {version('eai-sparsify')} SparseCoder"
    return step


def time_interleaved(steps: dict[str, Step], batches: list[torch.Tensor], warmup: int = 2) -> dict[str, float]:
    """Seconds per step of each contender, taking turns on every batch."""
    spent = dict.fromkeys(steps, 0.0)
    for i, x in enumerate(batches):
        for name, step in steps.items():
            _sync(x)
            start = time.perf_counter()
            step(x)
            _sync(x)
            if i >= warmup:
                spent[name] += time.perf_counter() - start
    return {name: secs / (len(batches) - warmup) for name, secs in spent.items()}


def _sync(x: torch.Tensor) -> None:
    if x.device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6, help="timed steps per contender and dead fraction")
    parser.add_argument("--dead", default="0,0.01,0.1", help="fractions of latents marked dead (0: AuxK off)")
    parser.add_argument("--d-sae", type=int, default=4096)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batches = [x.to(args.device) for x in activation_batches(args.steps + 2, args.batch)]
    d_in, d_sae, k, device = batches[0].shape[1], args.d_sae, args.k, args.device
    bf16 = uses_bf16_encoder(SAETrainConfig(encoder_precision="auto"), torch.device(device))

    w = torch.randn(d_in, d_sae, device=device)
    print(
        f"{device}, torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}, "
        f"{d_in} -> {d_sae}, k {k}, aux_k {AUX_K}"
    )
    if not bf16:
        print("bf16 encoder product: not used here (no AMX/AVX512-BF16 CPU or bf16 GPU)")
    for fraction in (float(f) for f in args.dead.split(",")):
        dead = torch.zeros(d_sae, dtype=torch.bool, device=device)
        dead[torch.randperm(d_sae, generator=torch.Generator().manual_seed(1))[: round(fraction * d_sae)]] = True
        contenders: dict[str, Step] = {
            GEMM: lambda x: x @ w,
            "one bf16 encoder product": lambda x: x.bfloat16() @ w.bfloat16(),
            "embedding_bag autograd": embedding_bag_step(d_in, d_sae, k, dead, device),
        }
        for make in (saelens_step, sparsify_step):
            made = make(d_in, d_sae, k, dead, device)
            if isinstance(made, str):
                print(f"skipped: {made}")
            else:
                contenders[made.__name__] = made
        contenders["autointerp fp32"] = our_step(d_in, d_sae, k, dead, device, bf16=False)
        if bf16:
            contenders["autointerp bf16 encoder"] = our_step(d_in, d_sae, k, dead, device, bf16=True)
        secs = time_interleaved(contenders, batches)
        best = min(v for n, v in secs.items() if n.startswith("autointerp"))
        print(f"\ndead {fraction:.0%} ({'AuxK on' if fraction else 'AuxK off'})")
        print(f"{'':34}{'s/step':>8}{'tokens/s':>10}{'x fp32 GEMM':>13}{'ours faster':>13}")
        for name, s in secs.items():
            print(f"{name:34}{s:8.3f}{args.batch / s:10.0f}{s / secs[GEMM]:13.2f}{s / best:12.2f}x")


if __name__ == "__main__":
    main()
