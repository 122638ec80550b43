"""`autointerp run CONFIG` with LLM backends, through the official SDKs to a local server that
speaks the OpenAI and Anthropic wire formats: the same path a user with a key, or a vLLM / Ollama
server, takes. The key must appear nowhere in what the run writes."""

from __future__ import annotations

import json
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
        explain = ["explain", "--db", db, "--kinds", "neuron", "--units", "first:3",
                   "--explainer", "anthropic:claude-test", "--base-url", server.anthropic_base_url]
        assert main(explain) == 0
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    capsys.readouterr()
    score = ["score", "--db", db, "--kinds", "neuron", "--units", "first:3", "--scorers", "simulation",
             "--explainer", "anthropic:claude-test", "--simulator", "offline"]
    assert main(score) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["written"] == 3 and report["not_explained"] == 0
