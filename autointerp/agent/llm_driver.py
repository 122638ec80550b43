"""The LLM agent driver: a chat model tests and revises an explanation by calling tools (run texts
through the unit, search the corpus, edit a window and re-run it), over OpenAI or Anthropic tool
calling (and OpenAI-compatible servers by base URL).

Every model reply is kept in the catalog, keyed by the exact request, before its tool calls run. The
tools are deterministic, so a run killed at any point and started again sends the same requests,
reads the replies it already paid for from the catalog, and pays only for the rest. It stops at a
round limit, when the model calls finish or answers without a tool, or when the cost of the replies
it has used reaches --max-cost.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import sqlite_utils
from pydantic import BaseModel, Field

from autointerp.agent.probes import BudgetSpent, CorpusWindows, Prober, edit
from autointerp.agent.trace import AgentTrace, Revision
from autointerp.errors import UserError
from autointerp.llm.pricing import cost_usd
from autointerp.prompts import load_prompt
from autointerp.records import UnitHarvest

CACHE_DDL = """CREATE TABLE IF NOT EXISTS agent_llm_replies (
    key TEXT PRIMARY KEY, provider TEXT NOT NULL, model TEXT NOT NULL, reply TEXT NOT NULL, cost_usd REAL NOT NULL)"""
MAX_EXAMPLES = 6
LLM_PROVIDERS = ("openai", "anthropic", "openai-compatible")
_TEXTS = {"type": "array", "items": {"type": "string"}, "maxItems": 8}
TOOLS: list[dict[str, Any]] = [
    {"name": "run_texts", "description": "The unit's activation at every token of each text (one call each).",
     "parameters": {"type": "object", "properties": {"texts": _TEXTS}, "required": ["texts"]}},
    {"name": "search_corpus", "description": "Corpus windows whose text matches a regular expression.",
     "parameters": {"type": "object", "properties": {"pattern": {"type": "string"}, "limit": {"type": "integer"}},
                    "required": ["pattern"]}},
    {"name": "edit_window", "description": "Edit a window from the last search (by its number) and run it (one call).",
     "parameters": {"type": "object", "properties": {
         "window": {"type": "integer"}, "op": {"type": "string", "enum": ["replace", "delete", "insert"]},
         "position": {"type": "integer"}, "text": {"type": "string"}, "count": {"type": "integer"}},
         "required": ["window", "op", "position"]}},
    {"name": "revise", "description": "Record a revised explanation and the evidence for it.",
     "parameters": {"type": "object", "properties": {"explanation": {"type": "string"}, "reason": {"type": "string"}},
                    "required": ["explanation", "reason"]}},
    {"name": "finish", "description": "Give the final explanation.",
     "parameters": {"type": "object", "properties": {"explanation": {"type": "string"}}, "required": ["explanation"]}},
]  # fmt: skip


class LLMAgentConfig(BaseModel):
    model: str  # "openai:MODEL", "anthropic:MODEL" or "openai-compatible:MODEL"
    base_url: str | None = None
    max_rounds: int = Field(12, ge=1)
    max_cost: float | None = None  # USD for this unit's replies
    max_tokens: int = 800
    timeout: float = 60.0


class _Wire:
    """One provider's request and reply shapes for a tool-calling conversation."""

    def __init__(self, provider: str, model: str, config: LLMAgentConfig, system: str) -> None:
        self.provider, self.model, self.config, self.system = provider, model, config, system
        key_env = "ANTHROPIC_API_KEY" if provider == "anthropic" else "OPENAI_API_KEY"
        key = os.environ.get(key_env) or ("none" if provider == "openai-compatible" else None)
        if key is None:
            raise UserError(f"the {provider} agent driver needs {key_env} in the environment")
        if provider == "anthropic":
            import anthropic

            self.sdk_module: Any = anthropic
            self.sdk: Any = anthropic.Anthropic(api_key=key, base_url=config.base_url, timeout=config.timeout)
        else:
            import openai

            self.sdk_module = openai
            self.sdk = openai.OpenAI(api_key=key, base_url=config.base_url, timeout=config.timeout)

    def request(self, messages: list[dict]) -> dict:
        if self.provider == "anthropic":
            tools = [{"name": t["name"], "description": t["description"], "input_schema": t["parameters"]} for t in TOOLS]
            return {"model": self.model, "max_tokens": self.config.max_tokens, "system": self.system,
                    "messages": messages, "tools": tools}  # fmt: skip
        tools = [{"type": "function", "function": t} for t in TOOLS]
        return {"model": self.model, "max_tokens": self.config.max_tokens, "temperature": 0,
                "messages": [{"role": "system", "content": self.system}, *messages], "tools": tools}  # fmt: skip

    def send(self, request: dict) -> dict:
        """The provider's reply as JSON; a failure after the SDK's own retries is the user's to see
        (the replies paid for so far are kept, so running again resumes)."""
        api_error = self.sdk_module.APIError
        try:
            if self.provider == "anthropic":
                return self.sdk.messages.create(**request).model_dump(mode="json")
            return self.sdk.chat.completions.create(**request).model_dump(mode="json")
        except api_error as err:
            raise UserError(f"{self.provider} request failed ({err}); run again to resume") from None

    def usage(self, reply: dict) -> tuple[int, int]:
        u = reply.get("usage") or {}
        if self.provider == "anthropic":
            return int(u.get("input_tokens") or 0), int(u.get("output_tokens") or 0)
        return int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0)

    def read(self, reply: dict) -> tuple[str, list[tuple[str, str, dict]]]:
        """(text, [(call id, tool name, arguments)])."""
        if self.provider == "anthropic":
            blocks = reply.get("content") or []
            text = " ".join(b["text"] for b in blocks if b.get("type") == "text")
            return text, [(b["id"], b["name"], b.get("input") or {}) for b in blocks if b.get("type") == "tool_use"]
        message = (reply.get("choices") or [{}])[0].get("message") or {}
        calls = []
        for c in message.get("tool_calls") or []:
            try:
                args = json.loads(c["function"]["arguments"] or "{}")
            except json.JSONDecodeError:
                args = {}
            calls.append((c["id"], c["function"]["name"], args))
        return message.get("content") or "", calls

    def turn(self, reply: dict, results: list[tuple[str, str]]) -> list[dict]:
        """The assistant turn as the next request must repeat it, and the tool results after it."""
        if self.provider == "anthropic":
            blocks = [
                {"type": "text", "text": b["text"]} if b["type"] == "text"
                else {"type": "tool_use", "id": b["id"], "name": b["name"], "input": b.get("input") or {}}
                for b in reply["content"] if b.get("type") in ("text", "tool_use")
            ]  # fmt: skip
            return [
                {"role": "assistant", "content": blocks},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": i, "content": r} for i, r in results]},
            ]
        message = reply["choices"][0]["message"]
        assistant = {"role": "assistant", "content": message.get("content"), "tool_calls": message.get("tool_calls")}
        return [assistant, *({"role": "tool", "tool_call_id": i, "content": r} for i, r in results)]


class LLMDriver:
    """Runs one unit's conversation; replies are cached in the catalog at `db_path`."""

    def __init__(self, config: LLMAgentConfig, corpus: CorpusWindows, db_path: str) -> None:
        provider, _, model = config.model.partition(":")
        if provider not in LLM_PROVIDERS or not model:
            raise UserError(f"driver {config.model!r}: use offline, openai:MODEL, anthropic:MODEL or openai-compatible:MODEL")
        self.config, self.corpus, self.provider, self.model = config, corpus, provider, model
        self.name = config.model
        self.prompt = load_prompt("agent")
        self.wire = _Wire(provider, model, config, self.prompt.render("system"))
        self.db = sqlite_utils.Database(db_path)
        self.db.execute(CACHE_DDL)

    def run(self, harvest: UnitHarvest, explanation: str, prober: Prober) -> AgentTrace:
        session = _Session(self, prober)
        user = self.prompt.render(
            "user", explanation=explanation, examples=_examples(harvest), budget=str(prober.budget)
        )
        messages: list[dict] = [{"role": "user", "content": user}]
        current, final, cost = explanation, None, 0.0
        revisions: list[Revision] = []
        for _ in range(self.config.max_rounds):
            if self.config.max_cost is not None and cost >= self.config.max_cost:
                break
            reply, paid = self._reply(self.wire.request(messages))
            cost += paid
            text, calls = self.wire.read(reply)
            if not calls:
                final = text.strip() or current
                break
            results = []
            for call_id, name, args in calls:
                if name == "finish":
                    final = str(args.get("explanation") or current)
                elif name == "revise" and args.get("explanation"):
                    new = str(args["explanation"])
                    revisions.append(Revision(calls=prober.calls, before=current, after=new, reason=str(args.get("reason", ""))))
                    current = new
                results.append((call_id, session.call(name, args)))
            if final is not None:
                break
            messages += self.wire.turn(reply, results)
        final = final or current
        if final != current:
            revisions.append(Revision(calls=prober.calls, before=current, after=final, reason="final answer"))
        return AgentTrace(
            unit_kind=harvest.kind, unit_index=harvest.index, driver=self.name, initial=explanation, final=final,
            budget=prober.budget, calls=prober.calls, revisions=revisions, probes=prober.log,
        )  # fmt: skip

    def _reply(self, request: dict) -> tuple[dict, float]:
        """The reply to `request`, from the catalog when it was paid for before; and its cost."""
        key = hashlib.sha256(json.dumps([self.provider, request], sort_keys=True).encode()).hexdigest()
        row = self.db.execute("SELECT reply, cost_usd FROM agent_llm_replies WHERE key = ?", [key]).fetchone()
        if row is not None:
            return json.loads(row[0]), float(row[1])
        reply = self.wire.send(request)
        prompt_tokens, completion_tokens = self.wire.usage(reply)
        paid = cost_usd(self.model, prompt_tokens, completion_tokens) if self.provider != "openai-compatible" else 0.0
        with self.db.conn:
            self.db.execute(
                "INSERT OR REPLACE INTO agent_llm_replies (key, provider, model, reply, cost_usd) VALUES (?, ?, ?, ?, ?)",
                [key, self.provider, self.model, json.dumps(reply), paid],
            )
        return reply, paid


class _Session:
    """The tools of one conversation; results are short JSON strings."""

    def __init__(self, driver: LLMDriver, prober: Prober) -> None:
        self.driver, self.prober = driver, prober
        self.windows: list[list[int]] = []

    def call(self, name: str, args: dict) -> str:
        try:
            return json.dumps(self._call(name, args))
        except (BudgetSpent, UserError, ValueError, TypeError, KeyError, IndexError) as err:
            return json.dumps({"error": str(err)})

    def _call(self, name: str, args: dict) -> Any:
        vocab = self.driver.corpus.vocab
        if name == "run_texts":
            texts = [str(t) for t in args["texts"]][:8]
            limit = self.prober.subject.n_ctx  # longer texts are cut to what the model reads
            tokens = [seq[:limit] or [self.prober.subject.tokenizer.bos_id] for seq in self.prober.subject.tokenizer.encode_batch(texts)]
            acts = self.prober.run(tokens, "text from the model")
            return [_pairs([vocab.strings[t] for t in seq], a) for seq, a in zip(tokens, acts)]
        if name == "search_corpus":
            self.windows = self.driver.corpus.search(str(args["pattern"]), min(int(args.get("limit", 3)), 5))
            return ["".join(vocab.strings[t] for t in w) for w in self.windows]
        if name == "edit_window":
            new = self.prober.subject.tokenizer.encode_batch([str(args.get("text", ""))])[0]
            seq = edit(self.windows[int(args["window"])], args["op"], int(args["position"]), new, int(args.get("count", 1)))
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
