"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fake_llm_server import FakeLLMServer


@pytest.fixture
def fake_llm_server() -> Iterator[FakeLLMServer]:
    """A local OpenAI + Anthropic compatible server; see tests/fake_llm_server.py."""
    with FakeLLMServer() as server:
        yield server


# --- the sae/ package: the shipped built-in subject model, loaded once per test session ---------

@pytest.fixture(scope="session")
def subject():
    """The built-in subject model (sae/data/subject) on CPU; tests must not modify it."""
    from sae.subject.models import load_subject

    return load_subject("builtin")
