"""Our TopK training step against SAELens's (`TopKTrainingSAE.training_forward_pass` + Adam), on
the same batches of the built-in model's MLP activations, in one process. Needs `sae-lens`
installed beside autointerp (it is not a dependency); prints a notice and exits otherwise.

    python -m evals.bench_vs_saelens [--steps 12]
"""

from __future__ import annotations

import argparse

import torch

from .bench_sae_training import activation_batches, time_steps
from sae.autoencoder import SAEConfig, SparseAutoencoder
from sae.training import SAETrainConfig, training_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--d-sae", type=int, default=4096)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--batch", type=int, default=4096)
    args = parser.parse_args()
    try:
        import sae_lens
        from sae_lens.saes.sae import TrainStepInput
        from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
    except ImportError:
        print("sae-lens is not installed: pip install sae-lens (in a separate venv) to run this comparison")
        return
    torch.manual_seed(0)
    batches = activation_batches(args.steps + 2, args.batch)
    d_in = batches[0].shape[1]
    no_dead = torch.zeros(args.d_sae, dtype=torch.bool)

    rows = []
    for sparse in (False, True):
        lens_cfg = TopKTrainingSAEConfig(
            d_in=d_in, d_sae=args.d_sae, k=args.k, dtype="float32", device="cpu", use_sparse_activations=sparse
        )
        lens = TopKTrainingSAE(lens_cfg)
        lens_opt = torch.optim.Adam(lens.parameters(), lr=1e-3)
        counter = iter(range(10**9))

        def lens_step(x: torch.Tensor) -> None:
            out = lens.training_forward_pass(
                TrainStepInput(sae_in=x, coefficients={}, dead_neuron_mask=no_dead,
                               n_training_steps=next(counter), is_logging_step=False)
            )
            lens_opt.zero_grad()
            out.loss.backward()
            lens_opt.step()

        name = f"SAELens {sae_lens.__version__} TopK{' (sparse acts)' if sparse else ''}"
        try:
            rows.append((name, time_steps(lens_step, batches)))
        except (NotImplementedError, RuntimeError) as err:  # its sparse path lacks CPU kernels
            print(f"{name}: fails here ({type(err).__name__}: {str(err).splitlines()[0][:90]})")

    cfg = SAETrainConfig(architecture="topk", d_sae=args.d_sae, k=args.k, batch_size=args.batch, total_tokens=10**9)
    ours = SparseAutoencoder(SAEConfig(architecture="topk", d_in=d_in, d_sae=args.d_sae, k=args.k))
    ours_opt = torch.optim.Adam(ours.parameters(), lr=1e-3)
    counter = iter(range(10**9))
    rows.append(("autointerp training_step", time_steps(
        lambda x: training_step(ours, ours_opt, x, no_dead, cfg, 1000 + next(counter)), batches)))

    ours_s = rows[-1][1]
    print(f"torch threads {torch.get_num_threads()}, batch {args.batch}, {d_in} -> {args.d_sae}, k {args.k}")
    print(f"{'':40}{'s/step':>9}{'tokens/s':>10}{'time vs ours':>14}")
    for name, secs in rows:
        print(f"{name:40}{secs:9.3f}{args.batch / secs:10.0f}{secs / ours_s:13.2f}x")


if __name__ == "__main__":
    main()
