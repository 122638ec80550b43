"""`autointerp run CONFIG` with LLM backends, through the official SDKs to a local server that
speaks the OpenAI and Anthropic wire formats: the same path a user with a key, or a vLLM / Ollama
server, takes. The key must appear nowhere in what the run writes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from autointerp.cli import main
from autointerp.testing.fake_llm_server import FakeLLMServer
from autointerp.testing.planted import SimulatingResponder

OPENAI_KEY = "sk-test-RUNSECRET-0123456789abcdef"
ANTHROPIC_KEY = "fake-anthropic-key-RUNSECRET"

TINY = """
out = "{out}"
[sae.train]
d_sae = 64
k = 8
total_tokens = 32768
buffer_tokens = 16384
[sae]
eval_tokens = 2048
[harvest]
n_tokens = 6000
n_top = 8
n_top_score = 6
reservoir = 6
n_random = 4
n_silent = 3
[units]
mode = "first"
n = 3
[label]
explainer = "{explainer}"
simulator = "{simulator}"
base_url = "{base_url}"
scorers = ["simulation", "detection"]
concurrency = 4
"""


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)


def run_config(tmp_path: Path, server: FakeLLMServer, explainer: str, simulator: str, base_url: str) -> Path:
    out = tmp_path / "run"
    config = tmp_path / "run.toml"
    config.write_text(TINY.format(out=out, explainer=explainer, simulator=simulator, base_url=base_url))
    assert main(["run", str(config)]) == 0
    return out


def written_bytes(out: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file())


@pytest.mark.parametrize(
    "backend", ["openai-compatible:local-model", "anthropic:claude-test"], ids=["openai-compatible", "anthropic"]
)
def test_run_labels_through_the_wire_and_resumes_for_free(tmp_path, keys, backend):
    responder = SimulatingResponder()
    with FakeLLMServer(responder) as server:
        base = server.openai_base_url if backend.startswith("openai") else server.anthropic_base_url
        base = base.replace("http://", "http://probe:URLSECRET@")  # credentials in a URL stay out too
        out = run_config(tmp_path, server, backend, backend, base)
        first = server.request_count
        assert responder.asked["explain"] == 6  # 3 neurons + 3 features
        assert responder.asked["simulate"] > 0 and responder.asked["detect"] > 0
        # the same run again: everything is found done or cached, no request is made
        run_config(tmp_path, server, backend, backend, base)
        assert server.request_count == first
    report = (out / "report.json").read_text()
    assert '"explainer"' in report
    everything = written_bytes(out)
    assert b"RUNSECRET" not in everything and b"URLSECRET" not in everything


def test_llm_explanations_are_scored_offline_without_the_key(tmp_path, monkeypatch, capsys):
    db = str(tmp_path / "c.db")
    assert main(["harvest", "--db", db, "--tokens", "3000", "--top", "6"]) == 0
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    with FakeLLMServer(SimulatingResponder()) as server:
        explain = [
            "explain",
            "--db",
            db,
            "--kinds",
            "neuron",
            "--units",
            "first:3",
            "--explainer",
            "anthropic:claude-test",
            "--base-url",
            server.anthropic_base_url,
        ]
        assert main(explain) == 0
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    capsys.readouterr()
    score = [
        "score",
        "--db",
        db,
        "--kinds",
        "neuron",
        "--units",
        "first:3",
        "--scorers",
        "simulation",
        "--explainer",
        "anthropic:claude-test",
        "--simulator",
        "offline",
    ]
    assert main(score) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["written"] == 3 and report["not_explained"] == 0


def planted_catalog(tmp_path: Path, units: int = 4) -> str:
    """A catalog with planted units, made without a model (harvest is not what these tests test)."""
    from autointerp.store import open_store
    from autointerp.testing.planted import planted_harvest, planted_units

    db = str(tmp_path / "planted.db")
    with open_store(db) as store:
        store.put_source("planted/test", {"planted": True})
        store.put_units("planted/test", [planted_harvest(u) for u in planted_units(units)])
    return db


def test_a_dead_server_ends_the_stage_with_one_error(tmp_path, keys, capsys):
    db = planted_catalog(tmp_path, units=20)
    with FakeLLMServer() as server:
        dead = server.openai_base_url  # the port is closed once the server stops
    started = time.monotonic()
    code = main(
        [
            "explain",
            "--db",
            db,
            "--kinds",
            "feature",
            "--explainer",
            "openai:gpt-4o-mini",
            "--base-url",
            dead,
            "--max-attempts",
            "2",
            "--timeout",
            "2",
        ]
    )
    assert code == 2 and time.monotonic() - started < 30
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "cannot reach" in err
    from autointerp.store import open_store

    with open_store(db) as store:
        assert len(store.explanations("planted/test")) <= 4  # at most the units then in flight


def test_explainer_and_simulator_on_their_own_servers_with_their_own_keys(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EXPLAINER_KEY", "sk-explainer-key-0123456789")
    monkeypatch.setenv("SIMULATOR_KEY", "sk-simulator-key-0123456789")
    db = planted_catalog(tmp_path, units=2)
    with FakeLLMServer(SimulatingResponder()) as hosted, FakeLLMServer(SimulatingResponder()) as local:
        assert (
            main(
                [
                    "explain",
                    "--db",
                    db,
                    "--kinds",
                    "feature",
                    "--explainer",
                    "anthropic:claude-test",
                    "--explainer-base-url",
                    hosted.url + "/v1",
                    "--explainer-key-env",
                    "EXPLAINER_KEY",
                    "--base-url",
                    local.openai_base_url,
                ]
            )
            == 0
        )
        capsys.readouterr()
        assert (
            main(
                [
                    "score",
                    "--db",
                    db,
                    "--kinds",
                    "feature",
                    "--scorers",
                    "detection",
                    "--explainer",
                    "anthropic:claude-test",
                    "--simulator",
                    "openai:gpt-4o-mini",
                    "--simulator-base-url",
                    local.openai_base_url,
                    "--simulator-key-env",
                    "SIMULATOR_KEY",
                    "--prices",
                    str(_prices(tmp_path)),
                    "--max-cost",
                    "5",
                ]
            )
            == 0
        )
        assert json.loads(capsys.readouterr().out)["written"] == 2
        assert {r.api for r in hosted.requests} == {"anthropic"} and {r.api for r in local.requests} == {"openai"}
        assert "sk-explainer-key-0123456789" in " ".join(hosted.requests[0].headers.values())
        assert "sk-simulator-key-0123456789" in " ".join(local.requests[0].headers.values())


def _prices(tmp_path: Path) -> Path:
    path = tmp_path / "prices.json"
    path.write_text('{"gpt-4o-mini": {"input": 0.15, "output": 0.6}}')
    return path
