"""Encryption at rest, keyed lookups, migrations and the account commands."""
from __future__ import annotations

import pytest
from sqlalchemy import inspect, select
from werkzeug.security import check_password_hash

from models import Peer, StaffUser
import models
import models.crypto
from models.crypto import Vault, generate_key
from models.errors import DataKeyError, DecryptError, ModelError


def test_numbers_are_encrypted_and_found_by_keyed_hash() -> None:
    vault = Vault(generate_key())
    token = vault.encrypt_text("+1 (555) 555-0101")
    assert b"555" not in token
    assert vault.decrypt_text(token) == "+1 (555) 555-0101"
    assert vault.lookup_hash("+1 (555) 555-0101") == vault.lookup_hash("+15555550101")
    other = Vault(generate_key())
    assert other.lookup_hash("+15555550101") != vault.lookup_hash("+15555550101")
    with pytest.raises(DecryptError):
        other.decrypt(token)


def test_key_rotation_reads_old_data() -> None:
    old, new = generate_key(), generate_key()
    token = Vault(old).encrypt_text("secret")
    assert Vault(f"{new},{old}").decrypt_text(token) == "secret"


def test_bad_key_is_a_clear_error() -> None:
    with pytest.raises(DataKeyError, match="32 url-safe base64-encoded bytes"):
        Vault("not-a-key")
    with pytest.raises(DataKeyError, match="empty"):
        Vault("")


def test_model_errors_are_one_tree_importable_from_the_old_places() -> None:
    assert issubclass(DataKeyError, ModelError) and issubclass(DecryptError, ModelError)
    assert models.crypto.DecryptError is DecryptError and models.crypto.DataKeyError is DataKeyError
    assert models.DecryptError is DecryptError and models.ModelError is ModelError


def test_migrations_create_every_table(engine) -> None:  # type: ignore[no-untyped-def]
    tables = set(inspect(engine).get_table_names())
    assert {"staff_users", "peers", "callers", "calls", "call_events", "peer_stories", "voicemails",
            "callback_requests", "audit_log", "alembic_version"} <= tables


def test_create_user_command(runner, db) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(args=["create-user", "alex", "--role", "supervisor", "--password", "correct horse 1"])
    assert result.exit_code == 0, result.output
    user = db.scalar(select(StaffUser).where(StaffUser.username == "alex"))
    assert user.role == "supervisor" and check_password_hash(user.password_hash, "correct horse 1")
    again = runner.invoke(args=["create-user", "alex", "--role", "peer", "--password", "correct horse 2"])
    assert again.exit_code == 1 and "already exists" in again.output
    short = runner.invoke(args=["create-user", "kim", "--role", "peer", "--password", "short"])
    assert short.exit_code == 1 and "at least 10 characters" in short.output


def test_seed_demo_command_adds_peers_with_encrypted_phones(runner, db, svc) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(args=["seed-demo", "--no-audio"])
    assert result.exit_code == 0 and "supervisor / supervisor-demo" in result.output
    peers = db.scalars(select(Peer).order_by(Peer.id)).all()
    assert [p.display_name for p in peers] == ["Sam", "Rosa", "Jordan"]
    vault = svc.vault
    assert vault.decrypt_text(peers[0].phone_encrypted) == "+15555550101"
    assert b"5555550101" not in peers[0].phone_encrypted
    assert "medication-based-recovery" in peers[0].tags
    assert "already has data" in runner.invoke(args=["seed-demo", "--no-audio"]).output
