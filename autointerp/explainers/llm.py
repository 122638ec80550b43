"""The LLM explainer: shows a model the unit's top examples and asks for one short description.

Only the explain split is shown. Activations are rescaled per unit to whole numbers 0-10
(floor(10 * relu(a) / max)); active tokens are marked in the text and listed with their numbers, so
the model can quote them exactly. The reply is parsed leniently (preambles, "Explanation:" labels,
wrapping quotes and trailing prose are stripped); an empty reply is asked for again, a bounded
number of times, and then raised as ExplainerError for the stage to record as a failure.
"""

from __future__ import annotations

import json
import math
import re

from pydantic import BaseModel, Field

from autointerp.llm.base import ChatMessage, ChatRequest, LLMClient, forget_unusable
from autointerp.prompts import load_prompt, render_excerpt
from autointerp.records import ActivationExample, Explanation, UnitHarvest
from autointerp.settings_hash import settings_hash
from autointerp.simulators.base import Usage

EXPLAINER_NAME = "llm"
_LABEL = re.compile(r"explanation\s*[:\-]\s*", re.IGNORECASE)
_PREAMBLE = re.compile(r"^(sure|certainly|of course|okay|ok|here is|here's|based on|looking at)\b", re.IGNORECASE)
_WRAPPERS = [('"', '"'), ("'", "'"), ("\u201c", "\u201d"), ("`", "`")]


class ExplainerError(Exception):
    """No usable explanation came back; carries what was spent and the last raw reply."""

    def __init__(self, message: str, usage: Usage, raw_response: str | None):
        super().__init__(message)
        self.usage = usage
        self.raw_response = raw_response


class LLMExplainerConfig(BaseModel):
    max_examples: int = Field(10, ge=1)  # top examples shown
    max_tokens_per_example: int = Field(48, ge=4)  # longer windows are cut around their peak
    max_listed_tokens: int = Field(12, ge=1)  # active tokens listed per excerpt
    max_words: int = Field(25, ge=3)  # asked-for explanation length
    max_completion_tokens: int = Field(160, ge=16)
    max_retries: int = Field(1, ge=0)  # extra attempts after an empty or unreadable reply


def llm_explainer_settings_hash(model: str, config: LLMExplainerConfig) -> str:
    """The settings hash of an LLMExplainer for `model` ("openai:gpt-4o-mini"), without a client:
    so scoring existing explanations needs no key for the model that wrote them."""
    prompt = load_prompt("explain")
    return settings_hash(
        {
            "explainer": EXPLAINER_NAME,
            "model": model,
            "prompt": prompt.version,
            "prompt_digest": prompt.digest,
            "params": config.model_dump(),
        }
    )


class LLMExplainer:
    name = EXPLAINER_NAME

    def __init__(self, client: LLMClient, config: LLMExplainerConfig | None = None):
        self.client = client
        self.config = config or LLMExplainerConfig()
        self.model: str | None = client.name
        self.prompt = load_prompt("explain")
        self.prompt_version: str | None = self.prompt.version
        self.settings_hash = llm_explainer_settings_hash(client.name, self.config)

    def build_messages(self, harvest: UnitHarvest) -> list[ChatMessage]:
        """The whole conversation sent for one unit: instructions, one worked example, the unit."""
        return [
            ChatMessage(role="system", content=self.prompt.render("system", max_words=str(self.config.max_words))),
            ChatMessage(role="user", content=self.prompt.render("fewshot_user")),
            ChatMessage(role="assistant", content=self.prompt.render("fewshot_assistant")),
            ChatMessage(role="user", content=self.prompt.render("user", examples=self.render_examples(harvest))),
        ]

    def render_examples(self, harvest: UnitHarvest) -> str:
        top = sorted(harvest.examples_for("explain", "top"), key=lambda e: -e.max_activation)
        shown = [_around_peak(e, self.config.max_tokens_per_example) for e in top[: self.config.max_examples]]
        peak = max((max(acts, default=0.0) for _, acts in shown), default=0.0)
        blocks = []
        for k, (tokens, acts) in enumerate(shown, start=1):
            levels = discretise(acts, peak)
            active = {i for i, level in enumerate(levels) if level > 0}
            listed = sorted(active, key=lambda i: (-levels[i], i))[: self.config.max_listed_tokens]
            listing = ", ".join(f"{json.dumps(tokens[i], ensure_ascii=False)} {levels[i]}" for i in sorted(listed))
            blocks.append(f"Excerpt {k}: {render_excerpt(tokens, active)}\nActive tokens: {listing or 'none'}")
        return "\n\n".join(blocks) if blocks else "(no examples: the unit never fired)"

    async def explain(self, harvest: UnitHarvest) -> Explanation:
        """Raises ExplainerError when no readable explanation comes back; LLMCallError and the
        budget/access errors of the client pass through."""
        messages = self.build_messages(harvest)
        usage = Usage()
        raw: str | None = None
        sent: list[ChatRequest] = []
        for _ in range(1 + self.config.max_retries):
            sent.append(ChatRequest(model="", messages=messages, max_tokens=self.config.max_completion_tokens))
            response = await self.client.complete(sent[-1])
            usage.add(response)
            raw = response.text
            text = parse_explanation_reply(raw)
            if text:
                return Explanation(
                    unit_kind=harvest.kind,
                    unit_index=harvest.index,
                    text=text,
                    explainer=self.name,
                    model=self.model,
                    prompt_version=self.prompt_version,
                    prompt_tokens=usage.prompt_tokens,
                    completion_tokens=usage.completion_tokens,
                    cost_usd=usage.cost_usd,
                    raw_response=raw,
                    settings_hash=self.settings_hash,
                )
            messages = [
                *messages,
                ChatMessage(role="assistant", content=raw or "(empty)"),
                ChatMessage(
                    role="user",
                    content="No explanation found in that reply. Reply with one line: Explanation: <your explanation>",
                ),
            ]
        forget_unusable(self.client, sent)
        raise ExplainerError(
            f"{self.model}: no explanation in the reply after {1 + self.config.max_retries} attempts", usage, raw
        )


def discretise(activations: list[float], peak: float) -> list[int]:
    """floor(10 * relu(a) / peak), the 0-10 scale both explainer and simulator prompts use."""
    if peak <= 0:
        return [0 for _ in activations]
    return [min(10, math.floor(10 * max(a, 0.0) / peak)) for a in activations]


def _around_peak(example: ActivationExample, width: int) -> tuple[list[str], list[float]]:
    """The example cut to `width` tokens, keeping its strongest token and mostly what precedes it."""
    tokens, acts = example.tokens, example.activations
    if len(tokens) <= width:
        return tokens, acts
    peak = max(range(len(acts)), key=lambda i: acts[i])
    start = min(max(0, peak - (3 * width) // 4), len(tokens) - width)
    return tokens[start : start + width], acts[start : start + width]


def parse_explanation_reply(reply: str | None) -> str:
    """The explanation in a model's reply, or "" when there is none.

    Takes the text after the last "Explanation:" label if there is one, else the first line that is
    not a preamble ("Sure, here is...:"); then drops markdown emphasis and quotes wrapped around the
    whole explanation (but not quotes that are part of it, like `" God" and " Lord"`).
    """
    if not reply:
        return ""
    text = reply.replace("\r\n", "\n").strip()
    text = re.sub(r"^```\w*\n?|```$", "", text).strip()
    labels = list(_LABEL.finditer(text))
    if labels:
        candidates = [text[labels[-1].end() :].split("\n", 1)[0]]
    else:
        candidates = [line for line in text.split("\n") if line.strip()]
    for line in candidates:
        line = line.strip().strip("*#>-").strip()
        if not labels and _PREAMBLE.match(line):  # "Sure! Here it is: fires on ..." keeps its tail
            line = line.split(":", 1)[1].strip() if ":" in line else ""
        elif not labels and line.endswith(":"):
            continue
        if line:
            return _unwrap(line)
    return ""


def _unwrap(text: str) -> str:
    text = text.strip().strip("*_").strip()
    for opening, closing in _WRAPPERS:
        inner = text[len(opening) : -len(closing)] if len(text) >= 2 else ""
        if text.startswith(opening) and text.endswith(closing) and opening not in inner and closing not in inner:
            return inner.strip()
    return text
