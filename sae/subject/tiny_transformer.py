"""The built-in subject model: a one-layer transformer shaped like "Towards Monosemanticity"'s.

    x0   = W_E[tokens] + W_pos[positions]                      [batch, seq, d_model]
    x1   = x0 + Attn(LN1(x0))                                  causal, n_heads heads
    h    = GELU(LN2(x1) @ W_in + b_in)                          [batch, seq, d_mlp]  <- `blocks.0.mlp.act`
    x2   = x1 + h @ W_out + b_out
    logits = LN_f(x2) @ W_U + b_U                               [batch, seq, vocab]

`h` is the MLP neuron activation the project studies; every stage names it by module path.
The unembedding is untied from the embedding so a feature's logit effect (decoder direction through
W_out and W_U) reads the output side alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel
from torch import nn


class TinyTransformerConfig(BaseModel):
    vocab_size: int = 4096
    n_ctx: int = 64
    d_model: int = 128
    n_heads: int = 4
    d_mlp: int = 512
    n_layers: int = 1


class Attention(nn.Module):
    def __init__(self, cfg: TinyTransformerConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [batch, seq, d_model]
        b, s, d = x.shape
        q, k, v = self.qkv(x).view(b, s, 3, self.n_heads, d // self.n_heads).unbind(2)
        z = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
        )  # [batch, heads, seq, d_head]
        return self.out(z.transpose(1, 2).reshape(b, s, d))


class MLP(nn.Module):
    def __init__(self, cfg: TinyTransformerConfig) -> None:
        super().__init__()
        self.fc_in = nn.Linear(cfg.d_model, cfg.d_mlp)
        self.act = nn.GELU()  # its output is the neuron activation, hook point `blocks.N.mlp.act`
        self.fc_out = nn.Linear(cfg.d_mlp, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_out(self.act(self.fc_in(x)))


class Block(nn.Module):
    def __init__(self, cfg: TinyTransformerConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TinyTransformer(nn.Module):
    def __init__(self, cfg: TinyTransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_embed = nn.Embedding(cfg.n_ctx, cfg.d_model)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layers)])
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.unembed = nn.Linear(cfg.d_model, cfg.vocab_size)
        self.apply(init_weights)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [batch, seq] -> logits [batch, seq, vocab]."""
        seq = tokens.shape[1]
        if seq > self.cfg.n_ctx:
            raise ValueError(f"sequence of {seq} tokens exceeds the model's context of {self.cfg.n_ctx}")
        x = self.embed(tokens) + self.pos_embed(torch.arange(seq, device=tokens.device))
        for block in self.blocks:
            x = block(x)
        return self.unembed(self.ln_f(x))


def init_weights(module: nn.Module) -> None:
    """The initialisation training starts from (also the random-model control's weights)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
