"""Live-call load: N simulated calls, each taking one step every 5 s, against peerline under gunicorn.

Every call follows a realistic path as Twilio would drive it, with signed requests: the language
question, menus, peer stories (pause, go on, next), the hold queue (the wait document fetched
round after round, a key on hold), a few voicemails (the <Record> action and its recording
status callback) and callback requests (from the menu, or from hold keeping the place), then
the status callback when the caller hangs up. When a call ends a new caller takes its place,
so N calls are live for the whole run. Peers are on shift but on a break, so a caller who asks
for a peer waits on hold (no call leaves the machine).

Beside it, in the same run, the bare Flask route (``bench/bare_app.py``) gets the same requests
at the same rate (each step to its one route). Prints p50/p99/max latency, errors, the share of
answers later than 1 s and the ratios; and the app's latency by kind of webhook.

    .venv/bin/python bench/load.py                              # 50 live calls, 30 s warm-up + 30 s
    .venv/bin/python bench/load.py --calls 1000 --warmup 60 --seconds 120
    .venv/bin/python bench/load.py --curve 100,250,500,1000     # p99 against live calls

PostgreSQL and Redis: ``--database-url`` / ``--redis-url``, else ``DATABASE_URL`` / ``REDIS_URL``,
else ``postgresql://postgres@127.0.0.1/peerline_bench`` (created when missing) and
``redis://127.0.0.1:6379/14``. The bench EMPTIES that database and Redis db first: give it
its own. Bounded in time (each level runs ``--warmup`` + ``--seconds``) and stops by itself.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import urlencode, urlsplit
from xml.etree import ElementTree

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.webhooks import BenchError, Server, signed_form, spoken, start_pair  # noqa: E402

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1/peerline_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
LATE_S = 1.0  # an answer later than this counts as late
REQUEST_TIMEOUT_S = 15.0  # Twilio's webhook timeout: an answer later than this is an error
ERROR_LINE = "something went wrong"  # the webhooks' error path says this (failures.py)
RECORDING_BASE = "https://api.twilio.invalid/2010-04-01/Accounts/AC0/Recordings"


# Paths ------------------------------------------------------------------------------------
# A step is one thing the caller (or Twilio) does, 5 s after the last: ("key", "2") presses 2
# at the current <Gather>, "follow" takes the <Redirect>, "hold" is a fetch of the queue's wait
# document, "leave" the <Enqueue> action after <Leave>, "record" the <Record> action and its
# recording status callback, "hangup" the status callback (and the <Enqueue> action on hold).
Step = tuple[str, str]


def path_menus(rng: random.Random) -> list[Step]:
    """Around the menus: stories and back, repeat, settings and back."""
    return [("incoming", ""), ("language", "1"), ("key", "2"), ("key", "5"), ("key", "*"), ("key", "5"),
            ("key", "5"), ("key", "2"), ("key", "5"), ("hangup", "")]


def path_stories(rng: random.Random) -> list[Step]:
    """A story on a topic, paused and resumed, the next one, another topic."""
    first, second = rng.sample(["1", "2", "3", "4"], 2)
    return [("incoming", ""), ("language", "1"), ("key", "2"), ("key", first), ("key", "2"), ("key", "2"),
            ("follow", ""), ("key", "3"), ("follow", ""), ("key", "5"), ("key", second), ("follow", ""),
            ("key", "5"), ("key", "5"), ("hangup", "")]


def path_hold(rng: random.Random) -> list[Step]:
    """Ask for a peer, wait on hold for some rounds (one key on hold), hang up."""
    rounds = rng.randint(4, 14)
    steps: list[Step] = [("incoming", ""), ("language", "1"), ("key", "1")]
    for i in range(rounds):
        steps.append(("hold_key", "1") if i == rounds // 2 else ("hold", ""))
    return [*steps, ("hangup", "")]


def path_hold_callback(rng: random.Random) -> list[Step]:
    """On hold a while, then a callback that keeps the place."""
    steps: list[Step] = [("incoming", ""), ("language", "1"), ("key", "1"),
                         *[("hold", "")] * rng.randint(2, 6), ("hold_key", "2"), ("leave", "")]
    return [*steps, ("key", "1"), ("key", "1"), ("key", "2"), ("hangup", "")]


def path_voicemail(rng: random.Random) -> list[Step]:
    """Leave a message."""
    return [("incoming", ""), ("language", "1"), ("key", "4"), ("record", ""), ("hangup", "")]


def path_callback(rng: random.Random) -> list[Step]:
    """Ask for a callback from the main menu: the number is right, now, no message."""
    return [("incoming", ""), ("language", "1"), ("key", "3"), ("key", "1"), ("key", "1"), ("key", "2"),
            ("hangup", "")]


PATHS: tuple[tuple[Callable[[random.Random], list[Step]], int], ...] = (
    (path_menus, 25), (path_stories, 30), (path_hold, 30), (path_hold_callback, 5), (path_voicemail, 5),
    (path_callback, 5))


def choose_path(rng: random.Random) -> list[Step]:
    """A path, by the weights of PATHS."""
    make = rng.choices([p for p, _w in PATHS], weights=[w for _p, w in PATHS])[0]
    return make(rng)


# Measurement ------------------------------------------------------------------------------

# How a request is sent: (url, form, headers) -> (status, body); the tests pass the app's test client.
Transport = Callable[[str, dict[str, str], dict[str, str]], Awaitable[tuple[int, bytes]]]


@dataclass
class Figures:
    """Every measured answer of one run: (kind, seconds), and what went wrong."""

    name: str
    calls: int
    latencies: list[tuple[str, float]] = field(default_factory=list)
    errors: int = 0
    first_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def error(self, what: str) -> None:
        """Count an error, keeping the first few for the report."""
        self.errors += 1
        if len(self.first_errors) < 3:
            self.first_errors.append(what[:300])

    def pct(self, q: float, kind: str | None = None) -> float:
        """The q-th percentile latency in ms (nearest rank), of one kind of request or all."""
        values = sorted(s for k, s in self.latencies if kind is None or k == kind)
        if not values:
            return float("nan")
        return 1000 * values[min(len(values) - 1, max(0, int(q / 100 * len(values) + 0.999999) - 1))]

    @property
    def late_share(self) -> float:
        """Share of answers later than LATE_S."""
        return sum(1 for _k, s in self.latencies if s > LATE_S) / len(self.latencies) if self.latencies else 0.0

    @property
    def rps(self) -> float:
        """Measured requests per second."""
        return len(self.latencies) / self.seconds if self.seconds else float("nan")


async def http_post(url: str, form: dict[str, str], headers: dict[str, str]) -> tuple[int, bytes]:
    """POST a form over a new loopback connection (as gunicorn's sync workers close each one); (status, body).

    A few lines of HTTP/1.1 on asyncio streams rather than an HTTP client library: at a thousand
    live calls the load generator shares the two cores with the servers, and must cost little.
    """
    parts = urlsplit(url)
    body = urlencode(form).encode()
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    request = (f"POST {parts.path}{'?' + parts.query if parts.query else ''} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
               f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
               f"Connection: close\r\n{head}\r\n").encode() + body
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
    try:
        writer.write(request)
        answer = await reader.read(-1)  # the server closes the connection after its answer
    finally:
        writer.close()
    status_line, _sep, rest = answer.partition(b"\r\n")
    _head, _sep, content = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), content


class Call:
    """One simulated call: walks its path, following what each answer says."""

    def __init__(self, run: Run, number: str, path: list[Step]) -> None:
        self.run, self.number, self.path = run, number, path
        self.sid = "CA" + secrets.token_hex(16)
        self.doc: ElementTree.Element | None = None
        self.wait_url = self.leave_url = ""
        self.queued = False  # in the hold queue: its hang-up ends the <Enqueue> too
        self.queue_position = 1 + run.rng.randint(0, 20)

    async def post(self, kind: str, url: str, **extra: str) -> ElementTree.Element | None:
        """One signed POST; measured when sent inside the window; None when it failed (counted)."""
        run = self.run
        if run.bare:
            url = run.base_url + "/voice/next"  # the bare app answers every step the same
        elif url.startswith("/"):
            url = run.base_url + url
        form, headers = signed_form(url, self.sid, self.number, run.token, **extra)
        started = time.monotonic()
        measured = run.measure_from <= started < run.measure_until
        try:
            status, content = await asyncio.wait_for(run.transport(url, form, headers), REQUEST_TIMEOUT_S)
        except (OSError, ValueError, asyncio.TimeoutError) as exc:
            if measured:
                run.figures.error(f"{kind}: {type(exc).__name__}: {exc}")
            return None
        elapsed = time.monotonic() - started
        try:
            doc = ElementTree.fromstring(content)
        except ElementTree.ParseError:
            doc = None
        if measured:
            run.figures.latencies.append((kind, elapsed))
            if status != 200 or doc is None or doc.tag != "Response":
                run.figures.error(f"{kind} {url}: HTTP {status} {content[:200]!r}")
            elif not run.bare and ERROR_LINE in spoken(content):
                run.figures.error(f"{kind} {url}: the error path answered: {spoken(content)[:200]}")
        return doc if status == 200 else None

    def _attr(self, tag: str, attr: str) -> str:
        found = self.doc.find(tag) if self.doc is not None else None
        return found.get(attr, "") if found is not None else ""

    def _redirect(self) -> str:
        found = self.doc.find("Redirect") if self.doc is not None else None
        return (found.text or "").strip() if found is not None else ""

    async def step(self, kind: str, digits: str) -> bool:
        """Take one step; False when the answer did not allow it (the call ends there, counted)."""
        bare = self.run.bare
        if kind == "incoming":
            doc = await self.post(kind, "/voice/incoming", CallStatus="ringing")
        elif kind == "language":
            action = self._attr("Gather", "action")
            if bare or "/voice/language" in action:
                doc = await self.post(kind, action, Digits=digits)
            else:  # a returning caller: the greeting, then the main menu
                doc = await self.post(kind, self._redirect())
        elif kind == "key":
            doc = await self.post(kind, self._attr("Gather", "action"), Digits=digits)
        elif kind == "follow":
            doc = await self.post(kind, self._redirect())
        elif kind == "hold":
            doc = await self.post(kind, self.wait_url, QueuePosition=str(self.queue_position), QueueTime="30")
        elif kind == "hold_key":
            doc = await self.post(kind, self._attr("Gather", "action"), Digits=digits)
        elif kind == "leave":
            doc = await self.post(kind, self.leave_url, QueueResult="leave", QueueTime="60")
        elif kind == "record":
            rec_sid = "RE" + secrets.token_hex(16)
            recording = dict(RecordingSid=rec_sid, RecordingUrl=f"{RECORDING_BASE}/{rec_sid}", RecordingDuration="12")
            status_url = self._attr("Record", "recordingStatusCallback")
            doc = await self.post(kind, self._attr("Record", "action"), Digits="#", **recording)
            await self.post("recording_status", status_url, RecordingStatus="completed", **recording)
        elif kind == "hangup":
            if self.queued:  # Twilio ends a queued call's <Enqueue> before the status callback
                await self.post("hold_done", self.leave_url, QueueResult="hangup", QueueTime="60")
            await self.post(kind, "/voice/status", CallStatus="completed", CallDuration="60")
            return True
        else:
            raise ValueError(kind)
        if doc is None:
            return False
        self.doc = doc
        if not bare and doc.find("Enqueue") is not None:
            self.wait_url = self._attr("Enqueue", "waitUrl")
            self.leave_url = self._attr("Enqueue", "action")
        # The bare app has no queue: the same steps count the same requests.
        self.queued = (self.queued or bool(self.wait_url) or (bare and kind.startswith("hold"))) and kind != "leave"
        if kind == "leave":
            self.wait_url = ""
        return True


@dataclass
class Run:
    """One measured run of N live calls against one server."""

    bare: bool
    base_url: str
    token: str
    calls: int
    interval_s: float
    figures: Figures
    rng: random.Random
    numbers: Any
    measure_from: float = 0.0
    measure_until: float = 0.0
    stop_at: float = 0.0
    warmup_s: float = 0.0
    transport: Transport = field(default=lambda url, form, headers: http_post(url, form, headers), repr=False)

    async def live(self, slot: int) -> None:
        """One line's worth of calls: a call, and when it ends the next caller, until the run is over."""
        # Calls start spread over the warm-up, so the measured window finds them at every stage
        # of their paths (not all at the language question) and the load ramps up gently.
        next_at = self.measure_from - self.warmup_s + self.rng.uniform(0, max(self.warmup_s, self.interval_s))
        while True:
            call = Call(self, f"+1555{next(self.numbers):07d}", choose_path(self.rng))
            for kind, digits in call.path:
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                if time.monotonic() >= self.stop_at:
                    return
                sent = time.monotonic()
                ok = await call.step(kind, digits)
                next_at = max(sent + self.interval_s, time.monotonic())
                if not ok:
                    if self.measure_from <= sent < self.measure_until:
                        self.figures.error(f"call {call.sid} could not take the step {kind} {digits}")
                    break


async def drive(run: Run, warmup_s: float, seconds: float) -> Figures:
    """Run N live calls: ``warmup_s`` unmeasured, then ``seconds`` measured."""
    run.warmup_s = warmup_s
    start = time.monotonic()
    run.measure_from = start + warmup_s
    run.measure_until = run.measure_from + seconds
    run.stop_at = run.measure_until
    await asyncio.gather(*(run.live(slot) for slot in range(run.calls)))
    run.figures.seconds = seconds
    return run.figures


# Set-up -----------------------------------------------------------------------------------


def ensure_database(url: str) -> None:
    """Create the bench's PostgreSQL database when it is missing (SQLite needs nothing)."""
    if not url.startswith(("postgresql", "postgres:")):
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from models.session import normalize_url

    target = make_url(normalize_url(url))
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database}).first() is None:
            conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


def seed(database_url: str, redis_url: str, data_key: str) -> None:
    """An empty database and Redis db, with stories in both languages and peers on shift but on a break."""
    from redis import Redis
    from sqlalchemy import delete

    from models import Base, Peer, PeerStory
    from models.crypto import Vault
    from models.session import make_engine, make_sessionmaker, upgrade

    upgrade(database_url)
    engine = make_engine(database_url, timeout_s=60)
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(delete(table))
    vault = Vault(data_key)
    story = ("I started on buprenorphine three years ago. The first weeks were hard, and people told me it "
             "was just trading one drug for another. It was not. It gave me my mornings back. ") * 4
    with make_sessionmaker(engine)() as session:
        for language in ("en", "es"):
            for topic in ("medication", "pain", "loneliness", "stigma"):
                for n in range(3):
                    session.add(PeerStory(title=f"{topic} {n + 1}", topic=topic, language=language, transcript=story,
                                          status="approved", consent_given=True))
        for i in range(6):
            peer = Peer(display_name=f"Peer {i}", languages=["en", "es"] if i % 2 else ["en"], status="break")
            peer.set_phone(vault, f"+1555555{i:04d}")
            session.add(peer)
        session.commit()
    engine.dispose()
    Redis.from_url(redis_url).flushdb()


def table(pairs: list[tuple[Figures, Figures]]) -> str:
    """The figures per level: app and bare, with the ratios."""
    head = (f"{'calls':>6} {'server':<9} {'requests':>8} {'errors':>6} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'max ms':>8} {'>1 s':>6}")
    lines = [head]
    for app, bare in pairs:
        for f in (app, bare):
            lines.append(f"{f.calls:>6} {f.name:<9} {len(f.latencies):>8} {f.errors:>6} {f.rps:>7.1f} {f.pct(50):>8.1f} "
                         f"{f.pct(99):>8.1f} {1000 * max((s for _k, s in f.latencies), default=0):>8.1f} "
                         f"{100 * f.late_share:>5.1f}%")
        lines.append(f"{app.calls:>6} {'app/bare':<9} {'':>8} {'':>6} {app.rps / bare.rps:>6.2f}x "
                     f"{app.pct(50) / bare.pct(50):>7.2f}x {app.pct(99) / bare.pct(99):>7.2f}x")
    return "\n".join(lines)


def by_kind(figures: Figures) -> str:
    """The app's latency by kind of request."""
    counts: dict[str, int] = defaultdict(int)
    for kind, _s in figures.latencies:
        counts[kind] += 1
    lines = [f"peerline at {figures.calls} live calls, by request: " + ", ".join(
        f"{kind} n={n} p50 {figures.pct(50, kind):.1f} p99 {figures.pct(99, kind):.1f} ms"
        for kind, n in sorted(counts.items(), key=lambda kv: -kv[1]))]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse options, start both servers, run each level against each, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=50, help="live calls (default 50; the real run is 1000)")
    parser.add_argument("--curve", default="", help="several levels of live calls, e.g. 100,250,500,1000")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds per level and server")
    parser.add_argument("--warmup", type=float, default=30.0,
                        help="unmeasured seconds first, over which the calls start (a path takes about a minute)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between a call's steps")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers of each server (at least 2)")
    parser.add_argument("--threads", type=int, default=4,
                        help="threads per gunicorn worker, as `peerline serve` (1: sync workers), for both servers")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL)
    parser.add_argument("--seed", type=int, default=11, help="random seed of the paths")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (gunicorn logs)")
    args = parser.parse_args(argv)
    levels = [int(n) for n in args.curve.split(",") if n.strip()] if args.curve else [args.calls]
    if not levels or min(levels) < 1 or max(levels) > 5000:
        parser.error("live calls must be between 1 and 5000")
    if args.workers < 2 or not 1 <= args.threads <= 64 or args.seconds <= 0 or args.seconds > 1800 or args.warmup < 0 or args.interval <= 0:
        parser.error("--workers at least 2, --threads 1 to 64, --seconds in (0, 1800], --warmup >= 0, --interval > 0")

    workdir = Path(tempfile.mkdtemp(prefix="peerline-load-"))
    servers: list[Server] = []
    try:
        from models.crypto import generate_key

        ensure_database(args.database_url)
        data_key = generate_key()
        seed(args.database_url, args.redis_url, data_key)
        token = start_pair(servers, workdir, args.workers, args.threads, args.database_url, args.redis_url, data_key)
        app_server, bare_server = servers
        print(f"load: live calls {', '.join(map(str, levels))}, a step every {args.interval:g} s each; "
              f"{args.warmup:g} s warm-up + {args.seconds:g} s measured per level and server; "
              f"{args.workers} gunicorn {'sync workers' if args.threads == 1 else f'workers x {args.threads} threads'} each; peerline on {args.database_url.split('@')[-1]}, "
              f"Redis {args.redis_url.split('@')[-1]}; {os.cpu_count()} CPUs", flush=True)
        numbers = iter(range(10_000_000))
        pairs: list[tuple[Figures, Figures]] = []
        for level in levels:
            figures = []
            for server, bare in ((app_server, False), (bare_server, True)):
                run = Run(bare=bare, base_url=server.base_url, token=token, calls=level, interval_s=args.interval,
                          figures=Figures(server.name, level), rng=random.Random(args.seed + level), numbers=numbers)
                figures.append(asyncio.run(drive(run, args.warmup, args.seconds)))
            app, bare_figures = figures
            pairs.append((app, bare_figures))
            print(table([pairs[-1]]).split("\n", 1)[1] if len(pairs) > 1 else table([pairs[-1]]), flush=True)
            print(by_kind(app), flush=True)
            for f in figures:
                for line in f.first_errors:
                    print(f"  {f.name} error: {line}", file=sys.stderr)
        if len(pairs) > 1:
            print("\n" + table(pairs))
        return 1 if any(a.errors or b.errors for a, b in pairs) else 0
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 2
    finally:
        for server in servers:
            server.stop()
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
