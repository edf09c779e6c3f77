"""Staff security: sessions revoked on sign-out and capped at 12 hours, every recording
download audited (ranges too), ``next=`` that cannot break the answer, an append-only audit
log with a keyed hash chain (``peerline audit verify``; a trigger on PostgreSQL), sign-in
throttled per address as well as per account with one answer for every refusal, and the
staff headers (HSTS included) on every staff response, error pages too."""
from __future__ import annotations

import re
import time
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from models import AuditEntry, utcnow
from tests.helpers import require
from tests.test_dashboard import audit_actions, csrf_token, post, sign_in

STAFF_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
}


def signed_in(app: Any, dashboard_data: Any, username: str = "super", address: str = "127.0.0.1") -> Any:
    """A new client signed in as ``username`` from ``address``."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    assert sign_in(client, username, dashboard_data.passwords[username]).status_code == 302
    return client


# Sessions -------------------------------------------------------------------------------------

def test_signing_out_revokes_the_session_on_the_server(app: Any, dashboard_data: Any) -> None:
    client = signed_in(app, dashboard_data)
    copy = app.test_client()  # the same cookie in another browser (stolen, or left on a shared PC)
    copy.set_cookie("session", client.get_cookie("session").value, domain="localhost")
    assert copy.get("/staff/voicemails").status_code == 200
    post(client, "/staff/sign-out")
    assert copy.get("/staff/voicemails").status_code == 302  # revoked, though the cookie is intact
    assert client.get("/staff/voicemails").status_code == 302


def test_a_session_ends_twelve_hours_after_sign_in_however_busy(app: Any, dashboard_data: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    assert app.config["PERMANENT_SESSION_LIFETIME"] == timedelta(hours=12)  # not Flask's 31 days
    client = app.test_client()
    response = sign_in(client, "super", dashboard_data.passwords["super"])
    expires = parsedate_to_datetime(re.search(r"Expires=([^;]+)", response.headers["Set-Cookie"]).group(1))
    assert timedelta(hours=11, minutes=59) < expires - utcnow() <= timedelta(hours=12)
    start = time.time()
    monkeypatch.setattr(time, "time", lambda: start + 11.9 * 3600)
    assert client.get("/staff/voicemails").status_code == 200  # a request renews the cookie...
    monkeypatch.setattr(time, "time", lambda: start + 12 * 3600 + 1)
    assert client.get("/staff/voicemails").status_code == 302  # ...but not the 12 hours from sign-in


# Recordings -----------------------------------------------------------------------------------

def test_every_recording_download_is_audited_ranges_included(app: Any, db: Any, dashboard_data: Any) -> None:
    client = signed_in(app, dashboard_data)
    html = client.get(f"/staff/voicemails/{dashboard_data.high.id}").get_data(as_text=True)
    src = re.search(r'<audio id="voicemail-audio"[^>]*src="([^"]+)"', html).group(1)
    whole_but_one = client.get(src, headers={"Range": "bytes=1-"})
    assert whole_but_one.status_code == 206 and whole_but_one.data == dashboard_data.audio[1:]
    assert client.get(src, headers={"Range": "bytes=0-99"}).status_code == 206
    assert client.get(src).status_code == 200
    entries = audit_actions(db, "play_recording")
    assert [(e.target_id, e.detail) for e in entries] == [
        (dashboard_data.high.id, "range bytes=1-"), (dashboard_data.high.id, "range bytes=0-99"),
        (dashboard_data.high.id, None)]


# next= ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("target, landing", [
    ("/staff/%0d%0aSet-Cookie:%20planted=1", "/staff/"),
    ("/staff/voicemails%0a", "/staff/"),
    ("/staff/%09x", "/staff/"),
    ("https://evil.example/staff/", "/staff/"),
    ("//evil.example/staff/", "/staff/"),
    ("/staff/voicemails", "/staff/voicemails"),
])
def test_next_is_followed_only_to_a_clean_staff_path(client: Any, dashboard_data: Any, target: str,
                                                      landing: str) -> None:
    token = csrf_token(client)
    response = client.post(f"/staff/sign-in?next={target}", data={
        "username": "super", "password": dashboard_data.passwords["super"], "csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"] == landing
    assert "planted" not in response.headers.get("Set-Cookie", "")


# The audit log ----------------------------------------------------------------------------------

def raw_change(engine: Any, sql: str, **params: Any) -> None:
    """Change the database behind the app's back, as someone with database access could."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))  # a superuser turns triggers off
        conn.execute(text(sql), params)


def test_audit_verify_finds_a_changed_or_removed_entry(app: Any, runner: Any, engine: Any, db: Any,
                                                       dashboard_data: Any) -> None:
    client = signed_in(app, dashboard_data)
    client.get(f"/staff/voicemails/{dashboard_data.high.id}")
    post(client, "/staff/sign-out")
    entries = db.query(AuditEntry).order_by(AuditEntry.id).all()
    assert [e.action for e in entries] == ["sign_in", "view_transcript", "sign_out"]
    assert all(e.chain_hash and len(e.chain_hash) == 64 for e in entries)
    ok = runner.invoke(args=["audit", "verify"])
    assert ok.exit_code == 0, ok.output
    assert ok.output == "audit log intact: 3 entries check out\n"

    raw_change(engine, "UPDATE audit_log SET target_id = 999 WHERE id = :id", id=entries[1].id)
    changed = runner.invoke(args=["audit", "verify"])
    assert changed.exit_code == 1
    assert f"entry {entries[1].id} does not match the chain" in changed.output
    raw_change(engine, "UPDATE audit_log SET target_id = :t WHERE id = :id", t=dashboard_data.high.id,
               id=entries[1].id)
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0  # put back: intact again

    raw_change(engine, "DELETE FROM audit_log WHERE id = :id", id=entries[1].id)
    removed = runner.invoke(args=["audit", "verify"])
    assert removed.exit_code == 1
    assert f"entry {entries[2].id} does not match the chain" in removed.output


def test_the_database_refuses_to_change_the_audit_log_on_postgresql(engine: Any, app: Any) -> None:
    require(engine.dialect.name == "postgresql",
            "the append-only trigger is PostgreSQL's (SQLite has none): run with TEST_DATABASE_URL=postgresql://...")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO audit_log (at, action) VALUES (now(), 'test_entry')"))
    for sql in ("UPDATE audit_log SET action = 'forged'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
        with pytest.raises(DBAPIError, match="append-only"):
            with engine.begin() as conn:
                conn.execute(text(sql))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT action FROM audit_log")).scalars().all() == ["test_entry"]


# Sign-in throttling -----------------------------------------------------------------------------

def test_one_answer_for_unknown_wrong_and_locked(app: Any, dashboard_data: Any) -> None:
    app.config["STAFF_MAX_FAILED_SIGN_INS"] = 2
    client = app.test_client()
    answers = [sign_in(client, "nobody-here", "whatever-password") for _ in range(2)]
    answers += [sign_in(client, "super", "guessing-wrong") for _ in range(2)]
    answers.append(sign_in(client, "super", dashboard_data.passwords["super"]))  # locked now
    assert {(a.status_code, re.search(r'<p[^>]*role="alert"[^>]*>(.*?)</p>', a.get_data(as_text=True), re.S)
             .group(1).strip()) for a in answers} == {(401, (
        "That username and password do not match an active account, or sign-in is paused for a while "
        "after too many failed attempts. Try again later or ask an admin."))}


def test_failed_sign_ins_are_throttled_per_address_across_user_names(app: Any, db: Any,
                                                                      dashboard_data: Any) -> None:
    app.config["STAFF_MAX_FAILED_SIGN_INS_PER_ADDRESS"] = 3
    guesser = app.test_client()
    guesser.environ_base["REMOTE_ADDR"] = "203.0.113.9"
    for name in ("alice", "bob", "carol"):  # different names: no account is ever locked
        assert sign_in(guesser, name, "password-guess").status_code == 401
    # Now even a right password from that address is refused, with the same answer...
    assert sign_in(guesser, "super", dashboard_data.passwords["super"]).status_code == 401
    assert guesser.get("/staff/voicemails").status_code == 302
    assert [e.detail for e in audit_actions(db, "sign_in_throttled")] == ["address 203.0.113.9"]
    # ...while the account itself is not locked: from another address it signs in.
    signed_in(app, dashboard_data, address="198.51.100.7")


# Headers and error pages ------------------------------------------------------------------------

def assert_staff_headers(response: Any) -> None:
    for name, value in STAFF_HEADERS.items():
        assert response.headers.get(name) == value, name
    assert response.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_staff_headers_and_branded_pages_on_every_error(app: Any, dashboard_data: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    client = signed_in(app, dashboard_data, "sam")  # a peer
    forbidden = client.get("/staff/voicemails")
    assert forbidden.status_code == 403 and "<h1>Not allowed</h1>" in forbidden.get_data(as_text=True)
    assert "peerline staff" in forbidden.get_data(as_text=True)
    missing = client.get("/staff/no-such-page")
    assert missing.status_code == 404 and "<h1>Page not found</h1>" in missing.get_data(as_text=True)
    anonymous_missing = app.test_client().get("/staff/nothing/here")
    assert anonymous_missing.status_code == 404
    no_token = client.post("/staff/me/status", data={"status": "break"})
    assert no_token.status_code == 400 and "<h1>Form expired</h1>" in no_token.get_data(as_text=True)
    assert_staff_headers(no_token)
    for response in (forbidden, missing, anonymous_missing, app.test_client().get("/staff/sign-in")):
        assert_staff_headers(response)

    def broken(*_args: Any, **_kwargs: Any) -> str:
        raise RuntimeError("a bug")

    monkeypatch.setitem(app.view_functions, "staff.my_shift", broken)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: the error page, not the traceback
    failed = client.get("/staff/me")
    assert failed.status_code == 500 and "<h1>Something went wrong</h1>" in failed.get_data(as_text=True)
    assert "a bug" not in failed.get_data(as_text=True)
    assert_staff_headers(failed)


def test_no_hsts_over_plain_http(app_config: Any, engine: Any, redis: Any) -> None:
    from ivr import create_app

    app = create_app({**app_config, "public_base_url": "http://127.0.0.1:5000"})
    response = app.test_client().get("/staff/sign-in")
    assert "Strict-Transport-Security" not in response.headers
    assert response.headers["X-Frame-Options"] == "DENY"


# Behind a reverse proxy (PEERLINE_TRUSTED_PROXIES) ------------------------------------------------

def behind_proxy(app_config: Any, hops: int, **changes: Any) -> Any:
    """The app as a web server behind ``hops`` reverse proxies would run it (the test client connects from the proxy)."""
    from ivr import create_app

    return create_app({**app_config, "trusted_proxies": hops, **changes})


def from_proxy(app: Any, forwarded_for: str) -> Any:
    """A client whose requests reach the app through the proxy at 10.0.0.2, for a browser at ``forwarded_for``."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "10.0.0.2"
    client.environ_base["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return client


def test_behind_one_trusted_proxy_staff_are_throttled_per_browser_address(app_config: Any, engine: Any, redis: Any,
                                                                            db: Any, dashboard_data: Any) -> None:
    app = behind_proxy(app_config, 1)
    app.config["STAFF_MAX_FAILED_SIGN_INS_PER_ADDRESS"] = 3
    guesser = from_proxy(app, "203.0.113.9")
    for name in ("alice", "bob", "carol"):
        assert sign_in(guesser, name, "password-guess").status_code == 401
    assert sign_in(guesser, "super", dashboard_data.passwords["super"]).status_code == 401  # paused
    assert [e.detail for e in audit_actions(db, "sign_in_throttled")] == ["address 203.0.113.9"]
    # A colleague at another address, through the same proxy, signs in: not paused with the guesser.
    colleague = from_proxy(app, "198.51.100.7")
    assert sign_in(colleague, "super", dashboard_data.passwords["super"]).status_code == 302
    # A forged first entry does not help the guesser: only the entry the proxy appended counts.
    spoofed = from_proxy(app, "192.0.2.1, 203.0.113.9")
    assert sign_in(spoofed, "super", dashboard_data.passwords["super"]).status_code == 401


def test_without_trusted_proxies_a_client_cannot_choose_its_address(app_config: Any, engine: Any, redis: Any,
                                                                    db: Any, dashboard_data: Any) -> None:
    app = behind_proxy(app_config, 0)
    app.config["STAFF_MAX_FAILED_SIGN_INS_PER_ADDRESS"] = 3
    for n, name in enumerate(("alice", "bob", "carol")):  # a new X-Forwarded-For for each guess
        assert sign_in(from_proxy(app, f"203.0.113.{n}"), name, "password-guess").status_code == 401
    fresh = from_proxy(app, "198.51.100.7")  # the header is ignored: the address is still 10.0.0.2
    assert sign_in(fresh, "super", dashboard_data.passwords["super"]).status_code == 401
    assert {e.detail for e in audit_actions(db, "sign_in_throttled")} == {"address 10.0.0.2"}


def test_hsts_when_the_proxy_says_the_browser_used_https(app_config: Any, engine: Any, redis: Any) -> None:
    trusted = behind_proxy(app_config, 1, public_base_url="http://127.0.0.1:5000")
    response = from_proxy(trusted, "198.51.100.7").get("/staff/sign-in", headers={"X-Forwarded-Proto": "https"})
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    plain = from_proxy(trusted, "198.51.100.7").get("/staff/sign-in", headers={"X-Forwarded-Proto": "http"})
    assert "Strict-Transport-Security" not in plain.headers
    untrusted = behind_proxy(app_config, 0, public_base_url="http://127.0.0.1:5000")
    ignored = from_proxy(untrusted, "198.51.100.7").get("/staff/sign-in", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in ignored.headers


@pytest.mark.parametrize("value", ["-1", "10.0.0.2", "6"])
def test_a_bad_trusted_proxies_setting_is_refused_at_start_naming_it(tmp_path: Any, value: str) -> None:
    from callflows.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match="PEERLINE_TRUSTED_PROXIES"):
        Settings.from_env(tmp_path, {"PEERLINE_TRUSTED_PROXIES": value}).check()


def test_a_wrong_method_on_a_staff_path_gets_the_branded_page_with_the_staff_headers(app: Any,
                                                                                     dashboard_data: Any) -> None:
    client = signed_in(app, dashboard_data, "sam")
    token = csrf_token(client, "/staff/me")
    for response in (client.post("/staff/no-such-page", data={"csrf_token": token}),  # an unknown path
                     app.test_client().post("/staff/nothing/here"),  # signed out, no token
                     client.get("/staff/me/status"),  # a POST-only page
                     client.delete("/staff/voicemails")):
        body = response.get_data(as_text=True)
        assert response.status_code == 405 and "<h1>Not allowed</h1>" in body, body[:300]
        assert "This page cannot be used that way." in body and "peerline staff" in body
        assert_staff_headers(response)
    assert set(client.get("/staff/me/status").headers["Allow"].split(", ")) >= {"POST"}
    # The webhooks keep their own answer to a wrong method (TwiML for a caller), not the staff page.
    webhook = app.test_client().get("/voice/incoming")  # unsigned, so refused as before
    assert webhook.status_code == 403 and "peerline staff" not in webhook.get_data(as_text=True)


# Characters PostgreSQL refuses ------------------------------------------------------------------------

NUL_PAGE = "invisible NUL character"


def assert_refused_for_nul(response: Any) -> None:
    body = response.get_data(as_text=True)
    assert response.status_code == 400 and "<h1>Character not allowed</h1>" in body and NUL_PAGE in body, body[:300]
    assert "Nothing was changed." in body
    assert_staff_headers(response)


def test_a_nul_typed_into_a_staff_form_is_refused_with_a_clear_page_and_nothing_saved(app: Any, db: Any,
                                                                                      dashboard_data: Any) -> None:
    from models import CallerPlan, Peer, PeerStory

    client = signed_in(app, dashboard_data, "super")
    peers = db.query(Peer).count()
    assert_refused_for_nul(post(client, "/staff/peers/new", display_name="Ana\x00", phone="+15555550142",
                                languages="en"))
    assert_refused_for_nul(post(client, f"/staff/peers/{dashboard_data.rosa.id}/edit", display_name="Rosa\x00",
                                phone="", languages="en"))
    assert_refused_for_nul(post(client, f"/staff/stories/{dashboard_data.story.id}/approve", consent="yes\x00"))
    assert_refused_for_nul(post(client, "/staff/hours/close", reason="Storm\x00 warning", until=""))
    caller_id = dashboard_data.caller.id
    assert_refused_for_nul(post(client, f"/staff/callers/{caller_id}/plan", plan="Calls\x00 daily", daily_limit=""))
    assert_refused_for_nul(client.get("/staff/audit", query_string={"action": "sign\x00in"}))
    # Nothing was saved: no new peer, the name kept, the story still a draft, the line open, no plan.
    db.expire_all()
    assert db.query(Peer).count() == peers and db.get(Peer, dashboard_data.rosa.id).display_name == "Rosa"
    assert db.get(PeerStory, dashboard_data.story.id).status != "approved"
    assert "Storm" not in client.get("/staff/hours").get_data(as_text=True)
    assert db.query(CallerPlan).filter_by(caller_id=caller_id).count() == 0
    # The same forms without the NUL work (the check refuses only the character).
    assert post(client, "/staff/hours/close", reason="Storm warning", until="").status_code == 302
    assert "Storm warning" in client.get("/staff/hours").get_data(as_text=True)


def test_a_nul_in_the_sign_in_form_is_refused_not_an_error(app: Any, dashboard_data: Any) -> None:
    client = app.test_client()
    token = csrf_token(client)
    assert_refused_for_nul(client.post("/staff/sign-in", data={"csrf_token": token, "username": "super\x00",
                                                                "password": "x"}))
