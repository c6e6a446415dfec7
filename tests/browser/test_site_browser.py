"""The site ``make site`` builds, opened from disk in headless Chromium (``make test-site``; CI runs it
after ``make figures`` and ``make site``): every page loads every image, logs no console error and
fetches nothing from the network; the index's claims table has one row per verdict; every link
resolves, its fragment included. Screenshots of the index and of one notebook go to
``<site>/screens/``.

The site is ``$REVISAL_SITE`` (``make test-site``: build/site). Chromium and ChromeDriver are Debian's
``chromium`` and ``chromium-driver`` (``.ci/run`` installs them); where either is missing the test is
skipped, saying so, and under ``CI=true`` it fails."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from oracle_imports import in_ci, oracle

pytestmark = pytest.mark.site

ROOT = Path(__file__).resolve().parents[2]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _missing(what: str):
    message = f"{what}; install Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)"
    if in_ci():
        pytest.fail(f"CI=true: {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def site() -> Path:
    value = os.environ.get("REVISAL_SITE")
    if not value:
        pytest.skip("REVISAL_SITE is not set: make test-site checks build/site (after make figures and make site)")
    path = (ROOT / value).resolve()
    if not (path / "index.html").is_file():
        pytest.fail(f"REVISAL_SITE={value}: no index.html there; run make site (after make figures)", pytrace=False)
    return path


@pytest.fixture(scope="module")
def browser():
    webdriver = oracle("selenium.webdriver")
    binary = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    driver_path = shutil.which("chromedriver")
    if binary is None:
        _missing(f"no Chromium among {BROWSERS} on PATH")
    if driver_path is None:
        _missing("no chromedriver on PATH")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


def _pages(site: Path) -> list[Path]:
    return [site / "index.html", *sorted(p for p in site.glob("[0-9][0-9]_*.html"))]


def _open(driver, page: Path) -> None:
    driver.get(page.as_uri())
    # MathJax typesets after load: wait until its queue is empty (or it is absent)
    driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        if (!window.MathJax || !MathJax.Hub) { done(); return; }
        MathJax.Hub.Queue(() => done());
    """)


def _requests(driver) -> list[str]:
    """The URLs the page asked for (Chromium's performance log)."""
    import json

    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def test_every_page_loads_its_images_without_errors_or_network(site, browser):
    pages = _pages(site)
    assert len(pages) >= 2, f"{site}: expected the index and the notebooks' pages"
    for page in pages:
        browser.get_log("browser"), browser.get_log("performance")  # drop what an earlier page logged
        _open(browser, page)
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.currentSrc.slice(0, 80), i.complete, i.naturalWidth]);")
        broken = [src for src, complete, width in images if not (complete and width > 0)]
        assert not broken, f"{page.name}: {len(broken)} of {len(images)} images did not load: {broken[:5]}"
        errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, f"{page.name}: console errors: {errors[:5]}"
        remote = [u for u in _requests(browser) if urlsplit(u).scheme not in ("file", "data", "blob", "about")]
        assert not remote, f"{page.name}: fetched from the network: {remote[:5]}"


def test_claims_table_has_a_row_per_verdict(site, browser):
    figures = site / "figures"  # make site copies the verdict tables beside the gallery
    expected = sum(len(list(csv.DictReader(p.open(newline="")))) for p in sorted(figures.glob("verdicts_*.csv")))
    _open(browser, site / "index.html")
    rows = browser.execute_script("""
        const heading = document.getElementById('Claims');
        const table = heading && heading.closest('.jp-Cell').querySelector('table');
        return table ? table.tBodies[0].rows.length : -1;""")
    assert rows == expected > 0, f"index.html: the claims table has {rows} rows, the verdict tables of {figures} {expected}"


def test_every_link_resolves(site, browser):
    ids: dict[Path, set[str]] = {}
    for page in _pages(site):
        _open(browser, page)
        links = browser.execute_script("return Array.from(document.links).map(a => a.href);")
        ids.setdefault(page, set(browser.execute_script(
            "return Array.from(document.querySelectorAll('[id]')).map(e => e.id);")))
        for href in links:
            url = urlsplit(href)
            if url.scheme in ("http", "https", "mailto"):
                continue
            assert url.scheme == "file", f"{page.name}: link {href}"
            target = Path(unquote(url.path))
            assert target.is_file(), f"{page.name}: link to {target}, which does not exist"
            if url.fragment and target.suffix == ".html":
                if target not in ids:
                    _open(browser, target)
                    ids[target] = set(browser.execute_script(
                        "return Array.from(document.querySelectorAll('[id]')).map(e => e.id);"))
                    _open(browser, page)
                # nbconvert writes a heading's id percent-encoded; a browser matches either form
                assert {url.fragment, unquote(url.fragment)} & ids[target], \
                    f"{page.name}: link to #{url.fragment} of {target.name}, no such id"


def test_screenshots(site, browser):
    screens = site / "screens"
    screens.mkdir(exist_ok=True)
    notebook = sorted(site.glob("[0-9][0-9]_*.html"))[0]
    for page in (site / "index.html", notebook):
        _open(browser, page)
        path = screens / f"{page.stem}.png"
        assert browser.save_screenshot(str(path)) and path.stat().st_size > 10_000, path
