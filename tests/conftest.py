"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from autointerp.store import SQLiteLedger, open_store
from autointerp.testing.fake_llm_server import FakeLLMServer


@pytest.fixture
def fake_llm_server() -> Iterator[FakeLLMServer]:
    """A local OpenAI + Anthropic compatible server; see autointerp/testing/fake_llm_server.py."""
    with FakeLLMServer() as server:
        yield server


# --- the sae/ package: the shipped built-in subject model, loaded once per test session ---------


@pytest.fixture(scope="session")
def subject():
    """The built-in subject model (sae/data/subject) on CPU; tests must not modify it."""
    from sae.subject.models import load_subject

    return load_subject("builtin")


# --- a Hugging Face model from a local folder (the path real users take with GPT-2, Pythia...) ----


@pytest.fixture(scope="session")
def gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random GPT-2 and a 400-token byte-level BPE, saved as `save_pretrained` folders."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_gpt2")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(hf_texts(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    tokenizer.save_pretrained(folder)
    eot = bpe.token_to_id("<|endoftext|>")
    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=2, n_embd=32, n_head=2, vocab_size=len(tokenizer), n_positions=64, bos_token_id=eot, eos_token_id=eot
    )
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def hf_texts() -> list[str]:
    return [f"def handler_{i}(request):\n    return request.value * {i} + offset\n" for i in range(200)] + [
        "The quick brown fox jumps over the lazy dog. " * 3,
        "Return the number of items in the container, or raise an error.",
    ]


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SQLiteLedger]:
    """A fresh catalog's LLM ledger (cache, call log, batches) for client tests."""
    with open_store(tmp_path / "run.db") as s:
        yield s.ledger
