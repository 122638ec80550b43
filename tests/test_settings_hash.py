"""Settings hashes decide which stored results a run reuses, so their values are pinned: a change
here re-labels every existing catalog. Each hash has one function; the stage and the explainer or
scorer that stamps a result agree because both call it."""

from __future__ import annotations

import pytest

from autointerp.demo import demo_config
from autointerp.explainers.llm import LLMExplainerConfig, llm_explainer_settings_hash
from autointerp.pipeline import LabelSpec, explanation_settings_hash, make_explainer
from autointerp.scoring import SCORER_CONFIGS
from autointerp.scoring.common import score_settings_hash
from autointerp.simulators import OfflineSimulator
from autointerp.store import open_store

# The values catalogs written before the hashes moved into one function carry (the demo's settings).
DEMO_EXPLANATIONS = "512cfdb51ced35a5"
DEMO_SCORES = {"simulation": "73f264c7f6ba3e6b", "detection": "2b1d0e31a4b45a6e", "fuzzing": "b0b3e2f3779442ff"}
GPT_4O_MINI_EXPLANATIONS = "335272fdd6783f37"


def test_the_demo_settings_keep_their_hashes(tmp_path) -> None:
    spec = demo_config(str(tmp_path)).label
    with open_store(tmp_path / "c.db") as store:
        explainer = make_explainer(spec, store, None, "run")
    assert explainer.settings_hash == explanation_settings_hash(spec) == DEMO_EXPLANATIONS
    simulator = OfflineSimulator()
    assert {name: score_settings_hash(SCORER_CONFIGS[name](), simulator) for name in spec.scorers} == DEMO_SCORES


def test_an_llm_explainer_hash_needs_no_client_and_matches_the_built_explainer(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    spec = LabelSpec(explainer="openai:gpt-4o-mini")
    assert explanation_settings_hash(spec) == GPT_4O_MINI_EXPLANATIONS
    with open_store(tmp_path / "c.db") as store:
        assert make_explainer(spec, store, None, "run").settings_hash == GPT_4O_MINI_EXPLANATIONS


@pytest.mark.parametrize("name", sorted(SCORER_CONFIGS))
def test_a_changed_parameter_changes_the_score_hash(name) -> None:
    config = SCORER_CONFIGS[name]()
    changed = config.model_copy(update={"protocol": 3 - config.protocol})  # the other of protocols 1 and 2
    simulator = OfflineSimulator()
    assert score_settings_hash(changed, simulator) != score_settings_hash(config, simulator)


def test_another_model_or_explainer_setting_changes_the_explanation_hash() -> None:
    assert llm_explainer_settings_hash("openai:gpt-4o", LLMExplainerConfig()) != GPT_4O_MINI_EXPLANATIONS
    fewer = LLMExplainerConfig(max_examples=5)
    assert llm_explainer_settings_hash("openai:gpt-4o-mini", fewer) != GPT_4O_MINI_EXPLANATIONS
