"""Data-key rotation: re-encrypt every encrypted column and media file under the first PEERLINE_DATA_KEY.

With ``PEERLINE_DATA_KEY=NEW,OLD`` the app already encrypts with NEW and reads both; this
moves what OLD encrypted to NEW, so OLD can then be removed. Work goes in batches (one
transaction per batch of rows; one atomic replace per file) and skips what is already under
the first key, so an interrupted run is resumed by running it again. Every ``*_encrypted``
column of every table is found from the models, so a new table with encrypted columns is
rotated without changing this module.

Lookup hashes (``<name>_hash`` beside ``<name>_encrypted``: a peer's phone, a caller's number)
are recomputed only with ``rehash=True``: they derive from the first key unless
PEERLINE_LOOKUP_KEY pins them (docs/operations.md says when and how to rotate them).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sqlalchemy import LargeBinary, Table, select
from sqlalchemy.orm import Session, sessionmaker

from models import Base
from models.crypto import Vault
from models.errors import DecryptError

ENCRYPTED_SUFFIX = "_encrypted"
HASH_SUFFIX = "_hash"
FILE_SUFFIX = ".enc"  # encrypted media files (voicemail audio) end in this


@dataclass
class RotationReport:
    """What one run of the rotation changed (and what it found already done)."""

    values: dict[str, int] = field(default_factory=dict)  # "table.column" -> values re-encrypted
    current: int = 0  # values already under the first key (skipped)
    hashes: int = 0  # lookup hashes recomputed
    files: int = 0  # media files re-encrypted
    files_current: int = 0  # media files already under the first key

    def lines(self) -> list[str]:
        """A short summary for the command line."""
        out = [f"  {name}: {count} re-encrypted" for name, count in sorted(self.values.items()) if count]
        out.append(f"  values already under the current key: {self.current}")
        out.append(f"  media files re-encrypted: {self.files} (already current: {self.files_current})")
        out.append(f"  lookup hashes recomputed: {self.hashes}")
        return out


def encrypted_columns(table: Table) -> list[str]:
    """The encrypted (``*_encrypted``, binary) columns of a table."""
    return [c.name for c in table.columns if c.name.endswith(ENCRYPTED_SUFFIX) and isinstance(c.type, LargeBinary)]


def rotate_rows(sessions: sessionmaker[Session], vault: Vault, report: RotationReport, batch_size: int = 500,
                rehash: bool = False, progress: Callable[[str], None] = lambda line: None) -> None:
    """Re-encrypt every encrypted column of every table, one committed batch at a time."""
    for table in Base.metadata.sorted_tables:
        columns = encrypted_columns(table)
        if not columns or len(table.primary_key.columns) != 1:
            continue
        pk = next(iter(table.primary_key.columns))
        hashed = [name.removesuffix(ENCRYPTED_SUFFIX) for name in columns
                  if name.removesuffix(ENCRYPTED_SUFFIX) + HASH_SUFFIX in table.columns] if rehash else []
        last = None
        while True:
            with sessions() as session:
                query = select(pk, *(table.c[name] for name in columns)).order_by(pk).limit(batch_size)
                if last is not None:
                    query = query.where(pk > last)
                rows = session.execute(query).all()
                if not rows:
                    break
                for row in rows:
                    changes: dict[str, object] = {}
                    for name, token in zip(columns, row[1:]):
                        if token is None:
                            continue
                        if vault.is_current(bytes(token)):
                            report.current += 1
                            continue
                        try:
                            changes[name] = vault.rotate(bytes(token))
                        except DecryptError as exc:
                            raise DecryptError(f"{table.name}.{name} of id {row[0]}: {exc}") from exc
                        key = f"{table.name}.{name}"
                        report.values[key] = report.values.get(key, 0) + 1
                    for base in hashed:
                        token = row[1 + columns.index(base + ENCRYPTED_SUFFIX)]
                        if token is not None:
                            changes[base + HASH_SUFFIX] = vault.lookup_hash(vault.decrypt_text(bytes(token)))
                            report.hashes += 1
                    if changes:
                        session.execute(table.update().where(pk == row[0]).values(**changes))
                session.commit()  # a batch is done: a run stopped after this resumes past it
                last = rows[-1][0]
            progress(f"{table.name}: up to id {last}")


def rotate_files(folder: Path, vault: Vault, report: RotationReport) -> None:
    """Re-encrypt every ``*.enc`` file under ``folder``, each replaced atomically."""
    for path in sorted(folder.rglob(f"*{FILE_SUFFIX}")):
        if not path.is_file():
            continue
        token = path.read_bytes()
        if vault.is_current(token):
            report.files_current += 1
            continue
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".rotating-")
        try:
            try:
                rotated = vault.rotate(token)
            except DecryptError as exc:
                raise DecryptError(f"{path}: {exc}") from exc
            with os.fdopen(fd, "wb") as fh:
                fh.write(rotated)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)  # a killed run leaves the old file or the new one, never half
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        report.files += 1


def rotate_keys(sessions: sessionmaker[Session], vault: Vault, instance_path: Path, batch_size: int = 500,
                rehash: bool = False, progress: Callable[[str], None] = lambda line: None) -> RotationReport:
    """Move every encrypted value and media file to the first data key (and optionally rehash lookups)."""
    report = RotationReport()
    rotate_rows(sessions, vault, report, batch_size=batch_size, rehash=rehash, progress=progress)
    rotate_files(Path(instance_path), vault, report)
    return report
