"""The LLM simulator: a model predicts activations, detects and judges highlights from an explanation.

Simulation uses the "all at once" layout: the model copies every token line and appends a 0-10
number. Where the backend gives logprobs, each prediction is the expected value over "0".."10" read
from the top logprobs at that number's position, which is smoother and better calibrated than the
written digit; without logprobs (Anthropic) the model answers a JSON list of integers instead.

By default each excerpt is its own request, the layout published simulation scores use, so scores
stay comparable with them and with earlier runs. `simulation_examples_per_call` > 1 sends several
excerpts in one request (system prompt, few-shot and explanation once), which cuts the requests and
prompt tokens per unit by that factor; a model may judge an excerpt differently beside others, so
the mode is part of the simulator's settings and its scores never mix with the one-per-call ones.

Output that cannot be read is asked for again, with the reason appended to the conversation (so the
retry is a new request, not a replay from the response cache), a bounded number of times; after
that the simulator raises SimulatorError and the scorer records a failed score. It never fills in
zeros for an answer it did not get.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel, Field

from autointerp.llm.base import ChatMessage, ChatRequest, ChatResponse, LLMClient, forget_unusable
from autointerp.llm.errors import InvalidReplyError, LLMCallError
from autointerp.prompts import PromptTemplate, load_prompt, render_excerpt, token_lines
from autointerp.simulators.base import HighlightedExample, Judgement, Simulation, SimulatorError, Usage

T = TypeVar("T")

ACTIVATIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"activations": {"type": "array", "items": {"type": "integer"}}},
    "required": ["activations"],
    "additionalProperties": False,
}
ANSWERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answers": {"type": "array", "items": {"type": "integer"}}},
    "required": ["answers"],
    "additionalProperties": False,
}
EXCERPT_ACTIVATIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"activations": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}}},
    "required": ["activations"],
    "additionalProperties": False,
}
_NUMBER_LINE = re.compile(r"^[ \t]*(\d+)[\t ]+(.*?)[\t ]+(\d{1,2})\s*$")
_EXCERPT_LINE = re.compile(r"^\W*Excerpt (\d+)\b[^\t]*$")  # "Excerpt 2:", "**Excerpt 2 (7 tokens):**"


class MalformedAnswer(ValueError):
    """The model's text does not have the asked-for shape; the message says how, for the retry."""


class LLMSimulatorConfig(BaseModel):
    use_logprobs: bool | None = None  # None: whenever the client supports them
    top_logprobs: int = Field(20, ge=11, le=20)  # enough to see all of "0".."10"
    max_retries: int = Field(2, ge=0)  # extra attempts after a malformed answer
    examples_per_prompt: int = Field(5, ge=1)  # detection and fuzzing excerpts per request
    completion_tokens_per_line: int = Field(16, ge=4)  # max_tokens budget per token line
    simulation_examples_per_call: int = Field(1, ge=1)  # excerpts per simulation request (see module doc)


class LLMSimulator:
    def __init__(self, client: LLMClient, config: LLMSimulatorConfig | None = None):
        self.client = client
        self.config = config or LLMSimulatorConfig()
        self.name = client.name
        self.use_logprobs = client.supports_logprobs if self.config.use_logprobs is None else self.config.use_logprobs
        self.per_call = self.config.simulation_examples_per_call
        layout = "simulate_multi" if self.per_call > 1 else "simulate"
        self.simulate_prompt = load_prompt(layout if self.use_logprobs else f"{layout}_json")
        self.detect_prompt = load_prompt("detect")
        self.fuzz_prompt = load_prompt("fuzz")
        self.settings: dict[str, Any] = {
            "simulator": "llm",
            "model": client.name,
            "logprobs": self.use_logprobs,
            "prompts": {p.version: p.digest for p in (self.simulate_prompt, self.detect_prompt, self.fuzz_prompt)},
            "params": self.config.model_dump(exclude={"use_logprobs", "simulation_examples_per_call"}),
        }
        if self.per_call > 1:  # one per call adds nothing, so earlier scores keep their settings hash
            self.settings["simulation_examples_per_call"] = self.per_call

    # ---- simulation --------------------------------------------------------------------------

    async def simulate(self, explanation: str, examples: list[list[str]]) -> Simulation:
        """One request per `simulation_examples_per_call` examples, all in flight at once (the
        client bounds concurrency); any request without a readable answer fails the simulation."""
        if self.per_call == 1:
            predictions, usage = await _all_or_error([self._simulate_one(explanation, tokens) for tokens in examples])
            return Simulation(predictions=predictions, usage=usage)
        groups = [examples[i : i + self.per_call] for i in range(0, len(examples), self.per_call)]
        per_group, usage = await _all_or_error([self._simulate_group(explanation, group) for group in groups])
        return Simulation(predictions=[p for group in per_group for p in group], usage=usage)

    async def _simulate_one(self, explanation: str, tokens: list[str]) -> tuple[list[float], Usage]:
        user = self.simulate_prompt.render(
            "user", explanation=explanation, tokens=token_lines(tokens), count=str(len(tokens))
        )
        request = self._simulation_request(user, len(tokens), ACTIVATIONS_SCHEMA)
        if self.use_logprobs:
            return await self._ask(request, lambda r: read_number_lines(r, len(tokens)), "simulation")
        return await self._ask(request, lambda r: read_json_activations(r.text, len(tokens)), "simulation")

    async def _simulate_group(self, explanation: str, group: list[list[str]]) -> tuple[list[list[float]], Usage]:
        blocks = "\n\n".join(
            f"Excerpt {k} ({len(tokens)} tokens):\n{token_lines(tokens)}" for k, tokens in enumerate(group, start=1)
        )
        user = self.simulate_prompt.render("user", explanation=explanation, excerpts=blocks, count=str(len(group)))
        counts = [len(tokens) for tokens in group]
        request = self._simulation_request(user, sum(counts) + len(group), EXCERPT_ACTIVATIONS_SCHEMA)
        if self.use_logprobs:
            return await self._ask(request, lambda r: read_excerpt_number_lines(r, counts), "simulation")
        return await self._ask(request, lambda r: read_json_excerpt_activations(r.text, counts), "simulation")

    def _simulation_request(self, user: str, lines: int, schema: dict[str, Any]) -> ChatRequest:
        """A simulation request whose answer has `lines` lines (token lines and excerpt headers)."""
        return ChatRequest(
            model="",
            messages=_with_fewshot(self.simulate_prompt, user),
            max_tokens=self.config.completion_tokens_per_line * lines + 32,
            logprobs=self.use_logprobs,
            top_logprobs=self.config.top_logprobs if self.use_logprobs else 0,
            json_schema=None if self.use_logprobs else schema,
        )

    # ---- detection and fuzzing ---------------------------------------------------------------

    async def detect(self, explanation: str, examples: list[list[str]]) -> Judgement:
        rendered = [render_excerpt(tokens) for tokens in examples]
        return await self._judge(self.detect_prompt, explanation, rendered, "detection")

    async def fuzz(self, explanation: str, examples: list[HighlightedExample]) -> Judgement:
        rendered = [render_excerpt(e.tokens, set(e.highlighted)) for e in examples]
        return await self._judge(self.fuzz_prompt, explanation, rendered, "fuzzing")

    async def _judge(self, prompt: PromptTemplate, explanation: str, excerpts: list[str], what: str) -> Judgement:
        size = self.config.examples_per_prompt
        batches = [excerpts[i : i + size] for i in range(0, len(excerpts), size)]
        results, usage = await _all_or_error([self._judge_batch(prompt, explanation, b, what) for b in batches])
        return Judgement(answers=[answer for batch in results for answer in batch], usage=usage)

    async def _judge_batch(
        self, prompt: PromptTemplate, explanation: str, excerpts: list[str], what: str
    ) -> tuple[list[bool], Usage]:
        listing = "\n".join(f"Excerpt {k}: {text}" for k, text in enumerate(excerpts, start=1))
        user = prompt.render("user", explanation=explanation, examples=listing, count=str(len(excerpts)))
        request = ChatRequest(
            model="",
            messages=[
                ChatMessage(role="system", content=prompt.render("system")),
                ChatMessage(role="user", content=user),
            ],
            max_tokens=8 * len(excerpts) + 32,
            json_schema=ANSWERS_SCHEMA,
        )
        return await self._ask(request, lambda r: read_json_answers(r.text, len(excerpts)), what)

    # ---- asking until the answer reads -------------------------------------------------------

    async def _ask(self, request: ChatRequest, read: Callable[[ChatResponse], T], what: str) -> tuple[T, Usage]:
        usage = Usage()
        problem = ""
        sent: list[ChatRequest] = []
        for _ in range(1 + self.config.max_retries):
            sent.append(request)
            try:
                response = await self.client.complete(request)
            except InvalidReplyError as exc:  # cut off or off-schema (never cached): paid, worth a re-ask
                response = exc.response
                usage.add(response)
                problem = _why_unreadable(read, response) or str(exc)
            else:
                usage.add(response)
                try:
                    return read(response), usage
                except MalformedAnswer as exc:
                    problem = str(exc)
            request = request.model_copy(
                update={
                    "messages": [
                        *request.messages,
                        ChatMessage(role="assistant", content=response.text or "(empty)"),
                        ChatMessage(
                            role="user",
                            content=f"That answer could not be read: {problem}. Answer again, exactly in the format asked.",
                        ),
                    ]
                }
            )
        forget_unusable(self.client, sent)
        attempts = 1 + self.config.max_retries
        raise SimulatorError(f"{self.name}: malformed {what} answer after {attempts} attempts: {problem}", usage)


def _why_unreadable(read: Callable[[ChatResponse], object], response: ChatResponse) -> str | None:
    """The reader's own account of what is wrong with an answer (the wording the re-ask uses)."""
    try:
        read(response)
    except MalformedAnswer as exc:
        return str(exc)
    return None


async def _all_or_error(calls: list[Awaitable[tuple[T, Usage]]]) -> tuple[list[T], Usage]:
    """Await every call (none is abandoned mid-flight), sum what they spent, and fail as a whole if
    any failed: as SimulatorError carrying the total spend, unless the error must stop the stage
    (budget spent, key refused), which passes through unchanged."""
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    usage = Usage()
    values: list[T] = []
    errors: list[BaseException] = []
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            errors.append(outcome)
            usage.merge(getattr(outcome, "usage", None) or Usage())
        else:
            values.append(outcome[0])
            usage.merge(outcome[1])
    if errors:
        stopping = next((e for e in errors if not isinstance(e, (SimulatorError, LLMCallError))), None)
        raise stopping if stopping is not None else SimulatorError(str(errors[0]), usage)
    return values, usage


def _with_fewshot(prompt: PromptTemplate, user: str) -> list[ChatMessage]:
    return [
        ChatMessage(role="system", content=prompt.render("system")),
        ChatMessage(role="user", content=prompt.render("fewshot_user")),
        ChatMessage(role="assistant", content=prompt.render("fewshot_assistant")),
        ChatMessage(role="user", content=user),
    ]


# ---- reading answers ---------------------------------------------------------------------------


def read_number_lines(response: ChatResponse, count: int) -> list[float]:
    """Predictions from "index<TAB>token<TAB>number" lines: the expected value from logprobs at each
    number where they are given, else the written number. Every index 0..count-1 must appear once."""
    return _read_number_lines(response, [count], headed=False)[0]


def read_excerpt_number_lines(response: ChatResponse, counts: list[int]) -> list[list[float]]:
    """The same, for several excerpts: each excerpt's lines follow its "Excerpt K:" line, and every
    excerpt 1..len(counts) must be there whole (a reply cut short is malformed, not padded)."""
    return _read_number_lines(response, counts, headed=True)


def _read_number_lines(response: ChatResponse, counts: list[int], *, headed: bool) -> list[list[float]]:
    values: list[dict[int, float]] = [{} for _ in counts]
    seen: set[int] = set()
    expected = response.line_end_numbers or {}
    current: int | None = None if headed else 0
    offset = 0
    for line in response.text.split("\n"):
        header = _EXCERPT_LINE.match(line) if headed else None
        match = None if header else _NUMBER_LINE.match(line)
        if header:
            k = int(header.group(1))
            if not 1 <= k <= len(counts) or k in seen:
                raise MalformedAnswer(f"excerpt {k} is unexpected (excerpts 1..{len(counts)}, each once)")
            seen.add(k)
            current = k - 1
        elif match:
            if current is None:
                raise MalformedAnswer('token lines come before the first "Excerpt K:" line')
            where = f"excerpt {current + 1}, " if headed else ""
            index, number = int(match.group(1)), int(match.group(3))
            if number > 10:
                raise MalformedAnswer(f"{where}line {index} has activation {number}, above 10")
            if index in values[current]:
                raise MalformedAnswer(f"{where}index {index} appears twice")
            values[current][index] = expected.get(offset + match.end(3), float(number))
        offset += len(line) + 1
    for k, (found, count) in enumerate(zip(values, counts, strict=True), start=1):
        missing = [i for i in range(count) if i not in found]
        if missing or len(found) != count:
            where = f"excerpt {k}: " if headed else ""
            raise MalformedAnswer(
                f"{where}expected lines for indices 0..{count - 1}, missing {missing[:10]}"
                if missing
                else f"{where}expected {count} lines, got {len(found)}"
            )
    return [[found[i] for i in range(count)] for found, count in zip(values, counts, strict=True)]


def _json_payload(text: str) -> Any:
    """The JSON value in a reply, tolerating code fences and prose around it."""
    cleaned = re.sub(r"```(?:json)?", "", text).strip()
    for opener, closer in (("{", "}"), ("[", "]")):
        start, end = cleaned.find(opener), cleaned.rfind(closer)
        if start != -1 and end > start:
            try:
                return json.loads(cleaned[start : end + 1])
            except json.JSONDecodeError:
                continue
    raise MalformedAnswer("no JSON object or list found")


def _numbers(payload: Any, key: str, count: int) -> list[float]:
    values = payload.get(key) if isinstance(payload, dict) else payload
    if not isinstance(values, list):
        raise MalformedAnswer(f'expected {{"{key}": [...]}}')
    if len(values) != count:
        raise MalformedAnswer(f"expected {count} numbers in {key!r}, got {len(values)}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise MalformedAnswer(f"{key!r} must hold numbers only")
    return [float(v) for v in values]


def read_json_activations(text: str, count: int) -> list[float]:
    return _levels(_numbers(_json_payload(text), "activations", count))


def read_json_excerpt_activations(text: str, counts: list[int]) -> list[list[float]]:
    """{"activations": [[...], ...]}: one list per excerpt, each with one number per token."""
    payload = _json_payload(text)
    lists = payload.get("activations") if isinstance(payload, dict) else payload
    if not isinstance(lists, list) or len(lists) != len(counts):
        raise MalformedAnswer(f'expected {{"activations": [...]}} holding {len(counts)} lists, one per excerpt')
    found = []
    for k, (values, count) in enumerate(zip(lists, counts, strict=True), start=1):
        try:
            found.append(_levels(_numbers(values, "activations", count)))
        except MalformedAnswer as exc:
            raise MalformedAnswer(f"excerpt {k}: {exc}") from None
    return found


def _levels(values: list[float]) -> list[float]:
    if any(v < 0 or v > 10 for v in values):
        raise MalformedAnswer("activations must be between 0 and 10")
    return values


def read_json_answers(text: str, count: int) -> list[bool]:
    values = _numbers(_json_payload(text), "answers", count)
    if any(v not in (0.0, 1.0) for v in values):
        raise MalformedAnswer("answers must be 0 or 1")
    return [v == 1.0 for v in values]
