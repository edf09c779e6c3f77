"""Where stored files live: paths kept in rows are relative to the instance folder."""
from __future__ import annotations

from pathlib import Path


def stored_path(instance_path: Path | str, stored: str) -> Path:
    """The file a row's stored path names (relative paths are under the instance folder)."""
    path = Path(stored)
    return path if path.is_absolute() else Path(instance_path) / path
