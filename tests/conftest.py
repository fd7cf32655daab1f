"""Fixtures shared by every package's tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# The default run (CI, ./dev test) replays the same examples every time, so a green run here is a
# green run there and a failure is reproducible. HYPOTHESIS_PROFILE=explore searches with fresh
# random seeds (and a larger budget through each test's own knobs) to find new failures.
settings.register_profile("repeatable", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`../shared` beside the project, as in CI; skipped with a reason where it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """A PostgreSQL DSN for HQ's tests.

    CI sets POS_REQUIRE_PG=1 so a missing server fails the run instead of skipping."""
    dsn = os.environ.get("POS_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        import psycopg

        with psycopg.connect(dsn, connect_timeout=3) as conn:
            conn.execute("select 1")
    except Exception as exc:
        if os.environ.get("POS_REQUIRE_PG"):
            pytest.fail(f"PostgreSQL required (POS_REQUIRE_PG) but not reachable at {dsn}: {exc}")
        pytest.skip(f"no PostgreSQL reachable at {dsn}: {exc}")
    return dsn
