// autointerp catalog: what the list and the unit view share. Data files are scripts that call
// window.__index / __search / __shard / __windows with their JSON (browsers refuse fetch() of local
// files, not scripts); load() adds the <script> element and resolves once it ran. Every string from
// the catalog goes into the page with textContent, never as HTML.
(function () {
  "use strict";
  var AI = (window.AI = {});
  var got = { index: null, search: null, shards: {}, windows: {}, names: {} };
  window.__index = function (data) { got.index = data; };
  window.__search = function (data) { got.search = data; };
  window.__shard = function (k, n, units) { got.shards[k] = { n: n, units: units }; };
  window.__windows = function (k, records) { got.windows[k] = records; };
  window.__names = function (k, texts) { got.names[k] = texts; };
  AI.got = got;

  var loading = {};
  AI.load = function (src) {
    if (!loading[src]) {
      loading[src] = new Promise(function (resolve, reject) {
        var s = document.createElement("script");
        s.src = src;
        s.onload = function () { resolve(); };
        s.onerror = function () { delete loading[src]; reject(new Error("could not load " + src)); };
        document.head.appendChild(s);
      });
    }
    return loading[src];
  };
  AI.pad4 = function (k) { return ("000" + k).slice(-4); };

  // Zero-width and bidi controls are shown as ⟨U+XXXX⟩ (the same list as autointerp/export/html.py).
  var INVISIBLE = /[\u00AD\u061C\u180E\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]/g;
  AI.visible = function (text) {
    return String(text).replace(INVISIBLE, function (c) {
      return "\u27E8U+" + ("000" + c.charCodeAt(0).toString(16).toUpperCase()).slice(-4) + "\u27E9";
    });
  };
  // A token as shown, and whether it was changed to be seen: newline, return and tab as arrows, an
  // empty token as ∅, a token of spaces only as middle dots, invisibles as ⟨U+XXXX⟩.
  AI.shownToken = function (tok) {
    if (tok === "") return ["\u2205", true];
    if (/^ +$/.test(tok)) return [tok.replace(/ /g, "\u00B7"), true];
    var shown = AI.visible(tok.replace(/\n/g, "\u21B5").replace(/\r/g, "\u240D").replace(/\t/g, "\u21E5"));
    return [shown, shown !== tok];
  };
  // The search's words: runs of letters and digits, lower-cased (as autointerp/export/html_search.py).
  AI.words = function (text) { return String(text).toLowerCase().match(/[\p{L}\p{N}]+/gu) || []; };

  AI.el = function (tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  };
  AI.add = function (parent, tag, cls, text) { return parent.appendChild(AI.el(tag, cls, text)); };
  AI.num = function (x, digits) { return x === null || x === undefined ? "\u2013" : x.toFixed(digits); };
  AI.sig = function (x, digits) { return x === null || x === undefined ? "\u2013" : String(Number(x.toPrecision(digits))); };
  AI.unitName = function (kind, index) { return kind + " " + index; };
  AI.timing = (window.__timing = window.__timing || {});
})();
