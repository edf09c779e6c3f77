"""One rule for a peer's status, whoever changes it: by phone, on the staff page, or a supervisor
deactivating them. The same guards everywhere, and a peer who goes available is offered at once."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from callflows import line
from models import AuditEntry, Peer, utcnow
from models.tables import PeerRequest, RingLeg
from tests.test_dashboard import post, sign_in

CALLS = "/Calls.json"


@pytest.fixture(autouse=True)
def net(app_config: dict[str, Any], phone_network: Any) -> Any:
    """The phone network, wired in before the app is built."""
    app_config["twilio_api_base_url"] = phone_network.base_url
    return phone_network


def rung(net: Any) -> list[str]:
    """The numbers the line has dialled so far."""
    return [r.form["To"][0] for r in net.state.requests if r.method == "POST" and r.path.endswith(CALLS)]


def on_a_call(db: Any, peer: Peer) -> RingLeg:
    """Put ``peer`` in a connected call (the leg they accepted)."""
    req = PeerRequest(call_sid="CAlive", language="en", status="connected", arrived_at=utcnow(), peer_id=peer.id)
    db.add(req)
    db.flush()
    leg = RingLeg(request_id=req.id, peer_id=peer.id, status="accepted", call_sid="CApeerleg", created_at=utcnow())
    db.add(leg)
    peer.status = "busy"
    db.commit()
    return leg


def test_going_available_on_the_staff_page_offers_the_peer_to_the_caller_waiting(
        db: Any, client: Any, dashboard_data: Any, net: Any) -> None:
    sam = db.get(Peer, dashboard_data.sam.id)
    sam.status = "break"
    db.add(PeerRequest(call_sid="CAwaiting", language="en", status="waiting",
                       arrived_at=utcnow() - timedelta(minutes=4)))
    db.commit()
    assert rung(net) == []

    assert sign_in(client, "sam", dashboard_data.passwords["sam"]).status_code == 302
    assert post(client, "/staff/me/status", status="available").status_code == 302

    assert rung(net) == ["+15555550101"]  # Sam's phone rings for the caller who waited
    db.expire_all()
    assert db.get(Peer, sam.id).status == "busy"
    assert db.scalar(select(PeerRequest.status).where(PeerRequest.call_sid == "CAwaiting")) == "ringing"
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "peer_status"))
    assert entry is not None and entry.detail == "break -> available"


def test_a_live_call_keeps_its_state_by_phone_and_on_the_staff_page(
        svc: Any, db: Any, client: Any, dashboard_data: Any) -> None:
    sam = db.get(Peer, dashboard_data.sam.id)
    on_a_call(db, sam)
    change = line.set_peer_status(db, svc, sam, "signed_off", utcnow(), on_phone=True)
    assert (change.outcome, change.before, change.after) == ("on_call", "busy", "busy")

    assert sign_in(client, "sam", dashboard_data.passwords["sam"]).status_code == 302
    response = post(client, "/staff/me/status", status="break")
    assert response.status_code == 302
    page = client.get("/staff/me").get_data(as_text=True)
    assert "You are on a call; your status changes when it ends." in page
    db.expire_all()
    assert db.get(Peer, sam.id).status == "busy"
    assert db.scalar(select(AuditEntry).where(AuditEntry.action == "peer_status")) is None


def test_a_peer_deactivated_during_a_call_is_signed_off_when_it_ends_never_rung_again(
        svc: Any, db: Any, client: Any, dashboard_data: Any, net: Any) -> None:
    sam = db.get(Peer, dashboard_data.sam.id)
    leg = on_a_call(db, sam)
    db.add(PeerRequest(call_sid="CAnext", language="en", status="waiting", arrived_at=utcnow()))
    db.commit()

    assert sign_in(client, "super", dashboard_data.passwords["super"]).status_code == 302
    assert post(client, f"/staff/peers/{sam.id}/active", active="no").status_code == 302
    db.expire_all()
    sam = db.get(Peer, sam.id)
    assert (sam.active, sam.status) == (False, "busy")  # the call goes on

    now = utcnow()
    line.peer_in_room(db, svc, db.get(RingLeg, leg.id), now)  # the peer's <Dial> into the room ended
    line.ring_leg_ended(db, svc, db.get(RingLeg, leg.id), now)
    assert db.get(Peer, sam.id).status == "wrap_up"
    line.reconcile(db, svc, now + timedelta(seconds=svc.settings.peer_wrapup_seconds + 1))
    assert db.get(Peer, sam.id).status == "signed_off"
    assert rung(net) == []  # the caller waiting is not offered a deactivated peer
