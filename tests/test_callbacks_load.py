"""Callbacks under load: released only to free peers, in arrival order with the callers on hold,
counted in the spoken position, made in the caller's language, never dialled twice."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import NullPool, event, func, select, update

from callflows import callbacks, line
from models import CallbackRequest, Peer, PeerStatusChange, utcnow
from models.session import make_engine
from models.tables import CallbackAttempt, PeerRequest
from tests.factories import make_peer
from tests.helpers import TEST_ACCOUNT_SID, require
from tests.test_routing import ask_for_peer, wait_doc
from tests.test_stranded import heard_by, net, wired  # noqa: F401  (fixtures)

CALLS = f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Calls.json"


def add_callback(svc: Any, db: Any, number: str, arrived_at: datetime, language: str = "en") -> CallbackRequest:
    now = utcnow()
    not_before, not_after = callbacks.window_bounds("now", now, svc.settings)
    cb = CallbackRequest(number_encrypted=svc.vault.encrypt_text(number), language=language, window="now",
                         allow_message=False, status="pending", arrived_at=arrived_at, not_before=not_before,
                         not_after=not_after, due_at=not_before)
    db.add(cb)
    db.commit()
    return cb


def dialled(network: Any) -> list[str]:
    return [r.form["To"][0] for r in network.state.requests if r.method == "POST" and r.path == CALLS]


def test_only_as_many_callbacks_as_free_peers_and_never_twice_under_concurrent_dispatch(
        svc: Any, db: Any, phone_network: Any) -> None:
    svc.settings = svc.settings.replace(callback_max_concurrent=50)
    peers = [make_peer(db, svc.vault, display_name=f"p{i}", phone=f"+1555555080{i}") for i in range(3)]
    now = utcnow()
    due = [add_callback(svc, db, f"+155555509{i:02d}", now - timedelta(minutes=30 - i)) for i in range(12)]
    barrier = threading.Barrier(6)
    placed: list[int] = []

    def dispatcher() -> None:
        with svc.sessions() as session:
            barrier.wait()
            placed.append(line.dispatch(session, svc, utcnow()))

    threads = [threading.Thread(target=dispatcher) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    db.expire_all()
    # Three free peers: three callbacks released, the three that came first, each dialled once.
    assert sum(placed) == 3
    assert sorted(dialled(phone_network)) == sorted(p_phone for p_phone in ("+15555550800", "+15555550801", "+15555550802"))
    dialing = db.scalars(select(CallbackRequest).where(CallbackRequest.status == "dialing")
                         .order_by(CallbackRequest.arrived_at)).all()
    assert [cb.id for cb in dialing] == [cb.id for cb in due[:3]]
    assert db.scalar(select(func.count()).select_from(CallbackAttempt)) == 3
    assert {cb.peer_id for cb in dialing} == {p.id for p in peers}
    assert db.scalar(select(func.count()).select_from(Peer).where(Peer.status == "busy")) == 3


def test_a_callback_another_dispatcher_took_meanwhile_never_undoes_the_release_of_the_peer_who_came_free(
        svc: Any, db: Any, phone_network: Any) -> None:
    require(svc.engine.dialect.name == "postgresql",
            "needs PostgreSQL: set TEST_DATABASE_URL (SQLite lets no other writer in while the release is uncommitted)")
    now = utcnow()
    began = now - timedelta(seconds=svc.settings.peer_wrapup_seconds)
    peer = make_peer(db, svc.vault, display_name="p", phone="+15555550820", status="wrap_up", status_changed_at=began)
    first, second = (add_callback(svc, db, f"+1555555092{i}", now - timedelta(minutes=10 - i)) for i in range(2))
    other = make_engine(svc.settings.database_url, poolclass=NullPool)

    def taken_meanwhile(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # Between this dispatch's read of the line and its claim, another dispatcher claims the first callback.
        if "UPDATE callback_requests" in statement and not taken:
            taken.append(True)
            with other.begin() as conn:
                conn.execute(update(CallbackRequest).where(CallbackRequest.id == first.id).values(status="dialing"))

    taken: list[bool] = []
    event.listen(svc.engine, "before_cursor_execute", taken_meanwhile)
    try:
        with svc.sessions() as session:
            assert line.wrap_up_passed(session, svc, peer.id, began.timestamp(), utcnow()) == "available"
    finally:
        event.remove(svc.engine, "before_cursor_execute", taken_meanwhile)
        other.dispose()
    assert taken
    # The failed claim undid only itself: the peer was released and rung for the next callback in line.
    assert dialled(phone_network) == ["+15555550820"]
    db.expire_all()
    assert db.get(Peer, peer.id).status == "busy"
    assert db.get(CallbackRequest, second.id).status == "dialing"
    assert db.scalars(select(CallbackAttempt.callback_id)).all() == [second.id]
    assert db.scalars(select(PeerStatusChange.status).where(PeerStatusChange.peer_id == peer.id)
                      .order_by(PeerStatusChange.id)).all() == ["available", "busy"]


def test_callers_ahead_count_callbacks_in_the_spoken_position(svc: Any, db: Any, client: Any, phone_network: Any) -> None:
    make_peer(db, svc.vault, display_name="a", phone="+15555550810", status="busy")
    now = utcnow()
    add_callback(svc, db, "+15555550910", now - timedelta(minutes=10))  # came first: ahead
    add_callback(svc, db, "+15555550911", now - timedelta(minutes=9), language="es")  # another language's line
    caller = ask_for_peer(client, phone_network, "+15555550710")
    add_callback(svc, db, "+15555550912", utcnow())  # came after the first caller: behind them
    wait_doc(caller, 1)  # Twilio's queue says 1: only callers are in it
    assert caller.said.startswith("You are number 2 in line.")
    later = ask_for_peer(client, phone_network, "+15555550711")
    wait_doc(later, 1)
    assert later.said.startswith("You are number 4 in line.")  # a caller and two callbacks before them


def test_a_callback_never_jumps_callers_who_waited_longer(svc: Any, db: Any, client: Any, phone_network: Any) -> None:
    peer = make_peer(db, svc.vault, display_name="a", phone="+15555550820", status="busy")
    caller = ask_for_peer(client, phone_network, "+15555550720")
    cb = add_callback(svc, db, "+15555550920", utcnow())  # asked after the caller was on hold
    line.set_peer_status(db, svc, db.get(Peer, peer.id), "available", utcnow())
    db.expire_all()
    assert dialled(phone_network) == ["+15555550820"]
    req = db.scalar(select(PeerRequest))
    assert (req.call_sid, req.status) == (caller.call_sid, "ringing")
    assert db.get(CallbackRequest, cb.id).status == "pending"


def test_a_callback_is_made_in_the_callers_language(svc: Any, db: Any, wired: Any) -> None:  # noqa: F811
    make_peer(db, svc.vault, display_name="en only", phone="+15555550830", languages=("en",))
    spanish = make_peer(db, svc.vault, display_name="es", phone="+15555550831", languages=("en", "es"),
                        last_call_ended_at=utcnow())
    number = "+15555550930"
    wired.state.answers.update({"+15555550830": "accept", "+15555550831": "accept", number: "drop"})
    cb = add_callback(svc, db, number, utcnow() - timedelta(minutes=5), language="es")
    assert line.dispatch(db, svc, utcnow()) == 1
    wired.state.wait_for_legs()
    assert dialled(wired)[0] == "+15555550831"  # a peer who speaks Spanish, though not the longest idle
    assert heard_by(wired, number) == ['"Hola. Esta es la llamada de vuelta que pidió. Le conectamos ahora."']
    db.expire_all()
    assert db.get(CallbackRequest, cb.id).peer_id is None  # the caller left at the greeting: back in line
    assert db.scalar(select(CallbackAttempt)).peer_id == spanish.id
