"""The offline agent: no model of its own, a fixed grammar of hypotheses, counterfactual probes.

It starts from the harvest's explanation and tests its tokens one at a time. For each token it
keeps every rule of the grammar (autointerp.agent.rules) that could explain what the harvest shows:
the token always, only within k tokens after a token seen before its firing occurrences, not right
after one seen before its silent ones, only inside a string / a comment / a def line / at a line
start, only among the first k tokens, only on repeats, or not at all. It then builds counterfactual
probes - the token inserted into neutral text and into each context, moved early and late, placed
at each distance after each candidate token, repeated, its firing examples with the preceding
context deleted or swapped - and runs, each time, the probe on which the rules still standing
disagree most evenly. Rules a probe contradicts fall; the simplest survivor is the revised
hypothesis. With budget left it tests the tokens the unit fires on that the hypothesis misses, first
in the harvest's own examples, then in corpus windows free of the tokens it knows (a rare branch of
an OR).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import torch
from pydantic import BaseModel, Field

from autointerp.agent.counterfactuals import (
    AGENT_SNIPPETS,
    Probe,
    SnippetTokens,
    insert,
    near_misses,
)
from autointerp.agent.probes import CorpusWindows, Prober
from autointerp.agent.render import read_clauses, render
from autointerp.agent.rules import (
    CONTEXTS,
    Clause,
    Contexts,
    Hypothesis,
    Vocab,
    execute,
)
from autointerp.agent.trace import AgentTrace, Revision
from autointerp.records import UnitHarvest
from sae.subject.models import SubjectModel

DRIVER_NAME = "offline"
BASE_LENGTH = 40  # tokens of neutral text around an inserted token
INSERT_AT = 20


class OfflineAgentConfig(BaseModel):
    budget: int = Field(40, ge=1)  # subject-model calls per unit
    max_triggers: int = Field(4, ge=1)  # tokens tested one by one
    explore_windows: int = Field(6, ge=0)  # corpus windows kept back to look for firing the hypothesis misses
    fire_fraction: float = Field(0.2, gt=0, lt=1)  # "fires": above this share of the top explain activation
    n_bases: int = Field(4, ge=1)  # neutral windows to insert into
    n_preceders: int = Field(3, ge=1)  # candidate tokens for "after" and for "not after"
    min_mass: float = Field(0.05, ge=0)  # unquoted tokens need this share of the firing mass to be tested
    tolerance: int = Field(1, ge=0)  # probes keep splitting rules this many errors behind the best


class _Occurrence(BaseModel):
    tokens: list[int]
    position: int
    activation: float


class OfflineDriver:
    """One unit at a time: `run(harvest, explanation, prober)` -> AgentTrace."""

    name = DRIVER_NAME

    def __init__(self, vocab: Vocab, corpus: CorpusWindows, snippets: SnippetTokens, config: OfflineAgentConfig):
        self.vocab, self.corpus, self.snippets, self.config = vocab, corpus, snippets, config

    @classmethod
    def for_subject(
        cls, subject: SubjectModel, corpus: CorpusWindows, config: OfflineAgentConfig | None = None
    ) -> OfflineDriver:
        return cls(
            corpus.vocab, corpus, SnippetTokens(subject.tokenizer, AGENT_SNIPPETS), config or OfflineAgentConfig()
        )

    def run(self, harvest: UnitHarvest, explanation: str, prober: Prober) -> AgentTrace:
        return _Session(self, harvest, explanation, prober).run()


class _Session:
    def __init__(self, driver: OfflineDriver, harvest: UnitHarvest, explanation: str, prober: Prober) -> None:
        self.d, self.cfg, self.vocab = driver, driver.config, driver.vocab
        self.harvest, self.initial, self.prober = harvest, explanation, prober
        examples = harvest.examples_for("explain")
        top = max((a for e in examples for a in e.activations), default=0.0)
        # a unit silent in every explain example may still fire on the corpus: explore anyway
        self.theta = self.cfg.fire_fraction * top if top > 0 else 1e-6
        self.top = top if top > 0 else 1.0
        self.rows = [[self._id(t) for t in e.tokens] for e in examples]
        self.acts = [e.activations for e in examples]
        self.clauses = {c.token: c for c in read_clauses(explanation, self.vocab)}
        self.revisions: list[Revision] = []
        self.tested: set[str] = set()

    def _id(self, token: str) -> int:
        ids = self.vocab.ids.get(token)
        return ids[0] if ids else 0

    def hypothesis(self) -> Hypothesis:
        return Hypothesis(clauses=list(self.clauses.values()))

    def run(self) -> AgentTrace:
        triggers = self._triggers()
        known = [self.vocab.id_of(t) for t in triggers] + [self._id(t) for t in self.clauses]
        self.bases = [row[:BASE_LENGTH] for row in self.d.corpus.search(r"\w", self.cfg.n_bases, without=known)]
        for i, token in enumerate(triggers):
            left = len(triggers) - i
            reserve = self.cfg.explore_windows + 2 * self.cfg.explore_windows // 3
            self._test(token, max(2, (self.prober.remaining - reserve) // left))
        self._explore()
        final = render(self.hypothesis()) if self.clauses else self.initial
        return AgentTrace(
            unit_kind=self.harvest.kind, unit_index=self.harvest.index, driver=DRIVER_NAME,
            initial=self.initial, final=final, hypothesis=self.hypothesis(), budget=self.prober.budget,
            calls=self.prober.calls, revisions=self.revisions, probes=self.prober.log,
        )  # fmt: skip

    # --- what to test --------------------------------------------------------------------------

    def _occurrences(self, token: int) -> tuple[list[_Occurrence], list[_Occurrence]]:
        """(firing, silent) occurrences of `token` in the explain examples."""
        firing: list[_Occurrence] = []
        silent: list[_Occurrence] = []
        for row, acts in zip(self.rows, self.acts):
            for pos, t in enumerate(row):
                if t == token:
                    occ = _Occurrence(tokens=row, position=pos, activation=acts[pos])
                    (firing if acts[pos] > self.theta else silent).append(occ)
        return firing, silent

    def _triggers(self) -> list[str]:
        """Tokens to test: those the explanation quotes, then others carrying firing mass."""
        quoted = sorted(self.clauses.values(), key=lambda c: -c.strength)
        order = [c.token for c in quoted]
        mass: dict[int, float] = defaultdict(float)
        for row, acts in zip(self.rows, self.acts):
            for t, a in zip(row, acts):
                if a > self.theta:
                    mass[t] += a
        total = sum(mass.values()) or 1.0
        for t, m in _ranked(mass):
            s = self.vocab.strings[t]
            if s not in order and m >= self.cfg.min_mass * total and len(self.vocab.ids[s]) == 1:
                order.append(s)
        return [t for t in order if t in self.vocab.ids][: self.cfg.max_triggers]

    def _preceders(
        self, firing: list[_Occurrence], silent: list[_Occurrence], token: int
    ) -> tuple[list[int], list[int]]:
        """Candidate tokens for "after" (near firing occurrences more than silent ones) and for
        "not after" (right before silent occurrences more than firing ones)."""

        def share(occs: list[_Occurrence], span: int) -> Counter[int]:
            seen: Counter[int] = Counter()
            for o in occs:
                seen.update(set(o.tokens[max(0, o.position - span) : o.position]) - {token})
            return Counter({t: n / max(1, len(occs)) for t, n in seen.items()})

        ranked: dict[int, float] = {}
        for span in (1, 2, 3):  # the best distance for each token: "right after" must not lose to "near"
            near_f, near_s = share(firing, span), share(silent, span)
            for t in near_f:
                ranked[t] = max(ranked.get(t, -1.0), near_f[t] - near_s[t])
        after = sorted(ranked, key=lambda t: (-ranked[t], t))[: self.cfg.n_preceders]
        prev_f, prev_s = share(firing, 1), share(silent, 1)
        not_after = sorted(prev_s, key=lambda t: (-(prev_s[t] - prev_f[t]), t))[: self.cfg.n_preceders]
        # the harvest may hold no silent occurrence at all: the corpus says what usually comes before
        before_in_corpus: Counter[int] = Counter()
        for row in self.d.corpus.windows.tolist():
            before_in_corpus.update(row[i - 1] for i in range(1, len(row)) if row[i] == token)
        for t, _ in before_in_corpus.most_common(self.cfg.n_preceders):
            if t not in not_after and t != token:
                not_after.append(t)
        return after, not_after

    def _candidates(self, token: str, after: list[int], not_after: list[int]) -> list[Clause | None]:
        s = self.vocab.strings
        out: list[Clause | None] = [Clause(token=token)]
        out += [Clause(token=token, condition=c) for c in CONTEXTS]  # type: ignore[arg-type]
        out += [Clause(token=token, condition="early", within=k) for k in (8, 16, 32)]
        out.append(Clause(token=token, condition="repeated"))
        out += [Clause(token=token, condition="after", other=s[b], within=k) for b in after for k in (1, 2, 3)]
        out += [Clause(token=token, condition="not_after", other=s[b]) for b in not_after]
        out.append(None)  # not a trigger at all
        return out

    def _pool(self, token: int, after: list[int], not_after: list[int], firing: list[_Occurrence]) -> list[Probe]:
        bases = self.bases or [[]]
        pool = [insert(b, INSERT_AT, [token], "inserted into neutral text") for b in bases]
        for i, context in enumerate(self.d.snippets.parts):
            for b in bases[i % len(bases) :][:2]:
                pool.append(self.d.snippets.place(token, context, b, INSERT_AT))
        for k, at in enumerate((0, 5, 11, 15, 26)):
            pool.append(insert(bases[k % len(bases)], at, [token], f"moved to position {at}"))
        s = self.vocab.strings
        for other in dict.fromkeys(after + not_after):
            for gap in (0, 1, 2, 3):
                b = bases[gap % len(bases)]
                seq = [other] + list(b[INSERT_AT : INSERT_AT + gap]) + [token]
                pool.append(insert(b, INSERT_AT, seq, f"{gap} tokens after {s[other]!r}"))
        for b in bases[:2]:
            twice = insert(b, 12, [token], "")
            pool.append(insert(twice.tokens, 24, [token], "repeated"))
        for o in firing[:3]:
            seq, at = o.tokens[: o.position + 1], o.position
            pool.append(Probe(tokens=seq, target=at, purpose="a firing example, as it is"))
            if at >= 1:
                cut = max(0, at - 3)
                pool.append(Probe(tokens=seq[:cut] + [token], target=cut, purpose="its preceding tokens deleted"))
                swapped = seq[:cut] + list(bases[0][: at - cut]) + [token]
                pool.append(Probe(tokens=swapped, target=at, purpose="its preceding tokens swapped for neutral ones"))
        return [p for p in pool if p.target < len(p.tokens) and p.tokens[p.target] == token]

    # --- testing -------------------------------------------------------------------------------

    def _test(self, token: str, budget: int) -> None:
        """Narrow the rule for `token` with at most `budget` probes; update the hypothesis."""
        self.tested.add(token)
        tid = self.vocab.id_of(token)
        firing, silent = self._occurrences(tid)
        after, not_after = self._preceders(firing, silent, tid)
        candidates = self._candidates(token, after, not_after)
        pool = self._pool(tid, after, not_after, firing)
        predicted = _predictions(candidates, pool, self.vocab)
        errors = [0] * len(candidates)
        fired_values: list[float] = []
        asked: set[int] = set()
        spent = 0
        fired_at: Probe | None = None
        while spent < budget and self.prober.remaining > 0:
            best = min(errors)
            # rules one error behind stay in play: one noisy probe must not settle a real unit
            alive = [i for i, e in enumerate(errors) if e <= best + self.cfg.tolerance]
            choice = _most_divisive(predicted, alive, asked)
            if choice is None:
                break
            asked.add(choice)
            probe = pool[choice]
            value = self.prober.run([probe.tokens], f"{token!r}: {probe.purpose}", [probe.target])[0][probe.target]
            spent += 1
            fired = value > self.theta
            if fired:
                fired_values.append(value)
            for i in range(len(candidates)):
                errors[i] += predicted[i][choice] != fired
            verdict = "fired" if fired else "stayed silent"
            self._adopt(
                token,
                candidates[errors.index(min(errors))],
                fired_values,
                f"{token!r} {verdict} ({value:.2f}) when {probe.purpose}",
            )
            if fired:
                fired_at = probe
        if token in self.clauses and fired_at is not None:
            self._generalise(token, fired_at)

    def _generalise(self, token: str, fired: Probe) -> None:
        """Put near-miss tokens of the same class where `token` fired; those that fire too join
        the hypothesis under the same condition."""
        for other in near_misses(token, self.vocab.ids):
            if self.prober.remaining <= 0 or other in self.clauses or len(self.vocab.ids[other]) != 1:
                continue
            seq = list(fired.tokens)
            seq[fired.target] = self.vocab.id_of(other)
            purpose = f"{other!r} in place of {token!r} where it fired ({fired.purpose})"
            value = self.prober.run([seq], purpose, [fired.target])[0][fired.target]
            self.tested.add(other)
            if value > self.theta:
                clause = self.clauses[token].model_copy(update={"token": other})
                self._adopt(other, clause, [value], f"{other!r} fired too ({value:.2f}) where {token!r} did")

    def _adopt(self, token: str, clause: Clause | None, fired_values: list[float], reason: str) -> None:
        before = render(self.hypothesis()) if self.clauses else self.initial
        old = self.clauses.pop(token, None)
        if clause is not None:
            strength = (
                sum(fired_values) / len(fired_values) / self.top if fired_values else (old.strength if old else 1.0)
            )
            self.clauses[token] = clause.model_copy(update={"strength": round(min(1.0, strength), 3)})
        after = render(self.hypothesis())
        changed = (old is None) != (clause is None) or (
            old is not None
            and clause is not None
            and old.model_copy(update={"strength": 1}) != clause.model_copy(update={"strength": 1})
        )
        if changed:
            self.revisions.append(Revision(calls=self.prober.calls, before=before, after=after, reason=reason))

    def _explore(self) -> None:
        """Test the tokens the unit fires on that the hypothesis misses: first in the harvest's own
        examples (free), then in corpus windows free of known tokens (a rare branch of an OR)."""
        self._test_missed(self.rows, self.acts)
        n = min(max(self.cfg.explore_windows, self.prober.remaining // 2), self.prober.remaining)
        if n <= 0:
            return
        known = [self._id(t) for t in self.clauses] + [self.vocab.id_of(t) for t in self.tested]
        windows = self.d.corpus.search(r"\w", n + self.cfg.n_bases, without=known)[self.cfg.n_bases :]
        if windows:
            self._test_missed(windows, self.prober.run(windows, "corpus window free of the known tokens"))

    def _test_missed(self, rows: list[list[int]], acts: list[list[float]]) -> None:
        """Test (up to two of) the untested tokens firing in `rows` where the hypothesis predicts nothing."""
        if not rows or self.prober.remaining <= 0:
            return
        missed: dict[int, float] = defaultdict(float)
        for row, values in zip(rows, acts):
            if not row:
                continue
            predicted = execute(self.hypothesis(), torch.tensor([row]), self.vocab)[0].tolist()
            for t, a, p in zip(row, values, predicted):
                if a > self.theta and p == 0:
                    missed[t] += a
        untested = [t for t, _ in _ranked(missed) if self.vocab.strings[t] not in self.tested]
        for t in untested[:2]:
            token = self.vocab.strings[t]
            if self.prober.remaining <= 0 or len(self.vocab.ids[token]) != 1:
                continue
            self._test(token, max(2, self.prober.remaining // 2))


def _ranked(mass: dict[int, float]) -> list[tuple[int, float]]:
    """Tokens by summed activation, largest first (ties by id, for determinism)."""
    return sorted(mass.items(), key=lambda kv: (-kv[1], kv[0]))


def _predictions(candidates: Sequence[Clause | None], pool: list[Probe], vocab: Vocab) -> list[list[bool]]:
    """[candidate][probe]: does the candidate rule fire at the probe's target?"""
    out = [[False] * len(pool) for _ in candidates]
    for j, probe in enumerate(pool):
        tokens = torch.tensor([probe.tokens])
        contexts = Contexts(tokens, vocab)
        for i, clause in enumerate(candidates):
            if clause is not None:
                out[i][j] = bool(execute(Hypothesis(clauses=[clause]), tokens, vocab, contexts)[0, probe.target] > 0)
    return out


def _most_divisive(predicted: list[list[bool]], alive: list[int], asked: set[int]) -> int | None:
    """The unasked probe on which the surviving candidates split most evenly (None: no split)."""
    best, best_split = None, 0
    for j in range(len(predicted[0]) if predicted else 0):
        if j in asked:
            continue
        fires = sum(predicted[i][j] for i in alive)
        split = min(fires, len(alive) - fires)
        if split > best_split:
            best, best_split = j, split
    return best
