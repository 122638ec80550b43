"""SAELens folder layout: our save -> load round trip (with the input scale folded in), folders written
here in SAELens's own layouts (v6 `metadata` block and the older flat cfg.json) encoding exactly as
SAELens's formulas say, and clear errors for broken folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from sae.autoencoder import SAEConfig, SparseAutoencoder
from sae.errors import UserError
from sae.saelens_format import CFG_FILE, WEIGHTS_FILE, load_sae, save_sae

D_IN, D_SAE, K = 24, 64, 6
# the architectures SAELens (v6) registers an inference class for; a folder we write must name one
SAELENS_INFERENCE_ARCHITECTURES = {"standard", "gated", "topk", "jumprelu"}


def raw_inputs(n: int = 50, seed: int = 0) -> torch.Tensor:
    return 3.0 * torch.randn(n, D_IN, generator=torch.Generator().manual_seed(seed)) + 0.5


def random_weights(seed: int = 1, unit_decoder: bool = False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    w_dec = torch.randn(D_SAE, D_IN, generator=g)
    if unit_decoder:
        w_dec /= w_dec.norm(dim=1, keepdim=True)
    else:
        w_dec *= torch.rand(D_SAE, 1, generator=g) * 2 + 0.2
    return {
        "W_enc": 0.3 * torch.randn(D_IN, D_SAE, generator=g),
        "W_dec": w_dec,
        "b_enc": 0.5 * torch.randn(D_SAE, generator=g),
        "b_dec": torch.randn(D_IN, generator=g),
    }


def write_folder(folder: Path, cfg: dict, weights: dict[str, torch.Tensor]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CFG_FILE).write_text(json.dumps(cfg))
    save_file({k: v.contiguous() for k, v in weights.items()}, str(folder / WEIGHTS_FILE))
    return folder


def v6_cfg(architecture: str, **extra) -> dict:
    return {
        "architecture": architecture,
        "d_in": D_IN,
        "d_sae": D_SAE,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": {
            "model_name": "gpt2-small",
            "hook_name": "blocks.3.hook_mlp_out",
            "context_size": 128,
            "dataset_path": "monology/pile-uncopyrighted",
            "prepend_bos": True,
            "sae_lens_version": "6.5.0",
        },
        **extra,
    }


# --- SAELens's formulas, written out independently --------------------------------------------------


def saelens_pre(x: torch.Tensor, w: dict, apply_b_dec_to_input: bool = True) -> torch.Tensor:
    sae_in = x - w["b_dec"] if apply_b_dec_to_input else x
    return sae_in @ w["W_enc"] + w["b_enc"]


def saelens_topk(pre: torch.Tensor, k: int) -> torch.Tensor:
    values, idx = pre.topk(k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, idx, values.relu())


def saelens_decode(f: torch.Tensor, w: dict) -> torch.Tensor:
    return f @ w["W_dec"] + w["b_dec"]


def assert_encodes(sae: SparseAutoencoder, x: torch.Tensor, expected_f: torch.Tensor, expected_out: torch.Tensor):
    torch.testing.assert_close(sae.encode(x), expected_f, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sae(x), expected_out, atol=1e-4, rtol=1e-5)


# --- our own folders ----------------------------------------------------------------------------------


def our_sae(architecture: str) -> SparseAutoencoder:
    torch.manual_seed(2)
    cfg = SAEConfig(
        architecture=architecture,
        d_in=D_IN,
        d_sae=D_SAE,
        k=K,
        model_name="builtin",
        hook_name="blocks.0.mlp.act",
        context_size=64,
        dataset_path="stdlib",
    )
    sae = SparseAutoencoder(cfg)
    with torch.no_grad():
        sae.W_enc.normal_(0, 0.3)
        sae.b_enc.normal_(0, 0.3)
        sae.b_dec.normal_(0, 0.5)
        if architecture == "jumprelu":
            sae.threshold.uniform_(0.0, 0.8)
        if architecture == "batchtopk":
            sae.threshold.fill_(0.35)
    return sae


@pytest.mark.parametrize("architecture", ["relu_l1", "topk", "batchtopk", "jumprelu"])
def test_round_trip_reads_raw_activations(architecture: str, tmp_path: Path) -> None:
    """An SAE trained on s·x, saved with input_scale s, encodes raw x to the same features."""
    sae = our_sae(architecture)
    scale = 0.37
    save_sae(sae, tmp_path, input_scale=scale, training={"steps": 3})
    cfg_json = json.loads((tmp_path / CFG_FILE).read_text())
    assert cfg_json["architecture"] in SAELENS_INFERENCE_ARCHITECTURES, "SAELens must be able to load it"
    loaded = load_sae(tmp_path, expected_d_in=D_IN)
    x = raw_inputs()
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(x), sae.encode(scale * x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(loaded(x), sae(scale * x) / scale, atol=1e-4, rtol=1e-5)
    assert (loaded.encode(x) > 0).any() and not (loaded.encode(x) > 0).all()
    assert loaded.cfg.hook_name == "blocks.0.mlp.act" and loaded.cfg.model_name == "builtin"
    assert loaded.cfg.context_size == 64 and loaded.cfg.dataset_path == "stdlib"
    if architecture == "topk":
        assert loaded.cfg.k == K and cfg_json["k"] == K
    assert json.loads((tmp_path / "training.json").read_text()) == {"steps": 3}
    assert set(load_file(str(tmp_path / WEIGHTS_FILE))) >= {"W_enc", "W_dec", "b_enc", "b_dec"}


def test_saving_twice_overwrites_cleanly(tmp_path: Path) -> None:
    save_sae(our_sae("topk"), tmp_path, input_scale=2.0)
    second = our_sae("relu_l1")
    save_sae(second, tmp_path)
    loaded = load_sae(tmp_path)
    assert loaded.cfg.architecture == "relu_l1"
    torch.testing.assert_close(loaded.W_enc, second.W_enc.detach())
    assert not list(tmp_path.glob("*.tmp"))


# --- folders in SAELens's layouts ------------------------------------------------------------------


def test_v6_standard_folder(tmp_path: Path) -> None:
    w = random_weights()
    sae = load_sae(write_folder(tmp_path, v6_cfg("standard"), w), expected_d_in=D_IN)
    x = raw_inputs()
    f = saelens_pre(x, w).relu()
    assert_encodes(sae, x, f, saelens_decode(f, w))
    assert sae.cfg.architecture == "relu_l1"
    assert (sae.cfg.model_name, sae.cfg.hook_name, sae.cfg.context_size) == ("gpt2-small", "blocks.3.hook_mlp_out", 128)
    assert sae.cfg.dataset_path == "monology/pile-uncopyrighted"


def test_v6_topk_folder(tmp_path: Path) -> None:
    w = random_weights()
    sae = load_sae(write_folder(tmp_path, v6_cfg("topk", k=5), w))
    x = raw_inputs()
    f = saelens_topk(saelens_pre(x, w), 5)
    assert_encodes(sae, x, f, saelens_decode(f, w))
    assert sae.cfg.k == 5


def test_v6_jumprelu_folder(tmp_path: Path) -> None:
    w = random_weights()
    # thresholds around the pre-activations' range, a few negative: SAELens applies ReLU first
    w["threshold"] = torch.linspace(-0.5, 1.5, D_SAE)
    sae = load_sae(write_folder(tmp_path, v6_cfg("jumprelu"), w))
    x = raw_inputs()
    pre = saelens_pre(x, w)
    f = pre.relu() * (pre > w["threshold"])
    assert_encodes(sae, x, f, saelens_decode(f, w))
    assert (f > 0).any() and ((pre > 0) & (pre <= w["threshold"])).any(), "the thresholds cut something"


def test_legacy_flat_topk_folder(tmp_path: Path) -> None:
    w = random_weights()
    cfg = {
        "d_in": D_IN,
        "d_sae": D_SAE,
        "dtype": "float32",
        "device": "cpu",
        "model_name": "pythia-70m-deduped",
        "hook_name": "blocks.3.hook_resid_post",
        "hook_layer": 3,
        "context_size": 1024,
        "dataset_path": "EleutherAI/the_pile_deduplicated",
        "activation_fn_str": "topk",
        "activation_fn_kwargs": {"k": 3},
        "apply_b_dec_to_input": True,
        "sae_lens_training_version": "3.13.0",
    }
    sae = load_sae(write_folder(tmp_path, cfg, w), expected_d_in=D_IN)
    x = raw_inputs()
    f = saelens_topk(saelens_pre(x, w), 3)
    assert_encodes(sae, x, f, saelens_decode(f, w))
    assert sae.cfg.architecture == "topk" and sae.cfg.k == 3
    assert (sae.cfg.model_name, sae.cfg.hook_name, sae.cfg.context_size) == (
        "pythia-70m-deduped",
        "blocks.3.hook_resid_post",
        1024,
    )


def test_legacy_flat_relu_folder_with_hook_point(tmp_path: Path) -> None:
    """The oldest configs name the hook `hook_point` and have no `architecture`: a ReLU SAE."""
    w = random_weights()
    cfg = {
        "d_in": D_IN,
        "d_sae": D_SAE,
        "model_name": "gpt2-small",
        "hook_point": "blocks.8.hook_resid_pre",
        "hook_point_layer": 8,
        "context_size": 128,
        "activation_fn_str": "relu",
    }
    sae = load_sae(write_folder(tmp_path, cfg, w))
    x = raw_inputs()
    f = saelens_pre(x, w).relu()
    assert_encodes(sae, x, f, saelens_decode(f, w))
    assert sae.cfg.architecture == "relu_l1" and sae.cfg.hook_name == "blocks.8.hook_resid_pre"


def test_b_dec_not_applied_to_input(tmp_path: Path) -> None:
    w = random_weights()
    sae = load_sae(write_folder(tmp_path, v6_cfg("standard", apply_b_dec_to_input=False), w))
    x = raw_inputs()
    f = saelens_pre(x, w, apply_b_dec_to_input=False).relu()
    assert_encodes(sae, x, f, saelens_decode(f, w))


def test_topk_rescaled_by_decoder_norm(tmp_path: Path) -> None:
    w = random_weights()
    sae = load_sae(write_folder(tmp_path, v6_cfg("topk", k=4, rescale_acts_by_decoder_norm=True), w))
    x = raw_inputs()
    norms = w["W_dec"].norm(dim=-1)
    f = saelens_topk(saelens_pre(x, w) * norms, 4)
    assert_encodes(sae, x, f, saelens_decode(f / norms, w))


@pytest.mark.parametrize("normalize", ["expected_average_only_in", "constant_norm_rescale", "layer_norm"])
def test_input_normalisation_we_cannot_reproduce_is_refused(normalize: str, tmp_path: Path) -> None:
    write_folder(tmp_path, v6_cfg("standard", normalize_activations=normalize), random_weights())
    with pytest.raises(UserError, match=normalize):
        load_sae(tmp_path)


# --- errors -------------------------------------------------------------------------------------------


def test_width_mismatch_names_both_widths(tmp_path: Path) -> None:
    write_folder(tmp_path, v6_cfg("standard"), random_weights())
    with pytest.raises(UserError, match=rf"reads {D_IN}-wide .* is 512 wide"):
        load_sae(tmp_path, expected_d_in=512)


def test_missing_tensor_wrong_shape_and_missing_threshold(tmp_path: Path) -> None:
    w = random_weights()
    write_folder(tmp_path / "missing", v6_cfg("standard"), {k: v for k, v in w.items() if k != "b_enc"})
    with pytest.raises(UserError, match="has no tensor 'b_enc'"):
        load_sae(tmp_path / "missing")
    write_folder(tmp_path / "shape", v6_cfg("standard"), {**w, "W_dec": w["W_dec"][:, :-1]})
    with pytest.raises(UserError, match=r"W_dec has shape \(64, 23\), cfg.json implies \(64, 24\)"):
        load_sae(tmp_path / "shape")
    write_folder(tmp_path / "jump", v6_cfg("jumprelu"), w)
    with pytest.raises(UserError, match="needs a 'threshold' tensor"):
        load_sae(tmp_path / "jump")


def test_broken_config_files(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "bad_json", v6_cfg("standard"), random_weights())
    (folder / CFG_FILE).write_text('{"architecture": "standard", "d_in": 24,')
    with pytest.raises(UserError, match="not valid JSON"):
        load_sae(folder)
    cfg = v6_cfg("standard")
    del cfg["d_sae"]
    write_folder(tmp_path / "no_d_sae", cfg, random_weights())
    with pytest.raises(UserError, match="lacks the field 'd_sae'"):
        load_sae(tmp_path / "no_d_sae")
    write_folder(tmp_path / "gated", v6_cfg("gated"), random_weights())
    with pytest.raises(UserError, match="'gated' is not supported"):
        load_sae(tmp_path / "gated")
    with pytest.raises(UserError, match="not a SAELens-layout SAE folder"):
        load_sae(tmp_path / "nowhere")
    (tmp_path / "cfg_only").mkdir()
    (tmp_path / "cfg_only" / CFG_FILE).write_text(json.dumps(v6_cfg("standard")))
    with pytest.raises(UserError, match="needs cfg.json and sae_weights.safetensors"):
        load_sae(tmp_path / "cfg_only")
