"""`echo-splade ui`'s page in a real browser: headless Chromium (Debian's chromium + chromium-driver, driven by
selenium) loads the page against the real OpenSearch node with the sample corpus encoded by
echo-splade-bert-tiny, types a query, and the rendered DOM shows three columns of hits, matched-term chips
(expansions marked) and the query vector; a screenshot is saved (``ECHO_SPLADE_SCREENSHOT=PATH`` keeps a
copy, how docs/search-page.png was made)."""

from __future__ import annotations

import os
import re
import shutil

import httpx
import pytest
from _sample_index import build_sample_index
from _servers import ServerThread

from echo_splade.connector.proxy import SearchPage

QUERY = "how much sleep do adults need"


@pytest.fixture(scope="module")
def page_server(backend, bert_tiny, sample_vectors, module_index_name):
    docs, features = sample_vectors
    build_sample_index(backend, module_index_name, bert_tiny, docs, features)
    page = SearchPage(backend, [module_index_name], mode="llm", encoder=bert_tiny, k=8)
    with ServerThread(page.app) as server:
        yield server, module_index_name


def test_page_is_self_contained_and_the_api_checks_input(page_server):
    server, alias = page_server
    html = httpx.get(server.url + "/").text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "the page must load nothing from elsewhere"
    assert "@import" not in html and "url(" not in html
    r = httpx.get(server.url + "/api/search", params={"q": "   ", "alias": alias})
    assert r.status_code == 400 and "empty" in r.json()["error"]
    r = httpx.get(server.url + "/api/search", params={"q": QUERY, "alias": "not-served"})
    assert r.status_code == 400 and "unknown alias" in r.json()["error"]
    data = httpx.get(server.url + "/api/search", params={"q": QUERY, "alias": alias}, timeout=60).json()
    assert set(data["columns"]) == {"bm25", "sparse", "hybrid"}
    assert all("terms" not in h for h in data["columns"]["bm25"])
    terms = [t for h in data["columns"]["sparse"] for t in h["terms"]]
    assert any(t["expansion"] for t in terms) and any(not t["expansion"] for t in terms)
    for t in terms:
        assert t["product"] == pytest.approx(t["query_weight"] * t["doc_weight"])


def _driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail("Debian's chromium and chromium-driver are needed: run `bash scripts/setup.sh`")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1440,1000",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=options)


def test_the_page_in_headless_chromium(page_server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    server, alias = page_server
    browser = _driver()
    try:
        browser.get(server.url + "/")
        wait = WebDriverWait(browser, 60)
        wait.until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
        assert browser.find_element(By.ID, "alias").get_attribute("value") == alias
        box = browser.find_element(By.ID, "q")
        assert browser.switch_to.active_element == box  # autofocus: type right away
        box.send_keys(QUERY, Keys.ENTER)
        wait.until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-state") in ("done", "error"))
        status = browser.find_element(By.ID, "status").text
        assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "done", status

        columns = {c.get_attribute("id"): c for c in browser.find_elements(By.CSS_SELECTOR, "main > section.col")}
        assert list(columns) == ["col-bm25", "col-sparse", "col-hybrid"]
        for name, col in columns.items():
            hits = col.find_elements(By.CSS_SELECTOR, ".hit")
            assert len(hits) >= 5, name
            first = hits[0]
            assert first.find_element(By.CSS_SELECTOR, ".title").text.endswith("How much sleep adults need")
            assert first.find_element(By.CSS_SELECTOR, ".snippet").text
            assert re.fullmatch(r"score \d+\.\d{4}", first.find_element(By.CSS_SELECTOR, ".score").text)
        assert not columns["col-bm25"].find_elements(By.CSS_SELECTOR, ".chip")  # BM25 has no expansion terms
        for name in ("col-sparse", "col-hybrid"):
            chips = columns[name].find_elements(By.CSS_SELECTOR, ".hit .chip")
            assert chips, name
            labels = [c.find_element(By.CSS_SELECTOR, ".label").text for c in chips]
            assert "sleep" in labels
            assert columns[name].find_elements(By.CSS_SELECTOR, ".hit .chip.expansion"), "no expansion term marked"
            detail = chips[0].find_element(By.CSS_SELECTOR, "small").text
            assert re.fullmatch(r"\d+(\.\d+)?×\d+(\.\d+)?", detail), detail
            widths = [c.find_element(By.CSS_SELECTOR, ".bar").get_attribute("style") for c in chips]
            assert all("width" in w for w in widths)
        qvec = [
            c.find_element(By.CSS_SELECTOR, ".label").text
            for c in browser.find_elements(By.CSS_SELECTOR, "#qvec-terms .chip")
        ]
        assert "sleep" in qvec and len(qvec) >= 5
        assert browser.find_elements(By.CSS_SELECTOR, "#qvec-terms .chip.expansion")

        shot = tmp_path / "search-page.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 20_000
        keep = os.environ.get("ECHO_SPLADE_SCREENSHOT")
        if keep:
            shutil.copyfile(shot, keep)

        # the keyboard: Escape leaves the box, j moves into the hits, 2 jumps to the sparse column, / back to the box
        box.send_keys(Keys.ESCAPE)
        body = browser.find_element(By.TAG_NAME, "body")
        body.send_keys("j")
        assert "hit" in browser.switch_to.active_element.get_attribute("class")
        body.send_keys("2")
        active = browser.switch_to.active_element
        assert active == columns["col-sparse"].find_elements(By.CSS_SELECTOR, ".hit")[0]
        active.send_keys("/")
        assert browser.switch_to.active_element == box
        box.send_keys(Keys.ESCAPE)  # Escape in a search box clears it (the browser's own behaviour)

    finally:
        browser.quit()
