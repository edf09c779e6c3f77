"""How long the metrics and the research export's small-group check take on a month of calls.

    .venv/bin/python bench/metrics.py                 # 20,000 calls over 30 days, temporary SQLite
    .venv/bin/python bench/metrics.py --calls 50000 --database-url postgresql://postgres@127.0.0.1/peerline_bench

Builds a synthetic history (calls, peer requests with ringing legs, peer status changes,
voicemails), then times ``callflows.metrics.compute`` for the month and for one day, and
``callflows.research.protect`` over the month's export rows. Bounded: it stops by itself.
"""
from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from callflows import metrics, research
from models import Base, Call, Peer, PeerStatusChange, Voicemail
from models.session import make_engine, upgrade
from models.tables import PeerRequest, RingLeg

START = datetime(2026, 10, 1, 4, tzinfo=timezone.utc)
ZONE = ZoneInfo("America/New_York")


def build(session: Session, calls: int, seed: int = 14) -> None:
    """A month of calls: 60 % ask for a peer (80 % of those answered), 10 % leave a message."""
    rng = random.Random(seed)
    peers = [Peer(display_name=f"p{i}", phone_encrypted=b"x", phone_hash=f"h{i}", status="available")
             for i in range(12)]
    session.add_all(peers)
    session.flush()
    for n in range(calls):
        start = START + timedelta(seconds=rng.uniform(0, 30 * 86400))
        call = Call(call_sid=f"CA{n:032d}", started_at=start, ended_at=start + timedelta(seconds=600),
                    language=rng.choice(["en", "en", "es"]), outcome="hung_up", status="completed", duration_s=600)
        session.add(call)
        session.flush()
        if rng.random() < 0.6:
            peer = rng.choice(peers)
            wait = rng.expovariate(1 / 40)
            answered = rng.random() < 0.8
            req = PeerRequest(call_sid=call.call_sid, call_id=call.id, arrived_at=start,
                              status="ended" if answered else "abandoned", peer_id=peer.id if answered else None,
                              connected_at=start + timedelta(seconds=wait) if answered else None,
                              ended_at=start + timedelta(seconds=wait + (rng.expovariate(1 / 600) if answered else 0)))
            session.add(req)
            session.flush()
            session.add(RingLeg(request_id=req.id, peer_id=peer.id, created_at=start,
                                status="completed" if answered else "caller_gone"))
            if answered:
                assert req.connected_at is not None and req.ended_at is not None
                session.add_all([PeerStatusChange(peer_id=peer.id, status="busy", at=req.connected_at),
                                 PeerStatusChange(peer_id=peer.id, status="wrap_up", at=req.ended_at),
                                 PeerStatusChange(peer_id=peer.id, status="available",
                                                  at=req.ended_at + timedelta(seconds=120))])
        elif rng.random() < 0.25:
            session.add(Voicemail(recording_sid=f"RE{n:032d}", recording_url="x", call_id=call.id,
                                  created_at=start, risk_level=rng.choice(["none", "low", "high"])))
    session.commit()


def main() -> None:
    """Build the history, then time each computation once."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{Path(folder) / 'bench.db'}"
        upgrade(url)
        engine = make_engine(url)
        with Session(engine) as session:
            started = time.perf_counter()
            build(session, args.calls)
            print(f"built {args.calls} calls in {time.perf_counter() - started:.1f} s")
            month = metrics.period_for_days(START.date(), (START + timedelta(days=29)).date(), ZONE, START)
            day = metrics.period_for_days(START.date() + timedelta(days=10), START.date() + timedelta(days=10), ZONE,
                                          START)
            for name, period in (("month", month), ("day", day)):
                started = time.perf_counter()
                m = metrics.compute(session, period, ZONE, 30, now=START + timedelta(days=40))
                print(f"metrics for a {name}: {m.calls_offered} calls in {time.perf_counter() - started:.2f} s")
            rows = list(research.export_rows(session, "bench-key", research.ExportWindow(), "day"))
            started = time.perf_counter()
            _protected, report = research.protect(rows, "day")
            print(f"small-group check over {len(rows)} rows in {time.perf_counter() - started:.2f} s; "
                  + "; ".join(report.lines()))
        if args.database_url:
            with engine.begin() as conn:
                for table in reversed(Base.metadata.sorted_tables):
                    conn.execute(table.delete())
        engine.dispose()


if __name__ == "__main__":
    main()
