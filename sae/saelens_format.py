"""Saving and loading SAEs in SAELens's folder layout, so public SAEs load here and ours load there.

    FOLDER/cfg.json                  architecture, d_in, d_sae, k, metadata{model_name, hook_name, ...}
    FOLDER/sae_weights.safetensors   W_enc [d_in, d_sae], W_dec [d_sae, d_in], b_enc [d_sae], b_dec [d_in]
                                     (+ threshold [d_sae] for jumprelu; a batchtopk SAE is saved as
                                     the jumprelu SAE with every threshold at its learned one, as SAELens does)

Both the current cfg.json (a `metadata` block) and the older flat one (`model_name`, `hook_name`,
`activation_fn_str` = "topk" with `activation_fn_kwargs.k`) are read. The training-time input scale
is folded into the weights on save: an SAE trained on s·x is saved as one that reads x.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from sae.autoencoder import SAEConfig, SparseAutoencoder
from sae.errors import UserError, describe_validation_error
from sae.files import read_json_object

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
# SAELens has no inference class for batchtopk: it saves one as a jumprelu SAE whose thresholds all
# equal the learned batch threshold, which is the same function. We do the same so SAELens loads ours.
_ARCH_TO_SAELENS = {"relu_l1": "standard", "topk": "topk", "batchtopk": "jumprelu", "jumprelu": "jumprelu"}
_SAELENS_TO_ARCH = {"standard": "relu_l1", "topk": "topk", "batchtopk": "batchtopk", "jumprelu": "jumprelu"}


def folded_weights(sae: SparseAutoencoder, input_scale: float) -> dict[str, torch.Tensor]:
    """Weights for raw inputs x from an SAE trained on s·x.

    (s·x - b_dec) W_enc = (x - b_dec/s)(s W_enc), and s·x̂ = f W_dec + b_dec gives x̂ = f (W_dec/s) + b_dec/s.
    Feature activations f are unchanged, so thresholds are too.
    """
    s = input_scale
    weights = {
        "W_enc": sae.W_enc.detach() * s,
        "b_enc": sae.b_enc.detach().clone(),
        "W_dec": sae.W_dec.detach() / s,
        "b_dec": sae.b_dec.detach() / s,
    }
    if sae.cfg.architecture in ("jumprelu", "batchtopk"):
        weights["threshold"] = sae.threshold.detach().expand(sae.cfg.d_sae).clone()
    return {k: v.float().contiguous().cpu() for k, v in weights.items()}


def save_sae(sae: SparseAutoencoder, folder: Path, input_scale: float = 1.0, training: dict | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = sae.cfg
    meta = {
        "model_name": cfg.model_name,
        "hook_name": cfg.hook_name,
        "context_size": cfg.context_size,
        "dataset_path": cfg.dataset_path,
        "prepend_bos": True,
        "sae_lens_training_version": None,
        # The cfg.json layout this file follows (SAELens reads files without it as pre-6.0 flat
        # configs and drops the metadata); "trained_by" says who actually wrote it.
        "sae_lens_version": "6.0.0",
        "trained_by": "autointerp",
    }
    cfg_json = {
        "architecture": _ARCH_TO_SAELENS[cfg.architecture],
        "d_in": cfg.d_in,
        "d_sae": cfg.d_sae,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": meta,
    }
    if cfg.architecture == "topk":
        cfg_json["k"] = cfg.k
    tmp = folder / (WEIGHTS_FILE + ".tmp")
    save_file(folded_weights(sae, input_scale), str(tmp))
    tmp.replace(folder / WEIGHTS_FILE)
    (folder / CFG_FILE).write_text(json.dumps(cfg_json, indent=2))
    if training is not None:
        (folder / "training.json").write_text(json.dumps(training, indent=2))


def _read_config(cfg_json: dict, folder: Path) -> SAEConfig:
    meta = cfg_json.get("metadata") or {}
    arch_name = cfg_json.get("architecture", "standard")
    if cfg_json.get("activation_fn_str") == "topk":  # older flat layout
        arch_name = "topk"
    if arch_name not in _SAELENS_TO_ARCH:
        raise UserError(f"{folder}: architecture {arch_name!r} is not supported (standard, topk, batchtopk, jumprelu)")
    k = cfg_json.get("k", (cfg_json.get("activation_fn_kwargs") or {}).get("k"))
    if k is None:
        k = 32  # unused by standard and jumprelu SAEs; a topk cfg.json always names its k
    normalize = cfg_json.get("normalize_activations")
    if normalize not in (None, False, "none"):  # older configs wrote True for expected_average_only_in
        raise UserError(
            f"{folder}: normalize_activations {normalize!r} rescales inputs in a way this loader cannot "
            "reproduce; fold the scaling into the weights first"
        )
    try:
        return SAEConfig(
            architecture=_SAELENS_TO_ARCH[arch_name],
            d_in=cfg_json["d_in"],
            d_sae=cfg_json["d_sae"],
            k=k,
            model_name=str(meta.get("model_name", cfg_json.get("model_name", "unknown"))),
            hook_name=str(meta.get("hook_name", cfg_json.get("hook_name", cfg_json.get("hook_point", "unknown")))),
            context_size=meta.get("context_size", cfg_json.get("context_size")) or 64,
            dataset_path=str(meta.get("dataset_path", cfg_json.get("dataset_path", ""))),
        )
    except KeyError as err:
        raise UserError(f"{folder / CFG_FILE} lacks the field {err.args[0]!r}") from None
    except ValidationError as err:  # "d_in": "abc", k > d_sae, ...
        raise UserError(f"{folder / CFG_FILE}: {describe_validation_error(err)}") from None


def load_sae(folder: Path, expected_d_in: int | None = None, device: str = "cpu") -> SparseAutoencoder:
    """An SAE from a SAELens-layout folder; `expected_d_in` is the hook's width, checked up front."""
    folder = Path(folder)
    if not (folder / CFG_FILE).exists() or not (folder / WEIGHTS_FILE).exists():
        raise UserError(f"{folder} is not a SAELens-layout SAE folder (needs {CFG_FILE} and {WEIGHTS_FILE})")
    cfg_json = read_json_object(folder / CFG_FILE)
    cfg = _read_config(cfg_json, folder)
    if expected_d_in is not None and cfg.d_in != expected_d_in:
        raise UserError(
            f"SAE in {folder} reads {cfg.d_in}-wide activations but hook {cfg.hook_name!r} "
            f"of the subject model is {expected_d_in} wide"
        )
    try:
        weights = load_file(str(folder / WEIGHTS_FILE))
    except (SafetensorError, OSError) as err:  # truncated, empty or not safetensors at all
        raise UserError(f"{folder / WEIGHTS_FILE} is not a readable safetensors file ({err})") from None
    expected = {
        "W_enc": (cfg.d_in, cfg.d_sae),
        "W_dec": (cfg.d_sae, cfg.d_in),
        "b_enc": (cfg.d_sae,),
        "b_dec": (cfg.d_in,),
    }
    for name, shape in expected.items():
        if name not in weights:
            raise UserError(f"{folder / WEIGHTS_FILE} has no tensor {name!r}")
        if tuple(weights[name].shape) != shape:
            raise UserError(
                f"{folder / WEIGHTS_FILE}: {name} has shape {tuple(weights[name].shape)}, cfg.json implies {shape}"
            )
    weights = _fold_input_options(weights, cfg_json)
    sae = SparseAutoencoder(cfg)
    with torch.no_grad():
        for name in expected:
            getattr(sae, name).copy_(weights[name].float())
        if "threshold" in weights:
            sae.threshold = weights["threshold"].float().reshape(sae.threshold.shape).clone()
        elif cfg.architecture == "jumprelu":
            raise UserError(f"{folder / WEIGHTS_FILE}: a jumprelu SAE needs a 'threshold' tensor")
    return sae.to(device).eval()


def _fold_input_options(weights: dict[str, torch.Tensor], cfg_json: dict) -> dict[str, torch.Tensor]:
    """Rewrite SAELens's optional encoder variants into our one formula, with the same features.

    apply_b_dec_to_input false:   x W_enc + b_enc = (x - b_dec) W_enc + (b_enc + b_dec W_enc)
    rescale_acts_by_decoder_norm: pre·‖W_dec‖ in, f/‖W_dec‖ out = W_enc, b_enc scaled by the norms, W_dec divided
    """
    w = {name: t.float() for name, t in weights.items()}
    if cfg_json.get("apply_b_dec_to_input") is False:
        w["b_enc"] = w["b_enc"] + w["b_dec"] @ w["W_enc"]
    if cfg_json.get("rescale_acts_by_decoder_norm"):
        norms = w["W_dec"].norm(dim=1)
        w["W_enc"], w["b_enc"], w["W_dec"] = w["W_enc"] * norms, w["b_enc"] * norms, w["W_dec"] / norms[:, None]
    return w
