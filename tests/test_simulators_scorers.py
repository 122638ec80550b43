"""Simulators and scorers: explanation parsing, correlation and balanced accuracy edge cases, and a
correct explanation beating a wrong one under every scorer, offline and through the fake server
(OpenAI with logprobs, Anthropic with JSON integers). Malformed output is retried, then a failed
score."""

from __future__ import annotations

import asyncio
import json
import math

import pytest

from autointerp.explainers import OfflineExplainer
from autointerp.language import AnyToken, Condition, Item, Literal, parse
from autointerp.llm import ChatResponse, RetryPolicy, make_llm_client
from autointerp.llm.logprobs import line_end_numbers
from autointerp.records import Explanation
from autointerp.scoring import SCORERS, SimulationScorerConfig, balanced_accuracy, correlation, score_simulation
from autointerp.scoring.examples import simulation_examples
from autointerp.simulators import LLMSimulator, LLMSimulatorConfig, OfflineSimulator
from autointerp.simulators.llm import (
    MalformedAnswer,
    read_excerpt_number_lines,
    read_json_answers,
    read_json_excerpt_activations,
    read_number_lines,
)
from autointerp.testing.fake_llm_server import FakeLLMServer, FakeReply, Fault
from autointerp.testing.planted import PlantedUnit, SimulatingResponder, planted_harvest, planted_units

FAST = RetryPolicy(max_attempts=2, initial_wait_s=0.001, max_wait_s=0.01, jitter_s=0.001)
WRONG_TEXT = 'fires on " stone" and " garden"'


@pytest.fixture(autouse=True)
def fake_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-sim")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-sim")


def explanations_for(unit_index: int):
    harvest = planted_harvest(planted_units(3)[unit_index])
    right = OfflineExplainer().explain_now(harvest)
    wrong = right.model_copy(update={"text": WRONG_TEXT})
    return harvest, right, wrong


# ---- reading explanations (the language itself is pinned in tests/test_language.py) ------------


def test_offline_wording_parses_back_exactly() -> None:
    text = (
        'fires most strongly on " God" (after " of"); strongly on " Lord" and any token after " the"; weakly on "\\n"'
    )
    assert parse(text).items == (
        Item(Literal(" God"), 10.0, (Condition("after", Literal(" of")),)),
        Item(Literal(" Lord"), 7.0),
        Item(AnyToken(), 7.0, (Condition("after", Literal(" the")),)),
        Item(Literal("\n"), 2.0),
    )


def test_predictions_follow_matching_rules() -> None:
    tokens = [" Son", " of", " God", ",", " god", " the", " Lord", "God"]
    simulator = OfflineSimulator()
    assert simulator.predict('fires on " God" (after " of")', tokens) == [0, 0, 10, 0, 0, 0, 0, 0]
    loose = simulator.predict('fires on "God"; weakly on any token after " the"', tokens)
    assert loose[2] == 10 and loose[7] == 10 and loose[4] == pytest.approx(8.0)  # case-insensitive: 0.8x
    assert loose[6] == 2
    assert simulator.predict('"Son of God"', tokens)[:3] == [5.0, 5.0, 10.0]
    excluded = simulator.predict('"God" but not " god"', tokens)
    assert excluded[4] == 0 and excluded[2] == 10


def test_exact_mark_turns_off_forgiving_matches() -> None:
    tokens = [" God", "God", " god"]
    simulator = OfflineSimulator()
    assert simulator.predict('fires on "God"', tokens) == pytest.approx([10, 10, 8])
    assert all(item.target.exact for item in parse('fires on "God" and " god" (exact tokens)').items)
    assert simulator.predict('fires on "God" and " god" (exact tokens)', tokens) == [0, 10, 10]


def test_parse_coverage_reports_what_was_not_understood() -> None:
    simulator = OfflineSimulator()
    assert simulator.parse_coverage("closing parentheses") == 1.0
    assert simulator.parse_coverage("the word of in prepositional phrases") == 0.5
    assert simulator.parse_coverage("") == 0.0
    assert simulator.settings["version"] == 4


# ---- metrics -----------------------------------------------------------------------------------


def test_correlation_handles_constant_vectors_explicitly() -> None:
    assert correlation([0, 1, 2], [0, 2, 4]) == pytest.approx(1.0)
    assert correlation([0, 0, 0], [0, 2, 4]) == 0.0  # predicts nothing
    assert correlation([0, 1, 2], [3, 3, 3]) is None  # nothing to predict
    with pytest.raises(ValueError):
        correlation([1, 2], [1, 2, 3])


def test_balanced_accuracy() -> None:
    assert balanced_accuracy([True, True, True, True], [True, True, False, False]) == 0.5
    assert balanced_accuracy([True, False, False, False], [True, True, False, False]) == 0.75
    assert balanced_accuracy([True], [True]) is None


# ---- correct beats wrong -----------------------------------------------------------------------


@pytest.mark.parametrize("scorer", sorted(SCORERS))
@pytest.mark.parametrize("unit_index", [0, 1, 2])
def test_offline_correct_explanation_beats_wrong(scorer: str, unit_index: int) -> None:
    harvest, right, wrong = explanations_for(unit_index)
    simulator = OfflineSimulator()
    good = asyncio.run(SCORERS[scorer](harvest, right, simulator))
    bad = asyncio.run(SCORERS[scorer](harvest, wrong, simulator))
    assert not good.failed and not bad.failed
    assert good.value > 0.9
    assert good.value - bad.value > 0.2, (good.value, bad.value)
    assert good.details and all(d.window_id >= 0 for d in good.details)
    assert good.settings_hash == bad.settings_hash and good.simulator == "offline"


def test_simulation_score_has_stratum_parts_and_details() -> None:
    harvest, right, _ = explanations_for(1)
    score = asyncio.run(score_simulation(harvest, right, OfflineSimulator()))
    assert set(score.parts) >= {"all", "top", "quantile", "random", "hard_negative", "bills"}
    assert {d.sampling for d in score.details} == {"top", "quantile", "random"}  # this harvest has no hard negatives
    assert all(len(d.predicted) == len(d.actual) for d in score.details)
    v1 = asyncio.run(score_simulation(harvest, right, OfflineSimulator(), SimulationScorerConfig(protocol=1)))
    assert {d.sampling for d in v1.details} == {"top", "random"} and v1.settings_hash != score.settings_hash


def test_simulation_of_a_unit_that_never_fires_is_a_failed_score() -> None:
    harvest, right, _ = explanations_for(0)
    for example in harvest.examples:
        example.activations = [0.0] * len(example.tokens)
    score = asyncio.run(score_simulation(harvest, right, OfflineSimulator()))
    assert score.failed and score.value is None and "constant" in score.error


def test_dense_unit_still_has_detection_negatives() -> None:
    # Every window fires a little; the harvest's least active windows are the contrast.
    harvest = planted_harvest(PlantedUnit(index=9, triggers={" river": 5.0}, noise_rate=0.9))
    right = OfflineExplainer().explain_now(harvest)
    score = asyncio.run(SCORERS["detection"](harvest, right, OfflineSimulator()))
    assert not score.failed and score.value > 0.9
    assert {d.sampling for d in score.details if d.actual == 0.0} >= {"silent"}


def _client(server: FakeLLMServer, api: str):
    if api == "openai":
        return make_llm_client("openai:gpt-4o-mini", base_url=server.openai_base_url, retry=FAST, timeout=10)
    return make_llm_client("anthropic:claude-haiku-4-5", base_url=server.anthropic_base_url, retry=FAST, timeout=10)


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_llm_correct_explanation_beats_wrong(fake_llm_server: FakeLLMServer, api: str) -> None:
    fake_llm_server.responder = SimulatingResponder()
    simulator = LLMSimulator(_client(fake_llm_server, api))
    assert simulator.use_logprobs == (api == "openai")
    harvest, right, wrong = explanations_for(1)
    for scorer in sorted(SCORERS):
        good = asyncio.run(SCORERS[scorer](harvest, right, simulator))
        bad = asyncio.run(SCORERS[scorer](harvest, wrong, simulator))
        assert not good.failed and not bad.failed, (good.error, bad.error)
        assert good.value - bad.value > 0.2, (scorer, good.value, bad.value)
        assert good.prompt_tokens > 0 and good.completion_tokens > 0
        assert good.simulator == simulator.name
    assert fake_llm_server.responder.asked.keys() == {"simulate", "detect", "fuzz"}


def test_logprob_expected_value_at_the_number_positions() -> None:
    text = '0\t" a"\t4\n1\t" b"\t0\n'
    pieces = ['0\t" a"\t', "4", "\n", '1\t" b"\t', "0", "\n"]
    tops = {1: [("4", 0.5), ("8", 0.25), (" 2", 0.25), ("x", 0.5)], 4: [("0", 1.0)]}
    logprobs = [
        {"token": p, "logprob": 0.0, "top_logprobs": [{"token": t, "logprob": math.log(w)} for t, w in tops.get(k, [])]}
        for k, p in enumerate(pieces)
    ]  # fmt: skip
    kept = line_end_numbers(logprobs, text)
    assert kept is not None and len(kept) == 2  # the line indices 0 and 1 are not kept
    predicted = read_number_lines(ChatResponse(text=text, line_end_numbers=kept), 2)
    assert predicted == pytest.approx([(4 * 0.5 + 8 * 0.25 + 2 * 0.25) / 1.0, 0.0])
    # Without logprobs, the written numbers.
    assert read_number_lines(ChatResponse(text=text), 2) == [4.0, 0.0]


@pytest.mark.parametrize(
    "text",
    ['0\t" a"\t4\n', '0\t" a"\t4\n0\t" a"\t3\n1\t" b"\t1', '0\t" a"\t40\n1\t" b"\t1', "no numbers at all"],
)
def test_malformed_number_lines_are_rejected(text: str) -> None:
    with pytest.raises(MalformedAnswer):
        read_number_lines(ChatResponse(text=text), 2)


def test_json_answers_tolerate_fences_but_not_wrong_shapes() -> None:
    assert read_json_answers('```json\n{"answers": [1, 0]}\n```', 2) == [True, False]
    assert read_json_answers("[0, 1]", 2) == [False, True]
    for bad in ('{"answers": [1]}', '{"answers": [1, 2]}', '{"other": [1, 0]}', "yes, no"):
        with pytest.raises(MalformedAnswer):
            read_json_answers(bad, 2)


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_malformed_simulator_output_is_retried_then_a_failed_score(fake_llm_server: FakeLLMServer, api: str) -> None:
    fake_llm_server.responder = lambda body, wire: "I cannot do that."
    simulator = LLMSimulator(_client(fake_llm_server, api), LLMSimulatorConfig(max_retries=2))
    harvest, right, _ = explanations_for(0)
    one_example = harvest.model_copy(
        update={"examples": harvest.examples_for("score", "top")[:1] + harvest.examples_for("score", "random")[:1]}
    )
    score = asyncio.run(score_simulation(one_example, right, simulator))
    assert score.failed and score.value is None and score.details == []
    assert "malformed simulation answer after 3 attempts" in score.error
    assert fake_llm_server.request_count == 2 * 3  # two examples, three attempts each
    assert score.prompt_tokens > 0  # what the failed attempts cost is still recorded
    # Each retry tells the model what was wrong, so it is a new request rather than a cache replay.
    last_messages = fake_llm_server.requests[-1].body["messages"]
    assert "could not be read" in str(last_messages[-1]["content"])


def test_a_failed_llm_call_is_a_failed_score_not_zeros(fake_llm_server: FakeLLMServer) -> None:
    fake_llm_server.responder = SimulatingResponder()
    fake_llm_server.add_faults(Fault(status=400))
    simulator = LLMSimulator(_client(fake_llm_server, "openai"), LLMSimulatorConfig(examples_per_prompt=50))
    harvest, right, _ = explanations_for(0)
    score = asyncio.run(SCORERS["detection"](harvest, right, simulator))
    assert score.failed and score.value is None and "400" in score.error


def test_simulator_settings_separate_models_and_prompts(fake_llm_server: FakeLLMServer) -> None:
    openai_sim = LLMSimulator(_client(fake_llm_server, "openai"))
    anthropic_sim = LLMSimulator(_client(fake_llm_server, "anthropic"))
    assert openai_sim.settings != anthropic_sim.settings
    assert "simulate_v1" in openai_sim.settings["prompts"] and "simulate_json_v1" in anthropic_sim.settings["prompts"]
    _, right, _ = explanations_for(0)
    assert isinstance(right, Explanation)


def test_unusable_answers_are_not_replayed_from_the_cache(fake_llm_server: FakeLLMServer, tmp_path) -> None:
    """A malformed answer is dropped from the response cache when the simulator gives up, so the
    next run pays for a fresh answer instead of replaying the same failure for free."""
    from autointerp.store import open_store

    store = open_store(tmp_path / "cache.db")
    fake_llm_server.responder = lambda body, wire: "I cannot do that."
    client = make_llm_client(
        "openai:gpt-4o-mini", base_url=fake_llm_server.openai_base_url, retry=FAST, timeout=10, ledger=store.ledger
    )
    simulator = LLMSimulator(client, LLMSimulatorConfig(max_retries=1))
    harvest, right, _ = explanations_for(0)
    one_example = harvest.model_copy(update={"examples": harvest.examples_for("score", "top")[:1]})
    assert asyncio.run(score_simulation(one_example, right, simulator)).failed
    assert fake_llm_server.request_count == 2
    assert store.db.execute("SELECT COUNT(*) FROM llm_cache").fetchone()[0] == 0
    assert asyncio.run(score_simulation(one_example, right, simulator)).failed
    assert fake_llm_server.request_count == 4  # asked again, not answered from the cache


# ---- several examples per simulation request ---------------------------------------------------


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_several_examples_per_call_cut_the_requests_by_that_factor(fake_llm_server: FakeLLMServer, api: str) -> None:
    responder = SimulatingResponder()
    fake_llm_server.responder = responder
    harvest, right, _ = explanations_for(1)
    n = len(simulation_examples(harvest, SimulationScorerConfig().protocol))
    scores = {}
    for per_call in (1, 4):
        simulator = LLMSimulator(
            _client(fake_llm_server, api), LLMSimulatorConfig(simulation_examples_per_call=per_call)
        )
        before = responder.asked["simulate"]
        scores[per_call] = asyncio.run(score_simulation(harvest, right, simulator))
        assert responder.asked["simulate"] - before == math.ceil(n / per_call)
        assert not scores[per_call].failed, scores[per_call].error
    assert n >= 8  # enough examples that the factor shows
    # The fake model judges each excerpt alone, so the excerpts must have been read back in order.
    assert scores[4].value == pytest.approx(scores[1].value) and scores[4].value > 0.5
    predicted = {k: [v for d in score.details for v in d.predicted] for k, score in scores.items()}  # type: ignore[union-attr]
    assert predicted[4] == pytest.approx(predicted[1])
    assert scores[4].settings_hash != scores[1].settings_hash  # the mode is part of the score's settings


def _cut(reply: str | FakeReply, how: str) -> str | FakeReply:
    """A several-excerpt answer made unusable: its last excerpt dropped, or cut off at the limit."""
    text = reply.text if isinstance(reply, FakeReply) else reply
    if how == "truncated":
        return FakeReply(text=text[: len(text) // 2], finish_reason="length")
    if isinstance(reply, FakeReply):
        return text[: text.rindex("Excerpt ")]
    return json.dumps({"activations": json.loads(text)["activations"][:-1]})


@pytest.mark.parametrize("how", ["excerpt_missing", "truncated"])
@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_an_unusable_several_example_answer_is_a_failed_score(
    fake_llm_server: FakeLLMServer, api: str, how: str
) -> None:
    inner = SimulatingResponder()

    def responder(body: dict, wire: str) -> str | FakeReply:
        retried = "could not be read" in str(body["messages"][-1]["content"])  # answer the first ask again
        return _cut(inner({**body, "messages": body["messages"][:-2]} if retried else body, wire), how)

    fake_llm_server.responder = responder
    config = LLMSimulatorConfig(simulation_examples_per_call=3, max_retries=1)
    simulator = LLMSimulator(_client(fake_llm_server, api), config)
    harvest, right, _ = explanations_for(1)
    score = asyncio.run(score_simulation(harvest, right, simulator))
    assert score.failed and score.value is None and score.details == []
    assert "malformed simulation answer after 2 attempts" in score.error
    n = len(simulation_examples(harvest, SimulationScorerConfig().protocol))
    assert fake_llm_server.request_count == math.ceil(n / 3) * 2
    assert score.prompt_tokens > 0


def test_several_excerpt_number_lines_are_read_per_excerpt() -> None:
    text = 'Excerpt 1:\n0\t" a"\t4\n1\t" b"\t0\n**Excerpt 2 (1 tokens):**\n0\t" c"\t7\n'
    assert read_excerpt_number_lines(ChatResponse(text=text), [2, 1]) == [[4.0, 0.0], [7.0]]
    bad = [
        '0\t" a"\t4\nExcerpt 1:\n0\t" a"\t4\n1\t" b"\t0\nExcerpt 2:\n0\t" c"\t7',  # line before any header
        'Excerpt 1:\n0\t" a"\t4\n1\t" b"\t0\n',  # excerpt 2 missing
        'Excerpt 1:\n0\t" a"\t4\n1\t" b"\t0\nExcerpt 1:\n0\t" c"\t7',  # excerpt 1 twice
        'Excerpt 1:\n0\t" a"\t4\n1\t" b"\t0\nExcerpt 3:\n0\t" c"\t7',  # no excerpt 3
        'Excerpt 1:\n0\t" a"\t4\nExcerpt 2:\n0\t" c"\t7\n1\t" b"\t0',  # a line under the wrong excerpt
    ]
    for text in bad:
        with pytest.raises(MalformedAnswer):
            read_excerpt_number_lines(ChatResponse(text=text), [2, 1])


def test_several_excerpt_json_is_read_per_excerpt() -> None:
    assert read_json_excerpt_activations('{"activations": [[1, 0], [10]]}', [2, 1]) == [[1.0, 0.0], [10.0]]
    for bad in (
        '{"activations": [[1, 0]]}',
        '{"activations": [[1], [10]]}',
        '{"activations": [[1, 0], [11]]}',
        "[1, 0, 10]",
    ):
        with pytest.raises(MalformedAnswer):
            read_json_excerpt_activations(bad, [2, 1])
