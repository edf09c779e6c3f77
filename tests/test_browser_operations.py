"""The day-to-day staff pages in a real headless browser: a peer signs up for a shift from a
phone-sized window, and every new page passes axe-core at phone and desktop width.

Reuses the browser and the live app of :mod:`tests.test_browser_dashboard`.
"""
from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select

from callflows import callers, hours
from models import AuditEntry, Shift, ShiftSignup, utcnow
from tests.test_browser_dashboard import axe_source, driver, flash_text, live, sign_in, wait_for  # noqa: F401  (fixtures)
from tests.test_browser_dashboard import axe_violations as dashboard_axe_violations

PHONE = (390, 844)
DESKTOP = (1280, 900)


def axe_violations(driver: Any) -> list[str]:  # noqa: F811
    """axe-core's critical and serious violations on the current page (the dashboard tests' one check)."""
    return dashboard_axe_violations(driver, axe_source())


def add_shift(live: SimpleNamespace, days: int, hours_long: int = 4, languages: tuple[str, ...] = ("en",)) -> int:  # noqa: F811
    """A shift starting ``days`` from now (an hour past the hour), needing one peer."""
    starts = (utcnow() + timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
    with live.svc.sessions() as session:
        shift = Shift(starts_at=starts, ends_at=starts + timedelta(hours=hours_long), peers_needed=1,
                      languages=list(languages))
        session.add(shift)
        session.commit()
        return shift.id


def test_peer_signs_up_for_a_shift_from_a_phone_sized_window(driver: Any, live: SimpleNamespace) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    data = live.data
    shift_id = add_shift(live, days=2)
    driver.set_window_size(*PHONE)
    sign_in(driver, live, "/staff/", "sam", data.passwords["sam"])
    wait_for(driver, lambda d: d.current_url == live.base + "/staff/me")
    assert "No shift coming up." in driver.find_element(By.ID, "ops-heading").find_element(By.XPATH, "..").text
    driver.find_element(By.LINK_TEXT, "My shifts and open shifts").click()
    wait_for(driver, lambda d: d.current_url == live.base + "/staff/me/shifts")
    assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth;")
    assert axe_violations(driver) == []
    card = driver.find_element(By.CSS_SELECTOR, "#shift-list > li")
    assert "1 more needed" in card.text
    card.find_element(By.TAG_NAME, "button").click()
    wait_for(driver, lambda d: "You are on the shift of" in flash_text(d))
    assert "You are on this shift" in driver.find_element(By.CSS_SELECTOR, "#shift-list > li").text
    assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth;")
    with live.svc.sessions() as session:
        assert session.scalars(select(ShiftSignup.peer_id).where(ShiftSignup.shift_id == shift_id)).all() == [
            data.sam.id]
        assert session.scalars(select(AuditEntry.action).where(AuditEntry.action == "shift_signup")).all() == [
            "shift_signup"]
    driver.get(live.base + "/staff/me")
    assert driver.find_element(By.ID, "next-shift").text.strip() != ""
    assert axe_violations(driver) == []


def test_new_staff_pages_pass_axe_at_phone_and_desktop_width(driver: Any, live: SimpleNamespace) -> None:  # noqa: F811
    data = live.data
    add_shift(live, days=1)
    now = utcnow()
    with live.svc.sessions() as session:
        hours.add_holiday(session, (now + timedelta(days=30)).date(), "Founders' day", None)
        callers.set_plan(session, live.svc.vault, data.caller.id, "Agreed 20-minute calls.", 2, None, now)
        callers.block(session, live.svc.vault, data.caller.id, "abuse of peers", now + timedelta(days=3), None, now)
    sign_in(driver, live, "/staff/hours", "super", data.passwords["super"])
    pages = ["/staff/hours", "/staff/shifts", "/staff/callers", f"/staff/callers/{data.caller.id}", "/staff/records"]
    for width, height in (PHONE, DESKTOP):
        driver.set_window_size(width, height)
        for path in pages:
            driver.get(live.base + path)
            assert axe_violations(driver) == [], (path, width)
