"""HQ fixtures: every HQ test runs on a SQLite file AND on PostgreSQL (its own schema per test,
dropped afterwards, so runs never collide)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from uuid import uuid4

import httpx
import pytest

from hq.app import create_app
from hq.db import Database, database_url


def _pg_schema(dsn: str) -> str:
    import psycopg

    schema = f"hq_test_{uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return schema


def _drop_pg_schema(dsn: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_db(backend: str, request: pytest.FixtureRequest, tmp_path) -> Iterator:  # type: ignore[no-untyped-def]
    """A factory of fresh, initialised HQ databases on the test's backend."""
    made: list[tuple[Database, str | None]] = []
    dsn = request.getfixturevalue("pg_dsn") if backend == "postgresql" else None

    def make(name: str = "hq") -> Database:
        if dsn is None:
            db = Database(str(tmp_path / f"{name}.db"))
            schema = None
        else:
            schema = _pg_schema(dsn)
            db = Database(database_url(dsn), pg_schema=schema, pool_size=4)
        db.create_schema()
        made.append((db, schema))
        return db

    yield make
    for db, schema in made:
        db.dispose()
        if schema and dsn:
            _drop_pg_schema(dsn, schema)


@pytest.fixture
def db(make_db) -> Database:  # type: ignore[no-untyped-def]
    return make_db()  # type: ignore[no-any-return]


@pytest.fixture
async def client(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hq.test"
    ) as c:
        yield c
