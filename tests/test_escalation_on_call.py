"""The supervisor a peer rings in a call (* then 2) is the on-call supervisor of the shift rota, before
SUPERVISOR_NUMBER: through the public webhooks, with the phone network standing in for Twilio's REST API,
and the rule itself at the edges of a shift in LINE_TIMEZONE."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from lxml import html
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from callflows import shifts
from models import Handoff, Peer, Shift, ShiftSignup, StaffUser, utcnow
from tests.factories import make_peer
from tests.test_dashboard import sign_in
from tests.helpers import PUBLIC_BASE, TestCaller
from tests.test_escalation import LINE, SUPERVISOR, announced, connected, enter, rest, say_of, star
from tests.test_routing import pick_up

UTC = timezone.utc
ROSA_PEER_PHONE = "+15555550711"
ROSA_OWN_PHONE = "+15555550712"


@pytest.fixture(autouse=True)
def net(request, app_config, phone_network):  # type: ignore[no-untyped-def]
    """The phone network, wired in before the app is built; SUPERVISOR_NUMBER set (but where a test says none)."""
    app_config["twilio_api_base_url"] = phone_network.base_url
    app_config["supervisor_number"] = "" if "no_supervisor_number" in request.node.name else SUPERVISOR
    return phone_network


def supervisor_on_rota(db, vault, name: str, peer_phone: str, own_phone: str | None = None,  # type: ignore[no-untyped-def]
                       role: str = "supervisor", active: bool = True) -> Peer:
    """A supervisor whose staff login is linked to a peer (signed off, so never offered callers)."""
    peer = make_peer(db, vault, display_name=name, phone=peer_phone, status="signed_off")
    db.add(StaffUser(username=name.lower(), password_hash=generate_password_hash("a-long-password"), role=role,
                     peer_id=peer.id, active=active,
                     phone_encrypted=vault.encrypt_text(own_phone) if own_phone else None))
    db.commit()
    return peer


def on_call_shift(db, starts: datetime, ends: datetime, *peers: Peer, on_call: bool = True) -> Shift:  # type: ignore[no-untyped-def]
    """A dated shift with these peers signed up, in that order."""
    shift = Shift(starts_at=starts, ends_at=ends, on_call=on_call, languages=["en"])
    db.add(shift)
    db.flush()
    for peer in peers:
        db.add(ShiftSignup(shift_id=shift.id, peer_id=peer.id))
        db.flush()
    db.commit()
    return shift


def rung_for_help(client, net, db, svc) -> list[str]:  # type: ignore[no-untyped-def]
    """A peer in a call presses * then 2: the numbers the phone network was asked to dial for it."""
    call = connected(client, net, db, svc)
    star(net, call)
    mark = len(net.state.requests)
    call.peer.press("2")
    return [form["To"][0] for path, form in rest(net, mark) if path == "/Calls.json"]


def test_the_on_call_supervisor_is_rung_on_their_own_phone_instead_of_the_supervisor_number(  # type: ignore[no-untyped-def]
        svc, db, client, net) -> None:
    rosa = supervisor_on_rota(db, svc.vault, "Rosa", ROSA_PEER_PHONE, ROSA_OWN_PHONE)
    now = utcnow()
    on_call_shift(db, now - timedelta(hours=1), now + timedelta(hours=3), rosa)
    call = connected(client, net, db, svc)
    star(net, call)
    mark = len(net.state.requests)
    call.peer.press("2")
    assert call.peer.said == "Ringing the supervisor. You will hear when they join."
    (path, form), = rest(net, mark)
    assert path == "/Calls.json" and form["To"] == [ROSA_OWN_PHONE] and form["From"] == [LINE]
    handoff = db.scalar(select(Handoff))
    assert form["Url"] == [f"{svc.settings.public_base_url}/peer/handoff/{handoff.id}/whisper"]
    rosa_phone = pick_up(client, net, form)
    assert rosa_phone.said.startswith("A peer is asking for help. Press 1 to join.")
    rosa_phone.press("1")
    assert rosa_phone.twiml.find("Dial/Conference").get("coach") == call.peer.call_sid


def test_without_a_phone_on_the_staff_login_the_on_call_supervisor_is_rung_on_their_peer_phone(  # type: ignore[no-untyped-def]
        svc, db, client, net) -> None:
    rosa = supervisor_on_rota(db, svc.vault, "Rosa", ROSA_PEER_PHONE)
    now = utcnow()
    on_call_shift(db, now - timedelta(minutes=1), now + timedelta(hours=3), rosa)
    assert rung_for_help(client, net, db, svc) == [ROSA_PEER_PHONE]


def test_outside_the_on_call_shift_the_supervisor_number_is_rung(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    rosa = supervisor_on_rota(db, svc.vault, "Rosa", ROSA_PEER_PHONE, ROSA_OWN_PHONE)
    now = utcnow()
    on_call_shift(db, now - timedelta(hours=4), now - timedelta(seconds=1), rosa)  # just over
    on_call_shift(db, now + timedelta(minutes=1), now + timedelta(hours=4), rosa)  # not yet
    on_call_shift(db, now - timedelta(hours=1), now + timedelta(hours=3), rosa, on_call=False)  # an ordinary shift
    assert rung_for_help(client, net, db, svc) == [SUPERVISOR]


def test_an_on_call_peer_who_is_not_a_supervisor_is_not_rung_for_help(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    backup = supervisor_on_rota(db, svc.vault, "Backup", ROSA_PEER_PHONE, ROSA_OWN_PHONE, role="peer")
    retired = supervisor_on_rota(db, svc.vault, "Retired", "+15555550713", "+15555550714", active=False)
    now = utcnow()
    on_call_shift(db, now - timedelta(hours=1), now + timedelta(hours=3), backup, retired)
    assert rung_for_help(client, net, db, svc) == [SUPERVISOR]


def test_the_on_call_supervisor_is_rung_when_no_supervisor_number_is_set(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    # A supervisor off the rota, with a phone on the staff login: rung only when nobody is on call.
    db.add(StaffUser(username="lee", password_hash=generate_password_hash("a-long-password"), role="supervisor",
                     phone_encrypted=svc.vault.encrypt_text("+15555550790")))
    rosa = supervisor_on_rota(db, svc.vault, "Rosa", ROSA_PEER_PHONE, ROSA_OWN_PHONE)
    now = utcnow()
    on_call_shift(db, now - timedelta(hours=1), now + timedelta(hours=3), rosa)
    assert svc.settings.supervisor_number == ""
    assert rung_for_help(client, net, db, svc) == [ROSA_OWN_PHONE]


def test_of_several_on_call_supervisors_the_first_on_the_rota_is_rung_once(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    rosa = supervisor_on_rota(db, svc.vault, "Rosa", ROSA_PEER_PHONE, ROSA_OWN_PHONE)
    ana = supervisor_on_rota(db, svc.vault, "Ana", "+15555550721", "+15555550722")
    now = utcnow()
    on_call_shift(db, now - timedelta(hours=1), now + timedelta(hours=3), ana)  # on call longest
    on_call_shift(db, now - timedelta(minutes=30), now + timedelta(hours=3), rosa, ana)
    assert shifts.on_call_supervisors(db, svc.vault, now) == ["+15555550722", ROSA_OWN_PHONE]
    assert rung_for_help(client, net, db, svc) == ["+15555550722"]


def test_an_unanswered_supervisor_is_followed_by_the_next_on_call_then_the_supervisor_number(  # type: ignore[no-untyped-def]
        svc, db, client, net) -> None:
    rosa = supervisor_on_rota(db, svc.vault, "Rosa", ROSA_PEER_PHONE, ROSA_OWN_PHONE)
    ana = supervisor_on_rota(db, svc.vault, "Ana", "+15555550721", "+15555550722")
    now = utcnow()
    on_call_shift(db, now - timedelta(hours=1), now + timedelta(hours=3), ana, rosa)
    call = connected(client, net, db, svc)
    star(net, call)
    call.peer.press("2")
    enter(net, call.peer.call_sid, call.room, False)  # back in the room while the phones ring
    heard = []
    for expected in ("+15555550722", ROSA_OWN_PHONE, SUPERVISOR):
        db.expire_all()
        handoff = db.scalars(select(Handoff).order_by(Handoff.id.desc())).first()
        [dialled] = [form["To"][0] for path, form in rest(net) if path == "/Calls.json"
                     and form["StatusCallback"][0].endswith(f"/peer/handoff/{handoff.id}/status")]
        assert dialled == expected
        mark = len(net.state.requests)
        TestCaller(client, number=LINE, call_sid=handoff.call_sid).post(
            f"{PUBLIC_BASE}/peer/handoff/{handoff.id}/status", CallStatus="no-answer")
        heard += [say_of(client, url) for url in announced(net, mark, call.peer.call_sid)]
    assert heard == ["That supervisor did not answer. Ringing the next one on call."] * 2 + [
        "No supervisor answered. To add the crisis line, press star, then 1."]
    db.expire_all()
    assert [h.status for h in db.scalars(select(Handoff).order_by(Handoff.id))] == ["no_answer"] * 3


def test_a_peer_who_asks_again_after_a_supervisor_came_starts_at_the_top_of_the_rota(  # type: ignore[no-untyped-def]
        svc, db, client, net) -> None:
    ana = supervisor_on_rota(db, svc.vault, "Ana", "+15555550721", "+15555550722")
    now = utcnow()
    on_call_shift(db, now - timedelta(hours=1), now + timedelta(hours=3), ana)
    call = connected(client, net, db, svc)
    star(net, call)
    call.peer.press("2")
    first = db.scalar(select(Handoff))
    first.status, first.ended_at = "ended", now  # Ana came, coached, and left
    db.commit()
    enter(net, call.peer.call_sid, call.room, False)
    assert rung_again(client, net, call) == ["+15555550722"]


def rung_again(client, net, call) -> list[str]:  # type: ignore[no-untyped-def]
    """The peer presses * then 2 once more: the numbers dialled for it."""
    star(net, call)
    mark = len(net.state.requests)
    call.peer.press("2")
    return [form["To"][0] for path, form in rest(net, mark) if path == "/Calls.json"]


def test_a_peer_who_is_the_on_call_supervisor_is_not_rung_for_their_own_call(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    sam = make_peer(db, svc.vault, display_name="sam", phone="+15555550131")
    db.add(StaffUser(username="sam", password_hash=generate_password_hash("a-long-password"), role="supervisor",
                     peer_id=sam.id, phone_encrypted=svc.vault.encrypt_text("+15555550132")))
    now = utcnow()
    on_call_shift(db, now - timedelta(hours=1), now + timedelta(hours=3), sam)
    call = connected(client, net, db, svc, peer_phone=None)  # sam takes the call
    assert call.req.peer_id == sam.id
    star(net, call)
    mark = len(net.state.requests)
    call.peer.press("2")
    assert [form["To"] for path, form in rest(net, mark) if path == "/Calls.json"] == [[SUPERVISOR]]


def test_on_call_across_midnight_and_the_autumn_clock_change_in_the_line_time_zone(svc, db) -> None:  # type: ignore[no-untyped-def]
    ny = ZoneInfo("America/New_York")
    rosa = supervisor_on_rota(db, svc.vault, "Rosa", ROSA_PEER_PHONE, ROSA_OWN_PHONE)
    shifts.add_template(db, 5, 22 * 60, 2 * 60, 1, ["en"], True, None)  # Saturdays 22:00-02:00, on call
    shifts.ensure_shifts(db, ny, datetime(2026, 10, 26, 12, tzinfo=UTC))
    for shift in db.scalars(select(Shift)):
        db.add(ShiftSignup(shift_id=shift.id, peer_id=rosa.id))
    db.commit()

    def rung_at(local: datetime) -> list[str]:
        return shifts.on_call_supervisors(db, svc.vault, local.astimezone(UTC))

    # Saturday Oct 31 22:00 EDT (UTC-4) to Sunday Nov 1 02:00 EST (UTC-5): the clocks go back at 2 am EDT.
    assert rung_at(datetime(2026, 10, 31, 21, 59, tzinfo=ny)) == []
    assert rung_at(datetime(2026, 10, 31, 22, 0, tzinfo=ny)) == [ROSA_OWN_PHONE]
    assert rung_at(datetime(2026, 11, 1, 0, 30, tzinfo=ny)) == [ROSA_OWN_PHONE]  # past midnight
    assert rung_at(datetime(2026, 11, 1, 1, 30, tzinfo=ny, fold=1)) == [ROSA_OWN_PHONE]  # the second 1:30 (EST)
    assert rung_at(datetime(2026, 11, 1, 1, 59, tzinfo=ny, fold=1)) == [ROSA_OWN_PHONE]
    assert rung_at(datetime(2026, 11, 1, 2, 0, tzinfo=ny)) == []
    # A week later, no clock change: 22:00 to 02:00 local is four hours.
    assert rung_at(datetime(2026, 11, 8, 1, 59, tzinfo=ny)) == [ROSA_OWN_PHONE]
    assert rung_at(datetime(2026, 11, 8, 2, 0, tzinfo=ny)) == []
    assert rung_at(datetime(2026, 11, 7, 22, 0, tzinfo=ny)) == [ROSA_OWN_PHONE]


def test_the_shifts_page_says_who_is_on_call_and_who_a_peer_asking_for_help_rings(  # type: ignore[no-untyped-def]
        svc, db, client, dashboard_data) -> None:
    assert sign_in(client, "super", dashboard_data.passwords["super"]).status_code == 302

    def on_call_section() -> str:
        doc = html.fromstring(client.get("/staff/shifts").get_data(as_text=True))
        return " ".join(" ".join(doc.get_element_by_id("on-call-now").itertext()).split())

    assert "Nobody is on an on-call shift now." in on_call_section()
    assert ("No supervisor is on call: a peer who asks for help in a call rings the line's supervisor number "
            "(SUPERVISOR_NUMBER).") in on_call_section()
    rosa = db.scalar(select(Peer).where(Peer.display_name == "Rosa"))  # signed off, no login of her own yet
    db.add(StaffUser(username="rosa", password_hash=generate_password_hash("a-long-password"), role="supervisor",
                     peer_id=rosa.id))
    backup = make_peer(db, svc.vault, display_name="Backup", phone="+15555550731", status="signed_off")
    now = utcnow()
    on_call_shift(db, now - timedelta(hours=1), now + timedelta(hours=3), backup, rosa)
    text = on_call_section()
    assert "Backup Rosa: the supervisor rung when a peer asks for help in a call" in text
    assert "No supervisor is on call" not in text
