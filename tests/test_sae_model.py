"""SAE architectures: the sparse training backward against dense autograd (float64), AuxK's
definition and dead-column selection, the bf16 encoder's top-k set, the encoders' formulas, sparse vs
dense decoding, and the decoder geometry helpers."""

from __future__ import annotations

import pytest
import torch

from sae.autoencoder import SAEConfig, SparseAutoencoder, SparseCode
from sae.training import SAETrainConfig, dead_topk, relu_l1_loss, topk_loss

D_IN, D_SAE, K, BATCH = 12, 40, 4, 16


def make_sae(architecture: str, seed: int = 0, dtype: torch.dtype = torch.float64) -> SparseAutoencoder:
    """An SAE with every parameter random (biases too), so no gradient term hides behind a zero."""
    torch.manual_seed(seed)
    sae = SparseAutoencoder(SAEConfig(architecture=architecture, d_in=D_IN, d_sae=D_SAE, k=K)).to(dtype)
    with torch.no_grad():
        sae.W_enc.normal_(0, 0.5)
        sae.b_enc.normal_(0, 0.2)
        sae.b_dec.normal_(0, 0.3)
    return sae


def inputs(seed: int = 1, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(BATCH, D_IN, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def dense_reference_grads(sae: SparseAutoencoder, x: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor):
    """The same loss through plain dense autograd: f = pre ⊙ mask, x̂ = f W_dec + b_dec."""
    params = {n: p.detach().clone().requires_grad_(True) for n, p in sae.named_parameters()}
    pre = (x - params["b_dec"]) @ params["W_enc"] + params["b_enc"]
    recon = (pre * mask) @ params["W_dec"] + params["b_dec"]
    loss = (weights * (recon - x).pow(2)).sum()
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in params.items()}


@pytest.mark.parametrize("architecture", ["topk", "batchtopk"])
def test_sparse_backward_equals_dense_autograd(architecture: str) -> None:
    sae = make_sae(architecture)
    x = inputs()
    weights = torch.rand(BATCH, D_IN, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    code, aux = sae.encode_for_training(x)
    assert aux is None
    recon = sae.decode_sparse(code)
    loss = (weights * (recon - x).pow(2)).sum()
    loss.backward()

    mask = torch.zeros(BATCH, D_SAE, dtype=torch.float64)
    mask[code.rows, code.cols] = 1.0
    ref_loss, ref = dense_reference_grads(sae, x, mask, weights)
    torch.testing.assert_close(loss.detach(), ref_loss, rtol=1e-12, atol=1e-12)
    for name, param in sae.named_parameters():
        torch.testing.assert_close(param.grad, ref[name], rtol=1e-10, atol=1e-12, msg=f"gradient of {name}")


def test_extra_selection_shares_the_sparse_backward() -> None:
    """AuxK's second selection: gradients of a loss over both codes match dense autograd."""
    sae = make_sae("topk")
    x = inputs()
    with torch.no_grad():
        pre = sae.preactivations(x)
        rows, cols = sae.select(pre, training=True)
        chosen = torch.zeros_like(pre, dtype=torch.bool)
        chosen[rows, cols] = True
        # the largest remaining pre-activation of every row, like AuxK over non-selected latents
        extra_cols = pre.masked_fill(chosen, -torch.inf).argmax(dim=1)
        extra = (torch.arange(BATCH), extra_cols)
    code, aux = sae.encode_for_training(x, lambda _pre: extra)
    assert aux is not None and torch.equal(aux.cols, extra_cols)
    loss = (sae.decode_sparse(code) - x).pow(2).sum() + 0.3 * (sae.decode_sparse(aux) - x).pow(2).sum()
    loss.backward()

    params = {n: p.detach().clone().requires_grad_(True) for n, p in sae.named_parameters()}
    dense_pre = (x - params["b_dec"]) @ params["W_enc"] + params["b_enc"]
    aux_mask = torch.zeros_like(pre)
    aux_mask[torch.arange(BATCH), extra_cols] = 1.0
    main = (dense_pre * chosen) @ params["W_dec"] + params["b_dec"]
    side = (dense_pre * aux_mask) @ params["W_dec"] + params["b_dec"]
    ((main - x).pow(2).sum() + 0.3 * (side - x).pow(2).sum()).backward()
    for name, param in sae.named_parameters():
        torch.testing.assert_close(param.grad, params[name].grad, rtol=1e-10, atol=1e-12, msg=name)


def test_topk_keeps_the_k_largest_positive_preactivations_per_token() -> None:
    sae = make_sae("topk")
    x = inputs()
    with torch.no_grad():
        sae.b_enc[:] = -3.0  # some rows then have fewer than k positive pre-activations
        pre = sae.preactivations(x)
    vals, idx = pre.topk(K, dim=1)
    expected = torch.zeros_like(pre).scatter(1, idx, vals).clamp_min(0)
    f = sae.encode(x)
    torch.testing.assert_close(f, expected)
    assert ((f > 0).sum(1) <= K).all() and ((f > 0).sum(1) < K).any()


def test_batchtopk_training_and_inference_selection() -> None:
    sae = make_sae("batchtopk")
    x = inputs()
    pre = sae.preactivations(x).detach()
    rows, cols = sae.select(pre, training=True)
    n_keep = K * BATCH
    cutoff = pre.reshape(-1).topk(n_keep).values[-1]
    expected = (pre >= cutoff) & (pre > 0)
    chosen = torch.zeros_like(expected)
    chosen[rows, cols] = True
    assert torch.equal(chosen, expected)
    assert torch.all(rows[1:] >= rows[:-1]), "entries come in row order"
    assert len(set((chosen.sum(1)).tolist())) > 1, "the per-token count varies (only the batch total is fixed)"
    # at inference a single learned threshold replaces the batch
    sae.threshold.fill_(0.7)
    f = sae.encode(x)
    torch.testing.assert_close(f, pre * (pre > 0.7))


def test_jumprelu_applies_each_features_threshold() -> None:
    sae = make_sae("jumprelu")
    assert sae.threshold.shape == (D_SAE,)
    sae.threshold.copy_(torch.linspace(0.0, 1.5, D_SAE, dtype=torch.float64))
    x = inputs()
    pre = sae.preactivations(x).detach()
    f = sae.encode(x)
    torch.testing.assert_close(f, pre * (pre > sae.threshold))
    # a value just above its threshold passes unchanged; just below is cut to 0 (a jump, not a shift)
    above = (pre > sae.threshold) & (pre < sae.threshold + 0.1)
    assert above.any() and torch.equal(f[above], pre[above])


def test_relu_l1_encoder_and_loss() -> None:
    sae = make_sae("relu_l1")
    x = inputs()
    pre = sae.preactivations(x).detach()
    torch.testing.assert_close(sae.encode(x), pre.clamp_min(0))
    loss, code, _ = relu_l1_loss(sae, x, l1=0.25)
    f = pre.clamp_min(0)
    expected = ((f @ sae.W_dec + sae.b_dec - x).pow(2).sum(1).mean() + 0.25 * f.sum(1).mean()).detach()
    torch.testing.assert_close(loss.detach(), expected)
    torch.testing.assert_close(code.to_dense(), f)
    loss.backward()
    assert sae.W_enc.grad is not None and sae.b_enc.grad.abs().sum() > 0


@pytest.mark.parametrize("architecture", ["relu_l1", "topk", "batchtopk", "jumprelu"])
def test_encode_decode_shapes_and_sparse_dense_decoding_agree(architecture: str) -> None:
    sae = make_sae(architecture, dtype=torch.float32)
    if architecture in ("jumprelu", "batchtopk"):
        sae.threshold.fill_(0.1)
    x = torch.randn(2, 3, D_IN)
    f = sae.encode(x)
    assert f.shape == (2, 3, D_SAE)
    out = sae(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, sae.decode(f), atol=1e-5, rtol=1e-5)
    code = sae.encode_sparse(x.reshape(-1, D_IN))
    assert isinstance(code, SparseCode) and code.batch == 6
    torch.testing.assert_close(code.to_dense(), f.reshape(6, D_SAE))


def test_tokens_with_no_active_feature_decode_to_the_bias() -> None:
    """Empty rows, including trailing ones, must not shift other rows' bags."""
    sae = make_sae("topk", dtype=torch.float32)
    x = torch.randn(5, D_IN)
    silent_rows = torch.tensor([1, 4])
    code = sae.encode_sparse(x)
    keep = ~torch.isin(code.rows, silent_rows)
    code = SparseCode(code.rows[keep], code.cols[keep], code.vals[keep], 5, D_SAE)
    out = sae.decode_sparse(code)
    torch.testing.assert_close(out[silent_rows], sae.b_dec.detach().expand(2, -1))
    torch.testing.assert_close(out, sae.decode(code.to_dense()), atol=1e-5, rtol=1e-5)


def test_decoder_geometry_helpers() -> None:
    sae = make_sae("topk")
    with torch.no_grad():
        sae.W_dec.mul_(torch.rand(D_SAE, 1, dtype=torch.float64) * 3 + 0.1)
    sae.normalize_decoder()
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(D_SAE, dtype=torch.float64))
    sae.W_dec.grad = torch.randn(D_SAE, D_IN, dtype=torch.float64)
    sae.remove_parallel_decoder_grad()
    torch.testing.assert_close((sae.W_dec.grad * sae.W_dec).sum(1), torch.zeros(D_SAE, dtype=torch.float64))


def test_dead_column_selection_matches_a_masked_full_topk() -> None:
    pre = torch.randn(BATCH, D_SAE, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    dead = torch.rand(D_SAE, generator=torch.Generator().manual_seed(4)) < 0.3
    for aux_k in (3, int(dead.sum()), 100):
        rows, cols = dead_topk(pre, dead.nonzero().squeeze(1), aux_k)
        vals, idx = pre.masked_fill(~dead, -torch.inf).topk(min(aux_k, int(dead.sum())), dim=1)
        expected = torch.zeros_like(pre, dtype=torch.bool).scatter(1, idx, vals > 0)
        chosen = torch.zeros_like(expected)
        chosen[rows, cols] = True
        assert torch.equal(chosen, expected) and len(rows) == int(expected.sum()), aux_k


def test_auxk_is_gao_et_al_with_no_decoder_bias_in_its_reconstruction() -> None:
    """Loss and every gradient against dense autograd of L = ‖x - x̂‖²/var + α‖W_dec·z_aux - e‖²/‖e‖²;
    the AuxK term alone reaches b_dec only through the encoder's x - b_dec (db_dec = -W_enc·db_enc)."""
    sae = make_sae("topk")
    x = inputs()
    dead = torch.zeros(D_SAE, dtype=torch.bool)
    dead[::3] = True
    alpha = 0.5

    def grads(coefficient: float) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        sae.zero_grad(set_to_none=True)
        cfg = SAETrainConfig(d_sae=D_SAE, k=K, aux_k=5, aux_coefficient=coefficient)
        loss, _, _ = topk_loss(sae, x, dead, cfg)
        loss.backward()
        return {n: p.grad.clone() for n, p in sae.named_parameters()}, loss.detach()

    with_aux, loss = grads(alpha)
    without_aux, _ = grads(0.0)

    params = {n: p.detach().clone().requires_grad_(True) for n, p in sae.named_parameters()}
    pre = (x - params["b_dec"]) @ params["W_enc"] + params["b_enc"]
    top = pre.detach().topk(K, dim=1)
    main_mask = torch.zeros_like(pre).scatter(1, top.indices, (top.values > 0).double())
    aux_top = pre.detach().masked_fill(~dead, -torch.inf).topk(5, dim=1)
    aux_mask = torch.zeros_like(pre).scatter(1, aux_top.indices, (aux_top.values > 0).double())
    recon = (pre * main_mask) @ params["W_dec"] + params["b_dec"]
    error = (x - recon).detach()
    e_hat = (pre * aux_mask) @ params["W_dec"]
    ref = (recon - x).pow(2).sum(1).mean() / (x - x.mean(0)).pow(2).sum(1).mean()
    ref = ref + alpha * (e_hat - error).pow(2).sum(1).mean() / error.pow(2).sum(1).mean()
    ref.backward()
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-12, atol=1e-12)
    for name, param in params.items():
        torch.testing.assert_close(with_aux[name], param.grad, rtol=1e-10, atol=1e-12, msg=name)
    aux_only = {n: with_aux[n] - without_aux[n] for n in with_aux}
    assert aux_only["W_dec"].abs().max() > 1e-6, "AuxK did act"
    torch.testing.assert_close(aux_only["b_dec"], -(sae.W_enc.detach() @ aux_only["b_enc"]), rtol=1e-9, atol=1e-12)


def test_bf16_encoder_product_keeps_the_fp32_topk_set() -> None:
    """Values near each row's k-th are rescored in fp32: the chosen sets then
    match fp32's on nearly every row, where bf16's own top-k misses on many."""
    torch.manual_seed(5)
    d_in, d_sae, k, batch = 128, 1024, 16, 512
    sae = SparseAutoencoder(SAEConfig(architecture="topk", d_in=d_in, d_sae=d_sae, k=k))
    x = torch.randn(batch, d_in)

    def as_mask(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        mask = torch.zeros(batch, d_sae, dtype=torch.bool)
        mask[rows, cols] = True
        return mask

    with torch.no_grad():
        pre = sae.preactivations(x)
        fp32 = as_mask(*sae.select(pre, training=True))
        pre_bf16, rows, cols, vals = sae._topk_bf16(x)
        plain = torch.zeros(batch, d_sae, dtype=torch.bool).scatter(1, pre_bf16.topk(k, dim=1).indices, True)
    torch.testing.assert_close(vals, pre[rows, cols], rtol=2**-7, atol=1e-6)
    assert (as_mask(rows, cols) == fp32).all(1).float().mean() >= 0.99
    assert (plain == fp32).all(1).float().mean() < 0.95
