"""Feature splitting: as a dictionary grows, where does each feature of the largest SAE come from?

For SAEs of several sizes on one hook, every feature of the largest gets its nearest ancestor in each
smaller one twice: by decoder cosine (the directions) and by activation correlation on the same held-out
tokens (what the features do), all SAEs read from one stream through the subject model
(sae/unit_matching.py). A parent chosen by two or more children has split. With a catalog, the links
are stored (unit_links) for the report and the HTML family tree; the catalog's sources are matched to
the SAE folders by the folder each source records.
"""

from __future__ import annotations

from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field

from autointerp.analysis.family import LevelSummary, summarize_links
from autointerp.errors import UserError
from autointerp.pipeline import SubjectSpec, source_name
from autointerp.records import UnitLink
from autointerp.store import CatalogStore
from autointerp.store.links import replace_links
from sae.autoencoder import SparseAutoencoder
from sae.corpus import open_corpus, select_split
from sae.saelens_format import CFG_FILE, load_sae
from sae.subject.models import SubjectModel, load_subject
from sae.unit_matching import CorrelationAccumulator, UnitSet, best_cosines, correlate


class SplittingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    saes: list[str]  # SAELens-layout folders, any order
    model: str = "builtin"
    corpus: str = "stdlib"
    tokens: int = Field(200_000, gt=0)  # held-out tokens for the activation correlations
    batch_size: int = Field(32, gt=0)
    device: str = "cpu"


class SplittingResult(BaseModel):
    hook: str
    tokens: int
    sources: list[str]  # smallest SAE first
    sizes: list[int]
    levels: list[LevelSummary]
    links: list[UnitLink]


def load_family(
    folders: list[str], subject: SubjectModel, device: str = "cpu"
) -> tuple[str, list[Path], list[SparseAutoencoder]]:
    """(hook, folders, SAEs) smallest first; refuses fewer than two SAEs, a missing folder, SAEs on
    different hooks or widths, and two SAEs of one size (whose children would have no smaller parent)."""
    if len(folders) < 2:
        raise UserError(f"feature splitting needs SAEs of at least two sizes, got {len(folders)}")
    paths = [Path(f) for f in folders]
    for path in paths:
        if not (path / CFG_FILE).is_file():
            raise UserError(f"{path} is not an SAE folder (no {CFG_FILE} there)")
    probes = [load_sae(path) for path in paths]  # reads cfg.json and checks the weights' shapes
    hooks = {probe.cfg.hook_name for probe in probes}
    widths = {probe.cfg.d_in for probe in probes}
    if len(hooks) > 1 or len(widths) > 1:
        found = ", ".join(f"{p} ({s.cfg.hook_name}, {s.cfg.d_in} wide)" for p, s in zip(paths, probes, strict=True))
        raise UserError(f"the SAEs must read the same hook: {found}")
    sizes = [probe.cfg.d_sae for probe in probes]
    if len(set(sizes)) < len(sizes):
        raise UserError(f"the SAEs must differ in size, got sizes {sorted(sizes)}")
    hook = hooks.pop()
    order = sorted(range(len(paths)), key=lambda i: sizes[i])
    saes = [load_sae(paths[i], subject.hook_width(hook), device=device) for i in order]
    return hook, [paths[i] for i in order], saes


def catalog_sources(store: CatalogStore, folders: list[Path]) -> list[str]:
    """The catalog's source for each SAE folder, matched by the folder a source records it was made with."""
    recorded: dict[Path, list[str]] = {}
    for name in store.sources():
        sae = store.source_config(name).get("sae")
        if sae:
            recorded.setdefault(Path(sae).resolve(), []).append(name)
    names = []
    for folder in folders:
        found = recorded.get(folder.resolve(), [])
        if len(found) != 1:
            known = ", ".join(f"{path} ({', '.join(n)})" for path, n in sorted(recorded.items())) or "none"
            why = "is not the SAE of any source" if not found else f"is the SAE of several sources ({', '.join(found)})"
            raise UserError(f"{folder} {why} in {store.path}; its sources' SAE folders are: {known}")
        names.append(found[0])
    return names


def nearest_ancestors(child: UnitSet, parent: UnitSet, acc: CorrelationAccumulator) -> list[UnitLink]:
    """Two links per child feature (one where no correlation exists): its parent by decoder cosine and its
    parent by activation correlation, each pair with both measures."""
    child_dirs, parent_dirs = child.directions(), parent.directions()
    by_cosine, cosines = best_cosines(child_dirs, parent_dirs)
    by_corr, corrs = acc.best_matches()
    corr_of_cosine_pick = acc.at(by_cosine)
    cosine_of_corr_pick = (child_dirs * parent_dirs[by_corr]).sum(dim=1)

    def value(x: torch.Tensor) -> float | None:
        return None if torch.isnan(x) else float(x)

    links = []
    for i in range(child.size):
        common = {
            "child_source": child.name,
            "child_index": i,
            "parent_source": parent.name,
            "parent_size": parent.size,
        }
        links.append(UnitLink(**common, parent_index=int(by_cosine[i]), relation="cosine",
                              decoder_cosine=float(cosines[i]), activation_correlation=value(corr_of_cosine_pick[i])))  # fmt: skip
        if not torch.isnan(corrs[i]):
            links.append(UnitLink(**common, parent_index=int(by_corr[i]), relation="correlation",
                                  decoder_cosine=float(cosine_of_corr_pick[i]), activation_correlation=float(corrs[i])))  # fmt: skip
    return links


def analyze_splitting(
    cfg: SplittingConfig, store: CatalogStore | None = None, *, progress: bool = True
) -> SplittingResult:
    """Links from every feature of the largest SAE to each smaller one, summarized; stored when `store`."""
    subject = load_subject(cfg.model, device=cfg.device)
    hook, folders, saes = load_family(cfg.saes, subject, cfg.device)
    if store is not None:
        names = catalog_sources(store, folders)
    else:
        spec = SubjectSpec(model=cfg.model, hook=hook, device=cfg.device)
        names = [source_name(spec, sae) for sae in saes]  # the names a harvest of these SAEs would give
    sets = [UnitSet(name, subject, hook, sae) for name, sae in zip(names, saes, strict=True)]
    child = len(sets) - 1
    docs = select_split(open_corpus(cfg.corpus), "heldout")
    accs = correlate(sets, [(child, j) for j in range(child)], docs, max_tokens=cfg.tokens,
                     batch_size=cfg.batch_size, progress=progress)  # fmt: skip
    links = [link for j in range(child) for link in nearest_ancestors(sets[child], sets[j], accs[(child, j)])]
    if store is not None:
        replace_links(store.db, links)
    return SplittingResult(
        hook=hook,
        tokens=accs[(child, 0)].tokens,
        sources=names,
        sizes=[sae.cfg.d_sae for sae in saes],
        levels=summarize_links(links),
        links=links,
    )
