"""JSONL and Neuronpedia exports: round trips of hand-made catalogs, and the all-formats export."""

from __future__ import annotations

import random

import pytest

from autointerp.errors import UserError
from autointerp.export import export_catalog, read_jsonl, read_neuronpedia, write_jsonl, write_neuronpedia
from autointerp.export.neuronpedia import layer_id_for, model_id_for
from autointerp.records import Explanation
from tests.fake_catalog import SOURCE, make_catalog, make_unit
from tests.html_data import read_script


def test_jsonl_round_trip_one_line_per_unit(tmp_path):
    entries = make_catalog(n_neurons=3, n_features=4)
    path = write_jsonl(entries, tmp_path, max_examples=5)
    assert path == tmp_path / "catalog.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(entries)
    assert path.read_bytes().isascii()  # non-ASCII tokens are \u-escaped: safe for any line splitter

    records = read_jsonl(tmp_path)
    for entry, rec in zip(entries, records):
        h = entry.harvest
        assert (rec["source"], rec["kind"], rec["index"], rec["key"]) == (entry.source, h.kind, h.index, h.key)
        assert rec["stats"] == h.stats.model_dump()
        assert [e["text"] for e in rec["explanations"]] == [e.text for e in entry.explanations]
        assert [(s["scorer"], s["value"], s["failed"]) for s in rec["scores"]] == [
            (s.scorer, s.value, s.failed) for s in entry.scores
        ]
        assert "details" not in rec["scores"][0]
        tops = sorted((e for e in h.examples if e.sampling == "top"), key=lambda e: -e.max_activation)[:5]
        assert [(t["window_id"], t["tokens"], t["activations"]) for t in rec["top_examples"]] == [
            (e.window_id, e.tokens, e.activations) for e in tops
        ]
        assert rec["promoted_tokens"] == [t.model_dump() for t in h.promoted_tokens]
        assert rec["top_neurons"] == [n.model_dump() for n in h.top_neurons]


def test_jsonl_keeps_whitespace_and_unicode_tokens_exactly(tmp_path):
    entry = make_catalog(n_neurons=1, n_features=1)[0]
    entry.harvest.examples[0].tokens[:4] = ["\n", "\t", "日本", "  "]
    write_jsonl([entry], tmp_path, max_examples=50)
    tokens = [t["tokens"] for t in read_jsonl(tmp_path / "catalog.jsonl")[0]["top_examples"]]
    assert ["\n", "\t", "日本", "  "] in [t[:4] for t in tokens]


def test_jsonl_writes_non_finite_numbers_as_null(tmp_path):
    entry = make_catalog(n_neurons=1, n_features=1)[0]
    entry.scores[0].value = float("nan")
    entry.scores[0].parts = {"top": float("inf")}
    write_jsonl([entry], tmp_path)
    rec = read_jsonl(tmp_path)[0]
    assert rec["scores"][0]["value"] is None and rec["scores"][0]["parts"]["top"] is None


def test_read_jsonl_errors_are_clear(tmp_path):
    with pytest.raises(UserError, match="No catalog JSONL"):
        read_jsonl(tmp_path / "nope.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{oops\n')
    with pytest.raises(UserError, match="bad.jsonl:2"):
        read_jsonl(bad)


def test_neuronpedia_field_names_and_values(tmp_path):
    entries = make_catalog(n_neurons=2, n_features=3)
    entries[0].explanations[0].model = "openai:gpt-4o-mini"
    folder = write_neuronpedia(entries, tmp_path, max_activations=3)
    data = read_neuronpedia(tmp_path)
    assert folder == tmp_path / "neuronpedia"
    features = data["features"]
    assert len(features) == len(entries)
    for entry, feat in zip(entries, features):
        h = entry.harvest
        assert feat["modelId"] == "builtin"
        assert feat["layer"] == layer_id_for(SOURCE, h.kind)
        assert feat["index"] == str(h.index)
        assert feat["maxActApprox"] == h.stats.max_activation
        assert feat["frac_nonzero"] == h.stats.density
        assert feat["pos_str"] == [t.token for t in h.promoted_tokens]
        assert feat["neg_values"] == [t.weight for t in h.suppressed_tokens]
        assert len(feat["freq_hist_data_bar_heights"]) == len(h.stats.histogram_counts)
        assert feat["neuron_alignment_indices"] == [n.neuron for n in h.top_neurons]
        (expl,) = feat["explanations"]
        assert expl["description"] == entry.explanations[0].text
        assert expl["typeName"] == entry.explanations[0].explainer
        assert {"modelId", "layer", "index", "explanationModelName"} <= set(expl)
        valid = {(s.scorer, s.value) for s in entry.scores if not s.failed}
        assert {(s["explanationScoreTypeName"], s["value"]) for s in expl["scores"]} == valid
        assert len(feat["activations"]) == 3
        for act in feat["activations"]:
            assert act["maxValue"] == max(act["values"])
            assert act["values"][act["maxValueTokenIndex"]] == act["maxValue"]
            assert act["minValue"] == min(act["values"])
            assert len(act["tokens"]) == len(act["values"])
    assert features[0]["explanations"][0]["explanationModelName"] == "openai:gpt-4o-mini"
    # Neurons and features of one source get different Neuronpedia source ids.
    assert features[0]["layer"] != features[-1]["layer"]
    assert [e["description"] for e in data["explanations"]] == [e.explanations[0].text for e in entries]


def test_neuronpedia_ids_and_overrides(tmp_path):
    assert model_id_for("gpt2/blocks.6.mlp/sae-32k") == "gpt2"
    assert layer_id_for("gpt2/blocks.6.mlp/sae-32k", "feature") == "blocks-6-mlp-sae-32k-features"
    assert layer_id_for("gpt2/blocks.6.mlp", "neuron") == "blocks-6-mlp-neurons"
    write_neuronpedia(make_catalog(n_neurons=1, n_features=1), tmp_path, model_id="gpt2-small")
    assert {f["modelId"] for f in read_neuronpedia(tmp_path)["features"]} == {"gpt2-small"}


def test_neuronpedia_rejects_duplicate_units(tmp_path):
    entries = make_catalog(n_neurons=1, n_features=1)
    with pytest.raises(UserError, match="same Neuronpedia"):
        write_neuronpedia(entries + [entries[0]], tmp_path)
    with pytest.raises(UserError, match="No Neuronpedia export"):
        read_neuronpedia(tmp_path / "elsewhere")


def test_export_catalog_writes_every_format(tmp_path):
    paths = export_catalog(make_catalog(), tmp_path)
    assert set(paths) == {"jsonl", "neuronpedia", "report", "html"}
    for name in (
        "catalog.jsonl",
        "report.json",
        "report.md",
        "score_distributions.png",
        "neuronpedia/features.json",
        "html/index.html",
        "html/unit.html",
        "html/data/index.js",
        "html/data/units/shard_0000.js",
    ):
        assert (tmp_path / name).is_file(), name
    assert "Features score higher" in (tmp_path / "html" / "index.html").read_text()


def test_export_catalog_without_scores_still_writes_and_says_why(tmp_path):
    entries = make_catalog(n_neurons=2, n_features=2)
    for e in entries:
        e.scores = []
    paths = export_catalog(entries, tmp_path)
    assert "report" not in paths
    index = (tmp_path / "html" / "index.html").read_text()
    assert "No comparison: No neuron has a valid" in index


def test_thousands_of_units_export(tmp_path):
    rng = random.Random(0)
    entries = [make_unit("neuron", i, rng, score_mean=0.3, n_neurons=300) for i in range(300)]
    entries += [make_unit("feature", i, rng, score_mean=0.5, n_neurons=300) for i in range(1700)]
    for e in entries:  # keep the test light: a few examples per unit
        e.harvest.examples = e.harvest.examples[:3]
    paths = export_catalog(entries, tmp_path)
    assert len(read_jsonl(paths["jsonl"])) == 2000
    data = paths["html"].parent / "data"
    assert len(list((data / "units").glob("shard_*.js"))) == 16  # 128 units each
    assert not list(paths["html"].parent.glob("units/*.html")), "no page per unit"
    _, (rows,) = read_script(data / "index.js")
    assert rows["n"] == 2000 and rows["kinds"] == ["feature", "neuron"] and len(rows["explanation"]) == 2000


def test_explanation_model_falls_back_to_explainer_name(tmp_path):
    entry = make_catalog(n_neurons=1, n_features=1)[1]
    entry.explanations.append(
        Explanation(
            unit_kind="feature",
            unit_index=0,
            text="second",
            explainer="llm",
            model="anthropic:claude",
            settings_hash="s2",
        )
    )
    write_neuronpedia([entry], tmp_path)
    names = [e["explanationModelName"] for e in read_neuronpedia(tmp_path)["explanations"]]
    assert names == [entry.explanations[0].explainer, "anthropic:claude"]
