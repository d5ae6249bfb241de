"""The report page in a real browser: the distribution's headless Chromium, driven by selenium through the
system chromedriver, opens index.html from disk, renders the tables and plots, opens a user's drill-down,
leaves untrusted texts inert, and keeps a screenshot as a test artifact (tests/artifacts/, git-ignored).

Skipped only where no Chromium is installed; CI installs `chromium` and `chromium-driver` (.ci/run)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.report.fake_project import make_plan, write_prepared, write_runs
from tests.report.test_html import PAYLOAD
from ur4rec.report.build import build_report

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def chromium() -> tuple[str, str] | None:
    browser = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium")
                    if p and Path(p).exists()), None)
    driver = next((p for p in (shutil.which("chromedriver"), "/usr/bin/chromedriver") if p and Path(p).exists()), None)
    return (browser, driver) if browser and driver else None


def open_browser(width: int = 1400, height: int = 1600):
    """A headless Chromium from the system packages (never a downloaded one)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = chromium()
    if found is None:
        pytest.skip("no chromium + chromedriver installed (apt-get install -y chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(found[1]), options=options)


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    plan = make_plan(backbones=("prm", "gru4rec"), variants=("control", "llm", "kar", "ur4rec"), seeds=(0, 1))
    write_prepared(root, n_users=8, preference=lambda u: f"User {u} likes slow films. {PAYLOAD}",
                   title=lambda i: f"Movie {i} {PAYLOAD}" if i == 7 else f"Movie {i} (1999)")
    write_runs(root, plan)
    build_report(plan, root=root)
    return root / "report" / "toy" / "index.html"


def test_the_page_opens_from_disk_with_its_tables_plots_and_a_users_drilldown(page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = open_browser()
    try:
        driver.get(page.as_uri())
        wait = WebDriverWait(driver, 30)
        wait.until(lambda d: d.execute_script("return document.body.dataset.ready === '1'"))
        # the main table, with the control's and UR4Rec's rows
        table = driver.find_element(By.CSS_SELECTOR, "#main-results table")
        rows = [r.text for r in table.find_elements(By.TAG_NAME, "tr")]
        assert any(r.startswith("prm ur4rec") for r in rows) and any(r.startswith("gru4rec control") for r in rows)
        # every plot rendered by the inlined Bokeh (no network: nothing else could have loaded it)
        n_plots = len(driver.find_elements(By.CSS_SELECTOR, "div.plot"))
        assert n_plots >= 3
        wait.until(lambda d: d.execute_script(
            "return window.Bokeh && Bokeh.documents.length === arguments[0] && "
            "[...document.querySelectorAll('div.plot')].every(e => e.children.length > 0)", n_plots))
        # training curves: one backbone at a time, another on a click
        driver.find_element(By.CSS_SELECTOR, "button.choice[data-item='plot-train-gru4rec']").click()
        wait.until(lambda d: d.execute_script(
            "const e = document.getElementById('plot-train'); "
            "return e.dataset.item === 'plot-train-gru4rec' && e.children.length > 0 && Bokeh.documents.length > arguments[0]",
            n_plots))
        # open one user's drill-down
        driver.find_element(By.ID, "open-user-3").click()
        view = wait.until(lambda d: d.find_element(By.ID, "user-3"))
        assert driver.find_element(By.CSS_SELECTOR, "#user-3 .pref").text == f"User 3 likes slow films. {PAYLOAD}"
        ranks = view.find_element(By.CSS_SELECTOR, "table.ranks")
        assert [th.text for th in ranks.find_elements(By.CSS_SELECTOR, "thead th")][1:] == \
            ["base", "control", "llm", "kar", "ur4rec"]
        cells = ranks.find_elements(By.CSS_SELECTOR, "tbody td")
        assert len(cells) == 2 * 5 and all("/" in c.text for c in cells)  # two seeds per cell
        assert view.find_elements(By.CSS_SELECTOR, ".attention table")  # UR4Rec's attention over Z
        assert "LLM preference of the user" in view.text
        # the payloads stayed text: no script ran, no element was injected
        assert driver.execute_script("return window.__pwned") is None
        assert not driver.find_elements(By.CSS_SELECTOR, "img")
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        ARTIFACTS.mkdir(exist_ok=True)
        driver.execute_script("document.getElementById('drilldown').scrollIntoView()")
        shot = ARTIFACTS / "report-drilldown.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        driver.execute_script("window.scrollTo(0, 0)")
        driver.save_screenshot(str(ARTIFACTS / "report-top.png"))
        print(f"screenshots: {shot} and {ARTIFACTS / 'report-top.png'}")
    finally:
        driver.quit()
