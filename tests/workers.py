"""Real ``peerline worker`` processes for the fault tests.

A worker starts in a session of its own, so the test can kill everything it runs at once
(the worker, its RQ scheduler and its work horse, which RQ puts in a process group of its
own) the way a machine or a container dies, or stop it the way a supervisor does. The
worker imports this checkout (``PYTHONPATH``), whatever the installed console script points at.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from tests.helpers import PUBLIC_BASE, REPO, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN

LINE_NUMBER = "+15005550006"


def worker_env(app_config: dict[str, Any], twilio_api_base_url: str, **extra: str) -> dict[str, str]:
    """The environment of a worker of the test app (same database, Redis, keys and instance folder)."""
    env = {
        "PATH": os.environ.get("PATH", ""), "HOME": str(Path(str(app_config["instance_path"])).parent),
        "PYTHONPATH": str(REPO),
        "PEERLINE_INSTANCE_PATH": str(app_config["instance_path"]),
        "DATABASE_URL": str(app_config["database_url"]), "REDIS_URL": str(app_config["redis_url"]),
        "PEERLINE_DATA_KEY": str(app_config["data_key"]), "PEERLINE_SECRET_KEY": str(app_config["secret_key"]),
        "PUBLIC_BASE_URL": PUBLIC_BASE, "TWILIO_PHONE_NUMBER": LINE_NUMBER,
        "TWILIO_ACCOUNT_SID": TEST_ACCOUNT_SID, "TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN,
        "TWILIO_API_BASE_URL": twilio_api_base_url,
    }
    env.update(extra)
    return env


class SpawnedWorker:
    """One ``peerline worker`` process; its output goes to ``log`` (a pipe nobody reads would block it)."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.log = log
        exe = Path(sys.executable).parent / "peerline"
        with open(log, "ab") as out:
            self.process = subprocess.Popen([str(exe), "worker", *args], env=env, start_new_session=True,
                                            stdout=out, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        """The end of what the worker printed (for failure messages)."""
        return self.log.read_text(errors="replace")[-3000:]

    def session(self) -> list[int]:
        """Every running process of the worker's session: the worker, its scheduler, its work horse."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.getsid(int(entry)) != self.pid:
                    continue
                stat = Path(f"/proc/{entry}/stat").read_text()
            except (ProcessLookupError, FileNotFoundError):
                continue
            if stat.rsplit(")", 1)[1].split()[0] != "Z":  # a zombie has ended; its parent reaps it
                pids.append(int(entry))
        return pids

    def kill(self) -> None:
        """SIGKILL every process of the worker at once: nothing of it gets to clean up."""
        for pid in self.session():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=30)
        _wait_for(lambda: not self.session(), 30, "the killed worker's processes to end")

    def stop(self) -> None:
        """Stop it as a supervisor does (SIGTERM), else kill it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def wait(self, timeout: float) -> int:
        """Wait for the worker to exit (a burst worker); its exit status."""
        return self.process.wait(timeout=timeout)


def _wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout} s")
        time.sleep(0.05)


def wait_for(condition: Callable[[], object], timeout: float, what: str, worker: SpawnedWorker | None = None) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds (a generous bound, not a budget)."""
    try:
        _wait_for(condition, timeout, what)
    except AssertionError as exc:
        if worker is not None:
            raise AssertionError(f"{exc}\n--- worker output ---\n{worker.output()}") from None
        raise
