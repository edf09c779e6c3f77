"""`peerline rotate-keys`: every encrypted value and media file moves to the new data key, in resumable batches."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
from flask import Flask
from sqlalchemy import select

from callflows.keys import RotationReport, encrypted_columns, rotate_rows
from ivr import create_app
from ivr.cli import rotate_keys_command
from ivr.services import services
from models import Base, Caller, Peer
from models.crypto import Vault, generate_key
from models.errors import DecryptError
from tests.conftest import CALLER_NUMBER, DATA_KEY

NEW_KEY = generate_key()


class Stop(Exception):
    """Stands in for a run that is killed part-way."""


def stored_tokens(app: Flask) -> list[bytes]:
    """Every encrypted value in the database."""
    tokens: list[bytes] = []
    with services(app).sessions() as session:
        for table in Base.metadata.sorted_tables:
            for name in encrypted_columns(table):
                # In key order: PostgreSQL returns updated rows in another order than before.
                order = list(table.primary_key.columns)
                tokens += [bytes(t) for t in session.scalars(select(table.c[name]).order_by(*order)) if t is not None]
    return tokens


def media_files(app: Flask) -> list[Path]:
    return sorted(Path(services(app).settings.instance_path).rglob("*.enc"))


@pytest.fixture
def rotated_app(app_config: dict[str, Any], dashboard_data: Any) -> Iterator[Flask]:
    """The line restarted with PEERLINE_DATA_KEY=NEW,OLD and the lookup hashes pinned to OLD."""
    application = create_app({**app_config, "data_key": f"{NEW_KEY},{DATA_KEY}", "lookup_key": DATA_KEY})
    yield application
    services(application).engine.dispose()


def test_rotation_moves_every_value_and_file_to_the_new_key(rotated_app: Flask, dashboard_data: Any) -> None:
    tokens_before = stored_tokens(rotated_app)
    assert len(tokens_before) >= 9 and media_files(rotated_app)  # numbers, transcripts, words, risk terms
    result = rotated_app.test_cli_runner().invoke(rotate_keys_command, ["--batch-size", "2"])
    assert result.exit_code == 0, result.output
    assert f"media files re-encrypted: {len(media_files(rotated_app))} (already current: 0)" in result.output
    assert "lookup hashes recomputed: 0" in result.output
    new_only = Vault(NEW_KEY, lookup_key=DATA_KEY)
    old_only = Vault(DATA_KEY)
    tokens = stored_tokens(rotated_app)
    assert len(tokens) == len(tokens_before)
    assert [new_only.decrypt(t) for t in tokens] == [old_only.decrypt(t) for t in tokens_before]
    for token in tokens:
        with pytest.raises(DecryptError):
            old_only.decrypt(token)
    for path in media_files(rotated_app):
        assert new_only.decrypt(path.read_bytes())
    assert new_only.decrypt(Path(dashboard_data.high.audio_path).read_bytes()) == dashboard_data.audio
    # Callers and peers are still found by their number: the lookup hashes were pinned to the old key.
    with services(rotated_app).sessions() as session:
        assert session.scalar(select(Caller).where(Caller.number_hash == new_only.lookup_hash(CALLER_NUMBER)))
        assert session.scalar(select(Peer).where(Peer.phone_hash == new_only.lookup_hash("+15555550101")))
    # A second run finds nothing left to do.
    again = rotated_app.test_cli_runner().invoke(rotate_keys_command, [])
    assert f"values already under the current key: {len(tokens)}" in again.output
    assert f"media files re-encrypted: 0 (already current: {len(media_files(rotated_app))})" in again.output


def test_an_interrupted_rotation_resumes_where_it_stopped(rotated_app: Flask, dashboard_data: Any) -> None:
    svc = services(rotated_app)
    total = len(stored_tokens(rotated_app))
    batches: list[str] = []

    def stop_after_two(line: str) -> None:
        batches.append(line)
        if len(batches) == 2:
            raise Stop

    first = RotationReport()
    with pytest.raises(Stop):
        rotate_rows(svc.sessions, svc.vault, first, batch_size=1, progress=stop_after_two)
    done_first = sum(first.values.values())
    assert 0 < done_first < total
    second = RotationReport()
    rotate_rows(svc.sessions, svc.vault, second, batch_size=1)
    # The committed batches were kept and skipped; the rest was done once.
    assert second.current == done_first
    assert sum(second.values.values()) == total - done_first
    assert all(svc.vault.is_current(t) for t in stored_tokens(rotated_app))


def test_a_value_no_configured_key_can_read_stops_with_what_to_do(app_config: dict[str, Any],
                                                                    dashboard_data: Any) -> None:
    dropped_too_early = create_app({**app_config, "data_key": NEW_KEY, "lookup_key": DATA_KEY})
    try:
        result = dropped_too_early.test_cli_runner().invoke(rotate_keys_command, [])
    finally:
        services(dropped_too_early).engine.dispose()
    assert result.exit_code == 1
    assert "cannot be decrypted with any configured key" in result.output
    assert "Put the key it was encrypted with back in PEERLINE_DATA_KEY" in result.output


def test_rehash_moves_the_lookup_hashes_to_the_new_key(app_config: dict[str, Any], dashboard_data: Any) -> None:
    application = create_app({**app_config, "data_key": f"{NEW_KEY},{DATA_KEY}"})
    try:
        result = application.test_cli_runner().invoke(rotate_keys_command, ["--rehash"])
        assert result.exit_code == 0, result.output
        new_only = Vault(NEW_KEY)
        with services(application).sessions() as session:
            peers = session.scalars(select(Peer)).all()
            assert peers and result.output.count("lookup hashes recomputed: 3")  # two peers and the caller
            assert {p.phone_hash for p in peers} == {new_only.lookup_hash("+15555550101"),
                                                     new_only.lookup_hash("+15555550102")}
            assert session.scalar(select(Caller.number_hash)) == new_only.lookup_hash(CALLER_NUMBER)
    finally:
        services(application).engine.dispose()
