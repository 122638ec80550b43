// autointerp catalog index: search, kind filter, sortable columns, paged rendering.
// Data comes from the inline <script type="application/json" id="unit-data"> block (file:// can't
// fetch). Every value is put into the page with textContent, never as HTML.
(function () {
  "use strict";
  var PAGE = 500;
  // Row layout written by autointerp/export/html.py.
  var COL = { kind: 0, index: 1, explanation: 2, score: 3, density: 4, max: 5, page: 6 };
  var rows = JSON.parse(document.getElementById("unit-data").textContent);
  var haystacks = rows.map(function (r) {
    return (r[COL.kind] + ":" + r[COL.index] + " " + r[COL.kind] + " " + r[COL.index] + " " + r[COL.explanation]).toLowerCase();
  });
  var state = { query: "", kind: "", sortKey: "kind", sortDir: 1, shown: PAGE };

  var search = document.getElementById("search");
  var kindFilter = document.getElementById("kind-filter");
  var tbody = document.querySelector("#unit-table tbody");
  var count = document.getElementById("unit-count");
  var more = document.getElementById("show-more");
  var headers = document.querySelectorAll("#unit-table th[data-key]");

  function compareValues(a, b) {
    // Missing values (unscored units) sort last in both directions.
    if (a === null && b === null) return 0;
    if (a === null) return 1;
    if (b === null) return -1;
    if (typeof a === "string") return state.sortDir * a.localeCompare(b);
    return state.sortDir * (a - b);
  }

  function matching() {
    var terms = state.query.toLowerCase().split(/\s+/).filter(Boolean);
    var out = [];
    for (var i = 0; i < rows.length; i++) {
      if (state.kind && rows[i][COL.kind] !== state.kind) continue;
      var ok = true;
      for (var t = 0; t < terms.length; t++) {
        if (haystacks[i].indexOf(terms[t]) < 0) { ok = false; break; }
      }
      if (ok) out.push(rows[i]);
    }
    var col = COL[state.sortKey];
    out.sort(function (a, b) {
      var c = compareValues(a[col], b[col]);
      if (c === 0 && col !== COL.index) c = a[COL.kind].localeCompare(b[COL.kind]) || a[COL.index] - b[COL.index];
      return c;
    });
    return out;
  }

  function cell(tr, text, cls) {
    var td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }

  function fmt(x, digits) {
    return x === null ? "\u2013" : x.toFixed(digits);
  }

  function render() {
    var list = matching();
    var frag = document.createDocumentFragment();
    var n = Math.min(state.shown, list.length);
    for (var i = 0; i < n; i++) {
      var r = list[i];
      var tr = document.createElement("tr");
      tr.className = "unit-row";
      var kindTd = cell(tr, "");
      var badge = document.createElement("span");
      badge.className = "kind kind-" + r[COL.kind];
      badge.textContent = r[COL.kind];
      kindTd.appendChild(badge);
      var idxTd = cell(tr, "", "num");
      var link = document.createElement("a");
      link.href = "units/" + encodeURIComponent(r[COL.page]) + ".html";
      link.textContent = String(r[COL.index]);
      idxTd.appendChild(link);
      var explTd = cell(tr, "", "expl");
      var explLink = document.createElement("a");
      explLink.href = link.href;
      explLink.textContent = r[COL.explanation] === null ? "(no explanation)" : r[COL.explanation];
      explTd.appendChild(explLink);
      cell(tr, fmt(r[COL.score], 3), "num score");
      cell(tr, r[COL.density] === null ? "\u2013" : r[COL.density].toExponential(2), "num density");
      cell(tr, fmt(r[COL.max], 2), "num");
      frag.appendChild(tr);
    }
    tbody.replaceChildren(frag);
    count.textContent = "Showing " + n + " of " + list.length + " matching units (" + rows.length + " in the catalog)";
    more.hidden = n >= list.length;
    headers.forEach(function (th) {
      th.setAttribute("aria-sort", th.dataset.key === state.sortKey ? (state.sortDir > 0 ? "ascending" : "descending") : "none");
    });
  }

  search.addEventListener("input", function () { state.query = search.value; state.shown = PAGE; render(); });
  kindFilter.addEventListener("change", function () { state.kind = kindFilter.value; state.shown = PAGE; render(); });
  more.addEventListener("click", function () { state.shown += PAGE; render(); });
  headers.forEach(function (th) {
    th.addEventListener("click", function () {
      var key = th.dataset.key;
      if (state.sortKey === key) state.sortDir = -state.sortDir;
      else { state.sortKey = key; state.sortDir = (key === "score" || key === "density" || key === "max") ? -1 : 1; }
      render();
    });
  });
  render();
})();
