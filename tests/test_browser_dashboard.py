"""The staff dashboard in a real headless browser (Debian's chromium, driven by Selenium).

One browser for the module; each test gets a fresh app and a real HTTP server on 127.0.0.1.
On failure a screenshot is saved under test-artifacts/.
"""
from __future__ import annotations

import re
import shutil
import threading
from types import SimpleNamespace
from typing import Any, Iterator

import pytest
from sqlalchemy import select

from callflows import shifts
from models import AuditEntry, Peer, PeerStory, Voicemail
from tests.helpers import REPO, require
from tests.test_metrics import add_records, history  # noqa: F401  (a constructed day of calls, a fixture)

CHROMIUM_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--autoplay-policy=no-user-gesture-required", "--window-size=1280,900")
ARTIFACTS = REPO / "test-artifacts"


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless chromium for the whole module."""
    require(bool(shutil.which("chromedriver") and _chromium()),
            "install chromium and chromium-driver (apt-get install chromium chromium-driver) to run browser tests")
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = _chromium()  # type: ignore[assignment]
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    browser = webdriver.Chrome(options=options, service=service)
    browser.implicitly_wait(0)
    yield browser
    browser.quit()


@pytest.fixture
def live(request: pytest.FixtureRequest, app_config: dict[str, object], driver: Any) -> Iterator[SimpleNamespace]:
    """The test app behind a real HTTP server, with dashboard data; a screenshot if the test fails."""
    from werkzeug.serving import make_server

    holder: dict[str, Any] = {}
    server = make_server("127.0.0.1", 0, lambda environ, start: holder["app"](environ, start), threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    # The public URL is this plain-http server, so the session cookie is not marked Secure here.
    app_config["public_base_url"] = base
    holder["app"] = request.getfixturevalue("app")
    data = request.getfixturevalue("dashboard_data")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    driver.set_window_size(1280, 900)
    # Start signed out: the previous test's session cookie is for the same host (127.0.0.1).
    for _ in range(3):
        driver.get(base + "/staff/sign-in")
        if driver.current_url.endswith("/staff/sign-in"):
            break
        driver.delete_all_cookies()
    assert driver.current_url.endswith("/staff/sign-in")
    yield SimpleNamespace(base=base, app=holder["app"], svc=request.getfixturevalue("svc"), data=data)
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)
        driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))
        (ARTIFACTS / f"{name}.html").write_text(driver.page_source)
    server.shutdown()
    thread.join(timeout=5)


def wait_for(driver: Any, condition: Any, timeout: float = 10) -> Any:
    """Wait until ``condition(driver)`` is truthy."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def sign_in(driver: Any, live: SimpleNamespace, path: str, username: str, password: str) -> None:
    """Open a staff page, get sent to sign in, sign in with the keyboard and land back on the page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.get(live.base + path)
    wait_for(driver, lambda d: "/staff/sign-in" in d.current_url)
    driver.find_element(By.ID, "username").send_keys(username)
    password_field = driver.find_element(By.ID, "password")
    password_field.send_keys(password)
    password_field.send_keys(Keys.ENTER)
    wait_for(driver, lambda d: "/staff/sign-in" not in d.current_url)


def flash_text(driver: Any) -> str:
    """The text of the page's status messages."""
    from selenium.webdriver.common.by import By

    return " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, ".messages .message"))


def test_supervisor_plays_the_top_risk_voicemail_and_marks_it_reviewed(driver: Any, live: SimpleNamespace) -> None:
    from selenium.webdriver.common.by import By

    data = live.data
    sign_in(driver, live, "/staff/voicemails", "super", data.passwords["super"])
    assert driver.current_url == live.base + "/staff/voicemails"
    first = driver.find_element(By.CSS_SELECTOR, "ol.cards > li:first-child")
    assert "High risk" in first.text
    first.find_element(By.TAG_NAME, "a").click()
    wait_for(driver, lambda d: d.current_url.endswith(f"/staff/voicemails/{data.high.id}"))
    marked = [m.text.replace("(risk word)", "").strip() for m in driver.find_elements(By.CSS_SELECTOR, "#transcript mark.risk")]
    assert marked == ["end", "it", "all"]
    assert driver.find_element(By.CSS_SELECTOR, "#transcript .unsure").text.startswith("tonight")

    audio = driver.find_element(By.ID, "voicemail-audio")
    started = driver.execute_async_script(
        "const [audio, done] = arguments;"
        "audio.play().then(() => done('playing'), (e) => done('refused: ' + e.name + ' ' + e.message));", audio)
    assert started == "playing"
    wait_for(driver, lambda d: d.execute_script("return arguments[0].currentTime > 0.2 || arguments[0].ended;", audio))
    assert driver.execute_script("return arguments[0].error;", audio) is None
    assert abs(driver.execute_script("return arguments[0].duration;", audio) - 1.0) < 0.05

    driver.find_element(By.ID, "mark-reviewed").click()
    wait_for(driver, lambda d: d.current_url == live.base + "/staff/voicemails")
    assert f"Voicemail {data.high.id} is marked reviewed." in flash_text(driver)
    top = driver.find_element(By.CSS_SELECTOR, "ol.cards > li:first-child a").text
    assert top == f"Voicemail {data.failed.id}"

    with live.svc.sessions() as session:
        assert session.get(Voicemail, data.high.id).reviewed_at is not None
        plays = session.scalars(select(AuditEntry).where(AuditEntry.action == "play_recording")).all()
        assert [p.target_id for p in plays] == [data.high.id]


def test_supervisor_approves_a_story(driver: Any, live: SimpleNamespace) -> None:
    from selenium.webdriver.common.by import By

    data = live.data
    sign_in(driver, live, "/staff/stories", "super", data.passwords["super"])
    driver.find_element(By.LINK_TEXT, "Finding a clinic that listened").click()
    wait_for(driver, lambda d: d.current_url.endswith(f"/staff/stories/{data.story.id}"))
    assert "It took three tries" in driver.find_element(By.CSS_SELECTOR, ".transcript").text
    assert driver.find_element(By.ID, "story-audio").get_attribute("src")
    # The browser itself refuses to submit until consent is confirmed (the checkbox is required).
    driver.find_element(By.ID, "approve-story").click()
    assert driver.current_url.endswith(f"/staff/stories/{data.story.id}")
    driver.find_element(By.CSS_SELECTOR, "label[for='consent']").click()
    driver.find_element(By.ID, "approve-story").click()
    wait_for(driver, lambda d: d.current_url == live.base + "/staff/stories")
    assert "is approved; callers can hear it now." in flash_text(driver)
    approved = driver.find_element(By.XPATH, "//section[h2[@id='h-approved']]")
    assert "Finding a clinic that listened" in approved.text
    with live.svc.sessions() as session:
        story = session.get(PeerStory, data.story.id)
        assert (story.status, story.consent_given) == ("approved", True)


def test_peer_switches_to_break_from_a_phone_sized_window(driver: Any, live: SimpleNamespace) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    data = live.data
    driver.set_window_size(390, 844)
    sign_in(driver, live, "/staff/", "sam", data.passwords["sam"])
    wait_for(driver, lambda d: d.current_url == live.base + "/staff/me")
    # Nothing sideways to scroll on a phone, and the keyboard starts at the skip link.
    assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth;")
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    assert driver.switch_to.active_element.text == "Skip to main content"
    assert driver.find_element(By.ID, "my-status").text == "Available"

    driver.find_element(By.CSS_SELECTOR, "label[for='status-break']").click()
    assert driver.find_element(By.ID, "status-break").is_selected()
    driver.find_element(By.ID, "save-status").click()
    wait_for(driver, lambda d: d.find_element(By.ID, "my-status").text == "On a break")
    assert "Your status is now: On a break." in flash_text(driver)
    with live.svc.sessions() as session:
        assert session.get(Peer, data.sam.id).status == "break"


def axe_violations(driver: Any) -> list[dict[str, Any]]:
    """Run axe-core on the page; the critical and serious violations (with the elements they name)."""
    try:
        import axe_selenium_python
    except ImportError:
        axe_selenium_python = None
    require(axe_selenium_python is not None, "pip install axe-selenium-python (requirements-dev.txt) for axe-core")
    from pathlib import Path

    script = Path(axe_selenium_python.__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
    driver.execute_script(script.read_text())
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations), e => done(String(e)));")
    assert isinstance(result, list), result
    return [{"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]]}
            for v in result if v["impact"] in ("critical", "serious")]


@pytest.mark.usefixtures("history")
def test_reports_page_has_no_serious_accessibility_problems_on_desktop_or_phone(driver: Any, live: SimpleNamespace,
                                                                                request: pytest.FixtureRequest) -> None:
    from selenium.webdriver.common.by import By

    # Post-call records and a shift rota short at 11:00, so their tables and marks are checked too.
    db = request.getfixturevalue("db")
    add_records(db, request.getfixturevalue("history"))
    shifts.add_template(db, 0, 9 * 60, 11 * 60, 1, ["en"], False, None)
    sign_in(driver, live, "/staff/reports?since=2026-11-02&until=2026-11-02", "super", live.data.passwords["super"])
    assert driver.find_element(By.ID, "fig-offered").text == "10"
    assert driver.find_element(By.ID, "short-summary").text == "2 hours of the week short of peers"
    assert driver.find_element(By.XPATH, "//table[@id='record-outcomes']/tbody/tr[1]/td").text == "1"
    assert axe_violations(driver) == []
    # The charts are drawn: bars with a height, readable at this width.
    heights = driver.execute_script(
        "return [...document.querySelectorAll('svg.chart')[0].querySelectorAll('rect')].map(r => r.getBBox().height);")
    assert max(heights) > 100
    driver.set_window_size(390, 844)
    driver.refresh()
    assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth;")
    assert axe_violations(driver) == []
    # The wide heat-map table scrolls inside its own region, which the keyboard can reach.
    region = driver.find_element(By.XPATH, "//div[table[@id='by-hour-of-week']]")
    assert region.get_attribute("tabindex") == "0"
    # Choosing another period from the form shows it.
    since = driver.find_element(By.ID, "since")
    driver.execute_script("arguments[0].value = '2026-11-03';", since)
    driver.execute_script("arguments[0].value = '2026-11-03';", driver.find_element(By.ID, "until"))
    driver.find_element(By.ID, "show-report").click()
    wait_for(driver, lambda d: "since=2026-11-03" in d.current_url)
    assert driver.find_element(By.ID, "fig-offered").text == "0"
