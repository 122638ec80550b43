"""`inspect` (the units most active on each token, with their explanations) and `search` (FTS5 over
explanations): checked against activations computed here from the model and SAE directly, and
against the explanations the catalog holds."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

from autointerp.cli import main
from autointerp.errors import UserError
from autointerp.query.inspect import Inspector
from autointerp.query.search import refresh_index, search_explanations
from autointerp.records import Explanation
from autointerp.store import open_store
from sae.autoencoder import SAEConfig, SparseAutoencoder
from sae.saelens_format import save_sae
from tests.test_store import make_unit

SOURCE = "builtin/blocks.0.mlp.act/topk-16"
TEXT = "def read(path):\n    return open(path).read()"


def explanation(kind: str, index: int, text: str, *, failed: bool = False, who: str = "offline-ngram") -> Explanation:
    return Explanation(
        unit_kind=kind, unit_index=index, text=text, explainer=who, settings_hash=who, failed=failed
    )  # fmt: skip


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    """The built-in model's neurons and a 16-feature SAE, every unit explained as 'KIND INDEX'."""
    torch.manual_seed(0)
    save_sae(SparseAutoencoder(SAEConfig(d_in=512, d_sae=16, k=4)), tmp_path / "sae")
    with open_store(tmp_path / "catalog.db") as store:
        subject = {"model": "builtin", "hook": "blocks.0.mlp.act", "device": "cpu", "dtype": "float32"}
        store.put_source(SOURCE, {"subject": subject, "sae": str(tmp_path / "sae")})
        store.put_units(SOURCE, [make_unit("feature", i) for i in range(16)])
        store.put_explanations(
            SOURCE, [explanation(k, i, f"{k} {i}") for k, n in (("neuron", 512), ("feature", 16)) for i in range(n)]
        )
    return tmp_path / "catalog.db"


def expected_top(values: torch.Tensor, top: int) -> list[list[tuple[int, float]]]:
    """Per row, the `top` largest positive values as (column, value), by a full sort."""
    rows = []
    for row in values.tolist():
        ranked = sorted(range(len(row)), key=lambda i: -row[i])[:top]
        rows.append([(i, row[i]) for i in ranked if row[i] > 0])
    return rows


def test_inspect_lists_each_tokens_most_active_units_with_their_explanations(catalog: Path, subject) -> None:
    with open_store(catalog) as store:
        inspector = Inspector(store, SOURCE)
        rows = inspector.inspect(TEXT, top=3)
        sae = inspector.sae
    ids = subject.tokenizer.encode_batch([TEXT])[0]
    acts = subject.activations(torch.tensor([[subject.tokenizer.bos_id, *ids]]), "blocks.0.mlp.act")[0, 1:]
    assert sae is not None
    expected = {"neuron": expected_top(acts, 3), "feature": expected_top(sae.encode(acts), 3)}
    assert [row.token for row in rows] == subject.tokenizer.token_strings(ids)
    for position, row in enumerate(rows):
        for kind in ("neuron", "feature"):
            got = [(u.index, u.activation) for u in row.units if u.kind == kind]
            assert [i for i, _ in got] == [i for i, _ in expected[kind][position]]
            assert [v for _, v in got] == pytest.approx([v for _, v in expected[kind][position]], abs=1e-3)
        assert all(u.explanation == f"{u.kind} {u.index}" for u in row.units)
        for unit in row.units:  # the features have stored stats (max 7.5); the neurons none here
            assert unit.fraction_of_max == (
                pytest.approx(unit.activation / 7.5, abs=1e-3) if unit.kind == "feature" else None
            )
    assert any(u.kind == "feature" for row in rows for u in row.units)


def test_inspect_reads_a_text_longer_than_the_context_in_pieces(catalog: Path, subject) -> None:
    text = " ".join(f"word{i}" for i in range(80))
    with open_store(catalog) as store:
        rows = Inspector(store, SOURCE).inspect(text, top=1, kinds=["neuron"])
    assert len(rows) == len(subject.tokenizer.encode_batch([text])[0]) > subject.n_ctx


def test_inspect_shows_only_the_named_explainers_labels(catalog: Path) -> None:
    with open_store(catalog) as store:
        store.put_explanations(
            SOURCE, [explanation("feature", i, f"theirs {i}", who="imported:delphi") for i in range(16)]
        )
        rows = Inspector(store, SOURCE).inspect(TEXT, top=2, kinds=["feature"], explainer="imported:delphi")
    units = [u for row in rows for u in row.units]
    assert units and all(u.explanation == f"theirs {u.index}" and u.explainer == "imported:delphi" for u in units)


def test_inspect_cli_prints_json_for_a_text_or_each_line_of_stdin(catalog: Path, capsys, monkeypatch) -> None:
    assert main(["inspect", str(catalog), TEXT, "--top", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(len(row["units"]) <= 4 for row in rows)
    assert {u["kind"] for row in rows for u in row["units"]} == {"neuron", "feature"}
    monkeypatch.setattr("sys.stdin", io.StringIO("def f():\n\nreturn x\n"))
    assert main(["inspect", str(catalog), "-", "--top", "1", "--kinds", "feature", "--json"]) == 0
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [[row["token"] for row in rows] for rows in answers] == [["def", " f", "():"], ["return", " x"]]


def test_search_ranks_explanations_by_bm25(catalog: Path) -> None:
    with open_store(catalog) as store:
        store.put_explanations(
            SOURCE,
            [
                explanation("feature", 0, "closing brackets in code"),
                explanation("feature", 1, "commas in lists"),
                explanation("feature", 2, "the keyword return in code"),
                explanation("feature", 3, "brackets", failed=True),
            ],
        )
        hits = search_explanations(store, "code bracket", kind="feature")  # stemmed: bracket finds brackets
        assert [(h.index, h.text) for h in hits] == [(0, "closing brackets in code"), (2, "the keyword return in code")]
        assert hits[0].score > hits[1].score > 0
        odd = search_explanations(store, 'bracket" NEAR (*')  # nothing in a query is read as FTS syntax
        assert [(h.index, h.text) for h in odd] == [(0, "closing brackets in code")]
        with pytest.raises(UserError):
            search_explanations(store, "?!")


def test_the_index_follows_replaced_explanations(catalog: Path) -> None:
    with open_store(catalog) as store:
        assert search_explanations(store, "feature")
        assert not refresh_index(store)  # unchanged since the search built it
        store.put_explanations(SOURCE, [explanation("feature", 5, "semicolons")])
        assert [(h.kind, h.index) for h in search_explanations(store, "semicolon")] == [("feature", 5)]
        assert {h.index for h in search_explanations(store, "feature")} == set(range(16)) - {5}


def test_search_cli_prints_hits_and_refuses_an_empty_query(catalog: Path, capsys) -> None:
    assert main(["search", str(catalog), "neuron 7", "--limit", "3", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 3 and hits[0]["text"] == "neuron 7"
    assert main(["search", str(catalog), "  "]) == 2
    assert capsys.readouterr().err.startswith("error: ")
