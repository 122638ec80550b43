"""A static HTML catalog that opens from file:// with no server and no network.

Layout under out_dir/html/:
- index.html: the neurons-vs-features summary and plots, then a searchable, sortable unit list
  (rendered by catalog.js from a JSON block inside the page, since file:// pages cannot fetch);
- units/<kind>-<index>.html: one page per unit with activation-highlighted examples, stats, an
  activation histogram, promoted / suppressed tokens and, for features, links to their neurons;
- catalog.css, catalog.js, and the PNG plots.

Pages come from the Jinja2 templates in templates/, compiled once per process, with autoescaping:
every value a template prints is HTML-escaped with its zero-width and bidi controls made visible.
The one piece of HTML written here is a window's token spans (`token_spans`), thousands per page,
which a template loop would make several times slower; its every token goes through the same
escape. The JSON block escapes <, > and & so no string can close the <script> element; catalog.js
only ever writes textContent. One page per unit keeps thousands of units fast to write and to browse.
"""

from __future__ import annotations

import functools
import json
import math
import re
import shutil
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, Template
from markupsafe import Markup, escape

from autointerp.agent.probes import ProbeRecord
from autointerp.agent.trace import AgentTrace
from autointerp.compare import (
    ComparisonReport,
    latest_explanation,
    resolve_explainer,
    score_of,
    score_samples,
    summary_rows,
    verdict,
)
from autointerp.errors import UserError
from autointerp.export.selection import finite_or_none
from autointerp.plots import (
    plot_density_histogram,
    plot_score_distributions,
    plot_score_vs_density,
)
from autointerp.records import ActivationExample, CatalogEntry, Score
from autointerp.validity import chosen_scores, density_points

HTML_DIR = "html"
UNITS_DIR = "units"
STATIC_FILES = ("catalog.css", "catalog.js")
SCORE_PLOT = "score_distributions.png"
SCORE_VS_DENSITY_PLOT = "score_vs_density.png"
DENSITY_PLOT = "density_histogram.png"
HIGHLIGHT_LEVELS = 10
MAX_PROBES_SHOWN = 60  # of an agent trace
SAMPLING_TITLES = {
    "top": "Top activations",
    "quantile": "Activation quantiles",
    "random": "Random windows",
    "silent": "Windows where it stays silent",
}
SPLIT_TITLES = {"explain": "shown to the explainer", "score": "held out for scoring"}
# Characters that would be invisible (or break the line) inside a token, and what is shown instead.
_VISIBLE_WHITESPACE = {ord("\n"): "\u21b5", ord("\r"): "\u240d", ord("\t"): "\u21e5"}
# Zero-width and bidi control characters: invisible, and a bidi override reorders the text after it
# (a token could make an explanation read backwards). Everything shown gets them as ⟨U+202E⟩.
_INVISIBLE = [0x00AD, 0x061C, 0x180E, *range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2060, 0x2065),
              *range(0x2066, 0x206A), 0xFEFF]  # fmt: skip
_SHOW_INVISIBLE = {cp: f"\u27e8U+{cp:04X}\u27e9" for cp in _INVISIBLE}


# --- escaping and the templates -------------------------------------------------------------------


def visible(text: str) -> str:
    """`text` with its zero-width and bidi control characters written out as ⟨U+XXXX⟩."""
    return text.translate(_SHOW_INVISIBLE)


def _shown(value: object) -> object:
    """The templates' finalize: every printed value has its invisibles made visible before autoescape
    (a number has none, nor anything to escape: marked safe as it is, pages print thousands)."""
    if isinstance(value, Markup):
        return value
    if type(value) in (int, float):
        return Markup(value)
    return visible(str(value))


def _format_number(value: float, spec: str) -> Markup:
    """The `fmt` filter: a number formatted (digits, sign, '.', ',', 'e', inf, nan: nothing to escape)."""
    if not isinstance(value, int | float):
        raise TypeError(f"fmt formats numbers, got {type(value).__name__}")
    return Markup(format(value, spec))


def json_for_script(data: Any) -> str:
    """JSON that is safe inside <script>: <, > and & become \\u003c, \\u003e, \\u0026."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _num(x: float | None, digits: int = 3) -> str:
    return "\u2013" if x is None else f"{x:.{digits}f}"


@functools.cache
def _templates() -> Environment:
    """The template environment, compiled templates cached in it: built once, shared by every export."""
    env = Environment(
        loader=PackageLoader("autointerp.export", "templates"),
        autoescape=True,
        finalize=_shown,
        undefined=StrictUndefined,  # a misspelt name is an error, not an empty string
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    env.filters.update(
        fmt=_format_number,
        pyrepr=repr,
        token=lambda token: display_token(token)[0],
        script_json=lambda data: Markup(json_for_script(data)),
    )
    env.globals.update(token_spans=token_spans, SCORE_PLOT=SCORE_PLOT, DENSITY_PLOT=DENSITY_PLOT,
                       SCORE_VS_DENSITY_PLOT=SCORE_VS_DENSITY_PLOT, HIGHLIGHT_LEVELS=HIGHLIGHT_LEVELS)  # fmt: skip
    return env


def _template(name: str) -> Template:
    return _templates().get_template(name)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "source"


# --- tokens -------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1 << 16)  # a vocabulary's worth: pages repeat the same tokens millions of times
def display_token(token: str) -> tuple[Markup, bool]:
    """The token as shown (escaped HTML) and whether it had invisible characters made visible.

    Newlines, carriage returns and tabs become arrows, zero-width and bidi controls ⟨U+XXXX⟩, an
    empty token an empty-set sign, and a token made only of spaces shows them as middle dots, so
    highlighting never hides a character.
    """
    if token == "":
        return Markup("\u2205"), True
    if token.strip(" ") == "":
        return Markup("\u00b7" * len(token)), True
    shown = visible(token.translate(_VISIBLE_WHITESPACE))
    return escape(shown), shown != token


def highlight_level(activation: float, unit_max: float) -> int:
    """0 for no highlight, else 1..HIGHLIGHT_LEVELS by activation relative to the unit's max."""
    if activation <= 0 or unit_max <= 0:
        return 0
    return max(1, min(HIGHLIGHT_LEVELS, math.ceil(HIGHLIGHT_LEVELS * activation / unit_max)))


@functools.lru_cache(maxsize=1 << 16)
def _title_suffix(token: str) -> Markup:
    """What a token's title adds after its activation when the token is shown changed: the token itself."""
    return escape(visible(f" \u00b7 {token!r}"))


def token_spans(example: ActivationExample, unit_max: float) -> Markup:
    """One window's tokens: each a span with its background by activation and exact value in its title."""
    parts: list[str] = []
    for token, activation in zip(example.tokens, example.activations):
        shown, made_visible = display_token(token)
        if activation == 0 and not made_visible:  # most tokens of a sparse unit: plain text keeps pages small
            parts.append(shown)
            continue
        classes = []
        level = highlight_level(activation, unit_max)
        if level:
            classes.append(f"h{level}")
        if made_visible:
            classes.append("ws")
        class_attr = f' class="{" ".join(classes)}"' if classes else ""
        title = f"{activation:.6g}{_title_suffix(token) if made_visible else ''}"  # a number: nothing to escape
        parts.append(f'<span{class_attr} title="{title}">{shown}</span>')
    return Markup("".join(parts))


# --- unit pages ---------------------------------------------------------------------------------


class _UnitRow:
    """What the index list and the unit pages need to know about one entry."""

    def __init__(self, entry: CatalogEntry, page: str, scorer: str, explainer: str | None, simulator: str | None):
        self.entry = entry
        self.page = page
        self.explanation = latest_explanation(entry, explainer) or latest_explanation(entry)
        score = score_of(entry, self.explanation, scorer, simulator) if self.explanation else None
        self.score: float | None = None
        if score is not None and not score.failed and score.value is not None:
            self.score = finite_or_none(score.value)

    def data(self) -> list[Any]:
        """The row as catalog.js reads it: kind, index, explanation, score, density, max, page."""
        stats = self.entry.harvest.stats
        return [
            self.entry.harvest.kind,
            self.entry.harvest.index,
            visible(self.explanation.text) if self.explanation else None,
            self.score,
            finite_or_none(stats.density),
            finite_or_none(stats.max_activation),
            self.page,
        ]


def page_names(entries: Sequence[CatalogEntry]) -> list[str]:
    """File stems for unit pages: 'feature-17', or with a source prefix when two sources collide."""
    plain = [f"{e.harvest.kind}-{e.harvest.index}" for e in entries]
    taken: dict[str, int] = defaultdict(int)
    for name in plain:
        taken[name] += 1
    names = [name if taken[name] == 1 else f"{_slug(e.source)}--{name}" for name, e in zip(plain, entries)]
    seen: set[str] = set()
    for name, entry in zip(names, entries):
        if name in seen:
            raise UserError(f"The catalog holds {entry.harvest.key} of source {entry.source!r} twice.")
        seen.add(name)
    return names


def _neuron_pages(rows: Sequence[_UnitRow]) -> dict[int, list[_UnitRow]]:
    by_index: dict[int, list[_UnitRow]] = defaultdict(list)
    for row in rows:
        if row.entry.harvest.kind == "neuron":
            by_index[row.entry.harvest.index].append(row)
    return by_index


def _neuron_link(feature: CatalogEntry, neuron: int, neurons: dict[int, list[_UnitRow]]) -> _UnitRow | None:
    """The catalog's page for a neuron a feature is made of: the only one with that index, or the
    one whose source the feature's source extends (an SAE trained on that hook)."""
    candidates = neurons.get(neuron, [])
    if len(candidates) == 1:
        return candidates[0]
    related = [
        r for r in candidates if feature.source == r.entry.source or feature.source.startswith(r.entry.source + "/")
    ]
    return related[0] if len(related) == 1 else None


@dataclass
class _Histogram:
    """The unit's activation histogram laid out for a small inline SVG (log-spaced bins, linear counts)."""

    bars: Markup  # a <rect> per bin, its range and count in a <title>: built here, like `token_spans`
    first: float
    last: float
    top: int
    width: int = 460
    height: int = 130
    pad: int = 18


def _histogram(edges: list[float], counts: list[int]) -> _Histogram | None:
    if not counts or len(edges) != len(counts) + 1 or max(counts) <= 0:
        return None
    hist = _Histogram(Markup(), edges[0], edges[-1], max(counts))
    bar_w = (hist.width - 2 * hist.pad) / len(counts)
    bars = []
    for i, count in enumerate(counts):  # numbers only: nothing to escape
        h = (hist.height - 2 * hist.pad) * count / hist.top
        x = hist.pad + i * bar_w
        bars.append(
            f'<rect x="{x:.1f}" y="{hist.height - hist.pad - h:.1f}" width="{max(bar_w - 1, 0.5):.1f}" height="{h:.1f}">'
            f"<title>{edges[i]:.4g} to {edges[i + 1]:.4g}: {count} tokens</title></rect>"
        )
    hist.bars = Markup("".join(bars))
    return hist


def _score_rows(scores: Sequence[Score]) -> list[tuple[Score, str | None, str]]:
    """(score, its value as shown or None when it failed, its parts as 'name value, ...')."""
    return [
        (
            s,
            None if s.failed or finite_or_none(s.value) is None else _num(s.value),
            ", ".join(f"{k} {_num(finite_or_none(v))}" for k, v in s.parts.items()),
        )
        for s in scores
    ]


def _example_groups(
    examples: Sequence[ActivationExample], per_group: int
) -> list[tuple[str, int, list[ActivationExample]]]:
    """(title, how many there are, the strongest `per_group`) for each sampling and split, in a fixed order."""
    groups: dict[tuple[str, str], list[ActivationExample]] = defaultdict(list)
    for ex in examples:
        groups[(ex.sampling, ex.split)].append(ex)
    order = [(s, sp) for s in SAMPLING_TITLES for sp in SPLIT_TITLES]
    shown = []
    for key in order + [k for k in groups if k not in order]:
        if key not in groups:
            continue
        sampling, split = key
        chosen = sorted(groups[key], key=lambda e: (-e.max_activation, e.window_id))[:per_group]
        title = f"{SAMPLING_TITLES.get(sampling, sampling)}, {SPLIT_TITLES.get(split, split)}"
        shown.append((title, len(groups[key]), chosen))
    return shown


def _trace_view(dump: dict) -> tuple[AgentTrace, list[tuple[ProbeRecord, float]]]:
    """An agent trace (as a catalog entry's extra holds it) and its first probes, each with the
    unit's activation on the asked-about token (the window's max when it asked about none)."""
    trace = AgentTrace.model_validate(dump)
    probes = [
        (p, p.activations[p.target] if p.target is not None else max(p.activations, default=0.0))
        for p in trace.probes[:MAX_PROBES_SHOWN]
    ]
    return trace, probes


def unit_page(
    row: _UnitRow,
    *,
    prev_row: _UnitRow | None,
    next_row: _UnitRow | None,
    neurons: dict[int, list[_UnitRow]],
    per_group: int,
) -> str:
    entry, harvest = row.entry, row.entry.harvest
    stats = harvest.stats
    unit_max = (
        stats.max_activation
        if stats.max_activation > 0
        else max((e.max_activation for e in harvest.examples), default=0.0)
    )
    ex = row.explanation
    return _template("unit.html").render(
        row=row,
        entry=entry,
        harvest=harvest,
        stats=stats,
        prev_row=prev_row,
        next_row=next_row,
        meta=" \u00b7 ".join(x for x in (ex.explainer, ex.model, ex.prompt_version) if x) if ex else "",
        older=[e for e in entry.explanations if e is not ex] if ex else [],
        score_rows=_score_rows(entry.scores),
        traces=[_trace_view(t) for t in entry.extra.get("agent_traces", [])],
        histogram=_histogram(stats.histogram_edges, stats.histogram_counts),
        made_of=[(nw, _neuron_link(entry, nw.neuron, neurons)) for nw in harvest.top_neurons],
        groups=_example_groups(harvest.examples, per_group),
        unit_max=unit_max,
    )


# --- index page ---------------------------------------------------------------------------------


def index_page(
    rows: Sequence[_UnitRow], report: ComparisonReport | None, note: str | None, scorer: str, has_density_plot: bool
) -> str:
    from autointerp.validity_report import validity_tables  # it builds on the comparison module

    counts: defaultdict[str, int] = defaultdict(int)
    for r in rows:
        counts[r.entry.harvest.kind] += 1
    sources = sorted({r.entry.source for r in rows})
    return _template("index.html").render(
        summary=", ".join(f"{n} {kind}s" for kind, n in sorted(counts.items())),
        sources=", ".join(sources),
        n_sources=len(sources),
        report=report,
        note=note,
        summary_rows=summary_rows(report) if report else [],
        verdict=verdict(report) if report else "",
        validity=validity_tables(report) if report and report.protocol_version is not None else [],
        has_density_plot=has_density_plot,
        kinds=sorted({r.entry.harvest.kind for r in rows}),
        scorer=scorer,
        unit_data=[r.data() for r in rows],
    )


# --- entry point --------------------------------------------------------------------------------


def _copy_static(html_dir: Path) -> None:
    static = resources.files("autointerp.export") / "static"
    for name in STATIC_FILES:
        (html_dir / name).write_bytes((static / name).read_bytes())


def write_html_catalog(
    entries: Sequence[CatalogEntry],
    out_dir: str | Path,
    *,
    report: ComparisonReport | None = None,
    comparison_note: str | None = None,
    scorer: str | None = None,
    explainer: str | None = None,
    examples_per_group: int = 6,
) -> Path:
    """Write out_dir/html/ (index.html, one page per unit, CSS/JS, plots); return index.html's path.

    `report` puts the neurons-vs-features table and score plot on the front page; without one the
    page says there is no comparison, and why when `comparison_note` is given. The list's score column uses the report's scorer and explainer
    unless `scorer` / `explainer` are given. Stale unit pages from an earlier export are removed.
    """
    plan = plan_html_catalog(entries, out_dir, report=report, scorer=scorer, explainer=explainer,
                             examples_per_group=examples_per_group)  # fmt: skip
    for entry in entries:
        write_unit_page(plan, entry)
    return finish_html_catalog(plan, report, comparison_note)


@dataclass
class HtmlPlan:
    """What every unit page needs before any is written: the list's rows (prev/next links, the
    neuron pages a feature links to) and where the pages go."""

    html_dir: Path
    rows: list[_UnitRow]
    position: dict[tuple[str, str, int], int]  # (source, kind, index) -> row number
    neurons: dict[int, list[_UnitRow]]
    scorer: str
    explainer: str | None
    simulator: str | None
    per_group: int


def plan_html_catalog(
    entries: Sequence[CatalogEntry],
    out_dir: str | Path,
    *,
    report: ComparisonReport | None = None,
    scorer: str | None = None,
    explainer: str | None = None,
    examples_per_group: int = 6,
) -> HtmlPlan:
    """Rows from `entries` (their examples are not needed here), a fresh html/ folder with its static files."""
    if not entries:
        raise UserError("The catalog is empty: nothing to export.")
    if examples_per_group < 1:
        raise UserError(f"examples_per_group must be at least 1, got {examples_per_group}.")
    scorer = scorer or (report.scorer if report else "simulation")
    if explainer is not None:
        explainer = resolve_explainer(entries, explainer)
    elif report is not None:
        explainer = report.explainer
    ordered = sorted(entries, key=lambda e: (e.harvest.kind != "neuron", e.source, e.harvest.index))
    simulator = report.simulator if report is not None and report.scorer == scorer and report.simulator else None
    rows = [_UnitRow(e, page, scorer, explainer, simulator) for e, page in zip(ordered, page_names(ordered))]
    html_dir = Path(out_dir) / HTML_DIR
    units_dir = html_dir / UNITS_DIR
    if units_dir.is_dir():
        shutil.rmtree(units_dir)
    units_dir.mkdir(parents=True)
    _copy_static(html_dir)
    position: dict[tuple[str, str, int], int] = {
        (r.entry.source, r.entry.harvest.kind, r.entry.harvest.index): i for i, r in enumerate(rows)
    }
    return HtmlPlan(html_dir, rows, position, _neuron_pages(rows), scorer, explainer, simulator, examples_per_group)


def write_unit_page(plan: HtmlPlan, entry: CatalogEntry) -> None:
    """The unit's page, from the full entry (with its examples); entries may come in any order."""
    i = plan.position[(entry.source, entry.harvest.kind, entry.harvest.index)]
    row = _UnitRow(entry, plan.rows[i].page, plan.scorer, plan.explainer, plan.simulator)
    page = unit_page(
        row,
        prev_row=plan.rows[i - 1] if i > 0 else None,
        next_row=plan.rows[i + 1] if i + 1 < len(plan.rows) else None,
        neurons=plan.neurons,
        per_group=plan.per_group,
    )
    (plan.html_dir / UNITS_DIR / f"{row.page}.html").write_text(page, encoding="utf-8")


def finish_html_catalog(plan: HtmlPlan, report: ComparisonReport | None, comparison_note: str | None) -> Path:
    """Plots and the front page, once every unit page is written."""
    html_dir, ordered = plan.html_dir, [row.entry for row in plan.rows]
    if report is not None:
        plot_score_distributions(score_samples(report), html_dir / SCORE_PLOT)
        chosen = chosen_scores(ordered, report.scorer, report.explainer, report.simulator)
        plot_score_vs_density(density_points(chosen), html_dir / SCORE_VS_DENSITY_PLOT, report.scorer)
    densities: dict[str, list[float]] = defaultdict(list)
    for e in ordered:
        densities[e.harvest.kind].append(e.harvest.stats.density)
    plot_density_histogram(densities, html_dir / DENSITY_PLOT)
    index = html_dir / "index.html"
    index.write_text(
        index_page(plan.rows, report, comparison_note, plan.scorer, has_density_plot=True), encoding="utf-8"
    )
    return index
