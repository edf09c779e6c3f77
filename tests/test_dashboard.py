"""Staff dashboard through the Flask test client: every page, every permission, CSRF, audit."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

import pytest
from rq import Queue
from rq.registry import FailedJobRegistry
from sqlalchemy import select

from models import AuditEntry, CallbackRequest, Peer, PeerStory, StaffUser, Voicemail
from models.tables import FollowUp, PeerRequest, VoicemailNote, WrapUpNote
from tests.conftest import CALLER_NUMBER
from tests.factories import make_call

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(client: Any, path: str = "/staff/sign-in") -> str:
    """The CSRF token of the client's session, read from a form on ``path``."""
    response = client.get(path, follow_redirects=True)
    found = CSRF_RE.search(response.get_data(as_text=True))
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def sign_in(client: Any, username: str, password: str) -> Any:
    """Sign in through the form, like a person would."""
    token = csrf_token(client)
    return client.post("/staff/sign-in", data={"username": username, "password": password, "csrf_token": token})


def post(client: Any, path: str, **form: Any) -> Any:
    """POST a staff form with the session's CSRF token."""
    return client.post(path, data={"csrf_token": csrf_token(client, "/staff/"), **form}, follow_redirects=False)


def audit_actions(db: Any, action: str) -> list[AuditEntry]:
    """Audit entries with ``action`` (fresh from the database)."""
    db.expire_all()
    return list(db.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


@pytest.fixture
def as_supervisor(client: Any, dashboard_data: Any) -> Any:
    """A client signed in as the supervisor."""
    assert sign_in(client, "super", dashboard_data.passwords["super"]).status_code == 302
    return client


@pytest.fixture
def as_peer(client: Any, dashboard_data: Any) -> Any:
    """A client signed in as the peer Sam."""
    assert sign_in(client, "sam", dashboard_data.passwords["sam"]).status_code == 302
    return client


def supervisor_pages(data: Any) -> list[str]:
    """Every supervisor page (GET)."""
    return ["/staff/voicemails", f"/staff/voicemails/{data.high.id}", "/staff/stories",
            f"/staff/stories/{data.story.id}", "/staff/peers", "/staff/peers/new", f"/staff/peers/{data.sam.id}/edit",
            "/staff/board", "/staff/jobs"]


# Sign-in, sign-out, lockout, CSRF --------------------------------------------------------


def test_signed_out_user_is_sent_to_sign_in_from_every_page(client: Any, dashboard_data: Any) -> None:
    for path in [*supervisor_pages(dashboard_data), "/staff/", "/staff/me", "/staff/audit"]:
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/staff/sign-in?next="), path


def test_sign_in_goes_to_each_roles_home_and_sets_a_safe_session_cookie(client: Any, dashboard_data: Any) -> None:
    response = sign_in(client, "super", dashboard_data.passwords["super"])
    assert response.headers["Location"] == "/staff/"
    assert client.get("/staff/").headers["Location"] == "/staff/voicemails"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    # The test app's public URL is https, so the cookie is only ever sent over TLS.
    assert "Secure" in cookie
    client.post("/staff/sign-out", data={"csrf_token": csrf_token(client, "/staff/voicemails")})
    assert sign_in(client, "sam", dashboard_data.passwords["sam"]).status_code == 302
    assert client.get("/staff/").headers["Location"] == "/staff/me"


def test_wrong_password_is_refused_and_logged(client: Any, db: Any, dashboard_data: Any) -> None:
    response = sign_in(client, "super", "not-the-password")
    assert response.status_code == 401
    assert "do not match" in response.get_data(as_text=True)
    assert client.get("/staff/voicemails").status_code == 302
    assert [e.staff_user_id for e in audit_actions(db, "sign_in_failed")] == [dashboard_data.users["super"].id]


def test_repeated_failed_sign_ins_lock_the_account(client: Any, db: Any, dashboard_data: Any) -> None:
    for _ in range(5):
        assert sign_in(client, "super", "guessing-wrong").status_code == 401
    # Even the right password is refused while the account is locked.
    response = sign_in(client, "super", dashboard_data.passwords["super"])
    # The same answer as a wrong password or an unknown name: it never tells which names exist.
    assert response.status_code == 401
    assert "sign-in is paused for a while after too many failed attempts" in response.get_data(as_text=True)
    assert client.get("/staff/voicemails").status_code == 302
    assert len(audit_actions(db, "account_locked")) == 1
    user = db.get(StaffUser, dashboard_data.users["super"].id)
    assert user.locked_until is not None


def test_sign_out_ends_the_session(as_supervisor: Any, db: Any) -> None:
    response = post(as_supervisor, "/staff/sign-out")
    assert response.headers["Location"] == "/staff/sign-in"
    assert as_supervisor.get("/staff/voicemails").status_code == 302
    assert len(audit_actions(db, "sign_out")) == 1


def test_sign_in_without_csrf_token_fails(client: Any, dashboard_data: Any) -> None:
    response = client.post("/staff/sign-in", data={"username": "super", "password": dashboard_data.passwords["super"]})
    assert response.status_code == 400
    assert client.get("/staff/voicemails").status_code == 302


def test_staff_forms_without_csrf_token_fail(as_supervisor: Any, db: Any, dashboard_data: Any) -> None:
    vm_id = dashboard_data.high.id
    for path, form in ((f"/staff/voicemails/{vm_id}/review", {}),
                       (f"/staff/voicemails/{vm_id}/note", {"body": "forged"}),
                       (f"/staff/stories/{dashboard_data.story.id}/approve", {"consent": "yes"}),
                       ("/staff/sign-out", {})):
        assert as_supervisor.post(path, data=form).status_code == 400, path
        assert as_supervisor.post(path, data={**form, "csrf_token": "forged"}).status_code == 400, path
    db.expire_all()
    assert db.get(Voicemail, vm_id).reviewed_at is None
    assert db.get(PeerStory, dashboard_data.story.id).status == "draft"
    assert db.scalars(select(VoicemailNote)).all() == []


def test_twilio_webhooks_need_no_csrf_token(caller: Any, dashboard_data: Any) -> None:
    root = caller.call()
    assert root.tag == "Response"


def test_next_parameter_cannot_redirect_off_site(client: Any, dashboard_data: Any) -> None:
    token = csrf_token(client)
    response = client.post("/staff/sign-in?next=//evil.example/x", data={
        "username": "super", "password": dashboard_data.passwords["super"], "csrf_token": token})
    assert response.headers["Location"] == "/staff/"


# Permissions ------------------------------------------------------------------------------


def test_peer_cannot_open_supervisor_or_admin_pages(as_peer: Any, dashboard_data: Any) -> None:
    for path in [*supervisor_pages(dashboard_data), "/staff/audit"]:
        assert as_peer.get(path).status_code == 403, path
    assert post(as_peer, f"/staff/voicemails/{dashboard_data.high.id}/review").status_code == 403
    assert post(as_peer, f"/staff/voicemails/{dashboard_data.high.id}/reveal", reason="x").status_code == 403


def test_supervisor_opens_every_supervisor_page_but_not_the_audit_log(as_supervisor: Any, dashboard_data: Any) -> None:
    for path in supervisor_pages(dashboard_data):
        response = as_supervisor.get(path)
        assert response.status_code == 200, path
        assert response.headers["Cache-Control"] == "no-store"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert as_supervisor.get("/staff/audit").status_code == 403
    # The supervisor has no peer of their own.
    assert as_supervisor.get("/staff/me").status_code == 403


def test_admin_opens_supervisor_pages_and_the_audit_log(client: Any, dashboard_data: Any) -> None:
    sign_in(client, "admin", dashboard_data.passwords["admin"])
    for path in [*supervisor_pages(dashboard_data), "/staff/audit"]:
        assert client.get(path).status_code == 200, path


def test_every_page_labels_its_form_fields(as_supervisor: Any, dashboard_data: Any) -> None:
    for path in supervisor_pages(dashboard_data):
        html = as_supervisor.get(path).get_data(as_text=True)
        assert '<html lang="en">' in html and 'href="#main"' in html and 'name="viewport"' in html
        for field_id in re.findall(r'<(?:input|select|textarea)[^>]*\bid="([^"]+)"', html):
            assert f'for="{field_id}"' in html, (path, field_id)
        visible = re.findall(r'<(?:input|select|textarea)(?![^>]*type="hidden")[^>]*>', html)
        assert all(' id="' in tag for tag in visible), (path, visible)


# Voicemail inbox and page ------------------------------------------------------------------


def test_inbox_ranks_by_risk_then_age(as_supervisor: Any, dashboard_data: Any) -> None:
    html = as_supervisor.get("/staff/voicemails").get_data(as_text=True)
    order = [int(n) for n in re.findall(r'href="/staff/voicemails/(\d+)"', html)]
    d = dashboard_data
    # High first; the failed one (risk unknown) before low and no risk.
    assert order == [d.high.id, d.failed.id, d.low.id, d.safe.id]
    assert "High risk" in html and "Not yet triaged" in html


def test_voicemail_page_marks_risk_and_unsure_words_and_logs_the_view(as_supervisor: Any, db: Any,
                                                                     dashboard_data: Any) -> None:
    html = as_supervisor.get(f"/staff/voicemails/{dashboard_data.high.id}").get_data(as_text=True)
    marked = re.findall(r'<mark class="risk[^"]*">(\w+)<span class="visually-hidden"> \(risk word', html)
    assert marked == ["end", "it", "all"]
    assert re.search(r'<span class="unsure" title="Confidence 41%">tonight<span class="visually-hidden"> \(unsure\)',
                     html)
    assert CALLER_NUMBER not in html
    views = audit_actions(db, "view_transcript")
    assert [(e.staff_user_id, e.target_type, e.target_id) for e in views] == [
        (dashboard_data.users["super"].id, "voicemail", dashboard_data.high.id)]


def test_audio_plays_from_a_signed_url_decrypted_and_logged(as_supervisor: Any, db: Any, dashboard_data: Any) -> None:
    html = as_supervisor.get(f"/staff/voicemails/{dashboard_data.high.id}").get_data(as_text=True)
    src = re.search(r'<audio id="voicemail-audio"[^>]*src="([^"]+)"', html).group(1)
    response = as_supervisor.get(src)
    assert response.status_code == 200
    assert response.mimetype == "audio/wav"
    assert response.data == dashboard_data.audio
    assert [e.target_id for e in audit_actions(db, "play_recording")] == [dashboard_data.high.id]
    # A tampered token is refused.
    assert as_supervisor.get(src[:-3] + "xyz").status_code == 404


def test_audio_url_is_only_for_the_user_it_was_made_for(app: Any, dashboard_data: Any) -> None:
    first, second = app.test_client(), app.test_client()
    sign_in(first, "super", dashboard_data.passwords["super"])
    html = first.get(f"/staff/voicemails/{dashboard_data.high.id}").get_data(as_text=True)
    src = re.search(r'<audio id="voicemail-audio"[^>]*src="([^"]+)"', html).group(1)
    sign_in(second, "admin", dashboard_data.passwords["admin"])
    assert second.get(src).status_code == 403
    assert app.test_client().get(src).status_code == 302  # signed out: to sign in


def test_audio_url_expires(app: Any, as_supervisor: Any, dashboard_data: Any) -> None:
    app.config["STAFF_AUDIO_URL_TTL"] = -1
    html = as_supervisor.get(f"/staff/voicemails/{dashboard_data.high.id}").get_data(as_text=True)
    src = re.search(r'<audio id="voicemail-audio"[^>]*src="([^"]+)"', html).group(1)
    assert as_supervisor.get(src).status_code == 410


def test_reveal_number_needs_a_reason_and_is_logged(as_supervisor: Any, db: Any, dashboard_data: Any) -> None:
    path = f"/staff/voicemails/{dashboard_data.high.id}/reveal"
    refused = post(as_supervisor, path, reason="")
    assert refused.status_code == 400
    assert CALLER_NUMBER not in refused.get_data(as_text=True)
    assert audit_actions(db, "reveal_number") == []
    response = post(as_supervisor, path, reason="welfare check after high-risk message")
    assert response.status_code == 200
    assert f'<p id="revealed-number" class="revealed">{CALLER_NUMBER}</p>' in response.get_data(as_text=True)
    reveals = audit_actions(db, "reveal_number")
    assert len(reveals) == 1 and "welfare check" in reveals[0].detail
    # The number is not kept: the next view hides it again.
    assert CALLER_NUMBER not in as_supervisor.get(f"/staff/voicemails/{dashboard_data.high.id}").get_data(as_text=True)


def test_mark_reviewed_takes_it_out_of_the_inbox(as_supervisor: Any, db: Any, dashboard_data: Any) -> None:
    response = post(as_supervisor, f"/staff/voicemails/{dashboard_data.high.id}/review")
    assert response.headers["Location"] == "/staff/voicemails"
    html = as_supervisor.get("/staff/voicemails").get_data(as_text=True)
    assert f"Voicemail {dashboard_data.high.id} is marked reviewed." in html
    assert f'href="/staff/voicemails/{dashboard_data.high.id}"' not in html
    assert f'href="/staff/voicemails/{dashboard_data.high.id}"' in as_supervisor.get(
        "/staff/voicemails?show=all").get_data(as_text=True)
    db.expire_all()
    vm = db.get(Voicemail, dashboard_data.high.id)
    assert vm.reviewed_by_id == dashboard_data.users["super"].id and vm.reviewed_at is not None
    assert len(audit_actions(db, "mark_reviewed")) == 1


def test_follow_up_reaches_the_peer_without_the_transcript(app: Any, as_supervisor: Any, db: Any,
                                                          dashboard_data: Any) -> None:
    d = dashboard_data
    post(as_supervisor, f"/staff/voicemails/{d.high.id}/follow-up", peer_id=str(d.sam.id), note="Call back tomorrow")
    follow_up = db.scalars(select(FollowUp)).one()
    assert (follow_up.peer_id, follow_up.voicemail_id, follow_up.status) == (d.sam.id, d.high.id, "open")
    peer_client = app.test_client()
    sign_in(peer_client, "sam", d.passwords["sam"])
    html = peer_client.get("/staff/me").get_data(as_text=True)
    assert "Call back tomorrow" in html
    assert "end it all" not in html and CALLER_NUMBER not in html
    post(peer_client, f"/staff/me/follow-ups/{follow_up.id}/done")
    db.expire_all()
    assert db.get(FollowUp, follow_up.id).status == "done"
    assert "Call back tomorrow" not in peer_client.get("/staff/me").get_data(as_text=True)


def test_notes_are_stored_encrypted_and_shown(svc: Any, as_supervisor: Any, db: Any, dashboard_data: Any) -> None:
    path = f"/staff/voicemails/{dashboard_data.high.id}"
    assert post(as_supervisor, path + "/note", body="").status_code == 400
    post(as_supervisor, path + "/note", body="Referred to the crisis team")
    note = db.scalars(select(VoicemailNote)).one()
    assert b"crisis team" not in note.body_encrypted
    assert svc.vault.decrypt_text(note.body_encrypted) == "Referred to the crisis team"
    assert "Referred to the crisis team" in as_supervisor.get(path).get_data(as_text=True)


def test_retry_failed_transcription_enqueues_it_again(as_supervisor: Any, db: Any, redis: Any,
                                                      dashboard_data: Any) -> None:
    assert post(as_supervisor, f"/staff/voicemails/{dashboard_data.high.id}/retry").status_code == 409
    vm_id = dashboard_data.failed.id
    response = post(as_supervisor, f"/staff/voicemails/{vm_id}/retry")
    assert response.headers["Location"] == f"/staff/voicemails/{vm_id}"
    db.expire_all()
    vm = db.get(Voicemail, vm_id)
    assert (vm.status, vm.failure_reason, vm.job_id) == ("pending", None, f"transcribe-voicemail-{vm_id}")
    assert Queue("transcription", connection=redis).job_ids == [f"transcribe-voicemail-{vm_id}"]
    assert len(audit_actions(db, "retry_transcription")) == 1


# Stories ------------------------------------------------------------------------------------


def test_story_needs_confirmed_consent_before_approval(as_supervisor: Any, db: Any, dashboard_data: Any) -> None:
    story_id = dashboard_data.story.id
    page = as_supervisor.get(f"/staff/stories/{story_id}").get_data(as_text=True)
    assert "It took three tries" in page and 'id="story-audio"' in page
    refused = post(as_supervisor, f"/staff/stories/{story_id}/approve")
    assert refused.status_code == 400
    db.expire_all()
    assert db.get(PeerStory, story_id).status == "draft"
    post(as_supervisor, f"/staff/stories/{story_id}/approve", consent="yes")
    db.expire_all()
    story = db.get(PeerStory, story_id)
    assert (story.status, story.consent_given) == ("approved", True) and story.consent_at is not None
    assert len(audit_actions(db, "approve_story")) == 1 and len(audit_actions(db, "confirm_consent")) == 1
    post(as_supervisor, f"/staff/stories/{story_id}/retire")
    db.expire_all()
    assert db.get(PeerStory, story_id).status == "retired"


def test_story_audio_is_served_for_review(as_supervisor: Any, dashboard_data: Any) -> None:
    html = as_supervisor.get(f"/staff/stories/{dashboard_data.story.id}").get_data(as_text=True)
    src = re.search(r'<audio id="story-audio"[^>]*src="([^"]+)"', html).group(1)
    response = as_supervisor.get(src)
    assert response.status_code == 200 and response.data.startswith(b"RIFF")


# Roster ---------------------------------------------------------------------------------


def test_add_edit_and_deactivate_a_peer(svc: Any, as_supervisor: Any, db: Any, dashboard_data: Any) -> None:
    response = post(as_supervisor, "/staff/peers/new", display_name="Alex", phone="+1 (555) 555-0177",
                    languages=["en", "es"], tags="Chronic Pain, mental-health")
    assert response.headers["Location"] == "/staff/peers"
    alex = db.scalars(select(Peer).where(Peer.display_name == "Alex")).one()
    vault = svc.vault
    assert vault.decrypt_text(alex.phone_encrypted) == "+15555550177"
    assert (alex.languages, alex.tags, alex.status) == (["en", "es"], ["chronic-pain", "mental-health"], "signed_off")
    assert "+15555550177" not in as_supervisor.get("/staff/peers").get_data(as_text=True)

    duplicate = post(as_supervisor, "/staff/peers/new", display_name="Copy", phone="+15555550177", languages=["en"])
    assert duplicate.status_code == 400
    assert "already has that phone number" in duplicate.get_data(as_text=True)

    post(as_supervisor, f"/staff/peers/{alex.id}/edit", display_name="Alex R", phone="", languages=["en"], tags="")
    db.expire_all()
    alex = db.get(Peer, alex.id)
    assert (alex.display_name, alex.languages, alex.tags) == ("Alex R", ["en"], [])
    assert vault.decrypt_text(alex.phone_encrypted) == "+15555550177"

    post(as_supervisor, f"/staff/peers/{dashboard_data.sam.id}/active", active="no")
    db.expire_all()
    sam = db.get(Peer, dashboard_data.sam.id)
    assert (sam.active, sam.status) == (False, "signed_off")
    assert [e.detail for e in audit_actions(db, "peer_status")] == ["available -> signed_off (deactivated)"]
    assert len(audit_actions(db, "add_peer")) == 1 and len(audit_actions(db, "edit_peer")) == 1


def test_peer_form_rejects_bad_input(as_supervisor: Any, db: Any, dashboard_data: Any) -> None:
    response = post(as_supervisor, "/staff/peers/new", display_name="", phone="call me", tags="no/slash")
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "Enter a display name" in text and "country code" in text and "Choose at least one language" in text
    assert db.scalars(select(Peer).where(Peer.display_name == "")).all() == []


# Live board and failed jobs ----------------------------------------------------------------


def test_live_board_shows_calls_and_callbacks_without_numbers(svc: Any, as_supervisor: Any, db: Any,
                                                              dashboard_data: Any) -> None:
    empty = as_supervisor.get("/staff/board").get_data(as_text=True)
    assert "No calls in progress." in empty and "Nobody is on hold." in empty and "No callbacks waiting." in empty
    vault = svc.vault
    call = make_call(db, "CA_live", caller=dashboard_data.caller, status="in-progress", language="es")
    talking = make_call(db, "CA_talk", status="in-progress", language="en")
    held = make_call(db, "CA_hold", status="in-progress", language="en")
    make_call(db, "CA_done", status="completed")
    db.add(PeerRequest(call_sid="CA_talk", call_id=talking.id, status="connected", peer_id=dashboard_data.sam.id))
    db.add(PeerRequest(call_sid="CA_hold", call_id=held.id, status="waiting", language="en",
                       wanted_tag="medication-based-recovery"))
    db.add(CallbackRequest(caller_id=dashboard_data.caller.id, number_encrypted=vault.encrypt_text(CALLER_NUMBER),
                           language="en", window="evening"))
    db.commit()
    html = as_supervisor.get("/staff/board").get_data(as_text=True)
    assert f"Call {call.id} ·" in html and "Calls in progress (2)" in html
    assert re.search(rf"Call {talking.id} · \d+ min · English · with Sam", html)
    assert re.search(rf"Call {call.id} · \d+ min · Spanish · at the greeting", html)  # words, not codes
    assert "Callers waiting for a peer (1)" in html and "On hold · waiting 0 min · English · asked for medication" in html
    assert "Pending callbacks (1)" in html and "time: Evening, 17:00 to 21:00" in html
    assert re.search(r"asked \d\d:\d\d E[SD]T", html)  # the line's time zone (America/New_York), shown
    assert CALLER_NUMBER not in html
    # Updated in place by staff.js (a polite live region, a pause button), never by a meta refresh.
    assert 'http-equiv="refresh"' not in html
    assert 'id="board-live" class="meta" role="status" aria-live="polite"' in html
    assert 'data-summary="2 calls in progress, 1 caller waiting, 1 callback pending"' in html


def _boom() -> None:
    raise RuntimeError("speech model missing")


def test_failed_jobs_are_listed_and_retried(as_supervisor: Any, db: Any, redis: Any, work_jobs: Any,
                                            dashboard_data: Any) -> None:
    assert "No failed jobs." in as_supervisor.get("/staff/jobs").get_data(as_text=True)
    queue = Queue("default", connection=redis)
    job = queue.enqueue(_boom, job_id="boom-1")
    work_jobs("default")
    html = as_supervisor.get("/staff/jobs").get_data(as_text=True)
    assert "tests.test_dashboard._boom" in html and "RuntimeError: speech model missing" in html
    response = post(as_supervisor, "/staff/jobs/retry", queue="default", job_id=job.id)
    assert response.headers["Location"] == "/staff/jobs"
    assert queue.job_ids == ["boom-1"]
    assert FailedJobRegistry(queue=queue).get_job_ids() == []
    assert [e.detail for e in audit_actions(db, "retry_job")] == ["default:boom-1"]
    # A second retry of the same job finds nothing to retry.
    again = post(as_supervisor, "/staff/jobs/retry", queue="default", job_id=job.id)
    assert "no longer in the failed list" in as_supervisor.get(again.headers["Location"]).get_data(as_text=True)


# Peer pages ---------------------------------------------------------------------------------


def test_peer_sets_status_and_it_is_logged(as_peer: Any, db: Any, dashboard_data: Any) -> None:
    html = as_peer.get("/staff/me").get_data(as_text=True)
    assert '<strong id="my-status">Available</strong>' in html
    response = post(as_peer, "/staff/me/status", status="break")
    assert response.headers["Location"] == "/staff/me"
    html = as_peer.get("/staff/me").get_data(as_text=True)
    assert '<strong id="my-status">On a break</strong>' in html and "Your status is now: On a break." in html
    db.expire_all()
    assert db.get(Peer, dashboard_data.sam.id).status == "break"
    entries = audit_actions(db, "peer_status")
    assert [(e.staff_user_id, e.target_id, e.detail) for e in entries] == [
        (dashboard_data.users["sam"].id, dashboard_data.sam.id, "available -> break")]
    post(as_peer, "/staff/me/status", status="busy")  # routing sets busy, not the peer
    db.expire_all()
    assert db.get(Peer, dashboard_data.sam.id).status == "break"


def test_peer_sees_calls_they_took_and_adds_a_wrap_up_note(as_peer: Any, db: Any, dashboard_data: Any) -> None:
    assert "Calls you take will show here." in as_peer.get("/staff/me").get_data(as_text=True)
    mine = make_call(db, "CA_mine", caller=dashboard_data.caller, status="completed", duration_s=600, outcome="peer")
    theirs = make_call(db, "CA_theirs", status="completed")
    db.add(PeerRequest(call_sid="CA_mine", call_id=mine.id, status="ended", peer_id=dashboard_data.sam.id))
    db.add(PeerRequest(call_sid="CA_theirs", call_id=theirs.id, status="ended", peer_id=dashboard_data.rosa.id))
    db.commit()
    html = as_peer.get("/staff/me").get_data(as_text=True)
    assert f'id="wrap-{mine.id}"' in html and f'id="wrap-{theirs.id}"' not in html and "10 min · peer" in html
    post(as_peer, f"/staff/me/calls/{mine.id}/wrap-up", note="Talked about clinic hours")
    assert post(as_peer, f"/staff/me/calls/{theirs.id}/wrap-up", note="not mine").status_code == 404
    assert "Talked about clinic hours" in as_peer.get("/staff/me").get_data(as_text=True)
    note = db.scalars(select(WrapUpNote)).one()
    assert (note.call_id, note.peer_id) == (mine.id, dashboard_data.sam.id)
    assert b"clinic" not in note.body_encrypted


def test_peer_never_sees_a_callers_number(svc: Any, as_peer: Any, db: Any, dashboard_data: Any) -> None:
    vault = svc.vault
    def callback(window: str, peer_id: int | None, status: str = "pending") -> None:
        db.add(CallbackRequest(caller_id=dashboard_data.caller.id, number_encrypted=vault.encrypt_text(CALLER_NUMBER),
                               language="es", window=window, peer_id=peer_id, status=status))

    callback("morning", dashboard_data.sam.id)
    callback("evening", None, "dialing")
    callback("afternoon", dashboard_data.rosa.id)  # Rosa's, not Sam's
    callback("night", None, "completed")
    db.commit()
    html = as_peer.get("/staff/me").get_data(as_text=True)
    assert "Upcoming callbacks (2)" in html and "time: Morning, 9:00 to 12:00" in html and "time: Evening, 17:00" in html
    assert "<strong>Yours</strong> · Asked" in html and "afternoon" not in html and "night" not in html
    assert CALLER_NUMBER not in html and "555" not in html


# Audit log ----------------------------------------------------------------------------------


def test_admin_filters_the_audit_log(client: Any, db: Any, dashboard_data: Any) -> None:
    sign_in(client, "admin", dashboard_data.passwords["admin"])
    client.get(f"/staff/voicemails/{dashboard_data.high.id}")
    html = client.get("/staff/audit?action=view_transcript").get_data(as_text=True)
    rows = re.findall(r"<tr><td>[^<]+</td><td>([^<]+)</td><td>([^<]+)</td>\s*<td>([^<]+)</td>", html)
    assert rows == [("admin", "View transcript", f"voicemail {dashboard_data.high.id}")]
    other = client.get(f"/staff/audit?user={dashboard_data.users['sam'].id}").get_data(as_text=True)
    assert "No entries match." in other
    signins = client.get("/staff/audit?action=sign_in").get_data(as_text=True)
    assert re.findall(r"<td>(Sign in)</td>", signins) == ["Sign in"]


def test_audit_date_filters_are_days_in_the_line_time_zone(client: Any, db: Any, svc: Any,
                                                            dashboard_data: Any) -> None:
    # Two entries an hour apart across midnight in New York (EDT, UTC-4), both on 10 March in UTC.
    assert svc.settings.line_timezone == "America/New_York"
    for at, detail in ((datetime(2026, 3, 10, 3, 30, tzinfo=timezone.utc), "late on the 9th"),
                       (datetime(2026, 3, 10, 4, 30, tzinfo=timezone.utc), "early on the 10th")):
        db.add(AuditEntry(action="boundary_check", detail=detail, at=at))
    db.commit()
    sign_in(client, "admin", dashboard_data.passwords["admin"])

    def shown(**days: str) -> list[tuple[str, str]]:
        html = client.get("/staff/audit", query_string={"action": "boundary_check", **days}).get_data(as_text=True)
        return re.findall(r"<tr><td>([^<]+)</td>.*?<td>(late on the 9th|early on the 10th)</td>", html, re.S)

    assert shown(since="2026-03-10", until="2026-03-10") == [("2026-03-10 00:30:00 EDT", "early on the 10th")]
    assert shown(since="2026-03-09", until="2026-03-09") == [("2026-03-09 23:30:00 EDT", "late on the 9th")]
    assert shown(until="2026-03-09") == [("2026-03-09 23:30:00 EDT", "late on the 9th")]
    assert shown(since="2026-03-10") == [("2026-03-10 00:30:00 EDT", "early on the 10th")]
    assert len(shown(since="2026-03-09", until="2026-03-10")) == 2
    assert "From (date, America/New_York)" in client.get("/staff/audit").get_data(as_text=True)


def test_audit_log_is_append_only_from_the_app(svc: Any, dashboard_data: Any) -> None:
    from ivr.dashboard.core import AuditLogError
    from ivr.errors import IvrError

    assert issubclass(AuditLogError, IvrError)
    with svc.sessions() as session:
        session.add(AuditEntry(action="sign_in"))
        session.commit()
        entry = session.scalars(select(AuditEntry)).first()
        entry.detail = "rewritten"
        with pytest.raises(AuditLogError):
            session.commit()
        session.rollback()
        session.delete(session.scalars(select(AuditEntry)).first())
        with pytest.raises(AuditLogError):
            session.commit()


# CLI ----------------------------------------------------------------------------------------


def test_create_user_makes_a_login_that_signs_in(runner: Any, client: Any, db: Any) -> None:
    result = runner.invoke(args=["create-user", "ana", "--role", "supervisor", "--password", "a-long-password"])
    assert result.exit_code == 0, result.output
    assert "created supervisor ana" in result.output
    user = db.scalars(select(StaffUser).where(StaffUser.username == "ana")).one()
    assert user.password_hash != "a-long-password"
    assert sign_in(client, "ana", "a-long-password").headers["Location"] == "/staff/"
    short = runner.invoke(args=["create-user", "bo", "--role", "peer", "--password", "short"])
    assert short.exit_code != 0 and "at least 10 characters" in short.output


def test_create_user_links_a_peer_login_to_its_peer(runner: Any, client: Any, db: Any, dashboard_data: Any) -> None:
    unlinked = runner.invoke(args=["create-user", "bo", "--role", "peer", "--password", "a-long-password"])
    assert unlinked.exit_code != 0 and "needs --peer-id" in unlinked.output
    missing = runner.invoke(args=["create-user", "bo", "--role", "peer", "--password", "a-long-password",
                                  "--peer-id", "999999"])
    assert missing.exit_code != 0 and "no peer with id 999999" in missing.output
    assert db.scalars(select(StaffUser).where(StaffUser.username == "bo")).all() == []
    ok = runner.invoke(args=["create-user", "rosa", "--role", "peer", "--password", "a-long-password",
                             "--peer-id", str(dashboard_data.rosa.id)])
    assert ok.exit_code == 0, ok.output
    sign_in(client, "rosa", "a-long-password")
    assert "My shift, Rosa" in client.get("/staff/me").get_data(as_text=True)


def test_risk_phrases_are_found_through_punctuation_and_case() -> None:
    from ivr.dashboard.transcript import Token, tokens_for

    tokens = tokens_for("I can't go on. End it, all? no; end it later", None, ["end it all", "can't go on"])
    assert [t.text for t in tokens if t.risk] == ["can't", "go", "on.", "End", "it,", "all?"]
    assert not any(t.unsure for t in tokens)  # text alone carries no confidence
    words = [{"word": "pills", "conf": 0.3, "start": 0.0, "end": 0.4}, {"word": "", "conf": 1.0}]
    assert tokens_for("pills", words, ["pills"]) == [Token("pills", risk=True, unsure=True, conf=0.3, start=0.0)]
