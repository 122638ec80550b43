"""The tools an agent tests a hypothesis with, each a plain function or small object:

- `Prober.run` / `Prober.run_texts`: a unit's activations on new token sequences or texts, batched
  through the subject model at the unit's hook (neurons, SAE features and planted units alike), each
  sequence counted against a budget of subject-model calls and logged;
- `CorpusWindows.search`: corpus windows whose text matches a pattern (reading the corpus is free);
- `edit`: a stored window with tokens replaced, deleted or inserted, ready to run again.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel

from autointerp.agent.planted import PlantedUnit
from autointerp.agent.rules import Vocab, execute
from autointerp.errors import UserError
from sae.autoencoder import SparseAutoencoder
from sae.corpus import Split, open_corpus, select_split
from sae.subject.models import SubjectModel
from sae.windows import token_windows

# (tokens [W, T], hook activations [W, T, d]) -> this unit's activations [W, T]
UnitActivations = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def neuron_unit(index: int) -> UnitActivations:
    return lambda tokens, acts: acts[..., index]


def feature_unit(sae: SparseAutoencoder, index: int) -> UnitActivations:
    def encode(tokens: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return sae.encode(acts.reshape(-1, acts.shape[-1]))[:, index].reshape(acts.shape[:2])

    return encode


def planted_unit(unit: PlantedUnit, vocab: Vocab) -> UnitActivations:
    return lambda tokens, acts: execute(unit.rule, tokens.cpu(), vocab).to(acts.device)


class ProbeRecord(BaseModel):
    """One sequence the agent ran, why, and what the unit did on it."""

    purpose: str
    tokens: list[str]
    activations: list[float]
    target: int | None = None  # the position the probe asks about, if one


class BudgetSpent(Exception):
    """The unit's budget of subject-model calls is used up."""


class Prober:
    """Runs token sequences through the subject model for one unit, counting each as one call."""

    def __init__(self, subject: SubjectModel, hook: str, unit: UnitActivations, vocab: Vocab, budget: int) -> None:
        self.subject, self.hook, self.unit, self.vocab = subject, hook, unit, vocab
        self.budget = budget
        self.calls = 0
        self.log: list[ProbeRecord] = []

    @property
    def remaining(self) -> int:
        return self.budget - self.calls

    def run(
        self,
        sequences: Sequence[Sequence[int]],
        purposes: Sequence[str] | str = "probe",
        targets: Sequence[int | None] | None = None,
    ) -> list[list[float]]:
        """The unit's activation at every token of each sequence (at most the model's context)."""
        if len(sequences) > self.remaining:
            raise BudgetSpent(f"{len(sequences)} probes asked for, {self.remaining} calls left")
        if not sequences:
            return []
        if any(not 0 < len(s) <= self.subject.n_ctx for s in sequences):
            raise UserError(f"each probe needs 1 to {self.subject.n_ctx} tokens")
        self.calls += len(sequences)
        out = self.activations(sequences)
        purposes = [purposes] * len(sequences) if isinstance(purposes, str) else list(purposes)
        targets = list(targets) if targets is not None else [None] * len(sequences)
        for seq, acts, purpose, target in zip(sequences, out, purposes, targets):
            self.log.append(
                ProbeRecord(
                    purpose=purpose, tokens=[self.vocab.strings[t] for t in seq], activations=acts, target=target
                )
            )
        return out

    def activations(self, sequences: Sequence[Sequence[int]]) -> list[list[float]]:
        """Unlogged and uncounted: for evaluation, never for the agent itself."""
        width = max(len(s) for s in sequences)
        # right-padding changes nothing before it: the model and every unit read left to right
        padded = torch.full((len(sequences), width), self.subject.tokenizer.bos_id, dtype=torch.long)
        for row, seq in enumerate(sequences):
            padded[row, : len(seq)] = torch.tensor(list(seq), dtype=torch.long)
        padded = padded.to(self.subject.device)
        acts = self.unit(padded, self.subject.activations(padded, self.hook).float()).cpu()
        return [[round(float(a), 4) for a in acts[row, : len(seq)]] for row, seq in enumerate(sequences)]

    def run_texts(self, texts: Sequence[str], purpose: str = "text") -> list[list[float]]:
        return self.run(self.subject.tokenizer.encode_batch(list(texts)), purpose)


class CorpusWindows:
    """Windows of one corpus split, tokenized once, to search and edit; `stride` > 1 keeps every
    stride-th window so a few hundred windows still span many documents."""

    def __init__(
        self,
        subject: SubjectModel,
        corpus: str = "stdlib",
        split: Split = "train",
        count: int = 400,
        stride: int = 7,
        offset: int = 0,
        ctx: int = 64,
    ) -> None:
        docs = select_split(open_corpus(corpus), split)
        windows = itertools.islice(
            token_windows(docs, subject.tokenizer, min(ctx, subject.n_ctx)), offset, None, stride
        )
        self.windows = np.stack(list(itertools.islice(windows, count)))
        self.vocab = Vocab(subject.tokenizer.token_strings(range(subject.tokenizer.vocab_size)))
        self.texts = ["".join(self.vocab.strings[t] for t in row) for row in self.windows.tolist()]

    def search(
        self, pattern: str, limit: int = 10, without: Sequence[int] = (), bos_id: int | None = 0
    ) -> list[list[int]]:
        """Windows whose text matches the regex `pattern` and that hold none of the ids `without`
        (nor a document separator), in corpus order."""
        try:
            regex = re.compile(pattern)
        except re.error as err:
            raise UserError(f"bad search pattern {pattern!r}: {err}") from None
        banned = set(without) | ({bos_id} if bos_id is not None else set())
        found = []
        for row, text in zip(self.windows.tolist(), self.texts):
            if regex.search(text) and not banned.intersection(row):
                found.append(row)
                if len(found) == limit:
                    break
        return found


def edit(
    tokens: Sequence[int],
    op: Literal["replace", "delete", "insert"],
    position: int,
    new: Sequence[int] = (),
    count: int = 1,
) -> list[int]:
    """`tokens` with `count` tokens at `position` replaced by `new`, deleted, or `new` inserted there."""
    if not 0 <= position <= len(tokens):
        raise UserError(f"edit position {position} is outside a {len(tokens)}-token window")
    out = list(tokens)
    if op == "replace":
        out[position : position + count] = list(new)
    elif op == "delete":
        del out[position : position + count]
    elif op == "insert":
        out[position:position] = list(new)
    else:
        raise UserError(f"unknown edit {op!r}: replace, delete or insert")
    return out
