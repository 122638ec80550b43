"""The neurons-vs-features statistics and report files, on hand-made scores with known answers."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from autointerp.compare import (
    ComparisonReport,
    compare,
    compare_samples,
    write_report,
)
from autointerp.errors import UserError
from autointerp.records import Explanation, Score
from tests.fake_catalog import EXPLAINER, make_catalog, make_unit


def test_known_medians_means_and_difference():
    c = compare_samples([0.1, 0.2, 0.3, 0.4, 0.5], [0.6, 0.7, 0.8], n_resamples=500)
    assert c.neurons.n == 5 and c.features.n == 3
    assert c.neurons.median == pytest.approx(0.3)
    assert c.features.median == pytest.approx(0.7)
    assert c.neurons.mean == pytest.approx(0.3)
    assert c.features.mean == pytest.approx(0.7)
    assert c.median_difference.value == pytest.approx(0.4)
    assert c.mean_difference.value == pytest.approx(0.4)
    # Bootstrap medians can only be values of the sample, so the CI lies inside its range.
    assert 0.1 <= c.neurons.median_ci95[0] <= 0.3 <= c.neurons.median_ci95[1] <= 0.5
    assert 0.6 <= c.features.median_ci95[0] <= c.features.median_ci95[1] <= 0.8
    # Every feature outscores every neuron.
    assert c.prob_feature_higher == pytest.approx(1.0)
    assert c.median_difference.ci95[0] > 0


def test_median_ci_covers_the_true_median_at_about_95_percent():
    # Normal(0.3, 0.1): true median 0.3. 40 independent samples; a correct 95% CI misses rarely.
    covered = 0
    widths = []
    for trial in range(40):
        sample = np.random.default_rng(1000 + trial).normal(0.3, 0.1, size=150)
        c = compare_samples(sample, sample + 0.2, n_resamples=1000, seed=trial)
        low, high = c.neurons.median_ci95
        covered += low <= 0.3 <= high
        widths.append(high - low)
    assert covered >= 34  # P(covered < 34 | true coverage 0.95) < 1%
    # Standard error of a median of n=150 N(0, 0.1) draws is ~0.0102, so a 95% CI is ~0.04 wide.
    assert 0.02 < float(np.mean(widths)) < 0.07


def test_median_difference_ci_contains_the_true_shift():
    rng = np.random.default_rng(7)
    neurons = rng.normal(0.2, 0.15, size=300)
    features = rng.normal(0.5, 0.15, size=400)
    c = compare_samples(neurons, features, seed=3)
    low, high = c.median_difference.ci95
    assert low < 0.3 < high
    assert high - low < 0.1


def test_p_value_small_for_shifted_and_large_for_same_distribution():
    rng = np.random.default_rng(0)
    shifted = compare_samples(rng.normal(0.0, 1.0, 100), rng.normal(1.0, 1.0, 100), n_resamples=200)
    assert shifted.p_value < 1e-6
    assert shifted.prob_feature_higher > 0.7
    same = compare_samples(rng.normal(0.0, 1.0, 100), rng.normal(0.0, 1.0, 100), n_resamples=200)
    assert same.p_value > 0.05
    assert same.median_difference.ci95[0] < 0 < same.median_difference.ci95[1]


def test_all_tied_scores_give_p_one():
    c = compare_samples([0.5] * 4, [0.5] * 6, n_resamples=100)
    assert c.p_value == 1.0
    assert c.median_difference.ci95 == (0.0, 0.0)


def test_seed_makes_cis_reproducible():
    rng = np.random.default_rng(1)
    a, b = rng.random(50), rng.random(60)
    first = compare_samples(a, b, seed=5)
    assert compare_samples(a, b, seed=5) == first
    assert compare_samples(a, b, seed=6).neurons.median_ci95 != first.neurons.median_ci95


def test_large_sample_bootstrap_runs_in_bounded_chunks():
    # 20k units x 2000 resamples would be 40M indices at once; the chunked bootstrap handles it.
    rng = np.random.default_rng(2)
    c = compare_samples(rng.random(20_000), rng.random(200), n_resamples=300)
    low, high = c.neurons.median_ci95
    assert low < 0.5 < high and high - low < 0.03


def test_compare_catalog_counts_failed_scores_and_reports_every_scorer():
    report = compare(make_catalog(n_neurons=6, n_features=10), n_resamples=300)
    assert report.scorer == "simulation" and report.explainer == EXPLAINER
    assert list(report.by_scorer) == ["simulation", "detection", "fuzzing"]
    assert (report.neurons.n, report.features.n) == (6, 10)
    detection = report.by_scorer["detection"]
    assert (detection.neurons.n, detection.neurons.n_failed) == (5, 1)
    assert (detection.features.n, detection.features.n_failed) == (9, 1)
    assert report.median_difference.value > 0  # the fake catalog's features score higher


def test_nan_score_counts_as_failed():
    entries = make_catalog(n_neurons=4, n_features=4)
    entries[1].scores[0].value = float("nan")
    report = compare(entries, n_resamples=100)
    assert (report.neurons.n, report.neurons.n_failed) == (3, 1)


def test_latest_explanation_and_its_score_count():
    entries = make_catalog(n_neurons=3, n_features=3)
    neuron = entries[0]
    newer = Explanation(unit_kind="neuron", unit_index=0, text="newer", explainer=EXPLAINER, settings_hash="v2")
    neuron.explanations.append(newer)
    neuron.scores.append(
        Score(
            unit_kind="neuron",
            unit_index=0,
            explanation_settings_hash="v2",
            scorer="simulation",
            simulator="offline",
            value=-0.75,
        )
    )
    report = compare(entries, n_resamples=100)
    assert -0.75 in report.neurons.values
    assert neuron.scores[0].value not in report.neurons.values


def test_a_kind_without_scores_is_a_clear_error():
    entries = [e for e in make_catalog() if e.harvest.kind == "feature"]
    with pytest.raises(UserError, match="No neuron has a valid 'simulation' score"):
        compare(entries)
    entries = make_catalog()
    for e in entries:
        if e.harvest.kind == "neuron":
            for s in e.scores:
                s.value, s.failed = None, True
    with pytest.raises(UserError, match=r"No neuron .* \(6 failed, 0 unscored\)"):
        compare(entries)


def _add_llm_explanation(entry, model: str, value: float, simulator: str = "offline") -> None:
    h = entry.harvest
    settings = f"llm-{model}-{h.kind}-{h.index}"
    entry.explanations.append(
        Explanation(
            unit_kind=h.kind,
            unit_index=h.index,
            text=f"by {model}",
            explainer="llm",
            model=model,
            settings_hash=settings,
        )
    )
    entry.scores.append(
        Score(
            unit_kind=h.kind,
            unit_index=h.index,
            explanation_settings_hash=settings,
            scorer="simulation",
            simulator=simulator,
            value=value,
        )
    )


def test_unknown_or_ambiguous_explainer_is_a_clear_error():
    entries = make_catalog(n_neurons=3, n_features=3)
    with pytest.raises(UserError, match="explainer 'llm'"):
        compare(entries, explainer="llm")
    for e in entries:
        _add_llm_explanation(e, "openai:gpt-4o-mini", 0.9)
    with pytest.raises(UserError, match="several explainers"):
        compare(entries)
    assert compare(entries, explainer=EXPLAINER, n_resamples=50).explainer == EXPLAINER
    # An explainer name with a single model resolves to its label; its own scores count.
    report = compare(entries, explainer="llm", n_resamples=50)
    assert report.explainer == "llm / openai:gpt-4o-mini"
    assert report.neurons.values == [0.9, 0.9, 0.9]
    # Two models under one explainer name: the caller must choose one.
    for e in entries:
        _add_llm_explanation(e, "anthropic:claude", 0.1)
    with pytest.raises(UserError, match="several settings"):
        compare(entries, explainer="llm")
    assert compare(entries, explainer="llm / anthropic:claude", n_resamples=50).features.values == [0.1] * 3


def test_scores_from_several_simulators_are_never_mixed():
    entries = make_catalog(n_neurons=3, n_features=3)
    for e in entries:
        h = e.harvest
        e.scores.append(
            Score(
                unit_kind=h.kind,
                unit_index=h.index,
                explanation_settings_hash=e.explanations[0].settings_hash,
                scorer="simulation",
                simulator="openai:gpt-4o-mini",
                value=-0.5,
            )
        )
    with pytest.raises(UserError, match="several simulators"):
        compare(entries)
    report = compare(entries, simulator="openai:gpt-4o-mini", n_resamples=50)
    assert report.simulator == "openai:gpt-4o-mini" and report.neurons.values == [-0.5] * 3
    offline = compare(entries, simulator="offline", n_resamples=50)
    assert -0.5 not in offline.neurons.values + offline.features.values


def test_scorer_missing_for_one_kind_is_skipped_with_reason():
    entries = make_catalog(n_neurons=3, n_features=3)
    for e in entries:
        if e.harvest.kind == "feature":
            e.scores.append(
                Score(
                    unit_kind="feature",
                    unit_index=e.harvest.index,
                    explanation_settings_hash=e.explanations[0].settings_hash,
                    scorer="embedding",
                    simulator="offline",
                    value=0.5,
                )
            )
    report = compare(entries, n_resamples=50)
    assert "embedding" not in report.by_scorer
    assert "No neuron" in report.skipped_scorers["embedding"]


def test_write_report_files_and_schema(tmp_path):
    report = compare(make_catalog(seed=3), n_resamples=200)
    path = write_report(report, tmp_path / "cmp")
    data = json.loads(path.read_text())
    for kind in ("neurons", "features"):
        assert {"n", "mean", "median", "median_ci95", "n_failed", "mean_ci95"} <= set(data[kind])
        assert len(data[kind]["median_ci95"]) == 2
    assert {"value", "ci95"} <= set(data["median_difference"])
    assert data["scorer"] == "simulation" and data["explainer"] == EXPLAINER
    assert 0 <= data["p_value"] <= 1
    assert set(data["by_scorer"]) == {"simulation", "detection", "fuzzing"}
    for per in data["by_scorer"].values():
        assert {"neurons", "features", "median_difference", "p_value", "scorer", "explainer"} <= set(per)
    assert data["by_scorer"]["simulation"]["median_difference"] == data["median_difference"]

    md = (tmp_path / "cmp" / "report.md").read_text()
    assert "| simulation |" in md and "| detection |" in md
    assert "![Score distributions, neurons vs features](score_distributions.png)" in md
    png = (tmp_path / "cmp" / "score_distributions.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000

    assert ComparisonReport.model_validate_json((tmp_path / "cmp" / "report.json").read_text()) == report


def test_report_is_deterministic_for_the_same_catalog():
    rng_catalog = [make_unit("neuron", i, random.Random(i), score_mean=0.3, n_neurons=4) for i in range(4)]
    rng_catalog += [make_unit("feature", i, random.Random(50 + i), score_mean=0.6, n_neurons=4) for i in range(5)]
    assert compare(rng_catalog, n_resamples=300) == compare(rng_catalog, n_resamples=300)
    assert isinstance(compare(rng_catalog, n_resamples=10), ComparisonReport)
