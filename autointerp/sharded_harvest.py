"""The `harvest` command as one of several processes (torchrun): each process reads its own batches
of the window stream, rank 0 merges their states and alone opens and writes the catalog."""

from __future__ import annotations

from pathlib import Path

from autointerp.pipeline import harvest_settings, harvested_units, is_harvested, write_harvest
from autointerp.store import open_store
from sae.autoencoder import SparseAutoencoder
from sae.distributed import Shard, first_decides
from sae.harvest import HarvestConfig, harvest_units
from sae.subject.models import SubjectModel


def harvest_sharded(
    db: Path,
    source: str,
    subject: SubjectModel,
    hook: str,
    sae: SparseAutoencoder | None,
    cfg: HarvestConfig,
    described: dict,
    shard: Shard,
) -> bool:
    """`harvest_into_store` split over processes; returns whether it ran (the same on every
    process). It keeps no checkpoint: a killed sharded harvest starts again."""
    wanted = harvest_settings(described, cfg)
    store = open_store(db) if shard.is_writer else None
    if first_decides(lambda: store is not None and is_harvested(store, source, wanted), shard):
        return False
    kinds = harvest_units(subject, hook, cfg, harvested_units(sae), shard=shard)
    if store is not None:
        write_harvest(store, source, kinds, subject, hook, sae, wanted)
    return True
