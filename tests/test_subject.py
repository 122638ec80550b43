"""Subject models: hook activations against a forward pass written out from the weights, splicing a
replacement in with `run_with_hook`, hook-path errors, and a tiny random GPT-2 from a local folder."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from sae.corpus import Document, open_corpus, select_split
from sae.errors import UserError
from sae.logit_effects import logit_effects
from sae.streaming import stream_activations, token_batches
from sae.subject.models import BUILTIN_HOOK, SubjectModel, load_builtin, load_subject
from tests.conftest import hf_texts

GPT2_HOOK = "transformer.h.0.mlp.act"


@pytest.fixture(scope="module")
def tokens(subject: SubjectModel) -> torch.Tensor:
    """Four real 64-token windows of held-out text."""
    docs = select_split(open_corpus("stdlib"), "heldout")
    _, batch = next(token_batches(subject, docs, batch_size=4))
    return batch


def _layer_norm(x: torch.Tensor, ln: torch.nn.LayerNorm) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = (x - mean).pow(2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias


def _manual_forward(model, tokens: torch.Tensor, neuron_delta: torch.Tensor | None = None):
    """(MLP neuron activations, logits) of the one-layer built-in model, from its weights alone."""
    block = model.blocks[0]
    b, s = tokens.shape
    d = model.cfg.d_model
    heads = model.cfg.n_heads
    x0 = model.embed.weight[tokens] + model.pos_embed.weight[:s]
    qkv = _layer_norm(x0, block.ln1) @ block.attn.qkv.weight.t() + block.attn.qkv.bias
    q, k, v = (t.reshape(b, s, heads, d // heads).transpose(1, 2) for t in qkv.split(d, dim=-1))
    scores = q @ k.transpose(-1, -2) / math.sqrt(d // heads)
    scores = scores.masked_fill(torch.ones(s, s, dtype=torch.bool).triu(1), -torch.inf)
    z = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, s, d)
    x1 = x0 + z @ block.attn.out.weight.t() + block.attn.out.bias
    pre = _layer_norm(x1, block.ln2) @ block.mlp.fc_in.weight.t() + block.mlp.fc_in.bias
    h = 0.5 * pre * (1 + torch.erf(pre / math.sqrt(2)))  # exact GELU
    if neuron_delta is not None:
        h = h + neuron_delta
    x2 = x1 + h @ block.mlp.fc_out.weight.t() + block.mlp.fc_out.bias
    logits = _layer_norm(x2, model.ln_f) @ model.unembed.weight.t() + model.unembed.bias
    return h, logits


# --- the built-in model ----------------------------------------------------------------------------


@torch.no_grad()
def test_hook_activations_match_a_manual_forward_pass(subject: SubjectModel, tokens: torch.Tensor) -> None:
    h, logits = _manual_forward(subject.model, tokens)
    acts = subject.activations(tokens, BUILTIN_HOOK)
    assert acts.shape == (4, 64, 512)
    torch.testing.assert_close(acts, h, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(subject.logits(tokens), logits, atol=1e-4, rtol=1e-4)
    logits_hooked, acts_hooked = subject.run_with_hook(tokens, BUILTIN_HOOK)
    torch.testing.assert_close(acts_hooked, h, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(logits_hooked, logits, atol=1e-4, rtol=1e-4)
    assert subject.hook_width(BUILTIN_HOOK) == 512


def test_activations_stop_the_forward_pass_at_the_hook(subject: SubjectModel, tokens: torch.Tensor) -> None:
    calls = []
    handle = subject.model.unembed.register_forward_hook(lambda *args: calls.append(1))
    try:
        subject.activations(tokens, BUILTIN_HOOK)
        assert calls == [], "layers after the hook must not run"
        subject.logits(tokens)
        assert calls == [1]
    finally:
        handle.remove()
    assert not subject.module_at(BUILTIN_HOOK)._forward_hooks, "the capture hook is removed"


@torch.no_grad()
def test_run_with_hook_replacement_reaches_the_logits(subject: SubjectModel, tokens: torch.Tensor) -> None:
    clean = subject.logits(tokens)
    same, original = subject.run_with_hook(tokens, BUILTIN_HOOK, replace=lambda a: a.clone())
    assert torch.equal(same, clean)
    zeroed, original_again = subject.run_with_hook(tokens, BUILTIN_HOOK, replace=torch.zeros_like(original))
    assert torch.equal(original_again, original), "the hook returns the original output, not the replacement"
    assert (zeroed - clean).abs().max() > 1e-2
    # a tensor replacement is what the later layers see: compare with the written-out forward pass
    delta = torch.randn(original.shape, generator=torch.Generator().manual_seed(0))
    spliced, _ = subject.run_with_hook(tokens, BUILTIN_HOOK, replace=original + delta)
    _, expected = _manual_forward(subject.model, tokens, neuron_delta=delta)
    torch.testing.assert_close(spliced, expected, atol=1e-4, rtol=1e-4)
    assert torch.equal(subject.logits(tokens), clean), "no hook is left behind"


def test_wrong_replacement_shape_is_a_user_error(subject: SubjectModel, tokens: torch.Tensor) -> None:
    with pytest.raises(UserError, match=r"replacement shape \(4, 64, 511\)"):
        subject.run_with_hook(tokens, BUILTIN_HOOK, replace=torch.zeros(4, 64, 511))
    assert not subject.module_at(BUILTIN_HOOK)._forward_hooks


def test_unknown_hook_lists_nearby_valid_paths(subject: SubjectModel, tokens: torch.Tensor) -> None:
    with pytest.raises(UserError, match="no module 'blocks.0.mlp.actt'") as err:
        subject.activations(tokens, "blocks.0.mlp.actt")
    assert "blocks.0.mlp.act" in str(err.value).split("valid hook points:")[1]
    with pytest.raises(UserError, match="valid hook points: .*blocks"):
        subject.module_at("zzzz")
    with pytest.raises(UserError, match="no module"):
        next(stream_activations(subject, [Document(id="a", text="x")], "blocks.9.mlp.act"))


def test_missing_builtin_model_folder_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no built-in model at"):
        load_builtin(tmp_path)
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available"):
            load_subject("builtin", device="cuda")


# --- a Hugging Face model from a local folder ---------------------------------------------------------


@pytest.fixture(scope="module")
def gpt2(gpt2_dir: Path) -> SubjectModel:
    return load_subject(str(gpt2_dir))


@torch.no_grad()
def test_hf_model_streams_the_hooked_module_output(gpt2: SubjectModel) -> None:
    assert gpt2.hook_width(GPT2_HOOK) == 4 * 32
    assert gpt2.tokenizer.bos_id == gpt2.tokenizer.encode_batch(["<|endoftext|>"])[0][0]
    docs = [Document(id=str(i), text=t) for i, t in enumerate(hf_texts())]
    batches = list(stream_activations(gpt2, docs, GPT2_HOOK, batch_size=8, ctx=32, max_tokens=32 * 20))
    assert sum(b.tokens.shape[0] for b in batches) == 20
    module = gpt2.model.transformer.h[0].mlp.act
    for batch in batches:
        assert batch.tokens.shape[1] == 32 and batch.activations.shape == (*batch.tokens.shape, 128)
        captured = []
        handle = module.register_forward_hook(lambda _m, _i, out, captured=captured: captured.append(out))
        try:
            gpt2.model(input_ids=batch.tokens)
        finally:
            handle.remove()
        torch.testing.assert_close(batch.activations, captured[0], atol=0, rtol=0)
    # windows start with BOS where documents start
    assert batches[0].tokens[0, 0] == gpt2.tokenizer.bos_id


@torch.no_grad()
def test_hf_replacement_and_hook_errors(gpt2: SubjectModel) -> None:
    tokens = torch.tensor([gpt2.tokenizer.encode_batch(["def handler_3(request): return 1"])[0][:12]])
    clean = gpt2.logits(tokens)
    same, acts = gpt2.run_with_hook(tokens, GPT2_HOOK, replace=lambda a: a)
    assert torch.equal(same, clean)
    changed, _ = gpt2.run_with_hook(tokens, GPT2_HOOK, replace=acts + 1.0)
    assert (changed - clean).abs().max() > 1e-3
    with pytest.raises(UserError, match=r"nearby valid hook points: .*transformer\.h\.0\.mlp\.act"):
        gpt2.module_at("transformer.h.0.mlp.actv")


@torch.no_grad()
def test_hf_logit_effects_go_through_the_conv1d_projection(gpt2: SubjectModel) -> None:
    """GPT-2's Conv1D stores c_proj as [in, out]; the direct effect must read it the right way round."""
    directions = torch.eye(128)[:5]
    effects = logit_effects(gpt2, GPT2_HOOK, directions)
    model = gpt2.model
    w_proj = model.transformer.h[0].mlp.c_proj.weight  # [128 in, 32 out]
    expected = (directions @ w_proj * model.transformer.ln_f.weight) @ model.lm_head.weight.t()
    assert effects is not None and effects.shape == (5, gpt2.tokenizer.vocab_size)
    np.testing.assert_allclose(effects.numpy(), expected.numpy(), atol=1e-5)
