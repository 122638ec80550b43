"""Every prompt the LLM explainer and simulator send, pinned byte for byte as it leaves the process.

Each case drives the real explainer or simulator through the official SDK to the fake server, on one
planted unit, and compares the request bodies the server received with tests/golden/prompts/NAME.txt.
A prompt change shows up as a diff of that file; after checking it, rewrite the files with

    UPDATE_GOLDEN=1 python -m pytest tests/test_prompts_golden.py
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from autointerp.explainers.llm import LLMExplainer
from autointerp.llm import RetryPolicy, make_llm_client
from autointerp.simulators.base import HighlightedExample
from autointerp.simulators.llm import LLMSimulator, LLMSimulatorConfig
from autointerp.testing.fake_llm_server import FakeLLMServer, FakeReply, RecordedRequest
from autointerp.testing.planted import SimulatingResponder, planted_harvest, planted_units

GOLDEN = Path(__file__).parent / "golden" / "prompts"
EXPLANATION = '" class", strongest; " God" weakly'  # fixed: simulator prompts do not follow the explainer
UNIT = planted_units(2)[1]  # two graded triggers plus faint noise: several activation levels
HARVEST = planted_harvest(UNIT, window=12, top=3, quantile=1, random_windows=1, silent=1)
SCORE_TOP, SCORE_RANDOM, SCORE_SILENT = (HARVEST.examples_for("score", s)[0] for s in ("top", "random", "silent"))


@pytest.fixture(autouse=True)
def fake_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-golden")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-golden")


class FirstReplyUnreadable:
    """Answers the first request with text no reader accepts, then the retry (the same conversation
    plus the bad answer and the retry message) like SimulatingResponder: so the retry message is
    sent, and pinned, too."""

    def __init__(self) -> None:
        self.inner = SimulatingResponder()
        self.first = True

    def __call__(self, body: dict[str, Any], api: str) -> str | FakeReply:
        if self.first:
            self.first = False
            return "Sure!"
        return self.inner({**body, "messages": body["messages"][:-2]}, api)


def _explain(client: Any) -> Coroutine[Any, Any, object]:
    return LLMExplainer(client).explain(HARVEST)


def _simulate(client: Any) -> Coroutine[Any, Any, object]:
    return LLMSimulator(client).simulate(EXPLANATION, [SCORE_TOP.tokens])


def _simulate_several(client: Any) -> Coroutine[Any, Any, object]:
    config = LLMSimulatorConfig(simulation_examples_per_call=3)
    return LLMSimulator(client, config).simulate(
        EXPLANATION, [e.tokens for e in (SCORE_TOP, SCORE_RANDOM, SCORE_SILENT)]
    )


def _detect(client: Any) -> Coroutine[Any, Any, object]:
    return LLMSimulator(client).detect(EXPLANATION, [e.tokens for e in (SCORE_TOP, SCORE_RANDOM, SCORE_SILENT)])


def _fuzz(client: Any) -> Coroutine[Any, Any, object]:
    top = SCORE_TOP.tokens
    marked = [i for i, a in enumerate(SCORE_TOP.activations) if a > 0]
    examples = [HighlightedExample(tokens=top, highlighted=marked), HighlightedExample(tokens=top, highlighted=[0, 5])]
    return LLMSimulator(client).fuzz(EXPLANATION, examples)


Case = tuple[str, Callable[[Any], Coroutine[Any, Any, object]], bool]  # backend, call, first reply unreadable
CASES: dict[str, Case] = {
    "explain": ("openai", _explain, False),
    "explain_retry": ("openai", _explain, True),
    "simulate": ("openai", _simulate, False),
    "simulate_json": ("anthropic", _simulate, False),
    "simulate_json_retry": ("anthropic", _simulate, True),
    "simulate_multi": ("openai", _simulate_several, False),
    "simulate_multi_json": ("anthropic", _simulate_several, False),
    "detect": ("openai", _detect, False),
    "fuzz": ("openai", _fuzz, False),
}


def render(requests: list[RecordedRequest]) -> str:
    """Each request: its path, its parameters as sorted JSON, then each message's text as sent."""
    parts = []
    for request in requests:
        body = dict(request.body)
        messages = body.pop("messages")
        if "system" in body:  # Anthropic sends the system prompt beside the messages
            messages = [{"role": "system", "content": body.pop("system")}, *messages]
        parts.append(f"##### POST {request.path}\n{json.dumps(body, sort_keys=True, ensure_ascii=False)}\n")
        parts.extend(f"===== {m['role']}\n{m['content']}\n" for m in messages)
    return "".join(parts)


@pytest.mark.parametrize("name", list(CASES))
def test_prompt_is_unchanged(name: str) -> None:
    backend, call, unreadable_first = CASES[name]
    responder = FirstReplyUnreadable() if unreadable_first else SimulatingResponder()
    with FakeLLMServer(responder) as server:
        base_url = server.openai_base_url if backend == "openai" else server.anthropic_base_url
        client = make_llm_client(f"{backend}:golden-model", base_url=base_url, retry=RetryPolicy(max_attempts=1))
        asyncio.run(call(client))
        sent = render(server.requests)
    assert len(server.requests) == (2 if unreadable_first else 1)
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(sent, encoding="utf-8")
    assert sent == path.read_text(encoding="utf-8"), f"prompt {name} changed; see the module docstring"
