"""Feature splitting on the built-in model: SAEs of several sizes, their features' family trees.

One SAE per size is trained as the demo trains its SAE (TopK, k=32; d_sae differs, the seed is the
size so no two SAEs start from the same directions, and the largest may train on fewer tokens, which
the printout says), each SAE's features are harvested from held-out
text into one catalog and explained by the offline explainer, then `autointerp analyze splitting`
links every feature of the largest SAE to its nearest feature in each smaller one and stores the
links in the catalog. Prints the summary table and the family trees of the most split parents.

    python -m evals.splitting [--out runs/splitting] [--sizes 512,1024,4096,16384]
        [--sae-tokens 1500000] [--largest-tokens 1000000] [--harvest-tokens 200000]
        [--tokens 200000] [--html] [--json]

Resumable: a trained SAE, a harvested source, explained units and a finished analysis (same
settings, in OUT/splitting.json) are kept; re-running redoes nothing finished.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from autointerp.analysis.family import FamilyBook, LevelSummary, attach_family, splitting_rows
from autointerp.analysis.splitting import SplittingConfig, analyze_splitting
from autointerp.demo import DEMO_SAE
from autointerp.export import export_catalog
from autointerp.pipeline import (
    CATALOG_DB,
    LabelSpec,
    SAESpec,
    SubjectSpec,
    explain_stage,
    harvest_into_store,
    make_explainer,
    prepare_sae,
    source_name,
)
from autointerp.records import CatalogEntry
from autointerp.store import CatalogStore, open_store
from sae.harvest import HarvestConfig, corpus_part, sae_features
from sae.saelens_format import load_sae
from sae.subject.models import load_subject
from sae.unit_matching import best_cosines

RESULT = "splitting.json"
TREES_SHOWN, CHILDREN_SHOWN = 2, 8


def train_and_label(args: argparse.Namespace, store: CatalogStore) -> list[dict]:
    """Each size's SAE trained (or found), harvested and explained; one row per size, smallest first."""
    subject = load_subject("builtin")
    spec = SubjectSpec()
    label = LabelSpec(explainer="offline", simulator="offline", scorers=["simulation"])
    explainer = make_explainer(label, store, None, store.new_run("evals.splitting", vars(args)))
    harvest = corpus_part(  # held-out documents; the hard-negative pass on half as many, as evals.validity
        HarvestConfig(n_tokens=args.harvest_tokens, hard_negative_tokens=args.harvest_tokens // 2), "stdlib"
    )
    rows = []
    for size in args.sizes:
        tokens = args.largest_tokens if size == max(args.sizes) else args.sae_tokens
        # a seed per size: with one seed the first rows of every SAE would start as the same directions
        train = DEMO_SAE.model_copy(update={"d_sae": size, "total_tokens": tokens, "seed": size})
        sae, folder, metrics = prepare_sae(subject, spec.hook, SAESpec(train=train, eval_tokens=50_000), "stdlib",
                                           Path(args.out) / f"topk-{size}")  # fmt: skip
        source = source_name(spec, sae)
        described = {"subject": spec.model_dump(), "sae": str(folder), "corpus": "stdlib"}
        harvest_into_store(
            store, source, subject, spec.hook, sae, harvest, described, units={"feature": sae_features(sae)}
        )
        explain_stage(store, source, [("feature", i) for i in range(size)], explainer, label)
        rows.append({"size": size, "source": source, "folder": str(folder), "train_tokens": tokens,
                     **{k: metrics[k] for k in ("l0", "fvu", "dead_fraction")}})  # fmt: skip
    return rows


def family_trees(store: CatalogStore, levels: list[LevelSummary], n: int) -> list[str]:
    """The `n` parents of the smallest SAE with the most children (by cosine), each child with its
    explanation and its parents in the sizes between."""
    book = FamilyBook(store)
    smallest = min(levels, key=lambda level: level.parent_size).parent_source
    counts = {key: links for key, links in book.children.items() if key[0] == smallest}
    by_cosine = {key: [link for link in links if link.relation == "cosine"] for key, links in counts.items()}
    lines = []
    for key in sorted(by_cosine, key=lambda k: (-len(by_cosine[k]), k[1]))[:n]:
        children = sorted(by_cosine[key], key=lambda link: -link.decoder_cosine)
        lines.append(f"{smallest} feature {key[1]} ({len(children)} children): {book.explanations.get(key, '-')}")
        for link in children[:CHILDREN_SHOWN]:
            via = [
                f"{p.parent_source.rsplit('/', 1)[-1]} #{p.parent_index}"
                for p in book.parents[(link.child_source, link.child_index)]
                if p.relation == "cosine" and p.parent_source != smallest
            ]
            corr = "n/a" if link.activation_correlation is None else f"{link.activation_correlation:.2f}"
            lines.append(
                f"  #{link.child_index:<6} cos {link.decoder_cosine:.2f} corr {corr:>5}"
                f"{' via ' + ', '.join(via) if via else ''}: {book.explanations.get((link.child_source, link.child_index), '-')}"
            )
    return lines


def export_html(store: CatalogStore, sources: list[str], out: Path) -> Path:
    """Every size's features in one HTML catalog, each feature's view with its family tree."""
    entries = [e for source in sources for e in store.catalog_entries(source, examples=False)]

    def whole() -> Iterator[CatalogEntry]:
        return attach_family((e for source in sources for e in store.catalog_entries(source)), store)

    return export_catalog(entries, out, full_entries=whole)["html"]


def chance_cosines(d_in: int, sizes: list[int]) -> dict[tuple[int, int], float]:
    """The median best cosine that random directions of the same sizes reach in the same space: what a
    child finds in a parent SAE that has learnt nothing in common with it."""
    g = torch.Generator().manual_seed(0)
    random = {size: torch.randn(size, d_in, generator=g) for size in sizes}
    largest = sizes[-1]
    return {(largest, size): float(best_cosines(random[largest], random[size])[1].median()) for size in sizes[:-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/splitting", help="folder for the SAEs, catalog.db and splitting.json")
    parser.add_argument("--sizes", default="512,1024,4096,16384", help="comma list of dictionary sizes")
    parser.add_argument("--sae-tokens", type=int, default=DEMO_SAE.total_tokens, help="training tokens per SAE")
    parser.add_argument("--largest-tokens", type=int, default=1_000_000, help="training tokens of the largest SAE")
    parser.add_argument("--harvest-tokens", type=int, default=200_000, help="held-out tokens harvested per SAE")
    parser.add_argument("--tokens", type=int, default=200_000, help="held-out tokens for the activation correlations")
    parser.add_argument("--html", action="store_true", help="also export the catalog with its family trees to OUT/html")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    args = parser.parse_args()
    args.sizes = sorted(int(s) for s in args.sizes.split(","))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with open_store(out / CATALOG_DB) as store:
        sizes = train_and_label(args, store)
        settings = {"sizes": sizes, "tokens": args.tokens}
        done = json.loads((out / RESULT).read_text()) if (out / RESULT).exists() else {}
        if done.get("settings") != settings:
            cfg = SplittingConfig(saes=[row["folder"] for row in sizes], tokens=args.tokens)
            result = analyze_splitting(cfg, store)
            done = {
                "settings": settings,
                "tokens": result.tokens,
                "levels": [lv.model_dump(mode="json") for lv in result.levels],
            }
            (out / RESULT).write_text(json.dumps(done, indent=2))
        levels = [LevelSummary.model_validate(level) for level in done["levels"]]
        trees = family_trees(store, levels, TREES_SHOWN)
        if args.html:
            print(f"html: {export_html(store, [row['source'] for row in sizes], out)}")
    minutes = round((time.time() - started) / 60, 1)
    if args.json:
        print(json.dumps({**done, "minutes": minutes, "trees": trees}))
        return
    print(
        f"{len(sizes)} SAEs on builtin/{SubjectSpec().hook}, analysed on {done['tokens']} held-out tokens, this run {minutes} min"
    )
    print(f"{'d_sae':>7} {'train tokens':>12} {'L0':>6} {'FVU':>6} {'dead':>6}")
    for row in sizes:
        print(
            f"{row['size']:>7} {row['train_tokens']:>12} {row['l0']:>6.1f} {row['fvu']:>6.3f} {row['dead_fraction']:>6.3f}"
        )
    if args.largest_tokens != args.sae_tokens:
        print(
            f"note: the largest SAE trained on {args.largest_tokens} tokens, the others on {args.sae_tokens} (CPU time)"
        )
    print()
    for cells in splitting_rows(levels):
        print(" | ".join(cells))
    d_in = load_sae(Path(sizes[0]["folder"])).cfg.d_in
    chance = chance_cosines(d_in, [row["size"] for row in sizes])
    print(
        f"chance (random directions in R^{d_in}, same sizes): median best cosine "
        + ", ".join(f"{child} -> {parent}: {value:.3f}" for (child, parent), value in chance.items())
    )
    print("\nThe most split parents:")
    print("\n".join(trees))


if __name__ == "__main__":
    main()
