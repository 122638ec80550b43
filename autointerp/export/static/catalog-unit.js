// autointerp catalog: the unit view, unit.html#<uid>. Loads the unit's shard and the window shards its
// examples point into, then builds the page with textContent only.
(function () {
  "use strict";
  var AI = window.AI;
  var root = document.getElementById("unit");
  var SHARD = Number(root.dataset.shardSize);
  var WSHARD = Number(root.dataset.windowShardSize);
  var NSHARD = Number(root.dataset.namesShardSize);
  var QUANT = 1000; // levels are thousandths of the unit's max (autointerp/export/html_units.py)
  var LEVELS = 10;
  var SAMPLING = { top: "Top activations", quantile: "Activation quantiles", random: "Random windows",
    silent: "Windows where it stays silent", hard_negative: "Hard negatives (its trigger tokens, silent)" };
  var SPLIT = { explain: "shown to the explainer", score: "held out for scoring" };

  function card(id, title) {
    var s = AI.el("section", "card");
    s.id = id;
    AI.add(s, "h2", null, title);
    return s;
  }

  function table(parent, headers, id) {
    var t = AI.add(parent, "table");
    if (id) t.id = id;
    var tr = AI.add(AI.add(t, "thead"), "tr");
    headers.forEach(function (h) { AI.add(tr, "th", h[1] || null, h[0]); });
    return AI.add(t, "tbody");
  }

  function tr(tbody, cells) {
    var r = AI.add(tbody, "tr");
    cells.forEach(function (c) {
      var td = AI.add(r, "td", c[1] || null);
      if (c[0] instanceof Node) td.appendChild(c[0]); else td.textContent = c[0];
    });
    return r;
  }

  function unitLink(uid, text) {
    var a = AI.el("a", null, text);
    a.href = "#" + uid;
    return a;
  }

  function explanationCard(u) {
    var s = card("explanation", "Explanation");
    var ex = u.shown === null ? null : u.explanations[u.shown];
    if (ex) {
      AI.add(s, "p", "explanation", AI.visible(ex.text));
      AI.add(s, "p", "muted small", AI.visible([ex.explainer, ex.model, ex.prompt].filter(Boolean).join(" \u00B7 ")));
      var older = u.explanations.filter(function (e, i) { return i !== u.shown; });
      if (older.length) {
        var d = AI.add(s, "details");
        AI.add(d, "summary", null, older.length + " other explanation(s)");
        var ul = AI.add(d, "ul");
        older.forEach(function (e) {
          var li = AI.add(ul, "li", null, AI.visible(e.text) + " ");
          AI.add(li, "span", "muted small", "(" + AI.visible(e.explainer) + ")");
        });
      }
    } else AI.add(s, "p", "muted", "Not explained yet.");
    AI.add(s, "h3", null, "Scores");
    if (!u.scores.length) { AI.add(s, "p", "muted small", "Not scored."); return s; }
    var body = table(s, [["scorer"], ["score", "num"], ["simulator"], ["parts (per stratum)"]], "scores");
    u.scores.forEach(function (sc) {
      var value = sc.value === null ? AI.el("span", "failed", "failed" + (sc.error ? ": " + AI.visible(sc.error) : "")) : AI.num(sc.value, 3);
      var parts = sc.parts.map(function (p) { return p[0] + " " + AI.num(p[1], 3); }).join(", ");
      tr(body, [[sc.scorer], [value, "num"], [AI.visible(sc.simulator)], [parts, "small"]]);
    });
    return s;
  }

  function traceCard(u) {
    var s = card("agent", "Agent trace");
    u.traces.forEach(function (t) {
      AI.add(s, "p", "muted small", "driver " + AI.visible(t.driver) + " \u00B7 " + t.calls + " of " + t.budget +
        " subject-model calls \u00B7 " + t.revisions.length + " revision(s)");
      AI.add(s, "p", null, "started from: " + AI.visible(t.initial));
      AI.add(AI.add(s, "p", null, "ended with: "), "b", null, AI.visible(t.final));
      if (t.revisions.length) {
        AI.add(s, "h3", null, "Revisions");
        var ol = AI.add(s, "ol");
        t.revisions.forEach(function (r) {
          var li = AI.add(ol, "li", null, "after " + r.calls + " calls, because " + AI.visible(r.reason) + ": " + AI.visible(r.before) + " \u2192 ");
          AI.add(li, "b", null, AI.visible(r.after));
        });
      }
      var d = AI.add(s, "details");
      AI.add(d, "summary", null, t.n_probes + " probe(s)" + (t.n_probes > t.probes.length ? ", the first " + t.probes.length + " shown" : ""));
      var body = table(d, [["probe"], ["text (asked-about token marked)"], ["activation", "num"]]);
      t.probes.forEach(function (p) {
        var code = AI.el("code");
        p.tokens.forEach(function (tok, i) {
          if (i === p.target) AI.add(code, "mark", null, AI.shownToken(tok)[0]);
          else code.appendChild(document.createTextNode(AI.shownToken(tok)[0]));
        });
        tr(body, [[AI.visible(p.purpose)], [code], [AI.num(p.value, 3), "num"]]);
      });
    });
    return s;
  }

  // A feature's relatives across dictionary sizes: rows of [source, index, measures, cosine,
  // correlation, uid or null, explanation or null] (autointerp/export/html_units.py).
  function familyTable(parent, rows, id) {
    var body = table(parent, [["feature"], ["chosen by"], ["decoder cosine", "num"], ["activation correlation", "num"], ["explanation"]], id);
    rows.forEach(function (r) {
      var name = "feature " + r[1] + " of " + AI.visible(r[0]);
      var cell = r[5] === null ? AI.el("span", null, name) : unitLink(r[5], name);
      tr(body, [[cell], [r[2], "small"], [AI.num(r[3], 3), "num"], [AI.num(r[4], 3), "num"],
        [r[6] === null ? "not explained" : AI.visible(r[6]), r[6] === null ? "muted small" : null]]);
    });
  }

  function familyCard(u) {
    var s = card("family", "Family across dictionary sizes"), f = u.family;
    AI.add(s, "h3", null, "Parents: its nearest feature in each smaller SAE");
    if (f.parents.length) familyTable(s, f.parents, "parents");
    else AI.add(s, "p", "muted small", "None: no smaller SAE was compared with this one.");
    var shown = f.children.length < f.n_children ? ", the " + f.children.length + " closest shown" : "";
    AI.add(s, "h3", null, "Children: features of larger SAEs whose nearest feature this is (" + f.n_children + shown + ")");
    if (f.children.length) familyTable(s, f.children, "children");
    else AI.add(s, "p", "muted small", "None.");
    return s;
  }

  function histogram(edges, counts) {
    if (!counts.length || edges.length !== counts.length + 1) return AI.el("p", "muted small", "No histogram recorded.");
    var W = 460, H = 130, PAD = 18, top = Math.max.apply(null, counts);
    if (top <= 0) return AI.el("p", "muted small", "No histogram recorded.");
    var NS = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(NS, "svg");
    svg.setAttribute("class", "hist");
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "histogram of positive activations");
    var bw = (W - 2 * PAD) / counts.length;
    function text(x, y, s, anchor) {
      var t = svg.appendChild(document.createElementNS(NS, "text"));
      t.setAttribute("x", x); t.setAttribute("y", y); t.textContent = s;
      if (anchor) t.setAttribute("text-anchor", anchor);
    }
    counts.forEach(function (c, i) {
      var h = (H - 2 * PAD) * c / top;
      var r = svg.appendChild(document.createElementNS(NS, "rect"));
      r.setAttribute("x", (PAD + i * bw).toFixed(1)); r.setAttribute("y", (H - PAD - h).toFixed(1));
      r.setAttribute("width", Math.max(bw - 1, 0.5).toFixed(1)); r.setAttribute("height", h.toFixed(1));
      r.appendChild(document.createElementNS(NS, "title")).textContent =
        AI.sig(edges[i], 4) + " to " + AI.sig(edges[i + 1], 4) + ": " + c + " tokens";
    });
    text(PAD, H - 4, AI.sig(edges[0], 3));
    text(W - PAD, H - 4, AI.sig(edges[edges.length - 1], 3), "end");
    text(PAD, PAD - 6, top + " tokens");
    return svg;
  }

  function statsCard(u) {
    var s = card("stats", "Activation stats"), st = u.stats;
    var body = AI.add(AI.add(s, "table", "kv"), "tbody");
    [["density (fraction of tokens active)", st.density === null ? "\u2013" : st.density.toExponential(3)],
     ["active tokens / tokens seen", st.active.toLocaleString("en") + " / " + st.seen.toLocaleString("en")],
     ["max activation", AI.sig(st.max, 4)], ["mean activation (all tokens)", AI.sig(st.mean, 4)],
     ["mean activation (active tokens)", AI.sig(st.mean_active, 4)]].forEach(function (r) { tr(body, [[r[0]], [r[1], "num"]]); });
    AI.add(s, "h3", null, "Histogram of positive activations");
    s.appendChild(histogram(u.hist[0], u.hist[1]));
    return s;
  }

  function chips(parent, tokens, cls) {
    if (!tokens.length) { AI.add(parent, "p", "muted small", "None recorded."); return; }
    var div = AI.add(parent, "div", "chips");
    tokens.forEach(function (t) {
      var chip = AI.add(div, "span", "chip " + cls, AI.shownToken(t[0])[0]);
      chip.title = JSON.stringify(t[0]);
      AI.add(chip, "span", "w", (t[1] > 0 ? "+" : "") + AI.sig(t[1], 3));
    });
  }

  function effectCard(u) {
    var s = card("logits", "Output effect");
    AI.add(s, "h3", null, "Promoted tokens");
    chips(s, u.promoted, "up");
    AI.add(s, "h3", null, "Suppressed tokens");
    chips(s, u.suppressed, "down");
    if (u.kind !== "feature") return s;
    AI.add(s, "h3", null, "Made of neurons");
    if (!u.neurons.length) { AI.add(s, "p", "muted small", "None recorded."); return s; }
    var body = table(s, [["neuron"], ["decoder weight", "num"]], "neurons");
    u.neurons.forEach(function (n) {
      var cell = AI.el("span");
      if (n[2] === null) cell.textContent = "neuron " + n[0];
      else {
        cell.appendChild(unitLink(n[2], "neuron " + n[0]));
        var text = AI.got.names[Math.floor(n[2] / NSHARD)][n[2] % NSHARD];
        if (text !== null) AI.add(cell, "span", "muted small", " " + AI.visible(text));
      }
      tr(body, [[cell], [(n[1] > 0 ? "+" : "") + AI.num(n[1], 3), "num"]]);
    });
    return s;
  }

  function windowTokens(w, start, length) {
    var rec = AI.got.windows[Math.floor(w / WSHARD)][w % WSHARD];
    for (var i = 1; i < rec.length; i++) {
      var run = rec[i];
      if (run[0] <= start && start + length <= run[0] + run[1].length) return [rec[0], run[1].slice(start - run[0], start - run[0] + length)];
    }
    throw new Error("window " + rec[0] + " lacks positions " + start + "+" + length);
  }

  function example(ex, unitMax) {
    var got = windowTokens(ex[0], ex[1], ex[2]), tokens = got[1], levels = {}, peak = 0;
    if (Array.isArray(ex[3])) levels = ex[3]; // every position's level (a unit active on most tokens)
    else for (var i = 3; i < ex.length; i += 2) levels[ex[i]] = ex[i + 1];
    for (var p in levels) peak = Math.max(peak, levels[p]);
    var div = AI.el("div", "example");
    div.dataset.window = got[0];
    var max = AI.add(div, "span", "ex-max", AI.sig(peak * unitMax / QUANT, 3));
    max.title = "max activation in this window";
    var toks = AI.add(div, "span", "toks");
    tokens.forEach(function (tok, pos) {
      var q = levels[pos] || 0, shown = AI.shownToken(tok);
      if (!q && !shown[1]) { toks.appendChild(document.createTextNode(tok)); return; }
      var level = q > 0 ? Math.max(1, Math.min(LEVELS, Math.ceil(LEVELS * q / QUANT))) : 0;
      var span = AI.add(toks, "span", [level ? "h" + level : "", shown[1] ? "ws" : ""].join(" ").trim() || null, shown[0]);
      span.title = AI.sig(q * unitMax / QUANT, 3) + (shown[1] ? " \u00B7 " + AI.visible(JSON.stringify(tok)) : "");
    });
    return div;
  }

  function examplesCard(u) {
    var s = card("examples", "Examples");
    var legend = AI.add(s, "div", "legend", "low ");
    for (var l = 1; l <= LEVELS; l++) AI.add(legend, "span", "swatch h" + l);
    legend.appendChild(document.createTextNode(" unit max \u00B7 hover a token for its activation"));
    if (!u.groups.length) AI.add(s, "p", "muted small", "No examples harvested.");
    u.groups.forEach(function (g) {
      AI.add(s, "h3", null, (SAMPLING[g[0]] || g[0]) + ", " + (SPLIT[g[1]] || g[1]) + " (" + g[3].length + " of " + g[2] + ")");
      var div = AI.add(s, "div", "examples");
      g[3].forEach(function (ex) { div.appendChild(example(ex, u.unit_max || 0)); });
    });
    return s;
  }

  // The window shards its examples use and the names shards of the neurons it links to.
  function dataFor(u) {
    var need = {};
    u.groups.forEach(function (g) { g[3].forEach(function (ex) { need["windows/windows_" + AI.pad4(Math.floor(ex[0] / WSHARD))] = 1; }); });
    u.neurons.forEach(function (n) { if (n[2] !== null) need["names/names_" + AI.pad4(Math.floor(n[2] / NSHARD))] = 1; });
    return Promise.all(Object.keys(need).map(function (path) { return AI.load("data/" + path + ".js"); }));
  }

  function nav(id, uid, n, label) {
    var a = document.getElementById(id);
    a.hidden = uid < 0 || uid >= n;
    a.href = "#" + uid;
    a.textContent = label;
  }

  function render(u, n) {
    var ex = u.shown === null ? null : u.explanations[u.shown];
    document.title = AI.unitName(u.kind, u.index) + ": " + (ex ? AI.visible(ex.text) : "unexplained");
    nav("prev", u.uid - 1, n, "\u2039 previous unit");
    nav("next", u.uid + 1, n, "next unit \u203A");
    var frag = document.createDocumentFragment();
    var h1 = AI.add(frag, "h1");
    AI.add(h1, "span", "kind kind-" + u.kind, u.kind);
    h1.appendChild(document.createTextNode(" " + u.index));
    AI.add(frag, "p", "muted small", "source " + AI.visible(u.source));
    frag.appendChild(explanationCard(u));
    if (u.traces.length) frag.appendChild(traceCard(u));
    if (u.family) frag.appendChild(familyCard(u));
    var grid = AI.add(frag, "div", "grid2");
    grid.appendChild(statsCard(u));
    grid.appendChild(effectCard(u));
    frag.appendChild(examplesCard(u));
    root.replaceChildren(frag);
  }

  function show() {
    var start = performance.now();
    var uid = parseInt(location.hash.slice(1), 10);
    if (!(uid >= 0)) { root.replaceChildren(AI.el("p", "muted", "No unit chosen: open a unit from the list.")); return; }
    var k = Math.floor(uid / SHARD);
    AI.load("data/units/shard_" + AI.pad4(k) + ".js").then(function () {
      var shard = AI.got.shards[k], u = shard.units[uid - k * SHARD];
      if (!u || u.uid !== uid) throw new Error("unit " + uid + " is not in this catalog");
      return dataFor(u).then(function () {
        var loaded = performance.now();
        render(u, shard.n);
        window.scrollTo(0, 0);
        var done = performance.now();
        AI.timing.unit = { uid: uid, ms: done - start, load_ms: loaded - start, render_ms: done - loaded, at: done };
      });
    }).catch(function (err) {
      root.replaceChildren(AI.el("p", "failed", "Unit " + uid + " could not be shown: " + err.message));
    });
  }

  window.addEventListener("hashchange", show);
  show();
})();
