"""Packed examples and score details (autointerp/store/packed.py): values come back exactly, planted units
score the same read from the store as in memory, and a schema-3 catalog (tests/data/catalog_v3.db,
written by the store of commit d9749bf: make_unit("feature", 0), the planted unit 1 of planted_units(2),
their explanations and scores) is migrated in place."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from autointerp.explainers import OfflineExplainer
from autointerp.records import ActivationExample, ExampleScore, UnitHarvest
from autointerp.scoring import SCORERS
from autointerp.simulators import OfflineSimulator
from autointerp.store import open_store
from autointerp.store.packed import float_column, floats, pack_details, pack_examples, unpack_details, unpack_examples
from autointerp.testing.planted import PlantedUnit, planted_harvest, planted_units
from tests.test_store import make_explanation, make_score, make_unit
from tests.test_store_schema import INDEXES, described, pinned

V3_FIXTURE = Path(__file__).parent / "data" / "catalog_v3.db"


def scores_of(harvest: UnitHarvest) -> list:
    explanation = OfflineExplainer().explain_now(harvest)
    return [asyncio.run(SCORERS[s](harvest, explanation, OfflineSimulator())) for s in sorted(SCORERS)]


@pytest.mark.parametrize(
    ("values", "stored_as"),
    [
        ([0.0, 1.5, -0.1695, 3.1771, 214748.0], "i"),  # 4 decimals, as harvested: integers of 1e-4
        ([0.0, 1e-7, 2.5], "f"),  # finer: float64
        ([float("nan"), float("inf"), 1.0], "f"),  # not finite: float64
        ([1e12, 0.0], "f"),  # beyond int32 at 1e-4: float64
        ([], "f"),
    ],
)
def test_float_columns_give_back_the_same_floats(values: list[float], stored_as: str) -> None:
    column = float_column(np.array(values))
    assert column.dtype.kind == stored_as
    assert repr(floats(column)) == repr(values)


def test_examples_and_details_round_trip() -> None:
    windows: dict[int, list[str | None]] = {7: [None, " a", " b", "\n", None], 9: [" c"]}
    examples = [
        ActivationExample(
            window_id=7, start=1, tokens=[" a", " b", "\n"], activations=[0.0, 2.25, -0.5], split="explain",
            sampling="quantile", quantile=0,
        ),
        ActivationExample(window_id=9, tokens=[" c"], activations=[1e-9], split="score", sampling="hard_negative"),
    ]  # fmt: skip
    asked: list[list[int]] = []
    back = unpack_examples(pack_examples(examples), lambda ids: asked.append(ids) or windows)
    assert back == examples and asked == [[7, 9]]
    assert unpack_examples(pack_examples([]), lambda ids: {}) == []

    details = [
        ExampleScore(window_id=1, sampling="top", predicted=[0.0, 7.0, 3.7183], actual=[0.0, 2.5, -0.1]),
        ExampleScore(window_id=2, sampling="random", predicted=1.0, actual=0.0, correct=False),
        ExampleScore(window_id=3, sampling="silent", predicted=[], actual=[], correct=True),
        ExampleScore(window_id=4, sampling="quantile", predicted=0.25, actual=[1e-7]),
    ]
    assert unpack_details(pack_details(details)) == details
    assert unpack_details(pack_details([])) == []


def test_planted_units_score_identically_from_the_store(tmp_path: Path) -> None:
    harvests = [planted_harvest(u) for u in planted_units(2)]
    harvests.append(planted_harvest(PlantedUnit(index=5, kind="neuron", triggers={" river": 3.3}, noise_rate=0.5)))
    with open_store(tmp_path / "c.db") as store:
        store.put_units("src", harvests)
        for harvest in harvests:
            read = store.get_unit("src", harvest.kind, harvest.index)
            assert read == harvest
            assert read is not None and scores_of(read) == scores_of(harvest)
            store.put_scores("src", scores_of(read))
            assert store.scores("src", kind=harvest.kind, index=harvest.index) == sorted(
                scores_of(harvest), key=lambda s: s.scorer
            )


def test_a_schema_3_catalog_is_migrated_in_place_and_shrunk(tmp_path: Path) -> None:
    path = tmp_path / "v3.db"
    shutil.copy(V3_FIXTURE, path)
    assert "position INTEGER" in described(path)[0]["examples"]  # the fixture really is the old layout
    planted = planted_harvest(planted_units(2)[1])
    with open_store(path) as store:
        assert store.get_unit("src", "feature", 0) == make_unit("feature", 0)
        assert store.get_unit("src", "feature", 1) == planted
        assert store.explanations("src", index=0) == [make_explanation(0)]
        assert store.scores("src", index=0) == [make_score(0)]
        assert store.scores("src", index=1) == sorted(scores_of(planted), key=lambda s: s.scorer)
    assert described(path) == (pinned(), INDEXES)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0  # vacuumed: the old rows' pages are gone
    conn.close()
