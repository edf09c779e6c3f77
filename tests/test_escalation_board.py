"""The supervisor's tools on the live board: Listen, Coach, Join and trainee shadowing, through the staff
pages and the phone network (Participants API), with the audit log and the permissions."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from models import AuditEntry, MonitorSession, StaffUser
from tests.factories import make_peer
from tests.helpers import PUBLIC_BASE, TestCaller
from tests.test_dashboard import post, sign_in
from tests.test_escalation import ACCOUNT, LINE, announced, connected, enter, leave, rest, say_of

MY_PHONE = "+15555550777"


@pytest.fixture(autouse=True)
def net(request, app_config, phone_network):  # type: ignore[no-untyped-def]
    """The phone network; the notice a peer hears is a tone where a test's name says so."""
    app_config["twilio_api_base_url"] = phone_network.base_url
    if "tone" in request.node.name:
        app_config["monitor_notice"] = "tone"
    return phone_network


def audit_of(db, action: str) -> list[AuditEntry]:  # type: ignore[no-untyped-def]
    db.expire_all()
    return list(db.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def test_a_listen_started_from_the_board_is_muted_told_to_the_peer_and_audit_logged(  # type: ignore[no-untyped-def]
        svc, db, client, net, dashboard_data) -> None:
    call = connected(client, net, db, svc, peer_phone=None)  # Sam, the available peer, takes it
    assert sign_in(client, "super", dashboard_data.passwords["super"]).status_code == 302
    board = client.get("/staff/board").get_data(as_text=True)
    assert "with Sam" in board and "Waited 0 min" in board and ">Listen<" in board and ">Coach<" in board
    mark = len(net.state.requests)
    response = post(client, f"/staff/board/calls/{call.req.id}/monitor", mode="listen", phone=MY_PHONE)
    assert response.status_code == 302
    monitor = db.scalar(select(MonitorSession))
    (path, form), = rest(net, mark)
    assert path == f"/Conferences/{call.room}/Participants.json"
    assert form == {"From": [LINE], "To": [MY_PHONE],
                    "StatusCallback": [f"{PUBLIC_BASE}/peer/monitor/{monitor.id}/status"],
                    "StatusCallbackEvent": ["initiated", "ringing", "answered", "completed"], "Timeout": ["25"],
                    "Muted": ["true"], "Beep": ["false"], "EarlyMedia": ["false"], "EndConferenceOnExit": ["false"],
                    "StartConferenceOnEnter": ["true"]}
    super_id = dashboard_data.users["super"].id
    (start,) = audit_of(db, "monitor_listen")
    assert (start.staff_user_id, start.target_type, start.target_id) == (super_id, "peer_request", call.req.id)
    assert start.detail == f"monitor session {monitor.id} started by staff user {super_id} (listen)"
    # The supervisor's phone answers: the peer hears a short notice (a whisper by default).
    listener = TestCaller(client, number=LINE, call_sid=monitor.call_sid)
    enter(net, monitor.call_sid, call.room, False)
    mark = len(net.state.requests)
    listener.post(form["StatusCallback"][0], CallStatus="in-progress")
    (notice,) = announced(net, mark, call.peer.call_sid)
    assert say_of(client, notice) == "A supervisor is listening."
    assert net.state.participants[monitor.call_sid]["muted"] is True
    assert "Listen · on the line" in client.get("/staff/board").get_data(as_text=True)
    listener.post(form["StatusCallback"][0], CallStatus="completed", CallDuration="60")
    db.expire_all()
    monitor = db.get(MonitorSession, monitor.id)
    assert monitor.status == "ended" and monitor.answered_at is not None and monitor.ended_at is not None
    (end,) = audit_of(db, "monitor_listen_end")
    assert end.staff_user_id == super_id and end.detail == f"monitor session {monitor.id} ended"
    # The supervisor's phone is kept on their profile, encrypted, for next time; never in clear.
    assert svc.vault.decrypt_text(db.get(StaffUser, super_id).phone_encrypted) == MY_PHONE
    # Sam sees on their own page that a supervisor listened.
    client.get("/staff/sign-out")
    assert sign_in(client, "sam", dashboard_data.passwords["sam"]).status_code == 302
    assert "A supervisor listened to your call at" in client.get("/staff/me").get_data(as_text=True)


def test_coach_joins_muted_heard_by_the_peer_only_then_speaks_to_both(svc, db, client, net, dashboard_data) -> None:  # type: ignore[no-untyped-def]
    call = connected(client, net, db, svc, peer_phone=None)
    assert sign_in(client, "super", dashboard_data.passwords["super"]).status_code == 302
    mark = len(net.state.requests)
    post(client, f"/staff/board/calls/{call.req.id}/monitor", mode="coach", phone=MY_PHONE)
    (_path, form), = rest(net, mark)
    assert form["Muted"] == ["true"] and form["Coaching"] == ["true"]
    assert form["CallSidToCoach"] == [call.peer.call_sid]
    monitor = db.scalar(select(MonitorSession))
    enter(net, monitor.call_sid, call.room, False)
    TestCaller(client, number=LINE, call_sid=monitor.call_sid).post(form["StatusCallback"][0], CallStatus="in-progress")
    mark = len(net.state.requests)
    assert post(client, f"/staff/board/monitor/{monitor.id}/speak_to_both").status_code == 302
    assert rest(net, mark)[-1] == (f"/Conferences/{call.conference}/Participants/{monitor.call_sid}.json",
                                   {"Muted": ["false"], "Coaching": ["false"]})
    attributes = net.state.participants[monitor.call_sid]
    assert (attributes["muted"], attributes["coaching"]) == (False, False)
    assert [e.action for e in audit_of(db, "monitor_speak_to_both")] == ["monitor_speak_to_both"]
    mark = len(net.state.requests)
    post(client, f"/staff/board/monitor/{monitor.id}/end")
    assert rest(net, mark) == [(f"/Calls/{monitor.call_sid}.json", {"Status": ["completed"]})]


def test_a_peer_cannot_start_a_listen(svc, db, client, net, dashboard_data) -> None:  # type: ignore[no-untyped-def]
    call = connected(client, net, db, svc, peer_phone=None)
    assert sign_in(client, "sam", dashboard_data.passwords["sam"]).status_code == 302
    mark = len(net.state.requests)
    assert post(client, f"/staff/board/calls/{call.req.id}/monitor", mode="listen", phone=MY_PHONE).status_code == 403
    assert post(client, f"/staff/board/calls/{call.req.id}/trainee", trainee="1").status_code == 403
    assert client.get("/staff/board").status_code == 403
    assert rest(net, mark) == [] and db.scalar(select(MonitorSession)) is None
    assert not [r for r in net.state.requests[mark:] if r.path.startswith(ACCOUNT + "/Conferences")]


def test_listen_without_a_phone_number_asks_for_one(svc, db, client, net, dashboard_data) -> None:  # type: ignore[no-untyped-def]
    call = connected(client, net, db, svc, peer_phone=None)
    assert sign_in(client, "super", dashboard_data.passwords["super"]).status_code == 302
    mark = len(net.state.requests)
    post(client, f"/staff/board/calls/{call.req.id}/monitor", mode="listen", phone="")
    assert "Add your own phone number" in client.get("/staff/board").get_data(as_text=True)
    assert rest(net, mark) == [] and db.scalar(select(MonitorSession)) is None


def test_a_trainee_shadows_muted_and_the_peer_hears_a_tone(svc, db, client, net, dashboard_data) -> None:  # type: ignore[no-untyped-def]
    trainee = make_peer(db, svc.vault, display_name="Tia", phone="+15555550188", status="signed_off", trainee=True)
    call = connected(client, net, db, svc, peer_phone=None)
    assert sign_in(client, "super", dashboard_data.passwords["super"]).status_code == 302
    assert "Tia</option>" in client.get("/staff/board").get_data(as_text=True)
    mark = len(net.state.requests)
    post(client, f"/staff/board/calls/{call.req.id}/trainee", trainee=str(trainee.id))
    (_path, form), = rest(net, mark)
    assert form["To"] == ["+15555550188"] and form["Muted"] == ["true"] and "Coaching" not in form
    monitor = db.scalar(select(MonitorSession))
    assert (monitor.mode, monitor.trainee_peer_id) == ("shadow", trainee.id)
    enter(net, monitor.call_sid, call.room, False)
    mark = len(net.state.requests)
    TestCaller(client, number=LINE, call_sid=monitor.call_sid).post(form["StatusCallback"][0], CallStatus="in-progress")
    (notice,) = announced(net, mark, call.peer.call_sid)
    tone = TestCaller(client)
    tone.post(notice)
    assert tone.twiml.find("Play").get("digits") == "w0" and tone.said == ""


def test_the_board_shows_the_hand_off_state(svc, db, client, net, dashboard_data) -> None:  # type: ignore[no-untyped-def]
    call = connected(client, net, db, svc, peer_phone=None)
    leave(net, call.peer.call_sid)
    call.peer.post(call.peer.twiml.find("Dial").get("action"), DialCallStatus="completed", CallStatus="in-progress")
    call.peer.press("1")
    assert sign_in(client, "super", dashboard_data.passwords["super"]).status_code == 302
    assert "hand-off: <strong>crisis: ringing</strong>" in client.get("/staff/board").get_data(as_text=True)


def test_create_user_keeps_a_supervisors_phone_encrypted(runner, db, svc) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(args=["create-user", "lee", "--role", "supervisor", "--password", "correct horse 3",
                                 "--phone", "+1 555 555 0166"])
    assert result.exit_code == 0, result.output
    user = db.scalar(select(StaffUser).where(StaffUser.username == "lee"))
    assert b"5550166" not in user.phone_encrypted and svc.vault.decrypt_text(user.phone_encrypted) == "+15555550166"
    bad = runner.invoke(args=["create-user", "kai", "--role", "supervisor", "--password", "correct horse 4",
                              "--phone", "call me"])
    assert bad.exit_code == 1 and "is not a phone number" in bad.output
