"""SAE training throughput: our TopK training step against a plain PyTorch loop, same process.

Both train a TopK SAE (d_in 512 -> d_sae 4096, k 32, batch 4096, Adam) on the same batches of the
built-in model's MLP activations. The plain loop is what one writes first: dense encoder, dense
top-k mask, dense decoder, autograd for everything. Ours (sae.training.training_step) does the one
dense product the encoder needs and touches only the k active features per token afterwards.
Also reports achieved FLOP/s against a plain matmul of the encoder's shape on this machine.

    python -m evals.bench_sae_training [--steps 20] [--d-sae 4096] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import torch

from sae.autoencoder import SAEConfig, SparseAutoencoder
from sae.corpus import open_corpus, select_split
from sae.streaming import stream_activations
from sae.subject.models import BUILTIN_HOOK, load_subject
from sae.training import SAETrainConfig, training_step


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


class PlainTopK(torch.nn.Module):
    """The straightforward version: every product dense, autograd does the rest."""

    def __init__(self, d_in: int, d_sae: int, k: int) -> None:
        super().__init__()
        self.k = k
        w = torch.randn(d_sae, d_in)
        w /= w.norm(dim=1, keepdim=True)
        self.W_dec = torch.nn.Parameter(w)
        self.W_enc = torch.nn.Parameter(w.t().clone())
        self.b_enc = torch.nn.Parameter(torch.zeros(d_sae))
        self.b_dec = torch.nn.Parameter(torch.zeros(d_in))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = (x - self.b_dec) @ self.W_enc + self.b_enc
        vals, idx = pre.topk(self.k, dim=1)
        f = torch.zeros_like(pre).scatter(1, idx, torch.relu(vals))
        return f @ self.W_dec + self.b_dec


def time_steps(step_fn, batches: list[torch.Tensor], warmup: int = 2) -> float:
    for x in batches[:warmup]:
        step_fn(x)
    start = time.perf_counter()
    for x in batches[warmup:]:
        step_fn(x)
    return (time.perf_counter() - start) / (len(batches) - warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--d-sae", type=int, default=4096)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batches = activation_batches(args.steps + 2, args.batch)
    d_in = batches[0].shape[1]

    plain = PlainTopK(d_in, args.d_sae, args.k)
    plain_opt = torch.optim.Adam(plain.parameters(), lr=1e-3)

    def plain_step(x: torch.Tensor) -> None:
        loss = (plain(x) - x).pow(2).sum(1).mean()
        plain_opt.zero_grad()
        loss.backward()
        plain_opt.step()
        with torch.no_grad():
            plain.W_dec /= plain.W_dec.norm(dim=1, keepdim=True)

    cfg = SAETrainConfig(architecture="topk", d_sae=args.d_sae, k=args.k, batch_size=args.batch, total_tokens=10**9)
    ours = SparseAutoencoder(SAEConfig(architecture="topk", d_in=d_in, d_sae=args.d_sae, k=args.k))
    ours_opt = torch.optim.Adam(ours.parameters(), lr=1e-3)
    no_dead = torch.zeros(args.d_sae, dtype=torch.bool)
    counter = iter(range(10**9))

    def our_step(x: torch.Tensor) -> None:
        training_step(ours, ours_opt, x, no_dead, cfg, 1000 + next(counter))

    w = torch.randn(d_in, args.d_sae)
    matmul_s = time_steps(lambda x: x @ w, batches)
    plain_s = time_steps(plain_step, batches)
    ours_s = time_steps(our_step, batches)

    dense_flops = 2 * args.batch * d_in * args.d_sae  # one [batch, d_in] x [d_in, d_sae] product
    # ours: the dense encoder product + sparse work (decode, its grads, encoder grads): 3 x 2·B·k·d_in
    our_flops = dense_flops + 3 * 2 * args.batch * args.k * d_in
    # plain: forward enc + dec, backward 2 products each: 6 dense products
    plain_flops = 6 * dense_flops
    print(f"torch threads: {torch.get_num_threads()}, batch {args.batch}, {d_in} -> {args.d_sae}, k {args.k}")
    print(f"{'':28}{'s/step':>9}{'tokens/s':>11}{'GFLOP/s':>9}{'vs matmul':>10}")
    matmul_rate = dense_flops / matmul_s
    for name, secs, flops in (("plain matmul (enc shape)", matmul_s, dense_flops),
                              ("plain PyTorch TopK loop", plain_s, plain_flops),
                              ("autointerp training_step", ours_s, our_flops)):
        rate = flops / secs
        print(f"{name:28}{secs:9.3f}{args.batch / secs:11.0f}{rate / 1e9:9.1f}{rate / matmul_rate:10.2f}")
    print(f"speed-up of autointerp over the plain loop: {plain_s / ours_s:.2f}x")
    print(f"our step time / one encoder matmul: {ours_s / matmul_s:.2f} (1.0 would be the floor)")


if __name__ == "__main__":
    main()
