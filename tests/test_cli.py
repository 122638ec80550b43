"""The command line: user mistakes end in one `error:` line and exit status 2, never a traceback."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def harvested_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small harvest through the CLI, shared by the tests below (each gets its own copy)."""
    db = tmp_path_factory.mktemp("harvest") / "c.db"
    harvest = cli("harvest", "--db", str(db), "--tokens", "3000", "--top", "6")
    assert harvest.returncode == 0, harvest.stderr
    return db


@pytest.fixture
def harvested(tmp_path: Path, harvested_once: Path) -> str:
    """A fresh copy of the shared harvest, as a --db argument."""
    copy = tmp_path / "c.db"
    with sqlite3.connect(harvested_once) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    return str(copy)


def cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    # No provider key leaks in from the developer's shell: the tests decide which keys exist.
    inherited = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    full_env = {**inherited, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "autointerp.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or REPO,
        timeout=300,
        check=False,
    )


def cli_in_process(*args: str) -> subprocess.CompletedProcess:
    """The same command through `autointerp.cli.main` in this process: what it prints and the exit
    status the installed script would return, without paying torch's import for each call. The
    subprocess `cli` above stays the check that the real process behaves the same."""
    from autointerp.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    keys = {k: os.environ.pop(k) for k in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY") if k in os.environ}
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = main(list(args))
            except SystemExit as exit_:  # argparse's own usage errors
                code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        os.environ.update(keys)
    return subprocess.CompletedProcess(list(args), code, stdout.getvalue(), stderr.getvalue())


def assert_clean_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in result.stderr


def test_missing_run_config(tmp_path):
    assert_clean_error(cli("run", str(tmp_path / "nope.toml")), "does not exist")


def test_run_config_with_a_bad_field(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[sae.train]\nd_sae = "many"\n')
    assert_clean_error(cli("run", str(config)), "sae.train.d_sae")


def test_run_config_that_is_not_toml(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("this is = = not toml")
    assert_clean_error(cli("run", str(config)), "cannot parse")


def test_unknown_hook_lists_nearby_hooks(tmp_path):
    result = cli("harvest", "--db", str(tmp_path / "c.db"), "--hook", "blocks.0.mlp.actt", "--tokens", "1000")
    assert_clean_error(result, "blocks.0.mlp.act")


def test_sae_folder_of_the_wrong_width(tmp_path):
    from sae.autoencoder import SAEConfig, SparseAutoencoder
    from sae.saelens_format import save_sae

    save_sae(SparseAutoencoder(SAEConfig(d_in=300, d_sae=64)), tmp_path / "sae")
    result = cli("harvest", "--db", str(tmp_path / "c.db"), "--sae", str(tmp_path / "sae"), "--tokens", "1000")
    assert_clean_error(result, "300", "512")


def test_explain_on_a_missing_database(tmp_path):
    assert_clean_error(cli("explain", "--db", str(tmp_path / "none.db")), "no catalog database")


def test_llm_explainer_without_a_key_names_the_variable(harvested):
    result = cli("explain", "--db", harvested, "--explainer", "openai:gpt-4o-mini", "--units", "first:2")
    assert_clean_error(result, "OPENAI_API_KEY")


def test_bad_unit_selection(harvested):
    assert_clean_error(cli("explain", "--db", harvested, "--units", "some"), "--units")


def test_stage_commands_work_step_by_step(harvested):
    db = harvested
    explained = cli("explain", "--db", db, "--kinds", "neuron", "--units", "first:5")
    assert explained.returncode == 0, explained.stderr
    assert json.loads(explained.stdout)["written"] == 5
    scored = cli("score", "--db", db, "--kinds", "neuron", "--units", "first:5", "--scorers", "simulation")
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["written"] == 5
    again = cli("explain", "--db", db, "--kinds", "neuron", "--units", "first:5")
    assert json.loads(again.stdout)["skipped"] == 5


def test_score_names_whose_explanations_it_scores_and_refuses_to_guess(harvested):
    from autointerp.testing.fake_llm_server import FakeLLMServer
    from autointerp.testing.planted import SimulatingResponder

    db = harvested
    first = ("--kinds", "neuron", "--units", "first:2")
    assert cli("explain", "--db", db, *first).returncode == 0
    only_offline = cli("score", "--db", db, *first, "--scorers", "simulation")
    assert only_offline.returncode == 0, only_offline.stderr
    assert "scoring the explanations of offline (2 in the catalog)" in only_offline.stderr
    with FakeLLMServer(SimulatingResponder()) as server:
        llm = ("--explainer", "anthropic:claude-test", "--base-url", server.anthropic_base_url)
        explained = cli("explain", "--db", db, *first, *llm, env={"ANTHROPIC_API_KEY": "k"})
        assert explained.returncode == 0, explained.stderr
    assert_clean_error(
        cli("score", "--db", db, *first, "--scorers", "simulation"),
        "2 explainers: anthropic:claude-test (2 units), offline (2 units)",
        "--explainer",
    )
    named = cli("score", "--db", db, *first, "--scorers", "simulation", "--explainer", "anthropic:claude-test")
    assert named.returncode == 0, named.stderr
    assert "scoring the explanations of anthropic:claude-test (2 in the catalog)" in named.stderr
    assert json.loads(named.stdout)["written"] == 2


@pytest.mark.slow
def test_subject_eval_json_beats_the_bigram():
    result = cli("subject", "eval", "--json", "--max-tokens", "50000")
    assert result.returncode == 0, result.stderr
    numbers = json.loads(result.stdout)
    assert numbers["heldout_loss"] <= 0.8 * numbers["bigram_loss"]
    assert numbers["bigram_loss"] < numbers["unigram_loss"]


def test_misspelt_setting_in_a_run_config_is_an_error(tmp_path):
    config = tmp_path / "typo.toml"
    config.write_text("[label]\nmax_costs = 3.0\n")
    assert_clean_error(cli("run", str(config)), "label.max_costs")


def test_unknown_scorer_fails_before_any_work(tmp_path):
    config = tmp_path / "scorer.toml"
    config.write_text(f'out = "{tmp_path / "out"}"\n[label]\nscorers = ["simulaton"]\n')
    assert_clean_error(cli("run", str(config)), "simulaton")
    assert not (tmp_path / "out" / "sae").exists()


def test_bad_unit_kind(harvested):
    assert_clean_error(cli("explain", "--db", harvested, "--kinds", "neurons"), "kinds")
