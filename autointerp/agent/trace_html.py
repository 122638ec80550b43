"""An agent trace as a section of a unit's HTML page: where it started, each revision and the
probe behind it, and every probe with the unit's activation on the token it asked about."""

from __future__ import annotations

from html import escape

from autointerp.agent.trace import AgentTrace

MAX_PROBES_SHOWN = 60


def agent_trace_section(traces: list[dict]) -> str:
    """'' when the unit has no trace (`traces`: AgentTrace dumps, as a catalog entry's extra holds
    them); all text is escaped (tokens come from the corpus)."""
    if not traces:
        return ""
    out = ['<section class="card" id="agent"><h2>Agent trace</h2>']
    for t in map(AgentTrace.model_validate, traces):
        out.append(
            f'<p class="muted small">driver {escape(t.driver)} · {t.calls} of {t.budget} subject-model calls · '
            f"{len(t.revisions)} revision(s)</p>"
            f"<p>started from: {escape(t.initial)}</p><p>ended with: <b>{escape(t.final)}</b></p>"
        )
        if t.revisions:
            out.append("<h3>Revisions</h3><ol>")
            out.extend(
                f"<li>after {r.calls} calls, because {escape(r.reason)}:<br>{escape(r.before)} "
                f"\u2192 <b>{escape(r.after)}</b></li>"
                for r in t.revisions
            )
            out.append("</ol>")
        out.append(f"<details><summary>{len(t.probes)} probe(s)</summary><table><thead><tr><th>probe</th>"
                   '<th>text (asked-about token marked)</th><th class="num">activation</th></tr></thead><tbody>')  # fmt: skip
        for p in t.probes[:MAX_PROBES_SHOWN]:
            tokens = "".join(
                f"<mark>{escape(tok)}</mark>" if i == p.target else escape(tok) for i, tok in enumerate(p.tokens)
            )
            value = p.activations[p.target] if p.target is not None else max(p.activations, default=0.0)
            out.append(
                f'<tr><td>{escape(p.purpose)}</td><td><code>{tokens}</code></td><td class="num">{value:.3f}</td></tr>'
            )
        out.append("</tbody></table></details>")
    out.append("</section>")
    return "".join(out)
