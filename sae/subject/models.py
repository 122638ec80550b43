"""One small interface over "a causal LM I can hook": the built-in model and any HF causal LM.

Hook points are module paths (`blocks.0.mlp.act` for ours, `transformer.h.6.mlp.act` for GPT-2).
`run_with_hook` gives the hook's output and, optionally, replaces it with a given tensor for the
rest of the forward pass (used to splice an SAE reconstruction in and measure the loss).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from sae.errors import UserError
from sae.subject.tiny_transformer import TinyTransformer, TinyTransformerConfig
from sae.tokenizer import BPETokenizer, HFTokenizer, TextTokenizer

BUILTIN_NAME = "builtin"
BUILTIN_HOOK = "blocks.0.mlp.act"
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_DEVICE = re.compile(r"cpu|mps|cuda(:\d+)?")


def check_device(device: str) -> str:
    """A device torch knows by that name; anything else would fail only deep inside the first stage."""
    if not _DEVICE.fullmatch(device):
        raise UserError(f"unknown device {device!r}; use cpu, cuda, cuda:N or mps")
    return device


def check_model_path(name: str) -> str:
    """A name written as a path ("/x", "./x", "~/x") must exist; only bare names go to the hub."""
    if name.startswith(("/", ".", "~")) and not Path(name).expanduser().exists():
        raise UserError(f"subject model path {name} does not exist")
    return name


def check_dtype(model: str, dtype: str) -> str:
    """float32, float16 or bfloat16; the built-in model runs in float32 only, so anything else is refused."""
    if dtype not in DTYPES:
        raise UserError(f"dtype must be float32, float16 or bfloat16, got {dtype!r}")
    if model == BUILTIN_NAME and dtype != "float32":
        raise UserError(f"the built-in model runs in float32 only, got dtype {dtype!r}")
    return dtype


class _StopForward(Exception):
    """Raised inside a hook to skip the rest of the forward pass once the activations are captured."""


@dataclass
class SubjectModel:
    """A causal LM with its tokenizer; `model(tokens)` returns logits [batch, seq, vocab]."""

    name: str
    model: nn.Module
    tokenizer: TextTokenizer
    n_ctx: int
    logits_fn: Callable[[nn.Module, torch.Tensor], torch.Tensor]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.logits_fn(self.model, tokens)

    def module_at(self, hook: str) -> nn.Module:
        modules = dict(self.model.named_modules())
        if hook not in modules:
            near = difflib.get_close_matches(hook, list(modules), n=6, cutoff=0.4)
            hint = ", ".join(near) if near else ", ".join(list(modules)[1:8]) + ", ..."
            raise UserError(f"no module {hook!r} in {self.name}; nearby valid hook points: {hint}")
        return modules[hook]

    def hook_width(self, hook: str) -> int:
        """The activation width at a hook, found by one tiny forward pass."""
        probe = torch.full((1, 2), self.tokenizer.bos_id, dtype=torch.long, device=self.device)
        return self.activations(probe, hook).shape[-1]

    @torch.no_grad()
    def activations(self, tokens: torch.Tensor, hook: str) -> torch.Tensor:
        """The hook's output [batch, seq, width], skipping every layer after the hook."""
        captured: list[torch.Tensor] = []

        def grab(_module, _inputs, output):
            captured.append(_tensor_output(hook, output))
            raise _StopForward

        handle = self.module_at(hook).register_forward_hook(grab)
        try:
            self.logits(tokens)
        except _StopForward:
            pass
        finally:
            handle.remove()
        return captured[0]

    @torch.no_grad()
    def run_with_hook(
        self,
        tokens: torch.Tensor,
        hook: str,
        replace: Callable[[torch.Tensor], torch.Tensor] | torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, the hook's original output); with `replace`, later layers see the replacement.

        `replace` is a tensor of the hook's shape or a function of the original output.
        """
        captured: list[torch.Tensor] = []

        def swap(_module, _inputs, output):
            captured.append(_tensor_output(hook, output))
            if replace is None:
                return None
            new = replace(output) if callable(replace) else replace
            if new.shape != output.shape:
                raise UserError(f"replacement shape {tuple(new.shape)} != hook output {tuple(output.shape)}")
            return new.to(output.dtype)

        handle = self.module_at(hook).register_forward_hook(swap)
        try:
            logits = self.logits(tokens)
        finally:
            handle.remove()
        return logits, captured[0]


def _tensor_output(hook: str, output: object) -> torch.Tensor:
    if not isinstance(output, torch.Tensor):
        raise UserError(
            f"module {hook!r} outputs a {type(output).__name__}, not one activation tensor; hook an "
            "activation module instead (e.g. `...mlp.act`)"
        )
    return output


def builtin_model_dir() -> Path:
    return Path(str(resources.files("sae") / "data" / "subject"))


def load_builtin(model_dir: Path | None = None, device: str = "cpu", name: str = BUILTIN_NAME) -> SubjectModel:
    """The shipped (or a freshly trained) built-in model from `model.safetensors` + tokenizer; `name` is
    what an SAE trained on it records as its model, so a model in a folder is named by that folder."""
    model_dir = model_dir or builtin_model_dir()
    if not (model_dir / "model.safetensors").exists():
        raise UserError(f"no built-in model at {model_dir}: run `autointerp subject train --out {model_dir}`")
    meta = json.loads((model_dir / "config.json").read_text())
    cfg = TinyTransformerConfig(**meta["model"])
    model = TinyTransformer(cfg)
    model.load_state_dict(load_file(str(model_dir / "model.safetensors")))
    model.to(device).eval()
    return SubjectModel(
        name=name,
        model=model,
        tokenizer=BPETokenizer.load(model_dir / "tokenizer.json"),
        n_ctx=cfg.n_ctx,
        logits_fn=lambda m, t: m(t),
    )


def load_hf(name_or_path: str, device: str = "cpu", dtype: str = "float32") -> SubjectModel:
    """Any `transformers` AutoModelForCausalLM, from a local path or (when online) a hub name."""
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise UserError("Hugging Face models need `transformers`: pip install 'autointerp[hf]'") from None
    torch_dtype = DTYPES[check_dtype(name_or_path, dtype)]
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=torch_dtype)
    except OSError as err:
        raise UserError(f"cannot load Hugging Face model {name_or_path!r}: {err}") from None
    # transformers types .to() through a decorator whose signature drops `self`
    model.to(device).eval()  # type: ignore[arg-type]
    config = model.config
    n_ctx = int(getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None) or 1024)
    return SubjectModel(
        name=name_or_path,
        model=model,
        tokenizer=HFTokenizer(tokenizer),
        n_ctx=n_ctx,
        logits_fn=lambda m, t: m(input_ids=t).logits,
    )


def load_subject(name: str = BUILTIN_NAME, device: str = "cpu", dtype: str = "float32") -> SubjectModel:
    """`builtin` (the shipped model), a folder holding a built-in model, or an HF model name/path."""
    if check_device(device).startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {device!r} asked for, but CUDA is not available here; use --device cpu")
    check_dtype(name, dtype)
    if name == BUILTIN_NAME:
        return load_builtin(device=device)
    path = Path(check_model_path(name)).expanduser()
    if _is_builtin_layout(path):
        check_dtype(BUILTIN_NAME, dtype)  # a model trained by `subject train` is the built-in kind
        return load_builtin(path, device=device, name=str(path.resolve()))
    return load_hf(name, device=device, dtype=dtype)


def _is_builtin_layout(path: Path) -> bool:
    """A folder written by `autointerp subject train` (its config.json has "model" and "training")."""
    config = path / "config.json"
    if not (path.is_dir() and config.exists() and (path / "tokenizer.json").exists()):
        return False
    try:
        meta = json.loads(config.read_text())
    except json.JSONDecodeError:
        return False
    return "model" in meta and "training" in meta
