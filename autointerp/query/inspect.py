"""Which units fire on a text, and what the catalog says they mean (Neuronpedia's "search by inference").

The catalog's source config names the subject model, the hook and the SAE folder the units were
harvested from; the text runs through that model up to the hook, once, and each token gets the units
of each kind with the highest positive activation, with their stored explanations.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel

from autointerp.errors import UserError
from autointerp.store import CatalogStore
from sae.autoencoder import SparseAutoencoder
from sae.saelens_format import load_sae
from sae.subject.models import SubjectModel, load_subject


class ActiveUnit(BaseModel):
    kind: str
    index: int
    activation: float
    fraction_of_max: float | None  # activation / the unit's max over the harvest, when known
    explanation: str | None
    explainer: str | None


class TokenUnits(BaseModel):
    position: int  # 0 is the text's first token (the BOS the model reads first is not shown)
    token: str
    units: list[ActiveUnit]


class Inspector:
    """The subject model and SAE of one catalog source, loaded once for any number of texts."""

    def __init__(self, store: CatalogStore, source: str, *, sae: str | None = None, device: str | None = None):
        config = store.source_config(source)
        subject = config.get("subject")
        if not isinstance(subject, dict) or "model" not in subject:
            raise UserError(f"source {source!r} of {store.path} does not record its subject model")
        self.store, self.source = store, source
        self.hook: str = subject["hook"]
        self.subject: SubjectModel = load_subject(
            subject["model"], device=device or subject.get("device", "cpu"), dtype=subject.get("dtype", "float32")
        )
        folder = sae or config.get("sae")
        self.sae: SparseAutoencoder | None = None
        if folder:
            width = self.subject.hook_width(self.hook)
            self.sae = load_sae(_sae_folder(Path(folder), store.path), width, device=str(self.subject.device))

    def activations(self, text: str) -> tuple[list[str], dict[str, torch.Tensor]]:
        """The text's tokens and each kind's activations on them, [tokens, units]. A text longer than
        the model's context is read in consecutive pieces, each after a BOS as in the harvest."""
        tokenizer = self.subject.tokenizer
        ids = tokenizer.encode_batch([text])[0]
        if not ids:
            raise UserError("the text has no tokens")
        room = self.subject.n_ctx - 1  # one place for the BOS
        pieces = []
        with torch.no_grad():
            for start in range(0, len(ids), room):
                tokens = torch.tensor([[tokenizer.bos_id, *ids[start : start + room]]], device=self.subject.device)
                pieces.append(self.subject.activations(tokens, self.hook)[0, 1:].float())
            acts = torch.cat(pieces)
            kinds = {"neuron": acts}
            if self.sae is not None:
                kinds["feature"] = self.sae.encode(acts)
        return tokenizer.token_strings(ids), kinds

    def inspect(
        self, text: str, *, top: int = 5, kinds: Sequence[str] = ("neuron", "feature"), explainer: str | None = None
    ) -> list[TokenUnits]:
        """Per token, the `top` most active units of each kind (positive activations only)."""
        strings, by_kind = self.activations(text)
        picked: list[list[tuple[str, int, float]]] = [[] for _ in strings]
        for kind in kinds:
            if kind not in by_kind:
                raise UserError(f"source {self.source!r} has no {kind} units (no SAE recorded for it)")
            values, indices = by_kind[kind].topk(min(top, by_kind[kind].shape[1]), dim=1)
            for position, (row_values, row_indices) in enumerate(zip(values.tolist(), indices.tolist())):
                picked[position] += [(kind, i, v) for v, i in zip(row_values, row_indices) if v > 0]
        known = unit_labels(self.store, self.source, {(k, i) for row in picked for k, i, _ in row}, explainer)
        return [
            TokenUnits(position=p, token=token, units=[_active(k, i, v, known.get((k, i))) for k, i, v in row])
            for p, (token, row) in enumerate(zip(strings, picked))
        ]


def _active(
    kind: str, index: int, value: float, label: tuple[float | None, str | None, str | None] | None
) -> ActiveUnit:
    top, text, who = label or (None, None, None)
    return ActiveUnit(
        kind=kind,
        index=index,
        activation=round(value, 4),
        fraction_of_max=round(value / top, 3) if top else None,
        explanation=text,
        explainer=who,
    )


def _sae_folder(folder: Path, db: Path) -> Path:
    """The recorded SAE folder; a relative one is read from the catalog's folder when it is not
    found from here (a run folder moved or run from elsewhere)."""
    if folder.exists() or folder.is_absolute():
        return folder
    return db.parent / folder


def unit_labels(
    store: CatalogStore, source: str, units: set[tuple[str, int]], explainer: str | None
) -> dict[tuple[str, int], tuple[float | None, str | None, str | None]]:
    """{(kind, index): (max activation, latest usable explanation, who wrote it)} for these units;
    `explainer` (a model spec or an explainer name) keeps only its explanations."""
    found: dict[tuple[str, int], tuple[float | None, str | None, str | None]] = {}
    for kind in sorted({k for k, _ in units}):
        indices = sorted(i for k, i in units if k == kind)
        marks = ", ".join("?" * len(indices))
        params: list[Any] = [source, kind, *indices]
        for unit, top in store.db.execute(
            f'SELECT "index", max_activation FROM units WHERE source = ? AND kind = ? AND "index" IN ({marks})',
            params,
        ):
            found[(kind, unit)] = (top, None, None)
        sql = (
            'SELECT "index", text, coalesce(model, explainer) FROM explanations WHERE source = ? AND kind = ? '
            f"AND \"index\" IN ({marks}) AND NOT failed AND trim(text) != ''"
        )
        if explainer is not None:
            sql += " AND (model = ? OR explainer = ?)"
            params += [explainer, explainer]
        for unit, text, who in store.db.execute(sql + " ORDER BY created_at, rowid", params):
            found[(kind, unit)] = (found.get((kind, unit), (None,))[0], text, who)  # the latest wins
    return found
