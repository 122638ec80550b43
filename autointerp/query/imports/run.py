"""`autointerp import TOOL PATH`: read the tool's file and store its labels, per source."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Literal

from autointerp.errors import UserError
from autointerp.query.imports import delphi, neuron_explainer, neuronpedia
from autointerp.query.imports.labels import ImportedLabel, ImportReport, store_labels
from autointerp.records import UnitHarvest, UnitKind
from autointerp.store import CatalogStore

Tool = Literal["neuron-explainer", "delphi", "neuronpedia"]  # as the CLI's TOOLS


def import_labels(
    store: CatalogStore,
    tool: Tool,
    path: Path,
    *,
    source: str | None = None,
    kind: UnitKind | None = None,
    layer: int | None = None,
    module: str | None = None,
) -> list[ImportReport]:
    """Import the labels of `path`. Neuronpedia records name their source; the other tools' files
    go to `source`, which must then be given."""
    if tool == "neuronpedia":
        grouped: dict[str, list[ImportedLabel]] = defaultdict(list)
        for name, label in neuronpedia.read_neuronpedia(path, [source] if source else store.sources(), source, kind):
            grouped[name].append(label)
        if not grouped:
            raise UserError(
                f"no record of {path} has the layer id of a source of {store.path}; "
                "give --source and --kind to read every record as a unit of one source"
            )
        return [store_labels(store, name, neuronpedia.TOOL, labels) for name, labels in grouped.items()]
    if source is None:
        raise UserError(f"importing {tool} labels needs the source they belong to")
    if tool == "delphi":
        return [store_labels(store, source, tool, delphi.read_delphi(path, kind or "feature", module))]
    found = neuron_explainer.read_neuron_explainer(path, kind or "neuron", layer)
    if found.units:
        add_record_units(store, source, found.units, path)
    else:
        store.source_config(source)  # an unknown source fails here, clearly
    if not found.labels:
        return [ImportReport(source=source, explainer="", imported=0, units=len(found.units), not_in_catalog=[])]
    report = store_labels(store, source, neuron_explainer.TOOL, found.labels)
    return [report.model_copy(update={"units": len(found.units)})]


def add_record_units(store: CatalogStore, source: str, units: list[UnitHarvest], path: Path) -> None:
    """Units read from NeuronRecords, as a new source (their example windows are numbered from 0)."""
    if source in store.sources():
        raise UserError(f"{store.path} already has a source {source!r}; import NeuronRecords into a new --source")
    store.put_source(source, {"imported": neuron_explainer.TOOL, "path": str(path)})
    store.put_units(source, units)
