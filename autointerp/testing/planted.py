"""Synthetic units whose activations are driven by known trigger tokens: ground truth for the
explainers, simulators and scorers.

A planted unit fires with a fixed strength on each of its trigger tokens, optionally only when a
given token comes right before (a context rule), plus optional faint noise elsewhere. Windows are
filler text with triggers sprinkled in; the harvest has top, quantile, random and silent examples,
half in the explain split and half in the score split, like a real harvest.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter
from typing import Any

from pydantic import BaseModel, Field

from autointerp.language import predict
from autointerp.testing.fake_llm_server import FakeReply, FakeToken
from sae.records import ActivationExample, ExampleSplit, Sampling, UnitHarvest, UnitKind, UnitStats

FILLER = [
    " the", " a", " of", " and", " to", " in", " is", " was", " it", " that", " on", " for",
    " with", " as", " at", " by", " from", " this", " be", " are", " or", " not", " but", " we",
    " they", " he", " she", " you", " one", " all", " time", " day", " year", " way", " man",
    " house", " water", " tree", " stone", " road", " city", " table", " window", " garden",
    " river", " paper", " light", " music", " story", " friend", " little", " old", " new",
    " long", " small", " good", " great", " went", " said", " made", " came", " took", " saw",
    " found", " gave", " told", " then", " there", " here", " when", " where", " after", ",", ".",
]  # fmt: skip


class PlantedUnit(BaseModel):
    """What drives one synthetic unit."""

    index: int
    triggers: dict[str, float]  # token -> activation where it fires
    context: dict[str, str] = Field(default_factory=dict)  # token -> the token it must follow to fire
    noise_rate: float = 0.0  # chance that any other token gets a faint activation
    kind: UnitKind = "feature"

    def activations(self, tokens: list[str], rng: random.Random) -> list[float]:
        top = max(self.triggers.values())
        acts = []
        for i, token in enumerate(tokens):
            required = self.context.get(token)
            if token in self.triggers and (required is None or (i > 0 and tokens[i - 1] == required)):
                acts.append(round(self.triggers[token] * rng.uniform(0.9, 1.1), 4))
            elif self.noise_rate and rng.random() < self.noise_rate:
                acts.append(round(top * rng.uniform(0.02, 0.08), 4))
            else:
                acts.append(0.0)
        return acts


def planted_harvest(
    unit: PlantedUnit,
    *,
    seed: int = 0,
    window: int = 24,
    top: int = 10,
    quantile: int = 6,
    random_windows: int = 12,
    silent: int = 6,
) -> UnitHarvest:
    """A harvest of `unit`; each count is per split (explain and score get the same numbers)."""
    rng = random.Random(f"{seed}:{unit.index}")
    # window ids name the same tokens across the units of a source (as a real harvest's do), so
    # each planted unit gets its own range
    window_ids = iter(range(unit.index * 10**6, (unit.index + 1) * 10**6))
    examples: list[ActivationExample] = []

    def add(tokens: list[str], acts: list[float], split: ExampleSplit, sampling: Sampling, band: int | None = None):
        examples.append(
            ActivationExample(
                window_id=next(window_ids), tokens=tokens, activations=acts, split=split,
                sampling=sampling, quantile=band,
            )
        )  # fmt: skip

    for split in ("explain", "score"):
        # Top: windows with several triggers, keep the strongest.
        candidates = []
        for _ in range(top * 3):
            tokens = _window(unit, rng, window, plant=rng.randint(2, 4))
            candidates.append((tokens, unit.activations(tokens, rng)))
        candidates.sort(key=lambda c: -max(c[1]))
        for tokens, acts in candidates[:top]:
            add(tokens, acts, split, "top")
        # Quantile: one trigger each, banded by how strongly it fires.
        for q in range(quantile):
            tokens = _window(unit, rng, window, plant=1)
            acts = unit.activations(tokens, rng)
            add(tokens, acts, split, "quantile", q * 4 // max(quantile, 1))
        # Random: filler where triggers appear at their natural rate.
        for _ in range(random_windows):
            tokens = _window(unit, rng, window, plant=0, natural_rate=0.03)
            add(tokens, unit.activations(tokens, rng), split, "random")
        # Silent: random windows where the unit never fires; for a noisy (dense) unit that always
        # fires a little, the least active of a batch of random windows, as the real harvest does.
        drawn = []
        for _ in range(silent * 20):
            tokens = _window(unit, rng, window, plant=0, natural_rate=0.03)
            drawn.append((tokens, unit.activations(tokens, rng)))
            if sum(1 for _, acts in drawn if max(acts) == 0) >= silent:
                break
        drawn.sort(key=lambda d: max(d[1]))
        for tokens, acts in drawn[:silent]:
            add(tokens, acts, split, "silent")
    return UnitHarvest(kind=unit.kind, index=unit.index, stats=_stats(examples), examples=examples)


def _window(unit: PlantedUnit, rng: random.Random, length: int, *, plant: int, natural_rate: float = 0.0) -> list[str]:
    tokens = [rng.choice(FILLER) for _ in range(length)]
    triggers = sorted(unit.triggers)
    spots = rng.sample(range(1, length), plant) if plant else []
    spots += [i for i in range(1, length) if rng.random() < natural_rate]
    for i in spots:
        trigger = rng.choice(triggers)
        tokens[i] = trigger
        required = unit.context.get(trigger)
        # Context triggers get their context most of the time, so both cases are seen.
        if required is not None and rng.random() < 0.7:
            tokens[i - 1] = required
    return tokens


def _stats(examples: list[ActivationExample]) -> UnitStats:
    acts = [a for e in examples for a in e.activations]
    active = [a for a in acts if a > 0]
    return UnitStats(
        tokens_seen=len(acts),
        active_count=len(active),
        density=len(active) / max(len(acts), 1),
        max_activation=max(acts, default=0.0),
        mean_activation=sum(acts) / max(len(acts), 1),
        mean_active_activation=sum(active) / max(len(active), 1),
    )


def planted_units(count: int = 6, *, seed: int = 0, kind: UnitKind = "feature") -> list[PlantedUnit]:
    """A varied set of planted units: single triggers, graded pairs, and context rules."""
    words = [" God", " Lord", " March", " April", " bank", " river", " king", " queen", " red", " blue",
             " Python", " code", " def", " class", " Paris", " London"]  # fmt: skip
    rng = random.Random(seed)
    units = []
    for index in range(count):
        a, b = rng.sample(words, 2)
        shape = index % 3
        if shape == 0:
            units.append(PlantedUnit(index=index, triggers={a: 5.0}, kind=kind))
        elif shape == 1:
            units.append(PlantedUnit(index=index, triggers={a: 6.0, b: 2.0}, noise_rate=0.02, kind=kind))
        else:
            units.append(PlantedUnit(index=index, triggers={a: 4.0}, context={a: " of"}, kind=kind))
    return units


# ---- a fake LLM that knows what the offline simulator knows -----------------------------------
# Plugged into the fake server (fake_llm_server.py) as its responder, it answers our explain, simulate,
# detect and fuzz prompts the way a sensible model would: it reads the prompt, applies the offline
# explanation parser to the explanation in it, and replies in the asked-for format (with logprobs
# around each number for OpenAI-style requests). So a correct explanation scores high through the
# whole LLM path and a wrong one low, without any real model.


_TOKEN_LINE = re.compile(r'^(\d+)\t(".*")$', re.MULTILINE)
_EXCERPT = re.compile(r"^Excerpt (\d+): (.*)$", re.MULTILINE)
_EXCERPT_BLOCK = re.compile(r"^Excerpt \d+ \(\d+ tokens\):$", re.MULTILINE)  # several per simulation request
_PIECE = re.compile(r" ?<<.*?>>| ?[A-Za-z0-9_]+| ?[^\sA-Za-z0-9_]|\s")


def _conversation(body: dict[str, Any]) -> tuple[str, str]:
    """(system text, last user text) of an OpenAI or Anthropic request body."""
    system = body.get("system") or ""
    if isinstance(system, list):
        system = " ".join(block.get("text", "") for block in system)
    last_user = ""
    for message in body.get("messages", []):
        content = message.get("content", "")
        if isinstance(content, list):
            content = " ".join(block.get("text", "") for block in content if isinstance(block, dict))
        if message.get("role") == "system":
            system = content
        elif message.get("role") == "user":
            last_user = content
    return system, last_user


def _excerpt_tokens(text: str) -> tuple[list[str], list[int]]:
    """Tokens of a rendered excerpt (filler-style text) and the positions marked <<like this>>."""
    tokens: list[str] = []
    marked: list[int] = []
    for piece in _PIECE.findall(text):
        if "<<" in piece:
            marked.append(len(tokens))
            piece = piece.replace("<<", "").replace(">>", "")
        tokens.append(piece)
    return tokens, marked


class SimulatingResponder:
    """Callable responder for FakeLLMServer; counts what it was asked."""

    def __init__(self, explain_preamble: bool = False):
        self.explain_preamble = explain_preamble
        self.asked: Counter[str] = Counter()

    def __call__(self, body: dict[str, Any], api: str) -> str | FakeReply:
        system, user = _conversation(body)
        explanation = user.split("\n", 1)[0].removeprefix("Explanation: ")
        if "Explanation: <your explanation>" in system:
            self.asked["explain"] += 1
            return self._explain(user)
        if "Tokens (" in user or _EXCERPT_BLOCK.search(user):
            self.asked["simulate"] += 1
            return self._simulate(explanation, user, api == "openai" and bool(body.get("logprobs")))
        excerpts = [_excerpt_tokens(text) for _, text in _EXCERPT.findall(user)]
        if "random tokens" in system:
            self.asked["fuzz"] += 1
            answers = []
            for tokens, marked in excerpts:
                predicted = predict(explanation, tokens)
                answers.append(int(bool(marked) and sum(predicted[i] > 0 for i in marked) * 2 >= len(marked)))
        else:
            self.asked["detect"] += 1
            answers = [int(max(predict(explanation, tokens), default=0) > 0) for tokens, _ in excerpts]
        return json.dumps({"answers": answers})

    def _simulate(self, explanation: str, user: str, logprobs: bool) -> str | FakeReply:
        """One excerpt ("Tokens (n):") or several ("Excerpt K (n tokens):" blocks), answered in the
        layout the prompt asks for: number lines (with logprobs) or JSON."""
        blocks = _EXCERPT_BLOCK.split(user)[1:]
        headed = bool(blocks)
        excerpts = [[json.loads(t) for _, t in _TOKEN_LINE.findall(block)] for block in (blocks or [user])]
        levels = [[round(v) for v in predict(explanation, tokens)] for tokens in excerpts]
        if logprobs:
            pieces = [
                piece
                for k, (tokens, excerpt_levels) in enumerate(zip(excerpts, levels), start=1)
                for piece in _number_lines_with_logprobs(tokens, excerpt_levels, f"Excerpt {k}:\n" if headed else "")
            ]
            return FakeReply(text="".join(p.token for p in pieces), logprobs=pieces)
        return json.dumps({"activations": levels if headed else levels[0]})

    def _explain(self, user: str) -> str:
        weights: Counter[str] = Counter()
        for line in user.split("\n"):
            if line.startswith("Active tokens: "):
                for token, level in re.findall(r'("(?:[^"\\]|\\.)*") (\d+)', line):
                    weights[json.loads(token)] += int(level)
        ranked = [t for t, w in weights.most_common(3) if w >= 0.3 * weights.most_common(1)[0][1]]
        quoted = " and ".join(json.dumps(t) for t in ranked) or '"nothing"'
        preamble = "Sure! Here is what I found.\n\n" if self.explain_preamble else ""
        return f"{preamble}Explanation: fires on {quoted}"


def _number_lines_with_logprobs(tokens: list[str], levels: list[int], header: str = "") -> list[FakeToken]:
    """ "i<TAB>token<TAB>n" lines (after `header`) whose number tokens carry a distribution peaked at n."""
    pieces: list[FakeToken] = [FakeToken(header, 0.0, [(header, 0.0)])] if header else []
    for i, (token, level) in enumerate(zip(tokens, levels)):
        prefix = f"{i}\t{json.dumps(token, ensure_ascii=False)}\t"
        pieces.append(FakeToken(prefix, 0.0, [(prefix, 0.0)]))
        runner_up = 0 if level else 1
        top = [(str(level), math.log(0.9)), (str(runner_up), math.log(0.1))]
        pieces.append(FakeToken(str(level), math.log(0.9), top))
        pieces.append(FakeToken("\n", 0.0, [("\n", 0.0)]))
    return pieces
