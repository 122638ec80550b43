"""What the stored splitting links say: summary statistics per pair of sizes, and each unit's family.

Read from the unit_links table (autointerp/store/links.py) by the report (a "splitting" section) and
the HTML catalog (a feature's parents in smaller SAEs and children in larger ones). Light on purpose:
no torch, so the report and the exporters can import it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from pydantic import BaseModel

from autointerp.compare import ComparisonReport, StatSummary
from autointerp.records import CatalogEntry, UnitLink
from autointerp.store import CatalogStore
from autointerp.store.links import read_links
from autointerp.validity import summarize

MAX_CHILDREN_SHOWN = 40  # on a parent's unit view, strongest first: a 512-feature parent may have hundreds


class ChildCounts(BaseModel):
    """How the children of one SAE are spread over the parents one measure gives them."""

    parents: int  # features in the parent SAE
    mean_children: float  # over the parents with at least one child
    split: float  # share of the parents with two or more children
    childless: float  # share of the parents no child chose


class LevelSummary(BaseModel):
    """The features of one SAE (children) against their nearest features in one smaller SAE (parents)."""

    child_source: str
    parent_source: str
    children: int
    parent_size: int
    best_cosine: StatSummary | None  # each child's largest decoder cosine with a parent
    best_correlation: StatSummary | None  # each child's largest activation correlation (live children)
    by_cosine: ChildCounts
    by_correlation: ChildCounts
    agreement: float | None  # share of children whose two measures pick the same parent


def _counts(parents: Counter[int], size: int) -> ChildCounts:
    chosen = list(parents.values())
    return ChildCounts(
        parents=size,
        mean_children=sum(chosen) / len(chosen) if chosen else 0.0,
        split=sum(1 for n in chosen if n >= 2) / size,
        childless=(size - len(chosen)) / size,
    )


def summarize_links(links: Iterable[UnitLink]) -> list[LevelSummary]:
    """One summary per (child source, parent source), the largest parents first for each child source."""
    groups: dict[tuple[str, str], list[UnitLink]] = defaultdict(list)
    for link in links:
        groups[(link.child_source, link.parent_source)].append(link)
    levels = []
    for (child, parent), rows in groups.items():
        by = {
            relation: {r.child_index: r for r in rows if r.relation == relation}
            for relation in ("cosine", "correlation")
        }
        both = set(by["cosine"]) & set(by["correlation"])
        key = f"splitting:{child}:{parent}"
        levels.append(
            LevelSummary(
                child_source=child,
                parent_source=parent,
                children=len({r.child_index for r in rows}),
                parent_size=rows[0].parent_size,
                best_cosine=summarize([r.decoder_cosine for r in by["cosine"].values()], f"{key}:cosine"),
                best_correlation=summarize(
                    [
                        r.activation_correlation
                        for r in by["correlation"].values()
                        if r.activation_correlation is not None
                    ],
                    f"{key}:correlation",
                ),
                by_cosine=_counts(Counter(r.parent_index for r in by["cosine"].values()), rows[0].parent_size),
                by_correlation=_counts(
                    Counter(r.parent_index for r in by["correlation"].values()), rows[0].parent_size
                ),
                agreement=(
                    sum(by["cosine"][i].parent_index == by["correlation"][i].parent_index for i in both) / len(both)
                    if both
                    else None
                ),
            )
        )
    return sorted(levels, key=lambda level: (level.child_source, -level.parent_size))


def _ci(summary: StatSummary | None) -> str:
    if summary is None:
        return "n/a"
    return f"{summary.median:.3f} [{summary.median_ci95[0]:.3f}, {summary.median_ci95[1]:.3f}]"


def splitting_rows(levels: Sequence[LevelSummary]) -> list[list[str]]:
    """The summary table, header first, for report.md and the CLI."""
    rows = [[
        "children", "parents", "median best cosine [95% CI]", "median best correlation [95% CI]",
        "children per parent (cos / corr)", "split >=2 (cos / corr)", "childless (cos / corr)", "same parent",
    ]]  # fmt: skip
    for level in levels:
        cos, corr = level.by_cosine, level.by_correlation
        rows.append([
            f"{level.child_source} ({level.children})", f"{level.parent_source} ({level.parent_size})",
            _ci(level.best_cosine), _ci(level.best_correlation),
            f"{cos.mean_children:.2f} / {corr.mean_children:.2f}", f"{cos.split:.0%} / {corr.split:.0%}",
            f"{cos.childless:.0%} / {corr.childless:.0%}",
            "n/a" if level.agreement is None else f"{level.agreement:.0%}",
        ])  # fmt: skip
    return rows


def splitting_markdown(report: ComparisonReport) -> str:
    """Report.md's feature-splitting section ("" when the catalog has no links)."""
    if not report.splitting:
        return ""
    rows = splitting_rows([LevelSummary.model_validate(level) for level in report.splitting])
    lines = [
        "## Feature splitting",
        "",
        (
            "Each feature of the larger SAE and its nearest feature in the smaller one, by decoder cosine and by "
            "activation correlation on the same held-out tokens (`autointerp analyze splitting`). Children per parent "
            "counts the parents with at least one child; a parent is split when two or more children chose it."
        ),
        "",
        "| " + " | ".join(rows[0]) + " |",
        "|" + "---|" * len(rows[0]),
    ]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows[1:]]
    return "\n".join(lines) + "\n"


class FamilyBook:
    """Every link of a catalog and the latest explanation of every linked unit, read once, so the
    exporter can give each feature its parents and children without a query per unit."""

    def __init__(self, store: CatalogStore):
        links = read_links(store.db)
        self.parents: dict[tuple[str, int], list[UnitLink]] = defaultdict(list)
        self.children: dict[tuple[str, int], list[UnitLink]] = defaultdict(list)
        for link in links:
            self.parents[(link.child_source, link.child_index)].append(link)
            self.children[(link.parent_source, link.parent_index)].append(link)
        self.sizes = {link.parent_source: link.parent_size for link in links}
        sources = sorted({link.child_source for link in links} | {link.parent_source for link in links})
        self.explanations: dict[tuple[str, int], str] = {}
        for source in sources:  # oldest first, so the latest usable explanation of a unit stays
            for row in store.db.execute(
                "SELECT \"index\", text FROM explanations WHERE source = ? AND kind = 'feature' AND NOT failed "
                "ORDER BY created_at, rowid",
                [source],
            ):
                self.explanations[(source, row[0])] = row[1]

    def family(self, source: str, index: int) -> dict[str, Any] | None:
        """The unit's parents (one per smaller SAE) and children (the strongest MAX_CHILDREN_SHOWN of
        `n_children`), None when it has neither. The measures that chose a pair share one row:
        {source, index, by, cosine, correlation, explanation}."""
        found: dict[str, dict[tuple[str, int], dict[str, Any]]] = {"parents": {}, "children": {}}
        for side, links in (
            ("parents", self.parents.get((source, index), [])),
            ("children", self.children.get((source, index), [])),
        ):
            for link in links:
                key = (
                    (link.parent_source, link.parent_index)
                    if side == "parents"
                    else (link.child_source, link.child_index)
                )
                row = found[side].setdefault(key, {
                    "source": key[0], "index": key[1], "by": [], "cosine": link.decoder_cosine,
                    "correlation": link.activation_correlation, "explanation": self.explanations.get(key),
                })  # fmt: skip
                row["by"] = sorted([*row["by"], link.relation], reverse=True)  # "cosine" before "correlation"
        if not found["parents"] and not found["children"]:
            return None
        children = sorted(found["children"].values(), key=lambda row: (-row["cosine"], row["source"], row["index"]))
        return {
            "parents": sorted(found["parents"].values(), key=lambda row: -self.sizes[row["source"]]),  # nearest first
            "children": children[:MAX_CHILDREN_SHOWN],
            "n_children": len(children),
        }


def attach_family(entries: Iterable[CatalogEntry], store: CatalogStore) -> Iterator[CatalogEntry]:
    """The entries, as they stream by, with their feature's family in `extra["family"]` (for the exporters)."""
    book = FamilyBook(store)
    for entry in entries:
        if entry.harvest.kind == "feature":
            family = book.family(entry.source, entry.harvest.index)
            if family is not None:
                entry.extra["family"] = family
        yield entry


def add_splitting(report: ComparisonReport, store: CatalogStore) -> ComparisonReport:
    """The comparison report with its `splitting` section filled from the catalog's links (empty without)."""
    levels = summarize_links(read_links(store.db))
    return report.model_copy(update={"splitting": [level.model_dump(mode="json") for level in levels]})
