"""The whole pipeline on the built-in model at toy size: every artefact appears, and a second run
on the same folder redoes nothing."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from autointerp.cli import main
from autointerp.controls import CONTROL_NAMES, ControlSpec
from autointerp.errors import UserError
from autointerp.pipeline import LabelSpec, RunConfig, SAESpec, UnitSelection, run_pipeline, select_units
from autointerp.store import open_store
from sae.harvest import HarvestConfig
from sae.training import SAETrainConfig
from tests.html_data import read_units


def tiny_config(out: Path) -> RunConfig:
    return RunConfig(
        out=str(out),
        sae=SAESpec(
            train=SAETrainConfig(d_sae=256, k=16, total_tokens=4096 * 12, buffer_tokens=2**14, checkpoint_every=5),
            eval_tokens=4096,
        ),
        harvest=HarvestConfig(n_tokens=12_000, n_top=12, n_top_score=8, reservoir=10, n_random=6, n_silent=4),
        units=UnitSelection(mode="first", n=12),
        label=LabelSpec(scorers=["simulation", "detection"]),
        controls=ControlSpec(n_units=8, harvest_tokens=8_000, random_model_sae_tokens=4096 * 4),
    )


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return out, run_pipeline(tiny_config(out))


def test_run_writes_every_artefact(first_run):
    out, summary = first_run
    for name in (
        "catalog.db",
        "catalog.jsonl",
        "report.json",
        "report.md",
        "score_distributions.png",
        "html/index.html",
        "sae/cfg.json",
        "sae/sae_weights.safetensors",
        "sae/metrics.json",
        "sae/density.png",
        "run_summary.json",
    ):
        assert (out / name).exists(), name
    report = json.loads((out / "report.json").read_text())
    assert report["neurons"]["n"] == 12 and report["features"]["n"] == 12
    assert set(report["by_scorer"]) == {"simulation", "detection"}
    assert summary.explain.written == 24 and summary.explain.failed == 0
    lines = (out / "catalog.jsonl").read_text().splitlines()
    assert len(lines) == 24  # the labelled units
    assert (out / "controls.db").exists() and (out / "score_vs_density.png").exists()
    assert not list(out.glob("*.harvest-*.pt")), "harvest checkpoints go once the catalog holds the units"


def test_report_has_protocol_strata_controls_and_ceiling(first_run):
    out, _ = first_run
    report = json.loads((out / "report.json").read_text())
    assert report["protocol_version"] == 2
    for kind in ("neuron", "feature"):
        assert set(report["strata"][kind]["simulation"]) >= {"top", "quantile", "random"}
        assert report["ceiling"][kind]["ceiling"]["n"] > 0
    assert set(report["controls"]) == set(CONTROL_NAMES)
    shuffled = report["controls"]["shuffled"]["feature"]["simulation"]
    assert set(shuffled) == {"n", "mean", "mean_ci95", "median", "median_ci95"} and shuffled["n"] == 8
    assert set(report["controls"]["density_matched_neurons"]) == {"neuron"}
    assert set(report["controls"]["random_directions"]) == {"feature"}
    assert set(report["controls"]["random_model"]) == {"neuron", "feature"}
    assert any(line.startswith("control shuffled") for line in report["conclusions"])
    markdown = (out / "report.md").read_text()
    assert "## Controls" in markdown and "## Per stratum" in markdown
    page = (out / "html" / "index.html").read_text()
    assert "Conclusions" in page and "Controls (median" in page and "score_vs_density.png" in page


def test_store_holds_all_harvested_units_and_the_run_config(first_run):
    out, summary = first_run
    db = sqlite3.connect(out / "catalog.db")
    kinds = dict(db.execute("SELECT kind, count(*) FROM units GROUP BY kind").fetchall())
    assert kinds == {"neuron": 512, "feature": 256}
    config = json.loads(db.execute("SELECT config FROM runs").fetchone()[0])
    assert config["sae"]["train"]["d_sae"] == 256
    assert summary.source == "builtin/blocks.0.mlp.act/topk-256"


def test_harvesting_only_the_selected_units_labels_the_same_units(first_run, tmp_path):
    """`harvest_selected_only` picks the units `units` would pick from a full harvest, and stores only them."""
    out, _ = first_run
    cfg = tiny_config(tmp_path / "selected").model_copy(
        update={"harvest_selected_only": True, "units": UnitSelection(mode="random", n=5, seed=3),
                "controls": ControlSpec(run=[]), "export": False,
                "sae": SAESpec(path=str(out / "sae"), eval_tokens=4096)}
    )  # fmt: skip
    run_pipeline(cfg)
    stored = sqlite3.connect(tmp_path / "selected" / "catalog.db").execute('SELECT kind, "index" FROM units').fetchall()
    with open_store(out / "catalog.db") as full:
        expected = select_units(full, full.sources()[0], cfg.units)
    assert sorted(stored) == sorted(expected) and len(expected) == 10


def test_second_run_redoes_nothing(first_run):
    out, _ = first_run
    weights = out / "sae" / "sae_weights.safetensors"
    before = weights.stat().st_mtime_ns
    db = sqlite3.connect(out / "catalog.db")
    harvested_at = db.execute("SELECT created_at FROM sources").fetchone()
    again = run_pipeline(tiny_config(out))
    assert weights.stat().st_mtime_ns == before
    assert db.execute("SELECT created_at FROM sources").fetchone() == harvested_at
    assert again.explain.written == 0 and again.explain.skipped == 24
    assert again.score.written == 0 and again.score.skipped == 24


def test_changed_harvest_settings_are_refused_not_mixed(first_run):
    out, _ = first_run
    changed = tiny_config(out)
    changed.harvest.n_tokens = 9_000
    with pytest.raises(UserError, match="harvest"):
        run_pipeline(changed)


def test_changed_sae_settings_are_refused_not_reused(first_run):
    out, _ = first_run
    changed = tiny_config(out)
    changed.sae.train.k = 8
    with pytest.raises(UserError, match="other settings"):
        run_pipeline(changed)


def test_budget_counts_what_earlier_runs_spent(tmp_path):
    from autointerp.llm.budget import BudgetExceeded
    from autointerp.llm.ledger import LLMCall
    from autointerp.pipeline import make_budget
    from autointerp.store import open_store

    store = open_store(tmp_path / "c.db")
    store.ledger.log_llm_call(LLMCall(run_id="earlier", backend="openai", model="m", status="ok", cost_usd=2.5))
    budget = make_budget(LabelSpec(max_cost=10.0), store)
    assert budget.max_cost_usd == 10.0 and budget.spent_usd == pytest.approx(2.5)
    with pytest.raises(BudgetExceeded):
        make_budget(LabelSpec(max_cost=2.0), store).check()
    assert make_budget(LabelSpec(), store) is None


def test_the_shipped_builtin_config_is_the_demo() -> None:
    from autointerp.demo import demo_config
    from autointerp.pipeline import load_run_config

    shipped = load_run_config(Path(__file__).resolve().parents[1] / "configs" / "builtin-offline.toml")
    assert shipped.model_dump(exclude={"out"}) == demo_config("x").model_dump(exclude={"out"})


def test_a_nested_corpus_that_agrees_with_the_top_level_is_accepted() -> None:
    """The conflicting case is refused (tests/test_bad_inputs.py); repeating the corpus is harmless."""
    from autointerp.pipeline import RunConfig

    cfg = RunConfig.model_validate({"corpus": "a.jsonl", "sae": {"train": {"corpus": "a.jsonl"}}, "harvest": {}})
    assert cfg.sae.train.corpus == cfg.corpus == "a.jsonl"


def test_llm_explanations_scored_offline_are_flagged(capsys) -> None:
    from autointerp.pipeline import warn_language_mismatch

    warn_language_mismatch(LabelSpec())
    assert capsys.readouterr().err == ""
    warn_language_mismatch(LabelSpec(explainer="openai:gpt-4o-mini", simulator="offline"))
    assert "parse_coverage" in capsys.readouterr().err  # stderr: stdout may be a command's JSON
    warn_language_mismatch(LabelSpec(explainer="openai:gpt-4o-mini", simulator="openai:gpt-4o-mini"))
    assert capsys.readouterr().err == ""


def test_compare_and_export_commands_keep_the_validity_sections(first_run, tmp_path):
    """The CLI's compare and export read controls.db beside the catalog, as the run did."""
    import subprocess
    import sys

    out, _ = first_run
    for command in (["compare", str(out / "catalog.db"), "--out", str(tmp_path / "c")],
                    ["export", str(out / "catalog.db"), "--out", str(tmp_path / "e")]):  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "autointerp.cli", *command], capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 0, done.stderr
    for folder in ("c", "e"):
        report = json.loads((tmp_path / folder / "report.json").read_text())
        assert report["protocol_version"] == 2 and set(report["controls"]) == set(CONTROL_NAMES)
    assert "Conclusions" in (tmp_path / "e" / "html" / "index.html").read_text()


def test_a_rerun_shows_agent_traces_on_the_unit_pages(first_run, capsys):
    """Last in this file: the agent's explanations join the shared run's catalog (a copied run folder
    would not do: its SAE path differs, so the rerun would refuse it)."""
    out, _ = first_run
    db = str(out / "catalog.db")
    assert main(["agent", "--db", db, "--kinds", "neuron", "--units", "list:0", "--budget", "4"]) == 0
    capsys.readouterr()
    run_pipeline(tiny_config(out))
    traced = [u for u in read_units(out / "html") if u["traces"]]
    assert [(u["kind"], u["index"]) for u in traced] == [("neuron", 0)] and traced[0]["traces"][0]["probes"]
    catalog = [json.loads(line) for line in (out / "catalog.jsonl").read_text().splitlines()]
    traced = [(e["kind"], e["index"]) for e in catalog if e.get("extra", {}).get("agent_traces")]
    assert traced == [("neuron", 0)]
