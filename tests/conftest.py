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
