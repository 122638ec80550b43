"""A digest of a small harvest's records as the store holds them, to show that a change to the
harvest's bookkeeping leaves its output alone: run it before and after, on the same SAE, and compare.

    python -m evals.harvest_digest --sae DEMO_OUT/sae --db /tmp/digest.db [--tokens 12288 --hard-tokens 9000]
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from autointerp.store.catalog import CatalogStore
from sae.harvest import HarvestConfig, harvest, unit_records
from sae.saelens_format import load_sae
from sae.subject.models import BUILTIN_HOOK, load_subject


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sae", required=True, help="a SAELens-layout SAE folder for the built-in model")
    parser.add_argument("--db", required=True, help="a new SQLite file to write the records to")
    parser.add_argument("--tokens", type=int, default=12_288)
    parser.add_argument("--hard-tokens", type=int, default=9_000, help="not a whole number of batches, on purpose")
    args = parser.parse_args()
    subject = load_subject("builtin")
    sae = load_sae(Path(args.sae), subject.hook_width(BUILTIN_HOOK))
    cfg = HarvestConfig(n_tokens=args.tokens, hard_negative_tokens=args.hard_tokens)
    store = CatalogStore(args.db)
    for kind, state in harvest(subject, BUILTIN_HOOK, sae, cfg).items():
        store.put_units("digest", unit_records(kind, state, subject, BUILTIN_HOOK, sae))
    digest = hashlib.sha256()
    count = 0
    for unit in store.iter_units("digest"):
        digest.update(unit.model_dump_json().encode())
        count += 1
    print(f"{count} units, records sha256 {digest.hexdigest()}")


if __name__ == "__main__":
    main()
