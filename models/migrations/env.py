"""Alembic environment: runs migrations against the URL set by models.session.alembic_config."""
from __future__ import annotations

from alembic import context
from sqlalchemy import pool

from models.session import BACKGROUND_TIMEOUT_S, make_engine
from models.tables import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Run migrations with a live connection."""
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("alembic: sqlalchemy.url is not set (peerline db upgrade sets it from DATABASE_URL)")
    engine = make_engine(url, timeout_s=BACKGROUND_TIMEOUT_S, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    context.configure(url=context.config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
