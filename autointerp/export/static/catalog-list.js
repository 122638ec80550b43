// autointerp catalog: the unit list. A virtualised list: the page holds only the rows in view (and a
// few more), positioned in a spacer as tall as the whole list, so 1M units scroll like 100.
// Search loads data/search.js on first use: each query word matches the start of indexed words.
(function () {
  "use strict";
  var AI = window.AI;
  var ROW = 30; // px, the same as .vrow's height in catalog.css
  var OVERSCAN = 10;
  var NUMERIC = { score: true, density: true, max: true };
  var list = document.getElementById("unit-list");
  var body = list.querySelector(".vbody");
  var space = list.querySelector(".vspace");
  var head = list.querySelector(".vhead");
  var count = document.getElementById("unit-count");
  var search = document.getElementById("search");
  var kindFilter = document.getElementById("kind-filter");
  var minScore = document.getElementById("min-score");
  var D = null; // data/index.js
  var columns = [];
  var state = { matches: null, key: null, dir: 1, shown: new Int32Array(0), query: 0 };

  function columnsFor(d) {
    var cols = [
      { key: "kind", label: "kind", value: function (u) { return d.kinds[d.kind[u]]; } },
      { key: "index", label: "index", num: true, value: function (u) { return d.index[u]; } },
      { key: "explanation", label: "explanation", value: function (u) { return d.explanation[u]; } },
    ];
    d.scorers.forEach(function (name, i) {
      cols.push({ key: "score" + i, label: name, num: true, score: true, value: function (u) { return d.scores[i][u]; } });
    });
    cols.push({ key: "density", label: "density", num: true, value: function (u) { return d.density[u]; } });
    cols.push({ key: "max", label: "max act", num: true, value: function (u) { return d.max[u]; } });
    return cols;
  }

  function buildHead() {
    head.style.gridTemplateColumns = gridColumns();
    columns.forEach(function (c) {
      var h = AI.add(head, "div", "vcell sortable" + (c.num ? " num" : ""), c.label);
      h.setAttribute("role", "columnheader");
      h.dataset.key = c.key;
      h.setAttribute("aria-sort", "none");
      h.addEventListener("click", function () {
        if (state.key === c.key) state.dir = -state.dir;
        else { state.key = c.key; state.dir = c.score || NUMERIC[c.key] ? -1 : 1; }
        refresh();
      });
    });
  }

  function gridColumns() {
    return "6em 5em minmax(12em, 1fr)" + " 6.5em".repeat(D.scorers.length) + " 6.5em 5.5em";
  }

  function compare(col) {
    return function (a, b) {
      var x = col.value(a), y = col.value(b);
      // Missing values (unscored, unexplained) sort last in both directions; ties keep list order.
      if (x === null && y === null) return a - b;
      if (x === null) return 1;
      if (y === null) return -1;
      var c = typeof x === "string" ? (x < y ? -1 : x > y ? 1 : 0) : x - y; // localeCompare: seconds for 100k
      if (c === 0 && col.key === "kind") c = D.index[a] - D.index[b];
      return c === 0 ? a - b : state.dir * c;
    };
  }

  // The units the search matches (a Uint8Array mark), or null for no search.
  function searchMarks(query) {
    var m = /^\s*(\w+):(\d+)\s*$/.exec(query);
    var marks = new Uint8Array(D.n);
    if (m) {
      for (var u = 0; u < D.n; u++) if (D.kinds[D.kind[u]] === m[1].toLowerCase() && D.index[u] === +m[2]) marks[u] = 1;
      return marks;
    }
    var words = AI.words(query);
    if (!words.length) return null;
    var S = AI.got.search;
    marks.fill(1);
    words.forEach(function (w) {
      var hit = new Uint8Array(D.n);
      var lo = 0, hi = S.terms.length;
      while (lo < hi) { var mid = (lo + hi) >> 1; if (S.terms[mid] < w) lo = mid + 1; else hi = mid; }
      for (var t = lo; t < S.terms.length && S.terms[t].lastIndexOf(w, 0) === 0; t++) {
        var p = S.postings[t], uid = 0;
        for (var i = 0; i < p.length; i++) { uid += p[i]; hit[uid] = 1; }
      }
      for (var v = 0; v < D.n; v++) marks[v] &= hit[v];
    });
    return marks;
  }

  function refresh() {
    var kind = kindFilter.value, min = minScore.value === "" ? null : Number(minScore.value);
    var out = [];
    for (var u = 0; u < D.n; u++) {
      if (state.matches && !state.matches[u]) continue;
      if (kind && D.kinds[D.kind[u]] !== kind) continue;
      if (min !== null && !(D.scores[0][u] !== null && D.scores[0][u] >= min)) continue;
      out.push(u);
    }
    var col = columns.filter(function (c) { return c.key === state.key; })[0];
    if (col) out.sort(compare(col));
    state.shown = Int32Array.from(out);
    head.querySelectorAll("[data-key]").forEach(function (h) {
      h.setAttribute("aria-sort", h.dataset.key === state.key ? (state.dir > 0 ? "ascending" : "descending") : "none");
    });
    space.style.height = state.shown.length * ROW + "px";
    count.textContent = state.shown.length + " matching units (" + D.n + " in the catalog)";
    body.scrollTop = 0;
    draw();
  }

  function row(u, top) {
    var r = AI.el("div", "vrow");
    r.setAttribute("role", "row");
    r.style.top = top + "px";
    r.style.gridTemplateColumns = gridColumns();
    var href = "unit.html#" + u;
    columns.forEach(function (c) {
      var cell = AI.add(r, "div", "vcell" + (c.num ? " num" : "") + " c-" + c.key);
      cell.setAttribute("role", "cell");
      var v = c.value(u);
      if (c.key === "kind") AI.add(cell, "span", "kind kind-" + v, v);
      else if (c.key === "index" || c.key === "explanation") {
        var a = AI.add(cell, "a", null, c.key === "index" ? String(v) : v === null ? "(no explanation)" : AI.visible(v));
        a.href = href;
        if (c.key === "explanation") cell.title = a.textContent;
      } else if (c.key === "density") cell.textContent = v === null ? "\u2013" : v.toExponential(2);
      else cell.textContent = AI.num(v, c.key === "max" ? 2 : 3);
    });
    return r;
  }

  function draw() {
    var first = Math.max(0, Math.floor(body.scrollTop / ROW) - OVERSCAN);
    var last = Math.min(state.shown.length, Math.ceil((body.scrollTop + body.clientHeight) / ROW) + OVERSCAN);
    var frag = document.createDocumentFragment();
    for (var i = first; i < last; i++) frag.appendChild(row(state.shown[i], i * ROW));
    space.replaceChildren(frag);
  }

  function onSearch() {
    var query = search.value, ticket = ++state.query;
    var needsIndex = AI.words(query).length && !/^\s*\w+:\d+\s*$/.test(query);
    (needsIndex ? AI.load("data/search.js") : Promise.resolve()).then(function () {
      if (ticket !== state.query) return; // a later keystroke won
      state.matches = searchMarks(query);
      refresh();
    }, function (err) { count.textContent = "Search is unavailable: " + err.message; });
  }

  AI.load("data/index.js").then(function () {
    D = AI.got.index;
    columns = columnsFor(D);
    buildHead();
    var scrolling = false;
    body.addEventListener("scroll", function () {
      if (scrolling) return;
      scrolling = true;
      requestAnimationFrame(function () { scrolling = false; draw(); });
    });
    search.addEventListener("input", onSearch);
    kindFilter.addEventListener("change", refresh);
    minScore.addEventListener("input", refresh);
    refresh();
    AI.timing.indexReady = performance.now();
  }, function (err) { count.textContent = "The unit list could not be loaded: " + err.message; });
})();
