"""The database engine. Built by a factory, never at import time."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

#: How long a connection attempt may take before the caller hears that the DB is down.
CONNECT_TIMEOUT_S = 3


def create_engine(database_url: str, *, pool_size: int = 5) -> AsyncEngine:
    """An async engine that survives a database restart (connections are pinged)."""
    return create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=CONNECT_TIMEOUT_S,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
