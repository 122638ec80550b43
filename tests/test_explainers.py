"""Explainers: the offline one names planted triggers; the LLM one builds its prompt from the explain
split and reads replies robustly, through the real SDK to the fake server."""

from __future__ import annotations

import asyncio

import pytest

from autointerp.explainers import (
    ExplainerError,
    LLMExplainer,
    OfflineExplainer,
    OfflineExplainerConfig,
    parse_explanation_reply,
)
from autointerp.explainers.llm import discretise
from autointerp.explainers.offline import (
    DEAD_UNIT_TEXT,
    describe_patterns,
    find_patterns,
)
from autointerp.language import Literal, parse, quote
from autointerp.llm import RetryPolicy, make_llm_client
from autointerp.records import ActivationExample, UnitHarvest
from autointerp.testing.fake_llm_server import FakeLLMServer
from autointerp.testing.planted import PlantedUnit, SimulatingResponder, planted_harvest, planted_units

FAST = RetryPolicy(max_attempts=2, initial_wait_s=0.001, max_wait_s=0.01, jitter_s=0.001)


@pytest.fixture(autouse=True)
def fake_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-explainers")


# ---- offline -----------------------------------------------------------------------------------


def _text(target: object) -> str | None:
    return target.text if isinstance(target, Literal) else None


@pytest.mark.parametrize("unit", planted_units(6), ids=lambda u: f"unit{u.index}")
def test_offline_explainer_names_the_planted_triggers(unit: PlantedUnit) -> None:
    explanation = OfflineExplainer().explain_now(planted_harvest(unit))
    for trigger in unit.triggers:
        assert quote(trigger) in explanation.text
    parsed = {
        (_text(item.target), tuple(_text(c.target) for c in item.conditions)) for item in parse(explanation.text).items
    }
    for trigger, required in unit.context.items():
        assert (trigger, (required,)) in parsed, explanation.text
    assert explanation.explainer == "offline-ngram" and explanation.model is None


def test_offline_explainer_ranks_the_stronger_trigger_first() -> None:
    unit = PlantedUnit(index=0, triggers={" king": 8.0, " queen": 1.5})
    text = OfflineExplainer().explain_now(planted_harvest(unit)).text
    assert text.startswith('fires most strongly on " king"'), text
    items = {_text(item.target): item.strength for item in parse(text).items}
    assert items[" king"] > items[" queen"] > 0


def test_offline_explainer_uses_context_only_when_it_decides() -> None:
    plain = PlantedUnit(index=1, triggers={" bank": 5.0})
    assert "after" not in OfflineExplainer().explain_now(planted_harvest(plain)).text
    gated = PlantedUnit(index=2, triggers={" bank": 5.0}, context={" bank": " river"})
    item = find_patterns(planted_harvest(gated), OfflineExplainerConfig()).patterns[0].item
    assert (_text(item.target), [_text(c.target) for c in item.conditions]) == (" bank", [" river"])


def test_offline_explainer_reads_only_the_explain_split() -> None:
    harvest = planted_harvest(PlantedUnit(index=3, triggers={" Paris": 5.0}))
    # Plant a different trigger in the score split only: the explanation must not see it.
    for example in harvest.examples_for("score", "top"):
        example.tokens = [" London" if t == " Paris" else t for t in example.tokens]
    assert '" London"' not in OfflineExplainer().explain_now(harvest).text


def test_offline_explainer_is_deterministic_and_hashes_its_settings() -> None:
    harvest = planted_harvest(planted_units(3)[1])
    first, second = OfflineExplainer().explain_now(harvest), OfflineExplainer().explain_now(harvest)
    assert first == second
    other = OfflineExplainer(OfflineExplainerConfig(budget_words=20))
    assert other.settings_hash != first.settings_hash
    assert asyncio.run(OfflineExplainer().explain(harvest)) == first


def test_dense_unit_names_only_tokens_that_stand_out() -> None:
    # Fires faintly almost everywhere: frequent filler tokens carry much of the activation mass but
    # are merely average, so only the real triggers may be named.
    unit = PlantedUnit(index=9, triggers={" river": 5.0, " stone": 2.0}, noise_rate=0.9)
    text = OfflineExplainer().explain_now(planted_harvest(unit)).text
    assert {_text(item.target) for item in parse(text).items} == {" river", " stone"}, text
    assert text.endswith("(exact tokens)")


def test_offline_explainer_names_a_class_when_the_triggers_share_one() -> None:
    harvest = planted_harvest(PlantedUnit(index=7, triggers={f" {n}": 5.0 for n in range(1, 13)}))
    explanation = OfflineExplainer().explain_now(harvest)
    assert explanation.text.startswith('fires on numbers (such as "'), explanation.text
    assert explanation.meta["classes"] == ["numbers"]
    exact = OfflineExplainer(OfflineExplainerConfig(use_classes=False)).explain_now(harvest)
    assert exact.meta["classes"] == [] and "numbers" not in exact.text and '" 7"' in exact.text


def test_explanations_read_back_as_the_items_found() -> None:
    harvest = planted_harvest(
        PlantedUnit(index=8, triggers={f" {n}": 5.0 for n in range(1, 6)} | {" river": 2.0}, context={" river": " the"})
    )
    found = find_patterns(harvest, OfflineExplainerConfig())
    parsed = {(item.target, item.conditions) for item in parse(describe_patterns(found.patterns)).items}
    assert {(p.item.target, p.item.conditions) for p in found.patterns} <= parsed
    assert len(found.patterns) >= 2


def test_word_budget_is_the_same_for_every_kind_and_recorded() -> None:
    triggers = {
        w: 6.0 - 0.4 * i for i, w in enumerate([" house", " water", " tree", " stone", " road", " city", " paper"])
    }
    for kind in ("neuron", "feature"):
        harvest = planted_harvest(PlantedUnit(index=9, triggers=triggers, kind=kind))
        roomy = OfflineExplainer().explain_now(harvest)
        assert roomy.meta["budget_words"] == 100 and roomy.meta["binding"] is False
        assert roomy.meta["named"] == roomy.meta["candidates"] == 7 and roomy.meta["words"] == len(roomy.text.split())
        tight = OfflineExplainer(OfflineExplainerConfig(budget_words=12)).explain_now(harvest)
        assert tight.meta["binding"] is True and tight.meta["candidates"] == 7
        assert tight.meta["named"] < 7 and len(tight.text.split()) <= 12, tight.text


def test_dead_unit_gets_a_text_that_predicts_nothing() -> None:
    harvest = planted_harvest(PlantedUnit(index=4, triggers={" red": 2.0}))
    for example in harvest.examples:
        example.activations = [0.0] * len(example.tokens)
    text = OfflineExplainer().explain_now(harvest).text
    assert text == DEAD_UNIT_TEXT
    assert parse(text).items == ()


def test_tokens_with_quotes_and_newlines_round_trip() -> None:
    tricky = ['"', "\n", " \\x", " say"]
    unit = PlantedUnit(index=5, triggers={'"': 5.0, "\n": 3.0})
    harvest = planted_harvest(unit)
    text = OfflineExplainer().explain_now(harvest).text
    tokens = {_text(item.target) for item in parse(text).items}
    assert {'"', "\n"} <= tokens, text
    assert [quote(t) for t in tricky] == ['"\\""', '"\\n"', '" \\\\x"', '" say"']


# ---- LLM explainer -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('Explanation: fires on " God" and " Lord"', 'fires on " God" and " Lord"'),
        ("Sure! Here is my answer.\n\nExplanation: month names\n\nThis is because...", "month names"),
        ('**Explanation:** the word "bank"', 'the word "bank"'),
        ('"references to rivers"', "references to rivers"),
        ('" God" and " Lord"', '" God" and " Lord"'),  # quotes that belong to the text stay
        ("Here's the explanation:\nclosing brackets in code", "closing brackets in code"),
        ("Sure! Here it is: closing brackets", "closing brackets"),
        ("```\nExplanation: numbers\n```", "numbers"),
        ("I think\nExplanation: first try\nExplanation: dates", "dates"),
        ("  \n ", ""),
        ("Explanation:", ""),
        (None, ""),
    ],
)
def test_explanation_replies_are_parsed_robustly(reply: str | None, expected: str) -> None:
    assert parse_explanation_reply(reply) == expected


def test_discretise_uses_floor_of_ten_times_relu_over_max() -> None:
    assert discretise([-1.0, 0.0, 0.5, 0.99, 2.0], 2.0) == [0, 0, 2, 4, 10]
    assert discretise([1.0], 0.0) == [0]


def test_llm_explainer_prompt_shows_top_explain_examples_with_levels() -> None:
    client = make_llm_client("openai:gpt-4o-mini", base_url="http://127.0.0.1:9/v1")
    explainer = LLMExplainer(client)
    harvest = UnitHarvest(
        kind="neuron",
        index=7,
        stats=planted_harvest(planted_units(1)[0]).stats,
        examples=[
            ActivationExample(window_id=1, tokens=["A", " God", " x"], activations=[0, 4.0, 0.3], split="explain", sampling="top"),
            ActivationExample(window_id=2, tokens=["B", " Lord"], activations=[0, 2.0], split="explain", sampling="top"),
            ActivationExample(window_id=3, tokens=["C", " Zeus"], activations=[0, 9.0], split="score", sampling="top"),
        ],
    )  # fmt: skip
    text = explainer.render_examples(harvest)
    assert "A <<God>> x" in text and 'Active tokens: " God" 10' in text
    assert 'Active tokens: " Lord" 5' in text
    assert "Zeus" not in text  # score split never shown to the explainer
    messages = explainer.build_messages(harvest)
    assert [m.role for m in messages] == ["system", "user", "assistant", "user"]


def test_llm_explainer_through_the_fake_server(fake_llm_server: FakeLLMServer) -> None:
    fake_llm_server.responder = SimulatingResponder(explain_preamble=True)
    client = make_llm_client("openai:gpt-4o-mini", base_url=fake_llm_server.openai_base_url, retry=FAST)
    unit = PlantedUnit(index=0, triggers={" March": 5.0})
    explanation = asyncio.run(LLMExplainer(client).explain(planted_harvest(unit)))
    assert explanation.text == 'fires on " March"'
    assert explanation.raw_response.startswith("Sure!")
    assert explanation.prompt_version == "explain_v1"
    assert explanation.model == "openai:gpt-4o-mini"
    assert explanation.prompt_tokens > 0 and explanation.completion_tokens > 0 and explanation.cost_usd > 0


def test_llm_explainer_retries_an_empty_reply_then_fails(fake_llm_server: FakeLLMServer) -> None:
    fake_llm_server.responder = lambda body, api: "Sure!"
    client = make_llm_client("openai:gpt-4o-mini", base_url=fake_llm_server.openai_base_url, retry=FAST)
    with pytest.raises(ExplainerError) as caught:
        asyncio.run(LLMExplainer(client).explain(planted_harvest(planted_units(1)[0])))
    assert fake_llm_server.request_count == 2  # one retry (the default), then give up
    assert caught.value.raw_response == "Sure!" and caught.value.usage.prompt_tokens > 0
    second = fake_llm_server.requests[1].body["messages"]
    assert "No explanation found" in second[-1]["content"]  # a new request, not a cache replay
