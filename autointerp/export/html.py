"""A static HTML catalog that opens from file:// with no server and no network.

Layout under out_dir/html/:
- index.html: the neurons-vs-features summary and plots, then a searchable, sortable unit list
  (rendered by catalog.js from a JSON block inside the page, since file:// pages cannot fetch);
- units/<kind>-<index>.html: one page per unit with activation-highlighted examples, stats, an
  activation histogram, promoted / suppressed tokens and, for features, links to their neurons;
- catalog.css, catalog.js, and the PNG plots.

Safety: every piece of corpus or explanation text goes through `html.escape`; the JSON block
escapes <, > and & so no string can close the <script> element; catalog.js only ever writes
textContent. One page per unit keeps thousands of units fast to write and to browse.
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
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from autointerp.agent.trace_html import agent_trace_section
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
from autointerp.records import ActivationExample, CatalogEntry, Score, TokenWeight
from autointerp.validity import chosen_scores, density_points

HTML_DIR = "html"
UNITS_DIR = "units"
STATIC_FILES = ("catalog.css", "catalog.js")
SCORE_PLOT = "score_distributions.png"
SCORE_VS_DENSITY_PLOT = "score_vs_density.png"
DENSITY_PLOT = "density_histogram.png"
HIGHLIGHT_LEVELS = 10
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


# --- small HTML helpers -------------------------------------------------------------------------


def visible(text: str) -> str:
    """`text` with its zero-width and bidi control characters written out as ⟨U+XXXX⟩."""
    return text.translate(_SHOW_INVISIBLE)


def _e(text: object) -> str:
    """Escape any value for HTML text and (double-quoted) attribute values, invisibles made visible."""
    return escape(visible(str(text)), quote=True)


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


def _page_head(title: str, css_href: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{_e(title)}</title><link rel="stylesheet" href="{css_href}"></head>\n<body><main>\n'
    )


_PAGE_END = "</main></body></html>\n"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "source"


# --- tokens -------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1 << 16)  # a vocabulary's worth: pages repeat the same tokens millions of times
def display_token(token: str) -> tuple[str, bool]:
    """The token as shown (escaped HTML) and whether it had invisible characters made visible.

    Newlines, carriage returns and tabs become arrows, zero-width and bidi controls ⟨U+XXXX⟩, an
    empty token an empty-set sign, and a token made only of spaces shows them as middle dots, so
    highlighting never hides a character.
    """
    if token == "":
        return "\u2205", True
    if token.strip(" ") == "":
        return "\u00b7" * len(token), True
    shown = visible(token.translate(_VISIBLE_WHITESPACE))
    return _e(shown), shown != token


def highlight_level(activation: float, unit_max: float) -> int:
    """0 for no highlight, else 1..HIGHLIGHT_LEVELS by activation relative to the unit's max."""
    if activation <= 0 or unit_max <= 0:
        return 0
    return max(1, min(HIGHLIGHT_LEVELS, math.ceil(HIGHLIGHT_LEVELS * activation / unit_max)))


def example_html(example: ActivationExample, unit_max: float) -> str:
    """One window: every token a span, background by activation, exact value in its title."""
    parts = []
    for token, activation in zip(example.tokens, example.activations):
        shown, made_visible = display_token(token)
        classes = []
        level = highlight_level(activation, unit_max)
        if level:
            classes.append(f"h{level}")
        if made_visible:
            classes.append("ws")
        class_attr = f' class="{" ".join(classes)}"' if classes else ""
        if activation == 0 and not made_visible:  # most tokens of a sparse unit: plain text keeps pages small
            parts.append(shown)
            continue
        title = f"{activation:.6g}"
        if made_visible:
            title += f" \u00b7 {token!r}"
        parts.append(f'<span{class_attr} title="{_e(title)}">{shown}</span>')
    return (
        f'<div class="example" data-window="{example.window_id}">'
        f'<span class="ex-max" title="max activation in this window">{example.max_activation:.3g}</span>'
        f'<span class="toks">{"".join(parts)}</span></div>'
    )


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


def _histogram_svg(edges: list[float], counts: list[int]) -> str:
    """The unit's activation histogram as a small inline SVG (log-spaced bins, linear counts)."""
    if not counts or len(edges) != len(counts) + 1 or max(counts) <= 0:
        return '<p class="muted small">No histogram recorded.</p>'
    width, height, pad = 460, 130, 18
    bar_w = (width - 2 * pad) / len(counts)
    top = max(counts)
    bars = []
    for i, count in enumerate(counts):
        h = (height - 2 * pad) * count / top
        x = pad + i * bar_w
        bars.append(
            f'<rect x="{x:.1f}" y="{height - pad - h:.1f}" width="{max(bar_w - 1, 0.5):.1f}" height="{h:.1f}">'
            f"<title>{edges[i]:.4g} to {edges[i + 1]:.4g}: {count} tokens</title></rect>"
        )
    labels = (
        f'<text x="{pad}" y="{height - 4}">{edges[0]:.3g}</text>'
        f'<text x="{width - pad}" y="{height - 4}" text-anchor="end">{edges[-1]:.3g}</text>'
        f'<text x="{pad}" y="{pad - 6}">{top} tokens</text>'
    )
    return (
        f'<svg class="hist" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="histogram of positive activations">{"".join(bars)}{labels}</svg>'
    )


def _chips(tokens: Sequence[TokenWeight], cls: str) -> str:
    if not tokens:
        return '<p class="muted small">None recorded.</p>'
    chips = []
    for t in tokens:
        shown, _ = display_token(t.token)
        chips.append(
            f'<span class="chip {cls}" title="{_e(repr(t.token))}">{shown}<span class="w">{t.weight:+.3g}</span></span>'
        )
    return f'<div class="chips">{"".join(chips)}</div>'


def _scores_table(scores: Sequence[Score]) -> str:
    if not scores:
        return '<p class="muted small">Not scored.</p>'
    rows = []
    for s in scores:
        if s.failed or finite_or_none(s.value) is None:
            value = f'<span class="failed">failed{": " + _e(s.error) if s.error else ""}</span>'
        else:
            value = _num(s.value)
        parts = ", ".join(f"{_e(k)} {_num(finite_or_none(v))}" for k, v in s.parts.items())
        rows.append(
            f'<tr><td>{_e(s.scorer)}</td><td class="num">{value}</td><td>{_e(s.simulator)}</td>'
            f'<td class="small">{parts}</td></tr>'
        )
    return (
        '<table><thead><tr><th>scorer</th><th class="num">score</th><th>simulator</th><th>parts</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _examples_section(examples: Sequence[ActivationExample], unit_max: float, per_group: int) -> str:
    groups: dict[tuple[str, str], list[ActivationExample]] = defaultdict(list)
    for ex in examples:
        groups[(ex.sampling, ex.split)].append(ex)
    order = [(s, sp) for s in SAMPLING_TITLES for sp in SPLIT_TITLES]
    html = []
    for key in order + [k for k in groups if k not in order]:
        if key not in groups:
            continue
        sampling, split = key
        chosen = sorted(groups[key], key=lambda e: (-e.max_activation, e.window_id))[:per_group]
        title = f"{SAMPLING_TITLES.get(sampling, sampling)}, {SPLIT_TITLES.get(split, split)}"
        html.append(f'<h3>{_e(title)} ({len(chosen)} of {len(groups[key])})</h3><div class="examples">')
        html.extend(example_html(ex, unit_max) for ex in chosen)
        html.append("</div>")
    return "".join(html) or '<p class="muted small">No examples harvested.</p>'


def _legend() -> str:
    swatches = "".join(f'<span class="swatch h{level}"></span>' for level in range(1, HIGHLIGHT_LEVELS + 1))
    return f'<div class="legend">low {swatches} unit max · hover a token for its exact activation</div>'


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
    shown_examples = harvest.examples
    unit_max = (
        stats.max_activation
        if stats.max_activation > 0
        else max((e.max_activation for e in shown_examples), default=0.0)
    )
    label = f"{harvest.kind} {harvest.index}"
    nav = ['<a href="../index.html">\u2190 all units</a>']
    if prev_row:
        nav.append(
            f'<a href="{prev_row.page}.html" rel="prev">\u2039 {_e(prev_row.entry.harvest.kind)} {prev_row.entry.harvest.index}</a>'
        )
    if next_row:
        nav.append(
            f'<a href="{next_row.page}.html" rel="next">{_e(next_row.entry.harvest.kind)} {next_row.entry.harvest.index} \u203a</a>'
        )
    out = [_page_head(f"{label}: {row.explanation.text if row.explanation else 'unexplained'}", "../catalog.css")]
    out.append(f'<nav class="crumbs">{" ".join(nav)}</nav>')
    out.append(
        f'<h1><span class="kind kind-{_e(harvest.kind)}">{_e(harvest.kind)}</span> {harvest.index}</h1>'
        f'<p class="muted small">source {_e(entry.source)}</p>'
    )

    # Explanation and scores.
    out.append('<section class="card" id="explanation"><h2>Explanation</h2>')
    if row.explanation:
        ex = row.explanation
        meta = " · ".join(_e(x) for x in (ex.explainer, ex.model, ex.prompt_version) if x)
        out.append(f'<p class="explanation">{_e(ex.text)}</p><p class="muted small">{meta}</p>')
        older = [e for e in entry.explanations if e is not ex]
        if older:
            out.append(f"<details><summary>{len(older)} other explanation(s)</summary><ul>")
            out.extend(f'<li>{_e(e.text)} <span class="muted small">({_e(e.explainer)})</span></li>' for e in older)
            out.append("</ul></details>")
    else:
        out.append('<p class="muted">Not explained yet.</p>')
    out.append(f"<h3>Scores</h3>{_scores_table(entry.scores)}</section>")
    out.append(agent_trace_section(entry.extra.get("agent_traces", [])))

    # Stats, histogram, tokens, neurons.
    kv = [
        ("density (fraction of tokens active)", f"{stats.density:.3e}"),
        ("active tokens / tokens seen", f"{stats.active_count:,} / {stats.tokens_seen:,}"),
        ("max activation", f"{stats.max_activation:.4g}"),
        ("mean activation (all tokens)", f"{stats.mean_activation:.4g}"),
        ("mean activation (active tokens)", f"{stats.mean_active_activation:.4g}"),
    ]
    kv_rows = "".join(f'<tr><td>{_e(k)}</td><td class="num">{_e(v)}</td></tr>' for k, v in kv)
    out.append(
        '<div class="grid2"><section class="card" id="stats"><h2>Activation stats</h2>'
        f'<table class="kv">{kv_rows}</table><h3>Histogram of positive activations</h3>'
        f"{_histogram_svg(stats.histogram_edges, stats.histogram_counts)}</section>"
    )
    out.append(
        '<section class="card" id="logits"><h2>Output effect</h2>'
        f"<h3>Promoted tokens</h3>{_chips(harvest.promoted_tokens, 'up')}"
        f"<h3>Suppressed tokens</h3>{_chips(harvest.suppressed_tokens, 'down')}"
    )
    if harvest.kind == "feature":
        items = []
        for nw in harvest.top_neurons:
            target = _neuron_link(entry, nw.neuron, neurons)
            name = f"neuron {nw.neuron}"
            linked = f'<a href="{target.page}.html">{name}</a>' if target else name
            expl = (
                f' <span class="muted small">{_e(target.explanation.text)}</span>'
                if target and target.explanation
                else ""
            )
            items.append(f'<tr><td>{linked}{expl}</td><td class="num">{nw.weight:+.3f}</td></tr>')
        table = (
            f'<table id="neurons"><thead><tr><th>neuron</th><th class="num">decoder weight</th></tr></thead><tbody>{"".join(items)}</tbody></table>'
            if items
            else '<p class="muted small">None recorded.</p>'
        )
        out.append(f"<h3>Made of neurons</h3>{table}")
    out.append("</section></div>")

    out.append(f'<section class="card" id="examples"><h2>Examples</h2>{_legend()}')
    out.append(_examples_section(shown_examples, unit_max, per_group))
    out.append("</section>")
    out.append(_PAGE_END)
    return "".join(out)


# --- index page ---------------------------------------------------------------------------------


def _comparison_section(report: ComparisonReport | None, note: str | None, has_density_plot: bool) -> str:
    out = ['<section class="card" id="comparison"><h2>Neurons vs features</h2>']
    if report is None:
        out.append(f'<p class="muted">No comparison: {_e(note or "no report given")}.</p>')
    else:
        rows = summary_rows(report)
        head = "".join(f"<th>{_e(c)}</th>" for c in rows[0])
        body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows[1:])
        out.append(
            f'<p class="verdict">{_e(verdict(report))}</p>'
            f'<p class="muted small">explainer {_e(report.explainer)}; primary scorer {_e(report.scorer)}; '
            f"bootstrap 95% CIs from {report.n_resamples} resamples (seed {report.seed}); two-sided Mann-Whitney U.</p>"
            f'<table class="summary-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
        )
        out.append(_validity_html(report))
    out.append('<div class="plots">')
    if report is not None:
        out.append(
            f'<h3>Score distributions</h3><img src="{SCORE_PLOT}" alt="score distributions, neurons vs features">'
        )
    if report is not None:
        out.append(
            f'<h3>Score against density</h3><img src="{SCORE_VS_DENSITY_PLOT}" alt="score against activation density">'
        )
    if has_density_plot:
        out.append(
            f'<h3>Activation density</h3><img src="{DENSITY_PLOT}" alt="activation density, neurons vs features">'
        )
    out.append("</div></section>")
    return "".join(out)


def _validity_html(report: ComparisonReport) -> str:
    """What each number measures, the conclusions, and the strata / controls / ceiling tables."""
    from autointerp.validity_report import (
        validity_tables,  # it builds on the comparison module
    )

    if report.protocol_version is None:
        return ""
    out = [f"<h3>What the numbers mean (scoring protocol v{report.protocol_version})</h3><dl>"]
    out += [f"<dt>{_e(name)}</dt><dd>{_e(text)}</dd>" for name, text in report.measures.items()]
    out.append(
        "</dl><h3>Conclusions</h3><ul>" + "".join(f"<li>{_e(line)}</li>" for line in report.conclusions) + "</ul>"
    )
    for title, rows in validity_tables(report):
        head = "".join(f"<th>{_e(c)}</th>" for c in rows[0])
        body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows[1:])
        out.append(
            f'<h3>{_e(title)}</h3><table class="summary-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
        )
    return "".join(out)


def _unit_list_section(rows: Sequence[_UnitRow], scorer: str) -> str:
    kinds = sorted({r.entry.harvest.kind for r in rows})
    options = "".join(f'<option value="{_e(k)}">{_e(k)}s</option>' for k in kinds)
    headers = [
        ("kind", "kind", ""),
        ("index", "index", "num"),
        ("explanation", "explanation", ""),
        ("score", f"{scorer} score", "num"),
        ("density", "density", "num"),
        ("max", "max act", "num"),
    ]
    ths = "".join(f'<th class="sortable {cls}" data-key="{key}">{_e(label)}</th>' for key, label, cls in headers)
    return (
        '<section class="card" id="units"><h2>Units</h2><div class="controls">'
        '<input id="search" type="search" placeholder="Search explanations, e.g. \u201cnewline\u201d or feature:12" '
        'aria-label="search units" autocomplete="off">'
        f'<select id="kind-filter" aria-label="kind"><option value="">all kinds</option>{options}</select></div>'
        '<p id="unit-count" class="muted small"></p>'
        f'<table id="unit-table"><thead><tr>{ths}</tr></thead><tbody></tbody></table>'
        '<button id="show-more" class="more" type="button" hidden>Show more</button>'
        "<noscript><p>The unit list needs JavaScript; every unit page works without it.</p></noscript></section>"
    )


def index_page(
    rows: Sequence[_UnitRow], report: ComparisonReport | None, note: str | None, scorer: str, has_density_plot: bool
) -> str:
    counts: defaultdict[str, int] = defaultdict(int)
    for r in rows:
        counts[r.entry.harvest.kind] += 1
    sources = sorted({r.entry.source for r in rows})
    summary = ", ".join(f"{n} {kind}s" for kind, n in sorted(counts.items()))
    return "".join(
        [
            _page_head("autointerp catalog", "catalog.css"),
            "<h1>autointerp catalog</h1>",
            f'<p class="muted">{_e(summary)} · source{"s" if len(sources) != 1 else ""}: {_e(", ".join(sources))}</p>',
            _comparison_section(report, note, has_density_plot),
            _unit_list_section(rows, scorer),
            f'<script type="application/json" id="unit-data">{json_for_script([r.data() for r in rows])}</script>',
            '<script src="catalog.js"></script>',
            _PAGE_END,
        ]
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
