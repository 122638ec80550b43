"""The LLM agent driver: a chat model tests and revises an explanation by calling tools (run texts
through the unit, search the corpus, edit a window and re-run it), over OpenAI or Anthropic tool
calling (and OpenAI-compatible servers by base URL).

Every request goes through the project's LLM client (autointerp.llm), so replies land in the
catalog's response cache and call log, and one Budget covers the whole run. The tools are
deterministic, so a run killed at any point and started again sends the same requests, reads the
replies it already paid for from the cache, and pays only for the rest. A conversation stops at the
round limit, or when the model calls finish or answers without a tool.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic import BaseModel, Field

from autointerp.agent.probes import BudgetSpent, CorpusWindows, Prober, edit
from autointerp.agent.trace import AgentTrace, Revision
from autointerp.errors import UserError
from autointerp.llm.base import ChatMessage, ChatRequest, LLMClient, ToolSpec
from autointerp.prompts import load_prompt
from autointerp.records import UnitHarvest

MAX_EXAMPLES = 6
LLM_PROVIDERS = ("openai", "anthropic", "openai-compatible")
_TEXTS = {"type": "array", "items": {"type": "string"}, "maxItems": 8}
TOOLS = [
    ToolSpec(name="run_texts", description="The unit's activation at every token of each text (one call each).",
             parameters={"type": "object", "properties": {"texts": _TEXTS}, "required": ["texts"]}),
    ToolSpec(name="search_corpus", description="Corpus windows whose text matches a regular expression.",
             parameters={"type": "object", "properties": {"pattern": {"type": "string"}, "limit": {"type": "integer"}},
                         "required": ["pattern"]}),
    ToolSpec(name="edit_window", description="Edit a window from the last search (by its number) and run it (one call).",
             parameters={"type": "object", "properties": {
                 "window": {"type": "integer"}, "op": {"type": "string", "enum": ["replace", "delete", "insert"]},
                 "position": {"type": "integer"}, "text": {"type": "string"}, "count": {"type": "integer"}},
                 "required": ["window", "op", "position"]}),
    ToolSpec(name="revise", description="Record a revised explanation and the evidence for it.",
             parameters={"type": "object", "properties": {"explanation": {"type": "string"}, "reason": {"type": "string"}},
                         "required": ["explanation", "reason"]}),
    ToolSpec(name="finish", description="Give the final explanation.",
             parameters={"type": "object", "properties": {"explanation": {"type": "string"}}, "required": ["explanation"]}),
]  # fmt: skip


class LLMAgentConfig(BaseModel):
    max_rounds: int = Field(12, ge=1)  # model turns per unit
    max_tokens: int = Field(800, ge=1)  # output limit of each turn


class LLMDriver:
    """Runs one unit's conversation through `client`; `tool_lock` keeps the tools of conversations
    run side by side from using the subject model at once."""

    def __init__(self, client: LLMClient, config: LLMAgentConfig, corpus: CorpusWindows) -> None:
        self.client, self.config, self.corpus = client, config, corpus
        self.name = client.name
        self.prompt = load_prompt("agent")
        self.system = self.prompt.render("system")
        self.tool_lock = asyncio.Lock()

    async def run(self, harvest: UnitHarvest, explanation: str, prober: Prober) -> AgentTrace:
        """Raises what the client raises: LLMCallError for this unit, UserError (budget spent, key
        refused) for the run."""
        session = _Session(self, prober)
        user = self.prompt.render(
            "user", explanation=explanation, examples=_examples(harvest), budget=str(prober.budget)
        )
        messages = [ChatMessage(role="system", content=self.system), ChatMessage(role="user", content=user)]
        current, final = explanation, None
        revisions: list[Revision] = []
        for _ in range(self.config.max_rounds):
            request = ChatRequest(messages=messages, tools=TOOLS, max_tokens=self.config.max_tokens)
            reply = await self.client.complete(request)
            if not reply.tool_calls:
                final = reply.text.strip() or current
                break
            results = []
            for call in reply.tool_calls:
                args = call.arguments
                if call.name == "finish":
                    final = str(args.get("explanation") or current)
                elif call.name == "revise" and args.get("explanation"):
                    new = str(args["explanation"])
                    revisions.append(
                        Revision(calls=prober.calls, before=current, after=new, reason=str(args.get("reason", "")))
                    )
                    current = new
                async with self.tool_lock:
                    result = await asyncio.to_thread(session.call, call.name, args)
                results.append(ChatMessage(role="tool", tool_call_id=call.id, content=result))
            if final is not None:
                break
            messages = [
                *messages,
                ChatMessage(role="assistant", content=reply.text, tool_calls=reply.tool_calls),
                *results,
            ]
        final = final or current
        if final != current:
            revisions.append(Revision(calls=prober.calls, before=current, after=final, reason="final answer"))
        return AgentTrace(
            unit_kind=harvest.kind, unit_index=harvest.index, driver=self.name, initial=explanation, final=final,
            budget=prober.budget, calls=prober.calls, revisions=revisions, probes=prober.log,
        )  # fmt: skip


class _Session:
    """The tools of one conversation; results are short JSON strings."""

    def __init__(self, driver: LLMDriver, prober: Prober) -> None:
        self.driver, self.prober = driver, prober
        self.windows: list[list[int]] = []

    def call(self, name: str, args: dict) -> str:
        try:
            return json.dumps(self._call(name, args))
        except KeyError as err:
            return json.dumps({"error": f"missing argument {err}"})
        except (BudgetSpent, UserError, ValueError, TypeError, IndexError) as err:
            return json.dumps({"error": str(err)})

    def _call(self, name: str, args: dict) -> Any:
        vocab = self.driver.corpus.vocab
        if name == "run_texts":
            texts = [str(t) for t in args["texts"]][:8]
            limit = self.prober.subject.n_ctx  # longer texts are cut to what the model reads
            tokens = [
                seq[:limit] or [self.prober.subject.tokenizer.bos_id]
                for seq in self.prober.subject.tokenizer.encode_batch(texts)
            ]
            acts = self.prober.run(tokens, "text from the model")
            return [_pairs([vocab.strings[t] for t in seq], a) for seq, a in zip(tokens, acts)]
        if name == "search_corpus":
            self.windows = self.driver.corpus.search(str(args["pattern"]), min(int(args.get("limit", 3)), 5))
            return ["".join(vocab.strings[t] for t in w) for w in self.windows]
        if name == "edit_window":
            new = self.prober.subject.tokenizer.encode_batch([str(args.get("text", ""))])[0]
            seq = edit(
                self.windows[int(args["window"])], args["op"], int(args["position"]), new, int(args.get("count", 1))
            )
            seq = seq[: self.prober.subject.n_ctx]
            values = self.prober.run([seq], "edited corpus window")[0]
            return _pairs([vocab.strings[t] for t in seq], values)
        if name in ("revise", "finish"):
            return "recorded"
        raise ValueError(f"unknown tool {name!r}")


def _pairs(tokens: list[str], acts: list[float]) -> list[list]:
    return [[t, round(a, 2)] for t, a in zip(tokens, acts)]


def _examples(harvest: UnitHarvest) -> str:
    tops = harvest.examples_for("explain", "top")[:MAX_EXAMPLES]
    return "\n".join(json.dumps(_pairs(e.tokens, e.activations), ensure_ascii=False) for e in tops)
