"""The report in a real browser: headless Chromium (Debian's chromium and chromium-driver, installed by
.ci/run) opens the file offline, the figures draw without JavaScript errors, and a capture whose STUN
SOFTWARE is `<script>alert(1)</script>` shows that text without running anything."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from analyzer.report.html import write_figure, write_html
from tests.report.build import XSS

CHROMIUM = os.environ.get("CALLFLOW_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CALLFLOW_CHROMEDRIVER", "/usr/bin/chromedriver")
ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1400,1000")
DRAWN = """return Array.from(document.querySelectorAll('.js-plotly-plot')).map(el => ({
  id: el.id, traces: el.data.length, svgs: el.querySelectorAll('svg.main-svg').length,
  drawn: el.querySelectorAll('.scatterlayer .trace').length, points: el.querySelectorAll('.scatterlayer .point').length,
}));"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip("chromium / chromedriver not installed (.ci/run installs Debian's chromium and chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in (*ARGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def open_page(driver, path: Path, figures: int) -> list[dict]:
    driver.get_log("browser")  # drop what earlier pages logged
    driver.get(path.resolve().as_uri())
    deadline = time.monotonic() + 30
    while True:
        drawn = driver.execute_script(DRAWN)
        if len(drawn) == figures and all(d["svgs"] and d["drawn"] == d["traces"] for d in drawn):
            return drawn
        assert time.monotonic() < deadline, f"figures not drawn: {drawn}"
        time.sleep(0.2)


def full_screenshot(driver, path: Path) -> Path:
    """The whole page, not just the window (Chrome DevTools' beyond-the-viewport capture)."""
    import base64

    h = driver.execute_script("return document.documentElement.scrollHeight")
    w = driver.execute_script("return document.documentElement.scrollWidth")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True, "clip": {"x": 0, "y": 0, "width": w, "height": h, "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def errors(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]


def test_report_draws_in_chromium(browser, loopback, tmp_path):
    report = write_html(loopback, tmp_path / "report.html")
    drawn = open_page(browser, report, 3)
    expected = {"fig-timeline": loopback.timeline(), "fig-ladder": loopback.ladder(),
                "fig-path_diagram": loopback.path_diagram()}
    assert {d["id"]: d["traces"] for d in drawn} == {k: len(f.data) for k, f in expected.items()}
    by_id = {d["id"]: d for d in drawn}
    assert by_id["fig-timeline"]["points"] >= 4 + 4  # four STUN markers, four DTLS flights at least
    assert browser.execute_script("return document.querySelectorAll('#fig-ladder .annotation-arrow-g').length") == 6
    filled = [t for t in loopback.tables if len(loopback[t])]  # an empty table is a line, not a box
    assert browser.execute_script("return document.querySelectorAll('details table').length") == len(filled)
    assert errors(browser) == []
    shot = full_screenshot(browser, tmp_path / "report.png")
    assert shot.stat().st_size > 20_000
    print(f"screenshot: {shot}")


def test_script_in_a_stun_attribute_is_shown_not_run(browser, scenario, tmp_path):
    from selenium.common.exceptions import NoAlertPresentException

    report = write_html(scenario, tmp_path / "xss.html")
    open_page(browser, report, 3)
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert  # noqa: B018 - an alert() would be open here
    cells = browser.execute_script(
        "return Array.from(document.querySelectorAll('td')).filter(td => td.textContent === arguments[0]).length", XSS)
    assert cells == 4  # SOFTWARE of frames 1, 2, 4 in the stun table, and the allocation's, each one text node
    browser.execute_script("document.querySelectorAll('details').forEach(d => d.open = true)")
    assert XSS in browser.execute_script("return document.body.innerText")  # shown literally
    assert browser.execute_script("return document.querySelectorAll('script').length") == 2
    assert browser.execute_script("return document.querySelectorAll('img').length") == 0  # the realm's <img>
    # the hover text holds the SOFTWARE value as text too
    hover = browser.execute_script(
        "return document.getElementById('fig-timeline').data.find(t => t.name === 'STUN/TURN error').hovertext[0]")
    assert "SOFTWARE: &lt;script&gt;" in hover
    assert errors(browser) == []
    full_screenshot(browser, tmp_path / "xss.png")


def test_timeline_page_draws(browser, scenario, tmp_path):
    page = write_figure(scenario.timeline(), tmp_path / "timeline.html", "Call timeline")
    (d,) = open_page(browser, page, 1)
    assert d["traces"] == len(scenario.timeline().data)
    assert errors(browser) == []


def test_content_security_policy_blocks_an_injected_script(browser, tmp_path):
    # defence in depth: were a packet string ever to reach the page unescaped, the policy (scripts pinned
    # by hash) would still keep it from running
    from analyzer.report.html import _page

    page = tmp_path / "injected.html"
    page.write_text(_page("t", '<p id="x">x</p><script>document.getElementById("x").textContent = "ran"</script>',
                          ["window.pinned = 1;"]))
    browser.get_log("browser")
    browser.get(page.as_uri())
    assert browser.execute_script("return [document.getElementById('x').textContent, window.pinned]") == ["x", 1]
    logged = " ".join(e["message"] for e in browser.get_log("browser"))
    assert "Content Security Policy" in logged


@pytest.mark.parametrize("width", [900, 1400])
def test_three_point_report_at_900_and_1400_px(browser, tmp_path, width):
    """The external-via-relay report (three capture points) at a laptop's and a desktop's width: no
    horizontal scroll, one legend entry per stream, the metric axes from 0, no word broken mid-word."""
    import glob

    from analyzer import analyze
    from tests.conftest import CAPTURES

    files = sorted(glob.glob(str(CAPTURES / "external-via-relay" / "*.pcap")))
    a = analyze(files, network=str(CAPTURES / "external-via-relay" / "network.toml"))
    report = write_html(a, tmp_path / "report.html")
    browser.set_window_size(width, 1000)
    try:
        open_page(browser, report, 3)
        inner = browser.execute_script("return window.innerWidth")
        assert browser.execute_script("return document.documentElement.scrollWidth") <= inner
        streams = a.media_timeseries.groupby(["file", "ssrc"]).ngroups
        legend = browser.execute_script(
            "return Array.from(document.querySelectorAll('#fig-timeline .legend .traces .legendtext'))"
            ".map(e => e.textContent)")
        media = [t for t in legend if t.startswith("0x")]
        assert len(media) == len(set(media)) and len(media) <= streams and not any(
            t.endswith((" loss", " jitter")) for t in media)
        lows = browser.execute_script(
            "const l = document.getElementById('fig-timeline')._fullLayout;"
            "return ['yaxis2', 'yaxis3', 'yaxis4'].filter(k => l[k]).map(k => l[k].range[0]);")
        assert lows and all(x == 0 for x in lows)
        breaks = browser.execute_script(
            "return Array.from(document.querySelectorAll('td, th, p, div')).map(e => getComputedStyle(e))"
            ".filter(s => ['break-all', 'break-word'].includes(s.wordBreak)"
            " || ['anywhere', 'break-word'].includes(s.overflowWrap)).length")
        assert breaks == 0
        assert "client-a.pcap#10" in browser.find_element("tag name", "body").text
        shot = full_screenshot(browser, tmp_path / f"report-{width}.png")
        print(f"screenshot: {shot}")
    finally:
        browser.set_window_size(1400, 1000)
