"""The static HTML catalog in a real headless Chromium: list, search, sort, unit pages, and no XSS.

Needs Debian's `chromium` and `chromium-driver` packages and the `selenium` pip package; the browser
tests skip with the reason when they are missing. The escaping checks on the written files run anyway.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path

import pytest

from autointerp.compare import compare
from autointerp.export.html import write_html_catalog
from autointerp.records import ActivationExample, TokenWeight
from tests.fake_catalog import make_catalog, make_unit

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


# --- checks on the written files (no browser) ------------------------------------------------------


def test_json_for_script_cannot_close_the_script_element():
    text = json_for_script(["</script><b>&amp;", "\u2028"])
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == ["</script><b>&amp;", "\u2028"]


def test_written_pages_contain_no_raw_payload(catalog_dir):
    for page in [catalog_dir / "index.html", *sorted((catalog_dir / "units").glob("*.html"))]:
        html = page.read_text(encoding="utf-8")
        for payload in PAYLOADS:
            assert payload not in html, (page.name, payload)
        assert "<img src=x" not in html and "<svg onload" not in html
        # Only our own two script elements (the JSON block and catalog.js), on the index alone.
        assert html.count("<script") == (2 if page.name == "index.html" else 0), page.name


def test_tokens_are_shown_readably_and_levels_scale_with_the_unit_max():
    assert display_token("\n") == ("\u21b5", True)
    assert display_token("  ") == ("\u00b7\u00b7", True)
    assert display_token("a\tb") == ("a\u21e5b", True)
    assert display_token("<b>") == ("&lt;b&gt;", False)
    assert display_token("") == ("\u2205", True)
    assert display_token("a\u202eb\u200b") == ("a\u27e8U+202E\u27e9b\u27e8U+200B\u27e9", True)
    assert [highlight_level(a, 10.0) for a in (-1.0, 0.0, 0.01, 5.0, 10.0, 12.0)] == [0, 0, 1, 5, 10, 10]


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


def _rows(driver):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, "#unit-table tbody tr")


def _cells(driver, column: int) -> list[str]:
    from selenium.webdriver.common.by import By

    return [row.find_elements(By.TAG_NAME, "td")[column].text for row in _rows(driver)]


def test_list_renders_every_unit_and_the_comparison(browser, catalog_dir):
    from selenium.webdriver.common.by import By

    browser.get((catalog_dir / "index.html").as_uri())
    assert len(_rows(browser)) == 10
    assert "10 matching units" in browser.find_element(By.ID, "unit-count").text
    assert "simulation" in browser.find_element(By.CSS_SELECTOR, "#comparison table").text
    images = browser.find_elements(By.CSS_SELECTOR, "#comparison img")
    assert len(images) == 3  # score distributions, score vs density, activation density
    for img in images:  # the local PNGs loaded
        assert browser.execute_script("return arguments[0].naturalWidth;", img) > 100
    _assert_nothing_ran(browser)


def test_search_and_kind_filter(browser, catalog_dir):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get((catalog_dir / "index.html").as_uri())
    search = browser.find_element(By.ID, "search")
    search.send_keys("zebra crossings")
    assert _cells(browser, 2) == [UNIQUE_EXPLANATION]
    search.clear()
    search.send_keys("feature:3")
    assert [(k, i) for k, i in zip(_cells(browser, 0), _cells(browser, 1))] == [("feature", "3")]
    search.clear()
    search.send_keys(" ")  # an input event with an empty query shows everything again
    assert len(_rows(browser)) == 10
    Select(browser.find_element(By.ID, "kind-filter")).select_by_value("neuron")
    assert set(_cells(browser, 0)) == {"neuron"} and len(_rows(browser)) == 4


def test_sorting_by_score(browser, catalog_dir):
    from selenium.webdriver.common.by import By

    browser.get((catalog_dir / "index.html").as_uri())
    header = browser.find_element(By.CSS_SELECTOR, '#unit-table th[data-key="score"]')
    header.click()
    assert header.get_attribute("aria-sort") == "descending"
    scores = [float(s) for s in _cells(browser, 3)]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) > 1
    header.click()
    assert header.get_attribute("aria-sort") == "ascending"
    assert [float(s) for s in _cells(browser, 3)] == sorted(scores)
    index_header = browser.find_element(By.CSS_SELECTOR, '#unit-table th[data-key="index"]')
    index_header.click()
    assert [int(i) for i in _cells(browser, 1)] == sorted(int(i) for i in _cells(browser, 1))


def test_unit_page_highlights_tokens_and_links_neurons(browser, catalog_dir):
    from selenium.webdriver.common.by import By

    browser.get((catalog_dir / "index.html").as_uri())
    browser.find_element(By.ID, "search").send_keys("feature:4")
    browser.find_element(By.CSS_SELECTOR, "#unit-table tbody tr a").click()
    assert browser.current_url.endswith("/units/feature-4.html")
    hottest = browser.find_elements(By.CSS_SELECTOR, "#examples .toks span.h10")
    assert hottest, "the top example's peak token is highlighted at full strength"
    # The exact activation is in the title; the colour is a real, visible background.
    assert float(hottest[0].get_attribute("title").split()[0]) > 0
    colour = browser.execute_script("return getComputedStyle(arguments[0]).backgroundColor;", hottest[0])
    assert colour.startswith("rgba(255, 140, 0")
    first = browser.find_element(By.CSS_SELECTOR, "#examples .toks")
    highlighted = "".join(span.text for span in first.find_elements(By.CSS_SELECTOR, "span"))
    assert len(first.text) > len(highlighted)  # zero-activation tokens are plain, unhighlighted text
    newline = [s for s in browser.find_elements(By.CSS_SELECTOR, "#examples .toks span.ws") if s.text == "\u21b5"]
    assert newline and "'\\n'" in newline[0].get_attribute("title")
    assert browser.find_element(By.CSS_SELECTOR, "#stats svg.hist")
    links = browser.find_elements(By.CSS_SELECTOR, "#neurons a")
    assert links
    target = links[0].text
    links[0].click()
    assert browser.find_element(By.TAG_NAME, "h1").text == target


def test_hostile_text_renders_as_text_and_runs_nothing(browser, catalog_dir):
    from selenium.webdriver.common.by import By

    browser.get((catalog_dir / "index.html").as_uri())
    _assert_nothing_ran(browser)
    assert PAYLOADS[0] in browser.find_element(By.TAG_NAME, "body").text  # the source name, as text
    browser.find_element(By.ID, "search").send_keys("onerror")
    (explanation,) = _cells(browser, 2)
    assert PAYLOADS[1] in explanation and PAYLOADS[2] in explanation
    assert not browser.find_elements(By.CSS_SELECTOR, "#unit-table img, #unit-table svg")

    browser.get((catalog_dir / "units" / "feature-2.html").as_uri())
    _assert_nothing_ran(browser)
    body = browser.find_element(By.TAG_NAME, "body").text
    for payload in PAYLOADS:
        assert payload in body, payload
    assert PAYLOADS[1] in browser.title
    # No element from any payload made it into the page.
    assert not browser.find_elements(By.CSS_SELECTOR, "main img, main script, main svg:not(.hist)")


def test_invisible_characters_and_whitespace_runs_stay_visible(browser, tmp_path):
    from selenium.webdriver.common.by import By

    entries = make_catalog(n_neurons=2, n_features=2, seed=3)
    entries[0].explanations[0].text = 'wide "\\n    " indent'
    entries[1].explanations[0].text = 'wide "\\n " indent'
    bidi = entries[2]
    bidi.explanations[0].text = "admin\u202egnp.exe"
    bidi.harvest.examples[0].tokens[0] = "x\u200by"
    write_html_catalog(entries, tmp_path)
    browser.get((tmp_path / "html" / "index.html").as_uri())
    browser.find_element(By.ID, "search").send_keys("wide")
    assert set(_cells(browser, 2)) == {'wide "\\n " indent', 'wide "\\n    " indent'}
    browser.find_element(By.ID, "search").clear()
    browser.find_element(By.ID, "search").send_keys("admin")
    assert _cells(browser, 2) == ["admin\u27e8U+202E\u27e9gnp.exe"]
    page = tmp_path / "html" / "units" / f"{bidi.harvest.kind}-{bidi.harvest.index}.html"
    browser.get(page.as_uri())
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "x\u27e8U+200B\u27e9y" in body and "\u202e" not in body and "\u200b" not in body


def test_long_lists_are_paged(browser, tmp_path):
    from selenium.webdriver.common.by import By

    rng = random.Random(3)
    entries = [make_unit("feature", i, rng, score_mean=0.5, n_neurons=1) for i in range(620)]
    for e in entries:
        e.harvest.examples = e.harvest.examples[:1]
    index = write_html_catalog(entries, tmp_path)
    browser.get(index.as_uri())
    assert len(_rows(browser)) == 500
    more = browser.find_element(By.ID, "show-more")
    more.click()
    assert len(_rows(browser)) == 620 and not more.is_displayed()
    assert "No comparison" in browser.find_element(By.ID, "comparison").text
