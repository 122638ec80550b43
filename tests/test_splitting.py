"""Feature splitting: a larger SAE built from a smaller one (each parent copied twice, plus noise) must
find each child's true parent, the links must land in the catalog's unit_links table, and bad input
must end in one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from autointerp.analysis.family import add_splitting, summarize_links
from autointerp.cli import main
from autointerp.compare import ComparisonReport, compare, report_markdown
from autointerp.records import UnitLink
from autointerp.store import open_store
from autointerp.store.links import read_links, replace_links
from sae.autoencoder import SAEConfig, SparseAutoencoder
from sae.saelens_format import save_sae
from tests.fake_catalog import make_catalog

WIDTH, PARENTS, K = 512, 24, 4
PERM = torch.randperm(2 * PARENTS, generator=torch.Generator().manual_seed(3))


def true_parent(child: int) -> int:
    return int(PERM[child]) % PARENTS


def family_saes(root: Path) -> tuple[Path, Path]:
    """A PARENTS-feature SAE and a 2·PARENTS one whose feature j copies parent true_parent(j), plus noise."""
    torch.manual_seed(0)
    parent = SparseAutoencoder(SAEConfig(d_in=WIDTH, d_sae=PARENTS, k=K))
    child = SparseAutoencoder(SAEConfig(d_in=WIDTH, d_sae=2 * PARENTS, k=2 * K))
    source = PERM % PARENTS
    with torch.no_grad():
        child.W_enc.copy_(parent.W_enc[:, source] * (1 + 0.01 * torch.randn(WIDTH, 2 * PARENTS)))
        child.b_enc.copy_(parent.b_enc[source])
        child.W_dec.copy_(
            parent.W_dec[source] + 0.05 * parent.W_dec.norm(dim=1).mean() * torch.randn(2 * PARENTS, WIDTH) / WIDTH**0.5
        )
        child.b_dec.copy_(parent.b_dec)
    save_sae(parent, root / "small")
    save_sae(child, root / "large")
    return root / "small", root / "large"


@pytest.fixture(scope="module")
def saes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return family_saes(tmp_path_factory.mktemp("family"))


def catalog_with_sources(path: Path, folders: dict[str, Path]) -> None:
    with open_store(path) as store:
        for name, folder in folders.items():
            store.put_source(name, {"sae": str(folder), "harvest_complete": True})


def test_each_child_finds_the_parent_it_was_copied_from(saes, tmp_path, capsys):
    small, large = saes
    db = tmp_path / "catalog.db"
    catalog_with_sources(db, {"src/small": small, "src/large": large, "src/neurons-only": tmp_path / "elsewhere"})
    # given largest first: the order of --saes does not matter
    argv = ["analyze", "splitting", "--saes", str(large), str(small), "--tokens", "1024", "--db", str(db), "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    with open_store(db) as store:
        links = read_links(store.db)
    assert result["sources"] == ["src/small", "src/large"] and result["sizes"] == [PARENTS, 2 * PARENTS]
    assert result["tokens"] == 1024
    cosine = {link.child_index: link for link in links if link.relation == "cosine"}
    assert {i: link.parent_index for i, link in cosine.items()} == {i: true_parent(i) for i in range(2 * PARENTS)}
    assert all(link.decoder_cosine > 0.9 for link in cosine.values())
    by_corr = [link for link in links if link.relation == "correlation"]
    assert len(by_corr) >= PARENTS  # most children fire on 1024 tokens
    assert sum(link.parent_index == true_parent(link.child_index) for link in by_corr) >= 0.9 * len(by_corr)
    [level] = result["levels"]
    assert (level["children"], level["parent_size"]) == (2 * PARENTS, PARENTS)
    assert level["by_cosine"] == {"parents": PARENTS, "mean_children": 2.0, "split": 1.0, "childless": 0.0}
    assert level["best_cosine"]["median"] > 0.9
    assert level["agreement"] >= 0.9
    assert {(link.child_source, link.parent_source) for link in links} == {("src/large", "src/small")}


def link(child: int, parent: int, relation: str, cosine: float, corr: float | None) -> UnitLink:
    return UnitLink(child_source="big", child_index=child, parent_source="small", parent_index=parent, parent_size=4,
                    relation=relation, decoder_cosine=cosine, activation_correlation=corr)  # fmt: skip


def test_summary_counts_children_per_parent_and_agreement():
    links = [
        link(0, 0, "cosine", 0.9, 0.8), link(0, 0, "correlation", 0.9, 0.8),
        link(1, 0, "cosine", 0.7, 0.1), link(1, 2, "correlation", 0.5, 0.6),
        link(2, 1, "cosine", 0.5, None),  # dead on the tokens: no correlation parent
    ]  # fmt: skip
    [level] = summarize_links(links)
    assert level.children == 3
    assert level.by_cosine.model_dump() == {"parents": 4, "mean_children": 1.5, "split": 0.25, "childless": 0.5}
    assert level.by_correlation.model_dump() == {"parents": 4, "mean_children": 1.0, "split": 0.0, "childless": 0.5}
    assert level.agreement == 0.5
    assert level.best_cosine is not None and level.best_cosine.median == 0.7
    assert level.best_correlation is not None and level.best_correlation.median == pytest.approx(0.7)


def test_a_rerun_replaces_the_links_between_the_same_sources(tmp_path):
    with open_store(tmp_path / "c.db") as store:
        replace_links(store.db, [link(0, 0, "cosine", 0.9, 0.8), link(1, 0, "cosine", 0.8, 0.8)])
        replace_links(store.db, [link(0, 3, "cosine", 0.6, None)])
        assert read_links(store.db) == [link(0, 3, "cosine", 0.6, None)]


def test_the_report_gets_a_splitting_section(tmp_path):
    def make_report() -> ComparisonReport:
        return compare(make_catalog(n_neurons=4, n_features=4), n_resamples=50)

    with open_store(tmp_path / "c.db") as store:
        assert add_splitting(make_report(), store).splitting == []
        assert "Feature splitting" not in report_markdown(make_report())
        replace_links(store.db, [link(0, 0, "cosine", 0.9, 0.8), link(1, 0, "cosine", 0.8, 0.7)])
        report = add_splitting(make_report(), store)
    assert report.splitting[0]["by_cosine"]["split"] == 0.25
    text = report_markdown(report)
    assert "## Feature splitting" in text
    assert "| big (2) | small (4) | 0.850 [" in text


def test_bad_families_are_refused_with_one_clear_error(saes, tmp_path, capsys):
    small, large = saes
    other_hook = SparseAutoencoder(SAEConfig(d_in=WIDTH, d_sae=8, k=2, hook_name="blocks.0.hook_resid_post"))
    save_sae(other_hook, tmp_path / "other")
    cases = [
        (["--saes", str(small)], "at least two sizes"),
        (["--saes", str(small), str(tmp_path / "missing")], "missing is not an SAE folder"),
        (["--saes", str(small), str(tmp_path / "other")], "must read the same hook"),
        (["--saes", str(small), str(small)], "must differ in size"),
    ]
    for argv, message in cases:
        assert main(["analyze", "splitting", *argv]) == 2
        assert message in capsys.readouterr().err
    db = tmp_path / "c.db"
    catalog_with_sources(db, {"src/small": small})
    assert main(["analyze", "splitting", "--saes", str(small), str(large), "--db", str(db), "--tokens", "512"]) == 2
    err = capsys.readouterr().err
    assert "large is not the SAE of any source" in err and "src/small" in err
