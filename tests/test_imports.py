"""Importers: each tool's documented file format, written here, read back into a catalog with the same
texts; a malformed file is one `error:` line; imported labels are scored by our protocol and compared
with ours in the report."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from autointerp.cli import main
from autointerp.compare import compare
from autointerp.export.neuronpedia import write_neuronpedia
from autointerp.query.imported_comparison import add_imported_comparison, imported_markdown
from autointerp.query.imports.labels import imported_settings_hash
from autointerp.records import Explanation
from autointerp.store import open_store
from tests.test_store import make_unit

SOURCE = "builtin/blocks.0.mlp.act/topk-16"
TEXTS = {0: "commas in lists", 1: "the word return", 2: "closing brackets"}


def catalog(path: Path, kind: str = "neuron", explained: bool = False) -> Path:
    with open_store(path) as store:
        store.put_source(SOURCE, {"subject": {"model": "builtin", "hook": "blocks.0.mlp.act"}})
        store.put_units(SOURCE, [make_unit(k, i) for k in ("neuron", "feature") for i in TEXTS])
        if explained:
            store.put_explanations(
                SOURCE,
                [
                    Explanation(unit_kind=kind, unit_index=i, text=t, explainer="offline-ngram", settings_hash="ours")
                    for i, t in TEXTS.items()
                ],
            )
    return path


def imported(db: Path, explainer: str) -> dict[int, Explanation]:
    with open_store(db) as store:
        return {e.unit_index: e for e in store.explanations(SOURCE) if e.explainer == explainer}


def run_import(*argv: str) -> int:
    return main(["import", *argv])


def test_neuron_explainer_files_round_trip(tmp_path: Path) -> None:
    db = catalog(tmp_path / "catalog.db")
    for index, text in TEXTS.items():  # their layout: {layer}/{neuron}.jsonl, one NeuronSimulationResults line
        neuron_id = {"dataclass_name": "NeuronId", "layer_index": 0, "neuron_index": index}
        scored = {
            "dataclass_name": "ScoredSimulation",
            "scored_sequence_simulations": [],
            "ev_correlation_score": 0.1 * index,
        }
        record = {
            "dataclass_name": "NeuronSimulationResults",
            "neuron_id": neuron_id,
            "scored_explanations": [{"dataclass_name": "ScoredExplanation", "explanation": text, "scored_simulation": scored}],
        }  # fmt: skip
        (tmp_path / "explanations" / "0").mkdir(parents=True, exist_ok=True)
        (tmp_path / "explanations" / "0" / f"{index}.jsonl").write_text(json.dumps(record) + "\n")
    assert run_import("neuron-explainer", str(tmp_path / "explanations"), "--db", str(db)) == 0
    found = imported(db, "imported:neuron-explainer")
    assert {i: e.text for i, e in found.items()} == TEXTS
    assert {e.unit_kind for e in found.values()} == {"neuron"}
    assert found[2].meta["their_score"] == pytest.approx(0.2)
    assert found[2].settings_hash == imported_settings_hash("imported:neuron-explainer")


def test_neuron_explainer_files_of_two_layers_need_one_named(tmp_path: Path, capsys) -> None:
    db = catalog(tmp_path / "catalog.db")
    lines = [
        {"neuron_id": {"layer_index": layer, "neuron_index": 1}, "scored_explanations": [{"explanation": f"layer {layer}"}]}
        for layer in (3, 5)
    ]  # fmt: skip
    (tmp_path / "both.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    assert run_import("neuron-explainer", str(tmp_path / "both.jsonl"), "--db", str(db)) == 2
    assert "--layer" in capsys.readouterr().err
    assert run_import("neuron-explainer", str(tmp_path / "both.jsonl"), "--db", str(db), "--layer", "5") == 0
    assert imported(db, "imported:neuron-explainer")[1].text == "layer 5"


def activation_record(tokens: list[str], activations: list[float]) -> dict:
    return {"dataclass_name": "ActivationRecord", "tokens": tokens, "activations": activations}


def test_neuron_records_and_explanations_become_a_new_source_scored_by_our_protocol(tmp_path: Path) -> None:
    db = catalog(tmp_path / "catalog.db")
    data = tmp_path / "gpt2"
    for index, text in TEXTS.items():  # their layout: neurons/{layer}/{n}.json beside explanations/{layer}/{n}.jsonl
        top = [activation_record([" a", " b", f" w{index}"], [0.0, 2.0 + r, 0.5]) for r in range(4)]
        record = {
            "dataclass_name": "NeuronRecord",
            "neuron_id": {"dataclass_name": "NeuronId", "layer_index": 7, "neuron_index": index},
            "most_positive_activation_records": top,
            "random_sample": [activation_record([" c", " d"], [0.0, 0.1])],
            "mean": 0.25, "variance": 1.0, "skewness": None, "kurtosis": None,
        }  # fmt: skip
        (data / "neurons" / "7").mkdir(parents=True, exist_ok=True)
        (data / "neurons" / "7" / f"{index}.json").write_text(json.dumps(record, indent=1 if index else None))
        explained = {
            "neuron_id": {"layer_index": 7, "neuron_index": index},
            "scored_explanations": [{"explanation": text}],
        }
        (data / "explanations" / "7").mkdir(parents=True, exist_ok=True)
        (data / "explanations" / "7" / f"{index}.jsonl").write_text(json.dumps(explained))
    assert run_import("neuron-explainer", str(data), "--db", str(db), "--source", "gpt2/7") == 0
    with open_store(db) as store:
        units = {u.index: u for u in store.iter_units("gpt2/7")}
        assert {e.unit_index: e.text for e in store.explanations("gpt2/7")} == TEXTS
    assert sorted(units) == sorted(TEXTS)
    examples = units[2].examples
    assert [(e.tokens, e.activations, e.sampling) for e in examples][:4] == [
        ([" a", " b", " w2"], [0.0, 2.0 + r, 0.5], "top") for r in range(4)
    ]
    assert [e.split for e in examples] == ["explain", "score", "explain", "score", "score"]
    assert units[2].stats.max_activation == 5.0 and units[2].stats.mean_activation == 0.25
    local = ["--db", str(db), "--source", "gpt2/7", "--scorers", "detection", "--processes", "1"]
    assert main(["score", *local, "--explainer", "imported:neuron-explainer"]) == 0
    with open_store(db) as store:
        assert {s.unit_index for s in store.scores("gpt2/7") if not s.failed} == set(TEXTS)
    assert run_import("neuron-explainer", str(data), "--db", str(db), "--source", "gpt2/7") == 2  # not twice


def test_delphi_run_folder_round_trips_with_its_scores(tmp_path: Path) -> None:
    db = catalog(tmp_path / "catalog.db")
    run = tmp_path / "delphi_run"
    (run / "explanations").mkdir(parents=True)
    (run / "scores" / "detection").mkdir(parents=True)
    module = "layers.0.mlp"
    for index, text in TEXTS.items():  # their writer: orjson.dumps(explanation) into MODULE_latentN.txt
        (run / "explanations" / f"{module}_latent{index}.txt").write_bytes(orjson.dumps(text))
    outputs = [  # ClassifierOutput records; 3 of the 4 predicted ones are right
        {"str_tokens": ["a"], "activations": [1.0], "distance": 0, "activating": True, "prediction": p, "probability": 0.9, "correct": c}
        for p, c in ((True, True), (False, True), (True, False), (True, True), (None, None))
    ]  # fmt: skip
    (run / "scores" / "detection" / f"{module}_latent1.txt").write_bytes(orjson.dumps(outputs))
    assert run_import("delphi", str(run), "--db", str(db)) == 0
    found = imported(db, "imported:delphi")
    assert {i: e.text for i, e in found.items()} == TEXTS
    assert {e.unit_kind for e in found.values()} == {"feature"}
    assert found[1].meta["their_scores"] == {"detection": 0.75}
    assert found[0].meta["their_scores"] == {}


def test_neuronpedia_export_round_trips_into_a_catalog_with_the_same_units(tmp_path: Path) -> None:
    exported = catalog(tmp_path / "a.db", kind="feature", explained=True)
    with open_store(exported) as store:
        folder = write_neuronpedia(store.catalog_entries(SOURCE), tmp_path / "export")
    db = catalog(tmp_path / "b.db")
    for name in ("explanations.json", "features.json"):
        assert run_import("neuronpedia", str(folder / name), "--db", str(db)) == 0
        found = imported(db, "imported:neuronpedia")
        assert {i: e.text for i, e in found.items()} == TEXTS
        assert {e.unit_kind for e in found.values()} == {"feature"}
        assert {e.meta["type"] for e in found.values()} == {"offline-ngram"}


@pytest.mark.parametrize(
    ("tool", "name", "content"),
    [
        ("neuron-explainer", "0.jsonl", '{"neuron_id": {"layer_index": 0}, "scored_explanations": []}'),
        ("neuron-explainer", "1.jsonl", "{not json"),
        (
            "neuron-explainer",
            "2.json",
            (
                '{"neuron_id": {"layer_index": 0, "neuron_index": 2}, '
                '"most_positive_activation_records": [{"tokens": ["a", "b"], "activations": [1.0]}]}'
            ),
        ),
        ("delphi", "layers.0_latent1.txt", '{"an": "object"}'),
        ("delphi", "notes.txt", '"an explanation in a file not named like one"'),
        ("neuronpedia", "explanations.json", '[{"layer": "x", "description": "no index"}]'),
        ("neuronpedia", "explanations.json", '{"not": "a list"}'),
    ],
)
def test_a_malformed_file_is_one_clear_error(tmp_path: Path, capsys, tool: str, name: str, content: str) -> None:
    db = catalog(tmp_path / "catalog.db")
    (tmp_path / name).write_text(content)
    assert run_import(tool, str(tmp_path / name), "--db", str(db), "--source", SOURCE, "--kind", "feature") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert imported(db, f"imported:{tool}") == {}


def test_labels_of_units_the_catalog_lacks_are_refused(tmp_path: Path, capsys) -> None:
    db = catalog(tmp_path / "catalog.db")
    record = {"neuron_id": {"layer_index": 0, "neuron_index": 99}, "scored_explanations": [{"explanation": "x"}]}
    (tmp_path / "99.jsonl").write_text(json.dumps(record))
    assert run_import("neuron-explainer", str(tmp_path / "99.jsonl"), "--db", str(db)) == 2
    assert "neuron:99" in capsys.readouterr().err


def test_imported_labels_are_scored_by_our_protocol_and_compared_with_ours(tmp_path: Path) -> None:
    db = catalog(tmp_path / "catalog.db")
    local = ["--db", str(db), "--scorers", "simulation", "--processes", "1"]
    assert main(["explain", *local[:2], "--processes", "1"]) == 0
    assert main(["score", *local, "--explainer", "offline"]) == 0
    for index in TEXTS:  # theirs, for the same neurons
        record = {
            "neuron_id": {"layer_index": 0, "neuron_index": index},
            "scored_explanations": [{"explanation": "tok1"}],
        }
        (tmp_path / f"{index}.jsonl").write_text(json.dumps(record))
    assert run_import("neuron-explainer", str(tmp_path), "--db", str(db)) == 0
    assert main(["score", *local, "--explainer", "imported:neuron-explainer"]) == 0
    with open_store(db) as store:
        entries = list(store.catalog_entries(SOURCE))
    theirs_hash = imported_settings_hash("imported:neuron-explainer")
    values = {  # (unit, whose) -> simulation score, read from the stored rows
        (e.harvest.index, s.explanation_settings_hash == theirs_hash): s.value
        for e in entries
        if e.harvest.kind == "neuron"
        for s in e.scores
    }
    report = add_imported_comparison(compare(entries, scorer="simulation", explainer=None), entries)
    assert report.explainer == "offline-ngram"  # an unnamed explainer is ours, not the imported one
    row = report.imported["imported:neuron-explainer"]["neuron"]
    assert row["units"] == len(TEXTS)
    assert row["ours_median"] == pytest.approx(sorted(values[(i, False)] for i in TEXTS)[1])
    assert row["imported_median"] == pytest.approx(sorted(values[(i, True)] for i in TEXTS)[1])
    assert "| imported:neuron-explainer | neuron | 3 |" in imported_markdown(report)
