"""SQL helpers shared by the rules."""
from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Result


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE changed (the atomic claims read this to know who won)."""
    # Session.execute is typed as returning Result; for DML it is a CursorResult, which counts.
    return cast(CursorResult[Any], result).rowcount
