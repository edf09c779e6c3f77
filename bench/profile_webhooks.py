"""Where a webhook's time goes: the bench call of bench/webhooks.py in-process, under cProfile.

Runs N simulated calls (five signed requests each: incoming, language, three menus) through
the Flask test client, then sorts the profile's time into areas (database driver waits,
SQLAlchemy, TwiML, the signature check, Flask and werkzeug, the rest) and prints them per
request, with the SQL statements and commits of one call. The bare app's route, under the
same client, is the baseline. In-process: no gunicorn, no HTTP, no load generator.

    .venv/bin/python bench/profile_webhooks.py --calls 200 [--database-url URL] [--redis-url URL]
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.webhooks import run_call  # noqa: E402

# Areas by the file a function lives in (first match wins); a function's own time counts once.
AREAS = (
    ("database driver (waits on the server)", ("psycopg", "sqlite3", "{method 'commit' of", "{method 'execute' of")),
    ("SQLAlchemy (ORM, Core, pool)", ("sqlalchemy",)),
    ("TwiML (twilio library, ElementTree)", ("twilio/twiml", "xml/etree", "ivr/twiml.py")),
    ("signature check (HMAC, form parsing)", ("request_validator", "ivr/signature.py", "hmac", "formparser")),
    ("Flask and werkzeug", ("flask", "werkzeug")),
    ("peerline code", ("ivr/", "callflows/", "models/")),
)


def area(filename: str, name: str) -> str:
    """The area a profiled function belongs to."""
    where = f"{filename} {name}"
    for label, needles in AREAS:
        if any(needle in where for needle in needles):
            return label
    return "other (stdlib, test client)"


def main() -> None:
    """Profile N calls against the app and the bare route; print the areas per request."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", ""))
    args = parser.parse_args()
    from sqlalchemy import event

    token = secrets.token_hex(8)
    os.environ["BARE_AUTH_TOKEN"] = token  # the bare route checks the signatures too, as in the benches
    from bench.bare_app import app as bare
    from ivr import create_app
    from models.crypto import generate_key
    from models.session import upgrade

    tmp = Path(tempfile.mkdtemp(prefix="peerline-profile-"))
    database_url = args.database_url or f"sqlite:///{tmp / 'profile.db'}"
    upgrade(database_url)
    app = create_app({"database_url": database_url, "redis_url": args.redis_url, "instance_path": tmp / "instance",
                      "data_key": generate_key(), "secret_key": "profile", "public_base_url": "http://peerline.bench",
                      "twilio_auth_token": token, "twilio_api_base_url": "http://127.0.0.1:9"})
    sent: list[str] = []
    commits: list[int] = []
    engine = app.extensions["peerline"].engine
    event.listen(engine, "before_cursor_execute", lambda _c, _k, statement, *_a: sent.append(statement))
    event.listen(engine, "commit", lambda _c: commits.append(1))

    def poster(client: Any) -> Any:
        def post(url: str, form: dict[str, str], headers: dict[str, str]) -> tuple[int, bytes]:
            parts = urlsplit(url)
            response = client.post(parts.path + (f"?{parts.query}" if parts.query else ""), data=form,
                                   headers=headers)
            return response.status_code, response.data
        return post

    app_post, bare_post = poster(app.test_client()), poster(bare.test_client())
    number = iter(range(10_000_000))
    for _ in range(20):  # warm up both (imports, caches, prepared statements)
        run_call(app_post, "http://peerline.bench", token, "CA" + secrets.token_hex(16), f"+1555{next(number):07d}")
        run_call(bare_post, "http://127.0.0.1:5001", token, "CA" + secrets.token_hex(16), "+15550000000")
    sent.clear()
    commits.clear()
    run_call(app_post, "http://peerline.bench", token, "CA" + secrets.token_hex(16), f"+1555{next(number):07d}")
    per_call = (len(sent), len(commits))

    results = {}
    for name, post, base in (("peerline", app_post, "http://peerline.bench"), ("bare", bare_post, "http://127.0.0.1:5001")):
        profile = cProfile.Profile()
        started, cpu = time.perf_counter(), time.process_time()
        profile.enable()
        for _ in range(args.calls):
            run_call(post, base, token, "CA" + secrets.token_hex(16), f"+1555{next(number):07d}")
        profile.disable()
        results[name] = (time.perf_counter() - started, time.process_time() - cpu, profile)
    requests = 5 * args.calls
    print(f"{args.calls} calls x 5 requests in-process on {database_url.split(':')[0]}; one call sends "
          f"{per_call[0]} SQL statements and {per_call[1]} commits")
    for name, (wall, cpu, profile) in results.items():
        print(f"{name}: {1000 * wall / requests:.2f} ms a request under the profiler ({1000 * cpu / requests:.2f} ms CPU)")
    stats = pstats.Stats(results["peerline"][2])
    totals: dict[str, float] = {}
    for (filename, _line, name), (_cc, _nc, own, _cum, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        label = area(filename, name)
        totals[label] = totals.get(label, 0.0) + own
    whole = sum(totals.values())
    print("peerline, where a request's time goes (own time of the functions, by area):")
    for label, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"  {label:<42} {1000 * seconds / requests:6.2f} ms  {100 * seconds / whole:5.1f}%")


if __name__ == "__main__":
    main()
