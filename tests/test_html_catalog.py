"""The static HTML catalog in a real headless Chromium: list, search, sort, unit view, no XSS, and a
synthetic 100k-unit catalog (written directly as the export's data files) for the virtualised list.

Needs Debian's `chromium` and `chromium-driver` packages and the `selenium` pip package; the browser
tests skip with the reason when they are missing (and fail when AUTOINTERP_REQUIRE_BROWSER is set).
The checks on the written files run anyway. Load times are printed (run with -s), never asserted.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from autointerp.compare import compare
from autointerp.export.html import (
    DATA_DIR,
    SHARD_SIZE,
    WINDOW_SHARD_SIZE,
    unit_shard_path,
    window_shard_path,
    write_html_catalog,
    write_script,
)
from autointerp.export.html_search import SearchIndex, words
from autointerp.export.html_units import QUANT
from autointerp.records import ActivationExample, TokenWeight
from tests.fake_catalog import make_catalog, make_unit
from tests.html_data import read_script, read_units

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Each payload sets a global flag (or opens an alert) if the browser ever runs it.
PAYLOADS = [
    "<script>window.__pwned = 1; alert(1)</script>",
    '"><img src=x onerror="window.__pwned = 2; alert(1)">',
    "</script><script>window.__pwned = 3</script>",
    "'><svg onload=window.__pwned=4>",
]
UNIQUE_EXPLANATION = "zebra crossings in street names"
WAIT_S = 20  # how long a test waits for the page before failing (not a performance claim)


def _hostile_catalog():
    entries = make_catalog(n_neurons=4, n_features=6, seed=1)
    feature = next(e for e in entries if e.harvest.kind == "feature" and e.harvest.index == 2)
    feature.explanations[0].text = "quotes like " + PAYLOADS[1] + " and " + PAYLOADS[2]
    feature.harvest.promoted_tokens.append(TokenWeight(token=PAYLOADS[3], weight=3.0))
    tokens = ["x", " =", ' "'] + PAYLOADS + ["\n", "end"]
    feature.harvest.examples.append(
        ActivationExample(
            window_id=999_999,
            tokens=tokens,
            activations=[0.0, 0.0, 0.0, 9.0, 8.0, 7.0, 6.0, 1.0, 0.0],
            split="explain",
            sampling="top",
        )
    )
    feature.source = "builtin/" + PAYLOADS[0]
    neuron = next(e for e in entries if e.harvest.kind == "neuron" and e.harvest.index == 1)
    neuron.explanations[0].text = UNIQUE_EXPLANATION
    return entries


@pytest.fixture(scope="module")
def catalog_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("catalog")
    entries = _hostile_catalog()
    write_html_catalog(entries, out, report=compare(entries, n_resamples=200))
    return out / "html"


def _windows(html_dir: Path) -> list[list]:
    records = []
    for path in sorted((html_dir / DATA_DIR / "windows").glob("windows_*.js")):
        name, (shard, chunk) = read_script(path)
        assert name == "__windows" and path == window_shard_path(html_dir, shard)
        records += chunk
    return records


# --- checks on the written files (no browser) ------------------------------------------------------


def test_pages_hold_no_corpus_text_and_only_our_scripts(catalog_dir):
    pages = sorted(catalog_dir.glob("*.html"))
    assert [p.name for p in pages] == ["index.html", "inspect.html", "unit.html"]
    assert not (catalog_dir / "units").exists(), "no page per unit"
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert all(p not in html for p in PAYLOADS) and "<img src=x" not in html and "<svg onload" not in html
        sources = [part.split('"')[1] for part in html.split("<script src=")[1:]]
        assert html.count("<script") == len(sources) and all(s.startswith("catalog-") for s in sources), page.name
    assert "builtin/&lt;script&gt;window.__pwned" in (catalog_dir / "index.html").read_text()  # escaped


def test_unit_shards_keep_what_the_unit_view_shows(catalog_dir):
    units = read_units(catalog_dir)
    windows = _windows(catalog_dir)
    feature = next(u for u in units if u["kind"] == "feature" and u["index"] == 2)
    assert feature["source"] == "builtin/" + PAYLOADS[0]  # data stays data; the browser escapes it
    assert PAYLOADS[1] in feature["explanations"][feature["shown"]]["text"]
    assert [PAYLOADS[3], 3.0] in feature["promoted"]
    top = next(g for g in feature["groups"] if g[:2] == ["top", "explain"])
    hostile = next(ex for ex in top[3] if windows[ex[0]][0] == 999_999)
    assert windows[hostile[0]][1] == [0, ["x", " =", ' "', *PAYLOADS, "\n", "end"]]
    # [window, start, length, every level] (active on 5 of its 9 tokens), levels relative to the unit's max
    scale = QUANT / feature["unit_max"]
    assert hostile[1:] == [0, 9, [round(a * scale) for a in (0, 0, 0, 9.0, 8.0, 7.0, 6.0, 1.0, 0)]]
    sparse = next(ex for ex in top[3] if not isinstance(ex[3], list))  # [..., position, level, ...]
    assert len(sparse) % 2 == 1 and all(level for level in sparse[4::2])
    neuron_links = feature["neurons"]
    assert neuron_links and all(units[link[2]]["kind"] == "neuron" for link in neuron_links if link[2] is not None)
    name, (shard, names) = read_script(catalog_dir / DATA_DIR / "names" / "names_0000.js")
    assert name == "__names" and shard == 0 and len(names) == len(units)
    assert names == [u["explanations"][u["shown"]]["text"] for u in units]  # what a feature shows of its neurons
    assert {s["scorer"] for s in feature["scores"]} == {"simulation", "detection", "fuzzing"}
    assert any(s["parts"] for s in feature["scores"])  # the per-stratum parts


def test_windows_are_written_once_and_disagreeing_ones_apart(tmp_path):
    rng = random.Random(3)
    entries = [make_unit("feature", i, rng, score_mean=0.5, n_neurons=1) for i in range(3)]
    shared = entries[0].harvest.examples[0]
    entries[1].harvest.examples.append(shared.model_copy(update={"sampling": "random"}))
    write_html_catalog(entries, tmp_path)  # make_unit gives every unit window ids 0.. with other tokens
    windows = _windows(tmp_path / "html")
    ids = [w[0] for w in windows]
    assert ids.count(shared.window_id) == 3  # one per unit: their tokens disagree
    units = read_units(tmp_path / "html")
    used = {ex[0] for u in units[:2] for g in u["groups"] for ex in g[3] if windows[ex[0]][0] == shared.window_id}
    assert len(used) == 2, "unit 1's copy of unit 0's window points at unit 0's window, not a new one"


def test_units_read_again_for_the_export_keep_their_shown_explanation(tmp_path):
    from autointerp.export import export_catalog

    entries = make_catalog(n_neurons=2, n_features=2, seed=2)
    export_catalog(entries, tmp_path, full_entries=lambda: [e.model_copy(deep=True) for e in entries])
    units = read_units(tmp_path / "html")
    shown = {(u["kind"], u["index"]): u["explanations"][u["shown"]]["text"] for u in units}
    assert shown == {(e.harvest.kind, e.harvest.index): e.explanations[-1].text for e in entries}


def test_examples_active_on_most_tokens_keep_every_level(tmp_path):
    entries = make_catalog(n_neurons=1, n_features=1, seed=2)
    neuron = entries[0].harvest
    dense = neuron.examples[0]
    dense.activations = [-0.01 * (i + 1) for i in range(len(dense.tokens))]  # GELU-like: never exactly 0
    dense.activations[3] = neuron.stats.max_activation
    write_html_catalog(entries, tmp_path)
    unit = next(u for u in read_units(tmp_path / "html") if u["kind"] == neuron.kind)
    (stored,) = [ex for g in unit["groups"] for ex in g[3] if len(ex) == 4 and isinstance(ex[3], list)]
    scale = QUANT / neuron.stats.max_activation
    assert stored[2:] == [len(dense.tokens), [round(a * scale) for a in dense.activations]]


def test_search_index_splits_words_like_the_browser():
    assert words("The token ' import' (2x), naïve_case") == ["the", "token", "import", "2x", "naïve", "case"]
    index = SearchIndex()
    index.add(5, "import os")
    index.add(2, "Import this")
    index.add(9, None)
    data = index.data()
    assert data["terms"] == ["import", "os", "this"]
    assert data["postings"][0] == [2, 3]  # uids 2 and 5, delta-encoded


# --- the browser ---------------------------------------------------------------------------------


def _chromium_missing_reason() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    return None


@pytest.fixture(scope="module")
def browser():
    reason = _chromium_missing_reason()
    if reason and os.environ.get("AUTOINTERP_REQUIRE_BROWSER"):
        pytest.fail(f"AUTOINTERP_REQUIRE_BROWSER is set but {reason}")
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="autointerp-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1280,1600",
    ):
        options.add_argument(flag)
    options.unhandled_prompt_behavior = "ignore"  # leave alerts open so the test can see them
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _assert_nothing_ran(driver):
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018
    assert driver.execute_script("return window.__pwned;") is None


def _wait(driver, condition, what: str):
    """Until `condition(driver)` holds. An element the page replaced while the condition read it
    (the app re-renders a view as it loads) means "not yet", not a failure."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, WAIT_S, ignored_exceptions=(StaleElementReferenceException,))
    return wait.until(lambda d: condition(d), message=what)


def _open_list(driver, html_dir: Path) -> float:
    """Open the front page; return when (ms after navigation start) the list was usable."""
    driver.get((html_dir / "index.html").as_uri())
    return _wait(driver, lambda d: d.execute_script("return window.__timing && window.__timing.indexReady;"), "list")


def _open_unit(driver, html_dir: Path, uid: int) -> tuple[float, float]:
    """Open (or move the unit view to) unit `uid`; return how long the view took to build from reading
    the address, and when it was built after the page's navigation start, in ms."""
    url = (html_dir / "unit.html").as_uri() + f"#{uid}"
    if driver.current_url.split("#")[0] == url.split("#")[0]:
        driver.execute_script("location.hash = arguments[0];", str(uid))
    else:
        driver.get(url)
    timing = _wait(
        driver,
        lambda d: d.execute_script(
            "var t = window.__timing && window.__timing.unit; return t && t.uid === arguments[0] && t;", uid
        ),
        f"unit {uid}",
    )
    return timing["ms"], timing["at"]


def _rows(driver):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, "#unit-list .vrow")


def _cells(driver, column: int) -> list[str]:
    from selenium.webdriver.common.by import By

    return [row.find_elements(By.CLASS_NAME, "vcell")[column].text for row in _rows(driver)]


def _count(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, "unit-count").text


def _type(driver, element_id: str, text: str, expect_count: str):
    """Type into a control and wait for the list to show `expect_count` matching units."""
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.ID, element_id)
    box.clear()
    box.send_keys(text)
    _wait(driver, lambda d: _count(d).startswith(expect_count + " matching"), f"{expect_count} units for {text!r}")


def test_list_renders_every_unit_and_the_comparison(browser, catalog_dir):
    from selenium.webdriver.common.by import By

    _open_list(browser, catalog_dir)
    assert len(_rows(browser)) == 10
    assert _count(browser).startswith("10 matching units")
    assert "simulation" in browser.find_element(By.CSS_SELECTOR, "#comparison table").text
    images = browser.find_elements(By.CSS_SELECTOR, "#comparison img")
    assert len(images) == 3  # score distributions, score vs density, activation density
    for img in images:  # the local PNGs loaded
        assert browser.execute_script("return arguments[0].naturalWidth;", img) > 100
    _assert_nothing_ran(browser)


def test_search_kind_and_score_filters(browser, catalog_dir):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _open_list(browser, catalog_dir)
    _type(browser, "search", "zebra cross", "1")  # every word, each as a prefix
    assert _cells(browser, 2) == [UNIQUE_EXPLANATION]
    _type(browser, "search", "feature:3", "1")
    assert list(zip(_cells(browser, 0), _cells(browser, 1))) == [("feature", "3")]
    _type(browser, "search", "zebra nothing", "0")
    _type(browser, "search", " ", "10")  # an empty query shows everything again
    Select(browser.find_element(By.ID, "kind-filter")).select_by_value("neuron")
    _wait(browser, lambda d: _count(d).startswith("4 matching"), "neurons only")
    assert set(_cells(browser, 0)) == {"neuron"}
    Select(browser.find_element(By.ID, "kind-filter")).select_by_value("")
    scores = [float(s) for s in _cells(browser, 3) if s != "\u2013"]
    cut = sorted(scores)[-3]
    _type(browser, "min-score", f"{cut - 0.0005:.4f}", "3")  # the list shows 3 decimals of 4 digits
    assert all(float(s) >= cut for s in _cells(browser, 3))


def test_sorting_by_score(browser, catalog_dir):
    from selenium.webdriver.common.by import By

    _open_list(browser, catalog_dir)
    header = browser.find_element(By.CSS_SELECTOR, '#unit-list .vhead [data-key="score0"]')
    assert header.text == "simulation"
    header.click()
    assert header.get_attribute("aria-sort") == "descending"
    scores = [float(s) for s in _cells(browser, 3)]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) > 1
    header.click()
    assert header.get_attribute("aria-sort") == "ascending"
    assert [float(s) for s in _cells(browser, 3)] == sorted(scores)
    browser.find_element(By.CSS_SELECTOR, '#unit-list .vhead [data-key="index"]').click()
    indexes = [int(i) for i in _cells(browser, 1)]
    assert indexes == sorted(indexes)


def test_unit_view_highlights_tokens_and_links_neurons(browser, catalog_dir):
    from selenium.webdriver.common.by import By

    _open_list(browser, catalog_dir)
    _type(browser, "search", "feature:4", "1")
    browser.find_element(By.CSS_SELECTOR, "#unit-list .vrow a").click()
    _wait(browser, lambda d: d.execute_script("return window.__timing.unit;"), "the unit view")
    assert browser.find_element(By.TAG_NAME, "h1").text == "feature 4"
    hottest = browser.find_elements(By.CSS_SELECTOR, "#examples .toks span.h10")
    assert hottest, "the top example's peak token is highlighted at full strength"
    # The activation is in the title; the colour is a real, visible background.
    assert float(hottest[0].get_attribute("title").split()[0]) > 0
    colour = browser.execute_script("return getComputedStyle(arguments[0]).backgroundColor;", hottest[0])
    assert colour.startswith("rgba(255, 140, 0")
    first = browser.find_element(By.CSS_SELECTOR, "#examples .toks")
    highlighted = "".join(span.text for span in first.find_elements(By.CSS_SELECTOR, "span"))
    assert len(first.text) > len(highlighted)  # zero-activation tokens are plain, unhighlighted text
    newline = [s for s in browser.find_elements(By.CSS_SELECTOR, "#examples .toks span.ws") if s.text == "\u21b5"]
    assert newline and '"\\n"' in newline[0].get_attribute("title")
    assert browser.find_elements(By.CSS_SELECTOR, "#stats svg.hist rect")
    assert "parts (per stratum)" in browser.find_element(By.ID, "scores").text
    assert browser.find_elements(By.CSS_SELECTOR, "#logits .chip.up")
    links = browser.find_elements(By.CSS_SELECTOR, "#neurons a")
    assert links
    target = links[0].text
    assert "in code or prose" in browser.find_element(By.ID, "neurons").text  # the neurons' explanations
    links[0].click()
    _wait(browser, lambda d: d.find_element(By.TAG_NAME, "h1").text == target, "the neuron's view")
    browser.find_element(By.ID, "prev").click()  # neurons come after the features
    _wait(browser, lambda d: d.find_element(By.TAG_NAME, "h1").text != target, "the previous unit")


def test_hostile_text_renders_as_text_and_runs_nothing(browser, catalog_dir):
    from selenium.webdriver.common.by import By

    _open_list(browser, catalog_dir)
    _assert_nothing_ran(browser)
    assert PAYLOADS[0] in browser.find_element(By.TAG_NAME, "body").text  # the source name, as text
    _type(browser, "search", "onerror", "1")
    (explanation,) = _cells(browser, 2)
    assert PAYLOADS[1] in explanation and PAYLOADS[2] in explanation
    assert not browser.find_elements(By.CSS_SELECTOR, "#unit-list img, #unit-list svg")
    uid = int(browser.find_element(By.CSS_SELECTOR, "#unit-list .vrow a").get_attribute("href").split("#")[1])

    _open_unit(browser, catalog_dir, uid)
    _assert_nothing_ran(browser)
    body = browser.find_element(By.TAG_NAME, "body").text
    for payload in PAYLOADS:
        assert payload in body, payload
    assert PAYLOADS[1] in browser.title
    # No element from any payload made it into the page.
    assert not browser.find_elements(By.CSS_SELECTOR, "#unit img, #unit script, #unit svg:not(.hist)")


def test_invisible_characters_and_whitespace_runs_stay_visible(browser, tmp_path):
    from selenium.webdriver.common.by import By

    entries = make_catalog(n_neurons=2, n_features=2, seed=3)
    entries[0].explanations[0].text = 'wide "\\n    " indent'
    entries[1].explanations[0].text = 'wide "\\n " indent'
    bidi = entries[2]
    bidi.explanations[0].text = "admin\u202egnp.exe"
    bidi.harvest.examples[0].tokens[0] = "x\u200by"
    write_html_catalog(entries, tmp_path)
    html_dir = tmp_path / "html"
    _open_list(browser, html_dir)
    _type(browser, "search", "wide", "2")
    assert set(_cells(browser, 2)) == {'wide "\\n " indent', 'wide "\\n    " indent'}
    _type(browser, "search", "admin", "1")
    assert _cells(browser, 2) == ["admin\u27e8U+202E\u27e9gnp.exe"]
    uid = int(browser.find_element(By.CSS_SELECTOR, "#unit-list .vrow a").get_attribute("href").split("#")[1])
    _open_unit(browser, html_dir, uid)
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "x\u27e8U+200B\u27e9y" in body and "\u202e" not in body and "\u200b" not in body


def test_a_missing_unit_says_so(browser, catalog_dir):
    from selenium.webdriver.common.by import By

    browser.get((catalog_dir / "unit.html").as_uri() + "#4000")
    _wait(browser, lambda d: "could not be shown" in d.find_element(By.ID, "unit").text, "an error message")


def test_inspect_page_documents_the_command(browser, catalog_dir):
    from selenium.webdriver.common.by import By

    browser.get((catalog_dir / "index.html").as_uri())
    browser.find_element(By.LINK_TEXT, "Which units fire on my text?").click()
    text = browser.find_element(By.TAG_NAME, "main").text
    assert 'autointerp inspect path/to/catalog.db "The text to look at"' in text
    assert "autointerp search path/to/catalog.db" in text


# --- a synthetic catalog of 100k units, written as the export writes its data ---------------------

SYNTHETIC_UNITS = 100_000
TOPICS = ["python code", "french text", "closing brackets", "dates", "legal prose", "names of cities"]


def _synthetic_unit(uid: int, explanation: str) -> dict:
    kind, index = ("neuron", uid) if uid < 10_000 else ("feature", uid - 10_000)
    levels = [3, uid % 1000 + 1, 4, 500]
    return {
        "uid": uid, "kind": kind, "index": index, "source": "synthetic",
        "explanations": [{"text": explanation, "explainer": "synthetic", "model": None, "prompt": None}],
        "shown": 0,
        "scores": [{"scorer": "simulation", "simulator": "synthetic", "value": (uid % 997) / 997, "error": None,
                    "parts": [["top", 0.5], ["random", 0.1]]}],
        "stats": {"density": 0.01, "active": 100, "seen": 10_000, "max": 2.0, "mean": 0.02, "mean_active": 0.4},
        "hist": [[0.01, 0.1, 1.0], [40, 60]],
        "promoted": [[" the", 0.5]], "suppressed": [], "neurons": [],
        "unit_max": 2.0,
        "groups": [["top", "explain", 12, [[uid % 200, 0, 8, *levels]]]],
        "traces": [],
    }  # fmt: skip


def write_synthetic_catalog(html_dir: Path, n: int) -> None:
    """The data files of an n-unit catalog (explanations, scores, one example per unit on 200 shared
    windows), in the layout the export writes; the pages and static files come from a real export."""
    rng = random.Random(0)
    explanations = [f"{TOPICS[u % len(TOPICS)]} variant {u}" for u in range(n)]
    explanations[n - 7] = "needle in the haystack"
    search = SearchIndex()
    for uid, text in enumerate(explanations):
        search.add(uid, text)
    write_script(html_dir / DATA_DIR / "search.js", "__search", search.data())
    scores = [(u % 997) / 997 for u in range(n)]
    index = {
        "n": n, "shard_size": SHARD_SIZE, "kinds": ["feature", "neuron"], "sources": ["synthetic"],
        "scorers": ["simulation"], "kind": [1 if u < 10_000 else 0 for u in range(n)], "source": [0] * n,
        "index": [u if u < 10_000 else u - 10_000 for u in range(n)], "explanation": explanations,
        "scores": [scores], "density": [round(rng.random() * 0.1, 4) for _ in range(n)], "max": [2.0] * n,
    }  # fmt: skip
    write_script(html_dir / DATA_DIR / "index.js", "__index", index)
    for shard in range((n + SHARD_SIZE - 1) // SHARD_SIZE):
        uids = range(shard * SHARD_SIZE, min(n, (shard + 1) * SHARD_SIZE))
        write_script(unit_shard_path(html_dir, shard), "__shard", shard, n,
                     [_synthetic_unit(u, explanations[u]) for u in uids])  # fmt: skip
    windows = [[w, [0, [f" w{w}", " and", " <b>", ' "q"', "\n", " x", " y", " z"]]] for w in range(200)]
    for shard in range(0, 200, WINDOW_SHARD_SIZE):
        write_script(window_shard_path(html_dir, shard // WINDOW_SHARD_SIZE), "__windows",
                     shard // WINDOW_SHARD_SIZE, windows[shard : shard + WINDOW_SHARD_SIZE])  # fmt: skip


@pytest.fixture(scope="module")
def big_catalog(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("big")
    write_html_catalog(make_catalog(n_neurons=1, n_features=1), out)
    html_dir = out / "html"
    shutil.rmtree(html_dir / DATA_DIR)
    started = time.perf_counter()
    write_synthetic_catalog(html_dir, SYNTHETIC_UNITS)
    size = sum(p.stat().st_size for p in (html_dir / DATA_DIR).rglob("*"))
    print(f"\nsynthetic {SYNTHETIC_UNITS}-unit catalog written in {time.perf_counter() - started:.1f} s, "
          f"data {size / 1e6:.1f} MB")  # fmt: skip
    return html_dir


@pytest.mark.slow
def test_a_100k_unit_catalog_lists_searches_and_opens_units(browser, big_catalog):
    from selenium.webdriver.common.by import By

    ready_ms = _open_list(browser, big_catalog)
    assert _count(browser).startswith(f"{SYNTHETIC_UNITS} matching")
    assert 0 < len(_rows(browser)) < 200, "only the rows in view are in the page"
    header = browser.find_element(By.CSS_SELECTOR, '#unit-list .vhead [data-key="score0"]')
    started = time.perf_counter()
    header.click()
    sort_ms = 1000 * (time.perf_counter() - started)
    assert float(_cells(browser, 3)[0]) == pytest.approx(996 / 997, abs=1e-3)
    body = browser.find_element(By.CSS_SELECTOR, "#unit-list .vbody")
    browser.execute_script("arguments[0].scrollTop = arguments[0].scrollHeight;", body)
    _wait(browser, lambda d: _cells(d, 3) and _cells(d, 3)[-1] == "0.000", "the end of the sorted list")
    assert 0 < len(_rows(browser)) < 200
    _type(browser, "search", "needle hay", "1")
    assert _cells(browser, 2) == ["needle in the haystack"]
    _type(browser, "search", "french", str(SYNTHETIC_UNITS // len(TOPICS) + 1))
    unit_ms = [_open_unit(browser, big_catalog, uid) for uid in (0, SYNTHETIC_UNITS - 7, 54_321, 54_322)]
    load_ms = unit_ms[0][1]
    assert browser.find_element(By.TAG_NAME, "h1").text == "feature 44322"
    assert "<b>" in browser.find_element(By.ID, "examples").text  # a token, as text
    print(f"\n100k units: list usable {ready_ms:.0f} ms after navigation start, sort by score {sort_ms:.0f} ms, "
          f"unit views {', '.join(f'{ms:.0f}' for ms, _ in unit_ms)} ms, the first shown {load_ms:.0f} ms after "
          "navigation start")  # fmt: skip


def test_long_lists_are_virtualised(browser, tmp_path):
    rng = random.Random(3)
    entries = [make_unit("feature", i, rng, score_mean=0.5, n_neurons=1) for i in range(250)]
    for e in entries:
        e.harvest.examples = e.harvest.examples[:1]
    index = write_html_catalog(entries, tmp_path)
    _open_list(browser, index.parent)
    assert _count(browser).startswith("250 matching")
    assert 0 < len(_rows(browser)) < 200
    first = _cells(browser, 1)[0]
    browser.execute_script("var b = document.querySelector('#unit-list .vbody'); b.scrollTop = b.scrollHeight;")
    _wait(browser, lambda d: _cells(d, 1)[-1] == "249", "the last row")
    assert first == "0" and 0 < len(_rows(browser)) < 200


def test_family_tree_links_parents_and_children_and_escapes_their_explanations(browser, tmp_path):
    from selenium.webdriver.common.by import By

    from autointerp.analysis.family import attach_family
    from autointerp.records import Explanation, UnitLink
    from autointerp.store import open_store
    from autointerp.store.links import replace_links
    from tests.fake_catalog import SOURCE

    small = make_catalog(n_neurons=0, n_features=2, seed=4)
    big = [e.model_copy(deep=True, update={"source": "big"}) for e in small]  # "big" sorts first: uids 0, 1

    def link(child: int, parent: int, relation: str) -> UnitLink:
        return UnitLink(child_source="big", child_index=child, parent_source=SOURCE, parent_index=parent,
                        parent_size=8, relation=relation, decoder_cosine=0.875, activation_correlation=0.5)  # fmt: skip

    with open_store(tmp_path / "c.db") as store:
        store.put_explanations(
            SOURCE, [Explanation(unit_kind="feature", unit_index=0, text=PAYLOADS[1], explainer="x")]
        )
        store.put_explanations("big", [Explanation(unit_kind="feature", unit_index=1, text=PAYLOADS[0], explainer="x")])
        replace_links(store.db, [link(1, 0, "cosine"), link(1, 0, "correlation"), link(0, 7, "cosine")])
        entries = list(attach_family(big + small, store))
    write_html_catalog(entries, tmp_path)
    html_dir = tmp_path / "html"

    _open_unit(browser, html_dir, 1)
    parents = browser.find_element(By.ID, "parents")
    assert f"feature 0 of {SOURCE} cosine+correlation 0.875 0.500 {PAYLOADS[1]}" in parents.text
    parents.find_element(By.TAG_NAME, "a").click()
    _wait(browser, lambda d: d.execute_script("return window.__timing.unit.uid;") == 2, "the parent's view")
    children = browser.find_element(By.ID, "children").text
    assert "feature 1 of big" in children and PAYLOADS[0] in children
    _open_unit(browser, html_dir, 0)
    parents = browser.find_element(By.ID, "parents")
    assert "feature 7 of" in parents.text and "not explained" in parents.text
    assert not parents.find_elements(By.TAG_NAME, "a")  # not in this catalog: nothing to open
    _assert_nothing_ran(browser)
    assert not browser.find_elements(By.CSS_SELECTOR, "#unit img, #unit script, #unit svg:not(.hist)")
