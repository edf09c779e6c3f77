"""Peers run their shift by phone: sign in with a PIN, choose available, break or sign off."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from callflows import line
from callflows.times import aware
from models import AuditEntry, Peer, utcnow
from models.tables import PeerRequest
from tests.factories import make_peer
from tests.helpers import TestCaller

PEER_PHONE = "+15555550101"


@pytest.fixture(autouse=True)
def net(app_config, phone_network):  # type: ignore[no-untyped-def]
    """The phone network, wired in before the app is built."""
    app_config["twilio_api_base_url"] = phone_network.base_url
    return phone_network


@pytest.fixture
def peer(svc, db) -> Peer:  # type: ignore[no-untyped-def]
    """Sam, signed off, with PIN 4321."""
    return make_peer(db, svc.vault, display_name="Sam", phone=PEER_PHONE, status="signed_off", pin="4321")


def test_sign_on_from_registered_phone_and_hear_waiting_callers(app, db, client, peer) -> None:  # type: ignore[no-untyped-def]
    db.add(PeerRequest(call_sid="CAwaiting", language="en", status="waiting", arrived_at=utcnow()))
    db.commit()
    phone = TestCaller(client, number=PEER_PHONE)
    phone.call()
    assert phone.said == "Peer sign in. Enter your PIN, then press pound."
    assert phone.gather().get("finishOnKey") == "#"
    phone.press("4321")
    assert phone.said.startswith("You are signed off. Callers waiting: 1. To be available for calls, press 1.")
    phone.press("1")
    assert phone.said.startswith("You are available. Callers waiting: 1. Hang up now")
    assert phone.twiml.find("Hangup") is not None
    db.expire_all()
    assert db.get(Peer, peer.id).status == "available"
    assert peer.pin_hash != "4321" and peer.pin_hash.startswith(("scrypt:", "pbkdf2:"))


def test_break_and_sign_off_from_the_menu(app, db, client, peer) -> None:  # type: ignore[no-untyped-def]
    for key, status, word in (("2", "break", "on a break"), ("3", "signed_off", "signed off")):
        phone = TestCaller(client, number=PEER_PHONE)
        phone.call()
        phone.press("4321")
        phone.press(key)
        assert phone.said.startswith(f"You are {word}.")
        db.expire_all()
        assert db.get(Peer, peer.id).status == status


def test_menu_token_is_bound_to_the_call(app, db, client, peer) -> None:  # type: ignore[no-untyped-def]
    phone = TestCaller(client, number=PEER_PHONE)
    phone.call()
    phone.press("4321")
    choice_url = phone.gather().get("action")
    intruder = TestCaller(client, number="+15555550999")
    intruder.post(choice_url, Digits="1")
    db.expire_all()
    assert db.get(Peer, peer.id).status == "signed_off"


def test_other_phone_signs_in_with_peer_number_and_pin(app, db, client, peer) -> None:  # type: ignore[no-untyped-def]
    phone = TestCaller(client, number="+15555550998")
    phone.call()
    phone.press("8")  # the hidden option at the language question
    assert phone.said == "Peer sign in. Enter your peer number, then press pound."
    phone.press(str(peer.id))
    assert phone.said == "Peer sign in. Enter your PIN, then press pound."
    phone.press("4321")
    assert phone.said.startswith("You are signed off.")


def test_a_pin_set_from_the_command_line_signs_the_peer_on(app, svc, db, client, runner) -> None:  # type: ignore[no-untyped-def]
    # A peer added on the roster has no PIN: `peerline set-pin` gives one (locked out, too, by old guesses).
    rosa = make_peer(db, svc.vault, display_name="Rosa", phone="+15555550102", status="signed_off",
                     pin_failures=5, pin_locked_until=utcnow() + timedelta(minutes=10))
    refused = runner.invoke(args=["set-pin", str(rosa.id)], input="12\n12\n")
    assert refused.exit_code == 1 and "a PIN is 4 to 8 digits" in refused.output
    result = runner.invoke(args=["set-pin", str(rosa.id)], input="2468\n2468\n")
    assert result.exit_code == 0, result.output
    assert f"PIN set for peer {rosa.id} (Rosa)" in result.output
    phone = TestCaller(client, number="+15555550102")
    phone.call()
    assert phone.said == "Peer sign in. Enter your PIN, then press pound."
    phone.press("2468")
    assert phone.said.startswith("You are signed off.")
    db.expire_all()
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "set_pin"))
    assert entry is not None and entry.target_id == rosa.id


@pytest.mark.parametrize("peer_number", [9, 19, 90, 99])
def test_a_peer_number_with_a_nine_is_a_number_not_the_crisis_key(app, svc, db, client, peer_number) -> None:  # type: ignore[no-untyped-def]
    # 9 is the crisis key at every prompt a caller hears, the PIN and the shift menu included; the
    # peer-number prompt is the one place it is a digit like the others, so any peer can sign in.
    make_peer(db, svc.vault, id=peer_number, display_name="Nina", phone="+15555550909", status="signed_off",
              pin="4321")
    phone = TestCaller(client, number="+15555550997")
    phone.call()
    phone.press("8")
    assert phone.said == "Peer sign in. Enter your peer number, then press pound."
    phone.press(str(peer_number))
    assert phone.twiml.find("Dial") is None
    assert phone.said == "Peer sign in. Enter your PIN, then press pound."
    phone.press("4321")
    assert phone.said.startswith("You are signed off.")
    phone.press("9")  # in the shift menu, 9 is the crisis line again
    assert phone.twiml.find("Dial").findtext("Number") == "988"


def test_wrong_pins_lock_sign_in(app, db, client, peer) -> None:  # type: ignore[no-untyped-def]
    phone = TestCaller(client, number=PEER_PHONE)
    phone.call()
    for _ in range(4):
        phone.press("0000")
        assert phone.said.startswith("That PIN is not right.")
    phone.press("0000")
    assert phone.said == "Too many wrong PINs. Sign in is locked for 15 minutes. Goodbye."
    assert phone.twiml.find("Hangup") is not None
    again = TestCaller(client, number=PEER_PHONE)
    again.call()
    again.press("4321")  # the right PIN, but locked
    assert again.said.startswith("Too many wrong PINs.")
    db.expire_all()
    locked = db.get(Peer, peer.id)
    assert locked.status == "signed_off" and aware(locked.pin_locked_until) > utcnow()


def test_peer_signing_on_is_offered_the_longest_waiting_caller(svc, db, client, peer, net) -> None:  # type: ignore[no-untyped-def]
    now = utcnow()
    db.add_all([PeerRequest(call_sid="CAsecond", language="en", status="waiting", arrived_at=now),
                PeerRequest(call_sid="CAfirst", language="en", status="waiting", arrived_at=now - timedelta(minutes=3))])
    db.commit()
    line.set_peer_status(db, svc, peer, "available", now, on_phone=True)  # offered once they hang up
    assert line.dispatch(db, svc, now) == 1
    first = db.scalar(select(PeerRequest).where(PeerRequest.call_sid == "CAfirst"))
    assert first.status == "ringing"
    sent = [r.form for r in net.state.requests if r.path.endswith("/Calls.json")]
    assert [f["To"] for f in sent] == [[PEER_PHONE]]
