"""Peer state that repairs itself, played through the phone network: the automatic break after
missed offers, and the reconciler that asks the REST API about peers held with no live leg."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from werkzeug.security import generate_password_hash

from models import AuditEntry, Peer
from models.tables import RingLeg
from simulator.engine import ScriptActor
from tests.factories import make_peer
from tests.test_dashboard import sign_in
from tests.test_stranded import net, place_call, run, wired  # noqa: F401  (fixtures)


def test_a_phone_that_misses_three_offers_in_a_row_puts_the_peer_on_a_break(
        svc: Any, db: Any, wired: Any, live_app: str, client: Any, dashboard_data: Any) -> None:  # noqa: F811
    sam = db.get(Peer, dashboard_data.sam.id)
    sam.pin_hash = generate_password_hash("4321")
    db.commit()
    make_peer(db, svc.vault, display_name="busy one", phone="+15555550561", status="busy")  # the line is open
    wired.state.answers[sam_phone := "+15555550101"] = "no-answer"
    callers = [place_call(wired, live_app, f"+1555555066{i}", ScriptActor(["1", "1"], hold_s=3)) for i in range(3)]
    threads = [run(c) for c in callers]
    for thread in threads:
        thread.join(60)
    wired.state.wait_for_legs()
    db.expire_all()
    sam = db.get(Peer, sam.id)
    assert (sam.status, sam.missed_offers, sam.auto_break_at is not None) == ("break", 0, True)
    legs = db.scalars(select(RingLeg).where(RingLeg.peer_id == sam.id).order_by(RingLeg.id)).all()
    assert [leg.status for leg in legs] == ["no_answer"] * 3  # rung for three callers, never again after
    (entry,) = db.scalars(select(AuditEntry).where(AuditEntry.action == "peer_auto_break")).all()
    assert (entry.target_type, entry.target_id) == ("peer", sam.id)
    assert entry.detail == "available -> break: 3 offers in a row not taken"
    # Told on the next call to the line...
    phone = place_call(wired, live_app, sam_phone, ScriptActor(["4321"]))
    run(phone).join(60)
    assert "You were put on a break because your phone did not take 3 calls in a row. " \
           "Press 1 when you are ready again." in phone.heard
    # ...and on their page.
    assert sign_in(client, "sam", dashboard_data.passwords["sam"]).status_code == 302
    page = client.get("/staff/me").get_data(as_text=True)
    assert "because your phone did not take 3 calls in a row" in page


def test_taking_a_call_starts_the_count_again(svc: Any, db: Any, wired: Any, live_app: str) -> None:  # noqa: F811
    peer = make_peer(db, svc.vault, display_name="p", phone="+15555550571", missed_offers=2)
    wired.state.answers["+15555550571"] = "accept"
    caller = place_call(wired, live_app, "+15555550671", ScriptActor(["1", "1"], talk_s=0.2, hold_s=10))
    run(caller).join(60)
    wired.state.wait_for_legs()
    db.expire_all()
    assert db.get(Peer, peer.id).missed_offers == 0
    assert db.get(Peer, peer.id).status == "wrap_up"

