"""One unit as the HTML catalog's unit view reads it, and the shared windows its examples point into.

A unit's examples keep only what differs per unit: which window, where the slice starts, how long it
is, and its activations as integers in thousandths of the unit's max (the highlight needs tenths;
the hover shows three significant digits), the non-zero ones with their positions when they are few. The tokens of a window are the same for every
unit, so they are written once, in window shards, instead of once per example (the demo's shown
examples reuse each window ~40 times). Strings go into the JSON as they are: the browser builds the
page with textContent, and makes invisible characters visible itself.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from autointerp.export.selection import finite_or_none
from autointerp.records import ActivationExample, CatalogEntry, Explanation, Score

QUANT = 1000  # activations are stored as round(QUANT * activation / unit max)
MAX_PROBES_SHOWN = 60  # of an agent trace
SAMPLING_ORDER = ("top", "quantile", "random", "silent", "hard_negative")
SPLIT_ORDER = ("explain", "score")


def _sig(x: float | None, digits: int = 4) -> float | None:
    """A finite float cut to `digits` significant digits (JSON stays short), None otherwise."""
    x = finite_or_none(x)
    return None if x is None else float(f"{x:.{digits}g}")


@dataclass
class WindowBook:
    """The tokens of every window a shown example covers, numbered in first-seen order.

    A window is kept as {position: token}: slices of one window seen by different units fill it in.
    Windows are told apart by (source, window_id); an example whose tokens disagree with what is
    known of its window (which a harvest never writes) gets a window of its own instead of being
    shown another unit's text.
    """

    numbers: dict[tuple[str, int], list[int]] = field(default_factory=dict)  # (source, window_id) -> numbers
    tokens: list[dict[int, str]] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)

    def add(self, source: str, example: ActivationExample) -> int:
        slice_ = dict(enumerate(example.tokens, start=example.start))
        numbers = self.numbers.setdefault((source, example.window_id), [])
        for number in numbers:
            known = self.tokens[number]
            if all(known.get(pos, token) == token for pos, token in slice_.items()):
                known.update(slice_)
                return number
        numbers.append(len(self.tokens))
        self.tokens.append(slice_)
        self.ids.append(example.window_id)
        return numbers[-1]

    def record(self, number: int) -> list[Any]:
        """[window_id, [start, tokens], [start, tokens], ...]: the window's covered runs of positions."""
        known = self.tokens[number]
        runs: list[Any] = []
        for pos in sorted(known):
            if runs and runs[-1][0] + len(runs[-1][1]) == pos:
                runs[-1][1].append(known[pos])
            else:
                runs.append([pos, [known[pos]]])
        return [self.ids[number], *runs]


def unit_max(entry: CatalogEntry) -> float:
    """The scale the highlights are relative to: the unit's max, else its strongest example's."""
    stats = entry.harvest.stats
    if stats.max_activation > 0:
        return stats.max_activation
    return max((e.max_activation for e in entry.harvest.examples), default=0.0)


def _example(example: ActivationExample, window: int, scale: float) -> list[Any]:
    """[window number, start, length, position, level, position, level, ...] (non-zero levels only), or
    for a unit active on most tokens (a GELU neuron is rarely exactly 0) [window, start, length, levels]."""
    levels = [round(activation * scale) for activation in example.activations]
    out: list[Any] = [window, example.start, len(levels)]
    nonzero = [(pos, level) for pos, level in enumerate(levels) if level]
    if 2 * len(nonzero) > len(levels):
        return [*out, levels]
    for pos, level in nonzero:
        out += [pos, level]
    return out


def example_groups(examples: Sequence[ActivationExample], per_group: int) -> list[tuple[str, str, int, list[Any]]]:
    """(sampling, split, how many there are, the strongest `per_group`) in a fixed order."""
    groups: dict[tuple[str, str], list[ActivationExample]] = defaultdict(list)
    for ex in examples:
        groups[(ex.sampling, ex.split)].append(ex)
    order = [(s, sp) for s in SAMPLING_ORDER for sp in SPLIT_ORDER]
    return [
        (sampling, split, len(groups[(sampling, split)]),
         sorted(groups[(sampling, split)], key=lambda e: (-e.max_activation, e.window_id))[:per_group])
        for sampling, split in order + sorted(k for k in groups if k not in order)
        if (sampling, split) in groups
    ]  # fmt: skip


def _explanation(e: Explanation) -> dict[str, Any]:
    return {"text": e.text, "explainer": e.explainer, "model": e.model, "prompt": e.prompt_version}


def _score(s: Score) -> dict[str, Any]:
    value = None if s.failed else _sig(s.value)
    return {
        "scorer": s.scorer,
        "simulator": s.simulator,
        "value": value,
        "error": s.error if value is None else None,
        "parts": [[k, _sig(v)] for k, v in s.parts.items()],
    }


def _trace(dump: dict[str, Any]) -> dict[str, Any]:
    """An agent trace (as a catalog entry's extra holds it) with its first probes, each with the unit's
    activation on the asked-about token (the window's max when it asked about none)."""
    probes = []
    for p in dump.get("probes", [])[:MAX_PROBES_SHOWN]:
        acts, target = p["activations"], p.get("target")
        value = acts[target] if target is not None else max(acts, default=0.0)
        probes.append({"purpose": p["purpose"], "tokens": p["tokens"], "target": target, "value": _sig(value)})
    keep = ("driver", "calls", "budget", "initial", "final", "revisions")
    return {**{k: dump.get(k) for k in keep}, "n_probes": len(dump.get("probes", [])), "probes": probes}


def family_record(family: dict[str, Any] | None, uids: dict[tuple[str, str, int], int]) -> dict[str, Any] | None:
    """A feature's parents and children (autointerp.analysis.family) as the unit view reads them: rows of
    [source, index, measures that chose the pair, cosine, correlation, its uid or None, its explanation]."""
    if family is None:
        return None

    def row(r: dict[str, Any]) -> list[Any]:
        uid = uids.get((r["source"], "feature", r["index"]))
        return [
            r["source"],
            r["index"],
            "+".join(r["by"]),
            _sig(r["cosine"]),
            _sig(r["correlation"]),
            uid,
            r["explanation"],
        ]

    return {
        "parents": [row(r) for r in family["parents"]],
        "children": [row(r) for r in family["children"]],
        "n_children": family["n_children"],
    }


def unit_record(
    entry: CatalogEntry,
    uid: int,
    *,
    shown: Explanation | None,
    neuron_links: Sequence[tuple[int, float, int | None]],
    windows: WindowBook,
    per_group: int,
    uids: dict[tuple[str, str, int], int],
) -> dict[str, Any]:
    """Everything the unit view shows about one unit; `neuron_links` are (neuron, weight, its uid) for a
    feature's decoder weights (the view reads the neurons' explanations from the names shards); `uids`
    link its family (feature splitting) to the units of this catalog."""
    harvest, stats = entry.harvest, entry.harvest.stats
    top = unit_max(entry)
    scale = QUANT / top if top > 0 else QUANT
    return {
        "uid": uid,
        "kind": harvest.kind,
        "index": harvest.index,
        "source": entry.source,
        "explanations": [_explanation(e) for e in entry.explanations],
        "shown": next(
            (i for i, e in enumerate(entry.explanations) if e == shown), None
        ),  # a re-read entry: equal, not the same
        "scores": [_score(s) for s in entry.scores],
        "stats": {
            "density": _sig(stats.density),
            "active": stats.active_count,
            "seen": stats.tokens_seen,
            "max": _sig(stats.max_activation),
            "mean": _sig(stats.mean_activation),
            "mean_active": _sig(stats.mean_active_activation),
        },
        "hist": [[_sig(x, 3) for x in stats.histogram_edges], stats.histogram_counts],
        "promoted": [[t.token, _sig(t.weight)] for t in harvest.promoted_tokens],
        "suppressed": [[t.token, _sig(t.weight)] for t in harvest.suppressed_tokens],
        "neurons": [[n, _sig(w), link] for n, w, link in neuron_links],
        "unit_max": _sig(top),
        "groups": [
            [sampling, split, total, [_example(ex, windows.add(entry.source, ex), scale) for ex in chosen]]
            for sampling, split, total, chosen in example_groups(harvest.examples, per_group)
        ],
        "traces": [_trace(t) for t in entry.extra.get("agent_traces", [])],
        "family": family_record(entry.extra.get("family"), uids),
    }
