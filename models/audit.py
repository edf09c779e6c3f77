"""The audit log's keyed hash chain: each entry's ``chain_hash`` is an HMAC-SHA256, under a key
only the server holds, of the previous entry's chain hash and this entry's fields. Changing,
removing or reordering an entry behind the app's back breaks the chain from that entry on,
and without the key a forger cannot mend it (``peerline audit verify`` checks it).

Entries written before the chain existed (no ``chain_hash``) are skipped at the start of the
log; once the chain begins, every entry must carry its link. Removing the newest entries
leaves a shorter valid chain: the chain proves what is there was not altered, not that
nothing was cut from the end (the database trigger guards that on PostgreSQL).
"""
from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.tables import AuditEntry

KEY_LABEL = b"peerline-audit-chain-v1"


def chain_key(secret: str) -> bytes:
    """The chain's key, derived from the app's secret key (never stored with the log)."""
    return hmac.new(secret.encode("utf-8"), KEY_LABEL, hashlib.sha256).digest()


def _utc(at: datetime | None) -> str:
    if at is None:
        return ""
    if at.tzinfo is not None:
        at = at.astimezone(timezone.utc).replace(tzinfo=None)
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")  # the same text whether the database kept the zone or not


def link(key: bytes, previous: str, entry: AuditEntry) -> str:
    """The chain hash of ``entry`` after an entry whose chain hash is ``previous`` ('' for the first)."""
    fields = [_utc(entry.at), entry.staff_user_id, entry.action, entry.target_type, entry.target_id, entry.detail]
    message = previous.encode("ascii") + b"\n" + json.dumps(fields, ensure_ascii=True).encode("ascii")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def last_chain_hash(session: Session) -> str:
    """The chain hash of the newest entry ('' when the log has none yet)."""
    return session.scalar(select(AuditEntry.chain_hash).where(AuditEntry.chain_hash.is_not(None))
                          .order_by(AuditEntry.id.desc()).limit(1)) or ""


@dataclass(frozen=True)
class ChainReport:
    """The outcome of checking the chain."""

    checked: int  # entries whose link was checked
    unchained: int  # entries from before the chain began
    broken_at: int | None = None  # id of the first entry whose link does not hold
    problem: str = ""

    @property
    def ok(self) -> bool:
        """True when every link holds."""
        return self.broken_at is None


def verify_chain(session: Session, key: bytes) -> ChainReport:
    """Recompute every link in id order; report the first entry that breaks the chain."""
    previous = ""
    checked = unchained = 0
    started = False
    for entry in session.scalars(select(AuditEntry).order_by(AuditEntry.id)).yield_per(500):
        if entry.chain_hash is None:
            if started:
                return ChainReport(checked, unchained, entry.id, f"entry {entry.id} has no chain hash")
            unchained += 1
            continue
        started = True
        if not hmac.compare_digest(link(key, previous, entry), entry.chain_hash):
            return ChainReport(checked, unchained, entry.id,
                               f"entry {entry.id} does not match the chain: it, or the entry before it, was "
                               "changed or removed")
        previous = entry.chain_hash
        checked += 1
    return ChainReport(checked, unchained)
