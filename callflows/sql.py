"""SQL helpers shared by the rules."""
from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Connection, CursorResult, Result
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE changed (the atomic claims read this to know who won)."""
    # Session.execute is typed as returning Result; for DML it is a CursorResult, which counts.
    return cast(CursorResult[Any], result).rowcount


def core(session: Session) -> Connection:
    """The session's connection for a Core statement, its pending ORM changes flushed first (as a query would)."""
    session.flush()  # nothing to do, and no SQL, when nothing is pending
    return session.connection()


def changed_by_core(session: Session, cls: type[Any], *ids: int) -> None:
    """Core statements just changed these rows: any of them the session holds is read again when next used.

    The hot paths write with Core statements (no unit of work, no ORM bookkeeping); an ORM
    ``update()`` would have brought the objects in the session up to date, so this keeps them
    from going stale without the cost (one dictionary lookup each; nothing is loaded now).
    """
    for ident in ids:
        obj = session.identity_map.get(identity_key(cls, ident))
        if obj is not None:
            session.expire(obj)
